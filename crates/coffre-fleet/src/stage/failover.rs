//! Failover on a clustered broker: a node killed (`kill -9`) at a chosen
//! time of the publishing phase and restarted later; devices and the
//! subscriber that lose their node reconnect to the surviving ones with
//! backoff, and every reading still arrives at least once.
//!
//! [`FaultSchedule`] says when to kill and restart (a pure state machine,
//! tested with a fake clock); `connect_any` moves a device to the next
//! node with backoff (the device loop, `crate::device`, calls it when its
//! node is lost and sends the reading not acknowledged again);
//! `failover_figures` sums up what the devices and the subscriber saw.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coffre_agent::mqtt::{Client, QoS};
use coffre_agent::Backoff;
use serde::Serialize;

use crate::device::{client_options, DeviceCtx};
use crate::options::TOPIC;
use crate::stage::provision::Device;

/// Which nodes to kill, when, and when to start them again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Nodes to kill (from 1). Two of three: the cluster loses its
    /// majority.
    pub nodes: Vec<usize>,
    /// From the start of the publishing phase.
    pub at: Duration,
    /// Restart them this long after the kill (`None`: never).
    pub restart_after: Option<Duration>,
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Kill these nodes (from 0).
    Kill(Vec<usize>),
    /// Start these nodes (from 0) again.
    Restart(Vec<usize>),
}

/// When the [`Fault`]'s steps are due.
#[derive(Debug, Clone)]
pub struct FaultSchedule {
    fault: Fault,
    killed: bool,
    restarted: bool,
}

impl FaultSchedule {
    /// A schedule for `fault`.
    pub fn new(fault: Fault) -> Self {
        FaultSchedule {
            fault,
            killed: false,
            restarted: false,
        }
    }

    /// The step due at `elapsed` from the start of the publishing phase,
    /// once each.
    pub fn due(&mut self, elapsed: Duration) -> Option<FaultAction> {
        let nodes: Vec<usize> = self.fault.nodes.iter().map(|n| n - 1).collect();
        if !self.killed {
            if elapsed >= self.fault.at {
                self.killed = true;
                return Some(FaultAction::Kill(nodes));
            }
            return None;
        }
        match self.fault.restart_after {
            Some(after) if !self.restarted && elapsed >= self.fault.at + after => {
                self.restarted = true;
                Some(FaultAction::Restart(nodes))
            }
            _ => None,
        }
    }
}

/// What happened to the cluster and the clients around the fault.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverFigures {
    /// The killed nodes' names.
    pub killed: Vec<String>,
    /// Their process ids (the Erlang VMs killed with SIGKILL).
    pub killed_pids: Vec<u32>,
    /// Kill time, seconds from the start of the publishing phase.
    pub killed_at_s: f64,
    /// Restart time, seconds from the start of the publishing phase.
    pub restarted_at_s: Option<f64>,
    /// Restart → node up again, seconds.
    pub restart_boot_s: Option<f64>,
    /// A majority of the nodes was down.
    pub majority_lost: bool,
    /// Devices that lost their connection.
    pub devices_disconnected: usize,
    /// Reconnections of devices (each a full mutual-TLS handshake).
    pub device_reconnects: u64,
    /// Devices that lost their connection and did not get it back.
    pub devices_not_back: usize,
    /// Kill → the last device connected again, seconds.
    pub all_back_s: Option<f64>,
    /// The longest a device was without a connection, ms.
    pub longest_outage_ms: f64,
    /// Reconnections of the subscriber.
    pub subscriber_reconnects: u64,
    /// The longest time the subscriber received nothing, ms.
    pub subscriber_gap_ms: f64,
    /// When that gap began, seconds from the start of the publishing phase.
    pub subscriber_gap_at_s: f64,
    /// Deliveries with the DUP flag (the broker redelivering).
    pub dup_flag: u64,
}

/// One device's outage: when it lost its node, when it was back (if it
/// was).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outage {
    pub lost: Instant,
    pub back: Option<Instant>,
}

/// The backoff of reconnections: 200 ms doubling to 3 s, half jittered
/// (thousands of devices lose their node at the same instant).
fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(3),
        multiplier: 2.0,
        jitter: 0.5,
    }
}

