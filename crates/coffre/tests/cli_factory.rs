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
