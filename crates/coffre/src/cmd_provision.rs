//! `coffre provision` and `coffre inspect`.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_pki::{IssueOptions, Pki};
use coffre_provision::manifest::Manifest;
use coffre_provision::{
    configure_with_io_key, inspect, iokey, provision, Layout, Mode, Options, Ui,
};
use serde_json::json;

use crate::bus::BusOpts;
use crate::bus::BusSpec;
use crate::bus::{self, Opened};
use crate::input;
use crate::output::{ask, note, say};
use crate::output::{finish_transcript, print_json, NoChip};
use clap::Args;

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
coffre provision --bus emu:chip.img --pki pki --id m5go-1 --mode lab --lock-slot8 --yes\n  \
coffre provision --bus emu:chip.img --pki pki --id m5go-1 --mode offload\n  \
coffre provision --bus emu:blank.img --pki pki --id m5go-2 --mode offload --configure hardened\n  \
coffre provision --fleet 50 --prefix m5go- --dir fleet --pki pki --mode offload\n  \
coffre provision --bus emu:chip.img --pki pki --mode factory\n\n\
lab: the source lab's method: a key generated off-chip, written to slot 8 as length-prefixed \
PKCS#8 (readable and replaceable by anyone on the bus unless slot 8 is slot-locked).\n\
offload: the key is born in the chip and never leaves it; the chip signs the CSR.\n\
factory: a Trust&GO part's own identity: its slot 0 key and the certificate chain stored in the chip \
are checked (chain to the trusted root, key = slot 0's) and the device is registered under its \
certificate's CN (sn + serial number); nothing is written to the chip. Exit status 4 if refused.")]
pub struct ProvisionCmd {
    /// Where the chip is (emu:IMAGE or linux:/dev/i2c-N[@ADDR]).
    #[arg(
        long,
        env = "COFFRE_BUS",
        value_name = "BUS",
        required_unless_present = "fleet"
    )]
    bus: Option<BusSpec>,
    /// Device id: certificate CN and MQTT username (factory mode: the chip's CN, optional).
    #[arg(long, value_parser = input::device_id)]
    id: Option<String>,
    /// Factory mode: the trusted root (PEM or DER); default: the emulator's factory
    /// root for emu: buses, Microchip's Crypto Authentication Root CA 002 for linux: buses.
    #[arg(long, value_name = "FILE")]
    factory_root: Option<PathBuf>,
    /// Key mode: lab, offload or factory.
    #[arg(long, default_value = "offload")]
    mode: coffre_provision::Mode,
    /// PKI directory (see 'coffre pki init').
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    /// Blank chips: write this configuration (trustngo or hardened) and lock it first.
    #[arg(long, value_name = "LAYOUT")]
    configure: Option<coffre_provision::Layout>,
    /// Offload: private-key slot to use (default 0, the factory key).
    #[arg(long, value_name = "SLOT", value_parser = clap::value_parser!(u8).range(0..16))]
    key_slot: Option<u8>,
    /// Offload: create a fresh key in --key-slot with GenKey (slots 2–4 on Trust&GO).
    #[arg(long)]
    new_key: bool,
    /// Lab: slot-lock slot 8 afterwards (irreversible).
    #[arg(long, conflicts_with = "no_lock_slot8")]
    lock_slot8: bool,
    /// Lab: leave slot 8 unlocked without asking.
    #[arg(long)]
    no_lock_slot8: bool,
    /// Answer yes to every confirmation (locks are irreversible).
    #[arg(long)]
    yes: bool,
    /// Replace an existing key in slot 8 or an existing certificate (the old certificate is revoked).
    #[arg(long)]
    force: bool,
    /// Append the result to this fleet manifest (JSON lines).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Certificate validity, days.
    #[arg(long, default_value = "365", value_parser = input::days)]
    days: u32,
    /// Provision N new emulated Trust&GO chips instead of one chip on --bus.
    #[arg(long, value_name = "N", conflicts_with_all = ["bus", "id"], value_parser = clap::value_parser!(u32).range(1..=100_000))]
    fleet: Option<u32>,
    /// Fleet: id prefix (ids are PREFIX + number, and file names inside --dir).
    #[arg(long, default_value = "m5go-", value_parser = input::id_prefix)]
    prefix: String,
    /// Fleet: directory for the chip images and the manifest.
    #[arg(long, default_value = "fleet")]
    dir: PathBuf,
    /// Emulated chips only: 'instant' or 'datasheet'.
    #[arg(long, default_value = "instant")]
    timing: Timing,
    /// Emulated chips only: write the bus transcript to FILE.
    #[arg(long, value_name = "FILE")]
    transcript: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

