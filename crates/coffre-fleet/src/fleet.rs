//! Building the fleet's lab, running the devices and the subscriber,
//! measuring.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coffre_agent::identity::{DriverSigner, KeySource};
use coffre_agent::mqtt::{BrokerAddr, Client, ClientOptions, MqttVersion, QoS};
use coffre_agent::tls::{client_config, TlsOptions};
use coffre_broker::{BrokerSetup, Mosquitto, Role};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_pki::{InitOptions, Pki};
use coffre_provision::manifest::Manifest;
use coffre_provision::{provision, AssumeYes, Mode, Options};
use rand_core::{OsRng, RngCore};
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::stats::{Delivery, Percentiles, SeqTracker};
use crate::util;

/// The readings topic (the lab's).
pub const TOPIC: &str = "m5go/env";
/// Devices provisioned per PKI shard: each shard is a copy of the PKI
/// directory (same CA) with an index of its own, which keeps issuing
/// linear in the fleet size.
const SHARD: usize = 250;

/// Where each device's key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FleetMode {
    /// Key generated off-chip, stored in slot 8, read into RAM to connect.
    Lab,
    /// Key born in the chip (slot 0); the chip signs every handshake.
    Offload,
}

impl std::str::FromStr for FleetMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "lab" => Ok(FleetMode::Lab),
            "offload" => Ok(FleetMode::Offload),
            o => Err(format!("unknown mode '{o}': use 'lab' or 'offload'")),
        }
    }
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Number of devices.
    pub devices: usize,
    /// Ramp: new connections per second.
    pub rate: f64,
    /// Publishing phase, after the ramp: each device publishes during this
    /// long.
    pub duration: Duration,
    /// One reading per device every `interval` (random phase).
    pub interval: Duration,
    /// Key mode.
    pub mode: FleetMode,
    /// Working directory (PKI, broker files, manifest). `None`: a
    /// temporary one (on /dev/shm when present), removed afterwards unless
    /// the run failed (its broker log is then kept there).
    pub dir: Option<PathBuf>,
    /// Stack size of each device thread.
    pub stack_size: usize,
}

impl FleetOptions {
    /// Defaults: 200 devices, 100 connections/s, 20 s, one reading every
    /// 10 s, offload mode.
    pub fn new(devices: usize) -> FleetOptions {
        FleetOptions {
            devices,
            rate: 100.0,
            duration: Duration::from_secs(20),
            interval: Duration::from_secs(10),
            mode: FleetMode::Offload,
            dir: None,
            stack_size: 256 * 1024,
        }
    }
}

/// The id of device `i` (from 1): `fleet-00001`.
pub fn device_id(i: usize) -> String {
    format!("fleet-{i:05}")
}

const SUB_ID: &str = "fleet-sub";

/// Parse a duration such as "20s", "500ms", "2m" or "1.5" (seconds).
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 20s, 500ms, 1m)"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" | "min" => v * 60.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is not a duration we can wait"))
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A setup step.
    Step(String),
    /// Provisioning: done out of total.
    Provisioning(usize, usize),
    /// Ramp: (connected, failed, total).
    Ramp(usize, usize, usize),
    /// Publishing: seconds left.
    Publishing(u64),
}

/// CPU time, simulator vs broker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuFigures {
    /// Simulator CPU (user + system) during the ramp, seconds.
    pub simulator_ramp_s: f64,
    /// Broker CPU during the ramp, seconds.
    pub broker_ramp_s: f64,
    /// Simulator CPU per established connection during the ramp, ms.
    pub simulator_per_handshake_ms: f64,
    /// Broker CPU per established connection during the ramp, ms.
    pub broker_per_handshake_ms: f64,
    /// Simulator CPU during the publishing phase, seconds.
    pub simulator_publish_s: f64,
    /// Broker CPU during the publishing phase, seconds.
    pub broker_publish_s: f64,
}

