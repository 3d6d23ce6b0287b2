//! One MQTT session over TLS over TCP, blocking: the Linux driver of the
//! device core's [`Connection`]. The session's state and timing decisions
//! are the core's ([`coffre_mqtt::Session`]); the bytes move through
//! [`TlsLink`]; this file opens both and words the errors.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use coffre_device::{Connection, LinkError, OpenFailed};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, ProtocolVersion};

use super::addr::BrokerAddr;
use super::codec::{MqttVersion, Properties, QoS, ReasonCode};
use super::net::{self, is_closed, is_timeout, tls_error_of, Socket, TlsLink};
use crate::clock::{Clock, Millis, SystemClock};
use crate::error::{Error, Result};
use crate::identity::chip_error_in;

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
    /// Local address to connect from. Default `None`: the system's
    /// choice. One source address has fewer than 30,000 ephemeral ports
    /// towards one broker address; a fleet on one machine spreads its
    /// connections over 127.0.0.0/8 with this.
    pub bind: Option<std::net::IpAddr>,
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
            bind: None,
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
    /// When it was read from the socket (wall clock).
    pub received: SystemTime,
}

/// An open MQTT session over TLS.
///
/// Open it with [`Client::connect`]; end it with [`Client::disconnect`]
/// (DISCONNECT, `close_notify`, TCP half-close). Dropping it closes the
/// socket without any of that, as a crash would.
pub struct Client {
    conn: Connection<TlsLink>,
    clock: Arc<dyn Clock>,
    origin: Instant,
    broker: String,
    version: MqttVersion,
    timeout: Duration,
    session: Session,
    first: Option<First>,
}

/// The message that went out right behind the CONNECT, until
/// [`Client::publish`] is asked for it.
struct First {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    packet_id: Option<u16>,
    sent: Instant,
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

/// What to do about a CONNACK refusal.
fn connack_hint(reason: ReasonCode) -> &'static str {
    match reason.0 {
        0x85 => "use the device id as client id",
        0x86 | 0x87 => "check the broker's ACL and that the certificate CN is the device id (use_identity_as_username)",
        0x84 => "try the other MQTT version (3.1.1 or 5)",
        0x88 | 0x89 | 0x8B | 0x9F => "the broker is busy or restarting; try again later",
        0x8A => "the broker has banned this client",
        _ => "see the broker log",
    }
}

/// An IO error on an open session, worded for the user.
fn io_error(broker: &str, e: io::Error, what: &'static str, after: Duration) -> Error {
    let broker = broker.to_owned();
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
            after,
        }
    } else {
        Error::Io { broker, source: e }
    }
}

