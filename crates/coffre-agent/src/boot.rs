//! The device's boot, in the lab's five steps — run by the device core
//! ([`coffre_device::boot`]); here its outcome becomes a [`KeySource`] for
//! rustls and its errors the agent's.

use coffre_device::boot::{BootError, BootKey};
pub use coffre_device::boot::{BootOptions, BootReport, IoKey, KeyMode};
use coffre_driver::Atecc;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::identity::{ChipError, DriverSigner, KeySource};
use crate::{Error, Result};

impl From<BootError> for Error {
    fn from(e: BootError) -> Self {
        match e {
            BootError::ChipGone { what, detail } => Error::ChipGone { what, detail },
            BootError::Unlocked { config, data } => Error::Unlocked { config, data },
            BootError::Chip { what, detail } => Error::Chip(ChipError::failed(what, detail)),
            other => Error::Chip(ChipError::failed("secure element", other.to_string())),
        }
    }
}

/// Boot: the five steps, each reported to `log(step, message)`. Consumes
/// the driver (offload mode keeps it inside the signer; lab mode parses
/// slot 8 into a key and zeroizes the slot's bytes).
pub fn boot<I2C, D, E>(
    chip: Atecc<I2C, D>,
    opts: &BootOptions,
    log: &mut dyn FnMut(u8, &str),
) -> Result<(KeySource, BootReport)>
where
    I2C: I2c<Error = E> + Send + 'static,
    D: DelayNs + Send + 'static,
    E: embedded_hal::i2c::Error + Send + 'static,
{
    let (key, report) = coffre_device::boot::boot(chip, opts, log)?;
    let key = match key {
        BootKey::Lab { slot8 } => KeySource::lab_from_slot8(&slot8[..])?,
        BootKey::Offload { chip, slot } => KeySource::chip(DriverSigner::new(chip, slot)),
    };
    Ok((key, report))
}

/// Lab mode on a hardened chip: device `id`'s IO protection key from the
/// device's flash (modelled as `<pki>/devices/<id>.iokey`, see
/// [`coffre_device::iokey`]), with a fresh host nonce from the OS's RNG;
/// `None` when the device has no such key (a chip that is not hardened
/// reads slot 8 in clear).
pub fn load_io_key(pki_dir: &std::path::Path, id: &str) -> Result<Option<IoKey>> {
    let Some(stored) = coffre_device::iokey::load(pki_dir, id)? else {
        return Ok(None);
    };
    let mut host_nonce = [0u8; 20];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut host_nonce);
    Ok(Some(stored.for_boot(host_nonce)))
}
