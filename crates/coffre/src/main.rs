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
mod cmd_fleet;
mod cmd_oneshot;
mod cmd_pki;
mod cmd_provision;
mod input;
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
    Chip(ChipCommand),
    /// Create and serve emulated chips (image files).
    #[command(subcommand)]
    Emu(EmuCommand),
    /// Look at the I2C bus itself.
    #[command(subcommand)]
    Bus(BusCommand),
    /// The certificate authority: CA, broker and device certificates, revocation.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// Give a chip (or an emulated fleet) an identity and a certificate.
    Provision(Box<ProvisionCmd>),
    /// Audit a chip: the slot map in plain words and security findings.
    Inspect {
        #[command(flatten)]
        bus: BusOpts,
        /// The device certificate to check against the chip's key.
        #[arg(long, value_name = "PEM")]
        cert: Option<PathBuf>,
        /// Offload mode: the slot whose key the certificate should carry.
        #[arg(long, value_name = "SLOT", value_parser = clap::value_parser!(u8).range(0..16))]
        key_slot: Option<u8>,
    },
    /// Verify a Trust&GO manifest (Microchip's JSON list of signed entries) and register
    /// every part whose entry verifies: signature by a trusted manifest signer, x5c chain
    /// to the factory root, key = certificate. Nothing touches a chip.
    #[command(
        after_help = "Each refused entry is named with its reason; the others are \
registered (device chain in PKI/devices/<CN>.crt.pem, a line in --registry). Exit status 4 if any entry \
is refused.\n\nExample:\n  coffre emu new --count 100 --out chips --manifest m.json\n  \
coffre import-manifest m.json --signer m.json.signer.pem --root emu --pki pki"
    )]
    ImportManifest {
        /// The manifest (JSON).
        manifest: PathBuf,
        /// The manifest signer's certificate (PEM or DER).
        #[arg(long, value_name = "CERT")]
        signer: PathBuf,
        /// The factory root: 'emu', 'microchip' or a certificate file.
        #[arg(long, default_value = "microchip", value_name = "ROOT")]
        root: String,
        /// PKI directory where device chains are registered.
        #[arg(long, default_value = "pki")]
        pki: PathBuf,
        /// Fleet registry (JSON lines) to append the registered devices to.
        #[arg(long, value_name = "FILE")]
        registry: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mosquitto: write its configuration from the PKI, run it.
    #[command(subcommand)]
    Broker(BrokerCommand),
    /// The whole lab on emulated hardware against a real mosquitto: every scenario with evidence.
    #[command(
        after_help = "Creates a PKI, emulated chips (publisher in lab and offload mode, subscriber, \
wrong chips, a blank chip), provisions them, starts mosquitto on a free loopback port, runs every scenario \
and prints the table and the lab's STRIDE table. Exit status 1 if any scenario deviates.\n\n\
  coffre demo                      run and clean up\n  coffre demo --keep --web 127.0.0.1:8080   then keep broker, publisher and subscriber running, with the explorer"
    )]
    Demo {
        /// Work directory (kept). Default: a temporary one, removed afterwards.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Keep broker, publisher and subscriber running with live output until Ctrl-C.
        #[arg(long)]
        keep: bool,
        /// With --keep: serve the web explorer there.
        #[arg(long, value_name = "ADDR", requires = "keep")]
        web: Option<std::net::SocketAddr>,
        /// Print the evidence in full.
        #[arg(long)]
        wide: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Run only these scenarios (comma-separated ids, as in the STRIDE table).
        #[arg(long, value_name = "ID[,ID]", value_delimiter = ',',
              value_parser = clap::builder::PossibleValuesParser::new(coffre_demo::ids()))]
        only: Vec<String>,
    },
    /// One device process (boot, connect, one QoS 1 publish, clean disconnect) against
    /// mosquitto_pub with the same certificate and broker: wall, CPU and max RSS.
    Bench {
        /// Runs per configuration.
        #[arg(long, default_value = "30", value_parser = clap::value_parser!(u16).range(1..=10_000))]
        runs: u16,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fleet simulator: N emulated chips, each with its own identity, connecting over mutual TLS
    /// to a real mosquitto and publishing QoS 1 readings; one subscriber checks every message.
    #[command(after_help = "Examples:\n  \
coffre fleet --devices 200 --rate 100 --duration 20s --interval 10s\n  \
coffre fleet --devices 10000 --rate 300 --duration 30s --interval 10s --json\n  \
coffre fleet --engine rabbitmq --nodes 3 --devices 3000 --duration 60s --kill-node 1 --kill-at 20s --restart-after 15s\n\n\
Large fleets: the simulator raises its open-file limit (RLIMIT_NOFILE) to devices + 1024 before \
starting mosquitto, which inherits it, and writes 'max_connections -1'. Above the hard limit, raise \
it first as root ('ulimit -Hn 30000'). Past 10,000 devices, connections come from 127.0.0.2, \
127.0.0.3, … (one per 10,000); one thread per device needs kernel.pid_max and vm.max_map_count \
high enough (checked, with the sysctl to run). Exit status 1 if a device fails or a message is lost \
or duplicated (after a killed node, duplicates are counted but allowed: QoS 1 is at least once).")]
    Fleet {
        /// Number of devices.
        #[arg(long, default_value = "200", value_parser = clap::value_parser!(u32).range(1..=100_000))]
        devices: u32,
        /// Ramp: new connections per second.
        #[arg(long, default_value = "100", value_parser = input::rate)]
        rate: f64,
        /// Publishing phase after the ramp (e.g. 20s, 500ms, 2m).
        #[arg(long, default_value = "20s", value_parser = input::run_length)]
        duration: std::time::Duration,
        /// One reading per device every INTERVAL, random phase.
        #[arg(long, default_value = "10s", value_parser = input::interval)]
        interval: std::time::Duration,
        /// 'offload' (the chip signs) or 'lab' (key in slot 8).
        #[arg(long, default_value = "offload")]
        mode: coffre_fleet::FleetMode,
        /// Working directory (PKI, broker files, fleet manifest); default: a temporary one.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cluster: cmd_fleet::ClusterArgs,
    },
    /// The slot-map explorer in a browser: chips drawn to scale, policies in words, the bus, live readings.
    #[command(after_help = "Examples:\n  \
coffre web --bus emu:m5go.img --bus emu:m5stack.img\n  \
coffre web --chip 'publisher=m5go.img,cert=pki/devices/m5go-1.crt.pem' --scenarios lab/scenarios.json\n  \
coffre web --bus emu:m5go.img --broker 127.0.0.1:8883 --subscriber-bus emu:m5stack.img --id m5stack --pki pki")]
    Web {
        /// An emulated chip to show (repeat for several side by side); named after the file.
        #[arg(long = "bus", value_name = "emu:IMAGE")]
        buses: Vec<BusSpec>,
        /// A chip with a name and options: NAME=IMAGE[,cert=PEM][,slot=N].
        #[arg(long = "chip", value_name = "SPEC")]
        chips: Vec<String>,
        /// Show live readings from this broker (needs --subscriber-bus, --id and --pki).
        #[arg(long, value_name = "HOST:PORT", requires_all = ["subscriber_bus", "id"])]
        broker: Option<String>,
        /// The subscriber's chip, for --broker.
        #[arg(long, value_name = "BUS")]
        subscriber_bus: Option<BusSpec>,
        /// The subscriber's device id, for --broker.
        #[arg(long)]
        id: Option<String>,
        /// PKI directory, for --broker.
        #[arg(long, default_value = "pki")]
        pki: PathBuf,
        /// The scenario table written by 'coffre demo' (DIR/scenarios.json).
        #[arg(long, value_name = "FILE")]
        scenarios: Option<PathBuf>,
        /// Where to listen (loopback by default).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Another host name the browser may use to reach the explorer (repeat for several);
        /// any other Host header is refused (DNS rebinding).
        #[arg(long = "allow-host", value_name = "NAME")]
        allow_hosts: Vec<String>,
    },
    /// The device ("M5Go"): boot the chip, read the sensors, publish readings over mutual TLS.
    #[command(
        after_help = "Boot, as in the lab: (1) probe the chip's address — absent: stop before any \
network activity (exit 3); (2) start the chip library; (3) read the config zone; (4) check the locks — \
unlocked: refuse unless --allow-unlocked; (5) load the identity (lab: slot 8 into RAM; offload: the chip signs).\n\n\
Example:\n  coffre publish --bus emu:m5go.img --broker 127.0.0.1:8883 --id m5go-1 --mode offload --count 10"
    )]
    Publish {
        #[command(flatten)]
        agent: AgentCli,
        /// Time between readings (e.g. 2s, 500ms; 10ms to 1 day).
        #[arg(long, default_value = "2s", value_parser = input::interval)]
        interval: std::time::Duration,
        /// Stop after N readings are acknowledged (default: run until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// Durable queue directory: readings taken while offline, or before a crash, are sent later.
        #[arg(long, value_name = "DIR")]
        queue: Option<PathBuf>,
    },
    /// The monitor ("M5Stack"): subscribe and print readings with gaps, duplicates and latency.
    Subscribe {
        #[command(flatten)]
        agent: AgentCli,
        /// Stop after N messages (default: run until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// Keep the session at the broker across disconnections (nothing lost while away).
        #[arg(long)]
        persistent: bool,
    },
}

