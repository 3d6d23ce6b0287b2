//! `coffre broker …`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::output::{note, say};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use coffre_broker::rabbitmq::ClusterPlan;
use coffre_broker::{BrokerSetup, ClusterSetup, Engine, Mosquitto, QueueType, RabbitCluster, Role};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum BrokerCommand {
    /// Write the broker configuration from the PKI: mosquitto.conf and the ACL, or
    /// (--engine rabbitmq) a RabbitMQ cluster.
    Config {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        pki: PathBuf,
        /// Output directory (conf, ACL, log, persistence).
        #[arg(long, default_value = "broker")]
        out: PathBuf,
        /// TLS listener.
        #[arg(long, default_value = "127.0.0.1:8883")]
        listen: std::net::SocketAddr,
        /// A device that may publish on m5go/env.
        #[arg(long = "publisher", value_name = "ID")]
        publishers: Vec<String>,
        /// A device that may subscribe to m5go/env.
        #[arg(long = "subscriber", value_name = "ID")]
        subscribers: Vec<String>,
        /// Also accept devices with a factory identity (Trust&GO), on their own listener:
        /// 'emu' (the emulator's factory root), 'microchip' (Microchip's Crypto
        /// Authentication Root CA 002) or a certificate file. Their id is their
        /// certificate's CN (sn + serial number): name it with --publisher/--subscriber.
        #[arg(long, value_name = "ROOT")]
        factory_root: Option<String>,
        /// The factory identities' listener (no CRL: Trust&GO signers publish none).
        #[arg(long, default_value = "127.0.0.1:8884", requires = "factory_root")]
        factory_listen: std::net::SocketAddr,
        /// Every device of this fleet registry (JSON lines, e.g. written by
        /// 'coffre import-manifest --registry') may publish.
        #[arg(long, value_name = "FILE")]
        publishers_from: Option<PathBuf>,
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Run mosquitto (or the RabbitMQ cluster) with that configuration and stream its log (Ctrl-C stops it).
    Run {
        /// Directory written by 'coffre broker config'.
        #[arg(long, default_value = "broker")]
        config: PathBuf,
    },
}

impl BrokerCommand {
    /// Run `coffre broker …`.
    pub fn run(self) -> Result<()> {
        match self {
            BrokerCommand::Config {
                pki,
                out,
                listen,
                mut publishers,
                subscribers,
                factory_root,
                factory_listen,
                publishers_from,
                engine,
            } => {
                if let Some(reg) = publishers_from {
                    let entries = coffre_provision::manifest::Manifest::at(&reg)
                        .entries()
                        .map_err(|e| {
                            anyhow::anyhow!("reading the fleet registry {}: {e}", reg.display())
                        })?;
                    publishers.extend(entries.into_iter().map(|e| e.id));
                }
                config(
                    &pki,
                    &out,
                    listen,
                    &publishers,
                    &subscribers,
                    factory_root.as_deref().map(|r| (r, factory_listen)),
                    &engine,
                )
            }
            BrokerCommand::Run { config } => run(&config),
        }
    }
}

/// Which broker `coffre broker config` writes for.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Broker engine: mosquitto (one process; the default) or rabbitmq (a
    /// cluster of --nodes RabbitMQ nodes on this machine that survives
    /// losing one; MQTT 3.1.1 only: run agents with '--mqtt 3.1.1').
    #[arg(long, default_value = "mosquitto")]
    pub engine: Engine,
    /// rabbitmq: number of nodes. Node K listens for MQTT on the --listen
    /// port + K-1.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// rabbitmq: Erlang distribution port of node 1 (node K: + K-1),
    /// loopback only.
    #[arg(long, default_value_t = 25672)]
    pub dist_port: u16,
    /// rabbitmq: port of the cluster's own epmd (kept apart from a
    /// system RabbitMQ's 4369).
    #[arg(long, default_value_t = 4370)]
    pub epmd_port: u16,
    /// rabbitmq: queue type of QoS 1 sessions: quorum (replicated on
    /// every node: survives losing a minority of them) or classic (on one
    /// node: its messages are lost with that node).
    #[arg(long, default_value = "quorum")]
    pub queue_type: QueueType,
}

