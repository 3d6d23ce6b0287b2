//! The emulated Microchip factory: a root CA, a signer, and the device
//! certificate every `tngtls` image gets.
//!
//! A Trust&GO part leaves Microchip's factory with a certificate chain
//! device → signer → "Crypto Authentication Root CA 002", stored in the
//! chip in CryptoAuthLib's compressed form: slot 10 the device certificate,
//! slot 11 the signer's public key, slot 12 the signer certificate, and OTP
//! bytes 0–7 the code of the certificate definition (`KQp2ZkD8`, template 3).
//! This module plays that factory for emulated chips, with the same
//! templates, so CryptoAuthLib's `tng_atcacert_read_device_cert` and
//! [`coffre_atcacert::rebuild`] rebuild certificates whose signatures verify.
//!
//! **The root and signer keys here are public test fixtures, not secrets**:
//! they are derived from fixed strings in this file, so anyone can sign a
//! certificate that chains to the emulated root. Trust the emulated root
//! ([`root_cert_der`], exported by `coffre emu factory-root`) only for
//! emulated chips, never in production.
//!
//! The signer template names its issuer "Crypto Authentication Root CA 002"
//! and carries the real root's key identifier in its authority key id, and
//! CryptoAuthLib fills both from Microchip's root. The emulated root is
//! therefore Microchip's root certificate with another key (and serial
//! number), re-signed: same names, same key identifiers. Never put both in
//! one trust store: a verifier picking an issuer by name could take the
//! wrong one.

use std::sync::OnceLock;

use coffre_atcacert::{self as atcacert, Date, DeviceData, DeviceLoc, Zone};
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::{Signature, SigningKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::chip::NvState;

/// The emulated signer's id: the `XXXX` of "Crypto Authentication Signer XXXX".
pub const SIGNER_ID: [u8; 2] = [0xC0, 0xFE];
/// notBefore of the emulated signer certificate.
pub const SIGNER_ISSUE_DATE: Date = Date::ymdh(2024, 1, 1, 0);
/// notBefore given to device certificates when an image of format version 1
/// (which had none) is migrated: fixed, so every load of the same old image
/// yields the same certificate.
pub const MIGRATED_ISSUE_DATE: Date = Date::ymdh(2026, 1, 1, 0);
/// The OTP code of the device certificate definition the emulator uses.
pub const OTP_CODE: &[u8; 8] = b"KQp2ZkD8";
/// The serial number of the emulated root (Microchip's is replaced so the two
/// certificates never share issuer and serial).
const ROOT_SERIAL: &[u8; 16] = b"coffre emu root ";
const ROOT_SEED: &[u8] = b"coffre emulated factory root CA: a public test fixture, not a secret";
const SIGNER_SEED: &[u8] = b"coffre emulated factory signer: a public test fixture, not a secret";
const MANIFEST_SEED: &[u8] =
    b"coffre emulated manifest signer: a public test fixture, not a secret";

/// The emulated manifest signer's key (signs the manifests `coffre emu new
/// --count N --manifest FILE` writes). A public test fixture, not a secret.
pub fn manifest_signer_key() -> SigningKey {
    fixture_key(MANIFEST_SEED)
}

/// The public keys of slots 0–4 (the factory's private-key slots), as a
/// Trust&GO manifest lists them.
pub fn slot_public_keys(nv: &NvState) -> Result<Vec<[u8; 64]>, atcacert::Error> {
    (0..=4u8)
        .map(|slot| {
            let loc = DeviceLoc {
                zone: Zone::Data,
                slot,
                is_genkey: true,
                offset: 0,
                count: 64,
            };
            let v = read_loc(nv, &loc)?;
            let mut k = [0u8; 64];
            k.copy_from_slice(&v);
            Ok(k)
        })
        .collect()
}

fn fixture_key(seed: &[u8]) -> SigningKey {
    let scalar = Zeroizing::new(Sha256::digest(seed));
    // A SHA-256 output is a valid P-256 scalar with overwhelming
    // probability; the unit test below checks both seeds.
    SigningKey::from_slice(&scalar).expect("fixture seed hashes to a valid P-256 scalar")
}

fn signer(key: &SigningKey) -> impl FnOnce(&[u8; 32]) -> Result<[u8; 64], atcacert::Error> + '_ {
    move |digest| {
        let sig: Signature = key
            .sign_prehash(digest)
            .map_err(|_| atcacert::Error::Signing)?;
        Ok(sig.to_bytes().into())
    }
}

