//! Microchip's Trust&GO manifest: a JSON list of signed entries, one per
//! part, each a JWS (flattened, "divided" form) over the part's unique id,
//! its public keys and the x5c certificate chain of slot 0's key, signed
//! with ES256 by a manifest-signer certificate.
//!
//! Layout, as Microchip's public manifest tooling writes it
//! (`manifest_signing_helper.create_signed_entry` and the TrustFLEX
//! `generate_manifest`):
//!
//! ```text
//! [ { "header":    { "uniqueId": "0123…01" },            // 9-byte SN, lower-case hex
//!     "protected": b64url({"typ":"JWT","alg":"ES256","kid":b64url(SKI),"x5t#S256":b64url(SHA-256(signer cert))}),
//!     "payload":   b64url({"version":1,"model":"ATECC608B","partNumber":…,"manufacturer":{…},
//!                          "provisioner":{…},"distributor":{…},"provisioningTimestamp":"…Z",
//!                          "uniqueId":"0123…01",
//!                          "publicKeySet":{"keys":[{"kid":"0","kty":"EC","crv":"P-256","x":…,"y":…,
//!                                                   "x5c":[b64(device DER), b64(signer DER)]}, …]}}),
//!     "signature": b64url(R ‖ S) } ]                      // over ASCII "protected.payload"
//! ```
//!
//! [`verify`] checks every entry on its own and says, per entry, what is
//! wrong; nothing of a refused entry is kept.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::factory::FactoryChain;
use crate::manifest::{Entry, Manifest};

/// One accepted entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Position in the manifest (0-based).
    pub index: usize,
    /// The part's unique id (serial number, lower-case hex).
    pub unique_id: String,
    /// The device certificate's CN: the device id.
    pub device_id: String,
    /// Slot 0's public key (X ‖ Y).
    pub public_key: [u8; 64],
    /// Device and signer certificates, DER.
    pub chain: (Vec<u8>, Vec<u8>),
}

/// One refused entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// Position in the manifest (0-based).
    pub index: usize,
    /// The unique id the entry claims, if it could be read.
    pub unique_id: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "entry {} ({}): {}",
            self.index,
            self.unique_id.as_deref().unwrap_or("no uniqueId"),
            self.reason
        )
    }
}

fn b64url(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// What a manifest entry says about one part.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// The 9-byte serial number.
    pub serial_number: [u8; 9],
    /// The device certificate, DER.
    pub device: &'a [u8],
    /// The signer certificate, DER.
    pub signer: &'a [u8],
    /// The public keys of slots 0, 1, … (X ‖ Y).
    pub keys: &'a [[u8; 64]],
    /// provisioningTimestamp, e.g. `2026-01-01T00:00:00.000Z`.
    pub timestamp: &'a str,
}

impl<'a> Part<'a> {
    /// The part described by a chain read from the chip and its keys.
    pub fn of_chain(chain: &'a FactoryChain, keys: &'a [[u8; 64]], timestamp: &'a str) -> Part<'a> {
        Part {
            serial_number: chain.serial_number,
            device: &chain.device,
            signer: &chain.signer,
            keys,
            timestamp,
        }
    }
}

/// A signed entry for `part`, signed by the manifest signer (`key`,
/// `cert_der`).
pub fn signed_entry(part: &Part<'_>, key: &SigningKey, cert_der: &[u8]) -> Value {
    let (keys, timestamp) = (part.keys, part.timestamp);
    let unique_id = coffre_proto::hex::Hex::lower(&part.serial_number).to_string();
    let org = |unit: &str| json!({"organizationName": "Microchip Technology Inc", "organizationalUnitName": unit});
    let jwks: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut jwk = json!({
                "kid": i.to_string(), "kty": "EC", "crv": "P-256",
                "x": b64url(&k[..32]), "y": b64url(&k[32..]),
            });
            if i == 0 {
                jwk["x5c"] = json!([STANDARD.encode(part.device), STANDARD.encode(part.signer)]);
            }
            jwk
        })
        .collect();
    let payload = json!({
        "version": 1,
        "model": "ATECC608B",
        "partNumber": "ATECC608B-TNGTLS",
        "manufacturer": org("Secure Products Group"),
        "provisioner": org("Secure Products Group"),
        "distributor": org("Microchip Direct"),
        "provisioningTimestamp": timestamp,
        "uniqueId": unique_id,
        "publicKeySet": {"keys": jwks},
    });
    let ski = coffre_pki::util::subject_key_id(cert_der).unwrap_or_default();
    let protected = json!({
        "typ": "JWT", "alg": "ES256", "kid": b64url(&ski),
        "x5t#S256": b64url(&Sha256::digest(cert_der)),
    });
    let protected = b64url(protected.to_string().as_bytes());
    let payload = b64url(payload.to_string().as_bytes());
    let sig: Signature = key.sign(format!("{protected}.{payload}").as_bytes());
    json!({
        "header": {"uniqueId": unique_id},
        "protected": protected,
        "payload": payload,
        "signature": b64url(&sig.to_bytes()),
    })
}

