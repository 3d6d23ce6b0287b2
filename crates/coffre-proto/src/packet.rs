//! Command and response packets.
//!
//! On the wire a command is `[0x03] count opcode param1 param2_lo param2_hi
//! data… crc_lo crc_hi`, where `count` covers everything from itself to the
//! CRC. A response is `count data… crc_lo crc_hi`; a 4-byte response carries a
//! single status byte.

use crate::crc::crc16_bytes;
use crate::error::{Error, Status};

/// Word address bytes: the first byte of every I2C write to the chip.
pub mod word_address {
    /// "Reset": CryptoAuthLib sends it, with no data, before reading a
    /// response; it resets the chip's I/O buffer address counter.
    pub const RESET: u8 = 0x00;
    /// Enter sleep (volatile state lost, lowest power).
    pub const SLEEP: u8 = 0x01;
    /// Enter idle (TempKey and the message digest buffer are kept).
    pub const IDLE: u8 = 0x02;
    /// A command packet follows.
    pub const COMMAND: u8 = 0x03;
}

/// Smallest command packet (count, opcode, p1, p2 ×2, CRC ×2).
pub const MIN_COUNT: usize = 7;
/// Largest command packet the ATECC608 accepts (count byte value).
pub const MAX_COUNT: usize = 4 * 36 + 7;
/// Largest data field of a command.
pub const MAX_DATA: usize = MAX_COUNT - MIN_COUNT;
/// Largest buffer needed to write a command, word address included.
pub const MAX_PACKET: usize = MAX_COUNT + 1;
/// Largest response packet (a 64-byte public key or signature, or the
/// 64-byte GenKey output: count + 64 + CRC… plus headroom for 72-byte forms).
pub const MAX_RESPONSE: usize = 3 + 64 + 8;

/// The after-wake response: status 0x11.
pub const WAKE_RESPONSE: [u8; 4] = status_packet(Status::AfterWake);

/// The 4-byte response carrying `status`.
pub const fn status_packet(status: Status) -> [u8; 4] {
    let b = status.to_byte();
    let crc = crc16_bytes(&[0x04, b]);
    [0x04, b, crc[0], crc[1]]
}

/// A command ready to be encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Opcode (see [`crate::command::opcode`]).
    pub opcode: u8,
    /// Param1 (mode).
    pub param1: u8,
    /// Param2 (key id, address…), sent little-endian.
    pub param2: u16,
    data: [u8; MAX_DATA],
    len: usize,
}

impl core::fmt::Debug for Command {
    // Data bytes are not printed: they may carry key material (PrivWrite) or
    // secrets; only their length is shown.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Command")
            .field("opcode", &format_args!("0x{:02X}", self.opcode))
            .field("param1", &format_args!("0x{:02X}", self.param1))
            .field("param2", &format_args!("0x{:04X}", self.param2))
            .field("data_len", &self.len)
            .finish()
    }
}

impl Command {
    /// A command with no data.
    pub const fn new(opcode: u8, param1: u8, param2: u16) -> Command {
        Command {
            opcode,
            param1,
            param2,
            data: [0; MAX_DATA],
            len: 0,
        }
    }

    /// A command with a data field. Fails if `data` exceeds [`MAX_DATA`].
    pub fn with_data(opcode: u8, param1: u8, param2: u16, data: &[u8]) -> Result<Command, Error> {
        if data.len() > MAX_DATA {
            return Err(Error::InvalidArgument);
        }
        let mut c = Command::new(opcode, param1, param2);
        c.data[..data.len()].copy_from_slice(data);
        c.len = data.len();
        Ok(c)
    }

