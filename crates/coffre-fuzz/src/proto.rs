//! Targets of the protocol core (`coffre-proto`): what the driver decodes
//! from a chip, and what the emulator parses from a host.

use coffre_proto::config::{ConfigZone, SlotPolicy};
use coffre_proto::packet::{self, Command, MAX_PACKET};
use coffre_proto::zone::{self, Zone};

/// A response packet as the driver receives it. A packet that decodes is
/// re-encoded by the chip's encoder to the same bytes.
pub fn response(data: &[u8]) {
    if let Ok(body) = packet::parse_response(data) {
        let n = data[0] as usize;
        if n == 4 {
            // A success status: no data.
            assert!(body.is_empty());
            return;
        }
        let mut out = [0u8; 256];
        let m = packet::encode_response(body, &mut out).expect("a decoded body re-encodes");
        assert_eq!(
            &out[..m],
            &data[..n],
            "decode then encode changed the packet"
        );
    }
}

/// A command body as the emulator parses it. Differential: a body that
/// parses is re-encoded by the driver's encoder to the same bytes, and the
/// driver's encoding of the parsed fields parses back to them.
pub fn command(data: &[u8]) {
    let Ok(c) = packet::parse_command(data) else {
        return;
    };
    let (opcode, p1, p2) = (c.opcode, c.param1, c.param2);
    let cmd = Command::with_data(opcode, p1, p2, c.data).expect("parsed data fits a command");
    let mut out = [0u8; MAX_PACKET];
    let n = cmd.encode_body(&mut out).expect("buffer is MAX_PACKET");
    assert_eq!(
        &out[..n],
        &data[..n],
        "parse then encode changed the packet"
    );
    let back = packet::parse_command(&out[..n]).expect("our own encoding parses");
    assert_eq!((back.opcode, back.param1, back.param2), (opcode, p1, p2));
    assert_eq!(back.data, cmd.data());
    // The address field of Read/Write as the emulator decodes it.
    for zone in [Zone::Config, Zone::Otp, Zone::Data] {
        for len in [4, 32] {
            if let Ok(loc) = zone::decode_address(zone, p2, len) {
                assert!(loc.word < 8);
            }
        }
    }
}

/// A config zone read from a chip: every field decodes and every slot's
/// policy explains itself without panicking.
pub fn config(data: &[u8]) {
    let Some(cfg) = ConfigZone::parse(data.get(..128).unwrap_or(data)) else {
        assert!(data.len() < 128, "any 128 bytes parse");
        return;
    };
    let _ = (cfg.serial_number(), cfg.revision(), cfg.device_family());
    let _ = (cfg.i2c_address(), cfg.i2c_address_8bit(), cfg.i2c_enabled());
    let _ = (
        cfg.aes_enabled(),
        cfg.chip_options(),
        cfg.slot_locked_bits(),
    );
    let mode = cfg.chip_mode();
    let _ = (mode.long_watchdog(), mode.clock_divider());
    let _ = (cfg.config_locked(), cfg.data_locked());
    let mut text = String::new();
    for slot in 0..16 {
        let p = SlotPolicy::decode(&cfg, slot);
        use std::fmt::Write;
        write!(text, "{}", p.summary()).unwrap();
        assert!(!(p.private_key && p.read == coffre_proto::config::ReadAccess::Clear));
        assert_eq!(p.slot_locked, cfg.slot_locked(slot));
    }
}
