//! The certificate authority: one directory on disk holding the CA, the
//! broker's certificate, the device certificates, the CRL and an index.
//!
//! Everything is EC P-256 signed with ECDSA-SHA256, and every certificate is
//! X.509 v3 (rustls refuses v1). The parts, each in its module:
//!
//! - [`layout`]: where each file lives;
//! - [`store`]: the index of everything issued, looked up by id and serial;
//! - `signer`: the rcgen adapter (the CA key as rcgen's signer);
//! - [`issuing`]: device certificates from a public key or a CSR;
//! - [`revocation`]: revoking, and the CRL for Mosquitto's `crlfile`;
//! - [`report`]: what `coffre pki show` prints.
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

use p256::ecdsa::SigningKey as EcdsaKey;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyIdMethod,
    KeyUsagePurpose, SanType, SerialNumber,
};
use time::Duration;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::types::Timestamp;
use crate::util::{
    cert_facts, der_or_pem, key_identifier, random_serial, read_file, write_atomic, MAX_PEM_BYTES,
};

pub mod issuing;
pub mod layout;
pub mod report;
pub mod revocation;
mod signer;
pub mod store;

pub use issuing::{validate_id, IssueOptions, IssueRequest, IssuedCert, MAX_VALIDITY_DAYS};
pub use layout::{
    Layout, BROKER_CERT, BROKER_KEY, CA_CERT, CA_KEY, CRL, DEVICES_DIR, INDEX, JOURNAL, LOCK,
};
pub use report::{CertSummary, CrlStatus, DeviceStatus, PkiStatus};
pub use revocation::{crl_times, Verdict, CRL_VALIDITY_DAYS};
pub use store::{Index, IndexEntry, Kind, Locked, Status, Store, INDEX_FORMAT, JOURNAL_FORMAT};

use layout::{CERT_MODE, KEY_MODE};
use signer::{dn, leaf_params, rcgen_err, subject_is_cn_only, CaKey, CaSigner, P256Signer};

/// How far back `not_before` is set, to tolerate clocks that run behind.
pub const BACKDATE_SECONDS: i64 = 300;

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

/// A PKI directory, opened: the CA key is in memory (zeroized on drop).
pub struct Pki {
    layout: Layout,
    ca: CaSigner,
    store: Store,
}

