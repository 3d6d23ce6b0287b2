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
//! - [`config`]: the settings file the firmware build embeds
//!   ([`Settings`], written by `coffre firmware config`).
//! - [`time`]: SNTP and the wall clock the broker certificate's dates are
//!   checked against.
//! - [`plan`]: when to measure, publish and reconnect ([`Plan`], sans-IO).
//! - [`Timer`]: every wait has a time limit. The handshake must finish
//!   within the session's response timeout; a read waits at most until the
//!   session's next deadline ([`Session::poll_timeout`](coffre_mqtt::Session::poll_timeout):
//!   CONNACK, PUBACK, keep alive), raced against the timer with [`within`],
//!   which needs no particular executor. The MCU passes its timer
//!   (embassy-time), the host `host::TokioTimer` (feature `tokio`).
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "tokio", test))]
extern crate std;

pub mod config;
mod crypto;
mod driver;
#[cfg(feature = "tokio")]
pub mod host;
pub mod plan;
pub mod time;
mod timer;

pub use config::{ConfigError, Settings};
pub use crypto::{DeviceCrypto, IdentityError, KeySigner, SignFailure, Signatures};
pub use driver::{Firmware, FirmwareError, RECORD_READ_BUF, RECORD_WRITE_BUF};
pub use embedded_tls;
pub use plan::{Plan, Step};
pub use time::{set_unix_time, unix_time, WallClock};
pub use timer::{within, Timer};