fn field<'v>(v: &'v Value, name: &str) -> Result<&'v str, String> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no \"{name}\" string"))
}

fn json_b64(s: &str, what: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| format!("{what} is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| format!("{what} is not JSON"))
}

fn signer_key(cert: &[u8]) -> Result<VerifyingKey, String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("manifest signer certificate: {e}"))?;
    VerifyingKey::from_sec1_bytes(&c.public_key().subject_public_key.data)
        .map_err(|_| "the manifest signer certificate holds no P-256 key".to_string())
}

/// What every entry is checked against, prepared once per manifest.
struct Trust {
    /// The trusted manifest signers: `x5t#S256` (base64url) and key.
    signers: Vec<(String, VerifyingKey)>,
    /// The root the x5c chains must lead to.
    root: coffre_pki::factory::FactoryRoot,
}

/// Check one entry against `trust`.
fn check_entry(
    v: &Value,
    trust: &Trust,
    now: time::OffsetDateTime,
) -> Result<Accepted, (Option<String>, String)> {
    let claimed = v
        .get("header")
        .and_then(|h| h.get("uniqueId"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let fail = |r: String| (claimed.clone(), r);
    let protected_b64 = field(v, "protected").map_err(fail)?;
    let payload_b64 = field(v, "payload").map_err(fail)?;
    let sig_b64 = field(v, "signature").map_err(fail)?;
    let protected = json_b64(protected_b64, "the protected header").map_err(fail)?;
    if protected.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(fail("the protected header's alg is not ES256".into()));
    }
    let thumb = protected
        .get("x5t#S256")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("the protected header has no x5t#S256".into()))?;
    let (_, signer_key) = trust
        .signers
        .iter()
        .find(|(t, _)| t == thumb)
        .ok_or_else(|| {
            fail(format!(
                "signed by an unknown manifest signer (x5t#S256 {thumb})"
            ))
        })?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64.trim_end_matches('='))
        .ok()
        .and_then(|b| Signature::from_slice(&b).ok())
        .ok_or_else(|| fail("the signature is not a 64-byte ES256 signature".into()))?;
    signer_key
        .verify(format!("{protected_b64}.{payload_b64}").as_bytes(), &sig)
        .map_err(|_| {
            fail(
                "the signature does not verify: the entry was altered or not signed by its signer"
                    .into(),
            )
        })?;
    let payload = json_b64(payload_b64, "the payload").map_err(fail)?;
    let unique_id = field(&payload, "uniqueId")
        .map_err(fail)?
        .to_ascii_lowercase();
    if claimed.as_deref().map(str::to_ascii_lowercase) != Some(unique_id.clone()) {
        return Err(fail(format!(
            "the header's uniqueId differs from the payload's ({unique_id})"
        )));
    }
    let keys = payload
        .get("publicKeySet")
        .and_then(|k| k.get("keys"))
        .and_then(Value::as_array)
        .ok_or_else(|| fail("no publicKeySet.keys".into()))?;
    let k0 = keys
        .iter()
        .find(|k| k.get("kid").and_then(Value::as_str) == Some("0"))
        .ok_or_else(|| fail("no key with kid 0 (slot 0)".into()))?;
    let coord = |name: &str| -> Result<Vec<u8>, (Option<String>, String)> {
        let s = field(k0, name).map_err(fail)?;
        URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| fail(format!("key 0's {name} is not 32 base64url bytes")))
    };
    let mut public_key = [0u8; 64];
    public_key[..32].copy_from_slice(&coord("x")?);
    public_key[32..].copy_from_slice(&coord("y")?);
    let x5c = k0
        .get("x5c")
        .and_then(Value::as_array)
        .ok_or_else(|| fail("key 0 has no x5c chain".into()))?;
    let der = |i: usize| -> Result<Vec<u8>, (Option<String>, String)> {
        x5c.get(i)
            .and_then(Value::as_str)
            .and_then(|s| STANDARD.decode(s).ok())
            .ok_or_else(|| fail(format!("x5c[{i}] is missing or not base64")))
    };
    let (device, signer_cert) = (der(0)?, der(1)?);
    let v = trust
        .root
        .verify(&device, &signer_cert, &public_key, now)
        .map_err(|e| {
            fail(match e {
                coffre_pki::Error::FactoryKeyMismatch => {
                    "the entry's public key differs from its device certificate's".to_string()
                }
                other => format!("x5c chain: {other}"),
            })
        })?;
    if v.device_cn.to_ascii_lowercase() != format!("sn{unique_id}") {
        return Err(fail(format!(
            "the device certificate's CN {} does not name uniqueId {unique_id}",
            v.device_cn
        )));
    }
    Ok(Accepted {
        index: 0,
        unique_id,
        device_id: v.device_cn,
        public_key,
        chain: (device, signer_cert),
    })
}

