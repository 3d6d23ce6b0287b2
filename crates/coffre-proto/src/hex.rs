//! Hexadecimal text of bytes, the one way coffre writes it: a
//! [`Display`](core::fmt::Display) adapter, so it needs no allocator.
//!
//! ```
//! use coffre_proto::hex::Hex;
//! let b = [0x01, 0x23, 0xAB];
//! assert_eq!(format!("{}", Hex::lower(&b)), "0123ab");
//! assert_eq!(format!("{}", Hex::upper(&b)), "0123AB");
//! assert_eq!(format!("{}", Hex::upper(&b).spaced()), "01 23 AB");
//! ```

use core::fmt;

/// Bytes shown as hex digits, two per byte.
#[derive(Clone, Copy)]
pub struct Hex<'a> {
    bytes: &'a [u8],
    upper: bool,
    spaced: bool,
}

impl<'a> Hex<'a> {
    /// Lower-case digits, no separator (`0123ab`).
    pub const fn lower(bytes: &'a [u8]) -> Self {
        Hex {
            bytes,
            upper: false,
            spaced: false,
        }
    }

    /// Upper-case digits, no separator (`0123AB`), as OpenSSL prints serials
    /// and the kit protocol carries packets.
    pub const fn upper(bytes: &'a [u8]) -> Self {
        Hex {
            bytes,
            upper: true,
            spaced: false,
        }
    }

    /// The same digits with one space between bytes (`01 23 AB`).
    pub const fn spaced(self) -> Self {
        Hex {
            spaced: true,
            ..self
        }
    }
}

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.bytes.iter().enumerate() {
            if self.spaced && i > 0 {
                f.write_str(" ")?;
            }
            if self.upper {
                write!(f, "{b:02X}")?;
            } else {
                write!(f, "{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn every_byte_value_round_trips() {
        let all: std::vec::Vec<u8> = (0..=255).collect();
        let s = Hex::lower(&all).to_string();
        assert_eq!(s.len(), 512);
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let v = u8::from_str_radix(core::str::from_utf8(chunk).unwrap(), 16).unwrap();
            assert_eq!(v as usize, i);
        }
        assert_eq!(Hex::upper(&all).to_string(), s.to_ascii_uppercase());
    }

    #[test]
    fn empty_and_spaced() {
        assert_eq!(Hex::lower(&[]).to_string(), "");
        assert_eq!(Hex::lower(&[0]).spaced().to_string(), "00");
        assert_eq!(Hex::lower(&[0xde, 0xad]).spaced().to_string(), "de ad");
    }
}