/// Memory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryFigures {
    /// Simulator resident memory before provisioning, KiB.
    pub simulator_base_kib: u64,
    /// Simulator resident memory with every device connected, KiB.
    pub simulator_connected_kib: u64,
    /// (connected − base) / devices: chip emulator, certificate, TLS
    /// configuration and session, thread stack. KiB.
    pub per_device_kib: f64,
    /// Broker resident memory with every device connected, KiB.
    pub broker_connected_kib: u64,
    /// Broker resident memory per connected device, KiB.
    pub broker_per_device_kib: f64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// Devices simulated.
    pub devices: usize,
    /// Key mode.
    pub mode: FleetMode,
    /// Working directory.
    pub dir: PathBuf,
    /// Broker address.
    pub broker: String,
    /// Open-file limit in force (inherited by the broker).
    pub nofile_limit: u64,
    /// Provisioning (chip CSR + certificate issue), seconds.
    pub provisioning_s: f64,
    /// Provisioning per device, ms (wall, 2 threads).
    pub provisioning_per_device_ms: f64,
    /// Target ramp rate, connections/s.
    pub ramp_target_rate: f64,
    /// Devices connected.
    pub connected: usize,
    /// Devices that could not connect.
    pub connect_failures: usize,
    /// The first connection error, if any.
    pub first_connect_error: Option<String>,
    /// Ramp duration (first connection attempt → last CONNACK), seconds.
    pub ramp_s: f64,
    /// Connections established per second during the ramp.
    pub ramp_conn_per_s: f64,
    /// Connect time (TCP + TLS + CONNACK) per device, ms.
    pub connect_ms: Percentiles,
    /// Publishing phase, seconds.
    pub publish_s: f64,
    /// Messages received per second during the publishing phase.
    pub msg_per_s: f64,
    /// Publishes that failed or were refused.
    pub publish_failures: u64,
    /// The first publish error, if any.
    pub first_publish_error: Option<String>,
    /// Loss and duplicate accounting.
    pub delivery: Delivery,
    /// End-to-end latency (publish call → subscriber receipt), ms.
    pub latency_ms: Percentiles,
    /// CPU.
    pub cpu: CpuFigures,
    /// Memory.
    pub memory: MemoryFigures,
}

impl FleetReport {
    /// Every device connected, nothing lost, duplicated or unexpected, no
    /// publish failed.
    pub fn ok(&self) -> bool {
        self.connect_failures == 0
            && self.publish_failures == 0
            && self.delivery.lost == 0
            && self.delivery.duplicated == 0
            && self.delivery.unexpected == 0
    }
}

/// The payload of a fleet reading.
#[derive(Debug, Serialize, Deserialize)]
struct FleetReading {
    device: String,
    seq: u64,
    /// Microseconds since the simulator's clock origin, at publish time.
    sent_us: u64,
    temperature_c: f64,
    humidity_pct: f64,
    pressure_hpa: f64,
}

/// One provisioned device, ready to connect.
struct DeviceIdentity {
    index: usize,
    id: String,
    tls: Arc<ClientConfig>,
    // Keeps the emulated chip alive (the signer holds its bus).
    _board: Board,
}

/// What a device thread reports.
#[derive(Default)]
struct DeviceResult {
    connect: Option<Duration>,
    connected_at: Option<Instant>,
    connect_error: Option<String>,
    published: u64,
    publish_failures: u64,
    publish_error: Option<String>,
}

/// The shared "start publishing" signal.
#[derive(Default)]
struct Gate {
    start: Mutex<Option<Instant>>,
    cv: Condvar,
}

impl Gate {
    fn open(&self, at: Instant) {
        *self.start.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
        self.cv.notify_all();
    }

