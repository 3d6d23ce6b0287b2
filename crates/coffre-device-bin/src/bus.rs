//! `--bus`: where the chip is, and the bus it opens.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use coffre_driver::{normalize_address, Atecc};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation, SevenBitAddress};

use crate::report::Failure;

/// Where the chip is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusSpec {
    /// A Linux I2C adapter (`linux:/dev/i2c-1[@0x35]`).
    Linux {
        /// Device path.
        device: PathBuf,
        /// 7-bit address (default 0x35).
        address: Option<u8>,
    },
    /// An emulated chip in an image file (`emu:IMAGE[@ADDR]`).
    Emu {
        /// Image path.
        image: PathBuf,
        /// Address override.
        address: Option<u8>,
    },
}

impl FromStr for BusSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("'{s}' is not a bus: use linux:/dev/i2c-1 or emu:chip.img"))?;
        let (path, address) = match rest.rsplit_once('@') {
            Some((p, a)) => {
                let a = a.trim();
                let v = match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
                    Some(h) => u8::from_str_radix(h, 16),
                    None => a.parse(),
                };
                let v =
                    v.map_err(|_| format!("'{a}' is not an I2C address (write it like 0x35)"))?;
                (p, Some(v))
            }
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(format!("'{s}': the bus needs a path after '{kind}:'"));
        }
        match kind {
            "linux" => Ok(BusSpec::Linux {
                device: path.into(),
                address,
            }),
            "emu" => Ok(BusSpec::Emu {
                image: path.into(),
                address,
            }),
            other => Err(format!(
                "unknown bus kind '{other}': use linux:/dev/i2c-N or emu:IMAGE"
            )),
        }
    }
}

impl fmt::Display for BusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, path, addr) = match self {
            BusSpec::Linux { device, address } => ("linux", device, address),
            BusSpec::Emu { image, address } => ("emu", image, address),
        };
        write!(f, "{kind}:{}", path.display())?;
        if let Some(a) = addr {
            write!(f, "@0x{a:02X}")?;
        }
        Ok(())
    }
}

/// The bus behind a [`BusSpec`], as one type.
pub enum AnyI2c {
    /// Linux /dev/i2c-N.
    #[cfg(target_os = "linux")]
    Linux(linux_embedded_hal::I2cdev),
    /// Emulated.
    #[cfg(feature = "emu")]
    Emu(coffre_emu::EmuBus),
}

/// The error of [`AnyI2c`].
#[derive(Debug)]
pub enum AnyI2cError {
    /// From Linux.
    #[cfg(target_os = "linux")]
    Linux(linux_embedded_hal::I2CError),
    /// From the emulated bus.
    #[cfg(feature = "emu")]
    Emu(coffre_emu::bus::BusError),
}

impl fmt::Display for AnyI2cError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            #[cfg(target_os = "linux")]
            AnyI2cError::Linux(e) => write!(f, "{e}"),
            #[cfg(feature = "emu")]
            AnyI2cError::Emu(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for AnyI2cError {}

impl embedded_hal::i2c::Error for AnyI2cError {
    fn kind(&self) -> ErrorKind {
        match self {
            #[cfg(target_os = "linux")]
            AnyI2cError::Linux(e) => e.kind(),
            #[cfg(feature = "emu")]
            AnyI2cError::Emu(e) => e.kind(),
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
            #[cfg(target_os = "linux")]
            AnyI2c::Linux(b) => b
                .transaction(address, operations)
                .map_err(AnyI2cError::Linux),
            #[cfg(feature = "emu")]
            AnyI2c::Emu(b) => b.transaction(address, operations).map_err(AnyI2cError::Emu),
        }
    }
}

/// The delay that goes with [`AnyI2c`].
pub enum AnyDelay {
    /// Real sleeps.
    Std,
    /// The emulated bus clock.
    #[cfg(feature = "emu")]
    Emu(coffre_emu::clock::EmuDelay),
}

impl embedded_hal::delay::DelayNs for AnyDelay {
    fn delay_ns(&mut self, ns: u32) {
        match self {
            AnyDelay::Std => std::thread::sleep(std::time::Duration::from_nanos(ns.into())),
            #[cfg(feature = "emu")]
            AnyDelay::Emu(d) => d.delay_ns(ns),
        }
    }
}

/// The chip's driver, and a second handle on the same bus for the sensors.
pub struct Opened {
    /// The chip.
    pub chip: Atecc<AnyI2c, AnyDelay>,
    /// The sensors' handle.
    pub sensors: (AnyI2c, AnyDelay),
    /// Keeps an emulated board alive.
    #[cfg(feature = "emu")]
    _board: Option<coffre_emu::board::Board>,
}

/// Open the bus.
pub fn open(spec: &BusSpec) -> Result<Opened, Failure> {
    match spec {
        #[cfg(target_os = "linux")]
        BusSpec::Linux { device, address } => {
            let open = || {
                linux_embedded_hal::I2cdev::new(device).map_err(|e| {
                    Failure::io(
                        format!(
                            "cannot open {}: is the I2C adapter enabled and are you in the i2c group?",
                            device.display()
                        ),
                        e,
                    )
                })
            };
            let addr = normalize_address(address.unwrap_or(0x35)).seven_bit;
            Ok(Opened {
                chip: Atecc::new(AnyI2c::Linux(open()?), AnyDelay::Std, addr),
                sensors: (AnyI2c::Linux(open()?), AnyDelay::Std),
                #[cfg(feature = "emu")]
                _board: None,
            })
        }
        #[cfg(not(target_os = "linux"))]
        BusSpec::Linux { .. } => Err(Failure::usage("linux: buses exist only on Linux")),
        #[cfg(feature = "emu")]
        BusSpec::Emu { image, address } => {
            let board = coffre_emu::board::Board::open(image, coffre_emu::clock::Timing::Instant)
                .map_err(|e| {
                Failure::other(format!("cannot open the emulated chip (bus {spec})"), e)
            })?;
            let own = board.with_chip(|c| coffre_emu::device::Device::address(c));
            let addr = normalize_address(address.unwrap_or(own)).seven_bit;
            Ok(Opened {
                chip: Atecc::new(
                    AnyI2c::Emu(board.bus.clone()),
                    AnyDelay::Emu(board.delay()),
                    addr,
                ),
                sensors: (AnyI2c::Emu(board.bus.clone()), AnyDelay::Emu(board.delay())),
                _board: Some(board),
            })
        }
        #[cfg(not(feature = "emu"))]
        BusSpec::Emu { .. } => Err(Failure::usage(
            "this build has no emulator: rebuild coffre-device with --features emu",
        )),
    }
}
