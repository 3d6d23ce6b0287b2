//! The device program and its monitor: [`Publisher`] and [`Subscriber`].
//!
//! Both run a blocking loop on the caller's thread until their work is done
//! or a stop flag is raised, report what happens through an event callback,
//! reconnect with exponential backoff and jitter, and end with a clean
//! DISCONNECT + TLS `close_notify`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand_core::{OsRng, RngCore};
use rustls::ClientConfig;
use time::OffsetDateTime;

use crate::clock::{unix_micros, Clock, SystemClock};
use crate::error::{Error, Result};
use crate::identity::{ChipSigner, KeySource};
use crate::mqtt::{
    BrokerAddr, Client, ClientOptions, ConnectTiming, Message, MqttVersion, QoS, ReasonCode,
};
use crate::queue::DurableQueue;
use crate::reading::{Reading, SensorError, SensorSource};
use crate::reconnect::{connect_reported, Reconnect};
use crate::tls::{self, TlsOptions};

/// The topic of the lab.
pub const DEFAULT_TOPIC: &str = "m5go/env";

/// Longest sleep between two checks of the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(100);

pub use coffre_device::Backoff;

/// [`Backoff::delay`] with a random `unit`.
pub fn delay_random(backoff: &Backoff, attempt: u32) -> Duration {
    backoff.delay(attempt, Backoff::unit_of(OsRng.next_u32()))
}

/// What a publisher or subscriber reports while it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A connection attempt starts.
    Connecting {
        /// The broker.
        broker: String,
        /// 1 for the first attempt after a success (or at start).
        attempt: u32,
    },
    /// The MQTT session is open.
    Connected {
        /// The broker.
        broker: String,
        /// "TLSv1.2" or "TLSv1.3".
        tls_version: String,
        /// The MQTT version.
        mqtt: MqttVersion,
        /// TCP connect → CONNACK.
        elapsed: Duration,
        /// The steps of `elapsed`.
        timing: ConnectTiming,
        /// The broker resumed a stored session.
        session_present: bool,
    },
    /// SUBACK for the subscription.
    Subscribed {
        /// The topic filter.
        topic: String,
        /// Granted QoS (0x00/0x01) or failure reason.
        reason: ReasonCode,
    },
    /// A reading was taken and stored in the queue, waiting to be sent.
    Queued {
        /// Its sequence number.
        seq: u64,
        /// Readings waiting, this one included.
        pending: usize,
    },
    /// A sensor measurement failed and was skipped (the sensor answered).
    SensorSkipped {
        /// What failed.
        error: SensorError,
    },
    /// The broker acknowledged a reading.
    Published {
        /// Its sequence number.
        seq: u64,
        /// PUBACK reason code (0x00 Success, 0x10 No matching subscribers,
        /// 0x87 Not authorized…; always 0x00 for MQTT 3.1.1).
        puback_reason: ReasonCode,
        /// PUBLISH → PUBACK.
        rtt: Duration,
    },
    /// A reading arrived at a subscriber.
    Received(Delivery),
    /// The session ended: `None` after a clean DISCONNECT, else why.
    Disconnected {
        /// The error that ended it.
        error: Option<Error>,
    },
    /// The next connection attempt waits this long.
    Reconnecting {
        /// The delay (backoff with jitter).
        delay: Duration,
        /// How many attempts failed in a row.
        attempt: u32,
    },
}

/// Where the TLS identity comes from: PEM inputs and the key.
pub struct Identity {
    /// CA certificate(s) that issued the broker certificate.
    pub ca_pem: Vec<u8>,
    /// Device certificate, then any intermediates.
    pub cert_chain_pem: Vec<u8>,
    /// The private key: lab (slot 8) or chip.
    pub key: KeySource,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field(
                "cert_chain_pem",
                &format_args!("<{} bytes>", self.cert_chain_pem.len()),
            )
            .field("key", &self.key)
            .finish()
    }
}

/// A TLS configuration, and the chip that signs for it (chip mode).
type TlsAndChip = (Arc<ClientConfig>, Option<Arc<dyn ChipSigner>>);

