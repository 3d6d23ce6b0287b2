//! The harness of `coffre bench`: one device process (the `coffre-device`
//! binary: boot, connect, one QoS 1 publish, clean disconnect) against
//! `mosquitto_pub` doing the same with the same certificate and broker,
//! measured as whole processes: wall time, CPU time and maximum resident
//! set size; in-process handshake times; publish → receive latency.
//!
//! [`run`] measures and returns a [`Report`]; it prints nothing (progress
//! goes to a callback). The CLI prints the report.
//!
//! [`emulator`] is `coffre emu bench`: the emulator's Read throughput and
//! its datasheet timing, command by command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use coffre_agent::stats::percentile_of;
use coffre_broker::{BrokerSetup, Mosquitto, Role};
use coffre_pki::{InitOptions, Pki};
use coffre_provision::{provision, AssumeYes, Mode, Options};
use serde::Serialize;

/// Figures of one tool in one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Which tool and settings.
    pub what: String,
    /// Broker `set_tcp_nodelay`.
    pub broker_nodelay: bool,
    /// Runs measured.
    pub runs: usize,
    /// Median wall time, ms.
    pub wall_median_ms: f64,
    /// 90th percentile wall time, ms.
    pub wall_p90_ms: f64,
    /// Mean CPU time (user + system), ms.
    pub cpu_mean_ms: f64,
    /// Largest maximum RSS of 3 runs under GNU time, KiB (-1: /usr/bin/time
    /// is not installed).
    pub max_rss_kib: i64,
    /// Runs that failed.
    pub failures: usize,
}

fn children_cpu_ms() -> f64 {
    match nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN) {
        Ok(u) => {
            let (a, b) = (u.user_time(), u.system_time());
            (a.tv_sec() + b.tv_sec()) as f64 * 1000.0 + (a.tv_usec() + b.tv_usec()) as f64 / 1000.0
        }
        Err(_) => 0.0,
    }
}

/// GNU time's view of one run's maximum resident set size, KiB (exact per
/// process: it reads `wait4`'s usage of that process alone).
fn max_rss_kib(cmd: &[String]) -> Option<i64> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return None;
    }
    let out = Command::new(time)
        .args(["-f", "%M"])
        .args(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// One run of `cmd`: wall time, CPU time (user + system, from the
/// children's usage before and after), success.
fn run_once(cmd: &[String]) -> Result<(f64, f64, bool)> {
    let Some((prog, args)) = cmd.split_first() else {
        bail!("nothing to run");
    };
    let cpu0 = children_cpu_ms();
    let t0 = Instant::now();
    let st = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {prog}"))?;
    let wall = t0.elapsed().as_secs_f64() * 1000.0;
    Ok((wall, children_cpu_ms() - cpu0, st.success()))
}

/// Measure every command of `configs` (what, broker `set_tcp_nodelay`,
/// command) `runs` times, taking turns (run 1 of each, then run 2 of
/// each…), so that a change of the machine's load during the measurement
/// falls on every tool alike; one unmeasured run of each first (page
/// cache, broker warm). Then the max RSS of each over 3 runs under GNU
/// time.
fn measure(runs: usize, configs: &[(String, bool, Vec<String>)]) -> Result<Vec<Row>> {
    for (_, _, cmd) in configs {
        run_once(cmd)?;
    }
    let mut samples = vec![(Vec::with_capacity(runs), 0.0, 0usize); configs.len()];
    for _ in 0..runs {
        for ((_, _, cmd), (walls, cpu, failures)) in configs.iter().zip(samples.iter_mut()) {
            let (w, c, ok) = run_once(cmd)?;
            walls.push(w);
            *cpu += c;
            if !ok {
                *failures += 1;
            }
        }
    }
    let mut rows = Vec::with_capacity(configs.len());
    for ((what, nodelay, cmd), (mut walls, cpu, failures)) in configs.iter().zip(samples) {
        let rss = (0..3).filter_map(|_| max_rss_kib(cmd)).max().unwrap_or(-1);
        let mut pct = |p: f64| percentile_of(&mut walls, p).unwrap_or(f64::NAN);
        rows.push(Row {
            what: what.clone(),
            broker_nodelay: *nodelay,
            runs,
            wall_median_ms: pct(50.0),
            wall_p90_ms: pct(90.0),
            cpu_mean_ms: cpu / runs as f64,
            max_rss_kib: rss,
            failures,
        });
    }
    Ok(rows)
}

fn free_port() -> Result<SocketAddr> {
    Ok(coffre_fs::free_loopback_addr()?)
}

/// What [`run`] measures.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Runs per configuration (at least 3).
    pub runs: usize,
    /// The device binary (`coffre-device`).
    pub device_exe: PathBuf,
}

