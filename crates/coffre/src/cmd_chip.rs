//! `coffre chip …` and `coffre bus scan`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_driver::LockStatus;
use coffre_proto::config::ConfigZone;
use coffre_proto::hex::Hex;
use coffre_proto::tngtls::slot_role;
use coffre_proto::zone::slot_size;
use serde_json::json;

use crate::bus::BusOpts;
use crate::bus::{self, Opened};
use crate::output::{drv, finish_transcript, hex, hex_dump, print_json};
use crate::output::{note, say, say_text};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum ChipCommand {
    /// Identity: device, revision, serial number, address, lock state.
    Info(BusOpts),
    /// The 128-byte configuration zone, decoded slot by slot in plain words.
    Config {
        #[command(flatten)]
        bus: BusOpts,
        /// Also print the raw bytes.
        #[arg(long)]
        raw: bool,
    },
    /// Lock state: config zone, data/OTP zone, and each slot.
    Locks(BusOpts),
    /// Read a data slot in clear (refused by the chip for secret and key slots).
    ReadSlot {
        /// Slot number, 0–15.
        #[arg(value_parser = clap::value_parser!(u8).range(0..16))]
        slot: u8,
        #[command(flatten)]
        bus: BusOpts,
        /// Write the raw bytes to FILE instead of printing hex.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// The factory certificates of a Trust&GO chip (slots 10–12, rebuilt from their
    /// compressed form) as PEM, checked device → signer → root and against slot 0's key.
    #[command(
        after_help = "Trusted root: --root FILE, else the emulator's factory root for emu: \
buses ('coffre emu factory-root') and Microchip's Crypto Authentication Root CA 002 for linux: buses.\n\n\
Example:\n  coffre chip certs --bus emu:chip.img --out certs/ && \
openssl verify -CAfile certs/root.pem -untrusted certs/signer.pem certs/device.pem\n\n\
Exit status 4 when the certificates do not rebuild, do not chain to the root, or do not carry slot 0's key."
    )]
    Certs {
        #[command(flatten)]
        bus: BusOpts,
        /// The trusted root certificate (PEM or DER).
        #[arg(long, value_name = "FILE")]
        root: Option<PathBuf>,
        /// Also write device.pem, signer.pem and root.pem into DIR.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BusCommand {
    /// List the addresses that answer (wakes the secure element first, as it
    /// ignores the bus while asleep).
    Scan(BusOpts),
}

impl ChipCommand {
    /// Run `coffre chip …`.
    pub fn run(self) -> Result<()> {
        match self {
            ChipCommand::Info(b) => info(&b),
            ChipCommand::Config { bus, raw } => config(&bus, raw),
            ChipCommand::Locks(b) => locks(&b),
            ChipCommand::Certs { bus, root, out } => {
                crate::cmd_factory::certs(&bus, root.as_deref(), out.as_deref())
            }
            ChipCommand::ReadSlot { slot, bus, out } => read_slot(&bus, slot, out.as_deref()),
        }
    }
}

impl BusCommand {
    /// Run `coffre bus …`.
    pub fn run(self) -> Result<()> {
        match self {
            BusCommand::Scan(b) => scan(&b),
        }
    }
}

/// Open the bus, start a transcript if asked, run `f`, write the transcript.
fn with_chip<T>(opts: &BusOpts, f: impl FnOnce(&mut Opened) -> Result<T>) -> Result<T> {
    if opts.transcript.is_some() && !matches!(opts.bus, bus::BusSpec::Emu { .. }) {
        bail!("--transcript needs an emulated bus (emu:IMAGE): a real bus can only be recorded with a logic analyser");
    }
    let mut o = bus::open(&opts.bus, opts.timing)?;
    if let Some(note) = &o.address_note {
        note!("note: {note}");
    }
    if opts.transcript.is_some() {
        if let Some(b) = &o.board {
            b.bus.start_transcript();
        }
    }
    let r = f(&mut o);
    finish_transcript(&o, opts.transcript.as_deref())?;
    bus::check_saved(o.board.as_ref(), r)
}

fn part_name(address: u8) -> &'static str {
    match address {
        0x35 => "Trust&GO default",
        0x36 => "TrustFLEX default",
        0x60 => "blank / generic part default",
        _ => "custom",
    }
}

