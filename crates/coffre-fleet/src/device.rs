//! One simulated device: its thread connects, waits for the publishing
//! phase, publishes its readings at its own phase, disconnects, and says
//! how it went.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use coffre_agent::mqtt::{BrokerAddr, Client, ClientOptions, MqttVersion, QoS};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use crate::options::TOPIC;
use crate::stage::failover::Outage;
use crate::stage::provision::Device;

/// The payload of a fleet reading.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FleetReading {
    pub device: String,
    pub seq: u64,
    /// Microseconds since the simulator's clock origin, at publish time.
    pub sent_us: u64,
    pub temperature_c: f64,
    pub humidity_pct: f64,
    pub pressure_hpa: f64,
}

/// What a device thread reports.
#[derive(Debug, Default)]
pub(crate) struct DeviceResult {
    pub connect: Option<Duration>,
    pub connected_at: Option<Instant>,
    pub connect_error: Option<String>,
    pub published: u64,
    pub publish_failures: u64,
    pub publish_error: Option<String>,
    /// Connections lost and regained (cluster failover only).
    pub outages: Vec<Outage>,
    /// Reconnections (cluster failover only).
    pub reconnects: u64,
}

/// The shared "start publishing" signal.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    start: Mutex<Option<Instant>>,
    cv: Condvar,
}

impl Gate {
    pub fn open(&self, at: Instant) {
        *self.start.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
        self.cv.notify_all();
    }

    /// The start time once the gate is open, or `None` after `limit`.
    pub fn wait_timeout(&self, limit: Duration) -> Option<Instant> {
        let g = self.start.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .cv
            .wait_timeout_while(g, limit, |s| s.is_none())
            .unwrap_or_else(|e| e.into_inner());
        *g
    }

    /// Wait for the gate with `client` connected, keeping its session
    /// alive: a long ramp (a large fleet, a busy machine) must not leave
    /// the first devices silent past the broker's keep-alive limit
    /// (1.5 × keep alive), or the broker drops them.
    pub fn wait_connected(&self, client: &mut Client) -> coffre_agent::Result<Instant> {
        loop {
            if let Some(t) = self.wait_timeout(Duration::from_secs(10)) {
                return Ok(t);
            }
            // Sends PINGREQ once the session has been idle 3/4 of its
            // keep alive; reads what has arrived (the PINGRESP).
            client.poll(Duration::from_millis(5))?;
        }
    }
}

/// MQTT options of a fleet client (devices and subscriber).
pub(crate) fn client_options(
    broker: SocketAddr,
    id: &str,
    interval: Duration,
    version: MqttVersion,
) -> ClientOptions {
    let mut o = ClientOptions::new(BrokerAddr::from(broker), id);
    o.version = version;
    o.keep_alive = (interval * 3).max(Duration::from_secs(60));
    o.connect_timeout = Duration::from_secs(60);
    o.timeout = Duration::from_secs(30);
    o
}

/// What every device thread shares.
#[derive(Debug)]
pub(crate) struct DeviceCtx {
    /// The broker's listeners: one, or one per cluster node (a device
    /// starts on node `index % len`).
    pub brokers: Vec<SocketAddr>,
    /// MQTT version (3.1.1 for RabbitMQ).
    pub version: MqttVersion,
    /// Reconnect to another node when the connection is lost, and resend
    /// the reading not acknowledged (clusters).
    pub failover: bool,
    /// Source addresses, device `index % len` on each (empty: the
    /// system's choice).
    pub sources: Vec<std::net::IpAddr>,
    pub interval: Duration,
    pub duration: Duration,
    pub origin: Instant,
    pub gate: Arc<Gate>,
    pub connected: Arc<AtomicUsize>,
    pub failed: Arc<AtomicUsize>,
}

impl DeviceCtx {
    /// The source address of device `index`.
    pub fn source(&self, index: usize) -> Option<std::net::IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[index % self.sources.len()])
    }
}

/// Where a device connects, and where it goes when it loses its broker:
/// nowhere on one broker; the next node, with backoff, on a cluster
/// (`DeviceCtx::failover`).
struct Uplink<'a> {
    d: &'a Device,
    ctx: &'a DeviceCtx,
    /// The node in use (its index in `ctx.brokers`).
    node: usize,
}

/// How long a device keeps trying to get a reading acknowledged after the
/// publishing phase has ended (clusters).
const GRACE: Duration = Duration::from_secs(30);

