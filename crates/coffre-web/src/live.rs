//! Live readings and connection events, kept in memory and streamed to
//! the page.
//!
//! The subscriber pushes every reading it receives on `m5go/env` with
//! [`LiveHub::push_reading`], and what happens to its connection with
//! [`LiveHub::push_event`]. The hub keeps the last N readings per device
//! and the last N events; the page gets a snapshot (`GET /api/live`) and
//! then every new item (`GET /api/live/stream`, server-sent events).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Readings kept per device, and events kept, by default.
pub const DEFAULT_CAPACITY: usize = 300;

pub use coffre_device::Reading;

/// A reading as the hub keeps it: the device's [`Reading`] (the project's
/// one type) and when the subscriber received it. In JSON the reading's
/// fields and `received_at` sit side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Received {
    /// The reading.
    #[serde(flatten)]
    pub reading: Reading,
    /// When the subscriber received it (RFC 3339).
    pub received_at: String,
}

/// Something that happened to a connection ("connected", "refused"…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When (RFC 3339); empty means "now", set by [`LiveHub::push_event`].
    #[serde(default)]
    pub time: String,
    /// A short kind: "connect", "subscribe", "disconnect", "error"…
    pub kind: String,
    /// What happened, in words.
    pub text: String,
}

impl Event {
    /// An event of `kind` happening now.
    pub fn now(kind: impl Into<String>, text: impl Into<String>) -> Event {
        Event {
            time: now_rfc3339(),
            kind: kind.into(),
            text: text.into(),
        }
    }
}

/// What the hub holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveSnapshot {
    /// The last readings of each device, oldest first.
    pub devices: BTreeMap<String, Vec<Received>>,
    /// The last events, oldest first.
    pub events: Vec<Event>,
    /// How many readings per device and events are kept.
    pub capacity: usize,
}

/// One item of the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum LiveMessage {
    /// A new reading.
    Reading(Received),
    /// A new event.
    Event(Event),
}

#[derive(Debug)]
struct State {
    devices: BTreeMap<String, VecDeque<Received>>,
    events: VecDeque<Event>,
}

/// The live data the page shows. Cloning gives another handle on the same
/// data; every method is cheap and never blocks on the page.
#[derive(Debug, Clone)]
pub struct LiveHub {
    state: Arc<Mutex<State>>,
    tx: broadcast::Sender<LiveMessage>,
    capacity: usize,
}

/// The current time in RFC 3339 (UTC, milliseconds).
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl LiveHub {
    /// A hub keeping `capacity` readings per device and `capacity` events
    /// (at least 1).
    pub fn new(capacity: usize) -> LiveHub {
        let (tx, _) = broadcast::channel(256);
        LiveHub {
            state: Arc::new(Mutex::new(State {
                devices: BTreeMap::new(),
                events: VecDeque::new(),
            })),
            tx,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a reading, received now.
    pub fn push_reading(&self, reading: Reading) {
        let r = Received {
            reading,
            received_at: now_rfc3339(),
        };
        {
            let mut st = self.lock();
            let q = st.devices.entry(r.reading.device.clone()).or_default();
            if q.len() == self.capacity {
                q.pop_front();
            }
            q.push_back(r.clone());
        }
        let _ = self.tx.send(LiveMessage::Reading(r));
    }

    /// Add an event (its `time` is set to now when empty).
    pub fn push_event(&self, mut e: Event) {
        if e.time.is_empty() {
            e.time = now_rfc3339();
        }
        {
            let mut st = self.lock();
            if st.events.len() == self.capacity {
                st.events.pop_front();
            }
            st.events.push_back(e.clone());
        }
        let _ = self.tx.send(LiveMessage::Event(e));
    }

    /// Everything held now.
    pub fn snapshot(&self) -> LiveSnapshot {
        let st = self.lock();
        LiveSnapshot {
            devices: st
                .devices
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().cloned().collect()))
                .collect(),
            events: st.events.iter().cloned().collect(),
            capacity: self.capacity,
        }
    }

    /// Every item pushed from now on. A receiver that falls behind gets
    /// `Lagged` and should take a fresh [`LiveHub::snapshot`].
    pub fn subscribe(&self) -> broadcast::Receiver<LiveMessage> {
        self.tx.subscribe()
    }

    /// Forget every reading and event.
    pub fn clear(&self) {
        let mut st = self.lock();
        st.devices.clear();
        st.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(device: &str, seq: u64) -> Reading {
        Reading {
            device: device.into(),
            seq,
            ts: "2025-01-01T00:00:00Z".into(),
            temperature_c: 21.5,
            humidity_pct: 40.0,
            pressure_hpa: 1013.2,
        }
    }

    #[test]
    fn keeps_the_last_n_per_device() {
        let hub = LiveHub::new(3);
        let mut rx = hub.subscribe();
        for i in 0..5 {
            hub.push_reading(reading("a", i));
        }
        hub.push_reading(reading("b", 9));
        hub.push_event(Event {
            time: String::new(),
            kind: "connect".into(),
            text: "a connected".into(),
        });
        let s = hub.snapshot();
        let seqs: Vec<u64> = s.devices["a"].iter().map(|r| r.reading.seq).collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert_eq!(s.devices["b"].len(), 1);
        assert!(!s.devices["b"][0].received_at.is_empty());
        assert_eq!(s.events.len(), 1);
        assert!(s.events[0].time.ends_with('Z'));
        match rx.try_recv().unwrap() {
            LiveMessage::Reading(r) => assert_eq!(r.reading.seq, 0),
            other => panic!("{other:?}"),
        }
        let json = serde_json::to_value(LiveMessage::Event(Event::now("x", "y"))).unwrap();
        assert_eq!(json["type"], "event");
        hub.clear();
        assert!(hub.snapshot().devices.is_empty());
    }
}
