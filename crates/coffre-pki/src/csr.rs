//! PKCS#10 certificate signing requests whose signature is made elsewhere.
//!
//! In offload mode the device's private key lives in the chip and never
//! leaves it. [`build_csr`] encodes the CertificationRequestInfo, hashes it
//! with SHA-256 and hands the 32-byte digest to a callback, which on a device
//! is the chip's external-message Sign command (Nonce 0x43 + Sign 0xA0). The
//! raw 64-byte R‖S it returns becomes a DER `ECDSA-Sig-Value`. The signature
//! is checked against the public key before the request is returned, so a
//! key read from the wrong slot is caught here rather than at the CA.
//!
//! ```
//! use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};
//! use coffre_pki::csr::{build_csr, verify_csr};
//! use coffre_pki::util::public_key_to_xy;
//!
//! let key = SigningKey::random(&mut rand_core::OsRng);
//! let xy = public_key_to_xy(&key.verifying_key().into());
//! let der = build_csr("m5go-01", &xy, |digest: &[u8; 32]| {
//!     let sig: Signature = key.sign_prehash(digest)?;
//!     Ok::<[u8; 64], p256::ecdsa::Error>(sig.to_bytes().into())
//! })
//! .unwrap();
//! let (cn, public_key) = verify_csr(&der).unwrap();
//! assert_eq!(cn, "m5go-01");
//! assert_eq!(public_key_to_xy(&public_key), xy);
//! ```

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use p256::PublicKey;
use sha2::{Digest, Sha256};
use x509_parser::prelude::FromDer;

use crate::error::{Error, Result, SignerError};
use crate::util::{der_or_pem, public_key_from_xy, to_pem};

/// DER of the OID 2.5.4.3 (commonName).
const OID_CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
/// DER of the AlgorithmIdentifier ecdsa-with-SHA256 (1.2.840.10045.4.3.2),
/// parameters absent (RFC 5758).
const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02,
];

/// Encode one DER TLV.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 4);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

/// Encode the CertificationRequestInfo for `cn` and a P-256 public key:
/// version 0, subject `CN=<cn>` (UTF8String), the SubjectPublicKeyInfo,
/// and an empty attribute set.
pub fn certification_request_info(cn: &str, public_key: &PublicKey) -> Result<Vec<u8>> {
    let spki = public_key
        .to_public_key_der()
        .map_err(|e| Error::encoding("SubjectPublicKeyInfo", e))?;
    let atv = seq(&[OID_CN, &tlv(0x0C, cn.as_bytes())]);
    let name = seq(&[&tlv(0x31, &atv)]);
    let version = [0x02, 0x01, 0x00];
    let attributes = [0xA0, 0x00];
    Ok(seq(&[&version, &name, spki.as_bytes(), &attributes]))
}

/// Build a DER PKCS#10 CSR for `cn`, whose private key is held elsewhere.
///
/// `public_key` is the chip's 64-byte X‖Y form. `sign` receives the SHA-256
/// digest of the CertificationRequestInfo and returns R‖S (64 bytes, big
/// endian), as the chip's Sign command does. The result is checked against
/// `public_key` before it is returned.
pub fn build_csr<F, E>(cn: &str, public_key: &[u8; 64], mut sign: F) -> Result<Vec<u8>>
where
    F: FnMut(&[u8; 32]) -> Result<[u8; 64], E>,
    E: Into<SignerError>,
{
    crate::ca::validate_id(cn)?;
    let pk = public_key_from_xy(public_key)?;
    let info = certification_request_info(cn, &pk)?;
    let digest: [u8; 32] = Sha256::digest(&info).into();
    let rs = sign(&digest).map_err(|e| Error::Signer(e.into()))?;
    let sig = Signature::from_slice(&rs).map_err(|_| Error::SignatureMismatch)?;
    VerifyingKey::from(&pk)
        .verify_prehash(&digest, &sig)
        .map_err(|_| Error::SignatureMismatch)?;
    let mut bits = vec![0x00];
    bits.extend_from_slice(sig.to_der().as_bytes());
    Ok(seq(&[&info, ALG_ECDSA_SHA256, &tlv(0x03, &bits)]))
}

/// PEM text (`CERTIFICATE REQUEST`) of a DER CSR.
pub fn csr_pem(der: &[u8]) -> String {
    to_pem("CERTIFICATE REQUEST", der)
}

