//! Sensirion SHT30 humidity and temperature sensor.
//!
//! References are to the Sensirion "Datasheet SHT3x-DIS" (version 7,
//! December 2022), sections 2.2 (timing) and 4 (operation and
//! communication).
//!
//! The driver uses single-shot measurements with clock stretching disabled
//! (section 4.3, Table 9): it sends the measurement command, waits the
//! maximum measurement duration (Table 4) and then reads the six result
//! bytes. Every 16-bit word the sensor sends is followed by a CRC-8
//! (section 4.12), which is checked.
//!
//! ```
//! # use embedded_hal_mock::eh1::{delay::NoopDelay, i2c::{Mock, Transaction}};
//! use coffre_sensors::sht30::Sht30;
//! # let mut i2c = Mock::new(&[
//! #     Transaction::write(0x44, vec![0x24, 0x00]),
//! #     Transaction::read(0x44, vec![0x66, 0x66, 0x93, 0x80, 0x00, 0xA2]),
//! # ]);
//! # let mut delay = NoopDelay::new();
//! let sht = Sht30::new(0x44);
//! let m = sht.measure(&mut i2c, &mut delay).unwrap();
//! assert!((m.temperature_c - 25.0).abs() < 0.01);
//! # i2c.done();
//! ```

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Error;

/// I2C address with the ADDR pin low (datasheet section 3, I2C
/// device address table); the ENV II unit wires it this way.
pub const DEFAULT_ADDRESS: u8 = 0x44;

/// I2C address with the ADDR pin high (datasheet section 3, I2C
/// device address table).
pub const ALTERNATE_ADDRESS: u8 = 0x45;

/// The 16-bit commands of the SHT3x, sent MSB first (sections 4.3 to 4.11).
pub mod command {
    /// Single shot, high repeatability, clock stretching enabled (Table 9).
    pub const SINGLE_SHOT_HIGH_STRETCH: [u8; 2] = [0x2C, 0x06];
    /// Single shot, medium repeatability, clock stretching enabled (Table 9).
    pub const SINGLE_SHOT_MEDIUM_STRETCH: [u8; 2] = [0x2C, 0x0D];
    /// Single shot, low repeatability, clock stretching enabled (Table 9).
    pub const SINGLE_SHOT_LOW_STRETCH: [u8; 2] = [0x2C, 0x10];
    /// Single shot, high repeatability, clock stretching disabled (Table 9).
    pub const SINGLE_SHOT_HIGH: [u8; 2] = [0x24, 0x00];
    /// Single shot, medium repeatability, clock stretching disabled (Table 9).
    pub const SINGLE_SHOT_MEDIUM: [u8; 2] = [0x24, 0x0B];
    /// Single shot, low repeatability, clock stretching disabled (Table 9).
    pub const SINGLE_SHOT_LOW: [u8; 2] = [0x24, 0x16];
    /// Fetch the latest result in periodic mode (section 4.6).
    pub const FETCH_DATA: [u8; 2] = [0xE0, 0x00];
    /// Accelerated response time: periodic mode at 4 Hz (section 4.7).
    pub const ART: [u8; 2] = [0x2B, 0x32];
    /// Stop periodic data acquisition (section 4.8).
    pub const BREAK: [u8; 2] = [0x30, 0x93];
    /// Soft reset (section 4.9).
    pub const SOFT_RESET: [u8; 2] = [0x30, 0xA2];
    /// Switch the internal heater on (section 4.10).
    pub const HEATER_ENABLE: [u8; 2] = [0x30, 0x6D];
    /// Switch the internal heater off (section 4.10).
    pub const HEATER_DISABLE: [u8; 2] = [0x30, 0x66];
    /// Read out the status register (section 4.11).
    pub const READ_STATUS: [u8; 2] = [0xF3, 0x2D];
    /// Clear the status register flags (section 4.11, Table 18).
    pub const CLEAR_STATUS: [u8; 2] = [0x30, 0x41];
}

/// Maximum soft reset time t_SR in microseconds (section 2.2, Table 4).
pub const SOFT_RESET_TIME_US: u32 = 1_500;

/// The repeatability of a single-shot measurement (section 4.3, Table 9).
///
/// Higher repeatability means less noise and a longer measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repeatability {
    /// High repeatability: 15 ms maximum.
    High,
    /// Medium repeatability: 6 ms maximum.
    Medium,
    /// Low repeatability: 4 ms maximum.
    Low,
}

