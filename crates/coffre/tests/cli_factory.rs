//! The identity a Trust&GO chip ships with, through the built binary:
//! `coffre emu factory-root`, `coffre chip certs`, checked by OpenSSL.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

use coffre_emu::image;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

fn openssl_verify(dir: &Path, root: &str, signer: &str, device: &str) -> (bool, String) {
    let o = Command::new("openssl")
        .args(["verify", "-CAfile", root, "-untrusted", signer, device])
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

/// Change an image's non-volatile state in place.
fn edit(path: &Path, f: impl FnOnce(&mut coffre_emu::chip::NvState)) {
    let mut nv = image::load(path).unwrap();
    f(&mut nv);
    image::save(path, &nv).unwrap();
}

#[test]
fn factory_certificates_rebuild_and_openssl_accepts_the_chain() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["emu", "new", "--preset", "tngtls", "--out", "a.img"], p);
    ok(&["emu", "new", "--preset", "tngtls", "--out", "b.img"], p);
    ok(&["emu", "factory-root", "--out", "root.pem"], p);
    assert_eq!(
        std::fs::read_to_string(p.join("root.pem")).unwrap(),
        ok(&["emu", "factory-root"], p)
    );
    let v = json(&ok(
        &[
            "chip",
            "certs",
            "--bus",
            "emu:a.img",
            "--out",
            "a",
            "--json",
        ],
        p,
    ));
    assert_eq!(v["verified"], true);
    assert_eq!(v["otp_code"], "KQp2ZkD8");
    // The device's identity is "sn" + its serial number, as on Trust&GO parts.
    let info = json(&ok(&["chip", "info", "--bus", "emu:a.img", "--json"], p));
    let sn = info["serial_number"].as_str().unwrap().to_uppercase();
    assert_eq!(v["device_cn"], format!("sn{sn}"));
    let (good, out) = openssl_verify(p, "root.pem", "a/signer.pem", "a/device.pem");
    assert!(good, "{out}");
    // The PEM printed on stdout is the same pair.
    let text = ok(&["chip", "certs", "--bus", "emu:a.img"], p);
    let files = std::fs::read_to_string(p.join("a/device.pem")).unwrap()
        + &std::fs::read_to_string(p.join("a/signer.pem")).unwrap();
    assert_eq!(text, files);
    // Every image has its own device certificate, one signer for all.
    ok(&["chip", "certs", "--bus", "emu:b.img", "--out", "b"], p);
    let read = |f: &str| std::fs::read(p.join(f)).unwrap();
    assert_ne!(read("a/device.pem"), read("b/device.pem"));
    assert_eq!(read("a/signer.pem"), read("b/signer.pem"));
    // b's device certificate does not pass as a's: another subject and key.
    let (good, _) = openssl_verify(p, "root.pem", "a/signer.pem", "b/device.pem");
    assert!(good, "b chains to the same root");
    // Against Microchip's real root, the emulated chain is refused, by
    // OpenSSL and by coffre.
    let st = Command::new("openssl")
        .args(["x509", "-in", "a/root.pem", "-noout", "-subject"])
        .current_dir(p)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("Crypto Authentication Root CA 002"));
}

#[test]
fn bad_factory_certificates_are_refused_with_exit_4() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(
        &["emu", "new", "--preset", "tngtls", "--out", "good.img"],
        p,
    );
    let refused = |img: &str, extra: &[&str]| {
        let mut args = vec!["chip", "certs", "--bus", img];
        args.extend_from_slice(extra);
        let o = coffre(&args, p);
        assert_eq!(
            o.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    };

    // Empty slot 10 (an erased slot reads 0xFF).
    std::fs::copy(p.join("good.img"), p.join("empty.img")).unwrap();
    edit(&p.join("empty.img"), |nv| nv.slot_mut(10).fill(0xFF));
    let e = refused("emu:empty.img", &[]);
    assert!(
        e.contains("slot 10") && e.contains("does not rebuild"),
        "{e}"
    );

    // One flipped bit in the stored signature.
    std::fs::copy(p.join("good.img"), p.join("flip.img")).unwrap();
    edit(&p.join("flip.img"), |nv| nv.slot_mut(10)[3] ^= 0x10);
    let e = refused("emu:flip.img", &[]);
    assert!(
        e.contains("device certificate") && e.contains("not signed by the signer"),
        "{e}"
    );

    // A corrupted date (month 0).
    std::fs::copy(p.join("good.img"), p.join("date.img")).unwrap();
    edit(&p.join("date.img"), |nv| {
        nv.slot_mut(10)[64] &= 0xF8;
        nv.slot_mut(10)[65] &= 0x7F;
    });
    let e = refused("emu:date.img", &[]);
    assert!(e.contains("invalid date"), "{e}");

    // Another key in slot 0: the certificate, rebuilt over that key, no
    // longer carries the factory's signature.
    std::fs::copy(p.join("good.img"), p.join("key.img")).unwrap();
    let other = coffre_emu::presets::Preset::Tngtls.build();
    edit(&p.join("key.img"), |nv| {
        nv.slot_mut(0).copy_from_slice(other.slot(0));
    });
    let e = refused("emu:key.img", &[]);
    assert!(
        e.contains("not signed by the signer") && e.contains("slot 0"),
        "{e}"
    );

    // A root the chain does not lead to (Microchip's real one, given as a
    // file): the emulated signer is not signed by it.
    let v = json(&ok(
        &[
            "chip",
            "certs",
            "--bus",
            "emu:good.img",
            "--out",
            "g",
            "--json",
        ],
        p,
    ));
    assert_eq!(v["verified"], true);
    std::fs::write(
        p.join("microchip.der"),
        coffre_pki::factory::MICROCHIP_ROOT_CA_002,
    )
    .unwrap();
    let e = refused("emu:good.img", &["--root", "microchip.der"]);
    assert!(e.contains("not signed by the trusted root"), "{e}");
    let (good, _) = openssl_verify(p, "g/root.pem", "g/signer.pem", "g/device.pem");
    assert!(good);

    // A blank chip has no factory certificates: a clear error, not exit 4.
    ok(
        &["emu", "new", "--preset", "blank", "--out", "blank.img"],
        p,
    );
    let o = coffre(&["chip", "certs", "--bus", "emu:blank.img"], p);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("OTP"), "{e}");
}

