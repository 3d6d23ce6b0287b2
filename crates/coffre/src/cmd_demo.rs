//! `coffre demo` and `coffre web`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use coffre_agent::boot::{boot, BootOptions, KeyMode};
use coffre_agent::{
    EnvSensors, Event, Identity, Publisher, PublisherOptions, Subscriber, SubscriberOptions,
};
use coffre_demo::{stride, stride_table, table, Lab, LabOptions, Selection};
use coffre_web::{ChipSource, LiveHub, WebConfig};
use serde_json::json;

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
    let tmp;
    let dir: PathBuf = match dir {
        Some(d) => d.to_path_buf(),
        None => {
            tmp = std::env::temp_dir().join(format!("coffre-demo-{}", std::process::id()));
            tmp.clone()
        }
    };
    if coffre_broker::find_mosquitto().is_none() {
        bail!(
            "mosquitto is not installed: {} (or run 'make demo', which installs it)",
            coffre_broker::INSTALL_HINT
        );
    }
    eprintln!(
        "coffre demo: the lab on emulated hardware against a real mosquitto (work directory {})",
        dir.display()
    );
    let mut progress = |s: &str| eprintln!("  {s}");
    let mut lab =
        Lab::setup(&LabOptions { dir: dir.clone() }, &mut progress).map_err(anyhow::Error::new)?;
    eprintln!(
        "  broker listening on {} (log: {})",
        lab.broker_addr,
        lab.broker.log_path().display()
    );
    eprintln!("scenarios:");
    let results = coffre_demo::run(&mut lab, &selection, &mut progress);
    let rows = stride(&results);
    let report = json!({ "scenarios": results, "stride": rows });
    let scen_path = dir.join("scenarios.json");
    std::fs::write(&scen_path, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("cannot write {}", scen_path.display()))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!();
        print!("{}", table(&results, wide));
        println!();
        print!("{}", stride_table(&rows));
        println!();
        if dir.starts_with(std::env::temp_dir()) && !keep {
            println!("Evidence in full: --wide, or --json; keep the files (PKI, chip images, broker log) with --dir DIR");
        } else {
            println!(
                "Evidence in full: {} (or --wide); broker log: {}",
                scen_path.display(),
                lab.broker.log_path().display()
            );
        }
    }
    let failed = results.iter().filter(|r| !r.pass).count();
    if keep {
        live(&mut lab, web, &scen_path)?;
    } else {
        lab.broker.stop();
        if std::env::var_os("COFFRE_DEMO_KEEP_FILES").is_none()
            && dir.starts_with(std::env::temp_dir())
        {
            let _ = std::fs::remove_dir_all(&dir);
        }
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
                        println!(
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
        eprintln!("web explorer: http://{}", listener.local_addr()?);
        let stop = stop.clone();
        Some(rt.spawn(coffre_web::serve(cfg, listener, async move {
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })))
    } else {
        None
    };
    eprintln!(
        "broker, publisher (m5go, offload) and subscriber (m5stack) running; Ctrl-C stops them"
    );
    let mut printed = lab.log.cursor();
    while !stop.load(Ordering::Relaxed) {
        for l in lab.log.next_lines(&mut printed, Duration::from_millis(200)) {
            // The once-a-second persistence line would drown the rest.
            if !l.contains("Saving in-memory database") {
                println!("broker      {l}");
            }
        }
    }
    let _ = publ.join();
    let _ = sub.join();
    if let Some(t) = web_task {
        let _ = rt.block_on(t);
    }
    lab.broker.stop();
    eprintln!("stopped; files kept in {}", lab.dir.display());
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
    println!("web explorer: http://{}", listener.local_addr()?);
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
