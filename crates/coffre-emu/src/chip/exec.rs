//! Command execution: one function per opcode, each checking the lock
//! state and the slot's policy the way the silicon does.

use std::time::Duration;

use coffre_proto::command::opcode;
use coffre_proto::config::{offset, WritePolicy, LOCKED};
use coffre_proto::crc::crc16;
use coffre_proto::packet::{encode_response, parse_command, status_packet, CommandRef};
use coffre_proto::timing::{exec_time_ms, ClockDivider};
use coffre_proto::zone::{decode_address, Zone, BLOCK_SIZE, WORD_SIZE};
use coffre_proto::{Error as ProtoError, Status};
use p256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{silicon, Atecc608, Register};

/// The result of one command: response data, or a status.
pub(crate) type Outcome = Result<Vec<u8>, Status>;

pub(crate) fn status(s: Status) -> Outcome {
    Err(s)
}

pub(crate) const OK: Outcome = Ok(Vec::new());

impl Atecc608 {
    /// Execute one command body (count … CRC). Returns the response packet
    /// and the opcode (for timing), `None` when the packet was not parsed.
    pub(crate) fn execute(&mut self, now: Duration, body: &[u8]) -> (Vec<u8>, Option<u8>) {
        let cmd = match parse_command(body) {
            Ok(c) => c,
            // CRC errors take precedence over every other error.
            Err(ProtoError::ChipSawBadCrc) => return (status_packet(Status::Crc).to_vec(), None),
            // Counts below 4 or above 155, and incomplete packets, are
            // communication errors; 4–6 and 152–155 are parse errors.
            Err(_) => {
                let s = match body.first() {
                    Some(&c) if (4..=155).contains(&c) && c as usize <= body.len() => Status::Parse,
                    _ => Status::Crc,
                };
                return (status_packet(s).to_vec(), None);
            }
        };
        let op = cmd.opcode;
        // Too little watchdog time left for this command: refuse it.
        if let (Some(deadline), Some(t)) = (
            self.watchdog_deadline,
            exec_time_ms(
                op,
                ClockDivider::from_bits(self.nv.config.chip_mode().clock_divider()),
            ),
        ) {
            if now + Duration::from_millis(t as u64) > deadline {
                return (
                    status_packet(Status::WatchdogAboutToExpire).to_vec(),
                    Some(op),
                );
            }
        }
        if self.failure_mode && !matches!(op, opcode::SELFTEST | opcode::INFO | opcode::READ) {
            return (status_packet(Status::SelfTest).to_vec(), Some(op));
        }
        self.vol.tempkey_written = false;
        // A command that changes non-volatile state commits only once the
        // image holds it: when the save fails, the change is undone and the
        // host gets an execution error, as if the EEPROM write had failed.
        // Every command is covered (any of them may save: Write, Lock,
        // GenKey, PrivWrite, DeriveKey, ECDH and KDF to a slot, SHA to a
        // slot, counters…); the copy is small next to the command itself.
        let before = self.image.is_some().then(|| self.nv.clone());
        self.save_failed = false;
        let mut outcome = match op {
            opcode::INFO => self.cmd_info(&cmd),
            opcode::READ => self.cmd_read(&cmd),
            opcode::WRITE => self.cmd_write(&cmd),
            opcode::LOCK => self.cmd_lock(&cmd),
            opcode::GENKEY => self.cmd_genkey(&cmd),
            opcode::NONCE => self.cmd_nonce(&cmd),
            opcode::RANDOM => self.cmd_random(&cmd),
            opcode::SIGN => self.cmd_sign(&cmd),
            opcode::VERIFY => self.cmd_verify(&cmd),
            opcode::SELFTEST => self.cmd_selftest(&cmd),
            opcode::COUNTER => self.cmd_counter(&cmd),
            opcode::SHA => self.cmd_sha(&cmd),
            opcode::UPDATE_EXTRA => self.cmd_update_extra(&cmd),
            opcode::GENDIG => self.cmd_gendig(&cmd),
            opcode::MAC => self.cmd_mac(&cmd),
            opcode::CHECKMAC => self.cmd_checkmac(&cmd),
            opcode::DERIVE_KEY => self.cmd_derive_key(&cmd),
            opcode::PRIVWRITE => self.cmd_privwrite(&cmd),
            opcode::ECDH => self.cmd_ecdh(&cmd),
            opcode::AES => self.cmd_aes(&cmd),
            opcode::KDF => self.cmd_kdf(&cmd),
            other => {
                tracing::debug!(
                    "emulated chip: {} (0x{other:02X}) is not emulated; answering parse error",
                    opcode::name(other)
                );
                status(Status::Parse)
            }
        };
        if self.save_failed {
            if let Some(before) = before {
                self.nv = before;
            }
            if let Ok(data) = &mut outcome {
                zeroize::Zeroize::zeroize(data);
            }
            outcome = status(Status::Execution);
        }
        // TempKey is cleared by every command but Info and, when they
        // succeed, the few that build on it (DS508 §2.5.1); a command that
        // wrote a new TempKey keeps it. The 608's AES leaves it alone
        // (`silicon::AES_KEEPS_TEMPKEY`).
        let keeps = op == opcode::INFO
            || (op == opcode::AES && silicon::AES_KEEPS_TEMPKEY)
            || (outcome.is_ok()
                && matches!(
                    op,
                    opcode::NONCE | opcode::GENDIG | opcode::GENKEY | opcode::CHECKMAC
                ));
        if !keeps && !self.vol.tempkey_written {
            self.vol.tempkey = None;
        }
        // Any command other than SHA, or any SHA error, ends the SHA
        // context (DS508 §9.17).
        if op != opcode::SHA || outcome.is_err() {
            self.vol.sha = None;
        }
        let packet = match outcome {
            Ok(data) if data.is_empty() => status_packet(Status::Success).to_vec(),
            Ok(mut data) => {
                let mut out = vec![0u8; data.len() + 3];
                let n = encode_response(&data, &mut out).unwrap_or(0);
                zeroize::Zeroize::zeroize(&mut data);
                out.truncate(n);
                out
            }
            Err(s) => status_packet(s).to_vec(),
        };
        (packet, Some(op))
    }

