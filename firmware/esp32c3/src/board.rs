//! What differs between boards: the Grove port's pins, the chip name in
//! the boot log. Everything else is the same code for every ESP32.

/// The chip this image is built for.
#[cfg(feature = "esp32c3")]
pub const CHIP: &str = "esp32c3";
/// The chip this image is built for.
#[cfg(feature = "esp32")]
pub const CHIP: &str = "esp32";

/// The I2C bus of the Grove port (port A), 100 kHz: the ATECC608B's wake
/// pulse needs it (see coffre-driver).
pub const I2C_KHZ: u32 = 100;

/// Grove port A of the M5Stamp C3 / C3U Mate: SDA on GPIO1, SCL on GPIO0.
#[cfg(feature = "esp32c3")]
#[macro_export]
macro_rules! grove_pins {
    ($p:expr) => {
        ($p.GPIO1, $p.GPIO0)
    };
}

/// Grove port A of the M5Go (ESP32): SDA on GPIO21, SCL on GPIO22.
#[cfg(feature = "esp32")]
#[macro_export]
macro_rules! grove_pins {
    ($p:expr) => {
        ($p.GPIO21, $p.GPIO22)
    };
}
