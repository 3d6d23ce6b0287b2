//! The SHA-256 key family: GenDig, MAC, CheckMac, DeriveKey, PrivWrite and
//! the encrypted Write check. Every message layout is CryptoAuthLib's
//! host-side model (`lib/host/atca_host.c`), which computes what the chip
//! computes.

use coffre_proto::command::opcode;
use coffre_proto::packet::CommandRef;
use coffre_proto::Status;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::exec::{slot_param, status, Outcome, OK};
use super::{silicon, Atecc608};

/// SHA-256 of the concatenation of `parts`.
pub(crate) fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The `atcah_include_data` block of MAC/HMAC messages: OTP bits, the
/// serial number with or without its variable bytes (mode bits 4–6).
pub(crate) fn include_data(mode: u8, otp: &[u8], sn: &[u8; 9]) -> Vec<u8> {
    let mut v = Vec::with_capacity(24);
    if mode & 0x10 != 0 {
        v.extend_from_slice(&otp[..11]);
    } else {
        if mode & 0x20 != 0 {
            v.extend_from_slice(&otp[..8]);
        } else {
            v.extend_from_slice(&[0; 8]);
        }
        v.extend_from_slice(&[0; 3]);
    }
    v.push(sn[8]);
    if mode & 0x40 != 0 {
        v.extend_from_slice(&sn[4..8]);
    } else {
        v.extend_from_slice(&[0; 4]);
    }
    v.extend_from_slice(&sn[0..2]);
    if mode & 0x40 != 0 {
        v.extend_from_slice(&sn[2..4]);
    } else {
        v.extend_from_slice(&[0; 2]);
    }
    v
}

impl Atecc608 {
    // ------------------------------------------------------------ GenDig

    pub(crate) fn cmd_gendig(&mut self, c: &CommandRef<'_>) -> Outcome {
        let zone = c.param1;
        let key_id = c.param2;
        let other = c.data;
        match (zone, other.len()) {
            (0 | 1 | 4 | 5, 0) | (2, 0 | 4) | (3, 32) => {}
            _ => return status(Status::Parse),
        }
        if !self.config_locked() {
            return status(Status::Execution);
        }
        let sn = self.sn();
        let mut tk = self.tempkey()?.clone();
        let mut no_mac = false;
        // (1) the 32-byte input.
        let input: Zeroizing<[u8; 32]> = match zone {
            0 => {
                if key_id > 3 {
                    return status(Status::Parse);
                }
                let mut b = Zeroizing::new([0u8; 32]);
                let o = 32 * key_id as usize;
                b.copy_from_slice(&self.nv.config.as_bytes()[o..o + 32]);
                b
            }
            1 => {
                if key_id > 1 {
                    return status(Status::Parse);
                }
                if silicon::GENDIG_NEEDS_DATA_LOCK && !self.data_locked() {
                    return status(Status::Execution);
                }
                let mut b = Zeroizing::new([0u8; 32]);
                let o = 32 * key_id as usize;
                b.copy_from_slice(&self.nv.otp[o..o + 32]);
                b
            }
            2 => {
                let slot = slot_param(key_id)?;
                if silicon::GENDIG_NEEDS_DATA_LOCK && !self.data_locked() {
                    return status(Status::Execution);
                }
                if self.is_private_slot(slot) {
                    return status(Status::Execution);
                }
                self.check_auth(slot)?;
                self.check_req_random(slot, !tk.from_input)?;
                no_mac = self.nv.config.slot_config(slot).no_mac();
                if no_mac && other.len() != 4 {
                    return status(Status::Execution);
                }
                self.slot_key(slot)
            }
            3 => {
                let mut b = Zeroizing::new([0u8; 32]);
                if key_id & 0x8000 != 0 {
                    b.copy_from_slice(&tk.value[..32]);
                } else {
                    b.copy_from_slice(other);
                }
                b
            }
            4 => {
                if key_id > 1 {
                    return status(Status::Parse);
                }
                Zeroizing::new([0u8; 32])
            }
            5 => {
                slot_param(key_id)?;
                Zeroizing::new([0u8; 32])
            }
            _ => return status(Status::Parse),
        };
        let mut msg = Zeroizing::new(Vec::with_capacity(96));
        msg.extend_from_slice(&input[..]);
        if zone == 2 && no_mac {
            msg.extend_from_slice(&other[..4]);
        } else {
            msg.push(opcode::GENDIG);
            msg.push(zone);
            msg.push(key_id as u8);
            msg.push(if zone == 3 { 0 } else { (key_id >> 8) as u8 });
        }
        msg.push(sn[8]);
        msg.extend_from_slice(&sn[0..2]);
        match zone {
            4 => {
                msg.push(0);
                msg.extend_from_slice(&self.nv.config.counter(key_id as u8).to_le_bytes());
                msg.extend_from_slice(&[0; 20]);
            }
            5 => {
                let slot = key_id as u8;
                msg.push(0);
                msg.extend_from_slice(&self.nv.config.slot_config(slot).0.to_le_bytes());
                msg.extend_from_slice(&self.nv.config.key_config(slot).0.to_le_bytes());
                msg.push(self.nv.config.slot_locked_bits().wrapping_shr(slot as u32) as u8 & 1);
                msg.extend_from_slice(&[0; 19]);
            }
            _ => msg.extend_from_slice(&[0; 25]),
        }
        if zone == 3 && key_id & 0x8000 != 0 {
            msg.extend_from_slice(other);
        } else {
            msg.extend_from_slice(&tk.value[..32]);
        }
        let digest = sha(&[&msg]);
        tk.value[..32].copy_from_slice(&digest);
        tk.value[32..].fill(0);
        tk.len = 32;
        tk.ecc_private = false;
        tk.gen_key_data = false;
        if zone == 2 {
            tk.gen_dig_data = true;
            tk.key_id = key_id as u8 & 0x0F;
            tk.no_mac = no_mac;
        } else {
            tk.gen_dig_data = false;
            tk.key_id = 0;
        }
        self.set_tempkey(tk);
        OK
    }

