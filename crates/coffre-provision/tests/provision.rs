//! Provisioning emulated chips end to end, checked with OpenSSL and the
//! emulator's bus transcript.

use std::path::Path;
use std::process::Command;

use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::{EmuDelay, Timing};
use coffre_emu::presets::Preset;
use coffre_emu::EmuBus;
use coffre_pki::{InitOptions, Pki};
use coffre_provision::manifest::Manifest;
use coffre_provision::{configure, inspect, provision, AssumeYes, Layout, Mode, Options, Ui};

type Chip = Atecc<EmuBus, EmuDelay>;

fn board(preset: Preset) -> (Board, Chip) {
    let b = Board::new(preset.build(), Timing::Instant);
    let addr = b.with_chip(|c| coffre_emu::device::Device::address(c));
    let chip = Atecc::new(b.bus.clone(), b.delay(), addr);
    (b, chip)
}

fn pki(dir: &Path) -> Pki {
    Pki::init(dir.join("pki"), &InitOptions::default()).unwrap()
}

fn openssl(args: &[&str]) -> (bool, String) {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl is installed");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

struct Say(bool, Vec<String>);
impl Ui for Say {
    fn step(&mut self, m: &str) {
        self.1.push(m.to_string());
    }
    fn confirm(&mut self, _a: &str, _p: &[String]) -> bool {
        self.0
    }
}

#[test]
fn lab_mode_writes_the_labs_exact_layout() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (b, mut chip) = board(Preset::Tngtls);
    b.bus.start_transcript();
    let mut opts = Options::new("m5go-1", Mode::Lab);
    opts.lock_slot8 = Some(false);
    opts.manifest = Some(Manifest::at(d.path().join("fleet.jsonl")));
    let out = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    assert!(!out.slot8_locked && !out.resumed);
    let t = b.bus.take_transcript();

    // Slot 8 byte for byte: 2-byte big-endian length, DER, zero padding.
    let slot8 = b.with_chip(|c| c.nv().slot(8).to_vec());
    let len = u16::from_be_bytes([slot8[0], slot8[1]]) as usize;
    assert!((100..=140).contains(&len), "{len}");
    assert_eq!(slot8[2], 0x30, "DER SEQUENCE");
    assert!(slot8[2 + len..].iter().all(|&x| x == 0));
    let der = &slot8[2..2 + len];
    // OpenSSL reads the DER read back from slot 8 as a P-256 key.
    let key_path = d.path().join("slot8.der");
    std::fs::write(&key_path, der).unwrap();
    let (ok, text) = openssl(&[
        "pkey",
        "-inform",
        "DER",
        "-in",
        key_path.to_str().unwrap(),
        "-noout",
        "-text",
    ]);
    assert!(ok && text.contains("prime256v1"), "{text}");
    // The chain verifies.
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        pki.ca_cert_path().to_str().unwrap(),
        pki.device_cert_path("m5go-1").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // The certificate is for that key.
    let cert_pk = coffre_provision::cert_public_key(out.cert_pem.as_bytes()).unwrap();
    assert_eq!(coffre_pki::util::hex(&cert_pk), out.entry.public_key);
    // The 13 blocks went over the bus at the lab's addresses, in clear.
    let text = t.to_text();
    for block in 0..13 {
        assert!(text.contains(&format!("command Write 32 B, data slot 8 block {block}")));
    }
    // Every block of the key went over the bus in clear: a probe sees it.
    for block in slot8.chunks(32).filter(|b| b.iter().any(|&x| x != 0)) {
        assert!(
            t.contains(block),
            "a block of the key is not in the transcript"
        );
    }
    // Manifest.
    let m = Manifest::at(d.path().join("fleet.jsonl"))
        .entries()
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].id.as_str(), m[0].mode.as_str(), m[0].key_slot),
        ("m5go-1", "lab", 8)
    );
}

