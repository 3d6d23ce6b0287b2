//! The clustered engine: RabbitMQ 3.10 (Debian's `rabbitmq-server`) with
//! its MQTT plugin, N nodes on loopback ports of one machine.
//!
//! [`ClusterSetup`] writes, from the PKI and the [`Acl`], everything a
//! cluster needs in one directory:
//!
//! - `cluster.json`: the [`ClusterPlan`] (node names, ports, queue type),
//!   read back by [`RabbitCluster::start`];
//! - `nodeK/rabbitmq.conf` for each node: the MQTT TLS listener, mutual TLS
//!   with the project CA (`verify_peer`, `fail_if_no_peer_cert`), X.509
//!   login (`mqtt.ssl_cert_login`, `ssl_cert_login_from = common_name`:
//!   the certificate's CN is the user), no anonymous access, no AMQP
//!   listener, and QoS 1 sessions on quorum queues
//!   (`mqtt.durable_queue_type = quorum`);
//! - `definitions.json` (loaded by the first node at boot): one user per
//!   device, without a password (only its certificate logs it in), and its
//!   permissions: on the `amq.topic` exchange, which the MQTT plugin
//!   publishes to, a publisher may write the readings topic's routing key
//!   and nothing else, a subscriber may read it (bind its queue to it) and
//!   nothing else — the same rights as Mosquitto's ACL file;
//! - `enabled_plugins`, and the Erlang cookie the nodes and `rabbitmqctl`
//!   share (`home/.erlang.cookie`, 0400, random, kept across rewrites).
//!
//! [`RabbitCluster::start`] starts the first node, waits for it, then the
//! others, which join it (classic peer discovery); each node's log is kept
//! (`nodeK/rabbit.log`, earlier runs as `.1` … `.5`). Each cluster has its
//! own `epmd` port, so it neither meets another cluster nor a system
//! RabbitMQ. [`RabbitCluster::kill`] kills a node with SIGKILL by its
//! process id, [`RabbitCluster::restart`] starts it again.
//!
//! Limits of this engine version the user must know (RabbitMQ 3.10's MQTT
//! plugin): MQTT 3.1.1 only; a refused publish or subscribe closes the
//! connection instead of answering with a reason code; retained messages
//! are kept per node; a device must not send a username (it would be
//! checked as a password login instead of its certificate). Revocation:
//! the CRL is not read; delete the device's user
//! (`rabbitmqctl delete_user ID`) to refuse its certificate.
//!
//! Starting a node is where IO meets state: [`NodeBoot`] reads a node's log
//! and says whether it is up, still booting or failed.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::{absolute, check_id};
use crate::{Acl, Error, Result, Role};

/// How to install RabbitMQ on Debian.
pub const RABBITMQ_INSTALL_HINT: &str =
    "install it with 'sudo apt-get install -y rabbitmq-server' (Debian/Ubuntu; 3.10 or later)";

/// The cluster description file in a cluster directory.
pub const CLUSTER_FILE: &str = "cluster.json";

/// How long one node may take to boot (Erlang is slow to start on a busy
/// two-core machine: 10-20 s is usual, minutes under heavy load with
/// thousands of users to import).
pub const BOOT_LIMIT: Duration = Duration::from_secs(300);

/// Where Debian installs the scripts that run as the calling user (the
/// ones in /usr/sbin switch to the `rabbitmq` user when called by root).
const LIB_BIN: &str = "/usr/lib/rabbitmq/bin";

/// The RabbitMQ scripts: `rabbitmq-server`, `rabbitmqctl`.
#[derive(Debug, Clone)]
pub struct RabbitBins {
    /// `rabbitmq-server`.
    pub server: PathBuf,
    /// `rabbitmqctl`.
    pub ctl: PathBuf,
}

/// Find RabbitMQ: Debian's library directory first, then `$PATH`.
pub fn find_rabbitmq() -> Option<RabbitBins> {
    let mut dirs = vec![PathBuf::from(LIB_BIN)];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    dirs.into_iter().find_map(|d| {
        let server = d.join("rabbitmq-server");
        let ctl = d.join("rabbitmqctl");
        (server.is_file() && ctl.is_file()).then_some(RabbitBins { server, ctl })
    })
}

