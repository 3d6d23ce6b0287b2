//! One MQTT client session as a plain state machine.
//!
//! Time is always an argument: `now` is milliseconds from any fixed origin
//! that never goes backwards (a monotonic clock, the MCU's tick counter, a
//! fake clock in tests). The session never sleeps; it says when it next
//! needs to be woken ([`Session::poll_timeout`]).
//!
//! The caller's loop, for any transport:
//!
//! 1. write out what [`Session::poll_transmit`] returns;
//! 2. read from the transport until [`Session::poll_timeout`] at the
//!    latest, and pass what arrived to [`Session::handle_incoming`] — or,
//!    once that time has come, call [`Session::handle_timeout`];
//! 3. take what happened from [`Session::poll_event`] and
//!    [`Session::poll_message`];
//! 4. after an error from any call, or when the transport fails, call
//!    [`Session::connection_lost`] and open a new transport: QoS 1
//!    messages not yet acknowledged are sent again, with DUP set, after the
//!    next CONNACK.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::codec::{
    self, ConnAck, Connect, DecodeError, Disconnect, EncodeError, MqttVersion, Packet, Properties,
    PubAck, Publish, QoS, ReasonCode, SubAck, Subscribe,
};

/// Settings of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Client identifier (the device id).
    pub client_id: String,
    /// MQTT version.
    pub version: MqttVersion,
    /// Keep alive, seconds; 0 turns it off. A PINGREQ goes out after 3/4
    /// of it without anything sent. Default 30.
    pub keep_alive_secs: u16,
    /// Clean start: the broker and the session forget any earlier state.
    /// `false` (persistent session): QoS 1 messages in flight survive a
    /// reconnection and are sent again. Default true.
    pub clean_start: bool,
    /// MQTT 5 Session Expiry Interval, seconds (how long the broker keeps
    /// the session after a disconnection). Default `None` (0).
    pub session_expiry: Option<u32>,
    /// How long to wait for CONNACK, PUBACK, SUBACK; PINGRESP gets the
    /// longer of this and the keep alive. Default 10 000 ms.
    pub response_timeout_ms: u64,
    /// Largest packet accepted from the broker. Default 1 MiB.
    pub max_packet_size: usize,
    /// Most QoS 1 PUBLISHes in flight at once (the broker's Receive
    /// Maximum lowers it). Default 16.
    pub max_inflight: u16,
}

impl Config {
    /// A configuration with the defaults above.
    pub fn new(client_id: impl Into<String>, version: MqttVersion) -> Self {
        Config {
            client_id: client_id.into(),
            version,
            keep_alive_secs: 30,
            clean_start: true,
            session_expiry: None,
            response_timeout_ms: 10_000,
            max_packet_size: 1 << 20,
            max_inflight: 16,
        }
    }
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No transport: call [`Session::connect`] once one is open.
    Disconnected,
    /// CONNECT sent, CONNACK awaited.
    Connecting,
    /// CONNACK received with success.
    Connected,
    /// DISCONNECT queued; send it, then close the transport.
    Closing,
}

/// What the session was waiting for when time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// CONNACK.
    ConnAck,
    /// PUBACK.
    PubAck,
    /// SUBACK.
    SubAck,
    /// PINGRESP (the keep-alive timeout).
    PingResp,
}

impl Wait {
    /// The packet's name.
    pub fn name(self) -> &'static str {
        match self {
            Wait::ConnAck => "CONNACK",
            Wait::PubAck => "PUBACK",
            Wait::SubAck => "SUBACK",
            Wait::PingResp => "PINGRESP",
        }
    }
}

