//! The identity a Trust&GO chip ships with: read its factory certificates.
//!
//! [`read_chain`] reads the chip — OTP bytes 0–7 (which certificate
//! definition), slots 10–12, the serial number, slot 5, and slot 0's public
//! key (GenKey public mode) — and rebuilds the device and signer
//! certificates with `coffre-atcacert`, exactly as CryptoAuthLib's
//! `tng_atcacert_read_device_cert` / `tng_atcacert_read_signer_cert` do.
//! Nothing is written to the chip.

use coffre_atcacert::{self as atcacert, CertDef, DeviceData, DeviceLoc, Zone};
use coffre_driver::AccessSize;
use coffre_driver::Atecc;
use coffre_proto::zone::Zone as ChipZone;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

use crate::{Error, Result};

/// A chip's factory certificates, rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryChain {
    /// The certificate definition the OTP code selects.
    pub definition: &'static str,
    /// OTP bytes 0–7.
    pub otp_code: [u8; 8],
    /// The chip's 9-byte serial number.
    pub serial_number: [u8; 9],
    /// The device certificate, DER.
    pub device: Vec<u8>,
    /// The signer certificate, DER.
    pub signer: Vec<u8>,
    /// Slot 0's public key (X ‖ Y), read with GenKey.
    pub slot0_public_key: [u8; 64],
    /// The signer's public key from slot 11 (X ‖ Y).
    pub signer_public_key: [u8; 64],
}

fn cert_err(what: String) -> impl FnOnce(atcacert::Error) -> Error {
    move |source| Error::FactoryCerts { what, source }
}

/// Read every location `def` needs from the chip.
fn read_locs<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    def: &CertDef,
    config: &[u8; 128],
) -> Result<DeviceData> {
    let mut data = DeviceData::default();
    for loc in def.device_locs() {
        let bytes = read_loc(chip, &loc, config)?;
        data.insert(loc, bytes);
    }
    Ok(data)
}

fn read_loc<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    loc: &DeviceLoc,
    config: &[u8; 128],
) -> Result<Vec<u8>> {
    let (o, n) = (usize::from(loc.offset), usize::from(loc.count));
    let whole: Vec<u8> = match (loc.zone, loc.is_genkey) {
        (Zone::Data, true) => chip
            .genkey_public(loc.slot)
            .map_err(|e| {
                Error::chip(
                    &format!("reading slot {}'s public key (GenKey)", loc.slot),
                    e,
                )
            })?
            .to_vec(),
        (Zone::Data, false) => {
            let mut buf = [0u8; 416];
            let size = chip
                .read_slot(loc.slot, &mut buf)
                .map_err(|e| Error::chip(&format!("reading slot {}", loc.slot), e))?;
            buf[..size].to_vec()
        }
        (Zone::Config, _) => config.to_vec(),
        (Zone::Otp, _) => read_otp(chip)?.to_vec(),
    };
    whole
        .get(o..o + n)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| Error::State(format!("{loc} lies outside what the chip returned")))
}

fn read_otp<I2C: I2c, D: DelayNs>(chip: &mut Atecc<I2C, D>) -> Result<[u8; 64]> {
    let mut otp = [0u8; 64];
    for (block, chunk) in otp.chunks_exact_mut(32).enumerate() {
        chip.read(ChipZone::Otp, AccessSize::Block, (block as u16) << 3, chunk)
            .map_err(|e| Error::chip("reading the OTP zone", e))?;
    }
    Ok(otp)
}

/// Read and rebuild the chip's factory device and signer certificates.
///
/// The signer certificate's authority key id is computed from Microchip's
/// root key, as CryptoAuthLib does (the emulated root carries the same key
/// identifier); the device certificate's from the signer key in slot 11.
pub fn read_chain<I2C: I2c, D: DelayNs>(chip: &mut Atecc<I2C, D>) -> Result<FactoryChain> {
    let otp = read_otp(chip)?;
    let mut otp_code = [0u8; 8];
    otp_code.copy_from_slice(&otp[..8]);
    let def = atcacert::device_def_for_otp(&otp).ok_or_else(|| {
        Error::State(format!(
            "OTP bytes 0–7 ({}) name no Trust&GO certificate definition CryptoAuthLib knows \
             (KQp2ZkD8, x6tjuZMy, wdNxAjae, Rsuy5YJh): this chip carries no factory certificates \
             (a blank or TrustFLEX part, or an emulated image made before format 2 — recreate it \
             with 'coffre emu new --preset tngtls')",
            printable(&otp_code)
        ))
    })?;
    let config = *chip
        .read_config_zone()
        .map_err(|e| Error::chip("reading the config zone", e))?
        .as_bytes();
    let mut serial_number = [0u8; 9];
    serial_number[..4].copy_from_slice(&config[..4]);
    serial_number[4..].copy_from_slice(&config[8..13]);

    let signer_def = &atcacert::TNGTLS_SIGNER;
    let signer_data = read_locs(chip, signer_def, &config)?;
    let signer_public_key = atcacert::unpad_public_key(
        signer_data
            .get(&signer_def.public_key_loc)
            .map_err(cert_err("slot 11 (signer public key)".into()))?,
    )
    .map_err(cert_err("slot 11 (signer public key)".into()))?;
    let root_key = atcacert::templates::microchip_root_public_key();
    let signer = atcacert::rebuild(signer_def, Some(&root_key), &signer_data).map_err(cert_err(
        "the signer certificate (slots 11 and 12) does not rebuild".into(),
    ))?;

    let device_data = read_locs(chip, def, &config)?;
    let device = atcacert::rebuild(def, Some(&signer_public_key), &device_data).map_err(
        cert_err("the device certificate (slot 10) does not rebuild".into()),
    )?;
    let slot0 = device_data
        .get(&def.public_key_loc)
        .map_err(cert_err("slot 0's public key".into()))?;
    let mut slot0_public_key = [0u8; 64];
    slot0_public_key.copy_from_slice(slot0);
    Ok(FactoryChain {
        definition: def.name,
        otp_code,
        serial_number,
        device,
        signer,
        slot0_public_key,
        signer_public_key,
    })
}

fn printable(b: &[u8]) -> String {
    if b.iter().all(|c| c.is_ascii_graphic()) {
        format!("\"{}\"", String::from_utf8_lossy(b))
    } else {
        coffre_proto::hex::Hex::upper(b).spaced().to_string()
    }
}
