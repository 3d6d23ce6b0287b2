//! `coffre emu …`.

use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use coffre_emu::board::{Board, BoardKit};
use coffre_emu::clock::Timing;
use coffre_emu::image;
use coffre_emu::kit::KitTarget;
use coffre_emu::presets::Preset;
use coffre_proto::hex::Hex;
use serde_json::json;

use crate::input;
use crate::output::{hex, print_json};
use crate::output::{note, say};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum EmuCommand {
    /// Create a new emulated chip image.
    #[command(
        after_help = "Presets:\n  tngtls  Trust&GO ATECC608B-TNGTLS as shipped: config and data locked, \
factory key in slot 0, slot 8 empty, address 0x35, factory certificate chain in OTP and slots 10–12 \
(see coffre chip certs)\n  blank   unconfigured ATECC608B: nothing locked, address 0x60\n\n\
Image files are test fixtures: the keys inside are not protected. Never put a real key in one."
    )]
    New {
        /// Factory preset: tngtls or blank.
        #[arg(long, default_value = "tngtls")]
        preset: coffre_emu::presets::Preset,
        /// Image file to create (with --count: the directory for the images).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Make N chips: DIR/tng-00001.img … (tngtls preset).
        #[arg(long, value_name = "N")]
        count: Option<u32>,
        /// With --count: also write Microchip's manifest of those chips (a JSON list of
        /// ES256-signed entries), signed by the emulated manifest signer, whose
        /// certificate goes to FILE.signer.pem.
        #[arg(long, value_name = "FILE", requires = "count")]
        manifest: Option<PathBuf>,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve an emulated chip over TCP with Microchip's kit protocol (ASCII hex lines),
    /// so tools outside Rust can drive it. See docs/kit-protocol.md.
    Serve {
        /// Image file of the chip.
        #[arg(long, value_name = "FILE")]
        image: PathBuf,
        /// Address to listen on (loopback by default).
        #[arg(long, default_value = "127.0.0.1:8765")]
        listen: String,
        /// 'instant' or 'datasheet'.
        #[arg(long, default_value = "instant")]
        timing: Timing,
        /// Clients served at once; more are told 'busy' and disconnected.
        #[arg(long, default_value = "16", value_parser = clap::value_parser!(u16).range(1..=1024))]
        max_clients: u16,
        /// Disconnect a client silent for this long (e.g. 30s, 5m).
        #[arg(long, default_value = "5m", value_parser = input::run_length)]
        idle_timeout: std::time::Duration,
    },
    /// Print (or write) the certificate of the emulated factory root, to which every
    /// emulated Trust&GO chip's certificates chain. A public test fixture: trust it for
    /// emulated chips only, never beside Microchip's root (the two share their names).
    FactoryRoot {
        /// Write the PEM to FILE instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Measure the emulator: Read commands per second through the full I2C
    /// path, and each command's datasheet timing against the table.
    Bench {
        /// Number of Read commands for the throughput figure.
        #[arg(long, default_value = "200000")]
        reads: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

impl EmuCommand {
    /// Run `coffre emu …`.
    pub fn run(self) -> Result<()> {
        match self {
            EmuCommand::New {
                preset,
                out,
                force,
                json,
                count: Some(n),
                manifest,
            } => crate::cmd_factory::new_batch(preset, &out, n, manifest.as_deref(), force, json),
            EmuCommand::New {
                preset,
                out,
                force,
                json,
                ..
            } => new(preset, &out, force, json),
            EmuCommand::Serve {
                image,
                listen,
                timing,
                max_clients,
                idle_timeout,
            } => serve(
                &image,
                &listen,
                timing,
                coffre_emu::kit::ServeOptions {
                    max_clients: max_clients.into(),
                    idle_timeout,
                },
            ),
            EmuCommand::Bench { reads, json } => crate::cmd_bench::run(reads, json),
            EmuCommand::FactoryRoot { out } => crate::cmd_factory::factory_root(out.as_deref()),
        }
    }
}

/// `coffre emu new`.
pub fn new(preset: Preset, out: &Path, force: bool, json: bool) -> Result<()> {
    let nv = preset.build();
    image::create(out, &nv, force)?;
    let cfg = &nv.config;
    if json {
        return print_json(&json!({
            "image": out.display().to_string(),
            "preset": preset.name(),
            "serial_number": hex(&cfg.serial_number()),
            "address": format!("0x{:02X}", cfg.i2c_address()),
            "config_locked": cfg.config_locked(),
            "data_locked": cfg.data_locked(),
        }));
    }
    say!(
        "created {} : emulated ATECC608B, preset {}, serial {}, address 0x{:02X}, config {}, data {}",
        out.display(),
        preset.name(),
        Hex::upper(&cfg.serial_number()).spaced(),
        cfg.i2c_address(),
        if cfg.config_locked() { "locked" } else { "unlocked" },
        if cfg.data_locked() { "locked" } else { "unlocked" },
    );
    say!("next: coffre chip info --bus emu:{}", out.display());
    Ok(())
}

/// `coffre emu serve`.
pub fn serve(
    image_path: &Path,
    listen: &str,
    timing: Timing,
    opts: coffre_emu::kit::ServeOptions,
) -> Result<()> {
    let board = Board::open(image_path, timing)?;
    let listener = TcpListener::bind(listen).with_context(|| {
        format!("cannot listen on {listen}: is the port in use? pick another with --listen 127.0.0.1:PORT")
    })?;
    let addr = listener.local_addr()?;
    let target: Arc<Mutex<dyn KitTarget>> = Arc::new(Mutex::new(BoardKit::new(board)));
    // Ctrl-C ends the process; every chip change is already saved
    // atomically, so nothing is lost.
    let stop = Arc::new(AtomicBool::new(false));
    note!(
        "serving {} over the kit protocol on {addr} (Ctrl-C to stop); try: printf 'board:device(00)\\n' | nc {} {}",
        image_path.display(),
        addr.ip(),
        addr.port()
    );
    // Machine-readable line for scripts that started us with port 0.
    say!("listening {addr}");
    coffre_emu::kit::serve_with(listener, target, stop, opts).context("kit server failed")?;
    Ok(())
}
