//! The emulated chip's access and lock rules, one test per rule, each
//! positive and negative, checked through raw I2C transactions.

mod common;

use coffre_emu::presets::Preset;
use coffre_proto::command::{self, AccessSize, InfoMode, LockTarget, MessageSource, NonceTarget};
use coffre_proto::config::ConfigZone;
use coffre_proto::crc::crc16;
use coffre_proto::zone::{data_address, Zone};
use coffre_proto::Error;
use common::Host;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

fn read32(h: &mut Host, zone: Zone, addr: u16) -> Result<Vec<u8>, Error> {
    h.run(&command::read(zone, AccessSize::Block, addr))
}

fn write32(h: &mut Host, zone: Zone, addr: u16, data: &[u8; 32]) -> Result<(), Error> {
    h.status(&command::write(zone, addr, data).unwrap())
}

fn vk(pk: &[u8]) -> VerifyingKey {
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(pk);
    VerifyingKey::from_sec1_bytes(&sec1).unwrap()
}

fn sign(h: &mut Host, slot: u8, digest: &[u8; 32]) -> Result<Vec<u8>, Error> {
    h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, digest).unwrap())?;
    h.run(&command::sign_external(
        slot,
        MessageSource::MsgDigestBuffer,
    ))
}

/// Bring a blank chip to "config locked" with the Trust&GO layout.
fn blank_config_locked() -> Host {
    let mut h = Host::new(Preset::Blank);
    let cfg = h.board.with_chip(|c| c.config().clone());
    h.status(&command::lock(LockTarget::Config, Some(crc16(cfg.as_bytes()))).unwrap())
        .unwrap();
    h
}

#[test]
fn info_reports_a_608b() {
    let mut h = Host::new(Preset::Tngtls);
    assert_eq!(
        h.run(&command::info(InfoMode::Revision)).unwrap(),
        [0x00, 0x00, 0x60, 0x03]
    );
    assert_eq!(h.run(&command::info(InfoMode::KeyValid(0))).unwrap()[0], 1);
    assert_eq!(h.run(&command::info(InfoMode::KeyValid(8))).unwrap()[0], 0);
}

#[test]
fn config_zone_is_always_readable_and_matches_the_model() {
    let mut h = Host::new(Preset::Tngtls);
    let mut cfg = Vec::new();
    for b in 0..4u16 {
        cfg.extend(read32(&mut h, Zone::Config, b << 3).unwrap());
    }
    let model = h.board.with_chip(|c| c.config().clone());
    assert_eq!(ConfigZone::parse(&cfg).unwrap(), model);
    // 4-byte read of the lock word 0x15: LockValue and LockConfig are 0x00.
    let w = h
        .run(&command::read(Zone::Config, AccessSize::Word, 0x15))
        .unwrap();
    assert_eq!(&w[2..4], &[0x00, 0x00]);
    // Blank chip: config readable before any lock, lock bytes 0x55.
    let mut b = Host::new(Preset::Blank);
    let w = b
        .run(&command::read(Zone::Config, AccessSize::Word, 0x15))
        .unwrap();
    assert_eq!(&w[2..4], &[0x55, 0x55]);
}

#[test]
fn slot8_is_clear_read_and_clear_write_on_trustngo() {
    let mut h = Host::new(Preset::Tngtls);
    let addr = data_address(8, 3, 0).unwrap();
    write32(&mut h, Zone::Data, addr, &[0xA5; 32]).unwrap();
    assert_eq!(read32(&mut h, Zone::Data, addr).unwrap(), vec![0xA5; 32]);
    // 4-byte access after the data lock, on a WriteConfig=Always slot.
    h.status(&command::write(Zone::Data, addr | 2, &[1, 2, 3, 4]).unwrap())
        .unwrap();
    assert_eq!(
        h.run(&command::read(Zone::Data, AccessSize::Word, addr | 2))
            .unwrap(),
        vec![1, 2, 3, 4]
    );
}

#[test]
fn private_and_secret_slots_are_never_read() {
    let mut h = Host::new(Preset::Tngtls);
    for slot in [0u8, 1, 2, 6, 7, 9, 13] {
        assert_eq!(
            read32(&mut h, Zone::Data, data_address(slot, 0, 0).unwrap()),
            Err(Error::Execution),
            "slot {slot}"
        );
    }
    // Clear slots read fine.
    for slot in [5u8, 8, 10, 11, 12] {
        assert!(read32(&mut h, Zone::Data, data_address(slot, 0, 0).unwrap()).is_ok());
    }
}

