//! Stage 6, report: every figure of the run, computed from what the other
//! stages measured. A pure function: no clock, no IO.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::options::{FleetMode, Identity};
use crate::stage::collect::Collected;
use crate::stage::factory::Onboarding;
use crate::stage::failover::{failover_figures, FailoverFigures};
use crate::stage::publish::Published;
use crate::stage::ramp::RampFigures;
use crate::stats::{Delivery, Percentiles};
use crate::util::Usage;

/// CPU time, simulator vs broker.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuFigures {
    /// Simulator CPU (user + system) during the ramp, seconds.
    pub simulator_ramp_s: f64,
    /// Broker CPU during the ramp, seconds.
    pub broker_ramp_s: f64,
    /// Simulator CPU per established connection during the ramp, ms.
    pub simulator_per_handshake_ms: f64,
    /// Broker CPU per established connection during the ramp, ms.
    pub broker_per_handshake_ms: f64,
    /// Simulator CPU during the publishing phase, seconds.
    pub simulator_publish_s: f64,
    /// Broker CPU during the publishing phase, seconds.
    pub broker_publish_s: f64,
}

/// Memory.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MemoryFigures {
    /// Simulator resident memory before provisioning, KiB.
    pub simulator_base_kib: u64,
    /// Simulator resident memory with every device connected, KiB.
    pub simulator_connected_kib: u64,
    /// (connected − base) / devices: chip emulator, certificate, TLS
    /// configuration and session, thread stack. KiB.
    pub per_device_kib: f64,
    /// Broker resident memory with every device connected, KiB.
    pub broker_connected_kib: u64,
    /// Broker resident memory per connected device, KiB.
    pub broker_per_device_kib: f64,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// Devices simulated.
    pub devices: usize,
    /// Key mode (CA-issued identities).
    pub mode: FleetMode,
    /// The devices' identity.
    pub identity: Identity,
    /// Factory identities: how the parts were onboarded from their
    /// manifest (manifest made, verified, registered).
    pub onboarding: Option<Onboarding>,
    /// Working directory.
    pub dir: PathBuf,
    /// Broker address.
    pub broker: String,
    /// Open-file limit in force (inherited by the broker).
    pub nofile_limit: u64,
    /// Provisioning (chip CSR + certificate issue; factory identities:
    /// manifest made, imported, devices set up), seconds.
    pub provisioning_s: f64,
    /// Provisioning per device, ms (wall, 2 threads).
    pub provisioning_per_device_ms: f64,
    /// Target ramp rate, connections/s.
    pub ramp_target_rate: f64,
    /// Devices connected.
    pub connected: usize,
    /// Devices that could not connect.
    pub connect_failures: usize,
    /// The first connection error, if any.
    pub first_connect_error: Option<String>,
    /// Ramp duration (first connection attempt → last CONNACK), seconds.
    pub ramp_s: f64,
    /// Connections established per second during the ramp.
    pub ramp_conn_per_s: f64,
    /// Connect time (TCP + TLS + CONNACK) per device, ms.
    pub connect_ms: Percentiles,
    /// Publishing phase, seconds.
    pub publish_s: f64,
    /// Messages received per second during the publishing phase.
    pub msg_per_s: f64,
    /// Publishes that failed or were refused.
    pub publish_failures: u64,
    /// The first publish error, if any.
    pub first_publish_error: Option<String>,
    /// Loss and duplicate accounting.
    pub delivery: Delivery,
    /// End-to-end latency (publish call → subscriber receipt), ms.
    pub latency_ms: Percentiles,
    /// CPU.
    pub cpu: CpuFigures,
    /// Memory.
    pub memory: MemoryFigures,
    /// The broker engine: "mosquitto", or "rabbitmq" with its nodes and
    /// queue type.
    pub engine: String,
    /// What a node's kill did (clusters, with a fault).
    pub failover: Option<FailoverFigures>,
    /// The devices' source addresses (empty: the system's choice).
    pub source_addresses: Vec<String>,
    /// On a cluster: why the subscriber stopped early, if it did.
    pub subscriber_error: Option<String>,
}