/// `coffre chip info`.
pub fn info(opts: &BusOpts) -> Result<()> {
    with_chip(opts, |o| {
        let rev = drv(
            o.chip.info_revision(),
            "reading the revision (Info command)",
        )?;
        let cfg = drv(o.chip.read_config_zone(), "reading the config zone")?;
        let family = coffre_proto::config::DeviceFamily::from_revision(&rev);
        let sn = cfg.serial_number();
        let addr = o.chip.address();
        if opts.json {
            return print_json(&json!({
                "bus": o.spec.to_string(),
                "address": format!("0x{addr:02X}"),
                "device": family.to_string(),
                "revision": hex(&rev),
                "serial_number": hex(&sn),
                "config_locked": cfg.config_locked(),
                "data_locked": cfg.data_locked(),
                "slots_locked": (0..16u8).filter(|&s| cfg.slot_locked(s)).collect::<Vec<_>>(),
                "i2c_address_config": format!("0x{:02X}", cfg.i2c_address_8bit()),
            }));
        }
        say!(
            "device         {family} (revision {})",
            Hex::upper(&rev).spaced()
        );
        say!("serial number  {}", Hex::upper(&sn).spaced());
        say!("address        0x{addr:02X} ({})", part_name(addr));
        say!("bus            {}", o.spec);
        say!("config zone    {}", lock_word(cfg.config_locked()));
        say!("data/OTP zone  {}", lock_word(cfg.data_locked()));
        say!("slot locks     {}", slot_lock_list(&cfg));
        if !cfg.config_locked() || !cfg.data_locked() {
            say!("warning: the chip is not fully locked: its configuration or contents can still change");
        }
        Ok(())
    })
}

fn lock_word(locked: bool) -> &'static str {
    if locked {
        "locked"
    } else {
        "UNLOCKED"
    }
}

fn slot_lock_list(cfg: &ConfigZone) -> String {
    let l: Vec<String> = (0..16u8)
        .filter(|&s| cfg.slot_locked(s))
        .map(|s| s.to_string())
        .collect();
    if l.is_empty() {
        "none".into()
    } else {
        format!("slots {}", l.join(", "))
    }
}

/// `coffre chip config`.
pub fn config(opts: &BusOpts, raw: bool) -> Result<()> {
    with_chip(opts, |o| {
        let cfg = drv(o.chip.read_config_zone(), "reading the config zone")?;
        if opts.json {
            let slots: Vec<_> = (0..16u8).map(|s| slot_json(&cfg, s)).collect();
            return print_json(&json!({
                "raw": hex(cfg.as_bytes()),
                "serial_number": hex(&cfg.serial_number()),
                "revision": hex(&cfg.revision()),
                "i2c_address": format!("0x{:02X}", cfg.i2c_address()),
                "chip_mode": format!("0x{:02X}", cfg.chip_mode().0),
                "watchdog": if cfg.chip_mode().long_watchdog() { "13 s" } else { "1.3 s" },
                "config_locked": cfg.config_locked(),
                "data_locked": cfg.data_locked(),
                "slot_locked_bits": format!("0x{:04X}", cfg.slot_locked_bits()),
                "chip_options": format!("0x{:04X}", cfg.chip_options()),
                "slots": slots,
            }));
        }
        say!(
            "address 0x{:02X} (config byte 16 = 0x{:02X}, 8-bit form)   ChipMode 0x{:02X}: watchdog {}, clock divider {}",
            cfg.i2c_address(),
            cfg.i2c_address_8bit(),
            cfg.chip_mode().0,
            if cfg.chip_mode().long_watchdog() { "13 s" } else { "1.3 s" },
            cfg.chip_mode().clock_divider()
        );
        say!(
            "config zone {}, data/OTP zone {}, slot locks: {}",
            lock_word(cfg.config_locked()),
            lock_word(cfg.data_locked()),
            slot_lock_list(&cfg)
        );
        say!();
        say!("slot  size  SlotConfig  KeyConfig  role (Trust&GO)       policy");
        for s in 0..16u8 {
            let p = cfg.slot_policy(s);
            say!(
                "{:>4}  {:>4}  0x{:04X}      0x{:04X}     {:<20}  {}",
                s,
                slot_size(s).unwrap_or(0),
                p.slot_config.0,
                p.key_config.0,
                slot_role(s).map(|r| r.name).unwrap_or(""),
                p.summary()
            );
        }
        if raw {
            say!();
            say_text(&hex_dump(cfg.as_bytes()));
        }
        Ok(())
    })
}

