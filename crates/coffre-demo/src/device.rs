//! The devices scenarios play with: boot one from a chip image, run a
//! publisher or a subscriber with it, and keep what happened.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffre_agent::boot::{boot, BootOptions};
use coffre_agent::{
    EnvSensors, Event, Identity, Publisher, PublisherOptions, Subscriber, SubscriberOptions,
};
use coffre_emu::board::Board;

use crate::scenario::Mode;
use crate::setup::{self, Lab};

/// An emulated device after its five-step boot.
pub struct Device {
    /// Its board (chip and sensors on one bus).
    pub board: Board,
    /// Its identity, when it booted.
    pub identity: Option<Identity>,
    /// Why it did not boot.
    pub boot_error: Option<coffre_agent::Error>,
    /// The boot's steps, `[n/5] …`.
    pub boot_log: Vec<String>,
}

impl Device {
    /// Boot the chip image `chip` in `mode`, with the certificate of
    /// `cert_id`; `transcript` records the bus from the start.
    pub fn boot(lab: &Lab, chip: &str, mode: Mode, cert_id: &str, transcript: bool) -> Device {
        let (board, drv) = match setup::open(&lab.chip(chip)) {
            Ok(x) => x,
            Err(e) => {
                let board = Board::new(
                    coffre_emu::presets::Preset::Blank.build(),
                    coffre_emu::clock::Timing::Instant,
                );
                return Device {
                    board,
                    identity: None,
                    boot_error: Some(coffre_agent::Error::InvalidOption(e.to_string())),
                    boot_log: Vec::new(),
                };
            }
        };
        if transcript {
            board.bus.start_transcript();
        }
        Device::boot_on(lab, board, drv, mode, cert_id)
    }

    /// Boot a board already open (a scenario may change it first).
    pub fn boot_on(lab: &Lab, board: Board, drv: setup::Chip, mode: Mode, cert_id: &str) -> Device {
        Device::boot_with(lab, board, drv, mode, cert_id, None)
    }

    /// [`Device::boot_on`] with the IO protection key the device keeps in
    /// its flash (lab mode on a hardened chip).
    pub fn boot_with(
        lab: &Lab,
        board: Board,
        drv: setup::Chip,
        mode: Mode,
        cert_id: &str,
        io_key: Option<coffre_agent::boot::IoKey>,
    ) -> Device {
        let mut log = Vec::new();
        let r = boot(
            drv,
            &BootOptions {
                mode: mode.key_mode(),
                allow_unlocked: false,
                io_key,
            },
            &mut |step, m| log.push(format!("[{step}/5] {m}")),
        );
        match r {
            Ok((key, _)) => {
                let cert = std::fs::read(lab.cert(cert_id)).unwrap_or_default();
                Device {
                    board,
                    identity: Some(Identity {
                        ca_pem: lab.ca_pem.clone(),
                        cert_chain_pem: cert,
                        key,
                    }),
                    boot_error: None,
                    boot_log: log,
                }
            }
            Err(e) => Device {
                board,
                identity: None,
                boot_error: Some(e),
                boot_log: log,
            },
        }
    }
}

/// What a publisher run showed.
#[derive(Debug, Default)]
pub struct Run {
    /// Why it ended in error.
    pub error: Option<String>,
    /// `reconnect N in M ms`, one per retry.
    pub reconnects: Vec<String>,
    /// `mutual TLS…, CONNACK after … ms`, one per session.
    pub connected: Vec<String>,
    /// (sequence number, PUBACK reason code).
    pub pubacks: Vec<(u64, u8)>,
    /// How each session ended.
    pub disconnects: Vec<String>,
    /// Readings acknowledged.
    pub published: u64,
}

/// Run a publisher as `id` on `dev` against `broker`: one reading every
/// 20 ms (one in all unless `tweak` says otherwise), stopping on `stop`.
/// `on_published` sees each acknowledged sequence number.
pub fn publish(
    dev: Device,
    id: &str,
    broker: std::net::SocketAddr,
    tweak: impl FnOnce(&mut PublisherOptions),
    stop: &AtomicBool,
    mut on_published: impl FnMut(u64),
) -> Run {
    let mut run = Run::default();
    let Some(identity) = dev.identity else {
        run.error = dev.boot_error.map(|e| e.to_string());
        return run;
    };
    let mut opts = PublisherOptions::new(broker.into(), id);
    opts.interval = Duration::from_millis(20);
    opts.count = Some(1);
    opts.connect_timeout = Duration::from_secs(5);
    opts.timeout = Duration::from_secs(5);
    tweak(&mut opts);
    let sensors = EnvSensors::new(dev.board.bus.clone(), dev.board.delay());
    let mut p = match Publisher::new(opts, identity, sensors) {
        Ok(p) => p,
        Err(e) => {
            run.error = Some(e.to_string());
            return run;
        }
    };
    let r = p.run(stop, |ev| match ev {
        Event::Connected {
            tls_version,
            elapsed,
            ..
        } => run.connected.push(format!(
            "mutual {tls_version}, CONNACK after {:.1} ms",
            elapsed.as_secs_f64() * 1000.0
        )),
        Event::Published {
            seq, puback_reason, ..
        } => {
            run.pubacks.push((*seq, puback_reason.0));
            on_published(*seq);
        }
        Event::Reconnecting { delay, attempt } => run
            .reconnects
            .push(format!("reconnect {attempt} in {} ms", delay.as_millis())),
        Event::Disconnected { error } => run.disconnects.push(match error {
            None => "clean DISCONNECT + close_notify".into(),
            Some(e) => e.to_string(),
        }),
        _ => {}
    });
    match r {
        Ok(s) => run.published = s.published,
        Err(e) => run.error = Some(e.to_string()),
    }
    run
}

