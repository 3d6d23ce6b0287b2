//! The device core on the MCU: the sans-IO MQTT session
//! ([`coffre_mqtt::Session`]) over any `embedded-io-async` socket under
//! embedded-tls (TLS 1.3, mutual authentication, no allocator in TLS).
//!
//! This is the code the firmware links. On the host, the same code runs in
//! the tests and in the demo scenario `firmware-core` over tokio's TCP
//! (through `embedded-io-adapters`) against a real mosquitto, with an
//! emulated chip.
//!
//! - [`DeviceCrypto`]: embedded-tls's `CryptoProvider`: the broker's
//!   certificate checked against the CA (embedded-tls's `CertVerifier`),
//!   the device certificate sent, and the TLS 1.3 CertificateVerify
//!   signed by [`KeySigner`]: the chip (offload, through coffre-driver's
//!   Sign) or the lab key from slot 8 (zeroized when dropped).
//! - [`Firmware`]: CONNECT/CONNACK, QoS 1 publish with PUBACK,
//!   DISCONNECT + `close_notify`, all decided by the session.
//!
//! - [`config`]: the settings file the firmware build embeds
//!   ([`Settings`], written by `coffre firmware config`).
//! - [`time`]: SNTP and the wall clock the broker certificate's dates are
//!   checked against.
//! - [`plan`]: when to measure, publish and reconnect ([`Plan`], sans-IO).
//!
//! Reads wait until the broker sends something (the session's keep alive
//! and timeouts are checked at each step); the firmware puts a time limit
//! around each call (`embassy_time::with_timeout`) and drops the
//! connection when it runs out.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub mod config;
mod crypto;
mod driver;
pub mod plan;
pub mod time;

pub use config::{ConfigError, Settings};
pub use crypto::{DeviceCrypto, IdentityError, KeySigner, SignFailure, Signatures};
pub use driver::{Firmware, FirmwareError, RECORD_READ_BUF, RECORD_WRITE_BUF};
pub use embedded_tls;
pub use plan::{Plan, Step};
pub use time::{set_unix_time, unix_time, WallClock};
