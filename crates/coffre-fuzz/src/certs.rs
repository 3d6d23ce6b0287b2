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
        coffre_atcacert::der::split_cert(&cert).expect("a rebuilt certificate splits");
        let comp = coffre_atcacert::compress(def, &cert).expect("a rebuilt certificate compresses");
        let original = dd.get(&def.comp_cert_loc).expect("present");
        // Byte 71 is reserved: neither CryptoAuthLib nor coffre reads it, and
        // compressing writes 0 there (this target's first finding).
        assert_eq!(
            &comp[..71],
            &original[..71],
            "rebuild → compress changed the compressed certificate"
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
}
