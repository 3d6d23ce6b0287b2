//! Stage 2 on a clustered broker: a RabbitMQ cluster of N nodes on free
//! loopback ports, one user and its topic rights per device, QoS 1
//! sessions on quorum (or classic) queues.

use std::path::PathBuf;

use coffre_broker::rabbitmq::{ClusterPlan, NodeSpec};
use coffre_broker::{ClusterSetup, QueueType, RabbitCluster};

use crate::error::{Error, Result};
use crate::options::{Progress, TOPIC};
use crate::stage::broker::Broker;

/// What the cluster stage needs.
#[derive(Debug, Clone)]
pub struct ClusterBrokerPlan {
    /// The PKI directory (CA, broker certificate and key).
    pub pki_dir: PathBuf,
    /// The cluster directory (configuration, definitions, each node's
    /// data and log).
    pub out_dir: PathBuf,
    /// Ids allowed to publish on [`TOPIC`].
    pub publishers: Vec<String>,
    /// The id allowed to subscribe to it.
    pub subscriber: String,
    /// Number of nodes.
    pub nodes: usize,
    /// Queue type of QoS 1 sessions.
    pub queue_type: QueueType,
}

fn port() -> Result<std::net::SocketAddr> {
    coffre_fs::free_loopback_addr().map_err(Error::Port)
}

/// Write the cluster's files and start it (first node, then the others);
/// returns once every node is up.
pub fn cluster(plan: &ClusterBrokerPlan, progress: &mut dyn FnMut(Progress)) -> Result<Broker> {
    progress(Progress::Step(format!(
        "broker: RabbitMQ cluster of {} nodes, {} queues, one user per device (node 1 first, then the others; 10-20 s each)",
        plan.nodes,
        plan.queue_type.name()
    )));
    let mut setup = ClusterSetup::new(&plan.pki_dir, &plan.out_dir, plan.nodes);
    let nodes = (0..plan.nodes)
        .map(|k| {
            Ok(NodeSpec {
                name: format!("coffre{}@localhost", k + 1),
                mqtt: port()?,
                dist_port: port()?.port(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    setup.plan = ClusterPlan {
        nodes,
        epmd_port: port()?.port(),
        queue_type: plan.queue_type,
        topic: TOPIC.into(),
        ..setup.plan
    };
    crate::stage::broker::allow_fleet(&mut setup.acl, &plan.publishers, &plan.subscriber)?;
    setup.write().map_err(Error::BrokerConfig)?;
    let c = RabbitCluster::start(&plan.out_dir).map_err(Error::ClusterStart)?;
    Ok(Broker::from_cluster(c))
}
