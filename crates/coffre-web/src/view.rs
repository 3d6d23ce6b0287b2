//! The JSON the page draws: a [`ChipDump`] turned into zones, policies in
//! words, contents and findings.

use coffre_pki::audit::{classify, Content, Finding};
use coffre_proto::config::{KeyType, ReadAccess, SlotPolicy, WritePolicy};
use coffre_proto::tngtls::slot_role;
use coffre_proto::zone::{slot_blocks, slot_size, CONFIG_SIZE, OTP_SIZE};
use serde::Serialize;

use crate::chip::ChipDump;
use crate::explain::{self, BitField, ConfigField};

/// Label put on private-key bytes the chip serves in clear.
pub(crate) const KEY_LABEL: &str =
    "Private-key bytes (PKCS#8). The chip hands them in clear to anyone on the I2C bus, \
as the lab's device reads them at boot: this is what any probe or program on the bus gets.";

#[derive(Debug, Serialize)]
pub(crate) struct ChipView {
    name: String,
    kind: &'static str,
    source: String,
    serial: String,
    device: String,
    address: String,
    revision: String,
    locks: LocksView,
    config_zone: ConfigView,
    otp: OtpView,
    slots: Vec<SlotView>,
    findings: Vec<Finding>,
    exposed_key_slots: Vec<u8>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
struct LocksView {
    config_locked: bool,
    data_locked: bool,
    otp_locked: bool,
    slot_locked: Vec<u8>,
    text: String,
}

#[derive(Debug, Serialize)]
struct ConfigView {
    size: usize,
    locked: bool,
    hex: String,
    fields: Vec<ConfigField>,
    policy: String,
    findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
struct OtpView {
    size: usize,
    locked: bool,
    readable: bool,
    hex: Option<String>,
    text: Option<String>,
    policy: String,
}

#[derive(Debug, Serialize)]
struct SlotView {
    slot: u8,
    size: usize,
    blocks: usize,
    role: Option<&'static str>,
    role_description: Option<&'static str>,
    /// "private-key", "secret", "clear-read" or "clear-write".
    class: &'static str,
    private_key: bool,
    key_type: String,
    policy: PolicyView,
    lock: LockView,
    slot_config: WordView,
    key_config: WordView,
    content: ContentView,
    findings: Vec<Finding>,
}

#[derive(Debug, Serialize)]
struct PolicyView {
    read: String,
    write: String,
    #[serde(rename = "use")]
    use_: String,
    summary: String,
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct LockView {
    slot_locked: bool,
    lockable: bool,
    text: String,
}

#[derive(Debug, Serialize)]
struct WordView {
    raw: String,
    bits: Vec<BitField>,
}

#[derive(Debug, Serialize)]
struct ContentView {
    readable: bool,
    /// "empty", "zeros", "pkcs8-key", "certificate", "public-key", "text",
    /// "unknown" or "not-readable".
    kind: &'static str,
    text: String,
    hex: Option<String>,
    /// Byte range `[start, end)` of private-key material in `hex`.
    key_range: Option<[usize; 2]>,
    label: Option<&'static str>,
    detail: Option<Content>,
}

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn class(p: &SlotPolicy) -> &'static str {
    if p.private_key {
        "private-key"
    } else if p.read != ReadAccess::Clear {
        "secret"
    } else if p.write == WritePolicy::Always && !p.slot_locked {
        "clear-write"
    } else {
        "clear-read"
    }
}

fn use_words(p: &SlotPolicy) -> String {
    let kc = p.key_config;
    let sc = p.slot_config;
    let mut s = if p.private_key {
        let mut uses = Vec::new();
        if p.ext_sign {
            uses.push("Sign of external messages (TLS handshakes, CSRs)");
        }
        if p.int_sign {
            uses.push("Sign of internal messages");
        }
        if p.ecdh {
            uses.push("ECDH");
        }
        let mut s = if uses.is_empty() {
            "no command may use this key".to_string()
        } else {
            format!("the chip itself, for {}", uses.join(", "))
        };
        if p.genkey {
            s.push_str("; GenKey may replace the key");
        } else {
            s.push_str("; the key is permanent once the data zone is locked");
        }
        s
    } else {
        match p.key_type {
            KeyType::Aes => "AES-128 key for the AES and KDF commands".to_string(),
            KeyType::P256 => "a P-256 public key, for Verify".to_string(),
            KeyType::ShaOrData if sc.is_secret() => {
                "secret for MAC, CheckMac, GenDig, DeriveKey or IO protection".to_string()
            }
            KeyType::ShaOrData => "plain data: no cryptographic use".to_string(),
            KeyType::Other(_) => "unusual key type: no documented use".to_string(),
        }
    };
    if kc.req_auth() {
        s.push_str(&format!(
            "; needs authorization with the key in slot {}",
            kc.auth_key()
        ));
    }
    if sc.limited_use() {
        s.push_str("; uses limited by Counter0");
    }
    s
}

fn write_words(p: &SlotPolicy) -> String {
    if p.private_key {
        if p.genkey {
            "nobody with Write; GenKey may create a new key inside the chip".into()
        } else {
            "nobody: the key is permanent".into()
        }
    } else if p.slot_locked {
        "nobody: the slot is locked".into()
    } else {
        match p.write {
            WritePolicy::Always => "anyone on the bus, in clear".into(),
            WritePolicy::PubInvalid => "only while the public key is invalidated".into(),
            WritePolicy::Never => "nobody: the Write command is refused".into(),
            WritePolicy::Encrypted { write_key } => {
                format!("only encrypted writes, with the key in slot {write_key}")
            }
        }
    }
}

fn content_view(bytes: Option<&[u8]>, p: &SlotPolicy, data_locked: bool) -> ContentView {
    let Some(bytes) = bytes else {
        let text = if !data_locked {
            "not readable before the data lock"
        } else if p.private_key {
            "private key: the chip never returns it"
        } else {
            "secret: the chip refuses to return it in clear"
        };
        return ContentView {
            readable: false,
            kind: "not-readable",
            text: text.into(),
            hex: None,
            key_range: None,
            label: None,
            detail: None,
        };
    };
    let c = classify(bytes);
    let (kind, key_range, label) = match &c {
        Content::Empty if bytes.iter().all(|b| *b == 0) => ("zeros", None, None),
        Content::Empty => ("empty", None, None),
        Content::LabPkcs8Key { der_len, .. } => {
            ("pkcs8-key", Some([2, 2 + der_len]), Some(KEY_LABEL))
        }
        Content::Certificate { .. } => ("certificate", None, None),
        Content::PublicKey72 { .. } => ("public-key", None, None),
        Content::Ascii(_) => ("text", None, None),
        Content::Unknown => ("unknown", None, None),
    };
    let text = match &c {
        Content::Empty if kind == "zeros" => "zeros: nothing stored".to_string(),
        Content::Empty => "empty (erased, all 0xFF)".to_string(),
        Content::LabPkcs8Key { der_len, .. } => format!(
            "length-prefixed PKCS#8 P-256 private key ({der_len} bytes of DER after the 2-byte length), the lab's format"
        ),
        other => other.to_string(),
    };
    ContentView {
        readable: true,
        kind,
        text,
        hex: Some(hex_upper(bytes)),
        key_range,
        label,
        detail: match c {
            Content::Empty | Content::Unknown => None,
            other => Some(other),
        },
    }
}

/// Build the page's view of a chip.
pub(crate) fn chip_view(name: &str, kind: &'static str, d: &ChipDump) -> ChipView {
    let cfg = &d.config;
    let data_locked = cfg.data_locked();
    let mut slots = Vec::new();
    let mut exposed = Vec::new();
    for slot in 0..16u8 {
        let p = cfg.slot_policy(slot);
        let bytes = d.slots.get(slot as usize).and_then(|b| b.as_deref());
        let content = content_view(bytes.map(|v| v.as_slice()), &p, data_locked);
        let mut use_ = use_words(&p);
        if content.kind == "pkcs8-key" {
            exposed.push(slot);
            use_ = "none inside the chip: to the chip this key is plain data; the device reads it \
                    into RAM and signs there"
                .into();
        }
        let role = slot_role(slot);
        let note = (!data_locked).then(|| {
            "the data zone is unlocked: these policies are not enforced yet, and every slot can be written"
                .to_string()
        });
        slots.push(SlotView {
            slot,
            size: slot_size(slot).unwrap_or(0),
            blocks: slot_blocks(slot).unwrap_or(0),
            role: role.map(|r| r.name),
            role_description: role.map(|r| r.description),
            class: class(&p),
            private_key: p.private_key,
            key_type: explain::key_type_words(p.key_type),
            policy: PolicyView {
                read: explain::read_words(p.read, p.private_key),
                write: write_words(&p),
                use_,
                summary: p.summary().to_string(),
                note,
            },
            lock: LockView {
                slot_locked: p.slot_locked,
                lockable: p.lockable,
                text: if p.slot_locked {
                    "slot-locked: nothing can change this slot any more".into()
                } else if p.lockable {
                    format!(
                        "not locked; can be slot-locked (Lock mode 0x{:02X}), which is irreversible",
                        0x02 | (slot << 2)
                    )
                } else {
                    "cannot be locked on its own".into()
                },
            },
            slot_config: WordView {
                raw: format!("0x{:04X}", p.slot_config.0),
                bits: explain::slot_config_bits(slot, p.slot_config, p.key_config),
            },
            key_config: WordView {
                raw: format!("0x{:04X}", p.key_config.0),
                bits: explain::key_config_bits(p.key_config),
            },
            content,
            findings: d
                .report
                .findings
                .iter()
                .filter(|f| f.slot == Some(slot))
                .cloned()
                .collect(),
        });
    }
    let slot_locked: Vec<u8> = (0..16u8).filter(|&s| cfg.slot_locked(s)).collect();
    let locks_text = format!(
        "config zone {}; data and OTP zones {}{}",
        if cfg.config_locked() {
            "locked"
        } else {
            "UNLOCKED"
        },
        if data_locked { "locked" } else { "UNLOCKED" },
        if slot_locked.is_empty() {
            String::new()
        } else {
            format!(
                "; slot-locked: {}",
                slot_locked
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    let otp_text = d.otp.as_ref().and_then(|o| {
        let end = o
            .iter()
            .rposition(|b| *b != 0 && *b != 0xFF)
            .map_or(0, |i| i + 1);
        let t = &o[..end];
        (!t.is_empty() && t.iter().all(|b| (0x20..=0x7E).contains(b)))
            .then(|| String::from_utf8_lossy(t).into_owned())
    });
    ChipView {
        name: name.to_string(),
        kind,
        source: d.source.clone(),
        serial: d.report.serial.clone(),
        device: d.report.device.clone(),
        address: format!("0x{:02X}", d.address),
        revision: hex_upper(&d.revision),
        locks: LocksView {
            config_locked: cfg.config_locked(),
            data_locked,
            otp_locked: data_locked,
            slot_locked,
            text: locks_text,
        },
        config_zone: ConfigView {
            size: CONFIG_SIZE,
            locked: cfg.config_locked(),
            hex: hex_upper(cfg.as_bytes()),
            fields: explain::config_fields(cfg),
            policy: if cfg.config_locked() {
                "readable by anyone on the bus; locked: no byte can change (UpdateExtra aside)"
                    .into()
            } else {
                "readable by anyone on the bus; UNLOCKED: anyone on the bus can rewrite the slot policies"
                    .into()
            },
            findings: d
                .report
                .findings
                .iter()
                .filter(|f| f.slot.is_none())
                .cloned()
                .collect(),
        },
        otp: OtpView {
            size: OTP_SIZE,
            locked: data_locked,
            readable: d.otp.is_some(),
            hex: d.otp.as_deref().map(hex_upper),
            text: otp_text,
            policy: if data_locked {
                "one-time-programmable; locked with the data zone: read-only, readable by anyone on the bus"
                    .into()
            } else {
                "one-time-programmable; not locked yet: it can still be written".into()
            },
        },
        slots,
        findings: d.report.findings.clone(),
        exposed_key_slots: exposed,
        warnings: d.warnings.clone(),
    }
}
