//! Sensor readings: where they come from ([`SensorSource`]) and what goes on
//! the wire ([`Reading`], one JSON object per message).

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use core::fmt;

use coffre_sensors::bmp280::Bmp280;
use coffre_sensors::sht30::Sht30;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c};
use serde::{Deserialize, Serialize};

/// One measurement of the ENV II unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Temperature, °C (SHT30).
    pub temperature_c: f32,
    /// Relative humidity, % (SHT30).
    pub humidity_pct: f32,
    /// Pressure, hPa (BMP280).
    pub pressure_hpa: f32,
}

/// Why a measurement failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SensorError {
    /// A device does not answer on the bus: the publisher stops
    /// (the agent reports the chip or sensor as gone).
    Absent {
        /// Which device ("SHT30 at 0x44").
        device: String,
        /// What was observed.
        detail: String,
    },
    /// The device answered but the measurement failed (CRC, wrong chip
    /// id…); the reading is skipped.
    Failed(String),
}

impl fmt::Display for SensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SensorError::Absent { device, detail } => write!(f, "{device} is absent ({detail})"),
            SensorError::Failed(m) => f.write_str(m),
        }
    }
}

impl core::error::Error for SensorError {}

/// Something that takes measurements.
///
/// Implemented by [`EnvSensors`] (an SHT30 and a BMP280 on one I2C bus)
/// and by any `FnMut() -> Result<Measurement, SensorError>`.
pub trait SensorSource {
    /// Take one measurement.
    fn measure(&mut self) -> Result<Measurement, SensorError>;
}

impl<F> SensorSource for F
where
    F: FnMut() -> Result<Measurement, SensorError>,
{
    fn measure(&mut self) -> Result<Measurement, SensorError> {
        self()
    }
}

/// The ENV II unit: an SHT30 (temperature, humidity) and a BMP280
/// (pressure) on one embedded-hal I2C bus.
///
/// The BMP280's trimming parameters are read at the first measurement.
pub struct EnvSensors<I2C, D> {
    i2c: I2C,
    delay: D,
    sht30: Sht30,
    bmp280_address: u8,
    bmp280: Option<Bmp280>,
}

impl<I2C, D> fmt::Debug for EnvSensors<I2C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvSensors")
            .field("sht30", &format_args!("0x{:02X}", self.sht30.address()))
            .field("bmp280", &format_args!("0x{:02X}", self.bmp280_address))
            .finish()
    }
}

impl<I2C, D> EnvSensors<I2C, D> {
    /// The ENV II unit at its usual addresses (SHT30 0x44, BMP280 0x76).
    pub fn new(i2c: I2C, delay: D) -> Self {
        Self::with_addresses(
            i2c,
            delay,
            coffre_sensors::sht30::DEFAULT_ADDRESS,
            coffre_sensors::bmp280::DEFAULT_ADDRESS,
        )
    }

    /// Sensors at other addresses (SHT30 0x45, BMP280 0x77).
    pub fn with_addresses(i2c: I2C, delay: D, sht30: u8, bmp280: u8) -> Self {
        EnvSensors {
            i2c,
            delay,
            sht30: Sht30::new(sht30),
            bmp280_address: bmp280,
            bmp280: None,
        }
    }

    /// Give the bus and the delay back.
    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }
}

fn sensor_error<E: embedded_hal::i2c::Error>(
    device: String,
    e: coffre_sensors::Error<E>,
) -> SensorError {
    match e {
        coffre_sensors::Error::I2c(bus)
            if matches!(bus.kind(), ErrorKind::NoAcknowledge(_) | ErrorKind::Other) =>
        {
            SensorError::Absent {
                device,
                detail: format!("no acknowledge ({:?})", bus.kind()),
            }
        }
        other => SensorError::Failed(format!("{device}: {other}")),
    }
}

impl<I2C, D> SensorSource for EnvSensors<I2C, D>
where
    I2C: I2c,
    D: DelayNs,
{
    fn measure(&mut self) -> Result<Measurement, SensorError> {
        let sht_name = || format!("SHT30 at 0x{:02X}", self.sht30.address());
        let sht = self
            .sht30
            .measure(&mut self.i2c, &mut self.delay)
            .map_err(|e| sensor_error(sht_name(), e))?;
        let bmp_name = format!("BMP280 at 0x{:02X}", self.bmp280_address);
        let bmp = match self.bmp280 {
            Some(b) => b,
            None => {
                let b = Bmp280::init(&mut self.i2c, self.bmp280_address)
                    .map_err(|e| sensor_error(bmp_name.clone(), e))?;
                self.bmp280 = Some(b);
                b
            }
        };
        let p = bmp
            .measure(&mut self.i2c, &mut self.delay)
            .map_err(|e| sensor_error(bmp_name, e))?;
        Ok(Measurement {
            temperature_c: sht.temperature_c,
            humidity_pct: sht.humidity_pct,
            pressure_hpa: p.pressure_hpa,
        })
    }
}

