//! The device's boot, in the lab's five steps: (1) probe the secure
//! element's address — absent: stop before any network activity; (2) start
//! the chip library (wake, revision); (3) read the config zone; (4) check
//! the locks — unlocked: refuse unless allowed; (5) load the identity —
//! lab: read slot 8 into RAM; offload: a signer that asks the chip.

use coffre_driver::{Atecc, Probe};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::identity::{ChipError, DriverSigner, KeySource};
use crate::{Error, Result};

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

/// Boot settings.
#[derive(Debug, Clone, Copy)]
pub struct BootOptions {
    /// Key mode.
    pub mode: KeyMode,
    /// Go on with an unlocked chip (warned).
    pub allow_unlocked: bool,
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
) -> Result<(KeySource, BootReport)>
where
    I2C: I2c<Error = E> + Send + 'static,
    D: DelayNs + Send + 'static,
    E: embedded_hal::i2c::Error + Send + 'static,
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
            return Err(Error::ChipGone {
                what: device,
                detail: "no answer at boot (step 1, probe)".into(),
            });
        }
        Err(e) => {
            log(1, &format!("probe 0x{addr:02X}: bus error {e:?}; stopping"));
            return Err(Error::ChipGone {
                what: device,
                detail: format!("bus error at boot: {e:?}"),
            });
        }
    }
    let chip_err = |what: &str, e: coffre_driver::Error<E>| match e {
        coffre_driver::Error::NotPresent { .. } => Error::ChipGone {
            what: format!("secure element at 0x{addr:02X}"),
            detail: what.to_string(),
        },
        other => Error::Chip(ChipError::failed(
            format!("secure element at 0x{addr:02X}"),
            format!("{what}: {other}"),
        )),
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
            coffre_driver::coffre_proto::config::Hex(&serial)
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
        return Err(Error::Unlocked {
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
            let k = KeySource::read_lab(&mut chip, 8)?;
            log(
                5,
                "identity: slot 8 read (13 blocks), PKCS#8 key parsed into RAM (lab mode)",
            );
            k
        }
        KeyMode::Offload { slot } => {
            log(
                5,
                &format!(
                    "identity: the chip signs with slot {slot}; no key leaves it (offload mode)"
                ),
            );
            KeySource::chip(DriverSigner::new(chip, slot))
        }
    };
    Ok((key, report))
}
