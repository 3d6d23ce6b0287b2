//! `coffre pki …`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_pki::{InitOptions, IssueOptions, Pki};

use crate::input;
use crate::output::print_json;
use crate::output::{note, say};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Create a CA and a broker certificate in a directory.
    Init {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// CN of the CA.
        #[arg(long, default_value = "coffre CA")]
        ca_name: String,
        /// Extra broker names (DNS or IP) besides localhost, 127.0.0.1 and ::1.
        #[arg(long = "broker-name", value_name = "NAME")]
        broker_names: Vec<String>,
        /// Validity of the CA and broker certificates, days.
        #[arg(long, default_value = "3650", value_parser = input::days)]
        days: u32,
        /// Replace an existing PKI (every certificate issued from it stops being trusted).
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue a device certificate (CN = device id = MQTT username).
    Issue {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Device id (not with --csr: the CSR's CN is used).
        #[arg(long)]
        id: Option<String>,
        /// A PKCS#10 request (PEM or DER), e.g. one signed by the chip.
        #[arg(long, value_name = "FILE", conflicts_with = "public_key")]
        csr: Option<PathBuf>,
        /// A P-256 public (or private) key in PEM.
        #[arg(long, value_name = "PEM", required_unless_present = "csr")]
        public_key: Option<PathBuf>,
        /// Validity, days.
        #[arg(long, default_value = "365", value_parser = input::days)]
        days: u32,
        /// Explicit notBefore (RFC 3339).
        #[arg(long, value_name = "TIME")]
        not_before: Option<String>,
        /// Explicit notAfter (RFC 3339), e.g. to make an already expired certificate for tests.
        #[arg(long, value_name = "TIME")]
        not_after: Option<String>,
        /// Replace an existing certificate for this id.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device (by id or serial) and rewrite the CRL.
    Revoke {
        /// Device id or certificate serial.
        target: String,
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a fresh CRL and reload the brokers running from this PKI (the
    /// CRL expires after 30 days; the broker then refuses everyone).
    Crl {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Date the CRL at this time (RFC 3339) instead of now; it expires
        /// 30 days later. A date long past makes an expired CRL, for tests.
        #[arg(long, value_name = "TIME")]
        this_update: Option<String>,
    },
    /// List the CA, the broker and every device certificate with its status.
    Show {
        /// PKI directory.
        #[arg(long, default_value = "pki")]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

impl PkiCommand {
    /// Run `coffre pki …`.
    pub fn run(self) -> Result<()> {
        match self {
            PkiCommand::Init {
                dir,
                ca_name,
                broker_names,
                days,
                force,
                json,
            } => init(&dir, &ca_name, &broker_names, days, force, json),
            PkiCommand::Issue {
                dir,
                id,
                csr,
                public_key,
                days,
                not_before,
                not_after,
                force,
                json,
            } => {
                let input = match (&csr, &public_key) {
                    (Some(c), _) => KeyInput::Csr(c),
                    (None, Some(k)) => KeyInput::KeyPem(k),
                    (None, None) => unreachable!("clap requires one of --csr and --public-key"),
                };
                issue(
                    &dir,
                    id.as_deref(),
                    input,
                    days,
                    (not_before.as_deref(), not_after.as_deref()),
                    force,
                    json,
                )
            }
            PkiCommand::Revoke { target, dir, json } => revoke(&dir, &target, json),
            PkiCommand::Show { dir, json } => show(&dir, json),
            PkiCommand::Crl { dir, this_update } => crl(&dir, this_update.as_deref()),
        }
    }
}

/// An optional RFC 3339 time given on the command line.
fn rfc3339(s: Option<&str>) -> Result<Option<time::OffsetDateTime>> {
    s.map(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .with_context(|| format!("'{s}' is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z)"))
    })
    .transpose()
}

/// `coffre pki init`.
pub fn init(
    dir: &Path,
    ca_name: &str,
    broker_names: &[String],
    days: u32,
    force: bool,
    json: bool,
) -> Result<()> {
    let pki = Pki::init(
        dir,
        &InitOptions {
            ca_name: ca_name.to_string(),
            broker_names: broker_names.to_vec(),
            validity_days: days,
            force,
        },
    )?;
    if json {
        return print_json(&serde_json::to_value(pki.show()?)?);
    }
    say!("PKI created in {}", dir.display());
    say!("  CA certificate      {}", pki.ca_cert_path().display());
    say!("  CA key (0600)       {}", pki.ca_key_path().display());
    say!(
        "  broker certificate  {}  (localhost, 127.0.0.1, ::1{})",
        pki.broker_cert_path().display(),
        broker_names
            .iter()
            .map(|n| format!(", {n}"))
            .collect::<String>()
    );
    say!("  broker key (0600)   {}", pki.broker_key_path().display());
    say!("  CRL                 {}", pki.crl_path().display());
    say!(
        "next: coffre provision --bus emu:chip.img --pki {} --id m5go-1 --mode offload",
        dir.display()
    );
    Ok(())
}

/// Where `coffre pki issue` takes the public key from.
pub enum KeyInput<'a> {
    /// A PKCS#10 request (PEM or DER): CN and key come from it.
    Csr(&'a Path),
    /// A public (or private) key PEM.
    KeyPem(&'a Path),
}

/// `coffre pki issue`.
pub fn issue(
    dir: &Path,
    id: Option<&str>,
    input: KeyInput<'_>,
    days: u32,
    (not_before, not_after): (Option<&str>, Option<&str>),
    force: bool,
    json: bool,
) -> Result<()> {
    let mut pki = Pki::open(dir)?;
    let not_before = rfc3339(not_before)?;
    let not_after = rfc3339(not_after)?;
    let opts = IssueOptions {
        validity_days: days,
        not_before,
        not_after,
        force,
    };
    let issued = match input {
        KeyInput::Csr(p) => {
            let bytes = crate::input::read_file(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            if id.is_some() {
                bail!("--id is taken from the CSR's CN; leave it out with --csr");
            }
            pki.issue_from_csr(&bytes, &opts)?
        }
        KeyInput::KeyPem(p) => {
            let Some(id) = id else {
                bail!("--id is required with --public-key");
            };
            let text = crate::input::read_text(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let pk = parse_public_key_pem(&text).with_context(|| {
                format!("{} holds no P-256 public or private key PEM", p.display())
            })?;
            pki.issue_device(id, &pk, &opts)?
        }
    };
    if json {
        return print_json(&serde_json::to_value(&issued)?);
    }
    say!(
        "issued {} (serial {}, valid until {})",
        issued.path.display(),
        issued.serial,
        issued.not_after
    );
    Ok(())
}

fn parse_public_key_pem(text: &str) -> Result<p256::PublicKey> {
    use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
    if let Ok(pk) = p256::PublicKey::from_public_key_pem(text) {
        return Ok(pk);
    }
    let sk = p256::SecretKey::from_pkcs8_pem(text)
        .or_else(|_| p256::SecretKey::from_sec1_pem(text))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(sk.public_key())
}

/// `coffre pki revoke`.
pub fn revoke(dir: &Path, target: &str, json: bool) -> Result<()> {
    let mut pki = Pki::open(dir)?;
    let revoked = pki.revoke(target)?;
    if json {
        print_json(&serde_json::to_value(&revoked)?)?;
    } else {
        for e in &revoked {
            say!("revoked {} (serial {})", e.id, e.serial);
        }
        say!("CRL written to {}", pki.crl_path().display());
    }
    let ids: Vec<&str> = revoked.iter().map(|e| e.id.as_str()).collect();
    reload_brokers(dir, &ids, json)
}

/// Make the brokers running from the PKI at `dir` read its new CRL, and
/// cut the live sessions of `ids`; the others read it when they start.
fn reload_brokers(dir: &Path, ids: &[&str], json: bool) -> Result<()> {
    for broker in coffre_broker::managed_brokers(dir) {
        let Some(pid) = coffre_broker::running_pid(&broker) else {
            continue;
        };
        let r = coffre_broker::revoke_live(&broker, pid, ids).with_context(|| {
            format!(
                "the CRL is written in the PKI, but the broker running from {} (pid {pid}) \
                 did not reload it: restart it ('coffre broker run --config {}')",
                broker.display(),
                broker.display()
            )
        })?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let msg = format!(
            "broker {} (pid {pid}): CRL reloaded in {:.0} ms; {}",
            broker.display(),
            ms(r.reload),
            if ids.is_empty() {
                "nothing to cut".to_string()
            } else if !r.can_cut {
                "live sessions NOT cut (no dynamic-security plugin: rewrite its configuration with 'coffre broker config')".to_string()
            } else if r.cut.is_empty() {
                "no live session to cut".to_string()
            } else {
                format!(
                    "session of {} cut after {:.0} ms",
                    r.cut.join(", "),
                    ms(r.total)
                )
            }
        );
        // JSON on stdout stays the list of revoked certificates.
        if json {
            note!("{msg}");
        } else {
            say!("{msg}");
        }
    }
    Ok(())
}

/// `coffre pki show`.
pub fn show(dir: &Path, json: bool) -> Result<()> {
    let pki = Pki::open(dir)?;
    let s = pki.show()?;
    if json {
        return print_json(&serde_json::to_value(&s)?);
    }
    say!(
        "CA       {} (serial {}, until {})",
        s.ca.subject,
        s.ca.serial,
        s.ca.not_after
    );
    if let Some(b) = &s.broker {
        say!("broker   {} (until {})", b.subject, b.not_after);
    }
    say!(
        "CRL      number {}, {} revoked, next update {}{}",
        s.crl.number,
        s.crl.revoked,
        s.crl
            .next_update
            .map_or_else(|| "?".to_string(), |t| t.to_string()),
        if s.crl.expired {
            " — EXPIRED: the broker refuses every client; run 'coffre pki crl'"
        } else {
            ""
        }
    );
    say!();
    say!("device               status    serial                             not after");
    for d in &s.devices {
        let status = if d.expired {
            "expired".to_string()
        } else {
            format!("{:?}", d.status).to_lowercase()
        };
        say!(
            "{:<20} {:<9} {:<34} {}",
            d.id,
            status,
            d.serial,
            d.not_after
        );
    }
    if s.devices.is_empty() {
        say!("(no device certificates yet)");
    }
    for w in &s.warnings {
        say!("warning: {w}");
    }
    Ok(())
}

/// `coffre pki crl`: write a fresh CRL (before the current one expires).
pub fn crl(dir: &Path, this_update: Option<&str>) -> Result<()> {
    let this_update = rfc3339(this_update)?;
    if let Some(t) = this_update {
        if t > time::OffsetDateTime::now_utc() + time::Duration::minutes(5) {
            bail!(
                "--this-update {t} is in the future: the broker would refuse every client until \
                 then (a CRL not yet valid fails its check); leave it out to date the CRL now"
            );
        }
    }
    let this_update =
        this_update.map_or_else(coffre_pki::Timestamp::now, coffre_pki::Timestamp::new);
    let mut pki = Pki::open(dir)?;
    pki.refresh_crl_at(this_update)?;
    let next = time::Duration::days(coffre_pki::ca::CRL_VALIDITY_DAYS);
    say!(
        "CRL rewritten: {} (next update {})",
        pki.crl_path().display(),
        coffre_pki::Timestamp::new(this_update.get() + next)
    );
    reload_brokers(dir, &[], false)
}
