//! An emulated Sensirion SHT30 (datasheet "SHT3x-DIS", version 7).
//!
//! Supported: the six single-shot commands (section 4.3, Table 9), the
//! periodic modes with fetch data, ART and break (sections 4.5 to 4.8),
//! soft reset (4.9), heater on/off as a status flag (4.10), status read and
//! clear (4.11), with the CRC-8 of section 4.12 on every word sent.
//!
//! Timing follows the maximum durations of Table 4 (15 / 6 / 4 ms). A read
//! header is NACKed while a single-shot measurement without clock
//! stretching is running, and whenever there is nothing to read
//! (section 4.4). With clock stretching the real part holds SCL low until
//! the result is ready; the emulated bus cannot stretch, so such a read
//! returns the result at once. New commands are NACKed at the address
//! while a measurement or a soft reset is in progress.

use std::time::Duration;

use coffre_sensors::sht30::{command, encode_word, Repeatability, Status};

use super::{Conditions, Environment};
use crate::device::{Device, Nack};

/// Address with ADDR low (datasheet section 3, I2C address table).
pub const DEFAULT_ADDRESS: u8 = coffre_sensors::sht30::DEFAULT_ADDRESS;
/// Address with ADDR high (datasheet section 3, I2C address table).
pub const ALTERNATE_ADDRESS: u8 = coffre_sensors::sht30::ALTERNATE_ADDRESS;

/// What the next read header will get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// Nothing: the read is NACKed.
    Nothing,
    /// A single-shot result, available from `ready_at` (or at once with
    /// clock stretching).
    Measurement {
        ready_at: Duration,
        stretch: bool,
        raw: [u16; 2],
    },
    /// The status word, after command 0xF32D.
    Status,
    /// The latest periodic result, after command 0xE000.
    Fetch,
}

/// Periodic data acquisition state (section 4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Periodic {
    start: Duration,
    period: Duration,
    duration: Duration,
    /// Index of the last result read out; each result is read once.
    last_read: Option<u64>,
}

impl Periodic {
    /// The latest finished measurement at `now`: its index and start time.
    fn latest(&self, now: Duration) -> Option<(u64, Duration)> {
        let since = now.checked_sub(self.start + self.duration)?;
        let index = (since.as_nanos() / self.period.as_nanos()) as u64;
        let at = self.start + self.period * u32::try_from(index).ok()?;
        Some((index, at))
    }
}

/// The emulated SHT30.
#[derive(Debug, Clone)]
pub struct Sht30 {
    address: u8,
    env: Environment,
    status: u16,
    pending: Pending,
    /// Commands are NACKed until then (soft reset, or a running single
    /// shot without clock stretching).
    busy_until: Duration,
    periodic: Option<Periodic>,
}

/// The maximum measurement time of a repeatability (Table 4).
fn duration_of(rep: Repeatability) -> Duration {
    Duration::from_micros(u64::from(rep.max_duration_us()))
}

/// The periodic-mode commands (section 4.5, Table 10): measurements per
/// second as a period, and the repeatability.
fn periodic_command(cmd: [u8; 2]) -> Option<(Duration, Repeatability)> {
    use Repeatability::{High, Low, Medium};
    let ms = Duration::from_millis;
    Some(match cmd {
        // 0.5 measurements per second.
        [0x20, 0x32] => (ms(2_000), High),
        [0x20, 0x24] => (ms(2_000), Medium),
        [0x20, 0x2F] => (ms(2_000), Low),
        // 1 mps.
        [0x21, 0x30] => (ms(1_000), High),
        [0x21, 0x26] => (ms(1_000), Medium),
        [0x21, 0x2D] => (ms(1_000), Low),
        // 2 mps.
        [0x22, 0x36] => (ms(500), High),
        [0x22, 0x20] => (ms(500), Medium),
        [0x22, 0x2B] => (ms(500), Low),
        // 4 mps.
        [0x23, 0x34] => (ms(250), High),
        [0x23, 0x22] => (ms(250), Medium),
        [0x23, 0x29] => (ms(250), Low),
        // 10 mps.
        [0x27, 0x37] => (ms(100), High),
        [0x27, 0x21] => (ms(100), Medium),
        [0x27, 0x2A] => (ms(100), Low),
        // ART: 4 Hz (section 4.7).
        c if c == command::ART => (ms(250), High),
        _ => return None,
    })
}