/// The queue type of QoS 1 sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Replicated on every node (Raft): survives the loss of a minority.
    Quorum,
    /// On one node only: its messages are lost when that node goes down.
    Classic,
}

impl QueueType {
    /// "quorum" or "classic".
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

impl std::str::FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "quorum" => Ok(QueueType::Quorum),
            "classic" => Ok(QueueType::Classic),
            o => Err(format!("unknown queue type '{o}': use quorum or classic")),
        }
    }
}

/// One node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Erlang node name, e.g. `coffre1@localhost`.
    pub name: String,
    /// MQTT over TLS listener.
    pub mqtt: SocketAddr,
    /// Erlang distribution port (inter-node traffic, loopback only).
    pub dist_port: u16,
}

/// What `cluster.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPlan {
    /// The engine version the files were written for.
    pub engine: String,
    /// The nodes; the first one starts first, the others join it.
    pub nodes: Vec<NodeSpec>,
    /// The port of this cluster's own `epmd`.
    pub epmd_port: u16,
    /// Queue type of QoS 1 sessions.
    pub queue_type: QueueType,
    /// The readings topic (MQTT form).
    pub topic: String,
}

impl ClusterPlan {
    /// `nodes` nodes whose MQTT listeners are `first` and the following
    /// ports, distribution ports from `dist_base`, `epmd` on `epmd_port`.
    pub fn consecutive(nodes: usize, first: SocketAddr, dist_base: u16, epmd_port: u16) -> Self {
        let nodes = (0..nodes)
            .map(|k| NodeSpec {
                name: format!("coffre{}@localhost", k + 1),
                mqtt: SocketAddr::new(first.ip(), first.port().wrapping_add(k as u16)),
                dist_port: dist_base.wrapping_add(k as u16),
            })
            .collect();
        ClusterPlan {
            engine: "rabbitmq".into(),
            nodes,
            epmd_port,
            queue_type: QueueType::Quorum,
            topic: "m5go/env".into(),
        }
    }

    /// The MQTT listeners, node by node.
    pub fn mqtt_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.mqtt).collect()
    }

    /// Read `cluster.json` from a cluster directory.
    pub fn read(dir: &Path) -> Result<ClusterPlan> {
        let path = dir.join(CLUSTER_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Admin {
            what: format!("reading {}", path.display()),
            output: e.to_string(),
        })
    }
}

/// The AMQP routing key of an MQTT topic: '/' ↔ '.', '+' ↔ '*'.
pub fn routing_key(topic: &str) -> String {
    topic
        .chars()
        .map(|c| match c {
            '/' => '.',
            '+' => '*',
            c => c,
        })
        .collect()
}

/// An anchored regular expression matching exactly `s`.
fn exact(s: &str) -> String {
    let mut r = String::from("^");
    for c in s.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' && c != '-' {
            r.push('\\');
        }
        r.push(c);
    }
    r.push('$');
    r
}

/// Everything needed to write a cluster's files.
#[derive(Debug, Clone)]
pub struct ClusterSetup {
    /// PKI directory (ca.crt.pem, broker.crt.pem, broker.key.pem).
    pub pki_dir: PathBuf,
    /// The cluster directory.
    pub out_dir: PathBuf,
    /// Nodes, ports, queue type, topic.
    pub plan: ClusterPlan,
    /// Device rights.
    pub acl: Acl,
}

impl ClusterSetup {
    /// Defaults: `nodes` nodes listening on 127.0.0.1:8883 and up,
    /// distribution ports 25672 and up, epmd on 4370, quorum queues.
    pub fn new(pki_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>, nodes: usize) -> Self {
        ClusterSetup {
            pki_dir: pki_dir.into(),
            out_dir: out_dir.into(),
            plan: ClusterPlan::consecutive(nodes, ([127, 0, 0, 1], 8883).into(), 25672, 4370),
            acl: Acl::default(),
        }
    }

    /// The directory of node `k` (from 0).
    pub fn node_dir(dir: &Path, k: usize) -> PathBuf {
        dir.join(format!("node{}", k + 1))
    }

    fn pki_file(&self, name: &str) -> Result<PathBuf> {
        let p = self.pki_dir.join(name);
        if !p.exists() {
            return Err(Error::MissingPki(p));
        }
        absolute(&p)
    }