impl fmt::Debug for Pki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.layout.dir())
            .field("ca_name", &self.ca.name)
            .field("ca_fingerprint", &self.ca.facts.fingerprint)
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
        let layout = Layout::new(dir.clone());
        issuing::check_days(opts.validity_days)?;
        if opts.ca_name.trim().is_empty() || opts.ca_name.chars().count() > 64 {
            return Err(Error::InvalidName {
                name: opts.ca_name.clone(),
                reason: "a CA name must have 1 to 64 characters",
            });
        }
        // Every input is checked before anything is written.
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
        if !opts.force {
            for p in layout.pki_files() {
                if p.exists() {
                    return Err(Error::AlreadyExists { dir, existing: p });
                }
            }
        }
        fs::create_dir_all(layout.devices())
            .map_err(|e| Error::io("create", layout.devices(), e))?;
        if opts.force {
            remove_device_certs(&layout.devices())?;
        }

        let start = Timestamp::now().get() - Duration::seconds(BACKDATE_SECONDS);
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

        let mut store = Store::create(layout.clone());
        store.insert(issuing::entry(Kind::Ca, &opts.ca_name, &ca));
        let mut pki = Pki {
            layout,
            ca: CaSigner {
                key: CaKey::Loaded(ca_key),
                public_key: ca_pk,
                cert_der: ca_cert_der,
                facts: ca,
                name: opts.ca_name.clone(),
                key_id: ca_key_id,
            },
            store,
        };

        // The broker.
        let broker_key = SecretKey::random(&mut rand_core::OsRng);
        let broker_pk = broker_key.public_key();
        let mut bp = leaf_params(broker_cn, start, end, &broker_pk);
        bp.subject_alt_names = sans;
        bp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let broker_der = pki.ca.sign_leaf(&bp, &broker_pk, "broker certificate")?;
        let broker =
            cert_facts(&broker_der).map_err(|d| Error::encoding("broker certificate", d))?;
        pki.store
            .insert(issuing::entry(Kind::Broker, broker_cn, &broker));

        // Files: keys first, the index last, so an interrupted init is seen
        // as an existing (and then corrupted) PKI rather than a valid one.
        let ca_key_pem = SecretKey::from(pki.ca.key()?)
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
        let layout_index = pki.layout.index();
        let lock = pki.store.lock_new()?;
        pki.write_crl(&lock)?;
        pki.store.compact(&lock)?;
        // An index of an older version would be migrated over the new
        // journal on the next open.
        match fs::remove_file(&layout_index) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", layout_index, e))
            }
            _ => {}
        }
        Ok(pki)
    }

    /// Open an existing PKI directory: read and check the index, the CA key
    /// and the CA certificate. A CA key this user may not read (another
    /// user's PKI) is not an error here: the PKI can be read and shown, and
    /// whatever signs fails on the key, before writing anything.
    pub fn open(dir: impl AsRef<Path>) -> Result<Pki> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::NotFound {
                missing: dir.clone(),
                dir,
            });
        }
        let layout = Layout::new(dir.clone());
        let store = Store::open(layout.clone())?;
        for d in [layout.dir().to_path_buf(), layout.devices()] {
            remove_stale_temporaries(&d);
        }

        let key_path = layout.ca_key();
        let secret = match read_file(&dir, &key_path, MAX_PEM_BYTES) {
            Ok(bytes) => {
                let key_bytes = Zeroizing::new(bytes);
                let corrupt_key = |detail: String| Error::Corrupt {
                    path: key_path.clone(),
                    what: "PKCS#8 EC P-256 private key (PEM)",
                    detail,
                };
                let key_text = std::str::from_utf8(&key_bytes)
                    .map_err(|_| corrupt_key("it is not text".into()))?;
                Some(SecretKey::from_pkcs8_pem(key_text).map_err(|e| corrupt_key(e.to_string()))?)
            }
            // Another user's PKI: it can be read and shown, not signed with.
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                None
            }
            Err(e) => return Err(e),
        };

        let cert_path = layout.ca_cert();
        let cert_bytes = read_file(&dir, &cert_path, MAX_PEM_BYTES)?;
        let corrupt_cert = |detail: String| Error::Corrupt {
            path: cert_path.clone(),
            what: "X.509 CA certificate (PEM)",
            detail,
        };
        let ca_cert_der = der_or_pem(&cert_bytes, &["CERTIFICATE"]).map_err(corrupt_cert)?;
        let ca = cert_facts(&ca_cert_der).map_err(corrupt_cert)?;
        let public_key = match (&secret, ca.public_key) {
            (Some(secret), Some(pk)) if pk == secret.public_key() => pk,
            (None, Some(pk)) => pk,
            _ => {
                return Err(Error::CaKeyMismatch {
                    key: key_path,
                    cert: cert_path,
                })
            }
        };
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
        let verifying = p256::ecdsa::VerifyingKey::from(&public_key);
        signer::check_ca_cert(&ca_cert_der, &ca, &verifying, Timestamp::now())
            .map_err(corrupt_cert)?;
        let ca_key_id = ca
            .subject_key_id
            .clone()
            .unwrap_or_else(|| key_identifier(&public_key));
        let key = match secret {
            Some(secret) => CaKey::Loaded(EcdsaKey::from(&secret)),
            None => CaKey::Unreadable(key_path),
        };
        Ok(Pki {
            layout,
            ca: CaSigner {
                key,
                public_key,
                cert_der: ca_cert_der,
                facts: ca,
                name: ca_name,
                key_id: ca_key_id,
            },
            store,
        })
    }

    /// The PKI directory.
    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }
    /// Where its files live.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    /// CN of the CA.
    pub fn ca_name(&self) -> &str {
        &self.ca.name
    }
    /// The CA certificate, DER.
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.ca.cert_der
    }
    /// The CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> String {
        crate::util::to_pem("CERTIFICATE", &self.ca.cert_der)
    }
    /// The CA's public key.
    pub fn ca_public_key(&self) -> PublicKey {
        self.ca.public_key
    }
    /// The index as loaded or last written.
    pub fn index(&self) -> &Index {
        self.store.index()
    }
    /// The index with its look-ups by id and serial.
    pub fn store(&self) -> &Store {
        &self.store
    }
    /// `ca.key.pem`.
    pub fn ca_key_path(&self) -> PathBuf {
        self.layout.ca_key()
    }
    /// `ca.crt.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.layout.ca_cert()
    }
    /// `broker.key.pem`.
    pub fn broker_key_path(&self) -> PathBuf {
        self.layout.broker_key()
    }
    /// `broker.crt.pem`.
    pub fn broker_cert_path(&self) -> PathBuf {
        self.layout.broker_cert()
    }
    /// `crl.pem`.
    pub fn crl_path(&self) -> PathBuf {
        self.layout.crl()
    }
    /// `index.jsonl`, the journal of the index.
    pub fn index_path(&self) -> PathBuf {
        self.layout.journal()
    }
    /// `devices/<id>.crt.pem` (the id is not checked here).
    pub fn device_cert_path(&self, id: &str) -> PathBuf {
        self.layout.device_cert(id)
    }
}

