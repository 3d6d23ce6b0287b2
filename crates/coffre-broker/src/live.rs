//! Revocation on a running broker.
//!
//! Mosquitto 2.0 reads its CRL when a listener starts and again on SIGHUP
//! (with `crlfile` and `require_certificate`, the reload rebuilds the
//! listener's TLS context), so after a SIGHUP a revoked certificate is
//! refused at the handshake. A session already open stays open: Mosquitto
//! does not check certificates again. Its dynamic-security plugin can end
//! it: deleting a dynsec client disconnects every session with that
//! username, whatever authenticated it. coffre therefore loads the plugin,
//! with no client of its own but an administrator (`coffre:admin`, a name no
//! device certificate can carry) reachable only on a unix socket in the
//! broker's directory (mode 0700), and on revocation:
//!
//! 1. sends SIGHUP and waits for the broker's "Reloading config." line;
//! 2. for each revoked id, creates and deletes a dynsec client of that
//!    name: the delete disconnects its live sessions.
//!
//! Devices are not dynsec clients, so the plugin defers every ACL check on
//! them to the ACL file: their rights do not change.
//!
//! `coffre pki revoke` finds the brokers to tell through the registrations
//! [`BrokerSetup::write`](crate::BrokerSetup::write) leaves in the PKI
//! directory (`brokers/`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::{Error, LogFollower, Result};

/// The dynsec administrator's username: `:` cannot appear in a device id.
pub const ADMIN_USER: &str = "coffre:admin";
/// The administrator's socket, in the broker directory.
pub(crate) const ADMIN_SOCKET: &str = "admin.sock";
/// The plugin's configuration, in the broker directory.
pub(crate) const DYNSEC_CONFIG: &str = "dynsec.json";
/// How `mosquitto_ctrl` connects as the administrator (socket, user,
/// password, in its option syntax), mode 0600.
pub(crate) const CTRL_OPTIONS: &str = "admin.options";
/// Mosquitto's pid file, in the broker directory.
pub(crate) const PID_FILE: &str = "mosquitto.pid";
/// How long a reload may take before revocation is reported as failed.
const RELOAD_LIMIT: Duration = Duration::from_secs(2);
/// A unix socket path longer than this does not fit `sockaddr_un`.
const MAX_SOCKET_PATH: usize = 107;

/// Mosquitto's dynamic-security plugin, where Debian and a source build
/// install it.
pub fn find_dynsec_plugin() -> Option<PathBuf> {
    let name = "mosquitto_dynamic_security.so";
    let mut dirs: Vec<PathBuf> = ["/usr/lib", "/usr/local/lib", "/usr/lib64"]
        .iter()
        .map(PathBuf::from)
        .collect();
    if let Ok(rd) = std::fs::read_dir("/usr/lib") {
        // Multiarch directories: /usr/lib/x86_64-linux-gnu, …
        dirs.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("-linux-gnu")),
        );
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// `mosquitto_ctrl` (shipped with the broker).
pub fn find_mosquitto_ctrl() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/bin", "/usr/local/bin", "/usr/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("mosquitto_ctrl"))
        .find(|p| p.is_file())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The administrator socket's path, refused when too long for a unix socket.
pub(crate) fn admin_socket(out: &Path) -> Result<PathBuf> {
    let p = out.join(ADMIN_SOCKET);
    let len = p.as_os_str().len();
    if len > MAX_SOCKET_PATH || p.to_string_lossy().contains(char::is_whitespace) {
        return Err(Error::SocketPath(p));
    }
    Ok(p)
}

