//! Targets of certificate handling: the atcacert compressed format read
//! from a chip, and the PKI's parsers of files an operator hands coffre.

use coffre_atcacert::{rebuild, CompCert, DeviceData, TNGTLS_DEVICE_3, TNGTLS_SIGNER};

use crate::bytes::Input;

/// Chip data (compressed certificate, keys, serial…) for the Trust&GO
/// certificate definitions: a certificate that rebuilds is well-formed DER
/// and compresses back to the compressed certificate it came from.
pub fn atcacert(data: &[u8]) {
    let _ = CompCert::parse(data.get(..72).unwrap_or(data));
    let mut input = Input::new(data);
    let def = if input.u8() & 1 == 0 {
        &TNGTLS_DEVICE_3
    } else {
        &TNGTLS_SIGNER
    };
    let mut dd = DeviceData::default();
    for loc in def.device_locs() {
        dd.insert(loc, input.take(loc.count as usize).to_vec());
    }
    let ca = if input.u8() & 1 == 0 {
        None
    } else {
        let mut k = [0u8; 64];
        k.copy_from_slice(&[input.take(64), &[0u8; 64]].concat()[..64]);
        Some(k)
    };
    if let Ok(cert) = rebuild(def, ca.as_ref(), &dd) {
        let original = dd.get(&def.comp_cert_loc).expect("present");
        // The chip's r ‖ s go into the certificate as they are (as
        // CryptoAuthLib does); one outside 1..n-1 is no ECDSA signature, and
        // the parser says so (this target's second finding: its own check).
        let split = coffre_atcacert::der::split_cert(&cert);
        if p256::ecdsa::Signature::from_slice(&original[..64]).is_err() {
            assert!(split.is_err(), "an impossible signature was taken");
            return;
        }
        split.expect("a rebuilt certificate splits");
        let comp = coffre_atcacert::compress(def, &cert).expect("a rebuilt certificate compresses");
        // Byte 71 is reserved: neither CryptoAuthLib nor coffre reads it, and
        // compressing writes 0 there (this target's first finding).
        assert_eq!(
            &comp[..70],
            &original[..70],
            "rebuild → compress changed the compressed certificate"
        );
        assert_eq!(comp[70] >> 4, original[70] >> 4, "serial-number source");
        // The format version (low nibble of byte 70) is the encoder's choice:
        // 0 unless the dates need format 1, as CryptoAuthLib decides; a
        // format-1 certificate whose dates fit format 0 compresses to 0
        // (this target's third finding: its own check again).
        let (was, now) = (original[70] & 0x0F, comp[70] & 0x0F);
        assert!(
            was == now || (was == 1 && now == 0),
            "format {was} compressed as format {now}"
        );
    }
}

/// Files given to `coffre pki`: certificates and CSRs in PEM or DER,
/// PKCS#8 keys, the lab's slot-8 blob.
pub fn pki(data: &[u8]) {
    if let Ok(der) = coffre_pki::util::der_or_pem_cert(data) {
        assert!(!der.is_empty());
    }
    let _ = coffre_pki::csr::verify_csr(data);
    let _ = coffre_pki::lab::parse_pkcs8(data);
    if let Ok(der) = coffre_pki::lab::decode_slot8(data) {
        assert!(der.len() + 2 <= data.len());
    }
}

