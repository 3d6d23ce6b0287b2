//! Chip image files: the non-volatile state of one emulated chip.
//!
//! Format (version 2), all integers little-endian:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 16 | magic `COFFRE-ECC608\0\0\0` |
//! | 16 | 2 | format version (2) |
//! | 18 | 2 | reserved, 0 |
//! | 20 | 4 | payload length (1408) |
//! | 24 | n | payload: config (128), OTP (64), data zone (1208), counter 0, counter 1 (u32 each, mirrors of config bytes 52–67) |
//! | 24+n | 32 | SHA-256 of every byte before it |
//!
//! Version 2 has version 1's layout; what changed is what a `tngtls` image
//! holds: the factory certificate chain (OTP code `KQp2ZkD8`, slots 10–12,
//! see [`crate::factory`]). A version-1 image is migrated when loaded: a
//! version-1 `tngtls` image (OTP starting with its old marker `cOFFREem`)
//! gets its factory chain, dated [`crate::factory::MIGRATED_ISSUE_DATE`], and
//! is written back as version 2 at the next save; any other version-1 image
//! is read as is. Other versions are refused with the command that recreates
//! the image.
//!
//! Every save writes a temporary file in the same directory, fsyncs it,
//! renames it over the image and fsyncs the directory: a crash leaves the
//! old image or the new one, never half of each; a save that fails (full
//! disk) leaves the old image and no temporary file. A process that opens
//! an image to change it ([`crate::board::Board::open`]) holds [`lock`] until it
//! is done: a second writer is refused with the holder's pid and command,
//! instead of both saving stale copies over each other. Images are test fixtures:
//! the keys inside are not protected and must never be real keys.

use std::path::{Path, PathBuf};

use coffre_proto::config::ConfigZone;
use coffre_proto::zone::{CONFIG_SIZE, DATA_SIZE, OTP_SIZE};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::chip::NvState;

/// File magic.
pub const MAGIC: &[u8; 16] = b"COFFRE-ECC608\0\0\0";
/// Current format version.
pub const VERSION: u16 = 2;
/// The older version this build migrates on load.
pub const MIGRATED_VERSION: u16 = 1;
/// OTP bytes 0–7 of a version-1 `tngtls` image.
const V1_TNGTLS_MARKER: &[u8; 8] = b"cOFFREem";
const HEADER: usize = 24;
const PAYLOAD: usize = CONFIG_SIZE + OTP_SIZE + DATA_SIZE + 8;
/// Total file size of an image (versions 1 and 2).
pub const FILE_SIZE: usize = HEADER + PAYLOAD + 32;

/// Why an image could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The file could not be opened, read or written.
    #[error("cannot {op} chip image {path}")]
    Io {
        /// What was being done: "read" or "save".
        op: &'static str,
        /// File concerned.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Another process holds the image open for writing.
    #[error("{path} is in use by another process ({holder}); stop it first, or work on a copy of the image")]
    Busy {
        /// File concerned.
        path: PathBuf,
        /// Who holds it: pid and command line.
        holder: String,
    },
    /// The file does not start with the image magic.
    #[error("{path}: not a coffre chip image (bad magic); create one with 'coffre emu new --preset tngtls --out {path}'")]
    NotAnImage {
        /// File concerned.
        path: PathBuf,
    },
    /// The format version is not one this build reads.
    #[error("{path}: image format version {version} is not supported (this build reads version {VERSION} and migrates version {MIGRATED_VERSION}); recreate it with 'coffre emu new --preset tngtls --out {path}' (or --preset blank)")]
    UnsupportedVersion {
        /// File concerned.
        path: PathBuf,
        /// Version found.
        version: u16,
    },
    /// The file is shorter or longer than its header says.
    #[error("{path}: image is truncated or padded ({got} bytes, expected {expected}); it was damaged — restore a copy or recreate it with 'coffre emu new'")]
    Size {
        /// File concerned.
        path: PathBuf,
        /// Bytes expected.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// The checksum does not match the contents.
    #[error("{path}: image checksum mismatch: the file is corrupted; restore a copy or recreate it with 'coffre emu new'")]
    Checksum {
        /// File concerned.
        path: PathBuf,
    },
    /// A version-1 `tngtls` image could not be given its factory
    /// certificates (its slot 0 key or serial number is unusable).
    #[error("{path}: this version-1 Trust&GO image cannot be migrated to version {VERSION} (its factory certificates cannot be made); recreate it with 'coffre emu new --preset tngtls --out {path}'")]
    Migration {
        /// File concerned.
        path: PathBuf,
        /// Why the certificates could not be made.
        source: coffre_atcacert::Error,
    },
    /// The image exists and overwriting was not asked for.
    #[error("{path} already exists; choose another --out or pass --force to replace it")]
    Exists {
        /// File concerned.
        path: PathBuf,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Serialise a state to the image bytes.
pub fn encode(nv: &NvState) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(FILE_SIZE));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(PAYLOAD as u32).to_le_bytes());
    out.extend_from_slice(nv.config.as_bytes());
    out.extend_from_slice(&nv.otp);
    out.extend_from_slice(&nv.data);
    // The counters live in config bytes 52–67; these two words mirror
    // their values (older images kept the counters only here).
    for n in 0..2 {
        out.extend_from_slice(&nv.config.counter(n).to_le_bytes());
    }
    let sum = Sha256::digest(&out[..]);
    out.extend_from_slice(&sum);
    out
}