#[test]
fn lab_mode_resumes_locks_and_refuses_a_full_slot() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (b, mut chip) = board(Preset::Tngtls);
    let mut opts = Options::new("m5go-2", Mode::Lab);
    opts.lock_slot8 = Some(false);
    provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    // Same id again: already done; this time the slot lock is accepted.
    opts.lock_slot8 = None;
    let mut ui = AssumeYes::default();
    let again = provision(&mut chip, &mut pki, &opts, &mut ui).unwrap();
    assert!(again.resumed && again.slot8_locked);
    assert!(ui.asked.iter().any(|a| a.contains("0x22")));
    assert!(b.with_chip(|c| c.config().slot_locked(8)));
    // Locking twice is a no-op, not an error.
    let third = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    assert!(third.slot8_locked);
    // A different id finds slot 8 full (and locked).
    let e = provision(
        &mut chip,
        &mut pki,
        &Options::new("other", Mode::Lab),
        &mut AssumeYes::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("holds the key of device m5go-2"), "{e}");
}

#[test]
fn lab_mode_finishes_an_interrupted_run() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (_b, mut chip) = board(Preset::Tngtls);
    // A key written by an earlier run that died before the certificate.
    let (der, pk) = coffre_pki::lab::generate_lab_key();
    chip.write_slot(8, &coffre_pki::lab::encode_slot8(&der).unwrap()[..])
        .unwrap();
    let mut opts = Options::new("m5go-3", Mode::Lab);
    opts.lock_slot8 = Some(false);
    let mut ui = AssumeYes::default();
    let out = provision(&mut chip, &mut pki, &opts, &mut ui).unwrap();
    assert!(out.resumed);
    assert_eq!(
        out.entry.public_key,
        coffre_pki::util::hex(&coffre_pki::util::public_key_to_xy(&pk))
    );
    assert!(ui.steps.iter().any(|s| s.contains("interrupted")));
}

#[test]
fn declining_the_slot_lock_leaves_it_unlocked() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (b, mut chip) = board(Preset::Tngtls);
    let mut ui = Say(false, Vec::new());
    let out = provision(
        &mut chip,
        &mut pki,
        &Options::new("m5go-4", Mode::Lab),
        &mut ui,
    )
    .unwrap();
    assert!(!out.slot8_locked);
    assert!(!b.with_chip(|c| c.config().slot_locked(8)));
    assert!(ui.1.iter().any(|s| s.contains("left unlocked")));
}

#[test]
fn offload_mode_never_puts_a_private_key_byte_on_the_bus() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (b, mut chip) = board(Preset::Tngtls);
    b.bus.start_transcript();
    let out = provision(
        &mut chip,
        &mut pki,
        &Options::new("m5go-5", Mode::Offload),
        &mut AssumeYes::default(),
    )
    .unwrap();
    let t = b.bus.take_transcript();
    let scalar = b.with_chip(|c| c.nv().slot(0)[4..36].to_vec());
    for w in scalar.windows(4) {
        assert!(
            !t.contains(w),
            "4 bytes of the private key appeared on the bus"
        );
    }
    assert_eq!(out.entry.key_slot, 0);
    // OpenSSL accepts the chip-signed CSR and the chain.
    let csr = d.path().join("pki/devices/m5go-5.csr.pem");
    let (ok, text) = openssl(&["req", "-in", csr.to_str().unwrap(), "-verify", "-noout"]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "verify",
        "-CAfile",
        pki.ca_cert_path().to_str().unwrap(),
        pki.device_cert_path("m5go-5").to_str().unwrap(),
    ]);
    assert!(ok, "{text}");
    // The certificate's key is the chip's slot-0 key.
    assert_eq!(
        out.entry.public_key,
        coffre_pki::util::hex(&chip.genkey_public(0).unwrap())
    );
}