/// Build the TLS configuration of an [`Identity`], after the preflight
/// check when `preflight` is set. Returns the chip (chip mode) so callers
/// can watch it.
fn build_tls(identity: Identity, tls13: bool, preflight: bool) -> Result<TlsAndChip> {
    if preflight {
        tls::preflight(&identity.cert_chain_pem, &identity.key)?;
    }
    let chip = match &identity.key {
        KeySource::Chip { signer } => Some(signer.clone()),
        KeySource::Lab { .. } => None,
    };
    let config = tls::client_config(
        &identity.ca_pem,
        &identity.cert_chain_pem,
        identity.key,
        &TlsOptions {
            tls13,
            resumption: false,
        },
    )?;
    Ok((config, chip))
}

fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() || topic.contains(['+', '#', '\0']) {
        return Err(Error::InvalidOption(format!(
            "'{topic}' is not a topic name to publish to (empty, or with '+', '#')"
        )));
    }
    Ok(())
}

fn validate_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > 256 {
        return Err(Error::InvalidOption(
            "the device id must be 1 to 256 characters (the certificate CN)".into(),
        ));
    }
    Ok(())
}

/// Settings of a [`Publisher`].
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// The broker.
    pub broker: BrokerAddr,
    /// Name to check the broker certificate against (default: host).
    pub server_name: Option<String>,
    /// Device id: MQTT client id, and the CN of its certificate.
    pub device_id: String,
    /// Topic. Default `m5go/env`.
    pub topic: String,
    /// Time between readings. Default 2 s.
    pub interval: Duration,
    /// Stop after this many new readings are taken and acknowledged;
    /// `None`: run until stopped.
    pub count: Option<u64>,
    /// QoS. Default 1 (at least once, acknowledged, queued until then).
    pub qos: QoS,
    /// MQTT version. Default 5.
    pub mqtt_version: MqttVersion,
    /// TLS 1.3 instead of TLS 1.2.
    pub tls13: bool,
    /// Check before connecting that the certificate matches the key.
    /// Default true.
    pub preflight: bool,
    /// Durable queue directory; `None`: in memory (readings and sequence
    /// numbers do not survive a restart).
    pub queue_dir: Option<PathBuf>,
    /// MQTT keep alive. Default 30 s.
    pub keep_alive: Duration,
    /// Budget for TCP + TLS + CONNACK. Default 10 s.
    pub connect_timeout: Duration,
    /// Wait for a PUBACK. Default 10 s.
    pub timeout: Duration,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// `TCP_QUICKACK` on Linux. Default true.
    pub quickack: bool,
    /// In chip mode, check that the chip answers before each reading, so a
    /// chip removed while connected stops the publisher at once. Default
    /// true.
    pub check_chip: bool,
}

impl PublisherOptions {
    /// Options with the defaults above.
    pub fn new(broker: BrokerAddr, device_id: impl Into<String>) -> Self {
        PublisherOptions {
            broker,
            server_name: None,
            device_id: device_id.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            interval: Duration::from_secs(2),
            count: None,
            qos: QoS::AtLeastOnce,
            mqtt_version: MqttVersion::V5,
            tls13: false,
            preflight: true,
            queue_dir: None,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            quickack: true,
            check_chip: true,
        }
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            server_name: self.server_name.clone(),
            version: self.mqtt_version,
            keep_alive: self.keep_alive,
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            quickack: self.quickack,
            ..ClientOptions::new(self.broker.clone(), self.device_id.clone())
        }
    }
}

/// What a publisher run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherSummary {
    /// Readings taken in this run.
    pub taken: u64,
    /// Readings acknowledged by the broker in this run (queued ones from
    /// an earlier run included).
    pub published: u64,
    /// Readings still waiting in the queue.
    pub pending: usize,
    /// Sessions opened.
    pub connections: u32,
}

/// The device program: take readings, queue them durably, publish them,
/// survive broker outages.
pub struct Publisher<S> {
    opts: PublisherOptions,
    tls: Arc<ClientConfig>,
    sensors: S,
    queue: DurableQueue,
    chip: Option<Arc<dyn ChipSigner>>,
    clock: Arc<dyn Clock>,
}

