//! The emulated ATECC608B fuzzed as a chip: arbitrary I2C transactions and
//! command packets in any lock state, with the silicon's invariants checked
//! after every step.

use std::path::Path;
use std::time::Duration;

use coffre_emu::chip::{Atecc608, NvState};
use coffre_emu::device::Device;
use coffre_emu::image;
use coffre_emu::presets::Preset;
use coffre_proto::config::ConfigZone;
use coffre_proto::packet::{self, Command, MAX_DATA};
use coffre_proto::Status;

use crate::bytes::Input;

/// Config bytes that may change after the config zone is locked: the
/// monotonic counters (52–67), UpdateExtra's bytes (84, 85), the lock bytes
/// (86, 87) and the slot-locked bits (88, 89).
fn may_change_after_config_lock(i: usize) -> bool {
    (52..68).contains(&i) || (84..90).contains(&i)
}

/// What the invariants compare across one step.
struct Before {
    config: [u8; 128],
    otp: Vec<u8>,
    slots: Vec<Vec<u8>>,
}

impl Before {
    fn of(nv: &NvState) -> Before {
        Before {
            config: *nv.config.as_bytes(),
            otp: nv.otp.to_vec(),
            slots: (0..16).map(|s| nv.slot(s).to_vec()).collect(),
        }
    }
}

fn check_step(before: &Before, nv: &NvState, step: usize) {
    let was = ConfigZone::parse(&before.config).expect("128 bytes");
    let now = &nv.config;
    // Locks are one-way.
    assert!(
        !was.config_locked() || now.config_locked(),
        "step {step}: config zone unlocked"
    );
    assert!(
        !was.data_locked() || now.data_locked(),
        "step {step}: data zone unlocked"
    );
    let (wb, nb) = (was.slot_locked_bits(), now.slot_locked_bits());
    assert_eq!(wb & nb, nb, "step {step}: a slot lock was undone");
    if was.config_locked() {
        for (i, (a, b)) in before.config.iter().zip(now.as_bytes()).enumerate() {
            if !may_change_after_config_lock(i) {
                assert_eq!(a, b, "step {step}: locked config byte {i} changed");
            }
        }
    }
    if was.data_locked() {
        for s in 0..16u8 {
            if was.slot_locked(s) {
                assert_eq!(
                    before.slots[s as usize],
                    nv.slot(s),
                    "step {step}: locked slot {s} changed"
                );
            }
        }
        // OTP mode 0xAA: read-only once the data zone is locked.
        if before.config[18] == 0xAA {
            assert_eq!(
                before.otp,
                nv.otp.to_vec(),
                "step {step}: read-only OTP changed"
            );
        }
    }
}

/// The 8-byte windows of every secret slot's content (a slot whose
/// SlotConfig says IsSecret and which holds something): none of them may
/// appear in anything the chip sends once its data zone is locked.
fn secret_windows(nv: &NvState) -> Vec<[u8; 8]> {
    let mut out = Vec::new();
    if !nv.config.data_locked() {
        return out;
    }
    for s in 0..16u8 {
        if !nv.config.slot_config(s).is_secret() {
            continue;
        }
        // Private keys occupy the first 36 bytes (4 pad + 32 key) of a slot.
        let bytes = &nv.slot(s)[..36.min(nv.slot(s).len())];
        for w in bytes.windows(8) {
            let distinct = w.iter().collect::<std::collections::BTreeSet<_>>().len();
            if distinct >= 5 {
                out.push(w.try_into().unwrap());
            }
        }
    }
    out
}

fn check_output(out: &[u8], secrets: &[[u8; 8]], step: usize) {
    for w in out.windows(8) {
        assert!(
            !secrets.iter().any(|s| s == w),
            "step {step}: 8 bytes of a secret slot left the chip"
        );
    }
    // A complete status packet carries a status the datasheet lists.
    if out.len() >= 4
        && out[0] == 4
        && coffre_proto::crc::crc16_bytes(&out[..2]) == [out[2], out[3]]
    {
        assert!(
            !matches!(Status::from_byte(out[1]), Status::Unknown(_)),
            "step {step}: status 0x{:02X} is not one the chip returns",
            out[1]
        );
    }
}