#[test]
fn write_policies_after_data_lock() {
    let mut h = Host::new(Preset::Tngtls);
    // Never: slot 5, 10; private key: slot 0; secret never: slot 7.
    for slot in [0u8, 5, 7, 10] {
        assert_eq!(
            write32(
                &mut h,
                Zone::Data,
                data_address(slot, 0, 0).unwrap(),
                &[0; 32]
            ),
            Err(Error::Execution),
            "slot {slot}"
        );
    }
    // Always: slot 8 and the (secret) slot 6.
    write32(&mut h, Zone::Data, data_address(6, 0, 0).unwrap(), &[1; 32]).unwrap();
}

#[test]
fn config_and_data_locks_are_final() {
    let mut h = Host::new(Preset::Tngtls);
    assert_eq!(
        h.status(&command::write(Zone::Config, 0x05, &[0; 4]).unwrap()),
        Err(Error::Execution)
    );
    assert_eq!(
        h.status(&command::lock(LockTarget::Config, None).unwrap()),
        Err(Error::Execution)
    );
    assert_eq!(
        h.status(&command::lock(LockTarget::Data, None).unwrap()),
        Err(Error::Execution)
    );
}

#[test]
fn slot_lock_freezes_slot8() {
    let mut h = Host::new(Preset::Tngtls);
    let addr = data_address(8, 0, 0).unwrap();
    write32(&mut h, Zone::Data, addr, &[7; 32]).unwrap();
    // The summary is ignored for slot locks: CryptoAuthLib's
    // atcab_lock_data_slot(8) sends mode 0x22 with summary 0.
    h.status(&command::lock(LockTarget::Slot(8), Some(0)).unwrap())
        .unwrap();
    assert!(h.board.with_chip(|c| c.config().slot_locked(8)));
    assert_eq!(
        write32(&mut h, Zone::Data, addr, &[8; 32]),
        Err(Error::Execution)
    );
    assert_eq!(read32(&mut h, Zone::Data, addr).unwrap(), vec![7; 32]);
    assert_eq!(
        h.status(&command::lock(LockTarget::Slot(8), None).unwrap()),
        Err(Error::Execution)
    );
    // Slot 5 is not lockable.
    assert_eq!(
        h.status(&command::lock(LockTarget::Slot(5), None).unwrap()),
        Err(Error::Execution)
    );
}

#[test]
fn blank_chip_refuses_data_access_before_locks() {
    let mut h = Host::new(Preset::Blank);
    assert_eq!(h.addr, 0x60);
    let a8 = data_address(8, 0, 0).unwrap();
    assert_eq!(read32(&mut h, Zone::Data, a8), Err(Error::Execution));
    assert_eq!(read32(&mut h, Zone::Otp, 0), Err(Error::Execution));
    assert_eq!(
        write32(&mut h, Zone::Data, a8, &[1; 32]),
        Err(Error::Execution)
    );
    assert_eq!(h.status(&command::genkey_create(0)), Err(Error::Execution));
    assert_eq!(
        h.status(&command::lock(LockTarget::Data, None).unwrap()),
        Err(Error::Execution)
    );
    assert_eq!(
        h.status(&command::lock(LockTarget::Slot(8), None).unwrap()),
        Err(Error::Execution)
    );
    // The first 16 config bytes and the lock word are not writable.
    assert_eq!(
        h.status(&command::write(Zone::Config, 0x01, &[0; 4]).unwrap()),
        Err(Error::Execution)
    );
    assert_eq!(
        h.status(&command::write(Zone::Config, 0x15, &[0; 4]).unwrap()),
        Err(Error::Execution)
    );
    // Other config words are.
    h.status(&command::write(Zone::Config, 0x05, &[0x11, 0x22, 0x33, 0x44]).unwrap())
        .unwrap();
    let w = h
        .run(&command::read(Zone::Config, AccessSize::Word, 0x05))
        .unwrap();
    assert_eq!(w, vec![0x11, 0x22, 0x33, 0x44]);
}