impl ProvisionCmd {
    /// Run `coffre provision`.
    pub fn run(self) -> Result<()> {
        let p = self;
        let args = ProvisionArgs {
            id: p.id.clone().unwrap_or_default(),
            mode: p.mode,
            pki: p.pki.clone(),
            configure: p.configure,
            key_slot: p.key_slot,
            new_key: p.new_key,
            lock_slot8: if p.lock_slot8 {
                Some(true)
            } else if p.no_lock_slot8 {
                Some(false)
            } else {
                None
            },
            yes: p.yes,
            force: p.force,
            manifest: p.manifest.clone(),
            days: p.days,
            factory_root: p.factory_root.clone(),
        };
        if let Some(count) = p.fleet {
            let f = FleetArgs {
                count,
                prefix: p.prefix.clone(),
                dir: p.dir.clone(),
            };
            return fleet(&f, &args, p.json);
        }
        let Some(bus) = p.bus else {
            anyhow::bail!("--bus is required (or --fleet N for emulated chips)");
        };
        let bus_opts = BusOpts {
            bus,
            timing: p.timing,
            transcript: p.transcript,
            json: p.json,
        };
        one(&bus_opts, &args)
    }
}

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub bus: BusOpts,
    /// The device certificate to check against the chip's key.
    #[arg(long, value_name = "PEM")]
    pub cert: Option<PathBuf>,
    /// Offload mode: the slot whose key the certificate should carry.
    #[arg(long, value_name = "SLOT", value_parser = clap::value_parser!(u8).range(0..16))]
    pub key_slot: Option<u8>,
}

impl InspectArgs {
    /// Run `coffre inspect`.
    pub fn run(self) -> Result<()> {
        inspect_cmd(&self.bus, self.cert.as_deref(), self.key_slot)
    }
}

/// Prints steps on stderr and asks before each lock.
pub struct CliUi {
    /// `--yes`.
    pub yes: bool,
    /// Say nothing but warnings (fleet mode: a progress bar is shown).
    pub quiet: bool,
}

impl Ui for CliUi {
    fn step(&mut self, message: &str) {
        if !self.quiet {
            note!("  {message}");
        }
    }

    fn confirm(&mut self, action: &str, permanent: &[String]) -> bool {
        if self.yes {
            if !self.quiet {
                note!("  {action}: confirmed by --yes");
            }
            return true;
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            note!("refusing to {action} without a confirmation: there is no terminal to ask; pass --yes to confirm in a script");
            return false;
        }
        note!();
        note!("About to {action}. This is IRREVERSIBLE. It makes permanent:");
        for p in permanent {
            note!("  - {p}");
        }
        ask("Type 'yes' to go on: ");
        let mut line = String::new();
        let _ = stdin.lock().read_line(&mut line);
        line.trim() == "yes"
    }
}

/// What `coffre provision` was asked to do.
pub struct ProvisionArgs {
    /// Device id.
    pub id: String,
    /// Key mode.
    pub mode: Mode,
    /// PKI directory.
    pub pki: PathBuf,
    /// Blank chips: layout to write and lock first.
    pub configure: Option<Layout>,
    /// Offload key slot.
    pub key_slot: Option<u8>,
    /// Offload: GenKey a new key.
    pub new_key: bool,
    /// Lab: slot-lock choice (None = ask).
    pub lock_slot8: Option<bool>,
    /// --yes.
    pub yes: bool,
    /// --force.
    pub force: bool,
    /// Manifest file.
    pub manifest: Option<PathBuf>,
    /// Certificate validity.
    pub days: u32,
    /// Factory mode: trusted root file.
    pub factory_root: Option<PathBuf>,
}

fn to_anyhow(e: coffre_provision::Error) -> anyhow::Error {
    if e.is_no_chip() {
        anyhow::Error::new(NoChip(e.to_string()))
    } else {
        anyhow::Error::new(e)
    }
}