/// Why the session cannot go on. After any of these but
/// [`Error::NotConnected`], [`Error::InflightFull`], [`Error::QoS2`] and
/// [`Error::Encode`], the connection is over: call
/// [`Session::connection_lost`] and close the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A request while no session is open.
    NotConnected,
    /// As many QoS 1 messages are in flight as allowed: wait for a PUBACK.
    InflightFull,
    /// QoS 2 was asked for; the session speaks QoS 0 and 1.
    QoS2,
    /// A packet could not be encoded (a topic over 65535 bytes…).
    Encode(EncodeError),
    /// The broker sent bytes that are no valid packet.
    Decode(DecodeError),
    /// The broker broke the protocol (a packet out of place).
    Protocol(String),
    /// CONNACK carried a failure reason code.
    ConnectRefused {
        /// The reason code (3.1.1 return codes mapped to MQTT 5).
        reason: ReasonCode,
        /// The broker's reason string, if any.
        reason_string: Option<String>,
    },
    /// The broker sent DISCONNECT.
    ServerDisconnect {
        /// Its reason code.
        reason: ReasonCode,
        /// The broker's reason string, if any.
        reason_string: Option<String>,
    },
    /// An answer did not come in time.
    Timeout {
        /// What was awaited.
        waiting_for: Wait,
        /// How long it was awaited, ms.
        after_ms: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotConnected => f.write_str("no MQTT session is open"),
            Error::InflightFull => f.write_str("too many QoS 1 messages awaiting PUBACK"),
            Error::QoS2 => f.write_str("QoS 2 is not supported; use QoS 1"),
            Error::Encode(_) => f.write_str("cannot encode an MQTT packet"),
            Error::Decode(_) => f.write_str("invalid MQTT packet from the broker"),
            Error::Protocol(what) => write!(f, "protocol error: {what}"),
            Error::ConnectRefused { reason, .. } => write!(f, "CONNACK refused: {reason}"),
            Error::ServerDisconnect { reason, .. } => {
                write!(f, "the broker ended the session: {reason}")
            }
            Error::Timeout {
                waiting_for,
                after_ms,
            } => write!(f, "no {} within {after_ms} ms", waiting_for.name()),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Encode(e) => Some(e),
            Error::Decode(e) => Some(e),
            _ => None,
        }
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

/// Something that happened, from [`Session::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// CONNACK with success.
    Connected {
        /// The broker resumed a session it kept.
        session_present: bool,
        /// CONNACK properties (MQTT 5).
        properties: Properties,
        /// The keep alive in force, seconds (the broker's Server Keep
        /// Alive wins).
        keep_alive_secs: u16,
        /// QoS 1 messages sent again (DUP) because they were in flight.
        resent: usize,
    },
    /// PUBACK for a message in flight.
    PubAck {
        /// Its packet identifier.
        packet_id: u16,
        /// 0x00 Success, 0x10 No matching subscribers, 0x87 Not
        /// authorized… (always 0x00 for MQTT 3.1.1).
        reason: ReasonCode,
        /// The broker's reason string, if any.
        reason_string: Option<String>,
        /// Last (re)transmission → PUBACK, ms.
        rtt_ms: u64,
    },
    /// SUBACK.
    SubAck {
        /// The SUBSCRIBE's packet identifier.
        packet_id: u16,
        /// One reason code per filter.
        reasons: Vec<ReasonCode>,
    },
    /// PINGRESP.
    PingResp {
        /// PINGREQ → PINGRESP, ms.
        rtt_ms: u64,
    },
}

/// A QoS 1 message waiting for its PUBACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inflight {
    /// The PUBLISH as it is (re)sent.
    pub publish: Publish,
    /// When it was last sent; `None` while it waits for a connection.
    pub sent_at: Option<u64>,
}

/// One MQTT client session: plain data, no IO, no clock.
#[derive(Debug, Clone)]
pub struct Session {
    config: Config,
    state: State,
    keep_alive_secs: u16,
    max_inflight: u16,
    rx: Vec<u8>,
    tx: Vec<u8>,
    next_id: u16,
    inflight: VecDeque<(u16, Inflight)>,
    /// SUBSCRIBE packet id → when it was sent.
    subscribes: VecDeque<(u16, u64)>,
    connect_sent: u64,
    last_sent: u64,
    ping_sent: Option<u64>,
    events: VecDeque<Event>,
    messages: VecDeque<Publish>,
}

