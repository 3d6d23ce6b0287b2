//! Bosch BMP280 barometric pressure and temperature sensor.
//!
//! References are to the Bosch "BMP280 Digital Pressure Sensor" datasheet
//! (BST-BMP280-DS001): section 3.11 (trimming parameters and compensation
//! formulas), section 3.8 and Appendix B (measurement time), section 4
//! (registers) and section 5.2 (I2C protocol).
//!
//! The compensation functions are the datasheet's integer formulas
//! (section 3.11.3): 32-bit arithmetic for the temperature (which also
//! yields `t_fine`) and 64-bit arithmetic for the pressure, whose result is
//! in pascal as an unsigned Q24.8 fixed-point number. Overflow wraps, as the
//! reference C code does on two's-complement machines, so no input can make
//! them panic.
//!
//! ```
//! use coffre_sensors::bmp280::{compensate_pressure, compensate_temperature, Calibration};
//! // The datasheet's worked example (section 3.12).
//! let cal = Calibration::DATASHEET_EXAMPLE;
//! let (centi_c, t_fine) = compensate_temperature(519_888, &cal);
//! assert_eq!(centi_c, 2508);
//! assert_eq!(compensate_pressure(415_148, t_fine, &cal), 25_767_233);
//! ```

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::Error;

/// I2C address with SDO tied to GND (section 5.2); the ENV II unit wires
/// it this way.
pub const DEFAULT_ADDRESS: u8 = 0x76;

/// I2C address with SDO tied to V_DDIO (section 5.2).
pub const ALTERNATE_ADDRESS: u8 = 0x77;

/// Content of the chip id register of a BMP280 (section 4.3.1).
pub const CHIP_ID: u8 = 0x58;

/// Value which, written to the reset register, triggers a power-on reset
/// (section 4.3.2).
pub const RESET_COMMAND: u8 = 0xB6;

/// The 20-bit value of a data register after reset, or when its
/// measurement is skipped (section 3.3.1 and Table 18 reset values).
pub const SKIPPED_ADC: u32 = 0x8_0000;

/// Maximum start-up time after power-on or soft reset, in microseconds
/// (section 1, Table 2: t_startup = 2 ms).
pub const START_UP_TIME_US: u32 = 2_000;

/// Register addresses (section 4.2, Table 18 memory map).
pub mod register {
    /// First trimming parameter register, dig_T1 LSB (section 3.11.2).
    pub const CALIB_START: u8 = 0x88;
    /// Number of trimming parameter bytes, 0x88..=0x9F (Table 17).
    pub const CALIB_LEN: usize = 24;
    /// Chip id, reads 0x58 (section 4.3.1).
    pub const ID: u8 = 0xD0;
    /// Soft reset; write 0xB6 (section 4.3.2).
    pub const RESET: u8 = 0xE0;
    /// Status: `measuring` (bit 3) and `im_update` (bit 0) (section 4.3.3).
    pub const STATUS: u8 = 0xF3;
    /// Measurement control: `osrs_t[7:5]`, `osrs_p[4:2]`, `mode[1:0]`
    /// (section 4.3.4).
    pub const CTRL_MEAS: u8 = 0xF4;
    /// Configuration: `t_sb[7:5]`, `filter[4:2]`, `spi3w_en[0]` (section 4.3.5).
    pub const CONFIG: u8 = 0xF5;
    /// Pressure MSB; the burst 0xF7..=0xFC holds press_msb, press_lsb,
    /// press_xlsb, temp_msb, temp_lsb, temp_xlsb (sections 4.3.6, 4.3.7).
    pub const PRESS_MSB: u8 = 0xF7;
    /// Temperature MSB (section 4.3.7).
    pub const TEMP_MSB: u8 = 0xFA;
    /// Temperature XLSB, the last data register (section 4.3.7).
    pub const TEMP_XLSB: u8 = 0xFC;
    /// Number of data bytes in the burst read from 0xF7 (section 3.9).
    pub const DATA_LEN: usize = 6;
}

/// The factory trimming parameters (section 3.11.2, Table 17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Calibration {
    /// dig_T1, registers 0x88/0x89.
    pub dig_t1: u16,
    /// dig_T2, registers 0x8A/0x8B.
    pub dig_t2: i16,
    /// dig_T3, registers 0x8C/0x8D.
    pub dig_t3: i16,
    /// dig_P1, registers 0x8E/0x8F.
    pub dig_p1: u16,
    /// dig_P2, registers 0x90/0x91.
    pub dig_p2: i16,
    /// dig_P3, registers 0x92/0x93.
    pub dig_p3: i16,
    /// dig_P4, registers 0x94/0x95.
    pub dig_p4: i16,
    /// dig_P5, registers 0x96/0x97.
    pub dig_p5: i16,
    /// dig_P6, registers 0x98/0x99.
    pub dig_p6: i16,
    /// dig_P7, registers 0x9A/0x9B.
    pub dig_p7: i16,
    /// dig_P8, registers 0x9C/0x9D.
    pub dig_p8: i16,
    /// dig_P9, registers 0x9E/0x9F.
    pub dig_p9: i16,
}