#[test]
fn config_lock_checks_its_crc() {
    let mut h = Host::new(Preset::Blank);
    let cfg = h.board.with_chip(|c| c.config().clone());
    let crc = crc16(cfg.as_bytes());
    assert_eq!(
        h.status(&command::lock(LockTarget::Config, Some(crc ^ 0x0100)).unwrap()),
        Err(Error::Execution)
    );
    assert!(!h.board.with_chip(|c| c.config().config_locked()));
    h.status(&command::lock(LockTarget::Config, Some(crc)).unwrap())
        .unwrap();
    assert!(h.board.with_chip(|c| c.config().config_locked()));
}

#[test]
fn between_locks_only_32_byte_writes_to_non_key_slots() {
    let mut h = blank_config_locked();
    let a8 = data_address(8, 1, 0).unwrap();
    assert_eq!(
        h.status(&command::write(Zone::Data, a8, &[1, 2, 3, 4]).unwrap()),
        Err(Error::Execution)
    );
    write32(&mut h, Zone::Data, a8, &[9; 32]).unwrap();
    assert_eq!(
        write32(&mut h, Zone::Data, data_address(0, 0, 0).unwrap(), &[9; 32]),
        Err(Error::Execution)
    );
    // Reads are still refused until the data lock.
    assert_eq!(read32(&mut h, Zone::Data, a8), Err(Error::Execution));
    // OTP can be written now.
    write32(&mut h, Zone::Otp, 0, &[0x42; 32]).unwrap();
    // GenKey works on a private-key slot before the data lock.
    let pk = h.run(&command::genkey_create(0)).unwrap();
    assert_eq!(pk.len(), 64);
    // Data lock with the summary CRC (slots minus private keys, then OTP).
    let nv = h.board.with_chip(|c| c.nv().clone());
    let mut all = Vec::new();
    for s in 0..16u8 {
        if !nv.config.key_config(s).private() {
            all.extend_from_slice(nv.slot(s));
        }
    }
    all.extend_from_slice(&nv.otp);
    assert_eq!(
        h.status(&command::lock(LockTarget::Data, Some(crc16(&all) ^ 1)).unwrap()),
        Err(Error::Execution)
    );
    h.status(&command::lock(LockTarget::Data, Some(crc16(&all))).unwrap())
        .unwrap();
    assert_eq!(read32(&mut h, Zone::Data, a8).unwrap(), vec![9; 32]);
    assert_eq!(read32(&mut h, Zone::Otp, 0).unwrap(), vec![0x42; 32]);
    assert_eq!(
        write32(&mut h, Zone::Otp, 0, &[0; 32]),
        Err(Error::Execution)
    );
}

#[test]
fn genkey_follows_writeconfig_after_data_lock() {
    let mut h = Host::new(Preset::Tngtls);
    // Slot 0: permanent factory key.
    assert_eq!(h.status(&command::genkey_create(0)), Err(Error::Execution));
    // Slots 2–4: GenKey allowed.
    let pk = h.run(&command::genkey_create(2)).unwrap();
    assert_eq!(h.run(&command::genkey_public(2)).unwrap(), pk);
    // Not a private-key slot.
    assert_eq!(h.status(&command::genkey_create(8)), Err(Error::Execution));
    // Slot above 15.
    assert_eq!(h.status(&command::genkey_create(16)), Err(Error::Parse));
}

#[test]
fn external_sign_with_the_factory_key() {
    let mut h = Host::new(Preset::Tngtls);
    let pk = h.run(&command::genkey_public(0)).unwrap();
    let digest = [0x3C; 32];
    let sig = sign(&mut h, 0, &digest).unwrap();
    let sig = Signature::from_slice(&sig).unwrap();
    vk(&pk).verify_prehash(&digest, &sig).unwrap();
    // Also through TempKey.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &digest).unwrap())
        .unwrap();
    let sig = h
        .run(&command::sign_external(0, MessageSource::TempKey))
        .unwrap();
    vk(&pk)
        .verify_prehash(&digest, &Signature::from_slice(&sig).unwrap())
        .unwrap();
}

#[test]
fn sign_refuses_without_a_message_or_permission() {
    let mut h = Host::new(Preset::Tngtls);
    // No message loaded.
    assert_eq!(
        h.status(&command::sign_external(0, MessageSource::MsgDigestBuffer)),
        Err(Error::Execution)
    );
    // The message is consumed by a Sign.
    sign(&mut h, 0, &[1; 32]).unwrap();
    assert_eq!(
        h.status(&command::sign_external(0, MessageSource::MsgDigestBuffer)),
        Err(Error::Execution)
    );
    // Slot 1 allows internal sign only; slot 8 holds no key.
    for slot in [1u8, 8] {
        assert_eq!(
            sign(&mut h, slot, &[1; 32]).err(),
            Some(Error::Execution),
            "slot {slot}"
        );
    }
}

