//! Fuzz targets of coffre: every decoder of bytes coffre does not control,
//! and the emulator as a whole chip.
//!
//! Each target is a plain function `fn(&[u8])` that must not panic, must not
//! hang, and checks its own invariants (it panics when one is broken, which
//! is what a fuzzer reports). The same functions are
//!
//! - run by libFuzzer through cargo-fuzz from `fuzz/` (nightly only, `make fuzz`),
//! - replayed on stable by this crate's tests over every file of
//!   `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` (`make test`).
//!
//! ```
//! // Any bytes are a valid input; a target returns normally unless it finds a bug.
//! for target in coffre_fuzz::TARGETS {
//!     (target.run)(b"\x07\x02\x00\x00\x00\x00\x00");
//! }
//! ```

pub mod bytes;
pub mod certs;
pub mod chip;
pub mod driver;
pub mod files;
pub mod kit;
pub mod mqtt;
pub mod proto;
pub mod seeds;
pub mod tls;
pub mod web;

/// One fuzz target.
#[derive(Clone, Copy)]
pub struct Target {
    /// Its name: the libFuzzer target's and the corpus directory's.
    pub name: &'static str,
    /// What it feeds the bytes to.
    pub what: &'static str,
    /// The target itself.
    pub run: fn(&[u8]),
}

/// Every target, in the order `make fuzz` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "proto_response",
        what: "chip response packets (count, data, CRC) as the driver decodes them",
        run: proto::response,
    },
    Target {
        name: "proto_command",
        what: "command packets as the emulator parses them, re-encoded by the driver's encoder",
        run: proto::command,
    },
    Target {
        name: "proto_config",
        what: "128-byte config zones decoded and explained",
        run: proto::config,
    },
    Target {
        name: "driver_bus",
        what: "the driver over a bus that answers arbitrary bytes",
        run: driver::bus,
    },
    Target {
        name: "sensors_bus",
        what: "the SHT30 and BMP280 drivers over a bus that answers arbitrary bytes",
        run: driver::sensors,
    },
    Target {
        name: "emu_chip",
        what: "the emulated ATECC608B fed arbitrary I2C transactions in any lock state",
        run: chip::transactions,
    },
    Target {
        name: "emu_image",
        what: "chip image files as the emulator loads them",
        run: chip::image,
    },
    Target {
        name: "kit_session",
        what: "the kit-protocol line framer and session in front of an emulated chip",
        run: kit::session,
    },
    Target {
        name: "mqtt_codec",
        what: "MQTT 5 / 3.1.1 packets from a broker, decoded, re-encoded and decoded again",
        run: mqtt::codec,
    },
    Target {
        name: "mqtt_session",
        what: "the device's sans-IO MQTT session fed a broker's bytes with time moving",
        run: mqtt::session,
    },
    Target {
        name: "atcacert",
        what: "Trust&GO compressed certificates and chip data rebuilt into X.509",
        run: certs::atcacert,
    },
    Target {
        name: "pki_files",
        what: "certificates, CSRs, PKCS#8 keys and slot-8 blobs given to the PKI",
        run: certs::pki,
    },
    Target {
        name: "manifest",
        what: "Trust&GO manifests (JSON, JWS, x5c chains) as the import verifies them",
        run: certs::manifest,
    },
    Target {
        name: "pki_journal",
        what: "the PKI's journal (index.jsonl) as found on disk, then an issue and a reopening",
        run: files::journal,
    },
    Target {
        name: "tls_agent",
        what: "a broker's bytes to the Linux agent's rustls client (TLS 1.2 and 1.3)",
        run: tls::agent,
    },
    Target {
        name: "tls_firmware",
        what: "a broker's bytes to the firmware's embedded-tls client (TLS 1.3, chip crypto)",
        run: tls::firmware,
    },
    Target {
        name: "queue_files",
        what: "the durable queue's marker and file as found on disk",
        run: files::queue,
    },
    Target {
        name: "web_request",
        what: "HTTP requests to the web explorer, with any Host, Origin and body",
        run: web::request,
    },
];

/// A preset's state, built once per process (building a `tngtls` chip signs
/// its factory certificates: far too slow to repeat for every input).
pub fn preset(p: coffre_emu::presets::Preset) -> coffre_emu::chip::NvState {
    use coffre_emu::presets::Preset;
    use std::sync::OnceLock;
    static TNGTLS: OnceLock<coffre_emu::chip::NvState> = OnceLock::new();
    static BLANK: OnceLock<coffre_emu::chip::NvState> = OnceLock::new();
    match p {
        Preset::Tngtls => TNGTLS.get_or_init(|| p.build()).clone(),
        _ => BLANK.get_or_init(|| p.build()).clone(),
    }
}

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
