//! `coffre pki …`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use coffre_pki::{InitOptions, IssueOptions, Pki};

use crate::output::print_json;

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
    println!("PKI created in {}", dir.display());
    println!("  CA certificate      {}", pki.ca_cert_path().display());
    println!("  CA key (0600)       {}", pki.ca_key_path().display());
    println!(
        "  broker certificate  {}  (localhost, 127.0.0.1, ::1{})",
        pki.broker_cert_path().display(),
        broker_names
            .iter()
            .map(|n| format!(", {n}"))
            .collect::<String>()
    );
    println!("  broker key (0600)   {}", pki.broker_key_path().display());
    println!("  CRL                 {}", pki.crl_path().display());
    println!(
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
    let parse = |s: Option<&str>| {
        s.map(|s| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .with_context(|| {
                    format!("'{s}' is not an RFC 3339 time (e.g. 2027-01-01T00:00:00Z)")
                })
        })
        .transpose()
    };
    let not_before = parse(not_before)?;
    let not_after = parse(not_after)?;
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
    println!(
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
            println!("revoked {} (serial {})", e.id, e.serial);
        }
        println!("CRL written to {}", pki.crl_path().display());
    }
    // Running brokers configured from this PKI apply it at once; the
    // others read it when they start.
    let ids: Vec<&str> = revoked.iter().map(|e| e.id.as_str()).collect();
    for broker in coffre_broker::managed_brokers(dir) {
        let Some(pid) = coffre_broker::running_pid(&broker) else {
            continue;
        };
        let r = coffre_broker::revoke_live(&broker, pid, &ids).with_context(|| {
            format!(
                "the certificate is revoked in the PKI, but the broker running from {} (pid {pid}) \
                 did not apply it: restart it ('coffre broker run --config {}')",
                broker.display(),
                broker.display()
            )
        })?;
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        let msg = format!(
            "broker {} (pid {pid}): CRL reloaded in {:.0} ms; {}",
            broker.display(),
            ms(r.reload),
            if !r.can_cut {
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
            eprintln!("{msg}");
        } else {
            println!("{msg}");
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
    println!(
        "CA       {} (serial {}, until {})",
        s.ca.subject, s.ca.serial, s.ca.not_after
    );
    if let Some(b) = &s.broker {
        println!("broker   {} (until {})", b.subject, b.not_after);
    }
    println!(
        "CRL      number {}, {} revoked, next update {}{}",
        s.crl.number,
        s.crl.revoked,
        s.crl
            .next_update
            .map_or_else(|| "?".to_string(), |t| t.to_string()),
        if s.crl.expired {
            " — EXPIRED: run 'coffre pki revoke' or re-init"
        } else {
            ""
        }
    );
    println!();
    println!("device               status    serial                             not after");
    for d in &s.devices {
        let status = if d.expired {
            "expired".to_string()
        } else {
            format!("{:?}", d.status).to_lowercase()
        };
        println!(
            "{:<20} {:<9} {:<34} {}",
            d.id, status, d.serial, d.not_after
        );
    }
    if s.devices.is_empty() {
        println!("(no device certificates yet)");
    }
    for w in &s.warnings {
        println!("warning: {w}");
    }
    Ok(())
}

/// `coffre pki crl`: write a fresh CRL (before the current one expires).
pub fn crl(dir: &Path) -> Result<()> {
    let mut pki = Pki::open(dir)?;
    pki.refresh_crl()?;
    println!("CRL rewritten: {}", pki.crl_path().display());
    Ok(())
}
