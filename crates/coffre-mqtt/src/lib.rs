//! The MQTT side of a coffre device, sans IO.
//!
//! This crate does **no network IO** and reads **no clock**: the caller
//! moves bytes between a TLS stream and a [`Session`], passes the current
//! time (milliseconds from any fixed origin) to every call, and sleeps
//! until [`Session::poll_timeout`]. The same code runs in the Linux agent
//! (blocking socket + rustls) and on the device's MCU (embedded-io-async +
//! embedded-tls). It needs `alloc` and nothing of `std`.
//!
//! - [`codec`]: MQTT 3.1.1 and 5.0 packets to and from bytes.
//! - [`Session`]: one client session — CONNECT/CONNACK, QoS 1 in flight
//!   with packet identifiers and retransmission (DUP) when a session
//!   resumes, keep alive (PINGREQ/PINGRESP and its timeout), persistent
//!   sessions, SUBSCRIBE/SUBACK, incoming PUBLISH (acknowledged), and
//!   DISCONNECT with a reason code.
//!
//! The codec is our own rather than a crate's: the maintained codecs
//! (`mqttbytes`, `rumqttc`'s) need `std` or `bytes` and skip MQTT 5 reason
//! codes on PUBACK/SUBACK, which the device reports to its user.
//!
//! ```
//! use coffre_mqtt::{Config, Event, MqttVersion, QoS, Session};
//!
//! let mut s = Session::new(Config::new("m5go", MqttVersion::V5));
//! s.connect(0).unwrap();
//! let connect = s.poll_transmit().unwrap(); // write these bytes
//! assert_eq!(connect[0], 0x10);
//! // CONNACK (success, no properties) arrives 12 ms later:
//! s.handle_incoming(12, &[0x20, 3, 0, 0, 0]).unwrap();
//! assert!(matches!(s.poll_event(), Some(Event::Connected { .. })));
//! let id = s.publish(20, "m5go/env", b"{}", QoS::AtLeastOnce, false).unwrap();
//! assert_eq!(id, Some(1));
//! // Nothing to read: sleep until the PUBACK is overdue or a PINGREQ is due.
//! assert_eq!(s.poll_timeout(), Some(20 + 10_000));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod codec;
mod session;

pub use codec::{
    ConnAck, Connect, DecodeError, Disconnect, EncodeError, MqttVersion, Packet, Properties,
    PubAck, Publish, QoS, ReasonCode, SubAck, Subscribe,
};
pub use session::Session;
pub use session::{Config, Error, Event, Inflight, State, Wait};
