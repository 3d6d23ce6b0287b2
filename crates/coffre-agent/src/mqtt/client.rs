//! One MQTT session over TLS over TCP, blocking.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, StreamOwned};

use super::codec::{
    self, ConnAck, Connect, Disconnect, MqttVersion, Packet, Properties, PubAck, Publish, QoS,
    ReasonCode, SubAck, Subscribe,
};
use super::net::{self, Socket};
use crate::error::{Error, Result};
use crate::identity::chip_error_in;

/// Where the broker is: a host name or IP address and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerAddr {
    /// Host name or IP address (no brackets around IPv6).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddr {
    /// The MQTT-over-TLS port, used when none is given.
    pub const DEFAULT_PORT: u16 = 8883;

    /// A broker address.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        BrokerAddr {
            host: host.into(),
            port,
        }
    }
}

impl FromStr for BrokerAddr {
    type Err = Error;

    /// `host:port`, `host` (port 8883), `[v6]:port` or `[v6]`.
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::BrokerAddress(s.to_owned());
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(sa.into());
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
            let port = match tail {
                "" => Self::DEFAULT_PORT,
                t => t
                    .strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            };
            return Ok(BrokerAddr::new(host, port));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                Ok(BrokerAddr::new(host, port.parse().map_err(|_| bad())?))
            }
            None if !s.is_empty() => Ok(BrokerAddr::new(s, Self::DEFAULT_PORT)),
            _ => Err(bad()),
        }
    }
}

impl From<SocketAddr> for BrokerAddr {
    fn from(sa: SocketAddr) -> Self {
        BrokerAddr::new(sa.ip().to_string(), sa.port())
    }
}

impl fmt::Display for BrokerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Settings of one MQTT connection.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The broker.
    pub broker: BrokerAddr,
    /// The name to check the broker certificate against; default: the
    /// broker host (an IP address is checked against IP SANs).
    pub server_name: Option<String>,
    /// Client identifier; with `use_identity_as_username`, use the device
    /// id (the certificate's CN).
    pub client_id: String,
    /// MQTT version. Default 5.
    pub version: MqttVersion,
    /// Keep alive. Default 30 s; a PINGREQ goes out after 3/4 of it idle.
    pub keep_alive: Duration,
    /// Clean start (discard any session kept by the broker). Default true.
    pub clean_start: bool,
    /// MQTT 5 Session Expiry Interval, seconds: how long the broker keeps
    /// the session (and queues QoS 1 messages) after a disconnection.
    /// Default `None` (0: the session ends with the connection).
    pub session_expiry: Option<u32>,
    /// TCP connect + TLS handshake + CONNACK budget. Default 10 s.
    pub connect_timeout: Duration,
    /// Wait for PUBACK, SUBACK, PINGRESP; socket write timeout. Default 10 s.
    pub timeout: Duration,
    /// Re-arm `TCP_QUICKACK` after each read (Linux). Default true.
    pub quickack: bool,
    /// Largest packet accepted from the broker. Default 1 MiB.
    pub max_packet_size: usize,
}

impl ClientOptions {
    /// Options with the defaults above.
    pub fn new(broker: BrokerAddr, client_id: impl Into<String>) -> Self {
        ClientOptions {
            broker,
            server_name: None,
            client_id: client_id.into(),
            version: MqttVersion::V5,
            keep_alive: Duration::from_secs(30),
            clean_start: true,
            session_expiry: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            quickack: true,
            max_packet_size: 1 << 20,
        }
    }
}

/// How long each step of opening a session took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectTiming {
    /// TCP connect (name resolution included).
    pub tcp: Duration,
    /// TLS handshake (the chip's signature included).
    pub tls: Duration,
    /// CONNECT sent → CONNACK received.
    pub connack: Duration,
}

impl ConnectTiming {
    /// The sum of the steps.
    pub fn total(&self) -> Duration {
        self.tcp + self.tls + self.connack
    }
}

/// What the broker agreed to when the session opened.
#[derive(Debug, Clone)]
pub struct Session {
    /// The negotiated TLS version.
    pub tls_version: ProtocolVersion,
    /// The negotiated cipher suite.
    pub cipher_suite: Option<rustls::CipherSuite>,
    /// The broker resumed a stored session.
    pub session_present: bool,
    /// CONNACK properties (MQTT 5).
    pub properties: Properties,
    /// The keep alive in force (the broker's Server Keep Alive wins).
    pub keep_alive: Duration,
    /// Step timings.
    pub timing: ConnectTiming,
}

