//! A certified publisher writes outside its ACL: MQTT 5 PUBACK 0x87.

use crate::device::{publish_once, Device};
use crate::prelude::*;
use crate::setup::OFFLOAD_ID;

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "acl",
    proves: &[Threat::ElevationOfPrivilege],
    cases: &[Case::new(
        "publish outside the ACL",
        Mode::Offload,
        "MQTT 5 PUBACK 0x87 Not authorized",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, false);
    let run = publish_once(dev, OFFLOAD_ID, cx.lab.broker_addr, |o| {
        o.topic = "factory/secrets".into()
    });
    let line = cx.wait_log(mark, "Denied PUBLISH");
    let reason = run.pubacks.first().map(|p| p.1);
    let mut evidence = Evidence::measured(format!(
        "PUBACK reason 0x{:02X} (Not authorized) for topic factory/secrets",
        reason.unwrap_or(0)
    ));
    if let Some(l) = line {
        evidence = evidence.with(Source::Broker, l);
    }
    Outcome::new(
        reason == Some(0x87),
        match reason {
            Some(r) => format!("PUBACK 0x{r:02X}"),
            None => format!("no PUBACK: {}", run.error.unwrap_or_default()),
        },
        evidence,
    )
}
