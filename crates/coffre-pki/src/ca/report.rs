//! What `coffre pki show` reports: the CA, the broker, every device
//! certificate with its status, the CRL, and the problems found.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use super::revocation::crl_times;
use super::store::{Kind, Status};
use super::Pki;
use crate::error::Result;
use crate::types::{Serial, Timestamp};
use crate::util::{cert_facts, der_or_pem, read_bounded, CertFacts, MAX_PEM_BYTES};

/// Summary of one certificate file, for [`Pki::show`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject CN.
    pub subject: String,
    /// Serial number.
    pub serial: Serial,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: String,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// The file.
    pub path: PathBuf,
}

/// One device certificate, for [`Pki::show`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// Device id (CN, MQTT username).
    pub id: String,
    /// Serial number.
    pub serial: Serial,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: String,
    /// Issued or revoked.
    pub status: Status,
    /// notAfter is in the past.
    pub expired: bool,
    /// notBefore is in the future.
    pub not_yet_valid: bool,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<Timestamp>,
    /// This is the certificate currently in `devices/<id>.crt.pem`.
    pub current: bool,
}

/// The CRL, for [`Pki::show`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlStatus {
    /// The file.
    pub path: PathBuf,
    /// CRL number from the index.
    pub number: u64,
    /// Revoked serials listed.
    pub revoked: usize,
    /// thisUpdate.
    pub this_update: Option<Timestamp>,
    /// nextUpdate.
    pub next_update: Option<Timestamp>,
    /// nextUpdate is in the past: the broker will refuse every client.
    pub expired: bool,
}

/// Everything [`Pki::show`] reports (serialisable for `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PkiStatus {
    /// The PKI directory.
    pub dir: PathBuf,
    /// The CA certificate.
    pub ca: CertSummary,
    /// The broker certificate, if readable.
    pub broker: Option<CertSummary>,
    /// Every device certificate in the index.
    pub devices: Vec<DeviceStatus>,
    /// The CRL.
    pub crl: CrlStatus,
    /// Problems found while reading the directory, each with what to do.
    pub warnings: Vec<String>,
}

pub(crate) fn summary(f: &CertFacts, path: PathBuf) -> CertSummary {
    CertSummary {
        subject: f.subject_cn.clone().unwrap_or_default(),
        serial: Serial::from_der(&f.serial),
        fingerprint_sha256: f.fingerprint.clone(),
        not_before: f.not_before.into(),
        not_after: f.not_after.into(),
        path,
    }
}

impl Pki {
    /// The CA, the broker and every device certificate with its status.
    pub fn show(&self) -> Result<PkiStatus> {
        let now = Timestamp::now();
        let mut warnings = self.store.warnings().to_vec();
        #[cfg(unix)]
        for key in [self.ca_key_path(), self.broker_key_path()] {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = fs::metadata(&key) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    warnings.push(format!(
                        "{} has mode {mode:04o}: other users can read the key; run `chmod 600 {}`",
                        key.display(),
                        key.display()
                    ));
                }
            }
        }
        if self.ca.key().is_err() {
            warnings.push(format!(
                "{} cannot be read by this user: the PKI is shown, but issuing, revoking and writing the CRL need the CA key",
                self.ca_key_path().display()
            ));
        }
        let ca = summary(&self.ca.facts, self.ca_cert_path());
        let broker = match read_bounded(&self.broker_cert_path(), MAX_PEM_BYTES)
            .map_err(|e| e.to_string())
            .and_then(|b| der_or_pem(&b, &["CERTIFICATE"]))
            .and_then(|d| cert_facts(&d))
        {
            Ok(f) => Some(summary(&f, self.broker_cert_path())),
            Err(e) => {
                warnings.push(format!(
                    "cannot read the broker certificate {}: {e}; re-create the PKI with `coffre pki init --force`",
                    self.broker_cert_path().display()
                ));
                None
            }
        };
        let index = self.store.index();
        let mut devices = Vec::new();
        for e in index.certificates.iter().filter(|e| e.kind == Kind::Device) {
            let current = read_bounded(&self.device_cert_path(&e.id), MAX_PEM_BYTES)
                .ok()
                .and_then(|b| der_or_pem(&b, &["CERTIFICATE"]).ok())
                .map(|d| crate::util::fingerprint_sha256(&d) == e.fingerprint_sha256)
                .unwrap_or(false);
            devices.push(DeviceStatus {
                id: e.id.clone(),
                serial: e.serial.clone(),
                fingerprint_sha256: e.fingerprint_sha256.clone(),
                status: e.status,
                expired: e.not_after < now,
                not_yet_valid: e.not_before > now,
                not_before: e.not_before,
                not_after: e.not_after,
                revoked_at: e.revoked_at,
                current,
            });
        }
        let revoked = index
            .certificates
            .iter()
            .filter(|e| e.status == Status::Revoked)
            .count();
        let (this_update, next_update) = match crl_times(&self.crl_path()) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!(
                    "cannot read the CRL {}: {e}; write a new one with `coffre pki crl`",
                    self.crl_path().display()
                ));
                (None, None)
            }
        };
        let crl_expired = next_update.is_some_and(|t| t < now);
        if crl_expired {
            warnings.push(format!(
                "the CRL {} expired: the broker refuses every client; write a new one with `coffre pki crl`",
                self.crl_path().display()
            ));
        }
        Ok(PkiStatus {
            dir: self.dir().to_path_buf(),
            ca,
            broker,
            devices,
            crl: CrlStatus {
                path: self.crl_path(),
                number: index.crl_number,
                revoked,
                this_update,
                next_update,
                expired: crl_expired,
            },
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{InitOptions, IssueOptions};

    #[test]
    fn show_reports_expiry_current_file_and_bad_crl() {
        let d = tempfile::tempdir().unwrap();
        let mut pki = Pki::init(d.path(), &InitOptions::default()).unwrap();
        let (_, pk) = crate::lab::generate_lab_key();
        let now = time::OffsetDateTime::now_utc();
        pki.issue_device(
            "old",
            &pk,
            &IssueOptions {
                not_before: Some(now - time::Duration::days(3)),
                not_after: Some(now - time::Duration::days(1)),
                ..IssueOptions::default()
            },
        )
        .unwrap();
        let s = pki.show().unwrap();
        assert!(s.devices[0].expired && s.devices[0].current);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        fs::remove_file(pki.device_cert_path("old")).unwrap();
        fs::write(pki.crl_path(), b"junk").unwrap();
        let s = pki.show().unwrap();
        assert!(!s.devices[0].current);
        assert!(s.warnings.iter().any(|w| w.contains("coffre pki crl")));
        assert_eq!(s.crl.next_update, None);
    }
}