/// What users of the rabbitmq engine must know (RabbitMQ 3.10).
const RABBITMQ_LIMITS: &str = "limits of RabbitMQ 3.10's MQTT plugin:
  - MQTT 3.1.1 only: run agents with '--mqtt 3.1.1'
  - a refused publish or subscribe closes the connection (no reason code)
  - retained messages are kept per node, not shared by the cluster
  - a device must not send a username (it would be a password login, not its certificate)
  - the CRL is not read: to refuse a revoked device, delete its user
    (rabbitmqctl delete_user ID, environment as in the node's directory)";

/// `coffre broker config --engine rabbitmq`.
fn config_cluster(
    pki: &Path,
    out: &Path,
    listen: SocketAddr,
    publishers: &[String],
    subscribers: &[String],
    e: &EngineArgs,
) -> Result<()> {
    if e.nodes == 0 || e.nodes > 9 {
        bail!(
            "--nodes {}: a cluster here has 1 to 9 nodes (3 survives losing one)",
            e.nodes
        );
    }
    let mut s = ClusterSetup::new(pki, out, e.nodes);
    s.plan = ClusterPlan {
        queue_type: e.queue_type,
        ..ClusterPlan::consecutive(e.nodes, listen, e.dist_port, e.epmd_port)
    };
    for id in publishers {
        s.acl.allow(id, Role::Publisher)?;
    }
    for id in subscribers {
        s.acl.allow(id, Role::Subscriber)?;
    }
    let plan = s.write()?;
    say!(
        "wrote {} ({} nodes, {} queues for QoS 1 sessions, {} devices)",
        plan.display(),
        e.nodes,
        e.queue_type.name(),
        s.acl.entries.len()
    );
    for n in &s.plan.nodes {
        say!("  {}  MQTT/TLS {}", n.name, n.mqtt);
    }
    say!("{RABBITMQ_LIMITS}");
    say!("next: coffre broker run --config {}", out.display());
    Ok(())
}

/// `coffre broker config`.
pub fn config(
    pki: &Path,
    out: &Path,
    listen: SocketAddr,
    publishers: &[String],
    subscribers: &[String],
    factory: Option<(&str, SocketAddr)>,
    engine: &EngineArgs,
) -> Result<()> {
    if publishers.is_empty() && subscribers.is_empty() {
        bail!("no device would have any right: name them with --publisher ID and --subscriber ID");
    }
    if engine.engine == Engine::RabbitMq {
        if factory.is_some() {
            bail!("--factory-root is for the mosquitto engine only: the rabbitmq engine has one listener per node, for the project CA");
        }
        return config_cluster(pki, out, listen, publishers, subscribers, engine);
    }
    let mut s = BrokerSetup::new(pki, out);
    s.listen = listen;
    for id in publishers {
        s.acl.allow(id, Role::Publisher)?;
    }
    for id in subscribers {
        s.acl.allow(id, Role::Subscriber)?;
    }
    if let Some((root, listen)) = factory {
        let root = crate::cmd_factory::TrustedRoot::named(root)?;
        let (der, name) = (root.der, root.name);
        s.factory = Some(coffre_broker::FactoryListener {
            listen,
            root_pem: coffre_pki::util::to_pem("CERTIFICATE", &der),
        });
        say!("factory identities: listener {listen}, trusting {name}");
    }
    let conf = s.write()?;
    say!("wrote {} and {}", conf.display(), out.join("acl").display());
    say!("next: coffre broker run --config {}", out.display());
    Ok(())
}

/// The listener address written in a mosquitto.conf.
fn listener_of(conf: &str) -> Option<SocketAddr> {
    conf.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        if it.next()? != "listener" {
            return None;
        }
        let port: u16 = it.next()?.parse().ok()?;
        let ip = it.next().unwrap_or("0.0.0.0");
        format!("{ip}:{port}").parse().ok()
    })
}

/// `coffre broker run --config DIR` for a RabbitMQ cluster: start it,
/// stream every node's log until Ctrl-C, stop it.
fn run_cluster(dir: &Path, stop: &AtomicBool) -> Result<()> {
    let plan = ClusterPlan::read(dir)?;
    note!(
        "starting {} RabbitMQ nodes (node 1 first, then the others join it; 10-20 s each)",
        plan.nodes.len()
    );
    let mut c = RabbitCluster::start(dir)?;
    for (k, n) in plan.nodes.iter().enumerate() {
        note!(
            "{}: MQTT/TLS on {} (pid {}), log {}",
            n.name,
            n.mqtt,
            c.pid(k).unwrap_or(0),
            c.log_path(k).display()
        );
    }
    note!("cluster up; Ctrl-C stops it");
    let followers: Vec<_> = (0..plan.nodes.len())
        .map(|k| coffre_broker::LogFollower::follow_from_end(c.log_path(k)))
        .collect();
    let mut cursors: Vec<_> = followers.iter().map(|f| f.cursor()).collect();
    while !stop.load(Ordering::Relaxed) {
        for (k, f) in followers.iter().enumerate() {
            for line in f.next_lines(&mut cursors[k], Duration::from_millis(50)) {
                say!("[node{}] {line}", k + 1);
            }
        }
        for (k, status) in c.reap_exited() {
            note!(
                "{} exited ({status}); {} of {} nodes running; its log: {}",
                plan.nodes[k].name,
                c.running().len(),
                plan.nodes.len(),
                c.log_path(k).display()
            );
            if !c.has_majority() {
                note!(
                    "the cluster has lost its majority: new connections hang and QoS 1 messages are not accepted until enough nodes are back; stop with Ctrl-C and start the cluster again with 'coffre broker run --config {}'",
                    dir.display()
                );
            }
        }
    }
    note!("stopping the cluster");
    c.stop();
    note!("cluster stopped");
    Ok(())
}

