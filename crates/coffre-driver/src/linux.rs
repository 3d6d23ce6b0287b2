//! A chip on a Linux I2C adapter (`/dev/i2c-N`), through
//! `linux-embedded-hal`.
//!
//! # Waking the chip on Linux
//!
//! The driver wakes the chip with a zero-length write to the general-call
//! address 0x00 (an `I2C_RDWR` message of length 0). The address byte holds
//! SDA low for 8 bit times; the chip needs at least 60 µs (tWLO), which only
//! a bus at **100 kHz** gives (80 µs). Most boards run their I2C bus at
//! 100 kHz by default; if yours runs faster, the chip never wakes and every
//! command ends in [`Error::NotPresent`](crate::Error::NotPresent).
//!
//! - Raspberry Pi: `dtparam=i2c_arm_baudrate=100000` in `/boot/config.txt`
//!   (`/boot/firmware/config.txt` on recent releases), then reboot.
//! - Elsewhere: the `clock-frequency` property of the adapter's device-tree
//!   node; [`bus_clock_hz`] reads it back when the kernel exposes it.
//!
//! Linux adapters report a missing acknowledge as `EREMOTEIO`, which
//! `linux-embedded-hal` maps to [`ErrorKind::Other`](embedded_hal::i2c::ErrorKind::Other);
//! the default [`DriverConfig`](crate::DriverConfig) treats it as a NACK
//! (`other_errors_are_nacks`), so polling a busy chip works.

pub use linux_embedded_hal::{Delay, I2CError, I2cdev};

use crate::Atecc;

/// Open `path` (for example `/dev/i2c-1`) and make a driver for the chip at
/// 7-bit `address` (use [`normalize_address`](crate::normalize_address) on
/// what a user typed). Nothing is sent to the chip yet.
pub fn open(path: &str, address: u8) -> Result<Atecc<I2cdev, Delay>, I2CError> {
    let dev = I2cdev::new(path)?;
    Ok(Atecc::new(dev, Delay, address))
}

/// The configured clock of the adapter behind `path` (`/dev/i2c-N`), in Hz,
/// read from its device-tree node (`clock-frequency`) through sysfs.
/// `None` when the kernel does not expose it (ACPI machines, USB adapters).
pub fn bus_clock_hz(path: &str) -> Option<u32> {
    let name = std::path::Path::new(path).file_name()?.to_str()?;
    let file = format!("/sys/class/i2c-dev/{name}/device/of_node/clock-frequency");
    let bytes = std::fs::read(file).ok()?;
    let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}
