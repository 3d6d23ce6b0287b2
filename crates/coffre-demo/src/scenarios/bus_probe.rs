//! A probe on the I2C bus during boot and handshake: in lab mode it reads
//! the key; in offload mode no byte of the key crosses the bus.

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::{LAB_ID, OFFLOAD_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "bus-probe",
    proves: &[Threat::Repudiation, Threat::ElevationOfPrivilege],
    cases: &[
        Case::new(NAME, Mode::Lab, "the key's bytes are on the I2C bus", lab),
        Case::new(NAME, Mode::Offload, "no key byte on the I2C bus", offload),
    ],
};

const NAME: &str = "bus probe during boot and handshake";

fn lab(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let dev = Device::boot(cx.lab, LAB_ID, case.mode, LAB_ID, true);
    let board = dev.board.clone();
    let _ = publish_once(dev, LAB_ID, cx.lab.broker_addr, |_| {});
    let t = board.bus.take_transcript();
    let slot8 = board.with_chip(|ch| ch.nv().slot(8).to_vec());
    let blocks: Vec<&[u8]> = slot8
        .chunks(32)
        .filter(|b| b.iter().any(|&x| x != 0))
        .collect();
    let seen = blocks.iter().filter(|b| t.contains(b)).count();
    let len = u16::from_be_bytes([slot8[0], slot8[1]]);
    Outcome::new(
        seen == blocks.len() && !blocks.is_empty(),
        format!("{seen} of {} key blocks seen on the bus", blocks.len()),
        Evidence::measured(format!(
            "a probe on SDA reads slot 8 in 13 block reads: length {len:#06x}, DER 30 81 … in clear; {} bus events",
            t.events.len()
        )),
    )
}

fn offload(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, true);
    let board = dev.board.clone();
    let run = publish_once(dev, OFFLOAD_ID, cx.lab.broker_addr, |_| {});
    let t = board.bus.take_transcript();
    let scalar = board.with_chip(|ch| ch.nv().slot(0)[4..36].to_vec());
    let leaks = scalar.windows(4).filter(|w| t.contains(w)).count();
    let signs = t.to_text().matches("command Sign").count();
    Outcome::new(
        leaks == 0 && signs > 0 && run.error.is_none(),
        format!("{leaks} private-key bytes on the bus ({signs} Sign commands)"),
        Evidence::measured(format!(
            "the handshake signature was made by the chip: {signs} Sign command(s), digest in, r‖s out; no 4-byte run of the key in {} bus events",
            t.events.len()
        )),
    )
}
