//! Following the broker log as it grows: one reader, lines handed to
//! whoever waits for them.
//!
//! [`LogFollower`] reads only the bytes appended since its last read (as
//! `tail -F` does), keeps the lines, and wakes the threads waiting in
//! [`LogFollower::wait_for`]. A [`LogCursor`] is a position in the stream of
//! lines: take one before acting, then wait for the line the action should
//! cause. The file may be replaced or truncated (a broker restart starts a new
//! log): the follower finishes the old file and starts the new one, and
//! cursors keep counting across.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the reader looks for new bytes.
const POLL: Duration = Duration::from_millis(10);
/// Lines kept in memory; older ones are dropped (a cursor that old starts at
/// the oldest line kept).
const KEEP_LINES: usize = 100_000;
/// A line longer than this is cut (a log line is never that long; a file
/// that is not a log must not fill the memory).
const MAX_LINE: usize = 64 * 1024;

/// A position in the log's lines (the number of lines before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogCursor(u64);

impl LogCursor {
    /// Before the first line.
    pub const START: LogCursor = LogCursor(0);
}

/// Splits appended bytes into complete lines; keeps the unfinished tail.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, mut bytes: &[u8], out: &mut Vec<String>) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.extend(&bytes[..nl]);
            let line = std::mem::take(&mut self.partial);
            out.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string(),
            );
            bytes = &bytes[nl + 1..];
        }
        self.extend(bytes);
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The file was replaced: an unfinished line of the old one is a line.
    fn finish(&mut self, out: &mut Vec<String>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            out.push(String::from_utf8_lossy(&line).to_string());
        }
    }
}

/// The open log file and how far it has been read.
#[derive(Debug)]
struct Tail {
    path: PathBuf,
    open: Option<(File, u64)>,
    offset: u64,
    split: LineSplitter,
}

impl Tail {
    fn new(path: PathBuf) -> Tail {
        Tail {
            path,
            open: None,
            offset: 0,
            split: LineSplitter::default(),
        }
    }

    /// Read whatever was appended since the last call; new lines go to `out`.
    fn read_new(&mut self, out: &mut Vec<String>) {
        let on_disk = std::fs::metadata(&self.path).ok();
        let replaced = match (&self.open, &on_disk) {
            (Some((_, ino)), Some(m)) => m.ino() != *ino,
            (None, _) => true,
            (Some(_), None) => false,
        };
        if replaced {
            // Finish the old file, then start on the new one.
            self.drain(out);
            self.split.finish(out);
            self.open = None;
            if let Ok(f) = File::open(&self.path) {
                if let Ok(m) = f.metadata() {
                    self.open = Some((f, m.ino()));
                    self.offset = 0;
                }
            }
        } else if on_disk.is_some_and(|m| m.len() < self.offset) {
            // Truncated in place.
            self.split.finish(out);
            self.offset = 0;
        }
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Vec<String>) {
        let Some((f, _)) = self.open.as_mut() else {
            return;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = [0u8; 16 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.offset += n as u64;
                    self.split.push(&buf[..n], out);
                }
            }
        }
    }
}

#[derive(Debug)]
struct State {
    tail: Tail,
    /// Index of `lines[0]` in the whole stream.
    first: u64,
    lines: VecDeque<String>,
}

impl State {
    fn catch_up(&mut self) -> bool {
        let mut new = Vec::new();
        self.tail.read_new(&mut new);
        let grew = !new.is_empty();
        self.lines.extend(new);
        while self.lines.len() > KEEP_LINES {
            self.lines.pop_front();
            self.first += 1;
        }
        grew
    }

    fn end(&self) -> u64 {
        self.first + self.lines.len() as u64
    }

