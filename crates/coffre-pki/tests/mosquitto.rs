//! Mosquitto loads the PKI (cafile, certfile, keyfile, crlfile) and applies
//! it: a valid device connects with its CN as username, a revoked one and an
//! expired one are refused. Skipped with a note when `mosquitto` or
//! `mosquitto_pub` is absent. The broker listens on 127.0.0.1 only.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use coffre_pki::ca::{InitOptions, IssueOptions, Pki};
use coffre_pki::lab;

fn have(cmd: &str, arg: &str) -> bool {
    Command::new(cmd)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    coffre_fs::free_loopback_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn start_broker(dir: &Path, port: u16) -> Broker {
    let p = |f: &str| dir.join(f).display().to_string();
    let mut conf = format!(
        "listener {port} 127.0.0.1\n\
         cafile {}\ncertfile {}\nkeyfile {}\ncrlfile {}\n\
         require_certificate true\nuse_identity_as_username true\n\
         allow_anonymous false\nlog_dest stdout\n",
        p("ca.crt.pem"),
        p("broker.crt.pem"),
        p("broker.key.pem"),
        p("crl.pem"),
    );
    // Started as root, Mosquitto drops to the `mosquitto` user, which cannot
    // read a 0600 key owned by root.
    if is_root() {
        conf.push_str("user root\n");
    }
    fs::write(dir.join("mosquitto.conf"), conf).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(dir.join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let broker = Broker(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    broker
}

fn publish(dir: &Path, port: u16, id: &str) -> bool {
    Command::new("mosquitto_pub")
        .current_dir(dir)
        .args(["-h", "localhost", "-p", &port.to_string()])
        .args(["--cafile", "ca.crt.pem"])
        .args(["--cert", &format!("devices/{id}.crt.pem")])
        .args(["--key", &format!("{id}.key.pem")])
        .args(["-t", "m5go/env", "-m", "{}", "-q", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A new PKI in a temporary directory; `None` (with a note) when
/// `mosquitto` or `mosquitto_pub` is not installed.
fn new_pki() -> Option<(tempfile::TempDir, Pki)> {
    if !have("mosquitto", "-h") || !have("mosquitto_pub", "--help") {
        eprintln!("note: mosquitto or mosquitto_pub is not on PATH; skipping");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    Some((tmp, pki))
}

#[test]
fn mosquitto_applies_certificates_and_crl() {
    let Some((tmp, mut pki)) = new_pki() else {
        return;
    };
    let d = tmp.path();
    let now = time::OffsetDateTime::now_utc();
    for id in ["good", "revoked", "expired"] {
        let (der, public_key) = lab::generate_lab_key();
        let opts = if id == "expired" {
            IssueOptions {
                not_before: Some(now - time::Duration::days(10)),
                not_after: Some(now - time::Duration::days(1)),
                ..IssueOptions::default()
            }
        } else {
            IssueOptions::default()
        };
        pki.issue_device(id, &public_key, &opts).unwrap();
        fs::write(
            d.join(format!("{id}.key.pem")),
            lab::pkcs8_pem(&der).unwrap().as_bytes(),
        )
        .unwrap();
    }
    pki.revoke("revoked").unwrap();

    let port = free_port();
    let _broker = start_broker(d, port);
    assert!(publish(d, port, "good"), "a valid device must connect");
    assert!(
        !publish(d, port, "revoked"),
        "a revoked device must be refused"
    );
    assert!(
        !publish(d, port, "expired"),
        "an expired device must be refused"
    );
}

/// The CRL is valid 30 days: once its nextUpdate has passed, Mosquitto
/// (OpenSSL's CRL check) refuses *every* client, valid ones included
/// (mosquitto#2597). A fresh CRL lets them in again. This is why
/// `coffre broker run` refuses to start on an expired CRL and
/// `coffre pki crl` reloads the running brokers.
#[test]
fn an_expired_crl_locks_every_device_out() {
    let Some((tmp, mut pki)) = new_pki() else {
        return;
    };
    let d = tmp.path();
    let (der, public_key) = lab::generate_lab_key();
    pki.issue_device("good", &public_key, &IssueOptions::default())
        .unwrap();
    fs::write(
        d.join("good.key.pem"),
        lab::pkcs8_pem(&der).unwrap().as_bytes(),
    )
    .unwrap();
    let long_ago = time::OffsetDateTime::now_utc()
        - time::Duration::days(coffre_pki::ca::CRL_VALIDITY_DAYS + 1);
    pki.refresh_crl_at(coffre_pki::Timestamp::new(long_ago))
        .unwrap();
    assert!(pki.show().unwrap().crl.expired);

    let port = free_port();
    {
        let _broker = start_broker(d, port);
        assert!(
            !publish(d, port, "good"),
            "mosquitto accepted a client with an expired CRL"
        );
    }
    pki.refresh_crl().unwrap();
    let _broker = start_broker(d, port);
    assert!(publish(d, port, "good"), "a fresh CRL lets the device in");
}
