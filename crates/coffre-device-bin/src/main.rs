//! `coffre-device`: what runs on a Linux device, and nothing else.
//!
//! It boots the secure element (the five steps), reads the ENV II unit,
//! and publishes readings over MQTT with mutual TLS until it has published
//! `--count` of them or is stopped. No web server, no PKI, no provisioning;
//! the emulator is compiled in only with the `emu` feature (default) and
//! used only for `--bus emu:IMAGE`.
//!
//! `main` parses and dispatches; [`run`] does the work; every message to
//! the user goes through [`report`]. Exit codes: 0 done, 1 error, 3 the
//! chip (or a sensor) is not answering.

mod report;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use coffre_agent::boot::{boot, load_io_key, BootOptions, KeyMode};
use coffre_agent::{BrokerAddr, EnvSensors, Identity, MqttVersion, Publisher, PublisherOptions};
use coffre_device_bin::bus;

/// Publish sensor readings over MQTT with mutual TLS, the key held by an
/// ATECC608B.
#[derive(Debug, Parser)]
#[command(name = "coffre-device", version)]
#[allow(rustdoc::broken_intra_doc_links)] // clap's --help text, not rustdoc
struct Args {
    /// The chip's bus: linux:/dev/i2c-1[@0x35], or emu:IMAGE (emulated).
    #[arg(long)]
    bus: bus::BusSpec,
    /// Broker, host:port.
    #[arg(long, default_value = "127.0.0.1:8883")]
    broker: String,
    /// Device id (certificate CN, MQTT client id).
    #[arg(long, default_value = "m5go")]
    id: String,
    /// Key mode: lab (slot 8 read into RAM) or offload (the chip signs).
    #[arg(long, default_value = "offload", value_parser = ["lab", "offload"])]
    mode: String,
    /// Private-key slot in offload mode (0: Trust&GO factory key).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..16))]
    key_slot: u8,
    /// Directory with ca.crt.pem, devices/ID.crt.pem and, for a hardened chip
    /// in lab mode, devices/ID.iokey.
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    /// CA certificate (default: PKI/ca.crt.pem).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Device certificate (default: PKI/devices/ID.crt.pem).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// TLS 1.3 instead of 1.2.
    #[arg(long)]
    tls13: bool,
    /// MQTT 3.1.1 instead of 5.
    #[arg(long)]
    mqtt311: bool,
    /// Topic.
    #[arg(long, default_value = "m5go/env")]
    topic: String,
    /// Time between readings (e.g. 2s, 500ms, 1.5; 10ms to 1 day). The first
    /// reading is taken at once.
    #[arg(long, default_value = "2s", value_parser = coffre_agent::duration::interval)]
    interval: Duration,
    /// Stop after this many readings are acknowledged.
    #[arg(long)]
    count: Option<u64>,
    /// Durable queue directory.
    #[arg(long)]
    queue: Option<PathBuf>,
    /// Go on with an unlocked chip.
    #[arg(long)]
    allow_unlocked: bool,
    /// Say only what fails.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let out = report::Out::new(args.quiet);
    match run(&args, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => out.fail(&e),
    }
}

/// Boot, then publish until done or stopped.
fn run(a: &Args, out: &report::Out) -> Result<(), report::Failure> {
    let broker: BrokerAddr = a.broker.parse()?;
    let opened = bus::open(&a.bus)?;
    if let Some(note) = &opened.address_note {
        out.note(note);
    }
    let sensors = opened.second_handle()?;
    let (mode, io_key) = match a.mode.as_str() {
        // Lab mode on a hardened chip: slot 8 is read encrypted with the IO
        // protection key the device keeps (<pki>/devices/<id>.iokey).
        "lab" => (KeyMode::Lab, load_io_key(&a.pki, &a.id)?),
        _ => (KeyMode::Offload { slot: a.key_slot }, None),
    };
    out.boot_start(&a.mode, &a.bus);
    let (key, _) = boot(
        opened.chip,
        &BootOptions {
            mode,
            allow_unlocked: a.allow_unlocked,
            io_key,
        },
        &mut |step, msg| out.boot_step(step, msg),
    )?;
    let ca = a.ca.clone().unwrap_or_else(|| a.pki.join("ca.crt.pem"));
    let cert = a
        .cert
        .clone()
        .unwrap_or_else(|| a.pki.join("devices").join(format!("{}.crt.pem", a.id)));
    let identity = Identity {
        ca_pem: report::read(&ca, "the CA certificate (--pki or --ca)")?,
        cert_chain_pem: report::read(&cert, "the device certificate (--pki or --cert)")?,
        key,
    };
    let mut opts = PublisherOptions::new(broker, a.id.clone());
    opts.topic = a.topic.clone();
    opts.interval = a.interval;
    opts.count = a.count;
    opts.tls13 = a.tls13;
    opts.mqtt_version = if a.mqtt311 {
        MqttVersion::V311
    } else {
        MqttVersion::V5
    };
    opts.queue_dir = a.queue.clone();
    let sensors = EnvSensors::new(sensors.0, sensors.1);
    let mut publisher = Publisher::new(opts, identity, sensors)?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| report::Failure::other("cannot watch for SIGINT/SIGTERM", e))?;
    }
    let summary = publisher.run(&stop, |e| out.event(e))?;
    out.summary(&summary);
    Ok(())
}
