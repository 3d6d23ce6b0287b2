//! Status bytes and the one error type of the protocol core.

use core::fmt;

/// The status byte of a 4-byte status response (`04 ss crc crc`).
///
/// Unknown values decode to [`Status::Unknown`] instead of failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// 0x00: the command succeeded.
    Success,
    /// 0x01: CheckMac or Verify miscompare.
    Miscompare,
    /// 0x03: parse error: illegal length, opcode or parameters.
    Parse,
    /// 0x05: ECC fault; the computation failed and a retry may succeed.
    EccFault,
    /// 0x07: self-test error; the chip is in failure mode.
    SelfTest,
    /// 0x08: the random number generator failed its health test.
    HealthTest,
    /// 0x0F: execution error; the command is not allowed in the chip's state.
    Execution,
    /// 0x11: the chip has just woken up and has run no command yet.
    AfterWake,
    /// 0xEE: the watchdog is about to expire; the command was not run.
    WatchdogAboutToExpire,
    /// 0xFF: CRC or other communication error.
    Crc,
    /// Any other value.
    Unknown(u8),
}

impl Status {
    /// Decode a status byte.
    pub const fn from_byte(b: u8) -> Status {
        match b {
            0x00 => Status::Success,
            0x01 => Status::Miscompare,
            0x03 => Status::Parse,
            0x05 => Status::EccFault,
            0x07 => Status::SelfTest,
            0x08 => Status::HealthTest,
            0x0F => Status::Execution,
            0x11 => Status::AfterWake,
            0xEE => Status::WatchdogAboutToExpire,
            0xFF => Status::Crc,
            other => Status::Unknown(other),
        }
    }

    /// The byte on the wire.
    pub const fn to_byte(self) -> u8 {
        match self {
            Status::Success => 0x00,
            Status::Miscompare => 0x01,
            Status::Parse => 0x03,
            Status::EccFault => 0x05,
            Status::SelfTest => 0x07,
            Status::HealthTest => 0x08,
            Status::Execution => 0x0F,
            Status::AfterWake => 0x11,
            Status::WatchdogAboutToExpire => 0xEE,
            Status::Crc => 0xFF,
            Status::Unknown(b) => b,
        }
    }

    /// `Ok(())` for success, the matching [`Error`] otherwise.
    pub const fn into_result(self) -> Result<(), Error> {
        match self {
            Status::Success => Ok(()),
            Status::Miscompare => Err(Error::Miscompare),
            Status::Parse => Err(Error::Parse),
            Status::EccFault => Err(Error::EccFault),
            Status::SelfTest => Err(Error::SelfTest),
            Status::HealthTest => Err(Error::HealthTest),
            Status::Execution => Err(Error::Execution),
            Status::AfterWake => Err(Error::AfterWake),
            Status::WatchdogAboutToExpire => Err(Error::WatchdogAboutToExpire),
            Status::Crc => Err(Error::ChipSawBadCrc),
            Status::Unknown(b) => Err(Error::UnknownStatus(b)),
        }
    }
}

/// Everything that can go wrong in the protocol core: a status reported by
/// the chip, or a packet that does not have the expected shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Status 0x01: the chip compared a signature or MAC and it did not match.
    Miscompare,
    /// Status 0x03: the chip could not parse the command (length, opcode or
    /// parameter illegal).
    Parse,
    /// Status 0x05: the chip's ECC computation failed; retrying may succeed.
    EccFault,
    /// Status 0x07: the chip failed a self test and refuses crypto commands.
    SelfTest,
    /// Status 0x08: the chip's RNG failed its health test.
    HealthTest,
    /// Status 0x0F: the command is not allowed in the chip's current state
    /// (lock state, slot policy, TempKey not valid…).
    Execution,
    /// Status 0x11 where a command result was expected: the chip reset
    /// (woke up) since the command was sent.
    AfterWake,
    /// Status 0xEE: too little watchdog time was left; the command was not run.
    WatchdogAboutToExpire,
    /// Status 0xFF: the chip received a packet whose CRC was wrong.
    ChipSawBadCrc,
    /// Another status byte.
    UnknownStatus(u8),
    /// The response's CRC does not match its contents (corrupted on the wire).
    ResponseCrc,
    /// The response's count byte is impossible (below 4, or more than was read).
    ResponseLength {
        /// Count byte found.
        count: u8,
        /// Bytes available.
        available: usize,
    },
    /// The response has a valid frame but a different data length than the
    /// command produces.
    UnexpectedResponseSize {
        /// Data bytes expected.
        expected: usize,
        /// Data bytes received.
        got: usize,
    },
    /// A command packet is malformed (count out of range, CRC wrong…).
    BadCommandPacket,
    /// The caller's buffer is too small for the packet.
    BufferTooSmall,
    /// An argument is out of range (slot above 15, block past a slot's end…).
    InvalidArgument,
}

