//! The P-256 family: GenKey (with its digest modes and the private key in
//! TempKey), Sign (external and internal), Verify (external, stored,
//! validate, invalidate) and ECDH.

use coffre_proto::command::opcode;
use coffre_proto::config::KeyType;
use coffre_proto::packet::CommandRef;
use coffre_proto::Status;
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::{PublicKey, SecretKey};
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::exec::{public_key_bytes, slot_param, status, Outcome, OK};
use super::symmetric::sha;
use super::{silicon, Atecc608, Register};

/// Validity nibble of a public key slot's first byte (PubInfo = 1): 0x5 =
/// validated, 0xA = invalidated (DS508 §2.2.6, CAL `atca_tests_verify.c`).
const PUBKEY_VALID: u8 = 0x50;
const PUBKEY_INVALID: u8 = 0xA0;

fn public_key(xy: &[u8]) -> Option<PublicKey> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(xy);
    PublicKey::from_sec1_bytes(&sec1).ok()
}

impl Atecc608 {
    pub(crate) fn key_valid(&self, slot: u8) -> bool {
        let kc = self.nv.config.key_config(slot);
        kc.private() && kc.key_type() == KeyType::P256 && self.private_key(slot).is_some()
    }

    /// X ‖ Y of the public key stored in `slot` (72-byte pad format).
    fn stored_public_key(&self, slot: u8) -> Option<[u8; 64]> {
        let s = self.nv.slot(slot);
        if s.len() < 72 {
            return None;
        }
        let mut xy = [0u8; 64];
        xy[..32].copy_from_slice(&s[4..36]);
        xy[32..].copy_from_slice(&s[40..72]);
        Some(xy)
    }

    /// A Write to a P-256 public-key slot (8–15) whose PubInfo asks for
    /// validation leaves the key invalidated: first nibble 0xA
    /// (docs/chip-facts.md §5; CryptoAuthLib's verify_validate test reads
    /// 0xA after `atcab_write_pubkey` on 608 silicon).
    pub(crate) fn invalidate_written_public_key(&mut self, slot: u8) {
        let kc = self.nv.config.key_config(slot);
        if slot >= 8 && !kc.private() && kc.pub_info() && kc.key_type() == KeyType::P256 {
            let first = &mut self.nv.slot_mut(slot)[0];
            *first = (*first & 0x0F) | PUBKEY_INVALID;
        }
    }

    // ------------------------------------------------------------ GenKey

    /// The PubKey digest GenKey leaves in TempKey (CAL `atcah_gen_key_msg`):
    /// SHA-256 of a 128-byte message, TempKey ‖ 0x40 ‖ mode ‖ KeyID (or
    /// OtherData) ‖ SN[8] ‖ SN[0:1] ‖ zeros ‖ public key at the end.
    fn genkey_digest(&mut self, head: [u8; 3], key_id: u8, public: &[u8]) -> Result<(), Status> {
        let mut tk = self.tempkey()?.clone();
        let sn = self.sn();
        let mut msg = Zeroizing::new([0u8; 128]);
        msg[..32].copy_from_slice(&tk.value[..32]);
        msg[32] = opcode::GENKEY;
        msg[33..36].copy_from_slice(&head);
        msg[36] = sn[8];
        msg[37..39].copy_from_slice(&sn[0..2]);
        msg[128 - public.len()..].copy_from_slice(public);
        let d = sha(&[&msg[..]]);
        tk.value[..32].copy_from_slice(&d);
        tk.value[32..].fill(0);
        tk.len = 32;
        tk.gen_dig_data = false;
        tk.gen_key_data = true;
        tk.ecc_private = false;
        tk.key_id = key_id & 0x0F;
        self.set_tempkey(tk);
        Ok(())
    }