    fn wait(&self) -> Instant {
        let mut g = self.start.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(t) = *g {
                return t;
            }
            g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").context("finding a free port on 127.0.0.1")?;
    Ok(l.local_addr()?)
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let dst = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

type Chip = Atecc<coffre_emu::EmuBus, coffre_emu::clock::EmuDelay>;

/// A fresh Trust&GO chip on a board of its own.
fn new_chip() -> (Board, Chip) {
    let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    (board, chip)
}

/// Provision one chip as `id` against `pki` and build its TLS client
/// configuration.
fn provision_one(
    pki: &mut Pki,
    ca_pem: &[u8],
    index: usize,
    id: &str,
    mode: FleetMode,
) -> Result<(DeviceIdentity, coffre_provision::manifest::Entry)> {
    let (board, mut chip) = new_chip();
    let mut opts = Options::new(
        id,
        match mode {
            FleetMode::Lab => Mode::Lab,
            FleetMode::Offload => Mode::Offload,
        },
    );
    opts.lock_slot8 = Some(false);
    let out = provision(&mut chip, pki, &opts, &mut AssumeYes::default())
        .with_context(|| format!("provisioning {id}"))?;
    let key = match mode {
        FleetMode::Lab => KeySource::read_lab(&mut chip, 8)
            .with_context(|| format!("reading {id}'s lab key from slot 8"))?,
        FleetMode::Offload => KeySource::chip(DriverSigner::new(chip, 0)),
    };
    let tls = client_config(
        ca_pem,
        out.cert_pem.as_bytes(),
        key,
        &TlsOptions {
            tls13: false,
            resumption: false,
        },
    )
    .with_context(|| format!("building {id}'s TLS configuration"))?;
    Ok((
        DeviceIdentity {
            index,
            id: id.to_owned(),
            tls,
            _board: board,
        },
        out.entry,
    ))
}

/// Provision devices `1..=n` over 2 threads, in PKI shards.
fn provision_fleet(
    dir: &Path,
    ca_pem: &[u8],
    n: usize,
    mode: FleetMode,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<DeviceIdentity>> {
    let pki_dir = dir.join("pki");
    let shards = n.div_ceil(SHARD);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<DeviceIdentity>> = Mutex::new(Vec::with_capacity(n));
    let entries: Mutex<Vec<(usize, coffre_provision::manifest::Entry)>> = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .clamp(1, 2);
    let worker = || -> Result<()> {
        loop {
            let s = next.fetch_add(1, Ordering::Relaxed);
            if s >= shards {
                return Ok(());
            }
            let shard_dir = dir.join("pki-shards").join(format!("{s:03}"));
            copy_dir(&pki_dir, &shard_dir)?;
            let mut pki = Pki::open(&shard_dir)
                .with_context(|| format!("opening PKI shard {}", shard_dir.display()))?;
            let mut local = Vec::new();
            let mut local_entries = Vec::new();
            for i in (s * SHARD + 1)..=((s + 1) * SHARD).min(n) {
                let (d, e) = provision_one(&mut pki, ca_pem, i, &device_id(i), mode)?;
                local.push(d);
                local_entries.push((i, e));
                done.fetch_add(1, Ordering::Relaxed);
            }
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(local);
            entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(local_entries);
        }
    };
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        while !handles.iter().all(|h| h.is_finished()) {
            progress(Progress::Provisioning(done.load(Ordering::Relaxed), n));
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow!("a provisioning thread panicked"))??;
        }
        Ok(())
    })?;
    progress(Progress::Provisioning(n, n));
    let mut devices = results.into_inner().unwrap_or_else(|e| e.into_inner());
    devices.sort_by_key(|d| d.index);
    // The fleet manifest: one line per device (serial, id, mode, key
    // fingerprint, certificate).
    let mut entries = entries.into_inner().unwrap_or_else(|e| e.into_inner());
    entries.sort_by_key(|(i, _)| *i);
    // Written in one go: `Manifest::append` re-reads the whole file on each
    // call, which is quadratic for a fleet. Same format, checked by reading
    // it back once.
    let manifest = Manifest::at(dir.join("fleet-manifest.jsonl"));
    let mut text = String::new();
    for (_, e) in &entries {
        text.push_str(&serde_json::to_string(e)?);
        text.push('\n');
    }
    std::fs::write(manifest.path(), text)
        .with_context(|| format!("writing {}", manifest.path().display()))?;
    let read_back = manifest
        .entries()
        .with_context(|| format!("reading back {}", manifest.path().display()))?;
    if read_back.len() != n {
        bail!(
            "{} holds {} entries instead of {n}",
            manifest.path().display(),
            read_back.len()
        );
    }
    Ok(devices)
}