impl Calibration {
    /// The trimming values of the datasheet's worked example (section 3.12,
    /// Table 16).
    pub const DATASHEET_EXAMPLE: Calibration = Calibration {
        dig_t1: 27504,
        dig_t2: 26435,
        dig_t3: -1000,
        dig_p1: 36477,
        dig_p2: -10685,
        dig_p3: 3024,
        dig_p4: 2855,
        dig_p5: 140,
        dig_p6: -7,
        dig_p7: 15500,
        dig_p8: -14600,
        dig_p9: 6000,
    };

    /// Decode the 24 bytes read from 0x88..=0x9F: twelve little-endian
    /// words, dig_T1 first (Table 17).
    pub const fn from_bytes(b: &[u8; register::CALIB_LEN]) -> Self {
        Calibration {
            dig_t1: u16::from_le_bytes([b[0], b[1]]),
            dig_t2: i16::from_le_bytes([b[2], b[3]]),
            dig_t3: i16::from_le_bytes([b[4], b[5]]),
            dig_p1: u16::from_le_bytes([b[6], b[7]]),
            dig_p2: i16::from_le_bytes([b[8], b[9]]),
            dig_p3: i16::from_le_bytes([b[10], b[11]]),
            dig_p4: i16::from_le_bytes([b[12], b[13]]),
            dig_p5: i16::from_le_bytes([b[14], b[15]]),
            dig_p6: i16::from_le_bytes([b[16], b[17]]),
            dig_p7: i16::from_le_bytes([b[18], b[19]]),
            dig_p8: i16::from_le_bytes([b[20], b[21]]),
            dig_p9: i16::from_le_bytes([b[22], b[23]]),
        }
    }

    /// The register image of these parameters, as stored at 0x88..=0x9F.
    pub const fn to_bytes(&self) -> [u8; register::CALIB_LEN] {
        let words = [
            self.dig_t1.to_le_bytes(),
            self.dig_t2.to_le_bytes(),
            self.dig_t3.to_le_bytes(),
            self.dig_p1.to_le_bytes(),
            self.dig_p2.to_le_bytes(),
            self.dig_p3.to_le_bytes(),
            self.dig_p4.to_le_bytes(),
            self.dig_p5.to_le_bytes(),
            self.dig_p6.to_le_bytes(),
            self.dig_p7.to_le_bytes(),
            self.dig_p8.to_le_bytes(),
            self.dig_p9.to_le_bytes(),
        ];
        let mut out = [0u8; register::CALIB_LEN];
        let mut i = 0;
        while i < words.len() {
            out[2 * i] = words[i][0];
            out[2 * i + 1] = words[i][1];
            i += 1;
        }
        out
    }
}

/// Compensated temperature from the 20-bit `adc_t` (datasheet section
/// 3.11.3, `bmp280_compensate_T_int32`).
///
/// Returns `(temperature, t_fine)`: the temperature in hundredths of a
/// degree Celsius (5123 means 51.23 C) and the fine temperature that
/// [`compensate_pressure`] needs.
pub const fn compensate_temperature(adc_t: i32, cal: &Calibration) -> (i32, i32) {
    let t1 = cal.dig_t1 as i32;
    let t2 = cal.dig_t2 as i32;
    let t3 = cal.dig_t3 as i32;
    let var1 = ((adc_t >> 3).wrapping_sub(t1 << 1)).wrapping_mul(t2) >> 11;
    let d = (adc_t >> 4).wrapping_sub(t1);
    let var2 = (d.wrapping_mul(d) >> 12).wrapping_mul(t3) >> 14;
    let t_fine = var1.wrapping_add(var2);
    let t = t_fine.wrapping_mul(5).wrapping_add(128) >> 8;
    (t, t_fine)
}

