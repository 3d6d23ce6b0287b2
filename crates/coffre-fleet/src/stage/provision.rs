//! Stage 1, provision: a fresh PKI, one emulated Trust&GO chip per device
//! with its key in place, every certificate issued by that one PKI in one
//! batch, the subscriber's own chip, and the fleet manifest.
//!
//! Every device is in the PKI's index, so `coffre pki revoke` reaches it
//! and the CRL the broker loads lists it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_agent::tls::{client_config, TlsOptions};
use coffre_emu::board::Board;
use coffre_pki::ca::{IssueOptions, IssueRequest};
use coffre_pki::types::Timestamp;
use coffre_pki::util::{fingerprint_sha256, hex};
use coffre_pki::{InitOptions, Pki};
use coffre_provision::manifest::{Entry, Manifest};
use rustls::ClientConfig;

use crate::chip::{ready_chip, ReadyChip};
use crate::error::{Error, Result};
use crate::options::{device_id, FleetMode, Progress, SUB_ID};

/// What the provision stage needs.
#[derive(Debug, Clone)]
pub struct ProvisionPlan {
    /// Working directory: the PKI goes to `pki/`, the manifest to
    /// `fleet-manifest.jsonl`.
    pub dir: PathBuf,
    /// Devices `1..=devices`.
    pub devices: usize,
    /// Key mode of the devices (the subscriber is always offload).
    pub mode: FleetMode,
}

/// One provisioned device, ready to connect: its chip, its certificate
/// (issued by the fleet's PKI) and its TLS client configuration.
pub struct Device {
    index: usize,
    id: String,
    tls: Arc<ClientConfig>,
    // Keeps the emulated chip alive (the signer holds its bus).
    _board: Board,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("index", &self.index)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Device {
    pub(crate) fn new(index: usize, id: String, tls: Arc<ClientConfig>, board: Board) -> Device {
        Device {
            index,
            id,
            tls,
            _board: board,
        }
    }

    /// Its number (from 1; 0 for the subscriber).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its id: certificate CN and MQTT username.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its TLS client configuration (chip-backed in offload mode).
    pub fn tls(&self) -> Arc<ClientConfig> {
        self.tls.clone()
    }
}

/// What the provision stage produces.
#[derive(Debug)]
pub struct Provisioned {
    /// The PKI directory (CA, broker certificate, device certificates).
    pub pki_dir: PathBuf,
    /// The devices, by index.
    pub devices: Vec<Device>,
    /// The subscriber, with a chip and certificate of its own.
    pub subscriber: Device,
    /// The fleet manifest, one line per device.
    pub manifest: PathBuf,
    /// Time spent provisioning the devices (the subscriber excluded).
    pub elapsed: Duration,
    /// With factory identities: how the parts were onboarded from their
    /// manifest.
    pub onboarding: Option<crate::stage::factory::Onboarding>,
}

/// Create the PKI; make every device's chip ready on up to 2 threads;
/// issue all their certificates in one batch; then the subscriber's; write
/// the manifest.
pub fn provision(plan: &ProvisionPlan, progress: &mut dyn FnMut(Progress)) -> Result<Provisioned> {
    let (mut pki, pki_dir, ca_pem) = fresh_pki(&plan.dir, progress)?;
    progress(Progress::Step(format!(
        "provisioning {} emulated chips ({} mode)",
        plan.devices,
        plan.mode.name()
    )));
    let t0 = Instant::now();
    let chips = in_parallel(plan.devices, progress, |i| {
        let id = device_id(i);
        let chip = ready_chip(&id, plan.mode)?;
        Ok((id, chip))
    })?
    .into_iter()
    .map(|(i, (id, chip))| (i, id, chip))
    .collect();
    let (devices, entries) = certify(&mut pki, &ca_pem, chips, plan.mode)?;
    progress(Progress::Provisioning(plan.devices, plan.devices));
    let elapsed = t0.elapsed();
    let manifest = plan.dir.join("fleet-manifest.jsonl");
    write_manifest(&manifest, &entries)?;
    Ok(Provisioned {
        pki_dir,
        devices,
        subscriber: subscriber(&mut pki, &ca_pem)?,
        manifest,
        elapsed,
        onboarding: None,
    })
}

/// A fresh PKI in `dir/pki`: CA and broker certificate. Its directory and
/// the CA certificate (PEM), which every client trusts for the broker.
pub(crate) fn fresh_pki(
    dir: &Path,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Pki, PathBuf, Vec<u8>)> {
    progress(Progress::Step("PKI: CA and broker certificate".into()));
    let pki_dir = dir.join("pki");
    let pki = Pki::init(
        &pki_dir,
        &InitOptions {
            force: true,
            ..InitOptions::default()
        },
    )
    .map_err(|source| Error::Pki {
        what: "creating the PKI in",
        path: pki_dir.clone(),
        source,
    })?;
    let ca_pem = pki.ca_cert_pem().into_bytes();
    Ok((pki, pki_dir, ca_pem))
}

/// The subscriber: a chip of its own (offload) and a certificate from the
/// fleet's CA.
pub(crate) fn subscriber(pki: &mut Pki, ca_pem: &[u8]) -> Result<Device> {
    let sub = vec![(
        0,
        SUB_ID.to_owned(),
        ready_chip(SUB_ID, FleetMode::Offload)?,
    )];
    let (mut subscriber, _) = certify(pki, ca_pem, sub, FleetMode::Offload)?;
    subscriber.pop().ok_or(Error::Panicked("provisioning"))
}

/// `make(i)` for `i` in `1..=n` over up to 2 threads, by index, with
/// [`Progress::Provisioning`] as they finish. The first error stops the
/// workers and is returned.
pub(crate) fn in_parallel<T: Send>(
    n: usize,
    progress: &mut dyn FnMut(Progress),
    make: impl Fn(usize) -> Result<T> + Sync,
) -> Result<Vec<(usize, T)>> {
    let next = AtomicUsize::new(1);
    let done = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(n));
    let workers = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .clamp(1, 2);
    let worker = || -> Result<()> {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i > n {
                return Ok(());
            }
            let made = make(i).inspect_err(|_| {
                // The other workers stop at their next item.
                next.store(n + 1, Ordering::Relaxed);
            })?;
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((i, made));
            done.fetch_add(1, Ordering::Relaxed);
        }
    };
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(worker)).collect();
        while !handles.iter().all(|h| h.is_finished()) {
            progress(Progress::Provisioning(done.load(Ordering::Relaxed), n));
            std::thread::sleep(Duration::from_millis(100));
        }
        for h in handles {
            h.join().map_err(|_| Error::Panicked("provisioning"))??;
        }
        Ok(())
    })?;
    progress(Progress::Provisioning(n, n));
    let mut made = results.into_inner().unwrap_or_else(|e| e.into_inner());
    made.sort_by_key(|(i, _)| *i);
    Ok(made)
}

