//! The device's TLS identity: where the private key lives and how it signs.
//!
//! Two [`KeySource`]s, the two key modes of coffre:
//!
//! - [`KeySource::Lab`]: the source lab's way. The PKCS#8 key is read from
//!   slot 8 into RAM, parsed once into rustls's key object, and the buffer
//!   it was read into is zeroized at once.
//! - [`KeySource::Chip`]: the production way. The key never leaves the
//!   secure element: [`ChipSigningKey`] hashes the handshake transcript on
//!   the host with SHA-256, the chip signs the digest (Nonce pass-through +
//!   Sign external), and the raw `r ‖ s` answer is converted to the DER
//!   `ECDSA-Sig-Value` TLS expects. Only `ecdsa_secp256r1_sha256` is offered.
//!
//! A chip is reached through the [`ChipSigner`] trait, so anything able to
//! sign a digest with a P-256 key fits; [`DriverSigner`] implements it over
//! the coffre ATECC608B driver on any embedded-hal I2C bus.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use coffre_driver::{Atecc, Probe};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use rustls::pki_types::{alg_id, PrivateKeyDer, PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{OtherError, SignatureAlgorithm, SignatureScheme};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// What kind of failure a [`ChipSigner`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChipErrorKind {
    /// The chip does not answer on the bus: unplugged, unpowered, wrong
    /// address. A publisher stops on this ([`Error::ChipGone`]).
    Absent,
    /// The chip answered, but the operation failed (status error, timeout,
    /// slot not usable for signing…).
    Failed,
}

/// An error from a secure element, as a [`ChipSigner`] reports it.
///
/// It travels through rustls inside [`rustls::Error::Other`] when the chip
/// fails during a handshake, and the agent takes it back out to tell a
/// missing chip from a refusal by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipError {
    kind: ChipErrorKind,
    device: String,
    message: String,
}

impl ChipError {
    /// The chip does not answer. `device` names it ("secure element at
    /// 0x35"); `message` says what was observed.
    pub fn absent(device: impl Into<String>, message: impl Into<String>) -> Self {
        ChipError {
            kind: ChipErrorKind::Absent,
            device: device.into(),
            message: message.into(),
        }
    }

    /// The chip answered with a failure.
    pub fn failed(device: impl Into<String>, message: impl Into<String>) -> Self {
        ChipError {
            kind: ChipErrorKind::Failed,
            device: device.into(),
            message: message.into(),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ChipErrorKind {
        self.kind
    }

    /// Whether the chip is absent.
    pub fn is_absent(&self) -> bool {
        self.kind == ChipErrorKind::Absent
    }

    /// The device that failed.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ChipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.device, self.message)
    }
}

impl std::error::Error for ChipError {}

/// A secure element holding an EC P-256 private key that never leaves it.
///
/// Implementations must be shareable between threads: rustls signs from
/// whatever thread runs the handshake. Keep a bus behind a `Mutex`, as
/// [`DriverSigner`] does.
pub trait ChipSigner: Send + Sync {
    /// The public key as X ‖ Y (64 bytes, big-endian coordinates).
    fn public_key(&self) -> Result<[u8; 64], ChipError>;

    /// Sign a 32-byte SHA-256 digest; the signature as R ‖ S (64 bytes).
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChipError>;

    /// Check that the chip still answers, cheaply. The default reads the
    /// public key; [`DriverSigner`] only wakes the chip.
    fn check_present(&self) -> Result<(), ChipError> {
        self.public_key().map(|_| ())
    }

    /// A short description for messages ("ATECC608 at 0x35, slot 0").
    fn describe(&self) -> String {
        "secure element".to_owned()
    }
}

/// A [`ChipSigner`] over the coffre ATECC608B driver: signs with the key
/// in `slot` (Trust&GO: slot 0, the factory key; slots 2–4 after GenKey).
///
/// The driver sits in a `Mutex`, so one chip can serve rustls and other
/// users (borrow it with [`DriverSigner::with_chip`]).
pub struct DriverSigner<I2C, D> {
    chip: Mutex<Atecc<I2C, D>>,
    slot: u8,
    name: String,
}

impl<I2C, D> fmt::Debug for DriverSigner<I2C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverSigner")
            .field("device", &self.name)
            .finish_non_exhaustive()
    }
}