    pub(crate) fn config_locked(&self) -> bool {
        self.nv.config.config_locked()
    }

    pub(crate) fn data_locked(&self) -> bool {
        self.nv.config.data_locked()
    }

    // ------------------------------------------------------------ Info

    fn cmd_info(&mut self, c: &CommandRef<'_>) -> Outcome {
        if !c.data.is_empty() {
            return status(Status::Parse);
        }
        match c.param1 {
            0x00 => Ok(self.nv.config.revision().to_vec()),
            0x01 => {
                let slot = slot_param(c.param2)?;
                Ok(vec![self.key_valid(slot) as u8, 0, 0, 0])
            }
            0x02 => {
                // State, in the DS508 Table 9-26 layout: byte 0 = TempKey
                // flags (NoMac, GenKeyData, GenDigData, SourceFlag, KeyID),
                // byte 1 = Valid (b7), AuthKeyID (b6–3), AuthValid (b2), RNG
                // seed flags (b1–0, never set here).
                let tk = self.vol.tempkey.as_ref();
                let b0 = tk.map_or(0, Register::flags);
                let auth = self.vol.auth.map_or(0, |k| (k & 0x0F) << 3 | 0x04);
                let b1 = (tk.is_some() as u8) << 7 | auth;
                Ok(vec![b0, b1, 0, 0])
            }
            0x03 => status(silicon::INFO_GPIO_IN_I2C_MODE),
            0x04 => {
                if c.param2 & 0x0002 != 0 {
                    self.vol.volatile_key_permit = c.param2 & 0x0001 != 0;
                }
                Ok(vec![self.vol.volatile_key_permit as u8, 0, 0, 0])
            }
            _ => status(Status::Parse),
        }
    }

    // ------------------------------------------------------------ Read

