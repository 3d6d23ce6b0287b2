//! Checking a Trust&GO factory certificate chain: device → signer → root.
//!
//! A Trust&GO chip carries its device and signer certificates (rebuilt by
//! `coffre-atcacert` from the chip's compressed form). [`verify_chain`]
//! checks that the signer is signed by a trusted root, the device by the
//! signer, names link, each is valid now, the signer is a CA, and the
//! device certificate's key is the chip's slot 0 public key.
//!
//! Roots: [`MICROCHIP_ROOT_CA_002`] for real parts (Microchip's public root
//! certificate, as CryptoAuthLib ships it in `app/tng/tng_root_cert.c`); for
//! emulated parts the emulator's factory root (`coffre emu factory-root`).

use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::util::{cert_facts, public_key_to_xy, rfc3339, CertFacts};

/// Microchip's "Crypto Authentication Root CA 002" certificate (DER), the
/// root of every Trust&GO part's chain. Public; copied byte for byte from
/// CryptoAuthLib `app/tng/tng_root_cert.c` (commit `788acf6f`).
pub const MICROCHIP_ROOT_CA_002: &[u8] = &coffre_atcacert::templates::MICROCHIP_ROOT_CA_002;

/// What a verified chain says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// The device certificate's subject CN: `sn` + the chip's serial number
    /// in upper-case hex on Trust&GO parts; the device's identity.
    pub device_cn: String,
    /// The signer certificate's subject CN.
    pub signer_cn: String,
    /// The root certificate's subject CN.
    pub root_cn: String,
    /// SHA-256 fingerprint of the device certificate.
    pub device_fingerprint: String,
    /// notAfter of the device certificate, RFC 3339.
    pub device_not_after: String,
}

fn facts(der: &[u8], which: &str) -> Result<CertFacts> {
    cert_facts(der).map_err(|e| Error::BadCertificate(format!("{which} certificate: {e}")))
}

fn key_xy(f: &CertFacts, which: &str) -> Result<[u8; 64]> {
    f.public_key
        .as_ref()
        .map(public_key_to_xy)
        .ok_or_else(|| Error::FactoryChain(format!("the {which} certificate holds no P-256 key")))
}

fn check_time(f: &CertFacts, which: &str, now: OffsetDateTime) -> Result<()> {
    if now < f.not_before || now > f.not_after {
        return Err(Error::FactoryChain(format!(
            "the {which} certificate is not valid now (valid {} to {})",
            rfc3339(f.not_before),
            rfc3339(f.not_after)
        )));
    }
    Ok(())
}

fn signed_by(der: &[u8], issuer_xy: &[u8; 64], what: String) -> Result<()> {
    coffre_atcacert::verify_signature(der, issuer_xy).map_err(|_| Error::FactoryChain(what))
}

/// Check device → signer → root and that the device certificate's key is
/// `slot0_public_key` (X ‖ Y), at time `now`.
pub fn verify_chain(
    device: &[u8],
    signer: &[u8],
    root: &[u8],
    slot0_public_key: &[u8; 64],
    now: OffsetDateTime,
) -> Result<VerifiedChain> {
    FactoryRoot::new(root)?.verify(device, signer, slot0_public_key, now)
}

/// A trusted factory root, checked once (self-signed, verifies with its own
/// key), and the signer certificates it was already found to have issued:
/// for the thousands of chains of one manifest, which share a root and a
/// few signers, each chain then costs one signature check (the device
/// certificate's) instead of three. [`verify_chain`] is one use of it.
/// Shared by threads.
#[derive(Debug)]
pub struct FactoryRoot {
    facts: CertFacts,
    xy: [u8; 64],
    /// Signer certificates (DER) verified against this root: their facts.
    signers: std::sync::Mutex<std::collections::HashMap<Vec<u8>, CertFacts>>,
}

