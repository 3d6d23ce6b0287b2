//! Issuing device certificates, from a public key or from a CSR.

use std::path::PathBuf;

use p256::PublicKey;
use rcgen::{ExtendedKeyUsagePurpose, SerialNumber};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::layout::CERT_MODE;
use super::signer::leaf_params;
use super::store::{IndexEntry, Kind, Status};
use super::{Pki, BACKDATE_SECONDS};
use crate::error::{Error, Result};
use crate::types::{Serial, Timestamp};
use crate::util::{cert_facts, random_serial, write_atomic, CertFacts};

/// Options of [`Pki::issue_device`] and [`Pki::issue_from_csr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueOptions {
    /// Validity in days from `not_before`; capped at the CA's own notAfter
    /// unless `not_after` is given.
    pub validity_days: u32,
    /// Override of notBefore (default: now minus [`BACKDATE_SECONDS`]).
    pub not_before: Option<OffsetDateTime>,
    /// Override of notAfter; lets tests issue expired certificates.
    pub not_after: Option<OffsetDateTime>,
    /// Replace an existing `devices/<id>.crt.pem`. The old certificate stays
    /// valid until it is revoked by serial.
    pub force: bool,
}

impl Default for IssueOptions {
    fn default() -> Self {
        IssueOptions {
            validity_days: 365,
            not_before: None,
            not_after: None,
            force: false,
        }
    }
}

/// A certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCert {
    /// Subject CN (device id).
    pub id: String,
    /// Serial number.
    pub serial: Serial,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: String,
    /// notBefore.
    pub not_before: Timestamp,
    /// notAfter.
    pub not_after: Timestamp,
    /// Where it was written.
    pub path: PathBuf,
    /// PEM text.
    pub pem: String,
    /// DER bytes.
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// Check that `id` is usable as a CN, an MQTT username and a file name.
pub fn validate_id(id: &str) -> Result<()> {
    let err = |reason| {
        Err(Error::InvalidId {
            id: id.to_owned(),
            reason,
        })
    };
    if id.is_empty() {
        return err("it is empty");
    }
    if id.len() > 64 {
        return err("it is longer than 64 characters");
    }
    if id.starts_with('.') || id.starts_with('-') {
        return err("it starts with '.' or '-'");
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return err("it contains a character outside A-Z a-z 0-9 . _ -");
    }
    Ok(())
}

/// Longest validity coffre issues, in days (100 years): beyond it the
/// dates overflow what X.509 can write (year 9999) or what a person meant.
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

/// Check a number of days of validity.
pub(crate) fn check_days(days: u32) -> Result<()> {
    if days == 0 {
        return Err(Error::InvalidValidity("validity_days is 0".into()));
    }
    if days > MAX_VALIDITY_DAYS {
        return Err(Error::InvalidValidity(format!(
            "{days} days is more than the {MAX_VALIDITY_DAYS} days (100 years) coffre issues"
        )));
    }
    Ok(())
}

/// The validity `opts` asks for, capped at `ca_not_after` when given in days.
pub(crate) fn validity(
    opts: &IssueOptions,
    ca_not_after: OffsetDateTime,
) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let start = opts
        .not_before
        .unwrap_or_else(|| Timestamp::now().get() - Duration::seconds(BACKDATE_SECONDS));
    let end = match opts.not_after {
        Some(t) => t,
        None => {
            check_days(opts.validity_days)?;
            let end = start
                .checked_add(Duration::days(i64::from(opts.validity_days)))
                .ok_or_else(|| {
                    Error::InvalidValidity(format!(
                        "{} plus {} days is past the largest date",
                        Timestamp::new(start),
                        opts.validity_days
                    ))
                })?;
            end.min(ca_not_after)
        }
    };
    if end <= start {
        return Err(Error::InvalidValidity(format!(
            "not_after {} is not later than not_before {}",
            Timestamp::new(end),
            Timestamp::new(start)
        )));
    }
    for t in [start, end] {
        if !(1950..=9999).contains(&t.year()) {
            return Err(Error::InvalidValidity(format!(
                "{} is outside the years 1950 to 9999 X.509 can hold",
                Timestamp::new(t)
            )));
        }
    }
    Ok((start, end))
}

