//! The command families beyond Read/Write/Sign: each expectation is
//! computed here from the data sheet's and CryptoAuthLib's message layouts
//! (`lib/host/atca_host.c`) with the `sha2`, `hmac`, `aes`, `ghash` and
//! `p256` crates, never with the emulator's own code.

mod common;

use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use coffre_emu::board::Board;
use coffre_emu::chip::NvState;
use coffre_emu::clock::{Clock, Timing};
use coffre_emu::presets::Preset;
use coffre_proto::command::{self, opcode, AccessSize, InfoMode, NonceTarget};
use coffre_proto::config::{KeyConfig, SlotConfig};
use coffre_proto::packet::Command;
use coffre_proto::zone::{data_address, Zone};
use coffre_proto::Error;
use common::Host;
use hmac::{Hmac, Mac};
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use sha2::{Digest, Sha256};

const IO_SLOT: u8 = 6;

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn cmd(op: u8, p1: u8, p2: u16, data: &[u8]) -> Command {
    Command::with_data(op, p1, p2, data).unwrap()
}

fn vk(xy: &[u8]) -> VerifyingKey {
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(xy);
    VerifyingKey::from_sec1_bytes(&sec1).unwrap()
}

fn xy(k: &VerifyingKey) -> Vec<u8> {
    k.to_encoded_point(false).as_bytes()[1..].to_vec()
}

/// A Trust&GO image changed for a test, on an instant-timing board.
fn host_with(change: impl FnOnce(&mut NvState)) -> Host {
    let mut nv = Preset::Tngtls.build();
    change(&mut nv);
    Host::on(Board::with_clock(nv, Timing::Instant, Clock::manual()))
}

fn nv_of(h: &Host) -> NvState {
    h.board.with_chip(|c| c.nv().clone())
}

fn sn(nv: &NvState) -> [u8; 9] {
    nv.config.serial_number()
}

fn key32(nv: &NvState, slot: u8) -> [u8; 32] {
    nv.slot(slot)[..32].try_into().unwrap()
}

/// Nonce random mode 0 with `num_in`; TempKey as the host computes it
/// (CAL `atcah_nonce`).
fn nonce_random(h: &mut Host, num_in: &[u8; 20]) -> [u8; 32] {
    let rand = h.run(&command::nonce_random(num_in, true)).unwrap();
    sha(&[&rand, num_in, &[0x16, 0x00, 0x00]])
}

/// GenDig over data slot `slot` holding `key` (CAL `atcah_gen_dig`), with
/// the 4 bytes of OtherData `atcab_read_enc` sends.
fn gendig(h: &mut Host, tk: &[u8; 32], slot: u8, key: &[u8; 32], sn: &[u8; 9]) -> [u8; 32] {
    let other = [opcode::GENDIG, 0x02, slot, 0x00];
    h.status(&cmd(opcode::GENDIG, 0x02, slot as u16, &other))
        .unwrap();
    sha(&[
        key,
        &[opcode::GENDIG, 0x02, slot, 0x00],
        &[sn[8], sn[0], sn[1]],
        &[0; 25],
        tk,
    ])
}

/// Slot 8 made readable only by encrypted Read with the IO key (slot 6):
/// ReadKey 6, EncryptRead, IsSecret; writes encrypted with slot 6.
fn hardened_slot8(nv: &mut NvState) {
    nv.config
        .set_slot_config(8, SlotConfig(0x4000 | 0x0600 | 0x00C6));
    nv.slot_mut(8)[..64].copy_from_slice(&[0x5Au8; 64]);
}

#[test]
fn encrypted_read_with_gendig_of_the_io_key() {
    let mut h = host_with(hardened_slot8);
    let nv = nv_of(&h);
    let io = key32(&nv, IO_SLOT);
    let addr = data_address(8, 1, 0).unwrap();
    // Clear reads of the secret slot are refused, 4 and 32 bytes.
    assert_eq!(
        h.run(&command::read(Zone::Data, AccessSize::Block, addr)),
        Err(Error::Execution)
    );
    assert_eq!(
        h.run(&command::read(Zone::Data, AccessSize::Word, addr)),
        Err(Error::Execution)
    );
    let tk = nonce_random(&mut h, &[3; 20]);
    let tk = gendig(&mut h, &tk, IO_SLOT, &io, &sn(&nv));
    let state = h.run(&command::info(InfoMode::State)).unwrap();
    // Info State: GenDigData (b5) and KeyID 6 in byte 0, Valid in byte 1.
    assert_eq!((state[0], state[1] & 0x80), (0x20 | IO_SLOT, 0x80));
    let enc = h
        .run(&command::read(Zone::Data, AccessSize::Block, addr))
        .unwrap();
    let clear: Vec<u8> = enc.iter().zip(tk).map(|(a, b)| a ^ b).collect();
    assert_eq!(clear, nv.slot(8)[32..64]);
    assert_ne!(enc, clear);
    // The Read used TempKey up: a second one is refused.
    assert_eq!(
        h.run(&command::read(Zone::Data, AccessSize::Block, addr)),
        Err(Error::Execution)
    );
    // A TempKey made from another slot does not open it.
    let tk = nonce_random(&mut h, &[4; 20]);
    gendig(&mut h, &tk, 8 + 1, &key32(&nv, 9), &sn(&nv));
    assert_eq!(
        h.run(&command::read(Zone::Data, AccessSize::Block, addr)),
        Err(Error::Execution)
    );
    // A pass-through nonce (SourceFlag = input) does not either: slot 6
    // has ReqRandom, so GenDig itself is refused.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &[9; 32]).unwrap())
        .unwrap();
    assert_eq!(
        h.status(&cmd(opcode::GENDIG, 0x02, IO_SLOT as u16, &[0x15, 2, 6, 0])),
        Err(Error::Execution)
    );
    assert_eq!(
        h.run(&command::read(Zone::Data, AccessSize::Block, addr)),
        Err(Error::Execution)
    );
}

