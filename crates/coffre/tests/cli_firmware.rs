//! `coffre firmware config`: the file it writes is read back by the parser
//! the ESP32-C3 firmware runs, and names the key of the provisioned chip
//! (checked as the firmware checks it before going online).

mod common;
use common::*;

use coffre_driver::Atecc;
use coffre_emu::{board::Board, clock::Timing};
use coffre_firmware::{IdentityError, KeySigner, Settings};

fn der(pem: &[u8]) -> Vec<u8> {
    coffre_agent::tls::parse_certificates(pem, "certificate").unwrap()[0]
        .as_ref()
        .to_vec()
}

#[test]
fn writes_the_settings_the_firmware_reads() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    ok(&["emu", "new", "--out", "chip.img"], p);
    ok(&["emu", "new", "--out", "other.img"], p);
    ok(&["provision", "--bus", "emu:chip.img", "--id", "m5go-1"], p);
    let out = ok(
        &[
            "firmware",
            "config",
            "--pki",
            "pki",
            "--id",
            "m5go-1",
            "--broker",
            "192.168.1.10:8883",
            "--server-name",
            "localhost",
            "--wifi-ssid",
            "lab net",
            "--interval",
            "5",
            "--out",
            "settings.conf",
        ],
        p,
    );
    assert!(out.contains("wrote settings.conf"), "{out}");
    let text = std::fs::read_to_string(p.join("settings.conf")).unwrap();
    assert!(
        !text.to_lowercase().contains("password ="),
        "no password is written"
    );
    let s = Settings::parse(&text).unwrap();
    assert_eq!(
        (
            s.id.as_str(),
            s.broker_host.as_str(),
            s.broker_port,
            s.server_name.as_str()
        ),
        ("m5go-1", "192.168.1.10", 8883, "localhost")
    );
    assert_eq!((s.wifi_ssid.as_str(), s.interval_secs), ("lab net", 5));
    assert_eq!(s.chip_address, 0x35);
    assert!(!s.example);
    assert_eq!(
        s.ca_der,
        der(&std::fs::read(p.join("pki/ca.crt.pem")).unwrap())
    );
    assert_eq!(
        s.cert_der,
        der(&std::fs::read(p.join("pki/devices/m5go-1.crt.pem")).unwrap())
    );

    // The firmware's identity check: the provisioned chip's slot-0 key is
    // the certificate's; another chip's is not.
    let signer = |img: &str| {
        let board = Board::open(&p.join(img), Timing::Instant).unwrap();
        let chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
        (board, KeySigner::Chip { chip, slot: 0 })
    };
    let (_b, mut mine) = signer("chip.img");
    mine.check().unwrap();
    mine.matches_certificate(&s.cert_der).unwrap();
    let (_o, mut other) = signer("other.img");
    let e = other.matches_certificate(&s.cert_der).unwrap_err();
    assert!(matches!(e, IdentityError::Mismatch { .. }), "{e}");
    assert!(e.to_string().contains("does not match"), "{e}");

    // What is missing is said, and nothing is written.
    let e = err(
        &[
            "firmware",
            "config",
            "--id",
            "nobody",
            "--broker",
            "b:8883",
            "--wifi-ssid",
            "x",
            "--out",
            "n.conf",
        ],
        p,
    );
    assert!(e.contains("provision it first"), "{e}");
    assert!(!p.join("n.conf").exists());
    let e = err(
        &[
            "firmware",
            "config",
            "--id",
            "m5go-1",
            "--broker",
            "b:8883",
            "--wifi-ssid",
            "x",
            "--key",
            "offload 8",
            "--out",
            "n.conf",
        ],
        p,
    );
    assert!(e.contains("offload N"), "{e}");
}
