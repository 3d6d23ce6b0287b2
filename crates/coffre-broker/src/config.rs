//! Writing mosquitto.conf and the ACL file.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// What a device may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Writes readings to the topic.
    Publisher,
    /// Reads readings from the topic.
    Subscriber,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "publisher" | "pub" => Ok(Role::Publisher),
            "subscriber" | "sub" => Ok(Role::Subscriber),
            o => Err(format!("unknown role '{o}': use publisher or subscriber")),
        }
    }
}

/// The ACL: each device's rights on the readings topic, nothing else.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    /// (device id, role).
    pub entries: Vec<(String, Role)>,
}

impl Acl {
    /// Add a device.
    pub fn allow(&mut self, id: &str, role: Role) -> Result<()> {
        check_id(id)?;
        self.entries.push((id.to_string(), role));
        Ok(())
    }

    /// The ACL file text for `topic`.
    pub fn render(&self, topic: &str) -> String {
        let mut s = String::from(
            "# Written by coffre. Each device (certificate CN = MQTT username) gets\n\
             # exactly one right on the readings topic; anything not listed is denied.\n",
        );
        for (id, role) in &self.entries {
            let right = match role {
                Role::Publisher => "write",
                Role::Subscriber => "read",
            };
            let _ = write!(s, "\nuser {id}\ntopic {right} {topic}\n");
        }
        s
    }
}

/// Refuse ids that would be dangerous as MQTT usernames or file names.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::BadId(id.to_string()))
    }
}

/// A second listener for devices with a factory identity (Trust&GO parts):
/// their chains lead to a factory root instead of the project CA.
///
/// It has its own listener because Mosquitto's `crlfile` makes OpenSSL
/// require a CRL from the issuer of every client certificate, and nobody
/// but Microchip can issue one for a Trust&GO signer: on the project CA's
/// listener (which has the CRL) factory devices would all be refused. The
/// ACL is shared (`per_listener_settings false`), so both kinds of device
/// meet on the same topics. (Checked with mosquitto 2.0.11: one listener
/// with both roots and the `crlfile` refuses a factory device, "certificate
/// verify failed"; the same listener without `crlfile` accepts it.)
#[derive(Debug, Clone)]
pub struct FactoryListener {
    /// Listener address.
    pub listen: SocketAddr,
    /// The trusted factory root, PEM (written to `factory-root.pem`).
    pub root_pem: String,
}

/// Everything needed to write a broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerSetup {
    /// PKI directory (ca.crt.pem, broker.crt.pem, broker.key.pem, crl.pem).
    pub pki_dir: PathBuf,
    /// Where to write mosquitto.conf, acl, the log and the persistence data.
    pub out_dir: PathBuf,
    /// Listener address (default 127.0.0.1:8883).
    pub listen: SocketAddr,
    /// The readings topic.
    pub topic: String,
    /// Device rights.
    pub acl: Acl,
    /// Minimum TLS version (default "tlsv1.2").
    pub tls_version: String,
    /// `set_tcp_nodelay true` (default). Off only to measure Mosquitto's
    /// default behaviour.
    pub tcp_nodelay: bool,
    /// Mosquitto's dynamic-security plugin, loaded so that a revocation can
    /// cut a live session (see [`crate::revoke_live`]). Default: found where
    /// the mosquitto package installs it (with `mosquitto_ctrl`); `None`:
    /// revocation refuses new connections only.
    pub dynsec_plugin: Option<PathBuf>,
    /// Devices with factory identities, on their own listener.
    pub factory: Option<FactoryListener>,
}