/// A publisher run that nothing stops but itself.
pub fn publish_once(
    dev: Device,
    id: &str,
    broker: std::net::SocketAddr,
    tweak: impl FnOnce(&mut PublisherOptions),
) -> Run {
    publish(dev, id, broker, tweak, &AtomicBool::new(false), |_| {})
}

/// A subscriber running on its own thread, handing each event to `on_event`.
pub struct Listening<T> {
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<T, String>>,
}

impl<T: Send + 'static> Listening<T> {
    /// Start a subscriber with `opts` and `identity`; `on_event` folds its
    /// events into a `T`, returned by [`Listening::finish`].
    pub fn start(
        opts: SubscriberOptions,
        identity: Identity,
        mut acc: T,
        mut on_event: impl FnMut(&mut T, &Event) + Send + 'static,
    ) -> Listening<T> {
        let ready = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (ready, stop) = (ready.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut s = Subscriber::new(opts, identity).map_err(|e| e.to_string())?;
                s.run(&stop, |ev| {
                    if let Event::Subscribed { .. } = ev {
                        ready.store(true, Ordering::SeqCst);
                    }
                    on_event(&mut acc, ev);
                })
                .map_err(|e| e.to_string())?;
                Ok(acc)
            })
        };
        Listening {
            ready,
            stop,
            thread,
        }
    }

    /// Wait up to `limit` for the SUBACK.
    pub fn wait_subscribed(&self, limit: Duration) -> bool {
        wait_until(limit, || self.ready.load(Ordering::SeqCst))
    }

    /// Wait up to `limit` for the subscriber to end by itself.
    pub fn wait_finished(&self, limit: Duration) -> bool {
        wait_until(limit, || self.thread.is_finished())
    }

    /// Stop it and take what it gathered.
    pub fn finish(self) -> Result<T, String> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread
            .join()
            .unwrap_or_else(|_| Err("subscriber panicked".into()))
    }
}

/// Check `done` every 10 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    loop {
        if done() {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What a watched subscriber saw, each event with when it came.
#[derive(Debug, Default, Clone)]
pub struct Watch {
    /// Sessions opened.
    pub connected: usize,
    /// The subscription was acknowledged.
    pub subscribed: bool,
    /// Each session the broker ended or attempt that failed, and why.
    pub disconnects: Vec<(Instant, String)>,
    /// Readings received: when, from which device, sequence number.
    pub readings: Vec<(Instant, String, u64)>,
}

/// A subscriber on its own thread whose events can be read while it runs.
pub struct Watched {
    state: Arc<std::sync::Mutex<Watch>>,
    listening: Listening<()>,
}

impl Watched {
    /// Boot the chip image `chip` (offload mode) with the certificate of
    /// `id` and subscribe as `id`, reconnecting after 100 ms at most.
    pub fn start(lab: &Lab, chip: &str, id: &str) -> Result<Watched, String> {
        let dev = Device::boot(lab, chip, Mode::Offload, id, false);
        let Some(identity) = dev.identity else {
            return Err(format!(
                "{id} did not boot: {}",
                dev.boot_error.map(|e| e.to_string()).unwrap_or_default()
            ));
        };
        let mut o = SubscriberOptions::new(lab.broker_addr.into(), id);
        o.backoff.max = Duration::from_millis(100);
        let state = Arc::new(std::sync::Mutex::new(Watch::default()));
        let listening = {
            let state = state.clone();
            Listening::start(o, identity, (), move |_, ev| {
                let Ok(mut w) = state.lock() else {
                    return;
                };
                match ev {
                    Event::Connected { .. } => w.connected += 1,
                    Event::Subscribed { .. } => w.subscribed = true,
                    // A clean DISCONNECT is ours, when it is stopped.
                    Event::Disconnected { error: Some(e) } => {
                        w.disconnects.push((Instant::now(), e.to_string()))
                    }
                    Event::Received(d) => {
                        if let Some(r) = &d.reading {
                            w.readings.push((Instant::now(), r.device.clone(), r.seq));
                        }
                    }
                    _ => {}
                }
            })
        };
        Ok(Watched { state, listening })
    }

    /// What it saw so far.
    pub fn seen(&self) -> Watch {
        self.state.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Wait up to `limit` until what it saw satisfies `done`.
    pub fn wait(&self, limit: Duration, done: impl Fn(&Watch) -> bool) -> bool {
        wait_until(limit, || done(&self.seen()))
    }

    /// Stop it: what it saw, and how its run ended.
    pub fn finish(self) -> (Watch, Result<(), String>) {
        let r = self.listening.finish();
        let seen = self.state.lock().map(|w| w.clone()).unwrap_or_default();
        (seen, r)
    }
}
