//! Microchip's *atcacert* compressed certificates, in Rust.
//!
//! A Trust&GO ATECC608B does not store its X.509 certificates: it stores a
//! 72-byte *compressed certificate* per certificate (signature, encoded
//! dates, signer id, template and chain ids, serial-number source, format)
//! and the host rebuilds the full DER from a *certificate definition*: a
//! template certificate plus the places where chip data goes (public key,
//! serial number, signer id, dates, subject fields). This crate holds the
//! Trust&GO definitions of Microchip's CryptoAuthLib (`app/tng/`), and
//! rebuilds certificates exactly as CryptoAuthLib's `atcacert_read_cert`
//! does — byte for byte — and makes them (the factory side: fill a template,
//! sign its TBS, compress).
//!
//! It does no IO. The caller reads the chip: [`CertDef::device_locs`] says
//! which chip locations a definition needs, [`DeviceData`] carries what was
//! read, [`rebuild`] returns the DER. `no_std` with `alloc`.
//!
//! ```
//! use coffre_atcacert::{self as atcacert, Date, DeviceData, TNGTLS_SIGNER};
//! use p256::ecdsa::{signature::hazmat::PrehashSigner, Signature, SigningKey};
//!
//! // A CA key and a subject key (test values).
//! let ca = SigningKey::from_slice(&[7u8; 32]).unwrap();
//! let subject = SigningKey::from_slice(&[9u8; 32]).unwrap();
//! let raw = |k: &SigningKey| atcacert::raw_public_key(k.verifying_key());
//! let mut data = DeviceData::default();
//! data.insert(TNGTLS_SIGNER.public_key_loc, atcacert::pad_public_key(&raw(&subject)).to_vec());
//! let issued = atcacert::issue(
//!     &TNGTLS_SIGNER,
//!     &raw(&ca),
//!     Date::ymdh(2024, 1, 1, 0),
//!     [0xC0, 0xFE],
//!     &data,
//!     |digest| {
//!         let sig: Signature = ca.sign_prehash(digest).map_err(|_| atcacert::Error::Signing)?;
//!         Ok(sig.to_bytes().into())
//!     },
//! )
//! .unwrap();
//! // What a chip stores (72 bytes) rebuilds the same certificate.
//! data.insert(TNGTLS_SIGNER.comp_cert_loc, issued.compressed.to_vec());
//! let cert = atcacert::rebuild(&TNGTLS_SIGNER, Some(&raw(&ca)), &data).unwrap();
//! assert_eq!(cert, issued.der);
//! atcacert::verify_signature(&cert, &raw(&ca)).unwrap();
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

mod build;
mod comp;
mod date;
mod def;
pub mod der;
mod error;
pub mod templates;

pub use build::{
    compress, issue, key_id, pad_public_key, raw_public_key, rebuild, replace_key_and_resign, tbs,
    unpad_public_key, verify_signature, DeviceData, Issued,
};
pub use comp::CompCert;
pub use date::{Date, DateFormat};
pub use def::{
    device_def_for_otp, CertDef, CertElement, CertLoc, DeviceLoc, SnSource, StdCertElements,
    Transform, Zone, OTP_CODE_LEN, TNGTLS_DEVICE_2, TNGTLS_DEVICE_3, TNGTLS_SIGNER,
};
pub use error::Error;
