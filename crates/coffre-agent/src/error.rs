//! The agent's error type.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::identity::ChipError;
use crate::mqtt::codec::{DecodeError, EncodeError, ReasonCode};

/// A `Result` with the agent's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the agent. Each message says what
/// failed and what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PEM input holds no certificate, or cannot be parsed.
    #[error(
        "cannot read {what}: {reason}; give a PEM file with '-----BEGIN CERTIFICATE-----' blocks"
    )]
    Pem {
        /// Which input (CA certificate, device certificate…).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate cannot be parsed as X.509.
    #[error("{what} is not a valid X.509 certificate; re-issue it (EC P-256, X.509 v3)")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// The parser's error.
        source: rustls::Error,
    },
    /// The lab key (slot 8) is not a usable PKCS#8 EC private key.
    #[error("the lab key from slot 8 is not usable: {0}; provision slot 8 again with a PKCS#8 EC P-256 key")]
    LabKey(String),
    /// The certificate's public key is not the key that will sign.
    #[error(
        "the device certificate's public key ({cert_key}) does not match the {source_name} key \
         ({key}): the broker would refuse the handshake with 'bad signature'; issue a certificate \
         for this key (certificate request signed by the chip) or select the matching key slot"
    )]
    KeyMismatch {
        /// SHA-256 fingerprint (prefix) of the certificate's SPKI.
        cert_key: String,
        /// SHA-256 fingerprint (prefix) of the signing key's SPKI.
        key: String,
        /// "chip" or "lab (slot 8)".
        source_name: &'static str,
    },
    /// The secure element (or a sensor on its bus) stopped answering.
    #[error(
        "{what} is not answering ({detail}): check the I2C wiring and power; publishing stopped"
    )]
    ChipGone {
        /// Which device (secure element at 0x35, SHT30…).
        what: String,
        /// What reported it.
        detail: String,
    },
    /// The secure element is not locked; refused at boot.
    #[error(
        "the secure element is not locked (config zone {config}, data zone {data}): its \
         configuration or keys can still be changed by anyone on the bus; provision and lock it \
         ('coffre provision … --configure'), or pass --allow-unlocked to go on anyway"
    )]
    Unlocked {
        /// "locked" or "UNLOCKED".
        config: &'static str,
        /// "locked" or "UNLOCKED".
        data: &'static str,
    },
    /// The secure element answered with an error.
    #[error("secure element error: {0}")]
    Chip(ChipError),
    /// A sensor reading failed (not because the sensor is gone).
    #[error("sensor reading failed: {0}; check the ENV II unit on the bus")]
    Sensor(String),
    /// Building the TLS configuration failed.
    #[error("TLS configuration: {0}")]
    TlsConfig(rustls::Error),
    /// The broker address is not `host:port`.
    #[error("invalid broker address '{0}': use host:port, e.g. 127.0.0.1:8883")]
    BrokerAddress(String),
    /// No TCP connection could be opened.
    #[error("cannot reach broker {broker} (is the broker running and listening there?)")]
    Connect {
        /// The broker, as given.
        broker: String,
        /// The last connect error.
        source: io::Error,
    },
    /// The broker's certificate was not accepted by the device.
    #[error(
        "broker {broker} presented a certificate the device does not trust; give the \
         CA that issued the broker certificate, and connect with a name or address it contains"
    )]
    BrokerCertificate {
        /// The broker.
        broker: String,
        /// rustls's verdict.
        source: rustls::Error,
    },
    /// The broker refused the handshake (alert, or closed the socket).
    #[error(
        "broker {broker} refused the TLS handshake ({detail}): is the device certificate issued by \
         the broker's CA, still valid and not revoked, and does its key match the chip? The broker \
         log says which"
    )]
    HandshakeRefused {
        /// The broker.
        broker: String,
        /// The alert or socket error.
        detail: String,
        /// The broker sent a TLS alert (a deliberate refusal), rather than
        /// just closing the socket.
        by_alert: bool,
    },
    /// The TLS layer failed after the session was open.
    #[error("TLS error with broker {broker}")]
    Tls {
        /// The broker.
        broker: String,
        /// The TLS error.
        source: rustls::Error,
    },
    /// CONNACK carried a failure reason code.
    #[error("broker {broker} refused the MQTT session: {reason}{}; {hint}", fmt_reason_string(.reason_string))]
    ConnectRefused {
        /// The broker.
        broker: String,
        /// The reason code (3.1.1 return codes are mapped).
        reason: ReasonCode,
        /// The broker's reason string, if any.
        reason_string: Option<String>,
        /// What to do.
        hint: &'static str,
    },
    /// SUBACK refused a subscription.
    #[error("broker refused the subscription to '{topic}': {reason}; check the ACL ('topic read {topic}' for this device)")]
    SubscribeRefused {
        /// The topic filter.
        topic: String,
        /// The SUBACK reason code.
        reason: ReasonCode,
    },
    /// The broker ended the session with DISCONNECT.
    #[error("broker {broker} ended the session: {reason}{}", fmt_reason_string(.reason_string))]
    ServerDisconnect {
        /// The broker.
        broker: String,
        /// The DISCONNECT reason code.
        reason: ReasonCode,
        /// The broker's reason string, if any.
        reason_string: Option<String>,
    },
    /// The connection ended without DISCONNECT.
    #[error("broker {broker} closed the connection{}", if *.clean { " (TLS close_notify)" } else { " without close_notify" })]
    ConnectionClosed {
        /// The broker.
        broker: String,
        /// Whether the TLS layer was closed cleanly.
        clean: bool,
    },
    /// Waiting for an answer took too long.
    #[error("no {what} from broker {broker} within {after:?}: the broker or the network is stalled; it will be retried")]
    Timeout {
        /// What was awaited (CONNACK, PUBACK…).
        what: &'static str,
        /// The broker.
        broker: String,
        /// How long was waited.
        after: Duration,
    },
    /// A socket error on an open connection.
    #[error("network error with broker {broker}")]
    Io {
        /// The broker.
        broker: String,
        /// The socket error.
        source: io::Error,
    },
    /// The broker sent something that breaks the MQTT protocol.
    #[error("broker {broker} sent an invalid MQTT packet: {detail}")]
    Protocol {
        /// The broker.
        broker: String,
        /// What was wrong.
        detail: String,
    },
    /// A packet could not be encoded (a topic longer than 65535 bytes…).
    #[error("cannot encode an MQTT packet")]
    Encode(#[from] EncodeError),
    /// The durable queue's directory or files failed.
    #[error("durable queue {path} (check that the directory exists and is writable)")]
    Queue {
        /// The file or directory.
        path: PathBuf,
        /// The filesystem error.
        source: io::Error,
    },
    /// An option has a value that cannot work.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// The IO protection key of a hardened chip cannot be used.
    #[error(transparent)]
    IoKey(#[from] coffre_device::iokey::IoKeyFileError),
}

fn fmt_reason_string(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" ({s})"),
        None => String::new(),
    }
}

