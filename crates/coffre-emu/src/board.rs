//! A whole emulated board: one bus with an ATECC608B and the ENV II unit
//! (SHT30 + BMP280), as on the lab's Port A.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::bus::EmuBus;
use crate::chip::{Atecc608, NvState};
use crate::clock::{Clock, EmuDelay, Timing};
use crate::device::lock;
use crate::image::{self, ImageError};
use crate::sensors::{env_ii, Bmp280, Environment, Sht30};

/// An emulated board. Clone `bus` to hand it to drivers.
#[derive(Clone)]
pub struct Board {
    /// The shared I2C bus.
    pub bus: EmuBus,
    /// The secure element.
    pub chip: Arc<Mutex<Atecc608>>,
    /// The SHT30 of the ENV II unit.
    pub sht30: Arc<Mutex<Sht30>>,
    /// The BMP280 of the ENV II unit.
    pub bmp280: Arc<Mutex<Bmp280>>,
    /// The writer's lock on the chip image, if the chip has one.
    image_lock: Option<Arc<coffre_fs::LockFile>>,
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").field("bus", &self.bus).finish()
    }
}

impl Board {
    /// A board on a real clock.
    pub fn new(nv: NvState, timing: Timing) -> Board {
        Board::with_clock(nv, timing, Clock::real(timing))
    }

    /// A board on the given clock (e.g. [`Clock::manual`] for tests).
    pub fn with_clock(nv: NvState, timing: Timing, clock: Clock) -> Board {
        // Each chip's room differs: seed the climate from its serial number.
        let sn = nv.config.serial_number();
        let seed = sn.iter().fold(0u64, |a, &b| a.rotate_left(8) ^ b as u64);
        let mut chip = Atecc608::new(nv);
        chip.set_timing(timing);
        let bus = EmuBus::with_clock(clock);
        let chip = bus.attach_shared(chip);
        let (sht, bmp) = env_ii(seed);
        let sht30 = bus.attach_shared(sht);
        let bmp280 = bus.attach_shared(bmp);
        Board {
            bus,
            chip,
            sht30,
            bmp280,
            image_lock: None,
        }
    }

    /// A board whose chip is loaded from, and saves every change to, the
    /// image file at `path`. The image is locked for as long as the board
    /// (or a clone of it) lives: another process opening it gets
    /// [`ImageError::Busy`] naming this one. A save that fails makes the
    /// chip command fail (execution error) and is reported by
    /// [`Atecc608::take_persist_error`](crate::chip::Atecc608::take_persist_error).
    pub fn open(path: &Path, timing: Timing) -> Result<Board, ImageError> {
        let held = image::lock(path)?;
        let nv = image::load(path)?;
        let mut board = Board::new(nv, timing);
        board.with_chip(|c| c.persist_to(path));
        board.image_lock = Some(held);
        Ok(board)
    }

    /// Run `f` on the chip.
    pub fn with_chip<R>(&self, f: impl FnOnce(&mut Atecc608) -> R) -> R {
        f(&mut lock(&self.chip))
    }

    /// A `DelayNs` on the bus clock.
    pub fn delay(&self) -> EmuDelay {
        self.bus.delay()
    }

    /// The climate the sensors measure.
    pub fn environment(&self) -> Environment {
        *lock(&self.sht30).environment()
    }
}

/// The board's chip as a kit-protocol target: what a Microchip USB kit
/// does with the chip on its I2C bus, done over the emulated bus.
#[derive(Debug)]
pub struct BoardKit {
    board: Board,
}

impl BoardKit {
    /// Serve `board`'s chip.
    pub fn new(board: Board) -> BoardKit {
        BoardKit { board }
    }

    fn chip_address(&self) -> u8 {
        use crate::device::Device;
        self.board.chip.address()
    }
}

impl crate::kit::KitTarget for BoardKit {
    fn device_name(&self) -> &str {
        "ECC608"
    }

    fn address8(&self) -> u8 {
        self.chip_address() << 1
    }

    fn wake(&mut self) -> Result<Vec<u8>, crate::kit::KitError> {
        use embedded_hal::i2c::I2c;
        let _ = self.board.bus.write(0x00, &[]);
        self.board
            .bus
            .clock()
            .wait(std::time::Duration::from_micros(1500));
        let mut r = [0u8; 4];
        self.board
            .bus
            .read(self.chip_address(), &mut r)
            .map_err(|_| crate::kit::KitError::WakeFailed)?;
        Ok(r.to_vec())
    }

    fn idle(&mut self) -> Result<(), crate::kit::KitError> {
        use embedded_hal::i2c::I2c;
        self.board
            .bus
            .write(self.chip_address(), &[0x02])
            .map_err(|e| crate::kit::KitError::Comm(e.to_string()))
    }

    fn sleep(&mut self) -> Result<(), crate::kit::KitError> {
        use embedded_hal::i2c::I2c;
        self.board
            .bus
            .write(self.chip_address(), &[0x01])
            .map_err(|e| crate::kit::KitError::Comm(e.to_string()))
    }

    fn transmit(&mut self, packet: &[u8]) -> Result<Vec<u8>, crate::kit::KitError> {
        use embedded_hal::i2c::I2c;
        let addr = self.chip_address();
        let mut out = Vec::with_capacity(packet.len() + 1);
        out.push(0x03);
        out.extend_from_slice(packet);
        self.board
            .bus
            .write(addr, &out)
            .map_err(|e| crate::kit::KitError::Comm(e.to_string()))?;
        // Poll as the kit firmware does: every millisecond, up to the
        // longest execution time in the table.
        let clock = self.board.bus.clock().clone();
        let deadline = clock.now() + std::time::Duration::from_millis(2500);
        loop {
            let mut count = [0u8; 1];
            if self.board.bus.read(addr, &mut count).is_ok() {
                let n = count[0] as usize;
                if !(4..=255).contains(&n) {
                    return Err(crate::kit::KitError::RxFail);
                }
                let mut rest = vec![0u8; n - 1];
                self.board
                    .bus
                    .read(addr, &mut rest)
                    .map_err(|_| crate::kit::KitError::RxFail)?;
                let mut rsp = vec![count[0]];
                rsp.extend_from_slice(&rest);
                return Ok(rsp);
            }
            if clock.now() >= deadline {
                return Err(crate::kit::KitError::Timeout);
            }
            clock.wait(std::time::Duration::from_millis(1));
        }
    }
}
