//! The bus, the wake/idle/sleep/watchdog model, timing, transcripts,
//! fault injection and image files.

mod common;

use std::time::Duration;

use coffre_emu::board::Board;
use coffre_emu::bus::Corruption;
use coffre_emu::chip::Power;
use coffre_emu::clock::{Clock, Timing};
use coffre_emu::image::{self, ImageError};
use coffre_emu::presets::Preset;
use coffre_emu::transcript::Direction;
use coffre_proto::command::{self, AccessSize, InfoMode};
use coffre_proto::packet::{parse_response, MAX_PACKET};
use coffre_proto::zone::Zone;
use coffre_proto::Error;
use common::Host;
use embedded_hal::i2c::I2c;

fn info_body() -> Vec<u8> {
    let mut b = [0u8; MAX_PACKET];
    let n = command::info(InfoMode::Revision)
        .encode_body(&mut b)
        .unwrap();
    b[..n].to_vec()
}

#[test]
fn scan_finds_the_lab_port_a_devices_once_awake() {
    let mut h = Host::new(Preset::Tngtls);
    // Asleep, the secure element does not answer its address.
    assert_eq!(h.board.bus.scan(), vec![0x44, 0x76]);
    h.wake().unwrap();
    assert_eq!(h.board.bus.scan(), vec![0x35, 0x44, 0x76]);
}

#[test]
fn wake_needs_sda_low_long_enough() {
    let mut h = Host::new(Preset::Tngtls);
    // 400 kHz: the address byte holds SDA low 20 µs < tWLO (60 µs).
    h.board.bus.set_frequency(400_000);
    assert!(h.wake().is_err());
    h.board.bus.set_frequency(100_000);
    assert_eq!(h.wake().unwrap(), [0x04, 0x11, 0x33, 0x43]);
    // A second wake on an awake chip changes nothing.
    let body = info_body();
    let r = h.raw(&body);
    assert_eq!(parse_response(&r).unwrap(), &[0, 0, 0x60, 0x03]);
}

#[test]
fn response_reads_may_be_split_and_reset_rewinds() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    let mut w = vec![0x03];
    w.extend(info_body());
    h.board.bus.write(h.addr, &w).unwrap();
    let mut a = [0u8; 1];
    let mut b = [0u8; 3];
    let mut c = [0u8; 3];
    h.board.bus.read(h.addr, &mut a).unwrap();
    h.board.bus.read(h.addr, &mut b).unwrap();
    h.board.bus.read(h.addr, &mut c).unwrap();
    let whole: Vec<u8> = a.iter().chain(&b).chain(&c).copied().collect();
    assert_eq!(parse_response(&whole).unwrap(), &[0, 0, 0x60, 0x03]);
    // Past the end: the bus reads 0xFF.
    h.board.bus.read(h.addr, &mut a).unwrap();
    assert_eq!(a, [0xFF]);
    // Word address 0x00 rewinds the output buffer: read it again.
    h.board.bus.write(h.addr, &[0x00]).unwrap();
    let mut again = [0u8; 7];
    h.board.bus.read(h.addr, &mut again).unwrap();
    assert_eq!(again.to_vec(), whole);
}

#[test]
fn bad_crc_gets_status_ff_and_extra_bytes_are_ignored() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    let mut body = info_body();
    body[5] ^= 0x01;
    assert_eq!(h.raw(&body), [0x04, 0xFF, 0x01, 0x42]);
    // Bytes past count are ignored (input FIFO).
    let mut body = info_body();
    body.extend([0xAA, 0xBB]);
    assert_eq!(parse_response(&h.raw(&body)).unwrap(), &[0, 0, 0x60, 0x03]);
    // A truncated packet fails its CRC.
    let body = info_body();
    assert_eq!(h.raw(&body[..4]), [0x04, 0xFF, 0x01, 0x42]);
}

#[test]
fn unknown_word_address_is_nacked() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    assert!(h.board.bus.write(h.addr, &[0x07, 0x00]).is_err());
}