struct Fixtures {
    root_key: SigningKey,
    signer_key: SigningKey,
    root_der: Vec<u8>,
    signer: atcacert::Issued,
}

fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let root_key = fixture_key(ROOT_SEED);
        let signer_key = fixture_key(SIGNER_SEED);
        let mut template = atcacert::templates::MICROCHIP_ROOT_CA_002.to_vec();
        // Serial number: INTEGER of 16 bytes at offset 15 (02 10 …).
        template[15..31].copy_from_slice(ROOT_SERIAL);
        let root_pub = atcacert::raw_public_key(root_key.verifying_key());
        let root_der = atcacert::replace_key_and_resign(&template, &root_pub, signer(&root_key))
            .expect("the root template re-signs");
        let signer_pub = atcacert::raw_public_key(signer_key.verifying_key());
        let mut data = DeviceData::default();
        data.insert(
            atcacert::TNGTLS_SIGNER.public_key_loc,
            atcacert::pad_public_key(&signer_pub).to_vec(),
        );
        // The authority key id comes from Microchip's root key, as
        // CryptoAuthLib computes it when it rebuilds the signer certificate;
        // it equals the emulated root's subject key id (kept from
        // Microchip's certificate).
        let signer_cert = atcacert::issue(
            &atcacert::TNGTLS_SIGNER,
            &atcacert::templates::microchip_root_public_key(),
            SIGNER_ISSUE_DATE,
            SIGNER_ID,
            &data,
            signer(&root_key),
        )
        .expect("the signer template fills");
        Fixtures {
            root_key,
            signer_key,
            root_der,
            signer: signer_cert,
        }
    })
}

/// The emulated root's certificate (DER): self-signed, Microchip's layout.
pub fn root_cert_der() -> &'static [u8] {
    &fixtures().root_der
}

/// The emulated root's key, to issue other fixtures from it (the emulated
/// manifest signer's certificate). A public test fixture, not a secret:
/// anything it signs is trusted by whoever trusts the emulated root, which
/// is why that root is for emulated chips only.
pub fn root_key() -> SigningKey {
    fixtures().root_key.clone()
}

/// The emulated root's public key (X ‖ Y).
pub fn root_public_key() -> [u8; 64] {
    atcacert::raw_public_key(fixtures().root_key.verifying_key())
}

/// The emulated signer's certificate (DER), as the chip's slots 11 and 12
/// rebuild it.
pub fn signer_cert_der() -> &'static [u8] {
    &fixtures().signer.der
}

/// The emulated signer's public key (X ‖ Y).
pub fn signer_public_key() -> [u8; 64] {
    atcacert::raw_public_key(fixtures().signer_key.verifying_key())
}

/// The chip data a certificate definition reads, taken straight from a
/// chip's non-volatile state (GenKey locations: the public key of the
/// slot's private key).
pub fn device_data(nv: &NvState, def: &atcacert::CertDef) -> Result<DeviceData, atcacert::Error> {
    let mut data = DeviceData::default();
    for loc in def.device_locs() {
        data.insert(loc, read_loc(nv, &loc)?);
    }
    Ok(data)
}

fn read_loc(nv: &NvState, loc: &DeviceLoc) -> Result<Vec<u8>, atcacert::Error> {
    let (o, n) = (usize::from(loc.offset), usize::from(loc.count));
    let bytes: &[u8] = match (loc.zone, loc.is_genkey) {
        (Zone::Data, true) => {
            let key = Zeroizing::new(
                nv.slot(loc.slot)
                    .get(4..36)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default(),
            );
            let sk = SigningKey::from_slice(&key).map_err(|_| atcacert::Error::InvalidPublicKey)?;
            let raw = atcacert::raw_public_key(sk.verifying_key());
            return raw
                .get(o..o + n)
                .map(<[u8]>::to_vec)
                .ok_or(atcacert::Error::ShortDeviceData(*loc));
        }
        (Zone::Data, false) => nv.slot(loc.slot),
        (Zone::Config, _) => nv.config.as_bytes(),
        (Zone::Otp, _) => &nv.otp,
    };
    bytes
        .get(o..o + n)
        .map(<[u8]>::to_vec)
        .ok_or(atcacert::Error::ShortDeviceData(*loc))
}

