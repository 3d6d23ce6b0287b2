//! Every scenario of the lab, and the ones that go past it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_agent::boot::{boot, BootOptions, KeyMode};
use coffre_agent::{
    EnvSensors, Event, Identity, Publisher, PublisherOptions, SeqStatus, Subscriber,
    SubscriberOptions,
};
use coffre_emu::board::Board;

use crate::proxy::{Proxy, Tamper};
use crate::report::ScenarioResult;
use crate::setup::{self, Lab, EXPIRED_ID, FOREIGN_ID, LAB_ID, OFFLOAD_ID, REVOKED_ID, SUB_ID};

/// Lab or offload.
#[derive(Clone, Copy, PartialEq, Eq)]
enum M {
    Lab,
    Off,
}

impl M {
    fn name(self) -> &'static str {
        match self {
            M::Lab => "lab",
            M::Off => "offload",
        }
    }
    fn key_mode(self) -> KeyMode {
        match self {
            M::Lab => KeyMode::Lab,
            M::Off => KeyMode::Offload { slot: 0 },
        }
    }
}

struct Device {
    board: Board,
    identity: Option<Identity>,
    boot_error: Option<coffre_agent::Error>,
    boot_log: Vec<String>,
}

/// Boot a device from a chip image, with the certificate of `cert_id`.
fn device(lab: &Lab, chip: &str, mode: M, cert_id: &str, transcript: bool) -> Device {
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
    boot_on(lab, board, drv, mode, cert_id, false)
}

fn boot_on(
    lab: &Lab,
    board: Board,
    drv: coffre_driver::Atecc<coffre_emu::EmuBus, coffre_emu::clock::EmuDelay>,
    mode: M,
    cert_id: &str,
    allow_unlocked: bool,
) -> Device {
    let mut log = Vec::new();
    let r = boot(
        drv,
        &BootOptions {
            mode: mode.key_mode(),
            allow_unlocked,
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

/// What a publisher run showed.
#[derive(Default)]
struct Run {
    error: Option<String>,
    reconnects: Vec<String>,
    connected: Vec<String>,
    pubacks: Vec<(u64, u8)>,
    disconnects: Vec<String>,
    published: u64,
}

fn publish(
    lab: &Lab,
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
    let _ = lab;
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

struct Ctx<'a> {
    lab: &'a mut Lab,
    results: Vec<ScenarioResult>,
    progress: &'a mut dyn FnMut(&str),
}

impl Ctx<'_> {
    fn log_mark(&self) -> usize {
        self.lab.broker.log().lines().count()
    }

    fn log_since(&self, mark: usize) -> Vec<String> {
        self.lab
            .broker
            .log()
            .lines()
            .skip(mark)
            .map(str::to_string)
            .collect()
    }

    /// Wait (up to 3 s) for a new broker log line containing `needle`.
    fn wait_log(&self, mark: usize, needle: &str) -> Option<String> {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self
                .log_since(mark)
                .into_iter()
                .find(|l| l.contains(needle))
            {
                return Some(l);
            }
            if t0.elapsed() > Duration::from_secs(3) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one row of the table, field by field"
    )]
    fn push(
        &mut self,
        id: &'static str,
        name: &str,
        mode: &str,
        expected: &str,
        observed: String,
        evidence: String,
        pass: bool,
        t0: Instant,
    ) {
        (self.progress)(&format!(
            "{} {name} ({mode})",
            if pass { "PASS" } else { "FAIL" }
        ));
        self.results.push(ScenarioResult {
            id,
            name: name.to_string(),
            mode: mode.to_string(),
            expected: expected.to_string(),
            observed,
            evidence,
            pass,
            millis: t0.elapsed().as_millis() as u64,
        });
    }
}

fn stop_never() -> AtomicBool {
    AtomicBool::new(false)
}

/// Run every scenario against the lab. Scenarios never abort the run: a
/// failure is a row marked FAIL.
pub fn run_all(lab: &mut Lab, progress: &mut dyn FnMut(&str)) -> Vec<ScenarioResult> {
    let mut c = Ctx {
        lab,
        results: Vec::new(),
        progress,
    };
    chip_absent(&mut c);
    for m in [M::Lab, M::Off] {
        wrong_chip(&mut c, m);
    }
    for m in [M::Lab, M::Off] {
        valid_and_flow(&mut c, m);
    }
    subscribe_ack(&mut c);
    refused_certificates(&mut c);
    acl(&mut c);
    tls11(&mut c);
    unlocked(&mut c);
    chip_pulled(&mut c);
    broker_restart(&mut c);
    for m in [M::Lab, M::Off] {
        bus_probe(&mut c, m);
    }
    tamper(&mut c);
    disclosure(&mut c);
    c.results
}

fn id_of(m: M) -> &'static str {
    match m {
        M::Lab => LAB_ID,
        M::Off => OFFLOAD_ID,
    }
}

