//! The driver's error type.

use core::fmt;

use coffre_proto::command::opcode;

/// Everything that can go wrong while talking to the chip.
///
/// `E` is the I2C bus error of the HAL. The [`Display`](fmt::Display) text of
/// each variant says what failed and what to try next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error<E> {
    /// The I2C bus reported an error that is not a missing acknowledge
    /// (bus error, arbitration loss, overrun…), or a command write was still
    /// not acknowledged after every retry.
    I2c(E),
    /// Nothing acknowledged `address` after the wake sequence, on every
    /// attempt: the chip is absent, unpowered, at another address, or the
    /// wake pulse was too short (bus faster than 100 kHz).
    NotPresent {
        /// The 7-bit address that was tried.
        address: u8,
    },
    /// A device acknowledged after the wake sequence but did not answer the
    /// after-wake packet `04 11 33 43` (shown here as read).
    WakeFailed([u8; 4]),
    /// The chip answered the wake with status 0x07: its power-on self test
    /// failed and it refuses crypto commands until a SelfTest passes.
    SelfTestFailed,
    /// The chip kept NACKing (busy) past the time allowed for the command.
    Timeout {
        /// The command's opcode.
        opcode: u8,
        /// Total time waited for the response, in milliseconds.
        waited_ms: u32,
    },
    /// The chip answered with an error status (see
    /// [`coffre_proto::Error::is_chip_status`]).
    Chip(coffre_proto::Error),
    /// The response could not be decoded (CRC, length or size mismatch), even
    /// after the re-reads and resends.
    Protocol(coffre_proto::Error),
    /// An argument was refused before anything was sent.
    InvalidArgument(&'static str),
}

impl<E> Error<E> {
    /// The chip's status error, if this is one.
    pub fn chip_status(&self) -> Option<coffre_proto::Error> {
        match self {
            Error::Chip(e) => Some(*e),
            _ => None,
        }
    }

    /// Sort a protocol-core error into [`Error::Chip`] (status reported by
    /// the chip) or [`Error::Protocol`] (frame problem).
    pub fn from_proto(e: coffre_proto::Error) -> Self {
        if e.is_chip_status() {
            Error::Chip(e)
        } else {
            Error::Protocol(e)
        }
    }

    /// Convert the bus error type, keeping everything else.
    pub fn map_bus<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Error::I2c(e) => Error::I2c(f(e)),
            Error::NotPresent { address } => Error::NotPresent { address },
            Error::WakeFailed(b) => Error::WakeFailed(b),
            Error::SelfTestFailed => Error::SelfTestFailed,
            Error::Timeout { opcode, waited_ms } => Error::Timeout { opcode, waited_ms },
            Error::Chip(e) => Error::Chip(e),
            Error::Protocol(e) => Error::Protocol(e),
            Error::InvalidArgument(s) => Error::InvalidArgument(s),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::I2c(e) => write!(
                f,
                "I2C bus error ({e:?}): check the adapter, the wiring and the pull-up resistors, then retry"
            ),
            Error::NotPresent { address } => write!(
                f,
                "no ACK from 0x{address:02X} after wake: check wiring, power and the address \
                 (--bus …@0x{address:02X}); a Trust&GO part answers at 0x35, a TrustFLEX part at 0x36, \
                 a blank part at 0x60; on Linux the bus must run at 100 kHz for the wake pulse \
                 (Raspberry Pi: dtparam=i2c_arm_baudrate=100000)"
            ),
            Error::WakeFailed(b) => write!(
                f,
                "unexpected answer to wake: {:02X} {:02X} {:02X} {:02X} (expected 04 11 33 43): \
                 another device may use this address, or the chip is in an unknown state; \
                 check the address and power-cycle the chip",
                b[0], b[1], b[2], b[3]
            ),
            Error::SelfTestFailed => f.write_str(
                "the chip answered wake with status 0x07 (power-on self test failed): run a SelfTest \
                 command or power-cycle the chip; if it persists the part is faulty",
            ),
            Error::Timeout { opcode: op, waited_ms } => write!(
                f,
                "no response to {} (opcode 0x{op:02X}) after {waited_ms} ms: the chip stayed busy; \
                 check its supply, the clock divider in the driver configuration (ChipMode), \
                 or raise the timeout",
                opcode::name(*op)
            ),
            Error::Chip(e) => write!(f, "the chip refused the command: {e}"),
            Error::Protocol(e) => write!(
                f,
                "bad response from the chip ({e}) even after retries: check the bus for noise \
                 (pull-ups, cable length, bus speed) and retry"
            ),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}
