//! Process measurements: CPU time, memory, open-file limit.

use std::time::Duration;

use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};
use serde::Serialize;

use crate::error::{Error, Result};

/// CPU time (user + system) used by the simulator and by the broker over
/// some phase of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Usage {
    /// This process.
    pub simulator: Duration,
    /// The broker process.
    pub broker: Duration,
}

/// Measures [`Usage`] from the moment it is started.
#[derive(Debug, Clone)]
pub struct CpuMeter {
    /// The broker's processes (one per cluster node) and their CPU at
    /// the start.
    broker: Vec<(u32, Duration)>,
    simulator: Duration,
}

impl CpuMeter {
    /// Start measuring this process and `broker_pid`.
    pub fn start(broker_pid: u32) -> CpuMeter {
        CpuMeter::start_many(&[broker_pid])
    }

    /// Start measuring this process and the broker's processes (a
    /// process that ends before [`CpuMeter::read`], such as a killed
    /// cluster node, counts for nothing).
    pub fn start_many(broker_pids: &[u32]) -> CpuMeter {
        CpuMeter {
            broker: broker_pids
                .iter()
                .map(|&p| (p, pid_cpu(p).unwrap_or_default()))
                .collect(),
            simulator: self_cpu(),
        }
    }

    /// CPU used since [`CpuMeter::start`].
    pub fn read(&self) -> Usage {
        Usage {
            simulator: self_cpu().saturating_sub(self.simulator),
            broker: self
                .broker
                .iter()
                .map(|&(p, t0)| pid_cpu(p).unwrap_or(t0).saturating_sub(t0))
                .sum(),
        }
    }
}

/// CPU time (user + system) of this process.
pub fn self_cpu() -> Duration {
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => tv(u.user_time()) + tv(u.system_time()),
        Err(_) => Duration::ZERO,
    }
}

fn tv(t: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(t.tv_sec().max(0) as u64) + Duration::from_micros(t.tv_usec().max(0) as u64)
}

/// CPU time (utime + stime) of process `pid`, from `/proc/<pid>/stat`.
pub fn pid_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&h| h > 0)
        .unwrap_or(100) as u64;
    Some(Duration::from_secs_f64((utime + stime) as f64 / hz as f64))
}

/// Resident memory of this process, KiB (`VmRSS`).
pub fn self_rss_kib() -> u64 {
    status_field("VmRSS:").unwrap_or(0)
}

/// Peak resident memory of this process, KiB (`VmHWM`).
pub fn self_peak_rss_kib() -> u64 {
    status_field("VmHWM:").unwrap_or(0)
}

/// Resident memory of process `pid`, KiB.
pub fn pid_rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field(&s, "VmRSS:")
}

fn status_field(name: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    field(&s, name)
}

fn field(s: &str, name: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Raise this process's open-file limit so it can hold `needed`
/// descriptors; child processes started afterwards (mosquitto) inherit
/// it. Returns the soft limit now in force.
pub fn raise_nofile(needed: u64) -> Result<u64> {
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| Error::Rlimit("reading", e))?;
    if soft >= needed {
        return Ok(soft);
    }
    let raise = |soft, hard| {
        setrlimit(Resource::RLIMIT_NOFILE, soft, hard).map_err(|e| Error::Rlimit("raising", e))
    };
    if needed <= hard {
        raise(needed, hard)?;
        return Ok(needed);
    }
    // Above the hard limit: only root may raise it.
    if raise(needed, needed).is_ok() {
        return Ok(needed);
    }
    raise(hard, hard)?;
    Err(Error::OpenFiles { needed, hard })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_this_process() {
        assert!(self_rss_kib() > 0);
        assert!(self_peak_rss_kib() >= self_rss_kib() / 2);
        let pid = std::process::id();
        assert!(pid_cpu(pid).is_some());
        assert!(pid_rss_kib(pid).is_some());
        let _ = self_cpu();
    }

    #[test]
    fn cpu_meter_counts_work_done_after_its_start() {
        // The "broker" is this process too: both figures must grow.
        let m = CpuMeter::start(std::process::id());
        let mut x = 0u64;
        while m.read().simulator < Duration::from_millis(60) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        let u = m.read();
        assert!(u.simulator >= Duration::from_millis(60), "{u:?}");
        assert!(u.broker > Duration::ZERO, "{u:?}");
    }

    #[test]
    fn open_file_limit_already_enough() {
        // The current soft limit is always enough for one descriptor.
        assert!(raise_nofile(1).unwrap() >= 1);
    }
}
