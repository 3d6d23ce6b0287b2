//! The config zone in words: every field of the 128 bytes, and every bit of
//! a slot's SlotConfig and KeyConfig.
//!
//! Bit meanings follow the ATECC608 config map (CryptoAuthLib's
//! `Atecc608Config`, `calib_device.h`), as recorded in the project's chip
//! facts.

use coffre_proto::config::{
    offset, ConfigZone, KeyConfig, KeyType, ReadAccess, SlotConfig, WritePolicy,
};
use serde::Serialize;

/// One bit field of a 16-bit word, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BitField {
    /// Bit position(s): "7" or "11:8".
    pub bits: String,
    /// Field name as in the datasheet ("IsSecret").
    pub name: &'static str,
    /// The field's value: "1", "0" or "0xF".
    pub value: String,
    /// What this value means for the slot.
    pub meaning: String,
}

fn bit(word: u16, n: u8, name: &'static str, on: &str, off: &str) -> BitField {
    let set = word >> n & 1 == 1;
    BitField {
        bits: n.to_string(),
        name,
        value: u8::from(set).to_string(),
        meaning: if set { on } else { off }.to_string(),
    }
}

fn field(word: u16, hi: u8, lo: u8, name: &'static str, meaning: String) -> BitField {
    let mask = (1u16 << (hi - lo + 1)) - 1;
    let v = word >> lo & mask;
    BitField {
        bits: format!("{hi}:{lo}"),
        name,
        value: format!("0x{v:X}"),
        meaning,
    }
}

/// The 16 bits of `slot`'s SlotConfig, explained. `kc` tells whether the
/// slot holds a private key, which changes what the low and high bits mean.
pub fn slot_config_bits(slot: u8, sc: SlotConfig, kc: KeyConfig) -> Vec<BitField> {
    let w = sc.0;
    let private = kc.private() && kc.key_type() == KeyType::P256;
    let mut out = Vec::new();
    if private {
        out.push(bit(
            w,
            0,
            "ReadKey.0 (ExtSign)",
            "Sign may sign external messages (a digest sent by the host)",
            "Sign may not sign external messages",
        ));
        out.push(bit(
            w,
            1,
            "ReadKey.1 (IntSign)",
            "Sign may sign internal messages (attestation of the chip's own state)",
            "Sign may not sign internal messages",
        ));
        out.push(bit(
            w,
            2,
            "ReadKey.2 (ECDH)",
            "ECDH may use this key",
            "ECDH may not use this key",
        ));
        out.push(bit(
            w,
            3,
            "ReadKey.3 (ECDH output)",
            &format!(
                "the ECDH result is written to slot {} instead of being returned",
                slot + 1
            ),
            "the ECDH result is returned to the host (or encrypted with the IO key)",
        ));
    } else {
        let rk = sc.read_key();
        let meaning = if sc.is_secret() && sc.encrypt_read() {
            format!("slot {rk} holds the key that encrypts reads of this slot")
        } else {
            format!(
                "slot {rk}; no effect on reads here (EncryptRead is 0); for a key slot it may name the key of some MAC commands"
            )
        };
        out.push(field(w, 3, 0, "ReadKey", meaning));
    }
    out.push(bit(
        w,
        4,
        "NoMac",
        "the MAC command may not use this slot's key",
        "the MAC command may use this slot's key",
    ));
    out.push(bit(
        w,
        5,
        "LimitedUse",
        "each use counts down against Counter0: the key stops working at its limit",
        "no use limit",
    ));
    out.push(bit(
        w,
        6,
        "EncryptRead",
        if private {
            "ignored: a private key is never read"
        } else {
            "reads must be encrypted with the key named by ReadKey (needs IsSecret)"
        },
        if private {
            "ignored: a private key is never read"
        } else {
            "no encrypted reads"
        },
    ));
    out.push(bit(
        w,
        7,
        "IsSecret",
        "secret: the Read command never returns it in clear",
        "not secret: after the data lock anyone on the bus may read it in clear",
    ));
    let wk = sc.write_key();
    let wk_meaning = match sc.write_policy() {
        WritePolicy::Encrypted { .. } if !private => {
            format!("slot {wk} holds the key that encrypts writes to this slot")
        }
        _ if private && sc.privwrite_allowed() => {
            format!("slot {wk} holds the key that encrypts PrivWrite")
        }
        _ => format!("slot {wk}; not used by this WriteConfig"),
    };
    out.push(field(w, 11, 8, "WriteKey", wk_meaning));
    let wc = sc.write_config();
    let wc_meaning = if private {
        let gen = if sc.genkey_allowed() {
            "GenKey may create a new key in this slot after the data lock"
        } else {
            "GenKey may not replace the key after the data lock (it is permanent)"
        };
        let pw = if sc.privwrite_allowed() {
            "PrivWrite may write a key, encrypted"
        } else {
            "PrivWrite is refused"
        };
        format!("{gen}; {pw}; the Write command never writes a private key")
    } else {
        match sc.write_policy() {
            WritePolicy::Always => {
                "Always: anyone on the bus may write it in clear (until slot-locked)".to_string()
            }
            WritePolicy::PubInvalid => {
                "PubInvalid: writable only while the public key is invalidated".to_string()
            }
            WritePolicy::Never => "Never: the Write command may not write it".to_string(),
            WritePolicy::Encrypted { write_key } => {
                format!("Encrypt: writes must be encrypted with the key in slot {write_key}")
            }
        }
    };
    out.push(BitField {
        bits: "15:12".into(),
        name: "WriteConfig",
        value: format!("0x{wc:X}"),
        meaning: wc_meaning,
    });
    out
}

