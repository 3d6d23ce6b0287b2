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

/// Devices per source address: one address has 28,232 ephemeral ports
/// (32768-60999, Linux's default range) towards one broker address; a
/// fleet leaves most of them to the rest of the machine.
pub const DEVICES_PER_SOURCE: usize = 10_000;

/// The source addresses of `devices` connections to one machine's
/// broker: none (the system's choice) up to [`DEVICES_PER_SOURCE`], else
/// 127.0.0.2, 127.0.0.3, … one per [`DEVICES_PER_SOURCE`] devices.
pub fn source_addresses(devices: usize) -> Vec<std::net::IpAddr> {
    if devices <= DEVICES_PER_SOURCE {
        return Vec::new();
    }
    (0..devices.div_ceil(DEVICES_PER_SOURCE))
        .map(|k| std::net::IpAddr::from([127, 0, 0, 2 + k as u8]))
        .collect()
}

/// A kernel limit and what a fleet needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLimit {
    /// The sysctl name.
    pub name: &'static str,
    /// Its value.
    pub value: u64,
    /// What the fleet needs.
    pub needed: u64,
}

/// The kernel limits one thread per device runs into, with what `devices`
/// threads need: every thread takes a process id (`kernel.pid_max`,
/// `kernel.threads-max`) and two memory mappings, its stack and its guard
/// page (`vm.max_map_count`). `read` gives a sysctl's value (from
/// /proc/sys in [`check_kernel_limits`]). The limits that are too low.
pub fn short_kernel_limits(devices: usize, read: impl Fn(&str) -> Option<u64>) -> Vec<KernelLimit> {
    let d = devices as u64;
    [
        ("kernel.pid_max", d + 4_096),
        ("kernel.threads-max", d + 4_096),
        ("vm.max_map_count", 2 * d + 16_384),
    ]
    .into_iter()
    .filter_map(|(name, needed)| {
        let value = read(name)?;
        (value < needed).then_some(KernelLimit {
            name,
            value,
            needed,
        })
    })
    .collect()
}

/// [`short_kernel_limits`] on this machine: an error naming each limit
/// too low for `devices` device threads and the command that raises it.
pub fn check_kernel_limits(devices: usize) -> Result<()> {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/{}", name.replace('.', "/")))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let short = short_kernel_limits(devices, read);
    if short.is_empty() {
        return Ok(());
    }
    Err(Error::KernelLimits(
        short
            .iter()
            .map(|l| format!("{} is {} (needs {})", l.name, l.value, l.needed))
            .collect::<Vec<_>>()
            .join(", "),
        short
            .iter()
            .map(|l| format!("{}={}", l.name, l.needed))
            .collect::<Vec<_>>()
            .join(" "),
    ))
}

/// Replace `path` with `bytes` atomically (coffre-fs: temporary file,
/// fsync, rename), mode 0644.
pub fn write_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    coffre_fs::write_atomic(path, bytes, 0o644).map_err(|source| Error::Io {
        what: "writing",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_one_per_twenty_thousand_devices_past_the_first() {
        assert!(source_addresses(10_000).is_empty());
        assert_eq!(source_addresses(10_001).len(), 2);
        let s = source_addresses(100_000);
        assert_eq!(s.len(), 10);
        assert_eq!(s[0].to_string(), "127.0.0.2");
        assert_eq!(s[9].to_string(), "127.0.0.11");
    }

    #[test]
    fn kernel_limits_too_low_for_the_threads_are_named() {
        let read = |name: &str| match name {
            "kernel.pid_max" => Some(32_768),
            "vm.max_map_count" => Some(65_530),
            _ => None,
        };
        assert!(short_kernel_limits(10_000, read).is_empty());
        let short = short_kernel_limits(100_000, read);
        assert_eq!(
            short.iter().map(|l| l.name).collect::<Vec<_>>(),
            ["kernel.pid_max", "vm.max_map_count"]
        );
        assert_eq!(short[1].needed, 216_384);
    }

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
