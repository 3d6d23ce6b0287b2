//! `coffre chip certs` and `coffre emu factory-root`: the identity a
//! Trust&GO chip ships with.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use coffre_pki::factory::{verify_chain, VerifiedChain, MICROCHIP_ROOT_CA_002};
use coffre_pki::util::{to_pem, write_atomic};
use coffre_provision::factory::{read_chain, FactoryChain};
use serde_json::json;

use crate::bus::BusOpts;
use crate::bus::{self, BusSpec};
use crate::output::print_json;
use crate::output::{note, say, say_text};
use clap::Args;

/// The root a chain is checked against, and what to call it.
pub struct TrustedRoot {
    /// DER.
    pub der: Vec<u8>,
    /// For messages.
    pub name: String,
}

impl TrustedRoot {
    /// `--root FILE` if given; else the emulator's factory root for an
    /// emulated chip and Microchip's Root CA 002 for a real one.
    pub fn for_bus(spec: &BusSpec, file: Option<&Path>) -> Result<TrustedRoot> {
        if let Some(path) = file {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the root certificate {}", path.display()))?;
            let der = coffre_pki::util::der_or_pem_cert(&bytes)
                .with_context(|| format!("{} is not a certificate (PEM or DER)", path.display()))?;
            return Ok(TrustedRoot {
                der,
                name: path.display().to_string(),
            });
        }
        Ok(match spec {
            BusSpec::Emu { .. } => TrustedRoot {
                der: coffre_emu::factory::root_cert_der().to_vec(),
                name: "the emulator's factory root (coffre emu factory-root)".into(),
            },
            BusSpec::Linux { .. } => TrustedRoot {
                der: MICROCHIP_ROOT_CA_002.to_vec(),
                name: "Microchip's Crypto Authentication Root CA 002".into(),
            },
        })
    }
}

/// Read the chip's factory chain and check it against `root`. The chain is
/// returned with the check's outcome, so a caller can show what the chip
/// holds even when it is refused.
pub fn read_and_verify(
    opts: &BusOpts,
    root: &TrustedRoot,
) -> Result<(FactoryChain, coffre_pki::Result<VerifiedChain>)> {
    let mut o = bus::open(&opts.bus, opts.timing)?;
    let chain = read_chain(&mut o.chip).context("reading the factory certificates")?;
    let verdict = verify_chain(
        &chain.device,
        &chain.signer,
        &root.der,
        &chain.slot0_public_key,
        time::OffsetDateTime::now_utc(),
    );
    Ok((chain, verdict))
}

/// `coffre chip certs`.
pub fn certs(opts: &BusOpts, root_file: Option<&Path>, out: Option<&Path>) -> Result<()> {
    let root = TrustedRoot::for_bus(&opts.bus, root_file)?;
    let (chain, verdict) = read_and_verify(opts, &root)?;
    let device_pem = to_pem("CERTIFICATE", &chain.device);
    let signer_pem = to_pem("CERTIFICATE", &chain.signer);
    let root_pem = to_pem("CERTIFICATE", &root.der);
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (name, pem) in [
            ("device.pem", &device_pem),
            ("signer.pem", &signer_pem),
            ("root.pem", &root_pem),
        ] {
            let path: PathBuf = dir.join(name);
            write_atomic(&path, pem.as_bytes(), 0o644)?;
        }
    }
    if opts.json {
        print_json(&json!({
            "bus": opts.bus.to_string(),
            "definition": chain.definition,
            "otp_code": String::from_utf8_lossy(&chain.otp_code),
            "serial_number": coffre_pki::util::hex_upper(&chain.serial_number),
            "device_pem": device_pem,
            "signer_pem": signer_pem,
            "root": root.name,
            "root_pem": root_pem,
            "verified": verdict.is_ok(),
            "device_cn": verdict.as_ref().ok().map(|v| v.device_cn.clone()),
            "error": verdict.as_ref().err().map(|e| e.to_string()),
        }))?;
    } else {
        say_text(&format!("{device_pem}{signer_pem}"));
    }
    let v = verdict.context("the chip's factory identity is refused")?;
    if !opts.json {
        note!(
            "chain ok: device '{}' → signer '{}' → root '{}' ({}); device key = slot 0 public key",
            v.device_cn,
            v.signer_cn,
            v.root_cn,
            root.name
        );
    }
    Ok(())
}