/// Our worst configuration over mosquitto_pub's best, per figure; the
/// targets are at most 0.5 (wall), 0.5 (max RSS) and 0.4 (CPU).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ratios {
    /// Slowest median wall of the device binary / mosquitto_pub's fastest.
    pub wall: f64,
    /// Largest max RSS of the device binary / mosquitto_pub's smallest.
    pub max_rss: f64,
    /// Largest mean CPU of the device binary / mosquitto_pub's smallest.
    pub cpu: f64,
}

impl Ratios {
    /// Target for [`Ratios::wall`].
    pub const WALL_TARGET: f64 = 0.5;
    /// Target for [`Ratios::max_rss`].
    pub const RSS_TARGET: f64 = 0.5;
    /// Target for [`Ratios::cpu`].
    pub const CPU_TARGET: f64 = 0.4;

    /// Whether all three targets are met.
    pub fn met(&self) -> bool {
        self.wall <= Self::WALL_TARGET
            && self.max_rss <= Self::RSS_TARGET
            && self.cpu <= Self::CPU_TARGET
    }
}

pub mod emulator;
mod firmware;
pub use firmware::FirmwareRow;

/// Everything [`run`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The embedded-tls driver on the host.
    pub firmware: Option<FirmwareRow>,
    /// Whole processes, per tool and configuration.
    pub processes: Vec<Row>,
    /// In-process handshakes.
    pub handshakes: Vec<HandshakeRow>,
    /// Publish → receive latency.
    pub latency: Vec<LatencyRow>,
    /// The three ratios.
    pub ratios: Ratios,
    /// Runs per configuration.
    pub runs: usize,
}

/// Whether a row is the device binary's (else mosquitto_pub's).
pub fn is_device_row(r: &Row) -> bool {
    r.what.starts_with("coffre-device")
}

fn ratios(rows: &[Row]) -> Ratios {
    let ours = || rows.iter().filter(|r| is_device_row(r));
    let theirs = || rows.iter().filter(|r| !is_device_row(r));
    let worst = |f: fn(&Row) -> f64| ours().map(f).fold(0.0, f64::max);
    let best = |f: fn(&Row) -> f64| theirs().map(f).fold(f64::INFINITY, f64::min);
    Ratios {
        wall: worst(|r| r.wall_median_ms) / best(|r| r.wall_median_ms),
        max_rss: worst(|r| r.max_rss_kib as f64) / best(|r| r.max_rss_kib as f64),
        cpu: worst(|r| r.cpu_mean_ms) / best(|r| r.cpu_mean_ms),
    }
}