impl FactoryRoot {
    /// Parse `root` and check that it is self-signed and verifies with its
    /// own key.
    pub fn new(root: &[u8]) -> Result<FactoryRoot> {
        let r = facts(root, "root")?;
        let xy = key_xy(&r, "root")?;
        let cn = r.subject_cn.clone().unwrap_or_default();
        if r.subject_raw != r.issuer_raw {
            return Err(Error::FactoryChain(format!(
                "the trusted root '{cn}' is not self-signed"
            )));
        }
        signed_by(
            root,
            &xy,
            format!("the trusted root '{cn}' does not verify with its own key"),
        )?;
        Ok(FactoryRoot {
            facts: r,
            xy,
            signers: Default::default(),
        })
    }

    /// The signer's facts once it is known to be a CA issued by this root.
    fn signer(&self, signer: &[u8]) -> Result<CertFacts> {
        let known = self.signers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = known.get(signer) {
            return Ok(f.clone());
        }
        drop(known);
        let s = facts(signer, "signer")?;
        let cn = |f: &CertFacts| f.subject_cn.clone().unwrap_or_default();
        if s.issuer_raw != self.facts.subject_raw {
            return Err(Error::FactoryChain(format!(
                "the signer certificate '{}' was not issued by the trusted root '{}'",
                cn(&s),
                cn(&self.facts)
            )));
        }
        signed_by(
            signer,
            &self.xy,
            format!(
                "the signer certificate '{}' is not signed by the trusted root's key: the chip's chain \
                 comes from another factory (an emulated chip chains to 'coffre emu factory-root', a \
                 real Trust&GO part to Microchip's root)",
                cn(&s)
            ),
        )?;
        if !is_ca(signer) {
            return Err(Error::FactoryChain(format!(
                "the signer certificate '{}' is not a CA certificate",
                cn(&s)
            )));
        }
        self.signers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(signer.to_vec(), s.clone());
        Ok(s)
    }

    /// Check device → signer → this root and that the device
    /// certificate's key is `slot0_public_key` (X ‖ Y), at time `now`.
    pub fn verify(
        &self,
        device: &[u8],
        signer: &[u8],
        slot0_public_key: &[u8; 64],
        now: OffsetDateTime,
    ) -> Result<VerifiedChain> {
        let r = &self.facts;
        let s = self.signer(signer)?;
        let d = facts(device, "device")?;
        let cn = |f: &CertFacts| f.subject_cn.clone().unwrap_or_default();
        if d.issuer_raw != s.subject_raw {
            return Err(Error::FactoryChain(format!(
                "the device certificate '{}' was not issued by the signer '{}'",
                cn(&d),
                cn(&s)
            )));
        }
        let signer_xy = key_xy(&s, "signer")?;
        signed_by(
            device,
            &signer_xy,
            format!(
                "the device certificate '{}' is not signed by the signer '{}' (a chip rebuilds it over \
                 its own slot 0 public key: either slot 10 is corrupted or slot 0 does not hold the key \
                 the factory certified)",
                cn(&d),
                cn(&s)
            ),
        )?;
        for (f, which) in [(r, "root"), (&s, "signer"), (&d, "device")] {
            check_time(f, which, now)?;
        }
        if key_xy(&d, "device")? != *slot0_public_key {
            return Err(Error::FactoryKeyMismatch);
        }
        Ok(VerifiedChain {
            device_cn: cn(&d),
            signer_cn: cn(&s),
            root_cn: cn(r),
            device_fingerprint: d.fingerprint.clone(),
            device_not_after: rfc3339(d.not_after),
        })
    }
}

