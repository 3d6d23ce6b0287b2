//! The SHA command (SHA-256 and, on the 608, HMAC/SHA-256 with a slot
//! key, digests to TempKey or the message digest buffer), AES (ECB and
//! GFM) and KDF (PRF, AES, HKDF).

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use aes::Aes128;
use coffre_proto::config::{offset, KeyType};
use coffre_proto::packet::CommandRef;
use coffre_proto::Status;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::exec::{slot_param, status, Outcome, OK};
use super::{silicon, Atecc608, Register, ShaContext};

type HmacSha256 = Hmac<Sha256>;

fn block16(b: &[u8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[..16]);
    a
}

/// GF(2^128) multiplication as GCM defines it (NIST SP 800-38D, Algorithm
/// 1): bit 0 is the most significant bit of byte 0, R = 0xE1 ‖ 0^120.
pub(crate) fn gf_mult(x: &[u8; 16], h: &[u8; 16]) -> [u8; 16] {
    let x = u128::from_be_bytes(*x);
    let mut v = u128::from_be_bytes(*h);
    let mut z = 0u128;
    for i in 0..128 {
        if x >> (127 - i) & 1 == 1 {
            z ^= v;
        }
        v = if v & 1 == 1 {
            (v >> 1) ^ (0xE1u128 << 120)
        } else {
            v >> 1
        };
    }
    z.to_be_bytes()
}

/// TLS 1.2 PRF with HMAC-SHA256 (RFC 5246 §5), P_SHA256(key, message):
/// what KDF PRF computes (checked against CryptoAuthLib's silicon vector
/// in `atca_tests_kdf.c`).
pub(crate) fn prf_sha256(key: &[u8], message: &[u8], out_len: usize) -> Zeroizing<Vec<u8>> {
    let mac = |data: &[&[u8]]| {
        let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key size");
        for d in data {
            m.update(d);
        }
        m.finalize().into_bytes()
    };
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + 32));
    let mut a = mac(&[message]);
    while out.len() < out_len {
        out.extend_from_slice(&mac(&[&a, message]));
        a = mac(&[&a]);
    }
    out.truncate(out_len);
    out
}

impl Atecc608 {
    // ------------------------------------------------------------ SHA

    pub(crate) fn cmd_sha(&mut self, c: &CommandRef<'_>) -> Outcome {
        let target = c.param1 & 0xC0;
        match c.param1 & 0x07 {
            0x00 => {
                if !c.data.is_empty() || c.param1 != 0 {
                    return status(Status::Parse);
                }
                self.vol.sha = Some(ShaContext::Plain(Sha256::new()));
                OK
            }
            0x04 => {
                // HMAC start: the key is the slot in param2, or TempKey's
                // first 32 bytes for key id 0xFFFF (CAL `atcab_sha_hmac`
                // with ATCA_TEMPKEY_KEYID; `atca_tests_sha.c`
                // sha_hmac_tempkey runs it on 608 silicon).
                if !c.data.is_empty() || c.param1 != 0x04 {
                    return status(Status::Parse);
                }
                let key = if c.param2 == 0xFFFF {
                    let tk = self.tempkey()?;
                    if tk.ecc_private {
                        return status(Status::Execution);
                    }
                    let mut k = Zeroizing::new([0u8; 32]);
                    k.copy_from_slice(&tk.value[..32]);
                    k
                } else {
                    let slot = slot_param(c.param2)?;
                    let key = self.symmetric_key(slot)?;
                    if self.nv.config.slot_config(slot).no_mac() {
                        return status(Status::Execution);
                    }
                    key
                };
                let mac =
                    <HmacSha256 as Mac>::new_from_slice(&key[..]).map_err(|_| Status::Execution)?;
                self.vol.sha = Some(ShaContext::Hmac(Box::new(mac)));
                OK
            }
            0x01 => {
                if c.data.len() != 64 || c.param1 != 0x01 {
                    return status(Status::Parse);
                }
                match self.vol.sha.as_mut().ok_or(Status::Execution)? {
                    ShaContext::Plain(h) => h.update(c.data),
                    ShaContext::Hmac(m) => m.update(c.data),
                }
                OK
            }
            0x02 => {
                if c.data.len() > 63 || c.param2 as usize != c.data.len() || target == 0x80 {
                    return status(Status::Parse);
                }
                let digest: [u8; 32] = match self.vol.sha.take().ok_or(Status::Execution)? {
                    ShaContext::Plain(mut h) => {
                        h.update(c.data);
                        h.finalize().into()
                    }
                    ShaContext::Hmac(mut m) => {
                        m.update(c.data);
                        m.finalize().into_bytes().into()
                    }
                };
                // Bits 7:6: 00 TempKey, 01 message digest buffer, 11 output
                // only; the digest is always returned too.
                match target {
                    0x00 => self.set_tempkey(Register::new(&digest, false)),
                    0x40 => self.vol.msg_digest = Some(Register::new(&digest, false)),
                    _ => {}
                }
                Ok(digest.to_vec())
            }
            _ => status(Status::Parse),
        }
    }

