//! `coffre fleet`: the fleet simulator (crate `coffre-fleet`).

use std::path::PathBuf;

use crate::input;
use crate::output::{note, say};
use anyhow::{bail, Result};
use clap::Args;
use coffre_fleet::{FleetMode, FleetOptions, FleetReport, Identity, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// `coffre fleet` on a RabbitMQ cluster, and the node to kill.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Broker: mosquitto (one process; default) or rabbitmq (a cluster of
    /// --nodes RabbitMQ nodes; devices spread over them, MQTT 3.1.1, and
    /// reconnect to another node with backoff when theirs is lost).
    #[arg(long, default_value = "mosquitto")]
    pub engine: coffre_broker::Engine,
    /// rabbitmq: number of nodes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub nodes: u8,
    /// rabbitmq: queue type of the subscriber's QoS 1 session: quorum
    /// (replicated) or classic (on one node: lost with it).
    #[arg(long, default_value = "quorum")]
    pub queue_type: coffre_broker::QueueType,
    /// rabbitmq: kill this node (from 1; '1,2' for two) with kill -9
    /// during the publishing phase. The subscriber's session starts on
    /// node 1.
    #[arg(long, value_name = "N[,N]", value_delimiter = ',')]
    pub kill_node: Vec<usize>,
    /// When to kill it, from the start of the publishing phase.
    #[arg(long, default_value = "10s", value_parser = crate::input::run_length)]
    pub kill_at: std::time::Duration,
    /// Start it again this long after the kill (default: it stays down).
    #[arg(long, value_parser = crate::input::run_length)]
    pub restart_after: Option<std::time::Duration>,
}

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
coffre fleet --devices 200 --rate 100 --duration 20s --interval 10s\n  \
coffre fleet --devices 10000 --rate 300 --duration 30s --interval 10s --json\n  \
coffre fleet --identity factory --devices 10000 --rate 200 --duration 30s --interval 10s\n  \
coffre fleet --engine rabbitmq --nodes 3 --devices 3000 --duration 60s --kill-node 1 --kill-at 20s --restart-after 15s\n\n\
--identity factory: the devices are Trust&GO parts onboarded from their signed manifest (made, \
imported as 'coffre import-manifest' does, chains registered in one batch; no certificate issued), each \
connecting to the broker's factory listener with its factory chain, slot 0 signing; the report adds \
the onboarding times.\n\n\
Large fleets: the simulator raises its open-file limit (RLIMIT_NOFILE) to devices + 1024 before \
starting mosquitto, which inherits it, and writes 'max_connections -1'. Above the hard limit, raise \
it first as root ('ulimit -Hn 30000'). Past 10,000 devices, connections come from 127.0.0.2, \
127.0.0.3, … (one per 10,000); one thread per device needs kernel.pid_max and vm.max_map_count \
high enough (checked, with the sysctl to run). Exit status 1 if a device fails or a message is lost \
or duplicated (after a killed node, duplicates are counted but allowed: QoS 1 is at least once).")]
/// What `coffre fleet` was asked.
pub struct FleetArgs {
    /// Number of devices.
    #[arg(long, default_value = "200", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub devices: u32,
    /// Ramp: new connections per second.
    #[arg(long, default_value = "100", value_parser = input::rate)]
    pub rate: f64,
    /// Publishing phase after the ramp (e.g. 20s, 500ms, 2m).
    #[arg(long, default_value = "20s", value_parser = input::run_length)]
    pub duration: std::time::Duration,
    /// One reading per device every INTERVAL, random phase.
    #[arg(long, default_value = "10s", value_parser = input::interval)]
    pub interval: std::time::Duration,
    /// 'offload' (the chip signs) or 'lab' (key in slot 8).
    #[arg(long, default_value = "offload")]
    pub mode: coffre_fleet::FleetMode,
    /// 'ca' (a certificate from the fleet's CA per device) or 'factory' (the Trust&GO
    /// chain each part ships with, onboarded from the parts' manifest; slot 0 signs).
    #[arg(long, default_value = "ca")]
    pub identity: Identity,
    /// Working directory (PKI, broker files, fleet manifest); default: a temporary one.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The broker engine, and a node to kill.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

fn bar(len: u64, template: &str, json: bool) -> ProgressBar {
    let b = if json {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden())
    } else {
        ProgressBar::new(len)
    };
    b.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

pub fn run(a: &FleetArgs) -> Result<()> {
    let mut opts = FleetOptions::new(a.devices as usize);
    opts.rate = a.rate;
    opts.duration = a.duration;
    opts.interval = a.interval;
    opts.mode = a.mode;
    opts.identity = a.identity;
    opts.dir.clone_from(&a.dir);
    opts.engine = a.cluster.engine;
    opts.nodes = a.cluster.nodes.into();
    opts.queue_type = a.cluster.queue_type;
    if !a.cluster.kill_node.is_empty() {
        opts.fault = Some(coffre_fleet::stage::Fault {
            nodes: a.cluster.kill_node.clone(),
            at: a.cluster.kill_at,
            restart_after: a.cluster.restart_after,
        });
    }
    let n = u64::from(a.devices);
    let prov = bar(
        n,
        match a.identity {
            Identity::Ca => "{bar:40} {pos}/{len} chips provisioned",
            Identity::Factory => "{bar:40} {pos}/{len} parts made, manifest entries signed",
        },
        a.json,
    );
    let ramp = bar(
        n,
        "{bar:40} {pos}/{len} connected  {per_sec}  {msg}",
        a.json,
    );
    let import = bar(n, "{bar:40} {pos}/{len} manifest entries verified", a.json);
    let mut importing = false;
    let mut ramp_started = false;
    let mut on_progress = |p: Progress| match p {
        Progress::Step(s) => {
            if !a.json {
                let shown = if importing { &import } else { &prov };
                shown.suspend(|| note!("{s}"));
            }
        }
        Progress::Provisioning(done, _) => prov.set_position(done as u64),
        Progress::Importing(done, _) => {
            if !importing {
                prov.finish_and_clear();
                importing = true;
            }
            import.set_position(done as u64);
        }
        Progress::Ramp(connected, failed, _) => {
            if !ramp_started {
                prov.finish_and_clear();
                import.finish_and_clear();
                ramp_started = true;
            }
            ramp.set_position(connected as u64);
            if failed > 0 {
                ramp.set_message(format!("{failed} failed"));
            }
        }
        Progress::Publishing(left) => {
            if !ramp.is_finished() {
                ramp.finish();
            }
            ramp.set_message(format!("publishing, {left} s left"));
        }
    };
    let report = coffre_fleet::run(&opts, &mut on_progress)?;
    prov.finish_and_clear();
    import.finish_and_clear();
    ramp.finish_and_clear();
    if a.json {
        say!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    if !report.ok() {
        if let Some(f) = report.failover.as_ref().filter(|f| f.majority_lost) {
            note!(
                "{} of the cluster's nodes were killed: without a majority new connections hang and QoS 1 messages are not accepted; kill fewer nodes, or restart them (--restart-after)",
                f.killed.len()
            );
        }
        let d = &report.delivery;
        bail!(
            "the fleet run is not clean: {}{} of {} devices failed to connect{}, {} publishes failed{}, {} lost, {} duplicated, {} unexpected; the broker log is under {}",
            report
                .onboarding
                .as_ref()
                .filter(|o| o.refused > 0)
                .map(|o| format!(
                    "{} manifest entries refused (first: {}), ",
                    o.refused,
                    o.first_refusal.as_deref().unwrap_or("?")
                ))
                .unwrap_or_default(),
            report.connect_failures,
            report.devices,
            report
                .first_connect_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            report.publish_failures,
            report
                .first_publish_error
                .as_deref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            d.lost,
            d.duplicated,
            d.unexpected,
            report.dir.join("broker").display()
        );
    }
    Ok(())
}

fn print_table(r: &FleetReport) {
    let d = &r.delivery;
    let l = &r.latency_ms;
    let c = &r.cpu;
    let m = &r.memory;
    let rows: Vec<(&str, String)> = vec![
        (
            "devices",
            format!(
                "{} ({}), broker {}",
                r.devices,
                match r.identity {
                    Identity::Ca => format!("{} mode", r.mode.name()),
                    Identity::Factory => "factory identities, slot 0 signs".into(),
                },
                r.broker
            ),
        ),
        ("broker engine", r.engine.clone()),
        (
            "source addresses",
            if r.source_addresses.is_empty() {
                "127.0.0.1 (the system's choice)".into()
            } else {
                format!(
                    "{} ({} devices each at most)",
                    r.source_addresses.join(", "),
                    coffre_fleet::util::DEVICES_PER_SOURCE
                )
            },
        ),
        (
            "open-file limit",
            format!(
                "{} (raised in-process, inherited by the broker; mosquitto: max_connections -1)",
                r.nofile_limit
            ),
        ),
        (
            "provisioning",
            format!(
                "{:.1} s ({:.2} ms/device, {})",
                r.provisioning_s,
                r.provisioning_per_device_ms,
                match (r.identity, r.mode) {
                    (Identity::Factory, _) =>
                        "factory identities: parts and manifest made, manifest imported, no certificate issued",
                    (_, FleetMode::Offload) => "key born in each chip, CSR signed by the chip",
                    (_, FleetMode::Lab) => "key generated off-chip, stored in slot 8",
                }
            ),
        ),
        (
            "connected",
            format!(
                "{} / {} ({} failed)",
                r.connected, r.devices, r.connect_failures
            ),
        ),
        (
            "ramp",
            format!(
                "{:.1} s, {:.0} conn/s (target {:.0})",
                r.ramp_s, r.ramp_conn_per_s, r.ramp_target_rate
            ),
        ),
        (
            "connect time",
            format!(
                "p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
                r.connect_ms.p50, r.connect_ms.p99, r.connect_ms.max
            ),
        ),
        (
            "messages",
            format!(
                "{} published, {} received, {:.0} msg/s over {:.1} s",
                d.published, d.received, r.msg_per_s, r.publish_s
            ),
        ),
        (
            "lost / duplicated",
            format!(
                "{} / {} ({} unexpected, {} publish failures)",
                d.lost, d.duplicated, d.unexpected, r.publish_failures
            ),
        ),
        (
            "latency",
            format!(
                "p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
                l.p50, l.p95, l.p99, l.max
            ),
        ),
        (
            "CPU per handshake",
            format!(
                "simulator {:.3} ms, broker {:.3} ms (ramp: {:.2} s vs {:.2} s)",
                c.simulator_per_handshake_ms,
                c.broker_per_handshake_ms,
                c.simulator_ramp_s,
                c.broker_ramp_s
            ),
        ),
        (
            "CPU publishing",
            format!(
                "simulator {:.2} s, broker {:.2} s",
                c.simulator_publish_s, c.broker_publish_s
            ),
        ),
        (
            "memory per device",
            format!(
                "simulator {:.1} KiB, broker {:.1} KiB",
                m.per_device_kib, m.broker_per_device_kib
            ),
        ),
    ];
    let mut rows = rows;
    if let Some(o) = &r.onboarding {
        let onboarding = [
            (
                "manifest made",
                format!(
                    "{:.1} s ({} parts, one signed entry each; {})",
                    o.manifest_s,
                    o.registered + o.refused,
                    o.manifest.display()
                ),
            ),
            (
                "manifest import",
                format!(
                    "{:.1} s: verify {:.1} s ({:.2} ms/entry), register {:.2} s (chains in one batch, registry)",
                    o.import_s,
                    o.verify_s,
                    o.verify_s * 1000.0 / (o.registered + o.refused).max(1) as f64,
                    o.register_s
                ),
            ),
            (
                "onboarded",
                format!(
                    "{} registered, {} refused{}",
                    o.registered,
                    o.refused,
                    o.first_refusal
                        .as_deref()
                        .map(|e| format!(" (first: {e})"))
                        .unwrap_or_default()
                ),
            ),
        ];
        rows.splice(3..3, onboarding);
    }
    for (k, v) in rows {
        say!("{k:<19} {v}");
    }
    if let Some(f) = &r.failover {
        let rows: Vec<(&str, String)> = vec![
            (
                "node killed",
                format!(
                    "{} (kill -9, pid {}) at {:.1} s{}",
                    f.killed.join(", "),
                    f.killed_pids
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    f.killed_at_s,
                    if f.majority_lost {
                        "; the cluster lost its majority: new connections hang until a node is back"
                    } else {
                        ""
                    }
                ),
            ),
            (
                "node restarted",
                match (f.restarted_at_s, f.restart_boot_s) {
                    (Some(at), Some(boot)) => format!("at {at:.1} s, up {boot:.1} s later"),
                    (Some(at), None) => format!("at {at:.1} s, not up by the end of the run"),
                    _ => "no".into(),
                },
            ),
            (
                "devices back",
                format!(
                    "{} of {} disconnected devices connected again at the end ({} reconnections in all), all back {}; longest outage {:.0} ms",
                    f.devices_disconnected - f.devices_not_back,
                    f.devices_disconnected,
                    f.device_reconnects,
                    f.all_back_s
                        .map(|s| format!("{s:.2} s after the kill"))
                        .unwrap_or_else(|| "never".into()),
                    f.longest_outage_ms
                ),
            ),
            (
                "subscriber",
                format!(
                    "{} reconnections, longest gap {:.0} ms (from {:.1} s), {} deliveries with DUP",
                    f.subscriber_reconnects, f.subscriber_gap_ms, f.subscriber_gap_at_s, f.dup_flag
                ),
            ),
        ];
        for (k, v) in rows {
            say!("{k:<19} {v}");
        }
    }
    if let Some(e) = &r.subscriber_error {
        say!("{:<19} stopped early: {e}", "subscriber error");
    }
    say!(
        "{:<19} {}",
        "result",
        if r.ok() {
            if r.failover.is_some() {
                "OK: every reading arrived (at least once: QoS 1 across a node's loss)"
            } else {
                "OK: every reading arrived exactly once"
            }
        } else {
            "FAILED"
        }
    );
}
