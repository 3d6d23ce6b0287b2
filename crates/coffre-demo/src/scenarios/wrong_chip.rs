//! Lab scenario 2: a chip whose key does not match the certificate; the
//! broker checks the handshake signature, logs `bad signature` and closes.

use std::time::Duration;

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::{LAB_ID, OFFLOAD_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "wrong-chip",
    proves: &[Threat::Spoofing, Threat::Repudiation],
    cases: &[
        Case::new(NAME, Mode::Lab, EXPECTED, run),
        Case::new(NAME, Mode::Offload, EXPECTED, run),
    ],
};

const NAME: &str = "2. wrong chip (key ≠ certificate)";
const EXPECTED: &str = "broker logs 'bad signature', closes";

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let mark = cx.log_mark();
    // The wrong chips: another off-chip key in slot 8, another factory key
    // in slot 0; each presents the right device's certificate.
    let (chip, id) = match case.mode {
        Mode::Lab => ("wrong-lab", LAB_ID),
        Mode::Offload | Mode::Any => ("wrong", OFFLOAD_ID),
    };
    let dev = Device::boot(cx.lab, chip, case.mode, id, false);
    let run = publish_once(dev, id, cx.lab.broker_addr, |o| {
        o.preflight = false;
        o.backoff.max = Duration::from_millis(50);
    });
    let line = cx.wait_log(mark, "bad signature");
    Outcome::new(
        line.is_some() && run.connected.is_empty(),
        if run.connected.is_empty() {
            "handshake refused, no MQTT session"
        } else {
            "CONNECTED with the wrong key"
        },
        Evidence::broker(line.unwrap_or_else(|| "(no 'bad signature' line)".into()))
            .with(Source::Client, run.error.unwrap_or_default()),
    )
}