    // ------------------------------------------------------------ AES

    /// The 16-byte AES key `block` of `slot` (KeyType AES), or of TempKey
    /// when `key_id` is 0xFFFF.
    fn aes_key(&self, key_id: u16, block: usize) -> Result<Zeroizing<[u8; 16]>, Status> {
        let mut k = Zeroizing::new([0u8; 16]);
        if key_id == 0xFFFF {
            let tk = self.tempkey()?;
            k.copy_from_slice(&tk.value[16 * block..16 * block + 16]);
            return Ok(k);
        }
        let slot = slot_param(key_id)?;
        if self.nv.config.key_config(slot).key_type() != KeyType::Aes {
            return Err(Status::Execution);
        }
        self.check_auth(slot)?;
        let s = self.nv.slot(slot);
        if 16 * block + 16 > s.len() {
            return Err(Status::Execution);
        }
        k.copy_from_slice(&s[16 * block..16 * block + 16]);
        Ok(k)
    }

    pub(crate) fn cmd_aes(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0xC7 != 0 {
            return status(Status::Parse);
        }
        let op = mode & 0x07;
        let want = match op {
            0x00 | 0x01 => 16,
            0x03 => 32,
            _ => return status(Status::Parse),
        };
        if c.data.len() != want {
            return status(Status::Parse);
        }
        // AES_Enable (config byte 13, bit 0).
        if self.nv.config.as_bytes()[offset::AES_ENABLE] & 0x01 == 0 || !self.config_locked() {
            return status(Status::Execution);
        }
        if op == 0x03 {
            let mut h = [0u8; 16];
            let mut x = [0u8; 16];
            h.copy_from_slice(&c.data[..16]);
            x.copy_from_slice(&c.data[16..]);
            return Ok(gf_mult(&x, &h).to_vec());
        }
        let key = self.aes_key(c.param2, (mode >> 6) as usize)?;
        let cipher = Aes128::new_from_slice(&key[..]).map_err(|_| Status::Execution)?;
        let mut block = aes::Block::from(block16(c.data));
        if op == 0x00 {
            cipher.encrypt_block(&mut block);
        } else {
            cipher.decrypt_block(&mut block);
        }
        Ok(block.to_vec())
    }

    // ------------------------------------------------------------ KDF

