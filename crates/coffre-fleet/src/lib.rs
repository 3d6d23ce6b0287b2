//! The coffre fleet simulator: N emulated ATECC608B chips, each with its
//! own serial number, key and certificate, each an independent device
//! connecting over mutual TLS to a real mosquitto and publishing QoS 1
//! readings, all driven from one process. One subscriber, with its own
//! chip and certificate, checks every message: per-device sequence numbers
//! (loss, duplicates) and end-to-end latency from a send timestamp taken on
//! the same process clock.
//!
//! [`run`] builds the whole lab (PKI, chips provisioned in memory, broker
//! with one ACL entry per device), ramps the connections up at a given
//! rate, publishes for a given duration and returns a [`FleetReport`].
//!
//! Each device is one OS thread with a small stack running a blocking
//! [`coffre_agent::mqtt::Client`]. TLS session resumption is off, so every
//! connection is a full mutual-TLS handshake signed by the device's chip.
//!
//! Large fleets need open files: the simulator raises its own
//! `RLIMIT_NOFILE` before starting mosquitto (which inherits it) and sets
//! `max_connections -1` in the broker configuration. Raising beyond the
//! hard limit needs root (`ulimit -Hn`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fleet;
pub mod stats;
pub mod util;

pub use fleet::{
    device_id, parse_duration, run, CpuFigures, FleetMode, FleetOptions, FleetReport,
    MemoryFigures, Progress,
};