/// The index entry of a certificate just signed.
pub(crate) fn entry(kind: Kind, id: &str, facts: &CertFacts) -> IndexEntry {
    IndexEntry {
        kind,
        id: id.to_owned(),
        serial: Serial::from_der(&facts.serial),
        fingerprint_sha256: facts.fingerprint.clone(),
        status: Status::Issued,
        not_before: facts.not_before.into(),
        not_after: facts.not_after.into(),
        issued_at: Timestamp::now(),
        revoked_at: None,
    }
}

/// One certificate of a batch ([`Pki::issue_batch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRequest {
    /// Device id: CN, MQTT username, file name.
    pub id: String,
    /// The device's public key.
    pub public_key: PublicKey,
}

impl Pki {
    /// Issue a device certificate: CN = `id` (the MQTT username), clientAuth,
    /// digitalSignature, a random 16-byte serial; written to
    /// `devices/<id>.crt.pem`, which is never replaced unless `opts.force`.
    ///
    /// Runs under the PKI lock: any number of processes may issue at once.
    pub fn issue_device(
        &mut self,
        id: &str,
        public_key: &PublicKey,
        opts: &IssueOptions,
    ) -> Result<IssuedCert> {
        let request = IssueRequest {
            id: id.to_owned(),
            public_key: *public_key,
        };
        let mut issued = self.issue_locked(std::slice::from_ref(&request), opts, false)?;
        issued
            .pop()
            .ok_or_else(|| Error::encoding("device certificate", "nothing issued"))
    }

    /// Issue the certificates of a whole batch of devices (a fleet) under
    /// one lock: one journal write and one sync for all of them, and one
    /// file-system sync for all the certificate files.
    ///
    /// All or nothing for the checks: an invalid or repeated id, or an
    /// existing certificate without `opts.force`, fails the batch before
    /// anything is written. A write error afterwards leaves every
    /// certificate of the batch in the index (so each can be revoked).
    ///
    /// A fleet reads each chip's public key (GenKey mode 0x00, or the key
    /// of a chip-signed CSR), then issues them all at once:
    ///
    /// ```
    /// use coffre_pki::ca::{IssueRequest, Verdict};
    /// use coffre_pki::{InitOptions, IssueOptions, Pki};
    ///
    /// # fn main() -> Result<(), coffre_pki::Error> {
    /// let dir = tempfile::tempdir().expect("a temporary directory");
    /// let mut pki = Pki::init(dir.path(), &InitOptions::default())?;
    /// let fleet: Vec<IssueRequest> = (1..=100)
    ///     .map(|i| IssueRequest {
    ///         id: format!("m5go-{i:03}"),
    ///         public_key: coffre_pki::lab::generate_lab_key().1,
    ///     })
    ///     .collect();
    /// let issued = pki.issue_batch(&fleet, &IssueOptions::default())?;
    /// assert_eq!(issued.len(), 100);
    /// assert!(issued[41].path.ends_with("devices/m5go-042.crt.pem"));
    /// // Every device is in the index, so the main PKI can revoke any of them.
    /// pki.revoke("m5go-042")?;
    /// assert!(matches!(pki.verify(&issued[41].der)?, Verdict::Revoked { .. }));
    /// # Ok(())
    /// # }
    /// ```
    pub fn issue_batch(
        &mut self,
        requests: &[IssueRequest],
        opts: &IssueOptions,
    ) -> Result<Vec<IssuedCert>> {
        self.issue_locked(requests, opts, true)
    }

