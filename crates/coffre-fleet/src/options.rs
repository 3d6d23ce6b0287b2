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
    /// Key mode.
    pub mode: FleetMode,
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

/// The index of a device id made by [`device_id`]; `None` for any other
/// id.
pub(crate) fn device_index(id: &str) -> Option<usize> {
    id.strip_prefix("fleet-")?.parse().ok()
}

pub use coffre_agent::duration::parse as parse_duration;

/// Where a run is, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A setup step.
    Step(String),
    /// Provisioning: done out of total.
    Provisioning(usize, usize),
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
        assert_eq!(device_index(&device_id(12345)), Some(12345));
        assert_eq!(device_index(SUB_ID), None);
        assert_eq!(device_index("other-1"), None);
    }
}