    fn after(&self, c: LogCursor) -> impl Iterator<Item = &String> {
        let skip = c.0.saturating_sub(self.first) as usize;
        self.lines.iter().skip(skip)
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    grew: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Follows a log file from its start: one reader thread, any number of
/// waiters. Stops reading when dropped.
#[derive(Debug)]
pub struct LogFollower {
    shared: Arc<Shared>,
    reader: Option<JoinHandle<()>>,
}

impl LogFollower {
    /// Follow `path` (it need not exist yet).
    pub fn follow(path: impl Into<PathBuf>) -> LogFollower {
        LogFollower::start(Tail::new(path.into()))
    }

    /// Follow `path` from its current end: only lines written from now on
    /// are seen (for a long-running broker's log).
    pub fn follow_from_end(path: impl Into<PathBuf>) -> LogFollower {
        let mut tail = Tail::new(path.into());
        if let Ok(f) = File::open(&tail.path) {
            if let Ok(m) = f.metadata() {
                tail.offset = m.len();
                tail.open = Some((f, m.ino()));
            }
        }
        LogFollower::start(tail)
    }

    fn start(tail: Tail) -> LogFollower {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                tail,
                first: 0,
                lines: VecDeque::new(),
            }),
            grew: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let reader = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("log-follower".into())
                .spawn(move || {
                    while !shared.stop.load(Ordering::Relaxed) {
                        if shared.lock().catch_up() {
                            shared.grew.notify_all();
                        }
                        std::thread::sleep(POLL);
                    }
                })
                .ok()
        };
        LogFollower { shared, reader }
    }

    /// The file followed.
    pub fn path(&self) -> PathBuf {
        self.shared.lock().tail.path.clone()
    }

    /// The position after every line written so far.
    pub fn cursor(&self) -> LogCursor {
        let mut st = self.shared.lock();
        st.catch_up();
        LogCursor(st.end())
    }

    /// Every line written after `from`, as of now.
    pub fn since(&self, from: LogCursor) -> Vec<String> {
        let mut st = self.shared.lock();
        st.catch_up();
        st.after(from).cloned().collect()
    }

    /// The first line after `from` containing `needle`, waiting up to
    /// `limit` for it to be written.
    pub fn wait_for(&self, from: LogCursor, needle: &str, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        let mut st = self.shared.lock();
        st.catch_up();
        loop {
            if let Some(l) = st.after(from).find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            st = self
                .shared
                .grew
                .wait_timeout(st, left.min(POLL * 5))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            st.catch_up();
        }
    }

    /// Wait up to `limit` for lines after `cursor`; return them and move the
    /// cursor past them (empty when nothing came).
    pub fn next_lines(&self, cursor: &mut LogCursor, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        let mut st = self.shared.lock();
        st.catch_up();
        while st.end() <= cursor.0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            st = self
                .shared
                .grew
                .wait_timeout(st, left.min(POLL * 5))
                .unwrap_or_else(|p| p.into_inner())
                .0;
            st.catch_up();
        }
        let out: Vec<String> = st.after(*cursor).cloned().collect();
        *cursor = LogCursor(st.end());
        out
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.reader.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn splitter_keeps_unfinished_lines() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"one\ntw", &mut out);
        assert_eq!(out, ["one"]);
        s.push(b"o\r\nthree", &mut out);
        assert_eq!(out, ["one", "two"]);
        s.finish(&mut out);
        assert_eq!(out, ["one", "two", "three"]);
        s.push(&vec![b'x'; MAX_LINE * 2], &mut out);
        s.push(b"\n", &mut out);
        assert_eq!(out[3].len(), MAX_LINE);
    }

    #[test]
    fn lines_reach_waiters_and_survive_a_new_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("broker.log");
        let log = LogFollower::follow(&p);
        let c0 = log.cursor();
        assert!(log.since(c0).is_empty());
        let writer = {
            let p = p.clone();
            std::thread::spawn(move || {
                let mut f = File::create(&p).unwrap();
                writeln!(f, "a: New connection from 127.0.0.1").unwrap();
                std::thread::sleep(Duration::from_millis(30));
                write!(f, "b: bad sig").unwrap();
                f.flush().unwrap();
                std::thread::sleep(Duration::from_millis(30));
                writeln!(f, "nature").unwrap();
            })
        };
        let line = log.wait_for(c0, "bad signature", Duration::from_secs(5));
        writer.join().unwrap();
        assert_eq!(line.as_deref(), Some("b: bad signature"));
        let c1 = log.cursor();
        assert_eq!(log.since(c0).len(), 2);
        assert!(log.wait_for(c1, "bad", Duration::from_millis(50)).is_none());
        // A restart writes a new file: the cursor goes on counting.
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, "c: running\n").unwrap();
        assert_eq!(
            log.wait_for(c1, "running", Duration::from_secs(5))
                .as_deref(),
            Some("c: running")
        );
        let mut c = c0;
        assert_eq!(log.next_lines(&mut c, Duration::ZERO).len(), 3);
        assert!(log.next_lines(&mut c, Duration::from_millis(20)).is_empty());
        // Truncated in place.
        std::fs::write(&p, "d\n").unwrap();
        assert_eq!(
            log.next_lines(&mut c, Duration::from_secs(5)),
            vec!["d".to_string()]
        );
    }
}