impl Session {
    /// A session, not connected.
    pub fn new(config: Config) -> Session {
        Session {
            keep_alive_secs: config.keep_alive_secs,
            max_inflight: config.max_inflight.max(1),
            config,
            state: State::Disconnected,
            rx: Vec::new(),
            tx: Vec::new(),
            next_id: 0,
            inflight: VecDeque::new(),
            subscribes: VecDeque::new(),
            connect_sent: 0,
            last_sent: 0,
            ping_sent: None,
            events: VecDeque::new(),
            messages: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where the session stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The keep alive in force, seconds.
    pub fn keep_alive_secs(&self) -> u16 {
        self.keep_alive_secs
    }

    /// QoS 1 messages awaiting their PUBACK, oldest first.
    pub fn inflight(&self) -> impl Iterator<Item = &Inflight> {
        self.inflight.iter().map(|(_, m)| m)
    }

    /// Heap the session holds now, bytes: its buffers and queues (their
    /// capacity), and the messages in flight.
    pub fn heap_bytes(&self) -> usize {
        let inflight: usize = self
            .inflight
            .iter()
            .map(|(_, m)| m.publish.topic.capacity() + m.publish.payload.capacity())
            .sum();
        self.rx.capacity()
            + self.tx.capacity()
            + self.config.client_id.capacity()
            + self.inflight.capacity() * core::mem::size_of::<(u16, Inflight)>()
            + self.subscribes.capacity() * core::mem::size_of::<(u16, u64)>()
            + self.events.capacity() * core::mem::size_of::<Event>()
            + self.messages.capacity() * core::mem::size_of::<Publish>()
            + inflight
    }

    /// Whether a QoS 1 message can be published now.
    pub fn can_publish(&self) -> bool {
        self.state == State::Connected && self.inflight.len() < usize::from(self.max_inflight)
    }

    fn queue(&mut self, now: u64, p: &Packet) -> Result<(), EncodeError> {
        codec::encode(p, self.config.version, &mut self.tx)?;
        self.last_sent = now;
        Ok(())
    }

    fn next_packet_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id == 0 {
                self.next_id = 1;
            }
            let id = self.next_id;
            if !self.inflight.iter().any(|(i, _)| *i == id)
                && !self.subscribes.iter().any(|(i, _)| *i == id)
            {
                return id;
            }
        }
    }

    /// A transport is open: queue CONNECT. With clean start, messages
    /// still in flight from an earlier connection are dropped (their
    /// sender keeps its own copy, e.g. a durable queue); without it, they
    /// go out again once CONNACK arrives.
    pub fn connect(&mut self, now: u64) -> Result<(), Error> {
        self.connection_lost();
        if self.config.clean_start {
            self.inflight.clear();
        }
        self.keep_alive_secs = self.config.keep_alive_secs;
        let connect = Packet::Connect(Connect {
            client_id: self.config.client_id.clone(),
            keep_alive: self.config.keep_alive_secs,
            clean_start: self.config.clean_start,
            properties: Properties {
                session_expiry_interval: self.config.session_expiry,
                ..Properties::default()
            },
        });
        self.queue(now, &connect)?;
        self.connect_sent = now;
        self.state = State::Connecting;
        Ok(())
    }

    /// The transport is gone (closed, failed, or given up after an error
    /// of this session). Bytes not yet sent or parsed are dropped, pending
    /// SUBSCRIBEs are forgotten; QoS 1 messages in flight are kept for the
    /// next [`Session::connect`].
    pub fn connection_lost(&mut self) {
        self.state = State::Disconnected;
        self.rx.clear();
        self.tx.clear();
        self.subscribes.clear();
        self.ping_sent = None;
        for (_, m) in self.inflight.iter_mut() {
            m.sent_at = None;
        }
    }

