//! `coffre fleet`: a small fleet against a real mosquitto, end to end.

use std::process::Command;

/// `coffre fleet ARGS --json --dir D`, which must succeed: its report and D.
fn fleet_json(args: &[&str]) -> (serde_json::Value, tempfile::TempDir) {
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .arg("fleet")
        .args(args)
        .args(["--json", "--dir"])
        .arg(d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    (serde_json::from_str(&stdout).unwrap(), d)
}

#[test]
fn small_fleet_json_zero_loss() {
    if coffre_broker_absent() {
        eprintln!("mosquitto not installed: skipped ('apt install mosquitto')");
        return;
    }
    let (v, d) = fleet_json(&["--devices", "20", "--duration", "3s", "--interval", "1s"]);
    let stdout = v.to_string();
    assert_eq!(v["devices"], 20);
    assert_eq!(v["connected"], 20, "{stdout}");
    assert_eq!(v["connect_failures"], 0);
    assert_eq!(v["delivery"]["lost"], 0);
    assert_eq!(v["delivery"]["duplicated"], 0);
    assert_eq!(v["delivery"]["unexpected"], 0);
    let published = v["delivery"]["published"].as_u64().unwrap();
    assert_eq!(published, 60, "3 readings each over 3 s at 1 s");
    assert_eq!(v["delivery"]["received"].as_u64(), Some(published));
    assert!(v["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert!(v["cpu"]["broker_per_handshake_ms"].as_f64().is_some());
    assert!(v["memory"]["per_device_kib"].as_f64().is_some());
    let manifest = std::fs::read_to_string(d.path().join("fleet-manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 20);
}

/// `--identity factory`: the devices are Trust&GO parts onboarded from
/// their manifest, connecting with their factory chains.
#[test]
fn factory_identity_fleet_json_zero_loss() {
    if coffre_broker_absent() {
        eprintln!("mosquitto not installed: skipped ('apt install mosquitto')");
        return;
    }
    let (v, d) = fleet_json(&[
        "--identity",
        "factory",
        "--devices",
        "20",
        "--duration",
        "2s",
        "--interval",
        "1s",
    ]);
    let stdout = v.to_string();
    assert_eq!(v["identity"], "factory");
    assert_eq!(v["onboarding"]["registered"], 20, "{stdout}");
    assert_eq!(v["onboarding"]["refused"], 0);
    for figure in ["manifest_s", "verify_s", "register_s", "import_s"] {
        assert!(v["onboarding"][figure].as_f64().is_some(), "{figure}");
    }
    assert_eq!(v["connected"], 20, "{stdout}");
    assert_eq!(v["connect_failures"], 0);
    assert_eq!(v["delivery"]["published"], 40);
    assert_eq!(v["delivery"]["received"], 40);
    assert_eq!(v["delivery"]["lost"], 0);
    assert_eq!(v["delivery"]["duplicated"], 0);
    // Onboarded from the manifest, not issued: the registry names the
    // parts by their CN, and the PKI's index holds no device.
    let registry = std::fs::read_to_string(d.path().join("fleet-manifest.jsonl")).unwrap();
    assert_eq!(registry.lines().count(), 20);
    assert!(registry.lines().all(|l| l.contains("\"mode\":\"factory\"")));
    let index: String = ["pki/index.json", "pki/index.jsonl"]
        .iter()
        .map(|f| std::fs::read_to_string(d.path().join(f)).unwrap_or_default())
        .collect();
    assert!(
        index.contains("fleet-sub"),
        "the subscriber is issued: {index}"
    );
    assert!(!index.contains("sn0123"), "{index}");
}

#[test]
fn fleet_help_explains_limits() {
    let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["fleet", "--help"])
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("max_connections -1"), "{s}");
    assert!(s.contains("--devices"));
    assert!(s.contains("--identity factory"), "{s}");
}

#[test]
fn bad_duration_is_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["fleet", "--duration", "3 fortnights"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown unit"));
}

/// Issue 15: the fleet's devices are certified by the main PKI, so
/// `coffre pki revoke` reaches them, the CRL lists them, and the broker
/// refuses a revoked one while the others connect.
#[test]
fn a_fleet_device_revoked_through_the_main_pki_is_refused() {
    use coffre_fleet::stage::{self, BrokerPlan, ProvisionPlan, RampPlan};
    use std::time::{Duration, Instant};
    if coffre_broker_absent() {
        eprintln!("mosquitto not installed: skipped ('apt install mosquitto')");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let provisioned = stage::provision(
        &ProvisionPlan {
            dir: d.path().to_path_buf(),
            devices: 3,
            mode: coffre_fleet::FleetMode::Offload,
        },
        &mut |_| {},
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["pki", "revoke", "fleet-00002", "--dir"])
        .arg(&provisioned.pki_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut broker = stage::broker(
        &BrokerPlan {
            pki_dir: provisioned.pki_dir.clone(),
            out_dir: d.path().join("broker"),
            publishers: (1..=3).map(coffre_fleet::device_id).collect(),
            subscriber: "fleet-sub".into(),
            factory_root_pem: None,
        },
        &mut |_| {},
    )
    .unwrap();
    let ramped = stage::ramp(
        &broker,
        provisioned.devices,
        &RampPlan {
            rate: 100.0,
            stack_size: 256 * 1024,
            interval: Duration::from_secs(1),
            duration: Duration::ZERO,
            origin: Instant::now(),
        },
        &mut |_| {},
    );
    assert_eq!(
        (ramped.figures.connected, ramped.figures.failed),
        (2, 1),
        "fleet-00001 and fleet-00003 connect, fleet-00002 is refused"
    );
    let published = stage::publish(
        ramped.fleet,
        &mut broker,
        Duration::ZERO,
        &ramped.figures.spawn_errors,
        None,
        &mut |_| {},
    )
    .unwrap();
    let err = published.first_connect_error.unwrap_or_default();
    assert!(
        err.starts_with("fleet-00002:") && err.contains("CertificateRevoked"),
        "{err}"
    );
}

fn coffre_broker_absent() -> bool {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .all(|p| !std::path::Path::new(p).exists())
}