/// Compensated pressure from the 20-bit `adc_p` and the `t_fine` of the
/// same measurement (datasheet section 3.11.3, `bmp280_compensate_P_int64`).
///
/// Returns pascal in unsigned Q24.8 format (24 integer bits, 8 fractional
/// bits): 24674867 means 24674867 / 256 = 96386.2 Pa. Returns 0 when the
/// calibration would divide by zero, as the reference code does.
pub const fn compensate_pressure(adc_p: i32, t_fine: i32, cal: &Calibration) -> u32 {
    let p1 = cal.dig_p1 as i64;
    let p2 = cal.dig_p2 as i64;
    let p3 = cal.dig_p3 as i64;
    let p4 = cal.dig_p4 as i64;
    let p5 = cal.dig_p5 as i64;
    let p6 = cal.dig_p6 as i64;
    let p7 = cal.dig_p7 as i64;
    let p8 = cal.dig_p8 as i64;
    let p9 = cal.dig_p9 as i64;

    let mut var1 = (t_fine as i64).wrapping_sub(128_000);
    let mut var2 = var1.wrapping_mul(var1).wrapping_mul(p6);
    var2 = var2.wrapping_add(var1.wrapping_mul(p5) << 17);
    var2 = var2.wrapping_add(p4 << 35);
    var1 =
        (var1.wrapping_mul(var1).wrapping_mul(p3) >> 8).wrapping_add(var1.wrapping_mul(p2) << 12);
    var1 = ((1i64 << 47).wrapping_add(var1)).wrapping_mul(p1) >> 33;
    if var1 == 0 {
        // Avoid a division by zero (as the reference code does).
        return 0;
    }
    let mut p: i64 = 1_048_576 - adc_p as i64;
    p = ((p << 31).wrapping_sub(var2))
        .wrapping_mul(3125)
        .wrapping_div(var1);
    var1 = p9.wrapping_mul(p >> 13).wrapping_mul(p >> 13) >> 25;
    var2 = p8.wrapping_mul(p) >> 19;
    p = (p.wrapping_add(var1).wrapping_add(var2) >> 8).wrapping_add(p7 << 4);
    p as u32
}

/// One raw sample: the two 20-bit ADC values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawSample {
    /// Uncompensated pressure, 20 bits.
    pub adc_p: u32,
    /// Uncompensated temperature, 20 bits.
    pub adc_t: u32,
}

impl RawSample {
    /// Decode the burst read of 0xF7..=0xFC: press_msb, press_lsb,
    /// press_xlsb\[7:4\], temp_msb, temp_lsb, temp_xlsb\[7:4\]
    /// (sections 4.3.6 and 4.3.7).
    pub const fn from_bytes(b: &[u8; register::DATA_LEN]) -> Self {
        RawSample {
            adc_p: ((b[0] as u32) << 12) | ((b[1] as u32) << 4) | ((b[2] as u32) >> 4),
            adc_t: ((b[3] as u32) << 12) | ((b[4] as u32) << 4) | ((b[5] as u32) >> 4),
        }
    }

    /// The register image of this sample at 0xF7..=0xFC (bits above 20
    /// are ignored; the low nibble of each xlsb register reads 0).
    pub const fn to_bytes(&self) -> [u8; register::DATA_LEN] {
        let p = self.adc_p & 0xF_FFFF;
        let t = self.adc_t & 0xF_FFFF;
        [
            (p >> 12) as u8,
            (p >> 4) as u8,
            ((p & 0xF) << 4) as u8,
            (t >> 12) as u8,
            (t >> 4) as u8,
            ((t & 0xF) << 4) as u8,
        ]
    }

    /// Whether both values are still the reset value 0x80000, which the
    /// sensor shows before its first measurement (Table 18).
    pub const fn is_reset_value(&self) -> bool {
        self.adc_p == SKIPPED_ADC && self.adc_t == SKIPPED_ADC
    }
}

/// One compensated measurement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Temperature in degrees Celsius (resolution 0.01 C).
    pub temperature_c: f32,
    /// Pressure in hectopascal.
    pub pressure_hpa: f32,
    /// Temperature in hundredths of a degree Celsius, as compensated.
    pub temperature_centi_c: i32,
    /// Pressure in pascal, unsigned Q24.8, as compensated.
    pub pressure_pa_q24_8: u32,
    /// The raw ADC values this was computed from.
    pub raw: RawSample,
}

/// Compensate a raw sample with the integer formulas of section 3.11.3.
pub fn compensate(raw: RawSample, cal: &Calibration) -> Measurement {
    // Both values are 20-bit, so the casts to i32 are lossless.
    let (centi, t_fine) = compensate_temperature((raw.adc_t & 0xF_FFFF) as i32, cal);
    let q24_8 = compensate_pressure((raw.adc_p & 0xF_FFFF) as i32, t_fine, cal);
    Measurement {
        temperature_c: centi as f32 / 100.0,
        pressure_hpa: q24_8 as f32 / 25_600.0,
        temperature_centi_c: centi,
        pressure_pa_q24_8: q24_8,
        raw,
    }
}

/// Oversampling of one measurement channel: the osrs_t / osrs_p fields of
/// ctrl_meas (section 3.3.1, Table 4; section 3.3.2, Table 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Oversampling {
    /// Measurement skipped; the data register keeps 0x80000.
    Skipped,
    /// One sample (16-bit resolution without the IIR filter).
    X1,
    /// Two samples (17-bit).
    X2,
    /// Four samples (18-bit).
    X4,
    /// Eight samples (19-bit).
    X8,
    /// Sixteen samples (20-bit).
    X16,
}