#[test]
fn encrypted_write_checks_its_mac() {
    let mut h = host_with(hardened_slot8);
    let nv = nv_of(&h);
    let s = sn(&nv);
    let io = key32(&nv, IO_SLOT);
    let addr = data_address(8, 0, 0).unwrap();
    let plain = [0x77u8; 32];
    // Clear writes are refused (WriteConfig = Encrypt).
    assert_eq!(
        h.status(&command::write(Zone::Data, addr, &plain).unwrap()),
        Err(Error::Execution)
    );
    let write = |h: &mut Host, bad_mac: bool| {
        let tk = nonce_random(h, &[5; 20]);
        let tk = gendig(h, &tk, IO_SLOT, &io, &s);
        let cipher: Vec<u8> = plain.iter().zip(tk).map(|(a, b)| a ^ b).collect();
        let p1 = 0x80 | 0x40 | 0x02;
        let mut mac = sha(&[
            &tk,
            &[opcode::WRITE, p1],
            &addr.to_le_bytes(),
            &[s[8], s[0], s[1]],
            &[0; 25],
            &plain,
        ]);
        if bad_mac {
            mac[0] ^= 1;
        }
        let c = command::write_encrypted(
            Zone::Data,
            addr,
            cipher.as_slice().try_into().unwrap(),
            &mac,
        )
        .unwrap();
        h.status(&c)
    };
    assert_eq!(write(&mut h, true), Err(Error::Execution));
    assert_eq!(nv_of(&h).slot(8)[..32], [0x5A; 32]);
    write(&mut h, false).unwrap();
    assert_eq!(nv_of(&h).slot(8)[..32], plain);
}

#[test]
fn mac_and_checkmac_follow_the_datasheet_layout() {
    let mut h = Host::new(Preset::Tngtls);
    let nv = nv_of(&h);
    let s = sn(&nv);
    let key = key32(&nv, IO_SLOT);
    // Slot 6 has ReqRandom: a MAC without a random TempKey is refused.
    assert_eq!(
        h.run(&cmd(opcode::MAC, 0x00, IO_SLOT as u16, &[1; 32])),
        Err(Error::Execution)
    );
    // Mode 0x01: key ‖ TempKey, SN bytes 8, 0, 1 only.
    let tk = nonce_random(&mut h, &[7; 20]);
    let mac = h.run(&cmd(opcode::MAC, 0x01, IO_SLOT as u16, &[])).unwrap();
    let mut inc = vec![0u8; 11];
    inc.push(s[8]);
    inc.extend_from_slice(&[0; 4]);
    inc.extend_from_slice(&s[0..2]);
    inc.extend_from_slice(&[0; 2]);
    assert_eq!(
        mac,
        sha(&[&key, &tk, &[opcode::MAC, 0x01, IO_SLOT, 0], &inc])
    );
    // Mode 0x41 adds SN[4:7] and SN[2:3].
    let tk = nonce_random(&mut h, &[8; 20]);
    let mac = h.run(&cmd(opcode::MAC, 0x41, IO_SLOT as u16, &[])).unwrap();
    let mut inc = vec![0u8; 11];
    inc.push(s[8]);
    inc.extend_from_slice(&s[4..8]);
    inc.extend_from_slice(&s[0..2]);
    inc.extend_from_slice(&s[2..4]);
    assert_eq!(
        mac,
        sha(&[&key, &tk, &[opcode::MAC, 0x41, IO_SLOT, 0], &inc])
    );
    // Reserved bits: parse error.
    assert_eq!(
        h.run(&cmd(opcode::MAC, 0x08, IO_SLOT as u16, &[])),
        Err(Error::Parse)
    );
    // CheckMac mode 0: key ‖ challenge ‖ OtherData interleaved with SN.
    let chal = [0x11u8; 32];
    let other: [u8; 13] = core::array::from_fn(|i| i as u8 + 1);
    let mut msg = [0u8; 88];
    msg[..32].copy_from_slice(&key);
    msg[32..64].copy_from_slice(&chal);
    msg[64..68].copy_from_slice(&other[0..4]);
    msg[76..79].copy_from_slice(&other[4..7]);
    msg[79] = s[8];
    msg[80..84].copy_from_slice(&other[7..11]);
    msg[84..86].copy_from_slice(&s[0..2]);
    msg[86..88].copy_from_slice(&other[11..13]);
    let resp = sha(&[&msg]);
    let data = |r: &[u8; 32]| [&chal[..], r, &other].concat();
    h.status(&cmd(opcode::CHECKMAC, 0x00, IO_SLOT as u16, &data(&resp)))
        .unwrap();
    let mut wrong = resp;
    wrong[31] ^= 0x80;
    assert_eq!(
        h.status(&cmd(opcode::CHECKMAC, 0x00, IO_SLOT as u16, &data(&wrong))),
        Err(Error::Miscompare)
    );
    // CheckMac never works with a private key slot.
    assert_eq!(
        h.status(&cmd(opcode::CHECKMAC, 0x00, 0, &data(&resp))),
        Err(Error::Execution)
    );
}

