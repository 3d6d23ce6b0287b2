//! What to simulate: the options of a run and their checks.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// The readings topic (the lab's).
pub const TOPIC: &str = "m5go/env";

/// Most devices one run simulates (device ids have five digits).
pub const MAX_DEVICES: usize = 99_999;

/// The subscriber's id (its chip and certificate are its own).
pub(crate) const SUB_ID: &str = "fleet-sub";

/// Where each device's key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetMode {
    /// Key generated off-chip, stored in slot 8, read into RAM to connect.
    Lab,
    /// Key born in the chip (slot 0); the chip signs every handshake.
    Offload,
}

impl FleetMode {
    /// "lab" or "offload".
    pub fn name(self) -> &'static str {
        match self {
            FleetMode::Lab => "lab",
            FleetMode::Offload => "offload",
        }
    }
}

impl std::str::FromStr for FleetMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lab" => Ok(FleetMode::Lab),
            "offload" => Ok(FleetMode::Offload),
            o => Err(format!("unknown mode '{o}': use 'lab' or 'offload'")),
        }
    }
}

/// Which identity each device presents to the broker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    /// A certificate issued by the fleet's own CA, the key per
    /// [`FleetMode`].
    #[default]
    Ca,
    /// The chain each Trust&GO part ships with (device → signer → factory
    /// root), onboarded from the parts' signed manifest: no certificate
    /// issued, slot 0 signs the handshake, the broker's factory listener.
    Factory,
}

impl Identity {
    /// "ca" or "factory".
    pub fn name(self) -> &'static str {
        match self {
            Identity::Ca => "ca",
            Identity::Factory => "factory",
        }
    }
}

impl std::str::FromStr for Identity {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "ca" => Ok(Identity::Ca),
            "factory" => Ok(Identity::Factory),
            o => Err(format!(
                "unknown identity '{o}': use 'ca' (issued by the fleet's CA) or 'factory' (the Trust&GO chain, from the manifest)"
            )),
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Number of devices.
    pub devices: usize,
    /// Ramp: new connections per second.
    pub rate: f64,
    /// Publishing phase, after the ramp: each device publishes during this
    /// long.
    pub duration: Duration,
    /// One reading per device every `interval` (random phase).
    pub interval: Duration,
    /// Key mode (CA-issued identities).
    pub mode: FleetMode,
    /// The devices' identity: issued by the fleet's CA (default) or the
    /// factory chain from the parts' manifest.
    pub identity: Identity,
    /// Working directory (PKI, broker files, manifest). `None`: a
    /// temporary one (on /dev/shm when present), removed afterwards unless
    /// the run failed (its broker log is then kept there).
    pub dir: Option<std::path::PathBuf>,
    /// Stack size of each device thread.
    pub stack_size: usize,
}

impl FleetOptions {
    /// Defaults: 200 devices, 100 connections/s, 20 s, one reading every
    /// 10 s, offload mode.
    pub fn new(devices: usize) -> FleetOptions {
        FleetOptions {
            devices,
            rate: 100.0,
            duration: Duration::from_secs(20),
            interval: Duration::from_secs(10),
            mode: FleetMode::Offload,
            identity: Identity::Ca,
            dir: None,
            stack_size: 256 * 1024,
        }
    }

    /// Refuse what cannot run: no devices, too many, a rate or an interval
    /// that is not positive.
    pub fn validate(&self) -> Result<()> {
        if self.devices == 0 || self.devices > MAX_DEVICES {
            return Err(Error::Devices(self.devices));
        }
        if self.rate.is_nan() || self.rate <= 0.0 || self.interval.is_zero() {
            return Err(Error::NotPositive);
        }
        Ok(())
    }
}

/// The id of device `i` (from 1): `fleet-00001`.
pub fn device_id(i: usize) -> String {
    format!("fleet-{i:05}")
}

/// Parse a duration such as "20s", "500ms", "2m" or "1.5" (seconds).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 20s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("'{s}' is out of range (at most {} s)", u64::MAX))
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A setup step.
    Step(String),
    /// Provisioning (or, with factory identities, making the parts and
    /// their manifest): done out of total.
    Provisioning(usize, usize),
    /// Factory identities, manifest import: entries verified out of total.
    Importing(usize, usize),
    /// Ramp: (connected, failed, total).
    Ramp(usize, usize, usize),
    /// Publishing: seconds left.
    Publishing(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        assert!(FleetOptions::new(1).validate().is_ok());
        assert!(matches!(
            FleetOptions::new(0).validate(),
            Err(Error::Devices(0))
        ));
        assert!(matches!(
            FleetOptions::new(MAX_DEVICES + 1).validate(),
            Err(Error::Devices(_))
        ));
        let mut o = FleetOptions::new(5);
        o.rate = f64::NAN;
        assert!(matches!(o.validate(), Err(Error::NotPositive)));
        o.rate = 1.0;
        o.interval = Duration::ZERO;
        assert!(matches!(o.validate(), Err(Error::NotPositive)));
    }

    #[test]
    fn ids_and_indexes() {
        assert_eq!(device_id(7), "fleet-00007");
        assert_eq!("factory".parse(), Ok(Identity::Factory));
        assert!("x".parse::<Identity>().unwrap_err().contains("'ca'"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
        // Too large for a Duration: an error, not a panic.
        assert!(parse_duration("99999999999999999999s").is_err());
    }
}