impl Oversampling {
    /// The 3-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            Oversampling::Skipped => 0b000,
            Oversampling::X1 => 0b001,
            Oversampling::X2 => 0b010,
            Oversampling::X4 => 0b011,
            Oversampling::X8 => 0b100,
            Oversampling::X16 => 0b101,
        }
    }

    /// Decode a 3-bit field (only the low three bits of `bits` count);
    /// 0b101, 0b110 and 0b111 all mean x16.
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b111 {
            0b000 => Oversampling::Skipped,
            0b001 => Oversampling::X1,
            0b010 => Oversampling::X2,
            0b011 => Oversampling::X4,
            0b100 => Oversampling::X8,
            _ => Oversampling::X16,
        }
    }

    /// The number of samples averaged (0 when skipped).
    pub const fn factor(self) -> u32 {
        match self {
            Oversampling::Skipped => 0,
            Oversampling::X1 => 1,
            Oversampling::X2 => 2,
            Oversampling::X4 => 4,
            Oversampling::X8 => 8,
            Oversampling::X16 => 16,
        }
    }

    /// Output resolution in bits without the IIR filter: 16 + (osrs - 1),
    /// 0 when skipped (sections 3.3.1 and 3.3.2).
    pub const fn resolution_bits(self) -> u32 {
        match self {
            Oversampling::Skipped => 0,
            _ => 15 + self.bits() as u32,
        }
    }
}

/// The power mode field of ctrl_meas (section 3.6, Table 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerMode {
    /// No measurements (0b00; the state after reset).
    Sleep,
    /// One measurement, then back to sleep (0b01 or 0b10).
    Forced,
    /// Measurements cycle continuously with the standby time between
    /// them (0b11).
    Normal,
}

impl PowerMode {
    /// The 2-bit field value (forced is written as 0b01).
    pub const fn bits(self) -> u8 {
        match self {
            PowerMode::Sleep => 0b00,
            PowerMode::Forced => 0b01,
            PowerMode::Normal => 0b11,
        }
    }

    /// Decode the 2-bit field (only the low two bits of `bits` count).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b11 {
            0b00 => PowerMode::Sleep,
            0b11 => PowerMode::Normal,
            _ => PowerMode::Forced,
        }
    }
}

/// IIR filter coefficient, the filter field of config (section 3.3.3,
/// Table 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Filter off (0b000).
    Off,
    /// Coefficient 2 (0b001).
    X2,
    /// Coefficient 4 (0b010).
    X4,
    /// Coefficient 8 (0b011).
    X8,
    /// Coefficient 16 (0b100 and above).
    X16,
}

impl Filter {
    /// The 3-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            Filter::Off => 0b000,
            Filter::X2 => 0b001,
            Filter::X4 => 0b010,
            Filter::X8 => 0b011,
            Filter::X16 => 0b100,
        }
    }

    /// Decode a 3-bit field (only the low three bits of `bits` count).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b111 {
            0b000 => Filter::Off,
            0b001 => Filter::X2,
            0b010 => Filter::X4,
            0b011 => Filter::X8,
            _ => Filter::X16,
        }
    }
}

/// Standby time between measurements in normal mode, the t_sb field of
/// config (section 3.6.3, Table 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standby {
    /// 0.5 ms (0b000).
    Ms0_5,
    /// 62.5 ms (0b001).
    Ms62_5,
    /// 125 ms (0b010).
    Ms125,
    /// 250 ms (0b011).
    Ms250,
    /// 500 ms (0b100).
    Ms500,
    /// 1000 ms (0b101).
    Ms1000,
    /// 2000 ms (0b110).
    Ms2000,
    /// 4000 ms (0b111).
    Ms4000,
}

impl Standby {
    /// The 3-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            Standby::Ms0_5 => 0b000,
            Standby::Ms62_5 => 0b001,
            Standby::Ms125 => 0b010,
            Standby::Ms250 => 0b011,
            Standby::Ms500 => 0b100,
            Standby::Ms1000 => 0b101,
            Standby::Ms2000 => 0b110,
            Standby::Ms4000 => 0b111,
        }
    }

    /// Decode a 3-bit field (only the low three bits of `bits` count).
    pub const fn from_bits(bits: u8) -> Self {
        match bits & 0b111 {
            0b000 => Standby::Ms0_5,
            0b001 => Standby::Ms62_5,
            0b010 => Standby::Ms125,
            0b011 => Standby::Ms250,
            0b100 => Standby::Ms500,
            0b101 => Standby::Ms1000,
            0b110 => Standby::Ms2000,
            _ => Standby::Ms4000,
        }
    }

    /// The standby time in microseconds.
    pub const fn micros(self) -> u32 {
        match self {
            Standby::Ms0_5 => 500,
            Standby::Ms62_5 => 62_500,
            Standby::Ms125 => 125_000,
            Standby::Ms250 => 250_000,
            Standby::Ms500 => 500_000,
            Standby::Ms1000 => 1_000_000,
            Standby::Ms2000 => 2_000_000,
            Standby::Ms4000 => 4_000_000,
        }
    }
}

