//! OpenSSL accepts what coffre-pki writes: the CA, broker and device
//! certificates, the CRL, CSRs signed through a callback, and lab keys.
//! Mosquitto loads these files through OpenSSL, so this is the acceptance
//! test for the broker side. Skipped with a note when `openssl` is absent.

mod common;

use std::fs;

use coffre_pki::ca::{InitOptions, IssueOptions, Pki};
use coffre_pki::csr::{build_csr, csr_pem};
use coffre_pki::util::public_key_to_xy;
use coffre_pki::{lab, Error};
use common::{device_key, have_openssl, openssl, openssl_ok};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::Signature;
use p256::PublicKey;
use time::{Duration, OffsetDateTime};

fn init(dir: &std::path::Path) -> Pki {
    Pki::init(
        dir,
        &InitOptions {
            ca_name: "coffre test CA".into(),
            broker_names: vec!["broker.example".into(), "192.0.2.7".into()],
            ..InitOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn ca_and_broker_are_accepted_by_openssl() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let _pki = init(d);

    let ca = openssl_ok(d, &["x509", "-in", "ca.crt.pem", "-noout", "-text"]);
    assert!(ca.contains("Version: 3 (0x2)"), "{ca}");
    assert!(ca.contains("ecdsa-with-SHA256"), "{ca}");
    assert!(ca.contains("prime256v1"), "{ca}");
    assert!(ca.contains("X509v3 Basic Constraints: critical"), "{ca}");
    assert!(ca.contains("CA:TRUE"), "{ca}");
    assert!(ca.contains("Certificate Sign, CRL Sign"), "{ca}");
    assert!(ca.contains("X509v3 Subject Key Identifier"), "{ca}");
    assert!(ca.contains("X509v3 Authority Key Identifier"), "{ca}");
    assert!(ca.contains("CN = coffre test CA"), "{ca}");
    openssl_ok(d, &["verify", "-CAfile", "ca.crt.pem", "ca.crt.pem"]);

    let v = openssl_ok(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.crt.pem",
            "-purpose",
            "sslserver",
            "broker.crt.pem",
        ],
    );
    assert!(v.contains("broker.crt.pem: OK"), "{v}");
    let b = openssl_ok(d, &["x509", "-in", "broker.crt.pem", "-noout", "-text"]);
    assert!(b.contains("Version: 3 (0x2)"), "{b}");
    assert!(b.contains("TLS Web Server Authentication"), "{b}");
    assert!(b.contains("DNS:localhost"), "{b}");
    assert!(b.contains("IP Address:127.0.0.1"), "{b}");
    assert!(b.contains("IP Address:0:0:0:0:0:0:0:1"), "{b}");
    assert!(b.contains("DNS:broker.example"), "{b}");
    assert!(b.contains("IP Address:192.0.2.7"), "{b}");
    assert!(b.contains("CN = broker.example"), "{b}");
    assert!(b.contains("CA:FALSE"), "{b}");

    // The keys load, and each matches its certificate.
    for (key, cert) in [
        ("ca.key.pem", "ca.crt.pem"),
        ("broker.key.pem", "broker.crt.pem"),
    ] {
        let from_key = openssl_ok(d, &["pkey", "-in", key, "-pubout"]);
        let from_cert = openssl_ok(d, &["x509", "-in", cert, "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert, "{key} does not match {cert}");
    }

    let crl = openssl_ok(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(crl.contains("Version 2"), "{crl}");
    assert!(crl.contains("No Revoked Certificates"), "{crl}");
    openssl_ok(
        d,
        &["crl", "-in", "crl.pem", "-noout", "-CAfile", "ca.crt.pem"],
    );
}

#[test]
fn device_certificate_verifies_and_matches_the_index() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut pki = init(d);
    let key = device_key();
    let issued = pki
        .issue_device(
            "m5go-01",
            &PublicKey::from(key.verifying_key()),
            &IssueOptions::default(),
        )
        .unwrap();
    assert_eq!(issued.path, d.join("devices/m5go-01.crt.pem"));

    let v = openssl_ok(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.crt.pem",
            "-purpose",
            "sslclient",
            "devices/m5go-01.crt.pem",
        ],
    );
    assert!(v.contains(": OK"), "{v}");
    let t = openssl_ok(
        d,
        &["x509", "-in", "devices/m5go-01.crt.pem", "-noout", "-text"],
    );
    assert!(t.contains("Version: 3 (0x2)"), "{t}");
    assert!(t.contains("Subject: CN = m5go-01"), "{t}");
    assert!(t.contains("Issuer: CN = coffre test CA"), "{t}");
    assert!(t.contains("TLS Web Client Authentication"), "{t}");
    assert!(t.contains("Digital Signature"), "{t}");
    assert!(t.contains("CA:FALSE"), "{t}");

    let serial = openssl_ok(
        d,
        &[
            "x509",
            "-in",
            "devices/m5go-01.crt.pem",
            "-noout",
            "-serial",
        ],
    );
    assert_eq!(serial.trim(), format!("serial={}", issued.serial));
    // 16 bytes, positive: exactly 32 hex digits once a possible leading zero
    // byte is restored.
    assert!(
        issued.serial.len() >= 31 && issued.serial.len() <= 32,
        "{}",
        issued.serial
    );
    let fp = openssl_ok(
        d,
        &[
            "x509",
            "-in",
            "devices/m5go-01.crt.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert_eq!(
        fp.trim().rsplit('=').next().unwrap(),
        issued.fingerprint_sha256
    );
    let entry = pki.index().certificates.last().unwrap();
    assert_eq!(entry.serial, issued.serial);
    assert_eq!(entry.fingerprint_sha256, issued.fingerprint_sha256);

    // Re-opened from disk, the CA still issues certificates that chain.
    let mut reopened = Pki::open(d).unwrap();
    reopened
        .issue_device(
            "m5go-02",
            &PublicKey::from(device_key().verifying_key()),
            &IssueOptions::default(),
        )
        .unwrap();
    openssl_ok(
        d,
        &[
            "verify",
            "-CAfile",
            "ca.crt.pem",
            "-purpose",
            "sslclient",
            "devices/m5go-02.crt.pem",
        ],
    );
}

#[test]
fn foreign_ca_does_not_verify_our_devices() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let ours = tmp.path().join("ours");
    let foreign = tmp.path().join("foreign");
    let mut pki = init(&ours);
    let _foreign = init(&foreign);
    let dev = pki
        .issue_device(
            "dev",
            &PublicKey::from(device_key().verifying_key()),
            &IssueOptions::default(),
        )
        .unwrap();
    let r = openssl(
        tmp.path(),
        &[
            "verify",
            "-CAfile",
            foreign.join("ca.crt.pem").to_str().unwrap(),
            dev.path.to_str().unwrap(),
        ],
    );
    assert!(!r.ok, "{}", r.out);
    assert!(
        r.out.contains("unable to get local issuer certificate"),
        "{}",
        r.out
    );
}

#[test]
fn expired_certificate_is_refused_by_openssl() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut pki = init(d);
    let now = OffsetDateTime::now_utc();
    let opts = IssueOptions {
        not_before: Some(now - Duration::days(30)),
        not_after: Some(now - Duration::days(1)),
        ..IssueOptions::default()
    };
    pki.issue_device("old", &PublicKey::from(device_key().verifying_key()), &opts)
        .unwrap();
    let r = openssl(
        d,
        &["verify", "-CAfile", "ca.crt.pem", "devices/old.crt.pem"],
    );
    assert!(!r.ok);
    assert!(r.out.contains("certificate has expired"), "{}", r.out);

    let status = pki.show().unwrap();
    let old = status.devices.iter().find(|x| x.id == "old").unwrap();
    assert!(old.expired && !old.not_yet_valid);
}

#[test]
fn revoked_certificate_is_in_the_crl() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut pki = init(d);
    let bad = pki
        .issue_device(
            "bad",
            &PublicKey::from(device_key().verifying_key()),
            &IssueOptions::default(),
        )
        .unwrap();
    let good = pki
        .issue_device(
            "good",
            &PublicKey::from(device_key().verifying_key()),
            &IssueOptions::default(),
        )
        .unwrap();
    let revoked = pki.revoke("bad").unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, bad.serial);

    let crl = openssl_ok(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(crl.contains("Version 2"), "{crl}");
    assert!(crl.contains("X509v3 CRL Number"), "{crl}");
    assert!(crl.contains("X509v3 Authority Key Identifier"), "{crl}");
    assert!(crl.contains("Next Update"), "{crl}");
    assert!(crl.contains("ecdsa-with-SHA256"), "{crl}");
    assert!(
        crl.contains(&format!("Serial Number: {}", bad.serial)),
        "{crl}"
    );
    assert!(!crl.contains(good.serial.as_str()), "{crl}");
    let v = openssl_ok(
        d,
        &["crl", "-in", "crl.pem", "-noout", "-CAfile", "ca.crt.pem"],
    );
    assert!(v.contains("verify OK"), "{v}");

    // What Mosquitto does with `crlfile`: check the chain against the CRL.
    let r = openssl(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.crt.pem",
            "-CRLfile",
            "crl.pem",
            "devices/bad.crt.pem",
        ],
    );
    assert!(!r.ok);
    assert!(r.out.contains("certificate revoked"), "{}", r.out);
    openssl_ok(
        d,
        &[
            "verify",
            "-crl_check",
            "-CAfile",
            "ca.crt.pem",
            "-CRLfile",
            "crl.pem",
            "devices/good.crt.pem",
        ],
    );

    // Revoking by serial (colons, any case) works too, and bumps the number.
    let n = pki.index().crl_number;
    let colon_serial = good
        .serial
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(":");
    pki.revoke(&colon_serial).unwrap();
    assert_eq!(pki.index().crl_number, n + 1);
    let crl = openssl_ok(d, &["crl", "-in", "crl.pem", "-noout", "-text"]);
    assert!(
        crl.contains(&format!("Serial Number: {}", good.serial)),
        "{crl}"
    );
}