#[test]
fn idle_keeps_tempkey_sleep_loses_it() {
    let mut h = Host::new(Preset::Tngtls);
    // run() idles after each command: the digest survives.
    h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &[2; 32]).unwrap())
        .unwrap();
    h.status(&command::sign_external(0, MessageSource::MsgDigestBuffer))
        .unwrap();
    // Sleep between Nonce and Sign: lost.
    h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &[2; 32]).unwrap())
        .unwrap();
    h.wake().unwrap();
    h.sleep();
    assert_eq!(
        h.status(&command::sign_external(0, MessageSource::MsgDigestBuffer)),
        Err(Error::Execution)
    );
}

#[test]
fn verify_external_matches_and_miscompares() {
    let mut h = Host::new(Preset::Tngtls);
    let pk: [u8; 64] = h
        .run(&command::genkey_public(0))
        .unwrap()
        .try_into()
        .unwrap();
    let digest = [0x77; 32];
    let sig: [u8; 64] = sign(&mut h, 0, &digest).unwrap().try_into().unwrap();
    let verify = |h: &mut Host, sig: &[u8; 64]| {
        h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &digest).unwrap())
            .unwrap();
        let r = h.run(&command::verify_external(
            MessageSource::MsgDigestBuffer,
            sig,
            &pk,
        ));
        command::decode_verify(r.as_deref().map_err(|e| *e))
    };
    assert_eq!(verify(&mut h, &sig), Ok(true));
    let mut bad = sig;
    bad[10] ^= 1;
    assert_eq!(verify(&mut h, &bad), Ok(false));
}

#[test]
fn random_is_a_fixed_pattern_until_config_lock() {
    let mut h = Host::new(Preset::Blank);
    let r = h.run(&command::random()).unwrap();
    assert_eq!(&r[..8], &[0xFF, 0xFF, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00]);
    let mut t = Host::new(Preset::Tngtls);
    let a = t.run(&command::random()).unwrap();
    let b = t.run(&command::random()).unwrap();
    assert_ne!(a, b);
    assert_ne!(&a[..4], &[0xFF, 0xFF, 0x00, 0x00]);
}

#[test]
fn nonce_random_sets_tempkey_as_the_host_computes_it() {
    use sha2::{Digest, Sha256};
    let mut h = Host::new(Preset::Tngtls);
    let num_in = [0x5A; 20];
    let rand_out = h.run(&command::nonce_random(&num_in, true)).unwrap();
    assert_eq!(rand_out.len(), 32);
    // TempKey = SHA-256(RandOut ‖ NumIn ‖ 0x16 ‖ mode ‖ 0x00): sign with it
    // and verify against the host's computation.
    let mut hh = Sha256::new();
    hh.update(&rand_out);
    hh.update(num_in);
    hh.update([0x16, 0x00, 0x00]);
    let tk: [u8; 32] = hh.finalize().into();
    let pk = h.run(&command::genkey_public(0)).unwrap();
    let sig = h
        .run(&command::sign_external(0, MessageSource::TempKey))
        .unwrap();
    vk(&pk)
        .verify_prehash(&tk, &Signature::from_slice(&sig).unwrap())
        .unwrap();
}