    fn cmd_read(&mut self, c: &CommandRef<'_>) -> Outcome {
        if !c.data.is_empty() || c.param1 & 0x7C != 0 {
            return status(Status::Parse);
        }
        let zone = Zone::from_code(c.param1).ok_or(Status::Parse)?;
        let len = if c.param1 & 0x80 != 0 {
            BLOCK_SIZE
        } else {
            WORD_SIZE
        };
        let loc = decode_address(zone, c.param2, len).map_err(|_| silicon::BAD_ADDRESS)?;
        match zone {
            Zone::Config => Ok(self.nv.config.as_bytes()[loc.offset..loc.offset + len].to_vec()),
            Zone::Otp => {
                if !self.data_locked() {
                    return status(Status::Execution);
                }
                Ok(self.nv.otp[loc.offset..loc.offset + len].to_vec())
            }
            Zone::Data => {
                let slot = loc.slot.unwrap_or(0);
                if !self.data_locked() {
                    return status(Status::Execution);
                }
                let policy = self.nv.config.slot_policy(slot);
                let sc = self.nv.config.slot_config(slot);
                if policy.private_key {
                    return status(Status::Execution);
                }
                let encrypted = match (sc.is_secret(), sc.encrypt_read()) {
                    (false, false) => false,
                    (true, true) if len == BLOCK_SIZE => true,
                    // IsSecret without EncryptRead: never; EncryptRead
                    // without IsSecret: prohibited; 4-byte encrypted: no.
                    _ => return status(Status::Execution),
                };
                let bytes = self.nv.slot(slot);
                let mut out = vec![silicon::PAST_SLOT_END_FILL; len];
                let end = (loc.offset + len).min(bytes.len());
                out[..end - loc.offset].copy_from_slice(&bytes[loc.offset..end]);
                if encrypted {
                    // XOR with a TempKey that GenDig made from ReadKey over a
                    // random nonce (CAL `atcah_decrypt`).
                    let tk = self.gendig_tempkey(sc.read_key())?;
                    for (o, k) in out.iter_mut().zip(tk.iter()) {
                        *o ^= k;
                    }
                }
                Ok(out)
            }
        }
    }

    // ------------------------------------------------------------ Write

    fn cmd_write(&mut self, c: &CommandRef<'_>) -> Outcome {
        if c.param1 & 0x3C != 0 {
            return status(Status::Parse);
        }
        let zone = Zone::from_code(c.param1).ok_or(Status::Parse)?;
        let len = if c.param1 & 0x80 != 0 {
            BLOCK_SIZE
        } else {
            WORD_SIZE
        };
        let encrypted = c.param1 & 0x40 != 0;
        let expected = if encrypted { len + 32 } else { len };
        if c.data.len() != expected || (encrypted && len != BLOCK_SIZE) {
            return status(Status::Parse);
        }
        let loc = decode_address(zone, c.param2, len).map_err(|_| silicon::BAD_ADDRESS)?;
        let mut data = Zeroizing::new(c.data[..len].to_vec());
        match zone {
            Zone::Config => {
                if self.config_locked() {
                    return status(silicon::CONFIG_WRITE_AFTER_LOCK);
                }
                if encrypted {
                    return status(Status::Execution);
                }
                // Bytes 0–15 (serial, revision) and 84–87 (UserExtra and the
                // lock bytes) are never written by Write.
                let protected = |i: usize| i < 16 || (84..88).contains(&i);
                if (loc.offset..loc.offset + len).any(protected) {
                    return status(Status::Execution);
                }
                self.nv.config.0[loc.offset..loc.offset + len].copy_from_slice(&data);
                self.save();
                OK
            }
            Zone::Otp => {
                if !self.config_locked() {
                    return status(silicon::DATA_WRITE_BEFORE_CONFIG_LOCK);
                }
                if self.data_locked() || encrypted || len != BLOCK_SIZE {
                    return status(Status::Execution);
                }
                self.nv.otp[loc.offset..loc.offset + len].copy_from_slice(&data);
                self.save();
                OK
            }
            Zone::Data => {
                let slot = loc.slot.unwrap_or(0);
                if !self.config_locked() {
                    return status(silicon::DATA_WRITE_BEFORE_CONFIG_LOCK);
                }
                let policy = self.nv.config.slot_policy(slot);
                if policy.private_key {
                    // Private keys are written by GenKey or PrivWrite only.
                    return status(Status::Execution);
                }
                if !self.data_locked() {
                    // Before the data lock: any non-key slot, 32 bytes at a
                    // time, in clear or encrypted with any valid TempKey.
                    if len != BLOCK_SIZE {
                        return status(Status::Execution);
                    }
                    if encrypted {
                        self.decrypt_write(c, &mut data, None)?;
                    }
                } else {
                    if policy.slot_locked {
                        return status(Status::Execution);
                    }
                    match policy.write {
                        WritePolicy::Always if !encrypted => {
                            if len == WORD_SIZE && !silicon::WORD_WRITES_AFTER_DATA_LOCK {
                                return status(Status::Execution);
                            }
                        }
                        WritePolicy::Encrypted { write_key } if encrypted => {
                            self.decrypt_write(c, &mut data, Some(write_key))?;
                        }
                        _ => return status(Status::Execution),
                    }
                }
                let bytes = self.nv.slot_mut(slot);
                let end = (loc.offset + len).min(bytes.len());
                bytes[loc.offset..end].copy_from_slice(&data[..end - loc.offset]);
                self.invalidate_written_public_key(slot);
                self.save();
                OK
            }
        }
    }