    pub(crate) fn cmd_kdf(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & 0x80 != 0 || c.data.len() < 4 {
            return status(Status::Parse);
        }
        let details = u32::from_le_bytes([c.data[0], c.data[1], c.data[2], c.data[3]]);
        let msg = &c.data[4..];
        let alg = mode & 0x60;
        let msg_len = match alg {
            0x20 => 16,
            0x00 | 0x40 => (details >> 24) as usize,
            _ => return status(Status::Parse),
        };
        if msg.len() != msg_len || (alg != 0x20 && msg_len > 128) {
            return status(Status::Parse);
        }
        let target = mode & 0x1C;
        if target > 0x14 {
            return status(Status::Parse);
        }
        if !self.config_locked() {
            return status(Status::Execution);
        }
        let source_slot = c.param2 as u8;
        let target_slot = (c.param2 >> 8) as u8;
        // The source key: TempKey, its upper 32 bytes, a slot, or the
        // alternate key buffer (mode bits 1:0).
        let source: Zeroizing<Vec<u8>> = match mode & 0x03 {
            0x00 => Zeroizing::new(self.tempkey()?.value[..].to_vec()),
            0x01 => Zeroizing::new(self.tempkey()?.value[32..].to_vec()),
            0x02 => {
                if source_slot > 15 {
                    return status(Status::Parse);
                }
                if self.is_private_slot(source_slot) {
                    return status(Status::Execution);
                }
                self.check_auth(source_slot)?;
                Zeroizing::new(self.nv.slot(source_slot).to_vec())
            }
            _ => Zeroizing::new(
                self.vol
                    .alt_key
                    .as_ref()
                    .ok_or(Status::Execution)?
                    .value
                    .to_vec(),
            ),
        };
        let result: Zeroizing<Vec<u8>> = match alg {
            0x00 => {
                if details & 0x0000_0600 != 0 {
                    // AEAD processing is not emulated.
                    return status(Status::Parse);
                }
                let key_len = 16 * (1 + (details & 0x03) as usize);
                let out_len = if details & 0x100 != 0 { 64 } else { 32 };
                if source.len() < key_len {
                    return status(Status::Execution);
                }
                prf_sha256(&source[..key_len], msg, out_len)
            }
            0x20 => {
                if self.nv.config.chip_options() & 0x0004 == 0 {
                    return status(Status::Execution);
                }
                let loc = (details & 0x03) as usize;
                if source.len() < 16 * loc + 16 {
                    return status(Status::Execution);
                }
                let cipher = Aes128::new_from_slice(&source[16 * loc..16 * loc + 16])
                    .map_err(|_| Status::Execution)?;
                let mut block = aes::Block::from(block16(msg));
                cipher.encrypt_block(&mut block);
                let mut out = Zeroizing::new(vec![0u8; 32]);
                out[..16].copy_from_slice(&block);
                out
            }
            _ => {
                let zero_key = [0u8; 32];
                let key: &[u8] = if details & 0x04 != 0 {
                    &zero_key
                } else {
                    &source[..32.min(source.len())]
                };
                let message: Zeroizing<Vec<u8>> = match details & 0x03 {
                    0x00 => {
                        // The message is in the slot named by KeyID bits 7:0.
                        if source_slot > 15 {
                            return status(Status::Parse);
                        }
                        if self.is_private_slot(source_slot) {
                            return status(Status::Execution);
                        }
                        Zeroizing::new(self.nv.slot(source_slot)[..].to_vec())
                    }
                    0x01 => Zeroizing::new(self.tempkey()?.value[..32].to_vec()),
                    _ => Zeroizing::new(msg.to_vec()),
                };
                // HKDF here is one HMAC-SHA256(key, message): the Extract
                // step, Expand done by the caller (see silicon.rs).
                const { assert!(silicon::KDF_HKDF_IS_ONE_HMAC) };
                let mut m =
                    <HmacSha256 as Mac>::new_from_slice(key).map_err(|_| Status::Execution)?;
                m.update(&message);
                Zeroizing::new(m.finalize().into_bytes().to_vec())
            }
        };
        match target {
            0x00 => {
                self.set_tempkey(Register::new(&result, false));
                OK
            }
            0x04 => {
                let mut tk = self.tempkey()?.clone();
                tk.value[32..32 + result.len().min(32)]
                    .copy_from_slice(&result[..result.len().min(32)]);
                tk.len = 64;
                self.set_tempkey(tk);
                OK
            }
            0x08 => {
                if target_slot > 15 {
                    return status(Status::Parse);
                }
                if self.is_private_slot(target_slot) || self.nv.config.slot_locked(target_slot) {
                    return status(Status::Execution);
                }
                let s = self.nv.slot_mut(target_slot);
                let n = result.len().min(s.len());
                s[..n].copy_from_slice(&result[..n]);
                self.save();
                OK
            }
            0x0C => {
                self.vol.alt_key = Some(Register::new(&result, false));
                OK
            }
            _ => {
                // ChipOptions bits 11:10 guard KDF output like the ECDH bits.
                let prot = (self.nv.config.chip_options() >> 10) & 0x03;
                let encrypt = target == 0x14;
                if prot >= 2 || (prot == 1 && !encrypt) {
                    return status(silicon::KDF_OUTPUT_REFUSED);
                }
                let mut out = result.to_vec();
                if encrypt {
                    let nonce = self.io_encrypt(&mut out)?;
                    out.extend_from_slice(&nonce);
                }
                Ok(out)
            }
        }
    }
}
