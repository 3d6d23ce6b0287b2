//! MQTT 3.1.1 and 5.0 packet encoding and decoding, sans IO.
//!
//! Only the packets a sensor device and its monitor need: CONNECT, CONNACK,
//! PUBLISH, PUBACK, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP and DISCONNECT.
//! Any other packet decodes to [`Packet::Other`] instead of failing, so an
//! unexpected packet is data the caller can report.
//!
//! [`decode`] takes the bytes received so far and answers either a packet
//! and how many bytes it used, or "need more" (`Ok(None)`); [`encode`]
//! appends a packet to a buffer. Neither does IO.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The MQTT protocol version spoken on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5): refusals come back as reason codes.
    #[default]
    V5,
}

impl MqttVersion {
    /// The protocol level byte of CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            MqttVersion::V311 => 4,
            MqttVersion::V5 => 5,
        }
    }
}

impl fmt::Display for MqttVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MqttVersion::V311 => "MQTT 3.1.1",
            MqttVersion::V5 => "MQTT 5",
        })
    }
}

impl core::str::FromStr for MqttVersion {
    type Err = UnknownVersion;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "5" | "5.0" | "v5" => Ok(MqttVersion::V5),
            "3.1.1" | "311" | "v311" | "4" => Ok(MqttVersion::V311),
            other => Err(UnknownVersion(other.to_owned())),
        }
    }
}

/// Quality of service of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once: no acknowledgement.
    AtMostOnce,
    /// At least once: PUBLISH is acknowledged by PUBACK.
    #[default]
    AtLeastOnce,
    /// Exactly once (not used by the agent; decoded for completeness).
    ExactlyOnce,
}

impl QoS {
    /// The two-bit wire value.
    pub const fn bits(self) -> u8 {
        match self {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        }
    }

    /// The QoS of a two-bit wire value; 3 is not a QoS.
    pub const fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// An MQTT 5 reason code (CONNACK, PUBACK, SUBACK, DISCONNECT).
///
/// MQTT 3.1.1 return codes are mapped onto the MQTT 5 codes of the same
/// meaning (CONNACK 5 "not authorized" becomes 0x87, SUBACK 0x80 stays
/// 0x80), so callers handle one set of values. Unknown values are kept as
/// they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReasonCode(pub u8);

impl ReasonCode {
    /// 0x00 Success (also "Granted QoS 0" in SUBACK, "Normal disconnection").
    pub const SUCCESS: ReasonCode = ReasonCode(0x00);
    /// 0x01 Granted QoS 1 (SUBACK).
    pub const GRANTED_QOS_1: ReasonCode = ReasonCode(0x01);
    /// 0x10 No matching subscribers (PUBACK): accepted, nobody listens.
    pub const NO_MATCHING_SUBSCRIBERS: ReasonCode = ReasonCode(0x10);
    /// 0x80 Unspecified error.
    pub const UNSPECIFIED_ERROR: ReasonCode = ReasonCode(0x80);
    /// 0x87 Not authorized.
    pub const NOT_AUTHORIZED: ReasonCode = ReasonCode(0x87);

    /// Whether the code reports success (values below 0x80).
    pub const fn is_success(self) -> bool {
        self.0 < 0x80
    }

    /// The name the MQTT 5 specification gives the code.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x00 => "Success",
            0x01 => "Granted QoS 1",
            0x02 => "Granted QoS 2",
            0x04 => "Disconnect with Will Message",
            0x10 => "No matching subscribers",
            0x11 => "No subscription existed",
            0x18 => "Continue authentication",
            0x19 => "Re-authenticate",
            0x80 => "Unspecified error",
            0x81 => "Malformed Packet",
            0x82 => "Protocol Error",
            0x83 => "Implementation specific error",
            0x84 => "Unsupported Protocol Version",
            0x85 => "Client Identifier not valid",
            0x86 => "Bad User Name or Password",
            0x87 => "Not authorized",
            0x88 => "Server unavailable",
            0x89 => "Server busy",
            0x8A => "Banned",
            0x8B => "Server shutting down",
            0x8C => "Bad authentication method",
            0x8D => "Keep Alive timeout",
            0x8E => "Session taken over",
            0x8F => "Topic Filter invalid",
            0x90 => "Topic Name invalid",
            0x91 => "Packet Identifier in use",
            0x92 => "Packet Identifier not found",
            0x93 => "Receive Maximum exceeded",
            0x94 => "Topic Alias invalid",
            0x95 => "Packet too large",
            0x96 => "Message rate too high",
            0x97 => "Quota exceeded",
            0x98 => "Administrative action",
            0x99 => "Payload format invalid",
            0x9A => "Retain not supported",
            0x9B => "QoS not supported",
            0x9C => "Use another server",
            0x9D => "Server moved",
            0x9E => "Shared Subscriptions not supported",
            0x9F => "Connection rate exceeded",
            0xA0 => "Maximum connect time",
            0xA1 => "Subscription Identifiers not supported",
            0xA2 => "Wildcard Subscriptions not supported",
            _ => "unknown reason code",
        }
    }

    /// The MQTT 5 code of an MQTT 3.1.1 CONNACK return code.
    pub const fn from_v311_connack(rc: u8) -> ReasonCode {
        ReasonCode(match rc {
            0 => 0x00,
            1 => 0x84,
            2 => 0x85,
            3 => 0x88,
            4 => 0x86,
            5 => 0x87,
            other => other,
        })
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X} {}", self.0, self.name())
    }
}