    /// The `rabbitmq.conf` of node `k` (from 0).
    pub fn render_conf(&self, k: usize) -> Result<String> {
        let ca = self.pki_file("ca.crt.pem")?;
        let cert = self.pki_file("broker.crt.pem")?;
        let key = self.pki_file("broker.key.pem")?;
        let out = absolute(&self.out_dir)?;
        let node = &self.plan.nodes[k];
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Written by coffre: node {} of {}, mutual-TLS MQTT for certified devices only.",
            k + 1,
            self.plan.nodes.len()
        );
        let _ = writeln!(s, "listeners.tcp = none");
        let _ = writeln!(s, "loopback_users = none");
        let _ = writeln!(s, "ssl_cert_login_from = common_name");
        let _ = writeln!(s, "ssl_options.cacertfile = {}", ca.display());
        let _ = writeln!(s, "ssl_options.certfile = {}", cert.display());
        let _ = writeln!(s, "ssl_options.keyfile = {}", key.display());
        let _ = writeln!(s, "ssl_options.verify = verify_peer");
        let _ = writeln!(s, "ssl_options.fail_if_no_peer_cert = true");
        let _ = writeln!(s, "ssl_options.versions.1 = tlsv1.3");
        let _ = writeln!(s, "ssl_options.versions.2 = tlsv1.2");
        let _ = writeln!(s, "mqtt.listeners.tcp = none");
        let _ = writeln!(s, "mqtt.listeners.ssl.default = {}", node.mqtt);
        let _ = writeln!(s, "mqtt.tcp_listen_options.nodelay = true");
        let _ = writeln!(s, "mqtt.tcp_listen_options.backlog = 4096");
        let _ = writeln!(s, "mqtt.ssl_cert_login = true");
        let _ = writeln!(s, "mqtt.allow_anonymous = false");
        let _ = writeln!(s, "mqtt.vhost = /");
        let _ = writeln!(s, "mqtt.exchange = amq.topic");
        let _ = writeln!(
            s,
            "# QoS 1 sessions (clean session false) on {} queues.",
            self.plan.queue_type.name()
        );
        let _ = writeln!(
            s,
            "mqtt.durable_queue_type = {}",
            self.plan.queue_type.name()
        );
        let _ = writeln!(s, "log.file = {}", Self::log_path(&out, k).display());
        let _ = writeln!(s, "log.file.level = info");
        let _ = writeln!(s, "log.console = false");
        if k == 0 {
            let _ = writeln!(
                s,
                "load_definitions = {}",
                out.join("definitions.json").display()
            );
        } else {
            let _ = writeln!(
                s,
                "cluster_formation.peer_discovery_backend = classic_config"
            );
            let _ = writeln!(
                s,
                "cluster_formation.classic_config.nodes.1 = {}",
                self.plan.nodes[0].name
            );
            let _ = writeln!(
                s,
                "cluster_formation.classic_config.nodes.2 = {}",
                node.name
            );
        }
        Ok(s)
    }

    /// The definitions the first node loads: one user per device (no
    /// password: its certificate logs it in) and its rights.
    pub fn render_definitions(&self) -> String {
        let rk = exact(&routing_key(&self.plan.topic));
        let mut users = Vec::new();
        let mut permissions = Vec::new();
        let mut topic_permissions = Vec::new();
        for (id, role) in &self.acl.entries {
            users.push(serde_json::json!({
                "name": id, "password_hash": "",
                "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []
            }));
            // The MQTT plugin names a session's queue after the client id.
            let queue = format!(
                "^mqtt-subscription-{}qos[01]$",
                exact(id).trim_matches(['^', '$'])
            );
            let (configure, write, read, t_write, t_read) = match role {
                Role::Publisher => (
                    "^$".to_string(),
                    "^amq\\.topic$".to_string(),
                    "^$".to_string(),
                    rk.clone(),
                    "^$".to_string(),
                ),
                Role::Subscriber => (
                    queue.clone(),
                    queue.clone(),
                    format!("^(amq\\.topic|{})$", queue.trim_matches(['^', '$'])),
                    "^$".to_string(),
                    rk.clone(),
                ),
            };
            permissions.push(serde_json::json!({
                "user": id, "vhost": "/", "configure": configure, "write": write, "read": read
            }));
            topic_permissions.push(serde_json::json!({
                "user": id, "vhost": "/", "exchange": "amq.topic", "write": t_write, "read": t_read
            }));
        }
        let doc = serde_json::json!({
            "vhosts": [{"name": "/"}],
            "users": users,
            "permissions": permissions,
            "topic_permissions": topic_permissions,
        });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }

    /// The main log of node `k` in cluster directory `dir`.
    pub fn log_path(dir: &Path, k: usize) -> PathBuf {
        Self::node_dir(dir, k).join("rabbit.log")
    }

    /// Write every file into `out_dir` (created if needed, 0700); returns
    /// the path of `cluster.json`.
    pub fn write(&self) -> Result<PathBuf> {
        for (id, _) in &self.acl.entries {
            check_id(id)?;
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let home = self.out_dir.join("home");
        std::fs::create_dir_all(&home).map_err(io(&home))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.out_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&self.out_dir))?;
        }
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        for k in 0..self.plan.nodes.len() {
            let d = Self::node_dir(&self.out_dir, k);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            files.push((d.join("rabbitmq.conf"), self.render_conf(k)?.into_bytes()));
        }
        files.push((
            self.out_dir.join("definitions.json"),
            self.render_definitions().into_bytes(),
        ));
        files.push((
            self.out_dir.join("enabled_plugins"),
            b"[rabbitmq_mqtt].\n".to_vec(),
        ));
        let plan = serde_json::to_string_pretty(&self.plan).unwrap_or_default();
        files.push((self.out_dir.join(CLUSTER_FILE), plan.into_bytes()));
        coffre_fs::write_atomic_batch(&files, 0o644).map_err(io(&self.out_dir))?;
        let cookie = home.join(".erlang.cookie");
        if !cookie.exists() {
            let mut raw = Zeroizing::new([0u8; 24]);
            OsRng.fill_bytes(raw.as_mut());
            let text = Zeroizing::new(
                raw.iter()
                    .map(|b| char::from(b'A' + b % 26))
                    .collect::<String>(),
            );
            coffre_fs::write_atomic(&cookie, text.as_bytes(), 0o400).map_err(io(&cookie))?;
        }
        Ok(self.out_dir.join(CLUSTER_FILE))
    }
}