/// `coffre emu factory-root`.
pub fn factory_root(out: Option<&Path>) -> Result<()> {
    let pem = to_pem("CERTIFICATE", coffre_emu::factory::root_cert_der());
    match out {
        Some(path) => {
            write_atomic(path, pem.as_bytes(), 0o644)?;
            note!(
                "wrote the emulated factory root to {} (a public test fixture: trust it for emulated chips only)",
                path.display()
            );
        }
        None => say_text(&pem),
    }
    Ok(())
}

impl TrustedRoot {
    /// 'emu' (the emulator's factory root), 'microchip' (Microchip's Root
    /// CA 002) or a certificate file.
    pub fn named(spec: &str) -> Result<TrustedRoot> {
        Ok(match spec {
            "emu" => TrustedRoot {
                der: coffre_emu::factory::root_cert_der().to_vec(),
                name: "the emulator's factory root".into(),
            },
            "microchip" => TrustedRoot {
                der: MICROCHIP_ROOT_CA_002.to_vec(),
                name: "Microchip's Crypto Authentication Root CA 002".into(),
            },
            file => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("cannot read the root certificate {file}"))?;
                TrustedRoot {
                    der: coffre_pki::util::der_or_pem_cert(&bytes)?,
                    name: file.to_string(),
                }
            }
        })
    }
}

