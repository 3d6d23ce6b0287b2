//! Typed commands on top of [`Atecc::execute`].

use coffre_proto::command::{self, AccessSize, InfoMode, LockTarget, MessageSource, NonceTarget};
use coffre_proto::config::{offset, ConfigZone, DeviceFamily, UNLOCKED};
use coffre_proto::packet::{Command, MAX_RESPONSE};
use coffre_proto::zone::{self, Zone, BLOCK_SIZE, CONFIG_SIZE, WORD_SIZE};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::driver::{wipe, Atecc};
use crate::error::Error;

/// Config word holding bytes 84–87: UserExtra, UserExtraAdd, LockValue,
/// LockConfig.
pub const LOCK_WORD_ADDRESS: u16 = 0x15;
/// Config word holding bytes 88–91: SlotLocked (2 bytes), ChipOptions.
pub const SLOT_LOCKED_WORD_ADDRESS: u16 = 0x16;

/// The lock state of a chip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LockStatus {
    /// The config zone is locked (LockConfig ≠ 0x55).
    pub config_locked: bool,
    /// The data and OTP zones are locked (LockValue ≠ 0x55).
    pub data_locked: bool,
    /// Bit n = 1 means slot n is locked on its own (Lock mode 0x02). This is
    /// the complement of the chip's SlotLocked field, where 0 means locked.
    pub slot_locked: u16,
}

impl LockStatus {
    /// Decode from config bytes 84–87 and 88–91.
    pub fn from_words(lock_word: [u8; 4], slot_word: [u8; 4]) -> LockStatus {
        LockStatus {
            data_locked: lock_word[2] != UNLOCKED,
            config_locked: lock_word[3] != UNLOCKED,
            slot_locked: !u16::from_le_bytes([slot_word[0], slot_word[1]]),
        }
    }

    /// Decode from a whole config zone.
    pub fn from_config(config: &ConfigZone) -> LockStatus {
        let b = config.as_bytes();
        let w = |at: usize| [b[at], b[at + 1], b[at + 2], b[at + 3]];
        LockStatus::from_words(w(offset::USER_EXTRA), w(offset::SLOT_LOCKED))
    }

    /// Whether slot `slot` is locked on its own.
    pub fn slot_is_locked(&self, slot: u8) -> bool {
        slot < 16 && self.slot_locked & (1 << slot) != 0
    }
}

fn arg<T, E>(r: Result<T, coffre_proto::Error>, what: &'static str) -> Result<T, Error<E>> {
    r.map_err(|_| Error::InvalidArgument(what))
}

fn decoded<T, E>(r: Result<T, coffre_proto::Error>) -> Result<T, Error<E>> {
    r.map_err(Error::Protocol)
}

fn slot_geometry<E>(slot: u8) -> Result<usize, Error<E>> {
    zone::slot_size(slot).ok_or(Error::InvalidArgument("slot must be 0 to 15"))
}

fn data_address<E>(slot: u8, block: usize, word: usize) -> Result<u16, Error<E>> {
    arg(
        zone::data_address(slot, block as u8, word as u8),
        "block or word past the end of the slot",
    )
}

