//! `--bus` specifications and the bus they open.
//!
//! - `emu:PATH[@ADDR]`: an emulated board whose chip lives in the image
//!   file PATH (create one with `coffre emu new`); needs the `emu` feature.
//! - `linux:/dev/i2c-N[@ADDR]`: a real chip on a Linux I2C adapter.
//!
//! ADDR is the chip's 7-bit address (default: 0x35 for Linux, the image's
//! own address for emulated chips). The 8-bit forms printed in Microchip's
//! documents (0x6A, 0x6C, 0xC0) are accepted, and [`Opened::address_note`]
//! explains them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use coffre_driver::{normalize_address, Atecc};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation, SevenBitAddress};

#[cfg(feature = "emu")]
pub use coffre_emu::board::Board;
#[cfg(feature = "emu")]
pub use coffre_emu::clock::Timing;

/// Where the chip is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusSpec {
    /// An emulated chip in an image file.
    Emu {
        /// Image path.
        image: PathBuf,
        /// Address override.
        address: Option<u8>,
    },
    /// A Linux I2C adapter.
    Linux {
        /// Device path, e.g. /dev/i2c-1.
        device: PathBuf,
        /// Address override.
        address: Option<u8>,
    },
}

impl FromStr for BusSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            format!("'{s}' is not a bus: use emu:chip.img or linux:/dev/i2c-1 (optionally @0x35)")
        })?;
        let (path, address) = match rest.rsplit_once('@') {
            Some((p, a)) => (p, Some(parse_address(a)?)),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(format!("'{s}': the bus needs a path after '{kind}:'"));
        }
        match kind {
            "emu" => Ok(BusSpec::Emu {
                image: PathBuf::from(path),
                address,
            }),
            "linux" => Ok(BusSpec::Linux {
                device: PathBuf::from(path),
                address,
            }),
            other => Err(format!(
                "unknown bus kind '{other}': use emu:IMAGE or linux:/dev/i2c-N"
            )),
        }
    }
}

impl fmt::Display for BusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, path, addr) = match self {
            BusSpec::Emu { image, address } => ("emu", image, address),
            BusSpec::Linux { device, address } => ("linux", device, address),
        };
        write!(f, "{kind}:{}", path.display())?;
        if let Some(a) = addr {
            write!(f, "@0x{a:02X}")?;
        }
        Ok(())
    }
}

/// Parse an address given in hex (`0x35`, `35h`) or decimal (`53`).
pub fn parse_address(s: &str) -> Result<u8, String> {
    let t = s.trim();
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u8::from_str_radix(h, 16)
    } else if let Some(h) = t.strip_suffix('h') {
        u8::from_str_radix(h, 16)
    } else {
        t.parse::<u8>()
    };
    v.map_err(|_| format!("'{s}' is not an I2C address (write it like 0x35)"))
}

/// The I2C bus behind a [`BusSpec`], as one concrete type.
pub enum AnyI2c {
    /// Emulated.
    #[cfg(feature = "emu")]
    Emu(coffre_emu::EmuBus),
    /// Linux /dev/i2c-N.
    #[cfg(target_os = "linux")]
    Linux(linux_embedded_hal::I2cdev),
}

/// The error of [`AnyI2c`].
#[derive(Debug)]
pub enum AnyI2cError {
    /// From the emulated bus.
    #[cfg(feature = "emu")]
    Emu(coffre_emu::bus::BusError),
    /// From Linux.
    #[cfg(target_os = "linux")]
    Linux(linux_embedded_hal::I2CError),
}

