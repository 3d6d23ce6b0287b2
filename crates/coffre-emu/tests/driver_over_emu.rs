//! The real driver, unchanged, over the emulated bus: every typed command,
//! and the driver's recovery paths against the emulator's faults.

use std::time::Duration;

use coffre_driver::{Atecc, DriverConfig, Error, Probe};
use coffre_emu::board::Board;
use coffre_emu::bus::Corruption;
use coffre_emu::clock::{Clock, EmuDelay, Timing};
use coffre_emu::presets::Preset;
use coffre_emu::EmuBus;
use coffre_proto::command::{LockTarget, NonceTarget};
use coffre_proto::crc::crc16;
use coffre_proto::zone::Zone;
use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};

type Chip = Atecc<EmuBus, EmuDelay>;

fn chip(preset: Preset, timing: Timing) -> (Board, Chip) {
    let board = Board::with_clock(preset.build(), timing, Clock::manual());
    let addr = board.with_chip(|c| coffre_emu::device::Device::address(c));
    let drv = Atecc::new(board.bus.clone(), board.delay(), addr);
    (board, drv)
}

fn vk(pk: &[u8; 64]) -> VerifyingKey {
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(pk);
    VerifyingKey::from_sec1_bytes(&sec1).unwrap()
}

#[test]
fn identity_and_config() {
    let (board, mut c) = chip(Preset::Tngtls, Timing::Instant);
    assert_eq!(c.info_revision().unwrap(), [0, 0, 0x60, 3]);
    assert_eq!(c.device_family().unwrap().to_string(), "ATECC608B");
    let cfg = c.read_config_zone().unwrap();
    assert_eq!(cfg, board.with_chip(|ch| ch.config().clone()));
    assert_eq!(c.serial_number().unwrap(), cfg.serial_number());
    let l = c.lock_status().unwrap();
    assert!(l.config_locked && l.data_locked && l.slot_locked == 0);
}

#[test]
fn lab_slot8_round_trip() {
    let (_b, mut c) = chip(Preset::Tngtls, Timing::Instant);
    let blob: Vec<u8> = (0..416u32).map(|i| (i * 7 % 251) as u8).collect();
    c.write_slot(8, &blob).unwrap();
    let mut back = [0u8; 416];
    assert_eq!(c.read_slot(8, &mut back).unwrap(), 416);
    assert_eq!(back.to_vec(), blob);
    // A 36-byte slot through 4-byte tail reads: slot 5 (clear read).
    let mut s5 = [0u8; 36];
    assert_eq!(c.read_slot(5, &mut s5).unwrap(), 36);
    assert!(s5[..12].iter().all(|b| b.is_ascii_hexdigit()));
    // Refusals surface as chip errors.
    let mut s0 = [0u8; 36];
    assert!(matches!(
        c.read_slot(0, &mut s0),
        Err(Error::Chip(coffre_proto::Error::Execution))
    ));
    assert!(c.write_slot(8, &[0u8; 417]).is_err());
}

#[test]
fn sign_verify_genkey_with_the_chip() {
    let (_b, mut c) = chip(Preset::Tngtls, Timing::Instant);
    let pk = c.genkey_public(0).unwrap();
    let digest = [0xD1; 32];
    let sig = c.sign_digest(0, &digest).unwrap();
    vk(&pk)
        .verify_prehash(&digest, &Signature::from_slice(&sig).unwrap())
        .unwrap();
    assert!(c.verify_extern(&digest, &sig, &pk).unwrap());
    let mut bad = sig;
    bad[63] ^= 1;
    assert!(!c.verify_extern(&digest, &bad, &pk).unwrap());
    let new_pk = c.genkey_create(3).unwrap();
    assert_eq!(c.genkey_public(3).unwrap(), new_pk);
    assert_ne!(new_pk, pk);
    assert!(matches!(
        c.genkey_create(0),
        Err(Error::Chip(coffre_proto::Error::Execution))
    ));
}

