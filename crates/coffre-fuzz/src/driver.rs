//! The drivers over a bus that answers whatever the fuzzer says: a chip, or
//! something pretending to be one, on the wires.

use coffre_driver::{Atecc, Zone};
use coffre_sensors::{bmp280::Bmp280, sht30::Sht30};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

use crate::bytes::Input;

/// More bus operations than any command sequence below needs, even with
/// every retry and poll: reaching it means a loop that does not end.
const MAX_OPERATIONS: u32 = 200_000;
/// Virtual time after which a driver that still waits is hanging, ns.
const MAX_WAIT_NS: u64 = 600 * 1_000_000_000;

/// A bus whose every ACK and every byte read comes from the fuzzer's input.
/// Once the input is used up, nothing acknowledges (an absent chip).
pub struct FuzzBus<'a> {
    input: Input<'a>,
    operations: u32,
}

impl<'a> FuzzBus<'a> {
    /// A bus answering from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        FuzzBus {
            input: Input::new(data),
            operations: 0,
        }
    }
}

impl ErrorType for FuzzBus<'_> {
    type Error = ErrorKind;
}

impl I2c for FuzzBus<'_> {
    fn transaction(&mut self, _address: u8, ops: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        self.operations += 1;
        assert!(self.operations < MAX_OPERATIONS, "the driver does not stop");
        if self.input.is_empty() {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        // One byte decides how the transaction ends: mostly acknowledged.
        match self.input.u8() % 16 {
            0 => return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)),
            1 => return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data)),
            2 => return Err(ErrorKind::Other),
            3 => return Err(ErrorKind::ArbitrationLoss),
            _ => {}
        }
        for op in ops {
            if let Operation::Read(buf) = op {
                let got = self.input.take(buf.len());
                buf[..got.len()].copy_from_slice(got);
                buf[got.len()..].fill(0xFF);
            }
        }
        Ok(())
    }
}

/// A delay that only counts virtual time.
#[derive(Default)]
pub struct VirtualDelay {
    ns: u64,
}

impl DelayNs for VirtualDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.ns += ns as u64;
        assert!(self.ns < MAX_WAIT_NS, "the driver waits forever");
    }
}

/// The chip driver through a session of the commands the product uses.
/// Every call must end with a value or a typed error.
pub fn bus(data: &[u8]) {
    let mut chip = Atecc::new(FuzzBus::new(data), VirtualDelay::default(), 0x35);
    let _ = chip.info_revision();
    let _ = chip.read_config_zone();
    let _ = chip.lock_status();
    let mut slot = [0u8; 416];
    if let Ok(n) = chip.read_slot(8, &mut slot) {
        assert!(n <= slot.len());
    }
    let mut block = [0u8; 32];
    let _ = chip.read(Zone::Data, coffre_driver::AccessSize::Block, 0, &mut block);
    let _ = chip.genkey_public(0);
    let _ = chip.sign_digest(0, &[0x5A; 32]);
    let _ = chip.random();
    let _ = chip.counter_read(0);
    let _ = chip.sha256(&[0xA5; 100]);
    let _ = chip.sleep();
}

/// The ENV II unit's drivers: measurements decode or fail with a typed error.
pub fn sensors(data: &[u8]) {
    let mut bus = FuzzBus::new(data);
    let mut delay = VirtualDelay::default();
    let sht = Sht30::default();
    if let Ok(m) = sht.measure(&mut bus, &mut delay) {
        let _ = m;
    }
    let _ = sht.read_status(&mut bus);
    if let Ok(bmp) = Bmp280::init(&mut bus, 0x76) {
        let _ = bmp.measure(&mut bus, &mut delay);
        let _ = bmp.read(&mut bus);
    }
}
