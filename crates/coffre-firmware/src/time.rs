//! Wall-clock time for the certificate dates: an SNTP request and its
//! answer (RFC 4330), and the clock embedded-tls reads.
//!
//! embedded-tls asks its verifier's clock type for the time
//! ([`embedded_tls::TlsClock::now`], a function without a receiver), so the
//! time lives in one static: the firmware calls [`set_unix_time`] before
//! each handshake. Until it does, [`WallClock`] answers `None` and
//! embedded-tls checks no date — the firmware never connects before it has
//! the time (SNTP, or the settings' `issued-at` lower bound).

use core::sync::atomic::{AtomicU32, Ordering};

use embedded_tls::TlsClock;

/// An SNTP packet's size.
pub const SNTP_PACKET: usize = 48;

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;

/// The client request: version 4, mode 3 (client); the transmit timestamp
/// carries `nonce`, which the server echoes as the originate timestamp.
pub fn sntp_request(nonce: u64) -> [u8; SNTP_PACKET] {
    let mut p = [0u8; SNTP_PACKET];
    p[0] = (4 << 3) | 3;
    p[40..48].copy_from_slice(&nonce.to_be_bytes());
    p
}

/// Why an SNTP answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SntpError {
    /// Shorter than 48 bytes.
    Short,
    /// Not a server answer (mode 4) to our request (originate = nonce).
    NotOurAnswer,
    /// Kiss-o'-death or an unsynchronized server (stratum 0, leap 3).
    Unsynchronized,
}

impl core::fmt::Display for SntpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SntpError::Short => "SNTP answer too short",
            SntpError::NotOurAnswer => "not an SNTP answer to this request",
            SntpError::Unsynchronized => "the SNTP server is not synchronized",
        })
    }
}

/// The Unix time (seconds) of the server's transmit timestamp.
pub fn sntp_parse(answer: &[u8], nonce: u64) -> Result<u64, SntpError> {
    if answer.len() < SNTP_PACKET {
        return Err(SntpError::Short);
    }
    let mode = answer[0] & 0x07;
    let leap = answer[0] >> 6;
    let originate = u64::from_be_bytes(answer[24..32].try_into().unwrap_or_default());
    if mode != 4 || originate != nonce {
        return Err(SntpError::NotOurAnswer);
    }
    if answer[1] == 0 || leap == 3 {
        return Err(SntpError::Unsynchronized);
    }
    let secs = u64::from(u32::from_be_bytes(
        answer[40..44].try_into().unwrap_or_default(),
    ));
    // Era 1 starts in 2036: a small value is after the wrap.
    let secs = if secs < NTP_TO_UNIX {
        secs + (1 << 32)
    } else {
        secs
    };
    Ok(secs - NTP_TO_UNIX)
}

/// Unix seconds as last set (0: unknown). 32 bits: until 2106, and the
/// MCU (RISC-V without atomics extension) has atomic 32-bit loads and
/// stores only.
static UNIX_SECS: AtomicU32 = AtomicU32::new(0);

/// Set the wall-clock time the next handshakes check certificate dates
/// against.
pub fn set_unix_time(secs: u64) {
    UNIX_SECS.store(u32::try_from(secs).unwrap_or(u32::MAX), Ordering::Relaxed);
}

/// The time last set with [`set_unix_time`], if any.
pub fn unix_time() -> Option<u64> {
    match UNIX_SECS.load(Ordering::Relaxed) {
        0 => None,
        s => Some(u64::from(s)),
    }
}

/// embedded-tls's clock: [`unix_time`].
#[derive(Debug, Clone, Copy)]
pub struct WallClock;

impl TlsClock for WallClock {
    fn now() -> Option<u64> {
        unix_time()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(nonce: u64, ntp_secs: u32) -> [u8; 48] {
        let mut a = [0u8; 48];
        a[0] = (4 << 3) | 4;
        a[1] = 2;
        a[24..32].copy_from_slice(&nonce.to_be_bytes());
        a[40..44].copy_from_slice(&ntp_secs.to_be_bytes());
        a
    }

    #[test]
    fn request_and_answer() {
        let req = sntp_request(0x0102_0304_0506_0708);
        assert_eq!(req[0], 0x23);
        assert_eq!(req[40..48], [1, 2, 3, 4, 5, 6, 7, 8]);
        // 2025-05-01T12:00:00Z.
        let ntp = (1_746_100_800u64 + NTP_TO_UNIX) as u32;
        assert_eq!(sntp_parse(&answer(9, ntp), 9), Ok(1_746_100_800));
        assert_eq!(sntp_parse(&answer(9, ntp), 8), Err(SntpError::NotOurAnswer));
        assert_eq!(sntp_parse(&answer(9, ntp)[..47], 9), Err(SntpError::Short));
        let mut kod = answer(9, ntp);
        kod[1] = 0;
        assert_eq!(sntp_parse(&kod, 9), Err(SntpError::Unsynchronized));
        // After the 2036 era wrap.
        assert_eq!(
            sntp_parse(&answer(9, 10), 9),
            Ok((1 << 32) + 10 - NTP_TO_UNIX)
        );
    }

    #[test]
    fn wall_clock() {
        set_unix_time(1_746_100_800);
        assert_eq!(WallClock::now(), Some(1_746_100_800));
    }
}