impl<S> std::fmt::Debug for Publisher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("opts", &self.opts)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl<S: SensorSource> Publisher<S> {
    /// A publisher for `identity`: runs the preflight check (unless
    /// disabled), builds the TLS configuration (a lab key is zeroized once
    /// rustls holds it) and opens the queue. Nothing touches the network.
    pub fn new(opts: PublisherOptions, identity: Identity, sensors: S) -> Result<Self> {
        let (tls, chip) = build_tls(identity, opts.tls13, opts.preflight)?;
        let mut p = Self::with_tls_config(opts, tls, sensors)?;
        p.chip = chip;
        Ok(p)
    }

    /// A publisher with a ready TLS configuration (`tls13` and `preflight`
    /// of the options are then the caller's business).
    pub fn with_tls_config(
        opts: PublisherOptions,
        tls: Arc<ClientConfig>,
        sensors: S,
    ) -> Result<Self> {
        validate_id(&opts.device_id)?;
        validate_topic(&opts.topic)?;
        if opts.qos == QoS::ExactlyOnce {
            return Err(Error::InvalidOption(
                "QoS 2 is not supported; use QoS 1".into(),
            ));
        }
        let queue = match &opts.queue_dir {
            Some(dir) => DurableQueue::open(dir)?,
            None => DurableQueue::in_memory(),
        };
        Ok(Publisher {
            opts,
            tls,
            sensors,
            queue,
            chip: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// Take the time (reading interval, backoff, timestamps) from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Watch this chip: before each reading it must answer (see
    /// [`PublisherOptions::check_chip`]). Set automatically in chip mode.
    pub fn monitor_chip(&mut self, chip: Arc<dyn ChipSigner>) {
        self.chip = Some(chip);
    }

    /// The queue of readings waiting for a PUBACK.
    pub fn queue(&self) -> &DurableQueue {
        &self.queue
    }

    /// The options.
    pub fn options(&self) -> &PublisherOptions {
        &self.opts
    }

    fn take_reading(&mut self) -> Result<u64> {
        if self.opts.check_chip {
            if let Some(chip) = &self.chip {
                chip.check_present()?;
            }
        }
        let m = match self.sensors.measure() {
            Ok(m) => m,
            Err(SensorError::Absent { device, detail }) => {
                return Err(Error::ChipGone {
                    what: device,
                    detail,
                })
            }
            Err(e) => return Err(Error::Sensor(e.to_string())),
        };
        let seq = self.queue.next_seq();
        let now = unix_micros(self.clock.wall());
        let reading = Reading::at_unix_micros(&self.opts.device_id, seq, now, &m);
        self.queue.push(seq, reading.to_json())?;
        Ok(seq)
    }

    /// Run until `count` readings are taken and acknowledged, `stop` is
    /// raised, or an error that retrying cannot fix (chip gone, identity
    /// refused by the broker, queue not writable).
    ///
    /// Readings are taken every `interval` whether or not the broker is
    /// reachable; they wait in the queue and go out in order when a session
    /// is open. Connection losses are retried with [`Backoff`]. The end is
    /// always a clean DISCONNECT + `close_notify` when a session is open.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_event: impl FnMut(&Event),
    ) -> Result<PublisherSummary> {
        let on_event: &mut dyn FnMut(&Event) = &mut on_event;
        let clock = self.clock.clone();
        let copts = self.opts.client_options();
        let mut link = Reconnect::new(self.opts.broker.to_string(), self.opts.backoff, &*clock);
        let mut summary = PublisherSummary::default();
        let mut next_reading = clock.now();

        let outcome: Result<()> = loop {
            if stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            let wants_readings = !matches!(self.opts.count, Some(c) if summary.taken >= c);

            // 1. A reading, when one is due.
            if wants_readings && clock.now() >= next_reading {
                match self.take_reading() {
                    Ok(seq) => {
                        summary.taken += 1;
                        on_event(&Event::Queued {
                            seq,
                            pending: self.queue.len(),
                        });
                    }
                    Err(Error::Sensor(msg)) => on_event(&Event::SensorSkipped {
                        error: SensorError::Failed(msg),
                    }),
                    Err(e) => break Err(e),
                }
                next_reading += self.opts.interval;
                let now = clock.now();
                if next_reading < now {
                    next_reading = now + self.opts.interval;
                }
                continue;
            }
            if !wants_readings && self.queue.is_empty() {
                break Ok(());
            }

            // 2. A session, when none is open and the backoff allows; the
            //    oldest reading waiting rides with the CONNECT.
            let (tls, c) = (&self.tls, &clock);
            let front = self.queue.front().cloned();
            let first = front.as_ref().map(|r| {
                (
                    self.opts.topic.as_str(),
                    r.payload.as_bytes(),
                    self.opts.qos,
                )
            });
            if let Err(e) = link.ensure(on_event, |ev| connect_reported(&copts, tls, c, first, ev))
            {
                break Err(e);
            }

            // 3. Send what waits, oldest first, one PUBACK at a time.
            let due = wants_readings.then_some(next_reading);
            if let Err(e) = self.send_pending(&mut link, stop, due, &mut summary, on_event) {
                break Err(e);
            }

            // Everything asked for is taken and acknowledged: end now rather
            // than after one more wait.
            if !wants_readings && self.queue.is_empty() {
                continue;
            }

            // 4. Wait for the next thing to do, serving the session.
            let mut wake = clock.now() + STOP_CHECK;
            if wants_readings {
                wake = wake.min(next_reading);
            }
            match link.next_attempt() {
                Some(t) => wake = wake.min(t),
                None if !self.queue.is_empty() => continue,
                None => {}
            }
            let wait = wake.saturating_duration_since(clock.now());
            let polled = match link.client() {
                Some(c) => c.poll(wait),
                None => {
                    clock.sleep(wait);
                    Ok(None)
                }
            };
            match polled {
                Ok(Some(m)) => {
                    tracing::debug!(topic = %m.topic, "message ignored by the publisher")
                }
                Ok(None) => {}
                Err(e) => {
                    if let Err(e) = link.lost(e, on_event) {
                        break Err(e);
                    }
                }
            }
        };

        link.close(on_event);
        summary.connections = link.connections;
        summary.pending = self.queue.len();
        outcome.map(|()| summary)
    }

    /// Publish queued readings over the open session until the queue is
    /// empty, `stop` is raised, or a reading is `due`. A lost session is
    /// handed to the reconnect loop; a queue that cannot record a PUBACK
    /// is an error.
    fn send_pending(
        &mut self,
        link: &mut Reconnect<'_>,
        stop: &AtomicBool,
        due: Option<std::time::Instant>,
        summary: &mut PublisherSummary,
        on_event: &mut dyn FnMut(&Event),
    ) -> Result<()> {
        while let Some(r) = self.queue.front().cloned() {
            let Some(c) = link.client() else {
                return Ok(());
            };
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            match c.publish(&self.opts.topic, r.payload.as_bytes(), self.opts.qos, false) {
                Ok(out) => {
                    self.queue.ack(r.seq)?;
                    summary.published += 1;
                    if !out.reason.is_success() {
                        tracing::warn!(seq = r.seq, reason = %out.reason, "the broker refused a reading");
                    }
                    on_event(&Event::Published {
                        seq: r.seq,
                        puback_reason: out.reason,
                        rtt: out.rtt,
                    });
                }
                Err(e) => return link.lost(e, on_event),
            }
            if due.is_some_and(|t| self.clock.now() >= t) {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Settings of a [`Subscriber`].
#[derive(Debug, Clone)]
pub struct SubscriberOptions {
    /// The broker.
    pub broker: BrokerAddr,
    /// Name to check the broker certificate against (default: host).
    pub server_name: Option<String>,
    /// Client id: the CN of the subscriber's certificate.
    pub client_id: String,
    /// Topic filter. Default `m5go/env`.
    pub topic: String,
    /// Maximum QoS asked for. Default 1.
    pub qos: QoS,
    /// MQTT version. Default 5.
    pub mqtt_version: MqttVersion,
    /// TLS 1.3 instead of TLS 1.2.
    pub tls13: bool,
    /// Check the certificate against the key first. Default true.
    pub preflight: bool,
    /// Ask the broker to keep the session (subscription and QoS 1
    /// messages) for `session_expiry` seconds across disconnections and
    /// broker restarts (with persistence): nothing is lost while the
    /// subscriber is away. Default false (clean start).
    pub persistent_session: bool,
    /// Session expiry for a persistent session, seconds. Default 3600.
    pub session_expiry: u32,
    /// MQTT keep alive. Default 30 s.
    pub keep_alive: Duration,
    /// Budget for TCP + TLS + CONNACK. Default 10 s.
    pub connect_timeout: Duration,
    /// Wait for SUBACK / PINGRESP. Default 10 s.
    pub timeout: Duration,
    /// Reconnection delays.
    pub backoff: Backoff,
    /// `TCP_QUICKACK` on Linux. Default true.
    pub quickack: bool,
    /// Stop after this many messages; `None`: run until stopped.
    pub max_messages: Option<u64>,
}

impl SubscriberOptions {
    /// Options with the defaults above.
    pub fn new(broker: BrokerAddr, client_id: impl Into<String>) -> Self {
        SubscriberOptions {
            broker,
            server_name: None,
            client_id: client_id.into(),
            topic: DEFAULT_TOPIC.to_owned(),
            qos: QoS::AtLeastOnce,
            mqtt_version: MqttVersion::V5,
            tls13: false,
            preflight: true,
            persistent_session: false,
            session_expiry: 3600,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
            quickack: true,
            max_messages: None,
        }
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions {
            server_name: self.server_name.clone(),
            version: self.mqtt_version,
            keep_alive: self.keep_alive,
            clean_start: !self.persistent_session,
            session_expiry: self.persistent_session.then_some(self.session_expiry),
            connect_timeout: self.connect_timeout,
            timeout: self.timeout,
            quickack: self.quickack,
            ..ClientOptions::new(self.broker.clone(), self.client_id.clone())
        }
    }
}

/// How a sequence number relates to what came before from its device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    /// The first reading seen from this device.
    First,
    /// The next number.
    InOrder,
    /// Numbers were skipped: `missing` readings have not arrived (yet).
    Gap {
        /// How many numbers were skipped.
        missing: u64,
    },
    /// A number that was missing arrived late.
    Late,
    /// A number already received (QoS 1 redelivery, or a publisher that
    /// restarted without its queue directory).
    Duplicate,
}

/// Latency figures, from the reading's `ts` to its arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencyStats {
    /// Readings measured.
    pub count: u64,
    /// Smallest.
    pub min: Duration,
    /// Largest.
    pub max: Duration,
    /// Sum (for the mean).
    pub total: Duration,
    /// Most recent.
    pub last: Duration,
}

impl LatencyStats {
    /// Mean latency.
    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            Duration::ZERO
        } else {
            self.total / self.count.min(u32::MAX as u64) as u32
        }
    }

    fn add(&mut self, d: Duration) {
        if self.count == 0 || d < self.min {
            self.min = d;
        }
        if d > self.max {
            self.max = d;
        }
        self.count += 1;
        self.total += d;
        self.last = d;
    }
}

/// What a subscriber saw from one device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublisherStats {
    /// Messages received (duplicates included).
    pub received: u64,
    /// Distinct sequence numbers received.
    pub unique: u64,
    /// Messages whose sequence number had already arrived.
    pub duplicates: u64,
    /// Sequence numbers skipped and still missing.
    pub missing: u64,
    /// Missing numbers that arrived later.
    pub late: u64,
    /// First sequence number seen.
    pub first_seq: u64,
    /// Highest sequence number seen.
    pub last_seq: u64,
    /// `ts` → arrival.
    pub latency: LatencyStats,
    missing_set: BTreeSet<u64>,
}

/// Most missing numbers remembered per device (to tell late from duplicate).
const MISSING_MEMORY: usize = 100_000;

impl PublisherStats {
    fn record(&mut self, seq: u64) -> SeqStatus {
        self.received += 1;
        if self.received == 1 {
            self.first_seq = seq;
            self.last_seq = seq;
            self.unique = 1;
            return SeqStatus::First;
        }
        if seq == self.last_seq + 1 {
            self.last_seq = seq;
            self.unique += 1;
            SeqStatus::InOrder
        } else if seq > self.last_seq {
            let missing = seq - self.last_seq - 1;
            for s in self.last_seq + 1..seq {
                if self.missing_set.len() >= MISSING_MEMORY {
                    break;
                }
                self.missing_set.insert(s);
            }
            self.missing += missing;
            self.last_seq = seq;
            self.unique += 1;
            SeqStatus::Gap { missing }
        } else if self.missing_set.remove(&seq) {
            self.missing = self.missing.saturating_sub(1);
            self.late += 1;
            self.unique += 1;
            SeqStatus::Late
        } else {
            self.duplicates += 1;
            SeqStatus::Duplicate
        }
    }
}

/// What a subscriber saw, per device.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscriberStats {
    /// Messages received.
    pub messages: u64,
    /// Payloads that are not readings.
    pub invalid: u64,
    /// Per device id.
    pub publishers: BTreeMap<String, PublisherStats>,
}