impl Repeatability {
    /// The single-shot command with clock stretching disabled (Table 9).
    pub const fn command(self) -> [u8; 2] {
        match self {
            Repeatability::High => command::SINGLE_SHOT_HIGH,
            Repeatability::Medium => command::SINGLE_SHOT_MEDIUM,
            Repeatability::Low => command::SINGLE_SHOT_LOW,
        }
    }

    /// The single-shot command with clock stretching enabled (Table 9).
    pub const fn command_clock_stretching(self) -> [u8; 2] {
        match self {
            Repeatability::High => command::SINGLE_SHOT_HIGH_STRETCH,
            Repeatability::Medium => command::SINGLE_SHOT_MEDIUM_STRETCH,
            Repeatability::Low => command::SINGLE_SHOT_LOW_STRETCH,
        }
    }

    /// The maximum measurement duration t_MEAS in microseconds
    /// (section 2.2, Table 4: 15 ms, 6 ms, 4 ms).
    pub const fn max_duration_us(self) -> u32 {
        match self {
            Repeatability::High => 15_000,
            Repeatability::Medium => 6_000,
            Repeatability::Low => 4_000,
        }
    }

    /// Decode a single-shot command: its repeatability and whether it
    /// asks for clock stretching. `None` for any other command.
    pub const fn from_single_shot_command(cmd: [u8; 2]) -> Option<(Repeatability, bool)> {
        match cmd {
            [0x24, 0x00] => Some((Repeatability::High, false)),
            [0x24, 0x0B] => Some((Repeatability::Medium, false)),
            [0x24, 0x16] => Some((Repeatability::Low, false)),
            [0x2C, 0x06] => Some((Repeatability::High, true)),
            [0x2C, 0x0D] => Some((Repeatability::Medium, true)),
            [0x2C, 0x10] => Some((Repeatability::Low, true)),
            _ => None,
        }
    }
}

/// The SHT3x status register (section 4.11, Table 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// Bit 15: at least one alert is pending.
    pub const ALERT_PENDING: u16 = 1 << 15;
    /// Bit 13: the heater is on.
    pub const HEATER_ON: u16 = 1 << 13;
    /// Bit 11: humidity tracking alert.
    pub const RH_ALERT: u16 = 1 << 11;
    /// Bit 10: temperature tracking alert.
    pub const T_ALERT: u16 = 1 << 10;
    /// Bit 4: a reset (power-on, soft, general call or nRESET) was detected
    /// since the last clear-status command.
    pub const RESET_DETECTED: u16 = 1 << 4;
    /// Bit 1: the last command was not processed (invalid, or failed its
    /// checksum).
    pub const COMMAND_FAILED: u16 = 1 << 1;
    /// Bit 0: the checksum of the last write transfer failed.
    pub const WRITE_CHECKSUM_FAILED: u16 = 1 << 0;
    /// The value after power-up or reset: alert pending and reset detected
    /// set (Table 17 default values).
    pub const AFTER_RESET: u16 = Self::ALERT_PENDING | Self::RESET_DETECTED;
    /// The bits the clear-status command clears (Table 18: 15, 11, 10, 4).
    pub const CLEARABLE: u16 =
        Self::ALERT_PENDING | Self::RH_ALERT | Self::T_ALERT | Self::RESET_DETECTED;

    /// Whether at least one alert is pending (bit 15).
    pub const fn alert_pending(self) -> bool {
        self.0 & Self::ALERT_PENDING != 0
    }

    /// Whether the heater is on (bit 13).
    pub const fn heater_on(self) -> bool {
        self.0 & Self::HEATER_ON != 0
    }

    /// Whether a humidity tracking alert is raised (bit 11).
    pub const fn humidity_alert(self) -> bool {
        self.0 & Self::RH_ALERT != 0
    }

    /// Whether a temperature tracking alert is raised (bit 10).
    pub const fn temperature_alert(self) -> bool {
        self.0 & Self::T_ALERT != 0
    }

    /// Whether a reset was detected since the last clear-status (bit 4).
    pub const fn reset_detected(self) -> bool {
        self.0 & Self::RESET_DETECTED != 0
    }

    /// Whether the last command was refused (bit 1).
    pub const fn command_failed(self) -> bool {
        self.0 & Self::COMMAND_FAILED != 0
    }

    /// Whether the last write transfer failed its checksum (bit 0).
    pub const fn write_checksum_failed(self) -> bool {
        self.0 & Self::WRITE_CHECKSUM_FAILED != 0
    }
}