/// The broker's answer to a PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Packet identifier used (QoS 1).
    pub packet_id: Option<u16>,
    /// PUBACK reason code: 0x00 Success, 0x10 No matching subscribers,
    /// 0x87 Not authorized (ACL)… Always 0x00 for QoS 0 and for MQTT
    /// 3.1.1, where a broker drops a refused message silently.
    pub reason: ReasonCode,
    /// The broker's reason string, if any.
    pub reason_string: Option<String>,
    /// PUBLISH sent → PUBACK received (zero for QoS 0).
    pub rtt: Duration,
}

/// An application message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS it was delivered with.
    pub qos: QoS,
    /// Retained message.
    pub retain: bool,
    /// Redelivery flag.
    pub dup: bool,
    /// When it was read from the socket.
    pub received: SystemTime,
}

/// An open MQTT session over TLS.
///
/// Open it with [`Client::connect`]; end it with [`Client::disconnect`]
/// (DISCONNECT, `close_notify`, TCP half-close). Dropping it closes the
/// socket without any of that, as a crash would.
pub struct Client {
    stream: StreamOwned<ClientConnection, Socket>,
    broker: String,
    version: MqttVersion,
    timeout: Duration,
    max_packet: usize,
    rbuf: Vec<u8>,
    next_id: u16,
    keep_alive: Duration,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    incoming: VecDeque<Message>,
    session: Session,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("broker", &self.broker)
            .field("version", &self.version)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// What an incoming packet turned out to be.
enum Incoming {
    PubAck(PubAck),
    SubAck(SubAck),
    PingResp,
    Message,
}

fn tls_error_of(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Sort a rustls error from the handshake phase into what the user must fix.
fn classify_tls(broker: &str, te: &rustls::Error) -> Error {
    if let Some(chip) = chip_error_in(te) {
        return Error::from(chip);
    }
    match te {
        rustls::Error::InvalidCertificate(_) | rustls::Error::InvalidCertRevocationList(_) => {
            Error::BrokerCertificate {
                broker: broker.to_owned(),
                source: te.clone(),
            }
        }
        // A record corrupted on the way (tampering, a faulty link): the
        // broker did not judge the identity, so this is worth a retry.
        rustls::Error::AlertReceived(
            rustls::AlertDescription::BadRecordMac | rustls::AlertDescription::RecordOverflow,
        ) => Error::Tls {
            broker: broker.to_owned(),
            source: te.clone(),
        },
        rustls::Error::AlertReceived(alert) => Error::HandshakeRefused {
            broker: broker.to_owned(),
            detail: format!(
                "TLS alert '{alert:?}' from the broker{}",
                alert_hint(*alert)
            ),
            by_alert: true,
        },
        rustls::Error::PeerIncompatible(p) => Error::HandshakeRefused {
            broker: broker.to_owned(),
            detail: format!("{p:?}; check the TLS version the broker accepts (tls_version)"),
            by_alert: true,
        },
        other => Error::Tls {
            broker: broker.to_owned(),
            source: other.clone(),
        },
    }
}

/// What an alert from the broker usually means for a device.
fn alert_hint(alert: rustls::AlertDescription) -> &'static str {
    use rustls::AlertDescription as A;
    match alert {
        A::DecryptError => {
            ": the handshake signature did not verify against the certificate's key \
             (wrong chip or key slot?)"
        }
        A::UnknownCA => ": the broker does not know the CA that issued the device certificate",
        A::CertificateExpired => ": the device certificate has expired",
        A::CertificateRevoked => ": the device certificate is revoked (CRL)",
        A::BadCertificate | A::UnsupportedCertificate | A::CertificateUnknown => {
            ": the broker rejected the device certificate"
        }
        A::CertificateRequired => ": the broker requires a client certificate",
        A::ProtocolVersion | A::HandshakeFailure => {
            ": no TLS version or cipher suite in common (check tls_version on the broker)"
        }
        _ => "",
    }
}

fn handshake_error(broker: &str, e: io::Error, after: Duration) -> Error {
    if let Some(te) = tls_error_of(&e) {
        return classify_tls(broker, te);
    }
    if is_timeout(&e) {
        Error::Timeout {
            what: "TLS handshake",
            broker: broker.to_owned(),
            after,
        }
    } else if is_closed(&e) {
        Error::HandshakeRefused {
            broker: broker.to_owned(),
            detail: format!("the broker closed the connection during the handshake: {e}"),
            by_alert: false,
        }
    } else {
        Error::Io {
            broker: broker.to_owned(),
            source: e,
        }
    }
}

/// After a write failed because the broker closed the socket: read what it
/// sent before closing. A broker that refuses the device sends an alert,
/// then closes; the alert may still wait in the receive queue.
fn salvage_alert(conn: &mut ClientConnection, sock: &mut Socket) -> Option<rustls::Error> {
    let _ = sock.tcp.set_read_timeout(Some(Duration::from_millis(200)));
    for _ in 0..64 {
        match conn.read_tls(sock) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {
                if let Err(e) = conn.process_new_packets() {
                    return Some(e);
                }
            }
        }
    }
    None
}