#[test]
fn req_auth_keys_need_a_checkmac_first() {
    // Slot 9 (AES) requires authorization by slot 6.
    let mut h = host_with(|nv| {
        let kc = nv.config.key_config(9).0 | 0x0080 | (IO_SLOT as u16) << 8;
        nv.config.set_key_config(9, KeyConfig(kc));
    });
    let nv = nv_of(&h);
    let aes = cmd(opcode::AES, 0x00, 9, &[0; 16]);
    assert_eq!(h.run(&aes), Err(Error::Execution));
    let s = sn(&nv);
    let chal = [0x22u8; 32];
    let other = [0u8; 13];
    let mut msg = [0u8; 88];
    msg[..32].copy_from_slice(&key32(&nv, IO_SLOT));
    msg[32..64].copy_from_slice(&chal);
    msg[79] = s[8];
    msg[84..86].copy_from_slice(&s[0..2]);
    let resp = sha(&[&msg]);
    h.status(&cmd(
        opcode::CHECKMAC,
        0x00,
        IO_SLOT as u16,
        &[&chal[..], &resp, &other].concat(),
    ))
    .unwrap();
    assert!(h.run(&aes).is_ok());
    // Sleep clears AuthValid.
    h.wake().unwrap();
    h.sleep();
    assert_eq!(h.run(&aes), Err(Error::Execution));
}

#[test]
fn derive_key_rolls_a_slot() {
    // Slot 14: WriteConfig 0b0010 (DeriveKey, Roll, no MAC).
    let mut h = host_with(|nv| {
        nv.config.set_slot_config(14, SlotConfig(0x2F8F));
        nv.slot_mut(14)[..32].copy_from_slice(&[0x31; 32]);
    });
    let s = sn(&nv_of(&h));
    // Without a valid TempKey: refused.
    assert_eq!(
        h.status(&cmd(opcode::DERIVE_KEY, 0x00, 14, &[])),
        Err(Error::Execution)
    );
    let tk = nonce_random(&mut h, &[1; 20]);
    // Mode bit 2 must match SourceFlag (random → 0).
    assert_eq!(
        h.status(&cmd(opcode::DERIVE_KEY, 0x04, 14, &[])),
        Err(Error::Execution)
    );
    let tk2 = nonce_random(&mut h, &[1; 20]);
    assert_ne!(tk, tk2);
    h.status(&cmd(opcode::DERIVE_KEY, 0x00, 14, &[])).unwrap();
    let want = sha(&[
        &[0x31; 32],
        &[opcode::DERIVE_KEY, 0x00, 14, 0],
        &[s[8], s[0], s[1]],
        &[0; 25],
        &tk2,
    ]);
    assert_eq!(nv_of(&h).slot(14)[..32], want);
    // Slot 13 (WriteConfig never) refuses.
    nonce_random(&mut h, &[1; 20]);
    assert_eq!(
        h.status(&cmd(opcode::DERIVE_KEY, 0x00, 13, &[])),
        Err(Error::Execution)
    );
}

#[test]
fn derive_key_on_slots_that_also_take_encrypted_writes() {
    // CryptoAuthLib's derivekey / derivekey_mac (silicon) with
    // test_ecc608_configdata: slot 9 WriteConfig 0x6 (encrypted Write,
    // DeriveKey Roll, no MAC), slot 3 WriteConfig 0xF (Create from WriteKey
    // 4, MAC required). Bit 14 does not refuse DeriveKey.
    let mut h = host_with(|nv| {
        nv.config.set_slot_config(9, SlotConfig(0x64C4));
        nv.config.set_slot_config(3, SlotConfig(0xF4C4));
        nv.config.set_key_config(3, KeyConfig(0x001C));
        nv.config.set_key_config(4, KeyConfig(0x003C));
        nv.slot_mut(9)[..32].copy_from_slice(&[0x19; 32]);
        nv.slot_mut(4)[..32].copy_from_slice(&[0x44; 32]);
    });
    let s = sn(&nv_of(&h));
    let tk = nonce_random(&mut h, &[2; 20]);
    h.status(&cmd(opcode::DERIVE_KEY, 0x00, 9, &[])).unwrap();
    let want = sha(&[
        &[0x19; 32],
        &[opcode::DERIVE_KEY, 0x00, 9, 0],
        &[s[8], s[0], s[1]],
        &[0; 25],
        &tk,
    ]);
    assert_eq!(nv_of(&h).slot(9)[..32], want);

    let tk = nonce_random(&mut h, &[3; 20]);
    let head = [opcode::DERIVE_KEY, 0x00, 3, 0];
    let mac = sha(&[&[0x44; 32], &head, &[s[8], s[0], s[1]]]);
    h.status(&cmd(opcode::DERIVE_KEY, 0x00, 3, &mac)).unwrap();
    let want = sha(&[&[0x44; 32], &head, &[s[8], s[0], s[1]], &[0; 25], &tk]);
    assert_eq!(nv_of(&h).slot(3)[..32], want);
}

