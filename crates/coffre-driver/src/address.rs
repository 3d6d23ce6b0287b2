//! I2C addresses as people type them.
//!
//! Microchip documents and the config zone (byte 16) give the address in its
//! **8-bit form** (the 7-bit address shifted left by one): 0x6A for a
//! Trust&GO part, 0x6C for TrustFLEX, 0xC0 for a blank part. embedded-hal and
//! Linux take the **7-bit form**: 0x35, 0x36, 0x60.

use coffre_proto::tngtls::{BLANK_ADDRESS, TFLXTLS_ADDRESS, TNGTLS_ADDRESS};

/// The result of [`normalize_address`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    /// The 7-bit address to use on the bus.
    pub seven_bit: u8,
    /// Set when the input was changed or is suspicious: what was done and why.
    pub note: Option<&'static str>,
    /// The part usually found at [`Address::seven_bit`], if it is a known one.
    pub part: Option<&'static str>,
}

const PART_TNGTLS: &str = "ATECC608B Trust&GO (TNGTLS)";
const PART_TFLXTLS: &str = "ATECC608B TrustFLEX (TFLXTLS)";
const PART_BLANK: &str = "blank ATECC608B (TrustCUSTOM)";

const fn part_at(seven_bit: u8) -> Option<&'static str> {
    match seven_bit {
        TNGTLS_ADDRESS => Some(PART_TNGTLS),
        TFLXTLS_ADDRESS => Some(PART_TFLXTLS),
        BLANK_ADDRESS => Some(PART_BLANK),
        _ => None,
    }
}

/// Turn an address as a user typed it into the 7-bit address for the bus.
///
/// - The 8-bit forms of the known parts are converted: 0x6A → 0x35
///   (Trust&GO), 0x6C → 0x36 (TrustFLEX), 0xC0 → 0x60 (blank part).
/// - Any value above 0x7F cannot be a 7-bit address: it is taken as an
///   8-bit form and shifted right by one.
/// - Other values are kept; [`Address::part`] names the part usually found
///   there (0x35, 0x36, 0x60).
/// - Reserved I2C addresses (0x00–0x07, 0x78–0x7F) are kept with a warning.
///
/// ```
/// use coffre_driver::normalize_address;
/// assert_eq!(normalize_address(0x6A).seven_bit, 0x35);
/// assert_eq!(normalize_address(0xC0).seven_bit, 0x60);
/// let a = normalize_address(0x35);
/// assert_eq!((a.seven_bit, a.note), (0x35, None));
/// assert!(a.part.unwrap().contains("Trust&GO"));
/// ```
pub const fn normalize_address(input: u8) -> Address {
    let (seven_bit, note) = match input {
        0x6A => (
            TNGTLS_ADDRESS,
            Some("0x6A is the 8-bit form (config byte 16) of 0x35, the Trust&GO address; using 7-bit 0x35"),
        ),
        0x6C => (
            TFLXTLS_ADDRESS,
            Some("0x6C is the 8-bit form (config byte 16) of 0x36, the TrustFLEX address; using 7-bit 0x36"),
        ),
        0xC0 => (
            BLANK_ADDRESS,
            Some("0xC0 is the 8-bit form (config byte 16) of 0x60, the blank-part address; using 7-bit 0x60"),
        ),
        0x80..=0xFF => (
            input >> 1,
            Some("addresses above 0x7F are 8-bit forms (7-bit address shifted left by one); using it shifted right by one"),
        ),
        0x00..=0x07 | 0x78..=0x7F => (
            input,
            Some("this is a reserved I2C address (0x00-0x07, 0x78-0x7F); no ATECC608 answers there"),
        ),
        _ => (input, None),
    };
    Address {
        seven_bit,
        note,
        part: part_at(seven_bit),
    }
}
