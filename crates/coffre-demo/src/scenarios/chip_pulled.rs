//! The chip is pulled out while the device publishes: publishing stops
//! with a clear error.

use crate::device::{publish, Device};
use crate::prelude::*;
use crate::setup::OFFLOAD_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "chip-pulled",
    proves: &[Threat::DenialOfService],
    cases: &[Case::new(
        "chip pulled out while connected",
        Mode::Offload,
        "publishing stops with a clear error",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, false);
    let bus = dev.board.bus.clone();
    let run = publish(
        dev,
        OFFLOAD_ID,
        cx.lab.broker_addr,
        |o| o.count = Some(50),
        &std::sync::atomic::AtomicBool::new(false),
        |seq| {
            if seq == 3 {
                bus.set_present(0x35, false);
            }
        },
    );
    let err = run.error.clone().unwrap_or_default();
    Outcome::new(
        err.contains("not answering") && run.pubacks.len() >= 3 && run.pubacks.len() < 50,
        format!("{} readings published, then stopped", run.pubacks.len()),
        Evidence::client(err).with(
            Source::Session,
            run.disconnects.last().cloned().unwrap_or_default(),
        ),
    )
}
