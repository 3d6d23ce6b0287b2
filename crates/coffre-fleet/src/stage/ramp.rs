//! Stage 3, ramp: one thread per device, started at a steady rate; each
//! connects (TCP, full mutual-TLS handshake signed by its chip, CONNACK)
//! and waits for the publishing phase.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::device::{device_main, DeviceCtx, DeviceResult, Gate};
use crate::options::Progress;
use crate::stage::broker::Broker;
use crate::stage::provision::Device;
use crate::util::{self, Usage};

/// What the ramp stage needs.
#[derive(Debug, Clone)]
pub struct RampPlan {
    /// New connections per second.
    pub rate: f64,
    /// Stack size of each device thread.
    pub stack_size: usize,
    /// One reading per device every `interval` in the publishing phase.
    pub interval: Duration,
    /// Length of the publishing phase.
    pub duration: Duration,
    /// The clock origin shared with the subscriber (send timestamps).
    pub origin: Instant,
}

/// Figures of the ramp.
#[derive(Debug, Clone)]
pub struct RampFigures {
    /// When the first connection was attempted.
    pub started: Instant,
    /// First attempt → every device connected or failed.
    pub wall: Duration,
    /// Devices connected.
    pub connected: usize,
    /// Devices that could not connect (or whose thread could not start).
    pub failed: usize,
    /// Threads that could not be started, with what to do about it.
    pub spawn_errors: Vec<String>,
    /// CPU of the simulator and the broker during the ramp.
    pub cpu: Usage,
    /// Simulator resident memory with every device connected, KiB.
    pub rss_kib: u64,
    /// Broker resident memory with every device connected, KiB.
    pub broker_rss_kib: u64,
}

/// The device threads, connected and waiting for the publishing phase.
#[derive(Debug)]
pub struct Connected {
    pub(crate) handles: Vec<(usize, JoinHandle<DeviceResult>)>,
    pub(crate) gate: Arc<Gate>,
    pub(crate) devices: usize,
}

/// What the ramp stage produces.
#[derive(Debug)]
pub struct Ramped {
    /// The devices, ready to publish.
    pub fleet: Connected,
    /// How the ramp went.
    pub figures: RampFigures,
}

/// Start one thread per device at `plan.rate` per second; return once each
/// has connected or failed.
pub fn ramp(
    broker: &Broker,
    devices: Vec<Device>,
    plan: &RampPlan,
    progress: &mut dyn FnMut(Progress),
) -> Ramped {
    let n = devices.len();
    let gate = Arc::new(Gate::default());
    let connected = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let ctx = Arc::new(DeviceCtx {
        brokers: broker.device_addrs().to_vec(),
        version: broker.mqtt_version(),
        failover: broker.is_cluster(),
        sources: util::source_addresses(n),
        interval: plan.interval,
        duration: plan.duration,
        origin: plan.origin,
        gate: gate.clone(),
        connected: connected.clone(),
        failed: failed.clone(),
    });
    let report = |progress: &mut dyn FnMut(Progress)| {
        progress(Progress::Ramp(
            connected.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            n,
        ));
    };
    let cpu = broker.cpu_meter();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(n);
    let mut spawn_errors = Vec::new();
    let mut last_report = Instant::now();
    for (k, d) in devices.into_iter().enumerate() {
        let due = started + Duration::from_secs_f64(k as f64 / plan.rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let ctx = ctx.clone();
        let id = d.id().to_owned();
        let index = d.index();
        match std::thread::Builder::new()
            .name(id.clone())
            .stack_size(plan.stack_size)
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
            report(progress);
            last_report = Instant::now();
        }
    }
    while connected.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        report(progress);
        std::thread::sleep(Duration::from_millis(50));
    }
    report(progress);
    let wall = started.elapsed();
    let figures = RampFigures {
        started,
        wall,
        connected: connected.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        spawn_errors,
        cpu: cpu.read(),
        rss_kib: util::self_rss_kib(),
        broker_rss_kib: broker.rss_kib(),
    };
    Ramped {
        fleet: Connected {
            handles,
            gate,
            devices: n,
        },
        figures,
    }
}
