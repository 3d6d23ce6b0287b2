//! Mosquitto for coffre: a configuration written from the PKI, and a
//! supervisor for a real `mosquitto` process.
//!
//! [`BrokerSetup`] writes `mosquitto.conf` and an ACL file: one TLS listener
//! with the CA, the broker certificate and key, `require_certificate true`,
//! `use_identity_as_username true` (the certificate CN is the MQTT
//! username), TLS 1.2 minimum, the CRL, no anonymous access, persistence
//! for QoS 1 sessions, and `set_tcp_nodelay true` (without it every TLS 1.3
//! client waits ~40 ms for its CONNACK: the broker's session tickets and
//! CONNACK are held back by Nagle while the client delays its ACK).
//!
//! The client id is bound to the certificate (`use_username_as_clientid`):
//! a device presenting another device's client id gets its own, and cannot
//! evict the other. The dynamic-security plugin is loaded so that a
//! revocation takes effect on a running broker ([`revoke_live`]: CRL
//! reloaded, live sessions of the revoked ids cut).
//!
//! [`Mosquitto::start`] runs the real broker with it, waits until it
//! listens, collects its log, and stops it cleanly.
//!
//! A broker for one publisher and one subscriber, from a fresh PKI, on a
//! free port of 127.0.0.1 (it needs `mosquitto` on the PATH or in
//! `/usr/sbin`):
//!
//! ```
//! use coffre_broker::{BrokerSetup, Mosquitto, Role};
//! use coffre_pki::{InitOptions, Pki};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! Pki::init(dir.path().join("pki"), &InitOptions::default())?;
//!
//! let mut setup = BrokerSetup::new(dir.path().join("pki"), dir.path().join("broker"));
//! setup.listen = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
//! setup.acl.allow("m5go-1", Role::Publisher)?;
//! setup.acl.allow("m5stack", Role::Subscriber)?;
//! let conf = setup.render()?;
//! assert!(conf.contains("require_certificate true"));
//! assert!(conf.contains("crlfile "));
//! assert!(setup.acl.render(&setup.topic).contains("user m5go-1\ntopic write m5go/env"));
//!
//! // A device id that would widen pattern ACLs is refused.
//! assert!(setup.acl.allow("dev/#", Role::Subscriber).is_err());
//!
//! let mut broker = Mosquitto::start(&setup)?;
//! assert_eq!(broker.addr(), setup.listen);
//! broker.stop();
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod live;
mod log;
mod process;
pub mod rabbitmq;

pub use config::{Acl, BrokerSetup, FactoryListener, Role};
pub use live::{
    find_dynsec_plugin, find_mosquitto_ctrl, managed_brokers, revoke_live, running_pid,
    LiveRevocation, ADMIN_USER,
};
pub use log::{LogCursor, LogFollower};
pub use process::{find_mosquitto, Mosquitto, INSTALL_HINT, LOGS_KEPT};
pub use rabbitmq::{ClusterPlan, ClusterSetup, QueueType, RabbitCluster};

/// The broker software a configuration is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// Mosquitto: one process, one core, no clustering (the default).
    #[default]
    Mosquitto,
    /// RabbitMQ with its MQTT plugin: a cluster of nodes (see [`rabbitmq`]).
    RabbitMq,
}

impl Engine {
    /// "mosquitto" or "rabbitmq".
    pub fn name(self) -> &'static str {
        match self {
            Engine::Mosquitto => "mosquitto",
            Engine::RabbitMq => "rabbitmq",
        }
    }

    /// The engine of the configuration in `dir`: RabbitMQ when it holds a
    /// `cluster.json`, else Mosquitto.
    pub fn of_dir(dir: &std::path::Path) -> Engine {
        if dir.join(rabbitmq::CLUSTER_FILE).is_file() {
            Engine::RabbitMq
        } else {
            Engine::Mosquitto
        }
    }
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mosquitto" => Ok(Engine::Mosquitto),
            "rabbitmq" => Ok(Engine::RabbitMq),
            o => Err(format!(
                "unknown broker engine '{o}': use mosquitto or rabbitmq"
            )),
        }
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("file {path}")]
    Io {
        /// File concerned.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A PKI file the broker needs is missing.
    #[error("{0} is missing: create the PKI first with 'coffre pki init --dir <PKI>'")]
    MissingPki(std::path::PathBuf),
    /// No mosquitto binary.
    #[error("mosquitto is not installed: {INSTALL_HINT}")]
    NotInstalled,
    /// The broker did not start listening.
    #[error("mosquitto did not start listening on {addr} within {secs} s; its log says:\n{log}")]
    StartTimeout {
        /// Address it should listen on.
        addr: std::net::SocketAddr,
        /// Seconds waited.
        secs: u64,
        /// The log so far.
        log: String,
    },
    /// The broker exited early.
    #[error("mosquitto exited at start ({status}); its log says:\n{log}")]
    Exited {
        /// Exit status.
        status: String,
        /// The log so far.
        log: String,
    },
    /// The administrator socket's path does not fit a unix socket address.
    #[error("{0}: too long (or with spaces) for the broker's administrator socket; use a shorter broker directory")]
    SocketPath(std::path::PathBuf),
    /// Acting as the broker's administrator failed.
    #[error("{what} failed: {output}")]
    Admin {
        /// What was done.
        what: String,
        /// What the tool or the broker said.
        output: String,
    },
    /// The broker is not running.
    #[error("mosquitto is not running")]
    NotRunning,
    /// The broker did not reload its configuration after SIGHUP.
    #[error("mosquitto did not reload its configuration within {secs} s of SIGHUP")]
    Reload {
        /// Seconds waited.
        secs: u64,
    },
    /// No RabbitMQ.
    #[error(
        "rabbitmq-server is not installed: {}",
        rabbitmq::RABBITMQ_INSTALL_HINT
    )]
    RabbitNotInstalled,
    /// A port the broker needs is taken.
    #[error("{addr} ({what}) is already in use: stop what listens there ('ss -ltnp') or write the configuration again with other ports")]
    PortInUse {
        /// The address.
        addr: std::net::SocketAddr,
        /// Whose port it is.
        what: String,
        /// The bind error.
        source: std::io::Error,
    },
    /// A RabbitMQ node did not start.
    #[error("RabbitMQ node {node} did not start: {why}; its log {} ends with:\n{tail}", log.display())]
    NodeFailed {
        /// The node.
        node: String,
        /// Why, and what to do.
        why: String,
        /// Its log file.
        log: std::path::PathBuf,
        /// The end of its log and of its console output.
        tail: String,
    },
    /// A device id that cannot be an MQTT username safely.
    #[error("device id '{0}' is not allowed: use letters, digits, '-', '_' and '.' only (a '+' or '#' in a username bypasses pattern ACLs, CVE-2017-7650)")]
    BadId(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
