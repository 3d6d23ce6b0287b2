//! Stage 1, factory variant: the devices keep the identity their Trust&GO
//! parts ship with. No certificate is issued for them; they are onboarded
//! the way a fleet operator onboards a reel of parts, from the manifest
//! that comes with it:
//!
//! 1. **manifest**: the emulated factory makes the parts (each a fresh
//!    `tngtls` chip: slot 0 key, chain device → signer → factory root) and
//!    the manifest listing them, one entry per part signed by the emulated
//!    manifest signer (whose certificate the factory root issued); written
//!    to `trustandgo-manifest.json` (+ `.signer.pem`);
//! 2. **import**: that file is read back and verified as `coffre
//!    import-manifest` does — the signer chains to the root, every entry's
//!    signature, its x5c chain to the root, key = certificate, CN = serial;
//! 3. **registration**: the chains of the accepted parts go to the PKI's
//!    devices directory in one batch, and the fleet registry
//!    (`fleet-manifest.jsonl`) gets one line per part.
//!
//! Each accepted part then becomes a device on a board of its own; its
//! chip's slot 0 key must be the key its entry registered, and it will
//! sign that device's handshakes. The broker trusts the factory root on a
//! listener of its own ([`BrokerPlan::factory_root_pem`](crate::stage::BrokerPlan)).
//! The subscriber keeps a certificate from the fleet's CA.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use coffre_agent::identity::{DriverSigner, KeySource};
use coffre_agent::tls::{client_config, TlsOptions};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::chip::NvState;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_pki::util::to_pem;
use coffre_provision::manifest::Manifest;
use coffre_provision::trust_manifest::{self, Accepted};
use serde::Serialize;

use crate::chip::OFFLOAD_SLOT;
use crate::error::{Error, Result};
use crate::options::Progress;
use crate::stage::provision::{
    fresh_pki, in_parallel, subscriber, Device, ProvisionPlan, Provisioned,
};

/// How the parts were onboarded from their manifest.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Onboarding {
    /// The manifest as delivered with the parts.
    pub manifest: PathBuf,
    /// Making the parts and their signed manifest entries, writing the
    /// manifest, seconds (the factory's side, simulated).
    pub manifest_s: f64,
    /// Reading the manifest and verifying every entry, seconds.
    pub verify_s: f64,
    /// Writing the accepted chains (one batch) and the registry, seconds.
    pub register_s: f64,
    /// verify + register: the operator's onboarding, seconds.
    pub import_s: f64,
    /// Putting each part on its board and checking its slot 0 key against
    /// its registered key, seconds (the simulator's own setup).
    pub devices_s: f64,
    /// Parts registered.
    pub registered: usize,
    /// Entries refused.
    pub refused: usize,
    /// The first refusal, if any.
    pub first_refusal: Option<String>,
}

fn factory_error(what: &'static str) -> impl FnOnce(coffre_provision::Error) -> Error {
    move |source| Error::Factory { what, source }
}

/// Make the parts and their manifest, import it, and make each accepted
/// part a device (see the module documentation).
pub fn provision_factory(
    plan: &ProvisionPlan,
    progress: &mut dyn FnMut(Progress),
) -> Result<Provisioned> {
    let n = plan.devices;
    let (mut pki, pki_dir, ca_pem) = fresh_pki(&plan.dir, progress)?;

    progress(Progress::Step(format!(
        "factory: making {n} emulated Trust&GO parts and their signed manifest"
    )));
    let t0 = Instant::now();
    let (signer_key, signer_cert) =
        trust_manifest::emulated_signer().map_err(factory_error("making the manifest signer"))?;
    let parts = in_parallel(n, progress, |_| {
        let nv = Preset::Tngtls.build();
        let entry = trust_manifest::emulated_entry(&nv, &signer_key, &signer_cert)
            .map_err(factory_error("writing a part's manifest entry"))?;
        Ok((nv, entry))
    })?;
    let (nvs, entries): (Vec<NvState>, Vec<serde_json::Value>) =
        parts.into_iter().map(|(_, p)| p).unzip();
    let manifest = plan.dir.join("trustandgo-manifest.json");
    let text = serde_json::to_vec(&entries).map_err(|e| Error::Manifest {
        what: "writing",
        path: manifest.clone(),
        source: e.into(),
    })?;
    drop(entries);
    crate::util::write_file(&manifest, &text)?;
    let mut signer_path = manifest.clone().into_os_string();
    signer_path.push(".signer.pem");
    crate::util::write_file(
        &PathBuf::from(signer_path),
        to_pem("CERTIFICATE", &signer_cert).as_bytes(),
    )?;
    let manifest_s = t0.elapsed();

    progress(Progress::Step(format!(
        "import: verifying the manifest's {n} entries (signer chain, signature, x5c chain, key)"
    )));
    let t1 = Instant::now();
    let bytes = std::fs::read(&manifest).map_err(|source| Error::Io {
        what: "reading",
        path: manifest.clone(),
        source,
    })?;
    let root = coffre_emu::factory::root_cert_der();
    let results = trust_manifest::verify_with_progress(
        &bytes,
        std::slice::from_ref(&signer_cert),
        root,
        root,
        time::OffsetDateTime::now_utc(),
        &mut |done, total| progress(Progress::Importing(done, total)),
    )
    .map_err(factory_error("verifying the manifest"))?;
    let verify_s = t1.elapsed();
    let mut accepted = Vec::with_capacity(n);
    let mut refused = Vec::new();
    for r in results {
        match r {
            Ok(a) => accepted.push(a),
            Err(e) => refused.push(e),
        }
    }

    progress(Progress::Step(format!(
        "import: registering {} parts (chains in one batch, registry)",
        accepted.len()
    )));
    let t2 = Instant::now();
    let registry = plan.dir.join("fleet-manifest.jsonl");
    trust_manifest::register(&pki, &accepted, Some(&Manifest::at(&registry)))
        .map_err(factory_error("registering the parts"))?;
    let register_s = t2.elapsed();

    progress(Progress::Step(format!(
        "devices: {} parts on their boards, slot 0 key checked",
        accepted.len()
    )));
    let t3 = Instant::now();
    let mut by_serial: HashMap<String, NvState> = nvs
        .into_iter()
        .map(|nv| (coffre_pki::util::hex(&nv.config.serial_number()), nv))
        .collect();
    let mut devices = Vec::with_capacity(accepted.len());
    for (k, a) in accepted.iter().enumerate() {
        let nv = by_serial
            .remove(&a.unique_id)
            .ok_or_else(|| Error::UnknownPart(a.unique_id.clone()))?;
        devices.push(device(k + 1, a, nv, &ca_pem)?);
    }
    let devices_s = t3.elapsed();
    let secs = Duration::as_secs_f64;
    let onboarding = Onboarding {
        manifest,
        manifest_s: secs(&manifest_s),
        verify_s: secs(&verify_s),
        register_s: secs(&register_s),
        import_s: secs(&verify_s) + secs(&register_s),
        devices_s: secs(&devices_s),
        registered: accepted.len(),
        refused: refused.len(),
        first_refusal: refused.first().map(ToString::to_string),
    };
    Ok(Provisioned {
        pki_dir,
        devices,
        subscriber: subscriber(&mut pki, &ca_pem)?,
        manifest: registry,
        elapsed: t0.elapsed(),
        onboarding: Some(onboarding),
    })
}