#[test]
fn offload_with_a_new_key_in_a_secondary_slot() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (_b, mut chip) = board(Preset::Tngtls);
    let mut opts = Options::new("m5go-6", Mode::Offload);
    opts.key_slot = Some(2);
    opts.new_key = true;
    let before = chip.genkey_public(2).unwrap();
    let out = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    assert_ne!(out.entry.public_key, coffre_pki::util::hex(&before));
    // Slot 0 cannot be regenerated; slot 8 cannot sign.
    opts.id = "m5go-7".into();
    opts.key_slot = Some(0);
    let e = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap_err();
    assert!(e.to_string().contains("does not allow GenKey"), "{e}");
    opts.key_slot = Some(8);
    opts.new_key = false;
    let e = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap_err();
    assert!(
        e.to_string().contains("cannot sign external messages"),
        "{e}"
    );
}

#[test]
fn blank_chips_need_configuring_and_each_lock_is_confirmed() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (b, mut chip) = board(Preset::Blank);
    let e = provision(
        &mut chip,
        &mut pki,
        &Options::new("b1", Mode::Offload),
        &mut AssumeYes::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("--configure"), "{e}");
    // Saying no at the config lock leaves the chip unlocked.
    let err = configure(&mut chip, Layout::Hardened, &mut Say(false, Vec::new())).unwrap_err();
    assert!(err
        .to_string()
        .contains("stopped before 'lock the config zone'"));
    assert!(!b.with_chip(|c| c.config().config_locked()));
    // Yes to both.
    let mut ui = AssumeYes::default();
    let (cfg, io_key) =
        coffre_provision::configure_with_io_key(&mut chip, Layout::Hardened, &mut ui).unwrap();
    assert!(cfg.config_locked() && cfg.data_locked());
    let io_key = io_key.expect("hardened sets an IO protection key");
    assert_eq!(io_key.slot, 6);
    assert_eq!(
        b.with_chip(|c| c.nv().slot(6)[..32].to_vec()),
        io_key.key.to_vec()
    );
    assert_eq!(
        ui.asked,
        vec!["lock the config zone", "lock the data and OTP zones"]
    );
    // Hardened, lab mode: without the device's IO key it is refused; with
    // it slot 8 is written and read back only through encrypted Write/Read,
    // and the key never crosses the bus in clear.
    let e = provision(
        &mut chip,
        &mut pki,
        &Options::new("b0", Mode::Lab),
        &mut AssumeYes::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("b0.iokey"), "{e}");
    let mut lab = Options::new("b0", Mode::Lab);
    lab.io_key = Some(io_key.clone());
    lab.lock_slot8 = Some(false);
    b.bus.start_transcript();
    provision(&mut chip, &mut pki, &lab, &mut AssumeYes::default()).unwrap();
    let t = b.bus.take_transcript();
    let slot8 = b.with_chip(|c| c.nv().slot(8).to_vec());
    let len = u16::from_be_bytes([slot8[0], slot8[1]]) as usize;
    assert!(len > 100, "a PKCS#8 key is in slot 8");
    let der = &slot8[2..2 + len];
    assert_eq!(der.windows(4).filter(|w| t.contains(w)).count(), 0);
    provision(
        &mut chip,
        &mut pki,
        &Options::new("b1", Mode::Offload),
        &mut AssumeYes::default(),
    )
    .unwrap();
    // The audit finds nothing readable in clear.
    let r = inspect(&mut chip, None, Some(0)).unwrap();
    assert!(r.findings.iter().all(|f| f.code != "private-key-readable"));
}

#[test]
fn interrupted_configuration_is_resumed() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (b, mut chip) = board(Preset::Blank);
    // The chip is pulled out in the middle of the data step.
    b.bus.faults(|f| f.pull_after_commands = Some((0x60, 40)));
    let e = configure(&mut chip, Layout::TrustAndGo, &mut AssumeYes::default()).unwrap_err();
    assert!(
        e.is_no_chip()
            || std::error::Error::source(&e)
                .is_some_and(|s| s.to_string().contains("no response to")),
        "the interruption is reported as a missing chip: {e}"
    );
    b.bus.set_present(0x60, true);
    let mut ui = AssumeYes::default();
    configure(&mut chip, Layout::TrustAndGo, &mut ui).unwrap();
    assert!(
        ui.steps.iter().any(|s| s.contains("resuming")),
        "{:?}",
        ui.steps
    );
    let mut opts = Options::new("b2", Mode::Lab);
    opts.lock_slot8 = Some(true);
    let out = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    assert!(out.slot8_locked);
}

