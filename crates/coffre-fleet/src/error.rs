//! What can stop a fleet run.

use std::path::PathBuf;

use crate::options::MAX_DEVICES;

/// A fleet run that could not be carried out.
///
/// A run that went to its end with devices that failed to connect or
/// readings lost is not an error: its [`FleetReport`](crate::FleetReport)
/// says so ([`FleetReport::ok`](crate::FleetReport::ok)).
///
/// Each variant's message says what failed at the fleet's level; the
/// underlying error, when there is one, is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The number of devices is 0 or above [`MAX_DEVICES`].
    #[error("--devices must be between 1 and {MAX_DEVICES} (got {0})")]
    Devices(usize),
    /// The ramp rate or the reading interval is not positive.
    #[error("--rate and --interval must be positive")]
    NotPositive,
    /// A file or directory of the run could not be created or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done ("creating", "writing"…).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// No temporary working directory could be created.
    #[error("creating a temporary directory (or give one with --dir)")]
    TempDir(#[source] std::io::Error),
    /// `RLIMIT_NOFILE` could not be read or raised.
    #[error("{0} RLIMIT_NOFILE")]
    Rlimit(&'static str, #[source] nix::Error),
    /// The fleet needs more open files than the hard limit allows.
    #[error("{needed} open files are needed but the hard limit is {hard}: raise it (as root: 'ulimit -Hn {needed}', or LimitNOFILE= / limits.conf; root needs CAP_SYS_RESOURCE for it, in a container raise the container's limit, e.g. 'docker run --ulimit nofile={needed}') or simulate fewer devices")]
    OpenFiles {
        /// Descriptors the run needs.
        needed: u64,
        /// The hard limit in force.
        hard: u64,
    },
    /// Kernel limits too low for one thread per device.
    #[error("one thread per device: {0}; raise them as root ('sysctl -w {1}') or simulate fewer devices")]
    KernelLimits(String, String),
    /// The PKI could not be created, or could not issue.
    #[error("{what} {}", path.display())]
    Pki {
        /// "creating the PKI in", "issuing the fleet's certificates from".
        what: &'static str,
        /// The PKI directory.
        path: PathBuf,
        /// The PKI's error.
        #[source]
        source: coffre_pki::Error,
    },
    /// A chip command failed while a device was made ready.
    #[error("{what} on {id}'s chip")]
    Chip {
        /// The device.
        id: String,
        /// What was being done.
        what: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Slot 8 read back differs from what was written.
    #[error("slot 8 of {0}'s chip read back differs from what was written")]
    ReadBack(String),
    /// A device's key or CSR could not be made or checked.
    #[error("preparing {id}'s key and certificate request")]
    Key {
        /// The device.
        id: String,
        /// The PKI's error.
        #[source]
        source: coffre_pki::Error,
    },
    /// A lab-mode device's key could not be read back from slot 8.
    #[error("reading {id}'s lab key from slot 8")]
    LabKey {
        /// The device.
        id: String,
        /// The agent's error.
        #[source]
        source: coffre_agent::Error,
    },
    /// A device's TLS client configuration could not be built.
    #[error("building {id}'s TLS configuration")]
    Tls {
        /// The device.
        id: String,
        /// The agent's error.
        #[source]
        source: coffre_agent::Error,
    },
    /// The fleet manifest could not be written or read back.
    #[error("{what} {}", path.display())]
    Manifest {
        /// "writing", "reading back".
        what: &'static str,
        /// The manifest.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The manifest read back does not hold one line per device.
    #[error("{} holds {found} entries instead of {expected}", path.display())]
    ManifestCount {
        /// The manifest.
        path: PathBuf,
        /// Entries found.
        found: usize,
        /// Devices provisioned.
        expected: usize,
    },
    /// The parts' manifest could not be made, verified or registered.
    #[error("factory identities: {what}")]
    Factory {
        /// "verifying the manifest", "registering the parts"…
        what: &'static str,
        /// The cause.
        #[source]
        source: coffre_provision::Error,
    },
    /// An accepted manifest entry names a part the factory did not make.
    #[error("the manifest lists part {0}, which is not among the parts made")]
    UnknownPart(String),
    /// A part's slot 0 key is not the key its manifest entry registered.
    #[error("{0}'s slot 0 key differs from the key its manifest entry registered")]
    FactoryKey(String),
    /// A worker thread of the simulator could not be started.
    #[error("starting the {0} thread")]
    Spawn(&'static str, #[source] std::io::Error),
    /// A worker thread of the simulator panicked.
    #[error("a {0} thread panicked")]
    Panicked(&'static str),
    /// No free TCP port on 127.0.0.1 for the broker.
    #[error("finding a free port on 127.0.0.1")]
    Port(#[source] std::io::Error),
    /// The broker configuration could not be written.
    #[error("writing the broker configuration")]
    BrokerConfig(#[source] coffre_broker::Error),
    /// Mosquitto did not start.
    #[error("starting mosquitto (is it installed? 'apt install mosquitto')")]
    BrokerStart(#[source] coffre_broker::Error),
    /// Mosquitto started but its factory listener does not accept
    /// connections.
    #[error("mosquitto's factory listener {addr} does not accept connections; see {}", log.display())]
    FactoryListener {
        /// The listener.
        addr: std::net::SocketAddr,
        /// The broker log.
        log: PathBuf,
        /// The last connection error.
        #[source]
        source: std::io::Error,
    },
    /// The RabbitMQ cluster did not start.
    #[error("starting the RabbitMQ cluster")]
    ClusterStart(#[source] coffre_broker::Error),
    /// A node of the cluster could not be killed or restarted.
    #[error("{what} node {node} of the cluster")]
    ClusterFault {
        /// "killing", "restarting".
        what: &'static str,
        /// The node (from 1).
        node: usize,
        /// The broker's error.
        #[source]
        source: coffre_broker::Error,
    },
    /// A fault was asked of a broker that is not a cluster, or of a node
    /// it does not have.
    #[error("--kill-node {0}: {1}")]
    BadFault(String, &'static str),
    /// Factory identities were asked of a RabbitMQ cluster.
    #[error("--identity factory runs on mosquitto only (its factory listener trusts the Trust&GO root beside the CA); drop --engine rabbitmq")]
    FactoryOnCluster,
    /// Mosquitto started but its process id is unknown.
    #[error("mosquitto has no pid")]
    BrokerPid,
    /// The subscriber could not connect or subscribe.
    #[error("{what}")]
    Subscriber {
        /// "connecting the subscriber", "subscribing".
        what: &'static str,
        /// The agent's error.
        #[source]
        source: coffre_agent::Error,
    },
    /// The broker refused the subscriber's subscription.
    #[error("the broker refused the subscription to {topic}: {granted}; see {}", log.display())]
    SubscriptionRefused {
        /// The topic.
        topic: &'static str,
        /// The SUBACK reason codes.
        granted: String,
        /// The broker log.
        log: PathBuf,
    },
    /// The subscriber lost its connection while collecting.
    #[error("the subscriber failed; see {}", log.display())]
    SubscriberFailed {
        /// The broker log.
        log: PathBuf,
        /// The agent's error.
        #[source]
        source: coffre_agent::Error,
    },
}

impl Error {
    /// True when the broker log explains the error, so a temporary
    /// working directory must be kept for it.
    pub fn has_broker_log(&self) -> bool {
        matches!(
            self,
            Error::SubscriptionRefused { .. }
                | Error::SubscriberFailed { .. }
                | Error::FactoryListener { .. }
                | Error::ClusterStart(_)
                | Error::ClusterFault { .. }
        )
    }
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn display_does_not_repeat_the_source() {
        let e = Error::Io {
            what: "writing",
            path: "/x/y".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(e.to_string(), "writing /x/y");
        assert_eq!(
            e.source().map(|s| s.to_string()).as_deref(),
            Some("disk full")
        );
        let e = Error::Rlimit("raising", nix::Error::EPERM);
        assert_eq!(e.to_string(), "raising RLIMIT_NOFILE");
        assert!(e.source().is_some());
    }

    #[test]
    fn bad_options_say_what_to_change() {
        assert_eq!(
            Error::Devices(0).to_string(),
            "--devices must be between 1 and 100000 (got 0)"
        );
        assert!(Error::OpenFiles {
            needed: 20000,
            hard: 1024
        }
        .to_string()
        .contains("ulimit -Hn 20000"));
    }
}