impl fmt::Display for AnyI2cError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "emu")]
            AnyI2cError::Emu(e) => write!(f, "{e}"),
            #[cfg(target_os = "linux")]
            AnyI2cError::Linux(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AnyI2cError {}

impl embedded_hal::i2c::Error for AnyI2cError {
    fn kind(&self) -> ErrorKind {
        match self {
            #[cfg(feature = "emu")]
            AnyI2cError::Emu(e) => e.kind(),
            #[cfg(target_os = "linux")]
            AnyI2cError::Linux(e) => e.kind(),
        }
    }
}

impl ErrorType for AnyI2c {
    type Error = AnyI2cError;
}

impl I2c<SevenBitAddress> for AnyI2c {
    fn transaction(
        &mut self,
        address: SevenBitAddress,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        match self {
            #[cfg(feature = "emu")]
            AnyI2c::Emu(b) => b.transaction(address, operations).map_err(AnyI2cError::Emu),
            #[cfg(target_os = "linux")]
            AnyI2c::Linux(b) => b
                .transaction(address, operations)
                .map_err(AnyI2cError::Linux),
        }
    }
}

/// The delay that goes with [`AnyI2c`].
pub enum AnyDelay {
    /// The emulated bus clock.
    #[cfg(feature = "emu")]
    Emu(coffre_emu::clock::EmuDelay),
    /// Real sleeps.
    Std,
}

impl embedded_hal::delay::DelayNs for AnyDelay {
    fn delay_ns(&mut self, ns: u32) {
        match self {
            #[cfg(feature = "emu")]
            AnyDelay::Emu(d) => d.delay_ns(ns),
            AnyDelay::Std => std::thread::sleep(std::time::Duration::from_nanos(ns.into())),
        }
    }
}

/// The chip's driver on [`AnyI2c`].
pub type Chip = Atecc<AnyI2c, AnyDelay>;

/// An opened bus: the driver, and the emulated board behind it if any.
pub struct Opened {
    /// The driver.
    pub chip: Chip,
    /// The emulated board (for transcripts and scans).
    #[cfg(feature = "emu")]
    pub board: Option<Board>,
    /// What was opened, for messages.
    pub spec: BusSpec,
    /// Note about an 8-bit address the user typed, if any.
    pub address_note: Option<String>,
}

/// Why a bus could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The image of an emulated chip could not be opened.
    #[cfg(feature = "emu")]
    Emulator {
        /// The bus asked for.
        spec: BusSpec,
        /// Why.
        source: coffre_emu::image::ImageError,
    },
    /// A Linux I2C adapter could not be opened.
    Linux {
        /// The adapter, e.g. /dev/i2c-1.
        device: PathBuf,
        /// For the chip itself, or a second handle for the sensors.
        sensors: bool,
        /// Why.
        source: std::io::Error,
    },
    /// `emu:` asked of a build without the emulator.
    NoEmulator,
    /// `linux:` asked on another operating system.
    NotLinux,
}

impl OpenError {
    /// The user asked for a kind of bus this build cannot open.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, OpenError::NoEmulator | OpenError::NotLinux)
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(feature = "emu")]
            OpenError::Emulator { spec, .. } => {
                write!(f, "cannot open the emulated chip (bus {spec})")
            }
            OpenError::Linux {
                device,
                sensors: false,
                ..
            } => write!(
                f,
                "cannot open {}: is the I2C adapter enabled (raspi-config → Interface → I2C) and are you in the i2c group?",
                device.display()
            ),
            OpenError::Linux {
                device,
                sensors: true,
                ..
            } => write!(f, "cannot open {} for the sensors", device.display()),
            OpenError::NoEmulator => f.write_str(
                "this build has no emulator: rebuild with the 'emu' feature, or use a linux: bus",
            ),
            OpenError::NotLinux => f.write_str("linux: buses exist only on Linux"),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "emu")]
            OpenError::Emulator { source, .. } => Some(source),
            OpenError::Linux { source, .. } => Some(source),
            OpenError::NoEmulator | OpenError::NotLinux => None,
        }
    }
}

#[cfg(target_os = "linux")]
fn linux_dev(device: &std::path::Path, sensors: bool) -> Result<AnyI2c, OpenError> {
    linux_embedded_hal::I2cdev::new(device)
        .map(AnyI2c::Linux)
        .map_err(|source| OpenError::Linux {
            device: device.to_path_buf(),
            sensors,
            source: source.into(),
        })
}

/// Open `spec`; an emulated chip runs with instant timing.
pub fn open(spec: &BusSpec) -> Result<Opened, OpenError> {
    #[cfg(feature = "emu")]
    return open_timed(spec, Timing::Instant);
    #[cfg(not(feature = "emu"))]
    match spec {
        #[cfg(target_os = "linux")]
        BusSpec::Linux { device, address } => open_linux(spec, device, *address),
        #[cfg(not(target_os = "linux"))]
        BusSpec::Linux { .. } => Err(OpenError::NotLinux),
        BusSpec::Emu { .. } => Err(OpenError::NoEmulator),
    }
}