/// One message delivered to a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Topic it came on.
    pub topic: String,
    /// The reading, if the payload is one.
    pub reading: Option<Reading>,
    /// The raw payload.
    pub payload: Vec<u8>,
    /// `ts` → arrival (`None` when the payload is no reading, or the clocks
    /// disagree so that it would be negative).
    pub latency: Option<Duration>,
    /// Sequence check against earlier readings of the same device.
    pub status: Option<SeqStatus>,
    /// The broker's redelivery flag.
    pub dup_flag: bool,
    /// A retained message.
    pub retain: bool,
    /// When it arrived.
    pub received: SystemTime,
}

impl SubscriberStats {
    /// Account for a message; returns the delivery to report.
    pub fn record(&mut self, m: Message) -> Delivery {
        self.messages += 1;
        let reading = Reading::from_json(&m.payload).ok();
        let mut latency = None;
        let mut status = None;
        match &reading {
            Some(r) => {
                let stats = self.publishers.entry(r.device.clone()).or_default();
                status = Some(stats.record(r.seq));
                if let Some(ts) = r.time() {
                    let lat = OffsetDateTime::from(m.received) - ts;
                    if let Ok(d) = Duration::try_from(lat) {
                        stats.latency.add(d);
                        latency = Some(d);
                    }
                }
            }
            None => self.invalid += 1,
        }
        Delivery {
            topic: m.topic,
            reading,
            payload: m.payload,
            latency,
            status,
            dup_flag: m.dup,
            retain: m.retain,
            received: m.received,
        }
    }
}