/// Connect `d` to a node, starting with `*node` and moving to the next
/// one after each failure, until `deadline`; `*node` is left on the node
/// that answered. The last error when none did.
pub(crate) fn connect_any(
    d: &Device,
    ctx: &DeviceCtx,
    node: &mut usize,
    deadline: Instant,
) -> Result<(Client, u32), String> {
    let n = ctx.brokers.len();
    let mut attempt = 0u32;
    loop {
        let mut o = client_options(ctx.brokers[*node], d.id(), ctx.interval, ctx.version);
        // Short: a node that hangs (a cluster without its majority) must
        // not hold the device.
        o.connect_timeout = Duration::from_secs(10);
        o.timeout = Duration::from_secs(10);
        o.bind = ctx.source(d.index());
        match Client::connect(&o, d.tls()) {
            Ok(c) => return Ok((c, attempt)),
            Err(e) => {
                attempt += 1;
                *node = (*node + 1) % n;
                let wait = coffre_agent::agent::delay_random(&backoff(), attempt - 1);
                if Instant::now() + wait >= deadline {
                    return Err(format!("{}: {e}", d.id()));
                }
                std::thread::sleep(wait);
            }
        }
    }
}

/// What the subscriber saw of the fault.
#[derive(Debug, Clone, Default)]
pub(crate) struct SubscriberFaults {
    pub reconnects: u64,
    pub dup_flag: u64,
    /// The longest silence and when it began (process clock).
    pub gap: Duration,
    pub gap_at: Option<Instant>,
}

/// The subscriber's reconnection to a cluster: the next node, with
/// backoff, its persistent session resumed.
pub(crate) struct Resubscribe {
    pub brokers: Vec<SocketAddr>,
    pub node: usize,
    pub device: Device,
    pub interval: Duration,
    pub version: coffre_agent::MqttVersion,
}

impl Resubscribe {
    /// Connect (clean session off: the queue and its readings wait in the
    /// cluster) and subscribe, trying the nodes in turn until `deadline`.
    pub fn connect(&mut self, deadline: Instant) -> coffre_agent::Result<Client> {
        let mut attempt = 0;
        loop {
            let mut o = client_options(
                self.brokers[self.node],
                self.device.id(),
                self.interval,
                self.version,
            );
            o.clean_start = false;
            o.connect_timeout = Duration::from_secs(10);
            o.timeout = Duration::from_secs(10);
            let r = Client::connect(&o, self.device.tls()).and_then(|mut c| {
                c.subscribe(&[(TOPIC, QoS::AtLeastOnce)])?;
                Ok(c)
            });
            match r {
                Ok(c) => return Ok(c),
                Err(e) => {
                    self.node = (self.node + 1) % self.brokers.len();
                    let wait = coffre_agent::agent::delay_random(&backoff(), attempt);
                    attempt += 1;
                    if Instant::now() + wait >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(wait);
                }
            }
        }
    }
}

/// The failover figures from the kill's time, each device's outages and
/// the subscriber's view. `start`: the start of the publishing phase.
pub(crate) fn failover_figures(
    killed: &Killed,
    start: Instant,
    outages: &[Vec<Outage>],
    sub: &SubscriberFaults,
) -> FailoverFigures {
    let s = |t: Instant| t.saturating_duration_since(start).as_secs_f64();
    let mut f = FailoverFigures {
        killed: killed.names.clone(),
        killed_pids: killed.pids.clone(),
        killed_at_s: s(killed.at),
        restarted_at_s: killed.restarted.map(s),
        restart_boot_s: killed
            .ready
            .zip(killed.restarted)
            .map(|(r, s)| r.saturating_duration_since(s).as_secs_f64()),
        majority_lost: killed.majority_lost,
        subscriber_reconnects: sub.reconnects,
        subscriber_gap_ms: sub.gap.as_secs_f64() * 1000.0,
        subscriber_gap_at_s: sub.gap_at.map(s).unwrap_or(0.0),
        dup_flag: sub.dup_flag,
        ..FailoverFigures::default()
    };
    let mut last_back: Option<Instant> = None;
    for o in outages.iter().filter(|o| !o.is_empty()) {
        f.devices_disconnected += 1;
        f.device_reconnects += o.iter().filter(|x| x.back.is_some()).count() as u64;
        for x in o {
            if let Some(b) = x.back {
                let ms = b.saturating_duration_since(x.lost).as_secs_f64() * 1000.0;
                f.longest_outage_ms = f.longest_outage_ms.max(ms);
            }
        }
        match o.last().and_then(|x| x.back) {
            Some(b) => last_back = Some(last_back.map_or(b, |l| l.max(b))),
            None => f.devices_not_back += 1,
        }
    }
    f.all_back_s = match (last_back, f.devices_not_back) {
        (Some(b), 0) => Some(b.saturating_duration_since(killed.at).as_secs_f64()),
        _ => None,
    };
    f
}