/// Play the factory for one chip: issue its device certificate over slot
/// 0's public key and its serial number (and slot 5's EUI-48 text), signed
/// by the emulated signer, and store the chain: OTP code, slots 10, 11, 12.
/// Returns the device certificate (DER). The caller writes this before the
/// data zone is locked (the presets build locked images directly).
pub fn provision(nv: &mut NvState, issue_date: Date) -> Result<Vec<u8>, atcacert::Error> {
    let f = fixtures();
    let def = &atcacert::TNGTLS_DEVICE_3;
    nv.otp[..8].copy_from_slice(OTP_CODE);
    let signer_pub = signer_public_key();
    nv.slot_mut(11)[..72].copy_from_slice(&atcacert::pad_public_key(&signer_pub));
    nv.slot_mut(12)[..72].copy_from_slice(&f.signer.compressed);
    let mut data = DeviceData::default();
    for loc in def.device_locs() {
        if loc != def.comp_cert_loc {
            data.insert(loc, read_loc(nv, &loc)?);
        }
    }
    let issued = atcacert::issue(
        def,
        &signer_pub,
        issue_date,
        SIGNER_ID,
        &data,
        signer(&f.signer_key),
    )?;
    nv.slot_mut(10)[..72].copy_from_slice(&issued.compressed);
    Ok(issued.der)
}

/// What the factory knows of a chip it made: serial number, device
/// certificate (DER, as the chip rebuilds it), slots 0–4's public keys and
/// the device certificate's notBefore as `YYYY-MM-DDThh:mm:ss.000Z` — what a
/// Trust&GO manifest entry lists.
#[derive(Debug, Clone)]
pub struct Made {
    /// Serial number.
    pub serial_number: [u8; 9],
    /// Device certificate, DER.
    pub device: Vec<u8>,
    /// Slots 0–4's public keys.
    pub keys: Vec<[u8; 64]>,
    /// Provisioning time.
    pub timestamp: String,
}

/// [`Made`] for a `tngtls` chip's state.
pub fn made(nv: &NvState) -> Result<Made, atcacert::Error> {
    let def = &atcacert::TNGTLS_DEVICE_3;
    let data = device_data(nv, def)?;
    let device = atcacert::rebuild(def, Some(&signer_public_key()), &data)?;
    let when = atcacert::CompCert::parse(data.get(&def.comp_cert_loc)?)?.issue_date;
    Ok(Made {
        serial_number: nv.config.serial_number(),
        device,
        keys: slot_public_keys(nv)?,
        timestamp: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.000Z",
            when.year, when.month, when.day, when.hour, when.minute, when.second
        ),
    })
}

/// The current time as a certificate date, rounded down to the hour (the
/// compressed form keeps hours only).
pub fn now() -> Date {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Date {
        minute: 0,
        second: 0,
        ..Date::from_unix(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets::Preset;

    #[test]
    fn fixture_keys_are_valid_and_the_chain_verifies() {
        let root = root_public_key();
        atcacert::verify_signature(root_cert_der(), &root).unwrap();
        atcacert::verify_signature(signer_cert_der(), &root).unwrap();
        let nv = Preset::Tngtls.build();
        // The signer certificate as a reader rebuilds it from slots 11–12
        // (CryptoAuthLib: with Microchip's root key for the key id).
        let sdata = device_data(&nv, &atcacert::TNGTLS_SIGNER).unwrap();
        let microchip = atcacert::templates::microchip_root_public_key();
        let signer_cert =
            atcacert::rebuild(&atcacert::TNGTLS_SIGNER, Some(&microchip), &sdata).unwrap();
        assert_eq!(signer_cert, signer_cert_der());
        atcacert::verify_signature(&signer_cert, &root).unwrap();
        let data = device_data(&nv, &atcacert::TNGTLS_DEVICE_3).unwrap();
        let device = atcacert::rebuild(
            &atcacert::TNGTLS_DEVICE_3,
            Some(&signer_public_key()),
            &data,
        )
        .unwrap();
        atcacert::verify_signature(&device, &signer_public_key()).unwrap();
        // The CN is "sn" + the serial number in upper-case hex.
        let sn = nv.config.serial_number();
        let cn = format!("sn{}", coffre_proto::hex::Hex::upper(&sn));
        assert!(device.windows(cn.len()).any(|w| w == cn.as_bytes()));
        // The root keeps Microchip's subject key identifier.
        let ski = &atcacert::templates::TNGTLS_SIGNER_1[414..434];
        assert!(root_cert_der().windows(20).any(|w| w == ski));
    }

    #[test]
    fn every_image_gets_its_own_device_certificate() {
        let a = Preset::Tngtls.build();
        let b = Preset::Tngtls.build();
        assert_ne!(a.slot(10)[..72], b.slot(10)[..72]);
        assert_eq!(a.slot(12)[..72], b.slot(12)[..72]);
        assert_eq!(&a.otp[..8], OTP_CODE);
    }
}