/// One decoded measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Temperature in degrees Celsius.
    pub temperature_c: f32,
    /// Relative humidity in percent.
    pub humidity_pct: f32,
    /// The raw temperature word S_T as sent by the sensor.
    pub raw_temperature: u16,
    /// The raw humidity word S_RH as sent by the sensor.
    pub raw_humidity: u16,
}

impl Measurement {
    /// Decode the six bytes of a measurement result (T MSB, T LSB, T CRC,
    /// RH MSB, RH LSB, RH CRC; section 4.4). `None` if either CRC fails.
    pub fn from_bytes(bytes: &[u8; 6]) -> Option<Self> {
        let raw_temperature = decode_word([bytes[0], bytes[1], bytes[2]])?;
        let raw_humidity = decode_word([bytes[3], bytes[4], bytes[5]])?;
        let (temperature_c, humidity_pct) = convert(raw_temperature, raw_humidity);
        Some(Measurement {
            temperature_c,
            humidity_pct,
            raw_temperature,
            raw_humidity,
        })
    }
}

/// CRC-8 of the SHT3x (section 4.12, Table 19): polynomial 0x31
/// (x^8 + x^5 + x^4 + 1), initialisation 0xFF, no reflection, no final XOR.
/// `crc8(&[0xBE, 0xEF]) == 0x92`.
pub const fn crc8(data: &[u8]) -> u8 {
    /// Generator polynomial (Table 19).
    const POLYNOMIAL: u8 = 0x31;
    /// Initial value (Table 19).
    const INIT: u8 = 0xFF;
    let mut crc = INIT;
    let mut i = 0;
    while i < data.len() {
        crc ^= data[i];
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ POLYNOMIAL
            } else {
                crc << 1
            };
            bit += 1;
        }
        i += 1;
    }
    crc
}

/// A 16-bit word as the sensor sends it: MSB, LSB, CRC-8 (section 4.4).
pub const fn encode_word(word: u16) -> [u8; 3] {
    let [msb, lsb] = word.to_be_bytes();
    [msb, lsb, crc8(&[msb, lsb])]
}

/// Check the CRC of a word as sent by the sensor and return it; `None` if
/// the CRC does not match.
pub const fn decode_word(bytes: [u8; 3]) -> Option<u16> {
    if crc8(&[bytes[0], bytes[1]]) == bytes[2] {
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    } else {
        None
    }
}

/// Temperature in degrees Celsius from the raw word S_T (section 4.13,
/// Equation 2): T = -45 + 175 * S_T / (2^16 - 1).
pub fn convert_temperature(raw: u16) -> f32 {
    -45.0 + 175.0 * f32::from(raw) / 65535.0
}

/// Relative humidity in percent from the raw word S_RH (section 4.13,
/// Equation 1): RH = 100 * S_RH / (2^16 - 1).
pub fn convert_humidity(raw: u16) -> f32 {
    100.0 * f32::from(raw) / 65535.0
}

/// Convert both raw words: `(temperature_c, humidity_pct)`.
pub fn convert(raw_temperature: u16, raw_humidity: u16) -> (f32, f32) {
    (
        convert_temperature(raw_temperature),
        convert_humidity(raw_humidity),
    )
}

/// An SHT30 on a shared I2C bus.
///
/// The driver only remembers the address: each method borrows the bus (and
/// a delay provider where it has to wait), so the caller keeps ownership of
/// both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sht30 {
    address: u8,
}

impl Default for Sht30 {
    fn default() -> Self {
        Self::new(DEFAULT_ADDRESS)
    }
}

impl Sht30 {
    /// A driver for the sensor at `address` ([`DEFAULT_ADDRESS`] or
    /// [`ALTERNATE_ADDRESS`]). Nothing is sent on the bus.
    pub const fn new(address: u8) -> Self {
        Sht30 { address }
    }

    /// The 7-bit I2C address this driver talks to.
    pub const fn address(&self) -> u8 {
        self.address
    }

