//! The session, byte for byte, on a fake clock: no broker, no socket.

use coffre_mqtt::{Config, Error, Event, MqttVersion, QoS, ReasonCode, Session, State, Wait};

/// A fake clock: milliseconds that move only when the test says so.
struct Clock(u64);

impl Clock {
    fn advance(&mut self, ms: u64) -> u64 {
        self.0 += ms;
        self.0
    }
}

fn config(version: MqttVersion) -> Config {
    Config::new("m5go", version)
}

/// A session through CONNECT/CONNACK at `t`.
fn connected(cfg: Config, t: u64) -> Session {
    let connack: &[u8] = match cfg.version {
        MqttVersion::V5 => &[0x20, 3, 0, 0, 0],
        MqttVersion::V311 => &[0x20, 2, 0, 0],
    };
    let mut s = Session::new(cfg);
    s.connect(t).unwrap();
    let _ = s.poll_transmit().unwrap();
    s.handle_incoming(t, connack).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Connected { .. })));
    s
}

#[test]
fn connect_v5_bytes_then_connack_opens_the_session() {
    let mut s = Session::new(config(MqttVersion::V5));
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(s.poll_timeout(), None);
    s.connect(1_000).unwrap();
    assert_eq!(
        s.poll_transmit().unwrap(),
        [0x10, 17, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 30, 0, 0, 4, b'm', b'5', b'g', b'o']
    );
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.state(), State::Connecting);
    // CONNACK is awaited for the response timeout.
    assert_eq!(s.poll_timeout(), Some(11_000));
    // It arrives in two pieces.
    s.handle_incoming(1_010, &[0x20, 3]).unwrap();
    assert_eq!(s.poll_event(), None);
    s.handle_incoming(1_012, &[0, 0, 0]).unwrap();
    match s.poll_event() {
        Some(Event::Connected {
            session_present,
            keep_alive_secs,
            resent,
            ..
        }) => assert_eq!((session_present, keep_alive_secs, resent), (false, 30, 0)),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.state(), State::Connected);
    // Next wake-up: the keep alive, 3/4 of 30 s after CONNECT went out.
    assert_eq!(s.poll_timeout(), Some(1_000 + 22_500));
}

