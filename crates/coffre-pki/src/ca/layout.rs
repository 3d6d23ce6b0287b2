//! Where each file of a PKI directory lives.
//!
//! | file | content |
//! |---|---|
//! | `ca.key.pem` (0600) | CA private key, PKCS#8 PEM |
//! | `ca.crt.pem` | CA certificate: CA:TRUE (critical), keyCertSign + cRLSign |
//! | `broker.key.pem` (0600) | broker private key, PKCS#8 PEM |
//! | `broker.crt.pem` | broker certificate: serverAuth; SANs localhost, 127.0.0.1, ::1 and the names given |
//! | `devices/<id>.crt.pem` | device certificates: CN = id = MQTT username, clientAuth |
//! | `crl.pem` | v2 CRL signed by the CA, for Mosquitto's `crlfile` |
//! | `index.jsonl` | journal of every certificate issued: serial, id, fingerprint, status, validity (see [`super::store`]) |
//! | `index.lock` | empty; locked (`flock`) while a process reads or changes the journal |
//! | `index.json.migrated` | the index of an older coffre, once migrated to the journal |

use std::path::{Path, PathBuf};

/// CA private key file name.
pub const CA_KEY: &str = "ca.key.pem";
/// CA certificate file name.
pub const CA_CERT: &str = "ca.crt.pem";
/// Broker private key file name.
pub const BROKER_KEY: &str = "broker.key.pem";
/// Broker certificate file name.
pub const BROKER_CERT: &str = "broker.crt.pem";
/// Directory of device certificates.
pub const DEVICES_DIR: &str = "devices";
/// CRL file name.
pub const CRL: &str = "crl.pem";
/// Index file name of older versions, migrated to [`JOURNAL`] when found.
pub const INDEX: &str = "index.json";
/// Journal file name: the index, one JSON line per change.
pub const JOURNAL: &str = "index.jsonl";
/// Lock file name.
pub const LOCK: &str = "index.lock";

/// Permissions of a private key file.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Permissions of a certificate, CRL or index file.
pub(crate) const CERT_MODE: u32 = 0o644;

/// The paths of one PKI directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of the PKI in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }
    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// `ca.key.pem`.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join(CA_KEY)
    }
    /// `ca.crt.pem`.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }
    /// `broker.key.pem`.
    pub fn broker_key(&self) -> PathBuf {
        self.dir.join(BROKER_KEY)
    }
    /// `broker.crt.pem`.
    pub fn broker_cert(&self) -> PathBuf {
        self.dir.join(BROKER_CERT)
    }
    /// `crl.pem`.
    pub fn crl(&self) -> PathBuf {
        self.dir.join(CRL)
    }
    /// `index.json`, the index of older versions.
    pub fn index(&self) -> PathBuf {
        self.dir.join(INDEX)
    }
    /// `index.jsonl`, the journal.
    pub fn journal(&self) -> PathBuf {
        self.dir.join(JOURNAL)
    }
    /// `index.lock`.
    pub fn lock(&self) -> PathBuf {
        self.dir.join(LOCK)
    }
    /// `devices/`.
    pub fn devices(&self) -> PathBuf {
        self.dir.join(DEVICES_DIR)
    }
    /// `devices/<id>.crt.pem` (the id is not checked here).
    pub fn device_cert(&self, id: &str) -> PathBuf {
        self.devices().join(format!("{id}.crt.pem"))
    }
    /// The files whose presence means "a PKI lives here".
    pub fn pki_files(&self) -> Vec<PathBuf> {
        vec![
            self.ca_key(),
            self.ca_cert(),
            self.index(),
            self.journal(),
            self.broker_key(),
            self.broker_cert(),
            self.crl(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let l = Layout::new("/p");
        assert_eq!(l.dir(), Path::new("/p"));
        assert_eq!(l.ca_key(), Path::new("/p/ca.key.pem"));
        assert_eq!(
            l.device_cert("m5go-1"),
            Path::new("/p/devices/m5go-1.crt.pem")
        );
        assert!(l.pki_files().contains(&l.crl()));
        assert!(l.pki_files().iter().all(|p| p.starts_with("/p")));
    }
}
