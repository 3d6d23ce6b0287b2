//! Configurations coffre writes into blank chips.

use coffre_proto::config::{ConfigZone, SlotConfig};
use coffre_proto::tngtls::TNGTLS_CONFIG_SAMPLE;

/// A configuration for a blank chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The Trust&GO slot map, as shipped: slot 8 is clear-read and
    /// clear-write general data (the lab can use it).
    TrustAndGo,
    /// Trust&GO with every clear-text write to a key or secret removed and
    /// slot 8 made secret: no secret is readable or replaceable in clear.
    /// Slot 8 is read and written only encrypted with the IO protection key
    /// (slot 6, ChipOptions), so the lab's key never crosses the bus in
    /// clear; offload mode works as on Trust&GO.
    Hardened,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "trustngo" | "tngtls" | "trust&go" => Ok(Layout::TrustAndGo),
            "hardened" => Ok(Layout::Hardened),
            o => Err(format!("unknown layout '{o}': use trustngo or hardened")),
        }
    }
}

/// SlotConfig: secret (IsSecret), never readable in clear, never written
/// by Write (WriteConfig = 0b1000).
const SECRET_NEVER_WRITE: SlotConfig = SlotConfig(0x8F8F);

/// The IO protection key's slot (ChipOptions bits 15:12 of the Trust&GO
/// sample, with bit 1 set: IO protection enabled).
pub const IO_KEY_SLOT: u8 = 6;

/// SlotConfig of slot 8 in the hardened layout: IsSecret and EncryptRead
/// with ReadKey = 6, WriteConfig Encrypt (0b0100) with WriteKey = 6: read
/// and written only through encrypted Read/Write with the IO protection key.
const ENCRYPTED_WITH_IO_KEY: SlotConfig = SlotConfig(0x4000 | 0x0600 | 0x00C0 | IO_KEY_SLOT as u16);

impl Layout {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::TrustAndGo => "trustngo",
            Layout::Hardened => "hardened",
        }
    }

    /// The config zone this layout gives a chip whose current config is
    /// `current`: bytes 0–15 (serial, revision) and 84–87 (UserExtra and
    /// the lock bytes) are kept, as the chip does not let them be written;
    /// the I2C address is kept too.
    pub fn config_for(self, current: &ConfigZone) -> ConfigZone {
        let mut bytes = TNGTLS_CONFIG_SAMPLE;
        let cur = current.as_bytes();
        bytes[..16].copy_from_slice(&cur[..16]);
        bytes[16] = cur[16];
        bytes[84..88].copy_from_slice(&cur[84..88]);
        // No slot locked; no alternate address.
        bytes[88] = 0xFF;
        bytes[89] = 0xFF;
        let mut cfg = ConfigZone(bytes);
        // Counters start at zero (in the encoding of config bytes 52–67).
        cfg.set_counter(0, 0);
        cfg.set_counter(1, 0);
        if self == Layout::Hardened {
            // Slot 6 (IO protection key) and 9 (AES key) are written once
            // before the data lock, then never; slot 8 becomes a secret
            // that only encrypted Read/Write with slot 6 reach.
            for slot in [6u8, 9] {
                cfg.set_slot_config(slot, SECRET_NEVER_WRITE);
            }
            cfg.set_slot_config(8, ENCRYPTED_WITH_IO_KEY);
        }
        cfg
    }

    /// What becomes permanent when this configuration is locked, in words.
    pub fn permanent_summary(self, cfg: &ConfigZone) -> Vec<String> {
        let mut v = vec![format!(
            "the I2C address 0x{:02X} and every slot's access policy",
            cfg.i2c_address()
        )];
        for slot in [0u8, 2, 8] {
            v.push(format!("slot {slot}: {}", cfg.slot_policy(slot).summary()));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_proto::config::{ReadAccess, WritePolicy};

    #[test]
    fn hardened_has_no_clear_secret() {
        let blank = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        let h = Layout::Hardened.config_for(&blank);
        for slot in 0..16u8 {
            let p = h.slot_policy(slot);
            if p.read != ReadAccess::Clear {
                assert_ne!(p.write, WritePolicy::Always, "slot {slot}");
            }
        }
        assert_eq!(h.slot_policy(8).read, ReadAccess::Encrypted { read_key: 6 });
        assert_eq!(
            h.slot_policy(8).write,
            WritePolicy::Encrypted { write_key: 6 }
        );
        assert_eq!(h.io_protection_key(), Some(IO_KEY_SLOT));
        assert_eq!((h.counter(0), h.counter(1)), (0, 0));
        let t = Layout::TrustAndGo.config_for(&blank);
        assert_eq!(t.slot_policy(8).write, WritePolicy::Always);
        assert_eq!("hardened".parse::<Layout>(), Ok(Layout::Hardened));
    }
}