/// Typical measurement time in microseconds (Appendix B, section 9.1):
/// 1 + 2 * osrs_t + (2 * osrs_p + 0.5) ms, the pressure term only when
/// pressure is measured. 5.5 ms for x1 / x1 (section 3.8.1, Table 13).
pub const fn measurement_time_typ_us(t: Oversampling, p: Oversampling) -> u32 {
    let pressure = match p {
        Oversampling::Skipped => 0,
        _ => 2_000 * p.factor() + 500,
    };
    1_000 + 2_000 * t.factor() + pressure
}

/// Maximum measurement time in microseconds (Appendix B, section 9.1):
/// 1.25 + 2.3 * osrs_t + (2.3 * osrs_p + 0.575) ms, the pressure term only
/// when pressure is measured. 6.425 ms for x1 / x1 (section 3.8.1,
/// Table 13: 6.4 ms).
pub const fn measurement_time_max_us(t: Oversampling, p: Oversampling) -> u32 {
    let pressure = match p {
        Oversampling::Skipped => 0,
        _ => 2_300 * p.factor() + 575,
    };
    1_250 + 2_300 * t.factor() + pressure
}

/// The contents of the ctrl_meas and config registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Config {
    /// Temperature oversampling (osrs_t).
    pub temperature: Oversampling,
    /// Pressure oversampling (osrs_p).
    pub pressure: Oversampling,
    /// Power mode.
    pub mode: PowerMode,
    /// IIR filter coefficient.
    pub filter: Filter,
    /// Standby time in normal mode.
    pub standby: Standby,
}

impl Default for Config {
    /// Forced mode, x1 / x1, no filter: the datasheet's "weather
    /// monitoring" setting (section 3.7, Table 15).
    fn default() -> Self {
        Config {
            temperature: Oversampling::X1,
            pressure: Oversampling::X1,
            mode: PowerMode::Forced,
            filter: Filter::Off,
            standby: Standby::Ms0_5,
        }
    }
}

impl Config {
    /// The ctrl_meas byte: osrs_t\[7:5\] | osrs_p\[4:2\] | mode\[1:0\]
    /// (section 4.3.4).
    pub const fn ctrl_meas(&self) -> u8 {
        (self.temperature.bits() << 5) | (self.pressure.bits() << 2) | self.mode.bits()
    }

    /// The config byte: t_sb\[7:5\] | filter\[4:2\] | spi3w_en\[0\] = 0
    /// (section 4.3.5).
    pub const fn config(&self) -> u8 {
        (self.standby.bits() << 5) | (self.filter.bits() << 2)
    }

    /// Decode the two register bytes.
    pub const fn from_registers(ctrl_meas: u8, config: u8) -> Self {
        Config {
            temperature: Oversampling::from_bits(ctrl_meas >> 5),
            pressure: Oversampling::from_bits(ctrl_meas >> 2),
            mode: PowerMode::from_bits(ctrl_meas),
            filter: Filter::from_bits(config >> 2),
            standby: Standby::from_bits(config >> 5),
        }
    }
}

/// The status register (section 4.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u8);

impl Status {
    /// Bit 3: a conversion is running.
    pub const MEASURING: u8 = 1 << 3;
    /// Bit 0: the trimming parameters are being copied from NVM.
    pub const IM_UPDATE: u8 = 1 << 0;

    /// Whether a conversion is running (bit 3).
    pub const fn measuring(self) -> bool {
        self.0 & Self::MEASURING != 0
    }

    /// Whether the NVM copy is in progress (bit 0).
    pub const fn im_update(self) -> bool {
        self.0 & Self::IM_UPDATE != 0
    }
}

/// A BMP280 on a shared I2C bus.
///
/// The driver holds the address and the trimming parameters; each method
/// borrows the bus (and a delay provider where it has to wait).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bmp280 {
    address: u8,
    calibration: Calibration,
}

impl Bmp280 {
    /// Probe the sensor at `address`: check the chip id (0x58) and read the
    /// trimming parameters. The sensor's mode is left unchanged.
    pub fn init<I: I2c>(i2c: &mut I, address: u8) -> Result<Self, Error<I::Error>> {
        let mut id = [0u8; 1];
        i2c.write_read(address, &[register::ID], &mut id)
            .map_err(Error::I2c)?;
        if id[0] != CHIP_ID {
            return Err(Error::WrongChipId(id[0]));
        }
        let mut buf = [0u8; register::CALIB_LEN];
        i2c.write_read(address, &[register::CALIB_START], &mut buf)
            .map_err(Error::I2c)?;
        Ok(Bmp280 {
            address,
            calibration: Calibration::from_bytes(&buf),
        })
    }

    /// A driver with known trimming parameters; nothing is sent.
    pub const fn with_calibration(address: u8, calibration: Calibration) -> Self {
        Bmp280 {
            address,
            calibration,
        }
    }

    /// The 7-bit I2C address this driver talks to.
    pub const fn address(&self) -> u8 {
        self.address
    }

