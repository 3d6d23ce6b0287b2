//! The TLS identity of the device for embedded-tls.

use core::fmt;

use coffre_driver::{Atecc, Probe};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use embedded_tls::pki::CertVerifier;
use embedded_tls::{
    Aes128GcmSha256, Certificate, CryptoProvider, CryptoRngCore, SignatureScheme, TlsError,
    TlsVerifier,
};

use crate::time::WallClock;
use p256::ecdsa::{DerSignature, Signature, SigningKey};
use sha2::{Digest, Sha256};

/// Largest broker certificate the verifier keeps, bytes.
const BROKER_CERT_MAX: usize = 2048;

/// Who signs the client's CertificateVerify.
pub enum KeySigner<I2C, D> {
    /// Offload: the chip signs the SHA-256 of the message with the key in
    /// `slot`; no key byte leaves it.
    Chip {
        /// The chip.
        chip: Atecc<I2C, D>,
        /// Its private-key slot (Trust&GO: 0).
        slot: u8,
    },
    /// Lab: the key read from slot 8. `SigningKey` zeroizes itself when
    /// dropped, which happens with the [`DeviceCrypto`] after the
    /// handshake.
    Lab(SigningKey),
}

impl<I2C, D> fmt::Debug for KeySigner<I2C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySigner::Chip { slot, .. } => write!(f, "KeySigner::Chip {{ slot: {slot} }}"),
            KeySigner::Lab(_) => f.write_str("KeySigner::Lab(<redacted>)"),
        }
    }
}

impl<I2C, D> KeySigner<I2C, D> {
    /// The lab key from slot 8's PKCS#8 DER.
    pub fn lab_from_pkcs8(der: &[u8]) -> Option<Self> {
        use p256::pkcs8::DecodePrivateKey;
        SigningKey::from_pkcs8_der(der).ok().map(KeySigner::Lab)
    }

    /// The lab key from slot 8 as read: a big-endian length, then that
    /// many bytes of PKCS#8 DER (the layout of `coffre_pki::lab::encode_slot8`).
    pub fn lab_from_slot8(slot8: &[u8]) -> Option<Self> {
        let len = usize::from(u16::from_be_bytes([*slot8.first()?, *slot8.get(1)?]));
        Self::lab_from_pkcs8(slot8.get(2..2 + len)?)
    }
}

/// Why the signer cannot stand for the device certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// The chip did not answer, or answered with an error.
    Chip(SignFailure),
    /// The device certificate's public key could not be read.
    Certificate(coffre_atcacert::Error),
    /// The certificate names another key than the signer's.
    Mismatch {
        /// The first bytes of the certificate's key (X).
        certificate: [u8; 4],
        /// The first bytes of the signer's key (X).
        signer: [u8; 4],
    },
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Chip(SignFailure { absent: true }) => {
                f.write_str("the secure element does not answer")
            }
            IdentityError::Chip(SignFailure { absent: false }) => {
                f.write_str("the secure element refused to give its public key")
            }
            IdentityError::Certificate(e) => write!(f, "device certificate: {e}"),
            IdentityError::Mismatch {
                certificate,
                signer,
            } => write!(
                f,
                "the device certificate's public key ({}…) does not match the key that signs ({}…): provision the chip and the certificate together",
                coffre_driver::coffre_proto::hex::Hex::lower(certificate),
                coffre_driver::coffre_proto::hex::Hex::lower(signer)
            ),
        }
    }
}