/// The monitor: subscribe, receive readings, track per-device order, gaps,
/// duplicates and latency; reconnect when the link drops.
pub struct Subscriber {
    opts: SubscriberOptions,
    tls: Arc<ClientConfig>,
    stats: SubscriberStats,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("opts", &self.opts)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Subscriber {
    /// A subscriber for `identity` (preflight, then TLS configuration).
    pub fn new(opts: SubscriberOptions, identity: Identity) -> Result<Self> {
        let (tls, _) = build_tls(identity, opts.tls13, opts.preflight)?;
        Self::with_tls_config(opts, tls)
    }

    /// A subscriber with a ready TLS configuration.
    pub fn with_tls_config(opts: SubscriberOptions, tls: Arc<ClientConfig>) -> Result<Self> {
        validate_id(&opts.client_id)?;
        if opts.topic.is_empty() {
            return Err(Error::InvalidOption("the topic filter is empty".into()));
        }
        if opts.qos == QoS::ExactlyOnce {
            return Err(Error::InvalidOption(
                "QoS 2 is not supported; use QoS 1".into(),
            ));
        }
        Ok(Subscriber {
            opts,
            tls,
            stats: SubscriberStats::default(),
            clock: Arc::new(SystemClock),
        })
    }

    /// Take the time (backoff, arrival times) from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// What was received so far.
    pub fn stats(&self) -> &SubscriberStats {
        &self.stats
    }

    fn open(&self, copts: &ClientOptions, on_event: &mut dyn FnMut(&Event)) -> Result<Client> {
        let mut c = connect_reported(copts, &self.tls, &self.clock, None, on_event)?;
        let reasons = c.subscribe(&[(self.opts.topic.as_str(), self.opts.qos)])?;
        let reason = reasons
            .first()
            .copied()
            .unwrap_or(ReasonCode::UNSPECIFIED_ERROR);
        on_event(&Event::Subscribed {
            topic: self.opts.topic.clone(),
            reason,
        });
        if !reason.is_success() {
            let _ = c.disconnect();
            return Err(Error::SubscribeRefused {
                topic: self.opts.topic.clone(),
                reason,
            });
        }
        Ok(c)
    }

    /// Run until `stop` is raised, `max_messages` have arrived, or an
    /// error retrying cannot fix. Each message is reported as
    /// [`Event::Received`].
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        mut on_event: impl FnMut(&Event),
    ) -> Result<SubscriberStats> {
        let on_event: &mut dyn FnMut(&Event) = &mut on_event;
        let clock = self.clock.clone();
        let copts = self.opts.client_options();
        let mut link = Reconnect::new(self.opts.broker.to_string(), self.opts.backoff, &*clock);
        let outcome: Result<()> = loop {
            if stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            if self
                .opts
                .max_messages
                .is_some_and(|m| self.stats.messages >= m)
            {
                break Ok(());
            }
            if let Err(e) = link.ensure(on_event, |ev| self.open(&copts, ev)) {
                break Err(e);
            }
            let polled = match link.client() {
                Some(c) => c.poll(STOP_CHECK),
                None => {
                    let next = link.next_attempt().unwrap_or_else(|| clock.now());
                    clock.sleep(next.saturating_duration_since(clock.now()).min(STOP_CHECK));
                    Ok(None)
                }
            };
            match polled {
                Ok(Some(m)) => {
                    let d = self.stats.record(m);
                    on_event(&Event::Received(d));
                }
                Ok(None) => {}
                Err(e) => {
                    if let Err(e) = link.lost(e, on_event) {
                        break Err(e);
                    }
                }
            }
        };
        link.close(on_event);
        outcome.map(|()| self.stats.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_delays_stay_within_the_jitter() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.5,
        };
        for a in 0..10 {
            let d = delay_random(&b, a);
            assert!(
                d <= Duration::from_secs(1) && d >= Duration::from_millis(50),
                "{d:?}"
            );
        }
    }

