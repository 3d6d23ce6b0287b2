//! A fleet on a real three-node RabbitMQ cluster with node 1 — where the
//! subscriber's session starts — killed with `kill -9` mid-run: with
//! quorum queues nothing is lost; with classic queues the readings sent
//! while the node is down are.
//!
//! Each test boots three Erlang nodes (about a minute on two cores):
//! ignored by `cargo test`, run by `make test-cluster` (and `.ci/run`).

use std::time::Duration;

use coffre_broker::{Engine, QueueType};
use coffre_fleet::stage::Fault;
use coffre_fleet::{run, FleetOptions, FleetReport};

fn fleet_with_node1_killed(queue_type: QueueType) -> FleetReport {
    assert!(
        coffre_broker::rabbitmq::find_rabbitmq().is_some(),
        "rabbitmq-server is not installed: run 'make test-cluster', which installs it"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut opts = FleetOptions::new(30);
    opts.engine = Engine::RabbitMq;
    opts.nodes = 3;
    opts.queue_type = queue_type;
    opts.rate = 50.0;
    opts.interval = Duration::from_secs(1);
    opts.duration = Duration::from_secs(25);
    opts.fault = Some(Fault {
        nodes: vec![1],
        at: Duration::from_secs(4),
        restart_after: Some(Duration::from_secs(6)),
    });
    opts.dir = Some(dir.path().to_path_buf());
    run(&opts, &mut |_| {}).unwrap()
}

#[test]
#[ignore = "boots a three-node RabbitMQ cluster (about a minute): make test-cluster"]
fn quorum_queues_lose_nothing_when_a_node_is_killed() {
    let r = fleet_with_node1_killed(QueueType::Quorum);
    let f = r.failover.as_ref().expect("a node was killed");
    assert_eq!(f.killed, ["coffre1@localhost"]);
    assert!(f.killed_pids[0] > 0);
    // Devices 3, 6, … started on node 1; they and the subscriber moved.
    assert!(f.devices_disconnected >= 10, "{f:?}");
    assert_eq!(f.devices_not_back, 0, "{f:?}");
    assert!(f.all_back_s.is_some());
    assert!(f.subscriber_reconnects >= 1, "{f:?}");
    assert!(f.restart_boot_s.is_some(), "node 1 came back: {f:?}");
    assert_eq!(r.connected, 30);
    assert_eq!(r.delivery.lost, 0, "{:?}", r.delivery);
    assert_eq!(r.delivery.unexpected, 0);
    assert!(r.delivery.published >= 30 * 20, "{:?}", r.delivery);
    assert!(r.ok(), "{r:?}");
}

#[test]
#[ignore = "boots a three-node RabbitMQ cluster (about a minute): make test-cluster"]
fn classic_queues_lose_what_is_sent_while_their_node_is_down() {
    let r = fleet_with_node1_killed(QueueType::Classic);
    // The subscriber's queue lived on node 1 only: the readings routed to
    // it while node 1 was down went nowhere, though acknowledged.
    assert!(r.delivery.lost > 0, "{:?}", r.delivery);
    assert!(!r.ok());
}