impl fmt::Debug for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReasonCode({self})")
    }
}

/// MQTT 5 properties. The ones the agent uses are kept; every other
/// property is parsed (so its length is known) and skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x11 Session Expiry Interval, seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12 Assigned Client Identifier.
    pub assigned_client_id: Option<String>,
    /// 0x13 Server Keep Alive, seconds: the keep alive the broker imposes.
    pub server_keep_alive: Option<u16>,
    /// 0x1F Reason String: a human-readable explanation from the broker.
    pub reason_string: Option<String>,
    /// 0x21 Receive Maximum.
    pub receive_maximum: Option<u16>,
    /// 0x24 Maximum QoS.
    pub maximum_qos: Option<u8>,
    /// 0x27 Maximum Packet Size.
    pub maximum_packet_size: Option<u32>,
    /// 0x26 User Property pairs.
    pub user_properties: Vec<(String, String)>,
}

impl Properties {
    fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut p = Vec::new();
        if let Some(v) = self.session_expiry_interval {
            p.push(0x11);
            p.extend_from_slice(&v.to_be_bytes());
        }
        if let Some(v) = &self.assigned_client_id {
            p.push(0x12);
            put_str(&mut p, v)?;
        }
        if let Some(v) = self.server_keep_alive {
            p.push(0x13);
            p.extend_from_slice(&v.to_be_bytes());
        }
        if let Some(v) = &self.reason_string {
            p.push(0x1F);
            put_str(&mut p, v)?;
        }
        if let Some(v) = self.receive_maximum {
            p.push(0x21);
            p.extend_from_slice(&v.to_be_bytes());
        }
        if let Some(v) = self.maximum_qos {
            p.push(0x24);
            p.push(v);
        }
        for (k, v) in &self.user_properties {
            p.push(0x26);
            put_str(&mut p, k)?;
            put_str(&mut p, v)?;
        }
        if let Some(v) = self.maximum_packet_size {
            p.push(0x27);
            p.extend_from_slice(&v.to_be_bytes());
        }
        put_varint(out, p.len())?;
        out.extend_from_slice(&p);
        Ok(())
    }

    fn decode(r: &mut Reader<'_>) -> Result<Properties, DecodeError> {
        let len = r.varint()?;
        let mut r = Reader::new(r.take(len)?);
        let mut props = Properties::default();
        while !r.is_empty() {
            let id = r.varint()?;
            match id {
                // Byte properties.
                0x01 | 0x17 | 0x19 | 0x25 | 0x28 | 0x29 | 0x2A => {
                    r.u8()?;
                }
                0x24 => props.maximum_qos = Some(r.u8()?),
                // Four-byte integers.
                0x02 | 0x18 => {
                    r.u32()?;
                }
                0x11 => props.session_expiry_interval = Some(r.u32()?),
                0x27 => props.maximum_packet_size = Some(r.u32()?),
                // Two-byte integers.
                0x22 | 0x23 => {
                    r.u16()?;
                }
                0x13 => props.server_keep_alive = Some(r.u16()?),
                0x21 => props.receive_maximum = Some(r.u16()?),
                // Variable byte integer.
                0x0B => {
                    r.varint()?;
                }
                // Strings.
                0x03 | 0x08 | 0x15 | 0x1A | 0x1C => {
                    r.string()?;
                }
                0x12 => props.assigned_client_id = Some(r.string()?),
                0x1F => props.reason_string = Some(r.string()?),
                // Binary data.
                0x09 | 0x16 => {
                    r.binary()?;
                }
                0x26 => {
                    let k = r.string()?;
                    let v = r.string()?;
                    props.user_properties.push((k, v));
                }
                other => return Err(DecodeError::UnknownProperty(other)),
            }
        }
        Ok(props)
    }
}