impl Uplink<'_> {
    /// The first connection: to the device's node (index modulo the
    /// nodes), then the next ones within 60 s on a cluster; one attempt on
    /// a single broker.
    fn connect(&mut self) -> Result<Client, String> {
        let (d, ctx) = (self.d, self.ctx);
        if ctx.failover {
            let until = Instant::now() + Duration::from_secs(60);
            return crate::stage::failover::connect_any(d, ctx, &mut self.node, until)
                .map(|(c, _)| c);
        }
        let mut opts = client_options(ctx.brokers[0], d.id(), ctx.interval, ctx.version);
        opts.bind = ctx.source(d.index());
        Client::connect(&opts, d.tls()).map_err(|e| format!("{}: {e}", d.id()))
    }

    /// After a lost connection: the next node until `until` (a cluster),
    /// or `None` (one broker: nowhere else to go).
    fn reconnect(&mut self, until: Instant) -> Option<Result<Client, String>> {
        if !self.ctx.failover {
            return None;
        }
        self.node = (self.node + 1) % self.ctx.brokers.len();
        let r = crate::stage::failover::connect_any(self.d, self.ctx, &mut self.node, until);
        Some(r.map(|(c, _)| c))
    }

    /// `client` lost its connection (`e`): take a new one into `client`
    /// and count it, or record why the device stops. False: it stops.
    fn recover(
        &mut self,
        client: &mut Client,
        r: &mut DeviceResult,
        e: String,
        until: Instant,
    ) -> bool {
        let lost = Instant::now();
        match self.reconnect(until) {
            None => {
                r.publish_error.get_or_insert(e);
                false
            }
            Some(Ok(c)) => {
                *client = c;
                r.reconnects += 1;
                r.outages.push(Outage {
                    lost,
                    back: Some(Instant::now()),
                });
                true
            }
            Some(Err(last)) => {
                r.outages.push(Outage { lost, back: None });
                r.publish_error.get_or_insert_with(|| {
                    format!("{e}; could not reconnect before the end of the run: {last}")
                });
                false
            }
        }
    }
}

/// The body of a device thread: connect, wait for the publishing phase
/// with the session kept alive, publish one reading per interval at the
/// device's own phase, disconnect. On a cluster a lost connection moves
/// the device to the next node, and the reading not acknowledged is sent
/// again (at least once); on one broker the device stops there.
pub(crate) fn device_main(d: Device, ctx: &DeviceCtx) -> DeviceResult {
    let mut r = DeviceResult::default();
    let mut up = Uplink {
        d: &d,
        ctx,
        node: d.index() % ctx.brokers.len(),
    };
    let t = Instant::now();
    let mut client = match up.connect() {
        Ok(c) => c,
        Err(e) => {
            r.connect_error = Some(e);
            ctx.failed.fetch_add(1, Ordering::Relaxed);
            return r;
        }
    };
    r.connect = Some(t.elapsed());
    r.connected_at = Some(Instant::now());
    ctx.connected.fetch_add(1, Ordering::Relaxed);
    let start = loop {
        let e = match ctx.gate.wait_connected(&mut client) {
            Ok(t) => break t,
            Err(e) => e,
        };
        let why = match up.reconnect(Instant::now() + Duration::from_secs(60)) {
            Some(Ok(c)) => {
                client = c;
                r.reconnects += 1;
                continue;
            }
            Some(Err(last)) => format!("{e}; could not reconnect: {last}"),
            None => e.to_string(),
        };
        r.publish_failures += 1;
        r.publish_error = Some(format!(
            "{}: lost its connection while waiting for the publishing phase: {why}",
            d.id()
        ));
        return r;
    };
    let phase = ctx
        .interval
        .mul_f64(f64::from(OsRng.next_u32()) / f64::from(u32::MAX));
    let end = start + ctx.duration;
    let mut seq = 0u64;
    'readings: loop {
        let due = start + phase + ctx.interval * seq as u32;
        if due >= end {
            break;
        }
        // Wait for the next reading while watching the connection: a
        // lost broker is seen at once, not at the next publish.
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            if let Err(e) = client.poll(due - now) {
                if !up.recover(&mut client, &mut r, format!("{}: {e}", d.id()), end) {
                    r.publish_failures += 1;
                    return r;
                }
            }
        }
        seq += 1;
        let reading = FleetReading {
            device: d.id().to_owned(),
            seq,
            sent_us: ctx.origin.elapsed().as_micros() as u64,
            temperature_c: 21.5 + (d.index() % 50) as f64 / 10.0,
            humidity_pct: 45.0,
            pressure_hpa: 1013.25,
        };
        let payload = serde_json::to_vec(&reading).unwrap_or_default();
        // At least once: the same reading until it is acknowledged (MQTT
        // 3.1.1 has no reason code: a refusal closes the connection).
        loop {
            match client.publish(TOPIC, &payload, QoS::AtLeastOnce, false) {
                Ok(o) if o.reason.0 == 0 => {
                    r.published += 1;
                    break;
                }
                Ok(o) => {
                    r.publish_failures += 1;
                    r.publish_error.get_or_insert_with(|| {
                        format!("{}: PUBACK reason 0x{:02X}", d.id(), o.reason.0)
                    });
                    // The seq was used but not accepted: stop, so the
                    // subscriber's accounting stays exact.
                    break 'readings;
                }
                Err(e) => {
                    let e = format!("{}: {e}", d.id());
                    if !up.recover(&mut client, &mut r, e, end + GRACE) {
                        r.publish_failures += 1;
                        return r;
                    }
                }
            }
        }
    }
    let _ = client.disconnect();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_says_when_it_opened_or_that_it_is_still_shut() {
        let g = Gate::default();
        assert_eq!(g.wait_timeout(Duration::from_millis(10)), None);
        let t = Instant::now();
        g.open(t);
        assert_eq!(g.wait_timeout(Duration::from_secs(60)), Some(t));
    }
}
