//! The whole demo against a real mosquitto: every scenario must pass, each
//! with its evidence.

use coffre_demo::{run_all, stride, Lab, LabOptions};

#[test]
fn every_scenario_passes_with_evidence() {
    let d = tempfile::tempdir().unwrap();
    let mut steps = Vec::new();
    let mut lab = Lab::setup(
        &LabOptions {
            dir: d.path().to_path_buf(),
        },
        &mut |s| steps.push(s.to_string()),
    )
    .expect("the lab sets up (mosquitto installed?)");
    let results = run_all(&mut lab, &mut |_| {});
    let table = coffre_demo::table(&results, true);
    println!("{table}");
    for r in &results {
        assert!(
            r.pass,
            "scenario {} ({}) failed: observed {} | evidence {}",
            r.name, r.mode, r.observed, r.evidence
        );
        assert!(!r.evidence.is_empty(), "{} has no evidence", r.name);
    }
    let ids: Vec<&str> = results.iter().map(|r| r.id).collect();
    for want in [
        "chip-absent",
        "wrong-chip",
        "valid-chip",
        "pub-sub",
        "no-client-cert",
        "foreign-ca",
        "expired-cert",
        "revoked-cert",
        "acl",
        "tls-1.1",
        "unlocked-chip",
        "chip-pulled",
        "broker-restart",
        "bus-probe",
        "tamper",
        "disclosure",
        "clientid-takeover",
        "live-revocation",
        "firmware-core",
    ] {
        assert!(ids.contains(&want), "scenario {want} missing");
    }
    // Both key modes where the lab's claims differ by mode.
    for id in ["wrong-chip", "valid-chip", "pub-sub", "bus-probe"] {
        let modes: Vec<&str> = results
            .iter()
            .filter(|r| r.id == id)
            .map(|r| r.mode.as_str())
            .collect();
        assert!(
            modes.contains(&"lab") || id == "valid-chip",
            "{id}: {modes:?}"
        );
        assert!(modes.contains(&"offload"), "{id}: {modes:?}");
    }
    let s = stride(&results);
    assert_eq!(s.len(), 6);
    assert!(s.iter().all(|r| r.holds));
    // The evidence is the broker's own words.
    let wrong = results.iter().find(|r| r.id == "wrong-chip").unwrap();
    assert!(wrong.evidence.contains("bad signature"));
    let acl = results.iter().find(|r| r.id == "acl").unwrap();
    assert!(acl.evidence.contains("0x87"));
    // The impostor is named by its certificate, and nobody was evicted.
    let takeover = results
        .iter()
        .find(|r| r.id == "clientid-takeover")
        .unwrap();
    assert!(
        takeover.evidence.contains("as m5go "),
        "{}",
        takeover.evidence
    );
    assert!(!takeover.evidence.contains("already connected"));
    // The revoked session was cut by the broker, with the delay measured.
    let live = results.iter().find(|r| r.id == "live-revocation").unwrap();
    assert!(
        live.evidence.contains("administrative action"),
        "{}",
        live.evidence
    );
    assert!(
        live.evidence.contains("CertificateRevoked"),
        "{}",
        live.evidence
    );
    assert!(live.observed.starts_with("cut in "), "{}", live.observed);
}