/// One published reading, as JSON:
/// `{"device":"…","seq":N,"ts":"RFC 3339","temperature_c":…,"humidity_pct":…,"pressure_hpa":…}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Device id (certificate CN, MQTT client id).
    pub device: String,
    /// Sequence number, from 1, continued across restarts.
    pub seq: u64,
    /// When the measurement was taken, RFC 3339 UTC.
    pub ts: String,
    /// Temperature, °C, two decimals.
    pub temperature_c: f64,
    /// Relative humidity, %, two decimals.
    pub humidity_pct: f64,
    /// Pressure, hPa, two decimals.
    pub pressure_hpa: f64,
}

fn two_decimals(v: f32) -> f64 {
    // `f64::round` needs std; half away from zero, as it rounds.
    let x = f64::from(v) * 100.0;
    if !x.is_finite() || x.abs() >= 1e15 {
        return f64::from(v);
    }
    let r = if x >= 0.0 {
        (x + 0.5) as i64
    } else {
        (x - 0.5) as i64
    };
    r as f64 / 100.0
}

impl Reading {
    /// A reading of `m` taken at `unix_micros` (microseconds since
    /// 1970-01-01T00:00:00Z, from the device's wall clock).
    pub fn at_unix_micros(device: &str, seq: u64, unix_micros: i64, m: &Measurement) -> Reading {
        Reading {
            device: device.to_owned(),
            seq,
            ts: rfc3339_micros(unix_micros),
            temperature_c: two_decimals(m.temperature_c),
            humidity_pct: two_decimals(m.humidity_pct),
            pressure_hpa: two_decimals(m.pressure_hpa),
        }
    }

    /// The JSON payload (one line, fields in the documented order).
    pub fn to_json(&self) -> String {
        // Serialising plain fields cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parse a payload.
    pub fn from_json(payload: &[u8]) -> Result<Reading, serde_json::Error> {
        serde_json::from_slice(payload)
    }

    /// The timestamp, parsed.
    #[cfg(feature = "std")]
    pub fn time(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(&self.ts, &time::format_description::well_known::Rfc3339).ok()
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2025-05-01T12:00:00.123456Z`, of
/// a time in microseconds since the Unix epoch.
pub fn rfc3339_micros(unix_micros: i64) -> String {
    let secs = unix_micros.div_euclid(1_000_000);
    let micros = unix_micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Days to civil date (H. Hinnant's algorithm, proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let r = Reading::at_unix_micros(
            "m5go-01",
            7,
            1_746_100_800_123_456,
            &Measurement {
                temperature_c: 22.534,
                humidity_pct: 48.1,
                pressure_hpa: 1013.2567,
            },
        );
        assert_eq!(
            r.to_json(),
            r#"{"device":"m5go-01","seq":7,"ts":"2025-05-01T12:00:00.123456Z","temperature_c":22.53,"humidity_pct":48.1,"pressure_hpa":1013.26}"#
        );
        let back = Reading::from_json(r.to_json().as_bytes()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn rfc3339_of_unix_micros() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(-1), "1969-12-31T23:59:59.999999Z");
        // A leap day, and the end of a century year that is a leap year.
        assert_eq!(
            rfc3339_micros(951_782_400_000_001),
            "2000-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            rfc3339_micros(978_307_199_500_000),
            "2000-12-31T23:59:59.500000Z"
        );
        assert_eq!(
            rfc3339_micros(4_102_444_800_000_000),
            "2100-01-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn closures_are_sensor_sources() {
        let mut n = 0.0;
        let mut src = move || {
            n += 1.0;
            Ok(Measurement {
                temperature_c: n,
                humidity_pct: 50.0,
                pressure_hpa: 1000.0,
            })
        };
        assert_eq!(src.measure().unwrap().temperature_c, 1.0);
        assert_eq!(src.measure().unwrap().temperature_c, 2.0);
    }
}
