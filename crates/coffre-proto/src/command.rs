//! Command encoders and response decoders, one function per command mode.
//!
//! Each builder returns a [`Command`]; each decoder takes the data field
//! returned by [`crate::packet::parse_response`] and checks its size.

use crate::error::Error;
use crate::packet::Command;
use crate::zone::{Zone, BLOCK_SIZE, WORD_SIZE};

/// Opcodes (CryptoAuthLib `calib_command.h`).
pub mod opcode {
    /// CheckMac.
    pub const CHECKMAC: u8 = 0x28;
    /// DeriveKey.
    pub const DERIVE_KEY: u8 = 0x1C;
    /// Info.
    pub const INFO: u8 = 0x30;
    /// GenDig.
    pub const GENDIG: u8 = 0x15;
    /// GenKey.
    pub const GENKEY: u8 = 0x40;
    /// HMAC (not on the 608).
    pub const HMAC: u8 = 0x11;
    /// Lock.
    pub const LOCK: u8 = 0x17;
    /// MAC.
    pub const MAC: u8 = 0x08;
    /// Nonce.
    pub const NONCE: u8 = 0x16;
    /// Pause (not on the 608).
    pub const PAUSE: u8 = 0x01;
    /// PrivWrite.
    pub const PRIVWRITE: u8 = 0x46;
    /// Random.
    pub const RANDOM: u8 = 0x1B;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Sign.
    pub const SIGN: u8 = 0x41;
    /// UpdateExtra.
    pub const UPDATE_EXTRA: u8 = 0x20;
    /// Verify.
    pub const VERIFY: u8 = 0x45;
    /// Write.
    pub const WRITE: u8 = 0x12;
    /// ECDH.
    pub const ECDH: u8 = 0x43;
    /// Counter.
    pub const COUNTER: u8 = 0x24;
    /// SHA.
    pub const SHA: u8 = 0x47;
    /// AES.
    pub const AES: u8 = 0x51;
    /// KDF.
    pub const KDF: u8 = 0x56;
    /// SecureBoot.
    pub const SECUREBOOT: u8 = 0x80;
    /// SelfTest.
    pub const SELFTEST: u8 = 0x77;

    /// The command's name, for logs and transcripts.
    pub const fn name(op: u8) -> &'static str {
        match op {
            CHECKMAC => "CheckMac",
            DERIVE_KEY => "DeriveKey",
            INFO => "Info",
            GENDIG => "GenDig",
            GENKEY => "GenKey",
            HMAC => "HMAC",
            LOCK => "Lock",
            MAC => "MAC",
            NONCE => "Nonce",
            PAUSE => "Pause",
            PRIVWRITE => "PrivWrite",
            RANDOM => "Random",
            READ => "Read",
            SIGN => "Sign",
            UPDATE_EXTRA => "UpdateExtra",
            VERIFY => "Verify",
            WRITE => "Write",
            ECDH => "ECDH",
            COUNTER => "Counter",
            SHA => "SHA",
            AES => "AES",
            KDF => "KDF",
            SECUREBOOT => "SecureBoot",
            SELFTEST => "SelfTest",
            _ => "unknown",
        }
    }
}

fn expect_len(data: &[u8], n: usize) -> Result<(), Error> {
    if data.len() == n {
        Ok(())
    } else {
        Err(Error::UnexpectedResponseSize {
            expected: n,
            got: data.len(),
        })
    }
}

fn fixed<const N: usize>(data: &[u8]) -> Result<[u8; N], Error> {
    expect_len(data, N)?;
    let mut out = [0u8; N];
    out.copy_from_slice(data);
    Ok(out)
}

// ---------------------------------------------------------------- Info

/// Info modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoMode {
    /// 0x00: revision (4 bytes, byte 2 = 0x60 on a 608).
    Revision,
    /// 0x01: KeyValid of slot `n`.
    KeyValid(u8),
    /// 0x02: device state (TempKey flags…).
    State,
}

/// Info command.
pub fn info(mode: InfoMode) -> Command {
    match mode {
        InfoMode::Revision => Command::new(opcode::INFO, 0x00, 0),
        InfoMode::KeyValid(slot) => Command::new(opcode::INFO, 0x01, slot as u16),
        InfoMode::State => Command::new(opcode::INFO, 0x02, 0),
    }
}

