//! Lab scenarios 3 and 4: a valid chip opens a mutual-TLS session; its
//! readings reach the subscriber, all of them, in order; the subscriber's
//! SUBSCRIBE is acknowledged. A family: the publisher → subscriber rows are
//! reported as `pub-sub`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coffre_agent::{Event, SeqStatus, SubscriberOptions, Subscriber};

use crate::device::{publish_once, Device, Listening};
use crate::prelude::*;
use crate::setup::{LAB_ID, OFFLOAD_ID, SUB_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "valid-chip",
    proves: &[Threat::Spoofing, Threat::Repudiation],
    cases: &[
        Case::new(MUTUAL, Mode::Lab, MUTUAL_EXPECTED, mutual_tls),
        Case::new(FLOW, Mode::Lab, FLOW_EXPECTED, pub_sub).reported_as("pub-sub"),
        Case::new(MUTUAL, Mode::Offload, MUTUAL_EXPECTED, mutual_tls),
        Case::new(FLOW, Mode::Offload, FLOW_EXPECTED, pub_sub).reported_as("pub-sub"),
        Case::new(
            "3. valid chip: SUBSCRIBE acknowledged",
            Mode::Offload,
            "SUBACK granted for m5go/env",
            subscribe,
        ),
    ],
};

const MUTUAL: &str = "3. valid chip: mutual TLS";
const MUTUAL_EXPECTED: &str = "handshake succeeds, session opens";
const FLOW: &str = "4. publisher → subscriber";
const FLOW_EXPECTED: &str = "5 readings arrive, in order";
/// Readings sent from publisher to subscriber.
const READINGS: u64 = 5;

fn publisher_id(mode: Mode) -> &'static str {
    match mode {
        Mode::Lab => LAB_ID,
        Mode::Offload | Mode::Any => OFFLOAD_ID,
    }
}

fn mutual_tls(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let id = publisher_id(case.mode);
    let dev = Device::boot(cx.lab, id, case.mode, id, false);
    let run = publish_once(dev, id, cx.lab.broker_addr, |_| {});
    let ok = !run.connected.is_empty() && run.error.is_none();
    Outcome::new(
        ok,
        if ok { "connected" } else { "refused" },
        Evidence::measured(
            run.connected
                .first()
                .cloned()
                .or(run.error)
                .unwrap_or_default(),
        ),
    )
}

/// (device, seq, status, latency) of each reading received.
type Received = Vec<(String, u64, SeqStatus, Option<Duration>)>;

fn pub_sub(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let id = publisher_id(case.mode);
    let sub = Device::boot(cx.lab, SUB_ID, Mode::Offload, SUB_ID, false);
    let Some(sub_identity) = sub.identity else {
        return Outcome::not_tried(format!(
            "subscriber did not boot: {:?}",
            sub.boot_error.map(|e| e.to_string())
        ));
    };
    let mut sopts = SubscriberOptions::new(cx.lab.broker_addr.into(), SUB_ID);
    sopts.max_messages = Some(READINGS);
    let listening = Listening::start(sopts, sub_identity, Received::new(), |seqs, ev| {
        if let Event::Received(d) = ev {
            if let (Some(r), Some(st)) = (&d.reading, d.status) {
                seqs.push((r.device.clone(), r.seq, st, d.latency));
            }
        }
    });
    listening.wait_subscribed(Duration::from_secs(5));
    let dev = Device::boot(cx.lab, id, case.mode, id, false);
    let run = publish_once(dev, id, cx.lab.broker_addr, |o| o.count = Some(READINGS));
    listening.wait_finished(Duration::from_secs(5));
    let seqs = match listening.finish() {
        Ok(s) => s,
        Err(e) => return Outcome::not_tried(format!("subscriber error: {e}")),
    };
    let mine: Vec<_> = seqs.iter().filter(|s| s.0 == id).collect();
    let in_order = mine
        .iter()
        .enumerate()
        .all(|(i, s)| i == 0 || matches!(s.2, SeqStatus::InOrder));
    let lat: Vec<f64> = mine
        .iter()
        .filter_map(|s| s.3)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<f64>() / lat.len() as f64
    };
    Outcome::new(
        mine.len() as u64 == READINGS && in_order,
        format!(
            "{} of {READINGS} received{}",
            mine.len(),
            if in_order { ", in order" } else { ", OUT OF ORDER" }
        ),
        Evidence::default().with(
            Source::Subscriber,
            format!(
                "seq {:?}, mean latency {mean:.1} ms; PUBACKs {:?}",
                mine.iter().map(|s| s.1).collect::<Vec<_>>(),
                run.pubacks.iter().map(|p| p.1).collect::<Vec<_>>()
            ),
        ),
    )
}

fn subscribe(cx: &mut Ctx<'_>, _case: &Case) -> Outcome {
    let mark = cx.log_mark();
    let dev = Device::boot(cx.lab, SUB_ID, Mode::Offload, SUB_ID, false);
    let Some(identity) = dev.identity else {
        return Outcome::not_tried("subscriber did not boot");
    };
    let o = SubscriberOptions::new(cx.lab.broker_addr.into(), SUB_ID);
    let mut reason = None;
    let stop = AtomicBool::new(false);
    let r = Subscriber::new(o, identity).and_then(|mut s| {
        s.run(&stop, |ev| {
            if let Event::Subscribed { reason: r, .. } = ev {
                reason = Some(r.to_string());
                stop.store(true, Ordering::SeqCst);
            }
        })
    });
    let line = cx.wait_log(mark, "m5go/env");
    Outcome::new(
        reason.as_deref().is_some_and(|r| r.contains("Granted")),
        reason
            .clone()
            .unwrap_or_else(|| format!("no SUBACK: {:?}", r.err().map(|e| e.to_string()))),
        Evidence::measured(format!("SUBACK {}", reason.unwrap_or_default()))
            .with(Source::Broker, line.unwrap_or_default()),
    )
}