#[test]
fn watchdog_puts_the_chip_to_sleep_and_wipes_volatile_state() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    h.advance(Duration::from_millis(1400));
    let mut r = [0u8; 4];
    assert!(h.board.bus.read(h.addr, &mut r).is_err());
    assert_eq!(h.board.with_chip(|c| c.power()), Power::Sleep);
    assert_eq!(h.board.with_chip(|c| c.stats().watchdog_expiries), 1);
    // Idle stops the watchdog.
    h.wake().unwrap();
    h.idle();
    h.advance(Duration::from_secs(10));
    assert_eq!(h.board.with_chip(|c| c.power()), Power::Idle);
    // Injected expiry.
    h.wake().unwrap();
    h.board.with_chip(|c| c.expire_watchdog());
    assert!(h.board.bus.read(h.addr, &mut r).is_err());
}

#[test]
fn command_with_too_little_watchdog_time_gets_ee() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    // 1.3 s watchdog; Sign needs 115 ms; 1.25 s have passed.
    h.advance(Duration::from_millis(1250));
    let mut b = [0u8; MAX_PACKET];
    let n = command::sign_external(0, command::MessageSource::TempKey)
        .encode_body(&mut b)
        .unwrap();
    assert_eq!(h.raw(&b[..n]), [0x04, 0xEE, 0x31, 0x41]);
}

#[test]
fn datasheet_timing_nacks_while_executing() {
    let board = Board::with_clock(Preset::Tngtls.build(), Timing::Datasheet, Clock::manual());
    let mut h = Host::on(board);
    // Before tWHI has elapsed the chip does not answer.
    let _ = h.board.bus.write(0x00, &[]);
    let mut r = [0u8; 4];
    assert!(h.board.bus.read(h.addr, &mut r).is_err());
    h.advance(Duration::from_micros(1500));
    h.board.bus.read(h.addr, &mut r).unwrap();
    // GenKey public: 115 ms at M0.
    let mut b = [0u8; MAX_PACKET];
    let n = command::genkey_public(0).encode_body(&mut b).unwrap();
    let mut w = vec![0x03];
    w.extend_from_slice(&b[..n]);
    h.board.bus.write(h.addr, &w).unwrap();
    h.advance(Duration::from_millis(114));
    assert!(h.board.bus.read(h.addr, &mut r).is_err());
    h.advance(Duration::from_millis(1));
    let rsp = h.read_response();
    assert_eq!(rsp.len(), 67);
}

#[test]
fn transcript_shows_what_a_probe_sees() {
    let mut h = Host::new(Preset::Tngtls);
    h.board.bus.start_transcript();
    let block = [0x5Cu8; 32];
    h.status(&command::write(Zone::Data, 8 << 3, &block).unwrap())
        .unwrap();
    h.run(&command::read(Zone::Data, AccessSize::Block, 8 << 3))
        .unwrap();
    let t = h.board.bus.take_transcript();
    assert!(
        t.contains(&block),
        "the written block is visible on the bus"
    );
    assert!(t.events.iter().any(|e| e.dir == Direction::Wake));
    let text = t.to_text();
    assert!(
        text.contains("command Write 32 B, data slot 8 block 0"),
        "{text}"
    );
    assert!(
        text.contains("command Read 32 B, data slot 8 block 0"),
        "{text}"
    );
    assert!(text.contains("status 0x11"), "{text}");
    let json = t.to_json_lines();
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["dir"], "wake");
    assert!(json.contains(&"5c".repeat(32)));
    // Nothing recorded when off.
    h.run(&command::random()).unwrap();
    assert!(h.board.bus.transcript().events.is_empty());
}

#[test]
fn absent_chip_nacks_its_address() {
    let mut h = Host::new(Preset::Tngtls);
    h.board.bus.set_present(0x35, false);
    assert!(h.wake().is_err());
    h.board.bus.set_present(0x35, true);
    assert!(h.wake().is_ok());
}

#[test]
fn chip_pulled_out_mid_command() {
    let mut h = Host::new(Preset::Tngtls);
    h.board
        .bus
        .faults(|f| f.pull_after_commands = Some((0x35, 0)));
    h.wake().unwrap();
    let mut w = vec![0x03];
    w.extend(info_body());
    h.board.bus.write(h.addr, &w).unwrap();
    let mut r = [0u8; 1];
    assert!(h.board.bus.read(h.addr, &mut r).is_err());
    assert_eq!(h.board.with_chip(|c| c.power()), Power::Sleep);
    // Plugged back: it answers again, volatile state gone.
    h.board.bus.set_present(0x35, true);
    assert_eq!(h.wake().unwrap(), [0x04, 0x11, 0x33, 0x43]);
}