fn chip_absent(c: &mut Ctx) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let (board, drv) = match setup::open(&c.lab.chip(OFFLOAD_ID)) {
        Ok(x) => x,
        Err(e) => {
            c.push(
                "chip-absent",
                "1. chip disconnected",
                "-",
                "stop at boot, no connection",
                format!("setup failed: {e}"),
                String::new(),
                false,
                t0,
            );
            return;
        }
    };
    board.bus.set_present(0x35, false);
    let dev = boot_on(c.lab, board, drv, M::Off, OFFLOAD_ID, false);
    let run = publish(
        c.lab,
        dev,
        OFFLOAD_ID,
        c.lab.broker_addr,
        |_| {},
        &stop_never(),
        |_| {},
    );
    std::thread::sleep(Duration::from_millis(100));
    let new_conn = c
        .log_since(mark)
        .iter()
        .any(|l| l.contains("New connection"));
    let err = run.error.unwrap_or_default();
    let pass = err.contains("not answering") && !new_conn && run.connected.is_empty();
    c.push(
        "chip-absent",
        "1. chip disconnected",
        "-",
        "stop at boot; no connection reaches the broker",
        if new_conn {
            "a connection reached the broker".into()
        } else {
            "stopped at step 1; broker log shows no new connection".into()
        },
        format!("client: {err}"),
        pass,
        t0,
    );
}

fn wrong_chip(c: &mut Ctx, m: M) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let (chip, id) = match m {
        M::Lab => ("wrong-lab", LAB_ID),
        M::Off => ("wrong", OFFLOAD_ID),
    };
    let dev = device(c.lab, chip, m, id, false);
    let run = publish(
        c.lab,
        dev,
        id,
        c.lab.broker_addr,
        |o| {
            o.preflight = false;
            o.backoff.max = Duration::from_millis(50);
        },
        &stop_never(),
        |_| {},
    );
    let line = c.wait_log(mark, "bad signature");
    let pass = line.is_some() && run.connected.is_empty();
    c.push(
        "wrong-chip",
        "2. wrong chip (key ≠ certificate)",
        m.name(),
        "broker logs 'bad signature', closes",
        if run.connected.is_empty() {
            "handshake refused, no MQTT session".into()
        } else {
            "CONNECTED with the wrong key".into()
        },
        format!(
            "broker: {} | client: {}",
            line.unwrap_or_else(|| "(no 'bad signature' line)".into()),
            run.error.unwrap_or_default()
        ),
        pass,
        t0,
    );
}