/// A key type in words.
pub fn key_type_words(t: KeyType) -> String {
    match t {
        KeyType::P256 => "P-256 elliptic-curve key".into(),
        KeyType::Aes => "AES-128 key".into(),
        KeyType::ShaOrData => "SHA key or other data".into(),
        KeyType::Other(v) => format!("unusual key type {v}"),
    }
}

/// The 16 bits of a KeyConfig, explained.
pub fn key_config_bits(kc: KeyConfig) -> Vec<BitField> {
    let w = kc.0;
    let t = kc.key_type();
    vec![
        bit(
            w,
            0,
            "Private",
            "the slot holds an ECC private key",
            "not a private key",
        ),
        bit(
            w,
            1,
            "PubInfo",
            "GenKey may compute and return the matching public key (private key), or the public key may be used (public key)",
            "no public key may be computed from it",
        ),
        BitField {
            bits: "4:2".into(),
            name: "KeyType",
            value: format!("0x{:X}", w >> 2 & 0x7),
            meaning: key_type_words(t),
        },
        bit(
            w,
            5,
            "Lockable",
            "the slot may be locked on its own (Lock mode 0x02 | slot << 2); after that nothing can change it",
            "the slot cannot be locked on its own",
        ),
        bit(
            w,
            6,
            "ReqRandom",
            "commands using this key need a random nonce",
            "no random nonce required",
        ),
        bit(
            w,
            7,
            "ReqAuth",
            "using this key needs a prior authorization with the key named by AuthKey",
            "no prior authorization needed",
        ),
        field(
            w,
            11,
            8,
            "AuthKey",
            if kc.req_auth() {
                format!("slot {} authorizes uses of this key", kc.auth_key())
            } else {
                format!("slot {}; unused (ReqAuth is 0)", kc.auth_key())
            },
        ),
        bit(
            w,
            12,
            "PersistentDisable",
            "the key is usable only while the persistent latch is set",
            "no persistent latch needed",
        ),
        bit(w, 13, "RFU", "reserved (should be 0)", "reserved"),
        field(
            w,
            15,
            14,
            "X509id",
            format!("X509format entry {} (certificate template)", kc.x509_id()),
        ),
    ]
}

/// One field of the config zone, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigField {
    /// First byte.
    pub offset: usize,
    /// Length in bytes.
    pub len: usize,
    /// Field name.
    pub name: String,
    /// The bytes, hex.
    pub hex: String,
    /// What they mean on this chip.
    pub meaning: String,
}

fn hex(b: &[u8]) -> String {
    coffre_proto::hex::Hex::upper(b).spaced().to_string()
}

fn lock_byte(v: u8) -> String {
    if v == coffre_proto::config::UNLOCKED {
        "0x55: unlocked".into()
    } else {
        format!("0x{v:02X}: locked")
    }
}

