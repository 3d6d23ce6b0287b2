//! [`run`]: the stages of [`crate::stage`], chained.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::options::{FleetOptions, Identity, Progress, SUB_ID};
use crate::stage::{
    self, BrokerPlan, ClusterBrokerPlan, FleetReport, ProvisionPlan, RampPlan, ReportInputs,
};
use crate::util;
use coffre_broker::Engine;

/// Build the lab, run the fleet, measure. `progress` is called from the
/// calling thread.
///
/// A temporary working directory (no [`FleetOptions::dir`]) is removed at
/// the end unless the run is not clean or failed in a way its broker log
/// explains; it is then kept for that log.
pub fn run(opts: &FleetOptions, progress: &mut dyn FnMut(Progress)) -> Result<FleetReport> {
    opts.validate()?;
    util::check_kernel_limits(opts.devices)?;
    // Every device holds a socket in this process and in the broker; keep
    // headroom for files, pipes and the subscriber.
    let nofile_limit = util::raise_nofile(opts.devices as u64 + 1024)?;
    let (dir, tmp) = work_dir(opts.dir.as_deref())?;
    let result = stages(opts, &dir, nofile_limit, progress);
    let keep = match &result {
        Ok(r) => !r.ok(),
        Err(e) => e.has_broker_log(),
    };
    if let (Some(t), true) = (tmp, keep) {
        let _ = t.keep();
    }
    result
}

/// The working directory: the one given (created if needed) or a fresh
/// temporary one, on /dev/shm when present.
fn work_dir(given: Option<&Path>) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    if let Some(d) = given {
        std::fs::create_dir_all(d).map_err(|source| Error::Io {
            what: "creating",
            path: d.to_path_buf(),
            source,
        })?;
        return Ok((d.to_path_buf(), None));
    }
    let mut b = tempfile::Builder::new();
    b.prefix("coffre-fleet-");
    let shm = Path::new("/dev/shm");
    let t = if shm.is_dir() {
        b.tempdir_in(shm)
    } else {
        b.tempdir()
    }
    .map_err(Error::TempDir)?;
    Ok((t.path().to_path_buf(), Some(t)))
}

fn stages(
    opts: &FleetOptions,
    dir: &Path,
    nofile_limit: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<FleetReport> {
    let n = opts.devices;
    let base_rss_kib = util::self_rss_kib();

    let plan = ProvisionPlan {
        dir: dir.to_path_buf(),
        devices: n,
        mode: opts.mode,
    };
    let provisioned = match opts.identity {
        Identity::Ca => stage::provision(&plan, progress)?,
        Identity::Factory => stage::provision_factory(&plan, progress)?,
    };

    let publishers: Vec<String> = provisioned
        .devices
        .iter()
        .map(|d| d.id().to_owned())
        .collect();
    let (mut broker, engine) = match opts.engine {
        Engine::Mosquitto => (
            stage::broker(
                &BrokerPlan {
                    pki_dir: provisioned.pki_dir.clone(),
                    out_dir: dir.join("broker"),
                    publishers,
                    subscriber: SUB_ID.into(),
                    factory_root_pem: (opts.identity == Identity::Factory).then(|| {
                        coffre_pki::util::to_pem(
                            "CERTIFICATE",
                            coffre_emu::factory::root_cert_der(),
                        )
                    }),
                },
                progress,
            )?,
            "mosquitto".to_string(),
        ),
        Engine::RabbitMq => (
            stage::cluster(
                &ClusterBrokerPlan {
                    pki_dir: provisioned.pki_dir.clone(),
                    out_dir: dir.join("broker"),
                    publishers,
                    subscriber: SUB_ID.into(),
                    nodes: opts.nodes,
                    queue_type: opts.queue_type,
                },
                progress,
            )?,
            format!(
                "rabbitmq, {} nodes, {} queues",
                opts.nodes,
                opts.queue_type.name()
            ),
        ),
    };

    let origin = Instant::now();
    let listener = stage::listen(
        &broker,
        provisioned.subscriber,
        &provisioned.devices,
        opts.interval,
        origin,
    )?;

    let ramped = stage::ramp(
        &broker,
        provisioned.devices,
        &RampPlan {
            rate: opts.rate,
            stack_size: opts.stack_size,
            interval: opts.interval,
            duration: opts.duration,
            origin,
        },
        progress,
    );

    let published = stage::publish(
        ramped.fleet,
        &mut broker,
        opts.duration,
        &ramped.figures.spawn_errors,
        opts.fault.as_ref(),
        progress,
    )?;

    let collected = stage::collect(listener, &published)?;
    let publish_cpu = published.cpu.read();
    let join = |a: &[std::net::SocketAddr]| {
        a.iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let addr = if broker.device_addrs() == broker.addrs() {
        join(broker.addrs())
    } else {
        format!(
            "{} (devices on the factory listener {})",
            join(broker.addrs()),
            join(broker.device_addrs())
        )
    };
    broker.stop();

    Ok(stage::report(ReportInputs {
        devices: n,
        mode: opts.mode,
        identity: opts.identity,
        onboarding: provisioned.onboarding,
        rate: opts.rate,
        duration: opts.duration,
        dir: dir.to_path_buf(),
        broker: addr,
        nofile_limit,
        base_rss_kib,
        provisioning: provisioned.elapsed,
        ramp: ramped.figures,
        published,
        publish_cpu,
        collected,
        engine,
    }))
}
