//! The 128-byte configuration zone, decoded.
//!
//! Byte map (CryptoAuthLib `Atecc608Config`; multi-byte fields little-endian):
//! 0–3 SN\[0:3\], 4–7 RevNum, 8–12 SN\[4:8\], 13 AES_Enable, 14 I2C_Enable,
//! 16 I2C_Address (8-bit form), 18 CountMatch, 19 ChipMode,
//! 20–51 SlotConfig\[16\], 52–67 Counter0/1, 68 UseLock,
//! 69 VolatileKeyPermission, 70–71 SecureBoot, 72 KdfIvLoc, 73–74 KdfIvStr,
//! 84 UserExtra, 85 UserExtraAdd, 86 LockValue (data/OTP), 87 LockConfig,
//! 88–89 SlotLocked, 90–91 ChipOptions, 92–95 X509format, 96–127 KeyConfig\[16\].

use core::fmt;

use crate::hex::Hex;

use crate::zone::CONFIG_SIZE;

/// Byte offsets of the config-zone fields.
pub mod offset {
    /// Serial number bytes 0–3.
    pub const SN_0_3: usize = 0;
    /// Revision number.
    pub const REVNUM: usize = 4;
    /// Serial number bytes 4–8.
    pub const SN_4_8: usize = 8;
    /// AES enable.
    pub const AES_ENABLE: usize = 13;
    /// I2C enable (bit 0 = 1: I2C, 0: single wire).
    pub const I2C_ENABLE: usize = 14;
    /// I2C address, 8-bit form.
    pub const I2C_ADDRESS: usize = 16;
    /// CountMatch.
    pub const COUNT_MATCH: usize = 18;
    /// ChipMode.
    pub const CHIP_MODE: usize = 19;
    /// `SlotConfig[0]`.
    pub const SLOT_CONFIG: usize = 20;
    /// Counter0.
    pub const COUNTER0: usize = 52;
    /// Counter1.
    pub const COUNTER1: usize = 60;
    /// UseLock.
    pub const USE_LOCK: usize = 68;
    /// VolatileKeyPermission.
    pub const VOLATILE_KEY_PERMISSION: usize = 69;
    /// SecureBoot.
    pub const SECURE_BOOT: usize = 70;
    /// UserExtra.
    pub const USER_EXTRA: usize = 84;
    /// UserExtraAdd.
    pub const USER_EXTRA_ADD: usize = 85;
    /// LockValue: data and OTP zones.
    pub const LOCK_VALUE: usize = 86;
    /// LockConfig: config zone.
    pub const LOCK_CONFIG: usize = 87;
    /// SlotLocked (16 bits, bit n = 0: slot n locked).
    pub const SLOT_LOCKED: usize = 88;
    /// ChipOptions.
    pub const CHIP_OPTIONS: usize = 90;
    /// `X509format[4]`.
    pub const X509_FORMAT: usize = 92;
    /// `KeyConfig[0]`.
    pub const KEY_CONFIG: usize = 96;
}

/// Lock byte value meaning "unlocked"; any other value reads as locked.
pub const UNLOCKED: u8 = 0x55;
/// Lock byte value written by a Lock command.
pub const LOCKED: u8 = 0x00;

/// A config zone image.
#[derive(Clone, PartialEq, Eq)]
pub struct ConfigZone(pub [u8; CONFIG_SIZE]);

impl fmt::Debug for ConfigZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigZone")
            .field("serial", &Hex::upper(&self.serial_number()).spaced())
            .field("config_locked", &self.config_locked())
            .field("data_locked", &self.data_locked())
            .finish()
    }
}

impl ConfigZone {
    /// Wrap 128 bytes.
    pub const fn from_bytes(bytes: [u8; CONFIG_SIZE]) -> ConfigZone {
        ConfigZone(bytes)
    }

    /// Parse from a slice of exactly 128 bytes.
    pub fn parse(bytes: &[u8]) -> Option<ConfigZone> {
        Some(ConfigZone(bytes.try_into().ok()?))
    }

    /// The 128 bytes.
    pub const fn as_bytes(&self) -> &[u8; CONFIG_SIZE] {
        &self.0
    }

