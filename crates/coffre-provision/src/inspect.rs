//! The chip audit: the slot map in words and security findings.

use coffre_driver::{Atecc, ConfigZone};
use coffre_pki::audit::{classify, findings, Content, Finding};
use coffre_pki::util::hex;
use coffre_proto::config::ReadAccess;
use coffre_proto::tngtls::slot_role;
use coffre_proto::zone::slot_size;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use serde::Serialize;

use crate::{Error, Result};

/// One slot, as the audit sees it.
#[derive(Debug, Clone, Serialize)]
pub struct SlotReport {
    /// Slot number.
    pub slot: u8,
    /// Size in bytes.
    pub size: usize,
    /// Trust&GO role.
    pub role: Option<&'static str>,
    /// Key type, in words.
    pub key_type: String,
    /// Who may read it.
    pub read: String,
    /// Who may write it.
    pub write: String,
    /// "slot-locked", "lockable" or "-".
    pub lock: &'static str,
    /// What it holds ("not readable" when the chip refuses to show it).
    pub content: String,
    /// Structured content, when readable.
    pub content_kind: Option<Content>,
    /// The policy in one line.
    pub summary: String,
}

/// The audit report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Serial number, hex.
    pub serial: String,
    /// Device family.
    pub device: String,
    /// Config zone locked.
    pub config_locked: bool,
    /// Data zone locked.
    pub data_locked: bool,
    /// The 16 slots.
    pub slots: Vec<SlotReport>,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
}

/// Read everything readable from `chip` and audit it against `cert` (the
/// device certificate, PEM or DER) and the key in `key_slot` (offload mode).
pub fn inspect<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    cert: Option<&[u8]>,
    key_slot: Option<u8>,
) -> Result<Report> {
    let rev = chip
        .info_revision()
        .map_err(|e| Error::chip("reading the revision", e))?;
    let cfg: ConfigZone = chip
        .read_config_zone()
        .map_err(|e| Error::chip("reading the config zone", e))?;
    let mut slots = Vec::new();
    let mut contents: Vec<(u8, Option<Vec<u8>>)> = Vec::new();
    for slot in 0..16u8 {
        let p = cfg.slot_policy(slot);
        let size = slot_size(slot).unwrap_or(0);
        let bytes = if cfg.data_locked() && p.read == ReadAccess::Clear {
            let mut buf = vec![0u8; size];
            match chip.read_slot(slot, &mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    Some(buf)
                }
                Err(coffre_driver::Error::Chip(_)) => None,
                Err(e) => return Err(Error::chip(&format!("reading slot {slot}"), e)),
            }
        } else {
            None
        };
        let kind = bytes.as_deref().map(classify);
        let content = match (&kind, cfg.data_locked(), p.private_key) {
            (Some(k), _, _) => k.to_string(),
            (None, false, _) => "not readable before the data lock".into(),
            (None, true, true) => "private key (never readable)".into(),
            (None, true, false) => "not readable (secret)".into(),
        };
        slots.push(SlotReport {
            slot,
            size,
            role: slot_role(slot).map(|r| r.name),
            key_type: format!("{:?}", p.key_type),
            read: p.read.to_string(),
            write: if p.private_key {
                if p.genkey {
                    "GenKey only".into()
                } else {
                    "never".into()
                }
            } else {
                p.write.to_string()
            },
            lock: if p.slot_locked {
                "slot-locked"
            } else if p.lockable {
                "lockable"
            } else {
                "-"
            },
            content,
            content_kind: kind,
            summary: p.summary().to_string(),
        });
        contents.push((slot, bytes));
    }
    let chip_pk = match key_slot {
        Some(s) if cfg.data_locked() => chip.genkey_public(s).ok(),
        _ => None,
    };
    let found = findings(&cfg, &contents, cert, chip_pk);
    // Slot contents may hold key material (slot 8 in lab mode): wipe them.
    for (_, b) in contents.iter_mut() {
        if let Some(v) = b.as_mut() {
            zeroize::Zeroize::zeroize(v);
        }
    }
    Ok(Report {
        serial: hex(&cfg.serial_number()),
        device: coffre_proto::config::DeviceFamily::from_revision(&rev).to_string(),
        config_locked: cfg.config_locked(),
        data_locked: cfg.data_locked(),
        slots,
        findings: found,
    })
}
