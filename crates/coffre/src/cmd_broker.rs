//! `coffre broker …`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::output::{note, say};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use coffre_broker::{BrokerSetup, Mosquitto, Role};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum BrokerCommand {
    /// Write mosquitto.conf and the ACL from the PKI.
    Config {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        pki: PathBuf,
        /// Output directory (conf, ACL, log, persistence).
        #[arg(long, default_value = "broker")]
        out: PathBuf,
        /// TLS listener.
        #[arg(long, default_value = "127.0.0.1:8883")]
        listen: std::net::SocketAddr,
        /// A device that may publish on m5go/env.
        #[arg(long = "publisher", value_name = "ID")]
        publishers: Vec<String>,
        /// A device that may subscribe to m5go/env.
        #[arg(long = "subscriber", value_name = "ID")]
        subscribers: Vec<String>,
        /// Also accept devices with a factory identity (Trust&GO), on their own listener:
        /// 'emu' (the emulator's factory root), 'microchip' (Microchip's Crypto
        /// Authentication Root CA 002) or a certificate file. Their id is their
        /// certificate's CN (sn + serial number): name it with --publisher/--subscriber.
        #[arg(long, value_name = "ROOT")]
        factory_root: Option<String>,
        /// The factory identities' listener (no CRL: Trust&GO signers publish none).
        #[arg(long, default_value = "127.0.0.1:8884", requires = "factory_root")]
        factory_listen: std::net::SocketAddr,
        /// Every device of this fleet registry (JSON lines, e.g. written by
        /// 'coffre import-manifest --registry') may publish.
        #[arg(long, value_name = "FILE")]
        publishers_from: Option<PathBuf>,
    },
    /// Run mosquitto with that configuration and stream its log (Ctrl-C stops it).
    Run {
        /// Directory written by 'coffre broker config'.
        #[arg(long, default_value = "broker")]
        config: PathBuf,
    },
}

impl BrokerCommand {
    /// Run `coffre broker …`.
    pub fn run(self) -> Result<()> {
        match self {
            BrokerCommand::Config {
                pki,
                out,
                listen,
                mut publishers,
                subscribers,
                factory_root,
                factory_listen,
                publishers_from,
            } => {
                if let Some(reg) = publishers_from {
                    let entries = coffre_provision::manifest::Manifest::at(&reg)
                        .entries()
                        .map_err(|e| {
                            anyhow::anyhow!("reading the fleet registry {}: {e}", reg.display())
                        })?;
                    publishers.extend(entries.into_iter().map(|e| e.id));
                }
                config(
                    &pki,
                    &out,
                    listen,
                    &publishers,
                    &subscribers,
                    factory_root.as_deref().map(|r| (r, factory_listen)),
                )
            }
            BrokerCommand::Run { config } => run(&config),
        }
    }
}

/// `coffre broker config`.
pub fn config(
    pki: &Path,
    out: &Path,
    listen: SocketAddr,
    publishers: &[String],
    subscribers: &[String],
    factory: Option<(&str, SocketAddr)>,
) -> Result<()> {
    if publishers.is_empty() && subscribers.is_empty() {
        bail!("no device would have any right: name them with --publisher ID and --subscriber ID");
    }
    let mut s = BrokerSetup::new(pki, out);
    s.listen = listen;
    for id in publishers {
        s.acl.allow(id, Role::Publisher)?;
    }
    for id in subscribers {
        s.acl.allow(id, Role::Subscriber)?;
    }
    if let Some((root, listen)) = factory {
        let root = crate::cmd_factory::TrustedRoot::named(root)?;
        let (der, name) = (root.der, root.name);
        s.factory = Some(coffre_broker::FactoryListener {
            listen,
            root_pem: coffre_pki::util::to_pem("CERTIFICATE", &der),
        });
        say!("factory identities: listener {listen}, trusting {name}");
    }
    let conf = s.write()?;
    say!("wrote {} and {}", conf.display(), out.join("acl").display());
    say!("next: coffre broker run --config {}", out.display());
    Ok(())
}

/// The listener address written in a mosquitto.conf.
fn listener_of(conf: &str) -> Option<SocketAddr> {
    conf.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        if it.next()? != "listener" {
            return None;
        }
        let port: u16 = it.next()?.parse().ok()?;
        let ip = it.next().unwrap_or("0.0.0.0");
        format!("{ip}:{port}").parse().ok()
    })
}

/// `coffre broker run`: start mosquitto, stream its log until Ctrl-C.
pub fn run(dir: &Path) -> Result<()> {
    let conf_path = dir.join("mosquitto.conf");
    let conf = crate::input::read_text(&conf_path).with_context(|| {
        format!(
            "cannot read {}: write it first with 'coffre broker config --pki PKI --out {}'",
            conf_path.display(),
            dir.display()
        )
    })?;
    let addr = listener_of(&conf).context("mosquitto.conf has no 'listener PORT ADDRESS' line")?;
    let log = dir.join("mosquitto.log");
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut m = Mosquitto::start_conf(&conf_path, addr, &log)?;
    note!(
        "mosquitto listening on {addr} (pid {}); Ctrl-C stops it",
        m.pid().unwrap_or(0)
    );
    let follower = coffre_broker::LogFollower::follow(&log);
    let mut printed = coffre_broker::LogCursor::START;
    while !stop.load(Ordering::Relaxed) {
        for line in follower.next_lines(&mut printed, Duration::from_millis(100)) {
            say!("{line}");
        }
    }
    m.stop();
    for line in follower.since(printed) {
        say!("{line}");
    }
    note!("mosquitto stopped");
    Ok(())
}
