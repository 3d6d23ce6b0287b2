//! `coffre broker …`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use coffre_broker::{BrokerSetup, Mosquitto, Role};

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
        println!("factory identities: listener {listen}, trusting {name}");
    }
    let conf = s.write()?;
    println!("wrote {} and {}", conf.display(), out.join("acl").display());
    println!("next: coffre broker run --config {}", out.display());
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
    eprintln!(
        "mosquitto listening on {addr} (pid {}); Ctrl-C stops it",
        m.pid().unwrap_or(0)
    );
    let follower = coffre_broker::LogFollower::follow(&log);
    let mut printed = coffre_broker::LogCursor::START;
    while !stop.load(Ordering::Relaxed) {
        for line in follower.next_lines(&mut printed, Duration::from_millis(100)) {
            println!("{line}");
        }
    }
    m.stop();
    for line in follower.since(printed) {
        println!("{line}");
    }
    eprintln!("mosquitto stopped");
    Ok(())
}
