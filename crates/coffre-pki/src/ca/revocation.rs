//! Revocation and the CRL Mosquitto reads (`crlfile`).

use std::path::Path;

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use serde::Serialize;
use time::Duration;

use super::layout::CERT_MODE;
use super::signer::{rcgen_err, CaSigner};
use super::store::{IndexEntry, Locked, Status};
use super::Pki;
use crate::error::{Error, Result};
use crate::types::{Serial, Timestamp};
use crate::util::{der_or_pem, read_file, write_atomic, MAX_PEM_BYTES};

/// How long a CRL stays valid (its nextUpdate). OpenSSL, and so Mosquitto,
/// refuse every client once the CRL has expired: refresh it before then
/// with [`Pki::refresh_crl`].
pub const CRL_VALIDITY_DAYS: i64 = 30;

/// What [`Pki::verify`] found, in the order a broker checks: issuer and
/// signature, validity, then the CRL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Signed by this CA, within its validity, not in the CRL.
    Valid,
    /// Not signed by this CA's key (or altered since).
    ForeignIssuer,
    /// notAfter is in the past.
    Expired,
    /// notBefore is in the future.
    NotYetValid,
    /// Listed in the CRL.
    Revoked {
        /// Revocation time the CRL gives.
        at: Timestamp,
    },
}

impl Pki {
    /// Check a certificate (DER or PEM) as a broker with `cafile` and
    /// `crlfile` would: its signature against the CA key, its validity now,
    /// then the CRL on disk, whose own signature is checked first.
    pub fn verify(&self, cert: &[u8]) -> Result<Verdict> {
        let der = der_or_pem(cert, &["CERTIFICATE"]).map_err(Error::BadCertificate)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| Error::BadCertificate(e.to_string()))?;
        if !self.signed_by_ca(x509.tbs_certificate.as_ref(), &x509.signature_value.data) {
            return Ok(Verdict::ForeignIssuer);
        }
        let now = Timestamp::now().get().unix_timestamp();
        if x509.validity().not_after.timestamp() < now {
            return Ok(Verdict::Expired);
        }
        if x509.validity().not_before.timestamp() > now {
            return Ok(Verdict::NotYetValid);
        }
        let path = self.crl_path();
        let corrupt = |detail: String| Error::Corrupt {
            path: path.clone(),
            what: "CRL signed by this CA",
            detail,
        };
        let bytes = read_file(self.dir(), &path, MAX_PEM_BYTES)?;
        let crl_der = der_or_pem(&bytes, &["X509 CRL"]).map_err(corrupt)?;
        let (_, crl) = x509_parser::parse_x509_crl(&crl_der).map_err(|e| corrupt(e.to_string()))?;
        if !self.signed_by_ca(crl.tbs_cert_list.as_ref(), &crl.signature_value.data) {
            return Err(corrupt(
                "its signature does not verify with the CA key".into(),
            ));
        }
        let serial = Serial::from_der(x509.raw_serial());
        let listed = crl
            .iter_revoked_certificates()
            .find(|r| Serial::from_der(r.raw_serial()) == serial)
            .map(|r| r.revocation_date.timestamp());
        Ok(match listed {
            None => Verdict::Valid,
            Some(at) => Verdict::Revoked {
                at: time::OffsetDateTime::from_unix_timestamp(at)
                    .map(Timestamp::new)
                    .unwrap_or_else(|_| Timestamp::now()),
            },
        })
    }

    fn signed_by_ca(&self, tbs: &[u8], signature_der: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        p256::ecdsa::Signature::from_der(signature_der).is_ok_and(|sig| {
            p256::ecdsa::VerifyingKey::from(&self.ca.public_key)
                .verify(tbs, &sig)
                .is_ok()
        })
    }

    /// Revoke every issued device certificate whose id or serial (hex,
    /// colons and case ignored) is `target`, then write a new CRL and
    /// compact the journal. Returns the entries revoked.
    pub fn revoke(&mut self, target: &str) -> Result<Vec<IndexEntry>> {
        let lock = self.store.lock()?;
        let revoked = match self.store.revoke(&lock, target, Timestamp::now()) {
            None => return Err(Error::NotIssued(target.to_owned())),
            Some(r) if r.is_empty() => return Err(Error::AlreadyRevoked(target.to_owned())),
            Some(r) => r,
        };
        // The CRL first: if writing the index then fails, the revocation is
        // already in force at the broker.
        self.write_crl_and_compact(&lock, Timestamp::now())?;
        Ok(revoked)
    }

    /// Revoke every issued certificate of device `id` except `keep`, the
    /// one in use, and write the CRL if any was revoked. For provisioning:
    /// what an interrupted run or a replacement (`force`) left behind must
    /// not stay valid. Returns the entries revoked (often none).
    pub fn revoke_others(&mut self, id: &str, keep: &Serial) -> Result<Vec<IndexEntry>> {
        let lock = self.store.lock()?;
        let revoked = self.store.revoke_except(&lock, id, keep, Timestamp::now());
        if !revoked.is_empty() {
            self.write_crl_and_compact(&lock, Timestamp::now())?;
        }
        Ok(revoked)
    }

    /// Write a new CRL (next number, nextUpdate in [`CRL_VALIDITY_DAYS`])
    /// and compact the journal. Run it before the current CRL's nextUpdate
    /// passes.
    pub fn refresh_crl(&mut self) -> Result<()> {
        self.refresh_crl_at(Timestamp::now())
    }

    /// [`Pki::refresh_crl`] with the CRL dated `this_update` (nextUpdate
    /// [`CRL_VALIDITY_DAYS`] later): a date long past makes an expired
    /// CRL, for tests and demonstrations.
    pub fn refresh_crl_at(&mut self, this_update: Timestamp) -> Result<()> {
        let lock = self.store.lock()?;
        self.write_crl_and_compact(&lock, this_update)
    }

    fn write_crl_and_compact(&mut self, lock: &Locked, this_update: Timestamp) -> Result<()> {
        let done = self
            .write_crl_dated(lock, this_update)
            .and_then(|()| self.store.compact(lock));
        if done.is_err() {
            // Memory holds changes the disk may not: read it again next time.
            self.store.invalidate();
        }
        done
    }

    /// Write the CRL of the index's revoked certificates, numbered one more
    /// than the last.
    pub(crate) fn write_crl(&mut self, lock: &Locked) -> Result<()> {
        self.write_crl_dated(lock, Timestamp::now())
    }

    fn write_crl_dated(&mut self, lock: &Locked, this_update: Timestamp) -> Result<()> {
        let number = self.store.index().crl_number + 1;
        let pem = crl_pem(
            &self.ca,
            self.store.index().certificates.iter(),
            number,
            this_update,
        )?;
        write_atomic(&self.crl_path(), pem.as_bytes(), CERT_MODE)?;
        self.store.set_crl_number(lock, number);
        Ok(())
    }
}

