//! A small blocking MQTT client over rustls.
//!
//! [`codec`] encodes and decodes the packets (no IO); [`Client`] runs one
//! session over a [`rustls::StreamOwned`] on a TCP socket. The client is
//! deliberately small: one session, QoS 0/1, one outstanding QoS 1 PUBLISH
//! at a time. Two things a general-purpose client does not give:
//!
//! - a clean end: DISCONNECT, then TLS `close_notify`, then a TCP
//!   half-close, so the broker logs a clean disconnection;
//! - control of the socket: `TCP_NODELAY` always, and on Linux
//!   `TCP_QUICKACK` re-armed after every read, so a broker that holds a
//!   small segment back (Nagle) until it is acknowledged never waits for
//!   the client's delayed ACK. Over TLS 1.3 that is the CONNACK that
//!   follows the session tickets: about 40 ms without quick ACK.

mod client;
mod net;

pub use coffre_mqtt::codec;

pub use client::{
    BrokerAddr, Client, ClientOptions, ConnectTiming, Message, PublishOutcome, Session,
};
pub use codec::{MqttVersion, QoS, ReasonCode};