    // ------------------------------------------------------------ Lock

    fn data_zone_crc(&self) -> u16 {
        let mut all = Zeroizing::new(Vec::with_capacity(self.nv.data.len() + 64));
        for slot in 0..16u8 {
            if self.nv.config.key_config(slot).private() {
                continue;
            }
            all.extend_from_slice(self.nv.slot(slot));
        }
        all.extend_from_slice(&self.nv.otp);
        crc16(&all)
    }

    fn cmd_lock(&mut self, c: &CommandRef<'_>) -> Outcome {
        if !c.data.is_empty() || c.param1 & 0x40 != 0 {
            return status(Status::Parse);
        }
        let check_crc = c.param1 & 0x80 == 0;
        match c.param1 & 0x03 {
            0 => {
                if c.param1 & 0x3C != 0 {
                    return status(Status::Parse);
                }
                if self.config_locked() {
                    return status(silicon::RELOCK);
                }
                if check_crc && crc16(self.nv.config.as_bytes()) != c.param2 {
                    return status(silicon::LOCK_CRC_MISMATCH);
                }
                self.nv.config.set_config_lock_byte(LOCKED);
            }
            1 => {
                if c.param1 & 0x3C != 0 {
                    return status(Status::Parse);
                }
                if !self.config_locked() || self.data_locked() {
                    return status(if self.data_locked() {
                        silicon::RELOCK
                    } else {
                        Status::Execution
                    });
                }
                if check_crc && self.data_zone_crc() != c.param2 {
                    return status(silicon::LOCK_CRC_MISMATCH);
                }
                self.nv.config.set_data_lock_byte(LOCKED);
            }
            2 => {
                // The summary is ignored for slot locks (DS508 §9.10; CAL
                // `calib_lock_data_slot` sends 0).
                let slot = (c.param1 >> 2) & 0x0F;
                if !self.config_locked()
                    || (silicon::SLOT_LOCK_NEEDS_DATA_LOCK && !self.data_locked())
                    || !self.nv.config.key_config(slot).lockable()
                {
                    return status(Status::Execution);
                }
                if self.nv.config.slot_locked(slot) {
                    return status(silicon::RELOCK);
                }
                self.nv.config.set_slot_locked(slot);
            }
            _ => return status(Status::Parse),
        }
        self.save();
        OK
    }

    // ------------------------------------------------------------ Nonce / Random

    pub(crate) fn random_bytes(&self) -> [u8; 32] {
        if !self.config_locked() {
            return silicon::UNLOCKED_RANDOM_PATTERN;
        }
        let mut r = [0u8; 32];
        OsRng.fill_bytes(&mut r);
        r
    }

    fn cmd_nonce(&mut self, c: &CommandRef<'_>) -> Outcome {
        let mode = c.param1;
        match mode & 0x03 {
            0x00 | 0x01 => {
                if mode & 0xFC != 0 || c.data.len() != 20 {
                    return status(Status::Parse);
                }
                let rand_out = self.random_bytes();
                let mut h = Sha256::new();
                h.update(rand_out);
                h.update(c.data);
                h.update([opcode::NONCE, mode, 0x00]);
                let tk: [u8; 32] = h.finalize().into();
                self.set_tempkey(Register::new(&tk, false));
                Ok(rand_out.to_vec())
            }
            0x03 => {
                if mode & 0x1C != 0 {
                    return status(Status::Parse);
                }
                let want = if mode & 0x20 != 0 { 64 } else { 32 };
                if c.data.len() != want {
                    return status(Status::Parse);
                }
                let reg = Register::new(c.data, true);
                match mode & 0xC0 {
                    0x00 => self.set_tempkey(reg),
                    0x40 => {
                        self.vol.msg_digest = Some(reg);
                        self.vol.tempkey = None;
                    }
                    0x80 => {
                        self.vol.alt_key = Some(reg);
                        self.vol.tempkey = None;
                    }
                    _ => return status(Status::Parse),
                }
                OK
            }
            _ => status(Status::Parse),
        }
    }

    fn cmd_random(&mut self, c: &CommandRef<'_>) -> Outcome {
        if c.param1 > 0x01 || c.param2 != 0 || !(c.data.is_empty() || c.data.len() == 20) {
            return status(Status::Parse);
        }
        Ok(self.random_bytes().to_vec())
    }

    // ------------------------------------------------------------ SelfTest / Counter / SHA

