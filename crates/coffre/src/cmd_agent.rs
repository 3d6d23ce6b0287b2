//! `coffre publish` and `coffre subscribe`: the device side of the lab.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use coffre_agent::boot::{boot, BootOptions, KeyMode};
use coffre_agent::{
    BrokerAddr, EnvSensors, Event, Identity, MqttVersion, Publisher, PublisherOptions, SeqStatus,
    Subscriber, SubscriberOptions,
};
use serde_json::json;

use crate::bus::{self, AnyDelay, AnyI2c, BusSpec};
use crate::input;
use crate::output::NoChip;
use crate::output::{note, say};
use clap::Args;

/// Options of publish and subscribe.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
pub struct AgentCli {
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
    timing: coffre_emu::clock::Timing,
    /// JSON lines on stdout.
    #[arg(long)]
    json: bool,
}

impl AgentCli {
    fn args(self) -> AgentArgs {
        AgentArgs {
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

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
#[command(
    after_help = "Boot, as in the lab: (1) probe the chip's address — absent: stop before any \
network activity (exit 3); (2) start the chip library; (3) read the config zone; (4) check the locks — \
unlocked: refuse unless --allow-unlocked; (5) load the identity (lab: slot 8 into RAM; offload: the chip signs).\n\n\
Example:\n  coffre publish --bus emu:m5go.img --broker 127.0.0.1:8883 --id m5go-1 --mode offload --count 10"
)]
pub struct PublishArgs {
    #[command(flatten)]
    pub agent: AgentCli,
    /// Time between readings (e.g. 2s, 500ms; 10ms to 1 day).
    #[arg(long, default_value = "2s", value_parser = input::interval)]
    pub interval: std::time::Duration,
    /// Stop after N readings are acknowledged (default: run until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// Durable queue directory: readings taken while offline, or before a crash, are sent later.
    #[arg(long, value_name = "DIR")]
    pub queue: Option<PathBuf>,
}

impl PublishArgs {
    /// Run `coffre publish`.
    pub fn run(self) -> Result<()> {
        publish(&self.agent.args(), self.interval, self.count, self.queue)
    }
}

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
pub struct SubscribeArgs {
    #[command(flatten)]
    pub agent: AgentCli,
    /// Stop after N messages (default: run until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    /// Keep the session at the broker across disconnections (nothing lost while away).
    #[arg(long)]
    pub persistent: bool,
}

impl SubscribeArgs {
    /// Run `coffre subscribe`.
    pub fn run(self) -> Result<()> {
        subscribe(&self.agent.args(), self.count, self.persistent)
    }
}

/// Options shared by publish and subscribe.
pub struct AgentArgs {
    /// Chip bus.
    pub bus: BusSpec,
    /// Emulator timing.
    pub timing: coffre_emu::clock::Timing,
    /// Broker.
    pub broker: String,
    /// Device id.
    pub id: String,
    /// Key mode.
    pub mode: coffre_provision::Mode,
    /// Offload key slot.
    pub key_slot: u8,
    /// PKI directory (CA and device certificate come from it).
    pub pki: PathBuf,
    /// CA override.
    pub ca: Option<PathBuf>,
    /// Certificate override.
    pub cert: Option<PathBuf>,
    /// TLS 1.3.
    pub tls13: bool,
    /// MQTT version.
    pub mqtt: MqttVersion,
    /// Topic.
    pub topic: String,
    /// Go on with an unlocked chip.
    pub allow_unlocked: bool,
    /// Skip the certificate/key check.
    pub no_preflight: bool,
    /// JSON lines on stdout.
    pub json: bool,
    /// Factory mode: trusted root file (default by bus kind).
    pub factory_root: Option<PathBuf>,
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

fn agent_err(e: coffre_agent::Error) -> anyhow::Error {
    if e.is_chip_gone() {
        anyhow::Error::new(NoChip(e.to_string()))
    } else {
        anyhow::Error::new(e)
    }
}

/// The five-step boot and the identity; the sensors' handle on the same bus.
fn start(a: &AgentArgs) -> Result<(Identity, (AnyI2c, AnyDelay))> {
    let opened = bus::open(&a.bus, a.timing)?;
    let sensors = bus::second_handle(&opened)?;
    let factory = if a.mode == coffre_provision::Mode::Factory {
        Some((bus::second_handle(&opened)?, opened.chip.address()))
    } else {
        None
    };
    let mode = match a.mode {
        coffre_provision::Mode::Lab => KeyMode::Lab,
        coffre_provision::Mode::Offload => KeyMode::Offload { slot: a.key_slot },
        // The factory key is slot 0's; the chip signs.
        coffre_provision::Mode::Factory => KeyMode::Offload { slot: 0 },
    };
    note!("boot ({} mode, {}):", a.mode.name(), a.bus);
    let mut log = |step: u8, msg: &str| note!("  [{step}/5] {msg}");
    // Lab mode on a hardened chip: the IO protection key from the device's
    // flash (modelled as <pki>/devices/<id>.iokey), for encrypted Reads.
    let io_key = match a.mode {
        coffre_provision::Mode::Lab => {
            coffre_agent::boot::load_io_key(&a.pki, &a.id).map_err(agent_err)?
        }
        coffre_provision::Mode::Offload | coffre_provision::Mode::Factory => None,
    };
    let (key, _report) = boot(
        opened.chip,
        &BootOptions {
            mode,
            allow_unlocked: a.allow_unlocked,
            io_key,
        },
        &mut log,
    )
    .map_err(agent_err)?;
    let ca = a.ca.clone().unwrap_or_else(|| a.pki.join("ca.crt.pem"));
    let ca_pem = crate::input::read_file(&ca).with_context(|| {
        format!(
            "cannot read the CA certificate {} (--pki or --ca)",
            ca.display()
        )
    })?;
    if let Some(((i2c, delay), address)) = factory {
        let chain_pem = factory_chain(a, i2c, delay, address)?;
        return Ok((
            Identity {
                ca_pem,
                cert_chain_pem: chain_pem.into_bytes(),
                key,
            },
            sensors,
        ));
    }
    let cert = a
        .cert
        .clone()
        .unwrap_or_else(|| a.pki.join("devices").join(format!("{}.crt.pem", a.id)));
    let cert_pem = crate::input::read_file(&cert).with_context(|| {
        format!(
            "cannot read the device certificate {}: provision the device first ('coffre provision --id {}') or give --cert",
            cert.display(),
            a.id
        )
    })?;
    Ok((
        Identity {
            ca_pem,
            cert_chain_pem: cert_pem,
            key,
        },
        sensors,
    ))
}

/// Factory mode: the chain the chip carries (device + signer), rebuilt and
/// checked — to the trusted root, and against slot 0's key — before any
/// network activity.
fn factory_chain(a: &AgentArgs, i2c: AnyI2c, delay: AnyDelay, address: u8) -> Result<String> {
    let root = crate::cmd_factory::TrustedRoot::for_bus(&a.bus, a.factory_root.as_deref())?;
    let mut chip = coffre_driver::Atecc::new(i2c, delay, address);
    let chain = coffre_provision::factory::read_chain(&mut chip)
        .context("reading the chip's factory certificates; nothing was sent to the broker")?;
    let v = coffre_pki::factory::verify_chain(
        &chain.device,
        &chain.signer,
        &root.der,
        &chain.slot0_public_key,
        time::OffsetDateTime::now_utc(),
    )
    .context("the chip's factory identity is refused; nothing was sent to the broker")?;
    if v.device_cn != a.id {
        anyhow::bail!(
            "--id {} is not this chip's factory identity '{}': the broker knows a factory device by its certificate's CN; pass --id {}",
            a.id,
            v.device_cn,
            v.device_cn
        );
    }
    note!(
        "  factory chain: '{}' → '{}' → '{}' ({}); slot 0 signs",
        v.device_cn,
        v.signer_cn,
        v.root_cn,
        root.name
    );
    Ok(format!(
        "{}{}",
        coffre_pki::util::to_pem("CERTIFICATE", &chain.device),
        coffre_pki::util::to_pem("CERTIFICATE", &chain.signer)
    ))
}

fn broker(a: &AgentArgs) -> Result<BrokerAddr> {
    a.broker
        .parse::<BrokerAddr>()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn describe(ev: &Event) -> Option<String> {
    Some(match ev {
        Event::Connecting { broker, attempt } => {
            format!("connecting to {broker} (attempt {attempt})")
        }
        Event::Connected {
            broker,
            tls_version,
            mqtt,
            elapsed,
            ..
        } => format!(
            "connected to {broker}: mutual {tls_version}, {mqtt}, CONNACK after {:.1} ms",
            elapsed.as_secs_f64() * 1000.0
        ),
        Event::Subscribed { topic, reason } => format!("SUBACK for {topic}: {reason}"),
        Event::Queued { seq, pending } => format!("reading {seq} taken ({pending} waiting)"),
        Event::Published {
            seq,
            puback_reason,
            rtt,
        } => format!(
            "reading {seq} acknowledged: PUBACK {puback_reason} in {:.1} ms",
            rtt.as_secs_f64() * 1000.0
        ),
        Event::Disconnected { error: None } => {
            "disconnected cleanly (DISCONNECT + close_notify)".into()
        }
        Event::Disconnected { error: Some(e) } => format!("disconnected: {e}"),
        Event::Reconnecting { delay, attempt } => format!(
            "reconnecting in {:.1} s (attempt {attempt})",
            delay.as_secs_f64()
        ),
        Event::SensorSkipped { error } => format!("sensor reading skipped: {error}"),
        _ => return None,
    })
}

/// `coffre publish`.
pub fn publish(
    a: &AgentArgs,
    interval: Duration,
    count: Option<u64>,
    queue: Option<PathBuf>,
) -> Result<()> {
    let (identity, (i2c, delay)) = start(a)?;
    let mut opts = PublisherOptions::new(broker(a)?, a.id.clone());
    opts.topic = a.topic.clone();
    opts.interval = interval;
    opts.count = count;
    opts.mqtt_version = a.mqtt;
    opts.tls13 = a.tls13;
    opts.preflight = !a.no_preflight;
    opts.queue_dir = queue;
    let sensors = EnvSensors::new(i2c, delay);
    let mut p = Publisher::new(opts, identity, sensors).map_err(agent_err)?;
    let stop = stop_flag()?;
    let json_out = a.json;
    let summary = p
        .run(&stop, |ev| {
            if json_out {
                if let Event::Published { seq, puback_reason, rtt } = ev {
                    say!("{}", json!({"event": "published", "seq": seq, "puback": puback_reason.0, "rtt_ms": rtt.as_secs_f64() * 1000.0}));
                    return;
                }
            }
            if let Some(t) = describe(ev) {
                note!("{t}");
            }
        })
        .map_err(agent_err)?;
    if json_out {
        say!(
            "{}",
            json!({"event": "summary", "taken": summary.taken, "published": summary.published, "pending": summary.pending, "connections": summary.connections})
        );
    } else {
        note!(
            "{} readings taken, {} acknowledged, {} waiting in the queue",
            summary.taken,
            summary.published,
            summary.pending
        );
    }
    Ok(())
}

/// `coffre subscribe`.
pub fn subscribe(a: &AgentArgs, count: Option<u64>, persistent: bool) -> Result<()> {
    let (identity, _) = start(a)?;
    let mut opts = SubscriberOptions::new(broker(a)?, a.id.clone());
    opts.topic = a.topic.clone();
    opts.mqtt_version = a.mqtt;
    opts.tls13 = a.tls13;
    opts.preflight = !a.no_preflight;
    opts.max_messages = count;
    opts.persistent_session = persistent;
    let mut s = Subscriber::new(opts, identity).map_err(agent_err)?;
    let stop = stop_flag()?;
    let json_out = a.json;
    if !json_out {
        say!(
            "{:<16} {:>6} {:>8} {:>8} {:>9} {:>9}  status",
            "device",
            "seq",
            "temp °C",
            "RH %",
            "hPa",
            "latency"
        );
    }
    let stats = s
        .run(&stop, |ev| match ev {
            Event::Received(d) => {
                let lat = d.latency.map(|l| l.as_secs_f64() * 1000.0);
                let status = match d.status {
                    Some(SeqStatus::First) => "first".to_string(),
                    Some(SeqStatus::InOrder) => "in order".into(),
                    Some(SeqStatus::Gap { missing }) => format!("GAP: {missing} missing"),
                    Some(SeqStatus::Late) => "late".into(),
                    Some(SeqStatus::Duplicate) => "DUPLICATE".into(),
                    None => "not a reading".into(),
                };
                match (&d.reading, json_out) {
                    (Some(r), true) => say!("{}", json!({"reading": r, "latency_ms": lat, "status": status})),
                    (Some(r), false) => say!(
                        "{:<16} {:>6} {:>8.2} {:>8.2} {:>9.2} {:>7.1}ms  {status}",
                        r.device, r.seq, r.temperature_c, r.humidity_pct, r.pressure_hpa, lat.unwrap_or(0.0)
                    ),
                    (None, true) => say!("{}", json!({"topic": d.topic, "payload": String::from_utf8_lossy(&d.payload), "status": status})),
                    (None, false) => say!("{:<16} (not a reading on {})", "?", d.topic),
                }
            }
            other => {
                if let Some(t) = describe(other) {
                    note!("{t}");
                }
            }
        })
        .map_err(agent_err)?;
    note!("{} messages received", stats.messages);
    for (dev, p) in &stats.publishers {
        note!(
            "  {dev}: {} readings ({}..{}), {} missing, {} duplicates, {} late, latency mean {:.1} ms max {:.1} ms",
            p.unique,
            p.first_seq,
            p.last_seq,
            p.missing,
            p.duplicates,
            p.late,
            p.latency.mean().as_secs_f64() * 1000.0,
            p.latency.max.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// A subscriber thread that pushes every reading and connection event into
/// the web explorer's live hub, until `stop`.
pub fn feed_hub(
    a: &AgentArgs,
    hub: coffre_web::LiveHub,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let (identity, _) = start(a)?;
    let opts = SubscriberOptions::new(broker(a)?, a.id.clone());
    let mut s = Subscriber::new(opts, identity).map_err(agent_err)?;
    Ok(std::thread::spawn(move || {
        let _ = s.run(&stop, |ev| match ev {
            Event::Received(d) => {
                if let Some(r) = &d.reading {
                    hub.push_reading(r.clone());
                }
            }
            other => {
                if let Some(t) = describe(other) {
                    hub.push_event(coffre_web::Event::now("connection", t));
                }
            }
        });
    }))
}