/// `coffre emu new --count N [--manifest FILE]`.
pub fn new_batch(
    preset: coffre_emu::presets::Preset,
    dir: &Path,
    count: u32,
    manifest: Option<&Path>,
    force: bool,
    json: bool,
) -> Result<()> {
    if preset != coffre_emu::presets::Preset::Tngtls && manifest.is_some() {
        anyhow::bail!("--manifest lists Trust&GO parts: use --preset tngtls");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (signer_key, signer_cert) = if manifest.is_some() {
        let (k, c) = coffre_provision::trust_manifest::emulated_signer()?;
        (Some(k), c)
    } else {
        (None, Vec::new())
    };
    let mut entries = Vec::new();
    let mut images = Vec::with_capacity(count as usize);
    let bar = if json || count < 100 {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(u64::from(count))
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} chips made")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t0 = std::time::Instant::now();
    for i in 1..=count {
        let nv = preset.build();
        if let Some(key) = &signer_key {
            entries.push(coffre_provision::trust_manifest::emulated_entry(
                &nv,
                key,
                &signer_cert,
            )?);
        }
        images.push((dir.join(format!("tng-{i:05}.img")), nv));
        bar.inc(1);
    }
    bar.finish_and_clear();
    // One file-system sync for every image, not one each.
    coffre_emu::image::create_batch(&images, force)?;
    if let Some(m) = manifest {
        let text = serde_json::to_string_pretty(&entries)?;
        write_atomic(m, text.as_bytes(), 0o644)?;
        let signer_path = PathBuf::from(format!("{}.signer.pem", m.display()));
        write_atomic(
            &signer_path,
            to_pem("CERTIFICATE", &signer_cert).as_bytes(),
            0o644,
        )?;
    }
    let elapsed = t0.elapsed();
    if json {
        return print_json(&json!({
            "dir": dir.display().to_string(),
            "count": count,
            "manifest": manifest.map(|m| m.display().to_string()),
            "seconds": elapsed.as_secs_f64(),
        }));
    }
    say!(
        "created {count} emulated {} chips in {} ({:.1} s){}",
        preset.name(),
        dir.display(),
        elapsed.as_secs_f64(),
        manifest
            .map(|m| format!(
                "; manifest {} signed by the emulated manifest signer ({}.signer.pem)",
                m.display(),
                m.display()
            ))
            .unwrap_or_default()
    );
    Ok(())
}

/// What `coffre import-manifest` was asked.
#[derive(Args, Debug)]
#[command(
    after_help = "Each refused entry is named with its reason; the others are \
registered (device chain in PKI/devices/<CN>.crt.pem, a line in --registry). Exit status 4 if any entry \
is refused.\n\nExample:\n  coffre emu new --count 100 --out chips --manifest m.json\n  \
coffre import-manifest m.json --signer m.json.signer.pem --root emu --pki pki"
)]
pub struct ImportArgs {
    /// The manifest (JSON).
    pub manifest: PathBuf,
    /// The manifest signer's certificate (PEM or DER). It must chain to the
    /// signer root (--signer-root, default --root).
    #[arg(long, value_name = "CERT")]
    pub signer: PathBuf,
    /// The factory root the parts' chains lead to: 'emu', 'microchip' or a certificate file.
    #[arg(long, default_value = "microchip", value_name = "ROOT")]
    pub root: String,
    /// The root the manifest signer's certificate must be issued by (or be):
    /// 'emu', 'microchip' or a certificate file, e.g. the manifest CA
    /// certificate Microchip publishes. Default: --root.
    #[arg(long, value_name = "ROOT")]
    pub signer_root: Option<String>,
    /// PKI directory where device chains are registered.
    #[arg(long, default_value = "pki")]
    pub pki: PathBuf,
    /// Fleet registry (JSON lines) to add the registered devices to (an
    /// entry of the same device is replaced).
    #[arg(long, value_name = "FILE")]
    pub registry: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `coffre import-manifest`.
pub fn import_manifest(a: &ImportArgs) -> Result<()> {
    let (manifest, signer, json) = (&a.manifest, &a.signer, a.json);
    let root = TrustedRoot::named(&a.root)?;
    let signer_root = match &a.signer_root {
        Some(r) => TrustedRoot::named(r)?,
        None => TrustedRoot::named(&a.root)?,
    };
    let signer_bytes = std::fs::read(signer).with_context(|| {
        format!(
            "cannot read the manifest signer certificate {}",
            signer.display()
        )
    })?;
    let signer_der = coffre_pki::util::der_or_pem_cert(&signer_bytes)?;
    let bytes = std::fs::read(manifest)
        .with_context(|| format!("cannot read the manifest {}", manifest.display()))?;
    let pki = coffre_pki::Pki::open(&a.pki)?;
    let t0 = std::time::Instant::now();
    let bar = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} entries verified")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let results = coffre_provision::trust_manifest::verify_with_progress(
        &bytes,
        &[signer_der],
        &signer_root.der,
        &root.der,
        time::OffsetDateTime::now_utc(),
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )
    .inspect_err(|_| bar.finish_and_clear())
    .with_context(|| {
        format!(
            "{}: the manifest is refused whole (signer {}, signer root: {})",
            manifest.display(),
            signer.display(),
            signer_root.name
        )
    })?;
    let verified_in = t0.elapsed();
    bar.finish_and_clear();
    let (accepted, refused): (Vec<_>, Vec<_>) = results.into_iter().partition(|r| r.is_ok());
    let accepted: Vec<_> = accepted.into_iter().filter_map(|r| r.ok()).collect();
    let refused: Vec<_> = refused.into_iter().filter_map(|r| r.err()).collect();
    let reg = a
        .registry
        .as_deref()
        .map(coffre_provision::manifest::Manifest::at);
    let t1 = std::time::Instant::now();
    coffre_provision::trust_manifest::register(&pki, &accepted, reg.as_ref())
        .context("registering the verified parts")?;
    let registered_in = t1.elapsed();
    let total = t0.elapsed();
    if json {
        print_json(&json!({
            "manifest": manifest.display().to_string(),
            "root": root.name,
            "registered": accepted.iter().map(|a| &a.device_id).collect::<Vec<_>>(),
            "refused": refused.iter().map(|r| json!({"index": r.index, "unique_id": r.unique_id, "reason": r.reason})).collect::<Vec<_>>(),
            "verify_seconds": verified_in.as_secs_f64(),
            "register_seconds": registered_in.as_secs_f64(),
            "total_seconds": total.as_secs_f64(),
        }))?;
    } else {
        for r in &refused {
            note!("refused: {r}");
        }
        say!(
            "{} registered, {} refused ({} entries verified in {:.2} s, registered in {:.2} s, {:.2} s in all; root: {})",
            accepted.len(),
            refused.len(),
            accepted.len() + refused.len(),
            verified_in.as_secs_f64(),
            registered_in.as_secs_f64(),
            total.as_secs_f64(),
            root.name
        );
    }
    if !refused.is_empty() {
        return Err(anyhow::Error::new(coffre_pki::Error::FactoryChain(
            format!(
                "{} manifest entr{} refused (named above); the others were registered",
                refused.len(),
                if refused.len() == 1 {
                    "y was"
                } else {
                    "ies were"
                }
            ),
        )));
    }
    Ok(())
}
