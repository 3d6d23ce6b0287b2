//! Small helpers shared by the modules: hex, fingerprints, PEM, atomic files,
//! P-256 point conversions and certificate facts.

use std::path::Path;

use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::PublicKey;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Lower-case hex of `bytes`, no separators.
pub fn hex(bytes: &[u8]) -> String {
    coffre_proto::hex::Hex::lower(bytes).to_string()
}

/// Upper-case hex of `bytes`, no separators (as `openssl x509 -serial` prints).
pub fn hex_upper(bytes: &[u8]) -> String {
    coffre_proto::hex::Hex::upper(bytes).to_string()
}

/// SHA-256 fingerprint of a DER certificate, as `openssl x509 -fingerprint
/// -sha256` prints it: upper-case hex pairs joined by colons.
pub fn fingerprint_sha256(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A P-256 public key from the chip's 64-byte X‖Y form.
pub fn public_key_from_xy(xy: &[u8; 64]) -> Result<PublicKey> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(xy);
    PublicKey::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidPublicKey)
}

/// The chip's 64-byte X‖Y form of a P-256 public key.
pub fn public_key_to_xy(pk: &PublicKey) -> [u8; 64] {
    let point = pk.to_encoded_point(false);
    let mut xy = [0u8; 64];
    // An uncompressed point of a valid public key is 0x04 ‖ X ‖ Y.
    xy.copy_from_slice(&point.as_bytes()[1..65]);
    xy
}

/// The 65-byte uncompressed SEC1 encoding of a public key.
pub(crate) fn public_key_uncompressed(pk: &PublicKey) -> Vec<u8> {
    pk.to_encoded_point(false).as_bytes().to_vec()
}

/// Parse a SEC1-encoded point (the BIT STRING of an EC SubjectPublicKeyInfo).
pub(crate) fn public_key_from_sec1(bytes: &[u8]) -> Option<PublicKey> {
    PublicKey::from_sec1_bytes(bytes).ok()
}

/// RFC 7093 method 1 key identifier: the first 160 bits of SHA-256 over the
/// subjectPublicKey bits.
pub(crate) fn key_identifier(pk: &PublicKey) -> Vec<u8> {
    Sha256::digest(public_key_uncompressed(pk))[..20].to_vec()
}

/// A random, positive, 16-byte certificate serial number.
pub(crate) fn random_serial() -> [u8; 16] {
    let mut serial = [0u8; 16];
    OsRng.fill_bytes(&mut serial);
    // Positive, and exactly 16 bytes once DER-encoded (no leading zero byte).
    serial[0] &= 0x7F;
    if serial[0] == 0 {
        serial[0] = 0x01;
    }
    serial
}

/// RFC 3339 text of a time, seconds precision, UTC.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// Decode DER, or the first PEM block with one of `labels`, from `input`.
///
/// Input that starts (after whitespace) with `-----BEGIN` is PEM; anything
/// else is taken as DER.
pub(crate) fn der_or_pem(input: &[u8], labels: &[&str]) -> std::result::Result<Vec<u8>, String> {
    let trimmed = trim_ascii_start(input);
    if trimmed.is_empty() {
        return Err("the file is empty".into());
    }
    if !trimmed.starts_with(b"-----BEGIN") {
        return Ok(input.to_vec());
    }
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(trimmed).map_err(|e| format!("bad PEM: {e}"))?;
    if pem.contents.is_empty() {
        // Found by the pki_files fuzz target: a BEGIN/END pair around no
        // base64 at all gave DER of no bytes.
        Err(format!("the PEM block '{}' holds no data", pem.label))
    } else if labels.iter().any(|l| *l == pem.label) {
        Ok(pem.contents)
    } else {
        Err(format!(
            "PEM label is {:?}, expected {}",
            pem.label,
            labels.join(" or ")
        ))
    }
}

/// The subject key identifier of a DER certificate, if it has one.
pub fn subject_key_id(der: &[u8]) -> Option<Vec<u8>> {
    cert_facts(der).ok().and_then(|f| f.subject_key_id)
}

/// A certificate from DER or PEM bytes.
pub fn der_or_pem_cert(input: &[u8]) -> Result<Vec<u8>> {
    der_or_pem(input, &["CERTIFICATE"]).map_err(Error::BadCertificate)
}

fn trim_ascii_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// PEM text of DER bytes under `label`, LF line endings.
pub fn to_pem(label: &str, der: &[u8]) -> String {
    use p256::pkcs8::der::pem::{encode_string, LineEnding};
    // Encoding only fails for an invalid label; ours are constants.
    encode_string(label, LineEnding::LF, der).unwrap_or_default()
}

/// Write `bytes` to `path` atomically (temporary file, fsync, rename, fsync
/// of the directory) with permissions `mode` (Unix); see [`coffre_fs`].
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    coffre_fs::write_atomic(path, bytes, mode).map_err(|e| Error::io("write", path, e))
}