/// The environment of node `k` of the cluster in `dir` (also what
/// `rabbitmqctl` needs to reach it).
pub fn node_env(dir: &Path, plan: &ClusterPlan, k: usize) -> Vec<(&'static str, String)> {
    let nd = ClusterSetup::node_dir(dir, k);
    let p = |p: &Path| p.display().to_string();
    vec![
        ("HOME", p(&dir.join("home"))),
        ("RABBITMQ_NODENAME", plan.nodes[k].name.clone()),
        ("RABBITMQ_USE_LONGNAME", "false".into()),
        ("RABBITMQ_DIST_PORT", plan.nodes[k].dist_port.to_string()),
        ("RABBITMQ_MNESIA_BASE", p(&nd.join("mnesia"))),
        ("RABBITMQ_LOG_BASE", p(&nd)),
        ("RABBITMQ_CONFIG_FILE", p(&nd.join("rabbitmq.conf"))),
        (
            "RABBITMQ_ADVANCED_CONFIG_FILE",
            p(&nd.join("advanced.config")),
        ),
        ("RABBITMQ_CONF_ENV_FILE", p(&nd.join("rabbitmq-env.conf"))),
        (
            "RABBITMQ_ENABLED_PLUGINS_FILE",
            p(&dir.join("enabled_plugins")),
        ),
        ("RABBITMQ_PID_FILE", p(&nd.join("pid"))),
        ("ERL_EPMD_PORT", plan.epmd_port.to_string()),
        ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
        (
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}".into(),
        ),
    ]
}

/// What a booting node's log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootStep {
    /// Still booting: look again later.
    Wait,
    /// Up, with its MQTT listener.
    Ready,
    /// Will not come up: why, and what to do.
    Failed(String),
}

/// Decides, from a node's log, its exit status and the time spent, whether
/// the node is up, booting or failed.
#[derive(Debug, Clone)]
pub struct NodeBoot {
    limit: Duration,
}