    /// Publish a message. QoS 1 returns its packet identifier; the PUBACK
    /// comes back as [`Event::PubAck`].
    ///
    /// Also right after [`Session::connect`], before the CONNACK (MQTT
    /// 3.1.4, both versions: a client need not wait for it), when no
    /// message is in flight: the PUBLISH rides with the CONNECT, saving a
    /// round trip. One QoS 1 message at most then, as the broker's Receive
    /// Maximum is not known yet (it is at least 1), and none while older
    /// messages wait to go out again after the CONNACK (they go first). If
    /// the broker refuses the CONNECT it ignores the message; it stays in
    /// flight for the next connection, as any unacknowledged one.
    pub fn publish(
        &mut self,
        now: u64,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<Option<u16>, Error> {
        match self.state {
            State::Connected => {}
            State::Connecting if self.inflight.is_empty() => {}
            _ => return Err(Error::NotConnected),
        }
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce if self.inflight.len() >= usize::from(self.max_inflight) => {
                return Err(Error::InflightFull)
            }
            QoS::AtLeastOnce => Some(self.next_packet_id()),
            QoS::ExactlyOnce => return Err(Error::QoS2),
        };
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic: topic.to_string(),
            packet_id,
            properties: Properties::default(),
            payload: payload.to_vec(),
        };
        let packet = Packet::Publish(publish);
        self.queue(now, &packet)?;
        if let (Some(id), Packet::Publish(publish)) = (packet_id, packet) {
            self.inflight.push_back((
                id,
                Inflight {
                    publish,
                    sent_at: Some(now),
                },
            ));
        }
        Ok(packet_id)
    }

    /// Subscribe to topic filters; returns the packet identifier that
    /// [`Event::SubAck`] will carry.
    pub fn subscribe(&mut self, now: u64, filters: &[(&str, QoS)]) -> Result<u16, Error> {
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        let packet_id = self.next_packet_id();
        self.queue(
            now,
            &Packet::Subscribe(Subscribe {
                packet_id,
                filters: filters
                    .iter()
                    .map(|(f, q)| ((*f).to_string(), *q))
                    .collect(),
            }),
        )?;
        self.subscribes.push_back((packet_id, now));
        Ok(packet_id)
    }

    /// Send PINGREQ now (the keep alive sends its own when due).
    pub fn ping(&mut self, now: u64) -> Result<(), Error> {
        if self.state != State::Connected {
            return Err(Error::NotConnected);
        }
        self.queue(now, &Packet::PingReq)?;
        self.ping_sent = Some(now);
        Ok(())
    }

    /// End the session: queue DISCONNECT with `reason` (MQTT 5; 3.1.1 has
    /// none). Send it, then close the transport. Packets that arrive after
    /// this are ignored.
    pub fn disconnect(&mut self, now: u64, reason: ReasonCode) -> Result<(), Error> {
        if matches!(self.state, State::Disconnected | State::Closing) {
            return Err(Error::NotConnected);
        }
        self.queue(
            now,
            &Packet::Disconnect(Disconnect {
                reason,
                properties: Properties::default(),
            }),
        )?;
        self.state = State::Closing;
        Ok(())
    }

    /// The bytes to write to the transport now, if any: every packet queued
    /// since the last call, in order, in one buffer (one TLS record, one
    /// TCP segment when small).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.tx.is_empty() {
            None
        } else {
            Some(core::mem::take(&mut self.tx))
        }
    }

    /// Bytes received from the broker. Complete packets are handled at
    /// once; a partial one waits for the rest.
    pub fn handle_incoming(&mut self, now: u64, bytes: &[u8]) -> Result<(), Error> {
        self.rx.extend_from_slice(bytes);
        let mut used = 0;
        let result = loop {
            match codec::decode(
                &self.rx[used..],
                self.config.version,
                self.config.max_packet_size,
            ) {
                Ok(Some((packet, n))) => {
                    used += n;
                    if let Err(e) = self.handle_packet(now, packet) {
                        break Err(e);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Error::Decode(e)),
            }
        };
        self.rx.drain(..used);
        result
    }

    /// One decoded packet from the broker.
    pub fn handle_packet(&mut self, now: u64, packet: Packet) -> Result<(), Error> {
        match (self.state, packet) {
            (State::Closing, _) => Ok(()),
            (State::Disconnected, p) => Err(Error::Protocol(alloc::format!(
                "{} while no session is open",
                p.name()
            ))),
            (State::Connecting, Packet::ConnAck(c)) => self.on_connack(now, c),
            (State::Connecting, p) => Err(Error::Protocol(alloc::format!(
                "expected CONNACK, got {}",
                p.name()
            ))),
            (State::Connected, Packet::PubAck(a)) => {
                self.on_puback(now, a);
                Ok(())
            }
            (State::Connected, Packet::SubAck(a)) => self.on_suback(a),
            (State::Connected, Packet::PingResp) => {
                if let Some(sent) = self.ping_sent.take() {
                    self.events.push_back(Event::PingResp {
                        rtt_ms: now.saturating_sub(sent),
                    });
                }
                Ok(())
            }
            (State::Connected, Packet::Publish(p)) => self.on_publish(now, p),
            (_, Packet::Disconnect(d)) => {
                self.state = State::Disconnected;
                Err(Error::ServerDisconnect {
                    reason: d.reason,
                    reason_string: d.properties.reason_string,
                })
            }
            (State::Connected, other) => Err(Error::Protocol(alloc::format!(
                "unexpected {} from the broker",
                other.name()
            ))),
        }
    }

    fn on_connack(&mut self, now: u64, c: ConnAck) -> Result<(), Error> {
        if !c.reason.is_success() {
            self.state = State::Disconnected;
            return Err(Error::ConnectRefused {
                reason: c.reason,
                reason_string: c.properties.reason_string,
            });
        }
        if let Some(k) = c.properties.server_keep_alive {
            self.keep_alive_secs = k;
        }
        self.max_inflight = match c.properties.receive_maximum {
            Some(m) if m > 0 => self.config.max_inflight.min(m).max(1),
            _ => self.config.max_inflight.max(1),
        };
        self.state = State::Connected;
        // MQTT-4.4.0-1: unacknowledged PUBLISHes go out again, DUP set, in
        // their original order, before anything new. A message sent with
        // the CONNECT (sent_at set) is not one of them.
        let mut resent = 0;
        let mut tx = core::mem::take(&mut self.tx);
        for (_, m) in self
            .inflight
            .iter_mut()
            .filter(|(_, m)| m.sent_at.is_none())
        {
            m.publish.dup = true;
            m.sent_at = Some(now);
            codec::encode(
                &Packet::Publish(m.publish.clone()),
                self.config.version,
                &mut tx,
            )?;
            resent += 1;
        }
        self.tx = tx;
        if resent > 0 {
            self.last_sent = now;
        }
        self.events.push_back(Event::Connected {
            session_present: c.session_present,
            properties: c.properties,
            keep_alive_secs: self.keep_alive_secs,
            resent,
        });
        Ok(())
    }

    fn on_puback(&mut self, now: u64, a: PubAck) {
        let Some(pos) = self.inflight.iter().position(|(id, _)| *id == a.packet_id) else {
            // A PUBACK for a message acknowledged before a reconnection:
            // harmless, and nothing to report.
            return;
        };
        let Some((_, m)) = self.inflight.remove(pos) else {
            return;
        };
        self.events.push_back(Event::PubAck {
            packet_id: a.packet_id,
            reason: a.reason,
            reason_string: a.properties.reason_string,
            rtt_ms: now.saturating_sub(m.sent_at.unwrap_or(now)),
        });
    }

    fn on_suback(&mut self, a: SubAck) -> Result<(), Error> {
        let Some(pos) = self
            .subscribes
            .iter()
            .position(|(id, _)| *id == a.packet_id)
        else {
            return Err(Error::Protocol(alloc::format!(
                "SUBACK for unknown packet id {}",
                a.packet_id
            )));
        };
        self.subscribes.remove(pos);
        self.events.push_back(Event::SubAck {
            packet_id: a.packet_id,
            reasons: a.reasons,
        });
        Ok(())
    }

    fn on_publish(&mut self, now: u64, p: Publish) -> Result<(), Error> {
        match (p.qos, p.packet_id) {
            (QoS::AtMostOnce, _) => {}
            (QoS::AtLeastOnce, Some(id)) => {
                self.queue(
                    now,
                    &Packet::PubAck(PubAck {
                        packet_id: id,
                        reason: ReasonCode::SUCCESS,
                        properties: Properties::default(),
                    }),
                )?;
            }
            _ => {
                return Err(Error::Protocol(
                    "QoS 2 PUBLISH, but only QoS 0 and 1 were subscribed".to_string(),
                ))
            }
        }
        self.messages.push_back(p);
        Ok(())
    }

    /// The next thing that happened (acknowledgements, CONNACK, PINGRESP).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next application message received (QoS 1 ones are already
    /// acknowledged).
    #[must_use]
    pub fn poll_message(&mut self) -> Option<Publish> {
        self.messages.pop_front()
    }

    fn ping_timeout_ms(&self) -> u64 {
        self.config
            .response_timeout_ms
            .max(u64::from(self.keep_alive_secs) * 1000)
    }

    fn keepalive_due(&self) -> Option<u64> {
        if self.state != State::Connected || self.keep_alive_secs == 0 {
            return None;
        }
        Some(match self.ping_sent {
            Some(sent) => sent + self.ping_timeout_ms(),
            None => self.last_sent + u64::from(self.keep_alive_secs) * 750,
        })
    }

    /// When to call [`Session::handle_timeout`] at the latest, if nothing
    /// arrives before: the CONNACK, PUBACK or SUBACK deadline, or the next
    /// keep-alive action. `None`: nothing to wait for. Ask again after
    /// every other call.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<u64> {
        let t = self.config.response_timeout_ms;
        let mut next: Option<u64> = None;
        let mut at = |d: u64| next = Some(next.map_or(d, |n: u64| n.min(d)));
        match self.state {
            State::Connecting => at(self.connect_sent + t),
            State::Connected => {
                if let Some(d) = self.keepalive_due() {
                    at(d);
                }
                if let Some(sent) = self.inflight.iter().filter_map(|(_, m)| m.sent_at).min() {
                    at(sent + t);
                }
                if let Some(sent) = self.subscribes.iter().map(|(_, s)| *s).min() {
                    at(sent + t);
                }
            }
            State::Disconnected | State::Closing => {}
        }
        next
    }

    /// Time has come (see [`Session::poll_timeout`]): send a PINGREQ when
    /// the link has been quiet, or report what did not arrive in time.
    pub fn handle_timeout(&mut self, now: u64) -> Result<(), Error> {
        let t = self.config.response_timeout_ms;
        let late = |since: u64, waiting_for: Wait, after_ms: u64| {
            if now >= since + after_ms {
                Err(Error::Timeout {
                    waiting_for,
                    after_ms,
                })
            } else {
                Ok(())
            }
        };
        match self.state {
            State::Connecting => late(self.connect_sent, Wait::ConnAck, t)?,
            State::Connected => {
                if let Some(sent) = self.ping_sent {
                    late(sent, Wait::PingResp, self.ping_timeout_ms())?;
                }
                if let Some(sent) = self.inflight.iter().filter_map(|(_, m)| m.sent_at).min() {
                    late(sent, Wait::PubAck, t)?;
                }
                if let Some(sent) = self.subscribes.iter().map(|(_, s)| *s).min() {
                    late(sent, Wait::SubAck, t)?;
                }
                if self.ping_sent.is_none() && self.keepalive_due().is_some_and(|d| now >= d) {
                    self.queue(now, &Packet::PingReq)?;
                    self.ping_sent = Some(now);
                }
            }
            State::Disconnected | State::Closing => {}
        }
        Ok(())
    }
}