/// Quantise true conditions to the raw words, inverting section 4.13:
/// S_T = (T + 45) * 65535 / 175, S_RH = RH * 65535 / 100, rounded and
/// clamped to 16 bits.
pub fn encode(c: &Conditions) -> [u16; 2] {
    let quantise = |x: f64| x.round().clamp(0.0, 65_535.0) as u16;
    [
        quantise((c.temperature_c + 45.0) * 65_535.0 / 175.0),
        quantise(c.humidity_pct * 65_535.0 / 100.0),
    ]
}

impl Sht30 {
    /// Soft reset time t_SR (Table 4: 1.5 ms maximum).
    const RESET_TIME: Duration =
        Duration::from_micros(coffre_sensors::sht30::SOFT_RESET_TIME_US as u64);

    /// A freshly powered SHT30 at [`DEFAULT_ADDRESS`] measuring `env`.
    pub fn new(env: Environment) -> Self {
        Sht30 {
            address: DEFAULT_ADDRESS,
            env,
            status: Status::AFTER_RESET,
            pending: Pending::Nothing,
            busy_until: Duration::ZERO,
            periodic: None,
        }
    }

    /// The same device with ADDR pulled high ([`ALTERNATE_ADDRESS`]).
    pub fn with_alternate_address(mut self) -> Self {
        self.address = ALTERNATE_ADDRESS;
        self
    }

    /// The climate this sensor measures.
    pub fn environment(&self) -> &Environment {
        &self.env
    }

    /// The current status register (as command 0xF32D would return it).
    pub fn status(&self) -> u16 {
        self.status
    }

    fn reset(&mut self, now: Duration) {
        self.status = Status::AFTER_RESET;
        self.pending = Pending::Nothing;
        self.periodic = None;
        self.busy_until = now + Self::RESET_TIME;
    }

    /// Execute a two-byte command; `false` if it is not understood (or not
    /// allowed in the current mode).
    fn execute(&mut self, now: Duration, cmd: [u8; 2]) -> bool {
        if cmd == command::SOFT_RESET {
            self.reset(now);
            return true;
        }
        match cmd {
            c if c == command::READ_STATUS => self.pending = Pending::Status,
            c if c == command::CLEAR_STATUS => self.status &= !Status::CLEARABLE,
            c if c == command::HEATER_ENABLE => self.status |= Status::HEATER_ON,
            c if c == command::HEATER_DISABLE => self.status &= !Status::HEATER_ON,
            c if c == command::BREAK => {
                if self.periodic.take().is_none() {
                    return false;
                }
                self.pending = Pending::Nothing;
            }
            c if c == command::FETCH_DATA => {
                if self.periodic.is_none() {
                    return false;
                }
                self.pending = Pending::Fetch;
            }
            c => {
                if let Some((rep, stretch)) = Repeatability::from_single_shot_command(c) {
                    // Section 4.5: in periodic mode only fetch, break,
                    // reset and status commands are accepted.
                    if self.periodic.is_some() {
                        return false;
                    }
                    let duration = duration_of(rep);
                    let raw = encode(&self.env.at(now));
                    self.pending = Pending::Measurement {
                        ready_at: now + duration,
                        stretch,
                        raw,
                    };
                    if !stretch {
                        self.busy_until = now + duration;
                    }
                } else if let Some((period, rep)) = periodic_command(c) {
                    if self.periodic.is_some() {
                        return false;
                    }
                    self.pending = Pending::Nothing;
                    self.periodic = Some(Periodic {
                        start: now,
                        period,
                        duration: duration_of(rep),
                        last_read: None,
                    });
                } else {
                    return false;
                }
            }
        }
        true
    }
}