fn client_options(broker: SocketAddr, id: &str, interval: Duration) -> ClientOptions {
    let mut o = ClientOptions::new(BrokerAddr::from(broker), id);
    o.version = MqttVersion::V5;
    o.keep_alive = (interval * 3).max(Duration::from_secs(60));
    o.connect_timeout = Duration::from_secs(60);
    o.timeout = Duration::from_secs(30);
    o
}

struct DeviceCtx {
    broker: SocketAddr,
    interval: Duration,
    duration: Duration,
    origin: Instant,
    gate: Arc<Gate>,
    connected: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
}

fn device_main(d: DeviceIdentity, ctx: &DeviceCtx) -> DeviceResult {
    let mut r = DeviceResult::default();
    let opts = client_options(ctx.broker, &d.id, ctx.interval);
    let t = Instant::now();
    let mut client = match Client::connect(&opts, d.tls.clone()) {
        Ok(c) => c,
        Err(e) => {
            r.connect_error = Some(format!("{}: {e}", d.id));
            ctx.failed.fetch_add(1, Ordering::Relaxed);
            return r;
        }
    };
    r.connect = Some(t.elapsed());
    r.connected_at = Some(Instant::now());
    ctx.connected.fetch_add(1, Ordering::Relaxed);
    let start = ctx.gate.wait();
    let phase = ctx
        .interval
        .mul_f64(f64::from(OsRng.next_u32()) / f64::from(u32::MAX));
    let end = start + ctx.duration;
    let mut seq = 0u64;
    loop {
        let due = start + phase + ctx.interval * seq as u32;
        if due >= end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        seq += 1;
        let reading = FleetReading {
            device: d.id.clone(),
            seq,
            sent_us: ctx.origin.elapsed().as_micros() as u64,
            temperature_c: 21.5 + (d.index % 50) as f64 / 10.0,
            humidity_pct: 45.0,
            pressure_hpa: 1013.25,
        };
        let payload = serde_json::to_vec(&reading).unwrap_or_default();
        match client.publish(TOPIC, &payload, QoS::AtLeastOnce, false) {
            Ok(o) if o.reason.0 == 0 => r.published += 1,
            Ok(o) => {
                r.publish_failures += 1;
                r.publish_error
                    .get_or_insert_with(|| format!("{}: PUBACK reason 0x{:02X}", d.id, o.reason.0));
                // The seq was used but not accepted: stop, so the
                // subscriber's accounting stays exact.
                break;
            }
            Err(e) => {
                r.publish_failures += 1;
                r.publish_error
                    .get_or_insert_with(|| format!("{}: {e}", d.id));
                return r;
            }
        }
    }
    let _ = client.disconnect();
    r
}

/// What the subscriber collected.
struct SubResult {
    tracker: SeqTracker,
    latencies_ms: Vec<f64>,
    error: Option<String>,
}