    /// The data field.
    pub fn data(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The count byte: packet length from count to CRC.
    pub fn count(&self) -> usize {
        MIN_COUNT + self.len
    }

    /// Encode the packet *without* the word address (count … CRC), as the
    /// kit protocol transmits it. Returns the length written.
    pub fn encode_body(&self, out: &mut [u8]) -> Result<usize, Error> {
        let n = self.count();
        if out.len() < n {
            return Err(Error::BufferTooSmall);
        }
        out[0] = n as u8;
        out[1] = self.opcode;
        out[2] = self.param1;
        out[3..5].copy_from_slice(&self.param2.to_le_bytes());
        out[5..5 + self.len].copy_from_slice(self.data());
        let crc = crc16_bytes(&out[..n - 2]);
        out[n - 2..n].copy_from_slice(&crc);
        Ok(n)
    }

    /// Encode the packet as written on I2C: word address 0x03, then the body.
    /// Returns the length written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Err(Error::BufferTooSmall);
        }
        out[0] = word_address::COMMAND;
        Ok(1 + self.encode_body(&mut out[1..])?)
    }
}

impl Drop for Command {
    fn drop(&mut self) {
        // Commands may carry secrets (PrivWrite, encrypted writes): clear them.
        for b in self.data.iter_mut() {
            // Volatile-free best effort; the emulator and driver also zeroize
            // their own buffers.
            *b = 0;
        }
        core::hint::black_box(&self.data);
    }
}

/// A command packet as the chip receives it (borrowed from the input buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRef<'a> {
    /// Opcode.
    pub opcode: u8,
    /// Param1.
    pub param1: u8,
    /// Param2.
    pub param2: u16,
    /// Data field.
    pub data: &'a [u8],
}

/// Parse a command body (count … CRC, no word address) as the chip does.
///
/// Errors: [`Error::BadCommandPacket`] for an impossible count (the chip
/// answers a parse error), [`Error::ChipSawBadCrc`] for a CRC mismatch (the
/// chip answers status 0xFF).
pub fn parse_command(body: &[u8]) -> Result<CommandRef<'_>, Error> {
    let count = *body.first().ok_or(Error::BadCommandPacket)? as usize;
    if !(MIN_COUNT..=MAX_COUNT).contains(&count) || body.len() < count {
        return Err(Error::BadCommandPacket);
    }
    let crc = crc16_bytes(&body[..count - 2]);
    if crc != [body[count - 2], body[count - 1]] {
        return Err(Error::ChipSawBadCrc);
    }
    Ok(CommandRef {
        opcode: body[1],
        param1: body[2],
        param2: u16::from_le_bytes([body[3], body[4]]),
        data: &body[5..count - 2],
    })
}

/// Check a response packet's frame and CRC, and return its data field.
///
/// A 4-byte packet carries a status: success gives an empty slice, any
/// other status its [`Error`]. Longer packets give their data.
pub fn parse_response(buf: &[u8]) -> Result<&[u8], Error> {
    let count = *buf.first().ok_or(Error::ResponseLength {
        count: 0,
        available: 0,
    })?;
    let n = count as usize;
    if n < 4 || n > buf.len() {
        return Err(Error::ResponseLength {
            count,
            available: buf.len(),
        });
    }
    if crc16_bytes(&buf[..n - 2]) != [buf[n - 2], buf[n - 1]] {
        return Err(Error::ResponseCrc);
    }
    if n == 4 {
        Status::from_byte(buf[1]).into_result()?;
        return Ok(&buf[1..1]);
    }
    Ok(&buf[1..n - 2])
}

