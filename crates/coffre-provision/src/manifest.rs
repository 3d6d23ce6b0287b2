//! The fleet manifest: one JSON object per line, one line per provisioned
//! device, appended and fsynced as each device is done.

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
    /// "lab" or "offload".
    pub mode: String,
    /// Slot holding the key (8 for lab, a private-key slot for offload).
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
    /// an error naming the line.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: Entry = serde_json::from_str(line).map_err(|e| {
                Error::Manifest(format!(
                    "{} line {} is damaged ({e}); fix or remove that line — the other devices are unaffected",
                    self.path.display(),
                    i + 1
                ))
            })?;
            out.push(e);
        }
        Ok(out)
    }

    /// Append one entry (fsynced).
    pub fn append(&self, e: &Entry) -> Result<()> {
        // Refuse to write after a damaged file: the damage would be hidden.
        self.entries()?;
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        let mut line = serde_json::to_string(e).map_err(|e| Error::Manifest(e.to_string()))?;
        line.push('\n');
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
}