/// A failure of the core's connection, worded for the user.
fn link_error(broker: &str, e: LinkError<io::Error>, what: &'static str, after: Duration) -> Error {
    use coffre_mqtt::Error as S;
    let broker_s = broker.to_owned();
    match e {
        LinkError::Link(e) => io_error(broker, e, what, after),
        LinkError::Closed => Error::ConnectionClosed {
            broker: broker_s,
            clean: true,
        },
        LinkError::Deadline => Error::Timeout {
            what,
            broker: broker_s,
            after,
        },
        LinkError::Session(s) => match s {
            S::Timeout {
                waiting_for,
                after_ms,
            } => Error::Timeout {
                what: waiting_for.name(),
                broker: broker_s,
                after: Duration::from_millis(after_ms),
            },
            S::ConnectRefused {
                reason,
                reason_string,
            } => Error::ConnectRefused {
                broker: broker_s,
                reason,
                reason_string,
                hint: connack_hint(reason),
            },
            S::ServerDisconnect {
                reason,
                reason_string,
            } => Error::ServerDisconnect {
                broker: broker_s,
                reason,
                reason_string,
            },
            S::Decode(d) => Error::decode(broker, d),
            S::Protocol(detail) => Error::Protocol {
                broker: broker_s,
                detail,
            },
            S::Encode(e) => Error::Encode(e),
            S::QoS2 => {
                Error::InvalidOption("QoS 2 is not supported by this client; use QoS 1".into())
            }
            other => Error::InvalidOption(other.to_string()),
        },
    }
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
        Self::connect_with_clock(opts, tls, Arc::new(SystemClock))
    }

    /// [`Client::connect`] with the time taken from `clock`.
    pub fn connect_with_clock(
        opts: &ClientOptions,
        tls: Arc<ClientConfig>,
        clock: Arc<dyn Clock>,
    ) -> Result<Client> {
        Self::connect_with_first(opts, tls, clock, None)
    }

    /// [`Client::connect_with_clock`], with `first` = (topic, payload,
    /// QoS) sent right behind the CONNECT (MQTT lets a client send before
    /// the CONNACK): the first [`Client::publish`] of that same message
    /// then only waits for its PUBACK, which often comes with the CONNACK.
    /// A device that connects to publish saves a round trip.
    pub fn connect_with_first(
        opts: &ClientOptions,
        tls: Arc<ClientConfig>,
        clock: Arc<dyn Clock>,
        first: Option<(&str, &[u8], QoS)>,
    ) -> Result<Client> {
        let broker = opts.broker.to_string();
        let t0 = clock.now();
        let elapsed = || clock.now().saturating_duration_since(t0);
        let connect_err = |source| Error::Connect {
            broker: broker.clone(),
            source,
        };
        let tcp = net::connect(
            &opts.broker.host,
            opts.broker.port,
            opts.connect_timeout,
            opts.bind,
        )
        .map_err(connect_err)?;
        let sock = Socket::new(tcp, opts.quickack, opts.timeout).map_err(connect_err)?;
        let t_tcp = elapsed();

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
        let link = TlsLink::handshake(sock, conn, opts.connect_timeout, elapsed).map_err(|f| {
            match f.alert {
                Some(te) => classify_tls(&broker, &te),
                None => handshake_error(&broker, f.error, opts.connect_timeout),
            }
        })?;
        let t_tls = elapsed() - t_tcp;
        let tls_version = link
            .stream
            .conn
            .protocol_version()
            .unwrap_or(ProtocolVersion::Unknown(0));
        let cipher_suite = link
            .stream
            .conn
            .negotiated_cipher_suite()
            .map(|s| s.suite());

        let mut config = coffre_mqtt::Config::new(opts.client_id.clone(), opts.version);
        config.keep_alive_secs = u16::try_from(opts.keep_alive.as_secs()).unwrap_or(u16::MAX);
        config.clean_start = opts.clean_start;
        config.session_expiry = opts.session_expiry;
        config.response_timeout_ms = millis(opts.timeout);
        config.max_packet_size = opts.max_packet_size;
        let origin = t0;
        let ms = Millis::new(&*clock, origin);
        let t_connect = elapsed();
        let first_sent = clock.now();
        let opened =
            Connection::open_with_first(link, coffre_mqtt::Session::new(config), &ms, first);
        let (conn, opened, first) = match opened {
            Ok((conn, opened, sent)) => {
                let first = first
                    .zip(sent)
                    .map(|((topic, payload, qos), packet_id)| First {
                        topic: topic.to_owned(),
                        payload: payload.to_vec(),
                        qos,
                        packet_id,
                        sent: first_sent,
                    });
                (conn, opened, first)
            }
            Err(failed) => {
                let OpenFailed {
                    error, mut link, ..
                } = *failed;
                return Err(match error {
                    // Over TLS 1.3 the client's Finished goes out before the
                    // broker has checked the client certificate: a refusal
                    // arrives as an alert while CONNACK is awaited.
                    LinkError::Link(io) if tls_error_of(&io).is_some() => {
                        let te = tls_error_of(&io).cloned();
                        match te.map(|te| classify_tls(&broker, &te)) {
                            Some(Error::Tls { broker, source }) => Error::Tls { broker, source },
                            Some(refused) => refused,
                            None => io_error(&broker, io, "CONNACK", opts.connect_timeout),
                        }
                    }
                    LinkError::Link(io) => match link.salvage_alert() {
                        Some(te) => classify_tls(&broker, &te),
                        None => io_error(&broker, io, "CONNACK", opts.connect_timeout),
                    },
                    LinkError::Closed => match link.salvage_alert() {
                        Some(te) => classify_tls(&broker, &te),
                        None => Error::ConnectionClosed {
                            broker: broker.clone(),
                            clean: true,
                        },
                    },
                    other => link_error(&broker, other, "CONNACK", opts.connect_timeout),
                });
            }
        };
        let t_connack = elapsed() - t_connect;
        let session = Session {
            tls_version,
            cipher_suite,
            session_present: opened.session_present,
            properties: opened.properties,
            keep_alive: Duration::from_secs(opened.keep_alive_secs.into()),
            timing: ConnectTiming {
                tcp: t_tcp,
                tls: t_tls,
                connack: t_connack,
            },
        };
        tracing::debug!(broker = %broker, tls = ?session.tls_version, "MQTT session open");
        Ok(Client {
            conn,
            clock,
            origin,
            broker,
            version: opts.version,
            timeout: opts.timeout,
            session,
            first,
        })
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

    fn err(&self, e: LinkError<io::Error>, what: &'static str) -> Error {
        link_error(&self.broker, e, what, self.timeout)
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
        let ms = Millis::new(&*self.clock, self.origin);
        if let Some(f) = self.first.take() {
            if (f.topic.as_str(), f.payload.as_slice(), f.qos, false)
                == (topic, payload, qos, retain)
            {
                // It went out with the CONNECT: only its PUBACK is awaited.
                let acked = match f.packet_id {
                    Some(id) => self.conn.wait_puback(&ms, id).map(Some),
                    None => Ok(None),
                };
                return match acked {
                    Ok(Some(a)) => Ok(PublishOutcome {
                        packet_id: a.packet_id,
                        reason: a.reason,
                        reason_string: a.reason_string,
                        rtt: self.clock.now().saturating_duration_since(f.sent),
                    }),
                    Ok(None) => Ok(PublishOutcome {
                        packet_id: None,
                        reason: ReasonCode::SUCCESS,
                        reason_string: None,
                        rtt: Duration::ZERO,
                    }),
                    Err(e) => Err(self.err(e, "PUBACK")),
                };
            }
        }
        let sent = self.clock.now();
        match self.conn.publish(&ms, topic, payload, qos, retain) {
            Ok(a) => Ok(PublishOutcome {
                packet_id: a.packet_id,
                reason: a.reason,
                reason_string: a.reason_string,
                rtt: if a.packet_id.is_some() {
                    self.clock.now().saturating_duration_since(sent)
                } else {
                    Duration::ZERO
                },
            }),
            Err(e) => Err(self.err(e, "PUBACK")),
        }
    }

    /// Subscribe to topic filters; returns one reason code per filter
    /// (granted QoS 0x00–0x01, or a failure such as 0x87 Not authorized;
    /// MQTT 3.1.1 reports every failure as 0x80).
    pub fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Result<Vec<ReasonCode>> {
        let ms = Millis::new(&*self.clock, self.origin);
        self.conn
            .subscribe(&ms, filters)
            .map_err(|e| self.err(e, "SUBACK"))
    }

    /// Send PINGREQ and wait for PINGRESP; returns the round trip.
    pub fn ping(&mut self) -> Result<Duration> {
        let ms = Millis::new(&*self.clock, self.origin);
        let sent = self.clock.now();
        self.conn.ping(&ms).map_err(|e| self.err(e, "PINGRESP"))?;
        Ok(self.clock.now().saturating_duration_since(sent))
    }

    /// Wait up to `timeout` for a message, keeping the session alive
    /// (PINGREQ when idle) and acknowledging QoS 1 deliveries. `Ok(None)`
    /// when nothing arrived in time.
    pub fn poll(&mut self, timeout: Duration) -> Result<Option<Message>> {
        let ms = Millis::new(&*self.clock, self.origin);
        let deadline = coffre_device::Clock::now_ms(&ms) + millis(timeout);
        match self.conn.poll(&ms, deadline) {
            Ok(Some(p)) => Ok(Some(Message {
                topic: p.topic,
                payload: p.payload,
                qos: p.qos,
                retain: p.retain,
                dup: p.dup,
                received: self.clock.wall(),
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(self.err(e, "read")),
        }
    }

    /// End the session cleanly: DISCONNECT (reason 0x00), TLS
    /// `close_notify`, TCP half-close; nothing is waited for.
    pub fn disconnect(self) -> Result<()> {
        let ms = Millis::new(&*self.clock, self.origin);
        let (broker, timeout) = (self.broker.clone(), self.timeout);
        self.conn
            .disconnect(&ms, ReasonCode::SUCCESS)
            .map_err(|e| link_error(&broker, e, "close_notify", timeout))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
