//! An ATECC608B driver over embedded-hal 1.0 I2C.
//!
//! [`Atecc`] moves the bytes that [`coffre_proto`] builds and checks over any
//! [`embedded_hal::i2c::I2c`] bus, with any [`embedded_hal::delay::DelayNs`].
//! It owns the IO loop of every command, the way Microchip's CryptoAuthLib
//! runs it: wake, send, poll while the chip NACKs, check the CRC (re-read or
//! resend on damage), then idle. Typed methods cover the commands coffre
//! uses: Info, Read/Write (words, blocks, whole slots, the config zone),
//! Lock, GenKey, Nonce, Random, Sign, Verify, SelfTest, Counter, SHA and
//! UpdateExtra. [`Atecc::execute`] runs any other [`Command`].
//!
//! The crate is `no_std` and allocates nothing. It keeps no secrets:
//! internal buffers that carried command or response data are cleared after
//! use, and nothing prints command data.
//!
//! The optional `linux` feature adds `linux::open` for `/dev/i2c-N`.
//!
//! # Example
//!
//! The lab's boot checks, written once for any embedded-hal bus, here run
//! against the emulated Trust&GO chip of `coffre-emu` (on a board, the same
//! function takes `linux::open`'s bus or a microcontroller HAL's I2C):
//!
//! ```
//! use coffre_driver::{Atecc, Error, LockStatus};
//! use embedded_hal::{delay::DelayNs, i2c::I2c};
//!
//! /// Chip present, config read, locks checked, slot 8 read when the data
//! /// zone is locked; the serial number and the locks come back.
//! fn check_chip<I: I2c, D: DelayNs>(
//!     i2c: I,
//!     delay: D,
//! ) -> Result<([u8; 9], LockStatus), Error<I::Error>> {
//!     // 0x35: a Trust&GO part (its 8-bit form 0x6A goes through
//!     // `normalize_address`).
//!     let mut chip = Atecc::new(i2c, delay, 0x35);
//!     let _family = chip.device_family()?;
//!     let config = chip.read_config_zone()?;
//!     let locks = chip.lock_status()?;
//!     if locks.data_locked {
//!         let mut slot8 = [0u8; 416];
//!         chip.read_slot(8, &mut slot8)?;
//!     }
//!     // Hand the bus to a sensor driver between commands:
//!     let _bus: &mut I = chip.i2c_mut();
//!     Ok((config.serial_number(), locks))
//! }
//!
//! use coffre_emu::{board::Board, clock::Timing, presets::Preset};
//!
//! let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
//! let (serial, locks) = check_chip(board.bus.clone(), board.delay())?;
//! assert_eq!(serial[0..2], [0x01, 0x23]); // every ATECC608B serial starts 01 23
//! assert!(locks.config_locked && locks.data_locked); // as shipped
//! # Ok::<(), Error<coffre_emu::bus::BusError>>(())
//! ```
//!
//! # Waking the chip on Linux
//!
//! The chip sleeps until SDA is held low for at least 60 µs (tWLO). Like
//! CryptoAuthLib, the driver makes that pulse with a zero-length write to the
//! general-call address 0x00: the address byte is 8 low bits, 80 µs at
//! 100 kHz. At 400 kHz the pulse lasts 20 µs and the chip stays asleep, so
//! **the bus must run at 100 kHz**. On a Raspberry Pi put
//! `dtparam=i2c_arm_baudrate=100000` in `/boot/config.txt` (or
//! `/boot/firmware/config.txt`) and reboot; other boards set the adapter's
//! `clock-frequency` in the device tree (`linux::bus_clock_hz` reads it
//! back). A chip that never wakes looks absent: [`Error::NotPresent`].
//!
//! After the pulse the driver waits tWHI = 1500 µs and reads 4 bytes:
//! `04 11 33 43` means awake. Nothing else on the bus is disturbed: the
//! write carries no data byte, so devices that act on general calls (the
//! SHT30's soft reset is general call + 0x06) receive no command.
#![cfg_attr(not(feature = "std"), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod address;
mod commands;
mod driver;
mod error;
#[cfg(feature = "linux")]
pub mod linux;
pub mod secure;

pub use address::{normalize_address, Address};
pub use commands::{LockStatus, LOCK_WORD_ADDRESS, SLOT_LOCKED_WORD_ADDRESS};
pub use driver::{
    probe, Atecc, DriverConfig, Probe, GENERAL_CALL_ADDRESS, SELFTEST_FAIL_WAKE,
    SELFTEST_FAIL_WAKE_CAL,
};
pub use error::Error;

pub use coffre_proto;
pub use coffre_proto::command::{AccessSize, LockTarget, NonceTarget};
pub use coffre_proto::config::{ConfigZone, DeviceFamily};
pub use coffre_proto::packet::Command;
pub use coffre_proto::timing::ClockDivider;
pub use coffre_proto::zone::Zone;
