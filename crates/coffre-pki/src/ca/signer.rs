//! The rcgen adapter: the CA's P-256 key as rcgen's signer, the subject
//! keys, and the certificate parameters every leaf shares.

use p256::ecdsa::{signature::Signer, Signature, SigningKey as EcdsaKey};
use p256::PublicKey;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose,
    PublicKeyData, SerialNumber, SignatureAlgorithm,
};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::types::Timestamp;
use crate::util::{cert_facts, key_identifier, public_key_uncompressed, random_serial, CertFacts};

/// A P-256 key as rcgen's signer: ECDSA-SHA256, DER signature.
pub(crate) struct P256Signer<'a> {
    key: &'a EcdsaKey,
    point: Vec<u8>,
}

impl<'a> P256Signer<'a> {
    pub(crate) fn new(key: &'a EcdsaKey) -> Self {
        let point = public_key_uncompressed(&PublicKey::from(key.verifying_key()));
        P256Signer { key, point }
    }
}

impl PublicKeyData for P256Signer<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.point
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

impl rcgen::SigningKey for P256Signer<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        let sig: Signature = self.key.sign(msg);
        Ok(sig.to_der().as_bytes().to_vec())
    }
}

/// A subject's public key, for rcgen.
struct SubjectKey(Vec<u8>);

impl PublicKeyData for SubjectKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// The name `CN=<cn>`, the only subject form coffre issues.
pub(crate) fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// Map an rcgen error to an encoding error about `what`.
pub(crate) fn rcgen_err(what: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::encoding(what, e)
}

/// The CA's private key, or why this process cannot use it.
pub(crate) enum CaKey {
    /// Read and checked against the CA certificate (zeroized on drop by
    /// p256).
    Loaded(EcdsaKey),
    /// `ca.key.pem` (the path) may not be read by this process (another
    /// user's PKI): the PKI can be read and shown, but not signed with.
    Unreadable(std::path::PathBuf),
}

/// The CA as a signer: its key, its public key (the certificate's), its
/// certificate and the facts read from it.
pub(crate) struct CaSigner {
    pub(crate) key: CaKey,
    pub(crate) public_key: PublicKey,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) facts: CertFacts,
    pub(crate) name: String,
    pub(crate) key_id: Vec<u8>,
}

impl CaSigner {
    /// The private key, or the error that kept it from being read.
    pub(crate) fn key(&self) -> Result<&EcdsaKey> {
        match &self.key {
            CaKey::Loaded(k) => Ok(k),
            CaKey::Unreadable(path) => Err(Error::io(
                "read",
                path,
                std::io::ErrorKind::PermissionDenied.into(),
            )),
        }
    }

    /// The CA as rcgen's issuer.
    pub(crate) fn issuer(&self) -> Result<Issuer<'static, P256Signer<'_>>> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&self.name);
        params.key_identifier_method = KeyIdMethod::PreSpecified(self.key_id.clone());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Ok(Issuer::new(params, P256Signer::new(self.key()?)))
    }

    /// Sign a leaf certificate for `public_key`; DER. Checks that the issuer
    /// name written is the CA certificate's subject, byte for byte.
    pub(crate) fn sign_leaf(
        &self,
        params: &CertificateParams,
        public_key: &PublicKey,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let subject = SubjectKey(public_key_uncompressed(public_key));
        let cert = params
            .signed_by(&subject, &self.issuer()?)
            .map_err(rcgen_err(what))?;
        let der = cert.der().to_vec();
        let facts = cert_facts(&der).map_err(|d| Error::encoding(what, d))?;
        if facts.issuer_raw != self.facts.subject_raw {
            return Err(Error::encoding(
                what,
                "the issuer name does not match the CA certificate's subject",
            ));
        }
        Ok(der)
    }
}

/// Check a CA certificate read from disk, beyond what parsing accepts: one
/// DER certificate and nothing after it, its self-signature verifies with
/// the CA key (a changed byte anywhere breaks it), it says CA:TRUE, and
/// `now` is within its validity. The reason, when it fails.
pub(crate) fn check_ca_cert(
    der: &[u8],
    facts: &CertFacts,
    key: &p256::ecdsa::VerifyingKey,
    now: Timestamp,
) -> std::result::Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    if facts.der_len != der.len() {
        return Err(format!(
            "{} bytes follow the certificate",
            der.len() - facts.der_len
        ));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let signed = Signature::from_der(&cert.signature_value.data)
        .is_ok_and(|sig| key.verify(cert.tbs_certificate.as_ref(), &sig).is_ok());
    if !signed {
        return Err(
            "its signature does not verify with the CA key: the certificate was altered".into(),
        );
    }
    if !cert.is_ca() {
        return Err("it is not a CA certificate (no basicConstraints CA:TRUE)".into());
    }
    if facts.not_after < now.get() {
        return Err(format!(
            "it expired on {}, so the broker refuses every certificate it issued",
            Timestamp::new(facts.not_after)
        ));
    }
    if facts.not_before > now.get() + time::Duration::days(1) {
        return Err(format!(
            "it is not valid before {}; check the clock",
            Timestamp::new(facts.not_before)
        ));
    }
    Ok(())
}