impl FleetReport {
    /// Every part onboarded, every device connected, nothing lost or
    /// unexpected, no publish failed, and nothing duplicated — unless a
    /// node was killed: QoS 1 is at least once, so a reading whose
    /// acknowledgement died with the node is sent again, and then every
    /// device must be back.
    pub fn ok(&self) -> bool {
        let failover_ok = match &self.failover {
            None => self.delivery.duplicated == 0,
            Some(f) => f.devices_not_back == 0,
        };
        self.onboarding.as_ref().is_none_or(|o| o.refused == 0)
            && self.connect_failures == 0
            && self.publish_failures == 0
            && self.delivery.lost == 0
            && self.delivery.unexpected == 0
            && failover_ok
            && self.subscriber_error.is_none()
    }
}

/// What the report is computed from.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// Devices simulated.
    pub devices: usize,
    /// Key mode.
    pub mode: FleetMode,
    /// The devices' identity.
    pub identity: Identity,
    /// Factory identities: the onboarding figures.
    pub onboarding: Option<Onboarding>,
    /// Target ramp rate, connections/s.
    pub rate: f64,
    /// Planned publishing phase.
    pub duration: Duration,
    /// Working directory.
    pub dir: PathBuf,
    /// Broker address.
    pub broker: String,
    /// Open-file limit in force.
    pub nofile_limit: u64,
    /// Simulator resident memory before provisioning, KiB.
    pub base_rss_kib: u64,
    /// Provisioning time of the devices.
    pub provisioning: Duration,
    /// The ramp stage's figures.
    pub ramp: RampFigures,
    /// The publish stage's figures.
    pub published: Published,
    /// CPU over the publishing phase and collection.
    pub publish_cpu: Usage,
    /// The collect stage's figures.
    pub collected: Collected,
    /// The broker engine, as the report names it.
    pub engine: String,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Every figure of a run.