/// Check that `cert` is the trust anchor `anchor` itself, or was issued by
/// it (names link, `anchor`'s key verifies its signature), and that both
/// are valid at `now`: how a Trust&GO manifest's signer certificate is
/// tied to a root before its signatures count. Returns `cert`'s CN.
pub fn verify_issued_by(cert: &[u8], anchor: &[u8], now: OffsetDateTime) -> Result<String> {
    let (c, a) = (facts(cert, "signer")?, facts(anchor, "root")?);
    let cn = |f: &CertFacts| f.subject_cn.clone().unwrap_or_default();
    check_time(&c, "manifest signer", now)?;
    if cert == anchor {
        return Ok(cn(&c));
    }
    check_time(&a, "root", now)?;
    if c.issuer_raw != a.subject_raw {
        return Err(Error::FactoryChain(format!(
            "the manifest signer certificate '{}' was not issued by the trusted root '{}'",
            cn(&c),
            cn(&a)
        )));
    }
    signed_by(
        cert,
        &key_xy(&a, "root")?,
        format!(
            "the manifest signer certificate '{}' is not signed by the trusted root's key (it \
             names '{}' as its issuer, but another key signed it; an emulated factory's signer \
             chains to 'coffre emu factory-root', which has Microchip's names)",
            cn(&c),
            cn(&a)
        ),
    )?;
    Ok(cn(&c))
}

fn is_ca(der: &[u8]) -> bool {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .and_then(|(_, c)| c.basic_constraints().ok().flatten().map(|bc| bc.value.ca))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_atcacert as atcacert;
    use coffre_emu::{factory, presets::Preset};

    fn chain() -> (Vec<u8>, [u8; 64]) {
        let nv = Preset::Tngtls.build();
        let def = &atcacert::TNGTLS_DEVICE_3;
        let data = factory::device_data(&nv, def).unwrap();
        let device = atcacert::rebuild(def, Some(&factory::signer_public_key()), &data).unwrap();
        let key: [u8; 64] = data.get(&def.public_key_loc).unwrap().try_into().unwrap();
        (device, key)
    }

    #[test]
    fn a_good_chain_verifies_and_names_the_device() {
        let (device, key) = chain();
        let v = verify_chain(
            &device,
            factory::signer_cert_der(),
            factory::root_cert_der(),
            &key,
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        assert!(v.device_cn.starts_with("sn0123") && v.device_cn.len() == 20);
        assert_eq!(v.signer_cn, "Crypto Authentication Signer C0FE");
    }

    #[test]
    fn another_key_another_root_or_a_late_clock_is_refused() {
        let (device, key) = chain();
        let (signer, root) = (factory::signer_cert_der(), factory::root_cert_der());
        let now = OffsetDateTime::now_utc();
        let mut other = key;
        other[5] ^= 1;
        assert!(matches!(
            verify_chain(&device, signer, root, &other, now),
            Err(Error::FactoryKeyMismatch)
        ));
        let e = verify_chain(&device, signer, MICROCHIP_ROOT_CA_002, &key, now).unwrap_err();
        assert!(
            e.to_string().contains("not signed by the trusted root"),
            "{e}"
        );
        let late = now + time::Duration::days(365 * 40);
        let e = verify_chain(&device, signer, root, &key, late).unwrap_err();
        assert!(e.to_string().contains("not valid now"), "{e}");
        // The signer in the device's place: not issued by the signer.
        let e = verify_chain(signer, signer, root, &key, now).unwrap_err();
        assert!(matches!(e, Error::FactoryChain(_)), "{e}");
    }

    #[test]
    fn a_root_reused_for_many_chains_remembers_only_good_signers() {
        let (device, key) = chain();
        let now = OffsetDateTime::now_utc();
        let trusted = FactoryRoot::new(factory::root_cert_der()).unwrap();
        for _ in 0..3 {
            trusted
                .verify(&device, factory::signer_cert_der(), &key, now)
                .unwrap();
        }
        // A signer with one flipped bit is checked, and refused, each time.
        let mut bad = factory::signer_cert_der().to_vec();
        let at = bad.len() - 10;
        bad[at] ^= 1;
        for _ in 0..2 {
            assert!(trusted.verify(&device, &bad, &key, now).is_err());
        }
        assert_eq!(trusted.signers.lock().unwrap().len(), 1);
        // A root that is not self-signed is refused at once.
        assert!(FactoryRoot::new(factory::signer_cert_der()).is_err());
    }
}
