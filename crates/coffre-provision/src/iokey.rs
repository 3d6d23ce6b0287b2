//! The IO protection key as the device keeps it: the format and its place
//! are the device's ([`coffre_device::iokey`]); provisioning writes it.

use std::path::{Path, PathBuf};

pub use coffre_device::iokey::{path, StoredIoKey as IoKey};

use crate::{Error, Result};

/// Save `key` for device `id` (atomically, owner-only).
pub fn save(pki_dir: &Path, id: &str, key: &IoKey) -> Result<PathBuf> {
    let p = path(pki_dir, id);
    coffre_pki::util::write_atomic(&p, &key.encode()[..], 0o600)?;
    Ok(p)
}

/// Load device `id`'s IO protection key; `None` when it has none.
pub fn load(pki_dir: &Path, id: &str) -> Result<Option<IoKey>> {
    coffre_device::iokey::load(pki_dir, id).map_err(|e| {
        Error::State(match std::error::Error::source(&e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        })
    })
}