#[test]
fn privwrite_encrypted_installs_a_signing_key() {
    // Slot 3: WriteConfig 0b0110 (GenKey and encrypted PrivWrite), WriteKey 6.
    let mut h = host_with(|nv| nv.config.set_slot_config(3, SlotConfig(0x6685)));
    let nv = nv_of(&h);
    let s = sn(&nv);
    let io = key32(&nv, IO_SLOT);
    let sk = SigningKey::random(&mut rand_core::OsRng);
    let mut value = [0u8; 36];
    value[4..].copy_from_slice(&sk.to_bytes());
    let privwrite = |h: &mut Host, bad: bool| {
        let tk = nonce_random(h, &[2; 20]);
        let tk = gendig(h, &tk, IO_SLOT, &io, &s);
        let tk2 = sha(&[&tk]);
        let mut data = [0u8; 68];
        for i in 0..36 {
            data[i] = value[i] ^ if i < 32 { tk[i] } else { tk2[i - 32] };
        }
        let mac = sha(&[
            &tk,
            &[opcode::PRIVWRITE, 0x40, 3, 0],
            &[s[8], s[0], s[1]],
            &[0; 21],
            &value,
        ]);
        data[36..].copy_from_slice(&mac);
        if bad {
            data[40] ^= 1;
        }
        h.status(&cmd(opcode::PRIVWRITE, 0x40, 3, &data))
    };
    assert_eq!(privwrite(&mut h, true), Err(Error::Execution));
    privwrite(&mut h, false).unwrap();
    let pk = h.run(&command::genkey_public(3)).unwrap();
    assert_eq!(pk, xy(sk.verifying_key()));
    // Clear PrivWrite after the data lock: refused.
    assert_eq!(
        h.status(&cmd(opcode::PRIVWRITE, 0x00, 3, &[0; 68])),
        Err(Error::Execution)
    );
    // Slot 0 (WriteConfig 0): refused even encrypted.
    assert_eq!(
        h.status(&cmd(opcode::PRIVWRITE, 0x40, 0, &[0; 68])),
        Err(Error::Execution)
    );
}

fn ecdh_expected(host: &p256::SecretKey, chip_xy: &[u8]) -> Vec<u8> {
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(chip_xy);
    let peer = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), peer.as_affine())
        .raw_secret_bytes()
        .to_vec()
}

fn io_decrypt(io: &[u8; 32], data: &[u8], nonce: &[u8]) -> Vec<u8> {
    data.chunks(32)
        .enumerate()
        .flat_map(|(i, b)| {
            let k = sha(&[io, &nonce[16 * i..16 * i + 16]]);
            b.iter().zip(k).map(|(a, b)| a ^ b).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn ecdh_clear_encrypted_and_tempkey() {
    let mut h = Host::new(Preset::Tngtls);
    let nv = nv_of(&h);
    let io = key32(&nv, IO_SLOT);
    let host = p256::SecretKey::random(&mut rand_core::OsRng);
    let host_pub = host.public_key().to_encoded_point(false).as_bytes()[1..].to_vec();
    let chip_pub = h.run(&command::genkey_public(0)).unwrap();
    let want = ecdh_expected(&host, &chip_pub);
    // Clear output (mode 0x0C, the 608's output-buffer mode) and the
    // 508-compatible mode 0x00.
    assert_eq!(h.run(&cmd(opcode::ECDH, 0x0C, 0, &host_pub)).unwrap(), want);
    assert_eq!(h.run(&cmd(opcode::ECDH, 0x00, 0, &host_pub)).unwrap(), want);
    // IO-encrypted output: data ‖ OutNonce (CAL calib_ecdh_ioenc).
    let out = h.run(&cmd(opcode::ECDH, 0x0E, 0, &host_pub)).unwrap();
    assert_eq!(out.len(), 64);
    assert_ne!(out[..32], want[..]);
    assert_eq!(io_decrypt(&io, &out[..32], &out[32..]), want);
    // Slot 1 has no ECDH permission; slot 8 is not a key.
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0C, 1, &host_pub)),
        Err(Error::Execution)
    );
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0C, 8, &host_pub)),
        Err(Error::Execution)
    );
    // A point off the curve.
    let mut bad = host_pub.clone();
    bad[63] ^= 1;
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0C, 0, &bad)),
        Err(Error::Execution)
    );
    // GenKey with key id 0xFFFF keeps the private key in TempKey for
    // ECDH with TempKey as source (CAL calib_ecdh_tempkey, mode 0x0D).
    let eph = h.run(&cmd(opcode::GENKEY, 0x04, 0xFFFF, &[])).unwrap();
    let want = ecdh_expected(&host, &eph);
    assert_eq!(h.run(&cmd(opcode::ECDH, 0x0D, 0, &host_pub)).unwrap(), want);
    // …and only once: ECDH does not keep TempKey.
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0D, 0, &host_pub)),
        Err(Error::Execution)
    );
    // Result to TempKey (mode 0x08): nothing is output.
    let r = h.run(&cmd(opcode::ECDH, 0x08, 0, &host_pub)).unwrap();
    assert!(r.is_empty());
    let st = h.run(&command::info(InfoMode::State)).unwrap();
    assert_eq!(st[1] & 0x80, 0x80);
}

#[test]
fn ecdh_output_protection_bits() {
    // ChipOptions bits 9:8 = 01: the secret may leave only encrypted.
    let mut h = host_with(|nv| {
        let o = nv.config.chip_options() | 0x0100;
        nv.config.0[90..92].copy_from_slice(&o.to_le_bytes());
    });
    let host = p256::SecretKey::random(&mut rand_core::OsRng);
    let host_pub = host.public_key().to_encoded_point(false).as_bytes()[1..].to_vec();
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0C, 0, &host_pub)),
        Err(Error::Execution)
    );
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0E, 0, &host_pub)).unwrap().len(),
        64
    );
    // 10: no output at all, TempKey still allowed.
    let mut h = host_with(|nv| {
        let o = nv.config.chip_options() | 0x0200;
        nv.config.0[90..92].copy_from_slice(&o.to_le_bytes());
    });
    assert_eq!(
        h.run(&cmd(opcode::ECDH, 0x0E, 0, &host_pub)),
        Err(Error::Execution)
    );
    assert!(h.run(&cmd(opcode::ECDH, 0x08, 0, &host_pub)).is_ok());
}

