//! The index of every certificate the CA issued: an append-only journal
//! (`index.jsonl`) under an exclusive lock (`index.lock`), read into memory
//! with look-ups by device id and by serial in O(1).
//!
//! - Every change is appended as one JSON line, written and synced under
//!   the lock; a batch of certificates is one write and one sync.
//! - Before each change the store reads what other processes appended
//!   since it last looked, so no process overwrites another's entries.
//! - Writing the CRL compacts the journal: it is rewritten atomically as a
//!   header and one line per certificate, revocations folded in.
//! - A last line cut short (the writer was killed mid-write) is dropped
//!   with a warning; a damaged line before it is an error.
//! - A PKI made by an older coffre holds `index.json`: it is read once,
//!   written as the journal, and renamed `index.json.migrated`.
//! - A PKI this process may not write (read-only media, a directory
//!   without write permission) is read under a shared lock, and nothing on
//!   disk is changed: a torn last line is dropped in memory only, an
//!   `index.json` is read as it is. Changing the PKI then fails on the
//!   lock, as it must.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

mod records;

pub(crate) use records::{parse_lines, Record};
pub use records::{Index, IndexEntry, Kind, Status};

use super::layout::{Layout, CERT_MODE};
use crate::error::{Error, Result};
use crate::types::{Serial, Timestamp};
use crate::util::{read_file, write_atomic};

/// Version of the `index.json` format of older PKIs, read when migrating.
pub const INDEX_FORMAT: u32 = 1;
/// Version of the journal format written by this crate.
pub const JOURNAL_FORMAT: u32 = records::JOURNAL_FORMAT;
/// Largest journal read, as a guard against a file that is not ours
/// (a million certificates take about 400 MB).
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// Identity of the journal file read: a compaction by another process
/// replaces it, and then it is read again from the start. The store keeps
/// the file it read open (see [`Seen`]), so that its inode cannot be freed
/// and given to the file that replaces it: an identity that was reused
/// would make the store read the new file from the old one's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

fn file_id(meta: &fs::Metadata) -> FileId {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        FileId { dev: 0, ino: 0 }
    }
}

/// The journal file last read: its identity, and the file itself, held
/// open only so that its identity stays its own.
#[derive(Debug)]
struct Seen {
    id: FileId,
    _file: File,
}

/// The index in memory, with its look-up tables, and where it is on disk.
#[derive(Debug)]
pub struct Store {
    layout: Layout,
    index: Index,
    /// Positions in `index.certificates` of each id's entries, oldest first.
    by_id: HashMap<String, Vec<usize>>,
    /// Position of each serial ([`Serial::key`]).
    by_serial: HashMap<String, usize>,
    /// The journal file read, and how many bytes of it.
    seen: Option<Seen>,
    offset: u64,
    warnings: Vec<String>,
}

/// Whether `e`, met creating or opening the lock file for writing, says
/// this process may not write the PKI directory.
fn not_writable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
    )
}

/// Proof that the PKI lock is held, for the store's writing methods.
#[derive(Debug)]
pub struct Locked {
    _lock: coffre_fs::LockFile,
}

impl Locked {
    /// Wait for `index.lock`, then hold it.
    fn take(path: &std::path::Path) -> Result<Locked> {
        let lock = coffre_fs::LockFile::lock(path).map_err(|e| lock_error(path, e))?;
        Ok(Locked { _lock: lock })
    }
}

fn lock_error(path: &std::path::Path, e: coffre_fs::LockError) -> Error {
    match e {
        coffre_fs::LockError::Io { path, source } => Error::io("lock", path, source),
        other => Error::io("lock", path, std::io::Error::other(other.to_string())),
    }
}

impl Store {
    fn empty(layout: Layout) -> Store {
        Store {
            layout,
            index: Index {
                format: JOURNAL_FORMAT,
                crl_number: 0,
                certificates: Vec::new(),
            },
            by_id: HashMap::new(),
            by_serial: HashMap::new(),
            seen: None,
            offset: 0,
            warnings: Vec::new(),
        }
    }

    /// A new, empty index for the PKI at `layout`; nothing is written
    /// until [`Store::compact`].
    pub(crate) fn create(layout: Layout) -> Store {
        Store::empty(layout)
    }

