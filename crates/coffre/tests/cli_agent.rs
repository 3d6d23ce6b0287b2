//! publish, subscribe, broker run and demo through the built binary,
//! against a real mosquitto.

use std::net::TcpListener;

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn publish_and_subscribe_over_mutual_tls() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = format!("127.0.0.1:{port}");
    ok(&["pki", "init"], p);
    ok(&["emu", "new", "--out", "pub.img"], p);
    ok(&["emu", "new", "--out", "sub.img"], p);
    ok(
        &[
            "provision",
            "--bus",
            "emu:pub.img",
            "--id",
            "m5go-1",
            "--mode",
            "lab",
            "--no-lock-slot8",
        ],
        p,
    );
    ok(&["provision", "--bus", "emu:sub.img", "--id", "m5stack"], p);
    ok(
        &[
            "broker",
            "config",
            "--publisher",
            "m5go-1",
            "--subscriber",
            "m5stack",
            "--listen",
            &broker,
        ],
        p,
    );
    let _b = broker_run(p);
    let sub = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args([
            "subscribe",
            "--bus",
            "emu:sub.img",
            "--broker",
            &broker,
            "--id",
            "m5stack",
            "--count",
            "3",
            "--json",
        ])
        .current_dir(p)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let o = coffre(
        &[
            "publish",
            "--bus",
            "emu:pub.img",
            "--broker",
            &broker,
            "--id",
            "m5go-1",
            "--mode",
            "lab",
            "--count",
            "3",
            "--interval",
            "100ms",
            "--tls13",
        ],
        p,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    for step in ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"] {
        assert!(err.contains(step), "boot step {step} not logged: {err}");
    }
    assert!(
        err.contains("TLSv1.3") && err.contains("PUBACK 0x00"),
        "{err}"
    );
    let s = sub.wait_with_output().unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let readings: Vec<serde_json::Value> = String::from_utf8_lossy(&s.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(readings.len(), 3);
    for (i, r) in readings.iter().enumerate() {
        assert_eq!(r["reading"]["device"], "m5go-1");
        assert_eq!(r["reading"]["seq"], i as u64 + 1);
        let t = r["reading"]["temperature_c"].as_f64().unwrap();
        assert!((15.0..30.0).contains(&t), "{t}");
    }
    assert!(String::from_utf8_lossy(&s.stderr).contains("SUBACK for m5go/env"));

    // No chip: stop before any network activity, exit 3.
    let o = coffre(
        &[
            "publish",
            "--bus",
            "emu:pub.img@0x36",
            "--broker",
            &broker,
            "--id",
            "m5go-1",
            "--mode",
            "lab",
        ],
        p,
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A blank chip is refused unless --allow-unlocked.
    ok(
        &["emu", "new", "--preset", "blank", "--out", "blank.img"],
        p,
    );
    let o = coffre(
        &[
            "publish",
            "--bus",
            "emu:blank.img",
            "--broker",
            &broker,
            "--id",
            "m5go-1",
        ],
        p,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--allow-unlocked"));
    // The wrong certificate is caught before connecting…
    let o = coffre(
        &[
            "publish",
            "--bus",
            "emu:sub.img",
            "--broker",
            &broker,
            "--id",
            "m5go-1",
            "--count",
            "1",
        ],
        p,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("does not match"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn the_demo_passes_every_scenario() {
    let d = tempfile::tempdir().unwrap();
    let o = coffre(&["demo", "--dir", "lab", "--json"], d.path());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    let failed: Vec<_> = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["pass"] != true)
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(o.status.success());
    assert!(d.path().join("lab/scenarios.json").exists());
    assert_eq!(v["stride"].as_array().unwrap().len(), 6);
}

/// Wait up to 10 s for a line containing `needle` in the file at `path`.
fn wait_in_file(path: &std::path::Path, needle: &str) {
    let t0 = Instant::now();
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
    {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no '{needle}' in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pki_revoke_cuts_the_live_session_on_a_running_broker() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = format!("127.0.0.1:{port}");
    ok(&["pki", "init"], p);
    for id in ["m5stack", "other"] {
        ok(&["emu", "new", "--out", &format!("{id}.img")], p);
        ok(
            &["provision", "--bus", &format!("emu:{id}.img"), "--id", id],
            p,
        );
    }
    ok(
        &[
            "broker",
            "config",
            "--subscriber",
            "m5stack",
            "--subscriber",
            "other",
            "--listen",
            &broker,
        ],
        p,
    );
    let _b = Kill(
        Command::new(env!("CARGO_BIN_EXE_coffre"))
            .args(["broker", "run"])
            .current_dir(p)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log = p.join("broker/mosquitto.log");
    wait_in_file(&log, " running");
    let subscribe = |id: &str| {
        Command::new(env!("CARGO_BIN_EXE_coffre"))
            .args(["subscribe", "--bus", &format!("emu:{id}.img")])
            .args(["--broker", &broker, "--id", id, "--json"])
            .current_dir(p)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let victim = subscribe("m5stack");
    let mut other = Kill(subscribe("other"));
    wait_in_file(&log, "m5stack 1 m5go/env");
    wait_in_file(&log, "other 1 m5go/env");

    let out = ok(&["pki", "revoke", "m5stack"], p);
    assert!(out.contains("session of m5stack cut after"), "{out}");
    // The subscriber was cut and could not come back.
    let t0 = Instant::now();
    let mut victim = victim;
    while victim.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "m5stack still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = victim.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("CertificateRevoked"), "{err}");
    wait_in_file(
        &log,
        "Client m5stack been disconnected by administrative action",
    );
    // The other subscriber is untouched.
    assert!(other.0.try_wait().unwrap().is_none(), "other was cut");
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(!all.contains("Client other been disconnected"), "{all}");
}

#[test]
fn demo_only_runs_the_named_scenarios() {
    let d = tempfile::tempdir().unwrap();
    let out = ok(&["demo", "--only", "acl,pub-sub", "--json"], d.path());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<(&str, &str, bool)> = v["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["mode"].as_str().unwrap(),
                s["pass"].as_bool().unwrap(),
            )
        })
        .collect();
    // pub-sub belongs to the valid-chip family: the whole family runs, in
    // registry order, then acl.
    let ids: Vec<&str> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        ids,
        [
            "valid-chip",
            "pub-sub",
            "valid-chip",
            "pub-sub",
            "valid-chip",
            "acl"
        ],
        "{rows:?}"
    );
    assert!(rows.iter().all(|r| r.2), "{rows:?}");
    // Threats none of the selected scenarios prove are not claimed.
    let stride = v["stride"].as_array().unwrap();
    let tampering = stride.iter().find(|r| r["threat"] == "Tampering").unwrap();
    assert_eq!(tampering["holds"], false);

    // An unknown id is a usage error naming the valid ones; nothing runs.
    let o = coffre(&["demo", "--only", "acl,no-such-thing"], d.path());
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no-such-thing"), "{e}");
    for id in ["chip-absent", "broker-restart", "disclosure"] {
        assert!(e.contains(id), "{id} missing from: {e}");
    }
    assert!(o.stdout.is_empty());
}

#[test]
fn bench_measures_both_tools_as_processes() {
    // The device binary of this build, not whatever the default search
    // finds.
    let device = device_exe();
    let d = tempfile::tempdir().unwrap();
    let out = ok(
        &[
            "bench",
            "--runs",
            "3",
            "--json",
            "--device",
            device.to_str().unwrap(),
        ],
        d.path(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["processes"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for nodelay in [true, false] {
        let n = rows
            .iter()
            .filter(|r| r["broker_nodelay"] == nodelay)
            .count();
        assert_eq!(n, 4, "four rows with broker set_tcp_nodelay {nodelay}");
    }
    let hs = v["handshakes"].as_array().unwrap();
    assert_eq!(hs.len(), 3);
    // The chip with datasheet timing pays Nonce + Sign (135 ms) per handshake.
    assert!(
        hs[2]["connect_median_ms"].as_f64().unwrap() > 100.0,
        "{hs:?}"
    );
    for r in rows {
        assert_eq!(r["failures"], 0, "{r}");
        assert!(r["wall_median_ms"].as_f64().unwrap() > 0.0);
        assert!(r["max_rss_kib"].as_i64().unwrap() > 0);
    }
    assert!(rows
        .iter()
        .any(|r| r["what"].as_str().unwrap().starts_with("mosquitto_pub")));
    assert!(rows
        .iter()
        .any(|r| r["what"].as_str().unwrap().starts_with("coffre-device")));
    // The three ratios, whatever this machine makes of them.
    for k in ["wall", "max_rss", "cpu"] {
        assert!(
            v["ratios"][k].as_f64().unwrap() > 0.0,
            "{k}: {}",
            v["ratios"]
        );
    }
    // The embedded-tls driver connected, and its memory is accounted.
    let fw = &v["firmware"];
    assert!(fw["connect_median_ms"].as_f64().unwrap() > 0.0, "{fw}");
    assert!(fw["connect_future_bytes"].as_u64().unwrap() > 0, "{fw}");
}

/// A blank chip configured hardened, a lab key written and read only
/// encrypted with the IO key the device keeps: `publish --mode lab`, and
/// the device binary, boot through encrypted Reads and deliver over mutual
/// TLS.
#[test]
fn lab_mode_on_a_hardened_chip_publishes() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = format!("127.0.0.1:{port}");
    ok(&["pki", "init"], p);
    ok(&["emu", "new", "--preset", "blank", "--out", "hard.img"], p);
    ok(
        &[
            "provision",
            "--bus",
            "emu:hard.img",
            "--id",
            "m5go-h",
            "--mode",
            "lab",
            "--configure",
            "hardened",
            "--yes",
        ],
        p,
    );
    assert!(p.join("pki/devices/m5go-h.iokey").exists());
    ok(
        &[
            "broker",
            "config",
            "--publisher",
            "m5go-h",
            "--listen",
            &broker,
        ],
        p,
    );
    let _b = broker_run(p);
    // The same options for `coffre publish` and for the device binary.
    let publish = [
        "--bus",
        "emu:hard.img",
        "--broker",
        &broker,
        "--id",
        "m5go-h",
        "--mode",
        "lab",
        "--count",
        "1",
    ];
    let o = coffre(&[&["publish"][..], &publish].concat(), p);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("encrypted Read"), "{err}");
    assert!(err.contains("1 acknowledged"), "{err}");
    let device = |extra: &[&str]| {
        std::process::Command::new(device_exe())
            .args(publish)
            .args(extra)
            .current_dir(p)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = device(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("encrypted Read"), "{err}");
    assert!(err.contains("1 acknowledged"), "{err}");
    // Its --interval has the CLI's bounds: 0 would be a busy loop.
    let o = device(&["--interval", "0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("10ms to 1d"));
    // Without the device's copy of the IO key the boot stops.
    std::fs::remove_file(p.join("pki/devices/m5go-h.iokey")).unwrap();
    let e = err_of(&[&["publish"][..], &publish].concat(), p);
    assert!(e.contains("encrypted Read"), "{e}");
}

/// The device binary's error line carries every cause once, down to the
/// OS error.
#[test]
fn device_binary_errors_say_why_once() {
    let d = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(device_exe())
        .args(["--bus", "emu:nonexist.img"])
        .current_dir(d.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("nonexist.img"), "{e}");
    let os = "No such file or directory (os error 2)";
    assert_eq!(e.matches(os).count(), 1, "{e}");
}

fn err_of(args: &[&str], p: &std::path::Path) -> String {
    let o = coffre(args, p);
    assert!(!o.status.success());
    String::from_utf8_lossy(&o.stderr).to_string()
}