/// Every field of the 128-byte config zone, explained.
pub fn config_fields(cfg: &ConfigZone) -> Vec<ConfigField> {
    let b = cfg.as_bytes();
    let mut out = Vec::new();
    let mut push = |offset: usize, len: usize, name: String, meaning: String| {
        out.push(ConfigField {
            offset,
            len,
            name,
            hex: hex(&b[offset..offset + len]),
            meaning,
        });
    };
    push(
        offset::SN_0_3,
        4,
        "SN[0:3]".into(),
        "serial number, first bytes (01 23 on every part)".into(),
    );
    push(
        offset::REVNUM,
        4,
        "RevNum".into(),
        format!("device revision: {}", cfg.device_family()),
    );
    push(
        offset::SN_4_8,
        5,
        "SN[4:8]".into(),
        "serial number, last bytes".into(),
    );
    push(
        offset::AES_ENABLE,
        1,
        "AES_Enable".into(),
        if cfg.aes_enabled() {
            "AES commands enabled"
        } else {
            "AES commands disabled"
        }
        .into(),
    );
    push(
        offset::I2C_ENABLE,
        1,
        "I2C_Enable".into(),
        if cfg.i2c_enabled() {
            "I2C interface"
        } else {
            "single-wire interface"
        }
        .into(),
    );
    push(15, 1, "reserved".into(), "reserved".into());
    push(
        offset::I2C_ADDRESS,
        1,
        "I2C_Address".into(),
        format!(
            "bus address 0x{:02X} (7-bit; 0x{:02X} in 8-bit form)",
            cfg.i2c_address(),
            cfg.i2c_address_8bit()
        ),
    );
    push(17, 1, "reserved".into(), "reserved".into());
    push(
        offset::COUNT_MATCH,
        1,
        "CountMatch".into(),
        if b[offset::COUNT_MATCH] & 1 == 1 {
            format!(
                "counter match enabled, key slot {}",
                b[offset::COUNT_MATCH] >> 4
            )
        } else {
            "counter match disabled".into()
        },
    );
    let cm = cfg.chip_mode();
    push(
        offset::CHIP_MODE,
        1,
        "ChipMode".into(),
        format!(
            "{}; {} input levels; {} watchdog; clock divider {}",
            if cm.user_extra_add_is_address() {
                "UserExtraAdd may replace the I2C address"
            } else {
                "fixed I2C address"
            },
            if cm.ttl_enable() { "TTL" } else { "CMOS" },
            if cm.long_watchdog() { "13 s" } else { "1.3 s" },
            cm.clock_divider()
        ),
    );
    for slot in 0..16u8 {
        let sc = cfg.slot_config(slot);
        push(
            offset::SLOT_CONFIG + 2 * slot as usize,
            2,
            format!("SlotConfig[{slot}]"),
            format!("0x{:04X}: see slot {slot}", sc.0),
        );
    }
    push(
        offset::COUNTER0,
        8,
        "Counter0".into(),
        "monotonic counter 0 (limits LimitedUse keys)".into(),
    );
    push(
        offset::COUNTER1,
        8,
        "Counter1".into(),
        "monotonic counter 1".into(),
    );
    push(
        offset::USE_LOCK,
        1,
        "UseLock".into(),
        "transport key lock (0x00: off)".into(),
    );
    push(
        offset::VOLATILE_KEY_PERMISSION,
        1,
        "VolatileKeyPermission".into(),
        if b[offset::VOLATILE_KEY_PERMISSION] & 0x80 != 0 {
            format!(
                "enabled for slot {}",
                b[offset::VOLATILE_KEY_PERMISSION] & 0x0F
            )
        } else {
            "disabled".into()
        },
    );
    let sb = cfg.secure_boot();
    push(
        offset::SECURE_BOOT,
        2,
        "SecureBoot".into(),
        if sb & 0x3 == 0 {
            "secure boot disabled".into()
        } else {
            format!(
                "secure boot mode {}, digest slot {}, public key slot {}",
                sb & 0x3,
                sb >> 8 & 0xF,
                sb >> 12
            )
        },
    );
    push(72, 1, "KdfIvLoc".into(), "where KDF inserts its IV".into());
    push(73, 2, "KdfIvStr".into(), "KDF IV string".into());
    push(75, 9, "reserved".into(), "reserved".into());
    push(
        offset::USER_EXTRA,
        1,
        "UserExtra".into(),
        "free byte, set once by UpdateExtra".into(),
    );
    push(
        offset::USER_EXTRA_ADD,
        1,
        "UserExtraAdd".into(),
        "alternate I2C address when ChipMode allows (0: none)".into(),
    );
    push(
        offset::LOCK_VALUE,
        1,
        "LockValue".into(),
        format!("data and OTP zones {}", lock_byte(b[offset::LOCK_VALUE])),
    );
    push(
        offset::LOCK_CONFIG,
        1,
        "LockConfig".into(),
        format!("config zone {}", lock_byte(b[offset::LOCK_CONFIG])),
    );
    let locked: Vec<String> = (0..16u8)
        .filter(|&s| cfg.slot_locked(s))
        .map(|s| s.to_string())
        .collect();
    push(
        offset::SLOT_LOCKED,
        2,
        "SlotLocked".into(),
        if locked.is_empty() {
            "no slot locked on its own (bit n = 0 would lock slot n)".into()
        } else {
            format!("slot-locked: {}", locked.join(", "))
        },
    );
    push(
        offset::CHIP_OPTIONS,
        2,
        "ChipOptions".into(),
        match cfg.io_protection_key() {
            Some(k) => format!(
                "IO protection on (key in slot {k}); power-on self test {}",
                if cfg.chip_options() & 1 == 1 {
                    "on"
                } else {
                    "off"
                }
            ),
            None => "IO protection off".into(),
        },
    );
    push(
        offset::X509_FORMAT,
        4,
        "X509format".into(),
        "certificate template formats".into(),
    );
    for slot in 0..16u8 {
        let kc = cfg.key_config(slot);
        push(
            offset::KEY_CONFIG + 2 * slot as usize,
            2,
            format!("KeyConfig[{slot}]"),
            format!("0x{:04X}: see slot {slot}", kc.0),
        );
    }
    out
}