    fn u16_at(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }

    fn set_u16_at(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }

    /// The 9-byte serial number (bytes 0–3 and 8–12).
    pub fn serial_number(&self) -> [u8; 9] {
        let mut sn = [0u8; 9];
        sn[..4].copy_from_slice(&self.0[0..4]);
        sn[4..].copy_from_slice(&self.0[8..13]);
        sn
    }

    /// Set the serial number (bytes 0–3 and 8–12).
    pub fn set_serial_number(&mut self, sn: &[u8; 9]) {
        self.0[0..4].copy_from_slice(&sn[..4]);
        self.0[8..13].copy_from_slice(&sn[4..]);
    }

    /// RevNum (bytes 4–7): `00 00 60 03` on an ATECC608B.
    pub fn revision(&self) -> [u8; 4] {
        [self.0[4], self.0[5], self.0[6], self.0[7]]
    }

    /// The device family from RevNum byte 2 (0x60: ATECC608).
    pub fn device_family(&self) -> DeviceFamily {
        DeviceFamily::from_revision(&self.revision())
    }

    /// I2C address as stored (8-bit form).
    pub fn i2c_address_8bit(&self) -> u8 {
        self.0[offset::I2C_ADDRESS]
    }

    /// I2C address on the bus (7-bit form).
    pub fn i2c_address(&self) -> u8 {
        self.0[offset::I2C_ADDRESS] >> 1
    }

    /// True when the interface is I2C (I2C_Enable bit 0).
    pub fn i2c_enabled(&self) -> bool {
        self.0[offset::I2C_ENABLE] & 1 == 1
    }

    /// True when AES is enabled.
    pub fn aes_enabled(&self) -> bool {
        self.0[offset::AES_ENABLE] & 1 == 1
    }

    /// ChipMode (byte 19), decoded.
    pub fn chip_mode(&self) -> ChipMode {
        ChipMode(self.0[offset::CHIP_MODE])
    }

    /// SlotConfig of `slot` (0–15).
    pub fn slot_config(&self, slot: u8) -> SlotConfig {
        SlotConfig(self.u16_at(offset::SLOT_CONFIG + 2 * (slot as usize & 0x0F)))
    }

    /// Set SlotConfig of `slot`.
    pub fn set_slot_config(&mut self, slot: u8, v: SlotConfig) {
        self.set_u16_at(offset::SLOT_CONFIG + 2 * (slot as usize & 0x0F), v.0);
    }

    /// KeyConfig of `slot` (0–15).
    pub fn key_config(&self, slot: u8) -> KeyConfig {
        KeyConfig(self.u16_at(offset::KEY_CONFIG + 2 * (slot as usize & 0x0F)))
    }

    /// Set KeyConfig of `slot`.
    pub fn set_key_config(&mut self, slot: u8, v: KeyConfig) {
        self.set_u16_at(offset::KEY_CONFIG + 2 * (slot as usize & 0x0F), v.0);
    }

    /// True when the config zone is locked (LockConfig ≠ 0x55).
    pub fn config_locked(&self) -> bool {
        self.0[offset::LOCK_CONFIG] != UNLOCKED
    }

    /// True when the data and OTP zones are locked (LockValue ≠ 0x55).
    pub fn data_locked(&self) -> bool {
        self.0[offset::LOCK_VALUE] != UNLOCKED
    }

    /// SlotLocked bits (bit n = 0: slot n is locked).
    pub fn slot_locked_bits(&self) -> u16 {
        self.u16_at(offset::SLOT_LOCKED)
    }

    /// True when slot `slot` has been locked individually (Lock mode 0x02).
    pub fn slot_locked(&self, slot: u8) -> bool {
        self.slot_locked_bits() & (1 << (slot & 0x0F)) == 0
    }

    /// Mark slot `slot` as locked (clears its SlotLocked bit).
    pub fn set_slot_locked(&mut self, slot: u8) {
        let bits = self.slot_locked_bits() & !(1 << (slot & 0x0F));
        self.set_u16_at(offset::SLOT_LOCKED, bits);
    }

