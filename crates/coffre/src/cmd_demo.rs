//! `coffre demo` and `coffre web`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::bus::BusSpec;
use crate::output::{note, say, say_text};
use anyhow::{bail, Context, Result};
use clap::Args;
use coffre_agent::boot::{boot, BootOptions, KeyMode};
use coffre_agent::{
    EnvSensors, Event, Identity, Publisher, PublisherOptions, Subscriber, SubscriberOptions,
};
use coffre_demo::{stride, stride_table, table, Lab, LabOptions, Selection};
use coffre_web::{ChipSource, LiveHub, WebConfig};
use serde_json::json;

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
#[command(
    after_help = "Creates a PKI, emulated chips (publisher in lab and offload mode, subscriber, \
wrong chips, a blank chip), provisions them, starts mosquitto on a free loopback port, runs every scenario \
and prints the table and the lab's STRIDE table. Exit status 1 if any scenario deviates.\n\n\
  coffre demo                      run and clean up\n  coffre demo --keep --web 127.0.0.1:8080   then keep broker, publisher and subscriber running, with the explorer"
)]
pub struct DemoArgs {
    /// Work directory (kept). Default: a temporary one, removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Keep broker, publisher and subscriber running with live output until Ctrl-C.
    #[arg(long)]
    pub keep: bool,
    /// With --keep: serve the web explorer there.
    #[arg(long, value_name = "ADDR", requires = "keep")]
    pub web: Option<std::net::SocketAddr>,
    /// Print the evidence in full.
    #[arg(long)]
    pub wide: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Run only these scenarios (comma-separated ids, as in the STRIDE table).
    #[arg(long, value_name = "ID[,ID]", value_delimiter = ',',
          value_parser = clap::builder::PossibleValuesParser::new(coffre_demo::ids()))]
    pub only: Vec<String>,
}

impl DemoArgs {
    /// Run `coffre demo`; the exit code (1 if a scenario deviates).
    pub fn run(self) -> Result<u8> {
        demo(
            self.dir.as_deref(),
            self.keep,
            self.json,
            self.wide,
            self.web,
            &self.only,
        )
    }
}

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
coffre web --bus emu:m5go.img --bus emu:m5stack.img\n  \
coffre web --chip 'publisher=m5go.img,cert=pki/devices/m5go-1.crt.pem' --scenarios lab/scenarios.json\n  \
coffre web --bus emu:m5go.img --broker 127.0.0.1:8883 --subscriber-bus emu:m5stack.img --id m5stack --pki pki")]
pub struct WebArgs {
    /// An emulated chip to show (repeat for several side by side); named after the file.
    #[arg(long = "bus", value_name = "emu:IMAGE")]
    pub buses: Vec<BusSpec>,
    /// A chip with a name and options: NAME=IMAGE[,cert=PEM][,slot=N].
    #[arg(long = "chip", value_name = "SPEC")]
    pub chips: Vec<String>,
    /// Show live readings from this broker (needs --subscriber-bus, --id and --pki).
    #[arg(long, value_name = "HOST:PORT", requires_all = ["subscriber_bus", "id"])]
    pub broker: Option<String>,
    /// The subscriber's chip, for --broker.
    #[arg(long, value_name = "BUS")]
    pub subscriber_bus: Option<BusSpec>,
    /// The subscriber's device id, for --broker.
    #[arg(long)]
    pub id: Option<String>,
    /// PKI directory, for --broker.
    #[arg(long, default_value = "pki")]
    pub pki: PathBuf,
    /// The scenario table written by 'coffre demo' (DIR/scenarios.json).
    #[arg(long, value_name = "FILE")]
    pub scenarios: Option<PathBuf>,
    /// Where to listen (loopback by default).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Another host name the browser may use to reach the explorer (repeat for several);
    /// any other Host header is refused (DNS rebinding).
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_hosts: Vec<String>,
}