    /// Open the index of the PKI at `layout`: migrate an `index.json` of an
    /// older coffre if there is no journal yet, then read the journal.
    pub(crate) fn open(layout: Layout) -> Result<Store> {
        let mut s = Store::empty(layout);
        if !s.layout.journal().exists() && !s.layout.index().exists() {
            return Err(Error::NotFound {
                dir: s.layout.dir().to_path_buf(),
                missing: s.layout.journal(),
            });
        }
        match s.lock() {
            Ok(lock) => drop(lock),
            Err(Error::Io { source, .. }) if not_writable(&source) => s.read_shared()?,
            Err(e) => return Err(e),
        }
        Ok(s)
    }

    /// Read the index of a PKI this process may not write, changing nothing
    /// on disk (see the module's documentation).
    fn read_shared(&mut self) -> Result<()> {
        let path = self.layout.lock();
        // No lock file: a directory made by an older coffre, which no one
        // may have been writing with this one.
        let _shared = match coffre_fs::LockFile::lock_shared(&path) {
            Ok(l) => Some(l),
            Err(coffre_fs::LockError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                None
            }
            Err(e) => return Err(lock_error(&path, e)),
        };
        if !self.layout.journal().exists() && self.layout.index().exists() {
            let n = self.read_index_json()?;
            let msg = format!(
                "{} ({n} certificates) was read as it is: it is moved to the journal {} when a user who may write the directory opens it",
                self.layout.index().display(),
                self.layout.journal().display()
            );
            tracing::warn!("{msg}");
            self.warnings.push(msg);
            return Ok(());
        }
        self.read_journal(false)
    }

    /// Take the PKI lock for a journal that is about to be written whole
    /// ([`Pki::init`](super::Pki::init)): nothing is read.
    pub(crate) fn lock_new(&mut self) -> Result<Locked> {
        Locked::take(&self.layout.lock())
    }

    /// Forget what was read: the next [`Store::lock`] reads the journal
    /// again. After a failed change, so memory does not run ahead of disk.
    pub(crate) fn invalidate(&mut self) {
        self.seen = None;
    }

    /// Take the PKI lock (waiting for other processes), then catch up with
    /// what they wrote.
    pub fn lock(&mut self) -> Result<Locked> {
        let lock = Locked::take(&self.layout.lock())?;
        if !self.layout.journal().exists() && self.layout.index().exists() {
            self.migrate(&lock)?;
        }
        self.catch_up(&lock)?;
        Ok(lock)
    }

    /// Read `index.json` (format 1), write it as the journal, and rename it
    /// so that it is not read again.
    fn migrate(&mut self, lock: &Locked) -> Result<()> {
        let path = self.layout.index();
        self.read_index_json()?;
        self.compact(lock)?;
        let done = self.layout.dir().join(format!(
            "{}.migrated",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("index.json")
        ));
        fs::rename(&path, &done).map_err(|e| Error::io("rename", &path, e))?;
        let msg = format!(
            "migrated {} ({} certificates) to the journal {}; the old file is kept as {}",
            path.display(),
            self.index.certificates.len(),
            self.layout.journal().display(),
            done.display()
        );
        tracing::warn!("{msg}");
        self.warnings.push(msg);
        Ok(())
    }

