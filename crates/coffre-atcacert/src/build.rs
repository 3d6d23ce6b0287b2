//! Rebuilding a certificate from chip data, and making one (the factory).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use p256::ecdsa::{Signature, VerifyingKey};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::comp::CompCert;
use crate::date::Date;
use crate::def::{CertDef, CertLoc, DeviceLoc, SnSource, Transform};
use crate::der;
use crate::Error;

/// What was read from the chip, by location (see [`CertDef::device_locs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceData(BTreeMap<DeviceLoc, Vec<u8>>);

impl DeviceData {
    /// Record the bytes read at `loc`.
    pub fn insert(&mut self, loc: DeviceLoc, bytes: Vec<u8>) {
        self.0.insert(loc, bytes);
    }

    /// The bytes read at `loc`, exactly `loc.count` of them.
    pub fn get(&self, loc: &DeviceLoc) -> Result<&[u8], Error> {
        let b = self.0.get(loc).ok_or(Error::MissingDeviceData(*loc))?;
        b.get(..usize::from(loc.count))
            .ok_or(Error::ShortDeviceData(*loc))
    }
}

/// A 64-byte public key (X ‖ Y) in the chip's 72-byte slot form: 4 zero
/// bytes before X and before Y (`atcacert_public_key_add_padding`).
pub fn pad_public_key(raw: &[u8; 64]) -> [u8; 72] {
    let mut p = [0u8; 72];
    p[4..36].copy_from_slice(&raw[..32]);
    p[40..72].copy_from_slice(&raw[32..]);
    p
}

/// The 64-byte public key out of the 72-byte slot form.
pub fn unpad_public_key(padded: &[u8]) -> Result<[u8; 64], Error> {
    if padded.len() < 72 {
        return Err(Error::InvalidPublicKey);
    }
    let mut raw = [0u8; 64];
    raw[..32].copy_from_slice(&padded[4..36]);
    raw[32..].copy_from_slice(&padded[40..72]);
    Ok(raw)
}

/// X ‖ Y of a P-256 public key.
pub fn raw_public_key(key: &VerifyingKey) -> [u8; 64] {
    let point = key.to_encoded_point(false);
    let mut raw = [0u8; 64];
    raw.copy_from_slice(&point.as_bytes()[1..]);
    raw
}

fn verifying_key(raw: &[u8; 64]) -> Result<VerifyingKey, Error> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(raw);
    VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidPublicKey)
}

/// The key identifier atcacert writes in the subject and authority key id
/// extensions: SHA-1 of `04 ‖ X ‖ Y` (`atcacert_get_key_id`).
pub fn key_id(raw: &[u8; 64]) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update([0x04]);
    h.update(raw);
    h.finalize().into()
}

fn set(cert: &mut [u8], loc: CertLoc, data: &[u8]) -> Result<(), Error> {
    if loc.count == 0 {
        return Ok(());
    }
    if data.len() != loc.count {
        return Err(Error::BadDer("element size differs from its location"));
    }
    cert.get_mut(loc.offset..loc.offset + loc.count)
        .ok_or(Error::BadDer("element outside the template"))?
        .copy_from_slice(data);
    Ok(())
}

fn hex_upper(data: &[u8]) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789ABCDEF";
    data.iter()
        .flat_map(|b| [H[usize::from(b >> 4)], H[usize::from(b & 0x0F)]])
        .collect()
}

/// Put the signature in: replace everything from the signature offset to the
/// end with the DER BIT STRING, and fix the outer SEQUENCE length
/// (`atcacert_set_signature`).
fn set_signature(def: &CertDef, cert: &mut Vec<u8>, sig: &[u8; 64]) -> Result<(), Error> {
    let at = def.std.signature.offset;
    if at >= cert.len() {
        return Err(Error::BadDer("signature offset past the template"));
    }
    cert.truncate(at);
    cert.extend_from_slice(&der::ecdsa_sig_bit_string(sig));
    let (old_len, used) = der::decode_len(&cert[1..])?;
    let _ = old_len;
    let new_len = cert.len() - 1 - used;
    let mut enc = Vec::new();
    der::encode_len(new_len, &mut enc);
    if enc.len() != used {
        return Err(Error::BadDer("certificate length changed size"));
    }
    cert[1..1 + used].copy_from_slice(&enc);
    Ok(())
}

