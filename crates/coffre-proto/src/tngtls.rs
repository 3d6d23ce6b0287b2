//! The Trust&GO ATECC608B-TNGTLS slot roles and a reference config zone.

/// The config zone read from a real ATECC608B-TNGTLS at 0x35 (8-bit 0x6A),
/// RevNum `00 00 60 03`. Microchip publishes no factory image; this is one
/// part's dump (serial number and counters are that part's). See
/// `docs/chip-facts.md`.
pub const TNGTLS_CONFIG_SAMPLE: [u8; 128] = [
    0x01, 0x23, 0x3F, 0xCE, 0x00, 0x00, 0x60, 0x03, 0x99, 0x12, 0x44, 0x0F, 0x01, 0x61, 0x55, 0x00,
    0x6A, 0x00, 0x00, 0x01, 0x85, 0x00, 0x82, 0x00, 0x85, 0x20, 0x85, 0x20, 0x85, 0x20, 0x0F, 0x8F,
    0x8F, 0x0F, 0x8F, 0x8F, 0x0F, 0x0F, 0x8F, 0x0F, 0x0F, 0x8F, 0x0F, 0x8F, 0x0F, 0x8F, 0x8F, 0x8F,
    0x8F, 0x8F, 0x8F, 0x8F, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x0F, 0xFF, 0xFF, 0xFF,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF7, 0x00, 0x69, 0x76, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x0E, 0x60, 0x00, 0x00, 0x00, 0x00,
    0x53, 0x00, 0x53, 0x00, 0x73, 0x00, 0x73, 0x00, 0x73, 0x00, 0x1C, 0x00, 0x7C, 0x00, 0x1C, 0x00,
    0x3C, 0x00, 0x1A, 0x00, 0x1C, 0x00, 0x10, 0x00, 0x1C, 0x00, 0x1C, 0x00, 0x1C, 0x00, 0x1C, 0x00,
];

/// 7-bit I2C address of a Trust&GO part.
pub const TNGTLS_ADDRESS: u8 = 0x35;
/// 7-bit I2C address of a TrustFLEX part.
pub const TFLXTLS_ADDRESS: u8 = 0x36;
/// 7-bit I2C address of a blank (TrustCUSTOM) part.
pub const BLANK_ADDRESS: u8 = 0x60;

/// The factory role of one Trust&GO slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRole {
    /// Slot number.
    pub slot: u8,
    /// Short name.
    pub name: &'static str,
    /// What Microchip uses it for.
    pub description: &'static str,
}

/// The Trust&GO TNGTLS slot map (Microchip's "Detailed Slot Access
/// Policies" and CryptoAuthLib's TNG certificate definitions).
pub const TNGTLS_SLOT_ROLES: [SlotRole; 16] = [
    SlotRole { slot: 0, name: "primary key", description: "factory P-256 private key of the device certificate; external sign and ECDH; permanent" },
    SlotRole { slot: 1, name: "internal sign key", description: "P-256 private key for internal-message signing (attestation)" },
    SlotRole { slot: 2, name: "secondary key 1", description: "P-256 private key slot; GenKey may create a key; lockable" },
    SlotRole { slot: 3, name: "secondary key 2", description: "P-256 private key slot; GenKey may create a key; lockable" },
    SlotRole { slot: 4, name: "secondary key 3", description: "P-256 private key slot; GenKey may create a key; lockable" },
    SlotRole { slot: 5, name: "device id", description: "clear-text data used in the device certificate; not writable" },
    SlotRole { slot: 6, name: "IO protection key", description: "secret key for IO protection (encrypted reads, ECDH output)" },
    SlotRole { slot: 7, name: "secure boot", description: "secret, never writable" },
    SlotRole { slot: 8, name: "general data", description: "416-byte general data; readable and writable in clear until slot-locked (the lab puts its key here)" },
    SlotRole { slot: 9, name: "AES key", description: "secret AES key; writable" },
    SlotRole { slot: 10, name: "device certificate", description: "compressed device certificate (72 B); not writable" },
    SlotRole { slot: 11, name: "signer public key", description: "public key of the certificate signer (72-byte format); not writable" },
    SlotRole { slot: 12, name: "signer certificate", description: "compressed signer certificate (72 B); not writable" },
    SlotRole { slot: 13, name: "reserved", description: "secret, never writable" },
    SlotRole { slot: 14, name: "reserved", description: "secret, never writable" },
    SlotRole { slot: 15, name: "reserved", description: "secret, never writable" },
];

/// The Trust&GO role of `slot`.
pub fn slot_role(slot: u8) -> Option<&'static SlotRole> {
    TNGTLS_SLOT_ROLES.get(slot as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_indexed_by_slot() {
        for (i, r) in TNGTLS_SLOT_ROLES.iter().enumerate() {
            assert_eq!(r.slot as usize, i);
        }
        assert_eq!(slot_role(8).unwrap().name, "general data");
        assert!(slot_role(16).is_none());
        assert_eq!(TNGTLS_CONFIG_SAMPLE[16] >> 1, TNGTLS_ADDRESS);
    }
}
