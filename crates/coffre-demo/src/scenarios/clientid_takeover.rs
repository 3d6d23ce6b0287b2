//! A device with a valid certificate connects with another device's client
//! id. Mosquitto used to close the other's session ("already connected,
//! closing old connection"); the broker binds the client id to the
//! certificate, so the impostor gets its own id and the victim stays.

use std::time::Duration;

use crate::device::{publish_once, Device, Watched};
use crate::prelude::*;
use crate::setup::{OFFLOAD_ID, SUB_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "clientid-takeover",
    proves: &[Threat::Spoofing, Threat::DenialOfService],
    cases: &[Case::new(
        "another device's client id",
        Mode::Offload,
        "impostor gets own id; victim stays",
        run,
    )],
};

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let victim = match Watched::start(cx.lab, SUB_ID, SUB_ID) {
        Ok(w) => w,
        Err(e) => return Outcome::not_tried(e),
    };
    if !victim.wait(Duration::from_secs(5), |w| w.subscribed) {
        return Outcome::not_tried(format!("{SUB_ID} did not subscribe"));
    }
    let mark = cx.log_mark();
    // m5go's chip and certificate, asking for the client id "m5stack".
    let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, false);
    let run = publish_once(dev, SUB_ID, cx.lab.broker_addr, |_| {});
    let line = cx.wait_log(mark, &format!("u'{OFFLOAD_ID}'"));
    // The impostor's reading reaches the victim: its session is alive.
    let alive = victim.wait(Duration::from_secs(3), |w| !w.readings.is_empty());
    let takeover = cx
        .log_since(mark)
        .into_iter()
        .find(|l| l.contains("already connected"));
    let (seen, _) = victim.finish();
    let own_id = line
        .as_deref()
        .is_some_and(|l| l.contains(&format!(" as {OFFLOAD_ID} ")));
    let cut = seen.connected != 1 || !seen.disconnects.is_empty();
    Outcome::new(
        !run.connected.is_empty() && own_id && takeover.is_none() && alive && !cut,
        match (&takeover, cut) {
            (Some(_), _) | (None, true) => "the victim was EVICTED".to_string(),
            (None, false) if own_id => format!("impostor is {OFFLOAD_ID}; victim kept"),
            (None, false) => "impostor not seen under its own id".to_string(),
        },
        Evidence::broker(
            takeover
                .or(line)
                .unwrap_or_else(|| "(no connection line)".into()),
        )
        .with(
            Source::Subscriber,
            format!(
                "{SUB_ID}: {} session(s), {} disconnection(s), {} reading(s) received after the impostor asked for its client id",
                seen.connected,
                seen.disconnects.len(),
                seen.readings.len()
            ),
        ),
    )
}
