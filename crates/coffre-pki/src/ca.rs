//! The certificate authority: one directory on disk holding the CA, the
//! broker's certificate, the device certificates, the CRL and an index.
//!
//! Everything is EC P-256 signed with ECDSA-SHA256, and every certificate is
//! X.509 v3 (rustls refuses v1). Layout of a PKI directory:
//!
//! | file | content |
//! |---|---|
//! | `ca.key.pem` (0600) | CA private key, PKCS#8 PEM |
//! | `ca.crt.pem` | CA certificate: CA:TRUE (critical), keyCertSign + cRLSign |
//! | `broker.key.pem` (0600) | broker private key, PKCS#8 PEM |
//! | `broker.crt.pem` | broker certificate: serverAuth; SANs localhost, 127.0.0.1, ::1 and the names given |
//! | `devices/<id>.crt.pem` | device certificates: CN = id = MQTT username, clientAuth |
//! | `crl.pem` | v2 CRL signed by the CA, for Mosquitto's `crlfile` |
//! | `index.json` | every certificate issued: serial, id, fingerprint, status, validity |
//!
//! Files are written atomically (temporary file, then rename); keys are
//! created with mode 0600.
//!
//! ```
//! use coffre_pki::ca::{InitOptions, IssueOptions, Pki};
//! let dir = tempfile::tempdir().unwrap();
//! let mut pki = Pki::init(dir.path(), &InitOptions::default()).unwrap();
//! let (_key, public_key) = coffre_pki::lab::generate_lab_key();
//! let cert = pki.issue_device("m5go-01", &public_key, &IssueOptions::default()).unwrap();
//! assert!(cert.pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! pki.revoke("m5go-01").unwrap();
//! ```

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use p256::ecdsa::{signature::Signer, Signature, SigningKey as EcdsaKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData,
    RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::util::{
    cert_facts, der_or_pem, hex_upper, key_identifier, now, parse_rfc3339, public_key_uncompressed,
    random_serial, read_file, rfc3339, serial_hex, write_atomic, CertFacts,
};

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
/// Index file name.
pub const INDEX: &str = "index.json";
/// How long a CRL stays valid (its nextUpdate). OpenSSL, and so Mosquitto,
/// refuse every client once the CRL has expired: refresh it before then
/// with [`Pki::refresh_crl`].
pub const CRL_VALIDITY_DAYS: i64 = 30;
/// How far back `not_before` is set, to tolerate clocks that run behind.
pub const BACKDATE_SECONDS: i64 = 300;
/// Version of the `index.json` format written by this crate.
pub const INDEX_FORMAT: u32 = 1;

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// Options of [`Pki::init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    /// CN of the CA certificate.
    pub ca_name: String,
    /// Extra names of the broker (DNS names or IP addresses), added to the
    /// SANs `localhost`, `127.0.0.1` and `::1`. The first becomes the CN.
    pub broker_names: Vec<String>,
    /// Validity of the CA and broker certificates, in days.
    pub validity_days: u32,
    /// Replace an existing PKI in the directory.
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            ca_name: "coffre CA".into(),
            broker_names: Vec::new(),
            validity_days: 3650,
            force: false,
        }
    }
}

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

/// One certificate in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// What it is for.
    pub kind: Kind,
    /// Subject CN (for devices: the device id).
    pub id: String,
    /// Serial number, upper-case hex as `openssl x509 -serial` prints it.
    pub serial: String,
    /// SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it.
    pub fingerprint_sha256: String,
    /// Issued or revoked.
    pub status: Status,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// When it was revoked, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// The content of `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Format version ([`INDEX_FORMAT`]).
    pub format: u32,
    /// Number of the last CRL written.
    pub crl_number: u64,
    /// Every certificate issued, oldest first.
    pub certificates: Vec<IndexEntry>,
}

/// A certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedCert {
    /// Subject CN (device id).
    pub id: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// Where it was written.
    pub path: PathBuf,
    /// PEM text.
    pub pem: String,
    /// DER bytes.
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// Summary of one certificate file, for [`Pki::show`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertSummary {
    /// Subject CN.
    pub subject: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// The file.
    pub path: PathBuf,
}

