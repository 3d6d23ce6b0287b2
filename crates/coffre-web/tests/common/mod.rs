//! Emulated chips for the explorer's tests: a lab-mode publisher (its key
//! in slot 8), an offload-mode subscriber, and a fresh "wrong" chip.

#![allow(dead_code, reason = "each test binary uses a part of the fixture")]

use std::path::{Path, PathBuf};

use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_pki::{InitOptions, Pki};
use coffre_provision::{provision, AssumeYes, Mode, Options};
use coffre_web::{ChipSource, LiveHub, WebConfig};

/// The chips, their certificates and a scenario table, in a tempdir.
pub struct Fixture {
    /// Holds every file.
    pub dir: tempfile::TempDir,
    /// Lab mode: PKCS#8 key in slot 8, not slot-locked.
    pub publisher: PathBuf,
    /// Offload mode: key in slot 0.
    pub subscriber: PathBuf,
    /// A Trust&GO chip as shipped.
    pub wrong: PathBuf,
    /// The publisher's certificate.
    pub publisher_cert: PathBuf,
    /// The subscriber's certificate.
    pub subscriber_cert: PathBuf,
    /// Where the scenario table goes (not written by `fixture`).
    pub scenarios: PathBuf,
}

fn new_image(path: &Path) {
    coffre_emu::image::create(path, &Preset::Tngtls.build(), false).unwrap();
}

fn provision_image(path: &Path, pki: &mut Pki, id: &str, mode: Mode) {
    let board = Board::open(path, Timing::Instant).unwrap();
    let addr = board.with_chip(|c| coffre_emu::device::Device::address(c));
    let mut chip = Atecc::new(board.bus.clone(), board.delay(), addr);
    let mut opts = Options::new(id, mode);
    opts.lock_slot8 = Some(false);
    provision(&mut chip, pki, &opts, &mut AssumeYes::default()).unwrap();
    assert!(board.with_chip(|c| c.take_persist_error()).is_none());
}

/// Build the three chips.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut pki = Pki::init(d.join("pki"), &InitOptions::default()).unwrap();
    let publisher = d.join("publisher.img");
    let subscriber = d.join("subscriber.img");
    let wrong = d.join("wrong.img");
    for p in [&publisher, &subscriber, &wrong] {
        new_image(p);
    }
    provision_image(&publisher, &mut pki, "m5go", Mode::Lab);
    provision_image(&subscriber, &mut pki, "m5stack", Mode::Offload);
    Fixture {
        publisher_cert: pki.device_cert_path("m5go"),
        subscriber_cert: pki.device_cert_path("m5stack"),
        scenarios: d.join("scenarios.json"),
        publisher,
        subscriber,
        wrong,
        dir,
    }
}

impl Fixture {
    /// The explorer's configuration for the three chips.
    pub fn config(&self, live: LiveHub) -> WebConfig {
        WebConfig {
            chips: vec![
                ChipSource::new("publisher", &self.publisher).with_cert(&self.publisher_cert),
                ChipSource::new("subscriber", &self.subscriber)
                    .with_cert(&self.subscriber_cert)
                    .with_key_slot(0),
                ChipSource::new("wrong chip", &self.wrong)
                    .with_cert(&self.publisher_cert)
                    .with_key_slot(0),
            ],
            scenarios_json: Some(self.scenarios.clone()),
            live,
            ..WebConfig::default()
        }
    }

    /// A scenario table as `coffre demo --json` writes it.
    pub fn write_scenarios(&self) {
        let table = serde_json::json!([
            {"name": "chip disconnected", "expected": "stop before any network connection",
             "observed": "secure element not found; no connection", "evidence": "agent: secure element not found at 0x35", "pass": true},
            {"name": "wrong chip", "expected": "broker refuses the handshake",
             "observed": "connection closed by the broker", "evidence": "mosquitto: bad signature", "pass": true},
            {"name": "valid chip", "expected": "SUBACK for m5go/env",
             "observed": "SUBACK granted QoS 1", "evidence": ["CONNACK 0x00", "SUBACK [1]"], "pass": true},
            {"name": "publisher + subscriber", "expected": "readings arrive at once",
             "observed": "12 readings in 12 s", "evidence": "seq 1..12", "pass": false}
        ]);
        std::fs::write(&self.scenarios, serde_json::to_vec_pretty(&table).unwrap()).unwrap();
    }
}

/// Every 8-byte run, as hex (upper and lower case), of the private scalars
/// sealed in slots 0–4 of the image: bytes the explorer must never serve.
pub fn sealed_scalars(image: &Path) -> Vec<String> {
    let nv = coffre_emu::image::load(image).unwrap();
    let mut out = Vec::new();
    for s in 0..=4u8 {
        for w in nv.slot(s)[4..36].windows(8) {
            let lower: String = w.iter().map(|b| format!("{b:02x}")).collect();
            out.push(lower.to_uppercase());
            out.push(lower);
        }
    }
    out
}