fn generate_sn(
    def: &CertDef,
    comp: &[u8; 72],
    pubkey: &[u8; 64],
    data: &DeviceData,
) -> Result<Vec<u8>, Error> {
    let size = def.std.cert_sn.count;
    let format = comp[70] & 0x0F;
    let dates = |msg: &mut Vec<u8>| {
        msg.extend_from_slice(&comp[64..67]);
        if format == 1 || format == 2 {
            msg.push(comp[71] & 0xF0);
        }
    };
    let device_sn = || -> Result<Vec<u8>, Error> {
        let cfg = data.get(&DeviceLoc {
            zone: crate::Zone::Config,
            slot: 0,
            is_genkey: false,
            offset: 0,
            count: 13,
        })?;
        let mut sn = Vec::with_capacity(9);
        sn.extend_from_slice(&cfg[0..4]);
        sn.extend_from_slice(&cfg[8..13]);
        Ok(sn)
    };
    let hashed = |msg: Vec<u8>| -> Result<Vec<u8>, Error> {
        if size == 0 || size > 32 {
            return Err(Error::Unsupported(
                "a hashed serial number longer than 32 bytes",
            ));
        }
        let digest = Sha256::digest(&msg);
        let mut sn = digest[..size].to_vec();
        sn[0] &= 0x7F;
        sn[0] |= 0x40;
        Ok(sn)
    };
    match def.sn_source {
        SnSource::PubKeyHash => {
            let mut msg = pubkey.to_vec();
            dates(&mut msg);
            hashed(msg)
        }
        SnSource::DeviceSnHash => {
            let mut msg = device_sn()?;
            dates(&mut msg);
            hashed(msg)
        }
        SnSource::DeviceSn => {
            let mut sn = alloc::vec![0x40];
            sn.extend_from_slice(&device_sn()?);
            Ok(sn)
        }
        SnSource::SignerId => Ok(alloc::vec![0x40, comp[67], comp[68]]),
    }
}

/// Rebuild the full DER certificate of `def` from chip data, exactly as
/// CryptoAuthLib's `atcacert_read_cert` does.
///
/// `ca_public_key` is the issuer's key (X ‖ Y), used for the authority key
/// identifier; `None` keeps the template's value. `data` holds every
/// location of [`CertDef::device_locs`].
pub fn rebuild(
    def: &CertDef,
    ca_public_key: Option<&[u8; 64]>,
    data: &DeviceData,
) -> Result<Vec<u8>, Error> {
    let comp_bytes = data.get(&def.comp_cert_loc)?;
    let comp = CompCert::parse(comp_bytes)?;
    comp.check_def(def)?;
    let mut raw_comp = [0u8; 72];
    raw_comp.copy_from_slice(comp_bytes);
    let mut cert = def.template.to_vec();
    if let Some(ca) = ca_public_key {
        set(&mut cert, def.std.auth_key_id, &key_id(ca))?;
    }
    // Subject public key.
    let pk = data.get(&def.public_key_loc)?;
    let pubkey: [u8; 64] = match pk.len() {
        72 => unpad_public_key(pk)?,
        64 => pk.try_into().map_err(|_| Error::InvalidPublicKey)?,
        _ => return Err(Error::InvalidPublicKey),
    };
    verifying_key(&pubkey)?;
    set(&mut cert, def.std.public_key, &pubkey)?;
    set(&mut cert, def.std.subj_key_id, &key_id(&pubkey))?;
    // Dates and signer id.
    let expire = if comp.expire_years == 0 {
        def.expire_date_format.max_date()
    } else {
        Date {
            year: comp.issue_date.year + u16::from(comp.expire_years),
            ..comp.issue_date
        }
    };
    set(
        &mut cert,
        def.std.issue_date,
        &comp.issue_date.encode(def.issue_date_format)?,
    )?;
    set(
        &mut cert,
        def.std.expire_date,
        &expire.encode(def.expire_date_format)?,
    )?;
    set(&mut cert, def.std.signer_id, &hex_upper(&comp.signer_id))?;
    // Definition-specific elements.
    for e in def.elements {
        let Some(loc) = e.device_loc else { continue };
        let bytes = data.get(&loc)?;
        let value = match e.transform {
            Transform::None => bytes.to_vec(),
            Transform::Bin2HexUpper => hex_upper(bytes),
        };
        set(&mut cert, e.cert_loc, &value)?;
    }
    let sn = generate_sn(def, &raw_comp, &pubkey, data)?;
    set(&mut cert, def.std.cert_sn, &sn)?;
    set_signature(def, &mut cert, &comp.signature)?;
    Ok(cert)
}

/// The TBSCertificate of a certificate built from `def`.
pub fn tbs<'c>(def: &CertDef, cert: &'c [u8]) -> Result<&'c [u8], Error> {
    cert.get(def.tbs.offset..def.tbs.offset + def.tbs.count)
        .ok_or(Error::BadDer("certificate shorter than its TBS location"))
}