/// Verify every entry of a manifest whose signers must chain to the parts'
/// root `root` (the emulated factory's manifest signer does): see
/// [`verify_with_signer_root`].
pub fn verify(
    bytes: &[u8],
    signers: &[Vec<u8>],
    root: &[u8],
    now: time::OffsetDateTime,
) -> crate::Result<Vec<Result<Accepted, Refused>>> {
    verify_with_signer_root(bytes, signers, root, root, now)
}

/// Verify every entry of a manifest. First each trusted signer certificate
/// must be `signer_root` itself or issued by it, and valid now (a signer
/// that does not chain is an error: nothing of the manifest counts,
/// [`coffre_pki::Error::FactoryChain`]). A manifest that is not a JSON list
/// is an error; each entry is then accepted or refused on its own (a second
/// entry with a unique id already accepted is refused as a duplicate).
///
/// Entries are checked on up to as many threads as the machine has cores
/// (two signatures each: the ES256 entry and the device certificate; the
/// root and each signer certificate are checked once per manifest).
pub fn verify_with_signer_root(
    bytes: &[u8],
    signers: &[Vec<u8>],
    signer_root: &[u8],
    root: &[u8],
    now: time::OffsetDateTime,
) -> crate::Result<Vec<Result<Accepted, Refused>>> {
    verify_with_progress(bytes, signers, signer_root, root, now, &mut |_, _| {})
}

/// [`verify_with_signer_root`], telling `progress` (entries checked, of
/// how many) about every 100 ms from the calling thread while the entries
/// are checked.
pub fn verify_with_progress(
    bytes: &[u8],
    signers: &[Vec<u8>],
    signer_root: &[u8],
    root: &[u8],
    now: time::OffsetDateTime,
    progress: &mut dyn FnMut(usize, usize),
) -> crate::Result<Vec<Result<Accepted, Refused>>> {
    let mut trusted = Vec::with_capacity(signers.len());
    for s in signers {
        coffre_pki::factory::verify_issued_by(s, signer_root, now)?;
        trusted.push((
            b64url(&Sha256::digest(s)),
            signer_key(s).map_err(crate::Error::Manifest)?,
        ));
    }
    let trust = Trust {
        signers: trusted,
        root: coffre_pki::factory::FactoryRoot::new(root)?,
    };
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        crate::Error::Manifest(format!(
            "not a manifest: not JSON ({e}); a Trust&GO manifest is a JSON list of signed entries"
        ))
    })?;
    let list = v.as_array().ok_or_else(|| {
        crate::Error::Manifest("not a manifest: the JSON is not a list of signed entries".into())
    })?;
    let checked = check_all(list, &trust, now, progress);
    let mut seen = std::collections::HashSet::new();
    Ok(checked
        .into_iter()
        .enumerate()
        .map(|(index, r)| match r {
            Ok(mut a) => {
                a.index = index;
                if seen.insert(a.unique_id.clone()) {
                    Ok(a)
                } else {
                    Err(Refused {
                        index,
                        unique_id: Some(a.unique_id),
                        reason: "duplicate uniqueId: an earlier entry already registered this part"
                            .into(),
                    })
                }
            }
            Err((unique_id, reason)) => Err(Refused {
                index,
                unique_id,
                reason,
            }),
        })
        .collect())
}

type Checked = Result<Accepted, (Option<String>, String)>;