impl<I2C, D> DriverSigner<I2C, D> {
    /// Sign with the private key in `slot` of `chip`.
    pub fn new(chip: Atecc<I2C, D>, slot: u8) -> Self {
        let name = format!("secure element at 0x{:02X} (slot {slot})", chip.address());
        DriverSigner {
            chip: Mutex::new(chip),
            slot,
            name,
        }
    }

    /// The key slot.
    pub fn slot(&self) -> u8 {
        self.slot
    }

    /// Borrow the driver for other commands (read a slot, lock status…).
    pub fn with_chip<R>(&self, f: impl FnOnce(&mut Atecc<I2C, D>) -> R) -> R {
        f(&mut self.lock())
    }

    /// Give the driver back.
    pub fn into_inner(self) -> Atecc<I2C, D> {
        self.chip
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock(&self) -> MutexGuard<'_, Atecc<I2C, D>> {
        // A panic while signing leaves the chip in a state the next command
        // resets (wake), so a poisoned lock is still usable.
        self.chip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn map_err<E: fmt::Debug>(&self, what: &str, e: coffre_driver::Error<E>) -> ChipError {
        match e {
            coffre_driver::Error::NotPresent { .. } => {
                ChipError::absent(self.name.clone(), format!("{what}: {e}"))
            }
            other => ChipError::failed(self.name.clone(), format!("{what}: {other}")),
        }
    }
}

impl<I2C, D, E> ChipSigner for DriverSigner<I2C, D>
where
    I2C: I2c<Error = E> + Send,
    D: DelayNs + Send,
    E: embedded_hal::i2c::Error,
{
    fn public_key(&self) -> Result<[u8; 64], ChipError> {
        let r = self.lock().genkey_public(self.slot);
        r.map_err(|e| self.map_err("GenKey (public key)", e))
    }

    fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChipError> {
        let r = self.lock().sign_digest(self.slot, digest);
        r.map_err(|e| self.map_err("Sign", e))
    }

    fn check_present(&self) -> Result<(), ChipError> {
        let r = self.lock().probe();
        match r {
            Ok(Probe::Present) => Ok(()),
            Ok(Probe::Absent) => Err(ChipError::absent(
                self.name.clone(),
                "no ACK after wake (unplugged or unpowered)",
            )),
            Ok(Probe::SelfTestFailed) => Err(ChipError::failed(
                self.name.clone(),
                "power-on self test failed",
            )),
            Ok(Probe::Unexpected(b)) => Err(ChipError::failed(
                self.name.clone(),
                format!("unexpected wake answer {b:02X?}"),
            )),
            Err(e) => Err(ChipError::failed(
                self.name.clone(),
                format!("I2C error {e:?}"),
            )),
        }
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// Where the device's TLS private key comes from.
pub enum KeySource {
    /// The lab's key: PKCS#8 DER read from slot 8 into RAM, parsed once
    /// into rustls's (ring's) key object, the one the handshakes sign with.
    /// The DER it was parsed from is the caller's to zeroize (the
    /// constructors here do).
    Lab {
        /// The parsed private key.
        key: Arc<dyn SigningKey>,
    },
    /// The key stays in the chip, which signs each handshake.
    Chip {
        /// The chip.
        signer: Arc<dyn ChipSigner>,
    },
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Lab { key } => f
                .debug_struct("Lab")
                .field("key", &format_args!("<{:?}, redacted>", key.algorithm()))
                .finish(),
            KeySource::Chip { signer } => f
                .debug_struct("Chip")
                .field("signer", &signer.describe())
                .finish(),
        }
    }
}

/// Size of data slot 8.
pub const SLOT8_SIZE: usize = 416;

impl KeySource {
    /// A chip-held key.
    pub fn chip(signer: impl ChipSigner + 'static) -> KeySource {
        KeySource::Chip {
            signer: Arc::new(signer),
        }
    }