#[test]
fn corrupted_bytes_in_either_direction() {
    let mut h = Host::new(Preset::Tngtls);
    // Host → chip: the chip sees a bad CRC and answers 0xFF.
    h.board.bus.faults(|f| {
        f.corrupt_write = Some(Corruption {
            address: 0x35,
            byte_index: 3,
            xor: 0x10,
            remaining: 1,
            min_len: 5,
        })
    });
    assert_eq!(
        h.status(&command::info(InfoMode::Revision)),
        Err(Error::ChipSawBadCrc)
    );
    // Chip → host: the host sees a CRC mismatch.
    h.board.bus.faults(|f| {
        f.corrupt_read = Some(Corruption {
            address: 0x35,
            byte_index: 1,
            xor: 0x01,
            remaining: 1,
            min_len: 5,
        })
    });
    assert_eq!(
        h.run(&command::read(Zone::Config, AccessSize::Block, 0)),
        Err(Error::ResponseCrc)
    );
    // One-shot faults clear themselves.
    assert!(h
        .run(&command::read(Zone::Config, AccessSize::Block, 0))
        .is_ok());
}

#[test]
fn stuck_busy_chip_never_answers() {
    let mut h = Host::new(Preset::Tngtls);
    h.wake().unwrap();
    h.board.bus.faults(|f| f.stuck_busy.insert(0x35));
    let mut w = vec![0x03];
    w.extend(info_body());
    h.board.bus.write(h.addr, &w).unwrap();
    let mut r = [0u8; 1];
    for _ in 0..10 {
        assert!(h.board.bus.read(h.addr, &mut r).is_err());
        h.advance(Duration::from_millis(100));
    }
    h.board.bus.faults(|f| f.stuck_busy.clear());
}

#[test]
fn image_round_trip_and_persistence() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chip.img");
    let nv = Preset::Tngtls.build();
    image::create(&path, &nv, false).unwrap();
    assert!(matches!(
        image::create(&path, &nv, false),
        Err(ImageError::Exists { .. })
    ));
    assert_eq!(image::load(&path).unwrap(), nv);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Changes made through the bus land in the file.
    let board = Board::open(&path, Timing::Instant).unwrap();
    let mut h = Host::on(board);
    h.status(&command::write(Zone::Data, 8 << 3, &[0x42; 32]).unwrap())
        .unwrap();
    let again = image::load(&path).unwrap();
    assert_eq!(&again.slot(8)[..32], &[0x42; 32]);
    // No temporary files are left behind (the writer's lock file stays).
    assert_eq!(files_beside(&path), vec!["chip.img".to_string()]);
}

/// The files in `image`'s directory, except its lock file.
fn files_beside(image: &std::path::Path) -> Vec<String> {
    let lock = image::lock_path(image);
    let mut names: Vec<_> = std::fs::read_dir(image.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| *p != lock)
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

// Issue 15, item 2: a save that fails must fail the chip command and undo
// the change, not log a line while the host believes the write succeeded.
#[test]
fn a_failed_save_fails_the_command_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chip.img");
    image::create(&path, &Preset::Tngtls.build(), false).unwrap();
    let board = Board::open(&path, Timing::Instant).unwrap();
    let mut h = Host::on(board);
    h.status(&command::write(Zone::Data, 8 << 3, &[0x42; 32]).unwrap())
        .unwrap();
    // The directory disappears: every save from now on fails.
    std::fs::remove_dir_all(dir.path()).unwrap();
    let e = h
        .status(&command::write(Zone::Data, 8 << 3, &[0x99; 32]).unwrap())
        .unwrap_err();
    assert!(matches!(e, Error::Execution), "{e:?}");
    let slot = h.board.with_chip(|c| c.nv().slot(8)[..32].to_vec());
    assert_eq!(slot, [0x42; 32], "the failed write was undone");
    let why = h.board.with_chip(|c| c.take_persist_error()).unwrap();
    assert!(why.0.contains("chip.img"), "{}", why.0);
    // A key born in the chip but not saved does not exist either: GenKey
    // answers an error instead of a public key.
    let genkey = command::genkey_create(2);
    assert!(h.run(&genkey).is_err());
}