/// Create the plugin's configuration (an administrator and nothing else)
/// and the `mosquitto_ctrl` options to act as it, unless both exist.
pub(crate) fn prepare_admin(out: &Path) -> Result<()> {
    let config = out.join(DYNSEC_CONFIG);
    let options = out.join(CTRL_OPTIONS);
    if config.is_file() && options.is_file() {
        return Ok(());
    }
    let ctrl = find_mosquitto_ctrl().ok_or(Error::NotInstalled)?;
    let _ = std::fs::remove_file(&config);
    let mut raw = [0u8; 16];
    OsRng.fill_bytes(&mut raw);
    let password = Zeroizing::new(coffre_proto::hex::Hex::lower(&raw[..]).to_string());
    raw.fill(0);
    // The password goes through a pipe (mosquitto_ctrl asks for it twice
    // when the command line has none), never on a command line.
    let mut child = Command::new(&ctrl)
        .args(["dynsec", "init"])
        .arg(&config)
        .arg(ADMIN_USER)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(&ctrl))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let twice = Zeroizing::new(format!("{0}\n{0}\n", password.as_str()));
        stdin.write_all(twice.as_bytes()).map_err(io(&ctrl))?;
    }
    let o = child.wait_with_output().map_err(io(&ctrl))?;
    if !o.status.success() || !config.is_file() {
        return Err(Error::Admin {
            what: "mosquitto_ctrl dynsec init".into(),
            output: String::from_utf8_lossy(&o.stderr).trim().to_string(),
        });
    }
    let text = Zeroizing::new(format!(
        "# Written by coffre: how mosquitto_ctrl reaches this broker as its administrator.\n\
         -h {}\n-p 0\n-u {ADMIN_USER}\n-P {}\n",
        admin_socket(out)?.display(),
        password.as_str()
    ));
    coffre_fs::write_atomic(&options, text.as_bytes(), 0o600).map_err(io(&options))
}

/// Remember in the PKI directory that the broker in `out` uses it.
pub(crate) fn register(pki: &Path, out: &Path) -> Result<()> {
    let dir = pki.join("brokers");
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let text = out.to_string_lossy();
    // FNV-1a of the path: one registration per broker directory.
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{h:016x}"));
    coffre_fs::write_atomic(&path, format!("{text}\n").as_bytes(), 0o644).map_err(io(&path))
}

/// The broker directories registered in the PKI at `pki` whose
/// configuration still reads this PKI's CRL.
pub fn managed_brokers(pki: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(pki.join("brokers")) else {
        return Vec::new();
    };
    let crl = std::path::absolute(pki.join("crl.pem")).unwrap_or_default();
    let mut out: Vec<PathBuf> = rd
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|t| PathBuf::from(t.trim_end()))
        .filter(|d| {
            std::fs::read_to_string(d.join("mosquitto.conf"))
                .map(|c| {
                    c.lines()
                        .any(|l| l.trim() == format!("crlfile {}", crl.display()))
                })
                .unwrap_or(false)
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The pid of the mosquitto running from the broker directory `dir`, if
/// one is (its pid file names a live mosquitto process).
pub fn running_pid(dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "mosquitto").then_some(pid)
}

/// What a live revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRevocation {
    /// The broker directory.
    pub dir: PathBuf,
    /// The broker's pid.
    pub pid: u32,
    /// From the SIGHUP to the broker's "Reloading config." line.
    pub reload: Duration,
    /// From the SIGHUP to the last session cut.
    pub total: Duration,
    /// The ids whose live sessions were cut (a revoked device that was not
    /// connected is not listed).
    pub cut: Vec<String>,
    /// Whether the broker can cut sessions (its dynamic-security plugin
    /// is configured); without it only new connections are refused.
    pub can_cut: bool,
}