    /// The lab key from the bytes of slot 8: a 2-byte big-endian length,
    /// the PKCS#8 DER, zero padding. Zeroize `slot8` yourself when done
    /// with it.
    pub fn lab_from_slot8(slot8: &[u8]) -> Result<KeySource> {
        if slot8.len() < 2 {
            return Err(Error::LabKey(
                "slot 8 data is shorter than its length prefix".into(),
            ));
        }
        let len = u16::from_be_bytes([slot8[0], slot8[1]]) as usize;
        if len == 0 {
            return Err(Error::LabKey(
                "slot 8 is empty (length prefix 0): no key was provisioned".into(),
            ));
        }
        if len == 0xFFFF {
            return Err(Error::LabKey(
                "slot 8 reads as erased (length prefix FFFF)".into(),
            ));
        }
        let avail = slot8.len().min(SLOT8_SIZE) - 2;
        if len > avail {
            return Err(Error::LabKey(format!(
                "the length prefix says {len} bytes but slot 8 holds only {avail} after it"
            )));
        }
        KeySource::lab_from_pkcs8(&slot8[2..2 + len])
    }

    /// The lab key from its PKCS#8 DER, parsed here once (garbage is
    /// refused now rather than at the first handshake). Zeroize `der`
    /// yourself when done with it.
    pub fn lab_from_pkcs8(der: &[u8]) -> Result<KeySource> {
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der));
        let key = rustls::crypto::ring::sign::any_ecdsa_type(&der)
            .map_err(|e| Error::LabKey(format!("not a PKCS#8 EC private key ({e})")))?;
        Ok(KeySource::Lab { key })
    }

    /// The lab key from a PEM file (`-----BEGIN PRIVATE KEY-----`, PKCS#8),
    /// as the lab's device builds it in RAM. The decoded DER is zeroized
    /// once parsed; zeroize `pem` yourself when done with it.
    pub fn lab_from_pem(pem: &[u8]) -> Result<KeySource> {
        use rustls::pki_types::pem::PemObject;
        let mut der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|e| Error::LabKey(format!("no PKCS#8 'BEGIN PRIVATE KEY' block ({e})")))?;
        let source = KeySource::lab_from_pkcs8(der.secret_pkcs8_der());
        der.zeroize();
        source
    }

    /// Read slot `slot` (the lab uses 8) from the chip and take the lab key
    /// out of it. The 416-byte read buffer is zeroized before returning.
    pub fn read_lab<I2C, D, E>(chip: &mut Atecc<I2C, D>, slot: u8) -> Result<KeySource>
    where
        I2C: I2c<Error = E>,
        D: DelayNs,
        E: embedded_hal::i2c::Error,
    {
        let mut buf = Zeroizing::new([0u8; SLOT8_SIZE]);
        let device = format!("secure element at 0x{:02X}", chip.address());
        match chip.read_slot(slot, &mut buf[..]) {
            Ok(_) => {}
            Err(coffre_driver::Error::NotPresent { .. }) => {
                return Err(Error::ChipGone {
                    what: device,
                    detail: format!("reading slot {slot}"),
                })
            }
            Err(e) => {
                return Err(Error::Chip(ChipError::failed(
                    device,
                    format!("reading slot {slot}: {e}"),
                )))
            }
        }
        let r = KeySource::lab_from_slot8(&buf[..]);
        buf.zeroize();
        r
    }

    /// "lab" or "offload", as the CLI names the key modes.
    pub fn mode(&self) -> &'static str {
        match self {
            KeySource::Lab { .. } => "lab",
            KeySource::Chip { .. } => "offload",
        }
    }

    /// A rustls signing key for this source (for the lab key, the one
    /// parsed when the source was made).
    pub fn signing_key(&self) -> Result<Arc<dyn SigningKey>> {
        match self {
            KeySource::Lab { key } => Ok(key.clone()),
            KeySource::Chip { signer } => Ok(Arc::new(ChipSigningKey::new(signer.clone())?)),
        }
    }

    /// The DER SubjectPublicKeyInfo of the key.
    pub fn public_key_spki(&self) -> Result<Vec<u8>> {
        match self {
            KeySource::Chip { signer } => Ok(spki_from_xy(&signer.public_key()?)),
            KeySource::Lab { key } => key
                .public_key()
                .map(|s| s.as_ref().to_vec())
                .ok_or_else(|| Error::LabKey("its public key cannot be derived".into())),
        }
    }
}

/// The DER SubjectPublicKeyInfo of a P-256 public key given as X ‖ Y.
pub fn spki_from_xy(xy: &[u8; 64]) -> Vec<u8> {
    let mut point = [0u8; 65];
    point[0] = 0x04;
    point[1..].copy_from_slice(xy);
    rustls::sign::public_key_to_spki(&alg_id::ECDSA_P256, point)
        .as_ref()
        .to_vec()
}