impl WebArgs {
    /// Run `coffre web`.
    pub fn run(self) -> Result<()> {
        let mut chips = self.chips;
        for b in &self.buses {
            match b {
                BusSpec::Emu { image, .. } => {
                    let name = image
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| image.display().to_string());
                    chips.push(format!("{name}={}", image.display()));
                }
                BusSpec::Linux { .. } => bail!(
                    "the explorer shows emulated chips only for now ({b}); a real chip can be read with 'coffre inspect --bus {b}'"
                ),
            }
        }
        let live = match (self.broker, self.subscriber_bus, self.id) {
            (Some(broker), Some(bus), Some(id)) => Some(crate::cmd_agent::AgentArgs {
                bus,
                timing: coffre_emu::clock::Timing::Instant,
                broker,
                id,
                mode: coffre_provision::Mode::Offload,
                key_slot: 0,
                pki: self.pki,
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
        web(
            &chips,
            self.scenarios,
            (self.listen, self.allow_hosts),
            live,
        )
    }
}

/// `coffre demo`.
pub fn demo(
    dir: Option<&Path>,
    keep: bool,
    json_out: bool,
    wide: bool,
    web: Option<SocketAddr>,
    only: &[String],
) -> Result<u8> {
    let selection = if only.is_empty() {
        Selection::all()
    } else {
        Selection::only(only)?
    };
    // Without --dir: a fresh temporary directory, removed at the end
    // unless the run is kept (--keep, or COFFRE_DEMO_KEEP_FILES set).
    let tmp = match dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("coffre-demo-")
                .tempdir()
                .context("cannot create a temporary work directory (or name one with --dir)")?,
        ),
    };
    let dir: PathBuf = match (dir, &tmp) {
        (Some(d), _) => d.to_path_buf(),
        (None, Some(t)) => t.path().to_path_buf(),
        (None, None) => unreachable!("a temporary directory is made when --dir is absent"),
    };
    if coffre_broker::find_mosquitto().is_none() {
        bail!(
            "mosquitto is not installed: {} (or run 'make demo', which installs it)",
            coffre_broker::INSTALL_HINT
        );
    }
    note!(
        "coffre demo: the lab on emulated hardware against a real mosquitto (work directory {})",
        dir.display()
    );
    let mut progress = |s: &str| note!("  {s}");
    let mut lab =
        Lab::setup(&LabOptions { dir: dir.clone() }, &mut progress).map_err(anyhow::Error::new)?;
    note!(
        "  broker listening on {} (log: {})",
        lab.broker_addr,
        lab.broker.log_path().display()
    );
    note!("scenarios:");
    let results = coffre_demo::run(&mut lab, &selection, &mut progress);
    let rows = stride(&results);
    let report = json!({ "scenarios": results, "stride": rows });
    let scen_path = dir.join("scenarios.json");
    coffre_fs::write_atomic(
        &scen_path,
        serde_json::to_string_pretty(&report)?.as_bytes(),
        0o644,
    )
    .with_context(|| format!("cannot write {}", scen_path.display()))?;
    if json_out {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        say!();
        say_text(&table(&results, wide));
        say!();
        say_text(&stride_table(&rows));
        say!();
        if tmp.is_some() && !keep {
            say!("Evidence in full: --wide, or --json; keep the files (PKI, chip images, broker log) with --dir DIR");
        } else {
            say!(
                "Evidence in full: {} (or --wide); broker log: {}",
                scen_path.display(),
                lab.broker.log_path().display()
            );
        }
    }
    let failed = results.iter().filter(|r| !r.pass).count();
    if keep || std::env::var_os("COFFRE_DEMO_KEEP_FILES").is_some() {
        // The files outlive this process: the user is told where they are.
        let _ = tmp.map(tempfile::TempDir::keep);
    }
    if keep {
        live(&mut lab, web, &scen_path)?;
    } else {
        lab.broker.stop();
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

/// `--keep`: leave the broker running, with a publisher and a subscriber
/// printing live, until Ctrl-C; optionally serve the web explorer.
fn live(lab: &mut Lab, web: Option<SocketAddr>, scenarios: &Path) -> Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let hub = LiveHub::new(coffre_web::live::DEFAULT_CAPACITY);
    let identity = |chip: &str, id: &str| -> Result<(coffre_emu::board::Board, Identity)> {
        let board =
            coffre_emu::board::Board::open(&lab.chip(chip), coffre_emu::clock::Timing::Instant)?;
        let drv = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), 0x35);
        let (key, _) = boot(
            drv,
            &BootOptions {
                mode: KeyMode::Offload { slot: 0 },
                allow_unlocked: false,
                io_key: None,
            },
            &mut |_, _| {},
        )?;
        let cert = std::fs::read(lab.cert(id))?;
        Ok((
            board,
            Identity {
                ca_pem: lab.ca_pem.clone(),
                cert_chain_pem: cert,
                key,
            },
        ))
    };
    let (_sb, sid) = identity("m5stack", "m5stack")?;
    let (pb, pid) = identity("m5go", "m5go")?;
    let broker = lab.broker_addr;
    let sub = {
        let (stop, hub) = (stop.clone(), hub.clone());
        std::thread::spawn(move || {
            let Ok(mut s) = Subscriber::new(SubscriberOptions::new(broker.into(), "m5stack"), sid)
            else {
                return;
            };
            let _ = s.run(&stop, |ev| match ev {
                Event::Received(d) => {
                    if let Some(r) = &d.reading {
                        say!(
                            "subscriber  {} seq {:>4}  {:>6.2} °C  {:>6.2} %RH  {:>8.2} hPa  latency {:.1} ms",
                            r.device, r.seq, r.temperature_c, r.humidity_pct, r.pressure_hpa,
                            d.latency.map(|l| l.as_secs_f64() * 1000.0).unwrap_or(0.0)
                        );
                        hub.push_reading(r.clone());
                    }
                }
                Event::Connected { tls_version, .. } => {
                    hub.push_event(coffre_web::Event::now("connected", format!("m5stack connected ({tls_version})")));
                }
                _ => {}
            });
        })
    };
    let publ = {
        let (stop, hub) = (stop.clone(), hub.clone());
        std::thread::spawn(move || {
            let mut o = PublisherOptions::new(broker.into(), "m5go");
            o.interval = Duration::from_secs(1);
            let sensors = EnvSensors::new(pb.bus.clone(), pb.delay());
            let Ok(mut p) = Publisher::new(o, pid, sensors) else {
                return;
            };
            let _ = p.run(&stop, |ev| {
                if let Event::Connected { tls_version, .. } = ev {
                    hub.push_event(coffre_web::Event::now(
                        "connected",
                        format!("m5go connected ({tls_version})"),
                    ));
                }
            });
        })
    };
    let rt = tokio::runtime::Runtime::new()?;
    let web_task = if let Some(addr) = web {
        let cfg = WebConfig {
            chips: vec![
                ChipSource::new("m5go-lab (publisher, lab)", lab.chip("m5go-lab"))
                    .with_cert(lab.cert("m5go-lab")),
                ChipSource::new("m5go (publisher, offload)", lab.chip("m5go"))
                    .with_cert(lab.cert("m5go"))
                    .with_key_slot(0),
                ChipSource::new("m5stack (subscriber)", lab.chip("m5stack"))
                    .with_cert(lab.cert("m5stack"))
                    .with_key_slot(0),
                ChipSource::new("wrong chip", lab.chip("wrong-lab"))
                    .with_cert(lab.cert("m5go-lab")),
            ],
            scenarios_json: Some(scenarios.to_path_buf()),
            live: hub.clone(),
            ..WebConfig::default()
        };
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .with_context(|| format!("cannot listen on {addr} for the web explorer"))?;
        note!("web explorer: http://{}", listener.local_addr()?);
        let stop = stop.clone();
        Some(rt.spawn(coffre_web::serve(cfg, listener, async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })))
    } else {
        None
    };
    note!("broker, publisher (m5go, offload) and subscriber (m5stack) running; Ctrl-C stops them");
    let mut printed = lab.log.cursor();
    while !stop.load(Ordering::Relaxed) {
        for l in lab.log.next_lines(&mut printed, Duration::from_millis(200)) {
            // The once-a-second persistence line would drown the rest.
            if !l.contains("Saving in-memory database") {
                say!("broker      {l}");
            }
        }
    }
    let _ = publ.join();
    let _ = sub.join();
    if let Some(t) = web_task {
        let _ = rt.block_on(t);
    }
    lab.broker.stop();
    note!("stopped; files kept in {}", lab.dir.display());
    Ok(())
}