/// One device certificate, for [`Pki::show`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceStatus {
    /// Device id (CN, MQTT username).
    pub id: String,
    /// Serial number, upper-case hex.
    pub serial: String,
    /// SHA-256 fingerprint.
    pub fingerprint_sha256: String,
    /// Issued or revoked.
    pub status: Status,
    /// notAfter is in the past.
    pub expired: bool,
    /// notBefore is in the future.
    pub not_yet_valid: bool,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// When it was revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
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
    /// thisUpdate, RFC 3339.
    pub this_update: Option<String>,
    /// nextUpdate, RFC 3339.
    pub next_update: Option<String>,
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

/// A P-256 key as rcgen's signer: ECDSA-SHA256, DER signature.
struct P256Signer<'a> {
    key: &'a EcdsaKey,
    point: Vec<u8>,
}

impl<'a> P256Signer<'a> {
    fn new(key: &'a EcdsaKey) -> Self {
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

fn dn(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

fn rcgen_err(what: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::encoding(what, e)
}

/// A PKI directory, opened: the CA key is in memory (zeroized on drop).
pub struct Pki {
    dir: PathBuf,
    ca_key: EcdsaKey,
    ca_cert_der: Vec<u8>,
    ca: CertFacts,
    ca_name: String,
    ca_key_id: Vec<u8>,
    index: Index,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .field("ca_name", &self.ca_name)
            .field("ca_fingerprint", &self.ca.fingerprint)
            .field("ca_key", &"<redacted>")
            .finish()
    }
}

impl Pki {
    /// Create a PKI in `dir`: the CA (self-signed), the broker key and
    /// certificate, an empty CRL and the index. Refuses to touch a directory
    /// that holds a PKI already unless `opts.force` is set.
    pub fn init(dir: impl AsRef<Path>, opts: &InitOptions) -> Result<Pki> {
        let dir = dir.as_ref().to_path_buf();
        if opts.validity_days == 0 {
            return Err(Error::InvalidValidity("validity_days is 0".into()));
        }
        if opts.ca_name.trim().is_empty() || opts.ca_name.chars().count() > 64 {
            return Err(Error::InvalidName {
                name: opts.ca_name.clone(),
                reason: "a CA name must have 1 to 64 characters",
            });
        }
        if !opts.force {
            for f in [CA_KEY, CA_CERT, INDEX, BROKER_KEY, BROKER_CERT, CRL] {
                let p = dir.join(f);
                if p.exists() {
                    return Err(Error::AlreadyExists { dir, existing: p });
                }
            }
        }
        fs::create_dir_all(dir.join(DEVICES_DIR))
            .map_err(|e| Error::io("create", dir.join(DEVICES_DIR), e))?;
        if opts.force {
            remove_device_certs(&dir.join(DEVICES_DIR))?;
        }

        let start = now() - Duration::seconds(BACKDATE_SECONDS);
        let end = start + Duration::days(i64::from(opts.validity_days));

        // The CA.
        let ca_key = EcdsaKey::random(&mut rand_core::OsRng);
        let ca_pk = PublicKey::from(ca_key.verifying_key());
        let ca_key_id = key_identifier(&ca_pk);
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = dn(&opts.ca_name);
        ca_params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        ca_params.not_before = start;
        ca_params.not_after = end;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.key_identifier_method = KeyIdMethod::PreSpecified(ca_key_id.clone());
        ca_params.use_authority_key_identifier_extension = true;
        let ca_cert = ca_params
            .self_signed(&P256Signer::new(&ca_key))
            .map_err(rcgen_err("CA certificate"))?;
        let ca_cert_der = ca_cert.der().to_vec();
        let ca = cert_facts(&ca_cert_der).map_err(|d| Error::encoding("CA certificate", d))?;

        let mut pki = Pki {
            dir,
            ca_key,
            ca_cert_der,
            ca,
            ca_name: opts.ca_name.clone(),
            ca_key_id,
            index: Index {
                format: INDEX_FORMAT,
                crl_number: 0,
                certificates: Vec::new(),
            },
        };
        pki.push_entry(Kind::Ca, &opts.ca_name, &pki.ca.clone());

        // The broker.
        let broker_key = SecretKey::random(&mut rand_core::OsRng);
        let broker_pk = broker_key.public_key();
        let mut sans: Vec<SanType> = Vec::new();
        let mut push_san = |s: &str| -> Result<()> {
            let san = match s.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(s.try_into().map_err(|_| Error::InvalidName {
                    name: s.to_owned(),
                    reason: "a broker name must be an ASCII DNS name or an IP address",
                })?),
            };
            if !sans.contains(&san) {
                sans.push(san);
            }
            Ok(())
        };
        for name in ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .chain(opts.broker_names.iter().map(String::as_str))
        {
            if name.trim().is_empty() {
                return Err(Error::InvalidName {
                    name: name.to_owned(),
                    reason: "a broker name is empty",
                });
            }
            push_san(name)?;
        }
        let broker_cn = opts
            .broker_names
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        let mut bp = leaf_params(broker_cn, start, end, &broker_pk);
        bp.subject_alt_names = sans;
        bp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let broker_der = pki.sign_leaf(&bp, &broker_pk, "broker certificate")?;
        let broker =
            cert_facts(&broker_der).map_err(|d| Error::encoding("broker certificate", d))?;
        pki.push_entry(Kind::Broker, broker_cn, &broker);

        // Files: keys first, the index last, so an interrupted init is seen
        // as an existing (and then corrupted) PKI rather than a valid one.
        let ca_key_pem = SecretKey::from(&pki.ca_key)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::encoding("CA key", e))?;
        write_atomic(&pki.ca_key_path(), ca_key_pem.as_bytes(), KEY_MODE)?;
        let broker_key_pem = broker_key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::encoding("broker key", e))?;
        write_atomic(&pki.broker_key_path(), broker_key_pem.as_bytes(), KEY_MODE)?;
        write_atomic(&pki.ca_cert_path(), ca_cert.pem().as_bytes(), CERT_MODE)?;
        let broker_pem = crate::util::to_pem("CERTIFICATE", &broker_der);
        write_atomic(&pki.broker_cert_path(), broker_pem.as_bytes(), CERT_MODE)?;
        pki.write_crl()?;
        pki.save_index()?;
        Ok(pki)
    }

    /// Open an existing PKI directory: read and check the index, the CA key
    /// and the CA certificate.
    pub fn open(dir: impl AsRef<Path>) -> Result<Pki> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound {
                missing: dir.clone(),
                dir,
            });
        }
        let index_path = dir.join(INDEX);
        let index_bytes = read_file(&dir, &index_path)?;
        let index: Index = serde_json::from_slice(&index_bytes).map_err(|e| Error::Corrupt {
            path: index_path.clone(),
            what: "PKI index (JSON)",
            detail: e.to_string(),
        })?;
        if index.format != INDEX_FORMAT {
            return Err(Error::Corrupt {
                path: index_path,
                what: "PKI index",
                detail: format!(
                    "format {} is not the supported format {INDEX_FORMAT}",
                    index.format
                ),
            });
        }

        let key_path = dir.join(CA_KEY);
        let key_bytes = Zeroizing::new(read_file(&dir, &key_path)?);
        let corrupt_key = |detail: String| Error::Corrupt {
            path: key_path.clone(),
            what: "PKCS#8 EC P-256 private key (PEM)",
            detail,
        };
        let key_text =
            std::str::from_utf8(&key_bytes).map_err(|_| corrupt_key("it is not text".into()))?;
        let secret = SecretKey::from_pkcs8_pem(key_text).map_err(|e| corrupt_key(e.to_string()))?;
        let ca_key = EcdsaKey::from(&secret);

        let cert_path = dir.join(CA_CERT);
        let cert_bytes = read_file(&dir, &cert_path)?;
        let corrupt_cert = |detail: String| Error::Corrupt {
            path: cert_path.clone(),
            what: "X.509 CA certificate (PEM)",
            detail,
        };
        let ca_cert_der = der_or_pem(&cert_bytes, &["CERTIFICATE"]).map_err(corrupt_cert)?;
        let ca = cert_facts(&ca_cert_der).map_err(corrupt_cert)?;
        if ca.public_key != Some(secret.public_key()) {
            return Err(Error::CaKeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let ca_name = ca
            .subject_cn
            .clone()
            .ok_or_else(|| corrupt_cert("the subject has no CN".into()))?;
        // Certificates are issued under the name DN(CN=ca_name); it must be
        // the CA certificate's subject byte for byte.
        if !subject_is_cn_only(&ca, &ca_name) {
            return Err(corrupt_cert(
                "its subject is not a single CN, which coffre cannot issue under".into(),
            ));
        }
        let ca_key_id = ca
            .subject_key_id
            .clone()
            .unwrap_or_else(|| key_identifier(&secret.public_key()));
        Ok(Pki {
            dir,
            ca_key,
            ca_cert_der,
            ca,
            ca_name,
            ca_key_id,
            index,
        })
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// CN of the CA.
    pub fn ca_name(&self) -> &str {
        &self.ca_name
    }
    /// The CA certificate, DER.
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.ca_cert_der
    }
    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> String {
        crate::util::to_pem("CERTIFICATE", &self.ca_cert_der)
    }
    /// The CA's public key.
    pub fn ca_public_key(&self) -> PublicKey {
        PublicKey::from(self.ca_key.verifying_key())
    }
    /// The index as loaded or last written.
    pub fn index(&self) -> &Index {
        &self.index
    }
    /// `ca.key.pem`.
    pub fn ca_key_path(&self) -> PathBuf {
        self.dir.join(CA_KEY)
    }
    /// `ca.crt.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }
    /// `broker.key.pem`.
    pub fn broker_key_path(&self) -> PathBuf {
        self.dir.join(BROKER_KEY)
    }
    /// `broker.crt.pem`.
    pub fn broker_cert_path(&self) -> PathBuf {
        self.dir.join(BROKER_CERT)
    }
    /// `crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        self.dir.join(CRL)
    }
    /// `index.json`.
    pub fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX)
    }
    /// `devices/<id>.crt.pem` (the id is not checked here).
    pub fn device_cert_path(&self, id: &str) -> PathBuf {
        self.dir.join(DEVICES_DIR).join(format!("{id}.crt.pem"))
    }

    /// Issue a device certificate: CN = `id` (the MQTT username), clientAuth,
    /// digitalSignature, a random 16-byte serial; written to
    /// `devices/<id>.crt.pem`, which is never replaced unless `opts.force`.
    pub fn issue_device(
        &mut self,
        id: &str,
        public_key: &PublicKey,
        opts: &IssueOptions,
    ) -> Result<IssuedCert> {
        validate_id(id)?;
        let path = self.device_cert_path(id);
        if path.exists() && !opts.force {
            return Err(Error::DeviceExists {
                id: id.to_owned(),
                path,
            });
        }
        let (start, end) = self.validity(opts)?;
        let mut params = leaf_params(id, start, end, public_key);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        // Unique within this CA, however unlikely a collision is.
        while params
            .serial_number
            .as_ref()
            .is_some_and(|s| self.serial_in_use(s.as_ref()))
        {
            params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
        }
        let der = self.sign_leaf(&params, public_key, "device certificate")?;
        let facts = cert_facts(&der).map_err(|d| Error::encoding("device certificate", d))?;
        let pem = crate::util::to_pem("CERTIFICATE", &der);
        // The index first: a certificate on disk is then always indexed, so
        // it can always be revoked.
        self.push_entry(Kind::Device, id, &facts);
        self.save_index()?;
        write_atomic(&path, pem.as_bytes(), CERT_MODE)?;
        Ok(IssuedCert {
            id: id.to_owned(),
            serial: serial_hex(&facts.serial),
            fingerprint_sha256: facts.fingerprint,
            not_before: rfc3339(facts.not_before),
            not_after: rfc3339(facts.not_after),
            path,
            pem,
            der,
        })
    }

    /// Issue a device certificate from a PKCS#10 CSR (DER or PEM). The CSR's
    /// self-signature is verified first; CN and public key come from it.
    pub fn issue_from_csr(&mut self, csr: &[u8], opts: &IssueOptions) -> Result<IssuedCert> {
        let (cn, public_key) = crate::csr::verify_csr(csr)?;
        self.issue_device(&cn, &public_key, opts)
    }

    /// Revoke every issued device certificate whose id or serial (hex,
    /// colons and case ignored) is `target`, then write a new CRL. Returns
    /// the entries revoked.
    pub fn revoke(&mut self, target: &str) -> Result<Vec<IndexEntry>> {
        let wanted_serial = normalize_serial(target);
        let matches = |e: &IndexEntry| {
            e.kind == Kind::Device
                && (e.id == target
                    || (wanted_serial.is_some() && normalize_serial(&e.serial) == wanted_serial))
        };
        if !self.index.certificates.iter().any(matches) {
            return Err(Error::NotIssued(target.to_owned()));
        }
        let when = rfc3339(now());
        let mut revoked = Vec::new();
        for e in self.index.certificates.iter_mut().filter(|e| matches(e)) {
            if e.status == Status::Issued {
                e.status = Status::Revoked;
                e.revoked_at = Some(when.clone());
                revoked.push(e.clone());
            }
        }
        if revoked.is_empty() {
            return Err(Error::AlreadyRevoked(target.to_owned()));
        }
        // The CRL first: if writing the index then fails, the revocation is
        // already in force at the broker.
        self.write_crl()?;
        self.save_index()?;
        Ok(revoked)
    }

    /// Write a new CRL (next number, nextUpdate in [`CRL_VALIDITY_DAYS`]).
    /// Run it before the current CRL's nextUpdate passes.
    pub fn refresh_crl(&mut self) -> Result<()> {
        self.write_crl()?;
        self.save_index()
    }

    /// The CA, the broker and every device certificate with its status.
    pub fn show(&self) -> Result<PkiStatus> {
        let now = now();
        let mut warnings = Vec::new();
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
        let ca = summary(&self.ca, self.ca_cert_path());
        let broker = match fs::read(self.broker_cert_path())
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
        let mut devices = Vec::new();
        for e in self
            .index
            .certificates
            .iter()
            .filter(|e| e.kind == Kind::Device)
        {
            let nb = parse_rfc3339(&e.not_before);
            let na = parse_rfc3339(&e.not_after);
            let current = fs::read(self.device_cert_path(&e.id))
                .ok()
                .and_then(|b| der_or_pem(&b, &["CERTIFICATE"]).ok())
                .map(|d| crate::util::fingerprint_sha256(&d) == e.fingerprint_sha256)
                .unwrap_or(false);
            devices.push(DeviceStatus {
                id: e.id.clone(),
                serial: e.serial.clone(),
                fingerprint_sha256: e.fingerprint_sha256.clone(),
                status: e.status,
                expired: na.is_some_and(|t| t < now),
                not_yet_valid: nb.is_some_and(|t| t > now),
                not_before: e.not_before.clone(),
                not_after: e.not_after.clone(),
                revoked_at: e.revoked_at.clone(),
                current,
            });
        }
        let revoked = self
            .index
            .certificates
            .iter()
            .filter(|e| e.status == Status::Revoked)
            .count();
        let (this_update, next_update) = match read_crl_times(&self.crl_path()) {
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
            dir: self.dir.clone(),
            ca,
            broker,
            devices,
            crl: CrlStatus {
                path: self.crl_path(),
                number: self.index.crl_number,
                revoked,
                this_update: this_update.map(rfc3339),
                next_update: next_update.map(rfc3339),
                expired: crl_expired,
            },
            warnings,
        })
    }

    fn issuer(&self) -> Issuer<'static, P256Signer<'_>> {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&self.ca_name);
        params.key_identifier_method = KeyIdMethod::PreSpecified(self.ca_key_id.clone());
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        Issuer::new(params, P256Signer::new(&self.ca_key))
    }

    fn sign_leaf(
        &self,
        params: &CertificateParams,
        public_key: &PublicKey,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let subject = SubjectKey(public_key_uncompressed(public_key));
        let cert = params
            .signed_by(&subject, &self.issuer())
            .map_err(rcgen_err(what))?;
        let der = cert.der().to_vec();
        let facts = cert_facts(&der).map_err(|d| Error::encoding(what, d))?;
        if facts.issuer_raw != self.ca.subject_raw {
            return Err(Error::encoding(
                what,
                "the issuer name does not match the CA certificate's subject",
            ));
        }
        Ok(der)
    }

    fn validity(&self, opts: &IssueOptions) -> Result<(OffsetDateTime, OffsetDateTime)> {
        let start = opts
            .not_before
            .unwrap_or_else(|| now() - Duration::seconds(BACKDATE_SECONDS));
        let end = match opts.not_after {
            Some(t) => t,
            None => {
                if opts.validity_days == 0 {
                    return Err(Error::InvalidValidity("validity_days is 0".into()));
                }
                let end = start + Duration::days(i64::from(opts.validity_days));
                end.min(self.ca.not_after)
            }
        };
        if end <= start {
            return Err(Error::InvalidValidity(format!(
                "not_after {} is not later than not_before {}",
                rfc3339(end),
                rfc3339(start)
            )));
        }
        Ok((start, end))
    }

    fn serial_in_use(&self, serial: &[u8]) -> bool {
        let hex = normalize_serial(&hex_upper(serial));
        self.index
            .certificates
            .iter()
            .any(|e| normalize_serial(&e.serial) == hex)
    }

    fn push_entry(&mut self, kind: Kind, id: &str, facts: &CertFacts) {
        self.index.certificates.push(IndexEntry {
            kind,
            id: id.to_owned(),
            serial: serial_hex(&facts.serial),
            fingerprint_sha256: facts.fingerprint.clone(),
            status: Status::Issued,
            not_before: rfc3339(facts.not_before),
            not_after: rfc3339(facts.not_after),
            issued_at: rfc3339(now()),
            revoked_at: None,
        });
    }

    fn save_index(&self) -> Result<()> {
        let mut json =
            serde_json::to_vec_pretty(&self.index).map_err(|e| Error::encoding("index", e))?;
        json.push(b'\n');
        write_atomic(&self.index_path(), &json, CERT_MODE)
    }

    fn write_crl(&mut self) -> Result<()> {
        let this_update = now();
        let mut revoked_certs = Vec::new();
        for e in &self.index.certificates {
            if e.status != Status::Revoked {
                continue;
            }
            let serial = decode_hex(&e.serial).ok_or_else(|| Error::Corrupt {
                path: self.index_path(),
                what: "PKI index",
                detail: format!("serial {:?} is not hex", e.serial),
            })?;
            let revocation_time = e
                .revoked_at
                .as_deref()
                .and_then(parse_rfc3339)
                .unwrap_or(this_update);
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let number = self.index.crl_number + 1;
        let params = CertificateRevocationListParams {
            this_update,
            next_update: this_update + Duration::days(CRL_VALIDITY_DAYS),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::PreSpecified(self.ca_key_id.clone()),
        };
        let crl = params.signed_by(&self.issuer()).map_err(rcgen_err("CRL"))?;
        let pem = crl.pem().map_err(rcgen_err("CRL"))?;
        write_atomic(&self.crl_path(), pem.as_bytes(), CERT_MODE)?;
        self.index.crl_number = number;
        Ok(())
    }
}

