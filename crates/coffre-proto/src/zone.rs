//! Zones, slot sizes and address encoding.
//!
//! Addresses are in 4-byte words. Config and OTP zones: `(block << 3) | word`.
//! Data zone: `(slot << 3) | (block << 8) | word` — the lab's
//! `(8 << 3) | (block << 8)` for block `block` of slot 8.

use crate::error::Error;

/// One of the chip's three memory zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Zone {
    /// The 128-byte configuration zone.
    Config,
    /// The 64-byte one-time-programmable zone.
    Otp,
    /// The data zone: 16 slots.
    Data,
}

impl Zone {
    /// The zone code in param1 bits 1:0.
    pub const fn code(self) -> u8 {
        match self {
            Zone::Config => 0,
            Zone::Otp => 1,
            Zone::Data => 2,
        }
    }

    /// Decode param1 bits 1:0 (3 is not a zone).
    pub const fn from_code(code: u8) -> Option<Zone> {
        match code & 0x03 {
            0 => Some(Zone::Config),
            1 => Some(Zone::Otp),
            2 => Some(Zone::Data),
            _ => None,
        }
    }

    /// The zone's name as a person reads it.
    pub const fn name(self) -> &'static str {
        match self {
            Zone::Config => "config",
            Zone::Otp => "OTP",
            Zone::Data => "data",
        }
    }
}

/// Size of the configuration zone in bytes.
pub const CONFIG_SIZE: usize = 128;
/// Size of the OTP zone in bytes.
pub const OTP_SIZE: usize = 64;
/// Number of data slots.
pub const SLOT_COUNT: usize = 16;
/// Bytes in a block (the unit of 32-byte reads and writes).
pub const BLOCK_SIZE: usize = 32;
/// Bytes in a word (the unit of 4-byte reads and writes).
pub const WORD_SIZE: usize = 4;
/// Total data-zone size: 8×36 + 416 + 7×72.
pub const DATA_SIZE: usize = 8 * 36 + 416 + 7 * 72;

/// The size in bytes of data slot `slot` (0–7: 36, 8: 416, 9–15: 72).
pub const fn slot_size(slot: u8) -> Option<usize> {
    match slot {
        0..=7 => Some(36),
        8 => Some(416),
        9..=15 => Some(72),
        _ => None,
    }
}

/// Number of 32-byte blocks needed to cover slot `slot` (the last may be partial).
pub const fn slot_blocks(slot: u8) -> Option<usize> {
    match slot_size(slot) {
        Some(s) => Some(s.div_ceil(BLOCK_SIZE)),
        None => None,
    }
}

/// Offset of slot `slot` in a flat data-zone image of [`DATA_SIZE`] bytes.
pub const fn slot_offset(slot: u8) -> Option<usize> {
    match slot {
        0..=7 => Some(slot as usize * 36),
        8 => Some(8 * 36),
        9..=15 => Some(8 * 36 + 416 + (slot as usize - 9) * 72),
        _ => None,
    }
}

/// Address of `block`/`word` in the config or OTP zone.
pub const fn config_address(block: u8, word: u8) -> u16 {
    ((block as u16) << 3) | (word as u16 & 0x07)
}

/// Address of `block`/`word` of data slot `slot`.
pub fn data_address(slot: u8, block: u8, word: u8) -> Result<u16, Error> {
    let blocks = slot_blocks(slot).ok_or(Error::InvalidArgument)?;
    if block as usize >= blocks || word > 7 {
        return Err(Error::InvalidArgument);
    }
    Ok(((slot as u16) << 3) | ((block as u16) << 8) | word as u16)
}

/// A decoded address: where an access starts, as a byte offset in its zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The zone.
    pub zone: Zone,
    /// The slot (data zone only).
    pub slot: Option<u8>,
    /// Block number within the zone or slot.
    pub block: u8,
    /// Word number within the block.
    pub word: u8,
    /// Byte offset within the zone (config, OTP) or the slot (data).
    pub offset: usize,
}

/// Decode an address for an access of `len` bytes (4 or 32) and check that
/// it fits in the zone or slot. A 32-byte access ignores the word bits, as
/// the chip does (it always transfers a whole block).
///
/// Accesses that run past the end of a slot are refused here; the emulator
/// decides separately what the silicon does with them.
pub fn decode_address(zone: Zone, address: u16, len: usize) -> Result<Location, Error> {
    let word = (address & 0x07) as u8;
    let (slot, block, size) = match zone {
        Zone::Config => (None, ((address >> 3) & 0x03) as u8, CONFIG_SIZE),
        Zone::Otp => (None, ((address >> 3) & 0x01) as u8, OTP_SIZE),
        Zone::Data => {
            let slot = ((address >> 3) & 0x0F) as u8;
            let size = slot_size(slot).ok_or(Error::InvalidArgument)?;
            (Some(slot), ((address >> 8) & 0xFF) as u8, size)
        }
    };
    let word_used = if len == BLOCK_SIZE { 0 } else { word };
    let offset = block as usize * BLOCK_SIZE + word_used as usize * WORD_SIZE;
    if offset >= size {
        return Err(Error::InvalidArgument);
    }
    Ok(Location {
        zone,
        slot,
        block,
        word: word_used,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_slot8_addresses() {
        for b in 0..13u8 {
            assert_eq!(data_address(8, b, 0).unwrap(), (8 << 3) | ((b as u16) << 8));
        }
        assert_eq!(data_address(8, 13, 0), Err(Error::InvalidArgument));
        assert_eq!(data_address(16, 0, 0), Err(Error::InvalidArgument));
    }

    #[test]
    fn slot_geometry() {
        assert_eq!(slot_size(0), Some(36));
        assert_eq!(slot_size(7), Some(36));
        assert_eq!(slot_size(8), Some(416));
        assert_eq!(slot_size(9), Some(72));
        assert_eq!(slot_size(15), Some(72));
        assert_eq!(slot_size(16), None);
        assert_eq!(slot_blocks(0), Some(2));
        assert_eq!(slot_blocks(8), Some(13));
        assert_eq!(slot_blocks(10), Some(3));
        let total: usize = (0..16).map(|s| slot_size(s).unwrap()).sum();
        assert_eq!(total, DATA_SIZE);
        assert_eq!(slot_offset(15).unwrap() + 72, DATA_SIZE);
    }

    #[test]
    fn config_words() {
        // Bytes 84–87 (lock bytes) are word 0x15.
        assert_eq!(config_address(2, 5), 0x15);
        let loc = decode_address(Zone::Config, 0x15, 4).unwrap();
        assert_eq!(loc.offset, 84);
        let loc = decode_address(Zone::Config, 0x18, 32).unwrap();
        assert_eq!(loc.offset, 96);
        assert_eq!(decode_address(Zone::Otp, 0x08, 32).unwrap().offset, 32);
    }

    #[test]
    fn data_addresses_decode() {
        let loc = decode_address(Zone::Data, (8 << 3) | (12 << 8), 32).unwrap();
        assert_eq!((loc.slot, loc.block, loc.offset), (Some(8), 12, 384));
        // Slot 0 has 36 bytes: block 1 word 0 exists, word 1 does not.
        assert!(decode_address(Zone::Data, 0x0100, 4).is_ok());
        assert!(decode_address(Zone::Data, 0x0101, 4).is_err());
        assert!(decode_address(Zone::Data, 0x0200, 32).is_err());
    }
}