/// Read at most `limit` bytes of `path`; a longer file (or a device that
/// never ends, such as `/dev/zero`) is [`Error::TooLarge`].
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>> {
    coffre_fs::read_limited(path, limit).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Error::TooLarge {
                path: path.to_path_buf(),
                limit,
            }
        } else {
            Error::io("read", path, e)
        }
    })
}

/// Largest key, certificate, CSR or CRL file read (a CRL listing 100,000
/// serials is about 4 MB).
pub const MAX_PEM_BYTES: u64 = 16 << 20;

/// Read a file of the PKI in `dir` (at most `limit` bytes), mapping "not
/// found" and other failures to clear errors.
pub(crate) fn read_file(dir: &Path, path: &Path, limit: u64) -> Result<Vec<u8>> {
    match read_bounded(path, limit) {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NotFound {
                dir: dir.to_path_buf(),
                missing: path.to_path_buf(),
            })
        }
        other => other,
    }
}

/// Facts about one X.509 certificate, parsed with x509-parser.
#[derive(Debug, Clone)]
pub(crate) struct CertFacts {
    pub subject_cn: Option<String>,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub serial: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The P-256 public key, when the certificate holds one.
    pub public_key: Option<PublicKey>,
    pub subject_key_id: Option<Vec<u8>>,
    pub fingerprint: String,
    /// Length of the certificate's DER encoding.
    pub der_len: usize,
}

/// Parse a DER certificate; trailing bytes after it are allowed and ignored.
pub(crate) fn cert_facts(der: &[u8]) -> std::result::Result<CertFacts, String> {
    use x509_parser::extensions::ParsedExtension;
    let (rest, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| format!("not X.509 DER: {e}"))?;
    let der_len = der.len() - rest.len();
    let ts = |t: &x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| e.to_string())
    };
    let subject_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let bits = cert.public_key().subject_public_key.data.to_vec();
    let is_p256 = cert.public_key().algorithm.algorithm
        == x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
    let public_key = if is_p256 {
        public_key_from_sec1(&bits)
    } else {
        None
    };
    let subject_key_id = cert
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
    Ok(CertFacts {
        subject_cn,
        subject_raw: cert.tbs_certificate.subject.as_raw().to_vec(),
        issuer_raw: cert.tbs_certificate.issuer.as_raw().to_vec(),
        serial: cert.raw_serial().to_vec(),
        not_before: ts(&cert.validity().not_before)?,
        not_after: ts(&cert.validity().not_after)?,
        public_key,
        subject_key_id,
        fingerprint: fingerprint_sha256(&der[..der_len]),
        der_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Found by fuzzing: an empty file was "DER" of no bytes.
    #[test]
    fn an_empty_file_is_no_certificate() {
        for input in [&b""[..], b"  \n"] {
            let e = der_or_pem_cert(input).unwrap_err();
            assert!(e.to_string().contains("empty"), "{e}");
        }
    }

    /// Found by the `pki_files` fuzz target
    /// (fuzz/regressions/pki_files/crash-85fd8b6e…).
    #[test]
    fn a_pem_block_with_no_data_is_no_certificate() {
        let input = b"-----BEGIN CERTIFICATE-----BEGIB\n-----END CERTICATE-----\n";
        let e = der_or_pem_cert(input).unwrap_err();
        assert!(e.to_string().contains("holds no data"), "{e}");
        let e = der_or_pem_cert(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(e.to_string().contains("holds no data"), "{e}");
    }

    #[test]
    fn hex_and_fingerprint() {
        assert_eq!(hex(&[0x00, 0xAB]), "00ab");
        assert_eq!(hex_upper(&[0x0F]), "0F");
        let fp = fingerprint_sha256(b"");
        assert!(fp.starts_with("E3:B0:C4:42"));
        assert_eq!(fp.len(), 32 * 3 - 1);
    }

    #[test]
    fn serials_are_positive_16_bytes() {
        for _ in 0..64 {
            let s = random_serial();
            assert!(s[0] >= 1 && s[0] <= 0x7F);
        }
    }

    #[test]
    fn xy_round_trip() {
        let sk = p256::SecretKey::random(&mut OsRng);
        let pk = sk.public_key();
        let xy = public_key_to_xy(&pk);
        assert_eq!(public_key_from_xy(&xy).unwrap(), pk);
        assert!(matches!(
            public_key_from_xy(&[0u8; 64]),
            Err(Error::InvalidPublicKey)
        ));
    }

    #[test]
    fn atomic_write_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn der_or_pem_detects_pem() {
        let pem = to_pem("CERTIFICATE REQUEST", &[1, 2, 3]);
        assert_eq!(
            der_or_pem(pem.as_bytes(), &["CERTIFICATE REQUEST"]).unwrap(),
            vec![1, 2, 3]
        );
        assert!(der_or_pem(pem.as_bytes(), &["CERTIFICATE"]).is_err());
        assert_eq!(der_or_pem(&[0x30, 0x00], &["X"]).unwrap(), vec![0x30, 0x00]);
    }
}
