//! Stage 5, collect: one subscriber, with its own chip and certificate,
//! receives every reading and accounts for it per device (loss,
//! duplicates) and in time (end-to-end latency on the process clock).
//!
//! It is started with [`listen`] before the ramp and finished with
//! [`collect`] once the devices are done.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coffre_agent::mqtt::{Client, QoS};

use crate::device::{client_options, FleetReading};
use crate::error::{Error, Result};
use crate::options::TOPIC;
use crate::stage::broker::Broker;
use crate::stage::failover::{Resubscribe, SubscriberFaults};
use crate::stage::provision::Device;
use crate::stage::publish::Published;
use crate::stats::{Delivery, SeqTracker};

/// The subscriber, connected and subscribed, receiving on its own thread.
#[derive(Debug)]
pub struct Listener {
    handle: JoinHandle<SubResult>,
    stop: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    log: PathBuf,
    cluster: bool,
}

/// What the collect stage produces.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Loss and duplicate accounting against what the devices published.
    pub delivery: Delivery,
    /// End-to-end latency of every reading received, ms.
    pub latency_ms: Vec<f64>,
    /// Reconnections, redeliveries and the longest silence (what a
    /// cluster's failover looks like from the subscriber).
    pub(crate) faults: SubscriberFaults,
    /// On a cluster: why the subscriber stopped before the end (it could
    /// reach no node), if it did.
    pub subscriber_error: Option<String>,
}

/// What the subscriber thread collected.
#[derive(Debug)]
struct SubResult {
    tracker: SeqTracker,
    latencies_ms: Vec<f64>,
    faults: SubscriberFaults,
    error: Option<coffre_agent::Error>,
}

/// Connect `subscriber` to `broker`, subscribe to [`TOPIC`] and start
/// receiving. `origin` is the clock the devices stamp their readings
/// with.
pub fn listen(
    broker: &Broker,
    subscriber: Device,
    devices: &[Device],
    interval: Duration,
    origin: Instant,
) -> Result<Listener> {
    // Readings name their device by id; the accounting is by index.
    let index: HashMap<String, usize> = devices
        .iter()
        .map(|d| (d.id().to_owned(), d.index()))
        .collect();
    let (client, resubscribe) = if broker.is_cluster() {
        // On a cluster: a persistent session (its queue survives the loss
        // of the node it was opened on), on node 1, reopened on another
        // node when that one is lost.
        let mut r = Resubscribe {
            brokers: broker.addrs().to_vec(),
            node: 0,
            device: subscriber,
            interval,
            version: broker.mqtt_version(),
        };
        let c = r
            .connect(Instant::now() + Duration::from_secs(30))
            .map_err(|source| Error::Subscriber {
                what: "connecting and subscribing to the cluster",
                source,
            })?;
        (c, Some(r))
    } else {
        let mut client = Client::connect(
            &client_options(
                broker.addr(),
                subscriber.id(),
                interval,
                broker.mqtt_version(),
            ),
            subscriber.tls(),
        )
        .map_err(|source| Error::Subscriber {
            what: "connecting the subscriber",
            source,
        })?;
        let granted = client
            .subscribe(&[(TOPIC, QoS::AtLeastOnce)])
            .map_err(|source| Error::Subscriber {
                what: "subscribing",
                source,
            })?;
        if granted.first().map(|r| r.0) != Some(1) {
            return Err(Error::SubscriptionRefused {
                topic: TOPIC,
                granted: format!("{granted:?}"),
                log: broker.log_path(),
            });
        }
        (client, None)
    };
    let stop = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let handle = {
        let stop = stop.clone();
        let received = received.clone();
        std::thread::Builder::new()
            .name("fleet-sub".into())
            .spawn(move || receive(client, resubscribe, &index, origin, &stop, &received))
            .map_err(|e| Error::Spawn("subscriber", e))?
    };
    Ok(Listener {
        handle,
        stop,
        received,
        log: broker.log_path(),
        cluster: broker.is_cluster(),
    })
}

/// Wait (up to 10 s, 60 s after a fault) for the subscriber to receive
/// every reading the devices published, then 300 ms more for duplicates
/// to show; stop it and account.
pub fn collect(listener: Listener, published: &Published) -> Result<Collected> {
    let expected = published.total();
    listener.stop.store(expected + 1, Ordering::Release);
    let drain = Instant::now();
    let limit = Duration::from_secs(if published.killed.is_some() { 60 } else { 10 });
    while listener.received.load(Ordering::Relaxed) < expected && drain.elapsed() < limit {
        if listener.handle.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    listener.stop.store(u64::MAX, Ordering::Release);
    let sub = listener
        .handle
        .join()
        .map_err(|_| Error::Panicked("subscriber"))?;
    let mut subscriber_error = None;
    if let Some(source) = sub.error {
        if !listener.cluster {
            return Err(Error::SubscriberFailed {
                log: listener.log,
                source,
            });
        }
        // A cluster that lost its majority: the run is reported, with
        // what the subscriber got until then.
        subscriber_error = Some(source.to_string());
    }
    Ok(Collected {
        delivery: sub.tracker.delivery(&published.per_device),
        latency_ms: sub.latencies_ms,
        faults: sub.faults,
        subscriber_error,
    })
}

/// The subscriber thread: account for each message until told to stop.
fn receive(
    mut client: Client,
    mut resubscribe: Option<Resubscribe>,
    index: &HashMap<String, usize>,
    origin: Instant,
    stop: &AtomicU64,
    received: &AtomicU64,
) -> SubResult {
    let mut tracker = SeqTracker::new(index.len() + 1);
    let mut latencies_ms = Vec::new();
    let mut faults = SubscriberFaults::default();
    let mut last: Option<Instant> = None;
    let mut error = None;
    loop {
        // stop: 0 = run; otherwise the number of messages to wait for
        // (+1), or u64::MAX to stop at once.
        let target = stop.load(Ordering::Acquire);
        if target != 0 && (target == u64::MAX || tracker.distinct() + 1 >= target) {
            break;
        }
        match client.poll(Duration::from_millis(100)) {
            Ok(Some(m)) => {
                let now = Instant::now();
                let now_us = now.saturating_duration_since(origin).as_micros() as u64;
                if let Some(l) = last {
                    if now - l > faults.gap {
                        faults.gap = now - l;
                        faults.gap_at = Some(l);
                    }
                }
                last = Some(now);
                faults.dup_flag += u64::from(m.dup);
                match serde_json::from_slice::<FleetReading>(&m.payload) {
                    Ok(r) => {
                        tracker.record(index.get(&r.device).copied().unwrap_or(0), r.seq);
                        latencies_ms.push(now_us.saturating_sub(r.sent_us) as f64 / 1000.0);
                    }
                    Err(_) => tracker.record(0, 0),
                }
                received.store(tracker.distinct(), Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => match resubscribe.as_mut() {
                // A cluster: its session waits on another node.
                Some(r) => match r.connect(Instant::now() + Duration::from_secs(60)) {
                    Ok(c) => {
                        client = c;
                        faults.reconnects += 1;
                    }
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                },
                None => {
                    error = Some(e);
                    break;
                }
            },
        }
    }
    let _ = client.disconnect();
    SubResult {
        tracker,
        latencies_ms,
        faults,
        error,
    }
}