/// Convert a raw ECDSA signature `r ‖ s` (two 32-byte big-endian integers,
/// as the ATECC608 returns it) to DER `ECDSA-Sig-Value ::= SEQUENCE { r
/// INTEGER, s INTEGER }`, as TLS carries it.
pub fn raw_signature_to_der(sig: &[u8; 64]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        // Minimal encoding: no leading zero bytes, but a 0x00 in front of
        // a byte with the top bit set (the value is positive).
        let start = v.iter().position(|&b| b != 0).unwrap_or(v.len() - 1);
        let v = &v[start..];
        let pad = v[0] & 0x80 != 0;
        out.push(0x02);
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0x00);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(70);
    integer(&mut body, &sig[..32]);
    integer(&mut body, &sig[32..]);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// A rustls [`SigningKey`] whose private key is in a secure element.
///
/// Offers only [`SignatureScheme::ECDSA_NISTP256_SHA256`]. The public key is
/// read once, when the key is built, for [`SigningKey::public_key`].
pub struct ChipSigningKey {
    signer: Arc<dyn ChipSigner>,
    spki: Vec<u8>,
}

impl fmt::Debug for ChipSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChipSigningKey")
            .field("signer", &self.signer.describe())
            .finish_non_exhaustive()
    }
}

impl ChipSigningKey {
    /// Build the key; reads the chip's public key.
    pub fn new(signer: Arc<dyn ChipSigner>) -> Result<ChipSigningKey, ChipError> {
        let xy = signer.public_key()?;
        Ok(ChipSigningKey {
            spki: spki_from_xy(&xy),
            signer,
        })
    }
}

impl SigningKey for ChipSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        if offered.contains(&SignatureScheme::ECDSA_NISTP256_SHA256) {
            Some(Box::new(ChipEcdsaSigner {
                signer: self.signer.clone(),
            }))
        } else {
            None
        }
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(&self.spki[..]))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

/// One handshake's signer: SHA-256 on the host, ECDSA in the chip.
struct ChipEcdsaSigner {
    signer: Arc<dyn ChipSigner>,
}

impl fmt::Debug for ChipEcdsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChipEcdsaSigner")
            .field("signer", &self.signer.describe())
            .finish()
    }
}

impl Signer for ChipEcdsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let digest: [u8; 32] = Sha256::digest(message).into();
        let started = std::time::Instant::now();
        let raw = self
            .signer
            .sign_digest(&digest)
            .map_err(|e| rustls::Error::Other(OtherError(Arc::new(e))))?;
        tracing::debug!(elapsed = ?started.elapsed(), "handshake signed by the secure element");
        Ok(raw_signature_to_der(&raw))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// The chip error inside a rustls error, if the chip caused it.
pub(crate) fn chip_error_in(e: &rustls::Error) -> Option<ChipError> {
    match e {
        rustls::Error::Other(OtherError(inner)) => inner.downcast_ref::<ChipError>().cloned(),
        _ => None,
    }
}