/// Parse image bytes read from `path` (used in messages).
pub fn decode(path: &Path, bytes: &[u8]) -> Result<NvState, ImageError> {
    let p = || path.to_path_buf();
    if bytes.len() < HEADER || &bytes[..16] != MAGIC {
        if bytes.len() >= 4 && &bytes[..4] == b"COFF" && bytes.len() < HEADER {
            return Err(ImageError::Size {
                path: p(),
                expected: FILE_SIZE,
                got: bytes.len(),
            });
        }
        return Err(ImageError::NotAnImage { path: p() });
    }
    let version = u16::from_le_bytes([bytes[16], bytes[17]]);
    if version != VERSION && version != MIGRATED_VERSION {
        return Err(ImageError::UnsupportedVersion { path: p(), version });
    }
    let len = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]) as usize;
    if len != PAYLOAD || bytes.len() != FILE_SIZE {
        return Err(ImageError::Size {
            path: p(),
            expected: FILE_SIZE,
            got: bytes.len(),
        });
    }
    let (body, sum) = bytes.split_at(HEADER + PAYLOAD);
    if Sha256::digest(body)[..] != sum[..] {
        return Err(ImageError::Checksum { path: p() });
    }
    let pl = &body[HEADER..];
    let mut config = [0u8; CONFIG_SIZE];
    config.copy_from_slice(&pl[..CONFIG_SIZE]);
    let mut otp = [0u8; OTP_SIZE];
    otp.copy_from_slice(&pl[CONFIG_SIZE..CONFIG_SIZE + OTP_SIZE]);
    let d0 = CONFIG_SIZE + OTP_SIZE;
    let data = Zeroizing::new(pl[d0..d0 + DATA_SIZE].to_vec());
    let c0 = d0 + DATA_SIZE;
    let counter = |i: usize| {
        let b = &pl[c0 + 4 * i..c0 + 4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    };
    let mut config = ConfigZone(config);
    // An image written before the counters moved into the config zone
    // holds their values only in these words: carry them over.
    for n in 0..2u8 {
        if config.counter(n) != counter(n as usize) {
            config.set_counter(n, counter(n as usize));
        }
    }
    let mut nv = NvState { config, otp, data };
    if version == MIGRATED_VERSION && &nv.otp[..8] == V1_TNGTLS_MARKER {
        crate::factory::provision(&mut nv, crate::factory::MIGRATED_ISSUE_DATE)
            .map_err(|source| ImageError::Migration { path: p(), source })?;
    }
    Ok(nv)
}

/// Load an image file (anything much larger than an image is refused
/// without being read).
pub fn load(path: &Path) -> Result<NvState, ImageError> {
    let bytes = Zeroizing::new(
        coffre_fs::read_limited(path, FILE_SIZE as u64 + 4096).map_err(io("read", path))?,
    );
    decode(path, &bytes)
}

/// Save atomically: temp file, fsync, rename, fsync the directory. On
/// failure (a full disk…) the image is unchanged and no temporary file
/// is left behind.
pub fn save(path: &Path, nv: &NvState) -> Result<(), ImageError> {
    let bytes = encode(nv);
    coffre_fs::write_atomic(path, &bytes, 0o600).map_err(io("save", path))
}

/// The lock file that marks `path` as held by a writer: `.NAME.lock` in
/// the same directory.
pub fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "chip.img".into());
    path.with_file_name(format!(".{name}.lock"))
}

/// Hold `path` for writing: an exclusive lock another process cannot take
/// until this one drops every handle on it (or exits). Opening the same
/// image again in this process shares the lock.
pub fn lock(path: &Path) -> Result<std::sync::Arc<coffre_fs::LockFile>, ImageError> {
    coffre_fs::LockFile::for_process(&lock_path(path)).map_err(|e| match e {
        coffre_fs::LockError::Held { holder, .. } => ImageError::Busy {
            path: path.to_path_buf(),
            holder,
        },
        coffre_fs::LockError::Io { source, .. } => io("lock", path)(source),
        e => io("lock", path)(std::io::Error::other(e.to_string())),
    })
}

