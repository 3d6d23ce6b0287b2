//! Security audit of a chip: what each slot holds, and what is wrong.
//!
//! [`classify`] recognises slot contents (empty, the lab's length-prefixed
//! PKCS#8 key, a certificate, a public key in the chip's 72-byte format,
//! text). [`findings`] reads the config zone's policies with those contents
//! and a device certificate, and lists the problems with a fix for each.
//!
//! ```
//! use coffre_proto::{config::ConfigZone, tngtls::TNGTLS_CONFIG_SAMPLE};
//! use coffre_pki::{audit, lab};
//!
//! let cfg = ConfigZone(TNGTLS_CONFIG_SAMPLE);
//! let (key, _) = lab::generate_lab_key();
//! let slot8 = lab::encode_slot8(&key).unwrap();
//! let found = audit::findings(&cfg, &[(8, Some(slot8.to_vec()))], None, None);
//! assert_eq!(found[0].code, "private-key-readable");
//! assert_eq!(found[0].severity, audit::Severity::Critical);
//! ```

use std::fmt;

use coffre_proto::config::{ConfigZone, ReadAccess, WritePolicy};
use p256::PublicKey;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::util::{cert_facts, der_or_pem, public_key_from_xy, rfc3339};

mod content;

pub use content::{classify, encode_public_key_72, public_key_72, Content};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The identity can be stolen now.
    Critical,
    /// The identity can be replaced, or the device cannot connect.
    High,
    /// A weaker setup than the chip allows.
    Medium,
    /// Worth knowing.
    Low,
    /// For information.
    Info,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        })
    }
}

/// One problem found by [`findings`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The slot concerned, if any.
    pub slot: Option<u8>,
    /// Stable identifier, e.g. `private-key-readable`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

/// Days before notAfter from which an expiring certificate is reported.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// Audit a chip: its config zone, the slots read (`None` = not readable),
/// the device certificate (DER or PEM) and the chip's own public key (X‖Y),
/// at the current time. Sorted most severe first.
pub fn findings(
    cfg: &ConfigZone,
    slots: &[(u8, Option<Vec<u8>>)],
    device_cert: Option<&[u8]>,
    chip_public_key: Option<[u8; 64]>,
) -> Vec<Finding> {
    findings_at(
        cfg,
        slots,
        device_cert,
        chip_public_key,
        OffsetDateTime::now_utc(),
    )
}