    pub(crate) fn cmd_genkey(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0x1C != 0 {
            // 0x20 (MAC of the public key with the IO key) is not emulated.
            return status(Status::Parse);
        }
        if mode & 0x10 != 0 {
            // PubKey digest of a stored public key; OtherData replaces
            // mode and KeyID in the message.
            if c.data.len() != 3 {
                return status(Status::Parse);
            }
            let slot = slot_param(c.param2)?;
            if !self.config_locked() || self.is_private_slot(slot) {
                return status(Status::Execution);
            }
            let head = [c.data[0], c.data[1], c.data[2]];
            if silicon::GENKEY_STORED_PUBKEY_DIGEST_PADDED {
                let stored = self.nv.slot(slot);
                if stored.len() < 72 {
                    return status(Status::Execution);
                }
                let stored = stored[..72].to_vec();
                self.genkey_digest(head, slot, &stored)?;
            } else {
                let xy = self.stored_public_key(slot).ok_or(Status::Execution)?;
                self.genkey_digest(head, slot, &xy)?;
            }
            return OK;
        }
        if !c.data.is_empty() && c.data.len() != 3 {
            return status(Status::Parse);
        }
        let create = mode & 0x04 != 0;
        let digest = mode & 0x08 != 0;
        if silicon::GENKEY_NEEDS_CONFIG_LOCK && !self.config_locked() {
            return status(Status::Execution);
        }
        if c.param2 == 0xFFFF {
            if !create || digest {
                return status(Status::Execution);
            }
            // Private key into TempKey, for ECDH with TempKey as source.
            let key = SigningKey::random(&mut OsRng);
            let scalar = Zeroizing::new(key.to_bytes());
            let mut reg = Register::new(&scalar, false);
            reg.ecc_private = true;
            self.set_tempkey(reg);
            return Ok(public_key_bytes(key.verifying_key()).to_vec());
        }
        let slot = slot_param(c.param2)?;
        let kc = self.nv.config.key_config(slot);
        if !kc.private() || kc.key_type() != KeyType::P256 {
            return status(Status::Execution);
        }
        if create && !self.nv.config.slot_config(slot).is_secret() {
            return status(Status::Execution);
        }
        if self.data_locked() {
            if create {
                let sc = self.nv.config.slot_config(slot);
                if !sc.genkey_allowed() || self.nv.config.slot_locked(slot) {
                    return status(Status::Execution);
                }
                self.check_auth(slot)?;
            } else if !kc.pub_info() {
                return status(Status::Execution);
            }
        }
        if digest {
            // The digest needs a valid TempKey to combine with.
            self.tempkey()?;
            let random_tk = self.vol.tempkey.as_ref().is_some_and(|t| !t.from_input);
            self.check_req_random(slot, random_tk)?;
        }
        let key = if create {
            let key = SigningKey::random(&mut OsRng);
            let scalar = Zeroizing::new(key.to_bytes());
            let bytes = self.nv.slot_mut(slot);
            bytes[..4].fill(0);
            bytes[4..36].copy_from_slice(&scalar);
            self.save();
            key
        } else {
            self.private_key(slot).ok_or(Status::Execution)?
        };
        let pk = public_key_bytes(key.verifying_key());
        if digest {
            self.genkey_digest([mode, c.param2 as u8, (c.param2 >> 8) as u8], slot, &pk)?;
        }
        Ok(pk.to_vec())
    }

    // ------------------------------------------------------------ Sign

    fn take_source(&mut self, msg_digest: bool) -> Option<[u8; 32]> {
        let reg = if msg_digest {
            &mut self.vol.msg_digest
        } else {
            &mut self.vol.tempkey
        };
        let d = reg.as_ref().map(Register::digest);
        if d.is_some() && silicon::SIGN_INVALIDATES_SOURCE {
            *reg = None;
        }
        d
    }

    /// The 55-byte message Sign(Internal) signs (CAL
    /// `atcah_sign_internal_msg`), from TempKey and the config of the slot
    /// TempKey was made from.
    fn sign_internal_message(&self, mode: u8, key_id: u16, tk: &Register) -> [u8; 55] {
        let cfg = &self.nv.config;
        let k = tk.key_id & 0x0F;
        let sn = self.sn();
        let mut m = [0u8; 55];
        m[..32].copy_from_slice(&tk.value[..32]);
        m[32] = opcode::SIGN;
        m[33] = mode;
        m[34..36].copy_from_slice(&key_id.to_le_bytes());
        m[36..38].copy_from_slice(&cfg.slot_config(k).0.to_le_bytes());
        m[38..40].copy_from_slice(&cfg.key_config(k).0.to_le_bytes());
        m[40] = tk.flags();
        m[43] = sn[8];
        m[48..50].copy_from_slice(&sn[0..2]);
        if mode & 0x40 != 0 {
            m[44..48].copy_from_slice(&sn[4..8]);
            m[50..52].copy_from_slice(&sn[2..4]);
        }
        // The SlotLocked bit of TempKey's slot (1 = unlocked).
        m[52] = (cfg.slot_locked_bits() >> k) as u8 & 1;
        // PubKey Valid: a validated public key that requires validation.
        let kc = cfg.key_config(k);
        let validated = !kc.private() && kc.pub_info() && self.nv.slot(k)[0] >> 4 == 0x5;
        m[53] = validated as u8;
        m
    }

