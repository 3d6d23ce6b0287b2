//! Process measurements: CPU time, memory, open-file limit.

use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::resource::{getrlimit, getrusage, setrlimit, Resource, UsageWho};

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
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    if soft >= needed {
        return Ok(soft);
    }
    if needed <= hard {
        setrlimit(Resource::RLIMIT_NOFILE, needed, hard).context("raising RLIMIT_NOFILE")?;
        return Ok(needed);
    }
    // Above the hard limit: only root may raise it.
    if setrlimit(Resource::RLIMIT_NOFILE, needed, needed).is_ok() {
        return Ok(needed);
    }
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("raising RLIMIT_NOFILE")?;
    anyhow::bail!(
        "{needed} open files are needed but the hard limit is {hard}: raise it (as root: 'ulimit -Hn {needed}', or LimitNOFILE= / limits.conf) or simulate fewer devices"
    )
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
}
