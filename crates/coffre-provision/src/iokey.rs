//! The IO protection key as the device keeps it.
//!
//! A hardened chip (`--configure hardened`) lets slot 8 be read and written
//! only encrypted with the key in its IO protection slot (slot 6). The MCU
//! needs the same key to decrypt; on this project's devices it lives in the
//! MCU's flash, modelled as `<pki>/devices/<id>.iokey` (32 raw bytes, mode
//! 0600), written by `coffre provision --configure hardened` and read by
//! `coffre publish`. It protects the bus, not the MCU: anyone who can read
//! the MCU's flash has it.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::{Error, Result};

/// A 32-byte IO protection key; never printed.
#[derive(Clone)]
pub struct IoKey {
    /// The IO protection slot (ChipOptions bits 15:12).
    pub slot: u8,
    /// The key.
    pub key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for IoKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IoKey {{ slot: {}, key: <redacted> }}", self.slot)
    }
}

/// Where device `id` keeps its IO protection key, under the PKI directory.
pub fn path(pki_dir: &Path, id: &str) -> PathBuf {
    pki_dir.join("devices").join(format!("{id}.iokey"))
}

/// Save `key` for device `id` (atomically, owner-only).
pub fn save(pki_dir: &Path, id: &str, key: &IoKey) -> Result<PathBuf> {
    let p = path(pki_dir, id);
    let mut bytes = Zeroizing::new(Vec::with_capacity(33));
    bytes.push(key.slot);
    bytes.extend_from_slice(&key.key[..]);
    coffre_pki::util::write_atomic(&p, &bytes, 0o600)?;
    Ok(p)
}

/// Load device `id`'s IO protection key; `None` when it has none.
pub fn load(pki_dir: &Path, id: &str) -> Result<Option<IoKey>> {
    let p = path(pki_dir, id);
    let bytes = match std::fs::read(&p) {
        Ok(b) => Zeroizing::new(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::State(format!(
                "cannot read the IO protection key {}: {e}",
                p.display()
            )))
        }
    };
    if bytes.len() != 33 || bytes[0] > 15 {
        return Err(Error::State(format!(
            "{} is not an IO protection key file (1 slot byte and 32 key bytes); provision the chip again with --configure hardened",
            p.display()
        )));
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&bytes[1..]);
    Ok(Some(IoKey {
        slot: bytes[0],
        key,
    }))
}
