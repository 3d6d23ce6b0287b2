//! `coffre broker config --engine rabbitmq` and `coffre fleet` options of
//! the clustered engine, without booting a node (the cluster itself is
//! tested by `make test-cluster`).

mod common;

use common::{err, ok};

#[test]
fn a_three_node_cluster_is_written_from_the_pki() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init", "--dir", "pki"], p);
    let out = ok(
        &[
            "broker",
            "config",
            "--engine",
            "rabbitmq",
            "--nodes",
            "3",
            "--out",
            "cluster",
            "--listen",
            "127.0.0.1:18883",
            "--publisher",
            "m5go-1",
            "--subscriber",
            "m5stack",
        ],
        p,
    );
    assert!(
        out.contains("coffre3@localhost  MQTT/TLS 127.0.0.1:18885"),
        "{out}"
    );
    assert!(out.contains("MQTT 3.1.1 only"), "{out}");
    assert!(
        out.contains("next: coffre broker run --config cluster"),
        "{out}"
    );
    for f in [
        "cluster/cluster.json",
        "cluster/definitions.json",
        "cluster/node1/rabbitmq.conf",
        "cluster/node3/rabbitmq.conf",
        "cluster/home/.erlang.cookie",
    ] {
        assert!(p.join(f).is_file(), "{f}");
    }
    let conf = std::fs::read_to_string(p.join("cluster/node2/rabbitmq.conf")).unwrap();
    assert!(conf.contains("mqtt.listeners.ssl.default = 127.0.0.1:18884"));
    assert!(conf.contains("mqtt.durable_queue_type = quorum"));
    // Mosquitto stays the default.
    ok(
        &["broker", "config", "--out", "m", "--publisher", "m5go-1"],
        p,
    );
    assert!(p.join("m/mosquitto.conf").is_file());
}

#[test]
fn cluster_options_that_cannot_work_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init", "--dir", "pki"], p);
    let e = err(
        &[
            "broker",
            "config",
            "--engine",
            "rabbitmq",
            "--nodes",
            "0",
            "--publisher",
            "a",
        ],
        p,
    );
    assert!(e.contains("--nodes 0"), "{e}");
    let e = err(
        &[
            "broker",
            "config",
            "--engine",
            "rabbitmq",
            "--publisher",
            "a",
            "--factory-root",
            "emu",
        ],
        p,
    );
    assert!(e.contains("mosquitto engine only"), "{e}");
    assert!(err(
        &["broker", "config", "--engine", "emqx", "--publisher", "a"],
        p
    )
    .contains("use mosquitto or rabbitmq"));
    // A node can be killed on a cluster only, and only one it has.
    let e = err(&["fleet", "--devices", "1", "--kill-node", "1"], p);
    assert!(e.contains("on a cluster only"), "{e}");
    let e = err(
        &[
            "fleet",
            "--devices",
            "1",
            "--engine",
            "rabbitmq",
            "--kill-node",
            "4",
        ],
        p,
    );
    assert!(e.contains("from 1 to --nodes"), "{e}");
}