/// Decode an Info response (4 bytes).
pub fn decode_info(data: &[u8]) -> Result<[u8; 4], Error> {
    fixed::<4>(data)
}

// ---------------------------------------------------------------- Read / Write

/// Access size of Read and Write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessSize {
    /// One 4-byte word.
    Word,
    /// One 32-byte block (param1 bit 7).
    Block,
}

impl AccessSize {
    /// Bytes moved.
    pub const fn len(self) -> usize {
        match self {
            AccessSize::Word => WORD_SIZE,
            AccessSize::Block => BLOCK_SIZE,
        }
    }
    /// Never empty; provided for symmetry with `len`.
    pub const fn is_empty(self) -> bool {
        false
    }
    const fn bit(self) -> u8 {
        match self {
            AccessSize::Word => 0x00,
            AccessSize::Block => 0x80,
        }
    }
}

/// Read `size` bytes from `zone` at `address` (see [`crate::zone`]).
pub fn read(zone: Zone, size: AccessSize, address: u16) -> Command {
    Command::new(opcode::READ, zone.code() | size.bit(), address)
}

/// Decode a Read response of `size`.
pub fn decode_read(data: &[u8], size: AccessSize) -> Result<&[u8], Error> {
    expect_len(data, size.len())?;
    Ok(data)
}

/// Write 4 or 32 clear bytes to `zone` at `address`. The size follows
/// `data.len()` (4 or 32); anything else is refused.
pub fn write(zone: Zone, address: u16, data: &[u8]) -> Result<Command, Error> {
    let size = match data.len() {
        WORD_SIZE => AccessSize::Word,
        BLOCK_SIZE => AccessSize::Block,
        _ => return Err(Error::InvalidArgument),
    };
    Command::with_data(opcode::WRITE, zone.code() | size.bit(), address, data)
}

/// Encrypted 32-byte write (param1 bit 6), data followed by its 32-byte MAC.
pub fn write_encrypted(
    zone: Zone,
    address: u16,
    data: &[u8; 32],
    mac: &[u8; 32],
) -> Result<Command, Error> {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(data);
    buf[32..].copy_from_slice(mac);
    let c = Command::with_data(opcode::WRITE, zone.code() | 0x80 | 0x40, address, &buf);
    buf.fill(0);
    c
}

// ---------------------------------------------------------------- Lock

/// What a Lock command locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockTarget {
    /// The config zone (mode 0x00).
    Config,
    /// The data and OTP zones (mode 0x01).
    Data,
    /// One data slot (mode 0x02 | slot << 2).
    Slot(u8),
}

/// Lock command. With `summary_crc = Some(crc)` the chip checks the zone's
/// CRC first (config: the 128 config bytes; data: the slots and OTP; slot:
/// the slot's contents) and refuses on mismatch; `None` sets mode bit 7
/// (no check).
pub fn lock(target: LockTarget, summary_crc: Option<u16>) -> Result<Command, Error> {
    let mut mode = match target {
        LockTarget::Config => 0x00,
        LockTarget::Data => 0x01,
        LockTarget::Slot(s) if s < 16 => 0x02 | (s << 2),
        LockTarget::Slot(_) => return Err(Error::InvalidArgument),
    };
    if summary_crc.is_none() {
        mode |= 0x80;
    }
    Ok(Command::new(opcode::LOCK, mode, summary_crc.unwrap_or(0)))
}

// ---------------------------------------------------------------- GenKey

/// GenKey mode 0x04: create a new private key in `slot`, return its public key.
pub fn genkey_create(slot: u8) -> Command {
    Command::new(opcode::GENKEY, 0x04, slot as u16)
}

/// GenKey mode 0x00: compute the public key of the private key in `slot`.
pub fn genkey_public(slot: u8) -> Command {
    Command::new(opcode::GENKEY, 0x00, slot as u16)
}

/// Decode a 64-byte public key (X ‖ Y, big-endian).
pub fn decode_public_key(data: &[u8]) -> Result<[u8; 64], Error> {
    fixed::<64>(data)
}

// ---------------------------------------------------------------- Nonce

/// Where a pass-through Nonce puts its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceTarget {
    /// TempKey (mode bits 7:6 = 00).
    TempKey,
    /// The message digest buffer (0x40).
    MsgDigestBuffer,
    /// The alternate key buffer (0x80).
    AltKeyBuffer,
}