/// `coffre web`.
pub fn web(
    images: &[String],
    scenarios: Option<PathBuf>,
    (listen, allowed_hosts): (SocketAddr, Vec<String>),
    live: Option<crate::cmd_agent::AgentArgs>,
) -> Result<()> {
    if images.is_empty() {
        bail!("name at least one chip: --bus emu:IMAGE or --chip NAME=IMAGE[,cert=PEM][,slot=N] (create one with 'coffre emu new')");
    }
    let mut chips = Vec::new();
    for spec in images {
        let mut parts = spec.split(',');
        let first = parts.next().unwrap_or_default();
        let (name, image) = first.split_once('=').unwrap_or((first, first));
        if !Path::new(image).exists() {
            bail!("{image}: no such chip image");
        }
        let mut c = ChipSource::new(name, image);
        for p in parts {
            match p.split_once('=') {
                Some(("cert", v)) => c = c.with_cert(v),
                Some(("slot", v)) => {
                    c = c.with_key_slot(v.parse().with_context(|| format!("bad slot '{v}'"))?)
                }
                _ => bail!("'{p}': use cert=PEM or slot=N after the image"),
            }
        }
        chips.push(c);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let rt = tokio::runtime::Runtime::new()?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| {
            format!("cannot listen on {listen}: pick another with --listen 127.0.0.1:PORT")
        })?;
    say!("web explorer: http://{}", listener.local_addr()?);
    let cfg = WebConfig {
        chips,
        scenarios_json: scenarios,
        allowed_hosts,
        ..WebConfig::default()
    };
    let sub = match live {
        Some(a) => Some(crate::cmd_agent::feed_hub(
            &a,
            cfg.live.clone(),
            stop.clone(),
        )?),
        None => None,
    };
    let served = rt.block_on(coffre_web::serve(cfg, listener, async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }));
    if let Some(t) = sub {
        let _ = t.join();
    }
    served?;
    Ok(())
}