/// Issue the certificates of `chips` from `pki` in one batch (one journal
/// write, one sync), then build each device's TLS configuration and
/// manifest line.
pub(crate) fn certify(
    pki: &mut Pki,
    ca_pem: &[u8],
    chips: Vec<(usize, String, ReadyChip)>,
    mode: FleetMode,
) -> Result<(Vec<Device>, Vec<Entry>)> {
    let requests: Vec<IssueRequest> = chips
        .iter()
        .map(|(_, id, c)| IssueRequest {
            id: id.clone(),
            public_key: c.public_key,
        })
        .collect();
    let issued = pki
        .issue_batch(&requests, &IssueOptions::default())
        .map_err(|source| Error::Pki {
            what: "issuing the fleet's certificates from",
            path: pki.dir().to_path_buf(),
            source,
        })?;
    let mut devices = Vec::with_capacity(chips.len());
    let mut entries = Vec::with_capacity(chips.len());
    for ((index, id, chip), cert) in chips.into_iter().zip(issued) {
        entries.push(Entry {
            id: id.clone(),
            chip_serial: hex(&chip.serial),
            mode: mode.name().into(),
            key_slot: chip.slot,
            public_key: hex(&chip.public_xy),
            cert_fingerprint: fingerprint_sha256(&cert.der),
            cert_path: cert.path.clone(),
            time: Timestamp::now().to_string(),
            image: None,
        });
        let tls = client_config(
            ca_pem,
            cert.pem.as_bytes(),
            chip.key,
            &TlsOptions {
                tls13: false,
                resumption: false,
            },
        )
        .map_err(|source| Error::Tls {
            id: id.clone(),
            source,
        })?;
        devices.push(Device::new(index, id, tls, chip.board));
    }
    Ok((devices, entries))
}

/// Write the fleet manifest in one go, atomically (coffre-fs: temporary
/// file, fsync, rename), and check it by reading it back. One line per device, the
/// format of [`Manifest`] (whose `append` re-reads the whole file on each
/// call, which is quadratic for a fleet).
pub(crate) fn write_manifest(path: &Path, entries: &[Entry]) -> Result<()> {
    let failed = |what, source: Box<dyn std::error::Error + Send + Sync>| Error::Manifest {
        what,
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(|e| failed("writing", e.into()))?);
        text.push('\n');
    }
    coffre_fs::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| failed("writing", e.into()))?;
    let read_back = Manifest::at(path)
        .entries()
        .map_err(|e| failed("reading back", e.into()))?;
    if read_back.len() != entries.len() {
        return Err(Error::ManifestCount {
            path: path.to_path_buf(),
            found: read_back.len(),
            expected: entries.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisions_distinct_chips_and_a_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let plan = ProvisionPlan {
            dir: dir.path().to_path_buf(),
            devices: 3,
            mode: FleetMode::Lab,
        };
        let mut steps = Vec::new();
        let p = provision(&plan, &mut |s| steps.push(s)).unwrap();
        let ids: Vec<&str> = p.devices.iter().map(Device::id).collect();
        assert_eq!(ids, ["fleet-00001", "fleet-00002", "fleet-00003"]);
        assert_eq!(p.subscriber.id(), SUB_ID);
        assert_eq!(p.subscriber.index(), 0);
        assert!(steps.contains(&Progress::Provisioning(3, 3)));
        let entries = Manifest::at(&p.manifest).entries().unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|e| e.mode == "lab" && e.key_slot == 8));
        let mut serials: Vec<&str> = entries.iter().map(|e| e.chip_serial.as_str()).collect();
        serials.sort_unstable();
        serials.dedup();
        assert_eq!(serials.len(), 3, "every chip has its own serial");
        // One PKI: every device (and the subscriber) is in its index, and
        // its certificate is the one on disk.
        let pki = Pki::open(&p.pki_dir).unwrap();
        for e in &entries {
            let indexed: Vec<_> = pki.store().by_id(&e.id).collect();
            assert_eq!(indexed.len(), 1, "{}", e.id);
            assert_eq!(indexed[0].fingerprint_sha256, e.cert_fingerprint);
            assert!(e.cert_path.starts_with(&p.pki_dir));
        }
        assert_eq!(pki.store().by_id(SUB_ID).count(), 1);
        assert!(!dir.path().join("pki-shards").exists());
        // No temporary file is left next to the manifest.
        let stray: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }

    #[test]
    fn a_manifest_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        // The manifest's directory does not exist.
        let path = dir.path().join("missing").join("fleet-manifest.jsonl");
        let e = write_manifest(&path, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Manifest {
                    what: "writing",
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