#[test]
fn misc_commands() {
    use sha2::Digest;
    let (_b, mut c) = chip(Preset::Tngtls, Timing::Instant);
    assert_ne!(c.random().unwrap(), c.random().unwrap());
    assert_eq!(c.nonce_random(&[1; 20]).unwrap().len(), 32);
    c.nonce_passthrough(NonceTarget::TempKey, &[5; 32]).unwrap();
    let msg: Vec<u8> = (0..200u8).collect();
    assert_eq!(
        c.sha256(&msg).unwrap().to_vec(),
        sha2::Sha256::digest(&msg).to_vec()
    );
    assert_eq!(c.counter_increment(1).unwrap(), 1);
    assert_eq!(c.counter_read(1).unwrap(), 1);
    c.self_test(coffre_proto::command::selftest::ALL).unwrap();
    c.update_extra(false, 9).unwrap();
}

#[test]
fn provisioning_a_blank_chip_with_locks() {
    let (board, mut c) = chip(Preset::Blank, Timing::Instant);
    assert_eq!(c.address(), 0x60);
    let cfg = c.read_config_zone().unwrap();
    c.lock(LockTarget::Config, Some(crc16(cfg.as_bytes())))
        .unwrap();
    c.write_slot(8, &[0x11; 64]).unwrap();
    let pk = c.genkey_create(0).unwrap();
    let nv = board.with_chip(|ch| ch.nv().clone());
    let mut all = Vec::new();
    for s in 0..16u8 {
        if !nv.config.key_config(s).private() {
            all.extend_from_slice(nv.slot(s));
        }
    }
    all.extend_from_slice(&nv.otp);
    c.lock(LockTarget::Data, Some(crc16(&all))).unwrap();
    let l = c.lock_status().unwrap();
    assert!(l.config_locked && l.data_locked);
    let sig = c.sign_digest(0, &[3; 32]).unwrap();
    vk(&pk)
        .verify_prehash(&[3; 32], &Signature::from_slice(&sig).unwrap())
        .unwrap();
    c.lock(LockTarget::Slot(8), None).unwrap();
    assert_eq!(c.lock_status().unwrap().slot_locked, 1 << 8);
    assert!(c.write(Zone::Data, 8 << 3, &[0; 32]).is_err());
}

#[test]
fn datasheet_timing_with_busy_polling() {
    let (board, mut c) = chip(Preset::Tngtls, Timing::Datasheet);
    let t0 = board.bus.clock().now();
    let pk = c.genkey_public(0).unwrap();
    let took = board.bus.clock().now() - t0;
    // tWHI 1.5 ms + 115 ms of GenKey, polled every 2 ms.
    assert!(took >= Duration::from_millis(116), "{took:?}");
    assert!(took <= Duration::from_millis(122), "{took:?}");
    let sig = c.sign_digest(0, &[4; 32]).unwrap();
    vk(&pk)
        .verify_prehash(&[4; 32], &Signature::from_slice(&sig).unwrap())
        .unwrap();
}

#[test]
fn driver_recovers_from_wire_corruption() {
    let (board, mut c) = chip(Preset::Tngtls, Timing::Instant);
    // Chip → host: one corrupted response is read again.
    board.bus.faults(|f| {
        f.corrupt_read = Some(Corruption {
            address: 0x35,
            byte_index: 2,
            xor: 0x40,
            remaining: 1,
            min_len: 5,
        })
    });
    assert_eq!(c.info_revision().unwrap(), [0, 0, 0x60, 3]);
    // Host → chip: the chip answers 0xFF and the driver resends.
    board.bus.faults(|f| {
        f.corrupt_write = Some(Corruption {
            address: 0x35,
            byte_index: 4,
            xor: 0x01,
            remaining: 2,
            min_len: 5,
        })
    });
    assert_eq!(c.info_revision().unwrap(), [0, 0, 0x60, 3]);
    // Persistent corruption ends in a clear error, not a wrong answer.
    board.bus.faults(|f| {
        f.corrupt_read = Some(Corruption {
            address: 0x35,
            byte_index: 2,
            xor: 0x40,
            remaining: 100,
            min_len: 5,
        })
    });
    let e = c.info_revision().unwrap_err();
    assert!(
        matches!(e, Error::Protocol(coffre_proto::Error::ResponseCrc)),
        "{e:?}"
    );
}