    pub(crate) fn cmd_sign(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if !c.data.is_empty() || mode & 0x1E != 0 {
            return status(Status::Parse);
        }
        let slot = slot_param(c.param2)?;
        let policy = self.nv.config.slot_policy(slot);
        let external = mode & 0x80 != 0;
        if external {
            if silicon::SIGN_NEEDS_DATA_LOCK && !self.data_locked() {
                return status(Status::Execution);
            }
            if !policy.private_key || !policy.ext_sign {
                return status(Status::Execution);
            }
        } else {
            // Internal sign: data lock, the key's ReadKey bit 1, and a
            // TempKey made by GenDig or a GenKey digest (DS508 §9.18).
            if !self.data_locked() || !policy.private_key || !policy.int_sign || mode & 0x20 != 0 {
                return status(Status::Execution);
            }
        }
        self.check_auth(slot)?;
        let key = self.private_key(slot).ok_or(Status::Execution)?;
        let digest = if external {
            self.take_source(mode & 0x20 != 0)
                .ok_or(Status::Execution)?
        } else {
            let tk = self.tempkey()?.clone();
            if !(tk.gen_dig_data || tk.gen_key_data) {
                return status(Status::Execution);
            }
            let msg = self.sign_internal_message(mode, c.param2, &tk);
            sha(&[&msg])
        };
        let sig: Signature = key.sign_prehash(&digest).map_err(|_| Status::EccFault)?;
        Ok(sig.to_bytes().to_vec())
    }

    // ------------------------------------------------------------ Verify

    pub(crate) fn cmd_verify(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & 0x58 != 0 || mode & 0x80 != 0 {
            // 0x80 (MAC output with the IO key) is not emulated.
            return status(Status::Parse);
        }
        match mode & 0x07 {
            0x02 => self.verify_external(c),
            0x00 => self.verify_stored(c),
            0x03 | 0x07 => self.verify_validate(c, mode & 0x07 == 0x07),
            _ => status(Status::Parse),
        }
    }

    fn check_signature(&self, xy: &[u8], digest: &[u8; 32], sig: &[u8]) -> Outcome {
        let Some(pk) = public_key(xy) else {
            return status(silicon::VERIFY_OFF_CURVE_KEY);
        };
        let vk = VerifyingKey::from(pk);
        let Ok(sig) = Signature::from_slice(sig) else {
            return status(Status::Miscompare);
        };
        match vk.verify_prehash(digest, &sig) {
            Ok(()) => OK,
            Err(_) => status(Status::Miscompare),
        }
    }

    fn verify_external(&mut self, c: &CommandRef<'_>) -> Outcome {
        if c.param2 != coffre_proto::command::VERIFY_KEY_P256 || c.data.len() != 128 {
            return status(Status::Parse);
        }
        let digest = self
            .take_source(c.param1 & 0x20 != 0)
            .ok_or(Status::Execution)?;
        self.check_signature(&c.data[64..], &digest, &c.data[..64])
    }

    /// A public-key slot usable by Verify: not private, P-256, and
    /// validated when PubInfo asks for validation.
    fn verify_key(&self, slot: u8) -> Result<[u8; 64], Status> {
        let kc = self.nv.config.key_config(slot);
        if kc.private() || kc.key_type() != KeyType::P256 {
            return Err(Status::Execution);
        }
        if kc.pub_info() && self.nv.slot(slot)[0] & 0xF0 != PUBKEY_VALID {
            return Err(Status::Execution);
        }
        self.stored_public_key(slot).ok_or(Status::Execution)
    }

    fn verify_stored(&mut self, c: &CommandRef<'_>) -> Outcome {
        if c.data.len() != 64 {
            return status(Status::Parse);
        }
        let slot = slot_param(c.param2)?;
        let xy = self.verify_key(slot)?;
        let digest = self
            .take_source(c.param1 & 0x20 != 0)
            .ok_or(Status::Execution)?;
        self.check_signature(&xy, &digest, c.data)
    }