/// Part `a` (its chip state `nv`) as device `index`: on a board of its
/// own, its slot 0 key checked against the registered one, its chain
/// presented and slot 0 signing.
fn device(index: usize, a: &Accepted, nv: NvState, ca_pem: &[u8]) -> Result<Device> {
    let id = a.device_id.clone();
    let board = Board::new(nv, Timing::Instant);
    let mut chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let key = chip.genkey_public(OFFLOAD_SLOT).map_err(|e| Error::Chip {
        id: id.clone(),
        what: "reading the public key of slot 0",
        source: e.to_string().into(),
    })?;
    if key != a.public_key {
        return Err(Error::FactoryKey(id));
    }
    let chain = format!(
        "{}{}",
        to_pem("CERTIFICATE", &a.chain.0),
        to_pem("CERTIFICATE", &a.chain.1)
    );
    let tls = client_config(
        ca_pem,
        chain.as_bytes(),
        KeySource::chip(DriverSigner::new(chip, OFFLOAD_SLOT)),
        &TlsOptions {
            tls13: false,
            resumption: false,
        },
    )
    .map_err(|source| Error::Tls {
        id: id.clone(),
        source,
    })?;
    Ok(Device::new(index, id, tls, board))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::FleetMode;

    #[test]
    fn parts_are_onboarded_from_their_manifest_without_issuing() {
        let dir = tempfile::tempdir().unwrap();
        let plan = ProvisionPlan {
            dir: dir.path().to_path_buf(),
            devices: 4,
            mode: FleetMode::Offload,
        };
        let p = provision_factory(&plan, &mut |_| {}).unwrap();
        let o = p.onboarding.as_ref().unwrap();
        assert_eq!((o.registered, o.refused), (4, 0));
        assert_eq!(p.devices.len(), 4);
        let registry = Manifest::at(&p.manifest).entries().unwrap();
        assert_eq!(registry.len(), 4);
        for (d, e) in p.devices.iter().zip(&registry) {
            // The device is its part: CN = "sn" + serial number.
            assert_eq!(d.id(), e.id);
            assert_eq!(d.id().to_ascii_lowercase(), format!("sn{}", e.chip_serial));
            assert_eq!((e.mode.as_str(), e.key_slot), ("factory", 0));
            let chain = std::fs::read_to_string(&e.cert_path).unwrap();
            assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        }
        // No device certificate was issued: the PKI's index holds only the
        // broker and the subscriber.
        let pki = coffre_pki::Pki::open(&p.pki_dir).unwrap();
        for e in &registry {
            assert_eq!(pki.store().by_id(&e.id).count(), 0, "{}", e.id);
        }
        assert_eq!(pki.store().by_id(crate::options::SUB_ID).count(), 1);
        // The manifest the parts came with verifies on its own.
        let bytes = std::fs::read(&o.manifest).unwrap();
        let mut signer = o.manifest.clone().into_os_string();
        signer.push(".signer.pem");
        let signer = coffre_pki::util::der_or_pem_cert(&std::fs::read(signer).unwrap()).unwrap();
        let r = trust_manifest::verify(
            &bytes,
            &[signer],
            coffre_emu::factory::root_cert_der(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert!(r.iter().all(Result::is_ok));
    }
}