    /// Set the config lock byte (0x55 = unlocked, 0x00 = locked).
    pub fn set_config_lock_byte(&mut self, v: u8) {
        self.0[offset::LOCK_CONFIG] = v;
    }

    /// Set the data lock byte (0x55 = unlocked, 0x00 = locked).
    pub fn set_data_lock_byte(&mut self, v: u8) {
        self.0[offset::LOCK_VALUE] = v;
    }

    /// ChipOptions (bytes 90–91).
    pub fn chip_options(&self) -> u16 {
        self.u16_at(offset::CHIP_OPTIONS)
    }

    /// The IO-protection key slot (ChipOptions bits 15:12) when IO
    /// protection is enabled (bit 1).
    pub fn io_protection_key(&self) -> Option<u8> {
        let o = self.chip_options();
        (o & 0x0002 != 0).then_some((o >> 12) as u8)
    }

    /// SecureBoot (bytes 70–71).
    pub fn secure_boot(&self) -> u16 {
        self.u16_at(offset::SECURE_BOOT)
    }

    /// Counter `n` (0 or 1) as its raw 8 bytes.
    pub fn counter_bytes(&self, n: u8) -> [u8; 8] {
        let at = if n == 0 {
            offset::COUNTER0
        } else {
            offset::COUNTER1
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[at..at + 8]);
        b
    }

    /// The value of monotonic counter `n` (0 or 1), decoded from its 8
    /// config bytes (52–59, 60–67) the way CryptoAuthLib encodes them in
    /// `calib_write_config_counter()`: two 16-bit linear fields that lose
    /// one bit per count (big-endian), then two binary fields counting
    /// blocks of 32 (big-endian).
    pub fn counter(&self, n: u8) -> u32 {
        let b = self.counter_bytes(n);
        let be = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let (lin_a, lin_b, bin_a) = (be(0), be(2), be(4));
        let mut v = 32 * bin_a as u32 + 16 - lin_a.count_ones();
        if lin_a == 0 {
            v += 16 - lin_b.count_ones();
        }
        v
    }

    /// Set monotonic counter `n` (0 or 1) to `value` (at most
    /// [`crate::command::COUNTER_MAX`]), encoded as `counter()` decodes it.
    pub fn set_counter(&mut self, n: u8, value: u32) {
        let v = value.min(crate::command::COUNTER_MAX);
        let lin_a: u16 = if v % 32 >= 16 { 0 } else { 0xFFFF >> (v % 32) };
        let lin_b: u16 = if v >= 16 {
            let k = (v - 16) % 32;
            if k >= 16 {
                0
            } else {
                0xFFFF >> k
            }
        } else {
            0xFFFF
        };
        let bin_a = (v / 32) as u16;
        let bin_b = if v >= 16 { ((v - 16) / 32) as u16 } else { 0 };
        let at = if n == 0 {
            offset::COUNTER0
        } else {
            offset::COUNTER1
        };
        let mut out = [0u8; 8];
        out[0..2].copy_from_slice(&lin_a.to_be_bytes());
        out[2..4].copy_from_slice(&lin_b.to_be_bytes());
        out[4..6].copy_from_slice(&bin_a.to_be_bytes());
        out[6..8].copy_from_slice(&bin_b.to_be_bytes());
        self.0[at..at + 8].copy_from_slice(&out);
    }

    /// What every slot is for, decoded into words.
    pub fn slot_policy(&self, slot: u8) -> SlotPolicy {
        SlotPolicy::decode(self, slot)
    }
}

/// The device family read from RevNum or the Info command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceFamily {
    /// ATECC508A (revision byte 2 = 0x50).
    Atecc508a,
    /// ATECC608 (revision byte 2 = 0x60; byte 3: 0x02 = 608A, 0x03 = 608B).
    Atecc608 {
        /// Silicon revision byte.
        revision: u8,
    },
    /// Anything else.
    Other([u8; 4]),
}

impl DeviceFamily {
    /// Decode from the 4 revision bytes.
    pub fn from_revision(rev: &[u8; 4]) -> DeviceFamily {
        match rev[2] {
            0x50 => DeviceFamily::Atecc508a,
            0x60 => DeviceFamily::Atecc608 { revision: rev[3] },
            _ => DeviceFamily::Other(*rev),
        }
    }
}

