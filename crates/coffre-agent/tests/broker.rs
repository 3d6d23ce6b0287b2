//! The agent against a real Mosquitto 2.0 with mutual TLS, on emulated
//! Trust&GO boards. Every test starts its own broker on a free loopback
//! port in its own directory.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use coffre_agent::mqtt::{Client, ClientOptions};
use coffre_agent::{
    one_shot, Backoff, Delivery, Error, Event, Identity, MqttVersion, OneShotOptions, Publisher,
    PublisherOptions, QoS, ReasonCode, SeqStatus, Subscriber, SubscriberOptions, SubscriberStats,
};
use common::*;

/// What the tests look at in an [`Event`].
#[derive(Debug, Clone, PartialEq)]
enum Ev {
    Connected(String),
    Subscribed(ReasonCode),
    Queued(u64),
    Published(u64, ReasonCode),
    Received(Delivery),
    Disconnected(Option<String>),
    Reconnecting,
    Other,
}

fn ev(e: &Event) -> Ev {
    match e {
        Event::Connected { tls_version, .. } => Ev::Connected(tls_version.clone()),
        Event::Subscribed { reason, .. } => Ev::Subscribed(*reason),
        Event::Queued { seq, .. } => Ev::Queued(*seq),
        Event::Published {
            seq, puback_reason, ..
        } => Ev::Published(*seq, *puback_reason),
        Event::Received(d) => Ev::Received(d.clone()),
        Event::Disconnected { error } => Ev::Disconnected(error.as_ref().map(|e| e.to_string())),
        Event::Reconnecting { .. } => Ev::Reconnecting,
        _ => Ev::Other,
    }
}

/// How long the broker may take to write a log line.
const LOG_WAIT: Duration = Duration::from_secs(5);

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
        multiplier: 2.0,
        jitter: 0.5,
    }
}

fn publisher_options(broker: &Broker, id: &str) -> PublisherOptions {
    let mut o = PublisherOptions::new(broker.addr(), id);
    o.interval = Duration::from_millis(10);
    o.backoff = fast_backoff();
    o.connect_timeout = Duration::from_secs(5);
    o.timeout = Duration::from_secs(5);
    o
}

/// Run a publisher to its end, returning its events.
fn run_publisher<S: coffre_agent::SensorSource>(
    p: &mut Publisher<S>,
) -> (Result<coffre_agent::PublisherSummary, Error>, Vec<Ev>) {
    let mut events = Vec::new();
    let stop = AtomicBool::new(false);
    let r = p.run(&stop, |e| events.push(ev(e)));
    (r, events)
}

/// The monitor ("M5Stack" of the lab) on its own thread.
struct Monitor {
    stop: Arc<AtomicBool>,
    rx: Receiver<Ev>,
    handle: JoinHandle<Result<SubscriberStats, Error>>,
}

impl Monitor {
    fn start(pki: &Pki, broker: &Broker, persistent: bool) -> Monitor {
        let mut opts = SubscriberOptions::new(broker.addr(), MONITOR_ID);
        opts.persistent_session = persistent;
        opts.backoff = fast_backoff();
        opts.connect_timeout = Duration::from_secs(5);
        let mut sub = Subscriber::new(opts, pki.monitor_identity()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            sub.run(&s, |e| {
                let _ = tx.send(ev(e));
            })
        });
        let m = Monitor { stop, rx, handle };
        // Wait for the SUBACK.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match m
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Ev::Subscribed(r)) => {
                    assert_eq!(r, ReasonCode::GRANTED_QOS_1, "SUBACK");
                    return m;
                }
                Ok(_) => {}
                Err(e) => panic!("the monitor did not subscribe: {e:?}"),
            }
        }
    }

    /// Deliveries until `device` reached `last_seq`.
    fn collect(&self, device: &str, last_seq: u64, within: Duration) -> Vec<Delivery> {
        let deadline = Instant::now() + within;
        let mut got = Vec::new();
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(Ev::Received(d)) => {
                    let done = d
                        .reading
                        .as_ref()
                        .is_some_and(|r| r.device == device && r.seq >= last_seq);
                    got.push(d);
                    if done {
                        return got;
                    }
                }
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let seqs: Vec<_> = got
                        .iter()
                        .filter_map(|d| d.reading.as_ref().map(|r| r.seq))
                        .collect();
                    panic!("reading {last_seq} of {device} never arrived; got {seqs:?}");
                }
            }
        }
    }

    fn stop(self) -> SubscriberStats {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap().unwrap()
    }
}