/// [`findings`] at a given time.
pub fn findings_at(
    cfg: &ConfigZone,
    slots: &[(u8, Option<Vec<u8>>)],
    device_cert: Option<&[u8]>,
    chip_public_key: Option<[u8; 64]>,
    now: OffsetDateTime,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |severity, slot, code, message: String, fix: String| {
        out.push(Finding {
            severity,
            slot,
            code,
            message,
            fix,
        })
    };

    if !cfg.config_locked() {
        push(
            Severity::High,
            None,
            "config-unlocked",
            "the config zone is unlocked: anyone on the bus can rewrite the slot access policies"
                .into(),
            "write and lock a configuration with `coffre provision --bus … --configure \
             trustngo|hardened` (Lock mode 0x00; irreversible, asks first)"
                .into(),
        );
    }
    if !cfg.data_locked() {
        push(
            Severity::High,
            None,
            "data-zone-unlocked",
            "the data zone is unlocked: the slot access policies are not enforced yet and \
             every slot, key slots included, can be written"
                .into(),
            "finish the configuration with `coffre provision --bus … --configure \
             trustngo|hardened`, which writes the slots and locks the data zone (Lock mode \
             0x01; irreversible, asks first)"
                .into(),
        );
    }

    let chip_has_own_key = chip_public_key.is_some()
        || (cfg.data_locked() && (0..16).any(|s| cfg.slot_policy(s).private_key));
    let mut lab_keys: Vec<PublicKey> = Vec::new();

    for (slot, bytes) in slots {
        let slot = *slot;
        let Some(bytes) = bytes else { continue };
        if slot > 15 {
            continue;
        }
        let content = classify(bytes);
        let policy = cfg.slot_policy(slot);
        let what = match &content {
            Content::LabPkcs8Key { public_key, .. } => {
                lab_keys.push(*public_key);
                if policy.read == ReadAccess::Clear {
                    push(
                        Severity::Critical,
                        Some(slot),
                        "private-key-readable",
                        format!(
                            "slot {slot} holds a private key and is readable in clear by anyone \
                             on the I2C bus"
                        ),
                        format!(
                            "move to offload mode: let the chip generate the key in a private-key \
                             slot (GenKey, slot 2, 3 or 4 on Trust&GO) and sign the TLS handshake \
                             itself (`coffre provision … --mode offload`), then erase slot {slot}"
                        ),
                    );
                } else {
                    push(
                        Severity::High,
                        Some(slot),
                        "private-key-in-data-slot",
                        format!(
                            "slot {slot} holds a private key as data: the chip cannot sign with \
                             it, so the host must read it and hold it in RAM"
                        ),
                        format!(
                            "move to offload mode (`coffre provision … --mode offload`), then \
                             erase slot {slot}"
                        ),
                    );
                }
                Some("a private key")
            }
            Content::Certificate { .. } => Some("a certificate"),
            Content::PublicKey72 { .. } => Some("a public key"),
            _ => None,
        };
        if let Some(what) = what {
            if policy.write == WritePolicy::Always && !policy.slot_locked {
                let consequence = match content {
                    Content::LabPkcs8Key { .. } => "anyone on the bus can replace the identity key",
                    Content::Certificate { .. } => "anyone on the bus can replace the certificate",
                    _ => "anyone on the bus can replace a key the device trusts",
                };
                let fix = if policy.lockable {
                    format!(
                        "slot-lock slot {slot} (Lock mode 0x{:02X}, irreversible); for the lab's \
                         slot 8: `coffre provision --bus … --id … --mode lab --lock-slot8`",
                        0x02 | (slot << 2)
                    )
                } else {
                    format!(
                        "slot {slot} is not lockable (KeyConfig.Lockable = 0): keep this in a slot \
                         whose WriteConfig is Never, or use offload mode"
                    )
                };
                push(
                    Severity::High,
                    Some(slot),
                    "slot-writable",
                    format!("slot {slot} holds {what} and is writable in clear: {consequence}"),
                    fix,
                );
            }
        }
    }

    if chip_has_own_key {
        for (slot, bytes) in slots {
            if let Some(b) = bytes {
                if let Content::LabPkcs8Key { .. } = classify(b) {
                    push(
                        Severity::Medium,
                        Some(*slot),
                        "lab-key-with-factory-key",
                        format!(
                            "slot {slot} holds an off-chip (lab) key while the chip has a private \
                             key of its own that never leaves it"
                        ),
                        format!(
                            "use offload mode (`--mode offload`): the chip signs, no key crosses \
                             the bus; then erase slot {slot}"
                        ),
                    );
                }
            }
        }
    }

    if let Some(cert) = device_cert {
        let facts = der_or_pem(cert, &["CERTIFICATE"]).and_then(|d| cert_facts(&d));
        match facts {
            Err(e) => push(
                Severity::High,
                None,
                "certificate-unreadable",
                format!("the device certificate cannot be parsed: {e}"),
                "issue a new one with `coffre pki issue`".into(),
            ),
            Ok(facts) => {
                let cn = facts.subject_cn.clone().unwrap_or_default();
                let chip = chip_public_key.and_then(|xy| public_key_from_xy(&xy).ok());
                let candidates: Vec<PublicKey> = chip.into_iter().chain(lab_keys).collect();
                let matches = facts.public_key.is_some_and(|pk| candidates.contains(&pk));
                if !candidates.is_empty() && !matches {
                    push(
                        Severity::Critical,
                        None,
                        "certificate-key-mismatch",
                        format!(
                            "the device certificate (CN={cn}) does not match the chip's key: the \
                             broker will end the TLS handshake with \"bad signature\""
                        ),
                        "issue a certificate for this chip's key, from a CSR the chip signs \
                         (`coffre pki issue --csr …`)"
                            .into(),
                    );
                }
                if facts.not_after < now {
                    push(
                        Severity::High,
                        None,
                        "certificate-expired",
                        format!(
                            "the device certificate (CN={cn}) expired on {}: the broker refuses it",
                            rfc3339(facts.not_after)
                        ),
                        "issue a new certificate with `coffre pki issue … --force`".into(),
                    );
                } else if facts.not_before > now {
                    push(
                        Severity::High,
                        None,
                        "certificate-not-yet-valid",
                        format!(
                            "the device certificate (CN={cn}) is not valid before {}",
                            rfc3339(facts.not_before)
                        ),
                        "check the clocks of the device, the broker and the CA host, or issue \
                         a certificate valid from now"
                            .into(),
                    );
                } else if facts.not_after < now + Duration::days(EXPIRY_WARNING_DAYS) {
                    push(
                        Severity::Low,
                        None,
                        "certificate-expiring",
                        format!(
                            "the device certificate (CN={cn}) expires on {}",
                            rfc3339(facts.not_after)
                        ),
                        "issue a new certificate before then with `coffre pki issue … --force`"
                            .into(),
                    );
                }
            }
        }
    }

    out.sort_by_key(|f| (f.severity, f.slot));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_proto::config::{SlotConfig, UNLOCKED};
    use coffre_proto::tngtls::TNGTLS_CONFIG_SAMPLE;

    fn tng() -> ConfigZone {
        ConfigZone(TNGTLS_CONFIG_SAMPLE)
    }

    #[test]
    fn lab_setup_on_trust_and_go() {
        let (der, pk) = crate::lab::generate_lab_key();
        let blob = crate::lab::encode_slot8(&der).unwrap();
        let f = findings(&tng(), &[(8, Some(blob.to_vec()))], None, None);
        let codes: Vec<_> = f.iter().map(|f| f.code).collect();
        assert_eq!(
            codes,
            [
                "private-key-readable",
                "slot-writable",
                "lab-key-with-factory-key"
            ]
        );
        assert_eq!(
            f[0].message,
            "slot 8 holds a private key and is readable in clear by anyone on the I2C bus"
        );
        assert!(f[1]
            .message
            .contains("anyone on the bus can replace the identity key"));
        assert!(f[1].fix.contains("Lock mode 0x22"));
        assert!(f[1].fix.contains("--lock-slot8"));
        assert!(f[2].fix.contains("offload"));
        let _ = pk;

        // Slot-locked: no slot-writable finding.
        let mut cfg = tng();
        cfg.set_slot_locked(8);
        let f = findings(&cfg, &[(8, Some(blob.to_vec()))], None, None);
        assert!(f.iter().all(|f| f.code != "slot-writable"));
    }

    #[test]
    fn locks_are_checked() {
        let mut cfg = tng();
        cfg.set_config_lock_byte(UNLOCKED);
        cfg.set_data_lock_byte(UNLOCKED);
        let codes: Vec<_> = findings(&cfg, &[], None, None)
            .iter()
            .map(|f| f.code)
            .collect();
        assert_eq!(codes, ["config-unlocked", "data-zone-unlocked"]);
        assert!(findings(&tng(), &[], None, None).is_empty());
    }

    #[test]
    fn unlockable_writable_slot_says_so() {
        let mut cfg = tng();
        // Slot 9: make it a clear, always-writable data slot that is not lockable.
        cfg.set_slot_config(9, SlotConfig(0x0000));
        cfg.set_key_config(9, coffre_proto::config::KeyConfig(0x001C));
        let pk = p256::SecretKey::random(&mut rand_core::OsRng).public_key();
        let f = findings(
            &cfg,
            &[(9, Some(encode_public_key_72(&pk).to_vec()))],
            None,
            None,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, "slot-writable");
        assert!(f[0].fix.contains("not lockable"));
    }

    #[test]
    fn unreadable_slots_are_skipped() {
        let f = findings(&tng(), &[(0, None), (8, None)], None, None);
        assert!(f.is_empty());
    }

    #[test]
    fn finding_serializes() {
        let f = Finding {
            severity: Severity::Critical,
            slot: Some(8),
            code: "x",
            message: "m".into(),
            fix: "f".into(),
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["severity"], "critical");
        assert_eq!(v["slot"], 8);
    }
}
