//! Byte-exact tests of the driver against a mocked I2C bus.
//!
//! Expected packets are built with coffre-proto so each test reads as a
//! conversation; a few literal byte vectors pin the encoding itself.

use coffre_driver::coffre_proto::command::{self, selftest, MessageSource};
use coffre_driver::coffre_proto::packet::{
    encode_response, status_packet, MAX_PACKET, MAX_RESPONSE,
};
use coffre_driver::coffre_proto::tngtls::TNGTLS_CONFIG_SAMPLE;
use coffre_driver::coffre_proto::{self as proto, Status};
use coffre_driver::{
    normalize_address, probe, AccessSize, Atecc, Command, DeviceFamily, DriverConfig, Error,
    LockStatus, LockTarget, NonceTarget, Probe, Zone,
};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Wait};
use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

const ADDR: u8 = 0x35;
/// The after-wake answer, literally.
const WAKE: [u8; 4] = [0x04, 0x11, 0x33, 0x43];

// ------------------------------------------------------------------ helpers

fn nack() -> ErrorKind {
    ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)
}

/// The wake pulse: a zero-length write to the general-call address, which
/// nobody acknowledges.
fn general_call() -> T {
    T::write(0x00, vec![]).with_error(nack())
}

fn wake() -> Vec<T> {
    vec![general_call(), T::read(ADDR, WAKE.to_vec())]
}

/// The command as written on the bus (word address 0x03 first).
fn wire(cmd: &Command) -> Vec<u8> {
    let mut b = [0u8; MAX_PACKET];
    let n = cmd.encode(&mut b).unwrap();
    b[..n].to_vec()
}

fn send(cmd: &Command) -> T {
    T::write(ADDR, wire(cmd))
}

/// A response packet carrying `data`.
fn response(data: &[u8]) -> Vec<u8> {
    let mut b = [0u8; MAX_RESPONSE];
    let n = encode_response(data, &mut b).unwrap();
    b[..n].to_vec()
}

fn status(s: Status) -> Vec<u8> {
    status_packet(s).to_vec()
}

fn ok() -> Vec<u8> {
    status(Status::Success)
}

/// One poll that finds the chip busy.
fn busy() -> T {
    T::write(ADDR, vec![0x00]).with_error(nack())
}

/// Reading a response the way CryptoAuthLib does: word address 0x00, the
/// count byte, then the rest.
fn receive(packet: &[u8]) -> Vec<T> {
    vec![
        T::write(ADDR, vec![0x00]),
        T::read(ADDR, packet[..1].to_vec()),
        T::read(ADDR, packet[1..].to_vec()),
    ]
}

fn idle() -> T {
    T::write(ADDR, vec![0x02])
}

/// A whole command: wake, send, read the answer, idle.
fn exchange(cmd: &Command, answer: &[u8]) -> Vec<T> {
    let mut v = wake();
    v.push(send(cmd));
    v.extend(receive(answer));
    v.push(idle());
    v
}

fn chip(expect: &[T]) -> Atecc<Mock, NoopDelay> {
    Atecc::new(Mock::new(expect), NoopDelay::new(), ADDR)
}

fn finish<D>(chip: Atecc<Mock, D>) {
    let (mut i2c, _) = chip.destroy();
    i2c.done();
}

fn finish_checked(chip: Atecc<Mock, CheckedDelay>) {
    let (mut i2c, mut delay) = chip.destroy();
    i2c.done();
    delay.done();
}

fn concat(parts: Vec<Vec<T>>) -> Vec<T> {
    parts.into_iter().flatten().collect()
}

// ------------------------------------------------------------------ wake, idle, sleep

#[test]
fn wake_is_general_call_then_four_byte_read() {
    let expect = [
        T::write(0x00, vec![]).with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)),
        T::read(ADDR, vec![0x04, 0x11, 0x33, 0x43]),
    ];
    let delays = [Wait::delay_us(1500)];
    let mut chip = Atecc::new(Mock::new(&expect), CheckedDelay::new(&delays), ADDR);
    chip.wake().unwrap();
    finish_checked(chip);
}