impl NonceTarget {
    const fn bits(self) -> u8 {
        match self {
            NonceTarget::TempKey => 0x00,
            NonceTarget::MsgDigestBuffer => 0x40,
            NonceTarget::AltKeyBuffer => 0x80,
        }
    }
}

/// Nonce pass-through (mode 0x03, +0x20 for 64 bytes): load `input` (32 or
/// 64 bytes) into `target` unchanged.
pub fn nonce_passthrough(target: NonceTarget, input: &[u8]) -> Result<Command, Error> {
    let size = match input.len() {
        32 => 0x00,
        64 => 0x20,
        _ => return Err(Error::InvalidArgument),
    };
    Command::with_data(opcode::NONCE, 0x03 | size | target.bits(), 0, input)
}

/// Nonce random (mode 0x00 updates the RNG seed, 0x01 does not): the chip
/// combines 20 bytes of `num_in` with a random number into TempKey and
/// returns the 32-byte random number.
pub fn nonce_random(num_in: &[u8; 20], update_seed: bool) -> Command {
    let mode = if update_seed { 0x00 } else { 0x01 };
    // 20 bytes always fit.
    Command::with_data(opcode::NONCE, mode, 0, num_in).unwrap_or(Command::new(0, 0, 0))
}

/// Decode a 32-byte output (Nonce random, Random, SHA end).
pub fn decode_32(data: &[u8]) -> Result<[u8; 32], Error> {
    fixed::<32>(data)
}

// ---------------------------------------------------------------- Random

/// Random (mode 0x00: update the seed).
pub fn random() -> Command {
    Command::new(opcode::RANDOM, 0x00, 0)
}

// ---------------------------------------------------------------- Sign

/// Where an external Sign takes its 32-byte digest from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageSource {
    /// TempKey (Sign mode 0x80, Verify mode 0x02).
    TempKey,
    /// The message digest buffer (Sign mode 0xA0, Verify mode 0x22).
    MsgDigestBuffer,
}

/// Sign an external digest with the private key in `slot`.
pub fn sign_external(slot: u8, source: MessageSource) -> Command {
    let mode = match source {
        MessageSource::TempKey => 0x80,
        MessageSource::MsgDigestBuffer => 0xA0,
    };
    Command::new(opcode::SIGN, mode, slot as u16)
}

/// Decode a 64-byte signature (R ‖ S, big-endian).
pub fn decode_signature(data: &[u8]) -> Result<[u8; 64], Error> {
    fixed::<64>(data)
}

// ---------------------------------------------------------------- Verify

/// Key type code in Verify's param2 for P-256.
pub const VERIFY_KEY_P256: u16 = 0x0004;

/// Verify (external mode 0x02): check `signature` (R ‖ S) over the digest in
/// `source` with the P-256 `public_key` (X ‖ Y).
pub fn verify_external(
    source: MessageSource,
    signature: &[u8; 64],
    public_key: &[u8; 64],
) -> Command {
    let mode = match source {
        MessageSource::TempKey => 0x02,
        MessageSource::MsgDigestBuffer => 0x22,
    };
    let mut data = [0u8; 128];
    data[..64].copy_from_slice(signature);
    data[64..].copy_from_slice(public_key);
    // 128 bytes always fit.
    Command::with_data(opcode::VERIFY, mode, VERIFY_KEY_P256, &data)
        .unwrap_or(Command::new(0, 0, 0))
}

