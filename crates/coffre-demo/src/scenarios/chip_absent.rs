//! Lab scenario 1: the chip does not answer; the device stops at boot
//! step 1 and nothing reaches the broker.

use std::time::Duration;

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::{self, OFFLOAD_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "chip-absent",
    proves: &[Threat::DenialOfService],
    cases: &[Case::new(
        "1. chip disconnected",
        Mode::Any,
        "stop at boot; no connection reaches the broker",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let (board, drv) = match setup::open(&cx.lab.chip(OFFLOAD_ID)) {
        Ok(x) => x,
        Err(e) => return Outcome::not_tried(format!("setup failed: {e}")),
    };
    board.bus.set_present(0x35, false);
    let dev = Device::boot_on(cx.lab, board, drv, case.mode, OFFLOAD_ID);
    let run = publish_once(dev, OFFLOAD_ID, cx.lab.broker_addr, |_| {});
    std::thread::sleep(Duration::from_millis(100));
    let new_conn = cx.new_connection_since(mark);
    let err = run.error.unwrap_or_default();
    Outcome::new(
        err.contains("not answering") && !new_conn && run.connected.is_empty(),
        if new_conn {
            "a connection reached the broker"
        } else {
            "stopped at step 1; broker log shows no new connection"
        },
        Evidence::client(err),
    )
}
