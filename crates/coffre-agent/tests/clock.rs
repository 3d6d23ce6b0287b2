//! The publisher's timing on a fake clock: reading interval and the
//! reconnect backoff, with no broker listening (real TCP refusals on a free
//! loopback port) and no real waiting.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coffre_agent::clock::ManualClock;
use coffre_agent::{Backoff, BrokerAddr, Event, Measurement, Publisher, PublisherOptions, Reading};
use common::*;

#[test]
fn readings_every_interval_and_backoff_doubling_to_its_cap_on_a_fake_clock() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (key, cert) = pki.issue_new_key("m5go");
    let identity = pki.identity(
        &cert,
        coffre_agent::KeySource::lab_from_pkcs8(&key).unwrap(),
    );
    let mut opts = PublisherOptions::new(BrokerAddr::new("127.0.0.1", free_port()), "m5go");
    opts.interval = Duration::from_secs(2);
    opts.backoff = Backoff {
        initial: Duration::from_millis(500),
        max: Duration::from_secs(4),
        multiplier: 2.0,
        jitter: 0.0,
    };
    let mut n = 0.0;
    let sensors = move || {
        n += 1.0;
        Ok(Measurement {
            temperature_c: 20.0 + n,
            humidity_pct: 50.0,
            pressure_hpa: 1000.0,
        })
    };
    let clock = Arc::new(ManualClock::new());
    let mut p = Publisher::new(opts, identity, sensors)
        .unwrap()
        .with_clock(clock.clone());
    let stop = AtomicBool::new(false);
    let mut delays = Vec::new();
    let mut attempts = Vec::new();
    let mut queued = Vec::new();
    let summary = p
        .run(&stop, |e| match e {
            Event::Connecting { attempt, .. } => attempts.push((*attempt, clock.elapsed())),
            Event::Reconnecting { delay, .. } => {
                delays.push(*delay);
                if delays.len() == 5 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
            Event::Queued { seq, .. } => queued.push((*seq, clock.elapsed())),
            _ => {}
        })
        .unwrap();
    let ms = Duration::from_millis;
    assert_eq!(delays, [ms(500), ms(1000), ms(2000), ms(4000), ms(4000)]);
    // Each attempt starts when its backoff ends (to the 100 ms the loop
    // checks its stop flag at).
    let starts: Vec<Duration> = attempts.iter().map(|a| a.1).collect();
    let want = [0, 500, 1500, 3500, 7500];
    for (got, want) in starts.iter().zip(want) {
        assert!(
            *got >= ms(want) && *got < ms(want + 100),
            "attempt at {got:?}, expected {want} ms"
        );
    }
    assert_eq!(
        attempts.iter().map(|a| a.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // A reading every 2 s of the fake clock, whatever the broker does.
    let seqs: Vec<u64> = queued.iter().map(|q| q.0).collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    for (i, (_, at)) in queued.iter().enumerate() {
        assert_eq!(*at, Duration::from_secs(2 * i as u64));
    }
    // All wait in the queue, stamped by the fake wall clock.
    assert_eq!(
        (summary.taken, summary.published, summary.pending),
        (4, 0, 4)
    );
    let first = Reading::from_json(p.queue().front().unwrap().payload.as_bytes()).unwrap();
    assert_eq!(first.ts, "2025-05-01T12:00:00.000000Z");
    assert_eq!(first.temperature_c, 21.0);
}