/// Interpret a Verify result: `Ok(true)` valid, `Ok(false)` status 0x01.
pub fn decode_verify(result: Result<&[u8], Error>) -> Result<bool, Error> {
    match result {
        Ok(d) => {
            expect_len(d, 0)?;
            Ok(true)
        }
        Err(Error::Miscompare) => Ok(false),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- SelfTest

/// SelfTest mode bits.
pub mod selftest {
    /// RNG and DRBG.
    pub const RNG: u8 = 0x01;
    /// ECDSA sign/verify.
    pub const ECDSA: u8 = 0x02;
    /// ECDH.
    pub const ECDH: u8 = 0x08;
    /// AES.
    pub const AES: u8 = 0x10;
    /// SHA.
    pub const SHA: u8 = 0x20;
    /// All tests.
    pub const ALL: u8 = 0x3B;
}

/// SelfTest with `mode` (see [`selftest`]).
pub fn self_test(mode: u8) -> Command {
    Command::new(opcode::SELFTEST, mode, 0)
}

// ---------------------------------------------------------------- Counter

/// Highest value of a monotonic counter.
pub const COUNTER_MAX: u32 = 2_097_151;

/// Counter read (mode 0x00) of counter 0 or 1.
pub fn counter_read(counter: u8) -> Result<Command, Error> {
    if counter > 1 {
        return Err(Error::InvalidArgument);
    }
    Ok(Command::new(opcode::COUNTER, 0x00, counter as u16))
}

/// Counter increment (mode 0x01) of counter 0 or 1.
pub fn counter_increment(counter: u8) -> Result<Command, Error> {
    if counter > 1 {
        return Err(Error::InvalidArgument);
    }
    Ok(Command::new(opcode::COUNTER, 0x01, counter as u16))
}

/// Decode a counter value (4 bytes, little-endian).
pub fn decode_counter(data: &[u8]) -> Result<u32, Error> {
    Ok(u32::from_le_bytes(fixed::<4>(data)?))
}

// ---------------------------------------------------------------- SHA

/// SHA start (mode 0x00): initialise the SHA-256 context.
pub fn sha_start() -> Command {
    Command::new(opcode::SHA, 0x00, 0)
}

/// SHA update (mode 0x01) with exactly 64 bytes.
pub fn sha_update(block: &[u8; 64]) -> Command {
    Command::with_data(opcode::SHA, 0x01, 64, block).unwrap_or(Command::new(0, 0, 0))
}

/// SHA end (mode 0x02) with the last 0–63 bytes; the response is the digest.
pub fn sha_end(tail: &[u8]) -> Result<Command, Error> {
    if tail.len() > 63 {
        return Err(Error::InvalidArgument);
    }
    Command::with_data(opcode::SHA, 0x02, tail.len() as u16, tail)
}

// ---------------------------------------------------------------- UpdateExtra

/// UpdateExtra mode 0x00 (config byte 84) or 0x01 (byte 85, the alternate
/// I2C address) with `value`.
pub fn update_extra(address_byte: bool, value: u8) -> Command {
    Command::new(opcode::UPDATE_EXTRA, address_byte as u8, value as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{parse_command, MAX_PACKET};

    fn wire(c: &Command) -> std::vec::Vec<u8> {
        let mut b = [0u8; MAX_PACKET];
        let n = c.encode(&mut b).unwrap();
        b[..n].to_vec()
    }

    #[test]
    fn byte_exact_packets() {
        assert_eq!(
            wire(&info(InfoMode::Revision)),
            [0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D]
        );
        assert_eq!(
            wire(&random()),
            [0x03, 0x07, 0x1B, 0x00, 0x00, 0x00, 0x24, 0xCD]
        );
        assert_eq!(
            wire(&read(Zone::Config, AccessSize::Block, 0)),
            [0x03, 0x07, 0x02, 0x80, 0x00, 0x00, 0x09, 0xAD]
        );
        assert_eq!(
            wire(&read(Zone::Config, AccessSize::Word, 0x15)),
            [0x03, 0x07, 0x02, 0x00, 0x15, 0x00, 0x17, 0x5D]
        );
        assert_eq!(
            wire(&genkey_public(0)),
            [0x03, 0x07, 0x40, 0x00, 0x00, 0x00, 0x00, 0x05]
        );
        assert_eq!(
            wire(&lock(LockTarget::Config, None).unwrap()),
            [0x03, 0x07, 0x17, 0x80, 0x00, 0x00, 0x39, 0x8D]
        );
        assert_eq!(
            wire(&lock(LockTarget::Data, None).unwrap()),
            [0x03, 0x07, 0x17, 0x81, 0x00, 0x00, 0x3A, 0x07]
        );
    }

    #[test]
    fn modes_and_params() {
        let c = lock(LockTarget::Slot(8), None).unwrap();
        assert_eq!((c.param1, c.param2), (0xA2, 0));
        let c = lock(LockTarget::Slot(8), Some(0xBEEF)).unwrap();
        assert_eq!((c.param1, c.param2), (0x22, 0xBEEF));
        assert!(lock(LockTarget::Slot(16), None).is_err());
        let c = lock(LockTarget::Config, Some(0x1234)).unwrap();
        assert_eq!((c.param1, c.param2), (0x00, 0x1234));
        assert_eq!(genkey_create(2).param1, 0x04);
        assert_eq!(genkey_create(2).param2, 2);
        assert_eq!(
            sign_external(0, MessageSource::MsgDigestBuffer).param1,
            0xA0
        );
        assert_eq!(sign_external(0, MessageSource::TempKey).param1, 0x80);
        let n = nonce_passthrough(NonceTarget::MsgDigestBuffer, &[7; 32]).unwrap();
        assert_eq!((n.param1, n.count()), (0x43, 39));
        let n = nonce_passthrough(NonceTarget::TempKey, &[7; 64]).unwrap();
        assert_eq!((n.param1, n.count()), (0x23, 71));
        assert_eq!(
            nonce_passthrough(NonceTarget::AltKeyBuffer, &[7; 32])
                .unwrap()
                .param1,
            0x83
        );
        assert!(nonce_passthrough(NonceTarget::TempKey, &[7; 31]).is_err());
        let n = nonce_random(&[1; 20], true);
        assert_eq!((n.param1, n.count()), (0x00, 27));
        let v = verify_external(MessageSource::MsgDigestBuffer, &[1; 64], &[2; 64]);
        assert_eq!((v.param1, v.param2, v.count()), (0x22, 0x0004, 135));
        assert_eq!(&v.data()[..64], &[1; 64]);
        let w = write(Zone::Data, 0x0040, &[9; 32]).unwrap();
        assert_eq!((w.param1, w.count()), (0x82, 39));
        let w = write(Zone::Config, 0x0004, &[9; 4]).unwrap();
        assert_eq!((w.param1, w.count()), (0x00, 11));
        assert!(write(Zone::Data, 0, &[0; 5]).is_err());
        let we = write_encrypted(Zone::Data, 0x40, &[1; 32], &[2; 32]).unwrap();
        assert_eq!((we.param1, we.count()), (0xC2, 71));
        assert_eq!(self_test(selftest::ALL).param1, 0x3B);
        assert_eq!(counter_increment(1).unwrap().param2, 1);
        assert!(counter_read(2).is_err());
        assert_eq!(sha_update(&[0; 64]).count(), 71);
        assert_eq!(sha_end(&[0; 10]).unwrap().param2, 10);
        assert!(sha_end(&[0; 64]).is_err());
        assert_eq!(update_extra(true, 0x70).param1, 1);
        assert_eq!(info(InfoMode::KeyValid(3)).param2, 3);
    }

    #[test]
    fn every_builder_parses_back() {
        let cmds = [
            info(InfoMode::State),
            read(Zone::Data, AccessSize::Block, 0x0C40),
            write(Zone::Otp, 0x08, &[3; 32]).unwrap(),
            genkey_create(3),
            sign_external(0, MessageSource::MsgDigestBuffer),
            verify_external(MessageSource::TempKey, &[5; 64], &[6; 64]),
            self_test(selftest::ECDSA),
            counter_read(0).unwrap(),
            sha_start(),
        ];
        for c in cmds {
            let mut b = [0u8; MAX_PACKET];
            let n = c.encode_body(&mut b).unwrap();
            let p = parse_command(&b[..n]).unwrap();
            assert_eq!(
                (p.opcode, p.param1, p.param2, p.data),
                (c.opcode, c.param1, c.param2, c.data())
            );
        }
    }

    #[test]
    fn decoders_check_sizes() {
        assert_eq!(decode_info(&[0, 0, 0x60, 3]).unwrap(), [0, 0, 0x60, 3]);
        assert!(decode_info(&[0, 0, 0x60]).is_err());
        assert!(decode_public_key(&[0; 63]).is_err());
        assert!(decode_signature(&[0; 64]).is_ok());
        assert_eq!(decode_counter(&[1, 0, 0, 0]).unwrap(), 1);
        assert_eq!(decode_verify(Ok(&[])), Ok(true));
        assert_eq!(decode_verify(Err(Error::Miscompare)), Ok(false));
        assert_eq!(decode_verify(Err(Error::Execution)), Err(Error::Execution));
        assert!(decode_read(&[0; 4], AccessSize::Block).is_err());
        assert_eq!(opcode::name(opcode::SIGN), "Sign");
    }
}