/// The 55-byte Sign(Internal) message (CAL `atcah_sign_internal_msg`).
fn internal_message(
    nv: &NvState,
    tk: &[u8; 32],
    flags: u8,
    kid: u8,
    mode: u8,
    slot: u8,
) -> [u8; 55] {
    let s = sn(nv);
    let mut m = [0u8; 55];
    m[..32].copy_from_slice(tk);
    m[32] = opcode::SIGN;
    m[33] = mode;
    m[34] = slot;
    m[36..38].copy_from_slice(&nv.config.slot_config(kid).0.to_le_bytes());
    m[38..40].copy_from_slice(&nv.config.key_config(kid).0.to_le_bytes());
    m[40] = flags;
    m[43] = s[8];
    m[48..50].copy_from_slice(&s[0..2]);
    if mode & 0x40 != 0 {
        m[44..48].copy_from_slice(&s[4..8]);
        m[50..52].copy_from_slice(&s[2..4]);
    }
    m[52] = (nv.config.slot_locked_bits() >> kid) as u8 & 1;
    m
}

#[test]
fn genkey_digest_then_internal_sign() {
    let mut h = Host::new(Preset::Tngtls);
    let nv = nv_of(&h);
    let s = sn(&nv);
    let signer = vk(&h.run(&command::genkey_public(1)).unwrap());
    // Internal sign without a GenDig/GenKey TempKey: refused.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &[1; 32]).unwrap())
        .unwrap();
    assert_eq!(
        h.run(&cmd(opcode::SIGN, 0x00, 1, &[])),
        Err(Error::Execution)
    );
    // GenKey mode 0x08 over slot 0: TempKey = SHA-256(TempKey ‖ 40 08 00 00
    // ‖ SN[8] SN[0:1] ‖ zeros ‖ public key), 128 bytes.
    let tk = nonce_random(&mut h, &[6; 20]);
    let pk = h.run(&cmd(opcode::GENKEY, 0x08, 0, &[])).unwrap();
    let mut msg = [0u8; 128];
    msg[..32].copy_from_slice(&tk);
    msg[32..36].copy_from_slice(&[0x40, 0x08, 0x00, 0x00]);
    msg[36] = s[8];
    msg[37..39].copy_from_slice(&s[0..2]);
    msg[64..].copy_from_slice(&pk);
    let digest = sha(&[&msg]);
    let st = h.run(&command::info(InfoMode::State)).unwrap();
    assert_eq!(st[0], 0x40); // GenKeyData, KeyID 0, SourceFlag random
                             // Internal sign with slot 1 over the 55-byte message, mode 0x40 (SN).
    let sig = h.run(&cmd(opcode::SIGN, 0x40, 1, &[])).unwrap();
    let m = internal_message(&nv, &digest, 0x40, 0, 0x40, 1);
    signer
        .verify_prehash(&sha(&[&m]), &Signature::from_slice(&sig).unwrap())
        .unwrap();
    // Slot 0 does not allow internal signing; slot 1 not external.
    nonce_random(&mut h, &[6; 20]);
    h.status(&cmd(opcode::GENKEY, 0x08, 0, &[])).unwrap();
    assert_eq!(
        h.run(&cmd(opcode::SIGN, 0x00, 0, &[])),
        Err(Error::Execution)
    );
    h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &[1; 32]).unwrap())
        .unwrap();
    assert_eq!(
        h.run(&cmd(opcode::SIGN, 0xA0, 1, &[])),
        Err(Error::Execution)
    );
    // GenDig over slot 8 also feeds an internal signature.
    let tk = nonce_random(&mut h, &[9; 20]);
    let tk = gendig(&mut h, &tk, 8, &key32(&nv, 8), &s);
    let sig = h.run(&cmd(opcode::SIGN, 0x00, 1, &[])).unwrap();
    let m = internal_message(&nv, &tk, 0x20 | 8, 8, 0x00, 1);
    signer
        .verify_prehash(&sha(&[&m]), &Signature::from_slice(&sig).unwrap())
        .unwrap();
}

fn store_public(nv: &mut NvState, slot: u8, k: &VerifyingKey, first: u8) {
    let p = xy(k);
    let s = nv.slot_mut(slot);
    s[..72].fill(0);
    s[0] = first;
    s[4..36].copy_from_slice(&p[..32]);
    s[40..72].copy_from_slice(&p[32..]);
}