fn options(a: &ProvisionArgs, image: Option<PathBuf>) -> Options {
    let mut o = Options::new(&a.id, a.mode);
    o.key_slot = a.key_slot;
    o.new_key = a.new_key;
    o.lock_slot8 = a.lock_slot8;
    o.force = a.force;
    o.issue = IssueOptions {
        validity_days: a.days,
        ..IssueOptions::default()
    };
    o.manifest = a.manifest.clone().map(Manifest::at);
    o.image = image;
    o
}

/// `coffre provision --bus …`.
pub fn one(bus_opts: &BusOpts, a: &ProvisionArgs) -> Result<()> {
    if a.id.is_empty() && a.mode != Mode::Factory {
        bail!("--id is required: the device id, its certificate CN and MQTT username (only --mode factory takes it from the chip)");
    }
    let mut pki = Pki::open(&a.pki)?;
    let mut o: Opened = bus::open(&bus_opts.bus, bus_opts.timing)?;
    if let (Some(_), Some(b)) = (&bus_opts.transcript, &o.board) {
        b.bus.start_transcript();
    }
    let image = match &bus_opts.bus {
        bus::BusSpec::Emu { image, .. } => Some(image.clone()),
        _ => None,
    };
    let mut ui = CliUi {
        yes: a.yes,
        quiet: false,
    };
    note!(
        "provisioning {} on {} ({} mode)",
        if a.id.is_empty() { "the chip" } else { &a.id },
        bus_opts.bus,
        a.mode.name()
    );
    if let Some(layout) = a.configure {
        let (_, io_key) = configure_with_io_key(&mut o.chip, layout, &mut ui).map_err(to_anyhow)?;
        if let Some(k) = io_key {
            // The device's copy of the IO protection key (its MCU flash).
            let p = iokey::save(&a.pki, &a.id, &k).map_err(to_anyhow)?;
            note!("  IO protection key saved for the device: {}", p.display());
        }
    }
    let mut opts = options(a, image);
    opts.io_key = iokey::load(&a.pki, &a.id).map_err(to_anyhow)?;
    if a.mode == Mode::Factory {
        if a.configure.is_some() {
            bail!("--configure writes a configuration: factory mode writes nothing to the chip; drop --configure");
        }
        let root =
            crate::cmd_factory::TrustedRoot::for_bus(&bus_opts.bus, a.factory_root.as_deref())?;
        note!("  trusted root: {}", root.name);
        opts.factory_root = Some(root.der);
    }
    let r = provision(&mut o.chip, &mut pki, &opts, &mut ui).map_err(to_anyhow);
    finish_transcript(&o, bus_opts.transcript.as_deref())?;
    let out = bus::check_saved(o.board.as_ref(), r)?;
    if bus_opts.json {
        return print_json(&serde_json::to_value(&out)?);
    }
    say!(
        "{} provisioned: {} mode, key in slot {}, certificate {}{}",
        out.entry.id,
        out.entry.mode,
        out.entry.key_slot,
        out.entry.cert_path.display(),
        if out.resumed {
            " (completed an earlier run)"
        } else {
            ""
        }
    );
    if a.mode == Mode::Lab && !out.slot8_locked {
        say!("warning: slot 8 is not slot-locked: anyone on the I2C bus can replace this key");
    }
    Ok(())
}

/// What `coffre provision --fleet` was asked to do.
pub struct FleetArgs {
    /// Number of chips.
    pub count: u32,
    /// Id prefix.
    pub prefix: String,
    /// Directory for the chip images.
    pub dir: PathBuf,
}