/// Measure; `progress` hears what is being measured.
pub fn run(opts: &BenchOptions, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let runs = opts.runs;
    if !opts.device_exe.exists() {
        bail!(
            "the device binary {} is missing; build it with 'scripts/build-device.sh' (as shipped) or 'cargo build --profile device -p coffre-device-bin'",
            opts.device_exe.display()
        );
    }
    progress(&format!("device binary: {}", opts.device_exe.display()));
    if runs < 3 {
        bail!("--runs must be at least 3");
    }
    if coffre_broker::find_mosquitto().is_none() {
        bail!(
            "mosquitto is not installed: {}",
            coffre_broker::INSTALL_HINT
        );
    }
    let dir = tempfile::Builder::new().prefix("coffre-bench-").tempdir()?;
    let d = dir.path();
    progress(&format!("setting up in {} …", d.display()));
    let mut pki = Pki::init(d.join("pki"), &InitOptions::default())?;
    let img = d.join("m5go.img");
    coffre_emu::image::create(&img, &coffre_emu::presets::Preset::Tngtls.build(), false)?;
    {
        let board = coffre_emu::board::Board::open(&img, coffre_emu::clock::Timing::Instant)?;
        let mut chip = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), 0x35);
        let mut o = Options::new("m5go", Mode::Lab);
        o.lock_slot8 = Some(false);
        provision(&mut chip, &mut pki, &o, &mut AssumeYes::default())?;
        // mosquitto_pub needs the key as a file: the same key, out of slot 8
        // (a test fixture, never a real key).
        let mut slot = [0u8; 416];
        chip.read_slot(8, &mut slot)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let der = coffre_pki::lab::decode_slot8(&slot)?;
        let pem = coffre_pki::lab::pkcs8_pem(&der)?;
        write_private(&d.join("m5go.key.pem"), pem.as_bytes())?;
    }
    let chip_img = d.join("m5go-chip.img");
    coffre_emu::image::create(
        &chip_img,
        &coffre_emu::presets::Preset::Tngtls.build(),
        false,
    )?;
    {
        let board = coffre_emu::board::Board::open(&chip_img, coffre_emu::clock::Timing::Instant)?;
        let mut chip = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), 0x35);
        provision(
            &mut chip,
            &mut pki,
            &Options::new("m5go-chip", Mode::Offload),
            &mut AssumeYes::default(),
        )?;
    }
    // A subscriber identity whose key is a file, for mosquitto_sub and ours.
    {
        let sk = p256::SecretKey::random(&mut rand_core_os());
        pki.issue_device(
            "ms-sub",
            &sk.public_key(),
            &coffre_pki::IssueOptions::default(),
        )?;
        let der = coffre_pki::lab::pkcs8_der(&sk);
        let pem = coffre_pki::lab::pkcs8_pem(&der)?;
        write_private(&d.join("ms-sub.key.pem"), pem.as_bytes())?;
    }
    let exe = opts.device_exe.display().to_string();
    let s = |p: &Path| p.display().to_string();
    // Both brokers run side by side and every configuration of both takes
    // its turn in one loop: a change of the machine's load during the
    // measurement falls on every row alike, including the two broker
    // settings (measured one after the other, a load that starts between
    // them made the ratio compare a loaded row with an idle one).
    let mut brokers = Vec::new();
    let mut configs = Vec::new();
    for nodelay in [true, false] {
        let mut setup = BrokerSetup::new(d.join("pki"), d.join(format!("broker-{nodelay}")));
        setup.listen = free_port()?;
        setup.tcp_nodelay = nodelay;
        setup.acl.allow("m5go", Role::Publisher)?;
        setup.acl.allow("m5go-chip", Role::Publisher)?;
        setup.acl.allow("ms-sub", Role::Subscriber)?;
        let broker = Mosquitto::start(&setup)?;
        let port = setup.listen.port().to_string();
        let addr = setup.listen.to_string();
        for tls13 in [false, true] {
            let mut cmd = vec![
                exe.clone(),
                "--quiet".into(),
                "--bus".into(),
                format!("emu:{}", s(&img)),
                "--broker".into(),
                addr.clone(),
                "--id".into(),
                "m5go".into(),
                "--mode".into(),
                "lab".into(),
                "--pki".into(),
                s(&d.join("pki")),
                // One reading, taken at once (the interval only spaces
                // the ones after it).
                "--count".into(),
                "1".into(),
            ];
            if tls13 {
                cmd.push("--tls13".into());
            }
            let what = format!(
                "coffre-device --count 1 (TLS 1.{})",
                if tls13 { 3 } else { 2 }
            );
            configs.push((what, nodelay, cmd));
        }
        for (what, extra) in [
            ("mosquitto_pub default (TLS 1.3)", vec![]),
            (
                "mosquitto_pub --tls-version tlsv1.2",
                vec!["--tls-version".to_string(), "tlsv1.2".into()],
            ),
        ] {
            let mut cmd = vec!["mosquitto_pub".to_string()];
            cmd.extend(mosquitto_client_args(
                &port,
                "m5go",
                &s(&d.join("pki/ca.crt.pem")),
                &d.join("pki/devices/m5go.crt.pem"),
                &d.join("m5go.key.pem"),
            ));
            cmd.extend(["-m".to_string(), r#"{"device":"m5go","seq":1}"#.into()]);
            cmd.extend(extra);
            configs.push((what.to_string(), nodelay, cmd));
        }
        brokers.push((setup.listen, broker));
    }
    progress(&format!(
        "  {} configurations taking turns (brokers with set_tcp_nodelay true and false), {runs} runs each",
        configs.len()
    ));
    let rows = measure(runs, &configs)?;
    // The rest against the broker with set_tcp_nodelay true.
    let listen = brokers[0].0;
    progress("  embedded-tls driver (coffre-firmware), TLS 1.3, chip signs");
    let firmware = Some(firmware::firmware_row(
        d,
        &chip_img,
        "m5go-chip",
        listen,
        runs,
    )?);
    let handshakes = handshake_rows(d, &img, &chip_img, listen, runs)?;
    let latencies = latency_rows(d, listen, 50)?;
    drop(brokers);
    drop(dir);
    Ok(Report {
        firmware,
        ratios: ratios(&rows),
        processes: rows,
        handshakes,
        latency: latencies,
        runs,
    })
}

fn write_private(p: &Path, b: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(p)?;
    f.write_all(b)?;
    Ok(())
}

/// One handshake configuration's figures.
#[derive(Debug, Clone, Serialize)]
pub struct HandshakeRow {
    /// Where the key is.
    pub what: String,
    /// Runs.
    pub runs: usize,
    /// Median TCP connect → CONNACK, ms.
    pub connect_median_ms: f64,
    /// Median TLS handshake part, ms.
    pub tls_median_ms: f64,
}

fn handshake_rows(
    d: &Path,
    lab_img: &Path,
    chip_img: &Path,
    broker: SocketAddr,
    runs: usize,
) -> Result<Vec<HandshakeRow>> {
    use coffre_agent::identity::{DriverSigner, KeySource};
    use coffre_agent::mqtt::{Client, ClientOptions};
    use coffre_agent::TlsOptions;
    use coffre_emu::clock::Timing;
    let ca = std::fs::read(d.join("pki/ca.crt.pem"))?;
    let opts = TlsOptions {
        tls13: false,
        resumption: false,
    };
    let mut out = Vec::new();
    let cases: [(&str, &str, Option<Timing>, usize); 3] = [
        ("key in RAM (lab: read from slot 8)", "m5go", None, runs),
        (
            "chip signs, emulator instant timing",
            "m5go-chip",
            Some(Timing::Instant),
            runs,
        ),
        (
            "chip signs, emulator datasheet timing",
            "m5go-chip",
            Some(Timing::Datasheet),
            runs.min(5),
        ),
    ];
    for (what, id, timing, n) in cases {
        let cert = std::fs::read(d.join(format!("pki/devices/{id}.crt.pem")))?;
        let (key, _board) = match timing {
            None => {
                let pem = std::fs::read(d.join("m5go.key.pem"))?;
                let _ = lab_img;
                (KeySource::lab_from_pem(&pem)?, None)
            }
            Some(t) => {
                let board = coffre_emu::board::Board::open(chip_img, t)?;
                let chip = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), 0x35);
                (KeySource::chip(DriverSigner::new(chip, 0)), Some(board))
            }
        };
        let cfg = coffre_agent::client_config(&ca, &cert, key, &opts)?;
        let mut total = Vec::new();
        let mut tls = Vec::new();
        for _ in 0..n {
            let c = Client::connect(&ClientOptions::new(broker.into(), id), cfg.clone())?;
            let t = c.session().timing;
            total.push(t.total().as_secs_f64() * 1000.0);
            tls.push(t.tls.as_secs_f64() * 1000.0);
            c.disconnect()?;
        }
        out.push(HandshakeRow {
            what: what.to_string(),
            runs: n,
            connect_median_ms: percentile_of(&mut total, 50.0).unwrap_or(f64::NAN),
            tls_median_ms: percentile_of(&mut tls, 50.0).unwrap_or(f64::NAN),
        });
    }
    Ok(out)
}