fn seqs_of(ds: &[Delivery], device: &str) -> Vec<u64> {
    ds.iter()
        .filter_map(|d| d.reading.as_ref())
        .filter(|r| r.device == device)
        .map(|r| r.seq)
        .collect()
}

fn connected_versions(events: &[Ev]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Connected(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

fn published(events: &[Ev]) -> Vec<(u64, ReasonCode)> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Published(s, r) => Some((*s, *r)),
            _ => None,
        })
        .collect()
}

fn publish_in_modes(chip_mode: bool) {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let monitor = Monitor::start(&pki, &broker, false);
    let board = board();
    let id = if chip_mode { CHIP_ID } else { LAB_ID };
    let queue = dir.path().join("queue");
    for (tls13, version) in [(false, "TLSv1.2"), (true, "TLSv1.3")] {
        let (key, cert) = if chip_mode {
            chip_device(&pki, &board, id)
        } else {
            lab_device(&pki, &board, id)
        };
        assert_eq!(key.mode(), if chip_mode { "offload" } else { "lab" });
        let mut opts = publisher_options(&broker, id);
        opts.count = Some(5);
        opts.tls13 = tls13;
        opts.queue_dir = Some(queue.clone());
        let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
        let (r, events) = run_publisher(&mut p);
        let summary = r.unwrap();
        assert_eq!(
            (summary.taken, summary.published, summary.pending),
            (5, 5, 0)
        );
        assert_eq!(connected_versions(&events), vec![version.to_string()]);
        let first = if tls13 { 6 } else { 1 };
        let acks = published(&events);
        assert_eq!(
            acks.iter().map(|a| a.0).collect::<Vec<_>>(),
            (first..first + 5).collect::<Vec<_>>(),
            "sequence numbers continue across publisher runs (queue directory)"
        );
        assert!(acks.iter().all(|a| a.1 == ReasonCode::SUCCESS), "{acks:?}");
        assert_eq!(events.last(), Some(&Ev::Disconnected(None)), "clean end");
    }
    let got = monitor.collect(id, 10, Duration::from_secs(10));
    assert_eq!(seqs_of(&got, id), (1..=10).collect::<Vec<_>>());
    let statuses: Vec<_> = got.iter().filter_map(|d| d.status).collect();
    assert_eq!(statuses[0], SeqStatus::First);
    assert!(
        statuses[1..].iter().all(|s| *s == SeqStatus::InOrder),
        "{statuses:?}"
    );
    let r = got[0].reading.as_ref().unwrap();
    assert!(r.temperature_c > -40.0 && r.temperature_c < 125.0, "{r:?}");
    assert!(r.humidity_pct >= 0.0 && r.humidity_pct <= 100.0, "{r:?}");
    assert!(r.pressure_hpa > 300.0 && r.pressure_hpa < 1100.0, "{r:?}");
    let stats = monitor.stop();
    let s = &stats.publishers[id];
    assert_eq!((s.unique, s.duplicates, s.missing), (10, 0, 0));
    // Every reading's latency was measured (how long it is is the bench's).
    assert_eq!(s.latency.count, 10, "{:?}", s.latency);
    assert!(s.latency.min <= s.latency.max, "{:?}", s.latency);
    assert!(
        broker.wait_log_count(&format!("Client {id} disconnected."), 2, LOG_WAIT),
        "two clean DISCONNECTs expected in:\n{}",
        broker.log()
    );
}

#[test]
fn lab_key_from_slot8_publishes_over_tls12_and_tls13_and_the_monitor_gets_all_in_order() {
    publish_in_modes(false);
}

#[test]
fn chip_signs_the_handshake_over_tls12_and_tls13_and_the_monitor_gets_all_in_order() {
    publish_in_modes(true);
}