    /// The trimming parameters in use.
    pub const fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Read the chip id register (0xD0).
    pub fn chip_id<I: I2c>(&self, i2c: &mut I) -> Result<u8, Error<I::Error>> {
        let mut id = [0u8; 1];
        i2c.write_read(self.address, &[register::ID], &mut id)
            .map_err(Error::I2c)?;
        Ok(id[0])
    }

    /// Read the status register (0xF3).
    pub fn status<I: I2c>(&self, i2c: &mut I) -> Result<Status, Error<I::Error>> {
        let mut s = [0u8; 1];
        i2c.write_read(self.address, &[register::STATUS], &mut s)
            .map_err(Error::I2c)?;
        Ok(Status(s[0]))
    }

    /// Write ctrl_meas and config in one transaction: first sleep mode
    /// (writes to config may be ignored outside sleep mode, section 4.3.5),
    /// then config, then ctrl_meas with the requested mode. Bytes:
    /// `[0xF4, 0x00, 0xF5, config, 0xF4, ctrl_meas]` (section 5.2.1,
    /// multi-byte write of register address / data pairs).
    pub fn configure<I: I2c>(&self, i2c: &mut I, config: &Config) -> Result<(), Error<I::Error>> {
        let bytes = [
            register::CTRL_MEAS,
            PowerMode::Sleep.bits(),
            register::CONFIG,
            config.config(),
            register::CTRL_MEAS,
            config.ctrl_meas(),
        ];
        i2c.write(self.address, &bytes).map_err(Error::I2c)
    }

    /// One forced-mode measurement with x1 temperature and x1 pressure
    /// oversampling: write ctrl_meas = 0x25, wait the maximum measurement
    /// time (6.425 ms), read and compensate.
    pub fn measure<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<Measurement, Error<I::Error>> {
        self.measure_forced(i2c, delay, Oversampling::X1, Oversampling::X1)
    }

