//! The fleet manifest: one JSON object per line, one line per provisioned
//! device, appended and fsynced as each device is done, or rewritten
//! atomically with a whole batch ([`Manifest::append_batch`]); every writer
//! holds the manifest's lock (`<file>.lock`).
//!
//! A last line cut short (the process was killed while appending it) is
//! not an entry: [`Manifest::entries`] leaves it out, and the next
//! [`Manifest::append`] removes it first. A damaged line before the last
//! is an error that names it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One provisioned device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Device id (certificate CN, MQTT username).
    pub id: String,
    /// Chip serial number, hex.
    pub chip_serial: String,
    /// "lab", "offload" or "factory" (a Trust&GO part's own chain).
    pub mode: String,
    /// Slot holding the key (8 for lab, a private-key slot for offload, 0
    /// for factory).
    pub key_slot: u8,
    /// Public key X‖Y, hex.
    pub public_key: String,
    /// SHA-256 fingerprint of the certificate.
    pub cert_fingerprint: String,
    /// Certificate file.
    pub cert_path: PathBuf,
    /// When, RFC 3339.
    pub time: String,
    /// Chip image, for emulated chips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<PathBuf>,
}

/// A manifest file.
#[derive(Debug, Clone)]
pub struct Manifest {
    path: PathBuf,
}

