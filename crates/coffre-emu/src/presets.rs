//! Factory presets: a Trust&GO part as shipped, and a blank part.

use coffre_proto::config::{ConfigZone, UNLOCKED};
use coffre_proto::tngtls::TNGTLS_CONFIG_SAMPLE;
use p256::ecdsa::SigningKey;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::chip::NvState;

/// A factory preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// ATECC608B-TNGTLS (Trust&GO) as shipped: config and data locked,
    /// factory keys in slots 0–4, slot 8 empty, address 0x35, and the
    /// factory certificate chain in OTP and slots 10–12
    /// (see [`crate::factory`]).
    Tngtls,
    /// A blank ATECC608B: nothing locked, address 0x60.
    Blank,
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tngtls" | "trustngo" | "trust&go" => Ok(Preset::Tngtls),
            "blank" => Ok(Preset::Blank),
            other => Err(format!(
                "unknown preset '{other}': use 'tngtls' (Trust&GO as shipped) or 'blank' (unlocked, 0x60)"
            )),
        }
    }
}

impl Preset {
    /// The preset's name.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Tngtls => "tngtls",
            Preset::Blank => "blank",
        }
    }

    /// Build a new chip's non-volatile state with a fresh serial number and
    /// fresh keys.
    pub fn build(self) -> NvState {
        match self {
            Preset::Tngtls => tngtls(),
            Preset::Blank => blank(),
        }
    }
}

/// A fresh serial number: `01 23 xx xx | xx xx xx xx | last`.
fn serial(last: u8) -> [u8; 9] {
    let mut sn = [0u8; 9];
    OsRng.fill_bytes(&mut sn);
    sn[0] = 0x01;
    sn[1] = 0x23;
    sn[8] = last;
    sn
}

fn store_key(nv: &mut NvState, slot: u8) {
    let key = SigningKey::random(&mut OsRng);
    let scalar = Zeroizing::new(key.to_bytes());
    let s = nv.slot_mut(slot);
    s[..4].fill(0);
    s[4..36].copy_from_slice(&scalar);
}

fn tngtls() -> NvState {
    let mut cfg = ConfigZone(TNGTLS_CONFIG_SAMPLE);
    cfg.set_serial_number(&serial(0x01));
    let mut nv = NvState::new(cfg);
    // Factory keys: slot 0 (device identity), 1 (internal sign), 2–4
    // (secondary, regenerable).
    for slot in 0..=4 {
        store_key(&mut nv, slot);
    }
    // Slot 6 (IO protection key) and 9 (AES key): random secrets.
    for slot in [6u8, 9] {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut k[..]);
        nv.slot_mut(slot)[..32].copy_from_slice(&k[..]);
    }
    // Slot 5: 12 ASCII characters used in the device certificate.
    let sn = nv.config.serial_number();
    let id = format!(
        "{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        sn[2], sn[3], sn[4], sn[5], sn[6], sn[7]
    );
    nv.slot_mut(5)[..12].copy_from_slice(id.as_bytes());
    nv.config.set_counter(0, 0);
    nv.config.set_counter(1, 0);
    // The factory chain: OTP certificate-definition code, device
    // certificate (slot 10), signer public key (11) and certificate (12),
    // written before the data lock as Microchip's factory does.
    crate::factory::provision(&mut nv, crate::factory::now())
        .expect("a fresh tngtls chip has a valid slot 0 key and serial number");
    nv
}

fn blank() -> NvState {
    let mut cfg = ConfigZone(TNGTLS_CONFIG_SAMPLE);
    cfg.set_serial_number(&serial(0xEE));
    let b = &mut cfg.0;
    b[16] = 0xC0; // I2C address 0x60 (7-bit)
    b[19] = 0x00; // ChipMode: no alternate address, short watchdog, M0
    b[84] = 0x00;
    b[85] = 0x00;
    b[88] = 0xFF;
    b[89] = 0xFF;
    cfg.set_counter(0, 0);
    cfg.set_counter(1, 0);
    cfg.set_config_lock_byte(UNLOCKED);
    cfg.set_data_lock_byte(UNLOCKED);
    NvState::new(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_advertised_state() {
        let t = Preset::Tngtls.build();
        assert!(t.config.config_locked() && t.config.data_locked());
        assert_eq!(t.config.i2c_address(), 0x35);
        assert!(t.slot(8).iter().all(|&b| b == 0));
        assert!(SigningKey::from_slice(&t.slot(0)[4..36]).is_ok());
        let b = Preset::Blank.build();
        assert!(!b.config.config_locked() && !b.config.data_locked());
        assert_eq!(b.config.i2c_address(), 0x60);
        assert_ne!(
            Preset::Tngtls.build().config.serial_number(),
            t.config.serial_number()
        );
        assert_eq!("tngtls".parse::<Preset>(), Ok(Preset::Tngtls));
        assert!("x".parse::<Preset>().is_err());
    }
}
