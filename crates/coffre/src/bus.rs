//! The CLI's side of `--bus`: the options every chip command shares, and
//! errors in the CLI's terms. Parsing a bus and opening it is the device
//! program's ([`coffre_device_bin::bus`]), one module for both binaries.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;

pub use coffre_device_bin::bus::{AnyDelay, AnyI2c, AnyI2cError, BusSpec, Opened};

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

/// Open `spec` with emulator `timing`.
pub fn open(spec: &BusSpec, timing: Timing) -> Result<Opened> {
    Ok(coffre_device_bin::bus::open_timed(spec, timing)?)
}

/// A second handle on the same bus, for the sensors beside the chip.
pub fn second_handle(o: &Opened) -> Result<(AnyI2c, AnyDelay)> {
    Ok(o.second_handle()?)
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