/// What the publish stage did to the cluster.
#[derive(Debug, Clone)]
pub struct Killed {
    /// Node names.
    pub names: Vec<String>,
    /// Their process ids.
    pub pids: Vec<u32>,
    /// When.
    pub at: Instant,
    /// When they were started again.
    pub restarted: Option<Instant>,
    /// When they were up again.
    pub ready: Option<Instant>,
    /// More than half the nodes were down.
    pub majority_lost: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kill_then_the_restart_each_once_at_their_time() {
        let mut s = FaultSchedule::new(Fault {
            nodes: vec![2],
            at: Duration::from_secs(10),
            restart_after: Some(Duration::from_secs(5)),
        });
        let t = Duration::from_secs;
        assert_eq!(s.due(t(9)), None);
        assert_eq!(s.due(t(10)), Some(FaultAction::Kill(vec![1])));
        assert_eq!(s.due(t(11)), None);
        assert_eq!(s.due(t(14)), None);
        assert_eq!(s.due(t(16)), Some(FaultAction::Restart(vec![1])));
        assert_eq!(s.due(t(30)), None);
    }

    #[test]
    fn without_a_restart_the_node_stays_down() {
        let mut s = FaultSchedule::new(Fault {
            nodes: vec![1, 2],
            at: Duration::ZERO,
            restart_after: None,
        });
        assert_eq!(s.due(Duration::ZERO), Some(FaultAction::Kill(vec![0, 1])));
        assert_eq!(s.due(Duration::from_secs(3600)), None);
    }

    #[test]
    fn figures_count_devices_back_and_the_last_one() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let killed = Killed {
            names: vec!["coffre2@localhost".into()],
            pids: vec![42],
            at: t0 + ms(10_000),
            restarted: Some(t0 + ms(20_000)),
            ready: Some(t0 + ms(32_000)),
            majority_lost: false,
        };
        let out = |lost: u64, back: Option<u64>| Outage {
            lost: t0 + ms(lost),
            back: back.map(|b| t0 + ms(b)),
        };
        let outages = vec![
            vec![],
            vec![out(10_001, Some(10_400))],
            vec![out(10_001, Some(10_200)), out(10_300, Some(11_500))],
        ];
        let sub = SubscriberFaults {
            reconnects: 1,
            dup_flag: 3,
            gap: ms(1800),
            gap_at: Some(t0 + ms(10_000)),
        };
        let f = failover_figures(&killed, t0, &outages, &sub);
        assert_eq!(f.devices_disconnected, 2);
        assert_eq!(f.device_reconnects, 3);
        assert_eq!(f.devices_not_back, 0);
        assert_eq!(f.all_back_s, Some(1.5));
        assert_eq!(f.longest_outage_ms, 1200.0);
        assert_eq!(f.restart_boot_s, Some(12.0));
        assert_eq!((f.subscriber_gap_ms, f.subscriber_gap_at_s), (1800.0, 10.0));
        assert_eq!(f.dup_flag, 3);

        let outages = vec![vec![out(10_001, None)]];
        let f = failover_figures(&killed, t0, &outages, &sub);
        assert_eq!((f.devices_not_back, f.all_back_s), (1, None));
    }
}
