//! Stage 2, broker: a real mosquitto on a free loopback port, with one ACL
//! entry per device, no connection cap and no queue cap.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use coffre_broker::{BrokerSetup, Mosquitto, Role};

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

/// The running broker; stopped when dropped.
#[derive(Debug)]
pub struct Broker {
    mosquitto: Mosquitto,
    addr: SocketAddr,
    device_addr: SocketAddr,
    pid: u32,
}

impl Broker {
    /// Where it listens for certificates of the fleet's CA (the
    /// subscriber's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the devices connect: the factory listener with factory
    /// identities, else [`Broker::addr`].
    pub fn device_addr(&self) -> SocketAddr {
        self.device_addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        self.mosquitto.log_path()
    }

    /// Start measuring the CPU of this process and of the broker.
    pub fn cpu_meter(&self) -> CpuMeter {
        CpuMeter::start(self.pid)
    }

    /// Its resident memory now, KiB (0 when unknown).
    pub fn rss_kib(&self) -> u64 {
        util::pid_rss_kib(self.pid).unwrap_or(0)
    }

    /// Stop it cleanly.
    pub fn stop(mut self) {
        self.mosquitto.stop();
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
    for id in &plan.publishers {
        setup
            .acl
            .allow(id, Role::Publisher)
            .map_err(Error::BrokerConfig)?;
    }
    setup
        .acl
        .allow(&plan.subscriber, Role::Subscriber)
        .map_err(Error::BrokerConfig)?;
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
    write_atomic(&conf, text.as_bytes())?;
    let mosquitto =
        Mosquitto::start_conf(&conf, addr, &setup.log_path()).map_err(Error::BrokerStart)?;
    let pid = mosquitto.pid().ok_or(Error::BrokerPid)?;
    if let Some(f) = factory_addr {
        wait_listening(f, setup.log_path())?;
    }
    Ok(Broker {
        mosquitto,
        addr,
        device_addr: factory_addr.unwrap_or(addr),
        pid,
    })
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

/// Replace `path` with `bytes` atomically (coffre-fs: temporary file,
/// fsync, rename).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    coffre_fs::write_atomic(path, bytes, 0o644).map_err(|source| Error::Io {
        what: "writing",
        path: path.to_path_buf(),
        source,
    })
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
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