impl fmt::Display for DeviceFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceFamily::Atecc508a => f.write_str("ATECC508A"),
            DeviceFamily::Atecc608 { revision: 0x02 } => f.write_str("ATECC608A"),
            DeviceFamily::Atecc608 { revision: 0x03 } => f.write_str("ATECC608B"),
            DeviceFamily::Atecc608 { revision } => write!(f, "ATECC608 (rev 0x{revision:02X})"),
            DeviceFamily::Other(r) => {
                write!(f, "unknown device (revision {})", Hex::upper(r).spaced())
            }
        }
    }
}

/// ChipMode (config byte 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChipMode(pub u8);

impl ChipMode {
    /// Bit 0: UserExtraAdd replaces the I2C address when non-zero.
    pub fn user_extra_add_is_address(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// Bit 1: TTL input levels.
    pub fn ttl_enable(self) -> bool {
        self.0 & 0x02 != 0
    }
    /// Bit 2: long (~13 s) watchdog instead of ~1.3 s.
    pub fn long_watchdog(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Bits 7:3: clock divider (0 = M0, 5 = M1, 13 = M2).
    pub fn clock_divider(self) -> u8 {
        self.0 >> 3
    }
}

/// Who may write a slot with the Write command (SlotConfig.WriteConfig).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePolicy {
    /// 0b0000: clear-text writes are always allowed.
    Always,
    /// 0b0001: writes allowed only while the public key is invalidated.
    PubInvalid,
    /// 0b001x or 0b10xx: the Write command may never write the slot.
    Never,
    /// 0bx1xx: writes must be encrypted with the WriteKey slot's key.
    Encrypted {
        /// Slot holding the write key.
        write_key: u8,
    },
}

/// SlotConfig (16 bits) of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotConfig(pub u16);

impl SlotConfig {
    /// Bits 3:0: ReadKey (for ECC private keys: bit 0 external sign, bit 1
    /// internal sign, bit 2 ECDH allowed, bit 3 ECDH result to slot n+1).
    pub const fn read_key(self) -> u8 {
        (self.0 & 0x0F) as u8
    }
    /// Bit 4: NoMac.
    pub const fn no_mac(self) -> bool {
        self.0 & 0x0010 != 0
    }
    /// Bit 5: LimitedUse.
    pub const fn limited_use(self) -> bool {
        self.0 & 0x0020 != 0
    }
    /// Bit 6: EncryptRead.
    pub const fn encrypt_read(self) -> bool {
        self.0 & 0x0040 != 0
    }
    /// Bit 7: IsSecret.
    pub const fn is_secret(self) -> bool {
        self.0 & 0x0080 != 0
    }
    /// Bits 11:8: WriteKey.
    pub const fn write_key(self) -> u8 {
        ((self.0 >> 8) & 0x0F) as u8
    }
    /// Bits 15:12: WriteConfig.
    pub const fn write_config(self) -> u8 {
        ((self.0 >> 12) & 0x0F) as u8
    }
    /// For a private-key slot: external-message Sign allowed (ReadKey bit 0).
    pub const fn ext_sign(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// For a private-key slot: internal-message Sign allowed (ReadKey bit 1).
    pub const fn int_sign(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// For a private-key slot: ECDH allowed (ReadKey bit 2).
    pub const fn ecdh(self) -> bool {
        self.0 & 0x0004 != 0
    }
    /// For a private-key slot: GenKey may create a new key after the data
    /// zone is locked (WriteConfig bit 1, i.e. SlotConfig bit 13).
    pub const fn genkey_allowed(self) -> bool {
        self.0 & 0x2000 != 0
    }
    /// For a private-key slot: PrivWrite allowed, encrypted (WriteConfig bit 2).
    pub const fn privwrite_allowed(self) -> bool {
        self.0 & 0x4000 != 0
    }

    /// The Write command's policy for this slot.
    pub const fn write_policy(self) -> WritePolicy {
        let wc = self.write_config();
        if wc & 0x4 != 0 {
            WritePolicy::Encrypted {
                write_key: self.write_key(),
            }
        } else if wc == 0 {
            WritePolicy::Always
        } else if wc == 1 {
            WritePolicy::PubInvalid
        } else {
            WritePolicy::Never
        }
    }
}

/// Key type (KeyConfig bits 4:2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// 4: NIST P-256 elliptic-curve key.
    P256,
    /// 6: AES-128 key.
    Aes,
    /// 7: SHA key or other data.
    ShaOrData,
    /// Any other value.
    Other(u8),
}

impl KeyType {
    /// Decode the 3-bit field.
    pub const fn from_bits(b: u8) -> KeyType {
        match b {
            4 => KeyType::P256,
            6 => KeyType::Aes,
            7 => KeyType::ShaOrData,
            other => KeyType::Other(other),
        }
    }
}

/// KeyConfig (16 bits) of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyConfig(pub u16);

impl KeyConfig {
    /// Bit 0: the slot holds an ECC private key.
    pub const fn private(self) -> bool {
        self.0 & 0x0001 != 0
    }
    /// Bit 1: PubInfo (the public key may be computed / generated).
    pub const fn pub_info(self) -> bool {
        self.0 & 0x0002 != 0
    }
    /// Bits 4:2: key type.
    pub const fn key_type(self) -> KeyType {
        KeyType::from_bits(((self.0 >> 2) & 0x07) as u8)
    }
    /// Bit 5: the slot may be locked individually (Lock mode 0x02).
    pub const fn lockable(self) -> bool {
        self.0 & 0x0020 != 0
    }
    /// Bit 6: ReqRandom.
    pub const fn req_random(self) -> bool {
        self.0 & 0x0040 != 0
    }
    /// Bit 7: ReqAuth.
    pub const fn req_auth(self) -> bool {
        self.0 & 0x0080 != 0
    }
    /// Bits 11:8: AuthKey.
    pub const fn auth_key(self) -> u8 {
        ((self.0 >> 8) & 0x0F) as u8
    }
    /// Bit 12: PersistentDisable.
    pub const fn persistent_disable(self) -> bool {
        self.0 & 0x1000 != 0
    }
    /// Bits 15:14: X509id.
    pub const fn x509_id(self) -> u8 {
        (self.0 >> 14) as u8
    }
}

/// Who may read a slot with the Read command, after the data zone is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAccess {
    /// Anyone on the bus, in clear text.
    Clear,
    /// Only as an encrypted read, with the key in slot `read_key`.
    Encrypted {
        /// Slot holding the read key.
        read_key: u8,
    },
    /// Never (secret, or an ECC private key).
    Never,
}

impl fmt::Display for ReadAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadAccess::Clear => f.write_str("anyone on the bus, in clear"),
            ReadAccess::Encrypted { read_key } => {
                write!(f, "encrypted reads only (key in slot {read_key})")
            }
            ReadAccess::Never => f.write_str("never"),
        }
    }
}

