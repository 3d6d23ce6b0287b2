//! Targets of the MQTT layer (`coffre-mqtt`): what a broker, or something
//! pretending to be one, sends the device.

use coffre_mqtt::codec::{decode, encode};
use coffre_mqtt::{Config, MqttVersion, QoS, ReasonCode, Session};

use crate::bytes::Input;

fn version(b: u8) -> MqttVersion {
    if b & 1 == 0 {
        MqttVersion::V5
    } else {
        MqttVersion::V311
    }
}

/// One packet decoded from arbitrary bytes; a packet that decodes encodes
/// and decodes back to itself.
pub fn codec(data: &[u8]) {
    let Some((&v, rest)) = data.split_first() else {
        return;
    };
    let v = version(v);
    if let Ok(Some((packet, used))) = decode(rest, v, 1 << 16) {
        assert!(used <= rest.len());
        let mut out = Vec::new();
        if encode(&packet, v, &mut out).is_ok() {
            let (back, n) = decode(&out, v, 1 << 20)
                .expect("our encoding decodes")
                .expect("our encoding is complete");
            assert_eq!(n, out.len());
            assert_eq!(back, packet, "decode → encode → decode changed the packet");
        }
    }
}

/// A device session fed a broker's bytes in arbitrary pieces, with time
/// moving and the device publishing, subscribing and disconnecting in
/// between. Never a panic; the session's promises hold.
pub fn session(data: &[u8]) {
    let mut input = Input::new(data);
    let mut config = Config::new("m5go-fuzz", version(input.u8()));
    config.keep_alive_secs = 5;
    config.max_inflight = 4;
    let max_inflight = usize::from(config.max_inflight);
    let mut s = Session::new(config);
    let mut now = 0u64;
    let _ = s.connect(now);
    let mut steps = 0;
    while !input.is_empty() && steps < 512 {
        steps += 1;
        match input.u8() % 8 {
            0..=2 => {
                let n = input.u8() as usize;
                let bytes = input.take(n);
                let _ = s.handle_incoming(now, bytes);
            }
            3 => now += u64::from(input.u16()),
            4 => {
                let _ = s.publish(now, "m5go/env", b"{\"seq\":1}", QoS::AtLeastOnce, false);
            }
            5 => {
                let _ = s.subscribe(now, &[("m5go/env", QoS::AtLeastOnce)]);
            }
            6 => s.connection_lost(),
            _ => {
                if input.u8().is_multiple_of(8) {
                    let _ = s.disconnect(now, ReasonCode::SUCCESS);
                } else {
                    let _ = s.connect(now);
                }
            }
        }
        if let Some(t) = s.poll_timeout() {
            if t <= now {
                let _ = s.handle_timeout(now);
            }
        }
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
        while s.poll_message().is_some() {}
        assert!(
            s.inflight().count() <= max_inflight,
            "more in flight than allowed"
        );
    }
}