/// Create a new image; refuses to replace an existing file unless `force`.
pub fn create(path: &Path, nv: &NvState, force: bool) -> Result<(), ImageError> {
    if !force && path.exists() {
        return Err(ImageError::Exists {
            path: path.to_path_buf(),
        });
    }
    // Replacing an image a running process holds would be undone by its
    // next save: refuse, naming it.
    let _held = lock(path)?;
    save(path, nv)
}

/// Create many new images at once (a batch of chips): as [`create`] for
/// each, every one refused if it exists (unless `force`) or is held, before
/// anything is written; then all written with one file-system sync
/// ([`coffre_fs::write_atomic_batch`]) instead of one per image. The
/// image bytes (keys) are zeroized once written.
pub fn create_batch(images: &[(PathBuf, NvState)], force: bool) -> Result<(), ImageError> {
    let mut held = Vec::with_capacity(images.len());
    for (path, _) in images {
        if !force && path.exists() {
            return Err(ImageError::Exists { path: path.clone() });
        }
        held.push(lock(path)?);
    }
    let mut files: Vec<(PathBuf, Vec<u8>)> = images
        .iter()
        .map(|(path, nv)| (path.clone(), encode(nv).to_vec()))
        .collect();
    let dir = images
        .first()
        .map(|(p, _)| p.parent().unwrap_or(Path::new(".")).to_path_buf())
        .unwrap_or_default();
    let written = coffre_fs::write_atomic_batch(&files, 0o600).map_err(io("save", &dir));
    for (_, bytes) in &mut files {
        bytes.zeroize();
    }
    drop(held);
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::Preset;

    #[test]
    fn a_batch_of_images_loads_back_and_existing_ones_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let images: Vec<(PathBuf, NvState)> = (0..3)
            .map(|i| (d.path().join(format!("c{i}.img")), Preset::Tngtls.build()))
            .collect();
        create_batch(&images, false).unwrap();
        for (path, nv) in &images {
            assert_eq!(
                load(path).unwrap().config.serial_number(),
                nv.config.serial_number()
            );
        }
        // Existing: refused before anything is written, unless forced.
        let again = vec![
            (d.path().join("new.img"), Preset::Tngtls.build()),
            images[1].clone(),
        ];
        assert!(matches!(
            create_batch(&again, false),
            Err(ImageError::Exists { .. })
        ));
        assert!(!d.path().join("new.img").exists());
        create_batch(&again, true).unwrap();
        assert!(d.path().join("new.img").exists());
    }

    /// The bytes of `nv` as an image of `version` (valid checksum).
    fn with_version(nv: &NvState, version: u16) -> Vec<u8> {
        let mut bytes = encode(nv).to_vec();
        bytes[16..18].copy_from_slice(&version.to_le_bytes());
        let n = bytes.len() - 32;
        let sum = Sha256::digest(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum);
        bytes
    }

    #[test]
    fn a_version_1_tngtls_image_is_migrated_with_its_factory_chain() {
        // A version-1 tngtls image: no certificates, the old OTP marker.
        let mut old = Preset::Tngtls.build();
        old.otp = [0; 64];
        old.otp[..8].copy_from_slice(V1_TNGTLS_MARKER);
        for slot in [10u8, 11, 12] {
            old.slot_mut(slot).fill(0);
        }
        let path = Path::new("old.img");
        let nv = decode(path, &with_version(&old, 1)).unwrap();
        assert_eq!(&nv.otp[..8], crate::factory::OTP_CODE);
        assert_eq!(nv.slot(0), old.slot(0), "keys are kept");
        let def = &coffre_atcacert::TNGTLS_DEVICE_3;
        let data = crate::factory::device_data(&nv, def).unwrap();
        let signer = crate::factory::signer_public_key();
        let cert = coffre_atcacert::rebuild(def, Some(&signer), &data).unwrap();
        coffre_atcacert::verify_signature(&cert, &signer).unwrap();
        // Deterministic: loading the same old image twice gives the same chip.
        let again = decode(path, &with_version(&old, 1)).unwrap();
        assert_eq!(again.slot(10), nv.slot(10));
        // Saved back as version 2.
        assert_eq!(encode(&nv)[16..18], VERSION.to_le_bytes());
        // A version-1 blank image is read as is.
        let blank = Preset::Blank.build();
        let nv = decode(path, &with_version(&blank, 1)).unwrap();
        assert_eq!(nv.otp, blank.otp);
        assert_eq!(nv.data[..], blank.data[..]);
    }

    #[test]
    fn unknown_versions_are_refused_with_the_command_that_recreates_the_image() {
        let nv = Preset::Tngtls.build();
        for version in [0u16, 3, 0xFFFF] {
            let e = decode(Path::new("x.img"), &with_version(&nv, version)).unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, ImageError::UnsupportedVersion { .. }), "{msg}");
            assert!(
                msg.contains("coffre emu new --preset tngtls --out x.img"),
                "{msg}"
            );
        }
    }
}
