//! Statistics of a fleet run: per-device sequence accounting (loss and
//! duplicates). Percentiles are the project's one implementation,
//! [`coffre_agent::stats`], re-exported here.

use serde::Serialize;

pub use coffre_agent::stats::{percentile, Percentiles};

/// Loss and duplicate accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Messages the devices published and the broker acknowledged.
    pub published: u64,
    /// Messages the subscriber received, duplicates included.
    pub received: u64,
    /// Acknowledged messages never received.
    pub lost: u64,
    /// Receptions beyond the first of the same (device, seq).
    pub duplicated: u64,
    /// Messages received that no device reported publishing (unknown
    /// device or sequence number beyond what it sent).
    pub unexpected: u64,
}

/// Per-device sequence tracking: which (device, seq) pairs arrived, and
/// how many times.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    seen: Vec<Vec<u32>>,
    received: u64,
    distinct: u64,
}

impl SeqTracker {
    /// A tracker for devices `0..devices`.
    pub fn new(devices: usize) -> SeqTracker {
        SeqTracker {
            seen: vec![Vec::new(); devices],
            received: 0,
            distinct: 0,
        }
    }

    /// Record one reception of `seq` (from 1) from device `device`.
    pub fn record(&mut self, device: usize, seq: u64) {
        self.received += 1;
        if device >= self.seen.len() {
            self.seen.resize(device + 1, Vec::new());
        }
        let v = &mut self.seen[device];
        let i = seq as usize;
        if v.len() <= i {
            v.resize(i + 1, 0);
        }
        if v[i] == 0 {
            self.distinct += 1;
        }
        v[i] += 1;
    }

    /// Distinct (device, seq) pairs received so far.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }

    /// Receptions so far, duplicates included.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Compare with what each device published: `published[d]` messages
    /// with seq `1..=published[d]`.
    pub fn delivery(&self, published: &[u64]) -> Delivery {
        let mut d = Delivery {
            published: published.iter().sum(),
            received: self.received,
            ..Delivery::default()
        };
        let empty = Vec::new();
        for dev in 0..self.seen.len().max(published.len()) {
            let seen = self.seen.get(dev).unwrap_or(&empty);
            let sent = published.get(dev).copied().unwrap_or(0) as usize;
            for (seq, &n) in seen.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                if seq == 0 || seq > sent {
                    d.unexpected += u64::from(n);
                } else {
                    d.duplicated += u64::from(n - 1);
                }
            }
            for seq in 1..=sent {
                if seen.get(seq).copied().unwrap_or(0) == 0 {
                    d.lost += 1;
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_delivery() {
        let mut t = SeqTracker::new(3);
        for dev in 0..3 {
            for seq in 1..=4 {
                t.record(dev, seq);
            }
        }
        let d = t.delivery(&[4, 4, 4]);
        assert_eq!(d.published, 12);
        assert_eq!(d.received, 12);
        assert_eq!((d.lost, d.duplicated, d.unexpected), (0, 0, 0));
    }

    #[test]
    fn loss_duplicates_and_strays() {
        let mut t = SeqTracker::new(2);
        t.record(0, 1);
        t.record(0, 1); // duplicate
        t.record(0, 1); // another
        t.record(0, 3); // seq 2 lost
        t.record(1, 9); // beyond what device 1 sent
        t.record(5, 1); // unknown device
        t.record(1, 0); // seqs start at 1
        let d = t.delivery(&[3, 1]);
        assert_eq!(d.published, 4);
        assert_eq!(d.received, 7);
        assert_eq!(d.duplicated, 2);
        // device 0: seq 2 missing; device 1: seq 1 missing
        assert_eq!(d.lost, 2);
        assert_eq!(d.unexpected, 3);
    }
}
