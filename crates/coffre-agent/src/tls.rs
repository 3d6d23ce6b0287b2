//! The rustls client configuration of a device, and the key/certificate
//! preflight.
//!
//! The crypto provider is rustls's `ring` provider (no C toolchain beyond
//! what ring itself builds, no aws-lc-rs). TLS 1.2 is the default, as in
//! the lab; [`TlsOptions::tls13`] switches to TLS 1.3.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::ParsedCertificate;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore};

use crate::error::{Error, Result};
use crate::identity::{spki_fingerprint, KeySource};

/// TLS settings of a device connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsOptions {
    /// Offer TLS 1.3 only. `false` (default): TLS 1.2 only, as the lab.
    pub tls13: bool,
    /// Allow session resumption. Off by default, so every connection makes
    /// a full handshake and the key proves itself each time (a removed or
    /// replaced chip shows at the next connection).
    pub resumption: bool,
}

/// The crypto provider the agent uses: rustls's `ring` provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The name of a TLS protocol version ("TLSv1.2", "TLSv1.3").
pub fn version_name(v: ProtocolVersion) -> String {
    match v {
        ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
        ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Every certificate of a PEM input, in order. `what` names the input for
/// error messages ("CA certificate", "device certificate").
pub fn parse_certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Pem {
            what,
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Pem {
            what,
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// Build the client configuration of a device: trust the CA(s) in
/// `ca_pem`, present the chain in `cert_chain_pem` (device certificate
/// first), sign with `key`.
///
/// `key` is consumed (the configuration keeps its signing key). The
/// certificate and key are not
/// compared here; call [`preflight`] first to get a clear error instead of
/// a refusal by the broker.
pub fn client_config(
    ca_pem: &[u8],
    cert_chain_pem: &[u8],
    key: KeySource,
    opts: &TlsOptions,
) -> Result<Arc<ClientConfig>> {
    let cas = parse_certificates(ca_pem, "the CA certificate")?;
    let chain = parse_certificates(cert_chain_pem, "the device certificate")?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|source| Error::Certificate {
            what: "the CA certificate",
            source,
        })?;
    }
    let signing_key = key.signing_key()?;
    drop(key);
    let versions: &[&'static rustls::SupportedProtocolVersion] = if opts.tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let certified = CertifiedKey::new(chain, signing_key);
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(Error::TlsConfig)?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    if !opts.resumption {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// Check, before any network traffic, that the device certificate (the
/// first of `cert_chain_pem`) carries the public key of `key`. For a chip
/// this reads the public key from the chip; for the lab key it derives it.
///
/// A mismatch gives [`Error::KeyMismatch`] with both key fingerprints: the
/// broker would otherwise refuse the handshake ("bad signature").
pub fn preflight(cert_chain_pem: &[u8], key: &KeySource) -> Result<()> {
    let chain = parse_certificates(cert_chain_pem, "the device certificate")?;
    preflight_der(&chain[0], key)
}

/// [`preflight`] with the device certificate in DER.
pub fn preflight_der(cert: &CertificateDer<'_>, key: &KeySource) -> Result<()> {
    let parsed = ParsedCertificate::try_from(cert).map_err(|source| Error::Certificate {
        what: "the device certificate",
        source,
    })?;
    let cert_spki = parsed.subject_public_key_info();
    let key_spki = key.public_key_spki()?;
    if cert_spki.as_ref() == key_spki.as_slice() {
        Ok(())
    } else {
        Err(Error::KeyMismatch {
            cert_key: spki_fingerprint(cert_spki.as_ref()),
            key: spki_fingerprint(&key_spki),
            source_name: match key {
                KeySource::Lab { .. } => "lab (slot 8)",
                KeySource::Chip { .. } => "chip",
            },
        })
    }
}
