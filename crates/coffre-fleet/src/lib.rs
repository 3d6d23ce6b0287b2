//! The coffre fleet simulator: N emulated ATECC608B chips, each with its
//! own serial number, key and certificate, each an independent device
//! connecting over mutual TLS to a real mosquitto and publishing QoS 1
//! readings, all driven from one process. One subscriber, with its own
//! chip and certificate, checks every message: per-device sequence numbers
//! (loss, duplicates) and end-to-end latency from a send timestamp taken on
//! the same process clock.
//!
//! [`run`] builds the whole lab and returns a [`FleetReport`]. It chains
//! the [`stage`]s, each a function with its inputs and outputs:
//! **provision** (PKI, chips provisioned in memory, manifest), **broker**
//! (mosquitto with one ACL entry per device), **ramp** (connections at a
//! given rate), **publish** (readings for a given duration), **collect**
//! (the subscriber's accounting) and **report** (every figure, a pure
//! function).
//!
//! With [`Identity::Factory`] the devices keep the identity their Trust&GO
//! parts ship with: the provision stage becomes
//! [`provision_factory`](stage::provision_factory) — the parts and their
//! signed manifest are made, the manifest is imported (verified, chains
//! registered in one batch; no certificate issued), and each device
//! connects to the broker's factory listener with its factory chain, slot
//! 0 signing. The report adds the [`Onboarding`] figures.
//!
//! The broker stage can instead start a RabbitMQ cluster
//! ([`stage::cluster()`], [`FleetOptions::engine`]): devices spread over its
//! nodes, and a [`stage::Fault`] kills nodes with `kill -9` during the
//! publishing phase and restarts them; devices and the subscriber fail over
//! to the surviving nodes ([`stage::failover`]) and the report says what
//! was lost, duplicated, and how long the fleet took to come back.
//!
//! Each device is one OS thread with a small stack running a blocking
//! [`coffre_agent::mqtt::Client`]. TLS session resumption is off, so every
//! connection is a full mutual-TLS handshake signed by the device's chip.
//!
//! Large fleets need open files: the simulator raises its own
//! `RLIMIT_NOFILE` before starting mosquitto (which inherits it) and sets
//! `max_connections -1` in the broker configuration. Raising beyond the
//! hard limit needs root (`ulimit -Hn`).
//!
//! Errors are [`Error`]; a run that ends with devices that could not
//! connect or readings lost is not an error but a report whose
//! [`FleetReport::ok`] is false.
//!
//! # Example
//!
//! Three devices whose keys are born in their chips, one reading each
//! (mosquitto must be installed):
//!
//! ```
//! use std::time::Duration;
//! use coffre_fleet::{run, FleetMode, FleetOptions};
//!
//! # if coffre_broker::find_mosquitto().is_none() { return Ok(()); }
//! let mut opts = FleetOptions::new(3);
//! opts.mode = FleetMode::Offload;
//! opts.interval = Duration::from_secs(1);
//! opts.duration = Duration::from_secs(1);
//! let report = run(&opts, &mut |_progress| {})?;
//! assert!(report.ok(), "{report:?}");
//! assert_eq!(report.connected, 3);
//! assert_eq!(report.delivery.published, 3);
//! assert_eq!(report.delivery.received, 3);
//! assert_eq!(report.latency_ms.count, 3);
//! # Ok::<(), coffre_fleet::Error>(())
//! ```
//!
//! The first stage alone: a PKI and two provisioned chips, no broker.
//!
//! ```
//! use coffre_fleet::stage::{provision, ProvisionPlan};
//! use coffre_fleet::FleetMode;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let plan = ProvisionPlan { dir: dir.path().into(), devices: 2, mode: FleetMode::Lab };
//! let p = provision(&plan, &mut |_| {})?;
//! assert_eq!(p.devices[1].id(), "fleet-00002");
//! let manifest = std::fs::read_to_string(&p.manifest).unwrap();
//! assert_eq!(manifest.lines().count(), 2);
//! # Ok::<(), coffre_fleet::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod chip;
mod device;
mod error;
mod options;
mod run;
pub mod stage;
pub mod stats;
pub mod util;

pub use error::{Error, Result};
pub use options::{
    device_id, parse_duration, FleetMode, FleetOptions, Identity, Progress, MAX_DEVICES, TOPIC,
};
pub use run::run;
pub use stage::{CpuFigures, FleetReport, MemoryFigures, Onboarding};