/// Encode a response packet with `data` (the chip's side). Returns its length.
pub fn encode_response(data: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let n = data.len() + 3;
    if n > 255 || out.len() < n {
        return Err(Error::BufferTooSmall);
    }
    out[0] = n as u8;
    out[1..1 + data.len()].copy_from_slice(data);
    let crc = crc16_bytes(&out[..n - 2]);
    out[n - 2..n].copy_from_slice(&crc);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_packet_is_byte_exact() {
        let c = Command::new(0x30, 0x00, 0x0000);
        let mut b = [0u8; MAX_PACKET];
        let n = c.encode(&mut b).unwrap();
        assert_eq!(&b[..n], &[0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D]);
    }

    #[test]
    fn param2_is_little_endian() {
        let c = Command::new(0x02, 0x00, 0x0015);
        let mut b = [0u8; MAX_PACKET];
        let n = c.encode_body(&mut b).unwrap();
        assert_eq!(&b[..n], &[0x07, 0x02, 0x00, 0x15, 0x00, 0x17, 0x5D]);
        let c = Command::new(0x02, 0x82, 0x0148);
        let n = c.encode_body(&mut b).unwrap();
        assert_eq!(&b[3..5], &[0x48, 0x01]);
        let parsed = parse_command(&b[..n]).unwrap();
        assert_eq!(parsed.param2, 0x0148);
    }

    #[test]
    fn command_round_trip_with_data() {
        let data = [0xA5u8; 32];
        let c = Command::with_data(0x12, 0x82, 0x0040, &data).unwrap();
        let mut b = [0u8; MAX_PACKET];
        let n = c.encode_body(&mut b).unwrap();
        assert_eq!(n, 39);
        let p = parse_command(&b[..n]).unwrap();
        assert_eq!((p.opcode, p.param1, p.param2), (0x12, 0x82, 0x0040));
        assert_eq!(p.data, &data);
        b[10] ^= 1;
        assert_eq!(parse_command(&b[..n]), Err(Error::ChipSawBadCrc));
    }

    #[test]
    fn oversize_and_bad_counts_are_refused() {
        assert_eq!(
            Command::with_data(0x12, 0, 0, &[0; MAX_DATA + 1]).err(),
            Some(Error::InvalidArgument)
        );
        assert_eq!(
            parse_command(&[0x06, 0, 0, 0, 0, 0]),
            Err(Error::BadCommandPacket)
        );
        assert_eq!(
            parse_command(&[0x09, 0x30, 0, 0, 0, 0, 0]),
            Err(Error::BadCommandPacket)
        );
        assert_eq!(parse_command(&[]), Err(Error::BadCommandPacket));
        let mut small = [0u8; 4];
        assert_eq!(
            Command::new(0x30, 0, 0).encode(&mut small),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn status_packets_match_recorded_bytes() {
        let table: [(Status, [u8; 4]); 10] = [
            (Status::Success, [0x04, 0x00, 0x03, 0x40]),
            (Status::Miscompare, [0x04, 0x01, 0x00, 0xC3]),
            (Status::Parse, [0x04, 0x03, 0x83, 0x42]),
            (Status::EccFault, [0x04, 0x05, 0xC3, 0x43]),
            (Status::SelfTest, [0x04, 0x07, 0x40, 0xC2]),
            (Status::HealthTest, [0x04, 0x08, 0x60, 0xC0]),
            (Status::Execution, [0x04, 0x0F, 0x23, 0x42]),
            (Status::AfterWake, [0x04, 0x11, 0x33, 0x43]),
            (Status::WatchdogAboutToExpire, [0x04, 0xEE, 0x31, 0x41]),
            (Status::Crc, [0x04, 0xFF, 0x01, 0x42]),
        ];
        for (s, bytes) in table {
            assert_eq!(status_packet(s), bytes, "{s:?}");
            let r = parse_response(&bytes);
            match s {
                Status::Success => assert_eq!(r, Ok(&[][..])),
                other => assert_eq!(r.err(), other.into_result().err()),
            }
        }
    }

    #[test]
    fn responses_are_checked() {
        let mut out = [0u8; MAX_RESPONSE];
        let n = encode_response(&[0x00, 0x00, 0x60, 0x03], &mut out).unwrap();
        assert_eq!(n, 7);
        assert_eq!(parse_response(&out[..n]), Ok(&[0x00, 0x00, 0x60, 0x03][..]));
        // Extra trailing bytes (a fixed-length read) are ignored.
        assert!(parse_response(&out[..n + 3]).is_ok());
        let mut bad = out;
        bad[2] ^= 0x80;
        assert_eq!(parse_response(&bad[..n]), Err(Error::ResponseCrc));
        assert!(matches!(
            parse_response(&out[..5]),
            Err(Error::ResponseLength {
                count: 7,
                available: 5
            })
        ));
        assert!(matches!(
            parse_response(&[0x02, 0, 0]),
            Err(Error::ResponseLength { .. })
        ));
        // An idle bus reads as 0xFF.
        assert!(matches!(
            parse_response(&[0xFF; 4]),
            Err(Error::ResponseLength { .. })
        ));
    }
}
