//! The PKI directory: refusing to overwrite, clear errors for missing or
//! damaged files, the index, `show`, and the audit of a device certificate.

mod common;

use std::fs;

use coffre_pki::audit::{self, Severity};
use coffre_pki::ca::{InitOptions, IssueOptions, Kind, Pki, Status};
use coffre_pki::util::public_key_to_xy;
use coffre_pki::{lab, Error};
use coffre_proto::config::ConfigZone;
use coffre_proto::tngtls::TNGTLS_CONFIG_SAMPLE;
use common::device_key;
use p256::PublicKey;
use time::{Duration, OffsetDateTime};

fn pk() -> PublicKey {
    PublicKey::from(device_key().verifying_key())
}

#[test]
fn layout_and_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");
    let pki = Pki::init(&d, &InitOptions::default()).unwrap();
    for f in [
        "ca.key.pem",
        "ca.crt.pem",
        "broker.key.pem",
        "broker.crt.pem",
        "crl.pem",
        "index.jsonl",
        "index.lock",
    ] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    assert!(d.join("devices").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("ca.key.pem"), 0o600);
        assert_eq!(mode("broker.key.pem"), 0o600);
        assert_eq!(mode("ca.crt.pem"), 0o644);
    }
    // No temporary files are left behind.
    let names: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    assert!(fs::read_to_string(d.join("ca.key.pem"))
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // Debug never shows the key.
    let dbg = format!("{pki:?}");
    assert!(dbg.contains("redacted") && !dbg.contains("PRIVATE"));

    // The index is a journal: a header, then one line per certificate.
    let journal = fs::read_to_string(d.join("index.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["op"], "header");
    assert_eq!(lines[0]["format"], 2);
    assert_eq!(lines[0]["crl_number"], 1);
    assert_eq!(lines[1]["op"], "issue");
    assert_eq!(lines[1]["kind"], "ca");
    assert_eq!(lines[2]["kind"], "broker");
    assert_eq!(lines[2]["status"], "issued");
    assert!(!d.join("index.json").exists());
}

#[test]
fn init_refuses_to_overwrite_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut first = Pki::init(d, &InitOptions::default()).unwrap();
    first
        .issue_device("dev", &pk(), &IssueOptions::default())
        .unwrap();
    let ca_before = fs::read(d.join("ca.crt.pem")).unwrap();

    let err = Pki::init(d, &InitOptions::default()).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read(d.join("ca.crt.pem")).unwrap(), ca_before);

    let second = Pki::init(
        d,
        &InitOptions {
            force: true,
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert_ne!(fs::read(d.join("ca.crt.pem")).unwrap(), ca_before);
    assert!(!d.join("devices/dev.crt.pem").exists());
    assert_eq!(second.index().certificates.len(), 2);
}

#[test]
fn device_certificate_is_never_silently_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    let first = pki
        .issue_device("dev", &pk(), &IssueOptions::default())
        .unwrap();
    let err = pki
        .issue_device("dev", &pk(), &IssueOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::DeviceExists { .. }), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(fs::read_to_string(&first.path).unwrap(), first.pem);

    let second = pki
        .issue_device(
            "dev",
            &pk(),
            &IssueOptions {
                force: true,
                ..IssueOptions::default()
            },
        )
        .unwrap();
    assert_ne!(first.serial, second.serial);
    assert_eq!(fs::read_to_string(&second.path).unwrap(), second.pem);

    let status = pki.show().unwrap();
    let devs: Vec<_> = status.devices.iter().filter(|d| d.id == "dev").collect();
    assert_eq!(devs.len(), 2);
    assert!(!devs[0].current && devs[1].current);

    // Revoking by id revokes both.
    assert_eq!(pki.revoke("dev").unwrap().len(), 2);
    let err = pki.revoke("dev").unwrap_err();
    assert!(matches!(err, Error::AlreadyRevoked(_)), "{err}");
    let err = pki.revoke("nobody").unwrap_err();
    assert!(matches!(err, Error::NotIssued(_)), "{err}");
    assert!(err.to_string().contains("coffre pki show"), "{err}");
}

#[test]
fn bad_ids_and_validity_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    for id in ["../etc/passwd", "", "a b", ".x"] {
        let err = pki
            .issue_device(id, &pk(), &IssueOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidId { .. }), "{id}: {err}");
    }
    let now = OffsetDateTime::now_utc();
    let err = pki
        .issue_device(
            "dev",
            &pk(),
            &IssueOptions {
                not_before: Some(now),
                not_after: Some(now - Duration::days(1)),
                ..IssueOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidValidity(_)), "{err}");
    let err = pki
        .issue_device(
            "dev",
            &pk(),
            &IssueOptions {
                validity_days: 0,
                ..IssueOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidValidity(_)), "{err}");
    let err = Pki::init(
        tmp.path().join("b"),
        &InitOptions {
            broker_names: vec!["bröker".into()],
            ..InitOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
}

#[test]
fn device_validity_is_capped_at_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(
        tmp.path(),
        &InitOptions {
            validity_days: 10,
            ..InitOptions::default()
        },
    )
    .unwrap();
    let c = pki
        .issue_device(
            "dev",
            &pk(),
            &IssueOptions {
                validity_days: 365,
                ..IssueOptions::default()
            },
        )
        .unwrap();
    let ca = &pki.index().certificates[0];
    assert_eq!(ca.kind, Kind::Ca);
    assert_eq!(c.not_after, ca.not_after);
}

