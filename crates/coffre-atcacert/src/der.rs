//! The little DER this crate needs: lengths, unsigned integers, the ECDSA
//! signature BIT STRING, and walking a certificate to its TBS and signature.

use alloc::vec::Vec;

use crate::Error;

/// Encode a DER length.
pub fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else if len < 0x1_0000 {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    } else {
        out.extend_from_slice(&[0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
    }
}

/// Decode the length at `b[0..]`: (length, bytes used by the length).
pub fn decode_len(b: &[u8]) -> Result<(usize, usize), Error> {
    let first = *b.first().ok_or(Error::BadDer("truncated length"))?;
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7F);
    if n == 0 || n > 3 || b.len() < 1 + n {
        return Err(Error::BadDer("unsupported or truncated length"));
    }
    let len = b[1..=n]
        .iter()
        .fold(0usize, |a, &x| (a << 8) | usize::from(x));
    Ok((len, 1 + n))
}

/// One TLV at the start of `b`: (tag, header length, value length).
pub fn tlv(b: &[u8]) -> Result<(u8, usize, usize), Error> {
    let tag = *b.first().ok_or(Error::BadDer("truncated element"))?;
    let (len, used) = decode_len(&b[1..])?;
    let header = 1 + used;
    if b.len() < header + len {
        return Err(Error::BadDer("element runs past the end"));
    }
    Ok((tag, header, len))
}

/// A big-endian unsigned integer as a DER INTEGER (minimal, with a 0x00
/// pad when the top bit is set), as `atcacert_der_enc_integer` writes it.
pub fn encode_uint(value: &[u8], out: &mut Vec<u8>) {
    let mut v = value;
    while v.len() > 1 && v[0] == 0 && v[1] & 0x80 == 0 {
        v = &v[1..];
    }
    let pad = v.first().is_some_and(|&b| b & 0x80 != 0);
    out.push(0x02);
    encode_len(v.len() + usize::from(pad), out);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// The certificate's signatureValue: BIT STRING { SEQUENCE { r, s } }
/// (`atcacert_der_enc_ecdsa_sig_value`).
pub fn ecdsa_sig_bit_string(sig: &[u8; 64]) -> Vec<u8> {
    let mut ints = Vec::with_capacity(72);
    encode_uint(&sig[..32], &mut ints);
    encode_uint(&sig[32..], &mut ints);
    let mut seq = Vec::with_capacity(ints.len() + 3);
    seq.push(0x30);
    encode_len(ints.len(), &mut seq);
    seq.extend_from_slice(&ints);
    let mut out = Vec::with_capacity(seq.len() + 4);
    out.push(0x03);
    encode_len(seq.len() + 1, &mut out);
    out.push(0x00);
    out.extend_from_slice(&seq);
    out
}

/// The parts of a DER certificate: the TBSCertificate (tag and length
/// included) and the signature R ‖ S.
pub fn split_cert(cert: &[u8]) -> Result<(&[u8], [u8; 64]), Error> {
    let (tag, h, len) = tlv(cert)?;
    if tag != 0x30 || h + len != cert.len() {
        return Err(Error::BadDer("not one certificate SEQUENCE"));
    }
    let body = &cert[h..];
    let (tag, th, tlen) = tlv(body)?;
    if tag != 0x30 {
        return Err(Error::BadDer("no TBSCertificate"));
    }
    let tbs = &body[..th + tlen];
    let rest = &body[th + tlen..];
    let (tag, ah, alen) = tlv(rest)?;
    if tag != 0x30 {
        return Err(Error::BadDer("no signatureAlgorithm"));
    }
    let rest = &rest[ah + alen..];
    let (tag, bh, blen) = tlv(rest)?;
    if tag != 0x03 || blen < 1 || rest[bh] != 0 {
        return Err(Error::BadDer("no signatureValue BIT STRING"));
    }
    let sig = p256::ecdsa::Signature::from_der(&rest[bh + 1..bh + blen])
        .map_err(|_| Error::BadDer("signatureValue is not an ECDSA P-256 signature"))?;
    Ok((tbs, sig.to_bytes().into()))
}

/// The certificate's subject public key as X ‖ Y: the uncompressed P-256
/// point of its SubjectPublicKeyInfo (what the chip's GenKey returns for
/// the slot whose key the certificate names).
pub fn subject_public_key(cert: &[u8]) -> Result<[u8; 64], Error> {
    let (tbs, _) = split_cert(cert)?;
    let (_, h, _) = tlv(tbs)?;
    let mut rest = &tbs[h..];
    // version [0] (optional), serialNumber, signature, issuer, validity,
    // subject, then subjectPublicKeyInfo.
    if rest.first() == Some(&0xA0) {
        let (_, h, l) = tlv(rest)?;
        rest = &rest[h + l..];
    }
    for _ in 0..5 {
        let (_, h, l) = tlv(rest)?;
        rest = &rest[h + l..];
    }
    let (tag, h, l) = tlv(rest)?;
    if tag != 0x30 {
        return Err(Error::BadDer("no subjectPublicKeyInfo"));
    }
    let spki = &rest[h..h + l];
    let (_, ah, al) = tlv(spki)?;
    let key = &spki[ah + al..];
    let (tag, kh, kl) = tlv(key)?;
    let bits = &key[kh..kh + kl];
    if tag != 0x03 || bits.len() != 66 || bits[0] != 0 || bits[1] != 0x04 {
        return Err(Error::BadDer(
            "the subject public key is not an uncompressed P-256 point",
        ));
    }
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&bits[2..]);
    Ok(xy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_minimal_and_positive() {
        let mut v = Vec::new();
        encode_uint(&[0x00, 0x00, 0x7F], &mut v);
        assert_eq!(v, [0x02, 0x01, 0x7F]);
        v.clear();
        encode_uint(&[0x00, 0x80], &mut v);
        assert_eq!(v, [0x02, 0x02, 0x00, 0x80]);
        v.clear();
        encode_uint(&[0xFF, 0x01], &mut v);
        assert_eq!(v, [0x02, 0x03, 0x00, 0xFF, 0x01]);
        v.clear();
        encode_uint(&[0, 0], &mut v);
        assert_eq!(v, [0x02, 0x01, 0x00]);
    }

    #[test]
    fn lengths_round_trip() {
        for n in [0usize, 0x7F, 0x80, 0xFF, 0x100, 0x1F5, 0xFFFF] {
            let mut v = Vec::new();
            encode_len(n, &mut v);
            assert_eq!(decode_len(&v).unwrap(), (n, v.len()));
        }
        assert!(decode_len(&[0x84, 1, 2, 3, 4]).is_err());
        assert!(decode_len(&[]).is_err());
    }

    #[test]
    fn subject_public_key_of_a_real_certificate() {
        use crate::templates::{microchip_root_public_key, MICROCHIP_ROOT_CA_002};
        assert_eq!(
            subject_public_key(&MICROCHIP_ROOT_CA_002).unwrap(),
            microchip_root_public_key()
        );
        let mut cut = MICROCHIP_ROOT_CA_002.to_vec();
        cut.truncate(200);
        assert!(subject_public_key(&cut).is_err());
    }
}
