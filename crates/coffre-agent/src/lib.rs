//! The coffre device agent: a device whose TLS identity is held by an
//! ATECC608B publishes its sensor readings over MQTT with mutual TLS.
//!
//! - [`identity`]: the key. [`KeySource::Lab`] is the source lab's key,
//!   read from slot 8 into RAM and zeroized once rustls holds it;
//!   [`KeySource::Chip`] keeps it in the chip, which signs each handshake
//!   through a rustls `SigningKey` ([`identity::ChipSigningKey`]).
//! - [`tls`]: the rustls client configuration (ring provider, TLS 1.2 by
//!   default, 1.3 on request) and the [`tls::preflight`] check that the
//!   certificate carries the key that will sign.
//! - [`mqtt`]: the Linux driver of the device core's MQTT session
//!   ([`coffre_mqtt::Session`]): blocking socket + rustls, clean
//!   DISCONNECT + `close_notify`, `TCP_NODELAY` and `TCP_QUICKACK`.
//! - [`reading`]: readings of the ENV II unit (SHT30 + BMP280) and their
//!   JSON form — the device core's types ([`coffre_device::reading`]).
//! - [`boot`]: the five boot steps (run by the device core).
//! - [`clock`]: the injected time ([`clock::Clock`]).
//! - [`queue`]: the durable queue that keeps readings until the broker
//!   acknowledges them, across outages and restarts.
//! - [`agent`]: [`Publisher`] and [`Subscriber`], with reconnection and
//!   events.
//! - [`mod@bench`]: [`bench::one_shot`], one timed connect + publish +
//!   disconnect.
//! - [`stats`]: the percentiles every measurement of coffre uses (the
//!   fleet simulator and `coffre bench`).
//!
//! The crate prints nothing: it reports through return values, event
//! callbacks and `tracing`. It never logs key bytes.
//!
//! # Example
//!
//! Chip mode on an emulated Trust&GO board: the certificate must carry the
//! chip's public key, which the preflight check confirms before any
//! network traffic.
//!
//! ```
//! use coffre_agent::identity::{ChipSigner, DriverSigner, KeySource};
//! use coffre_driver::Atecc;
//! use coffre_emu::{board::Board, clock::Timing, presets::Preset};
//!
//! let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
//! let chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
//! let signer = DriverSigner::new(chip, 0);
//! let public_key = signer.public_key()?; // X ‖ Y of the slot-0 key
//! let key = KeySource::chip(signer);
//! assert_eq!(key.mode(), "offload");
//! assert_eq!(key.public_key_spki()?.len(), 91);
//! # let _ = public_key;
//! # Ok::<(), coffre_agent::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod bench;
pub mod boot;
pub mod clock;
pub mod duration;
mod error;
pub mod identity;
pub mod mqtt;
pub mod queue;
mod reconnect;
pub mod stats;
pub mod tls;

/// Readings: the device core's one [`Reading`] type, and the sensors.
pub mod reading {
    pub use coffre_device::reading::*;
}

pub use agent::{
    Backoff, Delivery, Event, Identity, Publisher, PublisherOptions, PublisherSummary, SeqStatus,
    Subscriber, SubscriberOptions, SubscriberStats,
};
pub use bench::{one_shot, OneShotOptions, Timing};
pub use error::{Error, Result};
pub use identity::{ChipError, ChipSigner, DriverSigner, KeySource};
pub use mqtt::{BrokerAddr, MqttVersion, QoS, ReasonCode};
pub use reading::{EnvSensors, Measurement, Reading, SensorError, SensorSource};
pub use tls::{client_config, preflight, TlsOptions};
