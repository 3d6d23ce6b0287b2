//! The durable queue of readings not yet acknowledged by the broker.
//!
//! A directory with two files:
//!
//! - `queue.jsonl`: append-only, one reading (its JSON payload) per line.
//!   A reading is appended and `fsync`ed *before* it is sent, so a reading
//!   taken while the broker is unreachable, or just before a crash or a
//!   power cut, is still there at the next start.
//! - `acked`: the highest sequence number the broker has acknowledged
//!   (PUBACK), replaced atomically (write, `fsync`, rename, `fsync` of the
//!   directory). Lines at or below it are done.
//!
//! When every line is acknowledged the queue file is truncated; when the
//! acknowledged prefix grows large the pending tail is rewritten to a new
//! file. The marker outlives both, so sequence numbers continue across
//! restarts. A line torn by a crash mid-write is dropped at the next open.
//! A reading acknowledged but not yet marked when the device stops is sent
//! again: QoS 1 is "at least once", and the subscriber counts duplicates.
//!
//! One process per directory: the directory is locked (`lock`, an
//! advisory `flock` that names its holder) for as long as the queue is open;
//! a second publisher on the same directory is refused instead of both
//! numbering readings from the same sequence.
//!
//! A marker ahead of every reading in the queue file (a marker restored
//! from another copy, a queue file put back from a backup) would mark
//! readings as delivered that never were: they are kept and sent again
//! (at least once), and [`DurableQueue::warnings`] says which.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use coffre_device::ReadingQueue;

use crate::error::{Error, Result};

/// Name of the queue file inside the queue directory.
pub const QUEUE_FILE: &str = "queue.jsonl";
/// Name of the acknowledged-up-to marker inside the queue directory.
pub const ACKED_FILE: &str = "acked";
/// Name of the lock file inside the queue directory.
pub const LOCK_FILE: &str = "lock";
/// Rewrite the queue file when its acknowledged prefix exceeds this size.
const COMPACT_BYTES: u64 = 256 * 1024;

pub use coffre_device::QueuedReading;

#[derive(Debug)]
struct Disk {
    dir: PathBuf,
    file: File,
    /// Bytes of the queue file holding acknowledged lines.
    acked_bytes: u64,
    /// Held while the queue is open.
    _lock: coffre_fs::LockFile,
}

/// Readings waiting for a PUBACK, on disk or in memory.
#[derive(Debug)]
pub struct DurableQueue {
    disk: Option<Disk>,
    pending: VecDeque<QueuedReading>,
    acked: u64,
    last_seq: u64,
    warnings: Vec<String>,
}