#[test]
fn verify_stored_validate_and_invalidate() {
    let parent = SigningKey::random(&mut rand_core::OsRng);
    let child = SigningKey::random(&mut rand_core::OsRng);
    // Slot 11: plain public key. Slot 14: public key that must be
    // validated (PubInfo), parent key in slot 11 (SlotConfig.ReadKey).
    let mut h = host_with(|nv| {
        store_public(nv, 11, parent.verifying_key(), 0);
        nv.config.set_key_config(14, KeyConfig(0x0012));
        nv.config.set_slot_config(14, SlotConfig(0x000B));
        store_public(nv, 14, child.verifying_key(), 0xA0);
    });
    let s = sn(&nv_of(&h));
    let digest = [0x3Cu8; 32];
    let sig: Signature =
        p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&parent, &digest).unwrap();
    let verify_stored = |h: &mut Host, slot: u16, sig: &[u8]| {
        h.status(&command::nonce_passthrough(NonceTarget::TempKey, &digest).unwrap())
            .unwrap();
        h.status(&cmd(opcode::VERIFY, 0x00, slot, sig))
    };
    verify_stored(&mut h, 11, &sig.to_bytes()).unwrap();
    let mut bad = sig.to_bytes().to_vec();
    bad[5] ^= 1;
    assert_eq!(verify_stored(&mut h, 11, &bad), Err(Error::Miscompare));
    // Slot 14 is invalidated: Verify(Stored) refuses it.
    let csig: Signature =
        p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&child, &digest).unwrap();
    assert_eq!(
        verify_stored(&mut h, 14, &csig.to_bytes()),
        Err(Error::Execution)
    );
    // Validate: GenKey 0x10 digest of slot 14, then a parent signature
    // over SHA-256(TempKey ‖ 41 ‖ OtherData with SN) (CAL atcah_verify_mac).
    let validate = |h: &mut Host, mode: u8| {
        let tk = nonce_random(h, &[1; 20]);
        let other3 = [0x41, 0x10, 0x0E];
        h.status(&cmd(opcode::GENKEY, 0x10, 14, &other3)).unwrap();
        let mut msg = [0u8; 128];
        msg[..32].copy_from_slice(&tk);
        msg[32] = 0x40;
        msg[33..36].copy_from_slice(&other3);
        msg[36] = s[8];
        msg[37..39].copy_from_slice(&s[0..2]);
        // The stored key as X ‖ Y, as CAL's verify_validate test hashes it.
        let stored = nv_of(h).slot(14)[..72].to_vec();
        msg[64..96].copy_from_slice(&stored[4..36]);
        msg[96..].copy_from_slice(&stored[40..72]);
        let tk = sha(&[&msg]);
        let other: [u8; 19] = core::array::from_fn(|i| 0x60 + i as u8);
        let m = sha(&[
            &tk,
            &[opcode::SIGN],
            &other[0..10],
            &[s[8]],
            &other[10..14],
            &s[0..2],
            &other[14..19],
        ]);
        let vsig: Signature =
            p256::ecdsa::signature::hazmat::PrehashSigner::sign_prehash(&parent, &m).unwrap();
        let data = [&vsig.to_bytes()[..], &other].concat();
        h.status(&cmd(opcode::VERIFY, mode, 14, &data))
    };
    validate(&mut h, 0x03).unwrap();
    assert_eq!(nv_of(&h).slot(14)[0] >> 4, 0x5);
    verify_stored(&mut h, 14, &csig.to_bytes()).unwrap();
    validate(&mut h, 0x07).unwrap();
    assert_eq!(nv_of(&h).slot(14)[0] >> 4, 0xA);
    assert_eq!(
        verify_stored(&mut h, 14, &csig.to_bytes()),
        Err(Error::Execution)
    );
}

#[test]
fn a_write_invalidates_a_public_key_that_needs_validation() {
    // Slot 14: P-256 public key with PubInfo (validation required); slot 15
    // without. Writes always allowed (SlotConfig 0x0F0F), data locked.
    let mut h = host_with(|nv| {
        nv.config.set_key_config(14, KeyConfig(0x0032));
        nv.config.set_slot_config(14, SlotConfig(0x0F0F));
        nv.config.set_key_config(15, KeyConfig(0x0030));
        nv.config.set_slot_config(15, SlotConfig(0x0F0F));
    });
    let block = [0x5Bu8; 32];
    for slot in [14u8, 15] {
        let addr = data_address(slot, 0, 0).unwrap();
        h.status(&command::write(Zone::Data, addr, &block).unwrap())
            .unwrap();
    }
    let nv = nv_of(&h);
    assert_eq!(
        nv.slot(14)[0],
        0xAB,
        "validity nibble 0xA over the written byte"
    );
    assert_eq!(nv.slot(14)[1..32], block[1..]);
    assert_eq!(nv.slot(15)[..32], block, "no PubInfo: written as is");
}

#[test]
fn verify_external_with_an_off_curve_key() {
    let mut h = Host::new(Preset::Tngtls);
    h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &[1; 32]).unwrap())
        .unwrap();
    let mut pk = [0u8; 64];
    pk[63] = 1;
    assert_eq!(
        h.status(&command::verify_external(
            command::MessageSource::MsgDigestBuffer,
            &[1; 64],
            &pk
        )),
        Err(Error::Execution)
    );
}

#[test]
fn aes_ecb_and_gfm() {
    let mut h = Host::new(Preset::Tngtls);
    let nv = nv_of(&h);
    let key: [u8; 16] = nv.slot(9)[16..32].try_into().unwrap();
    let pt = *b"sixteen byte msg";
    // Key block 1 of slot 9 (mode bits 7:6 = 01).
    let ct = h.run(&cmd(opcode::AES, 0x40, 9, &pt)).unwrap();
    let cipher = aes::Aes128::new_from_slice(&key).unwrap();
    let mut b = aes::Block::from(pt);
    cipher.encrypt_block(&mut b);
    assert_eq!(ct, b.to_vec());
    let back = h.run(&cmd(opcode::AES, 0x41, 9, &ct)).unwrap();
    let mut d = aes::Block::from(<[u8; 16]>::try_from(&ct[..]).unwrap());
    cipher.decrypt_block(&mut d);
    assert_eq!(back, pt);
    assert_eq!(back, d.to_vec());
    // GFM: X·H in GCM's field, checked with GHASH of one block.
    let hh = [0x66u8; 16];
    let x: [u8; 16] = core::array::from_fn(|i| i as u8 * 17);
    let out = h
        .run(&cmd(opcode::AES, 0x03, 0, &[&hh[..], &x].concat()))
        .unwrap();
    use ghash::universal_hash::UniversalHash;
    let mut g = ghash::GHash::new(&hh.into());
    g.update(&[x.into()]);
    assert_eq!(out, g.finalize().to_vec());
    // Slot 8 is not an AES key; the AES-enable bit gates everything.
    assert_eq!(
        h.run(&cmd(opcode::AES, 0x00, 8, &pt)),
        Err(Error::Execution)
    );
    assert_eq!(h.run(&cmd(opcode::AES, 0x02, 9, &pt)), Err(Error::Parse));
    let mut off = host_with(|nv| nv.config.0[13] &= !1);
    assert_eq!(
        off.run(&cmd(opcode::AES, 0x00, 9, &pt)),
        Err(Error::Execution)
    );
}