impl<I2C, D, E> Atecc<I2C, D>
where
    I2C: I2c<Error = E>,
    E: embedded_hal::i2c::Error,
    D: DelayNs,
{
    /// Execute `cmd` and hand its data to `f`; the response buffer is wiped
    /// afterwards.
    fn run<T>(
        &mut self,
        cmd: &Command,
        f: impl FnOnce(&[u8]) -> Result<T, coffre_proto::Error>,
    ) -> Result<T, Error<E>> {
        let mut rsp = [0u8; MAX_RESPONSE];
        let r = match self.execute(cmd, &mut rsp) {
            Ok(data) => decoded(f(data)),
            Err(e) => Err(e),
        };
        wipe(&mut rsp);
        r
    }

    /// Execute a command whose answer is exactly `N` data bytes.
    pub(crate) fn run_fixed<const N: usize>(&mut self, cmd: &Command) -> Result<[u8; N], Error<E>> {
        self.run(cmd, |d| {
            if d.len() == N {
                let mut out = [0u8; N];
                out.copy_from_slice(d);
                Ok(out)
            } else {
                Err(coffre_proto::Error::UnexpectedResponseSize {
                    expected: N,
                    got: d.len(),
                })
            }
        })
    }

    /// Execute a command whose success answer is the status 0x00.
    pub(crate) fn execute_status(&mut self, cmd: &Command) -> Result<(), Error<E>> {
        self.run_status(cmd)
    }

    /// Execute a command whose success answer is the status 0x00.
    fn run_status(&mut self, cmd: &Command) -> Result<(), Error<E>> {
        self.run(cmd, |d| {
            if d.is_empty() {
                Ok(())
            } else {
                Err(coffre_proto::Error::UnexpectedResponseSize {
                    expected: 0,
                    got: d.len(),
                })
            }
        })
    }

    /// Info (revision): 4 bytes, `00 00 60 03` on an ATECC608B.
    pub fn info_revision(&mut self) -> Result<[u8; 4], Error<E>> {
        self.run(&command::info(InfoMode::Revision), command::decode_info)
    }

    /// The device family, from Info (revision).
    pub fn device_family(&mut self) -> Result<DeviceFamily, Error<E>> {
        Ok(DeviceFamily::from_revision(&self.info_revision()?))
    }

    /// Read 4 or 32 bytes (`size`) from `zone` at `address` (see
    /// [`coffre_proto::zone`] for the address encoding) into `buf`, which
    /// must be exactly `size` bytes long.
    pub fn read(
        &mut self,
        zone: Zone,
        size: AccessSize,
        address: u16,
        buf: &mut [u8],
    ) -> Result<(), Error<E>> {
        if buf.len() != size.len() {
            return Err(Error::InvalidArgument(
                "the read buffer must be as long as the access size (4 or 32 bytes)",
            ));
        }
        self.run(&command::read(zone, size, address), |d| {
            let d = command::decode_read(d, size)?;
            buf.copy_from_slice(d);
            Ok(())
        })
    }

    /// Write 4 or 32 clear bytes to `zone` at `address`.
    pub fn write(&mut self, zone: Zone, address: u16, data: &[u8]) -> Result<(), Error<E>> {
        let cmd = arg(
            command::write(zone, address, data),
            "a write carries exactly 4 or 32 bytes",
        )?;
        self.run_status(&cmd)
    }

    /// The 128-byte config zone, in four 32-byte reads.
    pub fn read_config_zone(&mut self) -> Result<ConfigZone, Error<E>> {
        let mut bytes = [0u8; CONFIG_SIZE];
        for (block, chunk) in bytes.chunks_exact_mut(BLOCK_SIZE).enumerate() {
            let address = zone::config_address(block as u8, 0);
            self.read(Zone::Config, AccessSize::Block, address, chunk)?;
        }
        Ok(ConfigZone::from_bytes(bytes))
    }

    /// The 9-byte serial number (config bytes 0–3 and 8–12), from one 32-byte
    /// read of config block 0.
    pub fn serial_number(&mut self) -> Result<[u8; 9], Error<E>> {
        let mut b = [0u8; BLOCK_SIZE];
        self.read(Zone::Config, AccessSize::Block, 0, &mut b)?;
        let mut sn = [0u8; 9];
        sn[..4].copy_from_slice(&b[0..4]);
        sn[4..].copy_from_slice(&b[8..13]);
        Ok(sn)
    }

    /// Read the whole of data slot `slot` into `buf` and return its size
    /// (slots 0–7: 36 bytes, slot 8: 416, slots 9–15: 72).
    ///
    /// Whole blocks are read with 32-byte reads at `(slot << 3) | (block <<
    /// 8)`; the final partial block of a 36- or 72-byte slot is read in
    /// 4-byte words, as CryptoAuthLib's `calib_read_bytes_zone` does.
    /// `buf` must hold at least the slot size.
    pub fn read_slot(&mut self, slot: u8, buf: &mut [u8]) -> Result<usize, Error<E>> {
        let size = slot_geometry(slot)?;
        if buf.len() < size {
            return Err(Error::InvalidArgument(
                "the buffer is smaller than the slot (36, 416 or 72 bytes)",
            ));
        }
        let full_blocks = size / BLOCK_SIZE;
        for block in 0..full_blocks {
            let address = data_address(slot, block, 0)?;
            let at = block * BLOCK_SIZE;
            self.read(
                Zone::Data,
                AccessSize::Block,
                address,
                &mut buf[at..at + BLOCK_SIZE],
            )?;
        }
        let tail_words = (size % BLOCK_SIZE) / WORD_SIZE;
        for word in 0..tail_words {
            let address = data_address(slot, full_blocks, word)?;
            let at = full_blocks * BLOCK_SIZE + word * WORD_SIZE;
            self.read(
                Zone::Data,
                AccessSize::Word,
                address,
                &mut buf[at..at + WORD_SIZE],
            )?;
        }
        Ok(size)
    }

    /// Write `data` to data slot `slot` from its start, in 32-byte block
    /// writes at `(slot << 3) | (block << 8)`; the last block is padded with
    /// zeros. Data larger than the slot is refused before anything is sent.
    ///
    /// A 36- or 72-byte slot whose data reaches its last, partial block gets
    /// a 32-byte write there too (as CryptoAuthLib's `calib_write_pubkey`
    /// does); the chip keeps the bytes inside the slot.
    pub fn write_slot(&mut self, slot: u8, data: &[u8]) -> Result<(), Error<E>> {
        let size = slot_geometry(slot)?;
        if data.len() > size {
            return Err(Error::InvalidArgument(
                "the data is larger than the slot (36, 416 or 72 bytes)",
            ));
        }
        if data.is_empty() {
            return Err(Error::InvalidArgument("no data to write"));
        }
        for (block, chunk) in data.chunks(BLOCK_SIZE).enumerate() {
            let address = data_address(slot, block, 0)?;
            let mut padded = [0u8; BLOCK_SIZE];
            padded[..chunk.len()].copy_from_slice(chunk);
            let r = self.write(Zone::Data, address, &padded);
            wipe(&mut padded);
            r?;
        }
        Ok(())
    }

    /// The lock state: one 4-byte read of config word 0x15 (LockValue,
    /// LockConfig) and one of word 0x16 (SlotLocked).
    pub fn lock_status(&mut self) -> Result<LockStatus, Error<E>> {
        let mut lock_word = [0u8; WORD_SIZE];
        let mut slot_word = [0u8; WORD_SIZE];
        self.read(
            Zone::Config,
            AccessSize::Word,
            LOCK_WORD_ADDRESS,
            &mut lock_word,
        )?;
        self.read(
            Zone::Config,
            AccessSize::Word,
            SLOT_LOCKED_WORD_ADDRESS,
            &mut slot_word,
        )?;
        Ok(LockStatus::from_words(lock_word, slot_word))
    }

    /// Lock the config zone, the data and OTP zones, or one slot. **This
    /// cannot be undone.** With `summary_crc` the chip first checks the
    /// zone's CRC and refuses on mismatch; `None` skips the check.
    pub fn lock(&mut self, target: LockTarget, summary_crc: Option<u16>) -> Result<(), Error<E>> {
        let cmd = arg(command::lock(target, summary_crc), "slot must be 0 to 15")?;
        self.run_status(&cmd)
    }

    /// GenKey (create): make a new P-256 private key in `slot` and return its
    /// public key (X ‖ Y).
    pub fn genkey_create(&mut self, slot: u8) -> Result<[u8; 64], Error<E>> {
        self.run(&command::genkey_create(slot), command::decode_public_key)
    }

    /// GenKey (public): the public key (X ‖ Y) of the private key in `slot`.
    pub fn genkey_public(&mut self, slot: u8) -> Result<[u8; 64], Error<E>> {
        self.run(&command::genkey_public(slot), command::decode_public_key)
    }

    /// Nonce (pass-through): load 32 or 64 bytes into `target` unchanged.
    pub fn nonce_passthrough(&mut self, target: NonceTarget, input: &[u8]) -> Result<(), Error<E>> {
        let cmd = arg(
            command::nonce_passthrough(target, input),
            "a pass-through nonce carries 32 or 64 bytes",
        )?;
        self.run_status(&cmd)
    }

    /// Nonce (random, seed update): the chip mixes `num_in` with a random
    /// number into TempKey and returns the 32-byte random number.
    pub fn nonce_random(&mut self, num_in: &[u8; 20]) -> Result<[u8; 32], Error<E>> {
        self.run(&command::nonce_random(num_in, true), command::decode_32)
    }

    /// Random (seed update): 32 random bytes. Before the config zone is
    /// locked the chip returns the fixed pattern `FF FF 00 00` × 8.
    pub fn random(&mut self) -> Result<[u8; 32], Error<E>> {
        self.run(&command::random(), command::decode_32)
    }

    /// Sign a 32-byte digest with the private key in `slot`, as
    /// CryptoAuthLib's `calib_sign` does on a 608: Nonce mode 0x43 loads the
    /// digest into the message digest buffer, then Sign mode 0xA0. Returns
    /// R ‖ S (big-endian). The digest is the SHA-256 of the message, computed
    /// by the caller.
    pub fn sign_digest(&mut self, slot: u8, digest: &[u8; 32]) -> Result<[u8; 64], Error<E>> {
        self.nonce_passthrough(NonceTarget::MsgDigestBuffer, digest)?;
        self.run(
            &command::sign_external(slot, MessageSource::MsgDigestBuffer),
            command::decode_signature,
        )
    }

    /// Verify a signature (R ‖ S) over a 32-byte digest with a P-256 public
    /// key (X ‖ Y): Nonce mode 0x43, then Verify mode 0x22 with key type
    /// 0x0004. `Ok(false)` when the chip reports a miscompare.
    pub fn verify_extern(
        &mut self,
        digest: &[u8; 32],
        signature: &[u8; 64],
        public_key: &[u8; 64],
    ) -> Result<bool, Error<E>> {
        self.nonce_passthrough(NonceTarget::MsgDigestBuffer, digest)?;
        let cmd = command::verify_external(MessageSource::MsgDigestBuffer, signature, public_key);
        match self.run_status(&cmd) {
            Ok(()) => Ok(true),
            Err(Error::Chip(coffre_proto::Error::Miscompare)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// SelfTest with `mode` (see [`coffre_proto::command::selftest`]). A
    /// failure comes back as `Error::Chip(coffre_proto::Error::SelfTest)`.
    pub fn self_test(&mut self, mode: u8) -> Result<(), Error<E>> {
        self.run_status(&command::self_test(mode))
    }

    /// Read monotonic counter 0 or 1.
    pub fn counter_read(&mut self, counter: u8) -> Result<u32, Error<E>> {
        let cmd = arg(command::counter_read(counter), "counter must be 0 or 1")?;
        self.run(&cmd, command::decode_counter)
    }

    /// Increment monotonic counter 0 or 1 and return its new value.
    pub fn counter_increment(&mut self, counter: u8) -> Result<u32, Error<E>> {
        let cmd = arg(
            command::counter_increment(counter),
            "counter must be 0 or 1",
        )?;
        self.run(&cmd, command::decode_counter)
    }

    /// SHA-256 of `data` computed by the chip: SHA start, one SHA update per
    /// full 64-byte block, SHA end with the last 0–63 bytes. The SHA context
    /// lives in the chip's volatile memory and survives idle.
    pub fn sha256(&mut self, data: &[u8]) -> Result<[u8; 32], Error<E>> {
        self.run_status(&command::sha_start())?;
        let full = data.len() / 64 * 64;
        for block in data[..full].chunks_exact(64) {
            let mut b = [0u8; 64];
            b.copy_from_slice(block);
            let r = self.run_status(&command::sha_update(&b));
            wipe(&mut b);
            r?;
        }
        let cmd = arg(
            command::sha_end(&data[full..]),
            "SHA end takes 0 to 63 bytes",
        )?;
        self.run(&cmd, command::decode_32)
    }

    /// UpdateExtra: write config byte 84 (UserExtra, `address_byte = false`)
    /// or byte 85 (UserExtraAdd, the alternate I2C address in 8-bit form,
    /// `address_byte = true`). The new address takes effect only after the
    /// chip sleeps, and only if ChipMode bit 0 is set.
    pub fn update_extra(&mut self, address_byte: bool, value: u8) -> Result<(), Error<E>> {
        self.run_status(&command::update_extra(address_byte, value))
    }
}