fn subscriber(
    mut client: Client,
    devices: usize,
    origin: Instant,
    stop: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
) -> SubResult {
    let mut tracker = SeqTracker::new(devices + 1);
    let mut latencies_ms = Vec::new();
    let mut error = None;
    loop {
        // stop: 0 = run; otherwise the number of messages to wait for
        // (+1), or u64::MAX to stop at once.
        let target = stop.load(Ordering::Acquire);
        if target != 0 && (target == u64::MAX || tracker.received() + 1 >= target) {
            break;
        }
        match client.poll(Duration::from_millis(100)) {
            Ok(Some(m)) => {
                let now_us = origin.elapsed().as_micros() as u64;
                match serde_json::from_slice::<FleetReading>(&m.payload) {
                    Ok(r) => {
                        let idx = r
                            .device
                            .strip_prefix("fleet-")
                            .and_then(|n| n.parse::<usize>().ok())
                            .unwrap_or(0);
                        tracker.record(idx, r.seq);
                        latencies_ms.push(now_us.saturating_sub(r.sent_us) as f64 / 1000.0);
                    }
                    Err(_) => tracker.record(0, 0),
                }
                received.store(tracker.received(), Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    let _ = client.disconnect();
    SubResult {
        tracker,
        latencies_ms,
        error,
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Build the lab, run the fleet, measure. `progress` is called from the
/// calling thread.
pub fn run(opts: &FleetOptions, progress: &mut dyn FnMut(Progress)) -> Result<FleetReport> {
    if opts.devices == 0 || opts.devices > 99_999 {
        bail!("--devices must be between 1 and 99999");
    }
    if opts.rate <= 0.0 || opts.interval.is_zero() {
        bail!("--rate and --interval must be positive");
    }
    let n = opts.devices;
    // Every device holds a socket in this process and in the broker; keep
    // headroom for files, pipes and the subscriber.
    let nofile = util::raise_nofile(n as u64 + 1024)?;

    // A temporary directory is removed at the end, unless the run failed:
    // then it stays for its broker log.
    let mut tmp: Option<tempfile::TempDir> = None;
    let dir = match &opts.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            d.clone()
        }
        None => {
            let base = Path::new("/dev/shm");
            let t = if base.is_dir() {
                tempfile::Builder::new()
                    .prefix("coffre-fleet-")
                    .tempdir_in(base)
            } else {
                tempfile::Builder::new().prefix("coffre-fleet-").tempdir()
            }
            .context("creating a temporary directory (or give one with --dir)")?;
            let p = t.path().to_path_buf();
            tmp = Some(t);
            p
        }
    };
    let keep = |tmp: &mut Option<tempfile::TempDir>| {
        if let Some(t) = tmp.take() {
            let _ = t.keep();
        }
    };
    let base_rss = util::self_rss_kib();

    progress(Progress::Step("PKI: CA and broker certificate".into()));
    let pki_dir = dir.join("pki");
    let mut pki = Pki::init(
        &pki_dir,
        &InitOptions {
            force: true,
            ..InitOptions::default()
        },
    )
    .context("creating the PKI")?;
    let ca_pem = pki.ca_cert_pem().into_bytes();

    progress(Progress::Step(format!(
        "provisioning {n} emulated chips ({} mode)",
        match opts.mode {
            FleetMode::Lab => "lab",
            FleetMode::Offload => "offload",
        }
    )));
    let t_prov = Instant::now();
    let devices = provision_fleet(&dir, &ca_pem, n, opts.mode, progress)?;
    let provisioning = t_prov.elapsed();
    let (sub_id, _sub_entry) = provision_one(&mut pki, &ca_pem, 0, SUB_ID, FleetMode::Offload)?;

    progress(Progress::Step(
        "broker: mosquitto, one ACL entry per device".into(),
    ));
    let addr = free_port()?;
    let mut setup = BrokerSetup::new(&pki_dir, dir.join("broker"));
    setup.listen = addr;
    setup.topic = TOPIC.into();
    for d in &devices {
        setup.acl.allow(&d.id, Role::Publisher)?;
    }
    setup.acl.allow(SUB_ID, Role::Subscriber)?;
    let conf = setup.write().context("writing the broker configuration")?;
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .with_context(|| format!("opening {}", conf.display()))?;
        writeln!(
            f,
            "\n# Fleet: no connection cap, no queue cap for the subscriber.\nmax_connections -1\nmax_queued_messages 0\nmax_inflight_messages 0"
        )?;
    }
    let mut broker = Mosquitto::start_conf(&conf, addr, &setup.log_path())
        .context("starting mosquitto (is it installed? 'apt install mosquitto')")?;
    let broker_pid = broker.pid().context("mosquitto has no pid")?;
    let broker_cpu = || util::pid_cpu(broker_pid).unwrap_or_default();

    let origin = Instant::now();
    let mut sub_client = Client::connect(&client_options(addr, SUB_ID, opts.interval), sub_id.tls)
        .context("connecting the subscriber")?;
    let granted = sub_client
        .subscribe(&[(TOPIC, QoS::AtLeastOnce)])
        .context("subscribing")?;
    if granted.first().map(|r| r.0) != Some(1) {
        keep(&mut tmp);
        bail!(
            "the broker refused the subscription to {TOPIC}: {granted:?}; see {}",
            broker.log_path().display()
        );
    }
    let stop = Arc::new(AtomicU64::new(0));
    let sub_received = Arc::new(AtomicU64::new(0));
    let sub_handle = {
        let stop = stop.clone();
        let received = sub_received.clone();
        std::thread::Builder::new()
            .name("fleet-sub".into())
            .spawn(move || subscriber(sub_client, n, origin, stop, received))
            .context("starting the subscriber thread")?
    };

    // Ramp.
    let gate = Arc::new(Gate::default());
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new(DeviceCtx {
        broker: addr,
        interval: opts.interval,
        duration: opts.duration,
        origin,
        gate: gate.clone(),
        connected: connected.clone(),
        failed: failed.clone(),
    });
    let cpu0 = util::self_cpu();
    let bcpu0 = broker_cpu();
    let ramp_t0 = Instant::now();
    let mut handles: Vec<(usize, JoinHandle<DeviceResult>)> = Vec::with_capacity(n);
    let mut spawn_errors: Vec<String> = Vec::new();
    let mut last_report = Instant::now();
    for (k, d) in devices.into_iter().enumerate() {
        let due = ramp_t0 + Duration::from_secs_f64(k as f64 / opts.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let ctx = ctx.clone();
        let id = d.id.clone();
        let index = d.index;
        match std::thread::Builder::new()
            .name(id.clone())
            .stack_size(opts.stack_size)
            .spawn(move || device_main(d, &ctx))
        {
            Ok(h) => handles.push((index, h)),
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                spawn_errors.push(format!(
                    "{id}: cannot start its thread ({e}); raise 'ulimit -u' / kernel.threads-max or simulate fewer devices"
                ));
            }
        }
        if last_report.elapsed() >= Duration::from_millis(100) {
            progress(Progress::Ramp(
                connected.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                n,
            ));
            last_report = Instant::now();
        }
    }
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        progress(Progress::Ramp(
            connected.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            n,
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
    progress(Progress::Ramp(
        connected.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        n,
    ));
    let ramp_wall = ramp_t0.elapsed();
    let cpu_ramp = util::self_cpu().saturating_sub(cpu0);
    let bcpu_ramp = broker_cpu().saturating_sub(bcpu0);
    let connected_rss = util::self_rss_kib();
    let broker_rss = util::pid_rss_kib(broker_pid).unwrap_or(0);

    // Publishing phase.
    let cpu1 = util::self_cpu();
    let bcpu1 = broker_cpu();
    let start = Instant::now() + Duration::from_millis(200);
    gate.open(start);
    let pub_t0 = start;
    let end = start + opts.duration;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        progress(Progress::Publishing((end - now).as_secs()));
        std::thread::sleep((end - now).min(Duration::from_millis(500)));
    }
    let mut results = Vec::with_capacity(n);
    for (index, h) in handles {
        let r = h.join().unwrap_or_else(|_| DeviceResult {
            connect_error: Some("a device thread panicked".into()),
            ..DeviceResult::default()
        });
        results.push((index, r));
    }
    let publish_wall = pub_t0.elapsed();
    let mut published = vec![0u64; n + 1];
    let mut connect_ms = Vec::new();
    let mut first_connect_error = spawn_errors.first().cloned();
    let mut first_publish_error = None;
    let mut publish_failures = 0;
    let mut last_connack = ramp_t0;
    for (index, r) in &results {
        published[*index] = r.published;
        publish_failures += r.publish_failures;
        if let Some(c) = r.connect {
            connect_ms.push(c.as_secs_f64() * 1000.0);
        }
        if let Some(t) = r.connected_at {
            last_connack = last_connack.max(t);
        }
        if first_connect_error.is_none() {
            first_connect_error.clone_from(&r.connect_error);
        }
        if first_publish_error.is_none() {
            first_publish_error.clone_from(&r.publish_error);
        }
    }
    // Wait for the subscriber to drain (up to 10 s).
    let expected: u64 = published.iter().sum();
    stop.store(expected + 1, Ordering::Release);
    let drain = Instant::now();
    while sub_received.load(Ordering::Relaxed) < expected
        && drain.elapsed() < Duration::from_secs(10)
    {
        if sub_handle.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Give duplicates a moment to show, then stop.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(u64::MAX, Ordering::Release);
    let sub = sub_handle
        .join()
        .map_err(|_| anyhow!("the subscriber thread panicked"))?;
    if let Some(e) = &sub.error {
        keep(&mut tmp);
        bail!(
            "the subscriber failed: {e}; see {}",
            broker.log_path().display()
        );
    }
    let cpu_pub = util::self_cpu().saturating_sub(cpu1);
    let bcpu_pub = broker_cpu().saturating_sub(bcpu1);
    broker.stop();

    let n_conn = connected.load(Ordering::Relaxed);
    let n_fail = failed.load(Ordering::Relaxed);
    let ramp_s = if n_conn > 0 {
        secs(last_connack.duration_since(ramp_t0))
    } else {
        secs(ramp_wall)
    };
    let delivery = sub.tracker.delivery(&published);
    let mut lat = sub.latencies_ms;
    let per = |d: Duration| {
        if n_conn == 0 {
            0.0
        } else {
            d.as_secs_f64() * 1000.0 / n_conn as f64
        }
    };
    let report = FleetReport {
        devices: n,
        mode: opts.mode,
        dir: dir.clone(),
        broker: addr.to_string(),
        nofile_limit: nofile,
        provisioning_s: secs(provisioning),
        provisioning_per_device_ms: secs(provisioning) * 1000.0 / n as f64,
        ramp_target_rate: opts.rate,
        connected: n_conn,
        connect_failures: n_fail,
        first_connect_error,
        ramp_s,
        ramp_conn_per_s: if ramp_s > 0.0 {
            n_conn as f64 / ramp_s
        } else {
            0.0
        },
        connect_ms: Percentiles::of(&mut connect_ms),
        publish_s: secs(publish_wall),
        msg_per_s: delivery.received as f64 / secs(opts.duration).max(1e-9),
        publish_failures,
        first_publish_error,
        delivery,
        latency_ms: Percentiles::of(&mut lat),
        cpu: CpuFigures {
            simulator_ramp_s: secs(cpu_ramp),
            broker_ramp_s: secs(bcpu_ramp),
            simulator_per_handshake_ms: per(cpu_ramp),
            broker_per_handshake_ms: per(bcpu_ramp),
            simulator_publish_s: secs(cpu_pub),
            broker_publish_s: secs(bcpu_pub),
        },
        memory: MemoryFigures {
            simulator_base_kib: base_rss,
            simulator_connected_kib: connected_rss,
            per_device_kib: connected_rss.saturating_sub(base_rss) as f64 / n as f64,
            broker_connected_kib: broker_rss,
            broker_per_device_kib: if n_conn > 0 {
                broker_rss as f64 / n_conn as f64
            } else {
                0.0
            },
        },
    };
    if !report.ok() {
        keep(&mut tmp);
    }
    Ok(report)
}