/// `coffre broker run`: start mosquitto (or the RabbitMQ cluster), stream
/// its log until Ctrl-C.
pub fn run(dir: &Path) -> Result<()> {
    if Engine::of_dir(dir) == Engine::RabbitMq {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, stop.clone())?;
        }
        return run_cluster(dir, &stop);
    }
    let conf_path = dir.join("mosquitto.conf");
    let conf = crate::input::read_text(&conf_path).with_context(|| {
        format!(
            "cannot read {}: write it first with 'coffre broker config --pki PKI --out {}'",
            conf_path.display(),
            dir.display()
        )
    })?;
    let addr = listener_of(&conf).context("mosquitto.conf has no 'listener PORT ADDRESS' line")?;
    let mut crls = CrlWatch::new(&conf);
    crls.check_before_start()?;
    let log = dir.join("mosquitto.log");
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut m = Mosquitto::start_conf(&conf_path, addr, &log)?;
    note!(
        "mosquitto listening on {addr} (pid {}); Ctrl-C stops it",
        m.pid().unwrap_or(0)
    );
    let follower = coffre_broker::LogFollower::follow(&log);
    let mut printed = coffre_broker::LogCursor::START;
    while !stop.load(Ordering::Relaxed) {
        for line in follower.next_lines(&mut printed, Duration::from_millis(100)) {
            say!("{line}");
        }
        crls.check_while_running();
    }
    m.stop();
    for line in follower.since(printed) {
        say!("{line}");
    }
    note!("mosquitto stopped");
    Ok(())
}

/// How long before its nextUpdate `broker run` starts warning that a CRL
/// expires.
const CRL_WARN_DAYS: i64 = 7;

/// The CRLs a mosquitto configuration reads (`crlfile`), watched: once a
/// CRL's nextUpdate has passed, mosquitto refuses every client, valid ones
/// included (its CRL check fails), until a fresh CRL is loaded.
struct CrlWatch {
    files: Vec<PathBuf>,
    /// The nextUpdate each was last seen expired at (warned once each).
    warned: Vec<Option<coffre_pki::Timestamp>>,
    last: std::time::Instant,
}

impl CrlWatch {
    fn new(conf: &str) -> CrlWatch {
        let files: Vec<PathBuf> = conf
            .lines()
            .filter_map(|l| l.trim().strip_prefix("crlfile "))
            .map(|p| PathBuf::from(p.trim()))
            .collect();
        CrlWatch {
            warned: vec![None; files.len()],
            files,
            last: std::time::Instant::now(),
        }
    }

    /// The nextUpdate of each CRL that can be read.
    fn expiries(&self) -> Vec<(usize, coffre_pki::Timestamp)> {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(k, f)| Some((k, coffre_pki::ca::crl_times(f).ok()?.1?)))
            .collect()
    }

    /// Refuse to start on an expired CRL; warn about one that expires soon.
    /// (A CRL that cannot be read is left to mosquitto to report.)
    fn check_before_start(&self) -> Result<()> {
        let now = coffre_pki::Timestamp::now();
        for (k, next) in self.expiries() {
            let f = &self.files[k];
            if next < now {
                bail!(
                    "the CRL {} expired on {next}: mosquitto would refuse every client, valid ones \
                     included. Write a fresh one with 'coffre pki crl --dir {}', then start again",
                    f.display(),
                    pki_dir_of(f).display()
                );
            }
            let left = next.get() - now.get();
            if left < time::Duration::days(CRL_WARN_DAYS) {
                let left = match (left.whole_hours(), left.whole_minutes()) {
                    (h, _) if h >= 48 => format!("{} days", h / 24),
                    (h, _) if h >= 2 => format!("{h} h"),
                    (_, m) => format!("{m} min"),
                };
                note!(
                    "warning: the CRL {} expires on {next} (in {left}); from then on mosquitto \
                     refuses every client: run 'coffre pki crl --dir {}' before (it reloads this broker)",
                    f.display(),
                    pki_dir_of(f).display()
                );
            }
        }
        Ok(())
    }

    /// Once a second: say when a CRL expires while the broker runs.
    fn check_while_running(&mut self) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = std::time::Instant::now();
        let now = coffre_pki::Timestamp::now();
        for (k, next) in self.expiries() {
            if next < now && self.warned[k] != Some(next) {
                self.warned[k] = Some(next);
                let f = &self.files[k];
                note!(
                    "the CRL {} expired at {next}: mosquitto now refuses every new client; run \
                     'coffre pki crl --dir {}' (it reloads this broker)",
                    f.display(),
                    pki_dir_of(f).display()
                );
            }
        }
    }
}

/// The PKI directory a CRL file belongs to (its directory).
fn pki_dir_of(crl: &Path) -> &Path {
    crl.parent().unwrap_or(Path::new("."))
}