fn valid_and_flow(c: &mut Ctx, m: M) {
    // 3 (publisher side) and 4: the subscriber receives every reading, in order.
    let t0 = Instant::now();
    let id = id_of(m);
    let n = 5u64;
    let sub = device(c.lab, SUB_ID, M::Off, SUB_ID, false);
    let Some(sub_identity) = sub.identity else {
        c.push(
            "pub-sub",
            "4. publisher → subscriber",
            m.name(),
            "all readings arrive in order",
            format!(
                "subscriber did not boot: {:?}",
                sub.boot_error.map(|e| e.to_string())
            ),
            String::new(),
            false,
            t0,
        );
        return;
    };
    let mut sopts = SubscriberOptions::new(c.lab.broker_addr.into(), SUB_ID);
    sopts.max_messages = Some(n);
    let ready = Arc::new(AtomicBool::new(false));
    let stop_sub = Arc::new(AtomicBool::new(false));
    let sub_thread = {
        let ready = ready.clone();
        let stop_sub = stop_sub.clone();
        std::thread::spawn(move || {
            let mut s = match Subscriber::new(sopts, sub_identity) {
                Ok(s) => s,
                Err(e) => return Err(e.to_string()),
            };
            let mut seqs = Vec::new();
            let r = s.run(&stop_sub, |ev| match ev {
                Event::Subscribed { .. } => ready.store(true, Ordering::SeqCst),
                Event::Received(d) => {
                    if let (Some(r), Some(st)) = (&d.reading, d.status) {
                        seqs.push((r.device.clone(), r.seq, st, d.latency));
                    }
                }
                _ => {}
            });
            r.map(|_| seqs).map_err(|e| e.to_string())
        })
    };
    let t_ready = Instant::now();
    while !ready.load(Ordering::SeqCst) && t_ready.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let dev = device(c.lab, id, m, id, false);
    let run = publish(
        c.lab,
        dev,
        id,
        c.lab.broker_addr,
        |o| o.count = Some(n),
        &stop_never(),
        |_| {},
    );
    let t_wait = Instant::now();
    while !sub_thread.is_finished() && t_wait.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop_sub.store(true, Ordering::SeqCst);
    let got = sub_thread
        .join()
        .unwrap_or_else(|_| Err("subscriber panicked".into()));
    // 3. valid chip: mutual TLS succeeded.
    let ok3 = !run.connected.is_empty() && run.error.is_none();
    c.push(
        "valid-chip",
        "3. valid chip: mutual TLS",
        m.name(),
        "handshake succeeds, session opens",
        if ok3 {
            "connected".into()
        } else {
            "refused".into()
        },
        run.connected
            .first()
            .cloned()
            .or(run.error.clone())
            .unwrap_or_default(),
        ok3,
        t0,
    );
    let t1 = Instant::now();
    match got {
        Ok(seqs) => {
            let mine: Vec<_> = seqs.iter().filter(|s| s.0 == id).collect();
            let in_order = mine
                .iter()
                .enumerate()
                .all(|(i, s)| i == 0 || matches!(s.2, SeqStatus::InOrder));
            let lat: Vec<f64> = mine
                .iter()
                .filter_map(|s| s.3)
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            let mean = if lat.is_empty() {
                0.0
            } else {
                lat.iter().sum::<f64>() / lat.len() as f64
            };
            let pass = mine.len() as u64 == n && in_order;
            c.push(
                "pub-sub",
                "4. publisher → subscriber",
                m.name(),
                &format!("{n} readings arrive, in order"),
                format!(
                    "{} of {n} received{}",
                    mine.len(),
                    if in_order {
                        ", in order"
                    } else {
                        ", OUT OF ORDER"
                    }
                ),
                format!(
                    "subscriber: seq {:?}, mean latency {mean:.1} ms; PUBACKs {:?}",
                    mine.iter().map(|s| s.1).collect::<Vec<_>>(),
                    run.pubacks.iter().map(|p| p.1).collect::<Vec<_>>()
                ),
                pass,
                t1,
            );
        }
        Err(e) => c.push(
            "pub-sub",
            "4. publisher → subscriber",
            m.name(),
            "readings arrive",
            format!("subscriber error: {e}"),
            String::new(),
            false,
            t1,
        ),
    }
}

fn subscribe_ack(c: &mut Ctx) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let dev = device(c.lab, SUB_ID, M::Off, SUB_ID, false);
    let Some(identity) = dev.identity else {
        c.push(
            "valid-chip",
            "3. valid chip: SUBSCRIBE acknowledged",
            "offload",
            "SUBACK for m5go/env",
            "subscriber did not boot".into(),
            String::new(),
            false,
            t0,
        );
        return;
    };
    let o = SubscriberOptions::new(c.lab.broker_addr.into(), SUB_ID);
    let mut reason = None;
    let stop = AtomicBool::new(false);
    let r = Subscriber::new(o, identity).and_then(|mut s| {
        s.run(&stop, |ev| {
            if let Event::Subscribed { reason: r, .. } = ev {
                reason = Some(r.to_string());
                stop.store(true, Ordering::SeqCst);
            }
        })
    });
    let line = c.wait_log(mark, "m5go/env");
    let pass = reason.as_deref().is_some_and(|r| r.contains("Granted"));
    c.push(
        "valid-chip",
        "3. valid chip: SUBSCRIBE acknowledged",
        "offload",
        "SUBACK granted for m5go/env",
        reason
            .clone()
            .unwrap_or_else(|| format!("no SUBACK: {:?}", r.err().map(|e| e.to_string()))),
        format!(
            "SUBACK {} | broker: {}",
            reason.unwrap_or_default(),
            line.unwrap_or_default()
        ),
        pass,
        t0,
    );
}