#[test]
fn counter_sha_selftest_and_bad_opcodes() {
    use sha2::{Digest, Sha256};
    let mut h = Host::new(Preset::Tngtls);
    assert_eq!(
        command::decode_counter(&h.run(&command::counter_read(0).unwrap()).unwrap()),
        Ok(0)
    );
    assert_eq!(
        command::decode_counter(&h.run(&command::counter_increment(0).unwrap()).unwrap()),
        Ok(1)
    );
    assert_eq!(
        h.status(&coffre_proto::packet::Command::new(0x24, 0x00, 2)),
        Err(Error::Parse)
    );
    // SHA over 100 bytes: one update and an end with 36 bytes.
    let msg: Vec<u8> = (0..100u8).collect();
    h.status(&command::sha_start()).unwrap();
    h.status(&command::sha_update(msg[..64].try_into().unwrap()))
        .unwrap();
    let d = h.run(&command::sha_end(&msg[64..]).unwrap()).unwrap();
    assert_eq!(d, Sha256::digest(&msg).to_vec());
    assert_eq!(
        h.status(&command::sha_update(&[0; 64])),
        Err(Error::Execution)
    );
    h.status(&command::self_test(command::selftest::ALL))
        .unwrap();
    assert_eq!(
        h.status(&coffre_proto::packet::Command::new(0x99, 0, 0)),
        Err(Error::Parse)
    );
    // Read with an illegal zone.
    assert_eq!(
        h.status(&coffre_proto::packet::Command::new(0x02, 0x03, 0)),
        Err(Error::Parse)
    );
    // A block past the end of slot 8.
    assert_eq!(
        h.status(&command::read(
            Zone::Data,
            AccessSize::Block,
            (8 << 3) | (13 << 8)
        )),
        Err(Error::Parse)
    );
}

#[test]
fn self_test_failure_mode() {
    let mut h = Host::new(Preset::Tngtls);
    h.board.with_chip(|c| c.inject_self_test_failure(true));
    assert_eq!(
        h.status(&command::self_test(command::selftest::ALL)),
        Err(Error::SelfTest)
    );
    assert_eq!(h.status(&command::random()), Err(Error::SelfTest));
    // Every wake now reports 0x07, even after sleep.
    assert_eq!(h.wake().unwrap(), [0x04, 0x07, 0x40, 0xC2]);
    h.sleep();
    assert_eq!(h.wake().unwrap(), [0x04, 0x07, 0x40, 0xC2]);
    h.idle();
    // Until a self test passes.
    h.board.with_chip(|c| c.inject_self_test_failure(false));
    h.status(&command::self_test(command::selftest::ALL))
        .unwrap();
    h.status(&command::random()).unwrap();
}

#[test]
fn update_extra_once() {
    let mut h = Host::new(Preset::Tngtls);
    h.status(&command::update_extra(false, 0x42)).unwrap();
    assert_eq!(
        h.status(&command::update_extra(false, 0x43)),
        Err(Error::Execution)
    );
    // On a chip whose config is still unlocked (atcab_write_config_zone
    // ends with UpdateExtra there), once per byte.
    let mut b = Host::new(Preset::Blank);
    b.status(&command::update_extra(false, 0)).unwrap();
    b.status(&command::update_extra(false, 0x42)).unwrap();
    assert_eq!(
        b.status(&command::update_extra(false, 0x42)),
        Err(Error::Execution)
    );
}

#[test]
fn slot_lock_needs_only_the_config_lock() {
    // Before the config lock: refused.
    let mut b = Host::new(Preset::Blank);
    assert_eq!(
        b.status(&command::lock(LockTarget::Slot(8), Some(0)).unwrap()),
        Err(Error::Execution)
    );
    // Config locked, data unlocked: slots 2 and 8 lock (DS508 §2.4.3).
    let mut h = blank_config_locked();
    h.status(&command::lock(LockTarget::Slot(2), Some(0)).unwrap())
        .unwrap();
    h.status(&command::lock(LockTarget::Slot(8), Some(0x1234)).unwrap())
        .unwrap();
    let bits = h.board.with_chip(|c| c.config().slot_locked_bits());
    assert_eq!(bits & (1 << 2 | 1 << 8), 0);
    assert_eq!(
        h.status(&command::lock(LockTarget::Slot(8), Some(0)).unwrap()),
        Err(Error::Execution)
    );
}

#[test]
fn counters_live_in_config_bytes_52_to_67() {
    // CryptoAuthLib's counter_write_test: write the counter's config
    // bytes on an unlocked chip, then read it with Counter.
    let mut b = Host::new(Preset::Blank);
    // calib_write_config_counter(1, 1048575), encoded by hand from the C.
    let bytes = [0x00, 0x00, 0x00, 0x01, 0x7F, 0xFF, 0x7F, 0xFF];
    for (i, w) in bytes.chunks(4).enumerate() {
        let addr = (60 + 4 * i as u16) / 4;
        b.status(&command::write(Zone::Config, addr, w).unwrap())
            .unwrap();
    }
    let v = b.run(&command::counter_read(1).unwrap()).unwrap();
    assert_eq!(command::decode_counter(&v).unwrap(), 1_048_575);
    assert_eq!(
        command::decode_counter(&b.run(&command::counter_read(0).unwrap()).unwrap()).unwrap(),
        0
    );
    // Increment on a Trust&GO part updates the config bytes.
    let mut h = Host::new(Preset::Tngtls);
    let v = h.run(&command::counter_increment(0).unwrap()).unwrap();
    assert_eq!(command::decode_counter(&v).unwrap(), 1);
    let cfg = read32(&mut h, Zone::Config, 1 << 3).unwrap();
    // Config bytes 52–59 are bytes 20–27 of block 1: lin_a = 0x7FFF.
    assert_eq!(&cfg[20..28], &[0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0]);
}