#[test]
fn absent_stuck_and_pulled_chips() {
    let (board, mut c) = chip(Preset::Tngtls, Timing::Instant);
    board.bus.set_present(0x35, false);
    assert!(matches!(
        c.info_revision(),
        Err(Error::NotPresent { address: 0x35 })
    ));
    let mut bus = board.bus.clone();
    let mut d = board.delay();
    assert_eq!(
        coffre_driver::probe(&mut bus, &mut d, 0x35).unwrap(),
        Probe::Absent
    );
    board.bus.set_present(0x35, true);
    assert_eq!(
        coffre_driver::probe(&mut bus, &mut d, 0x35).unwrap(),
        Probe::Present
    );

    // Stuck busy: a timeout bounded by the table (Info: 2 × 5 + 20 ms).
    board.bus.faults(|f| f.stuck_busy.insert(0x35));
    let t0 = board.bus.clock().now();
    let e = c.info_revision().unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(board.bus.clock().now() - t0 < Duration::from_millis(200));
    board.bus.faults(|f| f.stuck_busy.clear());

    // Pulled out mid-command: no answer, then absent.
    board
        .bus
        .faults(|f| f.pull_after_commands = Some((0x35, 0)));
    let e = c.sign_digest(0, &[1; 32]).unwrap_err();
    assert!(
        matches!(e, Error::Timeout { .. } | Error::NotPresent { .. }),
        "{e:?}"
    );
    assert!(matches!(c.info_revision(), Err(Error::NotPresent { .. })));
}

#[test]
fn watchdog_expiry_is_survived() {
    let (board, mut c) = chip(Preset::Tngtls, Timing::Instant);
    c.info_revision().unwrap();
    board.bus.clock().advance(Duration::from_secs(5));
    assert_eq!(c.info_revision().unwrap(), [0, 0, 0x60, 3]);
    // The digest loaded by a Nonce does not survive a watchdog expiry.
    c.nonce_passthrough(NonceTarget::MsgDigestBuffer, &[1; 32])
        .unwrap();
    c.wake().unwrap();
    board.with_chip(|ch| ch.expire_watchdog());
    let e = c
        .execute(
            &coffre_proto::command::sign_external(
                0,
                coffre_proto::command::MessageSource::MsgDigestBuffer,
            ),
            &mut [0u8; 80],
        )
        .unwrap_err();
    assert!(
        matches!(e, Error::Chip(coffre_proto::Error::Execution)),
        "{e:?}"
    );
}

#[test]
fn self_test_failure_is_reported_then_cleared() {
    let (board, mut c) = chip(Preset::Tngtls, Timing::Instant);
    board.with_chip(|ch| ch.inject_self_test_failure(true));
    assert!(matches!(c.info_revision(), Err(Error::SelfTestFailed)));
    board.with_chip(|ch| ch.inject_self_test_failure(false));
    c.self_test(coffre_proto::command::selftest::ALL).unwrap();
    assert_eq!(c.info_revision().unwrap(), [0, 0, 0x60, 3]);
}

#[test]
fn custom_config_polls_faster() {
    let board = Board::with_clock(Preset::Tngtls.build(), Timing::Datasheet, Clock::manual());
    let cfg = DriverConfig {
        poll_initial_us: 100,
        poll_interval_us: 100,
        ..DriverConfig::new()
    };
    let mut c = Atecc::with_config(board.bus.clone(), board.delay(), 0x35, cfg);
    let t0 = board.bus.clock().now();
    c.sign_digest(0, &[9; 32]).unwrap();
    let took = board.bus.clock().now() - t0;
    // Two commands: Nonce 20 ms + Sign 115 ms, two wakes of 1.5 ms.
    assert!(
        took >= Duration::from_millis(138) && took <= Duration::from_millis(140),
        "{took:?}"
    );
}