#[test]
fn connect_v311_bytes_and_refusal_mapped_to_v5_codes() {
    let mut s = Session::new(config(MqttVersion::V311));
    s.connect(0).unwrap();
    assert_eq!(
        s.poll_transmit().unwrap(),
        [0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 4, b'm', b'5', b'g', b'o']
    );
    // 3.1.1 return code 5 "not authorized" is MQTT 5's 0x87.
    let e = s.handle_incoming(5, &[0x20, 2, 0, 5]).unwrap_err();
    assert_eq!(
        e,
        Error::ConnectRefused {
            reason: ReasonCode::NOT_AUTHORIZED,
            reason_string: None
        }
    );
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn connack_timeout() {
    let mut s = Session::new(config(MqttVersion::V5));
    let mut clock = Clock(50);
    s.connect(clock.0).unwrap();
    let _ = s.poll_transmit();
    s.handle_timeout(clock.advance(9_999)).unwrap();
    assert_eq!(
        s.handle_timeout(clock.advance(1)),
        Err(Error::Timeout {
            waiting_for: Wait::ConnAck,
            after_ms: 10_000
        })
    );
}

#[test]
fn a_packet_before_connack_is_a_protocol_error() {
    let mut s = Session::new(config(MqttVersion::V5));
    s.connect(0).unwrap();
    let e = s.handle_incoming(1, &[0xD0, 0]).unwrap_err();
    assert_eq!(e, Error::Protocol("expected CONNACK, got PINGRESP".into()));
}

#[test]
fn keepalive_pingreq_when_idle_then_timeout_without_pingresp() {
    let mut clock = Clock(0);
    let mut s = connected(config(MqttVersion::V5), clock.0);
    // Nothing before 3/4 of the keep alive.
    s.handle_timeout(clock.advance(22_499)).unwrap();
    assert_eq!(s.poll_transmit(), None);
    s.handle_timeout(clock.advance(1)).unwrap();
    assert_eq!(s.poll_transmit().unwrap(), [0xC0, 0]);
    // PINGRESP 7 ms later.
    s.handle_incoming(clock.advance(7), &[0xD0, 0]).unwrap();
    assert_eq!(s.poll_event(), Some(Event::PingResp { rtt_ms: 7 }));
    // The next PINGREQ counts from the last one sent.
    assert_eq!(s.poll_timeout(), Some(22_500 + 22_500));
    s.handle_timeout(45_000).unwrap();
    assert_eq!(s.poll_transmit().unwrap(), [0xC0, 0]);
    // No PINGRESP: the keep-alive timeout is the longer of the response
    // timeout and the keep alive.
    assert_eq!(s.poll_timeout(), Some(45_000 + 30_000));
    s.handle_timeout(74_999).unwrap();
    assert_eq!(
        s.handle_timeout(75_000),
        Err(Error::Timeout {
            waiting_for: Wait::PingResp,
            after_ms: 30_000
        })
    );
}

#[test]
fn server_keep_alive_wins_and_zero_turns_pings_off() {
    let mut s = Session::new(config(MqttVersion::V5));
    s.connect(0).unwrap();
    let _ = s.poll_transmit();
    // CONNACK with Server Keep Alive (0x13) = 4 s.
    s.handle_incoming(1, &[0x20, 6, 0, 0, 3, 0x13, 0, 4])
        .unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Connected {
            keep_alive_secs: 4,
            ..
        })
    ));
    assert_eq!(s.poll_timeout(), Some(3_000));

    let mut cfg = config(MqttVersion::V311);
    cfg.keep_alive_secs = 0;
    let mut s = connected(cfg, 0);
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(10_000_000).unwrap();
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn qos1_publish_bytes_puback_and_rtt() {
    let mut clock = Clock(100);
    let mut s = connected(config(MqttVersion::V5), clock.0);
    let id = s
        .publish(clock.advance(5), "a/b", b"{}", QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(id, Some(1));
    assert_eq!(
        s.poll_transmit().unwrap(),
        [0x32, 10, 0, 3, b'a', b'/', b'b', 0, 1, 0, b'{', b'}']
    );
    // The PUBACK deadline comes before the keep alive.
    assert_eq!(s.poll_timeout(), Some(105 + 10_000));
    // MQTT 5 PUBACK with reason 0x10 (no matching subscribers).
    s.handle_incoming(clock.advance(3), &[0x40, 3, 0, 1, 0x10])
        .unwrap();
    assert_eq!(
        s.poll_event(),
        Some(Event::PubAck {
            packet_id: 1,
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            reason_string: None,
            rtt_ms: 3
        })
    );
    assert_eq!(s.inflight().count(), 0);
    // A duplicate PUBACK is harmless.
    s.handle_incoming(clock.advance(1), &[0x40, 2, 0, 1])
        .unwrap();
    assert_eq!(s.poll_event(), None);
    // QoS 0: no packet id, nothing in flight.
    assert_eq!(
        s.publish(clock.0, "t", b"x", QoS::AtMostOnce, true),
        Ok(None)
    );
    assert_eq!(s.poll_transmit().unwrap(), [0x31, 5, 0, 1, b't', 0, b'x']);
    assert_eq!(
        s.publish(clock.0, "t", b"x", QoS::ExactlyOnce, false),
        Err(Error::QoS2)
    );
}

#[test]
fn puback_timeout_then_resume_resends_with_dup() {
    let mut clock = Clock(0);
    let mut cfg = config(MqttVersion::V5);
    cfg.clean_start = false;
    cfg.session_expiry = Some(3600);
    let mut s = connected(cfg, clock.0);
    s.publish(clock.advance(10), "t", b"1", QoS::AtLeastOnce, false)
        .unwrap();
    s.publish(clock.advance(10), "t", b"2", QoS::AtLeastOnce, false)
        .unwrap();
    let _ = s.poll_transmit();
    assert_eq!(
        s.handle_timeout(clock.advance(10_000)),
        Err(Error::Timeout {
            waiting_for: Wait::PubAck,
            after_ms: 10_000
        })
    );
    s.connection_lost();
    assert_eq!(s.state(), State::Disconnected);
    assert_eq!(s.poll_timeout(), None);
    assert_eq!(
        s.publish(clock.0, "t", b"3", QoS::AtLeastOnce, false),
        Err(Error::NotConnected)
    );
    // New transport: CONNECT without clean start, Session Expiry 3600.
    s.connect(clock.advance(500)).unwrap();
    assert_eq!(
        s.poll_transmit().unwrap(),
        [
            0x10, 22, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x00, 0, 30, 5, 0x11, 0, 0, 0x0E, 0x10, 0,
            4, b'm', b'5', b'g', b'o'
        ]
    );
    // CONNACK, session present: both messages again, DUP set, same ids.
    s.handle_incoming(clock.advance(4), &[0x20, 3, 1, 0, 0])
        .unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Connected {
            session_present: true,
            resent: 2,
            ..
        })
    ));
    assert_eq!(
        s.poll_transmit().unwrap(),
        [
            0x3A, 7, 0, 1, b't', 0, 1, 0, b'1', //
            0x3A, 7, 0, 1, b't', 0, 2, 0, b'2'
        ]
    );
    s.handle_incoming(clock.advance(2), &[0x40, 2, 0, 2, 0x40, 2, 0, 1])
        .unwrap();
    let acked: Vec<u16> = std::iter::from_fn(|| s.poll_event())
        .map(|e| match e {
            Event::PubAck {
                packet_id, rtt_ms, ..
            } => {
                assert_eq!(rtt_ms, 2);
                packet_id
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(acked, [2, 1]);
    // New ids do not reuse one in flight, and continue after the last.
    assert_eq!(
        s.publish(clock.0, "t", b"3", QoS::AtLeastOnce, false),
        Ok(Some(3))
    );
}

/// One message may follow the CONNECT before the CONNACK (MQTT 3.1.4):
/// the CONNACK and its PUBACK then come back in one read.
#[test]
fn one_publish_rides_with_the_connect() {
    let mut s = Session::new(config(MqttVersion::V5));
    s.connect(0).unwrap();
    assert_eq!(
        s.publish(1, "t", b"1", QoS::AtLeastOnce, false),
        Ok(Some(1))
    );
    // A second would exceed a Receive Maximum not known yet.
    assert_eq!(
        s.publish(1, "t", b"2", QoS::AtLeastOnce, false),
        Err(Error::NotConnected)
    );
    let tx = s.poll_transmit().unwrap();
    assert_eq!(tx[0], 0x10, "CONNECT first");
    assert_eq!(&tx[tx.len() - 9..], [0x32, 7, 0, 1, b't', 0, 1, 0, b'1']);
    // CONNACK then PUBACK, in one read; the message is not sent again.
    s.handle_incoming(3, &[0x20, 3, 0, 0, 0, 0x40, 2, 0, 1])
        .unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Connected { resent: 0, .. })
    ));
    assert!(matches!(
        s.poll_event(),
        Some(Event::PubAck {
            packet_id: 1,
            rtt_ms: 2,
            ..
        })
    ));
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.inflight().count(), 0);
}