#[test]
fn missing_and_damaged_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");

    let err = Pki::open(&d).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("coffre pki init"), "{err}");

    Pki::init(&d, &InitOptions::default()).unwrap();
    Pki::open(&d).unwrap();

    // Corrupted index: a damaged line before the last one.
    let index = fs::read(d.join("index.jsonl")).unwrap();
    let damaged =
        String::from_utf8(index.clone())
            .unwrap()
            .replacen("\"op\":\"issue\"", "\"op\":", 1);
    fs::write(d.join("index.jsonl"), damaged).unwrap();
    let err = Pki::open(&d).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("index.jsonl") && msg.contains("line 2") && msg.contains("--force"),
        "{msg}"
    );
    fs::write(d.join("index.jsonl"), &index).unwrap();

    // Corrupted CA key.
    let key = fs::read(d.join("ca.key.pem")).unwrap();
    fs::write(
        d.join("ca.key.pem"),
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = Pki::open(&d).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("ca.key.pem"), "{err}");
    assert!(err.to_string().contains("private key"), "{err}");
    // The error never echoes key material.
    assert!(!err.to_string().contains("AAAA"), "{err}");

    // Missing CA key.
    fs::remove_file(d.join("ca.key.pem")).unwrap();
    let err = Pki::open(&d).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("ca.key.pem"), "{err}");

    // Another CA's key with our certificate.
    let other = tmp.path().join("other");
    Pki::init(&other, &InitOptions::default()).unwrap();
    fs::copy(other.join("ca.key.pem"), d.join("ca.key.pem")).unwrap();
    let err = Pki::open(&d).unwrap_err();
    assert!(matches!(err, Error::CaKeyMismatch { .. }), "{err}");
    fs::write(d.join("ca.key.pem"), &key).unwrap();

    // Corrupted CA certificate.
    fs::write(d.join("ca.crt.pem"), b"garbage").unwrap();
    let err = Pki::open(&d).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("ca.crt.pem"), "{err}");
}

#[cfg(unix)]
#[test]
fn unreadable_key_is_an_io_error_when_not_root() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    Pki::init(d, &InitOptions::default()).unwrap();
    fs::set_permissions(d.join("ca.key.pem"), fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(d.join("ca.key.pem")).is_ok() {
        eprintln!("note: running as root, file permissions are not enforced; skipping");
        return;
    }
    let err = Pki::open(d).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert!(err.to_string().contains("permissions"), "{err}");
}

#[test]
fn show_lists_everything_and_serializes() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    pki.issue_device("a", &pk(), &IssueOptions::default())
        .unwrap();
    let b = pki
        .issue_device("b", &pk(), &IssueOptions::default())
        .unwrap();
    pki.revoke(&b.serial).unwrap();
    let s = pki.show().unwrap();
    assert_eq!(s.ca.subject, "coffre CA");
    assert_eq!(s.broker.as_ref().unwrap().subject, "localhost");
    assert_eq!(s.devices.len(), 2);
    assert_eq!(s.devices[0].status, Status::Issued);
    assert_eq!(s.devices[1].status, Status::Revoked);
    assert!(s.devices[1].revoked_at.is_some());
    assert_eq!(s.crl.revoked, 1);
    assert_eq!(s.crl.number, 2);
    assert!(!s.crl.expired && s.crl.next_update.is_some());
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["devices"][1]["status"], "revoked");
    assert_eq!(json["devices"][0]["id"], "a");

    pki.refresh_crl().unwrap();
    assert_eq!(pki.show().unwrap().crl.number, 3);
}

