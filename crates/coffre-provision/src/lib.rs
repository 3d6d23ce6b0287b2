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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod configure;
mod error;
pub mod factory;
mod inspect;
pub mod layout;
pub mod manifest;
mod provision;

pub use configure::{configure, ChipState};
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
