//! The queue of readings: it numbers them and keeps each one until the
//! broker acknowledges it.
//!
//! [`ReadingQueue`] is the interface the publisher needs. The Linux agent
//! implements it on disk (its `DurableQueue`: readings survive outages and
//! restarts); [`MemoryQueue`] keeps them in RAM (an MCU without storage,
//! tests).

use alloc::collections::VecDeque;
use alloc::string::String;

/// A reading waiting for its PUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedReading {
    /// Its sequence number.
    pub seq: u64,
    /// Its JSON payload (one line).
    pub payload: String,
}

/// Readings waiting for a PUBACK, oldest first, and the sequence numbers
/// they are given.
pub trait ReadingQueue {
    /// Why storing failed (a disk error for a durable queue).
    type Error;

    /// The sequence number the next reading gets: one more than the
    /// highest ever pushed or acknowledged (1 for the first).
    fn next_seq(&self) -> u64;

    /// Keep a reading; for a durable queue it is stored before this
    /// returns, so it survives a crash from then on.
    fn push(&mut self, seq: u64, payload: String) -> Result<(), Self::Error>;

    /// The oldest reading not yet acknowledged.
    fn front(&self) -> Option<&QueuedReading>;

    /// The broker acknowledged `seq`: drop it and everything older.
    fn ack(&mut self, seq: u64) -> Result<(), Self::Error>;

    /// Readings waiting.
    fn len(&self) -> usize;

    /// No reading waits.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`ReadingQueue`] in RAM: nothing survives a restart; sequence numbers
/// start at 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryQueue {
    pending: VecDeque<QueuedReading>,
    last_seq: u64,
}

impl MemoryQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }
}

impl ReadingQueue for MemoryQueue {
    type Error = core::convert::Infallible;

    fn next_seq(&self) -> u64 {
        self.last_seq + 1
    }

    fn push(&mut self, seq: u64, payload: String) -> Result<(), Self::Error> {
        self.last_seq = self.last_seq.max(seq);
        self.pending.push_back(QueuedReading { seq, payload });
        Ok(())
    }

    fn front(&self) -> Option<&QueuedReading> {
        self.pending.front()
    }

    fn ack(&mut self, seq: u64) -> Result<(), Self::Error> {
        while self.pending.front().is_some_and(|r| r.seq <= seq) {
            self.pending.pop_front();
        }
        self.last_seq = self.last_seq.max(seq);
        Ok(())
    }

    fn len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn numbers_and_acknowledges_in_order() {
        let mut q = MemoryQueue::new();
        assert_eq!(q.next_seq(), 1);
        for _ in 0..3 {
            let s = q.next_seq();
            q.push(s, s.to_string()).unwrap();
        }
        assert_eq!((q.len(), q.front().unwrap().seq), (3, 1));
        q.ack(2).unwrap();
        assert_eq!((q.len(), q.front().unwrap().seq), (1, 3));
        q.ack(3).unwrap();
        assert!(q.is_empty());
        assert_eq!(q.next_seq(), 4);
    }
}
