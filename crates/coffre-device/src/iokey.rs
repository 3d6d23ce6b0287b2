//! The IO protection key as the device keeps it (feature `std`).
//!
//! A hardened chip (`coffre provision --configure hardened`) lets slot 8 be
//! read and written only encrypted with the key in its IO protection slot.
//! The MCU needs the same key to decrypt; on this project's devices it
//! lives in the MCU's flash, modelled on Linux as `<pki>/devices/<id>.iokey`:
//! 33 bytes, the slot then the key, mode 0600. `coffre provision` writes
//! it; `coffre publish` and `coffre-device` read it with [`load`]. It
//! protects the bus, not the MCU: anyone who can read the MCU's flash has
//! it.

use std::fmt;
use std::format;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::boot::IoKey;

/// The stored form's length: the slot byte, then the 32-byte key.
pub const STORED_LEN: usize = 33;

/// A 32-byte IO protection key and its slot, as stored; never printed.
#[derive(Clone)]
pub struct StoredIoKey {
    /// The IO protection slot (ChipOptions bits 15:12).
    pub slot: u8,
    /// The key.
    pub key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for StoredIoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredIoKey {{ slot: {}, key: <redacted> }}", self.slot)
    }
}

impl StoredIoKey {
    /// The stored form: the slot, then the key.
    pub fn encode(&self) -> Zeroizing<[u8; STORED_LEN]> {
        let mut b = Zeroizing::new([0u8; STORED_LEN]);
        b[0] = self.slot;
        b[1..].copy_from_slice(&self.key[..]);
        b
    }

    /// Parse the stored form; `None` unless it is [`STORED_LEN`] bytes
    /// with a slot number 0–15.
    pub fn decode(bytes: &[u8]) -> Option<StoredIoKey> {
        if bytes.len() != STORED_LEN || bytes[0] > 15 {
            return None;
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&bytes[1..]);
        Some(StoredIoKey {
            slot: bytes[0],
            key,
        })
    }

    /// The key for the boot, with fresh random bytes from the MCU's RNG for
    /// the Nonce of the encrypted Reads.
    pub fn for_boot(&self, host_nonce: [u8; 20]) -> IoKey {
        IoKey {
            slot: self.slot,
            key: self.key.clone(),
            host_nonce,
        }
    }
}

/// Where device `id` keeps its IO protection key, under the PKI directory.
pub fn path(pki_dir: &Path, id: &str) -> PathBuf {
    pki_dir.join("devices").join(format!("{id}.iokey"))
}

/// The key file of a device could not be used.
#[derive(Debug)]
pub enum IoKeyFileError {
    /// It exists but cannot be read.
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a key file.
    Format {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for IoKeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoKeyFileError::Read { path, .. } => write!(
                f,
                "cannot read the IO protection key {}",
                path.display()
            ),
            IoKeyFileError::Format { path } => write!(
                f,
                "{} is not an IO protection key file (1 slot byte and 32 key bytes); provision the chip again with --configure hardened",
                path.display()
            ),
        }
    }
}

impl std::error::Error for IoKeyFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IoKeyFileError::Read { source, .. } => Some(source),
            IoKeyFileError::Format { .. } => None,
        }
    }
}

/// Load device `id`'s IO protection key; `None` when it has none (a chip
/// that is not hardened).
pub fn load(pki_dir: &Path, id: &str) -> Result<Option<StoredIoKey>, IoKeyFileError> {
    let p = path(pki_dir, id);
    let bytes = match std::fs::read(&p) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(IoKeyFileError::Read { path: p, source }),
    };
    StoredIoKey::decode(&bytes)
        .map(Some)
        .ok_or(IoKeyFileError::Format { path: p })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn stored_form_round_trips_and_bad_files_are_refused() {
        let k = StoredIoKey {
            slot: 6,
            key: Zeroizing::new([0x5A; 32]),
        };
        let b = k.encode();
        let back = StoredIoKey::decode(&b[..]).unwrap();
        assert_eq!((back.slot, *back.key), (6, [0x5A; 32]));
        assert!(!format!("{back:?}").contains("5a"));
        assert!(StoredIoKey::decode(&b[..32]).is_none());
        let mut bad = *b;
        bad[0] = 16;
        assert!(StoredIoKey::decode(&bad).is_none());

        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert!(load(dir, "m5go").unwrap().is_none());
        std::fs::create_dir_all(dir.join("devices")).unwrap();
        std::fs::write(path(dir, "m5go"), &b[..]).unwrap();
        assert_eq!(load(dir, "m5go").unwrap().unwrap().slot, 6);
        std::fs::write(path(dir, "m5go"), b"short").unwrap();
        let e = load(dir, "m5go").unwrap_err();
        assert!(e.to_string().contains("--configure hardened"), "{e}");
    }
}