#[test]
fn idle_and_sleep_are_single_word_address_writes() {
    let expect = [T::write(ADDR, vec![0x02]), T::write(ADDR, vec![0x01])];
    let mut chip = chip(&expect);
    chip.idle().unwrap();
    chip.sleep().unwrap();
    finish(chip);
}

#[test]
fn chip_absent_is_not_present_after_every_retry() {
    let mut expect = Vec::new();
    for _ in 0..4 {
        expect.push(general_call());
        expect.push(T::read(ADDR, vec![0; 4]).with_error(nack()));
    }
    let mut chip = chip(&expect);
    assert_eq!(
        chip.info_revision(),
        Err(Error::NotPresent { address: ADDR })
    );
    finish(chip);
}

#[test]
fn self_test_failure_on_wake() {
    // 04 07 with its computed CRC, then CryptoAuthLib's spelling.
    for answer in [[0x04, 0x07, 0x40, 0xC2], [0x04, 0x07, 0xC4, 0x40]] {
        let expect = [general_call(), T::read(ADDR, answer.to_vec()), idle()];
        let mut chip = chip(&expect);
        assert_eq!(chip.random(), Err(Error::SelfTestFailed));
        finish(chip);
    }
}

#[test]
fn self_test_command_runs_despite_failed_power_on_test() {
    let cmd = command::self_test(selftest::ALL);
    let expect = concat(vec![
        vec![general_call(), T::read(ADDR, status(Status::SelfTest))],
        vec![send(&cmd)],
        receive(&ok()),
        vec![idle()],
    ]);
    let mut chip = chip(&expect);
    chip.self_test(selftest::ALL).unwrap();
    finish(chip);
}

