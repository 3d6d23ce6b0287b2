//! One fresh emulated Trust&GO chip made ready for its certificate: the
//! key in place and its public key known, the way `coffre provision` does
//! it (lab: an off-chip key written to slot 8 and read back; offload: the
//! chip's slot-0 key, proven by a CSR the chip signs). Issuing is left to
//! the caller, so a whole fleet goes through the PKI in one batch.

use coffre_agent::identity::{DriverSigner, KeySource};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use p256::PublicKey;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::options::FleetMode;

/// Slot 8: the lab's key.
pub(crate) const LAB_SLOT: u8 = 8;
/// Slot 0: the Trust&GO factory key, which signs in offload mode.
pub(crate) const OFFLOAD_SLOT: u8 = 0;

/// A chip with its key in place, waiting for its certificate.
pub(crate) struct ReadyChip {
    /// Keeps the emulated chip alive (an offload signer holds its bus).
    pub board: Board,
    /// What signs the TLS handshakes.
    pub key: KeySource,
    /// The key's public half, for the certificate.
    pub public_key: PublicKey,
    /// The same, X ‖ Y.
    pub public_xy: [u8; 64],
    /// The chip's serial number.
    pub serial: [u8; 9],
    /// The slot holding the key.
    pub slot: u8,
}

fn chip_error<'a, E: std::fmt::Debug>(
    id: &'a str,
    what: &'static str,
) -> impl FnOnce(coffre_driver::Error<E>) -> Error + 'a {
    move |e| Error::Chip {
        id: id.to_owned(),
        what,
        source: e.to_string().into(),
    }
}

/// A fresh Trust&GO chip on a board of its own, made ready as `id`.
pub(crate) fn ready_chip(id: &str, mode: FleetMode) -> Result<ReadyChip> {
    let board = Board::new(Preset::Tngtls.build(), Timing::Instant);
    let mut chip = Atecc::new(board.bus.clone(), board.delay(), 0x35);
    let serial = chip
        .read_config_zone()
        .map_err(chip_error(id, "reading the config zone"))?
        .serial_number();
    let pki = |source| Error::Key {
        id: id.to_owned(),
        source,
    };
    let (key, public_key, slot) = match mode {
        FleetMode::Lab => {
            let (der, public_key) = coffre_pki::lab::generate_lab_key();
            let blob = coffre_pki::lab::encode_slot8(&der).map_err(pki)?;
            chip.write_slot(LAB_SLOT, &blob[..])
                .map_err(chip_error(id, "writing slot 8"))?;
            let mut back = Zeroizing::new([0u8; 416]);
            chip.read_slot(LAB_SLOT, &mut back[..])
                .map_err(chip_error(id, "reading slot 8 back"))?;
            if back[..] != blob[..] {
                return Err(Error::ReadBack(id.to_owned()));
            }
            let key = KeySource::lab_from_slot8(&back[..]).map_err(|source| Error::LabKey {
                id: id.to_owned(),
                source,
            })?;
            (key, public_key, LAB_SLOT)
        }
        FleetMode::Offload => {
            let xy = chip
                .genkey_public(OFFLOAD_SLOT)
                .map_err(chip_error(id, "reading the public key of slot 0"))?;
            let mut signing_error = None;
            let csr = coffre_pki::csr::build_csr(id, &xy, |digest| {
                chip.sign_digest(OFFLOAD_SLOT, digest).map_err(|e| {
                    let msg = e.to_string();
                    signing_error = Some(msg.clone());
                    msg
                })
            });
            let csr = match (csr, signing_error) {
                (Ok(c), _) => c,
                (Err(_), Some(e)) => {
                    return Err(Error::Chip {
                        id: id.to_owned(),
                        what: "signing the CSR with slot 0",
                        source: e.into(),
                    })
                }
                (Err(e), None) => return Err(pki(e)),
            };
            // Proof of possession: the chip's signature over its own
            // public key checks out.
            let (_, public_key) = coffre_pki::csr::verify_csr(&csr).map_err(pki)?;
            (
                KeySource::chip(DriverSigner::new(chip, OFFLOAD_SLOT)),
                public_key,
                OFFLOAD_SLOT,
            )
        }
    };
    Ok(ReadyChip {
        board,
        key,
        public_xy: coffre_pki::util::public_key_to_xy(&public_key),
        public_key,
        serial,
        slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chip_has_its_own_serial_and_key() {
        for mode in [FleetMode::Lab, FleetMode::Offload] {
            let a = ready_chip("fleet-00001", mode).unwrap();
            let b = ready_chip("fleet-00002", mode).unwrap();
            assert_ne!(a.serial, b.serial, "{mode:?}");
            assert_ne!(a.public_xy, b.public_xy, "{mode:?}");
            assert_eq!(a.serial[..2], [0x01, 0x23]);
            assert_eq!(a.key.mode(), mode.name());
            // The key that will sign is the one to be certified.
            let spki = a.key.public_key_spki().unwrap();
            use p256::pkcs8::EncodePublicKey;
            assert_eq!(spki, a.public_key.to_public_key_der().unwrap().as_bytes());
        }
    }
}
