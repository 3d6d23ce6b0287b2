//! The broker restarts while a device publishes: with QoS 1 and the
//! device's durable queue nothing is lost.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coffre_agent::{EnvSensors, Event, Publisher, PublisherOptions, SubscriberOptions};

use crate::device::{wait_until, Device, Listening};
use crate::prelude::*;
use crate::setup::{OFFLOAD_ID, SUB_ID};

pub(crate) const SCENARIO: Scenario = Scenario {
    id: "broker-restart",
    proves: &[Threat::DenialOfService],
    cases: &[Case::new(
        "broker restart mid-stream",
        Mode::Offload,
        "all 30 readings arrive (QoS 1 + queue)",
        run,
    )],
};

/// Readings published across the restart.
const READINGS: u64 = 30;

fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
    let n = READINGS;
    let queue = cx.lab.dir.join("queue-restart");
    let _ = std::fs::remove_dir_all(&queue);
    let sub = Device::boot(cx.lab, SUB_ID, Mode::Offload, SUB_ID, false);
    let Some(sub_identity) = sub.identity else {
        return Outcome::not_tried("subscriber did not boot");
    };
    let mut so = SubscriberOptions::new(cx.lab.broker_addr.into(), "m5stack");
    so.persistent_session = true;
    so.max_messages = None;
    so.backoff.max = Duration::from_millis(200);
    let received: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let listening = {
        let received = received.clone();
        Listening::start(so, sub_identity, (), move |_, ev| {
            if let Event::Received(d) = ev {
                if let Some(r) = d.reading.as_ref().filter(|r| r.device == OFFLOAD_ID) {
                    if let Ok(mut v) = received.lock() {
                        v.push(r.seq);
                    }
                }
            }
        })
    };
    listening.wait_subscribed(Duration::from_secs(5));
    let published = Arc::new(Mutex::new(0u64));
    let pub_thread = {
        let dev = Device::boot(cx.lab, OFFLOAD_ID, case.mode, OFFLOAD_ID, false);
        let addr = cx.lab.broker_addr;
        let published = published.clone();
        let queue = queue.clone();
        std::thread::spawn(move || {
            let Some(identity) = dev.identity else {
                return Err("did not boot".to_string());
            };
            let mut o = PublisherOptions::new(addr.into(), OFFLOAD_ID);
            o.count = Some(n);
            o.interval = Duration::from_millis(30);
            o.queue_dir = Some(queue);
            o.backoff.max = Duration::from_millis(200);
            let sensors = EnvSensors::new(dev.board.bus.clone(), dev.board.delay());
            let mut p = Publisher::new(o, identity, sensors).map_err(|e| e.to_string())?;
            p.run(&AtomicBool::new(false), |ev| {
                if let Event::Published { .. } = ev {
                    if let Ok(mut x) = published.lock() {
                        *x += 1;
                    }
                }
            })
            .map_err(|e| e.to_string())
        })
    };
    // Restart the broker once a few readings are through.
    wait_until(Duration::from_secs(10), || {
        published.lock().map(|x| *x).unwrap_or(0) >= 5
    });
    let restart = cx.lab.broker.restart();
    let pub_result = pub_thread
        .join()
        .unwrap_or_else(|_| Err("publisher panicked".into()));
    wait_until(Duration::from_secs(10), || {
        received.lock().map(|v| v.len() as u64).unwrap_or(0) >= n
    });
    let _ = listening.finish();
    let mut got = received.lock().map(|v| v.clone()).unwrap_or_default();
    got.sort_unstable();
    got.dedup();
    let first = got.first().copied().unwrap_or(0);
    let missing = (first..first + n)
        .filter(|s| got.binary_search(s).is_err())
        .count();
    Outcome::new(
        restart.is_ok() && pub_result.is_ok() && got.len() as u64 == n && missing == 0,
        format!(
            "{} of {n} distinct readings received, {missing} missing",
            got.len()
        ),
        Evidence::measured(format!(
            "broker restarted after 5 PUBACKs ({}); publisher: {}",
            if restart.is_ok() {
                "ok"
            } else {
                "restart failed"
            },
            match &pub_result {
                Ok(s) => format!("{} published over {} sessions", s.published, s.connections),
                Err(e) => e.clone(),
            }
        )),
    )
}
