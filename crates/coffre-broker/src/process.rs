//! Running a real mosquitto.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{BrokerSetup, Error, Result};

/// How to install mosquitto on Debian.
pub const INSTALL_HINT: &str =
    "install it with 'sudo apt-get install -y mosquitto' (Debian/Ubuntu)";

/// How many earlier logs a start keeps (`mosquitto.log.1` is the last run).
pub const LOGS_KEPT: u32 = 5;

/// Find the mosquitto binary: $PATH, then the sbin directories Debian uses
/// (not on a normal user's PATH).
pub fn find_mosquitto() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

/// A running mosquitto; stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
    conf: PathBuf,
}

impl Mosquitto {
    /// Write `setup`'s configuration and start mosquitto with it; return once
    /// it accepts TCP connections.
    pub fn start(setup: &BrokerSetup) -> Result<Mosquitto> {
        let conf = setup.write()?;
        Mosquitto::start_conf(&conf, setup.listen, &setup.log_path())
    }

    /// Start mosquitto with an existing configuration file.
    pub fn start_conf(conf: &Path, addr: SocketAddr, log: &Path) -> Result<Mosquitto> {
        let bin = find_mosquitto().ok_or(Error::NotInstalled)?;
        // A fresh log for this run, so readiness is judged on this run
        // only; the earlier runs' logs are kept as LOG.1 … LOG.N.
        coffre_fs::rotate(log, LOGS_KEPT).map_err(|source| Error::Io {
            path: log.to_path_buf(),
            source,
        })?;
        let child = Command::new(&bin)
            .arg("-c")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Io {
                path: bin.clone(),
                source,
            })?;
        let mut m = Mosquitto {
            child: Some(child),
            addr,
            log: log.to_path_buf(),
            conf: conf.to_path_buf(),
        };
        m.wait_listening(Duration::from_secs(10))?;
        tracing::info!("mosquitto listening on {addr}");
        Ok(m)
    }

    fn wait_listening(&mut self, limit: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(Error::Exited {
                        status: status.to_string(),
                        log: self.log(),
                    });
                }
            }
            // Wait for its own word rather than probing the port: a probe
            // would leave a failed-handshake line in the log.
            if self.log().lines().any(|l| l.ends_with(" running")) {
                return Ok(());
            }
            if t0.elapsed() > limit {
                return Err(Error::StartTimeout {
                    addr: self.addr,
                    secs: limit.as_secs(),
                    log: self.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Path of the log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Wait until a log line contains `needle`; return that line.
    pub fn wait_for_log(&self, needle: &str, limit: Duration) -> Option<String> {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.log().lines().find(|l| l.contains(needle)) {
                return Some(l.to_string());
            }
            if t0.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop cleanly (SIGTERM lets mosquitto save its persistence file),
    /// killing it if it does not exit within 5 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Apply a new CRL now: reload it and cut the live sessions of `ids`
    /// (see [`crate::revoke_live`]).
    pub fn revoke_live(&self, ids: &[&str]) -> Result<crate::LiveRevocation> {
        let pid = self.pid().ok_or(Error::NotRunning)?;
        let dir = self.conf.parent().unwrap_or(Path::new("."));
        crate::revoke_live(dir, pid, ids)
    }

    /// Stop and start again with the same configuration (persistence kept).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        let m = Mosquitto::start_conf(&self.conf.clone(), self.addr, &self.log.clone())?;
        *self = m;
        Ok(())
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}