/// CONNECT: open a session. No user name or password: with mutual TLS the
/// broker takes the identity from the client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Client identifier (the device id).
    pub client_id: String,
    /// Keep alive, seconds (0 disables it).
    pub keep_alive: u16,
    /// Clean start (MQTT 5) / clean session (3.1.1): discard any session
    /// the broker kept for this client id.
    pub clean_start: bool,
    /// MQTT 5 properties (Session Expiry Interval…); ignored for 3.1.1.
    pub properties: Properties,
}

/// CONNACK: the broker's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// The broker resumed a session it kept for this client id.
    pub session_present: bool,
    /// 0x00 when the session is open; 3.1.1 return codes are mapped.
    pub reason: ReasonCode,
    /// MQTT 5 properties (empty for 3.1.1).
    pub properties: Properties,
}

/// PUBLISH: an application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Redelivery flag.
    pub dup: bool,
    /// Quality of service.
    pub qos: QoS,
    /// Retain flag.
    pub retain: bool,
    /// Topic name.
    pub topic: String,
    /// Packet identifier (QoS 1 and 2 only).
    pub packet_id: Option<u16>,
    /// MQTT 5 properties.
    pub properties: Properties,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// PUBACK: acknowledgement of a QoS 1 PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubAck {
    /// Packet identifier of the acknowledged PUBLISH.
    pub packet_id: u16,
    /// MQTT 5 reason code (0x00 for 3.1.1, which has none).
    pub reason: ReasonCode,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// SUBSCRIBE: ask for messages on topic filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Topic filters with their maximum QoS.
    pub filters: Vec<(String, QoS)>,
}

/// SUBACK: one reason code per filter of the SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: u16,
    /// Granted QoS (0x00–0x02) or a failure (≥ 0x80) per filter.
    pub reasons: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// DISCONNECT, from either side.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    /// MQTT 5 reason (0x00 normal disconnection; always 0x00 for 3.1.1).
    pub reason: ReasonCode,
    /// MQTT 5 properties.
    pub properties: Properties,
}

impl Default for ReasonCode {
    fn default() -> Self {
        ReasonCode::SUCCESS
    }
}

/// One MQTT control packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// CONNECT.
    Connect(Connect),
    /// CONNACK.
    ConnAck(ConnAck),
    /// PUBLISH.
    Publish(Publish),
    /// PUBACK.
    PubAck(PubAck),
    /// SUBSCRIBE.
    Subscribe(Subscribe),
    /// SUBACK.
    SubAck(SubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT.
    Disconnect(Disconnect),
    /// A packet this codec does not interpret (PUBREC, UNSUBACK, AUTH…).
    Other {
        /// Packet type (high nibble of the first byte).
        packet_type: u8,
        /// Flags (low nibble of the first byte).
        flags: u8,
        /// The variable header and payload.
        body: Vec<u8>,
    },
}

impl Packet {
    /// The packet's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Other { packet_type, .. } => match packet_type {
                5 => "PUBREC",
                6 => "PUBREL",
                7 => "PUBCOMP",
                10 => "UNSUBSCRIBE",
                11 => "UNSUBACK",
                15 => "AUTH",
                _ => "reserved packet type",
            },
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or binary field is longer than 65535 bytes.
    FieldTooLong(usize),
    /// The packet is larger than MQTT's 268435455-byte limit.
    PacketTooLarge(usize),
    /// QoS 1 or 2 without a packet identifier, or QoS 0 with one.
    PacketId,
}

/// Why received bytes are not a valid packet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The remaining length uses more than four bytes.
    BadRemainingLength,
    /// The packet is larger than the limit the client accepts.
    TooLarge {
        /// Announced size.
        size: usize,
        /// Accepted maximum.
        limit: usize,
    },
    /// A field runs past the end of the packet.
    Truncated(&'static str),
    /// A string is not UTF-8.
    Utf8,
    /// Reserved flag bits are wrong, or a QoS is 3.
    BadFlags {
        /// Packet type.
        packet_type: u8,
        /// Flags received.
        flags: u8,
    },
    /// An MQTT 5 property identifier this codec does not know.
    UnknownProperty(usize),
    /// Bytes left over after a packet's last field.
    Trailing(&'static str),
    /// CONNECT with a protocol name or level this codec does not speak.
    Protocol,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::FieldTooLong(n) => {
                write!(
                    f,
                    "a string field is {n} bytes long; MQTT allows at most 65535"
                )
            }
            EncodeError::PacketTooLarge(n) => {
                write!(
                    f,
                    "the packet is {n} bytes long; MQTT allows at most 268435455"
                )
            }
            EncodeError::PacketId => f.write_str(
                "a QoS 1 or 2 PUBLISH needs a non-zero packet identifier, QoS 0 must have none",
            ),
        }
    }
}