fn rand_core_os() -> rand_core::OsRng {
    rand_core::OsRng
}

/// Publish → receive latency of one tool pair.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRow {
    /// Which pair.
    pub what: String,
    /// Messages sent.
    pub sent: usize,
    /// Messages received.
    pub received: usize,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
}

fn latency_row(what: &str, sent: usize, mut v: Vec<f64>) -> LatencyRow {
    let received = v.len();
    let mut at = |p: f64| percentile_of(&mut v, p).unwrap_or(f64::NAN);
    LatencyRow {
        what: what.to_string(),
        sent,
        received,
        p50_ms: at(50.0),
        p99_ms: at(99.0),
        max_ms: at(100.0),
    }
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn latency_rows(d: &Path, broker: SocketAddr, n: usize) -> Result<Vec<LatencyRow>> {
    use std::io::{BufRead, Write};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let s = |p: &Path| p.display().to_string();
    let port = broker.port().to_string();
    let ca = s(&d.join("pki/ca.crt.pem"));
    // mosquitto_pub -l (connected, one line per message) → mosquitto_sub -F "%U %p".
    let mut sub = Command::new("mosquitto_sub")
        .args(mosquitto_client_args(
            &port,
            "ms-sub",
            &ca,
            &d.join("pki/devices/ms-sub.crt.pem"),
            &d.join("ms-sub.key.pem"),
        ))
        .args(["-F", "%U %p", "-C", &n.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run mosquitto_sub")?;
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut publ = Command::new("mosquitto_pub")
        .args(mosquitto_client_args(
            &port,
            "m5go",
            &ca,
            &d.join("pki/devices/m5go.crt.pem"),
            &d.join("m5go.key.pem"),
        ))
        .arg("-l")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run mosquitto_pub")?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    if let Some(stdin) = publ.stdin.as_mut() {
        for _ in 0..n {
            writeln!(stdin, "{}", unix_nanos())?;
            stdin.flush()?;
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let started = Instant::now();
    let mut lat = Vec::new();
    if let Some(out) = sub.stdout.take() {
        for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
            let mut it = line.split_whitespace();
            let (Some(recv), Some(sent)) = (it.next(), it.next()) else {
                continue;
            };
            let (Ok(recv), Ok(sent)) = (recv.parse::<f64>(), sent.parse::<u128>()) else {
                continue;
            };
            lat.push(recv * 1000.0 - sent as f64 / 1e6);
            if lat.len() == n || started.elapsed() > std::time::Duration::from_secs(10) {
                break;
            }
        }
    }
    drop(publ.stdin.take());
    let _ = publ.wait();
    let _ = sub.kill();
    let _ = sub.wait();
    let mut rows = vec![latency_row("mosquitto_pub -l → mosquitto_sub", n, lat)];

    // Ours: Publisher → Subscriber (coffre-agent), key in RAM.
    let ca_pem = std::fs::read(d.join("pki/ca.crt.pem"))?;
    let ident = |id: &str, key: &str| -> Result<coffre_agent::Identity> {
        Ok(coffre_agent::Identity {
            ca_pem: ca_pem.clone(),
            cert_chain_pem: std::fs::read(d.join(format!("pki/devices/{id}.crt.pem")))?,
            key: coffre_agent::KeySource::lab_from_pem(&std::fs::read(d.join(key))?)?,
        })
    };
    let mut so = coffre_agent::SubscriberOptions::new(broker.into(), "ms-sub");
    so.max_messages = Some(n as u64);
    let mut subscriber = coffre_agent::Subscriber::new(so, ident("ms-sub", "ms-sub.key.pem")?)?;
    let ready = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (ready, stop) = (ready.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = subscriber.run(&stop, |ev| match ev {
                coffre_agent::Event::Subscribed { .. } => ready.store(true, Ordering::SeqCst),
                coffre_agent::Event::Received(d) => {
                    if let Some(l) = d.latency {
                        v.push(l.as_secs_f64() * 1000.0);
                    }
                }
                _ => {}
            });
            v
        })
    };
    let t0 = Instant::now();
    while !ready.load(Ordering::SeqCst) && t0.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let mut po = coffre_agent::PublisherOptions::new(broker.into(), "m5go");
    po.count = Some(n as u64);
    po.interval = std::time::Duration::from_millis(20);
    let sensors = || -> Result<coffre_agent::Measurement, coffre_agent::SensorError> {
        Ok(coffre_agent::Measurement {
            temperature_c: 22.5,
            humidity_pct: 45.0,
            pressure_hpa: 1013.0,
        })
    };
    let mut p = coffre_agent::Publisher::new(po, ident("m5go", "m5go.key.pem")?, sensors)?;
    p.run(&AtomicBool::new(false), |_| {})?;
    let t1 = Instant::now();
    while !t.is_finished() && t1.elapsed() < std::time::Duration::from_secs(5) {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    stop.store(true, Ordering::SeqCst);
    let v = t.join().unwrap_or_default();
    rows.push(latency_row("coffre publish → coffre subscribe", n, v));
    Ok(rows)
}

/// The arguments every Mosquitto client needs here: the broker on loopback,
/// MQTT 5, QoS 1 on `m5go/env`, a client id, and the mutual-TLS files.
fn mosquitto_client_args(port: &str, id: &str, ca: &str, cert: &Path, key: &Path) -> Vec<String> {
    let mut v: Vec<String> = [
        "-h",
        "127.0.0.1",
        "-p",
        port,
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-t",
        "m5go/env",
        "-i",
        id,
        "--cafile",
        ca,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend([
        "--cert".into(),
        cert.display().to_string(),
        "--key".into(),
        key.display().to_string(),
    ]);
    v
}
