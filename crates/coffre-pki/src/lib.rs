//! PKI, CSRs, the lab's slot-8 key format and the security audit of coffre.
//!
//! A CA in a directory, from creation to revocation, checked the way the
//! broker checks a client (CA signature, validity, CRL):
//!
//! ```
//! use coffre_pki::ca::{InitOptions, IssueOptions, Pki, Verdict};
//!
//! # fn main() -> Result<(), coffre_pki::Error> {
//! let dir = tempfile::tempdir().expect("a temporary directory");
//! // init: CA, broker certificate, empty CRL, index.
//! let mut pki = Pki::init(dir.path(), &InitOptions::default())?;
//!
//! // issue: one device certificate per public key (here a lab-mode key;
//! // with a chip, the key the chip generated, or a CSR the chip signed).
//! let (_private, public_key) = coffre_pki::lab::generate_lab_key();
//! let cert = pki.issue_device("m5go-01", &public_key, &IssueOptions::default())?;
//! assert_eq!(pki.verify(cert.pem.as_bytes())?, Verdict::Valid);
//!
//! // revoke: by device id or serial; a new CRL is written at once.
//! let revoked = pki.revoke("m5go-01")?;
//! assert_eq!(revoked[0].serial, cert.serial);
//!
//! // verify with the CRL: the certificate is now refused.
//! assert!(matches!(pki.verify(&cert.der)?, Verdict::Revoked { .. }));
//! # Ok(())
//! # }
//! ```
//!
//! - [`ca`]: a certificate authority in one directory: CA, broker and device
//!   certificates (EC P-256, ECDSA-SHA256, X.509 v3), CRL for Mosquitto's
//!   `crlfile`, and an index of everything issued. Its parts: [`ca::layout`]
//!   (paths), [`ca::store`] (the index), [`ca::issuing`],
//!   [`ca::revocation`] (and the CRL), [`ca::report`].
//! - [`types`]: [`Serial`] and [`Timestamp`], the values that cross them.
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
pub mod types;
pub mod util;

pub use ca::{InitOptions, IssueOptions, Pki};
pub use error::{Error, Result, SignerError};
pub use types::{Serial, Timestamp};