/// Open `spec`; an emulated chip runs with `timing`.
#[cfg(feature = "emu")]
pub fn open_timed(spec: &BusSpec, timing: Timing) -> Result<Opened, OpenError> {
    match spec {
        BusSpec::Emu { image, address } => {
            let board = Board::open(image, timing).map_err(|source| OpenError::Emulator {
                spec: spec.clone(),
                source,
            })?;
            let own = board.with_chip(|c| coffre_emu::device::Device::address(c));
            let (addr, note) = resolve(address.unwrap_or(own));
            let chip = Atecc::new(
                AnyI2c::Emu(board.bus.clone()),
                AnyDelay::Emu(board.delay()),
                addr,
            );
            Ok(Opened {
                chip,
                board: Some(board),
                spec: spec.clone(),
                address_note: note,
            })
        }
        #[cfg(target_os = "linux")]
        BusSpec::Linux { device, address } => open_linux(spec, device, *address),
        #[cfg(not(target_os = "linux"))]
        BusSpec::Linux { .. } => Err(OpenError::NotLinux),
    }
}

#[cfg(target_os = "linux")]
fn open_linux(
    spec: &BusSpec,
    device: &std::path::Path,
    address: Option<u8>,
) -> Result<Opened, OpenError> {
    let (addr, note) = resolve(address.unwrap_or(0x35));
    Ok(Opened {
        chip: Atecc::new(linux_dev(device, false)?, AnyDelay::Std, addr),
        #[cfg(feature = "emu")]
        board: None,
        spec: spec.clone(),
        address_note: note,
    })
}

impl Opened {
    /// A second handle on the same bus, for the sensors beside the chip.
    pub fn second_handle(&self) -> Result<(AnyI2c, AnyDelay), OpenError> {
        #[cfg(feature = "emu")]
        if let Some(b) = &self.board {
            return Ok((AnyI2c::Emu(b.bus.clone()), AnyDelay::Emu(b.delay())));
        }
        match &self.spec {
            #[cfg(target_os = "linux")]
            BusSpec::Linux { device, .. } => Ok((linux_dev(device, true)?, AnyDelay::Std)),
            #[cfg(not(target_os = "linux"))]
            BusSpec::Linux { .. } => Err(OpenError::NotLinux),
            BusSpec::Emu { .. } => Err(OpenError::NoEmulator),
        }
    }
}

fn resolve(a: u8) -> (u8, Option<String>) {
    let n = normalize_address(a);
    (n.seven_bit, n.note.map(|s| s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_specs_parse() {
        assert_eq!(
            "emu:chip.img".parse::<BusSpec>().unwrap(),
            BusSpec::Emu {
                image: "chip.img".into(),
                address: None
            }
        );
        assert_eq!(
            "linux:/dev/i2c-1@0x35".parse::<BusSpec>().unwrap(),
            BusSpec::Linux {
                device: "/dev/i2c-1".into(),
                address: Some(0x35)
            }
        );
        assert_eq!(
            "emu:/tmp/a@b.img@6Ah".parse::<BusSpec>().unwrap(),
            BusSpec::Emu {
                image: "/tmp/a@b.img".into(),
                address: Some(0x6A)
            }
        );
        assert!("chip.img".parse::<BusSpec>().is_err());
        assert!("usb:x".parse::<BusSpec>().is_err());
        assert!("emu:".parse::<BusSpec>().is_err());
        assert!("emu:x@zz".parse::<BusSpec>().is_err());
        assert_eq!(
            "linux:/dev/i2c-1@0x36"
                .parse::<BusSpec>()
                .unwrap()
                .to_string(),
            "linux:/dev/i2c-1@0x36"
        );
    }

    #[test]
    fn an_eight_bit_address_is_explained() {
        let spec: BusSpec = "linux:/dev/i2c-1@0x6A".parse().unwrap();
        let BusSpec::Linux { address, .. } = spec else {
            unreachable!()
        };
        let (seven, note) = resolve(address.unwrap());
        assert_eq!(seven, 0x35);
        assert!(note.is_some_and(|n| n.contains("0x35")));
    }

    #[cfg(not(feature = "emu"))]
    #[test]
    fn without_the_emulator_an_emu_bus_is_refused() {
        let e = open(&"emu:chip.img".parse().unwrap()).err().unwrap();
        assert!(e.is_unsupported(), "{e}");
    }
}