impl NodeBoot {
    /// A boot that may take up to `limit`.
    pub fn new(limit: Duration) -> Self {
        NodeBoot { limit }
    }

    /// `log`: the node's log so far; `exited`: its exit status if the
    /// process ended; `elapsed`: time since it was started.
    pub fn step(&self, log: &str, exited: Option<&str>, elapsed: Duration) -> BootStep {
        if log.contains("Server startup complete") {
            return BootStep::Ready;
        }
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("eaddrinuse") || l.contains("address already in use"))
        {
            return BootStep::Failed(format!(
                "a port it needs is already in use ({}); stop what listens there ('ss -ltnp') or write the cluster again with other ports ('coffre broker config --engine rabbitmq --listen ADDR --dist-port PORT')",
                line.trim()
            ));
        }
        if log.contains("Error preparing configuration") {
            let said = log
                .lines()
                .find(|l| l.contains("tried to set") || l.contains("Conf file attempted"))
                .or_else(|| log.lines().find(|l| l.contains("Error preparing")))
                .map(|l| l.rsplit_once("> ").map_or(l, |(_, m)| m).trim())
                .unwrap_or_default();
            return BootStep::Failed(format!(
                "its configuration is refused ({said}); correct it, or write it again with 'coffre broker config --engine rabbitmq'"
            ));
        }
        if let Some(status) = exited {
            return BootStep::Failed(format!(
                "it exited during boot ({status}); read its log for the cause"
            ));
        }
        if elapsed > self.limit {
            let waiting =
                log.contains("Waiting for Mnesia tables") || log.contains("Could not auto-cluster");
            return BootStep::Failed(if waiting {
                format!(
                    "it did not finish booting within {} s: it is waiting for the other nodes (a node that was part of a cluster starts only once it reaches the node that stopped last); start the other nodes, or run 'coffre broker run' to start the whole cluster",
                    self.limit.as_secs()
                )
            } else {
                format!(
                    "it did not finish booting within {} s; read its log, and check that the machine is not out of memory or CPU",
                    self.limit.as_secs()
                )
            });
        }
        BootStep::Wait
    }
}

/// One running node.
#[derive(Debug)]
struct NodeProc {
    /// The `rabbitmq-server` script (parent of the Erlang VM).
    child: Child,
    started: Instant,
}

/// A running RabbitMQ cluster; stopped when dropped.
#[derive(Debug)]
pub struct RabbitCluster {
    dir: PathBuf,
    plan: ClusterPlan,
    bins: RabbitBins,
    nodes: Vec<Option<NodeProc>>,
    boot: NodeBoot,
}

impl RabbitCluster {
    /// Start the cluster written in `dir` by [`ClusterSetup::write`]: the
    /// first node, then the others (which join it); return once every node
    /// is up.
    pub fn start(dir: &Path) -> Result<RabbitCluster> {
        let bins = find_rabbitmq().ok_or(Error::RabbitNotInstalled)?;
        let dir = absolute(dir)?;
        let plan = ClusterPlan::read(&dir)?;
        for (k, n) in plan.nodes.iter().enumerate() {
            check_free(n.mqtt, &n.name, "MQTT listener")?;
            check_free(
                SocketAddr::from(([127, 0, 0, 1], n.dist_port)),
                &plan.nodes[k].name,
                "distribution port",
            )?;
        }
        let mut c = RabbitCluster {
            nodes: plan.nodes.iter().map(|_| None).collect(),
            dir,
            plan,
            bins,
            boot: NodeBoot::new(BOOT_LIMIT),
        };
        c.spawn(0)?;
        c.wait_ready(&[0])?;
        let rest: Vec<usize> = (1..c.plan.nodes.len()).collect();
        for &k in &rest {
            c.spawn(k)?;
        }
        c.wait_ready(&rest)?;
        Ok(c)
    }

    /// The cluster's description.
    pub fn plan(&self) -> &ClusterPlan {
        &self.plan
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The main log of node `k`.
    pub fn log_path(&self, k: usize) -> PathBuf {
        ClusterSetup::log_path(&self.dir, k)
    }

    /// The process id of node `k`'s Erlang VM (from its pid file), while it
    /// runs.
    pub fn pid(&self, k: usize) -> Option<u32> {
        self.nodes.get(k)?.as_ref()?;
        let f = ClusterSetup::node_dir(&self.dir, k).join("pid");
        std::fs::read_to_string(f).ok()?.trim().parse().ok()
    }

    /// Nodes running now.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&k| self.nodes[k].is_some())
            .collect()
    }

