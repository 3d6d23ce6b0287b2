//! A blank chip (config and data zones unlocked): refused at boot step 4,
//! before any connection.

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::OFFLOAD_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "unlocked-chip",
    proves: &[Threat::ElevationOfPrivilege],
    cases: &[Case::new(
        "unlocked chip",
        Mode::Any,
        "refused at boot (step 4)",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let dev = Device::boot(cx.lab, "blank", case.mode, OFFLOAD_ID, false);
    let err = dev
        .boot_error
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let step4 = dev
        .boot_log
        .iter()
        .find(|l| l.starts_with("[4/5]"))
        .cloned()
        .unwrap_or_default();
    let run = publish_once(dev, OFFLOAD_ID, cx.lab.broker_addr, |_| {});
    let new_conn = cx.new_connection_since(mark);
    let pass = err.contains("not locked") && run.connected.is_empty() && !new_conn;
    Outcome::new(
        pass,
        if pass {
            "refused before any connection"
        } else {
            "NOT refused"
        },
        Evidence::default()
            .with(Source::Boot, step4)
            .with(Source::Client, err),
    )
}