    /// A single-shot measurement with high repeatability: command 0x2400,
    /// wait 15 ms, read and check six bytes.
    pub fn measure<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<Measurement, Error<I::Error>> {
        self.measure_with(i2c, delay, Repeatability::High)
    }

    /// A single-shot measurement with the given repeatability (clock
    /// stretching disabled), waiting its maximum duration before reading.
    pub fn measure_with<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
        repeatability: Repeatability,
    ) -> Result<Measurement, Error<I::Error>> {
        self.start_measurement(i2c, repeatability)?;
        delay.delay_us(repeatability.max_duration_us());
        self.read_measurement(i2c)
    }

    /// Send a single-shot measurement command (clock stretching disabled)
    /// without waiting. Read the result with [`Sht30::read_measurement`]
    /// after [`Repeatability::max_duration_us`]; until then the sensor
    /// NACKs reads.
    pub fn start_measurement<I: I2c>(
        &self,
        i2c: &mut I,
        repeatability: Repeatability,
    ) -> Result<(), Error<I::Error>> {
        self.command(i2c, repeatability.command())
    }

    /// Read the six bytes of a finished measurement and check both CRCs.
    pub fn read_measurement<I: I2c>(&self, i2c: &mut I) -> Result<Measurement, Error<I::Error>> {
        let mut buf = [0u8; 6];
        i2c.read(self.address, &mut buf).map_err(Error::I2c)?;
        Measurement::from_bytes(&buf).ok_or(Error::Crc)
    }

    /// Read the status register: command 0xF32D, then two bytes and a CRC.
    pub fn read_status<I: I2c>(&self, i2c: &mut I) -> Result<Status, Error<I::Error>> {
        self.command(i2c, command::READ_STATUS)?;
        let mut buf = [0u8; 3];
        i2c.read(self.address, &mut buf).map_err(Error::I2c)?;
        decode_word(buf).map(Status).ok_or(Error::Crc)
    }

    /// Clear the alert and reset-detected flags of the status register
    /// (command 0x3041).
    pub fn clear_status<I: I2c>(&self, i2c: &mut I) -> Result<(), Error<I::Error>> {
        self.command(i2c, command::CLEAR_STATUS)
    }

    /// Soft reset (command 0x30A2), then wait the maximum soft reset time
    /// (1.5 ms) so the sensor is ready for the next command.
    pub fn soft_reset<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<(), Error<I::Error>> {
        self.command(i2c, command::SOFT_RESET)?;
        delay.delay_us(SOFT_RESET_TIME_US);
        Ok(())
    }

    /// Send one 16-bit command.
    fn command<I: I2c>(&self, i2c: &mut I, cmd: [u8; 2]) -> Result<(), Error<I::Error>> {
        i2c.write(self.address, &cmd).map_err(Error::I2c)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;

    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as D};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    const ADDR: u8 = 0x44;

    #[test]
    fn crc_matches_datasheet_example() {
        // Section 4.12, Table 19: CRC(0xBEEF) = 0x92.
        assert_eq!(crc8(&[0xBE, 0xEF]), 0x92);
        assert_eq!(encode_word(0xBEEF), [0xBE, 0xEF, 0x92]);
        assert_eq!(decode_word([0xBE, 0xEF, 0x92]), Some(0xBEEF));
        assert_eq!(decode_word([0xBE, 0xEF, 0x93]), None);
    }

    #[test]
    fn conversion_endpoints() {
        assert_eq!(convert(0, 0), (-45.0, 0.0));
        assert_eq!(convert(0xFFFF, 0xFFFF), (130.0, 100.0));
        let (t, rh) = convert(0x6666, 0x8000);
        assert!((t - 25.0).abs() < 1e-4);
        assert!((rh - 50.0).abs() < 0.01);
    }

    #[test]
    fn measure_high_repeatability() {
        let mut i2c = Mock::new(&[
            T::write(ADDR, vec![0x24, 0x00]),
            T::read(ADDR, vec![0x66, 0x66, 0x93, 0x80, 0x00, 0xA2]),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(15_000)]);
        let m = Sht30::new(ADDR).measure(&mut i2c, &mut delay).unwrap();
        assert_eq!(m.raw_temperature, 0x6666);
        assert_eq!(m.raw_humidity, 0x8000);
        assert!((m.temperature_c - 25.0).abs() < 1e-4);
        assert!((m.humidity_pct - 50.0).abs() < 0.01);
        i2c.done();
        delay.done();
    }

    #[test]
    fn measure_medium_and_low_use_their_commands_and_times() {
        let bytes = vec![0x00, 0x00, 0x81, 0x80, 0x00, 0xA2];
        let mut i2c = Mock::new(&[
            T::write(0x45, vec![0x24, 0x0B]),
            T::read(0x45, bytes.clone()),
            T::write(0x45, vec![0x24, 0x16]),
            T::read(0x45, bytes),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(6_000), D::delay_us(4_000)]);
        let sht = Sht30::new(ALTERNATE_ADDRESS);
        let m = sht
            .measure_with(&mut i2c, &mut delay, Repeatability::Medium)
            .unwrap();
        assert_eq!(m.temperature_c, -45.0);
        sht.measure_with(&mut i2c, &mut delay, Repeatability::Low)
            .unwrap();
        i2c.done();
        delay.done();
    }

    #[test]
    fn temperature_crc_failure() {
        let mut i2c = Mock::new(&[
            T::write(ADDR, vec![0x24, 0x00]),
            T::read(ADDR, vec![0x66, 0x66, 0x94, 0x80, 0x00, 0xA2]),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(15_000)]);
        let r = Sht30::new(ADDR).measure(&mut i2c, &mut delay);
        assert_eq!(r, Err(Error::Crc));
        i2c.done();
        delay.done();
    }

    #[test]
    fn humidity_crc_failure() {
        let mut i2c = Mock::new(&[T::read(ADDR, vec![0x66, 0x66, 0x93, 0x80, 0x01, 0xA2])]);
        let r = Sht30::new(ADDR).read_measurement(&mut i2c);
        assert_eq!(r, Err(Error::Crc));
        i2c.done();
    }

    #[test]
    fn read_nacked_while_measuring_is_a_bus_error() {
        let mut i2c = Mock::new(&[
            T::write(ADDR, vec![0x24, 0x00]),
            T::read(ADDR, vec![0; 6]).with_error(ErrorKind::NoAcknowledge(
                embedded_hal::i2c::NoAcknowledgeSource::Address,
            )),
        ]);
        let sht = Sht30::new(ADDR);
        sht.start_measurement(&mut i2c, Repeatability::High)
            .unwrap();
        assert!(matches!(
            sht.read_measurement(&mut i2c),
            Err(Error::I2c(ErrorKind::NoAcknowledge(_)))
        ));
        i2c.done();
    }

    #[test]
    fn status_read_clear_and_reset() {
        let mut i2c = Mock::new(&[
            T::write(ADDR, vec![0xF3, 0x2D]),
            T::read(ADDR, vec![0x80, 0x10, 0xE1]),
            T::write(ADDR, vec![0x30, 0x41]),
            T::write(ADDR, vec![0xF3, 0x2D]),
            T::read(ADDR, vec![0x80, 0x10, 0xE0]),
            T::write(ADDR, vec![0x30, 0xA2]),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(1_500)]);
        let sht = Sht30::new(ADDR);
        let s = sht.read_status(&mut i2c).unwrap();
        assert_eq!(s, Status(Status::AFTER_RESET));
        assert!(s.alert_pending() && s.reset_detected());
        assert!(!s.heater_on() && !s.command_failed() && !s.write_checksum_failed());
        assert!(!s.humidity_alert() && !s.temperature_alert());
        sht.clear_status(&mut i2c).unwrap();
        assert_eq!(sht.read_status(&mut i2c), Err(Error::Crc));
        sht.soft_reset(&mut i2c, &mut delay).unwrap();
        i2c.done();
        delay.done();
    }

    #[test]
    fn single_shot_commands_round_trip() {
        for rep in [
            Repeatability::High,
            Repeatability::Medium,
            Repeatability::Low,
        ] {
            assert_eq!(
                Repeatability::from_single_shot_command(rep.command()),
                Some((rep, false))
            );
            assert_eq!(
                Repeatability::from_single_shot_command(rep.command_clock_stretching()),
                Some((rep, true))
            );
        }
        assert_eq!(Repeatability::from_single_shot_command([0xE0, 0x00]), None);
    }
}