#[test]
fn audit_of_a_lab_provisioned_trustngo_chip() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (_b, mut chip) = board(Preset::Tngtls);
    let mut opts = Options::new("m5go-8", Mode::Lab);
    opts.lock_slot8 = Some(false);
    let out = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    let r = inspect(&mut chip, Some(out.cert_pem.as_bytes()), None).unwrap();
    let codes: Vec<&str> = r.findings.iter().map(|f| f.code).collect();
    assert!(codes.contains(&"private-key-readable"), "{codes:?}");
    assert!(codes.contains(&"slot-writable"), "{codes:?}");
    assert!(
        r.slots[8].content.contains("PKCS#8"),
        "{}",
        r.slots[8].content
    );
    assert_eq!(r.slots[0].content, "private key (never readable)");
    // A certificate for another key is flagged.
    let other = provision(
        &mut board(Preset::Tngtls).1,
        &mut pki,
        &Options::new("m5go-9", Mode::Offload),
        &mut AssumeYes::default(),
    )
    .unwrap();
    let r = inspect(&mut chip, Some(other.cert_pem.as_bytes()), None).unwrap();
    assert!(r
        .findings
        .iter()
        .any(|f| f.code == "certificate-key-mismatch"));
}

#[test]
fn a_damaged_manifest_stops_provisioning_with_a_clear_error() {
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (_b, mut chip) = board(Preset::Tngtls);
    let path = d.path().join("fleet.jsonl");
    std::fs::write(&path, "{not json\n").unwrap();
    let mut opts = Options::new("m5go-10", Mode::Offload);
    opts.manifest = Some(Manifest::at(&path));
    let e = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap_err();
    assert!(e.to_string().contains("line 1 is damaged"), "{e}");
}

/// Issue 15, item 4: `--force` left the first certificate valid, and a
/// rerun after an interruption failed with "already exists".
#[test]
fn reruns_finish_and_force_revokes_what_it_replaces() {
    use coffre_pki::ca::Verdict;
    let d = tempfile::tempdir().unwrap();
    let mut pki = pki(d.path());
    let (_b, mut chip) = board(Preset::Tngtls);
    let mut opts = Options::new("dev", Mode::Offload);
    let first = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    // The run stopped before the manifest: the same command finishes it.
    opts.manifest = Some(Manifest::at(d.path().join("fleet.jsonl")));
    let again = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    assert!(again.resumed);
    assert_eq!(again.cert_pem, first.cert_pem);
    assert_eq!(opts.manifest.as_ref().unwrap().entries().unwrap().len(), 1);

    opts.force = true;
    opts.manifest = None;
    let replaced = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default()).unwrap();
    assert_ne!(replaced.cert_pem, first.cert_pem);
    assert!(matches!(
        pki.verify(first.cert_pem.as_bytes()).unwrap(),
        Verdict::Revoked { .. }
    ));
    assert_eq!(
        pki.verify(replaced.cert_pem.as_bytes()).unwrap(),
        Verdict::Valid
    );

    // Lab mode: the same.
    let (_b2, mut lab_chip) = board(Preset::Tngtls);
    let mut lab = Options::new("lab", Mode::Lab);
    lab.lock_slot8 = Some(false);
    let one = provision(&mut lab_chip, &mut pki, &lab, &mut AssumeYes::default()).unwrap();
    lab.force = true;
    let two = provision(&mut lab_chip, &mut pki, &lab, &mut AssumeYes::default()).unwrap();
    assert!(matches!(
        pki.verify(one.cert_pem.as_bytes()).unwrap(),
        Verdict::Revoked { .. }
    ));
    assert_eq!(pki.verify(two.cert_pem.as_bytes()).unwrap(), Verdict::Valid);
}