    fn cmd_selftest(&mut self, c: &CommandRef<'_>) -> Outcome {
        if c.param1 == 0 || c.param1 & !0x3B != 0 || !c.data.is_empty() {
            return status(Status::Parse);
        }
        if self.fail_self_test {
            self.failure_mode = true;
            return status(Status::SelfTest);
        }
        // Real known-answer checks of the primitives the chip uses.
        let sha_ok = Sha256::digest(b"abc")[..4] == [0xBA, 0x78, 0x16, 0xBF];
        let key = SigningKey::from_slice(&[0x11; 32]).map_err(|_| Status::SelfTest)?;
        let d = [0x5A; 32];
        let ecdsa_ok = key
            .sign_prehash(&d)
            .ok()
            .is_some_and(|s: Signature| key.verifying_key().verify_prehash(&d, &s).is_ok());
        if sha_ok && ecdsa_ok {
            self.failure_mode = false;
            OK
        } else {
            self.failure_mode = true;
            status(Status::SelfTest)
        }
    }

    fn cmd_counter(&mut self, c: &CommandRef<'_>) -> Outcome {
        if c.param2 > 1 || !c.data.is_empty() {
            return status(Status::Parse);
        }
        let n = c.param2 as u8;
        let value = self.nv.config.counter(n);
        match c.param1 {
            0x00 => Ok(value.to_le_bytes().to_vec()),
            0x01 => {
                if !self.config_locked() {
                    return status(Status::Execution);
                }
                if value >= coffre_proto::command::COUNTER_MAX {
                    return status(Status::Execution);
                }
                self.nv.config.set_counter(n, value + 1);
                self.save();
                Ok((value + 1).to_le_bytes().to_vec())
            }
            _ => status(Status::Parse),
        }
    }

    fn cmd_update_extra(&mut self, c: &CommandRef<'_>) -> Outcome {
        if !c.data.is_empty() || c.param2 > 0xFF {
            return status(Status::Parse);
        }
        let at = match c.param1 {
            0x00 => offset::USER_EXTRA,
            0x01 => offset::USER_EXTRA_ADD,
            _ => return status(Status::Parse),
        };
        if silicon::UPDATE_EXTRA_NEEDS_CONFIG_LOCK && !self.config_locked() {
            return status(Status::Execution);
        }
        // Each byte can be updated once, while it is still zero.
        if self.nv.config.0[at] != 0 {
            return status(Status::Execution);
        }
        self.nv.config.0[at] = c.param2 as u8;
        self.save();
        OK
    }
}

pub(crate) fn slot_param(p2: u16) -> Result<u8, Status> {
    if p2 > 15 {
        Err(Status::Parse)
    } else {
        Ok(p2 as u8)
    }
}

/// X ‖ Y of a public key.
pub(crate) fn public_key_bytes(vk: &VerifyingKey) -> [u8; 64] {
    let p = vk.to_encoded_point(false);
    let mut out = [0u8; 64];
    out.copy_from_slice(&p.as_bytes()[1..65]);
    out
}

/// Transcript annotation for bytes written to or read from the chip.
pub(crate) fn annotate(write: bool, bytes: &[u8]) -> Option<String> {
    if !write {
        return match bytes {
            [0x04, s, ..] if bytes.len() == 4 => Some(format!("status 0x{s:02X}")),
            [n, ..] if bytes.len() == 1 => Some(format!("count {n}")),
            _ => None,
        };
    }
    match bytes.first()? {
        0x00 => Some("word address: reset".into()),
        0x01 => Some("word address: sleep".into()),
        0x02 => Some("word address: idle".into()),
        0x03 => {
            let op = *bytes.get(2)?;
            let p1 = *bytes.get(3)?;
            let p2 = u16::from_le_bytes([*bytes.get(4)?, *bytes.get(5)?]);
            let name = opcode::name(op);
            let detail = match op {
                opcode::READ | opcode::WRITE => {
                    let zone = Zone::from_code(p1).map(Zone::name).unwrap_or("?");
                    let size = if p1 & 0x80 != 0 { 32 } else { 4 };
                    if zone == "data" {
                        format!(
                            " {size} B, data slot {} block {}",
                            (p2 >> 3) & 0x0F,
                            p2 >> 8
                        )
                    } else {
                        format!(" {size} B, {zone} zone address 0x{p2:04X}")
                    }
                }
                opcode::SIGN | opcode::GENKEY => format!(" mode 0x{p1:02X}, slot {p2}"),
                _ => format!(" mode 0x{p1:02X}"),
            };
            Some(format!("command {name}{detail}"))
        }
        _ => None,
    }
}
