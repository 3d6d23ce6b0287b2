//! Stage 2, broker: a real mosquitto on a free loopback port, with one ACL
//! entry per device, no connection cap and no queue cap.

use std::net::SocketAddr;
use std::path::PathBuf;

use coffre_agent::MqttVersion;
use coffre_broker::{BrokerSetup, Mosquitto, RabbitCluster, Role};

use crate::error::{Error, Result};
use crate::options::{Progress, TOPIC};
use crate::util::{self, CpuMeter};

/// What the broker stage needs.
#[derive(Debug, Clone)]
pub struct BrokerPlan {
    /// The PKI directory (CA, broker certificate and key, CRL).
    pub pki_dir: PathBuf,
    /// Where the configuration, ACL, persistence and log go.
    pub out_dir: PathBuf,
    /// Ids allowed to publish on [`TOPIC`].
    pub publishers: Vec<String>,
    /// The id allowed to subscribe to it.
    pub subscriber: String,
    /// Devices with factory identities: the factory root (PEM) a listener
    /// of their own trusts (no CRL there: see
    /// [`coffre_broker::FactoryListener`]). The devices connect to it; the
    /// subscriber stays on the CA's listener.
    pub factory_root_pem: Option<String>,
}

/// The running broker: mosquitto, or a RabbitMQ cluster
/// ([`crate::stage::cluster()`]); stopped when dropped.
#[derive(Debug)]
pub struct Broker {
    running: Running,
    addrs: Vec<SocketAddr>,
    device_addrs: Vec<SocketAddr>,
}

#[derive(Debug)]
enum Running {
    Mosquitto { mosquitto: Mosquitto, pid: u32 },
    Cluster(RabbitCluster),
}

impl Broker {
    pub(crate) fn from_cluster(c: RabbitCluster) -> Broker {
        let addrs = c.plan().mqtt_addrs();
        Broker {
            device_addrs: addrs.clone(),
            addrs,
            running: Running::Cluster(c),
        }
    }

    /// Where it listens for certificates of the fleet's CA (the
    /// subscriber's; a cluster: its first node).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Where it listens for the CA's certificates: one address, or one
    /// per cluster node.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Where the devices connect: the factory listener with factory
    /// identities, else [`Broker::addrs`].
    pub fn device_addrs(&self) -> &[SocketAddr] {
        &self.device_addrs
    }

    /// The MQTT version its clients speak: 5 on mosquitto, 3.1.1 on
    /// RabbitMQ 3.10.
    pub fn mqtt_version(&self) -> MqttVersion {
        match self.running {
            Running::Mosquitto { .. } => MqttVersion::V5,
            Running::Cluster(_) => MqttVersion::V311,
        }
    }

    /// True for a cluster: clients reconnect to another node when theirs
    /// is lost.
    pub fn is_cluster(&self) -> bool {
        matches!(self.running, Running::Cluster(_))
    }

    /// The cluster, when it is one.
    pub fn cluster(&mut self) -> Option<&mut RabbitCluster> {
        match &mut self.running {
            Running::Cluster(c) => Some(c),
            Running::Mosquitto { .. } => None,
        }
    }

    /// Its process ids (one per running cluster node).
    pub fn pids(&self) -> Vec<u32> {
        match &self.running {
            Running::Mosquitto { pid, .. } => vec![*pid],
            Running::Cluster(c) => c.running().into_iter().filter_map(|k| c.pid(k)).collect(),
        }
    }

    /// Its log file (a cluster: its first node's; the others are beside it).
    pub fn log_path(&self) -> PathBuf {
        match &self.running {
            Running::Mosquitto { mosquitto, .. } => mosquitto.log_path().to_path_buf(),
            Running::Cluster(c) => c.log_path(0),
        }
    }

    /// Start measuring the CPU of this process and of the broker.
    pub fn cpu_meter(&self) -> CpuMeter {
        CpuMeter::start_many(&self.pids())
    }