fn refused_certificates(c: &mut Ctx) {
    // No client certificate at all.
    {
        let t0 = Instant::now();
        let mark = c.log_mark();
        let r = no_cert_connect(c.lab);
        let line = c.wait_log(mark, "certificate");
        let pass = r.is_err() && line.is_some();
        c.push(
            "no-client-cert",
            "no client certificate",
            "-",
            "handshake refused",
            r.err().unwrap_or_else(|| "CONNECTED".into()),
            format!("broker: {}", line.unwrap_or_default()),
            pass,
            t0,
        );
    }
    for (sid, name, cert_id, alert) in [
        (
            "foreign-ca",
            "certificate from a foreign CA",
            FOREIGN_ID,
            "UnknownCA",
        ),
        (
            "expired-cert",
            "expired certificate",
            EXPIRED_ID,
            "CertificateExpired",
        ),
        (
            "revoked-cert",
            "revoked certificate (CRL)",
            REVOKED_ID,
            "CertificateRevoked",
        ),
    ] {
        let needle = "certificate verify failed";
        let t0 = Instant::now();
        let mark = c.log_mark();
        let chip = if cert_id == REVOKED_ID {
            "revoked"
        } else {
            "wrong"
        };
        let dev = device(c.lab, chip, M::Off, cert_id, false);
        let run = publish(
            c.lab,
            dev,
            cert_id,
            c.lab.broker_addr,
            |o| o.preflight = false,
            &stop_never(),
            |_| {},
        );
        let line = c.wait_log(mark, needle);
        let err = run.error.unwrap_or_default();
        let pass = run.connected.is_empty() && line.is_some() && err.contains(alert);
        c.push(
            sid,
            name,
            "offload",
            &format!("refused: broker sends alert {alert}"),
            if run.connected.is_empty() {
                format!(
                    "refused with alert {}",
                    if err.contains(alert) {
                        alert
                    } else {
                        "(other)"
                    }
                )
            } else {
                "CONNECTED".into()
            },
            format!(
                "broker: {} | client: {err}",
                line.unwrap_or_else(|| format!("(no '{needle}' line)"))
            ),
            pass,
            t0,
        );
    }
}

/// A TLS client that offers no certificate.
fn no_cert_connect(lab: &Lab) -> Result<(), String> {
    let mut roots = rustls::RootCertStore::empty();
    let mut rd = std::io::BufReader::new(&lab.ca_pem[..]);
    for cert in rustls_pemfile_certs(&mut rd) {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let copts = coffre_agent::mqtt::ClientOptions::new(lab.broker_addr.into(), "no-cert");
    coffre_agent::mqtt::Client::connect(&copts, Arc::new(cfg))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn rustls_pemfile_certs(
    rd: &mut dyn std::io::BufRead,
) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    let mut all = Vec::new();
    let _ = rd.read_to_end(&mut all);
    rustls::pki_types::CertificateDer::pem_slice_iter(&all)
        .filter_map(|c| c.ok())
        .collect()
}

fn acl(c: &mut Ctx) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let dev = device(c.lab, OFFLOAD_ID, M::Off, OFFLOAD_ID, false);
    let run = publish(
        c.lab,
        dev,
        OFFLOAD_ID,
        c.lab.broker_addr,
        |o| o.topic = "factory/secrets".into(),
        &stop_never(),
        |_| {},
    );
    let line = c.wait_log(mark, "Denied PUBLISH");
    let reason = run.pubacks.first().map(|p| p.1);
    let pass = reason == Some(0x87);
    c.push(
        "acl",
        "publish outside the ACL",
        "offload",
        "MQTT 5 PUBACK 0x87 Not authorized",
        match reason {
            Some(r) => format!("PUBACK 0x{r:02X}"),
            None => format!("no PUBACK: {}", run.error.unwrap_or_default()),
        },
        format!(
            "PUBACK reason 0x{:02X} (Not authorized) for topic factory/secrets{}",
            reason.unwrap_or(0),
            line.map(|l| format!(" | broker: {l}")).unwrap_or_default()
        ),
        pass,
        t0,
    );
}

