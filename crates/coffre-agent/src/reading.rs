//! Sensor readings: where they come from ([`SensorSource`]) and what goes on
//! the wire ([`Reading`], one JSON object per message).

use std::fmt;

use coffre_sensors::bmp280::Bmp280;
use coffre_sensors::sht30::Sht30;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, I2c};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

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
    /// ([`crate::Error::ChipGone`]).
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

impl std::error::Error for SensorError {}

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
    (f64::from(v) * 100.0).round() / 100.0
}

impl Reading {
    /// A reading of `m` taken now.
    pub fn new(device: &str, seq: u64, m: &Measurement) -> Reading {
        Reading::at(device, seq, OffsetDateTime::now_utc(), m)
    }

    /// A reading of `m` taken at `t`.
    pub fn at(device: &str, seq: u64, t: OffsetDateTime, m: &Measurement) -> Reading {
        Reading {
            device: device.to_owned(),
            seq,
            ts: rfc3339(t),
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
    pub fn time(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.ts, &Rfc3339).ok()
    }
}

/// RFC 3339 UTC with microseconds, e.g. `2025-05-01T12:00:00.123456Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_microsecond(t.microsecond()).unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_746_100_800_123_456_789).unwrap();
        let r = Reading::at(
            "m5go-01",
            7,
            t,
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
        assert_eq!(back.time().unwrap().unix_timestamp(), 1_746_100_800);
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
