//! Stage 4, publish: open the gate; every connected device publishes its
//! readings for the planned duration, then disconnects; gather what each
//! device says it did.

use std::time::{Duration, Instant};

use crate::device::DeviceResult;
use crate::error::{Error, Result};
use crate::options::Progress;
use crate::stage::broker::Broker;
use crate::stage::failover::{Fault, FaultAction, FaultSchedule, Killed, Outage};
use crate::stage::ramp::Connected;
use crate::util::CpuMeter;

/// What the devices did, from their side.
#[derive(Debug, Clone)]
pub struct Published {
    /// Gate opening → last device thread ended.
    pub wall: Duration,
    /// Readings each device published and the broker acknowledged, by
    /// device index (index 0, the subscriber's, stays 0).
    pub per_device: Vec<u64>,
    /// Connect time (TCP + TLS + CONNACK) of each connected device, ms.
    pub connect_ms: Vec<f64>,
    /// The last CONNACK of the ramp (`None`: no device connected).
    pub last_connack: Option<Instant>,
    /// Publishes that failed or were refused.
    pub failures: u64,
    /// The first connection error, if any.
    pub first_connect_error: Option<String>,
    /// The first publish error, if any.
    pub first_publish_error: Option<String>,
    /// CPU measured from the gate's opening (read it once the subscriber
    /// has collected everything).
    pub cpu: CpuMeter,
    /// The start of the publishing phase.
    pub started: Instant,
    /// The cluster nodes killed during the phase, if any.
    pub killed: Option<Killed>,
    /// Each device's lost and regained connections (clusters).
    pub(crate) outages: Vec<Vec<Outage>>,
}

impl Published {
    /// Readings acknowledged, all devices together.
    pub fn total(&self) -> u64 {
        self.per_device.iter().sum()
    }
}

/// Let the devices publish for `duration` (starting 200 ms from now),
/// killing and restarting cluster nodes as `fault` says, and wait for
/// every device thread to end.
pub fn publish(
    fleet: Connected,
    broker: &mut Broker,
    duration: Duration,
    spawn_errors: &[String],
    fault: Option<&Fault>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Published> {
    let cpu = broker.cpu_meter();
    let start = Instant::now() + Duration::from_millis(200);
    fleet.gate.open(start);
    let end = start + duration;
    let mut schedule = fault.cloned().map(FaultSchedule::new);
    let mut killed: Option<Killed> = None;
    let mut fault_error = None;
    let mut booting: Vec<usize> = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end && booting.is_empty() {
            break;
        }
        progress(Progress::Publishing(
            end.saturating_duration_since(now).as_secs(),
        ));
        if let (Some(s), Some(c), None) = (schedule.as_mut(), broker.cluster(), &fault_error) {
            match s.due(now.saturating_duration_since(start)) {
                Some(FaultAction::Kill(nodes)) => {
                    let mut k = Killed {
                        names: Vec::new(),
                        pids: Vec::new(),
                        at: Instant::now(),
                        restarted: None,
                        ready: None,
                        majority_lost: 2 * nodes.len() >= c.plan().nodes.len(),
                    };
                    for n in nodes {
                        progress(Progress::Step(format!("killing node {} (kill -9)", n + 1)));
                        match c.kill(n) {
                            Ok(pid) => {
                                k.names.push(c.plan().nodes[n].name.clone());
                                k.pids.push(pid);
                            }
                            Err(source) => {
                                fault_error = Some(Error::ClusterFault {
                                    what: "killing",
                                    node: n + 1,
                                    source,
                                })
                            }
                        }
                    }
                    killed = Some(k);
                }
                Some(FaultAction::Restart(nodes)) => {
                    for n in nodes {
                        progress(Progress::Step(format!("restarting node {}", n + 1)));
                        match c.restart(n) {
                            Ok(()) => booting.push(n),
                            Err(source) => {
                                fault_error = Some(Error::ClusterFault {
                                    what: "restarting",
                                    node: n + 1,
                                    source,
                                })
                            }
                        }
                    }
                    if let Some(k) = killed.as_mut() {
                        k.restarted = Some(Instant::now());
                    }
                }
                None => {}
            }
        }
        if let (false, Some(c)) = (booting.is_empty(), broker.cluster()) {
            match c.poll_ready(&booting) {
                Ok(true) => {
                    booting.clear();
                    if let Some(k) = killed.as_mut() {
                        k.ready = Some(Instant::now());
                    }
                }
                Ok(false) => {}
                Err(source) => {
                    fault_error = Some(Error::ClusterFault {
                        what: "restarting",
                        node: booting[0] + 1,
                        source,
                    });
                    booting.clear();
                }
            }
        }
        let step = if schedule.is_some() { 100 } else { 500 };
        let left = end.saturating_duration_since(Instant::now());
        std::thread::sleep(if left.is_zero() {
            Duration::from_millis(step)
        } else {
            left.min(Duration::from_millis(step))
        });
    }
    let mut results = Vec::with_capacity(fleet.handles.len());
    for (index, h) in fleet.handles {
        let r = h.join().unwrap_or_else(|_| DeviceResult {
            connect_error: Some("a device thread panicked".into()),
            ..DeviceResult::default()
        });
        results.push((index, r));
    }
    let wall = start.elapsed();
    if let Some(e) = fault_error {
        return Err(e);
    }
    let mut p = gather(fleet.devices, results, spawn_errors, wall, cpu);
    p.started = start;
    p.killed = killed;
    Ok(p)
}

