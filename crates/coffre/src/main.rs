//! `coffre`: give an IoT device a hardware-rooted identity and use it.
//!
//! The binary only parses arguments, calls the libraries and maps errors to
//! exit codes; everything it does is in the workspace's library crates.

#![forbid(unsafe_code)]

mod bus;
mod cmd_agent;
mod cmd_bench;
mod cmd_broker;
mod cmd_chip;
mod cmd_demo;
mod cmd_emu;
mod cmd_factory;
mod cmd_firmware;
mod cmd_fleet;
mod cmd_oneshot;
mod cmd_pki;
mod cmd_provision;
mod input;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// The chip's factory identity is refused: its stored certificates do
    /// not rebuild, do not chain to the trusted root, or do not carry its
    /// slot 0 key.
    pub const FACTORY_REFUSED: u8 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "coffre",
    version,
    about = "Hardware-rooted identity for IoT devices with a Microchip ATECC608B",
    long_about = "coffre drives an ATECC608B secure element — real, on a Linux I2C bus, or emulated \
in an image file — to read and audit it, provision it with an identity (a key off-chip in slot 8 as \
the lab does, or a key born in the chip), and use that identity for MQTT over mutual TLS.\n\n\
The whole lab in one command (emulated chips, a real mosquitto, every scenario): coffre demo\n\n\
Step by step with an emulated Trust&GO chip:\n  \
coffre emu new --preset tngtls --out chip.img\n  \
coffre chip config --bus emu:chip.img\n  \
coffre pki init && coffre provision --bus emu:chip.img --id m5go-1 --mode offload\n  \
coffre inspect --bus emu:chip.img\n\n\
On a Raspberry Pi with the chip on I2C bus 1:\n  \
coffre chip info --bus linux:/dev/i2c-1@0x35",
    after_help = "Exit status: 0 success, 1 error, 2 bad usage, 3 no secure element found, 4 factory \
certificates refused (do not rebuild, do not chain to the trusted root, or not slot 0's key)."
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Subcommand, Debug)]
enum Command {
    /// Read a secure element: identity, configuration, locks, slots.
    #[command(subcommand)]
    Chip(cmd_chip::ChipCommand),
    /// Create and serve emulated chips (image files).
    #[command(subcommand)]
    Emu(cmd_emu::EmuCommand),
    /// Look at the I2C bus itself.
    #[command(subcommand)]
    Bus(cmd_chip::BusCommand),
    /// The certificate authority: CA, broker and device certificates, revocation.
    #[command(subcommand)]
    Pki(cmd_pki::PkiCommand),
    /// Give a chip (or an emulated fleet) an identity and a certificate.
    Provision(Box<cmd_provision::ProvisionCmd>),
    /// Audit a chip: the slot map in plain words and security findings.
    Inspect(cmd_provision::InspectArgs),

    /// Verify a Trust&GO manifest (Microchip's JSON list of signed entries) and register
    /// every part whose entry verifies: signature by a trusted manifest signer, x5c chain
    /// to the factory root, key = certificate. Nothing touches a chip.
    ImportManifest(cmd_factory::ImportArgs),
    /// Mosquitto: write its configuration from the PKI, run it.
    #[command(subcommand)]
    Broker(cmd_broker::BrokerCommand),
    /// The ESP32-C3 firmware: the settings file its build embeds.
    #[command(subcommand)]
    Firmware(cmd_firmware::FirmwareCommand),
    /// The whole lab on emulated hardware against a real mosquitto: every scenario with evidence.
    Demo(cmd_demo::DemoArgs),
    /// One device process (boot, connect, one QoS 1 publish, clean disconnect) against
    /// mosquitto_pub with the same certificate and broker: wall, CPU and max RSS.
    Bench(cmd_oneshot::BenchArgs),
    /// Fleet simulator: N emulated chips, each with its own identity, connecting over mutual TLS
    /// to a real mosquitto and publishing QoS 1 readings; one subscriber checks every message.
    Fleet(cmd_fleet::FleetArgs),
    /// The slot-map explorer in a browser: chips drawn to scale, policies in words, the bus, live readings.
    Web(cmd_demo::WebArgs),
    /// The device ("M5Go"): boot the chip, read the sensors, publish readings over mutual TLS.
    Publish(cmd_agent::PublishArgs),
    /// The monitor ("M5Stack"): subscribe and print readings with gaps, duplicates and latency.
    Subscribe(cmd_agent::SubscribeArgs),
}

fn main() -> ExitCode {
    // A closed stdout or stderr (`coffre … | head -1`) ends the program
    // quietly, as it ends any Unix filter: SIGPIPE gets its default action
    // back (the Rust runtime ignores it, which turns every print to a
    // closed pipe into a panic). Sockets are unaffected: Rust sends with
    // MSG_NOSIGNAL.
    let _ = signal_hook::flag::register_conditional_default(
        signal_hook::consts::SIGPIPE,
        std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
    );
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // Every command succeeds or fails as a whole, except the demo, whose
    // exit status says whether a scenario deviated.
    let ok = |()| exit::OK;
    let result = match cli.command {
        Command::Chip(c) => c.run().map(ok),
        Command::Emu(c) => c.run().map(ok),
        Command::Bus(c) => c.run().map(ok),
        Command::Pki(c) => c.run().map(ok),
        Command::Provision(c) => c.run().map(ok),
        Command::Inspect(c) => c.run().map(ok),
        Command::ImportManifest(c) => cmd_factory::import_manifest(&c).map(ok),
        Command::Broker(c) => c.run().map(ok),
        Command::Demo(c) => c.run(),
        Command::Bench(c) => c.run().map(ok),
        Command::Fleet(c) => cmd_fleet::run(&c).map(ok),
        Command::Web(c) => c.run().map(ok),
        Command::Publish(c) => c.run().map(ok),
        Command::Subscribe(c) => c.run().map(ok),
        Command::Firmware(f) => cmd_firmware::run(f).map(ok),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            output::error(&e);
            ExitCode::from(output::exit_code(&e))
        }
    }
}

fn init_logging(verbose: u8) {
    // A plain level filter unless COFFRE_LOG asks for more: the env-filter
    // syntax costs a regex engine (about 2 MiB of RSS) in every process.
    if std::env::var_os("COFFRE_LOG").is_some() {
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("COFFRE_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
            return;
        }
    }
    let level = match verbose {
        0 => tracing::Level::WARN,
        1 => tracing::Level::INFO,
        2 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .try_init();
}