// Issue 15, item 2: a failed save leaves the old image and no temporary file.
#[test]
fn a_failed_save_leaves_the_image_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chip.img");
    let nv = Preset::Tngtls.build();
    image::create(&path, &nv, false).unwrap();
    // A directory in the way of the rename makes the last step fail.
    let blocked = dir.path().join("blocked.img");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("x"), b"x").unwrap();
    let e = image::save(&blocked, &nv).unwrap_err();
    assert!(matches!(e, ImageError::Io { op: "save", .. }), "{e}");
    assert!(
        !e.to_string().contains("os error"),
        "Display does not repeat its source: {e}"
    );
    assert_eq!(
        files_beside(&path),
        vec!["blocked.img".to_string(), "chip.img".to_string()]
    );
}

// Issue 15, item 3: a held image is refused to another writer, naming it.
#[test]
fn a_held_image_is_refused_to_a_second_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chip.img");
    image::create(&path, &Preset::Tngtls.build(), false).unwrap();
    // Another process holds it (a second open file description collides
    // exactly as another process does).
    let other = coffre_fs::LockFile::try_lock(&image::lock_path(&path)).unwrap();
    match Board::open(&path, Timing::Instant) {
        Err(e @ ImageError::Busy { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("pid {}", std::process::id())),
                "{msg}"
            );
        }
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(matches!(
        image::create(&path, &Preset::Blank.build(), true),
        Err(ImageError::Busy { .. })
    ));
    drop(other);
    // Free again; while this board lives, the image is held.
    let board = Board::open(&path, Timing::Instant).unwrap();
    let again = Board::open(&path, Timing::Instant).expect("this process may reopen it");
    assert!(coffre_fs::LockFile::try_lock(&image::lock_path(&path)).is_err());
    drop((board, again));
    coffre_fs::LockFile::try_lock(&image::lock_path(&path)).unwrap();
}

#[test]
fn damaged_images_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chip.img");
    image::create(&path, &Preset::Blank.build(), false).unwrap();
    let good = std::fs::read(&path).unwrap();

    let mut flipped = good.clone();
    flipped[500] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let e = image::load(&path).unwrap_err();
    assert!(matches!(e, ImageError::Checksum { .. }));
    assert!(e.to_string().contains("corrupted"));

    std::fs::write(&path, &good[..good.len() - 10]).unwrap();
    assert!(matches!(image::load(&path), Err(ImageError::Size { .. })));

    std::fs::write(&path, b"hello world, not an image at all").unwrap();
    assert!(matches!(
        image::load(&path),
        Err(ImageError::NotAnImage { .. })
    ));

    let mut v3 = good.clone();
    v3[16] = 3;
    std::fs::write(&path, &v3).unwrap();
    assert!(matches!(
        image::load(&path),
        Err(ImageError::UnsupportedVersion { version: 3, .. })
    ));

    std::fs::write(&path, []).unwrap();
    assert!(image::load(&path).is_err());
    assert!(matches!(
        image::load(&dir.path().join("missing.img")),
        Err(ImageError::Io { .. })
    ));
}

/// Run as a child process: rewrite the image as fast as possible until
/// killed. The parent kills it at a random moment and checks the image.
#[test]
fn atomic_writes_survive_a_kill() {
    if let Ok(path) = std::env::var("COFFRE_EMU_WRITER_CHILD") {
        let path = std::path::PathBuf::from(path);
        let mut nv = image::load(&path).unwrap();
        let mut i = 0u8;
        loop {
            i = i.wrapping_add(1);
            nv.slot_mut(8).fill(i);
            image::save(&path, &nv).unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chip.img");
    image::create(&path, &Preset::Tngtls.build(), false).unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..5u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "atomic_writes_survive_a_kill", "--nocapture"])
            .env("COFFRE_EMU_WRITER_CHILD", &path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(150 + 37 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        let nv = image::load(&path).expect("image intact after kill");
        let s = nv.slot(8);
        assert!(s.iter().all(|&b| b == s[0]), "slot 8 is one whole write");
    }
}