impl fmt::Display for WritePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WritePolicy::Always => f.write_str("anyone on the bus, in clear"),
            WritePolicy::PubInvalid => f.write_str("only while the public key is invalidated"),
            WritePolicy::Never => f.write_str("never"),
            WritePolicy::Encrypted { write_key } => {
                write!(f, "encrypted writes only (key in slot {write_key})")
            }
        }
    }
}

/// What a slot is, in words: its access policy once the data zone is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPolicy {
    /// Slot number.
    pub slot: u8,
    /// Raw SlotConfig.
    pub slot_config: SlotConfig,
    /// Raw KeyConfig.
    pub key_config: KeyConfig,
    /// Who may read it with the Read command.
    pub read: ReadAccess,
    /// Who may write it with the Write command.
    pub write: WritePolicy,
    /// The slot holds an ECC private key.
    pub private_key: bool,
    /// GenKey may replace the key after the data lock.
    pub genkey: bool,
    /// External-message Sign allowed (private keys).
    pub ext_sign: bool,
    /// Internal-message Sign allowed (private keys).
    pub int_sign: bool,
    /// ECDH allowed (private keys).
    pub ecdh: bool,
    /// The slot may be locked individually.
    pub lockable: bool,
    /// The slot is locked individually.
    pub slot_locked: bool,
    /// Key type.
    pub key_type: KeyType,
}