#[test]
fn audit_checks_the_device_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut pki = Pki::init(tmp.path(), &InitOptions::default()).unwrap();
    let cfg = ConfigZone(TNGTLS_CONFIG_SAMPLE);
    let chip = device_key();
    let chip_xy = public_key_to_xy(&PublicKey::from(chip.verifying_key()));

    // The right certificate: no finding.
    let good = pki
        .issue_device(
            "good",
            &PublicKey::from(chip.verifying_key()),
            &IssueOptions::default(),
        )
        .unwrap();
    assert!(audit::findings(&cfg, &[], Some(good.pem.as_bytes()), Some(chip_xy)).is_empty());

    // Another chip's certificate: the broker would say "bad signature".
    let other = pki
        .issue_device("other", &pk(), &IssueOptions::default())
        .unwrap();
    let f = audit::findings(&cfg, &[], Some(&other.der), Some(chip_xy));
    assert_eq!(f[0].code, "certificate-key-mismatch");
    assert_eq!(f[0].severity, Severity::Critical);

    // Expired.
    let now = OffsetDateTime::now_utc();
    let expired = pki
        .issue_device(
            "expired",
            &PublicKey::from(chip.verifying_key()),
            &IssueOptions {
                not_before: Some(now - Duration::days(10)),
                not_after: Some(now - Duration::days(1)),
                ..IssueOptions::default()
            },
        )
        .unwrap();
    let f = audit::findings(&cfg, &[], Some(&expired.der), Some(chip_xy));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].code, "certificate-expired");

    // Not yet valid.
    let future = pki
        .issue_device(
            "future",
            &PublicKey::from(chip.verifying_key()),
            &IssueOptions {
                not_before: Some(now + Duration::days(2)),
                not_after: Some(now + Duration::days(400)),
                ..IssueOptions::default()
            },
        )
        .unwrap();
    let f = audit::findings(&cfg, &[], Some(&future.der), Some(chip_xy));
    assert_eq!(f[0].code, "certificate-not-yet-valid");

    // Lab mode: the certificate matches the key in slot 8.
    let (lab_der, lab_pk) = lab::generate_lab_key();
    let lab_cert = pki
        .issue_device("lab", &lab_pk, &IssueOptions::default())
        .unwrap();
    let slot8 = lab::encode_slot8(&lab_der).unwrap().to_vec();
    let f = audit::findings(&cfg, &[(8, Some(slot8.clone()))], Some(&lab_cert.der), None);
    assert!(
        f.iter().all(|f| f.code != "certificate-key-mismatch"),
        "{f:?}"
    );
    assert_eq!(f[0].code, "private-key-readable");

    // A certificate stored raw in a slot is recognised.
    let mut slot = other.der.clone();
    slot.resize(416, 0);
    assert!(matches!(
        audit::classify(&slot),
        audit::Content::Certificate {
            length_prefixed: false,
            ..
        }
    ));
    let mut prefixed = (other.der.len() as u16).to_be_bytes().to_vec();
    prefixed.extend_from_slice(&other.der);
    prefixed.resize(416, 0xFF);
    assert!(matches!(
        audit::classify(&prefixed),
        audit::Content::Certificate { length_prefixed: true, subject: Some(ref cn), .. } if cn == "other"
    ));
    // ... and writable in clear in slot 8, it is reported.
    let f = audit::findings(&cfg, &[(8, Some(prefixed))], None, None);
    assert_eq!(f[0].code, "slot-writable");
    assert!(f[0].message.contains("certificate"), "{}", f[0].message);
}

/// Issue 15, item 11: a CA certificate with a damaged field was accepted.
#[test]
fn a_ca_certificate_with_a_damaged_field_is_refused_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    Pki::init(d, &InitOptions::default()).unwrap();
    let pem = fs::read(d.join("ca.crt.pem")).unwrap();
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let mut der = parsed.contents;
    // One bit of the serial number: the certificate still parses.
    der[20] ^= 0x01;
    assert!(x509_parser::parse_x509_certificate(&der).is_ok());
    let damaged =
        p256::pkcs8::der::pem::encode_string("CERTIFICATE", p256::pkcs8::LineEnding::LF, &der)
            .unwrap();
    fs::write(d.join("ca.crt.pem"), damaged).unwrap();
    let err = Pki::open(d).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ca.crt.pem") && msg.contains("altered"),
        "{msg}"
    );
}

/// Issue 15, item 11: `pki init --days 9999999` panicked and left `devices/`.
#[test]
fn out_of_range_validity_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("pki");
    for days in [9_999_999, coffre_pki::ca::MAX_VALIDITY_DAYS + 1] {
        let err = Pki::init(
            &d,
            &InitOptions {
                validity_days: days,
                ..InitOptions::default()
            },
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidValidity(_)), "{err}");
        assert!(!d.exists(), "init wrote something");
    }
    let mut pki = Pki::init(&d, &InitOptions::default()).unwrap();
    let err = pki
        .issue_device(
            "dev",
            &pk(),
            &IssueOptions {
                validity_days: 99_999_999,
                ..IssueOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidValidity(_)), "{err}");
    assert!(!d.join("devices/dev.crt.pem").exists());
}

/// Temporary files of a process killed in the middle of a write are
/// removed when the PKI is next opened; those of a live process are not.
#[cfg(target_os = "linux")]
#[test]
fn temporaries_of_killed_writers_are_removed_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    Pki::init(d, &InitOptions::default()).unwrap();
    // No process has pid 4194304 or more (the kernel's pid_max limit).
    let dead = d.join("devices/.k-1.crt.pem.4194304-0.tmp");
    let live = d.join(format!("devices/.k-2.crt.pem.{}-0.tmp", std::process::id()));
    let other = d.join("devices/.notes.tmp");
    for f in [&dead, &live, &other] {
        fs::write(f, b"x").unwrap();
    }
    Pki::open(d).unwrap();
    assert!(!dead.exists());
    assert!(live.exists() && other.exists());
}