    fn spawn(&mut self, k: usize) -> Result<()> {
        let nd = ClusterSetup::node_dir(&self.dir, k);
        let log = self.log_path(k);
        coffre_fs::rotate(&log, crate::LOGS_KEPT).map_err(|source| Error::Io {
            path: log.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(nd.join("pid"));
        let out_path = nd.join("stdout.log");
        let out = std::fs::File::create(&out_path).map_err(|source| Error::Io {
            path: out_path.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| Error::Io {
            path: out_path,
            source,
        })?;
        let child = Command::new(&self.bins.server)
            .envs(node_env(&self.dir, &self.plan, k))
            .current_dir(&nd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Io {
                path: self.bins.server.clone(),
                source,
            })?;
        tracing::info!(
            "{}: started (script pid {})",
            self.plan.nodes[k].name,
            child.id()
        );
        self.nodes[k] = Some(NodeProc {
            child,
            started: Instant::now(),
        });
        Ok(())
    }

    /// Wait until each of `nodes` is up, or one fails.
    pub fn wait_ready(&mut self, nodes: &[usize]) -> Result<()> {
        while !self.poll_ready(nodes)? {
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// Look once whether each of `nodes` is up: `Ok(false)` while one is
    /// still booting; the error of a node that will not come up (it is
    /// then stopped).
    pub fn poll_ready(&mut self, nodes: &[usize]) -> Result<bool> {
        let mut all = true;
        for &k in nodes {
            // Configuration errors come before the log is set up: on the
            // node's console output.
            let console =
                std::fs::read_to_string(ClusterSetup::node_dir(&self.dir, k).join("stdout.log"))
                    .unwrap_or_default();
            let log = std::fs::read_to_string(self.log_path(k)).unwrap_or_default() + &console;
            let Some(p) = self.nodes[k].as_mut() else {
                return Err(self.node_failed(k, "it is not running".into(), &log));
            };
            let exited = p.child.try_wait().ok().flatten().map(|s| s.to_string());
            match self.boot.step(&log, exited.as_deref(), p.started.elapsed()) {
                BootStep::Ready => {}
                BootStep::Wait => all = false,
                BootStep::Failed(why) => {
                    self.stop_node(k, Duration::from_secs(10));
                    return Err(self.node_failed(k, why, &log));
                }
            }
        }
        Ok(all)
    }

    fn node_failed(&self, k: usize, why: String, log: &str) -> Error {
        let mut tail: Vec<&str> = log.lines().rev().take(12).collect();
        tail.reverse();
        let out = std::fs::read_to_string(ClusterSetup::node_dir(&self.dir, k).join("stdout.log"))
            .unwrap_or_default();
        let mut out_tail: Vec<&str> = out.lines().rev().take(8).collect();
        out_tail.reverse();
        Error::NodeFailed {
            node: self.plan.nodes[k].name.clone(),
            why,
            log: self.log_path(k),
            tail: format!("{}\n{}", tail.join("\n"), out_tail.join("\n")),
        }
    }

    /// Kill node `k`'s Erlang VM with SIGKILL (by its process id), as a
    /// crash would; returns the process id killed.
    pub fn kill(&mut self, k: usize) -> Result<u32> {
        let pid = self.pid(k).ok_or(Error::NotRunning)?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| Error::Admin {
            what: format!("kill -9 {pid}"),
            output: e.to_string(),
        })?;
        if let Some(mut p) = self.nodes[k].take() {
            // The script exits once its VM is gone.
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        tracing::info!("{}: killed (pid {pid})", self.plan.nodes[k].name);
        Ok(pid)
    }

    /// Nodes whose process ended by itself since the last call, with
    /// their exit status (they are then no longer [`Self::running`]).
    pub fn reap_exited(&mut self) -> Vec<(usize, String)> {
        let mut gone = Vec::new();
        for (k, slot) in self.nodes.iter_mut().enumerate() {
            if let Some(p) = slot.as_mut() {
                if let Ok(Some(status)) = p.child.try_wait() {
                    gone.push((k, status.to_string()));
                    *slot = None;
                }
            }
        }
        gone
    }

    /// True while more than half of the nodes run: without a majority,
    /// quorum queues and the MQTT plugin's client-id registry stop, and
    /// new connections hang.
    pub fn has_majority(&self) -> bool {
        2 * self.running().len() > self.nodes.len()
    }

    /// Start node `k` again without waiting for it (see [`Self::wait_ready`]).
    pub fn restart(&mut self, k: usize) -> Result<()> {
        if self.nodes[k].is_some() {
            return Ok(());
        }
        self.spawn(k)
    }

    /// Run `rabbitmqctl` against node `k` (e.g. `["list_queues", "name",
    /// "type"]`); its standard output.
    pub fn ctl(&self, k: usize, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bins.ctl)
            .envs(node_env(&self.dir, &self.plan, k))
            .arg("-n")
            .arg(&self.plan.nodes[k].name)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Io {
                path: self.bins.ctl.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Admin {
                what: format!("rabbitmqctl {}", args.join(" ")),
                output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn stop_node(&mut self, k: usize, limit: Duration) {
        if let Some(p) = self.nodes[k].as_mut() {
            let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        self.reap(k, limit);
    }

    fn reap(&mut self, k: usize, limit: Duration) {
        let Some(mut p) = self.nodes[k].take() else {
            return;
        };
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if let Ok(Some(_)) = p.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Some(pid) = std::fs::read_to_string(ClusterSetup::node_dir(&self.dir, k).join("pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = p.child.kill();
        let _ = p.child.wait();
    }

    /// Stop every node cleanly (SIGTERM to each node's script, which stops
    /// its VM), killing those that take more than 30 s, then this
    /// cluster's `epmd`.
    pub fn stop(&mut self) {
        for p in self.nodes.iter().flatten() {
            let pid = nix::unistd::Pid::from_raw(p.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        for k in 0..self.nodes.len() {
            self.reap(k, Duration::from_secs(30));
        }
        // epmd outlives the nodes; this one is the cluster's own. It
        // refuses to stop while a node is still registered (a VM killed a
        // moment ago may be): try again for a few seconds.
        for _ in 0..20 {
            let out = Command::new("epmd")
                .arg("-kill")
                .env("ERL_EPMD_PORT", self.plan.epmd_port.to_string())
                .stdin(Stdio::null())
                .output();
            let Ok(o) = out else { break };
            let said = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            // "Killing not allowed - living nodes in database.": again.
            // "Killed", or "Cannot connect to local epmd": done.
            if !said.contains("living nodes") {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        // "Killed" is said before epmd has closed its port: wait (up to
        // 5 s) until the port is free, so that stop() means stopped.
        for _ in 0..50 {
            if TcpListener::bind(("127.0.0.1", self.plan.epmd_port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_free(addr: SocketAddr, node: &str, what: &'static str) -> Result<()> {
    TcpListener::bind(addr)
        .map(drop)
        .map_err(|source| Error::PortInUse {
            addr,
            what: format!("{node}'s {what}"),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pki(d: &Path) -> PathBuf {
        let pki = d.join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        for f in ["ca.crt.pem", "broker.crt.pem", "broker.key.pem"] {
            std::fs::write(pki.join(f), "x").unwrap();
        }
        pki
    }

    #[test]
    fn each_node_has_its_listener_and_the_others_join_the_first() {
        let d = tempfile::tempdir().unwrap();
        let s = ClusterSetup::new(pki(d.path()), d.path().join("c"), 3);
        let first = s.render_conf(0).unwrap();
        let third = s.render_conf(2).unwrap();
        for line in [
            "mqtt.ssl_cert_login = true",
            "ssl_cert_login_from = common_name",
            "mqtt.allow_anonymous = false",
            "ssl_options.fail_if_no_peer_cert = true",
            "ssl_options.verify = verify_peer",
            "mqtt.durable_queue_type = quorum",
            "listeners.tcp = none",
            "mqtt.listeners.tcp = none",
        ] {
            assert!(first.contains(line) && third.contains(line), "{line}");
        }
        assert!(first.contains("mqtt.listeners.ssl.default = 127.0.0.1:8883"));
        assert!(third.contains("mqtt.listeners.ssl.default = 127.0.0.1:8885"));
        assert!(first.contains("load_definitions = ") && !first.contains("classic_config"));
        assert!(third.contains("classic_config.nodes.1 = coffre1@localhost"));
        assert!(!third.contains("load_definitions"));
    }

    #[test]
    fn classic_queues_are_written_when_asked() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ClusterSetup::new(pki(d.path()), d.path().join("c"), 1);
        s.plan.queue_type = "classic".parse().unwrap();
        assert!(s
            .render_conf(0)
            .unwrap()
            .contains("mqtt.durable_queue_type = classic"));
        assert!("mirrored".parse::<QueueType>().is_err());
    }

    #[test]
    fn definitions_give_each_device_its_one_right() {
        let d = tempfile::tempdir().unwrap();
        let mut s = ClusterSetup::new(pki(d.path()), d.path().join("c"), 3);
        s.acl.allow("dev.1", Role::Publisher).unwrap();
        s.acl.allow("sub-1", Role::Subscriber).unwrap();
        let v: serde_json::Value = serde_json::from_str(&s.render_definitions()).unwrap();
        assert_eq!(v["users"][0]["name"], "dev.1");
        assert_eq!(v["users"][0]["password_hash"], "");
        let t = &v["topic_permissions"];
        assert_eq!(t[0]["write"], "^m5go\\.env$");
        assert_eq!(t[0]["read"], "^$");
        assert_eq!(t[1]["write"], "^$");
        assert_eq!(t[1]["read"], "^m5go\\.env$");
        let p = &v["permissions"];
        assert_eq!(p[0]["configure"], "^$");
        assert_eq!(p[1]["configure"], "^mqtt-subscription-sub-1qos[01]$");
        assert_eq!(
            p[1]["read"],
            "^(amq\\.topic|mqtt-subscription-sub-1qos[01])$"
        );
        assert_eq!(routing_key("a/+/#"), "a.*.#");
    }

    #[test]
    fn write_keeps_the_cookie_and_reads_back_the_plan() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("c");
        let mut s = ClusterSetup::new(pki(d.path()), &out, 2);
        s.acl.allow("dev1", Role::Publisher).unwrap();
        s.write().unwrap();
        let cookie = std::fs::read(out.join("home/.erlang.cookie")).unwrap();
        assert_eq!(cookie.len(), 24);
        s.write().unwrap();
        assert_eq!(
            std::fs::read(out.join("home/.erlang.cookie")).unwrap(),
            cookie
        );
        assert_eq!(ClusterPlan::read(&out).unwrap(), s.plan);
        assert!(out.join("node2/rabbitmq.conf").is_file());
        let env = node_env(&out, &s.plan, 1);
        assert!(env.contains(&("RABBITMQ_NODENAME", "coffre2@localhost".into())));
        assert!(env.contains(&("ERL_EPMD_PORT", "4370".into())));
    }

    #[test]
    fn boot_is_judged_on_the_log_exit_and_time() {
        let b = NodeBoot::new(Duration::from_secs(60));
        let s = Duration::from_secs(1);
        assert_eq!(b.step("booting", None, s), BootStep::Wait);
        assert_eq!(
            b.step(
                "x [info] Server startup complete; 1 plugins started.",
                None,
                s
            ),
            BootStep::Ready
        );
        assert!(matches!(
            b.step("... {listen_error,eaddrinuse} ...", None, s),
            BootStep::Failed(w) if w.contains("already in use")
        ));
        let bad = "2026 [error] <0.132.0> You've tried to set mqtt.x, but there is no setting with that name.\n\
                   2026 [error] <0.132.0> Error preparing configuration in phase transform_datatypes:";
        assert!(matches!(
            b.step(bad, Some("exit status: 0"), s),
            BootStep::Failed(w) if w.contains("configuration is refused (You've tried to set mqtt.x")
        ));
        assert!(matches!(
            b.step("", Some("exit status: 1"), s),
            BootStep::Failed(w) if w.contains("exited")
        ));
        assert!(matches!(
            b.step("Waiting for Mnesia tables for 30000 ms", None, Duration::from_secs(61)),
            BootStep::Failed(w) if w.contains("other nodes")
        ));
    }
}
