//! The built `coffre` binary, run as a user runs it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

mod common;
use common::*;
use std::process::{Command, Stdio};

fn new_chip(dir: &Path, preset: &str) -> String {
    ok(
        &["emu", "new", "--preset", preset, "--out", "chip.img"],
        dir,
    );
    "emu:chip.img".to_string()
}

#[test]
fn help_teaches_each_command() {
    let d = tempfile::tempdir().unwrap();
    let top = ok(&["--help"], d.path());
    assert!(top.contains("coffre emu new --preset tngtls"));
    for sub in [
        vec!["chip", "info", "--help"],
        vec!["chip", "config", "--help"],
        vec!["chip", "locks", "--help"],
        vec!["chip", "read-slot", "--help"],
        vec!["emu", "new", "--help"],
        vec!["emu", "serve", "--help"],
        vec!["emu", "bench", "--help"],
        vec!["bus", "scan", "--help"],
    ] {
        let out = ok(&sub, d.path());
        assert!(out.contains("Usage: coffre"), "{sub:?}");
    }
    assert!(ok(&["chip", "info", "--help"], d.path()).contains("linux:/dev/i2c-N"));
    assert!(ok(&["emu", "new", "--help"], d.path()).contains("Never put a real key"));
}

#[test]
fn info_config_locks_json() {
    let d = tempfile::tempdir().unwrap();
    let bus = new_chip(d.path(), "tngtls");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["chip", "info", "--bus", &bus, "--json"], d.path())).unwrap();
    assert_eq!(v["device"], "ATECC608B");
    assert_eq!(v["address"], "0x35");
    assert_eq!(v["config_locked"], true);
    let c: serde_json::Value =
        serde_json::from_str(&ok(&["chip", "config", "--bus", &bus, "--json"], d.path())).unwrap();
    assert_eq!(c["slots"].as_array().unwrap().len(), 16);
    assert_eq!(c["slots"][8]["read"], "anyone on the bus, in clear");
    assert_eq!(c["slots"][8]["write"], "anyone on the bus, in clear");
    assert_eq!(c["slots"][0]["private_key"], true);
    let text = ok(&["chip", "config", "--bus", &bus, "--raw"], d.path());
    assert!(text.contains("general data"));
    assert!(text.contains("0000  01 23"));
    let l: serde_json::Value =
        serde_json::from_str(&ok(&["chip", "locks", "--bus", &bus, "--json"], d.path())).unwrap();
    assert_eq!(l["data_locked"], true);
    // Human text.
    let info = ok(&["chip", "info", "--bus", &bus], d.path());
    assert!(info.contains("ATECC608B") && info.contains("config zone    locked"));
}

#[test]
fn blank_chip_warns_and_refuses_data_reads() {
    let d = tempfile::tempdir().unwrap();
    let bus = new_chip(d.path(), "blank");
    let info = ok(&["chip", "info", "--bus", &bus], d.path());
    assert!(info.contains("UNLOCKED") && info.contains("warning"));
    assert!(info.contains("0x60"));
    let o = coffre(&["chip", "read-slot", "8", "--bus", &bus], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("data zone is not locked yet"));
}