/// Run the fuzzer's program against a chip.
pub fn transactions(data: &[u8]) {
    let mut input = Input::new(data);
    let preset = if input.u8() & 1 == 0 {
        Preset::Tngtls
    } else {
        Preset::Blank
    };
    let mut chip = Atecc608::new(crate::preset(preset));
    let addr_check = chip.address();
    let mut now = Duration::from_millis(1);
    let mut step = 0usize;
    while !input.is_empty() && step < 256 {
        step += 1;
        let before = Before::of(chip.nv());
        match input.u8() % 9 {
            0 => chip.sda_low(now, Duration::from_micros(100)),
            1 | 2 => {
                // A well-formed command: correct count and CRC, so the
                // fuzzer reaches every opcode and mode.
                let (opcode, p1, p2) = (input.u8(), input.u8(), input.u16());
                let len = (input.u8() as usize).min(MAX_DATA);
                let body = input.take(len);
                let cmd = Command::with_data(opcode, p1, p2, body).expect("len <= MAX_DATA");
                let mut buf = [0u8; packet::MAX_PACKET];
                let n = cmd.encode(&mut buf).expect("fits");
                let _ = chip.write(now, &buf[..n]);
                chip.stop(now);
            }
            3 => {
                let len = input.u8() as usize;
                let raw = input.take(len).to_vec();
                let _ = chip.write(now, &raw);
                chip.stop(now);
            }
            4 | 5 => {
                let n = 1 + input.u8() as usize % 96;
                let mut buf = vec![0u8; n];
                if chip.read(now, &mut buf).is_ok() {
                    check_output(&buf, &secret_windows(chip.nv()), step);
                }
                chip.stop(now);
            }
            6 => now += Duration::from_micros(input.u16() as u64 * 50),
            7 => {
                let w = [input.u8() % 3];
                let _ = chip.write(now, &w);
                chip.stop(now);
            }
            _ => chip.power_loss(),
        }
        // Commands finish while time passes.
        now += Duration::from_millis(1);
        check_step(&before, chip.nv(), step);
        assert!(
            chip.address() == addr_check || !before_config_locked(&before),
            "step {step}: the I2C address changed on a locked chip"
        );
    }
    // The image saved and reloaded equals the state in memory.
    let bytes = image::encode(chip.nv());
    let back = image::decode(Path::new("fuzz.img"), &bytes).expect("our own image decodes");
    assert!(back == *chip.nv(), "image round trip changed the chip");
}

fn before_config_locked(b: &Before) -> bool {
    ConfigZone::parse(&b.config)
        .expect("128 bytes")
        .config_locked()
}

/// An image file as the emulator loads it: a file that loads saves back to
/// the same state.
pub fn image(data: &[u8]) {
    if let Ok(nv) = image::decode(Path::new("fuzz.img"), data) {
        let bytes = image::encode(&nv);
        let back = image::decode(Path::new("fuzz.img"), &bytes).expect("re-encoded image decodes");
        assert!(back == nv, "image round trip changed the chip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "locked slot 8 changed")]
    fn a_changed_locked_slot_is_caught() {
        let mut nv = Preset::Tngtls.build();
        nv.config.set_slot_locked(8);
        let before = Before::of(&nv);
        nv.slot_mut(8)[0] ^= 1;
        check_step(&before, &nv, 1);
    }

    #[test]
    #[should_panic(expected = "secret slot left the chip")]
    fn a_leaked_private_key_is_caught() {
        let nv = Preset::Tngtls.build();
        let secrets = secret_windows(&nv);
        assert!(
            !secrets.is_empty(),
            "slot 0 of a Trust&GO holds a secret key"
        );
        let mut out = vec![0x41u8];
        out.extend_from_slice(&nv.slot(0)[4..20]);
        check_output(&out, &secrets, 1);
    }

    #[test]
    #[should_panic(expected = "is not one the chip returns")]
    fn an_unknown_status_is_caught() {
        let crc = coffre_proto::crc::crc16_bytes(&[4, 0x42]);
        check_output(&[4, 0x42, crc[0], crc[1]], &[], 1);
    }
}
