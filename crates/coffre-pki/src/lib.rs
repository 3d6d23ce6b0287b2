//! PKI, CSRs, the lab's slot-8 key format and the security audit of coffre.
//!
//! - [`ca`]: a certificate authority in one directory: CA, broker and device
//!   certificates (EC P-256, ECDSA-SHA256, X.509 v3), CRL for Mosquitto's
//!   `crlfile`, and an index of everything issued.
//! - [`csr`]: PKCS#10 requests signed by a callback — on a device, the
//!   secure element's Sign command, so the private key never leaves the chip.
//! - [`lab`]: the source lab's slot-8 format (length-prefixed PKCS#8 DER in
//!   13 blocks of 32 bytes).
//! - [`factory`]: checking a Trust&GO factory chain (device → signer →
//!   root) and that it belongs to the chip's slot 0 key.
//! - [`audit`]: what each slot holds and what is wrong with the chip's setup.
//!
//! This crate does no I2C: it takes bytes read from the chip, and a signing
//! callback, from its caller. It holds private keys only for the CA and in
//! the lab format; those are zeroized when dropped and never printed.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audit;
pub mod ca;
pub mod csr;
mod error;
pub mod factory;
pub mod lab;
pub mod util;

pub use ca::{InitOptions, IssueOptions, Pki};
pub use error::{Error, Result, SignerError};