/// The lab's "wrong chip" scenario: the certificate names another key.
#[test]
fn certificate_for_another_key_is_refused_by_preflight_and_then_by_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let board = board();
    // The chip's own certificate is not used: this one carries a key made
    // elsewhere, as a chip swapped for another would present.
    let (_other_key, foreign_cert) = pki.issue_new_key(CHIP_ID);
    for tls13 in [false, true] {
        let (key, _cert) = chip_device(&pki, &board, CHIP_ID);
        let mut opts = publisher_options(&broker, CHIP_ID);
        opts.tls13 = tls13;
        opts.count = Some(1);
        let e = Publisher::new(
            opts.clone(),
            pki.identity(&foreign_cert, key),
            sensors(&board),
        )
        .unwrap_err();
        assert!(matches!(e, Error::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not match the chip key"), "{e}");

        // Preflight skipped: the handshake is tried, and refused.
        let (key, _cert) = chip_device(&pki, &board, CHIP_ID);
        let config = coffre_agent::client_config(
            pki.ca_pem.as_bytes(),
            foreign_cert.as_bytes(),
            key,
            &coffre_agent::TlsOptions {
                tls13,
                ..Default::default()
            },
        )
        .unwrap();
        let copts = ClientOptions::new(broker.addr(), CHIP_ID);
        let e = Client::connect(&copts, config).unwrap_err();
        assert!(e.to_string().contains("wrong chip"), "{e}");
        assert!(
            matches!(e, Error::HandshakeRefused { by_alert: true, .. }),
            "{e:?}"
        );
        assert!(!e.is_retryable());
    }
    // Mosquitto 2.0 with OpenSSL 3 logs the refusal, then drops the socket.
    assert!(
        broker.wait_log_count(
            "OpenSSL Error[0]: error:0A00007B:SSL routines::bad signature",
            2,
            LOG_WAIT
        ),
        "{}",
        broker.log()
    );
    assert!(
        broker.wait_log_count(
            "Client <unknown> disconnected: Protocol error.",
            2,
            LOG_WAIT
        ),
        "{}",
        broker.log()
    );
    assert!(!broker.log().contains("New client connected"));
}

/// QoS 1 + the durable queue + a persistent monitor session: a broker
/// restart in the middle of a stream loses no reading.
#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut broker = Broker::start(&pki, &BrokerConfig::default());
    let monitor = Monitor::start(&pki, &broker, true);
    let board = board();
    let (key, cert) = chip_device(&pki, &board, CHIP_ID);
    let mut opts = publisher_options(&broker, CHIP_ID);
    opts.count = Some(40);
    opts.interval = Duration::from_millis(25);
    opts.queue_dir = Some(dir.path().join("queue"));
    let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
    let (tx, rx) = channel();
    let publisher = std::thread::spawn(move || {
        let stop = AtomicBool::new(false);
        let r = p.run(&stop, |e| {
            let _ = tx.send(ev(e));
        });
        (r, p.queue().len())
    });
    // Restart the broker once ten readings are through.
    let mut events = Vec::new();
    loop {
        let e = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let tenth = matches!(e, Ev::Published(10, _));
        events.push(e);
        if tenth {
            break;
        }
    }
    broker.restart();
    let (r, pending) = publisher.join().unwrap();
    events.extend(rx.try_iter());
    let summary = r.unwrap();
    assert_eq!((summary.taken, summary.published, pending), (40, 40, 0));
    assert!(summary.connections >= 2, "{summary:?}");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ev::Disconnected(Some(_)))),
        "the restart was seen: {events:?}"
    );
    let mut acked: Vec<u64> = published(&events).iter().map(|a| a.0).collect();
    acked.dedup();
    assert_eq!(acked, (1..=40).collect::<Vec<_>>());

    let got = monitor.collect(CHIP_ID, 40, Duration::from_secs(20));
    let mut seqs = seqs_of(&got, CHIP_ID);
    seqs.dedup();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "in order, none lost");
    let stats = monitor.stop();
    let s = &stats.publishers[CHIP_ID];
    assert_eq!((s.unique, s.missing, s.last_seq), (40, 0, 40));
}