/// Messages waiting to go out again after the CONNACK go first: nothing
/// new rides with the CONNECT then; and a refused CONNECT keeps the
/// message that rode with it for the next connection.
#[test]
fn no_early_publish_ahead_of_older_messages_and_none_lost_on_refusal() {
    let mut cfg = config(MqttVersion::V5);
    cfg.clean_start = false;
    let mut s = connected(cfg, 0);
    s.publish(1, "t", b"1", QoS::AtLeastOnce, false).unwrap();
    s.connection_lost();
    s.connect(2).unwrap();
    assert_eq!(
        s.publish(2, "t", b"2", QoS::AtLeastOnce, false),
        Err(Error::NotConnected)
    );

    let mut s = Session::new(config(MqttVersion::V5));
    s.connect(0).unwrap();
    s.publish(0, "t", b"1", QoS::AtLeastOnce, false).unwrap();
    let _ = s.poll_transmit();
    assert!(s.handle_incoming(1, &[0x20, 3, 0, 0x87, 0]).is_err());
    assert_eq!(s.inflight().count(), 1);
}

#[test]
fn clean_start_forgets_what_was_in_flight() {
    let mut s = connected(config(MqttVersion::V311), 0);
    s.publish(1, "t", b"1", QoS::AtLeastOnce, false).unwrap();
    s.connection_lost();
    assert_eq!(s.inflight().count(), 1);
    s.connect(2).unwrap();
    assert_eq!(s.inflight().count(), 0);
    let _ = s.poll_transmit();
    s.handle_incoming(3, &[0x20, 2, 0, 0]).unwrap();
    assert!(matches!(
        s.poll_event(),
        Some(Event::Connected { resent: 0, .. })
    ));
    assert_eq!(s.poll_transmit(), None);
}

#[test]
fn receive_maximum_limits_messages_in_flight() {
    let mut s = Session::new(config(MqttVersion::V5));
    s.connect(0).unwrap();
    let _ = s.poll_transmit();
    // CONNACK with Receive Maximum (0x21) = 2.
    s.handle_incoming(1, &[0x20, 6, 0, 0, 3, 0x21, 0, 2])
        .unwrap();
    let _ = s.poll_event();
    assert!(s.can_publish());
    s.publish(2, "t", b"", QoS::AtLeastOnce, false).unwrap();
    s.publish(2, "t", b"", QoS::AtLeastOnce, false).unwrap();
    assert!(!s.can_publish());
    assert_eq!(
        s.publish(2, "t", b"", QoS::AtLeastOnce, false),
        Err(Error::InflightFull)
    );
    s.handle_incoming(3, &[0x40, 2, 0, 1]).unwrap();
    assert!(s.can_publish());
}

