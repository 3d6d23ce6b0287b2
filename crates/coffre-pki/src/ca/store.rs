//! The index of every certificate the CA issued, with look-ups by device id
//! and by serial.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::CERT_MODE;
use crate::error::{Error, Result};
use crate::types::{Serial, Timestamp};
use crate::util::{read_file, write_atomic};

/// Version of the `index.json` format written by this crate.
pub const INDEX_FORMAT: u32 = 1;

/// What a certificate in the index is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The CA itself.
    Ca,
    /// The MQTT broker (TLS server).
    Broker,
    /// A device (TLS client).
    Device,
}

/// Status of a certificate in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Issued and not revoked.
    Issued,
    /// Revoked: listed in `crl.pem`.
    Revoked,
}

/// One certificate in the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// What it is for.
    pub kind: Kind,
    /// Subject CN (for devices: the device id).
    pub id: String,
    /// Serial number, upper-case hex as `openssl x509 -serial` prints it.
    pub serial: Serial,
    /// SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    /// Issued or revoked.
    pub status: Status,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// When it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
}

/// The content of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Format version ([`INDEX_FORMAT`]).
    pub format: u32,
    /// Number of the last CRL written.
    pub crl_number: u64,
    /// Every certificate issued, oldest first.
    pub certificates: Vec<IndexEntry>,
}

/// The index in memory, with its look-up tables.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    index: Index,
    /// Positions in `index.certificates` of each id's entries, oldest first.
    by_id: HashMap<String, Vec<usize>>,
    /// Position of each serial ([`Serial::key`]).
    by_serial: HashMap<String, usize>,
}

impl Store {
    /// An empty index to be saved at `path`.
    pub(crate) fn create(path: PathBuf) -> Store {
        Store::from_index(
            path,
            Index {
                format: INDEX_FORMAT,
                crl_number: 0,
                certificates: Vec::new(),
            },
        )
    }

    /// Read the index at `path`, of the PKI in `dir`.
    pub(crate) fn open(dir: &Path, path: PathBuf) -> Result<Store> {
        let bytes = read_file(dir, &path)?;
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            path: path.clone(),
            what: "PKI index (JSON)",
            detail: e.to_string(),
        })?;
        if index.format != INDEX_FORMAT {
            return Err(Error::Corrupt {
                path,
                what: "PKI index",
                detail: format!(
                    "format {} is not the supported format {INDEX_FORMAT}",
                    index.format
                ),
            });
        }
        Ok(Store::from_index(path, index))
    }

    fn from_index(path: PathBuf, index: Index) -> Store {
        let mut s = Store {
            path,
            index: Index {
                certificates: Vec::new(),
                ..index
            },
            by_id: HashMap::new(),
            by_serial: HashMap::new(),
        };
        for e in index.certificates {
            s.push(e);
        }
        s
    }

    /// The index file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything, as loaded or last changed.
    pub fn index(&self) -> &Index {
        &self.index
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

    /// Add an entry.
    pub(crate) fn push(&mut self, e: IndexEntry) {
        let i = self.index.certificates.len();
        self.by_id.entry(e.id.clone()).or_default().push(i);
        self.by_serial.insert(e.serial.key().to_owned(), i);
        self.index.certificates.push(e);
    }

    /// Mark the device certificates of id `target`, or of serial `target`,
    /// revoked at `when`. `None` when nothing matches; otherwise the entries
    /// this call revoked (empty when all were revoked already).
    pub(crate) fn revoke(&mut self, target: &str, when: Timestamp) -> Option<Vec<IndexEntry>> {
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

    /// Record the number of the CRL just written.
    pub(crate) fn set_crl_number(&mut self, n: u64) {
        self.index.crl_number = n;
    }

    /// Write the index (atomically).
    pub(crate) fn save(&self) -> Result<()> {
        let mut json =
            serde_json::to_vec_pretty(&self.index).map_err(|e| Error::encoding("index", e))?;
        json.push(b'\n');
        write_atomic(&self.path, &json, CERT_MODE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn entry(id: &str, serial: &str) -> IndexEntry {
        let t = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        IndexEntry {
            kind: Kind::Device,
            id: id.into(),
            serial: Serial::parse(serial).unwrap(),
            fingerprint_sha256: "AA".into(),
            status: Status::Issued,
            not_before: t,
            not_after: t,
            issued_at: t,
            revoked_at: None,
        }
    }

    #[test]
    fn lookups_and_revocation() {
        let d = tempfile::tempdir().unwrap();
        let mut s = Store::create(d.path().join("index.json"));
        s.push(entry("a", "0A01"));
        s.push(entry("b", "0B01"));
        s.push(entry("a", "0A02"));
        assert_eq!(s.by_id("a").count(), 2);
        assert_eq!(s.by_id("nobody").count(), 0);
        assert_eq!(s.by_serial(&Serial::parse("b01").unwrap()).unwrap().id, "b");
        let when = Timestamp::now();
        assert_eq!(s.revoke("nobody", when), None);
        assert_eq!(s.revoke("0a:02", when).unwrap().len(), 1);
        let again = s.revoke("a", when).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].serial.as_str(), "0A01");
        assert_eq!(s.revoke("a", when), Some(Vec::new()));

        s.set_crl_number(7);
        s.save().unwrap();
        let back = Store::open(d.path(), s.path().to_path_buf()).unwrap();
        assert_eq!(back.index(), s.index());
        assert_eq!(back.by_id("a").count(), 2);
    }
}