pub fn report(inputs: ReportInputs) -> FleetReport {
    let ReportInputs {
        devices: n,
        mode,
        identity,
        onboarding,
        rate,
        duration,
        dir,
        broker,
        nofile_limit,
        base_rss_kib,
        provisioning,
        ramp,
        mut published,
        publish_cpu,
        mut collected,
        engine,
    } = inputs;
    let failover = published
        .killed
        .as_ref()
        .map(|k| failover_figures(k, published.started, &published.outages, &collected.faults));
    let n_conn = ramp.connected;
    let ramp_s = match published.last_connack {
        Some(t) if n_conn > 0 => secs(t.saturating_duration_since(ramp.started)),
        _ => secs(ramp.wall),
    };
    let per_connection_ms = |d: Duration| {
        if n_conn == 0 {
            0.0
        } else {
            d.as_secs_f64() * 1000.0 / n_conn as f64
        }
    };
    FleetReport {
        devices: n,
        mode,
        identity,
        onboarding,
        dir,
        broker,
        nofile_limit,
        provisioning_s: secs(provisioning),
        provisioning_per_device_ms: secs(provisioning) * 1000.0 / n as f64,
        ramp_target_rate: rate,
        connected: n_conn,
        connect_failures: ramp.failed,
        first_connect_error: published.first_connect_error,
        ramp_s,
        ramp_conn_per_s: if ramp_s > 0.0 {
            n_conn as f64 / ramp_s
        } else {
            0.0
        },
        connect_ms: Percentiles::of(&mut published.connect_ms),
        publish_s: secs(published.wall),
        msg_per_s: collected.delivery.received as f64 / secs(duration).max(1e-9),
        publish_failures: published.failures,
        first_publish_error: published.first_publish_error,
        delivery: collected.delivery,
        latency_ms: Percentiles::of(&mut collected.latency_ms),
        cpu: CpuFigures {
            simulator_ramp_s: secs(ramp.cpu.simulator),
            broker_ramp_s: secs(ramp.cpu.broker),
            simulator_per_handshake_ms: per_connection_ms(ramp.cpu.simulator),
            broker_per_handshake_ms: per_connection_ms(ramp.cpu.broker),
            simulator_publish_s: secs(publish_cpu.simulator),
            broker_publish_s: secs(publish_cpu.broker),
        },
        memory: MemoryFigures {
            simulator_base_kib: base_rss_kib,
            simulator_connected_kib: ramp.rss_kib,
            per_device_kib: ramp.rss_kib.saturating_sub(base_rss_kib) as f64 / n as f64,
            broker_connected_kib: ramp.broker_rss_kib,
            broker_per_device_kib: if n_conn > 0 {
                ramp.broker_rss_kib as f64 / n_conn as f64
            } else {
                0.0
            },
        },
        engine,
        failover,
        subscriber_error: collected.subscriber_error.take(),
        source_addresses: crate::util::source_addresses(n)
            .iter()
            .map(|a| a.to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::CpuMeter;
    use std::time::Instant;

    fn inputs(connected: usize, failed: usize) -> ReportInputs {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        ReportInputs {
            devices: 4,
            mode: FleetMode::Offload,
            identity: Identity::Ca,
            onboarding: None,
            rate: 100.0,
            duration: Duration::from_secs(2),
            dir: "/tmp/f".into(),
            broker: "127.0.0.1:1".into(),
            nofile_limit: 2048,
            base_rss_kib: 1000,
            provisioning: ms(400),
            ramp: RampFigures {
                started: t0,
                wall: ms(80),
                connected,
                failed,
                spawn_errors: Vec::new(),
                cpu: Usage {
                    simulator: ms(40),
                    broker: ms(20),
                },
                rss_kib: 1400,
                broker_rss_kib: 800,
            },
            published: Published {
                wall: ms(2100),
                per_device: vec![0, 2, 2, 2, 2],
                connect_ms: vec![9.0, 3.0, 5.0, 7.0],
                last_connack: (connected > 0).then(|| t0 + ms(50)),
                failures: 0,
                first_connect_error: None,
                first_publish_error: None,
                cpu: CpuMeter::start(std::process::id()),
                started: t0,
                killed: None,
                outages: Vec::new(),
            },
            publish_cpu: Usage {
                simulator: ms(300),
                broker: ms(100),
            },
            collected: Collected {
                delivery: Delivery {
                    published: 8,
                    received: 8,
                    ..Delivery::default()
                },
                latency_ms: vec![4.0, 1.0, 2.0, 3.0, 8.0, 7.0, 6.0, 5.0],
                faults: Default::default(),
                subscriber_error: None,
            },
            engine: "mosquitto".into(),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn figures_of_a_clean_run() {
        let r = report(inputs(4, 0));
        assert!(r.ok());
        assert!(
            close(r.provisioning_per_device_ms, 100.0),
            "{}",
            r.provisioning_per_device_ms
        );
        // First attempt → last CONNACK, not the ramp's wall time.
        assert!(close(r.ramp_s, 0.05), "{}", r.ramp_s);
        assert!(close(r.ramp_conn_per_s, 80.0), "{}", r.ramp_conn_per_s);
        assert_eq!(
            (r.connect_ms.count, r.connect_ms.p50, r.connect_ms.max),
            (4, 5.0, 9.0)
        );
        assert_eq!((r.latency_ms.p50, r.latency_ms.p99), (4.0, 8.0));
        assert!(close(r.msg_per_s, 4.0), "{}", r.msg_per_s);
        assert!(
            close(r.cpu.simulator_per_handshake_ms, 10.0),
            "{}",
            r.cpu.simulator_per_handshake_ms
        );
        assert!(
            close(r.cpu.broker_per_handshake_ms, 5.0),
            "{}",
            r.cpu.broker_per_handshake_ms
        );
        assert!(
            close(r.cpu.simulator_publish_s, 0.3),
            "{}",
            r.cpu.simulator_publish_s
        );
        assert!(
            close(r.memory.per_device_kib, 100.0),
            "{}",
            r.memory.per_device_kib
        );
        assert!(
            close(r.memory.broker_per_device_kib, 200.0),
            "{}",
            r.memory.broker_per_device_kib
        );
    }

    #[test]
    fn nothing_connected_uses_the_ramp_wall_time_and_divides_by_nothing() {
        let r = report(inputs(0, 4));
        assert!(!r.ok());
        assert_eq!(r.connect_failures, 4);
        assert!(close(r.ramp_s, 0.08), "{}", r.ramp_s);
        assert!(close(r.ramp_conn_per_s, 0.0), "{}", r.ramp_conn_per_s);
        assert!(
            close(r.cpu.simulator_per_handshake_ms, 0.0),
            "{}",
            r.cpu.simulator_per_handshake_ms
        );
        assert!(
            close(r.memory.broker_per_device_kib, 0.0),
            "{}",
            r.memory.broker_per_device_kib
        );
    }
}
