//! `coffre`: give an IoT device a hardware-rooted identity and use it.
//!
//! The binary only parses arguments, calls the libraries and maps errors to
//! exit codes; everything it does is in the workspace's library crates.

#![forbid(unsafe_code)]

mod bus;
mod cmd_bench;
mod cmd_chip;
mod cmd_emu;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use coffre_emu::clock::Timing;

use crate::bus::BusSpec;

/// Exit codes (documented in the README).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any error not listed below.
    pub const ERROR: u8 = 1;
    /// Bad command line (clap uses 2).
    pub const USAGE: u8 = 2;
    /// No secure element answered at the address.
    pub const NO_CHIP: u8 = 3;
}

#[derive(Parser, Debug)]
#[command(
    name = "coffre",
    version,
    about = "Hardware-rooted identity for IoT devices with a Microchip ATECC608B",
    long_about = "coffre drives an ATECC608B secure element — real, on a Linux I2C bus, or emulated \
in an image file — to read its configuration, inspect its slots and (in later commands) provision \
identities for MQTT over mutual TLS.\n\n\
Start with an emulated Trust&GO chip:\n  \
coffre emu new --preset tngtls --out chip.img\n  \
coffre chip info --bus emu:chip.img\n  \
coffre chip config --bus emu:chip.img\n\n\
On a Raspberry Pi with the chip on I2C bus 1:\n  \
coffre chip info --bus linux:/dev/i2c-1@0x35",
    after_help = "Exit status: 0 success, 1 error, 2 bad usage, 3 no secure element found."
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read a secure element: identity, configuration, locks, slots.
    #[command(subcommand)]
    Chip(ChipCommand),
    /// Create and serve emulated chips (image files).
    #[command(subcommand)]
    Emu(EmuCommand),
    /// Look at the I2C bus itself.
    #[command(subcommand)]
    Bus(BusCommand),
}

/// Options shared by every command that talks to a chip.
#[derive(Args, Debug, Clone)]
pub struct BusOpts {
    /// Where the chip is: emu:IMAGE[@ADDR] (an emulated chip, see 'coffre emu new') or
    /// linux:/dev/i2c-N[@ADDR] (a real chip; default address 0x35, Trust&GO).
    #[arg(long, env = "COFFRE_BUS", value_name = "BUS")]
    pub bus: BusSpec,

    /// Emulated chips only: 'instant' (default) or 'datasheet' (each command takes
    /// its datasheet execution time).
    #[arg(long, default_value = "instant", value_name = "TIMING")]
    pub timing: Timing,

    /// Emulated chips only: write what crossed the I2C bus to FILE (text; JSON
    /// lines if FILE ends in .jsonl or .json) — what a probe on the wires sees.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
enum ChipCommand {
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
}

#[derive(Subcommand, Debug)]
enum EmuCommand {
    /// Create a new emulated chip image.
    #[command(
        after_help = "Presets:\n  tngtls  Trust&GO ATECC608B-TNGTLS as shipped: config and data locked, \
factory key in slot 0, slot 8 empty, address 0x35\n  blank   unconfigured ATECC608B: nothing locked, address 0x60\n\n\
Image files are test fixtures: the keys inside are not protected. Never put a real key in one."
    )]
    New {
        /// Factory preset: tngtls or blank.
        #[arg(long, default_value = "tngtls")]
        preset: coffre_emu::presets::Preset,
        /// Image file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
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

#[derive(Subcommand, Debug)]
enum BusCommand {
    /// List the addresses that answer (wakes the secure element first, as it
    /// ignores the bus while asleep).
    Scan(BusOpts),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Chip(c) => match c {
            ChipCommand::Info(b) => cmd_chip::info(&b),
            ChipCommand::Config { bus, raw } => cmd_chip::config(&bus, raw),
            ChipCommand::Locks(b) => cmd_chip::locks(&b),
            ChipCommand::ReadSlot { slot, bus, out } => {
                cmd_chip::read_slot(&bus, slot, out.as_deref())
            }
        },
        Command::Emu(e) => match e {
            EmuCommand::New {
                preset,
                out,
                force,
                json,
            } => cmd_emu::new(preset, &out, force, json),
            EmuCommand::Serve {
                image,
                listen,
                timing,
            } => cmd_emu::serve(&image, &listen, timing),
            EmuCommand::Bench { reads, json } => cmd_bench::run(reads, json),
        },
        Command::Bus(BusCommand::Scan(b)) => cmd_chip::scan(&b),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(output::exit_code(&e))
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("COFFRE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