/// Make the running broker in `dir` (pid `pid`) apply a new CRL: reload it,
/// then cut the live sessions of `ids`.
pub fn revoke_live(dir: &Path, pid: u32, ids: &[&str]) -> Result<LiveRevocation> {
    let log = LogFollower::follow_from_end(dir.join("mosquitto.log"));
    let mark = log.cursor();
    let t0 = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .map_err(|e| Error::Admin {
        what: format!("signalling mosquitto (pid {pid})"),
        output: e.to_string(),
    })?;
    if log
        .wait_for(mark, "Reloading config.", RELOAD_LIMIT)
        .is_none()
    {
        return Err(Error::Reload {
            secs: RELOAD_LIMIT.as_secs(),
        });
    }
    let reload = t0.elapsed();
    let options = dir.join(CTRL_OPTIONS);
    let can_cut = options.is_file()
        && std::fs::read_to_string(dir.join("mosquitto.conf"))
            .is_ok_and(|c| c.contains(DYNSEC_CONFIG));
    let mut cut = Vec::new();
    if can_cut {
        let ctrl = find_mosquitto_ctrl().ok_or(Error::NotInstalled)?;
        for id in ids {
            let kicked = log.cursor();
            let mut raw = [0u8; 16];
            OsRng.fill_bytes(&mut raw);
            let throwaway = coffre_proto::hex::Hex::lower(&raw[..]).to_string();
            // An id left over from an interrupted run: "already exists".
            ctrl_run(
                &ctrl,
                &options,
                &["createClient", id, "-p", &throwaway],
                true,
            )?;
            ctrl_run(&ctrl, &options, &["deleteClient", id], false)?;
            let line = format!("Client {id} been disconnected");
            if log
                .wait_for(kicked, &line, Duration::from_millis(300))
                .is_some()
            {
                cut.push(id.to_string());
            }
        }
    }
    Ok(LiveRevocation {
        dir: dir.to_path_buf(),
        pid,
        reload,
        total: t0.elapsed(),
        cut,
        can_cut,
    })
}

fn ctrl_run(ctrl: &Path, options: &Path, args: &[&str], may_exist: bool) -> Result<()> {
    // mosquitto_ctrl 2.0.11 does not apply the connection options of an
    // `-o` file, but it does read `$XDG_CONFIG_HOME/mosquitto_ctrl`: the
    // options (password included) go there, in a private directory beside
    // them, never on a command line.
    let text = Zeroizing::new(std::fs::read(options).map_err(io(options))?);
    let dir = options.parent().unwrap_or(Path::new("."));
    let home = tempfile::Builder::new()
        .prefix(".ctrl-")
        .tempdir_in(dir)
        .map_err(io(dir))?;
    let file = home.path().join("mosquitto_ctrl");
    coffre_fs::write_atomic(&file, &text, 0o600).map_err(io(&file))?;
    let o = Command::new(ctrl)
        .env("XDG_CONFIG_HOME", home.path())
        .arg("dynsec")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io(ctrl))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let error = text
        .lines()
        .find(|l| l.contains("Error") && !(may_exist && l.contains("already exists")));
    if o.status.success() && error.is_none() {
        Ok(())
    } else {
        Err(Error::Admin {
            what: format!("mosquitto_ctrl dynsec {}", args[0]),
            output: error.unwrap_or(text.trim()).to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_brokers_reading_this_pkis_crl_are_managed() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        let crl = std::path::absolute(pki.join("crl.pem")).unwrap();
        let mine = d.path().join("mine");
        let other = d.path().join("other");
        let gone = d.path().join("gone");
        std::fs::create_dir_all(&mine).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(
            mine.join("mosquitto.conf"),
            format!("listener 1 127.0.0.1\ncrlfile {}\n", crl.display()),
        )
        .unwrap();
        std::fs::write(other.join("mosquitto.conf"), "crlfile /elsewhere/crl.pem\n").unwrap();
        for dir in [&mine, &other, &gone, &mine] {
            register(&pki, dir).unwrap();
        }
        assert_eq!(std::fs::read_dir(pki.join("brokers")).unwrap().count(), 3);
        assert_eq!(managed_brokers(&pki), vec![mine.clone()]);
        // Nothing runs there: no pid file, or one naming no mosquitto.
        assert_eq!(running_pid(&mine), None);
        std::fs::write(mine.join(PID_FILE), std::process::id().to_string()).unwrap();
        assert_eq!(running_pid(&mine), None);
    }

    #[test]
    fn the_admin_socket_must_fit_a_unix_address() {
        assert!(admin_socket(Path::new("/tmp/b")).is_ok());
        assert!(matches!(
            admin_socket(&Path::new("/tmp").join("x".repeat(120))),
            Err(Error::SocketPath(_))
        ));
        assert!(admin_socket(Path::new("/tmp/with space")).is_err());
    }
}
