//! Drivers for the two sensors of the M5Stack ENV II unit.
//!
//! * [`sht30`]: Sensirion SHT30 relative humidity and temperature sensor
//!   (I2C address 0x44, or 0x45 with ADDR pulled high).
//! * [`bmp280`]: Bosch BMP280 barometric pressure and temperature sensor
//!   (I2C address 0x76, or 0x77 with SDO pulled high).
//!
//! Both drivers are generic over the embedded-hal 1.0 [`I2c`] and
//! [`DelayNs`] traits. They do **not** own the bus: every operation borrows
//! it (`&mut I2C`, and `&mut D` for the ones that must wait), so one bus can
//! serve both sensors and other devices in turn. The crate is `no_std` and
//! never allocates.
//!
//! The pure conversion functions ([`sht30::convert`], [`sht30::crc8`],
//! [`bmp280::Calibration::from_bytes`], [`bmp280::compensate_temperature`],
//! [`bmp280::compensate_pressure`]) are public so that an emulator can encode
//! exactly what these drivers decode.
//!
//! ```
//! use coffre_sensors::sht30;
//! // Raw words 0x6666 / 0x8000 decode to 25.0 C and 50.0 %RH.
//! let (t, rh) = sht30::convert(0x6666, 0x8000);
//! assert!((t - 25.0).abs() < 0.01 && (rh - 50.0).abs() < 0.01);
//! ```
//!
//! [`I2c`]: embedded_hal::i2c::I2c
//! [`DelayNs`]: embedded_hal::delay::DelayNs
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use core::fmt;

pub mod bmp280;
pub mod sht30;

/// An error from one of the sensor drivers.
///
/// `E` is the error type of the I2C bus implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error<E> {
    /// The I2C bus reported an error (including a NACK from the sensor).
    I2c(E),
    /// A word read from the SHT30 failed its CRC-8 check.
    Crc,
    /// The BMP280 chip id register did not read 0x58; the value read is
    /// carried (another part, such as a BME280 (0x60), answers at the same
    /// address).
    WrongChipId(u8),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::I2c(e) => write!(f, "I2C bus error: {e:?}"),
            Error::Crc => f.write_str("CRC mismatch in sensor data"),
            Error::WrongChipId(id) => write!(
                f,
                "unexpected chip id 0x{id:02X} (expected 0x{:02X} for a BMP280)",
                bmp280::CHIP_ID
            ),
        }
    }
}