/// Who may read a slot, in words (data zone locked).
pub fn read_words(r: ReadAccess, private_key: bool) -> String {
    match r {
        ReadAccess::Clear => "anyone on the bus, in clear".into(),
        ReadAccess::Encrypted { read_key } => {
            format!("only as an encrypted read, with the key in slot {read_key}")
        }
        ReadAccess::Never if private_key => "nobody: the chip never returns a private key".into(),
        ReadAccess::Never => "nobody: secret, the Read command refuses it".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_proto::tngtls::TNGTLS_CONFIG_SAMPLE;

    #[test]
    fn fields_cover_the_zone_once() {
        let cfg = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        let fields = config_fields(&cfg);
        let mut covered = [0u8; 128];
        for f in &fields {
            for c in &mut covered[f.offset..f.offset + f.len] {
                *c += 1;
            }
        }
        assert!(covered.iter().all(|&c| c == 1), "{covered:?}");
        let lock = fields.iter().find(|f| f.name == "LockConfig").unwrap();
        assert_eq!(lock.meaning, "config zone 0x00: locked");
    }

    #[test]
    fn slot8_bits_in_words() {
        let cfg = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        let bits = slot_config_bits(8, cfg.slot_config(8), cfg.key_config(8));
        assert_eq!(bits.len(), 7);
        let secret = bits.iter().find(|b| b.name == "IsSecret").unwrap();
        assert!(secret.meaning.contains("anyone on the bus"));
        let wc = bits.iter().find(|b| b.name == "WriteConfig").unwrap();
        assert!(wc.meaning.starts_with("Always"));
        let kbits = key_config_bits(cfg.key_config(8));
        assert_eq!(kbits.len(), 10);
        let lockable = kbits.iter().find(|b| b.name == "Lockable").unwrap();
        assert_eq!(
            (lockable.bits.as_str(), lockable.value.as_str()),
            ("5", "1")
        );
        let p0 = slot_config_bits(0, cfg.slot_config(0), cfg.key_config(0));
        assert_eq!(p0[0].value, "1");
        assert!(p0.last().unwrap().meaning.contains("permanent"));
    }
}