fn tls11(c: &mut Ctx) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &c.lab.broker_addr.to_string(),
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
            "-CAfile",
        ])
        .arg(c.lab.pki_dir.join("ca.crt.pem"))
        .stdin(std::process::Stdio::null())
        .output();
    let (ok, client) = match out {
        Ok(o) => (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .find(|l| l.contains("alert") || l.contains("error"))
                .unwrap_or("")
                .to_string(),
        ),
        Err(e) => (true, format!("openssl not runnable: {e}")),
    };
    let line = c.wait_log(mark, "protocol");
    let pass = !ok && line.is_some();
    c.push(
        "tls-1.1",
        "TLS 1.1 offered",
        "-",
        "refused: TLS 1.2 minimum",
        if ok {
            "TLS 1.1 ACCEPTED".into()
        } else {
            "handshake refused".into()
        },
        format!("broker: {} | openssl: {client}", line.unwrap_or_default()),
        pass,
        t0,
    );
}

fn unlocked(c: &mut Ctx) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let dev = device(c.lab, "blank", M::Off, OFFLOAD_ID, false);
    let err = dev
        .boot_error
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let step4 = dev
        .boot_log
        .iter()
        .find(|l| l.starts_with("[4/5]"))
        .cloned()
        .unwrap_or_default();
    let run = publish(
        c.lab,
        dev,
        OFFLOAD_ID,
        c.lab.broker_addr,
        |_| {},
        &stop_never(),
        |_| {},
    );
    let new_conn = c
        .log_since(mark)
        .iter()
        .any(|l| l.contains("New connection"));
    let pass = err.contains("not locked") && run.connected.is_empty() && !new_conn;
    c.push(
        "unlocked-chip",
        "unlocked chip",
        "-",
        "refused at boot (step 4)",
        if pass {
            "refused before any connection".into()
        } else {
            "NOT refused".into()
        },
        format!("boot: {step4} | client: {err}"),
        pass,
        t0,
    );
}

fn chip_pulled(c: &mut Ctx) {
    let t0 = Instant::now();
    let dev = device(c.lab, OFFLOAD_ID, M::Off, OFFLOAD_ID, false);
    let bus = dev.board.bus.clone();
    let run = publish(
        c.lab,
        dev,
        OFFLOAD_ID,
        c.lab.broker_addr,
        |o| o.count = Some(50),
        &stop_never(),
        |seq| {
            if seq == 3 {
                bus.set_present(0x35, false);
            }
        },
    );
    let err = run.error.clone().unwrap_or_default();
    let pass = err.contains("not answering") && run.pubacks.len() >= 3 && run.pubacks.len() < 50;
    c.push(
        "chip-pulled",
        "chip pulled out while connected",
        "offload",
        "publishing stops with a clear error",
        format!("{} readings published, then stopped", run.pubacks.len()),
        format!(
            "client: {err} | session: {}",
            run.disconnects.last().cloned().unwrap_or_default()
        ),
        pass,
        t0,
    );
}