/// Readings taken while the broker is unreachable wait on disk; the next
/// run sends them first, then continues the sequence.
#[test]
fn publisher_restart_with_queued_readings_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let monitor = Monitor::start(&pki, &broker, false);
    let board = board();
    let queue = dir.path().join("queue");

    // Run 1: nothing listens where the device looks for its broker.
    let (key, cert) = lab_device(&pki, &board, LAB_ID);
    let mut opts = publisher_options(&broker, LAB_ID);
    opts.broker = coffre_agent::BrokerAddr::new("127.0.0.1", free_port());
    opts.count = Some(4);
    opts.queue_dir = Some(queue.clone());
    let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    let summary = p
        .run(&stop, |e| {
            let e = ev(e);
            if e == Ev::Queued(4) {
                stop.store(true, Ordering::SeqCst);
            }
            events.push(e);
        })
        .unwrap();
    assert_eq!(
        (summary.taken, summary.published, summary.pending),
        (4, 0, 4)
    );
    assert!(published(&events).is_empty());
    let refused = events.iter().find_map(|e| match e {
        Ev::Disconnected(Some(m)) => Some(m.clone()),
        _ => None,
    });
    let refused = refused.expect("a failed connection attempt");
    assert!(refused.contains("cannot reach broker"), "{refused}");
    assert!(refused.contains("is the broker running"), "{refused}");
    assert!(events.contains(&Ev::Reconnecting));
    drop(p);

    // Run 2: the right broker; two new readings after the four queued.
    let (key, cert) = lab_device(&pki, &board, LAB_ID);
    let mut opts = publisher_options(&broker, LAB_ID);
    opts.count = Some(2);
    opts.queue_dir = Some(queue.clone());
    let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
    assert_eq!(p.queue().len(), 4);
    let (r, events) = run_publisher(&mut p);
    let summary = r.unwrap();
    assert_eq!(
        (summary.taken, summary.published, summary.pending),
        (2, 6, 0)
    );
    let acked: Vec<u64> = published(&events).iter().map(|a| a.0).collect();
    assert_eq!(acked, (1..=6).collect::<Vec<_>>());

    let got = monitor.collect(LAB_ID, 6, Duration::from_secs(10));
    assert_eq!(seqs_of(&got, LAB_ID), (1..=6).collect::<Vec<_>>());
    monitor.stop();
    assert_eq!(
        std::fs::read_to_string(queue.join("acked")).unwrap().trim(),
        "6"
    );
    assert_eq!(
        std::fs::metadata(queue.join("queue.jsonl")).unwrap().len(),
        0
    );
}

/// The ACL allows the device `write m5go/env` only. MQTT 5 reports the
/// refusals as reason codes; MQTT 3.1.1 cannot.
#[test]
fn publishing_outside_the_acl_gets_0x87_under_mqtt5() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let board = board();
    for (version, publish_rc) in [
        (MqttVersion::V5, ReasonCode::NOT_AUTHORIZED),
        (MqttVersion::V311, ReasonCode::SUCCESS),
    ] {
        let (key, cert) = lab_device(&pki, &board, LAB_ID);
        let mut opts = publisher_options(&broker, LAB_ID);
        opts.topic = "m5go/other".into();
        opts.count = Some(1);
        opts.mqtt_version = version;
        let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
        let (r, events) = run_publisher(&mut p);
        r.unwrap();
        assert_eq!(published(&events), vec![(1, publish_rc)], "{version}");

        // Allowed topic, nobody subscribed: accepted, and MQTT 5 says so.
        let (key, cert) = lab_device(&pki, &board, LAB_ID);
        let config = coffre_agent::client_config(
            pki.ca_pem.as_bytes(),
            cert.as_bytes(),
            key,
            &Default::default(),
        )
        .unwrap();
        let mut copts = ClientOptions::new(broker.addr(), LAB_ID);
        copts.version = version;
        copts.keep_alive = Duration::from_secs(1);
        let mut c = Client::connect(&copts, config).unwrap();
        assert_eq!(c.session().keep_alive, Duration::from_secs(1));
        let out = c
            .publish("m5go/env", b"{}", QoS::AtLeastOnce, false)
            .unwrap();
        let expect = match version {
            MqttVersion::V5 => ReasonCode::NO_MATCHING_SUBSCRIBERS,
            MqttVersion::V311 => ReasonCode::SUCCESS,
        };
        assert_eq!(out.reason, expect, "{version}");
        // The device may not read its own topic. Mosquitto 2.0 grants the
        // subscription and applies "read" at delivery: nothing arrives.
        let reasons = c.subscribe(&[("m5go/env", QoS::AtLeastOnce)]).unwrap();
        assert_eq!(reasons, vec![ReasonCode::GRANTED_QOS_1], "{version}");
        c.publish("m5go/env", b"{}", QoS::AtLeastOnce, false)
            .unwrap();
        // Idle past 3/4 of the 1 s keep alive: poll sends PINGREQ itself.
        let pings = broker
            .log()
            .matches("Received PINGREQ from m5go-lab")
            .count();
        assert_eq!(c.poll(Duration::from_millis(1000)).unwrap(), None);
        assert!(broker.wait_log_count("Received PINGREQ from m5go-lab", pings + 1, LOG_WAIT));
        // An explicit PING is answered (the round trip it returns is a
        // figure, not a test).
        c.ping().unwrap();
        c.disconnect().unwrap();
    }
    assert!(broker.wait_log("Denied PUBLISH from m5go-lab", LOG_WAIT));
}