impl Manifest {
    /// The manifest at `path` (created on first append).
    pub fn at(path: impl Into<PathBuf>) -> Manifest {
        Manifest { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every entry; a missing file is an empty manifest, a damaged line is
    /// an error naming the line, a last line cut short is left out.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        Ok(self.read()?.0)
    }

    /// The entries, and the length of the file's whole lines when its last
    /// line was cut short.
    fn read(&self) -> Result<(Vec<Entry>, Option<usize>)> {
        let bytes = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
            Err(source) => {
                return Err(Error::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        let mut start = 0;
        let mut n = 0;
        while start < bytes.len() {
            let rest = &bytes[start..];
            let (line, next, whole) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], start + end + 1, true),
                None => (rest, bytes.len(), false),
            };
            n += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                start = next;
                continue;
            }
            match serde_json::from_slice::<Entry>(line) {
                Ok(e) => out.push(e),
                // Cut short by a kill: not an entry.
                Err(_) if !whole => return Ok((out, Some(start))),
                Err(e) => {
                    return Err(Error::Manifest(format!(
                        "{} line {n} is damaged ({e}); fix or remove that line — the other devices are unaffected",
                        self.path.display(),
                    )))
                }
            }
            start = next;
        }
        // A complete entry whose newline was not written yet.
        let unterminated = !bytes.is_empty() && bytes.last() != Some(&b'\n');
        Ok((out, unterminated.then_some(bytes.len())))
    }

    /// The lock every writer of this manifest takes (`<file>.lock`): an
    /// append and a batch by two processes must not lose each other's lines.
    fn lock(&self) -> Result<coffre_fs::LockFile> {
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let mut lock = self.path.as_os_str().to_owned();
        lock.push(".lock");
        coffre_fs::LockFile::lock(Path::new(&lock)).map_err(|e| match e {
            coffre_fs::LockError::Io { path, source } => Error::Io { path, source },
            other => Error::Manifest(other.to_string()),
        })
    }

    /// Add many entries at once: the file is read, the new entries replace
    /// any entry with the same id (a part registered again) and are added
    /// after the others, and the whole file is rewritten atomically
    /// (temporary file, fsync, rename) under the manifest's lock — one sync
    /// for the batch instead of one per entry. A damaged file is an error
    /// and is left as it is; a last line cut short is dropped.
    pub fn append_batch(&self, new: &[Entry]) -> Result<()> {
        let _lock = self.lock()?;
        let (old, _) = self.read()?;
        let ids: std::collections::HashSet<&str> = new.iter().map(|e| e.id.as_str()).collect();
        let mut text = String::new();
        for e in old
            .iter()
            .filter(|e| !ids.contains(e.id.as_str()))
            .chain(new)
        {
            text.push_str(&serde_json::to_string(e).map_err(|e| Error::Manifest(e.to_string()))?);
            text.push('\n');
        }
        coffre_fs::write_atomic(&self.path, text.as_bytes(), 0o644).map_err(|source| Error::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Append one entry (fsynced), under the manifest's lock. A last line
    /// cut short is removed first.
    pub fn append(&self, e: &Entry) -> Result<()> {
        let _lock = self.lock()?;
        // Refuse to write after a damaged file: the damage would be hidden.
        let (_, torn) = self.read()?;
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut line = serde_json::to_string(e).map_err(|e| Error::Manifest(e.to_string()))?;
        line.push('\n');
        if let Some(keep) = torn {
            let len = f.metadata().map_err(io)?.len();
            if keep as u64 == len {
                // The last entry is whole; only its newline is missing.
                line.insert(0, '\n');
            } else {
                f.set_len(keep as u64).map_err(io)?;
            }
        }
        f.write_all(line.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.into(),
            chip_serial: "0123".into(),
            mode: "lab".into(),
            key_slot: 8,
            public_key: "ab".into(),
            cert_fingerprint: "AA:BB".into(),
            cert_path: "x.pem".into(),
            time: "2026-01-01T00:00:00Z".into(),
            image: None,
        }
    }

    #[test]
    fn append_and_read_back() {
        let d = tempfile::tempdir().unwrap();
        let m = Manifest::at(d.path().join("fleet.jsonl"));
        assert!(m.entries().unwrap().is_empty());
        m.append(&entry("a")).unwrap();
        m.append(&entry("b")).unwrap();
        let e = m.entries().unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].id, "b");
    }

    #[test]
    fn a_batch_replaces_entries_of_the_same_id_and_keeps_the_others() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fleet.jsonl");
        let m = Manifest::at(&p);
        m.append(&entry("a")).unwrap();
        m.append(&entry("b")).unwrap();
        let mut b2 = entry("b");
        b2.mode = "factory".into();
        m.append_batch(&[b2.clone(), entry("c")]).unwrap();
        assert_eq!(m.entries().unwrap(), vec![entry("a"), b2, entry("c")]);
        // No temporary file left; the lock file stays (it is reused).
        let mut names: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["fleet.jsonl", "fleet.jsonl.lock"]);
        // A damaged file is left as it is.
        let mut t = std::fs::read_to_string(&p).unwrap();
        t.insert_str(0, "{broken\n");
        std::fs::write(&p, &t).unwrap();
        assert!(m.append_batch(&[entry("d")]).is_err());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), t);
        // A write that fails (the directory is gone) is an error.
        let gone = Manifest::at(d.path().join("f").join("x.jsonl"));
        std::fs::write(d.path().join("f"), b"a file, not a directory").unwrap();
        assert!(gone.append_batch(&[entry("e")]).is_err());
    }

    #[test]
    fn damaged_manifest_is_reported_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fleet.jsonl");
        let m = Manifest::at(&p);
        m.append(&entry("a")).unwrap();
        let mut t = std::fs::read_to_string(&p).unwrap();
        t.push_str("{\"id\": \"b\", trunc\n");
        std::fs::write(&p, t).unwrap();
        let e = m.entries().unwrap_err().to_string();
        assert!(e.contains("line 2 is damaged"), "{e}");
        assert!(m.append(&entry("c")).is_err());
    }

    #[test]
    fn a_last_line_cut_short_is_dropped_and_replaced() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fleet.jsonl");
        let m = Manifest::at(&p);
        m.append(&entry("a")).unwrap();
        let whole = std::fs::read(&p).unwrap();
        let mut t = whole.clone();
        t.extend_from_slice(b"{\"id\": \"b\", \"chip_ser");
        std::fs::write(&p, &t).unwrap();
        assert_eq!(m.entries().unwrap(), vec![entry("a")]);
        m.append(&entry("b")).unwrap();
        assert_eq!(m.entries().unwrap(), vec![entry("a"), entry("b")]);
        assert!(std::fs::read_to_string(&p).unwrap().ends_with("}\n"));
        // A whole last entry without its newline is kept.
        let mut t = std::fs::read(&p).unwrap();
        t.pop();
        std::fs::write(&p, &t).unwrap();
        assert_eq!(m.entries().unwrap().len(), 2);
        m.append(&entry("c")).unwrap();
        let ids: Vec<_> = m.entries().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }
}
