//! The ATECC608B protocol core of coffre.
//!
//! This crate knows the bytes of the chip's I2C protocol and nothing else: it
//! does **no IO**, reads **no clock**, and needs **no allocator**. It builds
//! command packets ([`packet::Command`]), checks and decodes response packets
//! ([`packet::parse_response`]), maps status bytes to one error type
//! ([`Error`]), encodes zone addresses ([`zone`]), and models the 128-byte
//! configuration zone with its SlotConfig/KeyConfig bit fields explained in
//! words ([`config`]). The driver crate moves these bytes over an I2C bus; the
//! emulator crate uses the same definitions from the chip's side.
//!
//! ```
//! use coffre_proto::{command, packet};
//! // Info (revision): the packet the host writes after word address 0x03.
//! let cmd = command::info(command::InfoMode::Revision);
//! let mut buf = [0u8; packet::MAX_PACKET];
//! let n = cmd.encode(&mut buf).unwrap();
//! assert_eq!(&buf[..n], &[0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D]);
//! ```
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(any(feature = "std", test))]
extern crate std;

pub mod command;
pub mod config;
pub mod crc;
pub mod error;
pub mod hex;
pub mod packet;
pub mod timing;
pub mod tngtls;
pub mod zone;

pub use error::{Error, Status};