#[test]
fn alternate_address_takes_effect_after_sleep() {
    let mut h = Host::new(Preset::Tngtls);
    // ChipMode bit 0 is set on Trust&GO: UserExtraAdd becomes the address.
    h.status(&command::update_extra(true, 0x70)).unwrap();
    assert_eq!(
        h.board
            .with_chip(|c| coffre_emu::device::Device::address(c)),
        0x35
    );
    h.wake().unwrap();
    h.sleep();
    assert_eq!(
        h.board
            .with_chip(|c| coffre_emu::device::Device::address(c)),
        0x38
    );
}

#[test]
fn every_serial_number_is_unique() {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..50 {
        let sn = Preset::Tngtls.build().config.serial_number();
        assert_eq!(&sn[..2], &[0x01, 0x23]);
        assert!(seen.insert(sn));
    }
}

#[test]
fn tempkey_is_cleared_by_other_commands() {
    let mut h = Host::new(Preset::Tngtls);
    // Nonce, then Info and GenKey keep TempKey: Sign works.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &[1; 32]).unwrap())
        .unwrap();
    h.run(&command::info(InfoMode::Revision)).unwrap();
    h.run(&command::genkey_public(0)).unwrap();
    h.run(&command::sign_external(0, MessageSource::TempKey))
        .unwrap();
    // Random in between clears it.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &[1; 32]).unwrap())
        .unwrap();
    h.run(&command::random()).unwrap();
    assert_eq!(
        h.status(&command::sign_external(0, MessageSource::TempKey)),
        Err(Error::Execution)
    );
    // So does a Nonce into the message digest buffer.
    h.status(&command::nonce_passthrough(NonceTarget::TempKey, &[1; 32]).unwrap())
        .unwrap();
    h.status(&command::nonce_passthrough(NonceTarget::MsgDigestBuffer, &[1; 32]).unwrap())
        .unwrap();
    assert_eq!(
        h.status(&command::sign_external(0, MessageSource::TempKey)),
        Err(Error::Execution)
    );
}

#[test]
fn count_byte_limits() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    // Count 5 with a valid CRC: parse error.
    let mut body = vec![0x05, 0x30, 0x00];
    body.extend(coffre_proto::crc::crc16_bytes(&body));
    assert_eq!(h.raw(&body[..5]), [0x04, 0x03, 0x83, 0x42]);
    // Count 3: communication error.
    assert_eq!(h.raw(&[0x03, 0x30, 0x00]), [0x04, 0xFF, 0x01, 0x42]);
}

#[test]
fn config_blocks_holding_protected_bytes_are_refused() {
    let mut h = Host::new(Preset::Blank);
    // Block 0 holds the serial number; block 2 holds the lock bytes.
    assert_eq!(
        write32(&mut h, Zone::Config, 0x00, &[0; 32]),
        Err(Error::Execution)
    );
    assert_eq!(
        write32(&mut h, Zone::Config, 0x10, &[0; 32]),
        Err(Error::Execution)
    );
    // Block 1 (SlotConfig 6–15, counters) is writable as a whole.
    let cfg = h.board.with_chip(|c| c.config().clone());
    let block1: [u8; 32] = cfg.as_bytes()[32..64].try_into().unwrap();
    write32(&mut h, Zone::Config, 0x08, &block1).unwrap();
}

#[test]
fn sign_works_before_the_data_lock() {
    let mut h = blank_config_locked();
    let pk: [u8; 64] = h
        .run(&command::genkey_create(0))
        .unwrap()
        .try_into()
        .unwrap();
    let sig = sign(&mut h, 0, &[6; 32]).unwrap();
    vk(&pk)
        .verify_prehash(&[6; 32], &Signature::from_slice(&sig).unwrap())
        .unwrap();
}
