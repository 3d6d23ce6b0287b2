//! Provisioning, blank-chip configuration, fleet manifests and the audit.
//!
//! - [`provision`]: give a chip an identity, in one of two key modes:
//!   [`Mode::Lab`] (the source lab's method: an off-chip key, written as
//!   length-prefixed PKCS#8 into slot 8) or [`Mode::Offload`] (the key is
//!   born in the chip; a CSR signed by the chip's Sign command).
//! - [`configure`]: write a configuration into a blank chip, lock it, create
//!   its keys, and lock the data zone — each lock only after
//!   [`Ui::confirm`] says yes.
//! - [`manifest`]: the fleet manifest (JSON lines).
//! - [`inspect`]: the slot map in words and security findings.
//!
//! Every step is reported through [`Ui`], so a CLI can print progress and a
//! test can record it.
//!
//! Provisioning an emulated Trust&GO chip in offload mode: the key is born
//! in slot 2, the chip signs the CSR, the CA issues the certificate, and
//! the device is recorded in the fleet manifest. The same code runs over a
//! real chip on Linux I2C.
//!
//! ```
//! use coffre_driver::Atecc;
//! use coffre_emu::{board::Board, clock::Timing, presets::Preset};
//! use coffre_pki::{ca::Verdict, InitOptions, Pki};
//! use coffre_provision::{manifest::Manifest, provision, AssumeYes, Mode, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut pki = Pki::init(dir.path().join("pki"), &InitOptions::default())?;
//! let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
//! let mut chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
//!
//! let mut opts = Options::new("m5go-1", Mode::Offload);
//! opts.manifest = Some(Manifest::at(dir.path().join("fleet.jsonl")));
//! let out = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default())?;
//!
//! assert!(out.csr_pem.is_some(), "the chip signed a CSR");
//! assert_eq!(pki.verify(out.cert_pem.as_bytes())?, Verdict::Valid);
//! let manifest = Manifest::at(dir.path().join("fleet.jsonl")).entries()?;
//! assert_eq!(manifest[0].id, "m5go-1");
//!
//! // Run again (after a crash, say): the certificate is for the chip's key,
//! // so the run is finished rather than started over.
//! let again = provision(&mut chip, &mut pki, &opts, &mut AssumeYes::default())?;
//! assert!(again.resumed);
//! assert_eq!(again.cert_pem, out.cert_pem);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod configure;
mod error;
pub mod factory;
mod inspect;
pub mod iokey;
pub mod layout;
pub mod manifest;
mod provision;
pub mod trust_manifest;

pub use configure::{configure, configure_with_io_key, ChipState};
pub use error::{Error, Result};
pub use inspect::{inspect, Report, SlotReport};
pub use layout::Layout;
pub use provision::{cert_public_key, provision, Mode, Options, Outcome};

/// What the provisioning steps need from the person (or script) running them.
pub trait Ui {
    /// Report progress: one step done or started.
    fn step(&mut self, message: &str);
    /// Ask before an irreversible action. `permanent` lists what becomes
    /// permanent. Return true to go ahead.
    fn confirm(&mut self, action: &str, permanent: &[String]) -> bool;
}

/// A [`Ui`] that says yes to everything and prints nothing (`--yes`, tests).
#[derive(Debug, Default)]
pub struct AssumeYes {
    /// Steps reported, in order.
    pub steps: Vec<String>,
    /// Confirmations asked, in order.
    pub asked: Vec<String>,
}

impl Ui for AssumeYes {
    fn step(&mut self, message: &str) {
        self.steps.push(message.to_string());
    }
    fn confirm(&mut self, action: &str, _permanent: &[String]) -> bool {
        self.asked.push(action.to_string());
        true
    }
}