/// [`check_entry`] on every entry, in order, spread over the cores;
/// `progress` is called from this thread while they work.
fn check_all(
    list: &[Value],
    trust: &Trust,
    now: time::OffsetDateTime,
    progress: &mut dyn FnMut(usize, usize),
) -> Vec<Checked> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(list.len().div_ceil(64))
        .max(1);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let check = |chunk: &[Value]| -> Vec<Checked> {
        chunk
            .iter()
            .map(|e| {
                let r = check_entry(e, trust, now);
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r
            })
            .collect()
    };
    let checked = std::thread::scope(|scope| {
        let handles: Vec<_> = list
            .chunks(list.len().div_ceil(workers).max(1))
            .map(|chunk| scope.spawn(|| check(chunk)))
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            progress(done.load(std::sync::atomic::Ordering::Relaxed), list.len());
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    progress(list.len(), list.len());
    checked
}

/// The emulated factory's manifest signer: its key (a public test fixture)
/// and a certificate for it issued by the emulated factory root, as
/// Microchip's manifest signer certificate is issued by Microchip's CA.
pub fn emulated_signer() -> crate::Result<(SigningKey, Vec<u8>)> {
    let key = coffre_emu::factory::manifest_signer_key();
    let cert = coffre_pki::ca::issued_signer_cert(
        "coffre emulated manifest signer",
        &key,
        coffre_emu::factory::root_cert_der(),
        &coffre_emu::factory::root_key(),
        365 * 25,
    )?;
    Ok((key, cert))
}

/// The manifest entry of an emulated Trust&GO part (`nv`), signed by the
/// manifest signer `key` / `cert` (see [`emulated_signer`]).
pub fn emulated_entry(
    nv: &coffre_emu::chip::NvState,
    key: &SigningKey,
    cert: &[u8],
) -> crate::Result<Value> {
    let m = coffre_emu::factory::made(nv).map_err(|source| crate::Error::FactoryCerts {
        what: "the emulated part's device certificate".into(),
        source,
    })?;
    let part = Part {
        serial_number: m.serial_number,
        device: &m.device,
        signer: coffre_emu::factory::signer_cert_der(),
        keys: &m.keys,
        timestamp: &m.timestamp,
    };
    Ok(signed_entry(&part, key, cert))
}

/// Register the accepted parts: each one's chain (device, signer) in
/// `pki`'s devices directory as `<CN>.crt.pem`, all written in one batch
/// (one file-system sync, each file replaced atomically), then one line per
/// part in `registry` (rewritten atomically under its lock, see
/// [`Manifest::append_batch`]). A failed write is an error naming the
/// file; parts already written stay registered in the PKI directory only.
pub fn register(
    pki: &coffre_pki::Pki,
    accepted: &[Accepted],
    registry: Option<&Manifest>,
) -> crate::Result<()> {
    let devices = pki.layout().devices();
    std::fs::create_dir_all(&devices).map_err(|source| crate::Error::Io {
        path: devices.clone(),
        source,
    })?;
    let files: Vec<(std::path::PathBuf, Vec<u8>)> = accepted
        .iter()
        .map(|a| {
            let pem = format!(
                "{}{}",
                coffre_pki::util::to_pem("CERTIFICATE", &a.chain.0),
                coffre_pki::util::to_pem("CERTIFICATE", &a.chain.1)
            );
            (pki.device_cert_path(&a.device_id), pem.into_bytes())
        })
        .collect();
    coffre_fs::write_atomic_batch(&files, 0o644).map_err(|source| crate::Error::Io {
        path: devices.clone(),
        source,
    })?;
    if let Some(m) = registry {
        let time = coffre_pki::util::rfc3339(time::OffsetDateTime::now_utc());
        let entries: Vec<Entry> = accepted
            .iter()
            .zip(files)
            .map(|(a, (path, _))| Entry {
                id: a.device_id.clone(),
                chip_serial: a.unique_id.clone(),
                mode: "factory".into(),
                key_slot: 0,
                public_key: coffre_pki::util::hex(&a.public_key),
                cert_fingerprint: coffre_pki::util::fingerprint_sha256(&a.chain.0),
                cert_path: path,
                time: time.clone(),
                image: None,
            })
            .collect();
        m.append_batch(&entries)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_atcacert as atcacert;
    use coffre_emu::{factory, presets::Preset};

    fn chain_and_keys() -> (FactoryChain, Vec<[u8; 64]>) {
        let nv = Preset::Tngtls.build();
        let def = &atcacert::TNGTLS_DEVICE_3;
        let data = factory::device_data(&nv, def).unwrap();
        let device = atcacert::rebuild(def, Some(&factory::signer_public_key()), &data).unwrap();
        let keys = factory::slot_public_keys(&nv).unwrap();
        let chain = FactoryChain {
            definition: def.name,
            otp_code: *b"KQp2ZkD8",
            serial_number: nv.config.serial_number(),
            device,
            signer: factory::signer_cert_der().to_vec(),
            slot0_public_key: keys[0],
            signer_public_key: factory::signer_public_key(),
        };
        (chain, keys)
    }

    fn signer() -> (SigningKey, Vec<u8>) {
        emulated_signer().unwrap()
    }

    const TS: &str = "2026-01-01T00:00:00.000Z";

    #[test]
    fn each_bad_entry_is_refused_by_name_and_the_others_accepted() {
        let (key, cert) = signer();
        let now = time::OffsetDateTime::now_utc();
        let root = factory::root_cert_der();
        let (good, gkeys) = chain_and_keys();
        let (other, okeys) = chain_and_keys();
        let (third, tkeys) = chain_and_keys();
        // A key that differs from its certificate (slot 1's key as kid 0).
        let mut swapped = okeys.clone();
        swapped.swap(0, 1);
        // A flipped bit in a payload.
        let mut tampered = signed_entry(&Part::of_chain(&third, &tkeys, TS), &key, &cert);
        let p = tampered["payload"].as_str().unwrap().to_string();
        let mut b = URL_SAFE_NO_PAD.decode(&p).unwrap();
        b[150] ^= 0x01;
        tampered["payload"] = json!(b64url(&b));
        let list = json!([
            signed_entry(&Part::of_chain(&good, &gkeys, TS), &key, &cert),
            signed_entry(&Part::of_chain(&other, &swapped, TS), &key, &cert),
            tampered,
            signed_entry(&Part::of_chain(&good, &gkeys, TS), &key, &cert),
        ]);
        let r = verify(
            list.to_string().as_bytes(),
            std::slice::from_ref(&cert),
            root,
            now,
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        let a = r[0].as_ref().unwrap();
        assert_eq!(
            a.device_id.to_ascii_lowercase(),
            format!("sn{}", a.unique_id)
        );
        let reason = |i: usize| r[i].as_ref().unwrap_err().to_string();
        assert!(reason(1).contains("public key differs"), "{}", reason(1));
        assert!(
            reason(2).contains("signature does not verify"),
            "{}",
            reason(2)
        );
        assert!(reason(3).contains("duplicate uniqueId"), "{}", reason(3));
        // Every refusal names its entry.
        assert!(reason(2).starts_with("entry 2 (0123"), "{}", reason(2));

        // A signer trusted explicitly (it is its own signer root) but not
        // the one that signed: every entry refused, for that reason.
        let stranger_key = SigningKey::from_slice(&[5u8; 32]).unwrap();
        let stranger =
            coffre_pki::ca::self_signed_signer_cert("stranger", &stranger_key, 30).unwrap();
        let r = verify_with_signer_root(
            list.to_string().as_bytes(),
            std::slice::from_ref(&stranger),
            &stranger,
            root,
            now,
        )
        .unwrap();
        assert!(r.iter().all(|e| e
            .as_ref()
            .unwrap_err()
            .reason
            .contains("unknown manifest signer")));
        // Parts of another factory: the chains do not lead to that root.
        let r = verify_with_signer_root(
            list.to_string().as_bytes(),
            std::slice::from_ref(&cert),
            root,
            coffre_pki::factory::MICROCHIP_ROOT_CA_002,
            now,
        )
        .unwrap();
        assert!(r[0].as_ref().unwrap_err().reason.contains("x5c chain"));
    }

    #[test]
    fn a_signer_that_does_not_chain_to_the_root_refuses_the_whole_manifest() {
        let (key, cert) = signer();
        let (c, k) = chain_and_keys();
        let now = time::OffsetDateTime::now_utc();
        let root = factory::root_cert_der();
        let is_chain_error = |r: crate::Result<Vec<Result<Accepted, Refused>>>, what: &str| {
            let e = r.unwrap_err();
            assert!(
                matches!(e, crate::Error::Pki(coffre_pki::Error::FactoryChain(_))),
                "{e:?}"
            );
            assert!(e.to_string().contains(what), "{e}");
            assert!(e.is_factory_refusal());
        };
        // The emulated signer chains to the emulated root, not to Microchip's.
        let text = json!([signed_entry(&Part::of_chain(&c, &k, TS), &key, &cert)]).to_string();
        assert_eq!(
            verify(text.as_bytes(), std::slice::from_ref(&cert), root, now)
                .unwrap()
                .len(),
            1
        );
        is_chain_error(
            verify(
                text.as_bytes(),
                std::slice::from_ref(&cert),
                coffre_pki::factory::MICROCHIP_ROOT_CA_002,
                now,
            ),
            // The emulated root has Microchip's names, not its key.
            "not signed by the trusted root's key",
        );
        // A self-signed signer: its entries verify with its key, but it
        // does not chain, so none of them counts.
        let rogue_key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let rogue = coffre_pki::ca::self_signed_signer_cert(
            "coffre emulated manifest signer",
            &rogue_key,
            30,
        )
        .unwrap();
        let text = json!([signed_entry(
            &Part::of_chain(&c, &k, TS),
            &rogue_key,
            &rogue
        )])
        .to_string();
        is_chain_error(
            verify(text.as_bytes(), std::slice::from_ref(&rogue), root, now),
            "not issued by the trusted root",
        );
        // A signer naming the root as its issuer, signed by another key.
        let forged = coffre_pki::ca::issued_signer_cert(
            "coffre emulated manifest signer",
            &rogue_key,
            root,
            &rogue_key,
            30,
        )
        .unwrap();
        is_chain_error(
            verify(text.as_bytes(), std::slice::from_ref(&forged), root, now),
            "not signed by the trusted root's key",
        );
    }

    #[test]
    fn registration_writes_every_chain_and_a_failed_write_is_an_error() {
        let (key, cert) = signer();
        let list: Vec<Value> = (0..3)
            .map(|_| {
                let (c, k) = chain_and_keys();
                signed_entry(&Part::of_chain(&c, &k, TS), &key, &cert)
            })
            .collect();
        let now = time::OffsetDateTime::now_utc();
        let mut seen = Vec::new();
        let accepted: Vec<Accepted> = verify_with_progress(
            Value::Array(list).to_string().as_bytes(),
            std::slice::from_ref(&cert),
            factory::root_cert_der(),
            factory::root_cert_der(),
            now,
            &mut |done, total| seen.push((done, total)),
        )
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
        assert_eq!(seen.last(), Some(&(3, 3)));
        let d = tempfile::tempdir().unwrap();
        let pki = coffre_pki::Pki::init(d.path().join("pki"), &Default::default()).unwrap();
        let registry = Manifest::at(d.path().join("fleet.jsonl"));
        register(&pki, &accepted, Some(&registry)).unwrap();
        let entries = registry.entries().unwrap();
        assert_eq!(entries.len(), 3);
        for (a, e) in accepted.iter().zip(&entries) {
            let pem = std::fs::read_to_string(&e.cert_path).unwrap();
            assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
            assert_eq!(e.id, a.device_id);
        }
        // Registered again: the registry keeps one line per part.
        register(&pki, &accepted, Some(&registry)).unwrap();
        assert_eq!(registry.entries().unwrap().len(), 3);
        // The devices directory is a file: the write fails, the registry
        // is left as it was.
        let devices = pki.layout().devices();
        std::fs::remove_dir_all(&devices).unwrap();
        std::fs::write(&devices, b"not a directory").unwrap();
        let before = std::fs::read(registry.path()).unwrap();
        let e = register(&pki, &accepted, Some(&registry)).unwrap_err();
        assert!(matches!(e, crate::Error::Io { .. }), "{e:?}");
        assert_eq!(std::fs::read(registry.path()).unwrap(), before);
    }

    #[test]
    fn truncated_or_non_list_manifests_are_errors() {
        let (key, cert) = signer();
        let (c, k) = chain_and_keys();
        let text = json!([signed_entry(&Part::of_chain(&c, &k, TS), &key, &cert)]).to_string();
        let now = time::OffsetDateTime::now_utc();
        let root = factory::root_cert_der();
        assert!(verify(
            &text.as_bytes()[..text.len() / 2],
            std::slice::from_ref(&cert),
            root,
            now
        )
        .unwrap_err()
        .to_string()
        .contains("not JSON"));
        assert!(verify(b"{\"a\":1}", std::slice::from_ref(&cert), root, now)
            .unwrap_err()
            .to_string()
            .contains("not a list"));
        // An entry that is not an object is refused, not a panic.
        let r = verify(b"[1, \"x\", {}]", &[cert], root, now).unwrap();
        assert!(r.iter().all(Result::is_err));
    }
}