fn leaf_params(
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

fn subject_is_cn_only(facts: &CertFacts, cn: &str) -> bool {
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

fn summary(f: &CertFacts, path: PathBuf) -> CertSummary {
    CertSummary {
        subject: f.subject_cn.clone().unwrap_or_default(),
        serial: serial_hex(&f.serial),
        fingerprint_sha256: f.fingerprint.clone(),
        not_before: rfc3339(f.not_before),
        not_after: rfc3339(f.not_after),
        path,
    }
}

fn remove_device_certs(devices: &Path) -> Result<()> {
    let entries = fs::read_dir(devices).map_err(|e| Error::io("read", devices, e))?;
    for entry in entries.flatten() {
        let p = entry.path();
        if p.to_string_lossy().ends_with(".crt.pem") {
            fs::remove_file(&p).map_err(|e| Error::io("remove", &p, e))?;
        }
    }
    Ok(())
}

fn read_crl_times(
    path: &Path,
) -> std::result::Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let der = der_or_pem(&bytes, &["X509 CRL"])?;
    let (_, crl) = x509_parser::parse_x509_crl(&der).map_err(|e| e.to_string())?;
    let ts =
        |t: &x509_parser::time::ASN1Time| OffsetDateTime::from_unix_timestamp(t.timestamp()).ok();
    Ok((
        ts(&crl.last_update()),
        crl.next_update().as_ref().and_then(ts),
    ))
}

/// Upper-case hex without colons or `0x`, when `s` looks like a serial.
fn normalize_serial(s: &str) -> Option<String> {
    let s = s.trim();
    let s = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.trim_start_matches('0');
    Some(if hex.is_empty() {
        "0".into()
    } else {
        hex.to_ascii_uppercase()
    })
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = if s.len() % 2 == 1 {
        format!("0{s}")
    } else {
        s.to_owned()
    };
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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
    fn serial_normalization() {
        assert_eq!(normalize_serial("0a:1B").as_deref(), Some("A1B"));
        assert_eq!(normalize_serial("0x00FF").as_deref(), Some("FF"));
        assert_eq!(normalize_serial("m5go"), None);
        assert_eq!(decode_hex("A1B"), Some(vec![0x0A, 0x1B]));
        assert_eq!(decode_hex("zz"), None);
    }
}