/// Remove the temporary files (`.<name>.<pid>-<n>.tmp`) that processes
/// killed in the middle of an atomic write left in `dir`. Files of a
/// process still running are left alone. Best effort: a failure here
/// changes nothing that matters.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".tmp"))
            .and_then(|n| n.rsplit_once('.'))
            .and_then(|(_, tail)| tail.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = pid else {
            continue;
        };
        let running =
            pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
        if cfg!(target_os = "linux") && !running {
            let _ = fs::remove_file(entry.path());
        }
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

/// A self-signed certificate for `key` named `CN=<cn>`, valid `days` from
/// now (back-dated a little), marked as a CA with a subject key identifier:
/// the form of the certificate that signs Microchip's manifests (its
/// "log signer"). Used for the emulated manifest signer.
pub fn self_signed_signer_cert(cn: &str, key: &EcdsaKey, days: u32) -> Result<Vec<u8>> {
    let cert = signer_params(cn, key, days)
        .self_signed(&P256Signer::new(key))
        .map_err(rcgen_err("manifest signer certificate"))?;
    Ok(cert.der().to_vec())
}

fn signer_params(cn: &str, key: &EcdsaKey, days: u32) -> CertificateParams {
    let pk = PublicKey::from(key.verifying_key());
    let start = Timestamp::now().get() - Duration::seconds(BACKDATE_SECONDS);
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.serial_number = Some(SerialNumber::from_slice(&crate::util::random_serial()));
    params.not_before = start;
    params.not_after = start + Duration::days(i64::from(days));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_identifier(&pk));
    params
}

/// A manifest-signer certificate for `key` named `CN=<cn>`, issued by the
/// CA whose certificate is `issuer_der` and key `issuer_key` (its names are
/// copied from that certificate, string types kept, so the issuer name
/// matches its subject byte for byte): how a manifest signer chains to its
/// factory's root. Used for the emulated factory's manifest signer.
pub fn issued_signer_cert(
    cn: &str,
    key: &EcdsaKey,
    issuer_der: &[u8],
    issuer_key: &EcdsaKey,
    days: u32,
) -> Result<Vec<u8>> {
    const WHAT: &str = "manifest signer certificate";
    let (_, issuer) = x509_parser::parse_x509_certificate(issuer_der)
        .map_err(|e| Error::BadCertificate(format!("issuer certificate: {e}")))?;
    let mut name = rcgen::DistinguishedName::new();
    for rdn in issuer.subject().iter() {
        for atv in rdn.iter() {
            let oid: Vec<u64> = atv
                .attr_type()
                .iter()
                .map(|arcs| arcs.collect())
                .ok_or_else(|| Error::encoding(WHAT, "an issuer name attribute has a long OID"))?;
            let text = atv
                .as_str()
                .map_err(|_| Error::encoding(WHAT, "an issuer name attribute is not text"))?;
            let value = match atv.attr_value().tag() {
                x509_parser::der_parser::asn1_rs::Tag::PrintableString => {
                    rcgen::DnValue::PrintableString(text.try_into().map_err(rcgen_err(WHAT))?)
                }
                _ => rcgen::DnValue::Utf8String(text.to_owned()),
            };
            name.push(rcgen::DnType::from_oid(&oid), value);
        }
    }
    let issuer_pk = PublicKey::from(issuer_key.verifying_key());
    let mut issuer_params = CertificateParams::default();
    issuer_params.distinguished_name = name;
    issuer_params.key_identifier_method = KeyIdMethod::PreSpecified(
        crate::util::subject_key_id(issuer_der).unwrap_or_else(|| key_identifier(&issuer_pk)),
    );
    let issuer = rcgen::Issuer::new(issuer_params, P256Signer::new(issuer_key));
    let cert = signer_params(cn, key, days)
        .signed_by(&P256Signer::new(key), &issuer)
        .map_err(rcgen_err(WHAT))?;
    let der = cert.der().to_vec();
    let (facts, issuer_facts) = (
        cert_facts(&der).map_err(|d| Error::encoding(WHAT, d))?,
        cert_facts(issuer_der).map_err(|d| Error::encoding(WHAT, d))?,
    );
    if facts.issuer_raw != issuer_facts.subject_raw {
        return Err(Error::encoding(
            WHAT,
            "the issuer name does not match the issuer certificate's subject",
        ));
    }
    Ok(der)
}