/// The lab's "chip disconnected" scenario, in both places it can happen.
#[test]
fn chip_removed_stops_the_publisher_with_a_clear_error_and_a_clean_disconnect() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());

    // While connected: the chip is checked before each reading.
    let board = board();
    let (key, cert) = chip_device(&pki, &board, CHIP_ID);
    let mut opts = publisher_options(&broker, CHIP_ID);
    opts.count = None;
    let mut p = Publisher::new(opts.clone(), pki.identity(&cert, key), sensors(&board)).unwrap();
    let stop = AtomicBool::new(false);
    let mut events = Vec::new();
    let e = p
        .run(&stop, |e| {
            let e = ev(e);
            if e == Ev::Published(2, ReasonCode::NO_MATCHING_SUBSCRIBERS) {
                board.bus.set_present(0x35, false);
            }
            events.push(e);
        })
        .unwrap_err();
    assert!(e.is_chip_gone(), "{e:?}");
    assert!(e.to_string().contains("secure element at 0x35"), "{e}");
    assert!(e.to_string().contains("publishing stopped"), "{e}");
    assert_eq!(published(&events).len(), 2);
    assert_eq!(events.last(), Some(&Ev::Disconnected(None)), "{events:?}");
    assert!(broker.wait_log(&format!("Client {CHIP_ID} disconnected."), LOG_WAIT));

    // At boot: no chip, no network connection at all.
    let board = common::board();
    let signer = coffre_agent::DriverSigner::new(driver(&board), 0);
    board.bus.set_present(0x35, false);
    let before = broker.log().matches("New connection").count();
    let e = Publisher::new(
        opts,
        pki.identity(&cert, coffre_agent::KeySource::chip(signer)),
        sensors(&board),
    )
    .unwrap_err();
    assert!(e.is_chip_gone(), "{e:?}");
    assert_eq!(broker.log().matches("New connection").count(), before);

    // Between configuration and handshake: the signer's error comes back
    // through rustls as the same condition.
    let board = common::board();
    let (key, cert) = chip_device(&pki, &board, CHIP_ID);
    let config = coffre_agent::client_config(
        pki.ca_pem.as_bytes(),
        cert.as_bytes(),
        key,
        &Default::default(),
    )
    .unwrap();
    board.bus.set_present(0x35, false);
    let e = Client::connect(&ClientOptions::new(broker.addr(), CHIP_ID), config).unwrap_err();
    assert!(e.is_chip_gone(), "{e:?}");
    assert!(!e.is_retryable());

    // A sensor unplugged stops the publisher the same way.
    let board = common::board();
    let (key, cert) = lab_device(&pki, &board, LAB_ID);
    let mut opts = publisher_options(&broker, LAB_ID);
    opts.count = None;
    let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
    let e = p
        .run(&stop, |e| {
            if matches!(ev(e), Ev::Published(1, _)) {
                board.bus.set_present(0x44, false);
            }
        })
        .unwrap_err();
    assert!(
        e.is_chip_gone() && e.to_string().contains("SHT30 at 0x44"),
        "{e}"
    );
}

