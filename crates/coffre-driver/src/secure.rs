//! Commands that keep secrets off the wire: encrypted Read (Nonce + GenDig +
//! Read), ECDH with a clear or IO-encrypted result, and the host side of
//! each, computed as CryptoAuthLib's `lib/host/atca_host.c` does.

use coffre_proto::command::{opcode, AccessSize};
use coffre_proto::packet::Command;
use coffre_proto::zone::Zone;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use sha2::{Digest, Sha256};

use crate::driver::{wipe, Atecc};
use crate::error::Error;

/// Nonce random mode 0: TempKey = SHA-256(RandOut ‖ NumIn ‖ 16 00 00)
/// (`atcah_nonce`).
pub fn nonce_tempkey(rand_out: &[u8; 32], num_in: &[u8; 20]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(rand_out);
    h.update(num_in);
    h.update([opcode::NONCE, 0x00, 0x00]);
    h.finalize().into()
}

/// GenDig over data slot `slot` holding `key`: the new TempKey
/// (`atcah_gen_dig`, zone 2, OtherData = 15 02 slot 00 so NoMac keys give
/// the same result).
pub fn gendig_tempkey(tempkey: &[u8; 32], slot: u8, key: &[u8; 32], sn: &[u8; 9]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(key);
    h.update([opcode::GENDIG, 0x02, slot, 0x00]);
    h.update([sn[8], sn[0], sn[1]]);
    h.update([0u8; 25]);
    h.update(tempkey);
    h.finalize().into()
}

/// Undo the IO-protection encryption of an ECDH or KDF output
/// (`atcah_io_decrypt`): block i XOR SHA-256(IOKey ‖ OutNonce[16i..16i+16]).
pub fn io_decrypt(io_key: &[u8; 32], out_nonce: &[u8; 32], data: &mut [u8]) {
    for (i, block) in data.chunks_mut(32).enumerate().take(2) {
        let mut h = Sha256::new();
        h.update(io_key);
        h.update(&out_nonce[16 * i..16 * i + 16]);
        let mut mask: [u8; 32] = h.finalize().into();
        for (b, m) in block.iter_mut().zip(mask.iter()) {
            *b ^= m;
        }
        wipe(&mut mask);
    }
}