impl Error {
    /// Whether trying again later may succeed: network failures, timeouts,
    /// a broker that is restarting or busy. Refusals of the device's
    /// identity, configuration errors and a missing chip are not retried.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::ConnectionClosed { .. }
            | Error::Timeout { .. }
            | Error::Io { .. }
            | Error::Tls { .. }
            | Error::Protocol { .. }
            | Error::ServerDisconnect { .. } => true,
            Error::HandshakeRefused { by_alert, .. } => !by_alert,
            Error::ConnectRefused { reason, .. } => {
                matches!(reason.0, 0x80 | 0x83 | 0x88 | 0x89 | 0x8B | 0x97 | 0x9F)
            }
            _ => false,
        }
    }

    /// Whether this is the "chip (or sensor) gone" condition that stops a
    /// publisher.
    pub fn is_chip_gone(&self) -> bool {
        matches!(self, Error::ChipGone { .. })
    }

    pub(crate) fn decode(broker: &str, e: DecodeError) -> Error {
        Error::Protocol {
            broker: broker.to_owned(),
            detail: e.to_string(),
        }
    }
}

impl From<ChipError> for Error {
    fn from(e: ChipError) -> Self {
        if e.is_absent() {
            Error::ChipGone {
                what: e.device().to_owned(),
                detail: e.message().to_owned(),
            }
        } else {
            Error::Chip(e)
        }
    }
}