    fn issue_locked(
        &mut self,
        requests: &[IssueRequest],
        opts: &IssueOptions,
        batch: bool,
    ) -> Result<Vec<IssuedCert>> {
        let mut ids = std::collections::HashSet::with_capacity(requests.len());
        for r in requests {
            validate_id(&r.id)?;
            if !ids.insert(r.id.as_str()) {
                return Err(Error::DuplicateId(r.id.clone()));
            }
        }
        let (start, end) = validity(opts, self.ca.facts.not_after)?;
        let lock = self.store.lock()?;
        // Checked under the lock: two processes cannot both find the file
        // absent and both write it.
        for r in requests {
            let path = self.device_cert_path(&r.id);
            if path.exists() && !opts.force {
                return Err(Error::DeviceExists {
                    id: r.id.clone(),
                    path,
                });
            }
        }
        let mut serials = std::collections::HashSet::with_capacity(requests.len());
        let mut issued = Vec::with_capacity(requests.len());
        let mut entries = Vec::with_capacity(requests.len());
        for r in requests {
            let mut params = leaf_params(&r.id, start, end, &r.public_key);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            // Unique within this CA, however unlikely a collision is.
            loop {
                let serial = params
                    .serial_number
                    .as_ref()
                    .map(|s| Serial::from_der(s.as_ref()));
                match serial {
                    Some(s)
                        if self.store.by_serial(&s).is_some()
                            || !serials.insert(s.key().to_owned()) =>
                    {
                        params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
                    }
                    _ => break,
                }
            }
            let der = self
                .ca
                .sign_leaf(&params, &r.public_key, "device certificate")?;
            let facts = cert_facts(&der).map_err(|d| Error::encoding("device certificate", d))?;
            entries.push(entry(Kind::Device, &r.id, &facts));
            issued.push(IssuedCert {
                id: r.id.clone(),
                serial: Serial::from_der(&facts.serial),
                fingerprint_sha256: facts.fingerprint,
                not_before: facts.not_before.into(),
                not_after: facts.not_after.into(),
                path: self.device_cert_path(&r.id),
                pem: crate::util::to_pem("CERTIFICATE", &der),
                der,
            });
        }
        // The index first: a certificate on disk is then always indexed, so
        // it can always be revoked.
        if let Err(e) = self.store.append(&lock, entries) {
            self.store.invalidate();
            return Err(e);
        }
        if batch {
            let files: Vec<_> = issued
                .iter()
                .map(|c| (c.path.clone(), c.pem.clone().into_bytes()))
                .collect();
            coffre_fs::write_atomic_batch(&files, CERT_MODE)
                .map_err(|e| Error::io("write", self.layout.devices(), e))?;
        } else {
            for c in &issued {
                write_atomic(&c.path, c.pem.as_bytes(), CERT_MODE)?;
            }
        }
        drop(lock);
        Ok(issued)
    }

    /// Issue a device certificate from a PKCS#10 CSR (DER or PEM). The CSR's
    /// self-signature is verified first; CN and public key come from it.
    pub fn issue_from_csr(&mut self, csr: &[u8], opts: &IssueOptions) -> Result<IssuedCert> {
        let (cn, public_key) = crate::csr::verify_csr(csr)?;
        self.issue_device(&cn, &public_key, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["m5go", "dev-1", "a.b_c", "A1"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".hidden", "-x", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(
                matches!(validate_id(bad), Err(Error::InvalidId { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn validity_is_capped_and_checked() {
        let now = OffsetDateTime::now_utc();
        let ca_end = now + Duration::days(10);
        let (s, e) = validity(&IssueOptions::default(), ca_end).unwrap();
        assert!(s < now && e == ca_end);
        let opts = IssueOptions {
            validity_days: 1,
            ..IssueOptions::default()
        };
        let (s, e) = validity(&opts, ca_end).unwrap();
        assert_eq!(e - s, Duration::days(1));
        let zero = IssueOptions {
            validity_days: 0,
            ..IssueOptions::default()
        };
        assert!(matches!(
            validity(&zero, ca_end),
            Err(Error::InvalidValidity(_))
        ));
        let backwards = IssueOptions {
            not_before: Some(now),
            not_after: Some(now - Duration::days(1)),
            ..IssueOptions::default()
        };
        assert!(matches!(
            validity(&backwards, ca_end),
            Err(Error::InvalidValidity(_))
        ));
        for days in [MAX_VALIDITY_DAYS + 1, 99_999_999, u32::MAX] {
            let huge = IssueOptions {
                validity_days: days,
                ..IssueOptions::default()
            };
            let e = validity(&huge, ca_end).unwrap_err();
            assert!(e.to_string().contains("100 years"), "{e}");
        }
        let far = IssueOptions {
            not_before: Some(Timestamp::parse("9999-12-01T00:00:00Z").unwrap().get()),
            validity_days: MAX_VALIDITY_DAYS,
            ..IssueOptions::default()
        };
        assert!(matches!(
            validity(&far, OffsetDateTime::now_utc() + Duration::days(999_999)),
            Err(Error::InvalidValidity(_))
        ));
    }
}
