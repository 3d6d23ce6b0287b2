//! The lab's own fix for the probe ("chiffrement de bus"): the same lab key
//! in slot 8 of a hardened chip, readable only by encrypted Read with the
//! IO protection key the MCU keeps in its flash. A probe on the bus during
//! boot and handshake sees no 4-byte run of the key; `bus-probe` shows the
//! same key in clear on a Trust&GO part.

use coffre_agent::boot::IoKey;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_provision::{configure_with_io_key, AssumeYes, Layout};
use rand_core::RngCore;

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::{self, LAB_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "encrypted-bus",
    proves: &[Threat::InformationDisclosure],
    cases: &[Case::new(
        "bus probe, lab key on a hardened chip (IO protection key)",
        Mode::Lab,
        "no 4-byte run of the key on the I2C bus; the device still connects",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    // The lab device's key, as provisioned in its Trust&GO slot 8.
    let slot8 = match setup::open(&cx.lab.chip(LAB_ID)) {
        Ok((b, _)) => b.with_chip(|c| c.nv().slot(8).to_vec()),
        Err(e) => return Outcome::not_tried(format!("lab chip: {e}")),
    };
    let len = u16::from_be_bytes([slot8[0], slot8[1]]) as usize;
    if len < 32 || len + 2 > slot8.len() {
        return Outcome::not_tried("the lab chip's slot 8 holds no key");
    }
    // A blank chip configured hardened (IO protection key in slot 6, slot
    // 8 encrypted-only), the same key written with encrypted Writes.
    let board = Board::new(Preset::Blank.build(), Timing::Instant);
    let addr = board.with_chip(|c| coffre_emu::device::Device::address(c));
    let mut drv = coffre_driver::Atecc::new(board.bus.clone(), board.delay(), addr);
    let io = match configure_with_io_key(&mut drv, Layout::Hardened, &mut AssumeYes::default()) {
        Ok((_, Some(k))) => k,
        Ok((_, None)) => return Outcome::not_tried("the hardened layout set no IO key"),
        Err(e) => return Outcome::not_tried(format!("configuring the chip: {e}")),
    };
    for (b, block) in slot8.chunks(32).enumerate() {
        let mut data = [0u8; 32];
        data.copy_from_slice(block);
        let mut num_in = [0u8; 20];
        rand_core::OsRng.fill_bytes(&mut num_in);
        if let Err(e) = drv.write_encrypted(8, b as u8, &data, io.slot, &io.key, &num_in) {
            return Outcome::not_tried(format!("writing slot 8: {e}"));
        }
    }
    // From here on a probe records the bus: boot, then the TLS handshake.
    board.bus.start_transcript();
    let mut host_nonce = [0u8; 20];
    rand_core::OsRng.fill_bytes(&mut host_nonce);
    let key = IoKey {
        slot: io.slot,
        key: io.key.clone(),
        host_nonce,
    };
    let dev = Device::boot_with(cx.lab, board.clone(), drv, case.mode, LAB_ID, Some(key));
    let booted = dev.boot_error.is_none();
    let run = publish_once(dev, LAB_ID, cx.lab.broker_addr, |_| {});
    let t = board.bus.take_transcript();
    let der = &slot8[2..2 + len];
    let leaks = der.windows(4).filter(|w| t.contains(w)).count();
    let text = t.to_text();
    let reads = text.matches("command Read").count();
    let gendigs = text.matches("command GenDig").count();
    let delivered = run.error.is_none() && run.published > 0;
    Outcome::new(
        booted && delivered && leaks == 0 && gendigs >= 13,
        format!(
            "{leaks} 4-byte runs of the {len}-byte key on the bus; booted {booted}, {} reading(s) delivered",
            run.published
        ),
        Evidence::measured(format!(
            "slot 8 read as 13 encrypted blocks ({gendigs} GenDig, {reads} Read commands, each block XOR a one-time key from Nonce + GenDig); {} bus events; the IO key itself never crosses the bus",
            t.events.len()
        )),
    )
}
