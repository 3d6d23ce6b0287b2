//! A small fleet against a real mosquitto: every device connects with its
//! own identity, publishes two readings, and the subscriber gets every one
//! exactly once.

use std::time::Duration;

use coffre_fleet::{run, FleetMode, FleetOptions, Identity};

fn mosquitto_present() -> bool {
    coffre_broker::find_mosquitto().is_some()
}

#[test]
fn fifty_devices_two_readings_each() {
    if !mosquitto_present() {
        eprintln!("mosquitto not installed: skipped ('apt install mosquitto')");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut opts = FleetOptions::new(50);
    opts.rate = 200.0;
    opts.interval = Duration::from_secs(1);
    opts.duration = Duration::from_secs(2);
    opts.dir = Some(dir.path().to_path_buf());
    let r = run(&opts, &mut |_| {}).unwrap();
    assert_eq!(r.connected, 50, "{:?}", r.first_connect_error);
    assert_eq!(r.connect_failures, 0);
    assert_eq!(r.publish_failures, 0, "{:?}", r.first_publish_error);
    assert_eq!(r.delivery.published, 100);
    assert_eq!(r.delivery.received, 100);
    assert_eq!(r.delivery.lost, 0);
    assert_eq!(r.delivery.duplicated, 0);
    assert_eq!(r.delivery.unexpected, 0);
    assert!(r.ok());
    assert_eq!(r.latency_ms.count, 100);
    assert!(r.latency_ms.p50 > 0.0 && r.latency_ms.p50 <= r.latency_ms.max);
    assert!(r.ramp_conn_per_s > 0.0);
    assert!(r.cpu.broker_ramp_s > 0.0 || r.cpu.simulator_ramp_s > 0.0);
    // The fleet manifest: one line per device, distinct serials.
    let manifest = std::fs::read_to_string(dir.path().join("fleet-manifest.jsonl")).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    assert_eq!(lines.len(), 50);
    let field = |name: &str| {
        let mut v: Vec<String> = lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v[name].as_str().unwrap_or_default().to_owned()
            })
            .collect();
        v.sort();
        v.dedup();
        v.len()
    };
    assert_eq!(field("chip_serial"), 50, "serials must be distinct");
    assert_eq!(field("public_key"), 50, "keys must be distinct");
    assert_eq!(
        field("cert_fingerprint"),
        50,
        "certificates must be distinct"
    );
    assert_eq!(r.mode, FleetMode::Offload);
}

#[test]
fn lab_mode_small_fleet() {
    if !mosquitto_present() {
        return;
    }
    let mut opts = FleetOptions::new(5);
    opts.mode = FleetMode::Lab;
    opts.interval = Duration::from_millis(500);
    opts.duration = Duration::from_secs(1);
    let r = run(&opts, &mut |_| {}).unwrap();
    assert_eq!(r.connected, 5, "{:?}", r.first_connect_error);
    assert_eq!(r.delivery.published, 10);
    assert!(r.ok(), "{r:?}");
}

#[test]
fn factory_identities_twenty_parts_from_their_manifest() {
    if !mosquitto_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut opts = FleetOptions::new(20);
    opts.identity = Identity::Factory;
    opts.rate = 200.0;
    opts.interval = Duration::from_millis(500);
    opts.duration = Duration::from_secs(1);
    opts.dir = Some(dir.path().to_path_buf());
    let r = run(&opts, &mut |_| {}).unwrap();
    let o = r.onboarding.as_ref().expect("onboarding figures");
    assert_eq!((o.registered, o.refused), (20, 0), "{:?}", o.first_refusal);
    assert_eq!(r.connected, 20, "{:?}", r.first_connect_error);
    assert_eq!(r.connect_failures, 0);
    assert_eq!(r.delivery.published, 40);
    assert_eq!(r.delivery.received, 40);
    assert_eq!(r.delivery.lost, 0);
    assert_eq!(r.delivery.duplicated, 0);
    assert_eq!(r.delivery.unexpected, 0);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.identity, Identity::Factory);
    // The devices are the parts: registered under their CN, with their
    // factory chain, and only on the factory listener.
    let registry = std::fs::read_to_string(dir.path().join("fleet-manifest.jsonl")).unwrap();
    assert_eq!(registry.lines().count(), 20);
    let acl = std::fs::read_to_string(dir.path().join("broker/acl")).unwrap();
    for line in registry.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap();
        assert!(id.starts_with("sn0123"), "{id}");
        assert!(acl.contains(&format!("user {id}\n")), "{acl}");
    }
    let conf = std::fs::read_to_string(dir.path().join("broker/mosquitto.conf")).unwrap();
    assert!(conf.contains("factory-root.pem"), "{conf}");
}