impl<I2C, D, E> KeySigner<I2C, D>
where
    I2C: I2c<Error = E>,
    D: DelayNs,
    E: embedded_hal::i2c::Error,
{
    /// Check, just before a handshake, that the chip answers: embedded-tls
    /// cannot be told that a signature failed, so a chip that went away is
    /// found here and the connection is not tried. The lab key is always
    /// there.
    pub fn check(&mut self) -> Result<(), SignFailure> {
        match self {
            KeySigner::Lab(_) => Ok(()),
            KeySigner::Chip { chip, .. } => match chip.probe() {
                Ok(Probe::Present) => Ok(()),
                Ok(_) | Err(_) => Err(SignFailure { absent: true }),
            },
        }
    }

    /// The public key of the signing key, X ‖ Y (the chip computes it from
    /// its private key: GenKey in public-key mode).
    pub fn public_key(&mut self) -> Result<[u8; 64], SignFailure> {
        match self {
            KeySigner::Lab(key) => {
                let point = key.verifying_key().to_encoded_point(false);
                let mut xy = [0u8; 64];
                xy.copy_from_slice(&point.as_bytes()[1..65]);
                Ok(xy)
            }
            KeySigner::Chip { chip, slot } => chip.genkey_public(*slot).map_err(|e| SignFailure {
                absent: matches!(e, coffre_driver::Error::NotPresent { .. }),
            }),
        }
    }

    /// The device certificate names the signer's key — as the Linux agent
    /// checks before it goes online.
    pub fn matches_certificate(&mut self, cert_der: &[u8]) -> Result<(), IdentityError> {
        let cert = coffre_atcacert::der::subject_public_key(cert_der)
            .map_err(IdentityError::Certificate)?;
        let mine = self.public_key().map_err(IdentityError::Chip)?;
        if cert == mine {
            return Ok(());
        }
        let head = |k: &[u8; 64]| [k[0], k[1], k[2], k[3]];
        Err(IdentityError::Mismatch {
            certificate: head(&cert),
            signer: head(&mine),
        })
    }
}

/// The chip failed to sign: the handshake went on with a signature that
/// cannot verify (embedded-tls's signer interface cannot fail without a
/// panic), so the broker refuses it; this says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignFailure {
    /// The chip did not answer at all (unplugged, unpowered).
    pub absent: bool,
}

/// Signatures made so far, and the last failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Signatures {
    /// CertificateVerify signatures made.
    pub made: u32,
    /// Why the last one failed, if it did.
    pub failure: Option<SignFailure>,
}

/// embedded-tls's `CryptoProvider` for a coffre device.
pub struct DeviceCrypto<'a, RNG, I2C, D> {
    rng: RNG,
    verifier: CertVerifier<'a, Aes128GcmSha256, WallClock, BROKER_CERT_MAX>,
    cert: &'a [u8],
    signer: KeySigner<I2C, D>,
    signatures: Signatures,
}

impl<'a, RNG, I2C, D> DeviceCrypto<'a, RNG, I2C, D> {
    /// `ca_der` issued the broker's certificate; `cert_der` is the device
    /// certificate, whose key `signer` holds. The broker certificate's
    /// dates are checked against [`crate::unix_time`] (set it first with
    /// [`crate::set_unix_time`]).
    pub fn new(rng: RNG, ca_der: &'a [u8], cert_der: &'a [u8], signer: KeySigner<I2C, D>) -> Self {
        DeviceCrypto {
            rng,
            verifier: CertVerifier::new(Certificate::X509(ca_der)),
            cert: cert_der,
            signer,
            signatures: Signatures::default(),
        }
    }

    /// The signer (to check the chip before a handshake).
    pub fn signer_mut(&mut self) -> &mut KeySigner<I2C, D> {
        &mut self.signer
    }

    /// What the signer did.
    pub fn signatures(&self) -> Signatures {
        self.signatures
    }

    /// Give the signer back (the chip, for the next connection).
    pub fn into_signer(self) -> KeySigner<I2C, D> {
        self.signer
    }
}

/// The signer as embedded-tls calls it, for one handshake.
struct Sign<'s, I2C, D> {
    signer: &'s mut KeySigner<I2C, D>,
    signatures: &'s mut Signatures,
}

/// A well-formed signature that verifies against no key (r = s = 1).
fn unverifiable() -> Result<DerSignature, signature::Error> {
    let mut rs = [0u8; 64];
    rs[31] = 1;
    rs[63] = 1;
    Ok(Signature::from_slice(&rs)?.to_der())
}