fn broker_restart(c: &mut Ctx) {
    let t0 = Instant::now();
    let n = 30u64;
    let queue = c.lab.dir.join("queue-restart");
    let _ = std::fs::remove_dir_all(&queue);
    let sub = device(c.lab, SUB_ID, M::Off, SUB_ID, false);
    let Some(sub_identity) = sub.identity else {
        c.push(
            "broker-restart",
            "broker restart mid-stream",
            "offload",
            "nothing lost",
            "subscriber did not boot".into(),
            String::new(),
            false,
            t0,
        );
        return;
    };
    let mut so = SubscriberOptions::new(c.lab.broker_addr.into(), "m5stack");
    so.persistent_session = true;
    so.max_messages = None;
    so.backoff.max = Duration::from_millis(200);
    let received: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(AtomicBool::new(false));
    let stop_sub = Arc::new(AtomicBool::new(false));
    let sub_thread = {
        let (received, ready, stop_sub) = (received.clone(), ready.clone(), stop_sub.clone());
        std::thread::spawn(move || {
            if let Ok(mut s) = Subscriber::new(so, sub_identity) {
                let _ = s.run(&stop_sub, |ev| match ev {
                    Event::Subscribed { .. } => ready.store(true, Ordering::SeqCst),
                    Event::Received(d) => {
                        if let Some(r) = d.reading.as_ref().filter(|r| r.device == OFFLOAD_ID) {
                            if let Ok(mut v) = received.lock() {
                                v.push(r.seq);
                            }
                        }
                    }
                    _ => {}
                });
            }
        })
    };
    let tr = Instant::now();
    while !ready.load(Ordering::SeqCst) && tr.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let published = Arc::new(Mutex::new(0u64));
    let pub_thread = {
        let dev = device(c.lab, OFFLOAD_ID, M::Off, OFFLOAD_ID, false);
        let addr = c.lab.broker_addr;
        let published = published.clone();
        let queue = queue.clone();
        std::thread::spawn(move || {
            let Some(identity) = dev.identity else {
                return Err("did not boot".to_string());
            };
            let mut o = PublisherOptions::new(addr.into(), OFFLOAD_ID);
            o.count = Some(n);
            o.interval = Duration::from_millis(30);
            o.queue_dir = Some(queue);
            o.backoff.max = Duration::from_millis(200);
            let sensors = EnvSensors::new(dev.board.bus.clone(), dev.board.delay());
            let mut p = Publisher::new(o, identity, sensors).map_err(|e| e.to_string())?;
            p.run(&AtomicBool::new(false), |ev| {
                if let Event::Published { .. } = ev {
                    if let Ok(mut x) = published.lock() {
                        *x += 1;
                    }
                }
            })
            .map_err(|e| e.to_string())
        })
    };
    // Restart the broker once a few readings are through.
    let tw = Instant::now();
    while published.lock().map(|x| *x).unwrap_or(0) < 5 && tw.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let restart = c.lab.broker.restart();
    let pub_result = pub_thread
        .join()
        .unwrap_or_else(|_| Err("publisher panicked".into()));
    let tw = Instant::now();
    while received.lock().map(|v| v.len() as u64).unwrap_or(0) < n
        && tw.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop_sub.store(true, Ordering::SeqCst);
    let _ = sub_thread.join();
    let mut got = received.lock().map(|v| v.clone()).unwrap_or_default();
    got.sort_unstable();
    got.dedup();
    let first = got.first().copied().unwrap_or(0);
    let missing = (first..first + n)
        .filter(|s| got.binary_search(s).is_err())
        .count();
    let pass = restart.is_ok() && pub_result.is_ok() && got.len() as u64 == n && missing == 0;
    c.push(
        "broker-restart",
        "broker restart mid-stream",
        "offload",
        &format!("all {n} readings arrive (QoS 1 + queue)"),
        format!(
            "{} of {n} distinct readings received, {missing} missing",
            got.len()
        ),
        format!(
            "broker restarted after 5 PUBACKs ({}); publisher: {}",
            if restart.is_ok() {
                "ok"
            } else {
                "restart failed"
            },
            match &pub_result {
                Ok(s) => format!("{} published over {} sessions", s.published, s.connections),
                Err(e) => e.clone(),
            }
        ),
        pass,
        t0,
    );
}

fn bus_probe(c: &mut Ctx, m: M) {
    let t0 = Instant::now();
    let id = id_of(m);
    let dev = device(c.lab, id, m, id, true);
    let board = dev.board.clone();
    let run = publish(
        c.lab,
        dev,
        id,
        c.lab.broker_addr,
        |_| {},
        &stop_never(),
        |_| {},
    );
    let t = board.bus.take_transcript();
    let (pass, observed, evidence) = match m {
        M::Lab => {
            let slot8 = board.with_chip(|ch| ch.nv().slot(8).to_vec());
            let blocks: Vec<&[u8]> = slot8
                .chunks(32)
                .filter(|b| b.iter().any(|&x| x != 0))
                .collect();
            let seen = blocks.iter().filter(|b| t.contains(b)).count();
            let len = u16::from_be_bytes([slot8[0], slot8[1]]);
            (
                seen == blocks.len() && !blocks.is_empty(),
                format!("{seen} of {} key blocks seen on the bus", blocks.len()),
                format!("a probe on SDA reads slot 8 in 13 block reads: length {len:#06x}, DER 30 81 … in clear; {} bus events", t.events.len()),
            )
        }
        M::Off => {
            let scalar = board.with_chip(|ch| ch.nv().slot(0)[4..36].to_vec());
            let leaks = scalar.windows(4).filter(|w| t.contains(w)).count();
            let signs = t.to_text().matches("command Sign").count();
            (
                leaks == 0 && signs > 0 && run.error.is_none(),
                format!("{leaks} private-key bytes on the bus ({signs} Sign commands)"),
                format!("the handshake signature was made by the chip: {signs} Sign command(s), digest in, r‖s out; no 4-byte run of the key in {} bus events", t.events.len()),
            )
        }
    };
    c.push(
        "bus-probe",
        "bus probe during boot and handshake",
        m.name(),
        match m {
            M::Lab => "the key's bytes are on the I2C bus",
            M::Off => "no key byte on the I2C bus",
        },
        observed,
        evidence,
        pass,
        t0,
    );
}

