//! Command execution times of the ATECC608.
//!
//! CryptoAuthLib's `device_execution_time_608_m0/m1/m2` tables
//! (`lib/calib/calib_execution.c`), in milliseconds, per clock divider
//! (ChipMode bits 7:3: 0x00 = M0, 0x05 = M1, 0x0D = M2). The driver polls
//! up to these times (plus margin); the emulator's `datasheet` timing takes
//! exactly these.

use crate::command::opcode;

/// Clock divider setting (ChipMode bits 7:3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockDivider {
    /// Divider 0x00 (default).
    M0,
    /// Divider 0x05.
    M1,
    /// Divider 0x0D.
    M2,
}

impl ClockDivider {
    /// From ChipMode bits 7:3; unknown values are treated as the slowest (M2).
    pub const fn from_bits(bits: u8) -> ClockDivider {
        match bits {
            0x00 => ClockDivider::M0,
            0x05 => ClockDivider::M1,
            _ => ClockDivider::M2,
        }
    }
}

/// Execution time in ms of `opcode` at `divider`; `None` for unknown opcodes.
pub const fn exec_time_ms(op: u8, divider: ClockDivider) -> Option<u32> {
    let t: [u32; 3] = match op {
        opcode::AES => [27, 27, 27],
        opcode::CHECKMAC => [40, 40, 40],
        opcode::COUNTER => [25, 25, 25],
        opcode::DERIVE_KEY => [50, 50, 50],
        opcode::ECDH => [75, 172, 531],
        opcode::GENDIG => [25, 35, 35],
        opcode::GENKEY => [115, 215, 653],
        opcode::INFO => [5, 5, 5],
        opcode::KDF => [165, 165, 165],
        opcode::LOCK => [35, 35, 35],
        opcode::MAC => [55, 55, 55],
        opcode::NONCE => [20, 20, 20],
        opcode::PRIVWRITE => [50, 50, 50],
        opcode::RANDOM => [23, 23, 23],
        opcode::READ => [5, 5, 5],
        opcode::SECUREBOOT => [80, 160, 480],
        opcode::SELFTEST => [250, 625, 2324],
        opcode::SHA => [36, 42, 75],
        opcode::SIGN => [115, 220, 665],
        opcode::UPDATE_EXTRA => [10, 10, 10],
        opcode::VERIFY => [105, 295, 1085],
        opcode::WRITE => [45, 45, 45],
        _ => return None,
    };
    Some(match divider {
        ClockDivider::M0 => t[0],
        ClockDivider::M1 => t[1],
        ClockDivider::M2 => t[2],
    })
}

/// The longest time the driver should poll for `opcode` before giving up.
/// Unknown opcodes get the longest entry of the table.
pub const fn max_poll_ms(op: u8, divider: ClockDivider) -> u32 {
    match exec_time_ms(op, divider) {
        Some(t) => t,
        None => 2324,
    }
}

/// Wake low time (tWLO), µs.
pub const T_WLO_US: u32 = 60;
/// Wake high delay before the first command (tWHI), µs.
pub const T_WHI_US: u32 = 1500;
/// Short watchdog, ms (ChipMode bit 2 = 0).
pub const WATCHDOG_SHORT_MS: u32 = 1300;
/// Long watchdog, ms (ChipMode bit 2 = 1).
pub const WATCHDOG_LONG_MS: u32 = 13000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_reference() {
        assert_eq!(exec_time_ms(opcode::SIGN, ClockDivider::M0), Some(115));
        assert_eq!(exec_time_ms(opcode::VERIFY, ClockDivider::M2), Some(1085));
        assert_eq!(exec_time_ms(opcode::READ, ClockDivider::M1), Some(5));
        assert_eq!(exec_time_ms(0x99, ClockDivider::M0), None);
        assert_eq!(max_poll_ms(0x99, ClockDivider::M0), 2324);
        assert_eq!(ClockDivider::from_bits(0), ClockDivider::M0);
        assert_eq!(ClockDivider::from_bits(0x05), ClockDivider::M1);
    }
}
