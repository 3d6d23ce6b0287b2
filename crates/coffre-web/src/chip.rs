//! Where chips come from: the [`ChipBackend`] trait, the emulated image
//! source [`ChipSource`], and [`dump_chip`], which reads everything a chip
//! shows over any embedded-hal bus.

use std::path::PathBuf;

use coffre_driver::{AccessSize, Atecc, ConfigZone, Zone};
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::transcript::Transcript;
use coffre_proto::config::ReadAccess;
use coffre_proto::zone::{config_address, slot_size, BLOCK_SIZE, OTP_SIZE, SLOT_COUNT};
use coffre_provision::Report;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use zeroize::Zeroizing;

use crate::WebError;

/// Everything the explorer learnt from one chip, in one pass over the bus.
///
/// Slot contents are kept only for slots the chip serves in clear to anyone
/// on the bus; they are wiped when the dump is dropped.
pub struct ChipDump {
    /// Where the chip is, in words ("emulated chip, image …").
    pub source: String,
    /// The chip's 7-bit I2C address.
    pub address: u8,
    /// Info (revision): `00 00 60 03` on an ATECC608B.
    pub revision: [u8; 4],
    /// The config zone as read.
    pub config: ConfigZone,
    /// The OTP zone, when the chip let it be read.
    pub otp: Option<Vec<u8>>,
    /// The 16 slots: `Some(bytes)` for slots readable in clear.
    pub slots: Vec<Option<Zeroizing<Vec<u8>>>>,
    /// The audit (`coffre inspect`).
    pub report: Report,
    /// Things that went wrong on the side (an unreadable certificate…).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for ChipDump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChipDump")
            .field("source", &self.source)
            .field("address", &self.address)
            .field("config", &self.config)
            .field(
                "readable_slots",
                &self
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.is_some())
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// One step of a recorded bus capture.
#[derive(Debug, Clone)]
pub struct CaptureStep {
    /// Short name of the step ("config zone", "slot 8"…).
    pub step: &'static str,
    /// What the device does in this step, in words.
    pub text: String,
    /// What crossed the wires during it.
    pub transcript: Transcript,
    /// The step failed: why (the capture stops there).
    pub error: Option<String>,
}

/// Which sequence of commands a capture records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureRun {
    /// What the lab's device does at boot: probe, revision, config zone,
    /// lock state, slot 8.
    #[default]
    Boot,
    /// What `coffre inspect` does: every readable slot.
    Inspect,
}

impl CaptureRun {
    /// "boot" or "inspect".
    pub fn name(self) -> &'static str {
        match self {
            CaptureRun::Boot => "boot",
            CaptureRun::Inspect => "inspect",
        }
    }
}

/// A chip the explorer can show. Implementations must only read: the
/// explorer never writes to a chip.
pub trait ChipBackend: Send + Sync + 'static {
    /// The name shown on the page and used in URLs.
    fn name(&self) -> &str;
    /// What kind of source it is ("emulated", "i2c"…).
    fn kind(&self) -> &'static str;
    /// Where the chip is, in words.
    fn describe(&self) -> String;
    /// Read the chip (blocking).
    fn read(&self) -> Result<ChipDump, WebError>;
    /// Record what crosses the bus during `run` (blocking). Sources that
    /// cannot record (a real bus without a logic analyser) keep this
    /// default, which answers [`WebError::NoTranscript`].
    fn capture(&self, run: CaptureRun) -> Result<Vec<CaptureStep>, WebError> {
        let _ = run;
        Err(WebError::NoTranscript(
            self.name().to_string(),
            "a real bus can only be recorded with a logic analyser; the transcript needs an emulated chip (emu:IMAGE)"
                .into(),
        ))
    }
}

/// An emulated chip in an image file (`coffre emu new`), opened read-only
/// for every request: the image is loaded into memory and never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipSource {
    /// Name shown on the page ("publisher", "subscriber", "wrong chip").
    pub name: String,
    /// The image file.
    pub image: PathBuf,
    /// The device certificate (PEM or DER) the audit checks the chip
    /// against.
    pub cert: Option<PathBuf>,
    /// Offload mode: the private-key slot whose public key must match the
    /// certificate.
    pub key_slot: Option<u8>,
}

impl ChipSource {
    /// A chip named `name` in `image`, without certificate.
    pub fn new(name: impl Into<String>, image: impl Into<PathBuf>) -> ChipSource {
        ChipSource {
            name: name.into(),
            image: image.into(),
            cert: None,
            key_slot: None,
        }
    }

    /// The same, audited against the certificate at `cert`.
    pub fn with_cert(mut self, cert: impl Into<PathBuf>) -> ChipSource {
        self.cert = Some(cert.into());
        self
    }

    /// The same, with an offload-mode key slot.
    pub fn with_key_slot(mut self, slot: u8) -> ChipSource {
        self.key_slot = Some(slot);
        self
    }

    fn open(&self) -> Result<(Board, u8), WebError> {
        let nv = coffre_emu::image::load(&self.image).map_err(|e| self.err(e))?;
        let board = Board::new(nv, Timing::Instant);
        let address = board.with_chip(|c| coffre_emu::device::Device::address(c));
        Ok((board, address))
    }

    fn err(&self, e: impl std::fmt::Display) -> WebError {
        WebError::Chip {
            name: self.name.clone(),
            message: e.to_string(),
        }
    }