/// A short fingerprint of a DER SubjectPublicKeyInfo for messages:
/// `sha256:` and the first 8 bytes of its SHA-256, in hex.
pub fn spki_fingerprint(spki: &[u8]) -> String {
    let d = Sha256::digest(spki);
    format!("sha256:{}", coffre_proto::hex::Hex::lower(&d[..8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_of_small_and_high_bit_integers() {
        let mut sig = [0u8; 64];
        sig[31] = 1; // r = 1
        sig[32] = 0x80; // s has its top bit set
        let der = raw_signature_to_der(&sig);
        assert_eq!(&der[..5], &[0x30, 3 + 35, 0x02, 0x01, 0x01]);
        assert_eq!(&der[5..8], &[0x02, 33, 0x00]);
        assert_eq!(der[8], 0x80);
        assert_eq!(der.len(), 2 + 3 + 35);
    }

    #[test]
    fn der_of_zero_and_leading_zeros() {
        let sig = [0u8; 64];
        assert_eq!(
            raw_signature_to_der(&sig),
            [0x30, 6, 0x02, 1, 0, 0x02, 1, 0]
        );
        let mut sig = [0x11u8; 64];
        sig[0] = 0;
        sig[1] = 0;
        let der = raw_signature_to_der(&sig);
        assert_eq!(&der[2..4], &[0x02, 30]);
    }

    /// A software "chip" whose signatures ring verifies after DER
    /// conversion: the signer path is checked end to end. (ring cannot sign
    /// a pre-computed digest, so the digest is signed with the p256 crate.)
    struct SoftChip(p256::ecdsa::SigningKey);

    impl ChipSigner for SoftChip {
        fn public_key(&self) -> Result<[u8; 64], ChipError> {
            let p = self.0.verifying_key().to_encoded_point(false);
            let mut xy = [0u8; 64];
            xy.copy_from_slice(&p.as_bytes()[1..]);
            Ok(xy)
        }
        fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], ChipError> {
            use p256::ecdsa::signature::hazmat::PrehashSigner;
            let sig: p256::ecdsa::Signature = self
                .0
                .sign_prehash(digest)
                .map_err(|e| ChipError::failed("soft", e.to_string()))?;
            Ok(sig.to_bytes().into())
        }
    }

    struct GoneChip;
    impl ChipSigner for GoneChip {
        fn public_key(&self) -> Result<[u8; 64], ChipError> {
            Ok([7; 64])
        }
        fn sign_digest(&self, _: &[u8; 32]) -> Result<[u8; 64], ChipError> {
            Err(ChipError::absent("secure element at 0x35", "no ACK"))
        }
    }

    #[test]
    fn chip_signing_key_signs_verifiable_der() {
        use rand_core::OsRng;
        let sk = p256::ecdsa::SigningKey::random(&mut OsRng);
        let chip: Arc<dyn ChipSigner> = Arc::new(SoftChip(sk));
        let key = ChipSigningKey::new(chip.clone()).unwrap();
        assert_eq!(key.algorithm(), SignatureAlgorithm::ECDSA);
        assert!(key
            .choose_scheme(&[SignatureScheme::ED25519, SignatureScheme::RSA_PSS_SHA256])
            .is_none());
        let signer = key
            .choose_scheme(&[
                SignatureScheme::ECDSA_NISTP384_SHA384,
                SignatureScheme::ECDSA_NISTP256_SHA256,
            ])
            .unwrap();
        assert_eq!(signer.scheme(), SignatureScheme::ECDSA_NISTP256_SHA256);
        let msg = b"TLS 1.3, client CertificateVerify\0transcript hash";
        let der = signer.sign(msg).unwrap();
        // Verify with ring, from the SPKI the key reports.
        let spki = key.public_key().unwrap();
        let point = &spki.as_ref()[spki.as_ref().len() - 65..];
        let pk = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            point,
        );
        pk.verify(msg, &der).unwrap();
        assert_eq!(
            spki.as_ref(),
            &spki_from_xy(&chip.public_key().unwrap())[..]
        );
        assert_eq!(spki.as_ref().len(), 91);
    }

    #[test]
    fn chip_absence_travels_through_rustls_error() {
        let key = ChipSigningKey::new(Arc::new(GoneChip)).unwrap();
        let signer = key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .unwrap();
        let e = signer.sign(b"x").unwrap_err();
        let chip = chip_error_in(&e).unwrap();
        assert!(chip.is_absent());
        assert!(Error::from(chip).is_chip_gone());
    }

    #[test]
    fn lab_slot8_prefix_checks() {
        assert!(KeySource::lab_from_slot8(&[0, 0, 1, 2]).is_err());
        assert!(KeySource::lab_from_slot8(&[0xFF; 416]).is_err());
        assert!(KeySource::lab_from_slot8(&[0x01, 0x00, 1]).is_err());
        let mut junk = [0u8; 416];
        junk[1] = 10;
        let e = KeySource::lab_from_slot8(&junk).unwrap_err();
        assert!(e.to_string().contains("slot 8"), "{e}");
    }

    #[test]
    fn lab_key_debug_is_redacted() {
        use p256::pkcs8::EncodePrivateKey;
        let sk = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
        let der = sk.to_pkcs8_der().unwrap();
        let k = KeySource::lab_from_pkcs8(der.as_bytes()).unwrap();
        let s = format!("{k:?}");
        assert!(s.contains("redacted") && !s.contains("42"), "{s}");
        assert!(KeySource::lab_from_pkcs8(&[0x42; 138]).is_err());
    }
}