impl core::error::Error for EncodeError {}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadRemainingLength => {
                f.write_str("malformed remaining length (more than 4 bytes)")
            }
            DecodeError::TooLarge { size, limit } => {
                write!(f, "packet of {size} bytes exceeds the {limit}-byte limit")
            }
            DecodeError::Truncated(what) => write!(f, "truncated {what} packet"),
            DecodeError::Utf8 => f.write_str("a string field is not valid UTF-8"),
            DecodeError::BadFlags { packet_type, flags } => {
                write!(f, "invalid flags 0x{flags:X} on packet type {packet_type}")
            }
            DecodeError::UnknownProperty(p) => write!(f, "unknown MQTT 5 property 0x{p:02X}"),
            DecodeError::Trailing(what) => write!(f, "{what} packet has trailing bytes"),
            DecodeError::Protocol => f.write_str("unsupported protocol name or level in CONNECT"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// An MQTT version that is neither `5` nor `3.1.1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVersion(pub String);

impl fmt::Display for UnknownVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown MQTT version '{}': use '5' or '3.1.1'", self.0)
    }
}

impl core::error::Error for UnknownVersion {}

/// Largest value of a variable byte integer.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Append `v` as an MQTT variable byte integer.
pub fn put_varint(out: &mut Vec<u8>, mut v: usize) -> Result<(), EncodeError> {
    if v > MAX_REMAINING_LENGTH {
        return Err(EncodeError::PacketTooLarge(v));
    }
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            return Ok(());
        }
    }
}

/// Read a variable byte integer from the start of `buf`: `Ok(None)` when
/// more bytes are needed, else the value and the bytes it used.
pub fn get_varint(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        value |= ((b & 0x7F) as usize) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::BadRemainingLength)
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    put_bin(out, s.as_bytes())
}