/// Parse a CSR (DER or PEM), check that it is ECDSA-SHA256 over a P-256 key
/// and that its self-signature verifies; return its CN and public key.
pub fn verify_csr(csr: &[u8]) -> Result<(String, PublicKey)> {
    use x509_parser::certification_request::X509CertificationRequest;
    use x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256;

    let der = der_or_pem(csr, &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"])
        .map_err(Error::BadCsr)?;
    let (_, req) =
        X509CertificationRequest::from_der(&der).map_err(|e| Error::BadCsr(e.to_string()))?;
    if req.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(Error::UnsupportedCsr(format!(
            "signature algorithm {}",
            req.signature_algorithm.algorithm
        )));
    }
    let info = &req.certification_request_info;
    let public_key = PublicKey::from_public_key_der(info.subject_pki.raw).map_err(|_| {
        Error::UnsupportedCsr(format!(
            "public key algorithm {} is not EC P-256",
            info.subject_pki.algorithm.algorithm
        ))
    })?;
    let sig = Signature::from_der(&req.signature_value.data)
        .map_err(|_| Error::BadCsrSignature("the signature is not a DER ECDSA-Sig-Value".into()))?;
    VerifyingKey::from(&public_key)
        .verify(info.raw, &sig)
        .map_err(|_| Error::BadCsrSignature("ECDSA verification failed".into()))?;
    let cn = info
        .subject
        .iter_common_name()
        .next()
        .ok_or_else(|| Error::BadCsr("the subject has no CN".into()))?
        .as_str()
        .map_err(|e| Error::BadCsr(format!("the CN is not a text string: {e}")))?
        .to_owned();
    Ok((cn, public_key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::public_key_to_xy;
    use p256::ecdsa::signature::hazmat::PrehashSigner;
    use p256::ecdsa::SigningKey;

    fn chip() -> (SigningKey, [u8; 64]) {
        let key = SigningKey::random(&mut rand_core::OsRng);
        let xy = public_key_to_xy(&PublicKey::from(key.verifying_key()));
        (key, xy)
    }

    fn signer(
        key: &SigningKey,
    ) -> impl FnMut(&[u8; 32]) -> Result<[u8; 64], p256::ecdsa::Error> + '_ {
        move |d| {
            let s: Signature = key.sign_prehash(d)?;
            Ok(s.to_bytes().into())
        }
    }

    #[test]
    fn der_lengths() {
        assert_eq!(tlv(0x04, &[0; 3]), vec![0x04, 3, 0, 0, 0]);
        assert_eq!(&tlv(0x04, &[0; 200])[..3], &[0x04, 0x81, 200]);
        assert_eq!(&tlv(0x04, &[0; 300])[..4], &[0x04, 0x82, 0x01, 0x2C]);
    }

    #[test]
    fn round_trip_and_digest_is_over_the_info() {
        let (key, xy) = chip();
        let mut seen = None;
        let der = build_csr("dev-1", &xy, |d: &[u8; 32]| {
            seen = Some(*d);
            let s: Signature = key.sign_prehash(d)?;
            Ok::<_, p256::ecdsa::Error>(s.to_bytes().into())
        })
        .unwrap();
        let info = certification_request_info("dev-1", &public_key_from_xy(&xy).unwrap()).unwrap();
        assert_eq!(seen.unwrap(), <[u8; 32]>::from(Sha256::digest(&info)));
        assert!(der.windows(info.len()).any(|w| w == info.as_slice()));
        let (cn, pk) = verify_csr(&der).unwrap();
        assert_eq!(cn, "dev-1");
        assert_eq!(public_key_to_xy(&pk), xy);
        // PEM is accepted too.
        let (cn, _) = verify_csr(csr_pem(&der).as_bytes()).unwrap();
        assert_eq!(cn, "dev-1");
    }

    #[test]
    fn tampered_csr_is_refused() {
        let (key, xy) = chip();
        let mut der = build_csr("dev-1", &xy, signer(&key)).unwrap();
        // Change one letter of the CN: "dev-1" -> "dev-2".
        let pos = der.windows(5).position(|w| w == b"dev-1").unwrap();
        der[pos + 4] = b'2';
        assert!(matches!(verify_csr(&der), Err(Error::BadCsrSignature(_))));
        assert!(matches!(verify_csr(b"not a csr"), Err(Error::BadCsr(_))));
    }

    #[test]
    fn wrong_key_and_failing_signer_are_reported() {
        let (key, _) = chip();
        let (_, other_xy) = chip();
        assert!(matches!(
            build_csr("dev-1", &other_xy, signer(&key)),
            Err(Error::SignatureMismatch)
        ));
        let (_, xy) = chip();
        let err = build_csr("dev-1", &xy, |_: &[u8; 32]| {
            Err::<[u8; 64], _>("chip asleep")
        })
        .unwrap_err();
        assert!(matches!(err, Error::Signer(_)));
        // The chip's own words are the error's source, not repeated in it.
        let source = std::error::Error::source(&err).map(|s| s.to_string());
        assert_eq!(source.as_deref(), Some("chip asleep"));
        assert!(matches!(
            build_csr("dev-1", &xy, |_: &[u8; 32]| Ok::<_, SignerError>([0u8; 64])),
            Err(Error::SignatureMismatch)
        ));
        assert!(matches!(
            build_csr("../x", &xy, signer(&key)),
            Err(Error::InvalidId { .. })
        ));
    }
}