#[test]
fn aes_with_the_key_in_tempkey_keeps_tempkey() {
    // CryptoAuthLib's aes_encrypt_key_tempkey / aes_decrypt_key_tempkey
    // (608 silicon): one 64-byte Nonce load, then every key block, many
    // blocks each.
    let mut h = Host::new(Preset::Tngtls);
    let keys: [u8; 64] = core::array::from_fn(|i| (i as u8).wrapping_mul(29) ^ 0x5C);
    h.status(&cmd(opcode::NONCE, 0x23, 0, &keys)).unwrap();
    for block in 0..4usize {
        let cipher = aes::Aes128::new_from_slice(&keys[16 * block..16 * block + 16]).unwrap();
        for n in 0..3u8 {
            let pt = [n ^ block as u8; 16];
            let ct = h
                .run(&cmd(opcode::AES, (block as u8) << 6, 0xFFFF, &pt))
                .unwrap();
            let mut b = aes::Block::from(pt);
            cipher.encrypt_block(&mut b);
            assert_eq!(ct, b.to_vec(), "key block {block}, block {n}");
            let back = h
                .run(&cmd(opcode::AES, (block as u8) << 6 | 0x01, 0xFFFF, &ct))
                .unwrap();
            assert_eq!(back, pt);
        }
    }
    // Another command clears it as before.
    h.run(&command::info(InfoMode::Revision)).unwrap();
    h.run(&command::random()).unwrap();
    assert_eq!(
        h.run(&cmd(opcode::AES, 0x00, 0xFFFF, &[0; 16])),
        Err(Error::Execution)
    );
}

fn kdf(h: &mut Host, mode: u8, key_id: u16, details: u32, msg: &[u8]) -> Result<Vec<u8>, Error> {
    let data = [&details.to_le_bytes()[..], msg].concat();
    h.run(&cmd(opcode::KDF, mode, key_id, &data))
}

#[test]
fn kdf_matches_cryptoauthlib_silicon_vectors() {
    let mut h = Host::new(Preset::Tngtls);
    let nonce: [u8; 32] = core::array::from_fn(|i| (i % 16) as u8);
    let input16: [u8; 16] = core::array::from_fn(|i| i as u8);
    // atca_tests_kdf.c kdf_prf_output: PRF, key 32 B from TempKey,
    // 64-byte output, expected bytes measured on a 608.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &nonce).unwrap())
        .unwrap();
    let out = kdf(&mut h, 0x10, 0x1234, 0x01 | 0x100 | 16 << 24, &input16).unwrap();
    let expected: [u8; 64] = [
        0x1E, 0xBC, 0xBE, 0x62, 0x00, 0x5A, 0xB9, 0x48, 0xFD, 0xFF, 0xE1, 0xC4, 0x02, 0xAA, 0xBA,
        0x35, 0x4E, 0xC6, 0x76, 0x05, 0x0C, 0x9B, 0xC1, 0xAA, 0xE1, 0xFF, 0x5B, 0x15, 0x09, 0xA4,
        0xA0, 0x4A, 0x44, 0x25, 0x46, 0x64, 0xC2, 0xA4, 0x80, 0xF5, 0xB7, 0x7E, 0xA2, 0xD1, 0x02,
        0x0C, 0x7B, 0xA4, 0xB3, 0x64, 0x0C, 0x4A, 0xC7, 0x93, 0x32, 0x4C, 0x26, 0xD6, 0xFD, 0xDF,
        0xDB, 0x1F, 0x01, 0x1A,
    ];
    assert_eq!(out, expected);
    // kdf_aes_output: AES-128 of the message with TempKey's first 16 bytes,
    // 16 zero bytes after it.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &nonce).unwrap())
        .unwrap();
    let out = kdf(&mut h, 0x30, 0x1234, 0, &input16).unwrap();
    let mut want = vec![
        0x0A, 0x94, 0x0B, 0xB5, 0x41, 0x6E, 0xF0, 0x45, 0xF1, 0xC3, 0x94, 0x58, 0xC6, 0x53, 0xEA,
        0x5A,
    ];
    want.extend_from_slice(&[0; 16]);
    assert_eq!(out, want);
    // HKDF, message in the input: HMAC-SHA256(TempKey, message).
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &nonce).unwrap())
        .unwrap();
    let out = kdf(&mut h, 0x50, 0, 0x02 | 16 << 24, &input16).unwrap();
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&nonce).unwrap();
    m.update(&input16);
    assert_eq!(out, m.finalize().into_bytes().to_vec());
    // PRF into slot 14 (KeyID bits 15:8), then encrypted output.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &nonce).unwrap())
        .unwrap();
    kdf(&mut h, 0x08, 0x0E00, 0x01 | 16 << 24, &input16).unwrap();
    assert_eq!(nv_of(&h).slot(14)[..32], expected[..32]);
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &nonce).unwrap())
        .unwrap();
    let out = kdf(&mut h, 0x14, 0, 0x01 | 0x100 | 16 << 24, &input16).unwrap();
    let io = key32(&nv_of(&h), IO_SLOT);
    assert_eq!(io_decrypt(&io, &out[..64], &out[64..]), expected);
    // Length byte not matching the message: parse error.
    assert_eq!(
        kdf(&mut h, 0x10, 0, 0x01 | 15 << 24, &input16),
        Err(Error::Parse)
    );
}

