//! Configuring and locking a blank chip.

use coffre_driver::{Atecc, ConfigZone, LockTarget};
use coffre_proto::command::AccessSize;
use coffre_proto::config::KeyType;
use coffre_proto::crc::crc16;
use coffre_proto::zone::{slot_size, Zone, OTP_SIZE};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::iokey::IoKey;
use crate::{Error, Layout, Result, Ui};

/// How far a chip is from being usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChipState {
    /// Config zone unlocked: a blank (or half-configured) chip.
    Blank,
    /// Config locked, data zone not: configuration was interrupted, or
    /// the data step is still to do.
    ConfigLocked,
    /// Both zones locked: ready for an identity.
    Locked,
}

impl ChipState {
    /// From a config zone.
    pub fn of(cfg: &ConfigZone) -> ChipState {
        match (cfg.config_locked(), cfg.data_locked()) {
            (false, _) => ChipState::Blank,
            (true, false) => ChipState::ConfigLocked,
            (true, true) => ChipState::Locked,
        }
    }
}

fn private_key_slot(cfg: &ConfigZone, slot: u8) -> bool {
    let kc = cfg.key_config(slot);
    kc.private() && kc.key_type() == KeyType::P256
}

/// Bring a chip to "both zones locked" with `layout`, resuming where an
/// earlier run stopped. Each lock is confirmed through `ui` first.
pub fn configure<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    layout: Layout,
    ui: &mut dyn Ui,
) -> Result<ConfigZone> {
    configure_with_io_key(chip, layout, ui).map(|(cfg, _)| cfg)
}

/// [`configure`], also returning the IO protection key written into the
/// chip before its data lock (when the configuration enables IO protection
/// and this run wrote the data zone). The caller keeps it for the device
/// (see [`crate::iokey`]): it is never readable from the chip again.
pub fn configure_with_io_key<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    layout: Layout,
    ui: &mut dyn Ui,
) -> Result<(ConfigZone, Option<IoKey>)> {
    let mut cfg = chip
        .read_config_zone()
        .map_err(|e| Error::chip("reading the config zone", e))?;
    let target = layout.config_for(&cfg);
    match ChipState::of(&cfg) {
        ChipState::Blank => {
            ui.step(&format!("writing the {} configuration", layout.name()));
            let bytes = target.as_bytes();
            // Words 4..31, skipping 0x15 (UserExtra and the lock bytes,
            // changed only by UpdateExtra and Lock).
            for word in 4u16..32 {
                if word == 0x15 {
                    continue;
                }
                let at = word as usize * 4;
                chip.write(Zone::Config, word, &bytes[at..at + 4])
                    .map_err(|e| Error::chip(&format!("writing config word 0x{word:02X}"), e))?;
            }
            let back = chip
                .read_config_zone()
                .map_err(|e| Error::chip("reading the config zone back", e))?;
            let b = back.as_bytes();
            if b[16..84] != bytes[16..84] || b[88..] != bytes[88..] {
                return Err(Error::ReadBack("the config zone".into()));
            }
            let permanent = layout.permanent_summary(&back);
            if !ui.confirm("lock the config zone", &permanent) {
                return Err(Error::Declined("lock the config zone".into()));
            }
            chip.lock(LockTarget::Config, Some(crc16(back.as_bytes())))
                .map_err(|e| Error::chip("locking the config zone", e))?;
            ui.step("config zone locked");
            cfg = chip
                .read_config_zone()
                .map_err(|e| Error::chip("reading the config zone", e))?;
        }
        ChipState::ConfigLocked | ChipState::Locked => {
            for slot in 0..16u8 {
                if cfg.slot_config(slot) != target.slot_config(slot)
                    || cfg.key_config(slot) != target.key_config(slot)
                {
                    return Err(Error::State(format!(
                        "the config zone is already locked with a different slot map (slot {slot} differs from the {} layout); it cannot change: provision it as it is, without --configure",
                        layout.name()
                    )));
                }
            }
            if ChipState::of(&cfg) == ChipState::ConfigLocked {
                ui.step("config zone already locked (an earlier run stopped after that step): resuming with the data zone");
            }
        }
    }
    if cfg.data_locked() {
        ui.step("data zone already locked");
        return Ok((cfg, None));
    }
    let io_slot = cfg.io_protection_key();
    let mut io_key = None;
    // Data step: keys born in the chip, secrets written, every other slot
    // written with known bytes so the data-lock CRC can be checked.
    let mut image: Vec<(u8, Zeroizing<Vec<u8>>)> = Vec::new();
    for slot in 0..16u8 {
        let size = slot_size(slot).unwrap_or(0);
        if private_key_slot(&cfg, slot) {
            chip.genkey_create(slot).map_err(|e| {
                Error::chip(&format!("creating the key in slot {slot} (GenKey)"), e)
            })?;
            ui.step(&format!("slot {slot}: P-256 key generated inside the chip"));
            continue;
        }
        let mut content = Zeroizing::new(vec![0u8; size]);
        if cfg.slot_config(slot).is_secret() && matches!(slot, 6 | 9) {
            OsRng.fill_bytes(&mut content[..32]);
        }
        if Some(slot) == io_slot && layout == Layout::Hardened {
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&content[..32]);
            io_key = Some(IoKey { slot, key });
            ui.step(&format!(
                "slot {slot}: random IO protection key written (the device keeps a copy; the chip never shows it again)"
            ));
        }
        chip.write_slot(slot, &content)
            .map_err(|e| Error::chip(&format!("writing slot {slot}"), e))?;
        image.push((slot, content));
    }
    let otp = [0u8; OTP_SIZE];
    for block in 0..2u16 {
        chip.write(Zone::Otp, block << 3, &otp[..32])
            .map_err(|e| Error::chip("writing the OTP zone", e))?;
    }
    let mut all = Zeroizing::new(Vec::new());
    for (_, c) in &image {
        all.extend_from_slice(c);
    }
    all.extend_from_slice(&otp);
    let permanent = vec![
        "the keys in slots 0–4 (slot 0 and 1 can never be replaced)".to_string(),
        "the contents of every slot whose policy forbids writes".to_string(),
        "the OTP zone".to_string(),
    ];
    if !ui.confirm("lock the data and OTP zones", &permanent) {
        return Err(Error::Declined("lock the data and OTP zones".into()));
    }
    chip.lock(LockTarget::Data, Some(crc16(&all)))
        .map_err(|e| {
            Error::chip(
                "locking the data zone (the summary CRC did not match what was written?)",
                e,
            )
        })?;
    ui.step("data and OTP zones locked");
    let mut w = [0u8; 4];
    chip.read(Zone::Config, AccessSize::Word, 0x15, &mut w)
        .map_err(|e| Error::chip("reading the lock bytes", e))?;
    let cfg = chip
        .read_config_zone()
        .map_err(|e| Error::chip("reading the config zone", e))?;
    Ok((cfg, io_key))
}