/// Sum up what the device threads reported.
fn gather(
    devices: usize,
    results: Vec<(usize, DeviceResult)>,
    spawn_errors: &[String],
    wall: Duration,
    cpu: CpuMeter,
) -> Published {
    let mut p = Published {
        wall,
        per_device: vec![0; devices + 1],
        connect_ms: Vec::new(),
        last_connack: None,
        failures: 0,
        first_connect_error: spawn_errors.first().cloned(),
        first_publish_error: None,
        cpu,
        started: Instant::now(),
        killed: None,
        outages: Vec::new(),
    };
    for (index, r) in results {
        if !r.outages.is_empty() {
            p.outages.push(r.outages.clone());
        }
        if let Some(n) = p.per_device.get_mut(index) {
            *n = r.published;
        }
        p.failures += r.publish_failures;
        if let Some(c) = r.connect {
            p.connect_ms.push(c.as_secs_f64() * 1000.0);
        }
        if let Some(t) = r.connected_at {
            p.last_connack = Some(p.last_connack.map_or(t, |l| l.max(t)));
        }
        if p.first_connect_error.is_none() {
            p.first_connect_error = r.connect_error;
        }
        if p.first_publish_error.is_none() {
            p.first_publish_error = r.publish_error;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathers_counts_times_and_first_errors() {
        let t0 = Instant::now();
        let ok = |published, ms| DeviceResult {
            connect: Some(Duration::from_millis(ms)),
            connected_at: Some(t0 + Duration::from_millis(ms)),
            published,
            ..DeviceResult::default()
        };
        let results = vec![
            (1, ok(3, 10)),
            (
                2,
                DeviceResult {
                    connect_error: Some("fleet-00002: refused".into()),
                    ..DeviceResult::default()
                },
            ),
            (
                3,
                DeviceResult {
                    publish_failures: 1,
                    publish_error: Some("fleet-00003: PUBACK reason 0x87".into()),
                    ..ok(1, 30)
                },
            ),
        ];
        let cpu = CpuMeter::start(std::process::id());
        let p = gather(3, results, &[], Duration::from_secs(2), cpu);
        assert_eq!(p.per_device, [0, 3, 0, 1]);
        assert_eq!(p.total(), 4);
        assert_eq!(p.failures, 1);
        assert_eq!(p.connect_ms, [10.0, 30.0]);
        assert_eq!(p.last_connack, Some(t0 + Duration::from_millis(30)));
        assert_eq!(
            p.first_connect_error.as_deref(),
            Some("fleet-00002: refused")
        );
        assert_eq!(
            p.first_publish_error.as_deref(),
            Some("fleet-00003: PUBACK reason 0x87")
        );
    }

    #[test]
    fn a_thread_that_could_not_start_is_the_first_connect_error() {
        let cpu = CpuMeter::start(std::process::id());
        let results = vec![(
            2,
            DeviceResult {
                connect_error: Some("later".into()),
                ..DeviceResult::default()
            },
        )];
        let p = gather(
            2,
            results,
            &["fleet-00001: cannot start".into()],
            Duration::ZERO,
            cpu,
        );
        assert_eq!(
            p.first_connect_error.as_deref(),
            Some("fleet-00001: cannot start")
        );
        assert_eq!(p.last_connack, None);
    }
}