    /// Its resident memory now, KiB (a cluster: every node's; 0 when
    /// unknown).
    pub fn rss_kib(&self) -> u64 {
        self.pids()
            .into_iter()
            .map(|p| util::pid_rss_kib(p).unwrap_or(0))
            .sum()
    }

    /// Stop it cleanly.
    pub fn stop(mut self) {
        match &mut self.running {
            Running::Mosquitto { mosquitto, .. } => mosquitto.stop(),
            Running::Cluster(c) => c.stop(),
        }
    }
}

/// The lines the fleet adds to coffre's broker configuration.
const FLEET_CONF: &str = "\n# Fleet: no connection cap, no queue cap for the subscriber.\nmax_connections -1\nmax_queued_messages 0\nmax_inflight_messages 0\n";

/// Write the configuration (coffre's, plus no connection cap and no queue
/// cap) and start mosquitto; returns once it accepts connections.
pub fn broker(plan: &BrokerPlan, progress: &mut dyn FnMut(Progress)) -> Result<Broker> {
    progress(Progress::Step(
        "broker: mosquitto, one ACL entry per device".into(),
    ));
    let addr = free_port()?;
    let mut setup = BrokerSetup::new(&plan.pki_dir, &plan.out_dir);
    setup.listen = addr;
    setup.topic = TOPIC.into();
    allow_fleet(&mut setup.acl, &plan.publishers, &plan.subscriber)?;
    let factory_addr = match &plan.factory_root_pem {
        Some(root_pem) => {
            let listen = free_port()?;
            setup.factory = Some(coffre_broker::FactoryListener {
                listen,
                root_pem: root_pem.clone(),
            });
            Some(listen)
        }
        None => None,
    };
    let conf = setup.write().map_err(Error::BrokerConfig)?;
    let text = setup.render().map_err(Error::BrokerConfig)? + FLEET_CONF;
    util::write_file(&conf, text.as_bytes())?;
    let mosquitto =
        Mosquitto::start_conf(&conf, addr, &setup.log_path()).map_err(Error::BrokerStart)?;
    let pid = mosquitto.pid().ok_or(Error::BrokerPid)?;
    if let Some(f) = factory_addr {
        wait_listening(f, setup.log_path())?;
    }
    Ok(Broker {
        running: Running::Mosquitto { mosquitto, pid },
        addrs: vec![addr],
        device_addrs: vec![factory_addr.unwrap_or(addr)],
    })
}

/// The fleet's rights: each publisher on the topic, the subscriber on it.
pub(crate) fn allow_fleet(
    acl: &mut coffre_broker::Acl,
    publishers: &[String],
    subscriber: &str,
) -> Result<()> {
    for id in publishers {
        acl.allow(id, Role::Publisher)
            .map_err(Error::BrokerConfig)?;
    }
    acl.allow(subscriber, Role::Subscriber)
        .map_err(Error::BrokerConfig)
}

/// Wait (up to 10 s) until `addr` accepts TCP connections: mosquitto
/// opens its listeners one after the other, and it was seen ready on the
/// first.
fn wait_listening(addr: SocketAddr, log: PathBuf) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        match std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)) {
            Ok(_) => return Ok(()),
            Err(_) if start.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(source) => return Err(Error::FactoryListener { addr, log, source }),
        }
    }
}

fn free_port() -> Result<SocketAddr> {
    coffre_fs::free_loopback_addr().map_err(Error::Port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_mosquitto_would_misread_is_refused_before_anything_starts() {
        let dir = tempfile::tempdir().unwrap();
        let plan = BrokerPlan {
            pki_dir: dir.path().join("pki"),
            out_dir: dir.path().join("broker"),
            publishers: vec!["fleet-00001".into(), "bad+id".into()],
            subscriber: "fleet-sub".into(),
            factory_root_pem: None,
        };
        let e = broker(&plan, &mut |_| {}).unwrap_err();
        assert!(matches!(e, Error::BrokerConfig(_)), "{e:?}");
        assert!(!dir.path().join("broker").exists());
    }

    #[test]
    fn atomic_write_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mosquitto.conf");
        std::fs::write(&p, "old").unwrap();
        util::write_file(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