/// A certificate made by [`issue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The full certificate, DER.
    pub der: Vec<u8>,
    /// What the chip stores.
    pub compressed: [u8; 72],
}

/// Make a certificate of `def` the way Microchip's factory does: fill the
/// template from `data` (every location of [`CertDef::device_locs`] but the
/// compressed certificate), date it, have `sign` sign the SHA-256 digest of
/// its TBS with the issuer's key, and compress it.
///
/// `ca_public_key` is the issuer's public key (for the authority key id).
pub fn issue(
    def: &CertDef,
    ca_public_key: &[u8; 64],
    issue_date: Date,
    signer_id: [u8; 2],
    data: &DeviceData,
    sign: impl FnOnce(&[u8; 32]) -> Result<[u8; 64], Error>,
) -> Result<Issued, Error> {
    let mut comp = CompCert::new(def, issue_date, signer_id);
    let mut data = data.clone();
    data.insert(def.comp_cert_loc, comp.to_bytes()?.to_vec());
    let unsigned = rebuild(def, Some(ca_public_key), &data)?;
    let digest: [u8; 32] = Sha256::digest(tbs(def, &unsigned)?).into();
    comp.signature = sign(&digest)?;
    let compressed = comp.to_bytes()?;
    data.insert(def.comp_cert_loc, compressed.to_vec());
    let der = rebuild(def, Some(ca_public_key), &data)?;
    Ok(Issued { der, compressed })
}

/// Check a certificate's ECDSA-SHA256 signature with the issuer's key.
pub fn verify_signature(cert: &[u8], issuer_public_key: &[u8; 64]) -> Result<(), Error> {
    let (tbs, sig) = der::split_cert(cert)?;
    let key = verifying_key(issuer_public_key)?;
    let sig = Signature::from_slice(&sig).map_err(|_| Error::BadSignature)?;
    let digest = Sha256::digest(tbs);
    key.verify_prehash(&digest, &sig)
        .map_err(|_| Error::BadSignature)
}

/// Take a self-signed certificate, put `public_key` in place of its key and
/// sign it again with `sign` (over the SHA-256 of the new TBS). Every other
/// byte — names, serial, dates, key identifiers — stays. Used to make an
/// emulated root with the exact layout of a real one.
pub fn replace_key_and_resign(
    cert: &[u8],
    public_key: &[u8; 64],
    sign: impl FnOnce(&[u8; 32]) -> Result<[u8; 64], Error>,
) -> Result<Vec<u8>, Error> {
    let (tbs_old, old_sig) = der::split_cert(cert)?;
    let _ = old_sig;
    let tbs_end = 1 + der::decode_len(&cert[1..])?.1 + tbs_old.len();
    // The SubjectPublicKeyInfo's BIT STRING: 03 42 00 04 X Y.
    let marker = [0x03, 0x42, 0x00, 0x04];
    let at = cert[..tbs_end]
        .windows(4)
        .position(|w| w == marker)
        .ok_or(Error::BadDer("no uncompressed P-256 public key"))?
        + 4;
    let mut out = cert.to_vec();
    out[at..at + 64].copy_from_slice(public_key);
    let tbs_start = tbs_end - tbs_old.len();
    let digest: [u8; 32] = Sha256::digest(&out[tbs_start..tbs_end]).into();
    let sig = sign(&digest)?;
    // The signature BIT STRING follows the TBS and the 12-byte
    // signatureAlgorithm of an ecdsa-with-SHA256 certificate.
    let (_, ah, alen) = der::tlv(&out[tbs_end..])?;
    out.truncate(tbs_end + ah + alen);
    out.extend_from_slice(&der::ecdsa_sig_bit_string(&sig));
    let used = der::decode_len(&out[1..])?.1;
    let mut enc = Vec::new();
    der::encode_len(out.len() - 1 - used, &mut enc);
    if enc.len() != used {
        return Err(Error::BadDer("certificate length changed size"));
    }
    out[1..1 + used].copy_from_slice(&enc);
    Ok(out)
}

fn parse_digits(b: &[u8]) -> Result<u16, Error> {
    b.iter().try_fold(0u16, |a, &c| {
        if c.is_ascii_digit() {
            Ok(a * 10 + u16::from(c - b'0'))
        } else {
            Err(Error::InvalidDate)
        }
    })
}