    /// One forced-mode measurement with the given oversampling: write
    /// ctrl_meas, wait [`measurement_time_max_us`], read and compensate.
    /// The config register (filter) is left as it is.
    pub fn measure_forced<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
        temperature: Oversampling,
        pressure: Oversampling,
    ) -> Result<Measurement, Error<I::Error>> {
        let ctrl = (temperature.bits() << 5) | (pressure.bits() << 2) | PowerMode::Forced.bits();
        i2c.write(self.address, &[register::CTRL_MEAS, ctrl])
            .map_err(Error::I2c)?;
        delay.delay_us(measurement_time_max_us(temperature, pressure));
        self.read(i2c)
    }

    /// Burst-read the six data registers 0xF7..=0xFC (section 3.9).
    pub fn read_raw<I: I2c>(&self, i2c: &mut I) -> Result<RawSample, Error<I::Error>> {
        let mut buf = [0u8; register::DATA_LEN];
        i2c.write_read(self.address, &[register::PRESS_MSB], &mut buf)
            .map_err(Error::I2c)?;
        Ok(RawSample::from_bytes(&buf))
    }

    /// Read the latest data registers and compensate them (use in normal
    /// mode, or after a forced measurement has finished). Before the first
    /// measurement after reset, the registers hold 0x80000
    /// ([`RawSample::is_reset_value`]), which compensates to a meaningless
    /// value.
    pub fn read<I: I2c>(&self, i2c: &mut I) -> Result<Measurement, Error<I::Error>> {
        let raw = self.read_raw(i2c)?;
        Ok(compensate(raw, &self.calibration))
    }

    /// Soft reset (0xB6 to register 0xE0), then wait the start-up time
    /// (2 ms). The sensor is in sleep mode afterwards.
    pub fn soft_reset<I: I2c, D: DelayNs>(
        &self,
        i2c: &mut I,
        delay: &mut D,
    ) -> Result<(), Error<I::Error>> {
        i2c.write(self.address, &[register::RESET, RESET_COMMAND])
            .map_err(Error::I2c)?;
        delay.delay_us(START_UP_TIME_US);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use embedded_hal::i2c::ErrorKind;
    use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as D};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    const ADDR: u8 = 0x76;

    /// The datasheet example trimming values as stored at 0x88..=0x9F.
    const EXAMPLE_CALIB_BYTES: [u8; 24] = [
        0x70, 0x6B, // dig_T1 = 27504
        0x43, 0x67, // dig_T2 = 26435
        0x18, 0xFC, // dig_T3 = -1000
        0x7D, 0x8E, // dig_P1 = 36477
        0x43, 0xD6, // dig_P2 = -10685
        0xD0, 0x0B, // dig_P3 = 3024
        0x27, 0x0B, // dig_P4 = 2855
        0x8C, 0x00, // dig_P5 = 140
        0xF9, 0xFF, // dig_P6 = -7
        0x8C, 0x3C, // dig_P7 = 15500
        0xF8, 0xC6, // dig_P8 = -14600
        0x70, 0x17, // dig_P9 = 6000
    ];

    /// adc_P = 415148 (0x655AC), adc_T = 519888 (0x7EED0).
    const EXAMPLE_DATA_BYTES: [u8; 6] = [0x65, 0x5A, 0xC0, 0x7E, 0xED, 0x00];

    fn example() -> Bmp280 {
        Bmp280::with_calibration(ADDR, Calibration::DATASHEET_EXAMPLE)
    }

    #[test]
    fn calibration_bytes_round_trip() {
        let cal = Calibration::from_bytes(&EXAMPLE_CALIB_BYTES);
        assert_eq!(cal, Calibration::DATASHEET_EXAMPLE);
        assert_eq!(cal.to_bytes(), EXAMPLE_CALIB_BYTES);
    }

    #[test]
    fn datasheet_compensation_vector() {
        let cal = Calibration::DATASHEET_EXAMPLE;
        let (t, t_fine) = compensate_temperature(519_888, &cal);
        assert_eq!(t_fine, 128_422);
        assert_eq!(t, 2508);
        // The 64-bit integer formula gives 25767233 / 256 = 100653.254 Pa;
        // the datasheet's floating-point formula gives 100653.258 Pa and its
        // example table rounds to 100653.27 Pa.
        let p = compensate_pressure(415_148, t_fine, &cal);
        assert_eq!(p, 25_767_233);
        let m = compensate(
            RawSample {
                adc_p: 415_148,
                adc_t: 519_888,
            },
            &cal,
        );
        assert!((m.temperature_c - 25.08).abs() < 1e-4);
        assert!((m.pressure_hpa - 1006.5327).abs() < 1e-3);
    }

    #[test]
    fn compensation_never_panics_and_handles_zero_divisor() {
        let zero = Calibration {
            dig_p1: 0,
            ..Calibration::DATASHEET_EXAMPLE
        };
        assert_eq!(compensate_pressure(415_148, 128_422, &zero), 0);
        let wild = Calibration::from_bytes(&[0xFF; 24]);
        for adc in [0, 1, 0x8_0000, 0xF_FFFF, i32::MAX, i32::MIN] {
            let (_, t_fine) = compensate_temperature(adc, &wild);
            let _ = compensate_pressure(adc, t_fine, &wild);
            let _ = compensate_pressure(adc, i32::MIN, &Calibration::DATASHEET_EXAMPLE);
        }
    }

    #[test]
    fn raw_sample_bytes_round_trip() {
        let raw = RawSample::from_bytes(&EXAMPLE_DATA_BYTES);
        assert_eq!(raw.adc_p, 415_148);
        assert_eq!(raw.adc_t, 519_888);
        assert_eq!(raw.to_bytes(), EXAMPLE_DATA_BYTES);
        let reset = RawSample::from_bytes(&[0x80, 0, 0, 0x80, 0, 0]);
        assert!(reset.is_reset_value());
    }

    #[test]
    fn register_fields() {
        let c = Config::default();
        assert_eq!(c.ctrl_meas(), 0x25);
        assert_eq!(c.config(), 0x00);
        let n = Config {
            temperature: Oversampling::X2,
            pressure: Oversampling::X16,
            mode: PowerMode::Normal,
            filter: Filter::X16,
            standby: Standby::Ms0_5,
        };
        // The datasheet's "indoor navigation" setting (Table 15).
        assert_eq!(n.ctrl_meas(), 0x57); // osrs_t 010, osrs_p 101, mode 11
        assert_eq!(n.config(), 0x10); // t_sb 000, filter 100, spi3w_en 0
        assert_eq!(Config::from_registers(n.ctrl_meas(), n.config()), n);
        assert_eq!(PowerMode::from_bits(0b10), PowerMode::Forced);
        assert_eq!(Oversampling::from_bits(0b111), Oversampling::X16);
        assert_eq!(Oversampling::X1.resolution_bits(), 16);
        assert_eq!(Oversampling::X16.resolution_bits(), 20);
        assert_eq!(Standby::from_bits(0b111).micros(), 4_000_000);
        assert_eq!(Filter::from_bits(0b111), Filter::X16);
    }

    #[test]
    fn measurement_times() {
        use Oversampling::*;
        assert_eq!(measurement_time_typ_us(X1, X1), 5_500);
        assert_eq!(measurement_time_max_us(X1, X1), 6_425);
        // Table 13, ultra high resolution (x2 / x16): 43.2 ms max.
        assert_eq!(measurement_time_max_us(X2, X16), 43_225);
        assert_eq!(measurement_time_typ_us(X1, Skipped), 3_000);
    }

    #[test]
    fn init_reads_id_and_calibration() {
        let mut i2c = Mock::new(&[
            T::write_read(ADDR, vec![0xD0], vec![0x58]),
            T::write_read(ADDR, vec![0x88], EXAMPLE_CALIB_BYTES.to_vec()),
        ]);
        let bmp = Bmp280::init(&mut i2c, ADDR).unwrap();
        assert_eq!(bmp.calibration(), &Calibration::DATASHEET_EXAMPLE);
        assert_eq!(bmp.address(), ADDR);
        i2c.done();
    }

    #[test]
    fn init_rejects_wrong_chip_id() {
        let mut i2c = Mock::new(&[T::write_read(ADDR, vec![0xD0], vec![0x60])]);
        assert_eq!(Bmp280::init(&mut i2c, ADDR), Err(Error::WrongChipId(0x60)));
        i2c.done();
    }

    #[test]
    fn init_reports_bus_error() {
        let mut i2c =
            Mock::new(&[T::write_read(ADDR, vec![0xD0], vec![0]).with_error(ErrorKind::Other)]);
        assert_eq!(
            Bmp280::init(&mut i2c, ADDR),
            Err(Error::I2c(ErrorKind::Other))
        );
        i2c.done();
    }

    #[test]
    fn forced_measurement() {
        let mut i2c = Mock::new(&[
            T::write(ADDR, vec![0xF4, 0x25]),
            T::write_read(ADDR, vec![0xF7], EXAMPLE_DATA_BYTES.to_vec()),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(6_425)]);
        let m = example().measure(&mut i2c, &mut delay).unwrap();
        assert_eq!(m.temperature_centi_c, 2508);
        assert_eq!(m.pressure_pa_q24_8, 25_767_233);
        assert!((m.temperature_c - 25.08).abs() < 1e-4);
        assert!((m.pressure_hpa - 1006.5327).abs() < 1e-3);
        i2c.done();
        delay.done();
    }

    #[test]
    fn forced_measurement_with_oversampling() {
        let mut i2c = Mock::new(&[
            // osrs_t 010, osrs_p 101, mode 01.
            T::write(ADDR, vec![0xF4, 0x55]),
            T::write_read(ADDR, vec![0xF7], EXAMPLE_DATA_BYTES.to_vec()),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(43_225)]);
        example()
            .measure_forced(&mut i2c, &mut delay, Oversampling::X2, Oversampling::X16)
            .unwrap();
        i2c.done();
        delay.done();
    }

    #[test]
    fn configure_normal_mode_then_read() {
        let cfg = Config {
            temperature: Oversampling::X1,
            pressure: Oversampling::X4,
            mode: PowerMode::Normal,
            filter: Filter::X4,
            standby: Standby::Ms1000,
        };
        let mut i2c = Mock::new(&[
            T::write(
                ADDR,
                // config: t_sb 101, filter 010; ctrl_meas: osrs_t 001, osrs_p 011, mode 11.
                vec![0xF4, 0x00, 0xF5, 0xA8, 0xF4, 0x2F],
            ),
            T::write_read(ADDR, vec![0xF3], vec![0x08]),
            T::write_read(ADDR, vec![0xF7], EXAMPLE_DATA_BYTES.to_vec()),
        ]);
        let bmp = example();
        bmp.configure(&mut i2c, &cfg).unwrap();
        let s = bmp.status(&mut i2c).unwrap();
        assert!(s.measuring() && !s.im_update());
        let m = bmp.read(&mut i2c).unwrap();
        assert_eq!(m.raw.adc_t, 519_888);
        i2c.done();
    }

    #[test]
    fn chip_id_and_soft_reset() {
        let mut i2c = Mock::new(&[
            T::write_read(ADDR, vec![0xD0], vec![0x58]),
            T::write(ADDR, vec![0xE0, 0xB6]),
        ]);
        let mut delay = CheckedDelay::new(&[D::delay_us(2_000)]);
        let bmp = example();
        assert_eq!(bmp.chip_id(&mut i2c).unwrap(), CHIP_ID);
        bmp.soft_reset(&mut i2c, &mut delay).unwrap();
        i2c.done();
        delay.done();
    }

    #[test]
    fn reset_values_read_back_as_reset() {
        let mut i2c = Mock::new(&[T::write_read(
            ADDR,
            vec![0xF7],
            vec![0x80, 0x00, 0x00, 0x80, 0x00, 0x00],
        )]);
        let raw = example().read_raw(&mut i2c).unwrap();
        assert!(raw.is_reset_value());
        i2c.done();
    }

    #[test]
    fn temperature_is_monotonic_over_the_range() {
        // The emulator inverts the compensation by bisection, which needs
        // monotonic functions over the 20-bit range (checked on a grid).
        let cal = Calibration::DATASHEET_EXAMPLE;
        let grid: Vec<i32> = (0..=0xF_FFFF).step_by(16).collect();
        let mut last = i32::MIN;
        for &adc in &grid {
            let (_, t_fine) = compensate_temperature(adc, &cal);
            assert!(t_fine >= last, "t_fine not monotonic at {adc}");
            last = t_fine;
        }
    }
}