#[test]
fn read_slot_and_transcript() {
    let d = tempfile::tempdir().unwrap();
    let bus = new_chip(d.path(), "tngtls");
    let v: serde_json::Value = serde_json::from_str(&ok(
        &[
            "chip",
            "read-slot",
            "8",
            "--bus",
            &bus,
            "--json",
            "--transcript",
            "t.jsonl",
        ],
        d.path(),
    ))
    .unwrap();
    assert_eq!(v["size"], 416);
    assert_eq!(v["hex"].as_str().unwrap().len(), 832);
    let t = std::fs::read_to_string(d.path().join("t.jsonl")).unwrap();
    assert!(t.lines().count() > 13 * 5);
    assert!(t
        .lines()
        .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    ok(
        &["chip", "read-slot", "5", "--bus", &bus, "--out", "s5.bin"],
        d.path(),
    );
    assert_eq!(std::fs::read(d.path().join("s5.bin")).unwrap().len(), 36);
    let o = coffre(&["chip", "read-slot", "0", "--bus", &bus], d.path());
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("slot 0 cannot be read in clear") && err.contains("never readable"),
        "{err}"
    );
    let o = coffre(&["chip", "read-slot", "16", "--bus", &bus], d.path());
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn scan_finds_port_a() {
    let d = tempfile::tempdir().unwrap();
    let bus = new_chip(d.path(), "tngtls");
    let s = ok(&["bus", "scan", "--bus", &bus], d.path());
    assert!(
        s.contains("0x35") && s.contains("0x44") && s.contains("0x76"),
        "{s}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    // Missing image.
    let o = coffre(&["chip", "info", "--bus", "emu:nope.img"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.img"));
    // Corrupted image.
    let bus = new_chip(d.path(), "tngtls");
    let p = d.path().join("chip.img");
    let mut b = std::fs::read(&p).unwrap();
    b[100] ^= 0xFF;
    std::fs::write(&p, &b).unwrap();
    let o = coffre(&["chip", "info", "--bus", &bus], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum mismatch"));
    // Refuses to overwrite.
    let o = coffre(&["emu", "new", "--out", "chip.img"], d.path());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    ok(&["emu", "new", "--out", "chip.img", "--force"], d.path());
    // Wrong address: no chip (exit 3).
    let o = coffre(&["chip", "info", "--bus", "emu:chip.img@0x36"], d.path());
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The 8-bit form is accepted and explained.
    let o = coffre(&["chip", "info", "--bus", "emu:chip.img@0x6A"], d.path());
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("0x35"));
    // Bad bus spec: usage error.
    let o = coffre(&["chip", "info", "--bus", "chip.img"], d.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("emu:chip.img"));
    // Transcript on a real bus is refused clearly.
    let o = coffre(
        &[
            "chip",
            "info",
            "--bus",
            "linux:/dev/i2c-99",
            "--transcript",
            "x.txt",
        ],
        d.path(),
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("emulated bus"));
    // Missing adapter.
    let o = coffre(&["chip", "info", "--bus", "linux:/dev/i2c-99"], d.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/dev/i2c-99"));
}

#[test]
fn emu_serve_speaks_the_kit_protocol() {
    let d = tempfile::tempdir().unwrap();
    new_chip(d.path(), "tngtls");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args([
            "emu",
            "serve",
            "--image",
            "chip.img",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().strip_prefix("listening ").unwrap().to_string();
    let s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut ask = |q: &str| {
        w.write_all(format!("{q}\n").as_bytes()).unwrap();
        let mut a = String::new();
        r.read_line(&mut a).unwrap();
        a.trim().to_string()
    };
    assert_eq!(ask("board:device(00)"), "ECC608 TWI 00(6A)");
    assert_eq!(ask("e:physical:select(6A)"), "00()");
    assert_eq!(ask("e:w()"), "00(04113343)");
    assert_eq!(ask("e:t(0730000000035D)"), "00(070000600383BB)");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn bench_prints_figures() {
    let d = tempfile::tempdir().unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(
        &["emu", "bench", "--reads", "2000", "--json"],
        d.path(),
    ))
    .unwrap();
    assert!(v["read_throughput"]["reads_per_second"].as_f64().unwrap() > 0.0);
    let rows = v["datasheet_timing"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["command"].as_str()).collect();
    for want in ["Sign", "Sign int", "ECDH", "GenDig", "MAC", "AES"] {
        assert!(names.contains(&want), "{want} not timed: {names:?}");
    }
}

#[test]
fn web_serves_the_chips_it_is_given() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    new_chip(d.path(), "tngtls");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args([
            "web",
            "--bus",
            "emu:chip.img",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--allow-host",
            "lab.example",
        ])
        .current_dir(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("web explorer: http://127.0.0.1"), "{line}");
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /api/chips/chip HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(
        body.starts_with("HTTP/1.1 200"),
        "{}",
        &body[..body.len().min(200)]
    );
    assert!(
        body.contains("general data") && body.contains("anyone on the bus"),
        "slot 8 policy in the API"
    );
    // Issue 15, item 9: names other than ours are refused (DNS rebinding).
    for (host, status) in [("lab.example", "200"), ("evil.example", "403")] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET /api/chips HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut body = String::new();
        s.read_to_string(&mut body).unwrap();
        assert!(
            body.starts_with(&format!("HTTP/1.1 {status}")),
            "{host}: {body}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let o = coffre(&["web", "--bus", "linux:/dev/i2c-1"], d.path());
    assert!(String::from_utf8_lossy(&o.stderr).contains("coffre inspect"));
}

/// Each level of an error says its own part once: the OS error of a missing
/// image appears once, and no two consecutive parts of the chain are equal.
#[test]
fn errors_do_not_repeat_their_source() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("k.pem"), b"not a key").unwrap();
    for args in [
        vec!["chip", "info", "--bus", "emu:nonexist.img"],
        vec!["chip", "config", "--bus", "emu:missing/dir/chip.img"],
        vec!["pki", "show", "--dir", "no-such-pki"],
        vec![
            "broker",
            "config",
            "--pki",
            "no-such-pki",
            "--out",
            "b",
            "--publisher",
            "d",
        ],
    ] {
        let e = err(&args, d.path());
        let parts: Vec<&str> = e.trim().split(": ").collect();
        for w in parts.windows(2) {
            assert_ne!(w[0], w[1], "{args:?} repeats itself: {e}");
        }
        if let Some(os) = e.find("(os error") {
            let tail = &e[..os];
            let msg = tail.rsplit(": ").next().unwrap();
            assert_eq!(e.matches(msg).count(), 1, "{args:?} repeats '{msg}': {e}");
        }
    }
}
