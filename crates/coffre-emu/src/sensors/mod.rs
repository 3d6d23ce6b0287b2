//! The emulated M5Stack ENV II unit: an SHT30 at 0x44 and a BMP280 at 0x76
//! measuring one shared, deterministic [`Environment`].
//!
//! Both devices encode exactly what the `coffre-sensors` drivers decode:
//! they reuse its public conversion functions (the SHT30 encoding is the
//! inverse of `sht30::convert`; the BMP280 raw ADC values are found by
//! bisection through the datasheet compensation formulas).
//!
//! ```
//! use std::time::Duration;
//! use coffre_emu::device::Device;
//! use coffre_emu::sensors::env_ii;
//!
//! let (sht, bmp) = env_ii(7);
//! assert_eq!((sht.address(), bmp.address()), (0x44, 0x76));
//! let c = sht.environment().at(Duration::from_secs(60));
//! assert!((20.0..26.0).contains(&c.temperature_c));
//! ```

use std::f64::consts::TAU;
use std::time::Duration;

pub mod bmp280;
pub mod sht30;

pub use bmp280::Bmp280;
pub use sht30::Sht30;

/// The true physical conditions at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Conditions {
    /// Air temperature in degrees Celsius.
    pub temperature_c: f64,
    /// Relative humidity in percent.
    pub humidity_pct: f64,
    /// Absolute air pressure in hectopascal.
    pub pressure_hpa: f64,
}

/// One slowly drifting quantity: a base value plus two sine waves.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Drift {
    base: f64,
    /// (amplitude, period in seconds, phase in radians) of each wave.
    waves: [(f64, f64, f64); 2],
}

impl Drift {
    fn at(&self, secs: f64) -> f64 {
        self.waves
            .iter()
            .fold(self.base, |acc, &(amp, period, phase)| {
                acc + amp * (TAU * secs / period + phase).sin()
            })
    }
}

/// A deterministic indoor climate: temperature 22..24 C, humidity
/// 40..50 %RH and pressure 1005..1020 hPa, each drifting with periods of
/// several minutes. Different seeds give different (but equally
/// plausible) rooms; the same seed always gives the same values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Environment {
    seed: u64,
    temperature: Drift,
    humidity: Drift,
    pressure: Drift,
}

/// SplitMix64: a small, well-mixed generator to derive the model's
/// parameters from the seed.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        // The top 53 bits give a uniform f64 in [0, 1).
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    fn phase(&mut self) -> f64 {
        self.uniform(0.0, TAU)
    }
}

impl Environment {
    /// The climate of the room numbered `seed`.
    pub fn new(seed: u64) -> Self {
        let mut r = SplitMix64(seed);
        // Each quantity: base +- (a1 + a2) stays inside its stated range.
        let temperature = Drift {
            base: r.uniform(22.6, 23.4),
            waves: [
                (r.uniform(0.2, 0.35), r.uniform(360.0, 720.0), r.phase()),
                (r.uniform(0.1, 0.2), r.uniform(1_200.0, 2_400.0), r.phase()),
            ],
        };
        let humidity = Drift {
            base: r.uniform(44.0, 46.0),
            waves: [
                (r.uniform(1.0, 2.5), r.uniform(300.0, 600.0), r.phase()),
                (r.uniform(0.5, 1.5), r.uniform(900.0, 1_800.0), r.phase()),
            ],
        };
        let pressure = Drift {
            base: r.uniform(1_009.0, 1_016.0),
            waves: [
                (r.uniform(1.0, 2.0), r.uniform(1_800.0, 3_600.0), r.phase()),
                (r.uniform(0.3, 1.0), r.uniform(600.0, 1_200.0), r.phase()),
            ],
        };
        Environment {
            seed,
            temperature,
            humidity,
            pressure,
        }
    }

    /// The seed this climate was made from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The true conditions at bus time `now`.
    pub fn at(&self, now: Duration) -> Conditions {
        let s = now.as_secs_f64();
        Conditions {
            temperature_c: self.temperature.at(s),
            humidity_pct: self.humidity.at(s),
            pressure_hpa: self.pressure.at(s),
        }
    }
}

/// The two devices of one ENV II unit (SHT30 at 0x44, BMP280 at 0x76),
/// both measuring `Environment::new(seed)`.
pub fn env_ii(seed: u64) -> (Sht30, Bmp280) {
    let env = Environment::new(seed);
    (Sht30::new(env), Bmp280::new(env))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_seed_dependent() {
        let t = Duration::from_secs(123);
        assert_eq!(Environment::new(1).at(t), Environment::new(1).at(t));
        let a = Environment::new(1).at(t);
        let b = Environment::new(2).at(t);
        assert!(a.temperature_c != b.temperature_c);
        assert!(a.humidity_pct != b.humidity_pct);
        assert!(a.pressure_hpa != b.pressure_hpa);
        assert_eq!(Environment::new(9).seed(), 9);
    }

    #[test]
    fn plausible_indoor_ranges_over_a_day() {
        for seed in 0..20 {
            let env = Environment::new(seed);
            for minute in 0..(24 * 60) {
                let c = env.at(Duration::from_secs(minute * 60));
                assert!((22.0..=24.0).contains(&c.temperature_c), "{c:?}");
                assert!((40.0..=50.0).contains(&c.humidity_pct), "{c:?}");
                assert!((1_005.0..=1_020.0).contains(&c.pressure_hpa), "{c:?}");
            }
        }
    }

    #[test]
    fn drifts_slowly_but_does_drift() {
        let env = Environment::new(42);
        let mut max_step = 0.0f64;
        let mut min = f64::MAX;
        let mut max = f64::MIN;
        for s in 0..3_600u64 {
            let a = env.at(Duration::from_secs(s)).temperature_c;
            let b = env.at(Duration::from_secs(s + 1)).temperature_c;
            max_step = max_step.max((a - b).abs());
            min = min.min(a);
            max = max.max(a);
        }
        // Less than 0.01 C per second, yet a visible swing over an hour.
        assert!(max_step < 0.01, "{max_step}");
        assert!(max - min > 0.2, "{min}..{max}");
    }

    #[test]
    fn env_ii_devices_share_the_environment() {
        let (sht, bmp) = env_ii(5);
        assert_eq!(sht.environment(), bmp.environment());
        assert_eq!(sht.environment().seed(), 5);
    }
}
