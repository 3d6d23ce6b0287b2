//! One connect + publish + disconnect, timed: what `mosquitto_pub` does,
//! for comparing whole-process costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use crate::error::Result;
use crate::mqtt::{Client, ClientOptions, ConnectTiming, QoS, ReasonCode};
use crate::tls;

/// What [`one_shot`] does.
#[derive(Debug, Clone)]
pub struct OneShotOptions {
    /// The connection (broker, client id, MQTT version, quick ACK…).
    pub client: ClientOptions,
    /// The device's TLS configuration.
    pub tls: Arc<ClientConfig>,
    /// Topic to publish on.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS (1: wait for the PUBACK).
    pub qos: QoS,
}

/// How long each step of [`one_shot`] took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// TCP, TLS and CONNACK.
    pub connect: ConnectTiming,
    /// PUBLISH → PUBACK (zero for QoS 0).
    pub publish: Duration,
    /// DISCONNECT, close_notify, TCP half-close.
    pub disconnect: Duration,
    /// Everything, from the first syscall to the closed socket.
    pub total: Duration,
    /// "TLSv1.2" or "TLSv1.3".
    pub tls_version: String,
    /// The PUBACK reason code.
    pub puback_reason: ReasonCode,
}

/// Connect, publish one message, disconnect cleanly; time each step.
pub fn one_shot(opts: &OneShotOptions) -> Result<Timing> {
    let t0 = Instant::now();
    let mut c = Client::connect(&opts.client, opts.tls.clone())?;
    let connect = c.session().timing;
    let tls_version = tls::version_name(c.session().tls_version);
    let t1 = Instant::now();
    let out = c.publish(&opts.topic, &opts.payload, opts.qos, false)?;
    let publish = t1.elapsed();
    let t2 = Instant::now();
    c.disconnect()?;
    let disconnect = t2.elapsed();
    Ok(Timing {
        connect,
        publish,
        disconnect,
        total: t0.elapsed(),
        tls_version,
        puback_reason: out.reason,
    })
}
