//! Time `coffre_agent::one_shot` (connect + one QoS 1 PUBLISH + clean
//! disconnect) against a local Mosquitto, in process and as whole
//! processes next to `mosquitto_pub`.
//!
//! ```text
//! cargo run --release -p coffre-agent --example one_shot_bench [-- RUNS]
//! ```
//!
//! It starts two brokers, one with `set_tcp_nodelay true` and one with
//! Mosquitto's default (Nagle on), and measures TLS 1.2 and 1.3 with and
//! without `TCP_QUICKACK` on the client. With `once PORT CA CERT KEY TLS13
//! QUICKACK` it runs a single one-shot and exits (the process measured).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coffre_agent::mqtt::ClientOptions;
use coffre_agent::{one_shot, BrokerAddr, KeySource, OneShotOptions, QoS, TlsOptions};
use common::{Broker, BrokerConfig, Pki, LAB_ID};

const PAYLOAD: &[u8] = br#"{"device":"m5go-lab","seq":1,"ts":"2025-05-01T12:00:00Z","temperature_c":22.5,"humidity_pct":48.1,"pressure_hpa":1013.2}"#;

fn options(
    port: u16,
    ca: &[u8],
    cert: &[u8],
    key_pem: &[u8],
    tls13: bool,
    quickack: bool,
) -> OneShotOptions {
    let key = KeySource::lab_from_pem(key_pem).expect("lab key");
    let tls = coffre_agent::client_config(
        ca,
        cert,
        key,
        &TlsOptions {
            tls13,
            ..Default::default()
        },
    )
    .expect("TLS configuration");
    let mut client = ClientOptions::new(BrokerAddr::new("127.0.0.1", port), LAB_ID);
    client.quickack = quickack;
    OneShotOptions {
        client,
        tls,
        topic: "m5go/env".into(),
        payload: PAYLOAD.to_vec(),
        qos: QoS::AtLeastOnce,
    }
}

fn once(args: &[String]) {
    let [port, ca, cert, key, tls13, quickack] = args else {
        eprintln!("usage: once PORT CA CERT KEY TLS13(0|1) QUICKACK(0|1)");
        std::process::exit(2);
    };
    let read = |p: &String| std::fs::read(p).expect("readable file");
    let opts = options(
        port.parse().expect("port"),
        &read(ca),
        &read(cert),
        &read(key),
        tls13 == "1",
        quickack == "1",
    );
    if let Err(e) = one_shot(&opts) {
        eprintln!("{e}");
        std::process::exit(1);
    }
}

/// Percentile `p` (0–1) of `v`, through the project's one definition
/// (nearest rank, [`coffre_agent::stats::percentile`]).
fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    coffre_agent::stats::percentile(v, p * 100.0).unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Children's CPU time so far (utime + stime of waited-for children), from
/// /proc/self/stat, in clock ticks of 10 ms.
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3; cutime 16, cstime 17.
    let tick = |i: usize| {
        f.get(i - 3)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((tick(16) + tick(17)) * 10)
}

fn time_processes(runs: usize, mut cmd: impl FnMut() -> Command) -> (Duration, Duration, Duration) {
    let mut walls = Vec::new();
    let cpu0 = children_cpu();
    for _ in 0..runs {
        let t = Instant::now();
        let st = cmd().stdout(Stdio::null()).status().expect("process runs");
        walls.push(t.elapsed());
        assert!(st.success(), "a measured process failed");
    }
    let cpu = (children_cpu() - cpu0) / runs as u32;
    (
        percentile(&mut walls, 0.5),
        percentile(&mut walls, 0.9),
        cpu,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("once") {
        return once(&args[2..]);
    }
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let exe = std::env::current_exe().expect("own path");
    let top = tempfile::tempdir().expect("temp dir");
    println!("one_shot: connect + QoS 1 PUBLISH + DISCONNECT/close_notify, {runs} runs each, median (p90)");
    for nodelay in [true, false] {
        let dir = top.path().join(format!("nodelay-{nodelay}"));
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki::new(&dir);
        let broker = Broker::start(
            &pki,
            &BrokerConfig {
                nodelay,
                ..BrokerConfig::default()
            },
        );
        let (_der, key_pem, cert) = pki.issue_new_key_pem(LAB_ID);
        let file = |name: &str, body: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, body).unwrap();
            p
        };
        let ca_p = file("ca-client.pem", pki.ca_pem.as_bytes());
        let cert_p = file("dev.pem", cert.as_bytes());
        let key_p = file("dev.key", key_pem.as_bytes());
        println!("\nbroker set_tcp_nodelay {nodelay}");
        for tls13 in [false, true] {
            for quickack in [true, false] {
                let opts = options(
                    broker.port,
                    pki.ca_pem.as_bytes(),
                    cert.as_bytes(),
                    key_pem.as_bytes(),
                    tls13,
                    quickack,
                );
                let mut totals = Vec::new();
                let mut connacks = Vec::new();
                for _ in 0..runs {
                    let t = one_shot(&opts).expect("one_shot");
                    totals.push(t.total);
                    connacks.push(t.connect.connack);
                }
                println!(
                    "  in process  TLS 1.{} quickack {:<5}: total {} ({}), CONNECT→CONNACK {} ({})",
                    if tls13 { 3 } else { 2 },
                    quickack,
                    ms(percentile(&mut totals, 0.5)),
                    ms(percentile(&mut totals, 0.9)),
                    ms(percentile(&mut connacks, 0.5)),
                    ms(percentile(&mut connacks, 0.9)),
                );
            }
            let port = broker.port.to_string();
            let flag = if tls13 { "1" } else { "0" };
            let (m, p90, cpu) = time_processes(runs, || {
                let mut c = Command::new(&exe);
                c.args(["once", &port])
                    .arg(&ca_p)
                    .arg(&cert_p)
                    .arg(&key_p)
                    .args([flag, "1"]);
                c
            });
            println!(
                "  process     TLS 1.{} coffre one_shot : wall {} ({}), CPU ~{}",
                if tls13 { 3 } else { 2 },
                ms(m),
                ms(p90),
                ms(cpu)
            );
            let tls_version = if tls13 { "tlsv1.3" } else { "tlsv1.2" };
            let (m, p90, cpu) = time_processes(runs, || {
                let mut c = Command::new("mosquitto_pub");
                c.args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "1"])
                    .args(["-i", LAB_ID, "-t", "m5go/env", "--tls-version", tls_version])
                    .arg("--cafile")
                    .arg(&ca_p)
                    .arg("--cert")
                    .arg(&cert_p)
                    .arg("--key")
                    .arg(&key_p)
                    .arg("-m")
                    .arg(std::str::from_utf8(PAYLOAD).unwrap());
                c
            });
            println!(
                "  process     TLS 1.{} mosquitto_pub   : wall {} ({}), CPU ~{}",
                if tls13 { 3 } else { 2 },
                ms(m),
                ms(p90),
                ms(cpu)
            );
        }
        drop(broker);
        let _ = Path::new(&dir);
    }
}