#[test]
fn already_awake_chip_is_idled_and_woken_again() {
    let cmd = command::random();
    let rnd = [0x5Au8; 32];
    let expect = concat(vec![
        vec![general_call(), T::read(ADDR, vec![0xFF; 4]), idle()],
        exchange(&cmd, &response(&rnd)),
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);
}

#[test]
fn unexpected_wake_answer_is_wake_failed() {
    let junk = vec![0x12, 0x34, 0x56, 0x78];
    let mut expect = Vec::new();
    for i in 0..4 {
        expect.push(general_call());
        expect.push(T::read(ADDR, junk.clone()));
        if i < 3 {
            expect.push(idle());
        }
    }
    let mut chip = chip(&expect);
    assert_eq!(
        chip.wake(),
        Err(Error::WakeFailed([0x12, 0x34, 0x56, 0x78]))
    );
    finish(chip);
}

#[test]
fn probe_reports_presence_and_absence() {
    let expect = [general_call(), T::read(ADDR, WAKE.to_vec()), idle()];
    let mut i2c = Mock::new(&expect);
    let mut delay = NoopDelay::new();
    assert_eq!(probe(&mut i2c, &mut delay, ADDR), Ok(Probe::Present));
    i2c.done();

    let mut expect = Vec::new();
    for _ in 0..4 {
        expect.push(general_call());
        expect.push(T::read(0x60, vec![0; 4]).with_error(nack()));
    }
    let mut i2c = Mock::new(&expect);
    assert_eq!(probe(&mut i2c, &mut delay, 0x60), Ok(Probe::Absent));
    i2c.done();
}

// ------------------------------------------------------------------ commands

#[test]
fn info_revision_is_byte_exact() {
    let cmd = command::info(command::InfoMode::Revision);
    assert_eq!(wire(&cmd), [0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D]);
    let answer = response(&[0x00, 0x00, 0x60, 0x03]);
    let expect = concat(vec![
        wake(),
        vec![T::write(
            ADDR,
            vec![0x03, 0x07, 0x30, 0x00, 0x00, 0x00, 0x03, 0x5D],
        )],
        receive(&answer),
        vec![idle()],
    ]);
    let delays = [Wait::delay_us(1500), Wait::delay_us(1000)];
    let mut chip = Atecc::new(Mock::new(&expect), CheckedDelay::new(&delays), ADDR);
    assert_eq!(chip.info_revision().unwrap(), [0x00, 0x00, 0x60, 0x03]);
    finish_checked(chip);

    let mut chip = self::chip(&exchange(&cmd, &answer));
    assert_eq!(
        chip.device_family().unwrap(),
        DeviceFamily::Atecc608 { revision: 0x03 }
    );
    finish(chip);
}

#[test]
fn execute_returns_the_data_field() {
    let cmd = command::info(command::InfoMode::State);
    let mut chip = chip(&exchange(&cmd, &response(&[0xAA, 0xBB, 0x00, 0x00])));
    let mut rsp = [0u8; MAX_RESPONSE];
    let data = chip.execute(&cmd, &mut rsp).unwrap();
    assert_eq!(data, &[0xAA, 0xBB, 0x00, 0x00]);
    finish(chip);
}

#[test]
fn config_zone_is_four_block_reads() {
    assert_eq!(
        wire(&command::read(Zone::Config, AccessSize::Block, 0x00)),
        [0x03, 0x07, 0x02, 0x80, 0x00, 0x00, 0x09, 0xAD]
    );
    let mut expect = Vec::new();
    for block in 0..4u16 {
        let cmd = command::read(Zone::Config, AccessSize::Block, block << 3);
        let at = block as usize * 32;
        expect.extend(exchange(
            &cmd,
            &response(&TNGTLS_CONFIG_SAMPLE[at..at + 32]),
        ));
    }
    let mut chip = chip(&expect);
    let cfg = chip.read_config_zone().unwrap();
    assert_eq!(cfg.as_bytes(), &TNGTLS_CONFIG_SAMPLE);
    assert_eq!(cfg.i2c_address(), 0x35);
    let locks = LockStatus::from_config(&cfg);
    assert!(locks.config_locked && locks.data_locked);
    assert_eq!(locks.slot_locked, 0);
    finish(chip);
}

/// The lab's slot 8 image: 2-byte big-endian length, PKCS#8-like bytes,
/// zero padding to 416 bytes.
fn lab_slot8() -> [u8; 416] {
    let mut s = [0u8; 416];
    s[0] = 0x00;
    s[1] = 0x8A;
    for (i, b) in s[2..2 + 138].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7).wrapping_add(0x30);
    }
    s
}

#[test]
fn slot8_write_and_read_use_the_lab_addresses() {
    let image = lab_slot8();
    let addresses: Vec<u16> = (0..13u16).map(|b| (8 << 3) | (b << 8)).collect();
    assert_eq!(addresses[0], 0x0040);
    assert_eq!(addresses[12], 0x0C40);

    let mut expect = Vec::new();
    for (b, &a) in addresses.iter().enumerate() {
        let cmd = command::write(Zone::Data, a, &image[b * 32..(b + 1) * 32]).unwrap();
        assert_eq!(
            &wire(&cmd)[..6],
            &[0x03, 0x27, 0x12, 0x82, a as u8, (a >> 8) as u8]
        );
        expect.extend(exchange(&cmd, &ok()));
    }
    for (b, &a) in addresses.iter().enumerate() {
        let cmd = command::read(Zone::Data, AccessSize::Block, a);
        expect.extend(exchange(&cmd, &response(&image[b * 32..(b + 1) * 32])));
    }
    let mut chip = chip(&expect);
    chip.write_slot(8, &image).unwrap();
    let mut back = [0u8; 416];
    assert_eq!(chip.read_slot(8, &mut back).unwrap(), 416);
    assert_eq!(back, image);
    let len = u16::from_be_bytes([back[0], back[1]]) as usize;
    assert_eq!(len, 138);
    finish(chip);
}