impl BrokerSetup {
    /// Defaults for `pki_dir` → `out_dir`.
    pub fn new(pki_dir: impl Into<PathBuf>, out_dir: impl Into<PathBuf>) -> BrokerSetup {
        BrokerSetup {
            pki_dir: pki_dir.into(),
            out_dir: out_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8883)),
            topic: "m5go/env".into(),
            acl: Acl::default(),
            tls_version: "tlsv1.2".into(),
            tcp_nodelay: true,
            // The plugin is of use only with mosquitto_ctrl to drive it.
            dynsec_plugin: crate::live::find_mosquitto_ctrl()
                .and(crate::live::find_dynsec_plugin()),
            factory: None,
        }
    }

    /// Path of the written mosquitto.conf.
    pub fn conf_path(&self) -> PathBuf {
        self.out_dir.join("mosquitto.conf")
    }

    /// Path of the broker log.
    pub fn log_path(&self) -> PathBuf {
        self.out_dir.join("mosquitto.log")
    }

    fn pki_file(&self, name: &str) -> Result<PathBuf> {
        let p = self.pki_dir.join(name);
        if !p.exists() {
            return Err(Error::MissingPki(p));
        }
        absolute(&p)
    }

    /// The mosquitto.conf text.
    pub fn render(&self) -> Result<String> {
        let ca = self.pki_file("ca.crt.pem")?;
        let cert = self.pki_file("broker.crt.pem")?;
        let key = self.pki_file("broker.key.pem")?;
        let crl = self.pki_dir.join("crl.pem");
        let out = absolute(&self.out_dir)?;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# Written by coffre: mutual-TLS broker for certified devices only."
        );
        let _ = writeln!(s, "per_listener_settings false");
        let _ = writeln!(s, "allow_anonymous false");
        if running_as_root() {
            // Mosquitto drops to the 'mosquitto' user when started as root,
            // which could not read the 0600 broker key.
            let _ = writeln!(s, "user root");
        }
        let _ = writeln!(s, "persistence true");
        let _ = writeln!(s, "persistence_location {}/data/", out.display());
        let _ = writeln!(s, "autosave_interval 1");
        let _ = writeln!(s, "log_dest file {}", out.join("mosquitto.log").display());
        let _ = writeln!(s, "log_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe");
        let _ = writeln!(s, "log_timestamp true");
        let _ = writeln!(s, "log_timestamp_format %Y-%m-%dT%H:%M:%S");
        let _ = writeln!(s, "connection_messages true");
        let _ = writeln!(s, "set_tcp_nodelay {}", self.tcp_nodelay);
        let _ = writeln!(s, "acl_file {}", out.join("acl").display());
        let _ = writeln!(s, "pid_file {}", out.join(crate::live::PID_FILE).display());
        if let Some(plugin) = &self.dynsec_plugin {
            let _ = writeln!(
                s,
                "# Live revocation: deleting a dynsec client cuts its sessions. No device is a\n\
                 # dynsec client, so their rights come from the ACL file alone."
            );
            let _ = writeln!(s, "plugin {}", plugin.display());
            let _ = writeln!(
                s,
                "plugin_opt_config_file {}",
                out.join(crate::live::DYNSEC_CONFIG).display()
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "listener {} {}", self.listen.port(), self.listen.ip());
        let _ = writeln!(s, "cafile {}", ca.display());
        let _ = writeln!(s, "certfile {}", cert.display());
        let _ = writeln!(s, "keyfile {}", key.display());
        if crl.exists() {
            let _ = writeln!(s, "crlfile {}", absolute(&crl)?.display());
        }
        let _ = writeln!(s, "require_certificate true");
        let _ = writeln!(s, "use_identity_as_username true");
        // The client id is the certificate's CN: a device cannot take
        // another's client id and evict it.
        let _ = writeln!(s, "use_username_as_clientid true");
        let _ = writeln!(s, "tls_version {}", self.tls_version);
        if self.dynsec_plugin.is_some() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "# The administrator's socket (dynamic security), in this 0700 directory."
            );
            let _ = writeln!(
                s,
                "listener 0 {}",
                crate::live::admin_socket(&out)?.display()
            );
        }
        if let Some(f) = &self.factory {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "# Factory identities (Trust&GO): chains device → signer → factory root; no CRL."
            );
            let _ = writeln!(s, "listener {} {}", f.listen.port(), f.listen.ip());
            let _ = writeln!(s, "cafile {}", out.join("factory-root.pem").display());
            let _ = writeln!(s, "certfile {}", cert.display());
            let _ = writeln!(s, "keyfile {}", key.display());
            let _ = writeln!(s, "require_certificate true");
            let _ = writeln!(s, "use_identity_as_username true");
            // Client ids are shared by every listener: bound here too.
            let _ = writeln!(s, "use_username_as_clientid true");
            let _ = writeln!(s, "tls_version {}", self.tls_version);
        }
        Ok(s)
    }

    /// Write mosquitto.conf and acl into `out_dir` (created if needed).
    pub fn write(&self) -> Result<PathBuf> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(self.out_dir.join("data")).map_err(io(&self.out_dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.out_dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io(&self.out_dir))?;
        }
        let conf = self.render()?;
        let mut acl = self.acl.render(&self.topic);
        if self.dynsec_plugin.is_some() {
            crate::live::prepare_admin(&absolute(&self.out_dir)?)?;
            let _ = write!(
                acl,
                "\n# The dynamic-security administrator (unix socket only).\nuser {}\ntopic readwrite $CONTROL/dynamic-security/#\n",
                crate::live::ADMIN_USER
            );
        }
        let acl_path = self.out_dir.join("acl");
        coffre_fs::write_atomic(&acl_path, acl.as_bytes(), 0o644).map_err(io(&acl_path))?;
        if let Some(f) = &self.factory {
            let root = self.out_dir.join("factory-root.pem");
            coffre_fs::write_atomic(&root, f.root_pem.as_bytes(), 0o644).map_err(io(&root))?;
        }
        let path = self.conf_path();
        coffre_fs::write_atomic(&path, conf.as_bytes(), 0o644).map_err(io(&path))?;
        crate::live::register(&self.pki_dir, &absolute(&self.out_dir)?)?;
        Ok(path)
    }
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|source| Error::Io {
        path: p.to_path_buf(),
        source,
    })
}

