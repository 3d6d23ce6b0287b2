//! PKI, provisioning, fleet and audit through the built binary.

mod common;
use common::*;
use std::process::Command;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn pki_lifecycle() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(
        &[
            "pki",
            "init",
            "--dir",
            "pki",
            "--broker-name",
            "broker.local",
        ],
        p,
    );
    assert!(err(&["pki", "init", "--dir", "pki"], p).contains("--force"));
    // Issue from a public key PEM made by OpenSSL.
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "dev.key",
        ])
        .current_dir(p)
        .status()
        .unwrap();
    assert!(st.success());
    let v = json(&ok(
        &[
            "pki",
            "issue",
            "--id",
            "dev-1",
            "--public-key",
            "dev.key",
            "--json",
        ],
        p,
    ));
    assert_eq!(v["id"], "dev-1");
    // An already expired certificate, for the scenario tests.
    ok(
        &[
            "pki",
            "issue",
            "--id",
            "old-1",
            "--public-key",
            "dev.key",
            "--not-before",
            "2019-01-01T00:00:00Z",
            "--not-after",
            "2020-01-01T00:00:00Z",
        ],
        p,
    );
    let o = Command::new("openssl")
        .args([
            "verify",
            "-CAfile",
            "pki/ca.crt.pem",
            "pki/devices/old-1.crt.pem",
        ])
        .current_dir(p)
        .output()
        .unwrap();
    assert!(!o.status.success(), "expired certificate verified");
    // Revoke, then the CRL lists it.
    ok(&["pki", "revoke", "dev-1"], p);
    assert!(err(&["pki", "revoke", "dev-1"], p).contains("already revoked"));
    let o = Command::new("openssl")
        .args(["crl", "-in", "pki/crl.pem", "-noout", "-text"])
        .current_dir(p)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("Serial Number"));
    let s = json(&ok(&["pki", "show", "--json"], p));
    assert_eq!(s["devices"].as_array().unwrap().len(), 2);
    ok(&["pki", "crl"], p);
    assert!(err(&["pki", "show", "--dir", "nope"], p).contains("coffre pki init"));
}

#[test]
fn provision_lab_and_offload_then_inspect() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    ok(&["emu", "new", "--out", "pub.img"], p);
    ok(&["emu", "new", "--out", "sub.img"], p);
    let v = json(&ok(
        &[
            "provision",
            "--bus",
            "emu:pub.img",
            "--id",
            "m5go-1",
            "--mode",
            "lab",
            "--lock-slot8",
            "--yes",
            "--json",
            "--manifest",
            "fleet.jsonl",
        ],
        p,
    ));
    assert_eq!(v["slot8_locked"], true);
    ok(
        &[
            "provision",
            "--bus",
            "emu:sub.img",
            "--id",
            "m5stack",
            "--mode",
            "offload",
            "--manifest",
            "fleet.jsonl",
            "--transcript",
            "sub.txt",
        ],
        p,
    );
    assert_eq!(
        std::fs::read_to_string(p.join("fleet.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    let o = Command::new("openssl")
        .args([
            "req",
            "-in",
            "pki/devices/m5stack.csr.pem",
            "-verify",
            "-noout",
        ])
        .current_dir(p)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The audit: lab chip has the key in clear; offload chip is clean.
    let r = json(&ok(
        &[
            "inspect",
            "--bus",
            "emu:pub.img",
            "--cert",
            "pki/devices/m5go-1.crt.pem",
            "--json",
        ],
        p,
    ));
    let codes: Vec<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    assert!(
        codes.contains(&"private-key-readable".to_string()),
        "{codes:?}"
    );
    assert!(
        !codes.contains(&"slot-writable".to_string()),
        "slot 8 is locked now: {codes:?}"
    );
    assert_eq!(r["slots"][8]["lock"], "slot-locked");
    let r = json(&ok(
        &[
            "inspect",
            "--bus",
            "emu:sub.img",
            "--cert",
            "pki/devices/m5stack.crt.pem",
            "--key-slot",
            "0",
            "--json",
        ],
        p,
    ));
    let codes: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(!codes.contains(&"certificate-key-mismatch"), "{codes:?}");
    assert!(!codes.contains(&"private-key-readable"), "{codes:?}");
    // Wrong certificate for the chip.
    let r = json(&ok(
        &[
            "inspect",
            "--bus",
            "emu:sub.img",
            "--cert",
            "pki/devices/m5go-1.crt.pem",
            "--key-slot",
            "0",
            "--json",
        ],
        p,
    ));
    assert!(r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "certificate-key-mismatch"));
    // Text output names the finding in words.
    let t = ok(&["inspect", "--bus", "emu:pub.img"], p);
    assert!(
        t.contains("readable in clear by anyone on the I2C bus"),
        "{t}"
    );
    // The same chip and id again: the run is finished, not repeated (issue 15.4).
    ok(&["provision", "--bus", "emu:sub.img", "--id", "m5stack"], p);
    // Another chip under an id already issued: refused without --force.
    assert!(err(&["provision", "--bus", "emu:pub.img", "--id", "m5stack"], p).contains("--force"));
    // Wrong mode value.
    assert!(err(
        &[
            "provision",
            "--bus",
            "emu:sub.img",
            "--id",
            "x",
            "--mode",
            "cloud"
        ],
        p
    )
    .contains("lab, offload or factory"));
}

#[test]
fn blank_chips_are_not_locked_without_a_confirmation() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    ok(
        &["emu", "new", "--preset", "blank", "--out", "blank.img"],
        p,
    );
    let e = err(&["provision", "--bus", "emu:blank.img", "--id", "b-1"], p);
    assert!(e.contains("--configure"), "{e}");
    // No terminal and no --yes: nothing is locked.
    let e = err(
        &[
            "provision",
            "--bus",
            "emu:blank.img",
            "--id",
            "b-1",
            "--configure",
            "hardened",
        ],
        p,
    );
    assert!(e.contains("pass --yes"), "{e}");
    let info = json(&ok(
        &["chip", "info", "--bus", "emu:blank.img", "--json"],
        p,
    ));
    assert_eq!(info["config_locked"], false);
    ok(
        &[
            "provision",
            "--bus",
            "emu:blank.img",
            "--id",
            "b-1",
            "--configure",
            "hardened",
            "--yes",
        ],
        p,
    );
    let info = json(&ok(
        &["chip", "locks", "--bus", "emu:blank.img", "--json"],
        p,
    ));
    assert_eq!(info["config_locked"], true);
    assert_eq!(info["data_locked"], true);
    // The hardened chip's IO protection key is kept for the device.
    let iokey = p.join("pki/devices/b-1.iokey");
    assert_eq!(std::fs::read(&iokey).unwrap().len(), 33);
    // A lab key goes into a hardened chip only with that key: another
    // device id has none.
    let e = err(
        &[
            "provision",
            "--bus",
            "emu:blank.img",
            "--id",
            "b-2",
            "--mode",
            "lab",
        ],
        p,
    );
    assert!(e.contains("b-2.iokey"), "{e}");
    // b-1 has it: slot 8 is written and read back encrypted.
    let out = ok(
        &[
            "provision",
            "--bus",
            "emu:blank.img",
            "--id",
            "b-1",
            "--mode",
            "lab",
            "--force",
            "--yes",
        ],
        p,
    );
    assert!(out.contains("lab mode"), "{out}");
}

