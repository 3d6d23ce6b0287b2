//! A faithful ATECC608B emulator, at I2C-transaction level.
//!
//! [`bus::EmuBus`] implements embedded-hal 1.0 `I2c`, so the real driver runs
//! over it unchanged. On it sit an emulated ATECC608B ([`chip::Atecc608`]) and
//! the two sensors of the ENV II unit ([`sensors`]: SHT30 at 0x44, BMP280 at
//! 0x76). The chip follows the silicon where public sources say what it
//! does, and every choice where they do not is gathered in
//! [`chip::silicon`] (sources and reasoning: `docs/chip-facts.md`).
//!
//! The bus records transcripts ([`transcript`]) and injects faults
//! ([`bus::Faults`]); the chip's non-volatile state lives in an image file
//! written atomically ([`image`]); [`kit`] serves Microchip's kit protocol
//! over TCP so tools outside Rust can drive an emulated chip.
//!
//! ```
//! use coffre_emu::{board::Board, clock::Timing, presets::Preset};
//! use embedded_hal::i2c::I2c;
//!
//! let mut board = Board::new(Preset::Tngtls.build(), Timing::Instant);
//! // Wake the chip (SDA low through a write to address 0x00), then read
//! // its after-wake status.
//! let _ = board.bus.write(0x00, &[]);
//! let mut status = [0u8; 4];
//! board.bus.read(0x35, &mut status).unwrap();
//! assert_eq!(status, [0x04, 0x11, 0x33, 0x43]);
//! assert_eq!(board.bus.scan(), vec![0x35, 0x44, 0x76]);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod board;
pub mod bus;
pub mod chip;
pub mod clock;
pub mod device;
pub mod factory;
pub mod image;
pub mod kit;
pub mod presets;
pub mod sensors;
pub mod transcript;

pub use bus::EmuBus;
pub use chip::Atecc608;
