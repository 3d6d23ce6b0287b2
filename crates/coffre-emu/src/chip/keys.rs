//! What several command families share: the serial number as the chip
//! hashes it, slot keys and their use conditions (ReqAuth, ReqRandom,
//! NoMac), TempKey checks, and the IO-protection encryption of outputs.

use coffre_proto::config::KeyType;
use coffre_proto::Status;
use p256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Atecc608, Register};

impl Atecc608 {
    /// The 9-byte serial number (config bytes 0–3 and 8–12).
    pub(crate) fn sn(&self) -> [u8; 9] {
        self.nv.config.serial_number()
    }

    /// Write a new TempKey (kept past the end-of-command clearing rule).
    pub(crate) fn set_tempkey(&mut self, reg: Register) {
        self.vol.tempkey = Some(reg);
        self.vol.tempkey_written = true;
    }

    /// The valid TempKey, or an execution error.
    pub(crate) fn tempkey(&self) -> Result<&Register, Status> {
        self.vol.tempkey.as_ref().ok_or(Status::Execution)
    }

    /// TempKey as Read/Write/PrivWrite encryption need it: made by GenDig
    /// over `key` (when given), not from a NoMac key. `random` also asks
    /// for a random nonce (SourceFlag = 0), as encrypted reads do (CAL
    /// `atcah_decrypt`).
    pub(crate) fn gendig_tempkey_for(
        &self,
        key: Option<u8>,
        random: bool,
    ) -> Result<Zeroizing<[u8; 32]>, Status> {
        let tk = self.tempkey()?;
        if tk.no_mac || (random && tk.from_input) {
            return Err(Status::Execution);
        }
        if let Some(k) = key {
            if !tk.gen_dig_data || tk.key_id != k {
                return Err(Status::Execution);
            }
        }
        Ok(Zeroizing::new(tk.digest()))
    }

    /// TempKey for an encrypted Read with `read_key`.
    pub(crate) fn gendig_tempkey(&self, read_key: u8) -> Result<Zeroizing<[u8; 32]>, Status> {
        self.gendig_tempkey_for(Some(read_key), true)
    }

    /// The first 32 bytes of `slot`, as a symmetric key.
    pub(crate) fn slot_key(&self, slot: u8) -> Zeroizing<[u8; 32]> {
        let mut k = Zeroizing::new([0u8; 32]);
        let s = self.nv.slot(slot);
        let n = s.len().min(32);
        k[..n].copy_from_slice(&s[..n]);
        k
    }

    /// The P-256 private key stored in `slot` (bytes 4–35), if valid.
    pub(crate) fn private_key(&self, slot: u8) -> Option<SigningKey> {
        let bytes = self.nv.slot(slot);
        SigningKey::from_slice(&bytes[4..36]).ok()
    }

    /// Whether `slot` holds an ECC private key by configuration.
    pub(crate) fn is_private_slot(&self, slot: u8) -> bool {
        let kc = self.nv.config.key_config(slot);
        kc.private() && kc.key_type() == KeyType::P256
    }

    /// KeyConfig.ReqAuth: a key that requires authorization may only be
    /// used after a CheckMac with its AuthKey matched (DS508 §2.2.5).
    pub(crate) fn check_auth(&self, slot: u8) -> Result<(), Status> {
        let kc = self.nv.config.key_config(slot);
        if kc.req_auth() && self.vol.auth != Some(kc.auth_key()) {
            return Err(Status::Execution);
        }
        Ok(())
    }

    /// KeyConfig.ReqRandom: the command must use a TempKey made from a
    /// random nonce (SourceFlag = 0).
    pub(crate) fn check_req_random(
        &self,
        slot: u8,
        uses_random_tempkey: bool,
    ) -> Result<(), Status> {
        if self.nv.config.key_config(slot).req_random() && !uses_random_tempkey {
            return Err(Status::Execution);
        }
        Ok(())
    }

    /// A slot used as a symmetric (SHA/HMAC) key: not an ECC private key,
    /// authorized when ReqAuth is set.
    pub(crate) fn symmetric_key(&self, slot: u8) -> Result<Zeroizing<[u8; 32]>, Status> {
        if slot > 15 || self.is_private_slot(slot) {
            return Err(Status::Execution);
        }
        self.check_auth(slot)?;
        Ok(self.slot_key(slot))
    }

    /// The IO protection key (ChipOptions bit 1 and bits 15:12), or an
    /// execution error when IO protection is not enabled.
    pub(crate) fn io_key(&self) -> Result<Zeroizing<[u8; 32]>, Status> {
        let slot = self
            .nv
            .config
            .io_protection_key()
            .ok_or(Status::Execution)?;
        Ok(self.slot_key(slot))
    }

    /// Encrypt `data` (a multiple of 32 bytes) with the IO protection key:
    /// block i is XORed with SHA-256(IOKey ‖ OutNonce[16·i .. 16·i+16]),
    /// the inverse of CAL `atcah_io_decrypt`. Returns the random OutNonce.
    pub(crate) fn io_encrypt(&self, data: &mut [u8]) -> Result<[u8; 32], Status> {
        let key = self.io_key()?;
        let nonce = self.random_bytes();
        for (i, block) in data.chunks_mut(32).enumerate() {
            let mut h = Sha256::new();
            h.update(&key[..]);
            h.update(&nonce[16 * i..16 * i + 16]);
            let mask = Zeroizing::new(<[u8; 32]>::from(h.finalize()));
            for (b, m) in block.iter_mut().zip(mask.iter()) {
                *b ^= m;
            }
        }
        Ok(nonce)
    }
}
