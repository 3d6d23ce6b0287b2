//! A real three-node RabbitMQ cluster written from a real PKI, exercised
//! with Mosquitto's own clients (MQTT 3.1.1): certificate login, topic
//! rights, a QoS 1 session on a quorum queue that survives `kill -9` of a
//! node, the node's restart.
//!
//! Booting three Erlang nodes takes about a minute on two cores, so these
//! tests are ignored by `cargo test` and run by `make test-cluster` (and
//! `.ci/run`): `cargo test -p coffre-broker --test rabbitmq_cluster -- --ignored`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use coffre_broker::rabbitmq::{self, ClusterPlan, NodeSpec, QueueType};
use coffre_broker::{ClusterSetup, RabbitCluster, Role};
use coffre_pki::{InitOptions, Pki};

mod common;
use common::{device, free_port};

/// mosquitto_pub or mosquitto_sub as device `id`, MQTT 3.1.1, QoS 1.
fn client(tool: &str, pki: &Pki, dir: &Path, addr: SocketAddr, id: &str) -> Command {
    let mut c = Command::new(tool);
    c.args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(["-V", "mqttv311", "-q", "1", "-i", id, "--cafile"])
        .arg(pki.ca_cert_path())
        .arg("--cert")
        .arg(pki.device_cert_path(id))
        .arg("--key")
        .arg(dir.join(format!("{id}.key.pem")));
    c
}

fn publish(pki: &Pki, dir: &Path, addr: SocketAddr, topic: &str, msg: &str) -> bool {
    let o = client("mosquitto_pub", pki, dir, addr, "pub1")
        .args(["-t", topic, "-m", msg])
        .output()
        .expect("mosquitto_pub runs (apt-get install mosquitto-clients)");
    if !o.status.success() {
        eprintln!("mosquitto_pub: {}", String::from_utf8_lossy(&o.stderr));
    }
    o.status.success()
}

/// Publish until the cluster takes it, as a device does after a node
/// loss: the surviving nodes elect new leaders first (a few seconds).
fn publish_with_retries(pki: &Pki, dir: &Path, addr: SocketAddr, msg: &str) -> u32 {
    for attempt in 1..=30 {
        if publish(pki, dir, addr, "m5go/env", msg) {
            return attempt;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    panic!("the surviving nodes never took the reading");
}

fn cluster(d: &Path, nodes: usize, queue_type: QueueType) -> (Pki, ClusterSetup) {
    assert!(
        rabbitmq::find_rabbitmq().is_some(),
        "rabbitmq-server is not installed: run 'make test-cluster', which installs it"
    );
    let mut pki = Pki::init(d.join("pki"), &InitOptions::default()).unwrap();
    device(&mut pki, d, "pub1");
    device(&mut pki, d, "sub1");
    let mut s = ClusterSetup::new(d.join("pki"), d.join("cluster"), nodes);
    s.plan = ClusterPlan {
        nodes: (0..nodes)
            .map(|k| NodeSpec {
                name: format!("coffre{}@localhost", k + 1),
                mqtt: free_port(),
                dist_port: free_port().port(),
            })
            .collect(),
        epmd_port: free_port().port(),
        queue_type,
        ..s.plan
    };
    s.acl.allow("pub1", Role::Publisher).unwrap();
    s.acl.allow("sub1", Role::Subscriber).unwrap();
    s.write().unwrap();
    (pki, s)
}

#[test]
#[ignore = "boots a three-node RabbitMQ cluster (about a minute): make test-cluster"]
fn a_quorum_session_survives_the_kill_of_a_node() {
    let d = tempfile::tempdir().unwrap();
    let (pki, s) = cluster(d.path(), 3, QueueType::Quorum);
    let mut c = RabbitCluster::start(&s.out_dir).unwrap();
    assert_eq!(c.running(), [0, 1, 2]);
    let addrs = c.plan().mqtt_addrs();
    let dir = d.path();

    // The subscriber opens its persistent session on node 1, then leaves.
    let o = client("mosquitto_sub", &pki, dir, addrs[0], "sub1")
        .args(["-c", "-t", "m5go/env", "-E"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let queues = c
        .ctl(1, &["list_queues", "name", "type", "members"])
        .unwrap();
    assert!(
        queues.contains("mqtt-subscription-sub1qos1\tquorum"),
        "{queues}"
    );

    // Node 1, where the session was opened, crashes.
    let pid = c.kill(0).unwrap();
    assert!(pid > 0 && c.pid(0).is_none());
    assert_eq!(c.running(), [1, 2]);

    // The publisher goes to node 2: its reading is kept for the subscriber.
    let attempts = publish_with_retries(&pki, dir, addrs[1], "while-node1-down");
    eprintln!("published after {attempts} attempt(s)");
    // A topic it has no right on: RabbitMQ 3.10 closes the connection.
    assert!(!publish(&pki, dir, addrs[1], "m5go/other", "refused"));
    // Without a certificate: refused.
    let o = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &addrs[1].port().to_string()])
        .args(["-V", "mqttv311", "-t", "m5go/env", "-m", "anon", "--cafile"])
        .arg(pki.ca_cert_path())
        .output()
        .unwrap();
    assert!(!o.status.success());

    // The subscriber comes back on node 3 and gets it.
    let o = client("mosquitto_sub", &pki, dir, addrs[2], "sub1")
        .args(["-c", "-t", "m5go/env", "-C", "1", "-W", "30"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "while-node1-down"
    );

    // Node 1 comes back into the cluster.
    c.restart(0).unwrap();
    c.wait_ready(&[0]).unwrap();
    assert_eq!(c.running(), [0, 1, 2]);
    let log = std::fs::read_to_string(c.log_path(0)).unwrap();
    assert!(log.contains("Server startup complete"));
    assert!(c.log_path(0).with_extension("log.1").is_file());
    c.stop();
    // Nothing left behind: the nodes' ports and the cluster's epmd are free.
    for n in &s.plan.nodes {
        std::net::TcpListener::bind(n.mqtt).unwrap();
    }
    std::net::TcpListener::bind(("127.0.0.1", s.plan.epmd_port)).unwrap();
}

#[test]
#[ignore = "boots a RabbitMQ node: make test-cluster"]
fn a_taken_port_is_named_before_any_node_starts() {
    let d = tempfile::tempdir().unwrap();
    let (_pki, s) = cluster(d.path(), 1, QueueType::Quorum);
    let _taken = std::net::TcpListener::bind(s.plan.nodes[0].mqtt).unwrap();
    let e = RabbitCluster::start(&s.out_dir).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("already in use"), "{msg}");
    assert!(msg.contains(&s.plan.nodes[0].mqtt.to_string()), "{msg}");
}

#[test]
#[ignore = "boots a RabbitMQ node: make test-cluster"]
fn a_node_that_does_not_start_is_named_with_its_log() {
    let d = tempfile::tempdir().unwrap();
    let (_pki, s) = cluster(d.path(), 1, QueueType::Quorum);
    // A setting this RabbitMQ does not know: the node refuses to boot.
    let conf = s.out_dir.join("node1/rabbitmq.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("mqtt.no_such_setting = 1\n");
    std::fs::write(&conf, text).unwrap();
    let e = RabbitCluster::start(&s.out_dir).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("RabbitMQ node coffre1@localhost did not start"),
        "{msg}"
    );
    assert!(msg.contains("rabbit.log"), "{msg}");
    assert!(msg.contains("mqtt.no_such_setting"), "{msg}");
    // It was stopped: its port is free again.
    std::net::TcpListener::bind(s.plan.nodes[0].mqtt).unwrap();
}