impl<I2C, D, E> Atecc<I2C, D>
where
    I2C: I2c<Error = E>,
    E: embedded_hal::i2c::Error,
    D: DelayNs,
{
    /// GenDig over data slot `slot` with the 4 bytes of OtherData
    /// CryptoAuthLib sends (`calib_read_enc`).
    pub fn gendig_slot(&mut self, slot: u8) -> Result<(), Error<E>> {
        if slot > 15 {
            return Err(Error::InvalidArgument("slot must be 0 to 15"));
        }
        let cmd = Command::with_data(
            opcode::GENDIG,
            0x02,
            slot as u16,
            &[opcode::GENDIG, 0x02, slot, 0x00],
        )
        .map_err(Error::Protocol)?;
        self.execute_status(&cmd)
    }

    /// Encrypted Read of 32-byte `block` of `slot` (SlotConfig IsSecret and
    /// EncryptRead): Nonce (random, with the host's `num_in`), GenDig over
    /// the read key in `key_slot` whose value is `key`, Read, then XOR with
    /// the TempKey the host computes alongside. What crosses the bus is the
    /// block XOR a one-time key; `num_in` should be fresh random bytes so a
    /// recorded exchange cannot be replayed.
    pub fn read_encrypted(
        &mut self,
        slot: u8,
        block: u8,
        key_slot: u8,
        key: &[u8; 32],
        num_in: &[u8; 20],
    ) -> Result<[u8; 32], Error<E>> {
        let address = coffre_proto::zone::data_address(slot, block, 0)
            .map_err(|_| Error::InvalidArgument("block past the end of the slot"))?;
        // The serial number first: Read clears TempKey.
        let sn = self.serial_number()?;
        let rand = self.nonce_random(num_in)?;
        let mut tk = nonce_tempkey(&rand, num_in);
        self.gendig_slot(key_slot)?;
        let mut tk2 = gendig_tempkey(&tk, key_slot, key, &sn);
        wipe(&mut tk);
        let mut out = [0u8; 32];
        let r = self.read(Zone::Data, AccessSize::Block, address, &mut out);
        if let Err(e) = r {
            wipe(&mut tk2);
            return Err(e);
        }
        for (o, k) in out.iter_mut().zip(tk2.iter()) {
            *o ^= k;
        }
        wipe(&mut tk2);
        Ok(out)
    }

    /// Encrypted Write of 32-byte `block` of `slot` (SlotConfig.WriteConfig
    /// Encrypt, or any slot before the data lock): Nonce (random), GenDig
    /// over the write key in `key_slot` whose value is `key`, then Write
    /// with the block XOR TempKey and its MAC (`atcah_write_auth_mac`).
    pub fn write_encrypted(
        &mut self,
        slot: u8,
        block: u8,
        data: &[u8; 32],
        key_slot: u8,
        key: &[u8; 32],
        num_in: &[u8; 20],
    ) -> Result<(), Error<E>> {
        let address = coffre_proto::zone::data_address(slot, block, 0)
            .map_err(|_| Error::InvalidArgument("block past the end of the slot"))?;
        let sn = self.serial_number()?;
        let rand = self.nonce_random(num_in)?;
        let mut tk = nonce_tempkey(&rand, num_in);
        self.gendig_slot(key_slot)?;
        let mut tk2 = gendig_tempkey(&tk, key_slot, key, &sn);
        wipe(&mut tk);
        let mut cipher = [0u8; 32];
        for (c, (d, k)) in cipher.iter_mut().zip(data.iter().zip(tk2.iter())) {
            *c = d ^ k;
        }
        let zone = 0x80 | 0x40 | Zone::Data.code();
        let mut h = Sha256::new();
        h.update(tk2);
        h.update([opcode::WRITE, zone]);
        h.update(address.to_le_bytes());
        h.update([sn[8], sn[0], sn[1]]);
        h.update([0u8; 25]);
        h.update(data);
        let mac: [u8; 32] = h.finalize().into();
        wipe(&mut tk2);
        let cmd = coffre_proto::command::write_encrypted(Zone::Data, address, &cipher, &mac)
            .map_err(Error::Protocol)?;
        wipe(&mut cipher);
        self.execute_status(&cmd)
    }

    /// ECDH with the private key in `slot` and a peer public key (X ‖ Y),
    /// the shared secret returned in clear (mode 0x0C).
    pub fn ecdh(&mut self, slot: u8, peer: &[u8; 64]) -> Result<[u8; 32], Error<E>> {
        let cmd =
            Command::with_data(opcode::ECDH, 0x0C, slot as u16, peer).map_err(Error::Protocol)?;
        self.run_fixed::<32>(&cmd)
    }

    /// ECDH whose shared secret crosses the bus encrypted with the IO
    /// protection key (mode 0x0E), decrypted here with `io_key`.
    pub fn ecdh_io_encrypted(
        &mut self,
        slot: u8,
        peer: &[u8; 64],
        io_key: &[u8; 32],
    ) -> Result<[u8; 32], Error<E>> {
        let cmd =
            Command::with_data(opcode::ECDH, 0x0E, slot as u16, peer).map_err(Error::Protocol)?;
        let mut both = self.run_fixed::<64>(&cmd)?;
        let mut nonce = [0u8; 32];
        nonce.copy_from_slice(&both[32..]);
        let mut pms = [0u8; 32];
        pms.copy_from_slice(&both[..32]);
        wipe(&mut both);
        io_decrypt(io_key, &nonce, &mut pms);
        Ok(pms)
    }
}