impl SlotPolicy {
    /// Decode the policy of `slot` from a config zone.
    pub fn decode(cfg: &ConfigZone, slot: u8) -> SlotPolicy {
        let sc = cfg.slot_config(slot);
        let kc = cfg.key_config(slot);
        let private_key = kc.private() && kc.key_type() == KeyType::P256;
        let read = if private_key {
            ReadAccess::Never
        } else if sc.is_secret() {
            if sc.encrypt_read() {
                ReadAccess::Encrypted {
                    read_key: sc.read_key(),
                }
            } else {
                ReadAccess::Never
            }
        } else {
            ReadAccess::Clear
        };
        let write = if private_key {
            // Private keys are never written by Write; PrivWrite/GenKey only.
            WritePolicy::Never
        } else {
            sc.write_policy()
        };
        SlotPolicy {
            slot,
            slot_config: sc,
            key_config: kc,
            read,
            write,
            private_key,
            genkey: private_key && sc.genkey_allowed(),
            ext_sign: private_key && sc.ext_sign(),
            int_sign: private_key && sc.int_sign(),
            ecdh: private_key && sc.ecdh(),
            lockable: kc.lockable(),
            slot_locked: cfg.slot_locked(slot),
            key_type: kc.key_type(),
        }
    }

    /// A one-line description: "P-256 private key: external sign, ECDH; never readable".
    pub fn summary(&self) -> SlotSummary<'_> {
        SlotSummary(self)
    }
}

/// Display adapter for [`SlotPolicy::summary`].
pub struct SlotSummary<'a>(&'a SlotPolicy);