#[test]
fn subscribe_suback_and_incoming_publish_acknowledged() {
    let mut clock = Clock(0);
    let mut s = connected(config(MqttVersion::V5), clock.0);
    let id = s
        .subscribe(clock.advance(1), &[("m5go/env", QoS::AtLeastOnce)])
        .unwrap();
    assert_eq!(id, 1);
    assert_eq!(
        s.poll_transmit().unwrap(),
        [0x82, 14, 0, 1, 0, 0, 8, b'm', b'5', b'g', b'o', b'/', b'e', b'n', b'v', 0x01]
    );
    assert_eq!(s.poll_timeout(), Some(1 + 10_000));
    s.handle_incoming(clock.advance(2), &[0x90, 4, 0, 1, 0, 0x01])
        .unwrap();
    assert_eq!(
        s.poll_event(),
        Some(Event::SubAck {
            packet_id: 1,
            reasons: vec![ReasonCode::GRANTED_QOS_1]
        })
    );
    // A QoS 1 message, redelivered (DUP), fed one byte at a time.
    let publish = [0x3A, 9, 0, 3, b'a', b'/', b'b', 0, 7, 0, b'!'];
    for b in publish {
        s.handle_incoming(clock.advance(1), &[b]).unwrap();
    }
    assert_eq!(s.poll_transmit().unwrap(), [0x40, 2, 0, 7]);
    let m = s.poll_message().unwrap();
    assert_eq!(
        (m.topic.as_str(), &m.payload[..], m.dup),
        ("a/b", &b"!"[..], true)
    );
    assert_eq!(s.poll_message(), None);
    // A SUBACK nobody asked for.
    assert!(matches!(
        s.handle_incoming(clock.0, &[0x90, 3, 0, 9, 0]),
        Err(Error::Protocol(_))
    ));
}

#[test]
fn suback_timeout() {
    let mut s = connected(config(MqttVersion::V311), 0);
    s.subscribe(100, &[("t", QoS::AtMostOnce)]).unwrap();
    assert_eq!(
        s.handle_timeout(10_100),
        Err(Error::Timeout {
            waiting_for: Wait::SubAck,
            after_ms: 10_000
        })
    );
}

#[test]
fn disconnect_with_reason_codes() {
    let mut s = connected(config(MqttVersion::V5), 0);
    s.disconnect(1, ReasonCode::SUCCESS).unwrap();
    assert_eq!(s.poll_transmit().unwrap(), [0xE0, 0]);
    assert_eq!(s.state(), State::Closing);
    // Whatever arrives afterwards is ignored.
    s.handle_incoming(2, &[0xD0, 0]).unwrap();
    assert_eq!(
        s.disconnect(3, ReasonCode::SUCCESS),
        Err(Error::NotConnected)
    );

    let mut s = connected(config(MqttVersion::V5), 0);
    // 0x04 Disconnect with Will Message.
    s.disconnect(1, ReasonCode(0x04)).unwrap();
    assert_eq!(s.poll_transmit().unwrap(), [0xE0, 2, 0x04, 0]);

    let mut s = connected(config(MqttVersion::V311), 0);
    s.disconnect(1, ReasonCode(0x04)).unwrap();
    assert_eq!(s.poll_transmit().unwrap(), [0xE0, 0]);
}

#[test]
fn server_disconnect_carries_its_reason() {
    let mut s = connected(config(MqttVersion::V5), 0);
    // 0x8E Session taken over, reason string "x".
    let e = s
        .handle_incoming(5, &[0xE0, 6, 0x8E, 4, 0x1F, 0, 1, b'x'])
        .unwrap_err();
    assert_eq!(
        e,
        Error::ServerDisconnect {
            reason: ReasonCode(0x8E),
            reason_string: Some("x".into())
        }
    );
    assert_eq!(s.state(), State::Disconnected);
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut s = connected(config(MqttVersion::V5), 0);
    let e = s.handle_incoming(1, &[0x40, 1, 0]).unwrap_err();
    assert!(matches!(e, Error::Decode(_)));
    assert!(std::error::Error::source(&e).is_some());
    let mut s = connected(config(MqttVersion::V5), 0);
    assert!(matches!(
        s.handle_incoming(1, &[0x62, 2, 0, 5]),
        Err(Error::Protocol(_))
    ));
}