fn put_bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), EncodeError> {
    let len = u16::try_from(b.len()).map_err(|_| EncodeError::FieldTooLong(b.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// Append one packet, in the wire format of `version`.
pub fn encode(packet: &Packet, version: MqttVersion, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let v5 = version == MqttVersion::V5;
    let mut body = Vec::new();
    let first: u8 = match packet {
        Packet::Connect(c) => {
            put_str(&mut body, "MQTT")?;
            body.push(version.level());
            body.push(if c.clean_start { 0x02 } else { 0x00 });
            body.extend_from_slice(&c.keep_alive.to_be_bytes());
            if v5 {
                c.properties.encode(&mut body)?;
            }
            put_str(&mut body, &c.client_id)?;
            0x10
        }
        Packet::ConnAck(c) => {
            body.push(u8::from(c.session_present));
            body.push(c.reason.0);
            if v5 {
                c.properties.encode(&mut body)?;
            }
            0x20
        }
        Packet::Publish(p) => {
            match (p.qos, p.packet_id) {
                (QoS::AtMostOnce, None) => {}
                (QoS::AtLeastOnce | QoS::ExactlyOnce, Some(id)) if id != 0 => {}
                _ => return Err(EncodeError::PacketId),
            }
            put_str(&mut body, &p.topic)?;
            if let Some(id) = p.packet_id {
                body.extend_from_slice(&id.to_be_bytes());
            }
            if v5 {
                p.properties.encode(&mut body)?;
            }
            body.extend_from_slice(&p.payload);
            0x30 | (u8::from(p.dup) << 3) | (p.qos.bits() << 1) | u8::from(p.retain)
        }
        Packet::PubAck(a) => {
            body.extend_from_slice(&a.packet_id.to_be_bytes());
            if v5 && (a.reason != ReasonCode::SUCCESS || a.properties != Properties::default()) {
                body.push(a.reason.0);
                if a.properties != Properties::default() {
                    a.properties.encode(&mut body)?;
                }
            }
            0x40
        }
        Packet::Subscribe(s) => {
            body.extend_from_slice(&s.packet_id.to_be_bytes());
            if v5 {
                Properties::default().encode(&mut body)?;
            }
            for (filter, qos) in &s.filters {
                put_str(&mut body, filter)?;
                body.push(qos.bits());
            }
            0x82
        }
        Packet::SubAck(s) => {
            body.extend_from_slice(&s.packet_id.to_be_bytes());
            if v5 {
                s.properties.encode(&mut body)?;
            }
            body.extend(s.reasons.iter().map(|r| r.0));
            0x90
        }
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(d) => {
            if v5 && (d.reason != ReasonCode::SUCCESS || d.properties != Properties::default()) {
                body.push(d.reason.0);
                d.properties.encode(&mut body)?;
            }
            0xE0
        }
        Packet::Other {
            packet_type,
            flags,
            body: b,
        } => {
            body.extend_from_slice(b);
            (packet_type << 4) | (flags & 0x0F)
        }
    };
    out.push(first);
    put_varint(out, body.len())?;
    out.extend_from_slice(&body);
    Ok(())
}

/// Decode one packet from the start of `buf`.
///
/// `Ok(None)`: the packet is not complete yet, read more bytes. `Ok(Some((p,
/// n)))`: `p` used the first `n` bytes. Packets whose remaining length is
/// above `max_size` are refused before their body arrives.
pub fn decode(
    buf: &[u8],
    version: MqttVersion,
    max_size: usize,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((len, n)) = get_varint(&buf[1..])? else {
        return Ok(None);
    };
    if len > max_size {
        return Err(DecodeError::TooLarge {
            size: len,
            limit: max_size,
        });
    }
    let total = 1 + n + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[1 + n..total];
    let packet = decode_body(first >> 4, first & 0x0F, body, version)?;
    Ok(Some((packet, total)))
}

fn expect_flags(packet_type: u8, flags: u8, want: u8) -> Result<(), DecodeError> {
    if flags == want {
        Ok(())
    } else {
        Err(DecodeError::BadFlags { packet_type, flags })
    }
}

fn decode_body(
    packet_type: u8,
    flags: u8,
    body: &[u8],
    version: MqttVersion,
) -> Result<Packet, DecodeError> {
    let v5 = version == MqttVersion::V5;
    let mut r = Reader::new(body);
    let packet = match packet_type {
        1 => {
            expect_flags(packet_type, flags, 0)?;
            r.ctx = "CONNECT";
            if r.string()? != "MQTT" {
                return Err(DecodeError::Protocol);
            }
            let level = r.u8()?;
            if level != version.level() {
                return Err(DecodeError::Protocol);
            }
            let cflags = r.u8()?;
            let keep_alive = r.u16()?;
            let properties = if v5 {
                Properties::decode(&mut r)?
            } else {
                Properties::default()
            };
            let client_id = r.string()?;
            // Will, user name and password are not used by the agent; a
            // CONNECT carrying them keeps its extra fields unread.
            if cflags & 0xC4 != 0 {
                r.rest();
            }
            Packet::Connect(Connect {
                client_id,
                keep_alive,
                clean_start: cflags & 0x02 != 0,
                properties,
            })
        }
        2 => {
            expect_flags(packet_type, flags, 0)?;
            r.ctx = "CONNACK";
            let session_present = r.u8()? & 0x01 != 0;
            let rc = r.u8()?;
            let (reason, properties) = if v5 {
                let p = if r.is_empty() {
                    Properties::default()
                } else {
                    Properties::decode(&mut r)?
                };
                (ReasonCode(rc), p)
            } else {
                (ReasonCode::from_v311_connack(rc), Properties::default())
            };
            Packet::ConnAck(ConnAck {
                session_present,
                reason,
                properties,
            })
        }
        3 => {
            r.ctx = "PUBLISH";
            let qos = QoS::from_bits((flags >> 1) & 0x03)
                .ok_or(DecodeError::BadFlags { packet_type, flags })?;
            let topic = r.string()?;
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                Some(r.u16()?)
            };
            let properties = if v5 {
                Properties::decode(&mut r)?
            } else {
                Properties::default()
            };
            Packet::Publish(Publish {
                dup: flags & 0x08 != 0,
                qos,
                retain: flags & 0x01 != 0,
                topic,
                packet_id,
                properties,
                payload: r.rest().to_vec(),
            })
        }
        4 => {
            expect_flags(packet_type, flags, 0)?;
            r.ctx = "PUBACK";
            let packet_id = r.u16()?;
            let mut reason = ReasonCode::SUCCESS;
            let mut properties = Properties::default();
            if v5 && !r.is_empty() {
                reason = ReasonCode(r.u8()?);
                if !r.is_empty() {
                    properties = Properties::decode(&mut r)?;
                }
            }
            Packet::PubAck(PubAck {
                packet_id,
                reason,
                properties,
            })
        }
        8 => {
            expect_flags(packet_type, flags, 0x02)?;
            r.ctx = "SUBSCRIBE";
            let packet_id = r.u16()?;
            if v5 {
                Properties::decode(&mut r)?;
            }
            let mut filters = Vec::new();
            while !r.is_empty() {
                let f = r.string()?;
                let opts = r.u8()?;
                let qos = QoS::from_bits(opts & 0x03)
                    .ok_or(DecodeError::BadFlags { packet_type, flags })?;
                filters.push((f, qos));
            }
            Packet::Subscribe(Subscribe { packet_id, filters })
        }
        9 => {
            expect_flags(packet_type, flags, 0)?;
            r.ctx = "SUBACK";
            let packet_id = r.u16()?;
            let properties = if v5 {
                Properties::decode(&mut r)?
            } else {
                Properties::default()
            };
            let reasons = r.rest().iter().map(|&b| ReasonCode(b)).collect();
            Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties,
            })
        }
        12 => {
            expect_flags(packet_type, flags, 0)?;
            Packet::PingReq
        }
        13 => {
            expect_flags(packet_type, flags, 0)?;
            Packet::PingResp
        }
        14 => {
            expect_flags(packet_type, flags, 0)?;
            r.ctx = "DISCONNECT";
            let mut d = Disconnect::default();
            if v5 && !r.is_empty() {
                d.reason = ReasonCode(r.u8()?);
                if !r.is_empty() {
                    d.properties = Properties::decode(&mut r)?;
                }
            }
            Packet::Disconnect(d)
        }
        _ => Packet::Other {
            packet_type,
            flags,
            body: r.rest().to_vec(),
        },
    };
    if !r.is_empty() {
        return Err(DecodeError::Trailing(r.ctx));
    }
    Ok(packet)
}

