//! Stage 1, provision: a fresh PKI, one emulated Trust&GO chip per device
//! provisioned in memory, the subscriber's own chip, and the fleet
//! manifest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffre_agent::identity::{DriverSigner, KeySource};
use coffre_agent::tls::{client_config, TlsOptions};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_pki::{InitOptions, Pki};
use coffre_provision::manifest::{Entry, Manifest};
use coffre_provision::{AssumeYes, Mode, Options};
use rustls::ClientConfig;

use crate::error::{Error, Result};
use crate::options::{device_id, FleetMode, Progress, SUB_ID};

/// Devices provisioned per PKI shard: each shard is a copy of the PKI
/// directory (same CA) with an index of its own, which keeps issuing
/// linear in the fleet size.
const SHARD: usize = 250;

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

/// One provisioned device, ready to connect: its chip, its certificate and
/// its TLS client configuration.
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
}

/// Create the PKI, provision every device on up to 2 threads, then the
/// subscriber, and write the manifest.
pub fn provision(plan: &ProvisionPlan, progress: &mut dyn FnMut(Progress)) -> Result<Provisioned> {
    progress(Progress::Step("PKI: CA and broker certificate".into()));
    let pki_dir = plan.dir.join("pki");
    let mut pki = Pki::init(
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

    progress(Progress::Step(format!(
        "provisioning {} emulated chips ({} mode)",
        plan.devices,
        plan.mode.name()
    )));
    let t0 = Instant::now();
    let (devices, entries) =
        provision_devices(&plan.dir, &ca_pem, plan.devices, plan.mode, progress)?;
    let elapsed = t0.elapsed();
    let manifest = plan.dir.join("fleet-manifest.jsonl");
    write_manifest(&manifest, &entries)?;
    let (subscriber, _) = provision_one(&mut pki, &ca_pem, 0, SUB_ID, FleetMode::Offload)?;
    Ok(Provisioned {
        pki_dir,
        devices,
        subscriber,
        manifest,
        elapsed,
    })
}

type Chip = Atecc<coffre_emu::EmuBus, coffre_emu::clock::EmuDelay>;

/// A fresh Trust&GO chip on a board of its own.
fn new_chip() -> (Board, Chip) {
    let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    (board, chip)
}

/// Provision one chip as `id` against `pki` and build its TLS client
/// configuration.
fn provision_one(
    pki: &mut Pki,
    ca_pem: &[u8],
    index: usize,
    id: &str,
    mode: FleetMode,
) -> Result<(Device, Entry)> {
    let (board, mut chip) = new_chip();
    let mut opts = Options::new(
        id,
        match mode {
            FleetMode::Lab => Mode::Lab,
            FleetMode::Offload => Mode::Offload,
        },
    );
    opts.lock_slot8 = Some(false);
    let out = coffre_provision::provision(&mut chip, pki, &opts, &mut AssumeYes::default())
        .map_err(|source| Error::Provision {
            id: id.to_owned(),
            source,
        })?;
    let key = match mode {
        FleetMode::Lab => KeySource::read_lab(&mut chip, 8).map_err(|source| Error::LabKey {
            id: id.to_owned(),
            source,
        })?,
        FleetMode::Offload => KeySource::chip(DriverSigner::new(chip, 0)),
    };
    let tls = client_config(
        ca_pem,
        out.cert_pem.as_bytes(),
        key,
        &TlsOptions {
            tls13: false,
            resumption: false,
        },
    )
    .map_err(|source| Error::Tls {
        id: id.to_owned(),
        source,
    })?;
    Ok((
        Device {
            index,
            id: id.to_owned(),
            tls,
            _board: board,
        },
        out.entry,
    ))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    };
    std::fs::create_dir_all(to).map_err(io("creating", to))?;
    for e in std::fs::read_dir(from).map_err(io("reading", from))? {
        let e = e.map_err(io("reading", from))?;
        let dst = to.join(e.file_name());
        if e.file_type().map_err(io("reading", &e.path()))?.is_dir() {
            copy_dir(&e.path(), &dst)?;
        } else {
            std::fs::copy(e.path(), &dst).map_err(io("copying", &e.path()))?;
        }
    }
    Ok(())
}

/// Provision devices `1..=n` over 2 threads, in PKI shards; the devices
/// and their manifest entries, by index.
fn provision_devices(
    dir: &Path,
    ca_pem: &[u8],
    n: usize,
    mode: FleetMode,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<Device>, Vec<Entry>)> {
    let pki_dir = dir.join("pki");
    let shards = n.div_ceil(SHARD);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(Device, Entry)>> = Mutex::new(Vec::with_capacity(n));
    let workers = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .clamp(1, 2);
    let worker = || -> Result<()> {
        loop {
            let s = next.fetch_add(1, Ordering::Relaxed);
            if s >= shards {
                return Ok(());
            }
            let shard_dir = dir.join("pki-shards").join(format!("{s:03}"));
            copy_dir(&pki_dir, &shard_dir)?;
            let mut pki = Pki::open(&shard_dir).map_err(|source| Error::Pki {
                what: "opening PKI shard",
                path: shard_dir.clone(),
                source,
            })?;
            let mut local = Vec::new();
            for i in (s * SHARD + 1)..=((s + 1) * SHARD).min(n) {
                local.push(provision_one(&mut pki, ca_pem, i, &device_id(i), mode)?);
                done.fetch_add(1, Ordering::Relaxed);
            }
            results
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(local);
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
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(d, _)| d.index);
    Ok(results.into_iter().unzip())
}

/// Write the fleet manifest in one go, atomically (coffre-fs: temporary
/// file, fsync, rename), and check it by reading it back. One line per device, the
/// format of [`Manifest`] (whose `append` re-reads the whole file on each
/// call, which is quadratic for a fleet).
fn write_manifest(path: &Path, entries: &[Entry]) -> Result<()> {
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
