//! The device's boot, in the lab's five steps: (1) probe the secure
//! element's address — absent: stop before any network activity; (2) start
//! the chip library (wake, revision); (3) read the config zone; (4) check
//! the locks — unlocked: refuse unless allowed; (5) load the identity —
//! lab: read slot 8 into RAM; offload: keep the driver, the chip signs.
//!
//! Each step is reported through a callback; the core prints nothing.

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

use coffre_driver::coffre_proto::config::ReadAccess;
use coffre_driver::{Atecc, Probe};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use zeroize::Zeroizing;

/// Size of the lab's slot 8 (416 bytes: a length and a PKCS#8 key).
pub const SLOT8_SIZE: usize = 416;

/// Why the boot stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BootError {
    /// The secure element does not answer (steps 1, 2, 3 or 5).
    ChipGone {
        /// "secure element at 0x35".
        what: String,
        /// When it was found missing.
        detail: String,
    },
    /// The secure element answered with an error.
    Chip {
        /// "secure element at 0x35".
        what: String,
        /// The command and the chip's answer.
        detail: String,
    },
    /// The chip is not locked and unlocked chips are refused (step 4).
    Unlocked {
        /// "locked" or "UNLOCKED".
        config: &'static str,
        /// "locked" or "UNLOCKED".
        data: &'static str,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::ChipGone { what, detail } => write!(f, "{what} is not answering ({detail})"),
            BootError::Chip { what, detail } => write!(f, "{what}: {detail}"),
            BootError::Unlocked { config, data } => {
                write!(
                    f,
                    "the secure element is not locked (config zone {config}, data zone {data})"
                )
            }
        }
    }
}

impl core::error::Error for BootError {}

/// The identity the boot found.
pub enum BootKey<I2C, D> {
    /// Lab mode: slot 8 as read (length prefix, then PKCS#8 DER); the
    /// buffer is zeroized when dropped.
    Lab {
        /// The slot's bytes.
        slot8: Zeroizing<alloc::vec::Vec<u8>>,
    },
    /// Offload mode: the driver, kept for the handshake signatures.
    Offload {
        /// The chip.
        chip: Atecc<I2C, D>,
        /// Its private-key slot.
        slot: u8,
    },
}

impl<I2C, D> fmt::Debug for BootKey<I2C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootKey::Lab { .. } => f.write_str("BootKey::Lab(<redacted>)"),
            BootKey::Offload { slot, .. } => write!(f, "BootKey::Offload {{ slot: {slot} }}"),
        }
    }
}

/// Where the key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// The lab's slot 8, read into RAM.
    Lab,
    /// A private-key slot; the chip signs.
    Offload {
        /// The slot (0: Trust&GO factory key).
        slot: u8,
    },
}

/// The IO protection key the MCU keeps in its flash, for chips whose slot
/// 8 is readable only by encrypted Read. It protects the bus, not the
/// MCU: whoever reads the flash has it.
#[derive(Clone)]
pub struct IoKey {
    /// The key's slot on the chip (`SlotConfig[8].ReadKey` must name it).
    pub slot: u8,
    /// The key.
    pub key: Zeroizing<[u8; 32]>,
    /// Fresh random bytes from the MCU's RNG for the Nonce before each
    /// encrypted Read (each block mixes in its index), so a recorded
    /// exchange cannot be replayed to the MCU.
    pub host_nonce: [u8; 20],
}

impl fmt::Debug for IoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IoKey {{ slot: {}, key: <redacted> }}", self.slot)
    }
}

/// Boot settings.
#[derive(Debug, Clone)]
pub struct BootOptions {
    /// Key mode.
    pub mode: KeyMode,
    /// Go on with an unlocked chip (warned).
    pub allow_unlocked: bool,
    /// Lab mode on a hardened chip: the IO protection key.
    pub io_key: Option<IoKey>,
}

/// What the boot found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootReport {
    /// Device family ("ATECC608B").
    pub device: String,
    /// Serial number.
    pub serial: [u8; 9],
    /// Config zone locked.
    pub config_locked: bool,
    /// Data zone locked.
    pub data_locked: bool,
}

fn word(b: bool) -> &'static str {
    if b {
        "locked"
    } else {
        "UNLOCKED"
    }
}