fn chip_signer(
    key: &p256::ecdsa::SigningKey,
) -> impl FnMut(&[u8; 32]) -> Result<[u8; 64], p256::ecdsa::Error> + '_ {
    move |digest| {
        let sig: Signature = key.sign_prehash(digest)?;
        Ok(sig.to_bytes().into())
    }
}

#[test]
fn csr_signed_through_a_callback_is_accepted_by_openssl() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let key = device_key();
    let xy = public_key_to_xy(&PublicKey::from(key.verifying_key()));
    let der = build_csr("m5go-offload", &xy, chip_signer(&key)).unwrap();
    fs::write(d.join("x.csr"), &der).unwrap();
    fs::write(d.join("x.csr.pem"), csr_pem(&der)).unwrap();

    let r = openssl_ok(
        d,
        &["req", "-inform", "DER", "-in", "x.csr", "-verify", "-noout"],
    );
    assert!(r.contains("verify OK"), "{r}");
    let r = openssl_ok(
        d,
        &["req", "-in", "x.csr.pem", "-verify", "-noout", "-text"],
    );
    assert!(r.contains("Subject: CN = m5go-offload"), "{r}");
    assert!(r.contains("ecdsa-with-SHA256"), "{r}");

    let mut pki = init(&d.join("pki"));
    let issued = pki.issue_from_csr(&der, &IssueOptions::default()).unwrap();
    assert_eq!(issued.id, "m5go-offload");
    openssl_ok(
        d,
        &[
            "verify",
            "-CAfile",
            "pki/ca.crt.pem",
            "-purpose",
            "sslclient",
            "pki/devices/m5go-offload.crt.pem",
        ],
    );
    // The certificate holds the chip's key.
    let cert_pub = openssl_ok(
        d,
        &[
            "x509",
            "-in",
            "pki/devices/m5go-offload.crt.pem",
            "-noout",
            "-pubkey",
        ],
    );
    let csr_pub = openssl_ok(d, &["req", "-in", "x.csr.pem", "-noout", "-pubkey"]);
    assert_eq!(cert_pub, csr_pub);
}