    // ------------------------------------------------------------ MAC

    /// Check TempKey for MAC/CheckMac/DeriveKey: valid, not NoMac, and its
    /// SourceFlag equal to mode bit 2 (1 = input, 0 = random).
    fn tempkey_matching(&self, mode_bit2: bool) -> Result<Zeroizing<[u8; 32]>, Status> {
        let tk = self.tempkey()?;
        if tk.no_mac || tk.from_input != mode_bit2 {
            return Err(Status::Execution);
        }
        Ok(Zeroizing::new(tk.digest()))
    }

    pub(crate) fn cmd_mac(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0x77 != 0 {
            return status(Status::Parse);
        }
        let block1_tk = mode & 0x02 != 0;
        let block2_tk = mode & 0x01 != 0;
        let want = if block2_tk { 0 } else { 32 };
        if c.data.len() != want {
            return status(Status::Parse);
        }
        let uses_tk = block1_tk || block2_tk;
        let tk = if uses_tk {
            Some(self.tempkey_matching(mode & 0x04 != 0)?)
        } else {
            None
        };
        let random_tk = uses_tk && mode & 0x04 == 0;
        let key = if block1_tk {
            None
        } else {
            let slot = slot_param(c.param2)?;
            let key = self.symmetric_key(slot)?;
            if self.nv.config.slot_config(slot).no_mac() {
                return status(Status::Execution);
            }
            self.check_req_random(slot, random_tk)?;
            Some(key)
        };
        let b1: &[u8] = match (&key, &tk) {
            (Some(k), _) => &k[..],
            (None, Some(t)) => &t[..],
            (None, None) => return status(Status::Execution),
        };
        let b2: &[u8] = if block2_tk {
            tk.as_ref().map(|t| &t[..]).ok_or(Status::Execution)?
        } else {
            c.data
        };
        let p2 = c.param2.to_le_bytes();
        let inc = include_data(mode, &self.nv.otp, &self.sn());
        let mac = sha(&[b1, b2, &[opcode::MAC, mode], &p2, &inc]);
        Ok(mac.to_vec())
    }

    // ------------------------------------------------------------ CheckMac

    pub(crate) fn cmd_checkmac(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0x27 != 0 || c.data.len() != 77 {
            return status(Status::Parse);
        }
        let slot = slot_param(c.param2)?;
        let (challenge, rest) = c.data.split_at(32);
        let (response, other) = rest.split_at(32);
        let uses_tk = mode & 0x03 != 0;
        let tk = if uses_tk {
            Some(self.tempkey_matching(mode & 0x04 != 0)?)
        } else {
            None
        };
        if self.is_private_slot(slot) {
            return status(Status::Execution);
        }
        let key = self.slot_key(slot);
        let mut msg = Zeroizing::new([0u8; 88]);
        let tk_bytes = |t: &Option<Zeroizing<[u8; 32]>>| t.as_ref().map(|t| **t);
        msg[..32].copy_from_slice(&if mode & 0x02 != 0 {
            tk_bytes(&tk).ok_or(Status::Execution)?
        } else {
            *key
        });
        if mode & 0x01 != 0 {
            msg[32..64].copy_from_slice(&tk_bytes(&tk).ok_or(Status::Execution)?);
        } else {
            msg[32..64].copy_from_slice(challenge);
        }
        let sn = self.sn();
        msg[64..68].copy_from_slice(&other[0..4]);
        if mode & 0x20 != 0 {
            msg[68..76].copy_from_slice(&self.nv.otp[..8]);
        }
        msg[76..79].copy_from_slice(&other[4..7]);
        msg[79] = sn[8];
        msg[80..84].copy_from_slice(&other[7..11]);
        msg[84..86].copy_from_slice(&sn[0..2]);
        msg[86..88].copy_from_slice(&other[11..13]);
        if sha(&[&msg[..]])[..] == *response {
            self.vol.auth = Some(slot);
            OK
        } else {
            self.vol.auth = None;
            status(Status::Miscompare)
        }
    }

