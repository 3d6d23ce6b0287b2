//! Typed serial numbers and times, the values that cross the CA's modules.
//!
//! Both serialise as the strings the index has always held (upper-case hex,
//! RFC 3339), so the files and the `--json` output keep their shape.

use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::util::hex_upper;

/// A certificate serial number, as `openssl x509 -serial` prints it:
/// upper-case hex, without the leading zero byte DER adds to keep it
/// positive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(String);

impl Serial {
    /// The serial of a certificate from its raw DER content bytes.
    pub fn from_der(raw: &[u8]) -> Serial {
        let trimmed = match raw {
            [0, rest @ ..] if !rest.is_empty() => rest,
            other => other,
        };
        Serial(hex_upper(trimmed))
    }

    /// Parse what a person types: hex, colons, `0x` and case ignored.
    /// `None` when `s` is not hex (a device id, for instance).
    pub fn parse(s: &str) -> Option<Serial> {
        let s = s.trim();
        let s = s
            .strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .unwrap_or(s);
        let hex: String = s.chars().filter(|c| *c != ':').collect();
        if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some(Serial(hex.to_ascii_uppercase()))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form two serials are compared in: leading zeros removed, so
    /// `0A1B` and `a:1b` are the same serial.
    pub fn key(&self) -> &str {
        let k = self.0.trim_start_matches('0');
        if k.is_empty() {
            "0"
        } else {
            k
        }
    }

    /// The serial's bytes (big-endian), for encoding a CRL entry.
    pub fn to_bytes(&self) -> Vec<u8> {
        let s = if self.0.len() % 2 == 1 {
            format!("0{}", self.0)
        } else {
            self.0.clone()
        };
        // `Serial` only ever holds hex digits.
        (0..s.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
            .collect()
    }
}

impl Deref for Serial {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Serial {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl Serialize for Serial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Serial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Serial::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("serial {s:?} is not hex")))
    }
}

/// A point in time with whole seconds, UTC, as X.509 holds it. Displayed
/// and serialised as RFC 3339 (`2026-01-01T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// `t` in UTC, its fraction of a second dropped.
    pub fn new(t: OffsetDateTime) -> Timestamp {
        let t = t.to_offset(time::UtcOffset::UTC);
        Timestamp(t.replace_nanosecond(0).unwrap_or(t))
    }

    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::new(OffsetDateTime::now_utc())
    }

    /// Parse RFC 3339 text.
    pub fn parse(s: &str) -> Option<Timestamp> {
        OffsetDateTime::parse(s, &Rfc3339).ok().map(Timestamp::new)
    }

    /// The time itself.
    pub fn get(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Timestamp {
        Timestamp::new(t)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 time")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_parse_compare_and_encode() {
        let a = Serial::parse("0a:1B").unwrap();
        assert_eq!(a.as_str(), "0A1B");
        assert_eq!(a.key(), "A1B");
        assert_eq!(Serial::parse("0x00A1B").unwrap().key(), a.key());
        assert_eq!(Serial::parse("m5go"), None);
        assert_eq!(Serial::parse(""), None);
        assert_eq!(Serial::parse("A1B").unwrap().to_bytes(), vec![0x0A, 0x1B]);
        assert_eq!(Serial::from_der(&[0x00, 0x80, 0x01]).as_str(), "8001");
        assert_eq!(Serial::from_der(&[0x00]).as_str(), "00");
        assert_eq!(Serial::parse("0").unwrap().key(), "0");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"0A1B\"");
        assert_eq!(serde_json::from_str::<Serial>(&json).unwrap(), a);
        assert!(serde_json::from_str::<Serial>("\"zz\"").is_err());
    }

    #[test]
    fn timestamps_are_whole_seconds_rfc3339() {
        let t = Timestamp::parse("2026-03-04T05:06:07.890+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-04T04:06:07Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-03-04T04:06:07Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"yesterday\"").is_err());
        assert!(Timestamp::now().get().nanosecond() == 0);
    }
}