fn slot_json(cfg: &ConfigZone, s: u8) -> serde_json::Value {
    let p = cfg.slot_policy(s);
    json!({
        "slot": s,
        "size": slot_size(s),
        "slot_config": format!("0x{:04X}", p.slot_config.0),
        "key_config": format!("0x{:04X}", p.key_config.0),
        "role": slot_role(s).map(|r| r.name),
        "private_key": p.private_key,
        "read": p.read.to_string(),
        "write": p.write.to_string(),
        "genkey": p.genkey,
        "external_sign": p.ext_sign,
        "ecdh": p.ecdh,
        "lockable": p.lockable,
        "slot_locked": p.slot_locked,
        "summary": p.summary().to_string(),
    })
}

/// `coffre chip locks`.
pub fn locks(opts: &BusOpts) -> Result<()> {
    with_chip(opts, |o| {
        let l: LockStatus = drv(o.chip.lock_status(), "reading the lock bytes")?;
        let locked: Vec<u8> = (0..16u8)
            .filter(|s| l.slot_locked & (1 << s) != 0)
            .collect();
        if opts.json {
            return print_json(&json!({
                "config_locked": l.config_locked,
                "data_locked": l.data_locked,
                "slots_locked": locked,
            }));
        }
        say!("config zone    {}", lock_word(l.config_locked));
        say!("data/OTP zone  {}", lock_word(l.data_locked));
        if locked.is_empty() {
            say!("slot locks     none");
        } else {
            let names: Vec<String> = locked.iter().map(|s| s.to_string()).collect();
            say!("slot locks     slots {}", names.join(", "));
        }
        Ok(())
    })
}

/// `coffre chip read-slot N`.
pub fn read_slot(opts: &BusOpts, slot: u8, out: Option<&Path>) -> Result<()> {
    with_chip(opts, |o| {
        let size = slot_size(slot).context("slot out of range")?;
        let mut buf = zeroize::Zeroizing::new(vec![0u8; size]);
        let r = o.chip.read_slot(slot, &mut buf);
        if let Err(coffre_driver::Error::Chip(coffre_proto::Error::Execution)) = &r {
            // Explain with the slot's policy.
            let why = match o.chip.read_config_zone() {
                Ok(cfg) => {
                    let p = cfg.slot_policy(slot);
                    if !cfg.data_locked() {
                        "the data zone is not locked yet: the chip refuses every data read until it is".to_string()
                    } else {
                        format!("its policy: {}", p.summary())
                    }
                }
                Err(_) => "the chip refused the read".to_string(),
            };
            bail!("slot {slot} cannot be read in clear (chip status 0x0F): {why}");
        }
        let n = drv(r, &format!("reading slot {slot}"))?;
        let bytes = &buf[..n];
        if let Some(path) = out {
            // A slot may hold a key: the file is private to its owner.
            coffre_fs::write_atomic(path, bytes, 0o600)
                .with_context(|| format!("cannot write {}", path.display()))?;
            note!("{n} bytes of slot {slot} written to {}", path.display());
            return Ok(());
        }
        if opts.json {
            return print_json(&json!({ "slot": slot, "size": n, "hex": hex(bytes) }));
        }
        say!("slot {slot}, {n} bytes:");
        say_text(&hex_dump(bytes));
        Ok(())
    })
}

/// `coffre bus scan`.
pub fn scan(opts: &BusOpts) -> Result<()> {
    with_chip(opts, |o| {
        // The secure element sleeps until woken; wake it so it answers.
        let woke = o.chip.wake().is_ok();
        let found = match &o.board {
            Some(b) => {
                let mut bus = b.bus.clone();
                bus.scan()
            }
            None => {
                let i2c = o.chip.i2c_mut();
                (0x03..=0x77u8)
                    .filter(|&a| embedded_hal::i2c::I2c::write(i2c, a, &[]).is_ok())
                    .collect()
            }
        };
        let _ = o.chip.idle();
        let describe = |a: u8| match a {
            0x35 => "ATECC608 Trust&GO",
            0x36 => "ATECC608 TrustFLEX",
            0x60 => "ATECC608 (blank / generic)",
            0x44 | 0x45 => "SHT30 temperature/humidity",
            0x76 | 0x77 => "BMP280 pressure",
            _ => "unknown device",
        };
        if opts.json {
            let list: Vec<_> = found
                .iter()
                .map(|&a| json!({"address": format!("0x{a:02X}"), "device": describe(a)}))
                .collect();
            return print_json(&json!({ "woke_secure_element": woke, "devices": list }));
        }
        if found.is_empty() {
            say!("no device answered on {}", o.spec);
        }
        for a in found {
            say!("0x{a:02X}  {}", describe(a));
        }
        Ok(())
    })
}