impl<I2C, D, E> signature::SignerMut<DerSignature> for Sign<'_, I2C, D>
where
    I2C: I2c<Error = E>,
    D: DelayNs,
    E: embedded_hal::i2c::Error,
{
    /// `msg` is the TLS 1.3 CertificateVerify content, not hashed.
    fn try_sign(&mut self, msg: &[u8]) -> Result<DerSignature, signature::Error> {
        match self.signer {
            KeySigner::Lab(key) => {
                let sig: Signature = signature::Signer::try_sign(key, msg)?;
                self.signatures.made += 1;
                Ok(sig.to_der())
            }
            KeySigner::Chip { chip, slot } => {
                let digest: [u8; 32] = Sha256::digest(msg).into();
                match chip.sign_digest(*slot, &digest) {
                    Ok(rs) => {
                        self.signatures.made += 1;
                        Ok(Signature::from_slice(&rs)?.to_der())
                    }
                    Err(e) => {
                        self.signatures.failure = Some(SignFailure {
                            absent: matches!(e, coffre_driver::Error::NotPresent { .. }),
                        });
                        unverifiable()
                    }
                }
            }
        }
    }
}

impl<RNG, I2C, D, E> CryptoProvider for DeviceCrypto<'_, RNG, I2C, D>
where
    RNG: CryptoRngCore,
    I2C: I2c<Error = E>,
    D: DelayNs,
    E: embedded_hal::i2c::Error,
{
    type CipherSuite = Aes128GcmSha256;
    type Signature = DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut self.verifier)
    }

    fn signer(
        &mut self,
    ) -> Result<(impl signature::SignerMut<Self::Signature>, SignatureScheme), TlsError> {
        Ok((
            Sign {
                signer: &mut self.signer,
                signatures: &mut self.signatures,
            },
            SignatureScheme::EcdsaSecp256r1Sha256,
        ))
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        Some(Certificate::X509(self.cert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    /// No chip: the lab signer never touches the bus.
    type Lab = KeySigner<NoBus, NoDelay>;

    struct NoBus;
    impl embedded_hal::i2c::ErrorType for NoBus {
        type Error = embedded_hal::i2c::ErrorKind;
    }
    impl I2c for NoBus {
        fn transaction(
            &mut self,
            _: u8,
            _: &mut [embedded_hal::i2c::Operation<'_>],
        ) -> Result<(), Self::Error> {
            Err(embedded_hal::i2c::ErrorKind::Other)
        }
    }
    struct NoDelay;
    impl DelayNs for NoDelay {
        fn delay_ns(&mut self, _: u32) {}
    }

    #[test]
    fn the_lab_key_comes_out_of_slot8_bytes() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let der = key.to_pkcs8_der().unwrap();
        let der = der.as_bytes();
        let mut slot8 = alloc::vec![0u8; 416];
        slot8[..2].copy_from_slice(&(der.len() as u16).to_be_bytes());
        slot8[2..2 + der.len()].copy_from_slice(der);
        let mut signer = Lab::lab_from_slot8(&slot8).unwrap();
        assert!(signer.check().is_ok());
        let point = key.verifying_key().to_encoded_point(false);
        assert_eq!(signer.public_key().unwrap()[..], point.as_bytes()[1..]);
        assert_eq!(alloc::format!("{signer:?}"), "KeySigner::Lab(<redacted>)");
        // A length past the slot, or bytes that are no key: refused.
        slot8[..2].copy_from_slice(&500u16.to_be_bytes());
        assert!(Lab::lab_from_slot8(&slot8).is_none());
        assert!(Lab::lab_from_slot8(&[0, 3, 1, 2, 3]).is_none());
    }

    #[test]
    fn an_absent_chip_is_found_before_the_handshake() {
        let chip = Atecc::new(NoBus, NoDelay, 0x35);
        let mut signer = KeySigner::Chip { chip, slot: 0 };
        assert_eq!(signer.check(), Err(SignFailure { absent: true }));
        let e = signer.matches_certificate(&[0x30, 0x00]).unwrap_err();
        assert!(matches!(e, IdentityError::Certificate(_)), "{e}");
    }
}