    fn read_cert(&self, warnings: &mut Vec<String>) -> Option<Vec<u8>> {
        let path = self.cert.as_deref()?;
        match coffre_fs::read_limited(path, 1 << 20) {
            Ok(b) => Some(b),
            Err(e) => {
                warnings.push(format!(
                    "the certificate {} could not be read ({e}); the chip is audited without it",
                    path.display()
                ));
                None
            }
        }
    }
}

impl ChipBackend for ChipSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "emulated"
    }

    fn describe(&self) -> String {
        format!("emulated chip, image {}", self.image.display())
    }

    fn read(&self) -> Result<ChipDump, WebError> {
        let (board, address) = self.open()?;
        let mut warnings = Vec::new();
        let cert = self.read_cert(&mut warnings);
        let mut chip = Atecc::new(board.bus.clone(), board.delay(), address);
        let mut dump = dump_chip(&mut chip, cert.as_deref(), self.key_slot, self.describe())
            .map_err(|m| self.err(m))?;
        dump.warnings.extend(warnings);
        Ok(dump)
    }

    fn capture(&self, run: CaptureRun) -> Result<Vec<CaptureStep>, WebError> {
        let (board, address) = self.open()?;
        let mut chip = Atecc::new(board.bus.clone(), board.delay(), address);
        let bus = board.bus.clone();
        let mut steps = Vec::new();
        let mut record =
            |step: &'static str, text: String, f: &mut dyn FnMut() -> Result<(), String>| -> bool {
                bus.start_transcript();
                let r = f();
                let transcript = bus.take_transcript();
                let ok = r.is_ok();
                steps.push(CaptureStep {
                    step,
                    text,
                    transcript,
                    error: r.err(),
                });
                ok
            };
        match run {
            CaptureRun::Boot => {
                let ok = record(
                    "probe",
                    format!("probe: wake the bus and look for the chip at 0x{address:02X}"),
                    &mut || match chip.probe() {
                        Ok(coffre_driver::Probe::Present) => Ok(()),
                        Ok(p) => Err(format!("secure element not found ({p:?})")),
                        Err(e) => Err(format!("bus error: {e:?}")),
                    },
                ) && record(
                    "init",
                    "init: the library reads the chip's revision (Info)".into(),
                    &mut || chip.info_revision().map(|_| ()).map_err(|e| e.to_string()),
                ) && record(
                    "config zone",
                    "read the config zone: 4 reads of 32 bytes".into(),
                    &mut || {
                        chip.read_config_zone()
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    },
                ) && record(
                    "locks",
                    "check the config lock and the data/OTP lock (config words 0x15, 0x16)".into(),
                    &mut || chip.lock_status().map(|_| ()).map_err(|e| e.to_string()),
                );
                if ok {
                    record(
                        "slot 8",
                        "read slot 8: 13 reads of 32 bytes at (8 << 3) | (block << 8)".into(),
                        &mut || {
                            let mut buf = Zeroizing::new(vec![0u8; 416]);
                            chip.read_slot(8, &mut buf)
                                .map(|_| ())
                                .map_err(|e| e.to_string())
                        },
                    );
                }
            }
            CaptureRun::Inspect => {
                record(
                    "inspect",
                    "coffre inspect: revision, config zone, every slot readable in clear".into(),
                    &mut || {
                        coffre_provision::inspect(&mut chip, None, None)
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    },
                );
            }
        }
        Ok(steps)
    }
}

/// Read everything `chip` shows: the audit ([`coffre_provision::inspect`]
/// against `cert` and `key_slot`), the revision, the config zone, the OTP
/// zone when readable, and the bytes of every slot the chip serves in clear.
/// `source` describes where the chip is. Use it to add a backend for a real
/// bus: it only needs an embedded-hal `I2c` and `DelayNs`.
pub fn dump_chip<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    cert: Option<&[u8]>,
    key_slot: Option<u8>,
    source: String,
) -> Result<ChipDump, String> {
    let report = coffre_provision::inspect(chip, cert, key_slot).map_err(|e| {
        if e.is_no_chip() {
            format!("{e}; check that the chip is on the bus at its address")
        } else {
            e.to_string()
        }
    })?;
    let revision = chip
        .info_revision()
        .map_err(|e| format!("reading the revision: {e}"))?;
    let config = chip
        .read_config_zone()
        .map_err(|e| format!("reading the config zone: {e}"))?;
    let mut warnings = Vec::new();
    let mut slots = Vec::with_capacity(SLOT_COUNT);
    for slot in 0..SLOT_COUNT as u8 {
        let size = slot_size(slot).unwrap_or(0);
        let clear = config.data_locked() && config.slot_policy(slot).read == ReadAccess::Clear;
        if !clear {
            slots.push(None);
            continue;
        }
        let mut buf = Zeroizing::new(vec![0u8; size]);
        match chip.read_slot(slot, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                slots.push(Some(buf));
            }
            Err(e) => {
                warnings.push(format!("slot {slot} could not be read: {e}"));
                slots.push(None);
            }
        }
    }
    let otp = read_otp(chip);
    Ok(ChipDump {
        source,
        address: chip.address(),
        revision,
        config,
        otp,
        slots,
        report,
        warnings,
    })
}

fn read_otp<I2C: I2c, D: DelayNs>(chip: &mut Atecc<I2C, D>) -> Option<Vec<u8>> {
    let mut otp = vec![0u8; OTP_SIZE];
    for (block, chunk) in otp.chunks_exact_mut(BLOCK_SIZE).enumerate() {
        let address = config_address(block as u8, 0);
        chip.read(Zone::Otp, AccessSize::Block, address, chunk)
            .ok()?;
    }
    Some(otp)
}