/// Options of publish and subscribe.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
struct AgentCli {
    /// Where the chip is (emu:IMAGE or linux:/dev/i2c-N[@ADDR]).
    #[arg(long, env = "COFFRE_BUS", value_name = "BUS")]
    bus: BusSpec,
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:8883", value_name = "HOST:PORT")]
    broker: String,
    /// Device id: certificate CN, MQTT client id and username.
    #[arg(long)]
    id: String,
    /// Key mode: lab (slot 8 read into RAM), offload (the chip signs) or factory (slot 0
    /// signs; the certificate chain is the chip's own, rebuilt from slots 10–12).
    #[arg(long, default_value = "offload")]
    mode: coffre_provision::Mode,
    /// Factory mode: the root the chip's chain must lead to before connecting (default:
    /// the emulator's factory root for emu: buses, Microchip's Root CA 002 for linux:).
    #[arg(long, value_name = "FILE")]
    factory_root: Option<PathBuf>,
    /// Offload: the private-key slot (0: Trust&GO factory key).
    #[arg(long, default_value = "0", value_parser = clap::value_parser!(u8).range(0..16))]
    key_slot: u8,
    /// PKI directory: the CA and devices/<id>.crt.pem are taken from it.
    #[arg(long, default_value = "pki")]
    pki: PathBuf,
    /// CA certificate (instead of <pki>/ca.crt.pem).
    #[arg(long, value_name = "PEM")]
    ca: Option<PathBuf>,
    /// Device certificate (instead of <pki>/devices/<id>.crt.pem).
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// TLS 1.3 instead of TLS 1.2 (the lab's).
    #[arg(long)]
    tls13: bool,
    /// MQTT version: 5 (default; refusals come back as reason codes) or 3.1.1.
    #[arg(long, default_value = "5")]
    mqtt: coffre_agent::MqttVersion,
    /// Topic.
    #[arg(long, default_value = "m5go/env")]
    topic: String,
    /// Go on with an unlocked chip (warned).
    #[arg(long)]
    allow_unlocked: bool,
    /// Skip the check that the certificate matches the chip's key (to see the broker refuse it).
    #[arg(long)]
    no_preflight: bool,
    /// Emulated chips only: 'instant' or 'datasheet'.
    #[arg(long, default_value = "instant")]
    timing: Timing,
    /// JSON lines on stdout.
    #[arg(long)]
    json: bool,
}