fn qerr(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Queue {
        path: path.to_owned(),
        source,
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The sequence number of a queue line; sequence numbers start at 1, so a
/// line claiming 0 is unreadable (found by fuzzing: a lone `"seq":0` below
/// the marker was kept as pending at or below the acknowledged number).
fn seq_of(line: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    v.get("seq")?.as_u64().filter(|&s| s > 0)
}

impl DurableQueue {
    /// A queue that lives in memory only (nothing survives a restart;
    /// sequence numbers start at 1).
    pub fn in_memory() -> DurableQueue {
        DurableQueue {
            disk: None,
            pending: VecDeque::new(),
            acked: 0,
            last_seq: 0,
            warnings: Vec::new(),
        }
    }

    /// Open (or create) the queue in `dir`.
    pub fn open(dir: &Path) -> Result<DurableQueue> {
        fs::create_dir_all(dir).map_err(qerr(dir))?;
        let lock = coffre_fs::LockFile::try_lock(&dir.join(LOCK_FILE)).map_err(|e| match e {
            coffre_fs::LockError::Held { holder, .. } => Error::InvalidOption(format!(
                "the queue directory {} is in use by another publisher ({holder}); give each publisher its own --queue directory",
                dir.display()
            )),
            e => Error::Queue {
                path: dir.join(LOCK_FILE),
                source: io::Error::other(e.to_string()),
            },
        })?;
        let mut warnings = Vec::new();
        let marker = dir.join(ACKED_FILE);
        // The marker is one number: anything longer is not a marker.
        let text =
            coffre_fs::read_limited(&marker, 64).map(|b| String::from_utf8_lossy(&b).into_owned());
        let acked = match text {
            Ok(s) => s.trim().parse::<u64>().map_err(|_| Error::Queue {
                path: marker.clone(),
                source: invalid(format!(
                    "the marker holds '{}', not a sequence number; fix or delete it",
                    s.trim()
                )),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(qerr(&marker)(e)),
        };
        let path = dir.join(QUEUE_FILE);
        let mut content = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut content).map_err(qerr(&path))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(qerr(&path)(e)),
        }
        let mut pending = VecDeque::new();
        let mut last_seq = acked;
        let mut acked_bytes = 0u64;
        // Lines at or below the marker, (seq, payload, bytes): the
        // acknowledged prefix, unless the marker turns out to be ahead.
        let mut below = Vec::new();
        let mut highest = 0u64;
        let mut good_len = 0usize;
        let mut at = 0usize;
        while at < content.len() {
            let Some(nl) = content[at..].iter().position(|&b| b == b'\n') else {
                // A line without its newline: torn by a crash mid-append.
                tracing::warn!(path = %path.display(), "dropping a torn last line of the queue");
                break;
            };
            let line = &content[at..at + nl];
            let end = at + nl + 1;
            match std::str::from_utf8(line)
                .ok()
                .and_then(|l| Some((l, seq_of(l)?)))
            {
                Some((l, seq)) if seq > acked => {
                    highest = highest.max(seq);
                    if seq > last_seq {
                        last_seq = seq;
                    }
                    pending.push_back(QueuedReading {
                        seq,
                        payload: l.to_owned(),
                    });
                }
                Some((l, seq)) => {
                    highest = highest.max(seq);
                    below.push((seq, l.to_owned(), (end - at) as u64));
                }
                None => {
                    warnings.push(format!(
                        "{}: skipped an unreadable line at byte {at}",
                        path.display()
                    ));
                    acked_bytes += (end - at) as u64;
                }
            }
            good_len = end;
            at = end;
        }
        let mut acked = acked;
        if highest < acked && !below.is_empty() {
            // Every acknowledgement is for a reading this queue sent, so the
            // marker cannot be above the last reading in the file: it is
            // ahead (copied from elsewhere, or the file was restored).
            // Dropping the readings below it would lose them; send them
            // again instead and say so.
            // The lowest, not the first: a restored or hand-edited file
            // need not be in order (found by the queue_files fuzz target).
            let first = below.iter().map(|b| b.0).min().unwrap_or(0);
            warnings.push(format!(
                "{}: the marker says {acked} but the queue's last reading is {highest}: it is ahead of the queue; keeping the {} readings {first}–{highest} to send again",
                marker.display(),
                below.len()
            ));
            acked = first.saturating_sub(1);
            for (seq, payload, _) in below.drain(..) {
                pending.push_back(QueuedReading { seq, payload });
            }
            // Sequence numbers continue above the old marker: never reuse one.
        }
        acked_bytes += below.iter().map(|b| b.2).sum::<u64>();
        for w in &warnings {
            tracing::warn!("{w}");
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(qerr(&path))?;
        if good_len < content.len() {
            file.set_len(good_len as u64)
                .and_then(|_| file.sync_all())
                .map_err(qerr(&path))?;
        }
        let mut q = DurableQueue {
            disk: Some(Disk {
                dir: dir.to_owned(),
                file,
                acked_bytes,
                _lock: lock,
            }),
            pending,
            acked,
            last_seq,
            warnings,
        };
        q.maybe_compact()?;
        Ok(q)
    }

    /// What opening the queue found wrong and how it was handled (lines
    /// skipped, a marker ahead of the queue); also logged as warnings.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The directory, for a disk queue.
    pub fn dir(&self) -> Option<&Path> {
        self.disk.as_ref().map(|d| d.dir.as_path())
    }

    /// The sequence number the next reading gets.
    pub fn next_seq(&self) -> u64 {
        self.last_seq.max(self.acked) + 1
    }

    /// The highest acknowledged sequence number (0: none yet).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Readings waiting for a PUBACK.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every reading has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The oldest reading waiting.
    pub fn front(&self) -> Option<&QueuedReading> {
        self.pending.front()
    }

    /// All readings waiting, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &QueuedReading> {
        self.pending.iter()
    }

    /// Append a reading (durably, for a disk queue). `seq` must be above
    /// every sequence number already queued; `payload` must be one line.
    pub fn push(&mut self, seq: u64, payload: String) -> Result<()> {
        if seq <= self.last_seq.max(self.acked) || payload.contains('\n') {
            return Err(Error::InvalidOption(format!(
                "queued reading {seq} is out of order or spans several lines"
            )));
        }
        if let Some(d) = &mut self.disk {
            let path = d.dir.join(QUEUE_FILE);
            let mut line = Vec::with_capacity(payload.len() + 1);
            line.extend_from_slice(payload.as_bytes());
            line.push(b'\n');
            d.file
                .write_all(&line)
                .and_then(|_| d.file.sync_data())
                .map_err(qerr(&path))?;
        }
        self.last_seq = seq;
        self.pending.push_back(QueuedReading { seq, payload });
        Ok(())
    }

    /// Record that the broker acknowledged everything up to `seq`.
    pub fn ack(&mut self, seq: u64) -> Result<()> {
        if seq <= self.acked {
            return Ok(());
        }
        let mut freed = 0u64;
        while self.pending.front().is_some_and(|r| r.seq <= seq) {
            if let Some(r) = self.pending.pop_front() {
                freed += r.payload.len() as u64 + 1;
            }
        }
        self.acked = seq;
        if let Some(d) = &mut self.disk {
            let marker = d.dir.join(ACKED_FILE);
            coffre_fs::write_atomic(&marker, format!("{seq}\n").as_bytes(), 0o644)
                .map_err(qerr(&marker))?;
            d.acked_bytes += freed;
        }
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<()> {
        let Some(d) = &mut self.disk else {
            return Ok(());
        };
        let path = d.dir.join(QUEUE_FILE);
        if self.pending.is_empty() {
            if d.acked_bytes > 0 || d.file.metadata().map(|m| m.len()).unwrap_or(0) > 0 {
                d.file
                    .set_len(0)
                    .and_then(|_| d.file.sync_all())
                    .map_err(qerr(&path))?;
                d.acked_bytes = 0;
            }
            return Ok(());
        }
        if d.acked_bytes < COMPACT_BYTES {
            return Ok(());
        }
        let pending = &self.pending;
        coffre_fs::write_atomic_with(&path, 0o644, |f| {
            let mut w = io::BufWriter::new(f);
            for r in pending {
                w.write_all(r.payload.as_bytes())?;
                w.write_all(b"\n")?;
            }
            w.flush()
        })
        .map_err(qerr(&path))?;
        d.file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(qerr(&path))?;
        d.acked_bytes = 0;
        Ok(())
    }
}

impl ReadingQueue for DurableQueue {
    type Error = Error;

    fn next_seq(&self) -> u64 {
        DurableQueue::next_seq(self)
    }

    fn push(&mut self, seq: u64, payload: String) -> Result<()> {
        DurableQueue::push(self, seq, payload)
    }

    fn front(&self) -> Option<&QueuedReading> {
        DurableQueue::front(self)
    }

    fn ack(&mut self, seq: u64) -> Result<()> {
        DurableQueue::ack(self, seq)
    }

    fn len(&self) -> usize {
        DurableQueue::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(seq: u64) -> String {
        format!(
            r#"{{"device":"d","seq":{seq},"ts":"t","temperature_c":1.0,"humidity_pct":2.0,"pressure_hpa":3.0}}"#
        )
    }

    #[test]
    fn survives_reopen_and_continues_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.next_seq(), 1);
        for s in 1..=3 {
            q.push(s, payload(s)).unwrap();
        }
        q.ack(1).unwrap();
        drop(q);
        let q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.acked(), 1);
        assert_eq!(q.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(q.next_seq(), 4);
        assert_eq!(q.front().unwrap().payload, payload(2));
    }

    #[test]
    fn fully_acked_queue_is_truncated_but_seq_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        q.push(1, payload(1)).unwrap();
        q.push(2, payload(2)).unwrap();
        q.ack(2).unwrap();
        assert!(q.is_empty());
        assert_eq!(fs::metadata(dir.path().join(QUEUE_FILE)).unwrap().len(), 0);
        q.push(3, payload(3)).unwrap();
        drop(q);
        let q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![3]);
        assert_eq!(q.next_seq(), 4);
    }

    #[test]
    fn torn_last_line_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        q.push(1, payload(1)).unwrap();
        drop(q);
        let path = dir.path().join(QUEUE_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"device":"d","seq":2,"ts""#).unwrap();
        drop(f);
        let mut q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1]);
        assert_eq!(q.next_seq(), 2);
        q.push(2, payload(2)).unwrap();
        drop(q);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n{}\n", payload(1), payload(2)));
    }

    #[test]
    fn large_acked_prefix_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        let big = |s: u64| payload(s).replace("\"t\"", &format!("\"{}\"", "x".repeat(1000)));
        for s in 1..=400 {
            q.push(s, big(s)).unwrap();
        }
        q.ack(399).unwrap();
        let len = fs::metadata(dir.path().join(QUEUE_FILE)).unwrap().len();
        assert_eq!(len, big(400).len() as u64 + 1);
        q.push(401, payload(401)).unwrap();
        drop(q);
        let q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![400, 401]);
    }

    // Issue 15, item 5: two publishers on one directory would both number
    // their readings 1, 2, 3…: the second is refused.
    #[test]
    fn a_second_publisher_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        q.push(1, payload(1)).unwrap();
        let e = DurableQueue::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("in use by another publisher"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        drop(q);
        let q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.next_seq(), 2);
    }

    // Issue 15, item 5: a marker ahead of the queue must not drop readings.
    /// Found by fuzzing: a line with sequence number 0 (never sent: numbers
    /// start at 1) under a marker was kept pending at or below the marker.
    #[test]
    fn a_sequence_number_zero_is_an_unreadable_line() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ACKED_FILE), "1\n").unwrap();
        fs::write(dir.path().join(QUEUE_FILE), "{\"seq\":0}\n{\"seq\":2}\n").unwrap();
        let q = DurableQueue::open(dir.path()).unwrap();
        let seqs: Vec<u64> = q.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [2]);
        assert!(
            q.warnings().join("\n").contains("unreadable line"),
            "{:?}",
            q.warnings()
        );
    }

    /// Found by fuzzing: with a marker ahead of a queue whose lines are
    /// out of order (2, 1, 2), the readings kept to send again started at
    /// the first line's number, so reading 1 was pending at the marker.
    #[test]
    fn a_marker_ahead_of_an_unordered_queue_keeps_every_reading_above_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ACKED_FILE), "50\n").unwrap();
        fs::write(
            dir.path().join(QUEUE_FILE),
            "{\"seq\":2}\n{\"seq\":1}\n{\"seq\":2}\n",
        )
        .unwrap();
        let q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.len(), 3, "nothing dropped");
        assert!(q.iter().all(|r| r.seq > q.acked()), "{:?}", q.acked());
        assert!(q.next_seq() > 50, "numbers continue above the old marker");
    }

    #[test]
    fn a_marker_ahead_of_the_queue_keeps_the_readings_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        for s in 1..=30 {
            q.push(s, payload(s)).unwrap();
        }
        drop(q);
        fs::write(dir.path().join(ACKED_FILE), "50\n").unwrap();
        let mut q = DurableQueue::open(dir.path()).unwrap();
        assert_eq!(q.len(), 30, "nothing dropped");
        assert_eq!(q.front().unwrap().seq, 1);
        let w = q.warnings().join("\n");
        assert!(
            w.contains("ahead of the queue") && w.contains("1–30"),
            "{w}"
        );
        assert_eq!(q.next_seq(), 51, "sequence numbers are never reused");
        q.ack(10).unwrap();
        assert_eq!(q.front().unwrap().seq, 11);
        q.ack(30).unwrap();
        assert!(q.is_empty());
        drop(q);
        // A normal acknowledged prefix is not a warning.
        let mut q = DurableQueue::open(dir.path()).unwrap();
        assert!(q.warnings().is_empty(), "{:?}", q.warnings());
        q.push(51, payload(51)).unwrap();
        q.push(52, payload(52)).unwrap();
        q.ack(51).unwrap();
        drop(q);
        let q = DurableQueue::open(dir.path()).unwrap();
        assert!(q.warnings().is_empty(), "{:?}", q.warnings());
        assert_eq!(q.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![52]);
    }

    #[test]
    fn bad_marker_is_a_clear_error_and_order_is_enforced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ACKED_FILE), "twelve").unwrap();
        let e = DurableQueue::open(dir.path()).unwrap_err();
        // The marker's content is in the cause, which Display does not repeat.
        let cause = std::error::Error::source(&e).map(|s| s.to_string());
        assert!(
            cause.as_deref().unwrap_or("").contains("twelve"),
            "{e}: {cause:?}"
        );
        let mut q = DurableQueue::in_memory();
        q.push(1, payload(1)).unwrap();
        assert!(q.push(1, payload(1)).is_err());
        assert!(q.push(2, "a\nb".into()).is_err());
        q.ack(1).unwrap();
        assert_eq!(q.next_seq(), 2);
    }
}
