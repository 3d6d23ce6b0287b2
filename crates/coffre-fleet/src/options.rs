//! What to simulate: the options of a run and their checks.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};

/// The readings topic (the lab's).
pub const TOPIC: &str = "m5go/env";

/// Most devices one run simulates.
pub const MAX_DEVICES: usize = 100_000;

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
    /// The broker: mosquitto (default) or a RabbitMQ cluster.
    pub engine: coffre_broker::Engine,
    /// Cluster nodes (RabbitMQ).
    pub nodes: usize,
    /// Queue type of QoS 1 sessions (RabbitMQ).
    pub queue_type: coffre_broker::QueueType,
    /// Nodes to kill during the publishing phase (RabbitMQ).
    pub fault: Option<crate::stage::Fault>,
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
            engine: coffre_broker::Engine::Mosquitto,
            nodes: 3,
            queue_type: coffre_broker::QueueType::Quorum,
            fault: None,
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
        if self.identity == Identity::Factory && self.engine != coffre_broker::Engine::Mosquitto {
            return Err(Error::FactoryOnCluster);
        }
        if let Some(f) = &self.fault {
            let which = f
                .nodes
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",");
            if self.engine != coffre_broker::Engine::RabbitMq {
                return Err(Error::BadFault(
                    which,
                    "a node can be killed on a cluster only (--engine rabbitmq)",
                ));
            }
            if f.nodes.is_empty() || f.nodes.iter().any(|&n| n == 0 || n > self.nodes) {
                return Err(Error::BadFault(
                    which,
                    "nodes are numbered from 1 to --nodes",
                ));
            }
            if f.at >= self.duration {
                return Err(Error::BadFault(
                    which,
                    "--kill-at must fall within the publishing phase (--duration)",
                ));
            }
        }
        Ok(())
    }
}

/// The id of device `i` (from 1): `fleet-00001`.
pub fn device_id(i: usize) -> String {
    format!("fleet-{i:05}")
}

pub use coffre_agent::duration::parse as parse_duration;

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
}
