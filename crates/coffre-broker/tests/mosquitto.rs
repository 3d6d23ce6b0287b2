//! A real mosquitto with the configuration written from a real PKI,
//! exercised with Mosquitto's own clients.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coffre_broker::{BrokerSetup, Mosquitto, Role};
use coffre_pki::{InitOptions, Pki};

mod common;
use common::{device, free_port};

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

/// `mosquitto_sub` as `id` (client id `client_id`) on the readings topic,
/// its output in `dir/sub-<client_id>.out`.
fn sub_cmd(pki: &Pki, dir: &Path, addr: SocketAddr, id: &str, client_id: &str) -> Child {
    let out = std::fs::File::create(dir.join(format!("sub-{client_id}.out"))).unwrap();
    Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-t", "m5go/env", "-q", "1", "-V", "mqttv5", "-i", client_id])
        .arg("--cafile")
        .arg(pki.ca_cert_path())
        .arg("--cert")
        .arg(pki.device_cert_path(id))
        .arg("--key")
        .arg(dir.join(format!("{id}.key.pem")))
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub runs (apt-get install mosquitto-clients)")
}

struct Reap(Child);
impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lab() -> (tempfile::TempDir, Pki, Mosquitto) {
    if coffre_broker::find_mosquitto().is_none() {
        panic!("mosquitto is not installed: run 'make test', which installs it");
    }
    let d = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(d.path().join("pki"), &InitOptions::default()).unwrap();
    let mut setup = BrokerSetup::new(d.path().join("pki"), d.path().join("broker"));
    setup.listen = free_port();
    for id in ["m5go-1", "m5stack", "other"] {
        device(&mut pki, d.path(), id);
    }
    setup.acl.allow("m5go-1", Role::Publisher).unwrap();
    setup.acl.allow("m5stack", Role::Subscriber).unwrap();
    setup.acl.allow("other", Role::Subscriber).unwrap();
    let m = Mosquitto::start(&setup).unwrap();
    (d, pki, m)
}

#[test]
fn a_device_cannot_take_another_devices_client_id() {
    let (d, pki, m) = lab();
    let log = coffre_broker::LogFollower::follow(m.log_path());
    let mark = log.cursor();
    let mut victim = Reap(sub_cmd(&pki, d.path(), m.addr(), "m5stack", "m5stack"));
    assert!(log
        .wait_for(mark, "m5stack 1 m5go/env", Duration::from_secs(5))
        .is_some());
    // m5go-1, with a valid certificate, asks for the client id "m5stack".
    let o = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &m.addr().port().to_string()])
        .args(["-t", "m5go/env", "-m", "hello", "-q", "1", "-V", "mqttv5"])
        .args(["-i", "m5stack", "--cafile"])
        .arg(pki.ca_cert_path())
        .arg("--cert")
        .arg(pki.device_cert_path("m5go-1"))
        .arg("--key")
        .arg(d.path().join("m5go-1.key.pem"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // It got its own name as client id, and the victim was not evicted:
    // it received the message, and is still running.
    let line = log.wait_for(mark, "u'm5go-1'", Duration::from_secs(5));
    assert!(
        line.as_deref().unwrap_or("").contains("as m5go-1 "),
        "{line:?}"
    );
    let out = d.path().join("sub-m5stack.out");
    let t0 = std::time::Instant::now();
    while !std::fs::read_to_string(&out).unwrap().contains("hello") {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the victim got nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(victim.0.try_wait().unwrap().is_none(), "the victim was cut");
    let all = log.since(mark).join("\n");
    assert!(!all.contains("already connected"), "{all}");
}

#[test]
fn revocation_cuts_the_live_session_and_refuses_reconnects() {
    let (d, mut pki, m) = lab();
    let log = coffre_broker::LogFollower::follow(m.log_path());
    let mark = log.cursor();
    let mut victim = Reap(sub_cmd(&pki, d.path(), m.addr(), "m5stack", "m5stack"));
    let mut other = Reap(sub_cmd(&pki, d.path(), m.addr(), "other", "other"));
    for id in ["m5stack", "other"] {
        assert!(log
            .wait_for(mark, &format!("{id} 1 m5go/env"), Duration::from_secs(5))
            .is_some());
    }
    // The broker was registered in the PKI when its configuration was written.
    let brokers = coffre_broker::managed_brokers(&d.path().join("pki"));
    assert_eq!(brokers.len(), 1, "{brokers:?}");
    assert_eq!(
        coffre_broker::running_pid(&brokers[0]),
        m.pid(),
        "the pid file names the running broker"
    );

    pki.revoke("m5stack").unwrap();
    let t0 = std::time::Instant::now();
    let r = m.revoke_live(&["m5stack"]).unwrap();
    assert_eq!(r.cut, ["m5stack"], "{r:?}");
    // The victim's mosquitto_sub sees the DISCONNECT and exits.
    while victim.0.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(5), "still connected");
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "reload {:?}, cut after {:?} (seen by the victim after {:?})",
        r.reload,
        r.total,
        t0.elapsed()
    );
    // Its reconnection is refused at the handshake.
    let o = pub_cmd(&pki, d.path(), m.addr(), Some("m5stack"), "m5go/env");
    assert!(!o.status.success());
    assert!(log
        .wait_for(mark, "certificate verify failed", Duration::from_secs(5))
        .is_some());
    // The other device is still connected and still receives.
    assert!(other.0.try_wait().unwrap().is_none(), "the other was cut");
    let o = pub_cmd(&pki, d.path(), m.addr(), Some("m5go-1"), "m5go/env");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = d.path().join("sub-other.out");
    while !std::fs::read_to_string(&out).unwrap().contains("hi") {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the other got nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The publisher kept its rights: the ACL file still governs devices.
    let all = log.since(mark).join("\n");
    assert!(!all.contains("Client other been disconnected"), "{all}");
}