impl AgentCli {
    fn args(self) -> cmd_agent::AgentArgs {
        cmd_agent::AgentArgs {
            bus: self.bus,
            timing: self.timing,
            broker: self.broker,
            id: self.id,
            mode: self.mode,
            key_slot: self.key_slot,
            pki: self.pki,
            ca: self.ca,
            cert: self.cert,
            tls13: self.tls13,
            mqtt: self.mqtt,
            topic: self.topic,
            allow_unlocked: self.allow_unlocked,
            no_preflight: self.no_preflight,
            json: self.json,
            factory_root: self.factory_root,
        }
    }
}

#[derive(Subcommand, Debug)]
enum PkiCommand {
    /// Create a CA and a broker certificate in a directory.
    Init {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// CN of the CA.
        #[arg(long, default_value = "coffre CA")]
        ca_name: String,
        /// Extra broker names (DNS or IP) besides localhost, 127.0.0.1 and ::1.
        #[arg(long = "broker-name", value_name = "NAME")]
        broker_names: Vec<String>,
        /// Validity of the CA and broker certificates, days.
        #[arg(long, default_value = "3650", value_parser = input::days)]
        days: u32,
        /// Replace an existing PKI (every certificate issued from it stops being trusted).
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a device certificate (CN = device id = MQTT username).
    Issue {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Device id (not with --csr: the CSR's CN is used).
        #[arg(long)]
        id: Option<String>,
        /// A PKCS#10 request (PEM or DER), e.g. one signed by the chip.
        #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
        csr: Option<PathBuf>,
        /// A P-256 public (or private) key in PEM.
        #[arg(long, value_name = "PEM", required_unless_present = "csr")]
        public_key: Option<PathBuf>,
        /// Validity, days.
        #[arg(long, default_value = "365", value_parser = input::days)]
        days: u32,
        /// Explicit notBefore (RFC 3339).
        #[arg(long, value_name = "TIME")]
        not_before: Option<String>,
        /// Explicit notAfter (RFC 3339), e.g. to make an already expired certificate for tests.
        #[arg(long, value_name = "TIME")]
        not_after: Option<String>,
        /// Replace an existing certificate for this id.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device (by id or serial) and rewrite the CRL.
    Revoke {
        /// Device id or certificate serial.
        target: String,
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a fresh CRL (the CRL expires after 30 days; the broker then refuses everyone).
    Crl {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
    },
    /// List the CA, the broker and every device certificate with its status.
    Show {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

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
struct ProvisionCmd {
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

#[derive(Subcommand, Debug)]
enum BrokerCommand {
    /// Write the broker configuration from the PKI: mosquitto.conf and the ACL, or (--engine rabbitmq) a RabbitMQ cluster.
    Config {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        pki: PathBuf,
        /// Output directory (conf, ACL, log, persistence).
        #[arg(long, default_value = "broker")]
        out: PathBuf,
        /// TLS listener.
        #[arg(long, default_value = "127.0.0.1:8883")]
        listen: std::net::SocketAddr,
        /// A device that may publish on m5go/env.
        #[arg(long = "publisher", value_name = "ID")]
        publishers: Vec<String>,
        /// A device that may subscribe to m5go/env.
        #[arg(long = "subscriber", value_name = "ID")]
        subscribers: Vec<String>,
        /// Also accept devices with a factory identity (Trust&GO), on their own listener:
        /// 'emu' (the emulator's factory root), 'microchip' (Microchip's Crypto
        /// Authentication Root CA 002) or a certificate file. Their id is their
        /// certificate's CN (sn + serial number): name it with --publisher/--subscriber.
        #[arg(long, value_name = "ROOT")]
        factory_root: Option<String>,
        /// The factory identities' listener (no CRL: Trust&GO signers publish none).
        #[arg(long, default_value = "127.0.0.1:8884", requires = "factory_root")]
        factory_listen: std::net::SocketAddr,
        /// Every device of this fleet registry (JSON lines, e.g. written by
        /// 'coffre import-manifest --registry') may publish.
        #[arg(long, value_name = "FILE")]
        publishers_from: Option<PathBuf>,
        #[command(flatten)]
        engine: cmd_broker::EngineArgs,
    },
    /// Run mosquitto (or the RabbitMQ cluster) with that configuration and stream its log (Ctrl-C stops it).
    Run {
        /// Directory written by 'coffre broker config'.
        #[arg(long, default_value = "broker")]
        config: PathBuf,
    },
}

/// Options shared by every command that talks to a chip.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
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
enum EmuCommand {
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

#[derive(Subcommand, Debug)]
enum BusCommand {
    /// List the addresses that answer (wakes the secure element first, as it
    /// ignores the bus while asleep).
    Scan(BusOpts),
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
    let result = match cli.command {
        Command::Chip(c) => match c {
            ChipCommand::Info(b) => cmd_chip::info(&b),
            ChipCommand::Config { bus, raw } => cmd_chip::config(&bus, raw),
            ChipCommand::Locks(b) => cmd_chip::locks(&b),
            ChipCommand::Certs { bus, root, out } => {
                cmd_factory::certs(&bus, root.as_deref(), out.as_deref())
            }
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
                count: Some(n),
                manifest,
            } => cmd_factory::new_batch(preset, &out, n, manifest.as_deref(), force, json),
            EmuCommand::New {
                preset,
                out,
                force,
                json,
                ..
            } => cmd_emu::new(preset, &out, force, json),
            EmuCommand::Serve {
                image,
                listen,
                timing,
                max_clients,
                idle_timeout,
            } => cmd_emu::serve(
                &image,
                &listen,
                timing,
                coffre_emu::kit::ServeOptions {
                    max_clients: max_clients.into(),
                    idle_timeout,
                },
            ),
            EmuCommand::Bench { reads, json } => cmd_bench::run(reads, json),
            EmuCommand::FactoryRoot { out } => cmd_factory::factory_root(out.as_deref()),
        },
        Command::Bus(BusCommand::Scan(b)) => cmd_chip::scan(&b),
        Command::Pki(p) => match p {
            PkiCommand::Init {
                dir,
                ca_name,
                broker_names,
                days,
                force,
                json,
            } => cmd_pki::init(&dir, &ca_name, &broker_names, days, force, json),
            PkiCommand::Issue {
                dir,
                id,
                csr,
                public_key,
                days,
                not_before,
                not_after,
                force,
                json,
            } => {
                let input = match (&csr, &public_key) {
                    (Some(c), _) => cmd_pki::KeyInput::Csr(c),
                    (None, Some(k)) => cmd_pki::KeyInput::KeyPem(k),
                    (None, None) => unreachable!("clap requires one of --csr and --public-key"),
                };
                cmd_pki::issue(
                    &dir,
                    id.as_deref(),
                    input,
                    days,
                    (not_before.as_deref(), not_after.as_deref()),
                    force,
                    json,
                )
            }
            PkiCommand::Revoke { target, dir, json } => cmd_pki::revoke(&dir, &target, json),
            PkiCommand::Show { dir, json } => cmd_pki::show(&dir, json),
            PkiCommand::Crl { dir } => cmd_pki::crl(&dir),
        },
        Command::Provision(p) => provision(*p),
        Command::Inspect {
            bus,
            cert,
            key_slot,
        } => cmd_provision::inspect_cmd(&bus, cert.as_deref(), key_slot),
        Command::ImportManifest {
            manifest,
            signer,
            root,
            pki,
            registry,
            json,
        } => {
            cmd_factory::import_manifest(&manifest, &signer, &root, &pki, registry.as_deref(), json)
        }
        Command::Broker(b) => match b {
            BrokerCommand::Config {
                pki,
                out,
                listen,
                publishers,
                subscribers,
                factory_root,
                factory_listen,
                publishers_from,
                engine,
            } => (|| {
                let mut publishers = publishers;
                if let Some(reg) = publishers_from {
                    let entries = coffre_provision::manifest::Manifest::at(&reg)
                        .entries()
                        .map_err(|e| {
                            anyhow::anyhow!("reading the fleet registry {}: {e}", reg.display())
                        })?;
                    publishers.extend(entries.into_iter().map(|e| e.id));
                }
                cmd_broker::config(
                    &pki,
                    &out,
                    listen,
                    &publishers,
                    &subscribers,
                    factory_root.as_deref().map(|r| (r, factory_listen)),
                    &engine,
                )
            })(),
            BrokerCommand::Run { config } => cmd_broker::run(&config),
        },
        Command::Demo {
            dir,
            keep,
            web,
            wide,
            json,
            only,
        } => match cmd_demo::demo(dir.as_deref(), keep, json, wide, web, &only) {
            Ok(0) => Ok(()),
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Bench { runs, json } => cmd_oneshot::bench(runs.into(), json),
        Command::Fleet {
            devices,
            rate,
            duration,
            interval,
            mode,
            dir,
            json,
            cluster,
        } => cmd_fleet::run(&cmd_fleet::FleetArgs {
            devices: devices as usize,
            rate,
            duration,
            interval,
            mode,
            dir,
            json,
            cluster,
        }),
        Command::Web {
            buses,
            mut chips,
            broker,
            subscriber_bus,
            id,
            pki,
            scenarios,
            listen,
            allow_hosts,
        } => (|| {
            for b in &buses {
                match b {
                    BusSpec::Emu { image, .. } => {
                        let name = image
                            .file_stem()
                            .map(|s| s.to_string_lossy().into_owned())
                            .unwrap_or_else(|| image.display().to_string());
                        chips.push(format!("{name}={}", image.display()));
                    }
                    BusSpec::Linux { .. } => anyhow::bail!(
                        "the explorer shows emulated chips only for now ({b}); a real chip can be read with 'coffre inspect --bus {b}'"
                    ),
                }
            }
            let live = match (broker, subscriber_bus, id) {
                (Some(broker), Some(bus), Some(id)) => Some(cmd_agent::AgentArgs {
                    bus,
                    timing: Timing::Instant,
                    broker,
                    id,
                    mode: coffre_provision::Mode::Offload,
                    key_slot: 0,
                    pki,
                    ca: None,
                    cert: None,
                    tls13: false,
                    mqtt: coffre_agent::MqttVersion::V5,
                    topic: "m5go/env".into(),
                    allow_unlocked: false,
                    no_preflight: false,
                    json: false,
                    factory_root: None,
                }),
                _ => None,
            };
            cmd_demo::web(&chips, scenarios, (listen, allow_hosts), live)
        })(),
        Command::Publish {
            agent,
            interval,
            count,
            queue,
        } => cmd_agent::publish(&agent.args(), interval, count, queue),
        Command::Subscribe {
            agent,
            count,
            persistent,
        } => cmd_agent::subscribe(&agent.args(), count, persistent),
    };
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(output::exit_code(&e))
        }
    }
}

fn provision(p: ProvisionCmd) -> anyhow::Result<()> {
    let args = cmd_provision::ProvisionArgs {
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
        let f = cmd_provision::FleetArgs {
            count,
            prefix: p.prefix.clone(),
            dir: p.dir.clone(),
        };
        return cmd_provision::fleet(&f, &args, p.json);
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
    cmd_provision::one(&bus_opts, &args)
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