/// `coffre provision --fleet N`.
pub fn fleet(f: &FleetArgs, a: &ProvisionArgs, json: bool) -> Result<()> {
    if f.count == 0 {
        bail!("--fleet needs at least 1 device");
    }
    if a.mode == Mode::Factory {
        bail!("--fleet makes new chips and gives them identities from the PKI; factory identities come with the chips: create them with 'coffre emu new --preset tngtls' and register each with 'coffre provision --bus emu:IMAGE --mode factory'");
    }
    std::fs::create_dir_all(&f.dir)
        .with_context(|| format!("cannot create {}", f.dir.display()))?;
    let mut pki = Pki::open(&a.pki)?;
    let manifest = a
        .manifest
        .clone()
        .unwrap_or_else(|| f.dir.join("manifest.jsonl"));
    let width = f.count.to_string().len().max(3);
    let bar = indicatif::ProgressBar::new(f.count as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} chips provisioned  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // A fleet run that stopped half-way is resumed: devices already in the
    // manifest are skipped (a damaged manifest stops everything here).
    let already: std::collections::HashSet<String> = Manifest::at(&manifest)
        .entries()
        .map_err(to_anyhow)?
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut done = Vec::new();
    let mut skipped = 0usize;
    for i in 1..=f.count {
        let id = format!("{}{:0width$}", f.prefix, i);
        if already.contains(&id) {
            skipped += 1;
            bar.inc(1);
            continue;
        }
        let image = f.dir.join(format!("{id}.img"));
        if !image.exists() {
            coffre_emu::image::create(&image, &Preset::Tngtls.build(), false)?;
        }
        let board = Board::open(&image, Timing::Instant)?;
        let mut chip = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), 0x35);
        let mut args = ProvisionArgs {
            id: id.clone(),
            ..clone_args(a)
        };
        args.manifest = Some(manifest.clone());
        let mut ui = CliUi {
            yes: a.yes,
            quiet: true,
        };
        let out = provision(&mut chip, &mut pki, &options(&args, Some(image)), &mut ui)
            .map_err(to_anyhow);
        let out = bus::check_saved(Some(&board), out).with_context(|| {
            format!(
                "provisioning {id} (the devices before it are done and in {})",
                manifest.display()
            )
        })?;
        bar.set_message(id);
        bar.inc(1);
        done.push(out.entry);
    }
    bar.finish_and_clear();
    if json {
        return print_json(&json!({ "manifest": manifest, "devices": done, "skipped": skipped }));
    }
    say!(
        "{} chips provisioned in {} ({} mode){}; manifest {}",
        done.len(),
        f.dir.display(),
        a.mode.name(),
        if skipped > 0 {
            format!(", {skipped} already done and skipped")
        } else {
            String::new()
        },
        manifest.display()
    );
    Ok(())
}

fn clone_args(a: &ProvisionArgs) -> ProvisionArgs {
    ProvisionArgs {
        id: a.id.clone(),
        mode: a.mode,
        pki: a.pki.clone(),
        configure: a.configure,
        key_slot: a.key_slot,
        new_key: a.new_key,
        lock_slot8: a.lock_slot8,
        yes: a.yes,
        force: a.force,
        manifest: a.manifest.clone(),
        days: a.days,
        factory_root: a.factory_root.clone(),
    }
}

/// `coffre inspect`.
pub fn inspect_cmd(bus_opts: &BusOpts, cert: Option<&Path>, key_slot: Option<u8>) -> Result<()> {
    let mut o = bus::open(&bus_opts.bus, bus_opts.timing)?;
    let cert_bytes = cert
        .map(|p| {
            crate::input::read_file(p)
                .with_context(|| format!("cannot read the certificate {}", p.display()))
        })
        .transpose()?;
    let r = inspect(&mut o.chip, cert_bytes.as_deref(), key_slot).map_err(to_anyhow)?;
    if bus_opts.json {
        return print_json(&serde_json::to_value(&r)?);
    }
    say!(
        "{} serial {}  config zone {}  data zone {}",
        r.device,
        r.serial,
        if r.config_locked {
            "locked"
        } else {
            "UNLOCKED"
        },
        if r.data_locked { "locked" } else { "UNLOCKED" }
    );
    say!();
    say!(
        "{:>4} {:>4}  {:<19} {:<30} {:<30} {:<11} content",
        "slot",
        "size",
        "role",
        "read",
        "write",
        "lock"
    );
    for s in &r.slots {
        say!(
            "{:>4} {:>4}  {:<19} {:<30} {:<30} {:<11} {}",
            s.slot,
            s.size,
            s.role.unwrap_or(""),
            s.read,
            s.write,
            s.lock,
            s.content
        );
    }
    say!();
    if r.findings.is_empty() {
        say!("no findings");
    } else {
        say!("findings:");
        for f in &r.findings {
            let slot = f.slot.map(|s| format!("slot {s}: ")).unwrap_or_default();
            say!("  [{}] {slot}{}", f.severity, f.message);
            say!("         fix: {}", f.fix);
        }
    }
    Ok(())
}