/// What every leaf shares: CN, a random serial, the validity, CA:FALSE,
/// digitalSignature, the subject and authority key ids.
pub(crate) fn leaf_params(
    cn: &str,
    start: OffsetDateTime,
    end: OffsetDateTime,
    public_key: &PublicKey,
) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    p.not_before = start;
    p.not_after = end;
    // ExplicitNoCa writes basicConstraints CA:FALSE and the subject key id.
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(public_key));
    p.use_authority_key_identifier_extension = true;
    p
}

/// Is the certificate's subject exactly `CN=<cn>` as rcgen writes it?
pub(crate) fn subject_is_cn_only(facts: &CertFacts, cn: &str) -> bool {
    // DER of Name ::= SEQUENCE { SET { SEQUENCE { OID cn, UTF8String } } }, as
    // rcgen writes it.
    let atv = [
        &[0x06, 0x03, 0x55, 0x04, 0x03][..],
        &crate::csr::tlv(0x0C, cn.as_bytes()),
    ]
    .concat();
    let expected = crate::csr::tlv(0x30, &crate::csr::tlv(0x31, &crate::csr::tlv(0x30, &atv)));
    facts.subject_raw == expected
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn leaf_is_signed_by_the_ca_and_names_it() {
        let key = EcdsaKey::random(&mut OsRng);
        let pk = PublicKey::from(key.verifying_key());
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        // A self-signed CA from the same adapter.
        let mut ca = CertificateParams::default();
        ca.distinguished_name = dn("test CA");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.not_before = now;
        ca.not_after = now + time::Duration::days(1);
        ca.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        let cert = ca.self_signed(&P256Signer::new(&key)).unwrap();
        let facts = cert_facts(cert.der()).unwrap();
        assert!(subject_is_cn_only(&facts, "test CA"));
        assert!(!subject_is_cn_only(&facts, "other"));
        let signer = CaSigner {
            key_id: key_identifier(&pk),
            key: CaKey::Loaded(key),
            public_key: pk,
            cert_der: cert.der().to_vec(),
            facts,
            name: "test CA".into(),
        };
        let leaf_key = EcdsaKey::random(&mut OsRng);
        let leaf_pk = PublicKey::from(leaf_key.verifying_key());
        let p = leaf_params("dev", now, now + time::Duration::hours(1), &leaf_pk);
        let der = signer.sign_leaf(&p, &leaf_pk, "leaf").unwrap();
        let leaf = cert_facts(&der).unwrap();
        assert_eq!(leaf.issuer_raw, signer.facts.subject_raw);
        assert_eq!(leaf.public_key, Some(leaf_pk));
        assert_eq!(leaf.subject_cn.as_deref(), Some("dev"));
        assert_eq!(leaf.serial.len(), 16);

        // The CA certificate passes its checks; a leaf, or an altered one, fails.
        let now = Timestamp::now();
        let vk = p256::ecdsa::VerifyingKey::from(&signer.public_key);
        check_ca_cert(&signer.cert_der, &signer.facts, &vk, now).unwrap();
        let e = check_ca_cert(&der, &leaf, &vk, now).unwrap_err();
        assert!(e.contains("not a CA"), "{e}");
        let mut altered = signer.cert_der.clone();
        // A byte of the serial number, well inside the signed part.
        altered[20] ^= 0x01;
        let f = cert_facts(&altered).unwrap();
        let e = check_ca_cert(&altered, &f, &vk, now).unwrap_err();
        assert!(e.contains("altered"), "{e}");
        let mut trailing = signer.cert_der.clone();
        trailing.push(0);
        let e = check_ca_cert(&trailing, &signer.facts, &vk, now).unwrap_err();
        assert!(e.contains("follow"), "{e}");
        let later = Timestamp::new(now.get() + time::Duration::days(2));
        let e = check_ca_cert(&signer.cert_der, &signer.facts, &vk, later).unwrap_err();
        assert!(e.contains("expired"), "{e}");
    }
}