    /// Verify(Validate/Invalidate): the signature is over SHA-256 of
    /// TempKey (a GenKey digest of the slot) and OtherData (CAL
    /// `atcah_verify_mac`), checked with the parent public key in
    /// SlotConfig[KeyID].ReadKey; success marks the slot valid/invalid.
    fn verify_validate(&mut self, c: &CommandRef<'_>, invalidate: bool) -> Outcome {
        if c.data.len() != 64 + 19 {
            return status(Status::Parse);
        }
        let slot = slot_param(c.param2)?;
        let kc = self.nv.config.key_config(slot);
        if kc.private() || !kc.pub_info() || !self.data_locked() {
            return status(Status::Execution);
        }
        let tk = self.tempkey()?.clone();
        if !tk.gen_key_data || tk.key_id != slot {
            return status(Status::Execution);
        }
        let parent = if silicon::VALIDATE_PARENT_IN_READKEY {
            self.nv.config.slot_config(slot).read_key()
        } else {
            kc.auth_key()
        };
        let parent_xy = self.stored_public_key(parent).ok_or(Status::Execution)?;
        let (sig, other) = c.data.split_at(64);
        let sn = self.sn();
        let digest = sha(&[
            &tk.value[..32],
            &[opcode::SIGN],
            &other[0..10],
            &[sn[8]],
            &other[10..14],
            &sn[0..2],
            &other[14..19],
        ]);
        self.check_signature(&parent_xy, &digest, sig)?;
        let b = &mut self.nv.slot_mut(slot)[0];
        *b = (*b & 0x0F)
            | if invalidate {
                PUBKEY_INVALID
            } else {
                PUBKEY_VALID
            };
        self.save();
        OK
    }

    // ------------------------------------------------------------ ECDH

    pub(crate) fn cmd_ecdh(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        if mode & !0x0F != 0 || c.data.len() != 64 {
            return status(Status::Parse);
        }
        if !self.config_locked() {
            return status(Status::Execution);
        }
        let from_tempkey = mode & 0x01 != 0;
        let encrypt = mode & 0x02 != 0;
        let secret: SecretKey = if from_tempkey {
            let tk = self.tempkey()?;
            if !tk.ecc_private {
                return status(Status::Execution);
            }
            SecretKey::from_slice(&tk.value[..32]).map_err(|_| Status::Execution)?
        } else {
            let slot = slot_param(c.param2 & 0x0F)?;
            let policy = self.nv.config.slot_policy(slot);
            if !policy.private_key || !policy.ecdh {
                return status(Status::Execution);
            }
            self.check_auth(slot)?;
            let key = self.private_key(slot).ok_or(Status::Execution)?;
            SecretKey::from(key)
        };
        let peer = public_key(c.data).ok_or(silicon::ECDH_OFF_CURVE_KEY)?;
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine());
        let mut pms = Zeroizing::new([0u8; 32]);
        pms.copy_from_slice(shared.raw_secret_bytes());
        // Where the result goes (mode bits 3:2).
        let slot_source = c.param2 as u8 & 0x0F;
        let target = match mode & 0x0C {
            0x00 => {
                // 508-compatible: ReadKey bit 3 stores it in slot n | 1.
                if !from_tempkey && self.nv.config.slot_config(slot_source).read_key() & 0x08 != 0 {
                    EcdhTarget::Slot(slot_source | 1)
                } else {
                    EcdhTarget::Output
                }
            }
            0x04 => EcdhTarget::Slot(if from_tempkey || !silicon::ECDH_SLOT_TARGET_IS_NEXT_ODD {
                slot_source
            } else {
                slot_source | 1
            }),
            0x08 => EcdhTarget::TempKey,
            _ => EcdhTarget::Output,
        };
        match target {
            EcdhTarget::Slot(s) => {
                if self.is_private_slot(s) || self.nv.config.slot_locked(s) {
                    return status(Status::Execution);
                }
                self.nv.slot_mut(s)[..32].copy_from_slice(&pms[..]);
                self.save();
                OK
            }
            EcdhTarget::TempKey => {
                self.set_tempkey(Register::new(&pms[..], false));
                OK
            }
            EcdhTarget::Output => {
                // ChipOptions bits 9:8: 00 clear allowed, 01 output must be
                // encrypted, 10 no output at all.
                let prot = (self.nv.config.chip_options() >> 8) & 0x03;
                if prot >= 2 || (prot == 1 && !encrypt) {
                    return status(Status::Execution);
                }
                if encrypt {
                    let mut out = pms.to_vec();
                    let nonce = self.io_encrypt(&mut out)?;
                    out.extend_from_slice(&nonce);
                    Ok(out)
                } else {
                    Ok(pms.to_vec())
                }
            }
        }
    }
}

enum EcdhTarget {
    Slot(u8),
    TempKey,
    Output,
}