#[test]
fn fleet_provisioning_writes_a_manifest() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    let v = json(&ok(
        &[
            "provision",
            "--fleet",
            "5",
            "--prefix",
            "m5go-",
            "--dir",
            "fleet",
            "--json",
        ],
        p,
    ));
    assert_eq!(v["devices"].as_array().unwrap().len(), 5);
    let m = std::fs::read_to_string(p.join("fleet/manifest.jsonl")).unwrap();
    let ids: Vec<String> = m
        .lines()
        .map(|l| json(l)["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        ["m5go-001", "m5go-002", "m5go-003", "m5go-004", "m5go-005"]
    );
    let serials: std::collections::HashSet<String> = m
        .lines()
        .map(|l| json(l)["chip_serial"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(serials.len(), 5, "every chip has its own serial");
    // Running again resumes: the five are skipped, one more is added.
    let v = json(&ok(
        &["provision", "--fleet", "6", "--dir", "fleet", "--json"],
        p,
    ));
    assert_eq!(
        (
            v["skipped"].as_u64(),
            v["devices"].as_array().unwrap().len()
        ),
        (Some(5), 1)
    );
    let m = std::fs::read_to_string(p.join("fleet/manifest.jsonl")).unwrap();
    // A damaged manifest stops the next run with the line number.
    std::fs::write(p.join("fleet/manifest.jsonl"), m + "garbage\n").unwrap();
    let e = err(&["provision", "--fleet", "7", "--dir", "fleet"], p);
    assert!(e.contains("line 7 is damaged"), "{e}");
}

#[test]
fn broker_config_from_the_pki() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    assert!(err(
        &[
            "broker",
            "config",
            "--pki",
            "pki",
            "--out",
            "b",
            "--publisher",
            "m5go-1"
        ],
        p
    )
    .contains("coffre pki init"));
    ok(&["pki", "init"], p);
    assert!(err(&["broker", "config"], p).contains("--publisher"));
    assert!(err(&["broker", "config", "--publisher", "a/#"], p).contains("CVE-2017-7650"));
    ok(
        &[
            "broker",
            "config",
            "--publisher",
            "m5go-1",
            "--subscriber",
            "m5stack",
            "--listen",
            "127.0.0.1:18883",
        ],
        p,
    );
    let conf = std::fs::read_to_string(p.join("broker/mosquitto.conf")).unwrap();
    assert!(conf.contains("listener 18883 127.0.0.1") && conf.contains("require_certificate true"));
    let acl = std::fs::read_to_string(p.join("broker/acl")).unwrap();
    assert!(acl.contains("user m5go-1\ntopic write m5go/env"));
}