/// The CRL (PEM) listing the revoked entries among `entries`.
pub(crate) fn crl_pem<'a>(
    ca: &CaSigner,
    entries: impl Iterator<Item = &'a IndexEntry>,
    number: u64,
    this_update: Timestamp,
) -> Result<String> {
    let revoked_certs = entries
        .filter(|e| e.status == Status::Revoked)
        .map(|e| RevokedCertParams {
            serial_number: SerialNumber::from_slice(&e.serial.to_bytes()),
            revocation_time: e.revoked_at.unwrap_or(this_update).get(),
            reason_code: None,
            invalidity_date: None,
        })
        .collect();
    let params = CertificateRevocationListParams {
        this_update: this_update.get(),
        next_update: this_update.get() + Duration::days(CRL_VALIDITY_DAYS),
        crl_number: SerialNumber::from(number),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(ca.key_id.clone()),
    };
    let crl = params.signed_by(&ca.issuer()?).map_err(rcgen_err("CRL"))?;
    crl.pem().map_err(rcgen_err("CRL"))
}

/// thisUpdate and nextUpdate of the CRL at `path`.
pub fn crl_times(
    path: &Path,
) -> std::result::Result<(Option<Timestamp>, Option<Timestamp>), String> {
    let bytes = crate::util::read_bounded(path, MAX_PEM_BYTES).map_err(|e| e.to_string())?;
    let der = der_or_pem(&bytes, &["X509 CRL"])?;
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| e.to_string())?;
    let ts = |t: &x509_parser::time::ASN1Time| {
        time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .ok()
            .map(Timestamp::new)
    };
    Ok((
        ts(&crl.last_update()),
        crl.next_update().as_ref().and_then(ts),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::{InitOptions, IssueOptions};

    #[test]
    fn crl_lists_exactly_the_revoked_serials() {
        let d = tempfile::tempdir().unwrap();
        let mut pki = Pki::init(d.path(), &InitOptions::default()).unwrap();
        let (_, pk) = crate::lab::generate_lab_key();
        let a = pki
            .issue_device("a", &pk, &IssueOptions::default())
            .unwrap();
        let b = pki
            .issue_device("b", &pk, &IssueOptions::default())
            .unwrap();
        pki.revoke("a").unwrap();
        let der = der_or_pem(&std::fs::read(pki.crl_path()).unwrap(), &["X509 CRL"]).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        let listed: Vec<_> = crl
            .iter_revoked_certificates()
            .map(|r| crate::types::Serial::from_der(r.raw_serial()))
            .collect();
        assert_eq!(listed, vec![a.serial]);
        assert!(!listed.contains(&b.serial));
        let (this, next) = crl_times(&pki.crl_path()).unwrap();
        assert_eq!(
            next.unwrap().get() - this.unwrap().get(),
            Duration::days(CRL_VALIDITY_DAYS)
        );
        assert!(crl_times(&d.path().join("missing")).is_err());
    }

    #[test]
    fn verify_checks_signature_validity_and_crl() {
        let d = tempfile::tempdir().unwrap();
        let mut pki = Pki::init(d.path().join("a"), &InitOptions::default()).unwrap();
        let mut other = Pki::init(d.path().join("b"), &InitOptions::default()).unwrap();
        let (_, pk) = crate::lab::generate_lab_key();
        let good = pki
            .issue_device("good", &pk, &IssueOptions::default())
            .unwrap();
        let bad = pki
            .issue_device("bad", &pk, &IssueOptions::default())
            .unwrap();
        let foreign = other
            .issue_device("x", &pk, &IssueOptions::default())
            .unwrap();
        let now = time::OffsetDateTime::now_utc();
        let old = pki
            .issue_device(
                "old",
                &pk,
                &IssueOptions {
                    not_before: Some(now - Duration::days(3)),
                    not_after: Some(now - Duration::days(1)),
                    ..IssueOptions::default()
                },
            )
            .unwrap();
        pki.revoke("bad").unwrap();
        assert_eq!(pki.verify(good.pem.as_bytes()).unwrap(), Verdict::Valid);
        assert!(matches!(
            pki.verify(&bad.der).unwrap(),
            Verdict::Revoked { .. }
        ));
        assert_eq!(pki.verify(&foreign.der).unwrap(), Verdict::ForeignIssuer);
        assert_eq!(pki.verify(&old.der).unwrap(), Verdict::Expired);
        let mut flipped = good.der.clone();
        let n = flipped.len();
        flipped[n / 2] ^= 1;
        assert!(!matches!(pki.verify(&flipped), Ok(Verdict::Valid)));
        // A CRL from another CA is refused rather than trusted.
        std::fs::copy(other.crl_path(), pki.crl_path()).unwrap();
        assert!(matches!(pki.verify(&good.der), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn revoke_others_keeps_only_the_certificate_in_use() {
        let d = tempfile::tempdir().unwrap();
        let mut pki = Pki::init(d.path(), &InitOptions::default()).unwrap();
        let (_, pk) = crate::lab::generate_lab_key();
        let force = IssueOptions {
            force: true,
            ..IssueOptions::default()
        };
        let first = pki.issue_device("dev", &pk, &force).unwrap();
        let second = pki.issue_device("dev", &pk, &force).unwrap();
        let other = pki.issue_device("other", &pk, &force).unwrap();
        let n = pki.index().crl_number;
        let revoked = pki.revoke_others("dev", &second.serial).unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].serial, first.serial);
        assert_eq!(pki.index().crl_number, n + 1);
        assert!(matches!(
            pki.verify(&first.der).unwrap(),
            Verdict::Revoked { .. }
        ));
        assert_eq!(pki.verify(&second.der).unwrap(), Verdict::Valid);
        assert_eq!(pki.verify(&other.der).unwrap(), Verdict::Valid);
        // Nothing left to revoke: no new CRL.
        assert!(pki.revoke_others("dev", &second.serial).unwrap().is_empty());
        assert_eq!(pki.index().crl_number, n + 1);
    }
}