/// Boot: the five steps, each reported to `log(step, message)`. Consumes
/// the driver (offload mode keeps it inside the signer).
pub fn boot<I2C, D, E>(
    mut chip: Atecc<I2C, D>,
    opts: &BootOptions,
    log: &mut dyn FnMut(u8, &str),
) -> Result<(BootKey<I2C, D>, BootReport), BootError>
where
    I2C: I2c<Error = E>,
    D: DelayNs,
    E: embedded_hal::i2c::Error,
{
    let addr = chip.address();
    let device = format!("secure element at 0x{addr:02X}");
    // 1. Probe.
    let probe = {
        let (bus, d) = chip.bus_and_delay();
        coffre_driver::probe(bus, d, addr)
    };
    match probe {
        Ok(Probe::Present) => log(1, &format!("probe 0x{addr:02X}: ATECC608 answered")),
        Ok(Probe::SelfTestFailed) => {
            log(
                1,
                &format!("probe 0x{addr:02X}: the chip reports a failed self test"),
            );
        }
        Ok(other) => {
            log(1, &format!("probe 0x{addr:02X}: secure element not found ({other:?}); stopping before any network activity"));
            return Err(BootError::ChipGone {
                what: device,
                detail: "no answer at boot (step 1, probe)".into(),
            });
        }
        Err(e) => {
            log(1, &format!("probe 0x{addr:02X}: bus error {e:?}; stopping"));
            return Err(BootError::ChipGone {
                what: device,
                detail: format!("bus error at boot: {e:?}"),
            });
        }
    }
    let chip_err = |what: &str, e: coffre_driver::Error<E>| match e {
        coffre_driver::Error::NotPresent { .. } => BootError::ChipGone {
            what: format!("secure element at 0x{addr:02X}"),
            detail: what.to_string(),
        },
        other => BootError::Chip {
            what: format!("secure element at 0x{addr:02X}"),
            detail: format!("{what}: {other}"),
        },
    };
    // 2. Init.
    let family = chip
        .device_family()
        .map_err(|e| chip_err("reading the revision", e))?;
    log(2, &format!("chip library ready: {family}"));
    // 3. Config zone.
    let cfg = chip
        .read_config_zone()
        .map_err(|e| chip_err("reading the config zone", e))?;
    let serial = cfg.serial_number();
    log(
        3,
        &format!(
            "config zone read: serial {}",
            coffre_driver::coffre_proto::hex::Hex::upper(&serial).spaced()
        ),
    );
    // 4. Locks.
    let (c, d) = (cfg.config_locked(), cfg.data_locked());
    if c && d {
        log(4, "config zone locked, data/OTP zone locked");
    } else if opts.allow_unlocked {
        log(
            4,
            &format!(
                "WARNING: config zone {}, data zone {}: going on (--allow-unlocked)",
                word(c),
                word(d)
            ),
        );
    } else {
        log(
            4,
            &format!(
                "config zone {}, data zone {}: refusing an unlocked chip",
                word(c),
                word(d)
            ),
        );
        return Err(BootError::Unlocked {
            config: word(c),
            data: word(d),
        });
    }
    let report = BootReport {
        device: family.to_string(),
        serial,
        config_locked: c,
        data_locked: d,
    };
    // 5. Identity.
    let key = match opts.mode {
        KeyMode::Lab => {
            let mut slot8 = Zeroizing::new(alloc::vec![0u8; SLOT8_SIZE]);
            match cfg.slot_policy(8).read {
                ReadAccess::Encrypted { read_key } => {
                    let Some(io) = opts.io_key.as_ref().filter(|k| k.slot == read_key) else {
                        log(5, &format!("identity: slot 8 is readable only by encrypted Read with the IO protection key (slot {read_key}), and this device has none; stopping"));
                        return Err(BootError::Chip {
                            what: device,
                            detail: format!("slot 8 is readable only by encrypted Read with the IO protection key in slot {read_key}; this device has no copy of that key"),
                        });
                    };
                    for b in 0..(SLOT8_SIZE / 32) {
                        let mut num_in = io.host_nonce;
                        num_in[19] ^= b as u8;
                        let mut block = chip
                            .read_encrypted(8, b as u8, read_key, &io.key, &num_in)
                            .map_err(|e| chip_err("reading slot 8 (encrypted Read)", e))?;
                        slot8[32 * b..32 * b + 32].copy_from_slice(&block);
                        zeroize::Zeroize::zeroize(&mut block);
                    }
                    log(
                        5,
                        &format!("identity: slot 8 read by encrypted Read (13 × Nonce + GenDig + Read, IO protection key of slot {read_key} from the MCU's flash), PKCS#8 key parsed into RAM (lab mode)"),
                    );
                }
                _ => {
                    chip.read_slot(8, &mut slot8[..])
                        .map_err(|e| chip_err("reading slot 8", e))?;
                    log(
                        5,
                        "identity: slot 8 read (13 blocks), PKCS#8 key parsed into RAM (lab mode)",
                    );
                }
            }
            BootKey::Lab { slot8 }
        }
        KeyMode::Offload { slot } => {
            log(
                5,
                &format!(
                    "identity: the chip signs with slot {slot}; no key leaves it (offload mode)"
                ),
            );
            BootKey::Offload { chip, slot }
        }
    };
    Ok((key, report))
}
