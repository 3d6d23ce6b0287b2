//! The source lab's slot-8 key format.
//!
//! The lab generates an EC P-256 key off the chip (as `openssl genpkey
//! -algorithm EC -pkeyopt ec_paramgen_curve:P-256` does), serialises it as
//! PKCS#8 DER, prefixes it with its length as two bytes big endian (`00 8A`
//! for the usual 138 bytes), pads with zeros to the 416 bytes of slot 8 and
//! writes it as 13 blocks of 32 bytes. At boot the device reads the blocks
//! back, takes the length, and wraps the DER in `-----BEGIN PRIVATE KEY-----`.
//!
//! Slot 8 of a Trust&GO chip is readable **and writable** in clear by anyone
//! on the I2C bus until it is slot-locked: this format is a faithful model of
//! the lab, not a safe place for a key. See [`crate::audit`].

use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use p256::{PublicKey, SecretKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Size of data slot 8 in bytes.
pub const SLOT8_SIZE: usize = 416;
/// Largest DER that fits after the 2-byte length prefix.
pub const SLOT8_MAX_DER: usize = SLOT8_SIZE - 2;
/// Number of 32-byte blocks in slot 8.
pub const SLOT8_BLOCKS: usize = SLOT8_SIZE / 32;
/// The slot the lab keeps its key in.
pub const LAB_SLOT: u8 = 8;

/// Check that `der` is a PKCS#8 EC P-256 private key; return the key.
pub fn parse_pkcs8(der: &[u8]) -> Result<SecretKey> {
    SecretKey::from_pkcs8_der(der).map_err(|e| Error::LabNotPkcs8(e.to_string()))
}

/// Build the 416-byte slot-8 image of a PKCS#8 key: 2-byte big-endian length,
/// the DER, zero padding. Refuses DER that is not a PKCS#8 EC P-256 key or
/// that is longer than 414 bytes.
pub fn encode_slot8(pkcs8_der: &[u8]) -> Result<Zeroizing<[u8; SLOT8_SIZE]>> {
    if pkcs8_der.len() > SLOT8_MAX_DER {
        return Err(Error::LabKeyTooLarge(pkcs8_der.len()));
    }
    if pkcs8_der.is_empty() {
        return Err(Error::LabNotPkcs8("the key is empty".into()));
    }
    parse_pkcs8(pkcs8_der)?;
    let mut blob = Zeroizing::new([0u8; SLOT8_SIZE]);
    blob[..2].copy_from_slice(&(pkcs8_der.len() as u16).to_be_bytes());
    blob[2..2 + pkcs8_der.len()].copy_from_slice(pkcs8_der);
    Ok(blob)
}

/// Take the PKCS#8 DER back out of slot-8 bytes (416 bytes, or at least the
/// prefix and the DER). Refuses length 0 (empty), 0xFFFF (erased), a length
/// past the data given, and DER that is not a PKCS#8 EC P-256 key.
pub fn decode_slot8(bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    if bytes.len() < 2 {
        return Err(Error::LabLengthPastSlot {
            len: 2,
            available: bytes.len(),
        });
    }
    let len = u16::from_be_bytes([bytes[0], bytes[1]]) as usize;
    match len {
        0 => return Err(Error::LabSlotEmpty),
        0xFFFF => return Err(Error::LabSlotErased),
        _ => {}
    }
    let available = bytes.len().min(SLOT8_SIZE) - 2;
    if len > available {
        return Err(Error::LabLengthPastSlot { len, available });
    }
    let der = Zeroizing::new(bytes[2..2 + len].to_vec());
    parse_pkcs8(&der)?;
    Ok(der)
}

/// The 13 Write/Read operations of slot 8: data-zone address
/// `(8 << 3) | (block << 8)` and the 32 bytes of each block.
pub fn blocks(blob: &[u8; SLOT8_SIZE]) -> [(u16, [u8; 32]); SLOT8_BLOCKS] {
    let mut out = [(0u16, [0u8; 32]); SLOT8_BLOCKS];
    for (b, item) in out.iter_mut().enumerate() {
        item.0 = (u16::from(LAB_SLOT) << 3) | ((b as u16) << 8);
        item.1.copy_from_slice(&blob[b * 32..(b + 1) * 32]);
    }
    out
}

/// Generate a lab key as OpenSSL's `genpkey` does: PKCS#8 DER (138 bytes)
/// holding an RFC 5915 ECPrivateKey with the public key, curve named in the
/// PKCS#8 AlgorithmIdentifier only.
pub fn generate_lab_key() -> (Zeroizing<Vec<u8>>, PublicKey) {
    let sk = SecretKey::random(&mut rand_core::OsRng);
    let der = pkcs8_der(&sk);
    (der, sk.public_key())
}

/// PKCS#8 DER of a P-256 key in OpenSSL's layout (see [`generate_lab_key`]).
pub fn pkcs8_der(sk: &SecretKey) -> Zeroizing<Vec<u8>> {
    // SecretKey::to_pkcs8_der gives the same layout; it only fails on an
    // allocation or encoder error, which cannot happen for a fixed-size key.
    let doc = sk
        .to_pkcs8_der()
        .expect("a P-256 key always encodes as PKCS#8");
    Zeroizing::new(doc.as_bytes().to_vec())
}

/// The `-----BEGIN PRIVATE KEY-----` text the lab's device builds in RAM.
pub fn pkcs8_pem(pkcs8_der: &[u8]) -> Result<Zeroizing<String>> {
    let sk = parse_pkcs8(pkcs8_der)?;
    sk.to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::encoding("PKCS#8 PEM", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test-only key: `openssl genpkey -algorithm EC -pkeyopt
    /// ec_paramgen_curve:P-256` (PEM, PKCS#8) converted to DER with
    /// `openssl pkcs8 -topk8 -nocrypt -outform DER`.
    pub(crate) const OPENSSL_KEY: [u8; 138] = [
        0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
        0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30,
        0x6b, 0x02, 0x01, 0x01, 0x04, 0x20, 0xf4, 0x06, 0x3f, 0xde, 0xa7, 0x7b, 0xba, 0x9a, 0x02,
        0xf8, 0x62, 0x89, 0xc0, 0xaf, 0xf6, 0xaa, 0xc6, 0x0f, 0x8b, 0x38, 0x07, 0xd7, 0xdd, 0x78,
        0xf9, 0x48, 0x0c, 0x8d, 0x9d, 0x07, 0xe8, 0xf4, 0xa1, 0x44, 0x03, 0x42, 0x00, 0x04, 0x0c,
        0x7d, 0xf6, 0x39, 0xc5, 0x67, 0xbd, 0xae, 0x9e, 0x0e, 0x0a, 0x75, 0xad, 0xea, 0x0d, 0x1e,
        0xbe, 0x8b, 0xb9, 0xa0, 0x9f, 0x1a, 0xfe, 0x55, 0x78, 0x16, 0x0e, 0x60, 0x0a, 0x25, 0x38,
        0xfe, 0x16, 0x72, 0x03, 0xd2, 0x7d, 0x0d, 0x48, 0x19, 0xc7, 0x95, 0xcc, 0x1b, 0xa7, 0x8f,
        0xf7, 0xa0, 0xbe, 0x4e, 0xec, 0xe0, 0x47, 0xa8, 0x83, 0x46, 0x59, 0xbd, 0x17, 0x97, 0x8f,
        0x5e, 0x8e, 0xaa,
    ];

    #[test]
    fn generated_key_has_openssl_layout() {
        let (der, pk) = generate_lab_key();
        assert_eq!(der.len(), 138);
        // Same header as OpenSSL's: SEQUENCE(135) { INTEGER 0, AlgId(ecPublicKey,
        // prime256v1), OCTET STRING(109) { SEQUENCE(107) { INTEGER 1, OCTET STRING(32) ...
        assert_eq!(&der[..36], &OPENSSL_KEY[..36]);
        // ... [1] { BIT STRING(66) 00 04 X Y } }
        assert_eq!(&der[68..73], &[0xa1, 0x44, 0x03, 0x42, 0x00]);
        assert_eq!(parse_pkcs8(&der).unwrap().public_key(), pk);
    }

    #[test]
    fn openssl_key_re_encodes_byte_for_byte() {
        let sk = parse_pkcs8(&OPENSSL_KEY).unwrap();
        assert_eq!(&pkcs8_der(&sk)[..], &OPENSSL_KEY[..]);
    }

    #[test]
    fn known_key_blob_matches_the_lab() {
        let blob = encode_slot8(&OPENSSL_KEY).unwrap();
        let mut expected = [0u8; SLOT8_SIZE];
        expected[0] = 0x00;
        expected[1] = 0x8A;
        expected[2..140].copy_from_slice(&OPENSSL_KEY);
        assert_eq!(&blob[..], &expected[..]);
        assert_eq!(&blob[..6], &[0x00, 0x8A, 0x30, 0x81, 0x87, 0x02]);
        assert_eq!(&decode_slot8(&blob[..]).unwrap()[..], &OPENSSL_KEY[..]);
    }

    #[test]
    fn slot8_layout_is_byte_exact() {
        let (der, _) = generate_lab_key();
        let blob = encode_slot8(&der).unwrap();
        assert_eq!(&blob[..5], &[0x00, 0x8A, 0x30, 0x81, 0x87]);
        assert_eq!(&blob[2..140], &der[..]);
        assert!(blob[140..].iter().all(|b| *b == 0));
        assert_eq!(&decode_slot8(&blob[..]).unwrap()[..], &der[..]);
        let bl = blocks(&blob);
        assert_eq!(bl[0].0, 0x0040);
        assert_eq!(bl[1].0, 0x0140);
        assert_eq!(bl[12].0, 0x0C40);
        assert_eq!(&bl[0].1[..4], &[0x00, 0x8A, 0x30, 0x81]);
        let joined: Vec<u8> = bl.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        assert_eq!(joined, blob.to_vec());
    }

    #[test]
    fn bad_slot_contents_are_named() {
        assert!(matches!(
            decode_slot8(&[0u8; 416]),
            Err(Error::LabSlotEmpty)
        ));
        assert!(matches!(
            decode_slot8(&[0xFFu8; 416]),
            Err(Error::LabSlotErased)
        ));
        let mut past = [0u8; 416];
        past[..2].copy_from_slice(&415u16.to_be_bytes());
        assert!(matches!(
            decode_slot8(&past),
            Err(Error::LabLengthPastSlot {
                len: 415,
                available: 414
            })
        ));
        let mut junk = [0u8; 416];
        junk[..2].copy_from_slice(&4u16.to_be_bytes());
        junk[2..6].copy_from_slice(&[0x30, 0x02, 0x05, 0x00]);
        assert!(matches!(decode_slot8(&junk), Err(Error::LabNotPkcs8(_))));
        assert!(matches!(
            decode_slot8(&[0x00]),
            Err(Error::LabLengthPastSlot { .. })
        ));
        assert!(matches!(
            encode_slot8(&[0u8; 415]),
            Err(Error::LabKeyTooLarge(415))
        ));
        assert!(matches!(
            encode_slot8(&[0x30, 0x00]),
            Err(Error::LabNotPkcs8(_))
        ));
        assert!(matches!(encode_slot8(&[]), Err(Error::LabNotPkcs8(_))));
    }

    #[test]
    fn pem_is_what_the_lab_builds() {
        let (der, _) = generate_lab_key();
        let pem = pkcs8_pem(&der).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(pem.trim_end().ends_with("-----END PRIVATE KEY-----"));
    }
}