    /// Read `index.json` (format 1) into memory, in place of what was
    /// there; the number of certificates read.
    fn read_index_json(&mut self) -> Result<usize> {
        let path = self.layout.index();
        let bytes = read_file(self.layout.dir(), &path, MAX_JOURNAL_BYTES)?;
        let old: Index = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            what: "PKI index (JSON)",
            detail: e.to_string(),
        })?;
        if old.format != INDEX_FORMAT {
            return Err(Error::Corrupt {
                path,
                what: "PKI index",
                detail: format!(
                    "format {} is not the supported format {INDEX_FORMAT}",
                    old.format
                ),
            });
        }
        self.reset();
        self.index.crl_number = old.crl_number;
        let n = old.certificates.len();
        for e in old.certificates {
            self.insert(e);
        }
        Ok(n)
    }

    fn reset(&mut self) {
        self.index.certificates.clear();
        self.index.crl_number = 0;
        self.index.format = JOURNAL_FORMAT;
        self.by_id.clear();
        self.by_serial.clear();
        self.seen = None;
        self.offset = 0;
    }

    /// Read what was appended since the last look (everything, if the
    /// journal was replaced by a compaction). Runs under the lock, so no
    /// writer is mid-line: a last line without its newline was cut short.
    fn catch_up(&mut self, _lock: &Locked) -> Result<()> {
        self.read_journal(true)
    }

    /// [`Store::catch_up`]; `repair`: cut a torn last line off the file
    /// (only under the exclusive lock), or else only drop it in memory.
    fn read_journal(&mut self, repair: bool) -> Result<()> {
        let path = self.layout.journal();
        let mut f = File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotFound {
                    dir: self.layout.dir().to_path_buf(),
                    missing: path.clone(),
                }
            } else {
                Error::io("read", &path, e)
            }
        })?;
        let meta = f.metadata().map_err(|e| Error::io("read", &path, e))?;
        if meta.len() > MAX_JOURNAL_BYTES {
            return Err(Error::TooLarge {
                path,
                limit: MAX_JOURNAL_BYTES,
            });
        }
        let id = file_id(&meta);
        if self.seen.as_ref().map(|s| s.id) != Some(id) || meta.len() < self.offset {
            self.reset();
        }
        let no_header = || Error::Corrupt {
            path: path.clone(),
            what: "PKI journal",
            detail: "it holds no whole line, not even its header (the file is empty or its \
                     first line was cut short), so the certificates it listed are unknown; \
                     restore index.jsonl from a backup"
                .into(),
        };
        if meta.len() == 0 && self.offset == 0 {
            return Err(no_header());
        }
        if meta.len() == self.offset {
            self.hold(id, f);
            return Ok(());
        }
        f.seek(SeekFrom::Start(self.offset))
            .map_err(|e| Error::io("read", &path, e))?;
        let mut buf = Vec::with_capacity((meta.len() - self.offset) as usize);
        f.read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &path, e))?;
        let (records, used, torn) =
            parse_lines(&buf, self.offset == 0).map_err(|(n, d)| Error::Corrupt {
                path: path.clone(),
                what: "PKI journal",
                detail: format!("line {} after byte {}: {d}", n + 1, self.offset),
            })?;
        if self.offset == 0 && records.is_empty() {
            // Nothing to keep: refuse rather than append to a journal that
            // would have no header (and never open again).
            return Err(no_header());
        }
        for r in records {
            self.apply(r);
        }
        let good = self.offset + used as u64;
        if torn {
            // Only whole lines are kept: the cut one is dropped, and the
            // file is truncated so that the next append starts a line.
            let msg = format!(
                "{}: the last line was cut short ({} bytes, a write interrupted); it was dropped, the {} entries before it are intact",
                path.display(),
                buf.len() - used,
                self.index.certificates.len()
            );
            tracing::warn!("{msg}");
            self.warnings.push(msg);
            if repair {
                let w = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io("write", &path, e))?;
                w.set_len(good).map_err(|e| Error::io("write", &path, e))?;
                w.sync_all().map_err(|e| Error::io("write", &path, e))?;
            }
        }
        self.offset = good;
        self.hold(id, f);
        Ok(())
    }

    /// Remember `file` as the journal read (see [`FileId`]).
    fn hold(&mut self, id: FileId, file: File) {
        if self.seen.as_ref().map(|s| s.id) != Some(id) {
            self.seen = Some(Seen { id, _file: file });
        }
    }

    fn apply(&mut self, r: Record) {
        match r {
            Record::Header { format, crl_number } => {
                self.index.format = format;
                self.index.crl_number = crl_number;
            }
            Record::Issue(e) => self.insert(e),
            Record::Revoke { serial, at } => {
                if let Some(&i) = self.by_serial.get(serial.key()) {
                    let e = &mut self.index.certificates[i];
                    e.status = Status::Revoked;
                    e.revoked_at = Some(at);
                }
            }
        }
    }

    pub(crate) fn insert(&mut self, e: IndexEntry) {
        let i = self.index.certificates.len();
        self.by_id.entry(e.id.clone()).or_default().push(i);
        self.by_serial.insert(e.serial.key().to_owned(), i);
        self.index.certificates.push(e);
    }

    /// The journal file.
    pub fn path(&self) -> PathBuf {
        self.layout.journal()
    }

    /// Everything, as of the last read or change.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// What was repaired or migrated when the journal was read.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The entry with this serial.
    pub fn by_serial(&self, serial: &Serial) -> Option<&IndexEntry> {
        self.by_serial
            .get(serial.key())
            .map(|&i| &self.index.certificates[i])
    }

    /// Every entry of `id`, oldest first.
    pub fn by_id(&self, id: &str) -> impl Iterator<Item = &IndexEntry> {
        self.by_id
            .get(id)
            .into_iter()
            .flatten()
            .map(|&i| &self.index.certificates[i])
    }

    /// Add entries: one write and one sync for all of them.
    pub(crate) fn append(&mut self, _lock: &Locked, entries: Vec<IndexEntry>) -> Result<()> {
        let records: Vec<Record> = entries.into_iter().map(Record::Issue).collect();
        self.append_records(records)
    }

    fn append_records(&mut self, records: Vec<Record>) -> Result<()> {
        let path = self.layout.journal();
        let mut buf = Vec::new();
        for r in &records {
            serde_json::to_writer(&mut buf, r).map_err(|e| Error::encoding("journal line", e))?;
            buf.push(b'\n');
        }
        let mut f = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io("write", &path, e))?;
        let written = f
            .write_all(&buf)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io("write", &path, e));
        if let Err(e) = written {
            // Leave no partial line behind (a full disk, for instance).
            let _ = f.set_len(self.offset);
            return Err(e);
        }
        self.offset += buf.len() as u64;
        for r in records {
            self.apply(r);
        }
        Ok(())
    }

    /// Mark the device certificates of id `target`, or of serial `target`,
    /// revoked at `when`, in memory: [`Store::compact`] writes it. `None`
    /// when nothing matches; otherwise the entries this call revoked (empty
    /// when all were revoked already).
    pub(crate) fn revoke(
        &mut self,
        _lock: &Locked,
        target: &str,
        when: Timestamp,
    ) -> Option<Vec<IndexEntry>> {
        let mut positions: Vec<usize> = self.by_id.get(target).cloned().unwrap_or_default();
        if let Some(&i) = Serial::parse(target).and_then(|s| self.by_serial.get(s.key())) {
            if !positions.contains(&i) {
                positions.push(i);
            }
        }
        positions.retain(|&i| self.index.certificates[i].kind == Kind::Device);
        positions.sort_unstable();
        if positions.is_empty() {
            return None;
        }
        let mut revoked = Vec::new();
        for i in positions {
            let e = &mut self.index.certificates[i];
            if e.status == Status::Issued {
                e.status = Status::Revoked;
                e.revoked_at = Some(when);
                revoked.push(e.clone());
            }
        }
        Some(revoked)
    }

    /// Mark, in memory, every issued device certificate of `id` revoked at
    /// `when`, except the one with serial `keep`; the entries revoked.
    pub(crate) fn revoke_except(
        &mut self,
        _lock: &Locked,
        id: &str,
        keep: &Serial,
        when: Timestamp,
    ) -> Vec<IndexEntry> {
        let positions = self.by_id.get(id).cloned().unwrap_or_default();
        let mut revoked = Vec::new();
        for i in positions {
            let e = &mut self.index.certificates[i];
            if e.kind == Kind::Device && e.status == Status::Issued && e.serial.key() != keep.key()
            {
                e.status = Status::Revoked;
                e.revoked_at = Some(when);
                revoked.push(e.clone());
            }
        }
        revoked
    }

    /// Record, in memory, the number of the CRL just written.
    pub(crate) fn set_crl_number(&mut self, _lock: &Locked, n: u64) {
        self.index.crl_number = n;
    }

    /// Rewrite the journal atomically as its header and one line per
    /// certificate (revocations folded in).
    pub(crate) fn compact(&mut self, _lock: &Locked) -> Result<()> {
        let path = self.layout.journal();
        let mut buf = Vec::new();
        let header = Record::Header {
            format: JOURNAL_FORMAT,
            crl_number: self.index.crl_number,
        };
        let mut line = |r: &Record| -> Result<()> {
            serde_json::to_writer(&mut buf, r).map_err(|e| Error::encoding("journal line", e))?;
            buf.push(b'\n');
            Ok(())
        };
        line(&header)?;
        for e in &self.index.certificates {
            line(&Record::Issue(e.clone()))?;
        }
        write_atomic(&path, &buf, CERT_MODE)?;
        let file = File::open(&path).map_err(|e| Error::io("read", &path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("read", &path, e))?;
        self.seen = Some(Seen {
            id: file_id(&meta),
            _file: file,
        });
        self.offset = buf.len() as u64;
        self.index.format = JOURNAL_FORMAT;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
