//! `coffre chip certs` and `coffre emu factory-root`: the identity a
//! Trust&GO chip ships with.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use coffre_pki::factory::{verify_chain, VerifiedChain, MICROCHIP_ROOT_CA_002};
use coffre_pki::util::{to_pem, write_atomic};
use coffre_provision::factory::{read_chain, FactoryChain};
use serde_json::json;

use crate::bus::{self, BusSpec};
use crate::output::print_json;
use crate::BusOpts;

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
        print!("{device_pem}{signer_pem}");
    }
    let v = verdict.context("the chip's factory identity is refused")?;
    if !opts.json {
        eprintln!(
            "chain ok: device '{}' → signer '{}' → root '{}' ({}); device key = slot 0 public key",
            v.device_cn, v.signer_cn, v.root_cn, root.name
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
            eprintln!(
                "wrote the emulated factory root to {} (a public test fixture: trust it for emulated chips only)",
                path.display()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}
