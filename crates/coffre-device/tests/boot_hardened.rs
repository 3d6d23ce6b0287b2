//! Lab-mode boot on a chip whose slot 8 is readable only by encrypted Read:
//! with the IO protection key the key comes back and no 4-byte run of it
//! crosses the bus; without it the boot stops with a clear error.

use coffre_device::boot::{boot, BootKey, BootOptions, IoKey, KeyMode};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_proto::config::SlotConfig;
use zeroize::Zeroizing;

fn hardened() -> (Board, Vec<u8>, [u8; 32]) {
    let mut nv = Preset::Tngtls.build();
    // IsSecret, EncryptRead, ReadKey 6 (the IO protection key slot).
    nv.config.set_slot_config(8, SlotConfig(0x00C6));
    let content: Vec<u8> = (0..416u32).map(|i| (i * 7 + 3) as u8).collect();
    nv.slot_mut(8).copy_from_slice(&content);
    let io: [u8; 32] = nv.slot(6)[..32].try_into().unwrap();
    (Board::new(nv, Timing::Instant), content, io)
}

fn opts(io_key: Option<IoKey>) -> BootOptions {
    BootOptions {
        mode: KeyMode::Lab,
        allow_unlocked: false,
        io_key,
    }
}

#[test]
fn lab_boot_reads_slot8_encrypted() {
    let (board, content, io) = hardened();
    board.bus.start_transcript();
    let drv = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let key = IoKey {
        slot: 6,
        key: Zeroizing::new(io),
        host_nonce: [9; 20],
    };
    let mut log = Vec::new();
    let (k, _) = boot(drv, &opts(Some(key)), &mut |_, m| log.push(m.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let BootKey::Lab { slot8 } = k else {
        panic!("lab mode gives the slot's bytes")
    };
    assert_eq!(slot8[..], content[..]);
    let t = board.bus.take_transcript();
    assert_eq!(content.windows(4).filter(|w| t.contains(w)).count(), 0);
    assert!(log.iter().any(|l| l.contains("encrypted Read")), "{log:?}");
}

#[test]
fn lab_boot_without_the_io_key_stops() {
    let (board, _, _) = hardened();
    let drv = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let e = boot(drv, &opts(None), &mut |_, _| {}).expect_err("refused");
    assert!(e.to_string().contains("encrypted Read"), "{e}");
}