impl fmt::Display for SlotSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        if p.private_key {
            f.write_str("P-256 private key; uses:")?;
            let mut any = false;
            for (on, name) in [
                (p.ext_sign, " external sign"),
                (p.int_sign, " internal sign"),
                (p.ecdh, " ECDH"),
            ] {
                if on {
                    if any {
                        f.write_str(",")?;
                    }
                    f.write_str(name)?;
                    any = true;
                }
            }
            if !any {
                f.write_str(" none")?;
            }
            f.write_str("; never readable")?;
            if p.genkey {
                f.write_str("; GenKey may replace it")?;
            } else {
                f.write_str("; permanent once data is locked")?;
            }
        } else {
            let kind = match p.key_type {
                KeyType::P256 => "P-256 public key / data",
                KeyType::Aes => "AES key",
                KeyType::ShaOrData => "data",
                KeyType::Other(_) => "data (unusual key type)",
            };
            write!(f, "{kind}; read: {}; write: {}", p.read, p.write)?;
        }
        if p.slot_locked {
            f.write_str("; slot locked")?;
        } else if p.lockable {
            f.write_str("; lockable")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tngtls::TNGTLS_CONFIG_SAMPLE;
    use std::format;

    #[test]
    fn counters_round_trip_as_cryptoauthlib_encodes_them() {
        // The sample part's counters: 31 and 4, in the library's encoding.
        let c = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        assert_eq!((c.counter(0), c.counter(1)), (31, 4));
        let mut c = c;
        // calib_write_config_counter(1, 1048575): lin_a = 0xFFFF >> 31,
        // lin_b = 0xFFFF >> 15, bin_a = 32767, bin_b = 32767.
        c.set_counter(1, 1_048_575);
        assert_eq!(
            c.counter_bytes(1),
            [0x00, 0x00, 0x00, 0x01, 0x7F, 0xFF, 0x7F, 0xFF]
        );
        assert_eq!(c.counter(1), 1_048_575);
        for v in [0, 1, 15, 16, 17, 31, 32, 33, 47, 48, 1000, 2_097_151] {
            c.set_counter(0, v);
            assert_eq!(c.counter(0), v);
        }
        c.set_counter(0, 0);
        assert_eq!(c.counter_bytes(0), [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
    }

    #[test]
    fn tngtls_sample_decodes() {
        let c = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        assert_eq!(c.i2c_address(), 0x35);
        assert_eq!(c.i2c_address_8bit(), 0x6A);
        assert!(c.config_locked() && c.data_locked());
        assert_eq!(c.device_family(), DeviceFamily::Atecc608 { revision: 3 });
        assert_eq!(format!("{}", c.device_family()), "ATECC608B");
        assert_eq!(c.slot_config(0), SlotConfig(0x0085));
        assert_eq!(c.key_config(0), KeyConfig(0x0053));
        assert_eq!(c.slot_config(8), SlotConfig(0x0F0F));
        assert_eq!(c.key_config(8), KeyConfig(0x003C));
        assert_eq!(c.slot_config(2), SlotConfig(0x2085));
        assert_eq!(c.io_protection_key(), Some(6));
        assert_eq!(c.chip_mode().clock_divider(), 0);
        assert!(!c.chip_mode().long_watchdog());
        for s in 0..16 {
            assert!(!c.slot_locked(s));
        }
    }

    #[test]
    fn slot_policies_in_words() {
        let c = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        let p0 = c.slot_policy(0);
        assert!(p0.private_key && p0.ext_sign && p0.ecdh && !p0.int_sign && !p0.genkey);
        assert_eq!(p0.read, ReadAccess::Never);
        let p2 = c.slot_policy(2);
        assert!(p2.genkey && p2.lockable);
        let p8 = c.slot_policy(8);
        assert_eq!(p8.read, ReadAccess::Clear);
        assert_eq!(p8.write, WritePolicy::Always);
        assert!(p8.lockable && !p8.private_key);
        assert_eq!(
            format!("{}", p8.summary()),
            "data; read: anyone on the bus, in clear; write: anyone on the bus, in clear; lockable"
        );
        assert_eq!(c.slot_policy(5).write, WritePolicy::Never);
        assert_eq!(c.slot_policy(7).read, ReadAccess::Never);
        assert_eq!(c.slot_policy(11).key_type, KeyType::P256);
        assert_eq!(c.slot_policy(9).key_type, KeyType::Aes);
        assert!(
            format!("{}", p0.summary()).starts_with("P-256 private key; uses: external sign, ECDH")
        );
    }

    #[test]
    fn config_round_trip_and_setters() {
        let mut c = ConfigZone(TNGTLS_CONFIG_SAMPLE);
        let bytes = *c.as_bytes();
        assert_eq!(ConfigZone::parse(&bytes), Some(c.clone()));
        assert_eq!(ConfigZone::parse(&bytes[..127]), None);
        c.set_slot_locked(8);
        assert!(c.slot_locked(8) && !c.slot_locked(7));
        assert_eq!(c.slot_locked_bits(), 0xFEFF);
        c.set_slot_config(8, SlotConfig(0x8F8F));
        assert_eq!(c.slot_config(8).write_policy(), WritePolicy::Never);
        c.set_key_config(3, KeyConfig(0x1234));
        assert_eq!(c.key_config(3).0, 0x1234);
        let sn = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        c.set_serial_number(&sn);
        assert_eq!(c.serial_number(), sn);
        assert_eq!(&c.as_bytes()[4..8], &[0x00, 0x00, 0x60, 0x03]);
        c.set_config_lock_byte(UNLOCKED);
        c.set_data_lock_byte(UNLOCKED);
        assert!(!c.config_locked() && !c.data_locked());
    }

    #[test]
    fn write_policy_encoding() {
        assert_eq!(SlotConfig(0x0000).write_policy(), WritePolicy::Always);
        assert_eq!(SlotConfig(0x1000).write_policy(), WritePolicy::PubInvalid);
        assert_eq!(SlotConfig(0x2000).write_policy(), WritePolicy::Never);
        assert_eq!(SlotConfig(0x3000).write_policy(), WritePolicy::Never);
        assert_eq!(SlotConfig(0x8000).write_policy(), WritePolicy::Never);
        assert_eq!(
            SlotConfig(0x4300).write_policy(),
            WritePolicy::Encrypted { write_key: 3 }
        );
        assert_eq!(
            SlotConfig(0xC600).write_policy(),
            WritePolicy::Encrypted { write_key: 6 }
        );
    }
}
