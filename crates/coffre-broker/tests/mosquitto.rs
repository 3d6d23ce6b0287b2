//! A real mosquitto with the configuration written from a real PKI,
//! exercised with Mosquitto's own clients.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use coffre_broker::{BrokerSetup, Mosquitto, Role};
use coffre_pki::{InitOptions, IssueOptions, Pki};
use p256::pkcs8::EncodePrivateKey;

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn device(pki: &mut Pki, dir: &Path, id: &str) {
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    pki.issue_device(id, &sk.public_key(), &IssueOptions::default())
        .unwrap();
    let pem = sk.to_pkcs8_pem(Default::default()).unwrap();
    std::fs::write(dir.join(format!("{id}.key.pem")), pem.as_bytes()).unwrap();
}

fn pub_cmd(
    pki: &Pki,
    dir: &Path,
    addr: SocketAddr,
    id: Option<&str>,
    topic: &str,
) -> std::process::Output {
    let mut c = Command::new("mosquitto_pub");
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &addr.port().to_string(),
        "-t",
        topic,
        "-m",
        "hi",
        "-q",
        "1",
    ])
    .args(["-V", "mqttv5", "--cafile"])
    .arg(pki.ca_cert_path());
    if let Some(id) = id {
        c.arg("--cert")
            .arg(pki.device_cert_path(id))
            .arg("--key")
            .arg(dir.join(format!("{id}.key.pem")));
    }
    c.output()
        .expect("mosquitto_pub runs (apt-get install mosquitto-clients)")
}

#[test]
fn broker_accepts_certified_devices_only() {
    if coffre_broker::find_mosquitto().is_none() {
        panic!("mosquitto is not installed: run 'make test', which installs it");
    }
    let d = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(d.path().join("pki"), &InitOptions::default()).unwrap();
    device(&mut pki, d.path(), "m5go-1");
    device(&mut pki, d.path(), "m5stack");
    let mut setup = BrokerSetup::new(d.path().join("pki"), d.path().join("broker"));
    setup.listen = free_port();
    setup.acl.allow("m5go-1", Role::Publisher).unwrap();
    setup.acl.allow("m5stack", Role::Subscriber).unwrap();
    let mut m = Mosquitto::start(&setup).unwrap();

    // A certified publisher publishes.
    let o = pub_cmd(&pki, d.path(), m.addr(), Some("m5go-1"), "m5go/env");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        m.wait_for_log("u'm5go-1'", Duration::from_secs(5))
            .is_some(),
        "{}",
        m.log()
    );

    // No client certificate: the handshake fails.
    let o = pub_cmd(&pki, d.path(), m.addr(), None, "m5go/env");
    assert!(!o.status.success());

    // Outside the ACL: MQTT 5 reports "not authorized" on the PUBACK.
    let o = pub_cmd(&pki, d.path(), m.addr(), Some("m5go-1"), "other/topic");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("Not authorized"), "{err}");

    // The subscriber may not publish.
    let o = pub_cmd(&pki, d.path(), m.addr(), Some("m5stack"), "m5go/env");
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(err.contains("Not authorized"), "{err}");

    // Revocation: after a CRL update and a restart the revoked device is refused.
    pki.revoke("m5go-1").unwrap();
    m.restart().unwrap();
    let o = pub_cmd(&pki, d.path(), m.addr(), Some("m5go-1"), "m5go/env");
    assert!(!o.status.success(), "a revoked certificate was accepted");
    m.stop();
}

// Issue 15, item 6: starting the broker again keeps the last run's log.
#[test]
fn a_restart_rotates_the_log_instead_of_deleting_it() {
    if coffre_broker::find_mosquitto().is_none() {
        panic!("mosquitto is not installed: run 'make test', which installs it");
    }
    let d = tempfile::tempdir().unwrap();
    Pki::init(d.path().join("pki"), &InitOptions::default()).unwrap();
    let mut setup = BrokerSetup::new(d.path().join("pki"), d.path().join("broker"));
    setup.listen = free_port();
    let log = setup.log_path();
    let numbered = |n: u32| d.path().join(format!("broker/mosquitto.log.{n}"));
    for run in 0..coffre_broker::LOGS_KEPT + 2 {
        let mut m = Mosquitto::start(&setup).unwrap();
        m.stop();
        // Mark each run's log so its rotation can be followed.
        let mut text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains(" running"), "{text}");
        text.push_str(&format!("marker of run {run}\n"));
        std::fs::write(&log, text).unwrap();
        if run > 0 {
            let previous = std::fs::read_to_string(numbered(1)).unwrap();
            assert!(previous.contains(&format!("marker of run {}", run - 1)));
        }
    }
    assert!(numbered(coffre_broker::LOGS_KEPT).exists());
    assert!(!numbered(coffre_broker::LOGS_KEPT + 1).exists());
}
