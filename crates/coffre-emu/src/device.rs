//! The contract between the emulated I2C bus and the devices on it.
//!
//! The bus ([`crate::bus::EmuBus`]) turns every embedded-hal `I2c` transaction
//! into calls on the addressed [`Device`]: one call per Write or Read
//! operation (a repeated START between operations is implicit), then
//! [`Device::stop`] at the STOP condition that ends the transaction.
//!
//! Time is passed in as `now`, the bus clock since the bus was created, so
//! devices never read a clock themselves (tests drive a virtual clock).

use std::time::Duration;

/// Why a device did not acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nack {
    /// The address byte was not acknowledged (device absent, asleep or busy).
    Address,
    /// A data byte was not acknowledged.
    Data,
}

/// A device on the emulated bus.
pub trait Device: Send {
    /// The 7-bit address this device answers to right now.
    fn address(&self) -> u8;

    /// A short name for transcripts ("atecc608b", "sht30", "bmp280").
    fn name(&self) -> &'static str;

    /// A Write operation addressed to this device, with every byte the
    /// master sent in it. Return `Err(Nack::Address)` to refuse the address
    /// (nothing is consumed).
    fn write(&mut self, now: Duration, data: &[u8]) -> Result<(), Nack>;

    /// A Read operation addressed to this device: fill all of `buf`.
    /// Return `Err(Nack::Address)` to refuse the address.
    fn read(&mut self, now: Duration, buf: &mut [u8]) -> Result<(), Nack>;

    /// The STOP condition that ends a transaction which addressed this
    /// device (after all its operations).
    fn stop(&mut self, _now: Duration) {}

    /// SDA was held low for `low_for` (a wake pulse on the ATECC's single
    /// wire-style wake; other devices ignore it).
    fn sda_low(&mut self, _now: Duration, _low_for: Duration) {}

    /// Power was removed (device pulled off the bus): volatile state is lost.
    fn power_loss(&mut self) {}

    /// A short human description of bytes written to (`write = true`) or
    /// read from this device, for transcripts ("Info", "Read data slot 8").
    fn annotate(&self, _write: bool, _bytes: &[u8]) -> Option<String> {
        None
    }
}

impl<T: Device> Device for std::sync::Arc<std::sync::Mutex<T>> {
    fn address(&self) -> u8 {
        lock(self).address()
    }
    fn name(&self) -> &'static str {
        lock(self).name()
    }
    fn write(&mut self, now: Duration, data: &[u8]) -> Result<(), Nack> {
        lock(self).write(now, data)
    }
    fn read(&mut self, now: Duration, buf: &mut [u8]) -> Result<(), Nack> {
        lock(self).read(now, buf)
    }
    fn stop(&mut self, now: Duration) {
        lock(self).stop(now)
    }
    fn sda_low(&mut self, now: Duration, low_for: Duration) {
        lock(self).sda_low(now, low_for)
    }
    fn power_loss(&mut self) {
        lock(self).power_loss()
    }
    fn annotate(&self, write: bool, bytes: &[u8]) -> Option<String> {
        lock(self).annotate(write, bytes)
    }
}

/// Lock a shared device, recovering from a poisoned lock (the device state
/// is plain data; a panic elsewhere does not make it unusable).
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