#[test]
fn write_slot_pads_the_last_block_and_refuses_oversize_data() {
    let data = [0x11u8; 40];
    let mut second = [0u8; 32];
    second[..8].copy_from_slice(&data[32..]);
    let expect = concat(vec![
        exchange(
            &command::write(Zone::Data, 0x0048, &data[..32]).unwrap(),
            &ok(),
        ),
        exchange(&command::write(Zone::Data, 0x0148, &second).unwrap(), &ok()),
    ]);
    let mut chip = chip(&expect);
    chip.write_slot(9, &data).unwrap();
    assert!(matches!(
        chip.write_slot(9, &[0u8; 73]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        chip.write_slot(16, &[0u8; 4]),
        Err(Error::InvalidArgument(_))
    ));
    finish(chip);
}

#[test]
fn short_slots_read_their_tail_in_words() {
    let slot0: Vec<u8> = (0..36u8).collect();
    let slot9: Vec<u8> = (100..172u8).collect();
    let expect = concat(vec![
        // Slot 0 (36 bytes): block 0, then word 0 of block 1.
        exchange(
            &command::read(Zone::Data, AccessSize::Block, 0x0000),
            &response(&slot0[..32]),
        ),
        exchange(
            &command::read(Zone::Data, AccessSize::Word, 0x0100),
            &response(&slot0[32..]),
        ),
        // Slot 9 (72 bytes): blocks 0 and 1, then words 0 and 1 of block 2.
        exchange(
            &command::read(Zone::Data, AccessSize::Block, 0x0048),
            &response(&slot9[..32]),
        ),
        exchange(
            &command::read(Zone::Data, AccessSize::Block, 0x0148),
            &response(&slot9[32..64]),
        ),
        exchange(
            &command::read(Zone::Data, AccessSize::Word, 0x0248),
            &response(&slot9[64..68]),
        ),
        exchange(
            &command::read(Zone::Data, AccessSize::Word, 0x0249),
            &response(&slot9[68..]),
        ),
    ]);
    let mut chip = chip(&expect);
    let mut buf = [0u8; 416];
    assert_eq!(chip.read_slot(0, &mut buf).unwrap(), 36);
    assert_eq!(&buf[..36], &slot0[..]);
    assert_eq!(chip.read_slot(9, &mut buf).unwrap(), 72);
    assert_eq!(&buf[..72], &slot9[..]);
    let mut small = [0u8; 71];
    assert!(matches!(
        chip.read_slot(9, &mut small),
        Err(Error::InvalidArgument(_))
    ));
    finish(chip);
}

#[test]
fn lock_status_reads_config_words_0x15_and_0x16() {
    let w15 = command::read(Zone::Config, AccessSize::Word, 0x15);
    assert_eq!(wire(&w15), [0x03, 0x07, 0x02, 0x00, 0x15, 0x00, 0x17, 0x5D]);
    let w16 = command::read(Zone::Config, AccessSize::Word, 0x16);
    let expect = concat(vec![
        // UserExtra, UserExtraAdd, LockValue = 0x55 (data unlocked),
        // LockConfig = 0x00 (config locked).
        exchange(&w15, &response(&[0x00, 0x00, 0x55, 0x00])),
        // SlotLocked = 0xFEFE: bits 0 and 8 cleared, slots 0 and 8 locked.
        exchange(&w16, &response(&[0xFE, 0xFE, 0x0E, 0x60])),
    ]);
    let mut chip = chip(&expect);
    let s = chip.lock_status().unwrap();
    assert_eq!(
        s,
        LockStatus {
            config_locked: true,
            data_locked: false,
            slot_locked: 0x0101,
        }
    );
    assert!(s.slot_is_locked(0) && s.slot_is_locked(8) && !s.slot_is_locked(1));
    finish(chip);
}

#[test]
fn lock_sends_the_mode_and_crc() {
    let expect = concat(vec![
        exchange(&command::lock(LockTarget::Config, None).unwrap(), &ok()),
        exchange(&command::lock(LockTarget::Slot(8), None).unwrap(), &ok()),
    ]);
    assert_eq!(
        wire(&command::lock(LockTarget::Config, None).unwrap()),
        [0x03, 0x07, 0x17, 0x80, 0x00, 0x00, 0x39, 0x8D]
    );
    let mut chip = chip(&expect);
    chip.lock(LockTarget::Config, None).unwrap();
    chip.lock(LockTarget::Slot(8), None).unwrap();
    assert!(matches!(
        chip.lock(LockTarget::Slot(16), None),
        Err(Error::InvalidArgument(_))
    ));
    finish(chip);
}

#[test]
fn sign_digest_is_nonce_0x43_then_sign_0xa0() {
    let digest = [0xD1u8; 32];
    let sig: Vec<u8> = (0..64u8).collect();
    let nonce = command::nonce_passthrough(command::NonceTarget::MsgDigestBuffer, &digest).unwrap();
    let sign = command::sign_external(0, MessageSource::MsgDigestBuffer);
    assert_eq!(&wire(&nonce)[..6], &[0x03, 0x27, 0x16, 0x43, 0x00, 0x00]);
    assert_eq!(&wire(&sign)[..6], &[0x03, 0x07, 0x41, 0xA0, 0x00, 0x00]);
    let expect = concat(vec![
        exchange(&nonce, &ok()),
        exchange(&sign, &response(&sig)),
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.sign_digest(0, &digest).unwrap().to_vec(), sig);
    finish(chip);
}

#[test]
fn verify_extern_maps_miscompare_to_false() {
    let digest = [0x42u8; 32];
    let sig = [0x01u8; 64];
    let pk = [0x02u8; 64];
    let nonce = command::nonce_passthrough(command::NonceTarget::MsgDigestBuffer, &digest).unwrap();
    let verify = command::verify_external(MessageSource::MsgDigestBuffer, &sig, &pk);
    assert_eq!(&wire(&verify)[..6], &[0x03, 0x87, 0x45, 0x22, 0x04, 0x00]);
    let expect = concat(vec![
        exchange(&nonce, &ok()),
        exchange(&verify, &ok()),
        exchange(&nonce, &ok()),
        exchange(&verify, &status(Status::Miscompare)),
    ]);
    let mut chip = chip(&expect);
    assert!(chip.verify_extern(&digest, &sig, &pk).unwrap());
    assert!(!chip.verify_extern(&digest, &sig, &pk).unwrap());
    finish(chip);
}

#[test]
fn genkey_random_nonce_counter_and_update_extra() {
    let pk: Vec<u8> = (0..64u8).rev().collect();
    let rnd = [0x77u8; 32];
    let num_in = [0x09u8; 20];
    let expect = concat(vec![
        exchange(&command::genkey_create(2), &response(&pk)),
        exchange(&command::genkey_public(0), &response(&pk)),
        exchange(&command::random(), &response(&rnd)),
        exchange(&command::nonce_random(&num_in, true), &response(&rnd)),
        exchange(
            &command::nonce_passthrough(command::NonceTarget::TempKey, &[3u8; 64]).unwrap(),
            &ok(),
        ),
        exchange(
            &command::counter_read(1).unwrap(),
            &response(&[0x10, 0x00, 0x00, 0x00]),
        ),
        exchange(
            &command::counter_increment(1).unwrap(),
            &response(&[0x11, 0x00, 0x00, 0x00]),
        ),
        exchange(&command::update_extra(true, 0x70), &ok()),
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.genkey_create(2).unwrap().to_vec(), pk);
    assert_eq!(chip.genkey_public(0).unwrap().to_vec(), pk);
    assert_eq!(chip.random().unwrap(), rnd);
    assert_eq!(chip.nonce_random(&num_in).unwrap(), rnd);
    chip.nonce_passthrough(NonceTarget::TempKey, &[3u8; 64])
        .unwrap();
    assert_eq!(chip.counter_read(1).unwrap(), 16);
    assert_eq!(chip.counter_increment(1).unwrap(), 17);
    chip.update_extra(true, 0x70).unwrap();
    assert!(matches!(
        chip.counter_read(2),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        chip.nonce_passthrough(NonceTarget::TempKey, &[0u8; 31]),
        Err(Error::InvalidArgument(_))
    ));
    finish(chip);
}

#[test]
fn sha256_is_start_updates_end() {
    let data: Vec<u8> = (0..100u8).collect();
    let mut block = [0u8; 64];
    block.copy_from_slice(&data[..64]);
    let digest = [0xABu8; 32];
    let expect = concat(vec![
        exchange(&command::sha_start(), &ok()),
        exchange(&command::sha_update(&block), &ok()),
        exchange(&command::sha_end(&data[64..]).unwrap(), &response(&digest)),
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.sha256(&data).unwrap(), digest);
    finish(chip);
}

// ------------------------------------------------------------------ recovery

#[test]
fn busy_nack_then_success() {
    let cmd = command::random();
    let rnd = [0x33u8; 32];
    let expect = concat(vec![
        wake(),
        vec![send(&cmd), busy(), busy()],
        receive(&response(&rnd)),
        vec![idle()],
    ]);
    let delays = [
        Wait::delay_us(1500),
        Wait::delay_us(1000),
        Wait::delay_us(2000),
        Wait::delay_us(2000),
    ];
    let mut chip = Atecc::new(Mock::new(&expect), CheckedDelay::new(&delays), ADDR);
    assert_eq!(chip.random().unwrap(), rnd);
    finish_checked(chip);
}

#[test]
fn busy_reported_as_other_counts_as_nack_unless_disabled() {
    let cmd = command::random();
    let rnd = [0x34u8; 32];
    let expect = concat(vec![
        wake(),
        vec![
            send(&cmd),
            T::write(ADDR, vec![0x00]).with_error(ErrorKind::Other),
        ],
        receive(&response(&rnd)),
        vec![idle()],
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);

    let expect = concat(vec![
        wake(),
        vec![
            send(&cmd),
            T::write(ADDR, vec![0x00]).with_error(ErrorKind::Other),
        ],
    ]);
    let config = DriverConfig {
        other_errors_are_nacks: false,
        ..DriverConfig::default()
    };
    let mut chip = Atecc::with_config(Mock::new(&expect), NoopDelay::new(), ADDR, config);
    assert_eq!(chip.random(), Err(Error::I2c(ErrorKind::Other)));
    finish(chip);
}

#[test]
fn bus_errors_end_the_command() {
    let cmd = command::random();
    let expect = concat(vec![
        wake(),
        vec![T::write(ADDR, wire(&cmd)).with_error(ErrorKind::ArbitrationLoss)],
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random(), Err(Error::I2c(ErrorKind::ArbitrationLoss)));
    finish(chip);
}

#[test]
fn command_write_nack_wakes_again_and_resends() {
    let cmd = command::random();
    let rnd = [0x44u8; 32];
    let expect = concat(vec![
        wake(),
        vec![T::write(ADDR, wire(&cmd)).with_error(nack())],
        wake(),
        vec![send(&cmd)],
        receive(&response(&rnd)),
        vec![idle()],
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);
}

#[test]
fn bad_response_crc_is_read_again() {
    let cmd = command::random();
    let rnd = [0x55u8; 32];
    let good = response(&rnd);
    let mut bad = good.clone();
    bad[5] ^= 0x01;
    let expect = concat(vec![
        wake(),
        vec![send(&cmd)],
        receive(&bad),
        receive(&good),
        vec![idle()],
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);
}

#[test]
fn impossible_count_is_read_again_without_reading_further() {
    let cmd = command::random();
    let rnd = [0x66u8; 32];
    let expect = concat(vec![
        wake(),
        vec![
            send(&cmd),
            T::write(ADDR, vec![0x00]),
            T::read(ADDR, vec![0xFF]),
        ],
        receive(&response(&rnd)),
        vec![idle()],
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);
}

#[test]
fn damaged_response_twice_resends_the_command() {
    let cmd = command::random();
    let rnd = [0x67u8; 32];
    let good = response(&rnd);
    let mut bad = good.clone();
    bad[34] ^= 0x80;
    let expect = concat(vec![
        wake(),
        vec![send(&cmd)],
        receive(&bad),
        receive(&bad),
        vec![idle()],
        exchange(&cmd, &good),
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);
}

#[test]
fn chip_status_0xff_resends_the_command() {
    let cmd = command::random();
    let rnd = [0x88u8; 32];
    assert_eq!(status(Status::Crc), [0x04, 0xFF, 0x01, 0x42]);
    let expect = concat(vec![
        exchange(&cmd, &status(Status::Crc)),
        exchange(&cmd, &response(&rnd)),
    ]);
    let mut chip = chip(&expect);
    assert_eq!(chip.random().unwrap(), rnd);
    finish(chip);
}

#[test]
fn timeout_after_the_deadline_with_bounded_wait() {
    // Info: 5 ms in the table, so 2 × 5 + 20 = 30 ms.
    let cmd = command::info(command::InfoMode::Revision);
    assert_eq!(DriverConfig::default().timeout_ms(0x30), 30);
    let mut expect = wake();
    expect.push(send(&cmd));
    let mut delays = vec![Wait::delay_us(1500), Wait::delay_us(1000)];
    // Polls at 1, 3, 5 … 29 ms, then the last wait is cut to end at 30 ms,
    // and one final poll.
    for _ in 0..14 {
        delays.push(Wait::delay_us(2000));
    }
    delays.push(Wait::delay_us(1000));
    for _ in 0..16 {
        expect.push(busy());
    }
    let mut chip = Atecc::new(Mock::new(&expect), CheckedDelay::new(&delays), ADDR);
    assert_eq!(
        chip.info_revision(),
        Err(Error::Timeout {
            opcode: 0x30,
            waited_ms: 30
        })
    );
    finish_checked(chip);
}

/// A delay that only adds up what it was asked to wait.
#[derive(Default)]
struct Stopwatch {
    ns: u64,
}

impl DelayNs for Stopwatch {
    fn delay_ns(&mut self, ns: u32) {
        self.ns += ns as u64;
    }
}

#[test]
fn sign_timeout_waits_exactly_its_budget() {
    // Sign at M0: 115 ms, so 250 ms.
    let cmd = command::sign_external(0, MessageSource::MsgDigestBuffer);
    let timeout_ms = DriverConfig::default().timeout_ms(cmd.opcode);
    assert_eq!(timeout_ms, 250);
    let mut expect = wake();
    expect.push(send(&cmd));
    // 1 ms, then every 2 ms up to 249 ms (125 polls), a last poll at 250 ms.
    for _ in 0..126 {
        expect.push(busy());
    }
    let mut chip = Atecc::new(Mock::new(&expect), Stopwatch::default(), ADDR);
    let mut rsp = [0u8; MAX_RESPONSE];
    assert_eq!(
        chip.execute(&cmd, &mut rsp).err(),
        Some(Error::Timeout {
            opcode: cmd.opcode,
            waited_ms: 250
        })
    );
    let (mut i2c, watch) = chip.destroy();
    i2c.done();
    // tWHI plus the polling budget, nothing more.
    assert_eq!(watch.ns, 1_500_000 + 250_000_000);
}

#[test]
fn every_chip_status_surfaces_as_chip_error() {
    let cmd = command::lock(LockTarget::Data, None).unwrap();
    let immediate = [
        Status::Miscompare,
        Status::Parse,
        Status::EccFault,
        Status::SelfTest,
        Status::HealthTest,
        Status::Execution,
        Status::AfterWake,
        Status::Unknown(0x42),
    ];
    for s in immediate {
        let mut chip = chip(&exchange(&cmd, &status(s)));
        let want = s.into_result().unwrap_err();
        assert_eq!(
            chip.lock(LockTarget::Data, None),
            Err(Error::Chip(want)),
            "{s:?}"
        );
        finish(chip);
    }
    // 0xFF and 0xEE: the command is resent (retries = 3) before giving up.
    for s in [Status::Crc, Status::WatchdogAboutToExpire] {
        let mut expect = Vec::new();
        for _ in 0..4 {
            expect.extend(exchange(&cmd, &status(s)));
        }
        let mut chip = chip(&expect);
        let want = s.into_result().unwrap_err();
        let got = chip.lock(LockTarget::Data, None);
        assert_eq!(got, Err(Error::Chip(want)), "{s:?}");
        assert_eq!(got.unwrap_err().chip_status(), Some(want));
        finish(chip);
    }
}

#[test]
fn wrong_response_size_is_a_protocol_error() {
    let cmd = command::random();
    let mut chip = chip(&exchange(&cmd, &response(&[0u8; 4])));
    assert_eq!(
        chip.random(),
        Err(Error::Protocol(proto::Error::UnexpectedResponseSize {
            expected: 32,
            got: 4
        }))
    );
    finish(chip);
}

#[test]
fn arguments_are_checked_before_anything_is_sent() {
    let mut chip = chip(&[]);
    let mut four = [0u8; 4];
    assert!(matches!(
        chip.read(Zone::Config, AccessSize::Block, 0, &mut four),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        chip.write(Zone::Data, 0x40, &[0u8; 5]),
        Err(Error::InvalidArgument(_))
    ));
    let mut tiny = [0u8; 3];
    assert!(matches!(
        chip.execute(&command::random(), &mut tiny),
        Err(Error::InvalidArgument(_))
    ));
    finish(chip);
}

// ------------------------------------------------------------------ addresses and messages

#[test]
fn normalize_address_cases() {
    let cases: [(u8, u8, bool); 9] = [
        (0x6A, 0x35, true),
        (0x6C, 0x36, true),
        (0xC0, 0x60, true),
        (0x35, 0x35, false),
        (0x36, 0x36, false),
        (0x60, 0x60, false),
        (0xA0, 0x50, true),
        (0x42, 0x42, false),
        (0x00, 0x00, true),
    ];
    for (input, seven, noted) in cases {
        let a = normalize_address(input);
        assert_eq!(a.seven_bit, seven, "0x{input:02X}");
        assert_eq!(a.note.is_some(), noted, "0x{input:02X}");
    }
    assert!(normalize_address(0x6A).note.unwrap().contains("0x35"));
    assert!(normalize_address(0x6A).part.unwrap().contains("Trust&GO"));
    assert!(normalize_address(0x36).part.unwrap().contains("TrustFLEX"));
    assert!(normalize_address(0xC0).part.unwrap().contains("blank"));
    assert_eq!(normalize_address(0x42).part, None);
}

#[test]
fn error_messages_say_what_to_do() {
    let e: Error<ErrorKind> = Error::NotPresent { address: 0x35 };
    let s = e.to_string();
    assert!(s.starts_with("no ACK from 0x35 after wake: check wiring, power and the address"));
    assert!(s.contains("@0x35") && s.contains("0x60") && s.contains("100 kHz"));
    let e: Error<ErrorKind> = Error::Timeout {
        opcode: 0x41,
        waited_ms: 250,
    };
    assert!(e.to_string().contains("Sign"));
    let e: Error<ErrorKind> = Error::Chip(proto::Error::Execution);
    assert!(e.to_string().contains("0x0F"));
    let e: Error<ErrorKind> = Error::WakeFailed([1, 2, 3, 4]);
    assert!(e.to_string().contains("01 02 03 04"));
    fn is_error<T: core::error::Error>(_: &T) {}
    is_error(&e);
}