#[test]
fn encrypted_read_and_ecdh_through_the_driver() {
    use coffre_proto::config::SlotConfig;
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    // Slot 8 readable only by encrypted Read with the IO key in slot 6.
    let mut nv = Preset::Tngtls.build();
    nv.config.set_slot_config(8, SlotConfig(0x00C6));
    nv.slot_mut(8)[32..64].copy_from_slice(&[0x4B; 32]);
    let io: [u8; 32] = nv.slot(6)[..32].try_into().unwrap();
    let board = Board::with_clock(nv, Timing::Instant, Clock::manual());
    let mut c = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let mut clear = [0u8; 32];
    assert!(c
        .read(
            Zone::Data,
            coffre_proto::command::AccessSize::Block,
            8 << 3 | 1 << 8,
            &mut clear
        )
        .is_err());
    let got = c.read_encrypted(8, 1, 6, &io, &[0x21; 20]).unwrap();
    assert_eq!(got, [0x4B; 32]);
    // A wrong read key gives a wrong block, not the secret.
    let wrong = c.read_encrypted(8, 1, 6, &[0; 32], &[0x22; 20]).unwrap();
    assert_ne!(wrong, [0x4B; 32]);
    // ECDH with the factory key, clear and IO-encrypted, against p256.
    let host = p256::SecretKey::random(&mut rand_core::OsRng);
    let mut peer = [0u8; 64];
    peer.copy_from_slice(&host.public_key().to_encoded_point(false).as_bytes()[1..]);
    let chip_pub = c.genkey_public(0).unwrap();
    let mut sec1 = vec![0x04];
    sec1.extend_from_slice(&chip_pub);
    let cp = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    let want = p256::ecdh::diffie_hellman(host.to_nonzero_scalar(), cp.as_affine());
    assert_eq!(&c.ecdh(0, &peer).unwrap()[..], &want.raw_secret_bytes()[..]);
    assert_eq!(
        &c.ecdh_io_encrypted(0, &peer, &io).unwrap()[..],
        &want.raw_secret_bytes()[..]
    );
}

#[test]
fn datasheet_timing_of_the_new_commands() {
    use coffre_proto::command::opcode;
    use coffre_proto::packet::{Command, MAX_RESPONSE};
    use coffre_proto::timing::{exec_time_ms, ClockDivider};
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let (board, mut c) = chip(Preset::Tngtls, Timing::Datasheet);
    let peer = p256::SecretKey::random(&mut rand_core::OsRng)
        .public_key()
        .to_encoded_point(false);
    let gendig = Command::with_data(opcode::GENDIG, 0x02, 8, &[opcode::GENDIG, 2, 8, 0]).unwrap();
    let cases: Vec<(Command, bool)> = vec![
        (
            Command::with_data(opcode::ECDH, 0x0C, 0, &peer.as_bytes()[1..]).unwrap(),
            false,
        ),
        (gendig.clone(), true),
        (Command::new(opcode::MAC, 0x01, 6), true),
        (
            Command::with_data(opcode::AES, 0x00, 9, &[1; 16]).unwrap(),
            false,
        ),
        (Command::new(opcode::SIGN, 0x00, 1), true),
    ];
    for (cmd, needs_tempkey) in cases {
        if needs_tempkey {
            c.nonce_random(&[5; 20]).unwrap();
            if cmd.opcode == opcode::SIGN {
                let mut rsp = [0u8; MAX_RESPONSE];
                c.execute(&gendig, &mut rsp).unwrap();
            }
        }
        let mut rsp = [0u8; MAX_RESPONSE];
        let t0 = board.bus.clock().now();
        c.execute(&cmd, &mut rsp).unwrap();
        let took = board.bus.clock().now() - t0;
        let table = exec_time_ms(cmd.opcode, ClockDivider::M0).unwrap() as u64;
        // The emulated clock: tWHI (1.5 ms) + the table time + up to one
        // 2 ms poll, well inside ±10 %.
        let ms = took.as_secs_f64() * 1000.0;
        assert!(
            ms >= table as f64 && ms <= table as f64 * 1.1 + 3.5,
            "{} took {ms:.1} ms, table {table} ms",
            opcode::name(cmd.opcode)
        );
    }
}