#[test]
fn sha_hmac_and_digest_targets() {
    let mut h = Host::new(Preset::Tngtls);
    let nv = nv_of(&h);
    let msg: Vec<u8> = (0..100u8).collect();
    // HMAC start (0x04, key slot 6), one 64-byte update, end (0x02 on a
    // 608) with the output only (0xC0).
    h.status(&cmd(opcode::SHA, 0x04, IO_SLOT as u16, &[]))
        .unwrap();
    h.status(&cmd(opcode::SHA, 0x01, 64, &msg[..64])).unwrap();
    let out = h.run(&cmd(opcode::SHA, 0xC2, 36, &msg[64..])).unwrap();
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key32(&nv, IO_SLOT)).unwrap();
    m.update(&msg);
    assert_eq!(out, m.finalize().into_bytes().to_vec());
    // HMAC with a private key slot: refused.
    assert_eq!(
        h.status(&cmd(opcode::SHA, 0x04, 0, &[])),
        Err(Error::Execution)
    );
    // SHA-256 to the message digest buffer, then signed from there.
    let digest = sha(&[b"abc"]);
    h.status(&command::sha_start()).unwrap();
    let out = h.run(&cmd(opcode::SHA, 0x42, 3, b"abc")).unwrap();
    assert_eq!(out, digest);
    let sig = h
        .run(&command::sign_external(
            0,
            command::MessageSource::MsgDigestBuffer,
        ))
        .unwrap();
    let pk = vk(&h.run(&command::genkey_public(0)).unwrap());
    pk.verify_prehash(&digest, &Signature::from_slice(&sig).unwrap())
        .unwrap();
    // To TempKey (0x00): Info State shows a valid TempKey afterwards.
    h.status(&command::sha_start()).unwrap();
    h.status(&cmd(opcode::SHA, 0x02, 3, b"abc")).unwrap();
    let st = h.run(&command::info(InfoMode::State)).unwrap();
    assert_eq!(st[1] & 0x80, 0x80);
    // Target 10 is reserved.
    h.status(&command::sha_start()).unwrap();
    assert_eq!(h.run(&cmd(opcode::SHA, 0x82, 0, &[])), Err(Error::Parse));
}

#[test]
fn sha_hmac_keyed_by_tempkey() {
    // CryptoAuthLib's sha_hmac_tempkey (608 silicon): Nonce pass-through
    // loads the key, HMAC start names key id 0xFFFF.
    let mut h = Host::new(Preset::Tngtls);
    let key = [0x37u8; 32];
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &key).unwrap())
        .unwrap();
    h.status(&cmd(opcode::SHA, 0x04, 0xFFFF, &[])).unwrap();
    let out = h.run(&cmd(opcode::SHA, 0xC2, 5, b"hello")).unwrap();
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
    m.update(b"hello");
    assert_eq!(out, m.finalize().into_bytes().to_vec());
    // Without a valid TempKey: refused.
    assert_eq!(
        h.status(&cmd(opcode::SHA, 0x04, 0xFFFF, &[])),
        Err(Error::Execution)
    );
}

#[test]
fn info_state_gpio_and_latch() {
    let mut h = Host::new(Preset::Tngtls);
    assert_eq!(
        h.run(&command::info(InfoMode::State)).unwrap(),
        [0, 0, 0, 0]
    );
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &[1; 32]).unwrap())
        .unwrap();
    // SourceFlag = input (b4), Valid (byte 1 b7).
    assert_eq!(
        h.run(&command::info(InfoMode::State)).unwrap(),
        [0x10, 0x80, 0, 0]
    );
    assert_eq!(
        h.run(&cmd(opcode::INFO, 0x03, 0, &[])),
        Err(Error::Execution)
    );
    assert_eq!(h.run(&cmd(opcode::INFO, 0x05, 0, &[])), Err(Error::Parse));
}

/// Every opcode with odd modes, key ids and lengths, in each lock state:
/// the chip always answers with a well-formed packet, never panics.
/// (Write, Lock and UpdateExtra are left out: random ones would change the
/// chip's address or lock it mid-run; chip_rules.rs covers them.)
#[test]
fn any_packet_gets_a_status() {
    use rand_core::RngCore;
    let mut rng = rand_core::OsRng;
    for preset in [Preset::Blank, Preset::Tngtls] {
        let mut h = Host::new(preset);
        for op in [
            0x02, 0x08, 0x15, 0x16, 0x1B, 0x1C, 0x24, 0x28, 0x30, 0x40, 0x41, 0x43, 0x45, 0x46,
            0x47, 0x51, 0x56, 0x77, 0x80, 0x99,
        ] {
            for _ in 0..60 {
                let p1 = (rng.next_u32() & 0xFF) as u8;
                let p2 = match rng.next_u32() % 4 {
                    0 => 0xFFFF,
                    1 => (rng.next_u32() % 16) as u16,
                    _ => rng.next_u32() as u16,
                };
                let len = [0, 3, 4, 16, 20, 32, 36, 64, 68, 77, 83, 128, 144]
                    [(rng.next_u32() % 13) as usize];
                let mut data = vec![0u8; len];
                rng.fill_bytes(&mut data);
                // Occasionally prepare TempKey so the deeper paths run.
                if rng.next_u32().is_multiple_of(3) {
                    let _ = h.run(&command::nonce_random(&[1; 20], true));
                }
                let r = h.run(&cmd(op, p1, p2, &data));
                if let Err(e) = r {
                    assert!(
                        matches!(
                            e,
                            Error::Parse | Error::Execution | Error::Miscompare | Error::EccFault
                        ),
                        "op {op:02X} p1 {p1:02X} p2 {p2:04X} len {len}: {e:?}"
                    );
                }
            }
        }
    }
}