/// A Trust&GO manifest as `coffre import-manifest` reads it, with the
/// manifest signer's certificate the operator trusts and the time of the
/// check taken from the input too (so seeds stay valid):
/// `[now: 8 bytes, Unix seconds BE][signer length: 2 bytes LE][signer DER][manifest JSON]`.
///
/// Every accepted entry must be what it claims: its device certificate
/// carries the public key and the CN the import registers, and no part is
/// accepted twice.
pub fn manifest(data: &[u8]) {
    use coffre_provision::trust_manifest::verify;
    let mut input = Input::new(data);
    let mut now = [0u8; 8];
    now.copy_from_slice(&[input.take(8), &[0u8; 8]].concat()[..8]);
    let now = time::OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(now) % 253_402_300_799)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let len = input.u16() as usize;
    let signer = input.take(len).to_vec();
    let json = input.take(usize::MAX);
    let root = coffre_emu::factory::root_cert_der();
    let Ok(entries) = verify(json, std::slice::from_ref(&signer), root, now) else {
        return;
    };
    let mut ids = std::collections::HashSet::new();
    for e in entries {
        match e {
            Ok(a) => {
                let (_, cert) = x509_parser::parse_x509_certificate(&a.chain.0)
                    .expect("an accepted device certificate parses");
                let spki = cert.public_key().subject_public_key.data.as_ref();
                assert_eq!(
                    spki.len(),
                    65,
                    "an accepted key is an uncompressed P-256 point"
                );
                assert_eq!(
                    &spki[1..],
                    &a.public_key[..],
                    "accepted key ≠ certificate key"
                );
                let cn = cert
                    .subject()
                    .iter_common_name()
                    .next()
                    .and_then(|c| c.as_str().ok())
                    .expect("an accepted certificate has a CN");
                assert_eq!(cn, a.device_id, "registered id ≠ certificate CN");
                assert!(ids.insert(a.unique_id), "a part accepted twice");
            }
            Err(r) => assert!(!r.to_string().is_empty(), "a refusal says why"),
        }
    }
}

/// Seeds of [`manifest`]: a manifest of two emulated Trust&GO parts, signed
/// by the emulated manifest signer (issued by the emulated factory root).
pub fn manifest_seeds() -> Vec<Vec<u8>> {
    use coffre_emu::presets::Preset;
    use coffre_provision::trust_manifest::{emulated_entry, emulated_signer};
    let (key, cert) = emulated_signer().expect("the emulated manifest signer");
    let list: Vec<_> = (0..2)
        .map(|_| emulated_entry(&Preset::Tngtls.build(), &key, &cert).expect("an entry"))
        .collect();
    let json = serde_json::to_vec(&list).expect("JSON");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut seed = now.to_be_bytes().to_vec();
    seed.extend_from_slice(&(cert.len() as u16).to_le_bytes());
    seed.extend_from_slice(&cert);
    seed.extend_from_slice(&json);
    let mut one = seed.clone();
    one.truncate(10 + cert.len());
    one.extend_from_slice(&serde_json::to_vec(&list[..1]).expect("JSON"));
    vec![seed, one]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed made from a factory chip reaches the rebuild (and so the
    /// round-trip check), rather than stopping at a parse error.
    #[test]
    fn the_factory_seed_rebuilds() {
        let seed = &crate::seeds::seeds("atcacert")[0];
        let mut input = Input::new(seed);
        input.u8();
        let mut dd = DeviceData::default();
        for loc in TNGTLS_DEVICE_3.device_locs() {
            dd.insert(loc, input.take(loc.count as usize).to_vec());
        }
        rebuild(&TNGTLS_DEVICE_3, None, &dd).expect("the seed rebuilds");
        atcacert(seed);
    }

    /// The manifest seed's entries are accepted, so mutations start from
    /// inputs that reach every check (and the target's own assertions).
    #[test]
    fn the_manifest_seed_is_accepted() {
        let seed = &manifest_seeds()[0];
        let mut input = Input::new(seed);
        let mut now = [0u8; 8];
        now.copy_from_slice(input.take(8));
        let now = time::OffsetDateTime::from_unix_timestamp(i64::from_be_bytes(now)).unwrap();
        let len = input.u16() as usize;
        let signer = input.take(len).to_vec();
        let r = coffre_provision::trust_manifest::verify(
            input.take(usize::MAX),
            &[signer],
            coffre_emu::factory::root_cert_der(),
            now,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|e| e.is_ok()), "{r:?}");
        manifest(seed);
    }
}
