//! `--bus` specifications and the bus they open.
//!
//! - `emu:PATH[@ADDR]`: an emulated board whose chip lives in the image
//!   file PATH (create one with `coffre emu new`).
//! - `linux:/dev/i2c-N[@ADDR]`: a real chip on a Linux I2C adapter.
//!
//! ADDR is the chip's 7-bit address (default: 0x35 for Linux, the image's
//! own address for emulated chips). The 8-bit forms printed in Microchip's
//! documents (0x6A, 0x6C, 0xC0) are accepted and explained.

use std::path::PathBuf;

#[cfg(not(target_os = "linux"))]
use anyhow::bail;
use anyhow::{Context, Result};
use clap::Args;
use coffre_driver::{normalize_address, Atecc};
use coffre_emu::board::Board;
use coffre_emu::clock::{EmuDelay, Timing};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, Operation, SevenBitAddress};

/// Options shared by every command that talks to a chip.
#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug, Clone)]
pub struct BusOpts {
    /// Where the chip is: emu:IMAGE[@ADDR] (an emulated chip, see 'coffre emu new') or
    /// linux:/dev/i2c-N[@ADDR] (a real chip; default address 0x35, Trust&GO).
    #[arg(long, env = "COFFRE_BUS", value_name = "BUS")]
    pub bus: BusSpec,

    /// Emulated chips only: 'instant' (default) or 'datasheet' (each command takes
    /// its datasheet execution time).
    #[arg(long, default_value = "instant", value_name = "TIMING")]
    pub timing: Timing,

    /// Emulated chips only: write what crossed the I2C bus to FILE (text; JSON
    /// lines if FILE ends in .jsonl or .json) — what a probe on the wires sees.
    #[arg(long, value_name = "FILE")]
    pub transcript: Option<PathBuf>,

    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

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

impl std::str::FromStr for BusSpec {
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

impl std::fmt::Display for BusSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    Emu(coffre_emu::EmuBus),
    /// Linux /dev/i2c-N.
    #[cfg(target_os = "linux")]
    Linux(linux_embedded_hal::I2cdev),
}

/// The error of [`AnyI2c`].
#[derive(Debug)]
pub enum AnyI2cError {
    /// From the emulated bus.
    Emu(coffre_emu::bus::BusError),
    /// From Linux.
    #[cfg(target_os = "linux")]
    Linux(linux_embedded_hal::I2CError),
}

impl std::fmt::Display for AnyI2cError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
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
    Emu(EmuDelay),
    /// Real sleeps.
    Std,
}

impl embedded_hal::delay::DelayNs for AnyDelay {
    fn delay_ns(&mut self, ns: u32) {
        match self {
            AnyDelay::Emu(d) => d.delay_ns(ns),
            AnyDelay::Std => std::thread::sleep(std::time::Duration::from_nanos(ns as u64)),
        }
    }
}

/// The chip driver the CLI uses.
pub type Chip = Atecc<AnyI2c, AnyDelay>;

/// An opened bus: the driver, and the emulated board behind it if any.
pub struct Opened {
    /// The driver.
    pub chip: Chip,
    /// The emulated board (for transcripts and scans).
    pub board: Option<Board>,
    /// What was opened, for messages.
    pub spec: BusSpec,
    /// Note about an 8-bit address the user typed, if any.
    pub address_note: Option<String>,
}

/// Open `spec` with emulator `timing`.
pub fn open(spec: &BusSpec, timing: Timing) -> Result<Opened> {
    match spec {
        BusSpec::Emu { image, address } => {
            let board = Board::open(image, timing)
                .with_context(|| format!("cannot open the emulated chip (bus {spec})"))?;
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
        BusSpec::Linux { device, address } => {
            let dev = linux_embedded_hal::I2cdev::new(device).with_context(|| {
                format!(
                    "cannot open {}: is the I2C adapter enabled (raspi-config → Interface → I2C) and are you in the i2c group?",
                    device.display()
                )
            })?;
            let (addr, note) = resolve(address.unwrap_or(0x35));
            let chip = Atecc::new(AnyI2c::Linux(dev), AnyDelay::Std, addr);
            Ok(Opened {
                chip,
                board: None,
                spec: spec.clone(),
                address_note: note,
            })
        }
        #[cfg(not(target_os = "linux"))]
        BusSpec::Linux { .. } => bail!("linux: buses exist only on Linux"),
    }
}

/// A second handle on the same bus, for the sensors beside the chip.
pub fn second_handle(o: &Opened) -> Result<(AnyI2c, AnyDelay)> {
    match (&o.board, &o.spec) {
        (Some(b), _) => Ok((AnyI2c::Emu(b.bus.clone()), AnyDelay::Emu(b.delay()))),
        #[cfg(target_os = "linux")]
        (None, BusSpec::Linux { device, .. }) => {
            let dev = linux_embedded_hal::I2cdev::new(device)
                .with_context(|| format!("cannot open {} for the sensors", device.display()))?;
            Ok((AnyI2c::Linux(dev), AnyDelay::Std))
        }
        _ => anyhow::bail!("no second handle on {}", o.spec),
    }
}

/// `r`, or — when the emulated chip could not save its image (full disk…)
/// during it — an error whose cause is that failure. The chip answered an
/// error to the command concerned and undid the change, so `r` is usually
/// an error already; this says why.
pub fn check_saved<T>(board: Option<&Board>, r: Result<T>) -> Result<T> {
    match board.and_then(|b| b.with_chip(|c| c.take_persist_error())) {
        None => r,
        Some(p) => {
            let err = anyhow::Error::new(p);
            Err(match r {
                Ok(_) => err,
                Err(e) => err.context(e.to_string()),
            })
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
}