impl Error {
    /// True for errors reported by the chip through a status byte.
    pub const fn is_chip_status(&self) -> bool {
        matches!(
            self,
            Error::Miscompare
                | Error::Parse
                | Error::EccFault
                | Error::SelfTest
                | Error::HealthTest
                | Error::Execution
                | Error::AfterWake
                | Error::WatchdogAboutToExpire
                | Error::ChipSawBadCrc
                | Error::UnknownStatus(_)
        )
    }

    /// The status byte behind a chip-reported error.
    pub const fn status_byte(&self) -> Option<u8> {
        Some(match self {
            Error::Miscompare => 0x01,
            Error::Parse => 0x03,
            Error::EccFault => 0x05,
            Error::SelfTest => 0x07,
            Error::HealthTest => 0x08,
            Error::Execution => 0x0F,
            Error::AfterWake => 0x11,
            Error::WatchdogAboutToExpire => 0xEE,
            Error::ChipSawBadCrc => 0xFF,
            Error::UnknownStatus(b) => *b,
            _ => return None,
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Miscompare => f.write_str("chip status 0x01: verify/MAC miscompare"),
            Error::Parse => f.write_str(
                "chip status 0x03: parse error (the chip rejected the opcode, length or parameters)",
            ),
            Error::EccFault => f.write_str("chip status 0x05: ECC fault; retry the command"),
            Error::SelfTest => f.write_str(
                "chip status 0x07: self-test failure; the chip refuses crypto until a SelfTest passes",
            ),
            Error::HealthTest => f.write_str("chip status 0x08: RNG health-test failure"),
            Error::Execution => f.write_str(
                "chip status 0x0F: execution error (not allowed by the lock state or the slot's policy)",
            ),
            Error::AfterWake => f.write_str(
                "chip status 0x11: the chip woke up and lost the command (did it sleep or reset?)",
            ),
            Error::WatchdogAboutToExpire => f.write_str(
                "chip status 0xEE: watchdog about to expire; send idle or sleep, wake, and retry",
            ),
            Error::ChipSawBadCrc => {
                f.write_str("chip status 0xFF: the chip received a corrupted packet (bad CRC)")
            }
            Error::UnknownStatus(b) => write!(f, "chip status 0x{b:02X}: unknown status"),
            Error::ResponseCrc => f.write_str("response CRC mismatch (corrupted on the bus)"),
            Error::ResponseLength { count, available } => write!(
                f,
                "response count byte {count} is impossible ({available} bytes available)"
            ),
            Error::UnexpectedResponseSize { expected, got } => write!(
                f,
                "response carries {got} data bytes, expected {expected}"
            ),
            Error::BadCommandPacket => f.write_str("malformed command packet"),
            Error::BufferTooSmall => f.write_str("buffer too small for the packet"),
            Error::InvalidArgument => f.write_str("argument out of range"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips() {
        for b in 0..=255u8 {
            assert_eq!(Status::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn status_codes_map_to_errors() {
        let table = [
            (0x00, None),
            (0x01, Some(Error::Miscompare)),
            (0x03, Some(Error::Parse)),
            (0x05, Some(Error::EccFault)),
            (0x07, Some(Error::SelfTest)),
            (0x08, Some(Error::HealthTest)),
            (0x0F, Some(Error::Execution)),
            (0x11, Some(Error::AfterWake)),
            (0xEE, Some(Error::WatchdogAboutToExpire)),
            (0xFF, Some(Error::ChipSawBadCrc)),
            (0x42, Some(Error::UnknownStatus(0x42))),
        ];
        for (byte, want) in table {
            let got = Status::from_byte(byte).into_result().err();
            assert_eq!(got, want, "status {byte:02X}");
            if let Some(e) = got {
                assert_eq!(e.status_byte(), Some(byte));
                assert!(e.is_chip_status());
            }
        }
        assert!(!Error::ResponseCrc.is_chip_status());
    }
}