fn free_addr() -> String {
    coffre_fs::free_loopback_addr().unwrap().to_string()
}

#[test]
fn a_factory_device_and_a_lab_device_share_one_broker() {
    use std::process::Stdio;
    use std::time::Duration;

    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let (main, factory) = (free_addr(), free_addr());
    ok(&["pki", "init"], p);
    for img in ["fac.img", "lab.img", "sub.img", "bad.img"] {
        ok(&["emu", "new", "--preset", "tngtls", "--out", img], p);
    }
    // Factory provisioning writes nothing to the chip.
    let before = std::fs::read(p.join("fac.img")).unwrap();
    let v = json(&ok(
        &[
            "provision",
            "--bus",
            "emu:fac.img",
            "--mode",
            "factory",
            "--json",
        ],
        p,
    ));
    assert_eq!(std::fs::read(p.join("fac.img")).unwrap(), before);
    let cn = v["entry"]["id"].as_str().unwrap().to_string();
    assert!(cn.starts_with("sn0123") && cn.len() == 20, "{cn}");
    assert_eq!(v["entry"]["mode"], "factory");
    assert!(p.join(format!("pki/devices/{cn}.crt.pem")).exists());
    ok(
        &[
            "provision",
            "--bus",
            "emu:lab.img",
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
            "--listen",
            &main,
            "--factory-root",
            "emu",
            "--factory-listen",
            &factory,
            "--publisher",
            &cn,
            "--publisher",
            "m5go-1",
            "--subscriber",
            "m5stack",
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
            &main,
            "--id",
            "m5stack",
            "--count",
            "2",
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
            "emu:fac.img",
            "--broker",
            &factory,
            "--id",
            &cn,
            "--mode",
            "factory",
            "--count",
            "1",
        ],
        p,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("factory chain") && err.contains("PUBACK 0x00"),
        "{err}"
    );
    let o = coffre(
        &[
            "publish",
            "--bus",
            "emu:lab.img",
            "--broker",
            &main,
            "--id",
            "m5go-1",
            "--mode",
            "lab",
            "--count",
            "1",
        ],
        p,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = sub.wait_with_output().unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let mut devices: Vec<String> = String::from_utf8_lossy(&s.stdout)
        .lines()
        .map(|l| json(l)["reading"]["device"].as_str().unwrap().to_string())
        .collect();
    devices.sort();
    let mut want = vec![cn.clone(), "m5go-1".to_string()];
    want.sort();
    assert_eq!(devices, want);
    // Mosquitto took the CN as the username.
    let log = std::fs::read_to_string(p.join("broker/mosquitto.log")).unwrap();
    assert!(log.contains(&format!("u'{cn}'")), "{log}");

    // A chip whose stored certificate is corrupted is refused before any
    // network activity: exit 4, no new connection in the broker log.
    edit(&p.join("bad.img"), |nv| nv.slot_mut(10)[7] ^= 0x01);
    let bad_cn = json(&ok(&["chip", "info", "--bus", "emu:bad.img", "--json"], p))["serial_number"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let connections = |log: &str| log.matches("New connection").count();
    let n = connections(&std::fs::read_to_string(p.join("broker/mosquitto.log")).unwrap());
    let o = coffre(
        &[
            "publish",
            "--bus",
            "emu:bad.img",
            "--broker",
            &factory,
            "--id",
            &format!("sn{bad_cn}"),
            "--mode",
            "factory",
            "--count",
            "1",
        ],
        p,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("nothing was sent to the broker"), "{err}");
    let e = err_of(
        &["provision", "--bus", "emu:bad.img", "--mode", "factory"],
        p,
        4,
    );
    assert!(e.contains("not signed by the signer"), "{e}");
    std::thread::sleep(Duration::from_millis(300));
    let log = std::fs::read_to_string(p.join("broker/mosquitto.log")).unwrap();
    assert_eq!(connections(&log), n, "{log}");
}

/// Run and require exit `code`; stderr.
fn err_of(args: &[&str], dir: &Path, code: i32) -> String {
    let o = coffre(args, dir);
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn a_manifest_imports_its_good_entries_and_names_the_tampered_one() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    ok(
        &[
            "emu",
            "new",
            "--count",
            "4",
            "--out",
            "chips",
            "--manifest",
            "m.json",
        ],
        p,
    );
    let mut m = json(&std::fs::read_to_string(p.join("m.json")).unwrap());
    assert_eq!(m.as_array().unwrap().len(), 4);
    // One bit flipped in entry 2's payload.
    let payload = m[2]["payload"].as_str().unwrap().to_string();
    let mut b = URL_SAFE_NO_PAD.decode(&payload).unwrap();
    b[100] ^= 0x01;
    m[2]["payload"] = serde_json::Value::String(URL_SAFE_NO_PAD.encode(&b));
    let tampered_id = m[2]["header"]["uniqueId"].as_str().unwrap().to_string();
    std::fs::write(p.join("t.json"), m.to_string()).unwrap();
    let o = coffre(
        &[
            "import-manifest",
            "t.json",
            "--signer",
            "m.json.signer.pem",
            "--root",
            "emu",
            "--registry",
            "fleet.jsonl",
            "--json",
        ],
        p,
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(v["registered"].as_array().unwrap().len(), 3);
    assert_eq!(v["refused"][0]["index"], 2);
    assert_eq!(v["refused"][0]["unique_id"], tampered_id);
    assert!(v["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("signature"));
    // The registered parts are the chips on disk, each under its CN.
    let reg = std::fs::read_to_string(p.join("fleet.jsonl")).unwrap();
    assert_eq!(reg.lines().count(), 3);
    for id in v["registered"].as_array().unwrap() {
        let id = id.as_str().unwrap();
        assert!(p.join(format!("pki/devices/{id}.crt.pem")).exists());
        assert!(!id.to_lowercase().contains(&tampered_id));
    }
    // The broker lets exactly the registered devices publish.
    ok(
        &[
            "broker",
            "config",
            "--publishers-from",
            "fleet.jsonl",
            "--subscriber",
            "m5stack",
            "--factory-root",
            "emu",
        ],
        p,
    );
    let acl = std::fs::read_to_string(p.join("broker/acl")).unwrap();
    for id in v["registered"].as_array().unwrap() {
        assert!(
            acl.contains(&format!("user {}\ntopic write", id.as_str().unwrap())),
            "{acl}"
        );
    }
    assert!(!acl.to_lowercase().contains(&tampered_id), "{acl}");
    // The untouched manifest imports whole; with the wrong root, nothing does.
    ok(
        &[
            "import-manifest",
            "m.json",
            "--signer",
            "m.json.signer.pem",
            "--root",
            "emu",
        ],
        p,
    );
    let e = err_of(
        &[
            "import-manifest",
            "m.json",
            "--signer",
            "m.json.signer.pem",
            "--root",
            "microchip",
        ],
        p,
        4,
    );
    // The emulated signer chains to the emulated root, not to Microchip's:
    // the manifest is refused whole, nothing registered.
    assert!(
        e.contains("manifest signer certificate 'coffre emulated manifest signer' is not signed by the trusted root's key"),
        "{e}"
    );
    assert_eq!(e.matches("refused: entry").count(), 0, "{e}");
    // Parts of another factory: signer trusted, chains refused one by one.
    let e = err_of(
        &[
            "import-manifest",
            "m.json",
            "--signer",
            "m.json.signer.pem",
            "--signer-root",
            "emu",
            "--root",
            "microchip",
        ],
        p,
        4,
    );
    assert_eq!(e.matches("refused: entry").count(), 4, "{e}");
    // A signer that does not chain: the PKI's CA certificate.
    let e = err_of(
        &[
            "import-manifest",
            "m.json",
            "--signer",
            "pki/ca.crt.pem",
            "--root",
            "emu",
        ],
        p,
        4,
    );
    assert!(e.contains("was not issued by the trusted root"), "{e}");
    // Trusted as its own root, it is still not the one that signed.
    let e = err_of(
        &[
            "import-manifest",
            "m.json",
            "--signer",
            "pki/ca.crt.pem",
            "--signer-root",
            "pki/ca.crt.pem",
            "--root",
            "emu",
        ],
        p,
        4,
    );
    assert!(e.contains("unknown manifest signer"), "{e}");
    std::fs::write(
        p.join("half.json"),
        &std::fs::read(p.join("m.json")).unwrap()[..500],
    )
    .unwrap();
    let e = err_of(
        &[
            "import-manifest",
            "half.json",
            "--signer",
            "m.json.signer.pem",
            "--root",
            "emu",
        ],
        p,
        1,
    );
    assert!(e.contains("not JSON"), "{e}");
}