fn tamper(c: &mut Ctx) {
    let t0 = Instant::now();
    let mark = c.log_mark();
    let proxy = match Proxy::start(c.lab.broker_addr, Tamper::FlipFirstAppDataByte) {
        Ok(p) => p,
        Err(e) => {
            c.push(
                "tamper",
                "MITM flips one byte of the TLS stream",
                "offload",
                "connection dropped",
                format!("proxy failed: {e}"),
                String::new(),
                false,
                t0,
            );
            return;
        }
    };
    let dev = device(c.lab, OFFLOAD_ID, M::Off, OFFLOAD_ID, false);
    let run = publish(
        c.lab,
        dev,
        OFFLOAD_ID,
        proxy.addr(),
        |o| {
            o.server_name = Some("localhost".into());
            o.backoff.max = Duration::from_millis(100);
        },
        &stop_never(),
        |_| {},
    );
    let cap = proxy.capture();
    let line = c.wait_log(mark, "OpenSSL Error");
    let dropped = !run.reconnects.is_empty();
    let pass = cap.flipped && line.is_some() && dropped && !run.pubacks.is_empty();
    c.push(
        "tamper",
        "MITM flips one byte of the TLS stream",
        "offload",
        "broker detects it and drops the connection",
        if pass {
            "connection dropped; the device reconnected and delivered".into()
        } else {
            format!("flipped={} dropped={dropped}", cap.flipped)
        },
        format!(
            "broker: {} | device: {}; {}",
            line.unwrap_or_default(),
            run.disconnects
                .iter()
                .find(|d| !d.starts_with("clean"))
                .cloned()
                .unwrap_or_else(|| "link lost".into()),
            run.reconnects
                .first()
                .cloned()
                .unwrap_or_else(|| run.error.clone().unwrap_or_default())
        ),
        pass,
        t0,
    );
}

fn disclosure(c: &mut Ctx) {
    for tls13 in [false, true] {
        let t0 = Instant::now();
        let Ok(proxy) = Proxy::start(c.lab.broker_addr, Tamper::None) else {
            continue;
        };
        let dev = device(c.lab, OFFLOAD_ID, M::Off, OFFLOAD_ID, false);
        let run = publish(
            c.lab,
            dev,
            OFFLOAD_ID,
            proxy.addr(),
            |o| {
                o.server_name = Some("localhost".into());
                o.count = Some(3);
                o.tls13 = tls13;
            },
            &stop_never(),
            |_| {},
        );
        let cap = proxy.capture();
        let secrets: [&[u8]; 3] = [b"m5go/env", b"temperature_c", b"\"seq\""];
        let leaked: Vec<String> = secrets
            .iter()
            .filter(|s| cap.contains(s))
            .map(|s| String::from_utf8_lossy(s).to_string())
            .collect();
        let cn_visible = cap.contains(OFFLOAD_ID.as_bytes());
        let pass = leaked.is_empty() && run.pubacks.len() == 3 && cap.to_broker.len() > 100;
        c.push(
            "disclosure",
            if tls13 { "network capture (TLS 1.3)" } else { "network capture (TLS 1.2)" },
            "offload",
            "no plaintext topic or reading on the wire",
            if leaked.is_empty() { "nothing readable".into() } else { format!("LEAKED: {}", leaked.join(", ")) },
            format!(
                "{} bytes captured, 3 readings published; topic, payload keys and values absent; the certificate CN '{OFFLOAD_ID}' is {} (TLS {} sends the client certificate {})",
                cap.to_broker.len() + cap.to_client.len(),
                if cn_visible { "visible" } else { "not visible" },
                if tls13 { "1.3" } else { "1.2" },
                if tls13 { "encrypted" } else { "in clear" }
            ),
            pass,
            t0,
        );
    }
}