/// A stop flag raised from outside (SIGINT/SIGTERM handler) ends both
/// programs with DISCONNECT and close_notify.
#[test]
fn stop_flag_ends_with_clean_disconnects_over_mqtt_311() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let board = board();
    let (key, cert) = chip_device(&pki, &board, CHIP_ID);
    let mut opts = publisher_options(&broker, CHIP_ID);
    opts.count = None;
    opts.mqtt_version = MqttVersion::V311;
    opts.tls13 = true;
    let mut p = Publisher::new(opts, pki.identity(&cert, key), sensors(&board)).unwrap();
    let stop = AtomicBool::new(false);
    let summary = p
        .run(&stop, |e| {
            if matches!(ev(e), Ev::Published(3, _)) {
                stop.store(true, Ordering::SeqCst);
            }
        })
        .unwrap();
    assert_eq!(summary.published, 3);
    assert!(broker.wait_log(&format!("Client {CHIP_ID} disconnected."), LOG_WAIT));
    let log = broker.log();
    assert!(log.contains(&format!("as {CHIP_ID} (p2, c1, k30")), "{log}");
}

/// The benchmark helper: connect, one QoS 1 publish, clean disconnect.
#[test]
fn one_shot_over_tls12_and_tls13() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let board = board();
    for tls13 in [false, true] {
        let (key, cert) = lab_device(&pki, &board, LAB_ID);
        let tls = coffre_agent::client_config(
            pki.ca_pem.as_bytes(),
            cert.as_bytes(),
            key,
            &coffre_agent::TlsOptions {
                tls13,
                ..Default::default()
            },
        )
        .unwrap();
        let opts = OneShotOptions {
            client: ClientOptions::new(broker.addr(), LAB_ID),
            tls,
            topic: "m5go/env".into(),
            payload: br#"{"device":"m5go-lab","seq":1}"#.to_vec(),
            qos: QoS::AtLeastOnce,
        };
        // How fast is the bench's to say (`coffre bench`, README); here:
        // every run completes, with each step timed and accounted for.
        for _ in 0..5 {
            let t = one_shot(&opts).unwrap();
            assert_eq!(t.tls_version, if tls13 { "TLSv1.3" } else { "TLSv1.2" });
            assert!(t.puback_reason.is_success());
            assert!(
                !t.connect.tls.is_zero() && !t.connect.connack.is_zero(),
                "{t:?}"
            );
            assert!(!t.publish.is_zero(), "QoS 1 waits for the PUBACK: {t:?}");
            assert!(
                t.total >= t.connect.total() + t.publish + t.disconnect,
                "the steps are parts of the whole: {t:?}"
            );
        }
    }
    assert!(broker.wait_log_count(&format!("Client {LAB_ID} disconnected."), 10, LOG_WAIT));
}

/// The identity check runs before anything else: a broker the device does
/// not trust is refused by the device, with the reason.
#[test]
fn broker_from_another_ca_is_refused_by_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let broker = Broker::start(&pki, &BrokerConfig::default());
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::new(other_dir.path());
    let board = board();
    let (key, cert) = lab_device(&pki, &board, LAB_ID);
    let identity = Identity {
        ca_pem: other.ca_pem.into_bytes(),
        cert_chain_pem: cert.into_bytes(),
        key,
    };
    let mut opts = publisher_options(&broker, LAB_ID);
    opts.count = Some(1);
    let mut p = Publisher::new(opts, identity, sensors(&board)).unwrap();
    let (r, _) = run_publisher(&mut p);
    let e = r.unwrap_err();
    assert!(matches!(e, Error::BrokerCertificate { .. }), "{e:?}");
    assert!(e.to_string().contains("does not trust"), "{e}");
    assert_eq!(p.queue().len(), 1, "the reading stays queued");
}
