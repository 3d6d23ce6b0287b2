//! What a slot holds: [`classify`] recognises the lab's length-prefixed
//! PKCS#8 key, a certificate, a public key in the chip's 72-byte format,
//! text, or nothing.

use std::fmt;

use p256::PublicKey;
use serde::{Serialize, Serializer};

use crate::util::{cert_facts, hex, public_key_from_xy, public_key_to_xy};

/// What a slot holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Content {
    /// All 0x00 or all 0xFF.
    Empty,
    /// The lab's format: 2-byte big-endian length, then a PKCS#8 EC P-256
    /// private key.
    LabPkcs8Key {
        /// Length of the DER.
        der_len: usize,
        /// The key's public half.
        #[serde(serialize_with = "ser_public_key")]
        public_key: PublicKey,
    },
    /// An X.509 certificate in DER, raw or after a 2-byte length.
    Certificate {
        /// Length of the DER.
        der_len: usize,
        /// Preceded by a 2-byte big-endian length.
        length_prefixed: bool,
        /// Subject CN, if any.
        subject: Option<String>,
    },
    /// A P-256 public key in the chip's 72-byte format: 4 pad bytes, X, 4 pad
    /// bytes, Y.
    PublicKey72 {
        /// The key.
        #[serde(serialize_with = "ser_public_key")]
        public_key: PublicKey,
    },
    /// Printable text (trailing 0x00/0xFF padding removed).
    Ascii(String),
    /// None of the above.
    Unknown,
}

fn ser_public_key<S: Serializer>(pk: &PublicKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(&public_key_to_xy(pk)))
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Empty => f.write_str("empty"),
            Content::LabPkcs8Key { der_len, .. } => {
                write!(f, "PKCS#8 P-256 private key ({der_len} bytes, lab format)")
            }
            Content::Certificate {
                der_len,
                length_prefixed,
                subject,
            } => {
                write!(f, "X.509 certificate ({der_len} bytes")?;
                if *length_prefixed {
                    f.write_str(", length-prefixed")?;
                }
                if let Some(cn) = subject {
                    write!(f, ", CN={cn}")?;
                }
                f.write_str(")")
            }
            Content::PublicKey72 { .. } => f.write_str("P-256 public key (72-byte format)"),
            Content::Ascii(s) => write!(f, "text {s:?}"),
            Content::Unknown => f.write_str("unrecognised data"),
        }
    }
}

fn is_padding(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0x00) || bytes.iter().all(|b| *b == 0xFF)
}

/// Recognise the content of a slot.
pub fn classify(bytes: &[u8]) -> Content {
    if is_padding(bytes) {
        return Content::Empty;
    }
    if bytes.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        if n > 0 && n != 0xFFFF && n + 2 <= bytes.len() {
            let der = &bytes[2..2 + n];
            if let Ok(sk) = crate::lab::parse_pkcs8(der) {
                return Content::LabPkcs8Key {
                    der_len: n,
                    public_key: sk.public_key(),
                };
            }
            if let Ok(facts) = cert_facts(der) {
                if facts.der_len == n {
                    return Content::Certificate {
                        der_len: n,
                        length_prefixed: true,
                        subject: facts.subject_cn,
                    };
                }
            }
        }
    }
    if bytes.first() == Some(&0x30) {
        if let Ok(facts) = cert_facts(bytes) {
            if is_padding(&bytes[facts.der_len..]) {
                return Content::Certificate {
                    der_len: facts.der_len,
                    length_prefixed: false,
                    subject: facts.subject_cn,
                };
            }
        }
    }
    if let Some(public_key) = public_key_72(bytes) {
        return Content::PublicKey72 { public_key };
    }
    let end = bytes
        .iter()
        .rposition(|b| *b != 0x00 && *b != 0xFF)
        .map_or(0, |i| i + 1);
    let text = &bytes[..end];
    if !text.is_empty()
        && text
            .iter()
            .all(|b| (0x20..=0x7E).contains(b) || matches!(b, b'\t' | b'\n' | b'\r'))
    {
        return Content::Ascii(String::from_utf8_lossy(text).into_owned());
    }
    Content::Unknown
}

/// Decode the chip's 72-byte public-key format: block 0 = 4 pad bytes +
/// X[0..28], block 1 = X[28..32] + 4 pad bytes + Y[0..24], block 2 = Y[24..32].
pub fn public_key_72(bytes: &[u8]) -> Option<PublicKey> {
    if bytes.len() < 72 || bytes[0..4] != [0; 4] || bytes[36..40] != [0; 4] {
        return None;
    }
    if !is_padding(&bytes[72..]) {
        return None;
    }
    let mut xy = [0u8; 64];
    xy[..32].copy_from_slice(&bytes[4..36]);
    xy[32..].copy_from_slice(&bytes[40..72]);
    public_key_from_xy(&xy).ok()
}

/// Encode a public key in the chip's 72-byte format (see [`public_key_72`]).
pub fn encode_public_key_72(pk: &PublicKey) -> [u8; 72] {
    let xy = public_key_to_xy(pk);
    let mut out = [0u8; 72];
    out[4..36].copy_from_slice(&xy[..32]);
    out[40..72].copy_from_slice(&xy[32..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_contents() {
        assert_eq!(classify(&[0u8; 416]), Content::Empty);
        assert_eq!(classify(&[0xFFu8; 72]), Content::Empty);
        assert_eq!(classify(&[]), Content::Empty);

        let (der, pk) = crate::lab::generate_lab_key();
        let blob = crate::lab::encode_slot8(&der).unwrap();
        assert_eq!(
            classify(&blob[..]),
            Content::LabPkcs8Key {
                der_len: 138,
                public_key: pk
            }
        );

        let enc = encode_public_key_72(&pk);
        assert_eq!(classify(&enc), Content::PublicKey72 { public_key: pk });
        let mut bad = enc;
        bad[1] = 1;
        assert_ne!(classify(&bad), Content::PublicKey72 { public_key: pk });

        let mut text = [0u8; 36];
        text[..12].copy_from_slice(b"0123456789AB");
        assert_eq!(classify(&text), Content::Ascii("0123456789AB".into()));
        assert_eq!(classify(&[0x01, 0x02, 0x03, 0x00]), Content::Unknown);
    }

    #[test]
    fn content_serializes_with_kind() {
        let v = serde_json::to_value(Content::Ascii("x".into())).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "ascii", "detail": "x"}));
        let v = serde_json::to_value(Content::Empty).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "empty"}));
    }
}