    #[test]
    fn sequence_tracking() {
        let mut s = PublisherStats::default();
        assert_eq!(s.record(5), SeqStatus::First);
        assert_eq!(s.record(6), SeqStatus::InOrder);
        assert_eq!(s.record(9), SeqStatus::Gap { missing: 2 });
        assert_eq!(s.missing, 2);
        assert_eq!(s.record(7), SeqStatus::Late);
        assert_eq!(s.record(7), SeqStatus::Duplicate);
        assert_eq!(s.record(9), SeqStatus::Duplicate);
        assert_eq!(s.record(8), SeqStatus::Late);
        assert_eq!(s.record(10), SeqStatus::InOrder);
        assert_eq!(
            (
                s.received,
                s.unique,
                s.duplicates,
                s.missing,
                s.late,
                s.last_seq
            ),
            (8, 6, 2, 0, 2, 10)
        );
    }

    #[test]
    fn deliveries_carry_latency_and_status() {
        let mut stats = SubscriberStats::default();
        let t = OffsetDateTime::now_utc();
        let r = Reading::at_unix_micros(
            "dev",
            1,
            unix_micros(SystemTime::from(t)),
            &crate::reading::Measurement {
                temperature_c: 20.0,
                humidity_pct: 40.0,
                pressure_hpa: 1000.0,
            },
        );
        let received = SystemTime::from(t) + Duration::from_millis(3);
        let d = stats.record(Message {
            topic: "m5go/env".into(),
            payload: r.to_json().into_bytes(),
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
            received,
        });
        assert_eq!(d.status, Some(SeqStatus::First));
        let lat = d.latency.unwrap();
        assert!(
            lat >= Duration::from_millis(2) && lat <= Duration::from_millis(4),
            "{lat:?}"
        );
        let d = stats.record(Message {
            topic: "m5go/env".into(),
            payload: b"not json".to_vec(),
            qos: QoS::AtMostOnce,
            retain: false,
            dup: false,
            received,
        });
        assert!(d.reading.is_none() && d.status.is_none());
        assert_eq!((stats.messages, stats.invalid), (2, 1));
    }

    #[test]
    fn topic_and_id_validation() {
        assert!(validate_topic("m5go/env").is_ok());
        assert!(validate_topic("m5go/#").is_err());
        assert!(validate_topic("").is_err());
        assert!(validate_id("").is_err());
    }
}