/// True when the effective user is root (read from /proc, no unsafe).
pub(crate) fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_gives_one_right_each() {
        let mut a = Acl::default();
        a.allow("m5go-1", Role::Publisher).unwrap();
        a.allow("m5stack", Role::Subscriber).unwrap();
        let t = a.render("m5go/env");
        assert!(t.contains("user m5go-1\ntopic write m5go/env"));
        assert!(t.contains("user m5stack\ntopic read m5go/env"));
        assert!(a.allow("evil/#", Role::Publisher).is_err());
        assert!(a.allow("a+b", Role::Publisher).is_err());
        assert!(a.allow("", Role::Publisher).is_err());
        assert!(a.allow("../x", Role::Publisher).is_err());
    }

    #[test]
    fn a_factory_listener_has_its_own_roots_and_no_crl() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        for f in ["ca.crt.pem", "broker.crt.pem", "broker.key.pem", "crl.pem"] {
            std::fs::write(pki.join(f), "x").unwrap();
        }
        let mut s = BrokerSetup::new(&pki, d.path().join("b"));
        s.factory = Some(FactoryListener {
            listen: "127.0.0.1:8884".parse().unwrap(),
            root_pem: "ROOT".into(),
        });
        s.write().unwrap();
        let conf = s.render().unwrap();
        let (main, factory) = conf.split_once("listener 8884 127.0.0.1").unwrap();
        assert!(main.contains("crlfile ") && !factory.contains("crlfile"));
        assert!(
            factory.contains("factory-root.pem") && factory.contains("require_certificate true")
        );
        assert!(factory.contains("use_identity_as_username true"));
        let root = std::fs::read_to_string(d.path().join("b/factory-root.pem")).unwrap();
        assert_eq!(root, "ROOT");
    }

    #[test]
    fn config_needs_the_pki() {
        let d = tempfile::tempdir().unwrap();
        let s = BrokerSetup::new(d.path().join("pki"), d.path().join("b"));
        assert!(matches!(s.render(), Err(Error::MissingPki(_))));
    }

    #[test]
    fn config_has_every_required_line() {
        let d = tempfile::tempdir().unwrap();
        let pki = d.path().join("pki");
        std::fs::create_dir_all(&pki).unwrap();
        for f in ["ca.crt.pem", "broker.crt.pem", "broker.key.pem", "crl.pem"] {
            std::fs::write(pki.join(f), "x").unwrap();
        }
        let s = BrokerSetup::new(&pki, d.path().join("b"));
        let c = s.render().unwrap();
        for line in [
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            "allow_anonymous false",
            "set_tcp_nodelay true",
            "persistence true",
            "listener 8883 127.0.0.1",
            "crlfile ",
            "acl_file ",
            "use_username_as_clientid true",
            "pid_file ",
        ] {
            assert!(c.contains(line), "missing {line}:\n{c}");
        }
        assert_eq!("publisher".parse::<Role>(), Ok(Role::Publisher));
    }
}