/// Copy `words` (each followed by its CRC) into `buf`; bytes past the end
/// read 0xFF (SDA left high).
fn fill(buf: &mut [u8], words: &[u16]) {
    let bytes = words.iter().flat_map(|&w| encode_word(w));
    buf.fill(0xFF);
    for (slot, b) in buf.iter_mut().zip(bytes) {
        *slot = b;
    }
}

impl Device for Sht30 {
    fn address(&self) -> u8 {
        self.address
    }

    fn name(&self) -> &'static str {
        "sht30"
    }

    fn write(&mut self, now: Duration, data: &[u8]) -> Result<(), Nack> {
        if now < self.busy_until {
            return Err(Nack::Address);
        }
        match *data {
            // An address-only write (bus scan): acknowledged, no effect.
            [] => {}
            [msb, lsb] => {
                let status_read = [msb, lsb] == command::READ_STATUS;
                if self.execute(now, [msb, lsb]) {
                    // Bit 1 reports the last command; the status read
                    // itself leaves it as it is so it can be observed.
                    if !status_read {
                        self.status &= !Status::COMMAND_FAILED;
                    }
                } else {
                    self.status |= Status::COMMAND_FAILED;
                }
            }
            // Commands with data (alert limits) are not supported; any
            // other length is not a command.
            _ => self.status |= Status::COMMAND_FAILED,
        }
        Ok(())
    }

    fn read(&mut self, now: Duration, buf: &mut [u8]) -> Result<(), Nack> {
        if now < self.busy_until && !matches!(self.pending, Pending::Measurement { .. }) {
            return Err(Nack::Address);
        }
        match self.pending {
            Pending::Nothing => Err(Nack::Address),
            Pending::Status => {
                self.pending = Pending::Nothing;
                fill(buf, &[self.status]);
                Ok(())
            }
            Pending::Measurement {
                ready_at,
                stretch,
                raw,
            } => {
                if now < ready_at && !stretch {
                    return Err(Nack::Address);
                }
                self.pending = Pending::Nothing;
                fill(buf, &raw);
                Ok(())
            }
            Pending::Fetch => {
                self.pending = Pending::Nothing;
                let env = self.env;
                let periodic = self.periodic.as_mut().ok_or(Nack::Address)?;
                match periodic.latest(now) {
                    Some((index, at)) if periodic.last_read != Some(index) => {
                        periodic.last_read = Some(index);
                        fill(buf, &encode(&env.at(at)));
                        Ok(())
                    }
                    _ => Err(Nack::Address),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_sensors::sht30::{convert, decode_word};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// Read six bytes and decode them, checking both CRCs.
    fn read_result(dev: &mut Sht30, now: Duration) -> Result<(f32, f32), Nack> {
        let mut buf = [0u8; 6];
        dev.read(now, &mut buf)?;
        let t = decode_word([buf[0], buf[1], buf[2]]).expect("temperature CRC");
        let rh = decode_word([buf[3], buf[4], buf[5]]).expect("humidity CRC");
        Ok(convert(t, rh))
    }

    fn read_status(dev: &mut Sht30, now: Duration) -> u16 {
        dev.write(now, &[0xF3, 0x2D]).unwrap();
        let mut buf = [0u8; 3];
        dev.read(now, &mut buf).unwrap();
        decode_word(buf).expect("status CRC")
    }

    fn assert_close(got: (f32, f32), want: Conditions) {
        let (t, rh) = got;
        assert!(
            (f64::from(t) - want.temperature_c).abs() < 0.01,
            "{t} vs {}",
            want.temperature_c
        );
        assert!(
            (f64::from(rh) - want.humidity_pct).abs() < 0.01,
            "{rh} vs {}",
            want.humidity_pct
        );
    }

    #[test]
    fn single_shot_high_repeatability() {
        let env = Environment::new(3);
        let mut dev = Sht30::new(env);
        assert_eq!(dev.address(), 0x44);
        assert_eq!(dev.name(), "sht30");
        let t0 = Duration::from_secs(100);
        dev.write(t0, &[0x24, 0x00]).unwrap();
        assert_eq!(read_result(&mut dev, t0 + ms(1)), Err(Nack::Address));
        assert_eq!(read_result(&mut dev, t0 + ms(14)), Err(Nack::Address));
        // Quantised at the moment the measurement was triggered.
        let got = read_result(&mut dev, t0 + ms(15)).unwrap();
        assert_close(got, env.at(t0));
        // The result is read once.
        assert_eq!(read_result(&mut dev, t0 + ms(16)), Err(Nack::Address));
    }

    #[test]
    fn medium_and_low_repeatability_times() {
        let env = Environment::new(4);
        let mut dev = Sht30::new(env).with_alternate_address();
        assert_eq!(dev.address(), 0x45);
        let t0 = ms(1_000);
        dev.write(t0, &[0x24, 0x0B]).unwrap();
        assert_eq!(read_result(&mut dev, t0 + ms(5)), Err(Nack::Address));
        assert_close(read_result(&mut dev, t0 + ms(6)).unwrap(), env.at(t0));
        let t1 = ms(2_000);
        dev.write(t1, &[0x24, 0x16]).unwrap();
        assert_eq!(read_result(&mut dev, t1 + ms(3)), Err(Nack::Address));
        assert_close(read_result(&mut dev, t1 + ms(4)).unwrap(), env.at(t1));
    }

    #[test]
    fn commands_nacked_while_measuring() {
        let mut dev = Sht30::new(Environment::new(1));
        dev.write(ms(0), &[0x24, 0x00]).unwrap();
        assert_eq!(dev.write(ms(5), &[0xF3, 0x2D]), Err(Nack::Address));
        assert!(dev.write(ms(15), &[]).is_ok());
    }

    #[test]
    fn clock_stretching_returns_at_once() {
        let env = Environment::new(5);
        let mut dev = Sht30::new(env);
        for cmd in [[0x2C, 0x06], [0x2C, 0x0D], [0x2C, 0x10]] {
            let t0 = ms(500);
            dev.write(t0, &cmd).unwrap();
            assert_close(read_result(&mut dev, t0).unwrap(), env.at(t0));
        }
    }

    #[test]
    fn short_read_skips_the_crc_and_long_read_pads() {
        let env = Environment::new(6);
        let mut dev = Sht30::new(env);
        dev.write(ms(0), &[0x2C, 0x06]).unwrap();
        let mut two = [0u8; 2];
        dev.read(ms(0), &mut two).unwrap();
        let [raw_t, _] = encode(&env.at(ms(0)));
        assert_eq!(u16::from_be_bytes(two), raw_t);
        dev.write(ms(10), &[0xF3, 0x2D]).unwrap();
        let mut five = [0u8; 5];
        dev.read(ms(10), &mut five).unwrap();
        assert_eq!(&five[3..], &[0xFF, 0xFF]);
    }

    #[test]
    fn read_without_command_is_nacked() {
        let mut dev = Sht30::new(Environment::new(7));
        assert_eq!(dev.read(ms(0), &mut [0u8; 6]), Err(Nack::Address));
    }

    #[test]
    fn status_flags() {
        let mut dev = Sht30::new(Environment::new(8));
        assert_eq!(read_status(&mut dev, ms(0)), 0x8010);
        // Unknown command: ignored, bit 1 set; reading the status does not
        // clear it.
        dev.write(ms(1), &[0x12, 0x34]).unwrap();
        assert_eq!(read_status(&mut dev, ms(2)), 0x8012);
        assert_eq!(read_status(&mut dev, ms(3)), 0x8012);
        assert_eq!(dev.read(ms(3), &mut [0u8; 6]), Err(Nack::Address));
        // A one-byte write is not a command either.
        dev.write(ms(4), &[0x24]).unwrap();
        assert_eq!(
            dev.status() & Status::COMMAND_FAILED,
            Status::COMMAND_FAILED
        );
        // Clear status: bits 15, 11, 10, 4; being a valid command it also
        // reports success in bit 1.
        dev.write(ms(5), &[0x30, 0x41]).unwrap();
        assert_eq!(read_status(&mut dev, ms(6)), 0x0000);
        dev.write(ms(7), &[0x30, 0x6D]).unwrap();
        assert_eq!(read_status(&mut dev, ms(8)), 0x2000);
        dev.write(ms(9), &[0x30, 0x66]).unwrap();
        assert_eq!(read_status(&mut dev, ms(10)), 0x0000);
    }

    #[test]
    fn soft_reset() {
        let mut dev = Sht30::new(Environment::new(9));
        dev.write(ms(0), &[0x30, 0x41]).unwrap();
        dev.write(ms(1), &[0x30, 0x6D]).unwrap();
        dev.write(ms(2), &[0x2C, 0x06]).unwrap();
        dev.write(ms(3), &[0x30, 0xA2]).unwrap();
        // Busy for t_SR = 1.5 ms, then back to the power-up state.
        assert_eq!(dev.write(ms(4), &[0xF3, 0x2D]), Err(Nack::Address));
        let after = ms(3) + Duration::from_micros(1_500);
        assert_eq!(dev.read(after, &mut [0u8; 6]), Err(Nack::Address));
        assert_eq!(read_status(&mut dev, after), 0x8010);
    }

    #[test]
    fn periodic_mode_fetch_and_break() {
        let env = Environment::new(10);
        let mut dev = Sht30::new(env);
        let t0 = ms(10_000);
        // 10 measurements per second, high repeatability.
        dev.write(t0, &[0x27, 0x37]).unwrap();
        // Nothing finished yet.
        dev.write(t0 + ms(5), &[0xE0, 0x00]).unwrap();
        assert_eq!(read_result(&mut dev, t0 + ms(5)), Err(Nack::Address));
        // First result (started at t0).
        dev.write(t0 + ms(20), &[0xE0, 0x00]).unwrap();
        assert_close(read_result(&mut dev, t0 + ms(20)).unwrap(), env.at(t0));
        // Already read: NACK until the next one.
        dev.write(t0 + ms(60), &[0xE0, 0x00]).unwrap();
        assert_eq!(read_result(&mut dev, t0 + ms(60)), Err(Nack::Address));
        dev.write(t0 + ms(350), &[0xE0, 0x00]).unwrap();
        assert_close(
            read_result(&mut dev, t0 + ms(350)).unwrap(),
            env.at(t0 + ms(300)),
        );
        // Single shot is refused in periodic mode.
        dev.write(t0 + ms(360), &[0x24, 0x00]).unwrap();
        assert_eq!(
            dev.status() & Status::COMMAND_FAILED,
            Status::COMMAND_FAILED
        );
        // Break, then fetch is refused.
        dev.write(t0 + ms(370), &[0x30, 0x93]).unwrap();
        assert_eq!(dev.status() & Status::COMMAND_FAILED, 0);
        dev.write(t0 + ms(380), &[0xE0, 0x00]).unwrap();
        assert_eq!(
            dev.status() & Status::COMMAND_FAILED,
            Status::COMMAND_FAILED
        );
        assert_eq!(read_result(&mut dev, t0 + ms(380)), Err(Nack::Address));
    }

    #[test]
    fn art_is_periodic_at_4_hz() {
        let env = Environment::new(11);
        let mut dev = Sht30::new(env);
        dev.write(ms(0), &[0x2B, 0x32]).unwrap();
        dev.write(ms(600), &[0xE0, 0x00]).unwrap();
        assert_close(read_result(&mut dev, ms(600)).unwrap(), env.at(ms(500)));
    }

    #[test]
    fn encoding_is_within_resolution_over_the_range() {
        for i in 0..=200 {
            let c = Conditions {
                temperature_c: -40.0 + f64::from(i) * 0.6,
                humidity_pct: f64::from(i) * 0.5,
                pressure_hpa: 1_000.0,
            };
            let [t, rh] = encode(&c);
            assert_close(convert(t, rh), c);
        }
    }

    #[test]
    fn two_units_differ() {
        let mut a = Sht30::new(Environment::new(100));
        let mut b = Sht30::new(Environment::new(200));
        a.write(ms(0), &[0x2C, 0x06]).unwrap();
        b.write(ms(0), &[0x2C, 0x06]).unwrap();
        assert_ne!(read_result(&mut a, ms(0)), read_result(&mut b, ms(0)));
    }
}