/// A cursor over a packet body.
struct Reader<'a> {
    buf: &'a [u8],
    ctx: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, ctx: "MQTT" }
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(self.ctx));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }

    fn rest(&mut self) -> &'a [u8] {
        let r = self.buf;
        self.buf = &[];
        r
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self) -> Result<usize, DecodeError> {
        match get_varint(self.buf)? {
            Some((v, n)) => {
                self.buf = &self.buf[n..];
                Ok(v)
            }
            None => Err(DecodeError::Truncated(self.ctx)),
        }
    }

    fn binary(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u16()? as usize;
        self.take(n)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.binary()?;
        core::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Utf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    const MAX: usize = 1 << 20;

    fn enc(p: &Packet, v: MqttVersion) -> Vec<u8> {
        let mut out = Vec::new();
        encode(p, v, &mut out).unwrap();
        out
    }

    fn roundtrip(p: Packet, v: MqttVersion) {
        let bytes = enc(&p, v);
        let (q, n) = decode(&bytes, v, MAX).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(q, p);
        // Every strict prefix asks for more bytes.
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut], v, MAX).unwrap(), None, "prefix {cut}");
        }
    }

    #[test]
    fn varint_boundaries() {
        for (v, bytes) in [
            (0usize, vec![0x00]),
            (127, vec![0x7F]),
            (128, vec![0x80, 0x01]),
            (16_383, vec![0xFF, 0x7F]),
            (16_384, vec![0x80, 0x80, 0x01]),
            (2_097_151, vec![0xFF, 0xFF, 0x7F]),
            (2_097_152, vec![0x80, 0x80, 0x80, 0x01]),
            (MAX_REMAINING_LENGTH, vec![0xFF, 0xFF, 0xFF, 0x7F]),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v).unwrap();
            assert_eq!(out, bytes, "{v}");
            assert_eq!(get_varint(&bytes).unwrap(), Some((v, bytes.len())));
        }
        assert!(put_varint(&mut Vec::new(), MAX_REMAINING_LENGTH + 1).is_err());
        assert_eq!(
            get_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            Err(DecodeError::BadRemainingLength)
        );
        assert_eq!(get_varint(&[0x80, 0x80]).unwrap(), None);
    }

    #[test]
    fn connect_v311_bytes() {
        let p = Packet::Connect(Connect {
            client_id: "m5go".into(),
            keep_alive: 30,
            clean_start: true,
            properties: Properties::default(),
        });
        assert_eq!(
            enc(&p, MqttVersion::V311),
            [
                0x10, 16, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 4, b'm', b'5', b'g',
                b'o'
            ]
        );
        roundtrip(p, MqttVersion::V311);
    }

    #[test]
    fn connect_v5_bytes_with_session_expiry() {
        let p = Packet::Connect(Connect {
            client_id: "a".into(),
            keep_alive: 60,
            clean_start: false,
            properties: Properties {
                session_expiry_interval: Some(3600),
                ..Properties::default()
            },
        });
        assert_eq!(
            enc(&p, MqttVersion::V5),
            [
                0x10, 19, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x00, 0, 60, 5, 0x11, 0, 0, 0x0E, 0x10,
                0, 1, b'a'
            ]
        );
        roundtrip(p, MqttVersion::V5);
    }

    #[test]
    fn connack_v5_with_properties_from_mosquitto() {
        // What Mosquitto 2.0 sends: Topic Alias Maximum 10, Receive Maximum
        // 20, Assigned Client Identifier absent, Retain Available…
        let bytes = [
            0x20, 0x0D, 0x00, 0x00, 0x0A, 0x22, 0x00, 0x0A, 0x21, 0x00, 0x14, 0x25, 0x01, 0x2A,
            0x01,
        ];
        let (p, n) = decode(&bytes, MqttVersion::V5, MAX).unwrap().unwrap();
        assert_eq!(n, bytes.len());
        let Packet::ConnAck(c) = p else {
            panic!("{p:?}")
        };
        assert!(!c.session_present);
        assert_eq!(c.reason, ReasonCode::SUCCESS);
        assert_eq!(c.properties.receive_maximum, Some(20));
    }

    #[test]
    fn connack_v311_return_codes_map_to_v5() {
        let (p, _) = decode(&[0x20, 2, 0x01, 0x05], MqttVersion::V311, MAX)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            Packet::ConnAck(ConnAck {
                session_present: true,
                reason: ReasonCode::NOT_AUTHORIZED,
                properties: Properties::default()
            })
        );
        roundtrip(
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason: ReasonCode(0x87),
                properties: Properties {
                    reason_string: Some("no".into()),
                    ..Properties::default()
                },
            }),
            MqttVersion::V5,
        );
    }

    #[test]
    fn publish_qos1_v5_bytes() {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "a/b".into(),
            packet_id: Some(7),
            properties: Properties::default(),
            payload: b"{}".to_vec(),
        });
        assert_eq!(
            enc(&p, MqttVersion::V5),
            [0x32, 10, 0, 3, b'a', b'/', b'b', 0, 7, 0, b'{', b'}']
        );
        assert_eq!(
            enc(&p, MqttVersion::V311),
            [0x32, 9, 0, 3, b'a', b'/', b'b', 0, 7, b'{', b'}']
        );
        roundtrip(p.clone(), MqttVersion::V5);
        roundtrip(p, MqttVersion::V311);
    }

    #[test]
    fn publish_flags_and_large_payload() {
        let p = Packet::Publish(Publish {
            dup: true,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: "t".into(),
            packet_id: Some(65535),
            properties: Properties {
                user_properties: vec![("k".into(), "v".into())],
                ..Properties::default()
            },
            payload: vec![0xAB; 20_000],
        });
        let bytes = enc(&p, MqttVersion::V5);
        assert_eq!(bytes[0], 0x3B);
        roundtrip(p, MqttVersion::V5);
        let q0 = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            properties: Properties::default(),
            payload: vec![],
        });
        roundtrip(q0, MqttVersion::V311);
    }

    #[test]
    fn publish_without_packet_id_is_refused() {
        let p = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: "t".into(),
            packet_id: None,
            properties: Properties::default(),
            payload: vec![],
        });
        assert_eq!(
            encode(&p, MqttVersion::V5, &mut Vec::new()),
            Err(EncodeError::PacketId)
        );
    }

    #[test]
    fn publish_qos3_is_malformed() {
        assert!(matches!(
            decode(&[0x36, 5, 0, 1, b't', 0, 1], MqttVersion::V311, MAX),
            Err(DecodeError::BadFlags { .. })
        ));
    }

    #[test]
    fn puback_short_and_long_forms() {
        // MQTT 5 allows remaining length 2 (success), 3 (reason) or more.
        let (p, _) = decode(&[0x40, 2, 0, 9], MqttVersion::V5, MAX)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            Packet::PubAck(PubAck {
                packet_id: 9,
                reason: ReasonCode::SUCCESS,
                properties: Properties::default()
            })
        );
        let (p, _) = decode(&[0x40, 3, 0, 9, 0x87], MqttVersion::V5, MAX)
            .unwrap()
            .unwrap();
        let Packet::PubAck(a) = p else { panic!() };
        assert_eq!(a.reason, ReasonCode::NOT_AUTHORIZED);
        assert_eq!(a.reason.to_string(), "0x87 Not authorized");
        let (p, _) = decode(&[0x40, 4, 0, 9, 0x10, 0], MqttVersion::V5, MAX)
            .unwrap()
            .unwrap();
        let Packet::PubAck(a) = p else { panic!() };
        assert_eq!(a.reason, ReasonCode::NO_MATCHING_SUBSCRIBERS);
        assert!(a.reason.is_success());
        assert_eq!(
            enc(
                &Packet::PubAck(PubAck {
                    packet_id: 9,
                    reason: ReasonCode::SUCCESS,
                    properties: Properties::default()
                }),
                MqttVersion::V5
            ),
            [0x40, 2, 0, 9]
        );
        roundtrip(
            Packet::PubAck(PubAck {
                packet_id: 1,
                reason: ReasonCode(0x87),
                properties: Properties {
                    reason_string: Some("acl".into()),
                    ..Properties::default()
                },
            }),
            MqttVersion::V5,
        );
    }

    #[test]
    fn subscribe_and_suback() {
        let s = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![("m5go/env".into(), QoS::AtLeastOnce)],
        });
        let bytes = enc(&s, MqttVersion::V5);
        assert_eq!(&bytes[..6], &[0x82, 14, 0, 1, 0, 0]);
        assert_eq!(*bytes.last().unwrap(), 0x01);
        roundtrip(s.clone(), MqttVersion::V5);
        roundtrip(s, MqttVersion::V311);
        let (p, _) = decode(&[0x90, 4, 0, 1, 0, 0x87], MqttVersion::V5, MAX)
            .unwrap()
            .unwrap();
        let Packet::SubAck(a) = p else { panic!() };
        assert_eq!(a.reasons, vec![ReasonCode::NOT_AUTHORIZED]);
        let (p, _) = decode(&[0x90, 3, 0, 1, 0x80], MqttVersion::V311, MAX)
            .unwrap()
            .unwrap();
        let Packet::SubAck(a) = p else { panic!() };
        assert_eq!(a.reasons, vec![ReasonCode::UNSPECIFIED_ERROR]);
    }

    #[test]
    fn ping_and_disconnect() {
        assert_eq!(enc(&Packet::PingReq, MqttVersion::V5), [0xC0, 0]);
        assert_eq!(enc(&Packet::PingResp, MqttVersion::V311), [0xD0, 0]);
        roundtrip(Packet::PingReq, MqttVersion::V5);
        roundtrip(Packet::PingResp, MqttVersion::V5);
        let d = Packet::Disconnect(Disconnect::default());
        assert_eq!(enc(&d, MqttVersion::V5), [0xE0, 0]);
        assert_eq!(enc(&d, MqttVersion::V311), [0xE0, 0]);
        roundtrip(d, MqttVersion::V5);
        let (p, _) = decode(&[0xE0, 1, 0x8B], MqttVersion::V5, MAX)
            .unwrap()
            .unwrap();
        let Packet::Disconnect(d) = p else { panic!() };
        assert_eq!(d.reason.name(), "Server shutting down");
        roundtrip(
            Packet::Disconnect(Disconnect {
                reason: ReasonCode(0x8E),
                properties: Properties {
                    reason_string: Some("x".into()),
                    ..Properties::default()
                },
            }),
            MqttVersion::V5,
        );
    }

    #[test]
    fn unknown_packets_are_data() {
        let (p, n) = decode(&[0x62, 2, 0, 5, 0xC0, 0], MqttVersion::V311, MAX)
            .unwrap()
            .unwrap();
        assert_eq!(n, 4);
        assert_eq!(p.name(), "PUBREL");
        assert_eq!(
            p,
            Packet::Other {
                packet_type: 6,
                flags: 2,
                body: vec![0, 5]
            }
        );
    }

    #[test]
    fn malformed_inputs_are_errors_not_panics() {
        assert!(matches!(
            decode(&[0x30, 0x80, 0x80, 0x80, 0x01], MqttVersion::V5, MAX),
            Err(DecodeError::TooLarge { .. })
        ));
        assert_eq!(
            decode(&[0x40, 1, 0], MqttVersion::V5, MAX),
            Err(DecodeError::Truncated("PUBACK"))
        );
        assert_eq!(
            decode(&[0xC0, 1, 0], MqttVersion::V5, MAX),
            Err(DecodeError::Trailing("MQTT"))
        );
        assert!(matches!(
            decode(&[0xC1, 0], MqttVersion::V5, MAX),
            Err(DecodeError::BadFlags { .. })
        ));
        assert_eq!(
            decode(&[0x20, 5, 0, 0, 2, 0x7F, 0], MqttVersion::V5, MAX),
            Err(DecodeError::UnknownProperty(0x7F))
        );
        assert_eq!(
            decode(&[0x30, 4, 0, 2, 0xFF, 0xFE], MqttVersion::V311, MAX),
            Err(DecodeError::Utf8)
        );
        // A tiny fuzz: no input panics.
        let mut x: u32 = 0x1234_5678;
        for _ in 0..20_000 {
            let mut buf = [0u8; 12];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            let _ = decode(&buf, MqttVersion::V5, MAX);
            let _ = decode(&buf, MqttVersion::V311, MAX);
        }
    }

    #[test]
    fn reason_code_display() {
        assert_eq!(ReasonCode(0x01).to_string(), "0x01 Granted QoS 1");
        assert_eq!(ReasonCode(0x7E).name(), "unknown reason code");
        assert!(!ReasonCode(0x80).is_success());
    }
}
