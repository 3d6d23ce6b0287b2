//! A small blocking MQTT client over rustls: the Linux driver of the
//! device core.
//!
//! The session itself (packets, packet ids, keep alive, timeouts) is the
//! sans-IO [`coffre_mqtt::Session`], run by [`coffre_device::Connection`];
//! the codec is [`coffre_mqtt::codec`]. Here: `net` moves bytes
//! (socket + rustls, no MQTT), [`Client`] opens both and words the errors.
//! Two things a general-purpose client does not give:
//!
//! - a clean end: DISCONNECT, then TLS `close_notify`, then a TCP
//!   half-close, so the broker logs a clean disconnection;
//! - control of the socket: `TCP_NODELAY` always, and on Linux
//!   `TCP_QUICKACK` re-armed after every read, so a broker that holds a
//!   small segment back (Nagle) until it is acknowledged never waits for
//!   the client's delayed ACK. Over TLS 1.3 that is the CONNACK that
//!   follows the session tickets: about 40 ms without quick ACK.

mod addr;
mod client;
mod net;

pub use addr::BrokerAddr;
pub use client::{Client, ClientOptions, ConnectTiming, Message, PublishOutcome, Session};
pub use codec::{MqttVersion, QoS, ReasonCode};
pub use coffre_mqtt::codec;