    // ------------------------------------------------------------ DeriveKey

    pub(crate) fn cmd_derive_key(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0x04 != 0 || !(c.data.is_empty() || c.data.len() == 32) {
            return status(Status::Parse);
        }
        let target = slot_param(c.param2)?;
        if !self.data_locked() || self.is_private_slot(target) {
            return status(Status::Execution);
        }
        let sc = self.nv.config.slot_config(target);
        // WriteConfig (SlotConfig bits 15:12, DS508 Table 2-9): bit 13
        // enables DeriveKey, bit 12 chooses Create (parent = WriteKey)
        // over Roll (parent = the target), bit 15 requires an input MAC.
        // Bit 14 (encrypted Write) is "X" in that table: CryptoAuthLib's
        // derivekey tests, run on silicon, target slots with WriteConfig
        // 0x6 and 0xF (test_ecc608_configdata slots 9 and 3).
        let wc = sc.write_config();
        if wc & 0x2 == 0 || self.nv.config.slot_locked(target) {
            return status(Status::Execution);
        }
        let parent_slot = if wc & 0x1 != 0 {
            sc.write_key()
        } else {
            target
        };
        self.check_auth(target)?;
        let tk = self.tempkey_matching(mode & 0x04 != 0)?;
        let parent = self.slot_key(parent_slot);
        let sn = self.sn();
        let head = [
            opcode::DERIVE_KEY,
            mode,
            c.param2 as u8,
            (c.param2 >> 8) as u8,
        ];
        let sn_part = [sn[8], sn[0], sn[1]];
        if wc & 0x8 != 0 {
            let want = sha(&[&parent[..], &head, &sn_part]);
            if c.data.len() != 32 || want[..] != *c.data {
                return status(silicon::INPUT_MAC_MISMATCH);
            }
        }
        let derived = Zeroizing::new(sha(&[&parent[..], &head, &sn_part, &[0; 25], &tk[..]]));
        self.nv.slot_mut(target)[..32].copy_from_slice(&derived[..]);
        self.save();
        OK
    }

    // ------------------------------------------------------------ Encrypted Write / PrivWrite

    /// Decrypt an encrypted 32-byte Write in place and check its MAC
    /// (CAL `atcah_write_auth_mac`). `write_key` is the slot's WriteKey
    /// after the data lock; before it, any valid TempKey is used.
    pub(crate) fn decrypt_write(
        &mut self,
        c: &CommandRef<'_>,
        data: &mut [u8],
        write_key: Option<u8>,
    ) -> Result<(), Status> {
        let tk = self.gendig_tempkey_for(write_key, false)?;
        for (d, k) in data.iter_mut().zip(tk.iter()) {
            *d ^= k;
        }
        let sn = self.sn();
        let mac = sha(&[
            &tk[..],
            &[opcode::WRITE, c.param1],
            &c.param2.to_le_bytes(),
            &[sn[8], sn[0], sn[1]],
            &[0; 25],
            data,
        ]);
        if mac[..] != c.data[32..64] {
            return Err(silicon::INPUT_MAC_MISMATCH);
        }
        Ok(())
    }

    pub(crate) fn cmd_privwrite(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0x40 != 0 || c.data.len() != 68 {
            return status(Status::Parse);
        }
        let slot = slot_param(c.param2)?;
        if !self.config_locked() || !self.is_private_slot(slot) {
            return status(Status::Execution);
        }
        let encrypted = mode & 0x40 != 0;
        let mut value = Zeroizing::new([0u8; 36]);
        value.copy_from_slice(&c.data[..36]);
        if self.data_locked() {
            let sc = self.nv.config.slot_config(slot);
            if !encrypted || !sc.privwrite_allowed() || self.nv.config.slot_locked(slot) {
                return status(Status::Execution);
            }
        }
        if encrypted {
            let key = self
                .data_locked()
                .then(|| self.nv.config.slot_config(slot).write_key());
            let tk = self.gendig_tempkey_for(key, false)?;
            let tk2 = Zeroizing::new(sha(&[&tk[..]]));
            for i in 0..36 {
                value[i] ^= if i < 32 { tk[i] } else { tk2[i - 32] };
            }
            let sn = self.sn();
            let mac = sha(&[
                &tk[..],
                &[opcode::PRIVWRITE, mode],
                &c.param2.to_le_bytes(),
                &[sn[8], sn[0], sn[1]],
                &[0; 21],
                &value[..],
            ]);
            if mac[..] != c.data[36..68] {
                return status(silicon::INPUT_MAC_MISMATCH);
            }
        }
        self.nv.slot_mut(slot)[..36].copy_from_slice(&value[..]);
        self.save();
        OK
    }
}