impl Client {
    /// Open a session: TCP connect, TLS handshake, CONNECT, CONNACK.
    ///
    /// A refusal comes back as a typed error: [`Error::Connect`] (no TCP),
    /// [`Error::BrokerCertificate`] (the device does not trust the
    /// broker), [`Error::HandshakeRefused`] (the broker does not accept
    /// the device: its log says why), [`Error::ChipGone`] (the chip did not
    /// answer when asked to sign), [`Error::ConnectRefused`] (CONNACK
    /// reason code).
    pub fn connect(opts: &ClientOptions, tls: Arc<ClientConfig>) -> Result<Client> {
        let broker = opts.broker.to_string();
        let t0 = Instant::now();
        let deadline = t0 + opts.connect_timeout;
        let connect_err = |source| Error::Connect {
            broker: broker.clone(),
            source,
        };
        let tcp = net::connect(&opts.broker.host, opts.broker.port, opts.connect_timeout)
            .map_err(connect_err)?;
        tcp.set_read_timeout(Some(opts.connect_timeout))
            .and_then(|_| tcp.set_write_timeout(Some(opts.timeout.max(Duration::from_millis(1)))))
            .map_err(connect_err)?;
        let sock = Socket::new(tcp, opts.quickack).map_err(connect_err)?;
        let t_tcp = t0.elapsed();

        let name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| opts.broker.host.clone());
        let server_name = ServerName::try_from(name.clone()).map_err(|_| {
            Error::InvalidOption(format!(
                "'{name}' is not a valid DNS name or IP address for the broker certificate check"
            ))
        })?;
        let conn = ClientConnection::new(tls, server_name).map_err(Error::TlsConfig)?;
        let mut stream = StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: "TLS handshake",
                    broker,
                    after: opts.connect_timeout,
                });
            }
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                if tls_error_of(&e).is_none() && is_closed(&e) {
                    if let Some(te) = salvage_alert(&mut stream.conn, &mut stream.sock) {
                        return Err(classify_tls(&broker, &te));
                    }
                }
                return Err(handshake_error(&broker, e, opts.connect_timeout));
            }
        }
        let t_tls = t0.elapsed() - t_tcp;
        let tls_version = stream
            .conn
            .protocol_version()
            .unwrap_or(ProtocolVersion::Unknown(0));
        let cipher_suite = stream.conn.negotiated_cipher_suite().map(|s| s.suite());

        let mut client = Client {
            stream,
            broker,
            version: opts.version,
            timeout: opts.timeout,
            max_packet: opts.max_packet_size,
            rbuf: Vec::with_capacity(4096),
            next_id: 0,
            keep_alive: opts.keep_alive,
            last_sent: Instant::now(),
            ping_sent: None,
            incoming: VecDeque::new(),
            session: Session {
                tls_version,
                cipher_suite,
                session_present: false,
                properties: Properties::default(),
                keep_alive: opts.keep_alive,
                timing: ConnectTiming::default(),
            },
        };
        let keep_alive = u16::try_from(opts.keep_alive.as_secs()).unwrap_or(u16::MAX);
        let t_connect = Instant::now();
        let connack = client
            .send(&Packet::Connect(Connect {
                client_id: opts.client_id.clone(),
                keep_alive,
                clean_start: opts.clean_start,
                properties: Properties {
                    session_expiry_interval: opts.session_expiry,
                    ..Properties::default()
                },
            }))
            .and_then(|_| client.wait_connack(deadline, opts.connect_timeout))
            .map_err(|e| match e {
                // Over TLS 1.3 the client's Finished goes out before the
                // broker has checked the client certificate: a refusal
                // arrives as an alert while CONNACK is awaited.
                Error::Tls { broker, source } => match classify_tls(&broker, &source) {
                    Error::Tls { broker, source } => Error::Tls { broker, source },
                    refused => refused,
                },
                Error::ConnectionClosed { clean: false, .. } | Error::Io { .. } => {
                    match salvage_alert(&mut client.stream.conn, &mut client.stream.sock) {
                        Some(te) => classify_tls(&client.broker, &te),
                        None => e,
                    }
                }
                other => other,
            })?;
        let t_connack = t_connect.elapsed();
        if !connack.reason.is_success() {
            let hint = match connack.reason.0 {
                0x85 => "use the device id as client id",
                0x86 | 0x87 => "check the broker's ACL and that the certificate CN is the device id (use_identity_as_username)",
                0x84 => "try the other MQTT version (3.1.1 or 5)",
                0x88 | 0x89 | 0x8B | 0x9F => "the broker is busy or restarting; try again later",
                0x8A => "the broker has banned this client",
                _ => "see the broker log",
            };
            return Err(Error::ConnectRefused {
                broker: client.broker.clone(),
                reason: connack.reason,
                reason_string: connack.properties.reason_string.clone(),
                hint,
            });
        }
        if let Some(k) = connack.properties.server_keep_alive {
            client.keep_alive = Duration::from_secs(k.into());
        }
        client.session.keep_alive = client.keep_alive;
        client.session.session_present = connack.session_present;
        client.session.properties = connack.properties;
        client.session.timing = ConnectTiming {
            tcp: t_tcp,
            tls: t_tls,
            connack: t_connack,
        };
        tracing::debug!(broker = %client.broker, tls = ?client.session.tls_version, "MQTT session open");
        // From now on reads wait as long as each call asks.
        Ok(client)
    }

    fn wait_connack(&mut self, deadline: Instant, budget: Duration) -> Result<ConnAck> {
        match self.read_packet(deadline)? {
            Some(Packet::ConnAck(c)) => Ok(c),
            Some(other) => Err(Error::Protocol {
                broker: self.broker.clone(),
                detail: format!("expected CONNACK, got {}", other.name()),
            }),
            None => Err(Error::Timeout {
                what: "CONNACK",
                broker: self.broker.clone(),
                after: budget,
            }),
        }
    }

    /// What the broker agreed to.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The broker, as `host:port`.
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The MQTT version of the session.
    pub fn version(&self) -> MqttVersion {
        self.version
    }

    fn next_packet_id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        if self.next_id == 0 {
            self.next_id = 1;
        }
        self.next_id
    }

    fn send(&mut self, p: &Packet) -> Result<()> {
        let mut buf = Vec::with_capacity(64);
        codec::encode(p, self.version, &mut buf)?;
        let r = self
            .stream
            .write_all(&buf)
            .and_then(|_| self.stream.flush());
        r.map_err(|e| self.io_error(e, "write"))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    fn io_error(&self, e: io::Error, what: &'static str) -> Error {
        let broker = self.broker.clone();
        if let Some(te) = tls_error_of(&e) {
            return Error::Tls {
                broker,
                source: te.clone(),
            };
        }
        if is_closed(&e) {
            Error::ConnectionClosed {
                broker,
                clean: false,
            }
        } else if is_timeout(&e) {
            Error::Timeout {
                what,
                broker,
                after: self.timeout,
            }
        } else {
            Error::Io { broker, source: e }
        }
    }

    /// The next packet, or `None` once `deadline` has passed.
    fn read_packet(&mut self, deadline: Instant) -> Result<Option<Packet>> {
        let mut chunk = [0u8; 4096];
        loop {
            match codec::decode(&self.rbuf, self.version, self.max_packet) {
                Ok(Some((p, n))) => {
                    self.rbuf.drain(..n);
                    return Ok(Some(p));
                }
                Ok(None) => {}
                Err(e) => return Err(Error::decode(&self.broker, e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream
                .sock
                .tcp
                .set_read_timeout(Some(wait))
                .map_err(|e| self.io_error(e, "read"))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(Error::ConnectionClosed {
                        broker: self.broker.clone(),
                        clean: true,
                    })
                }
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io_error(e, "read")),
            }
        }
    }

    fn handle_incoming(&mut self, p: Packet) -> Result<Incoming> {
        match p {
            Packet::Publish(pb) => {
                match (pb.qos, pb.packet_id) {
                    (QoS::AtMostOnce, _) => {}
                    (QoS::AtLeastOnce, Some(id)) => {
                        self.send(&Packet::PubAck(PubAck {
                            packet_id: id,
                            reason: ReasonCode::SUCCESS,
                            properties: Properties::default(),
                        }))?;
                    }
                    _ => {
                        return Err(Error::Protocol {
                            broker: self.broker.clone(),
                            detail: "QoS 2 PUBLISH, but only QoS 0 and 1 were subscribed".into(),
                        })
                    }
                }
                self.incoming.push_back(Message {
                    topic: pb.topic,
                    payload: pb.payload,
                    qos: pb.qos,
                    retain: pb.retain,
                    dup: pb.dup,
                    received: SystemTime::now(),
                });
                Ok(Incoming::Message)
            }
            Packet::PubAck(a) => Ok(Incoming::PubAck(a)),
            Packet::SubAck(a) => Ok(Incoming::SubAck(a)),
            Packet::PingResp => {
                self.ping_sent = None;
                Ok(Incoming::PingResp)
            }
            Packet::Disconnect(d) => Err(Error::ServerDisconnect {
                broker: self.broker.clone(),
                reason: d.reason,
                reason_string: d.properties.reason_string,
            }),
            other => Err(Error::Protocol {
                broker: self.broker.clone(),
                detail: format!("unexpected {} from the broker", other.name()),
            }),
        }
    }

    fn next_keepalive_due(&self) -> Option<Instant> {
        if self.keep_alive.is_zero() {
            return None;
        }
        Some(match self.ping_sent {
            Some(sent) => sent + self.timeout.max(self.keep_alive),
            None => self.last_sent + self.keep_alive * 3 / 4,
        })
    }

    fn keepalive_tick(&mut self) -> Result<()> {
        let Some(due) = self.next_keepalive_due() else {
            return Ok(());
        };
        if Instant::now() < due {
            return Ok(());
        }
        if self.ping_sent.is_some() {
            return Err(Error::Timeout {
                what: "PINGRESP",
                broker: self.broker.clone(),
                after: self.timeout.max(self.keep_alive),
            });
        }
        self.send(&Packet::PingReq)?;
        self.ping_sent = Some(Instant::now());
        Ok(())
    }

    /// Read and handle packets until `pick` accepts one, or time runs out.
    fn wait_for<T>(
        &mut self,
        what: &'static str,
        mut pick: impl FnMut(Incoming) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            self.keepalive_tick()?;
            let wake = self
                .next_keepalive_due()
                .map_or(deadline, |d| d.min(deadline));
            match self.read_packet(wake)? {
                Some(p) => {
                    let inc = self.handle_incoming(p)?;
                    if let Some(t) = pick(inc) {
                        return Ok(t);
                    }
                }
                None if Instant::now() >= deadline => {
                    return Err(Error::Timeout {
                        what,
                        broker: self.broker.clone(),
                        after: self.timeout,
                    })
                }
                None => {}
            }
        }
    }

    /// Publish one message. QoS 1 waits for the PUBACK and returns its
    /// reason code; messages that arrive meanwhile are kept for
    /// [`Client::poll`].
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retain: bool,
    ) -> Result<PublishOutcome> {
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce => Some(self.next_packet_id()),
            QoS::ExactlyOnce => {
                return Err(Error::InvalidOption(
                    "QoS 2 is not supported by this client; use QoS 1".into(),
                ))
            }
        };
        let sent = Instant::now();
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic: topic.to_owned(),
            packet_id,
            properties: Properties::default(),
            payload: payload.to_vec(),
        }))?;
        let Some(id) = packet_id else {
            return Ok(PublishOutcome {
                packet_id: None,
                reason: ReasonCode::SUCCESS,
                reason_string: None,
                rtt: Duration::ZERO,
            });
        };
        let ack = self.wait_for("PUBACK", |inc| match inc {
            Incoming::PubAck(a) if a.packet_id == id => Some(a),
            Incoming::PubAck(a) => {
                tracing::debug!(
                    packet_id = a.packet_id,
                    "PUBACK for an unknown packet id ignored"
                );
                None
            }
            _ => None,
        })?;
        Ok(PublishOutcome {
            packet_id,
            reason: ack.reason,
            reason_string: ack.properties.reason_string,
            rtt: sent.elapsed(),
        })
    }

    /// Subscribe to topic filters; returns one reason code per filter
    /// (granted QoS 0x00–0x01, or a failure such as 0x87 Not authorized;
    /// MQTT 3.1.1 reports every failure as 0x80).
    pub fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Result<Vec<ReasonCode>> {
        let id = self.next_packet_id();
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: id,
            filters: filters.iter().map(|(f, q)| ((*f).to_owned(), *q)).collect(),
        }))?;
        let ack = self.wait_for("SUBACK", |inc| match inc {
            Incoming::SubAck(a) if a.packet_id == id => Some(a),
            _ => None,
        })?;
        Ok(ack.reasons)
    }

    /// Send PINGREQ and wait for PINGRESP; returns the round trip.
    pub fn ping(&mut self) -> Result<Duration> {
        let sent = Instant::now();
        self.send(&Packet::PingReq)?;
        self.ping_sent = Some(sent);
        self.wait_for("PINGRESP", |inc| match inc {
            Incoming::PingResp => Some(()),
            _ => None,
        })?;
        Ok(sent.elapsed())
    }

    /// Wait up to `timeout` for a message, keeping the session alive
    /// (PINGREQ when idle) and acknowledging QoS 1 deliveries. `Ok(None)`
    /// when nothing arrived in time.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.incoming.pop_front() {
                return Ok(Some(m));
            }
            self.keepalive_tick()?;
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let wake = self
                .next_keepalive_due()
                .map_or(deadline, |d| d.min(deadline));
            if let Some(p) = self.read_packet(wake)? {
                match self.handle_incoming(p)? {
                    Incoming::PubAck(a) => {
                        tracing::debug!(packet_id = a.packet_id, "late PUBACK ignored")
                    }
                    Incoming::SubAck(_) | Incoming::PingResp | Incoming::Message => {}
                }
            }
        }
    }

    /// End the session cleanly: DISCONNECT (reason 0x00), TLS
    /// `close_notify`, TCP half-close, then wait briefly for the broker to
    /// close its side so the socket ends with FIN, not RST.
    pub fn disconnect(mut self) -> Result<()> {
        let sent = self.send(&Packet::Disconnect(Disconnect::default()));
        self.stream.conn.send_close_notify();
        let mut flushed = Ok(());
        while self.stream.conn.wants_write() {
            if let Err(e) = self.stream.conn.write_tls(&mut self.stream.sock) {
                flushed = Err(self.io_error(e, "close_notify"));
                break;
            }
        }
        let tcp = &mut self.stream.sock.tcp;
        let _ = tcp.shutdown(Shutdown::Write);
        let until = Instant::now() + Duration::from_millis(500);
        let mut sink = [0u8; 1024];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if tcp
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .is_err()
            {
                break;
            }
            match tcp.read(&mut sink) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = tcp.shutdown(Shutdown::Both);
        sent.and(flushed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        let a: BrokerAddr = "127.0.0.1:1883".parse().unwrap();
        assert_eq!(a, BrokerAddr::new("127.0.0.1", 1883));
        let a: BrokerAddr = "broker.lan".parse().unwrap();
        assert_eq!(a.port, 8883);
        assert_eq!(a.to_string(), "broker.lan:8883");
        let a: BrokerAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(a, BrokerAddr::new("::1", 9000));
        assert_eq!(a.to_string(), "[::1]:9000");
        let a: BrokerAddr = "[::1]".parse().unwrap();
        assert_eq!(a.port, 8883);
        for bad in ["", "host:", "host:port", "[::1", ":80", "a:b:c"] {
            let e = bad.parse::<BrokerAddr>().unwrap_err();
            assert!(e.to_string().contains("host:port"), "{bad}: {e}");
        }
    }
}