fn parse_date(b: &[u8], format: crate::DateFormat) -> Result<Date, Error> {
    let (year, rest) = match format {
        crate::DateFormat::Rfc5280Utc => {
            let yy = parse_digits(b.get(..2).ok_or(Error::InvalidDate)?)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &b[2..])
        }
        crate::DateFormat::Rfc5280Gen => (
            parse_digits(b.get(..4).ok_or(Error::InvalidDate)?)?,
            &b[4..],
        ),
    };
    let f = |i: usize| -> Result<u8, Error> {
        Ok(parse_digits(rest.get(i..i + 2).ok_or(Error::InvalidDate)?)? as u8)
    };
    Ok(Date {
        year,
        month: f(0)?,
        day: f(2)?,
        hour: f(4)?,
        minute: f(6)?,
        second: f(8)?,
    })
}

/// Compress a certificate built on `def` into what a chip stores
/// (`atcacert_get_comp_cert`): its signature, dates and signer id.
pub fn compress(def: &CertDef, cert: &[u8]) -> Result<[u8; 72], Error> {
    let (_, signature) = der::split_cert(cert)?;
    let loc = |l: CertLoc| {
        cert.get(l.offset..l.offset + l.count)
            .ok_or(Error::BadDer("element outside the certificate"))
    };
    let issue = parse_date(loc(def.std.issue_date)?, def.issue_date_format)?;
    let expire = parse_date(loc(def.std.expire_date)?, def.expire_date_format)?;
    let years = if expire == def.expire_date_format.max_date() {
        0
    } else {
        expire
            .year
            .checked_sub(issue.year)
            .ok_or(Error::InvalidDate)? as u8
    };
    let hex = loc(def.std.signer_id)?;
    let nib = |c: u8| -> Result<u8, Error> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or(Error::BadDer("signer id is not hexadecimal"))
    };
    let signer_id = [
        (nib(hex[0])? << 4) | nib(hex[1])?,
        (nib(hex[2])? << 4) | nib(hex[3])?,
    ];
    let mut comp = CompCert::new(def, issue, signer_id);
    comp.expire_years = years;
    // The format follows the certificate's own dates, as
    // `atcacert_get_comp_cert` decides: extended (1) when the issue year
    // is past 2031 or the validity past 31 years (found by the atcacert
    // fuzz target: a validity of 32+ years under a definition of fewer
    // was encoded as format 0 and refused).
    comp.format = u8::from(issue.year > 2031 || years > 31);
    comp.signature = signature;
    comp.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::templates::{MICROCHIP_ROOT_CA_002, TNGTLS_DEVICE_3, TNGTLS_SIGNER_1};
    use crate::{TNGTLS_DEVICE_3 as DEF3, TNGTLS_SIGNER};

    fn root_key() -> [u8; 64] {
        let key = crate::templates::microchip_root_public_key();
        assert_eq!(MICROCHIP_ROOT_CA_002[262..266], [0x03, 0x42, 0x00, 0x04]);
        key
    }

    fn key_at(cert: &[u8], loc: CertLoc) -> [u8; 64] {
        cert[loc.offset..loc.offset + 64].try_into().unwrap()
    }

    #[test]
    fn microchips_root_verifies_and_its_key_id_is_the_signer_templates() {
        // The root is a real self-signed certificate; the templates carry
        // placeholder signatures (CryptoAuthLib replaces them).
        verify_signature(&MICROCHIP_ROOT_CA_002, &root_key()).unwrap();
        assert!(verify_signature(&TNGTLS_SIGNER_1, &root_key()).is_err());
        assert_eq!(
            key_id(&root_key()),
            TNGTLS_SIGNER_1[414..434],
            "the signer template's authority key id is the root's key id"
        );
    }

    #[test]
    fn the_signer_template_compresses_and_rebuilds_byte_for_byte() {
        // The signer template is a real Microchip signer certificate: what a
        // chip would store for it must rebuild it exactly.
        let comp = compress(&TNGTLS_SIGNER, &TNGTLS_SIGNER_1).unwrap();
        let mut data = DeviceData::default();
        data.insert(TNGTLS_SIGNER.comp_cert_loc, comp.to_vec());
        let pk = key_at(&TNGTLS_SIGNER_1, TNGTLS_SIGNER.std.public_key);
        data.insert(TNGTLS_SIGNER.public_key_loc, pad_public_key(&pk).to_vec());
        let rebuilt = rebuild(&TNGTLS_SIGNER, Some(&root_key()), &data).unwrap();
        assert_eq!(rebuilt, TNGTLS_SIGNER_1);
    }

    #[test]
    fn the_device_template_rebuilds_from_its_own_parts() {
        // Template 3 carries serial 0123 0102030405060 1 and "682719000000"
        // as EUI-48; feed those and its dates back.
        let comp = compress(&DEF3, &TNGTLS_DEVICE_3).unwrap();
        let mut data = DeviceData::default();
        data.insert(DEF3.comp_cert_loc, comp.to_vec());
        data.insert(
            DEF3.public_key_loc,
            key_at(&TNGTLS_DEVICE_3, DEF3.std.public_key).to_vec(),
        );
        let mut cfg = [0u8; 13];
        cfg[..4].copy_from_slice(&[0x01, 0x23, 0x01, 0x02]);
        cfg[8..13].copy_from_slice(&[0x03, 0x04, 0x05, 0x06, 0x01]);
        for loc in DEF3.device_locs() {
            if loc.zone == crate::Zone::Config {
                data.insert(
                    loc,
                    cfg[usize::from(loc.offset)..][..usize::from(loc.count)].to_vec(),
                );
            }
        }
        let eui = crate::DeviceLoc {
            zone: crate::Zone::Data,
            slot: 5,
            is_genkey: false,
            offset: 0,
            count: 12,
        };
        data.insert(eui, b"682719000000".to_vec());
        let signer_key = key_at(&TNGTLS_SIGNER_1, TNGTLS_SIGNER.std.public_key);
        let rebuilt = rebuild(&DEF3, Some(&signer_key), &data).unwrap();
        // Everything but the serial number (generated from the key and the
        // dates, where the template holds a sample) is the template's.
        let sn = DEF3.std.cert_sn;
        assert_eq!(rebuilt.len(), TNGTLS_DEVICE_3.len());
        assert_eq!(rebuilt[..sn.offset], TNGTLS_DEVICE_3[..sn.offset]);
        assert_eq!(
            rebuilt[sn.offset + sn.count..],
            TNGTLS_DEVICE_3[sn.offset + sn.count..]
        );
    }

    #[test]
    fn bad_compressed_certificates_are_refused() {
        let mut data = DeviceData::default();
        let pk = key_at(&TNGTLS_SIGNER_1, TNGTLS_SIGNER.std.public_key);
        data.insert(TNGTLS_SIGNER.public_key_loc, pad_public_key(&pk).to_vec());
        // Empty slot (all 0xFF, as an erased slot reads) and all zeros.
        for fill in [0xFFu8, 0x00] {
            data.insert(TNGTLS_SIGNER.comp_cert_loc, alloc::vec![fill; 72]);
            assert!(rebuild(&TNGTLS_SIGNER, None, &data).is_err());
        }
        // A device certificate in the signer's slot: wrong definition.
        let mut comp = compress(&TNGTLS_SIGNER, &TNGTLS_SIGNER_1).unwrap();
        comp[69] = 0x30;
        data.insert(TNGTLS_SIGNER.comp_cert_loc, comp.to_vec());
        assert!(matches!(
            rebuild(&TNGTLS_SIGNER, None, &data),
            Err(Error::WrongCertDef { template_id: 3, .. })
        ));
        // Short slot data.
        data.insert(TNGTLS_SIGNER.comp_cert_loc, alloc::vec![0; 10]);
        assert!(matches!(
            rebuild(&TNGTLS_SIGNER, None, &data),
            Err(Error::ShortDeviceData(_))
        ));
        // A public key off the curve.
        let comp = compress(&TNGTLS_SIGNER, &TNGTLS_SIGNER_1).unwrap();
        data.insert(TNGTLS_SIGNER.comp_cert_loc, comp.to_vec());
        data.insert(TNGTLS_SIGNER.public_key_loc, alloc::vec![0x11; 72]);
        assert_eq!(
            rebuild(&TNGTLS_SIGNER, None, &data),
            Err(Error::InvalidPublicKey)
        );
    }

    #[test]
    fn a_flipped_signature_bit_fails_verification() {
        let comp = compress(&TNGTLS_SIGNER, &TNGTLS_SIGNER_1).unwrap();
        let mut bad = comp;
        bad[5] ^= 0x01;
        let mut data = DeviceData::default();
        let pk = key_at(&TNGTLS_SIGNER_1, TNGTLS_SIGNER.std.public_key);
        data.insert(TNGTLS_SIGNER.public_key_loc, pad_public_key(&pk).to_vec());
        data.insert(TNGTLS_SIGNER.comp_cert_loc, bad.to_vec());
        let cert = rebuild(&TNGTLS_SIGNER, Some(&root_key()), &data).unwrap();
        assert_eq!(
            verify_signature(&cert, &root_key()),
            Err(Error::BadSignature)
        );
    }
}