#[test]
fn openssl_csr_is_accepted_and_a_tampered_one_refused() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    openssl_ok(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "k.pem",
        ],
    );
    openssl_ok(
        d,
        &[
            "req",
            "-new",
            "-key",
            "k.pem",
            "-subj",
            "/CN=dev-ossl",
            "-sha256",
            "-outform",
            "DER",
            "-out",
            "r.der",
        ],
    );
    let der = fs::read(d.join("r.der")).unwrap();
    let mut pki = init(&d.join("pki"));
    let issued = pki.issue_from_csr(&der, &IssueOptions::default()).unwrap();
    assert_eq!(issued.id, "dev-ossl");

    let mut tampered = der.clone();
    let pos = tampered.windows(8).position(|w| w == b"dev-ossl").unwrap();
    tampered[pos] = b'D';
    let err = pki
        .issue_from_csr(&tampered, &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::BadCsrSignature(_)), "{err}");
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
    assert!(!d.join("pki/devices/Dev-ossl.crt.pem").exists());
}

#[test]
fn lab_key_is_read_by_openssl() {
    if !have_openssl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (der, public_key) = lab::generate_lab_key();
    fs::write(d.join("lab.der"), &der[..]).unwrap();
    let t = openssl_ok(
        d,
        &[
            "pkey", "-inform", "DER", "-in", "lab.der", "-noout", "-text",
        ],
    );
    assert!(t.contains("prime256v1"), "{t}");
    // OpenSSL's own PKCS#8 of the same key is byte-identical.
    let again = openssl_ok(
        d,
        &[
            "pkey", "-inform", "DER", "-in", "lab.der", "-outform", "PEM",
        ],
    );
    fs::write(d.join("lab.pem"), again).unwrap();
    openssl_ok(
        d,
        &[
            "pkcs8", "-topk8", "-nocrypt", "-in", "lab.pem", "-outform", "DER", "-out", "lab2.der",
        ],
    );
    assert_eq!(fs::read(d.join("lab2.der")).unwrap(), der.to_vec());

    // The blob round-trips, and the PEM the lab device builds loads too.
    let blob = lab::encode_slot8(&der).unwrap();
    assert_eq!(&blob[..2], &[0x00, 0x8A]);
    let back = lab::decode_slot8(&blob[..]).unwrap();
    fs::write(
        d.join("lab3.pem"),
        lab::pkcs8_pem(&back).unwrap().as_bytes(),
    )
    .unwrap();
    let mut pki = init(&d.join("pki"));
    pki.issue_device("lab-dev", &public_key, &IssueOptions::default())
        .unwrap();
    let from_key = openssl_ok(d, &["pkey", "-in", "lab3.pem", "-pubout"]);
    let from_cert = openssl_ok(
        d,
        &[
            "x509",
            "-in",
            "pki/devices/lab-dev.crt.pem",
            "-noout",
            "-pubkey",
        ],
    );
    assert_eq!(from_key, from_cert);
}
