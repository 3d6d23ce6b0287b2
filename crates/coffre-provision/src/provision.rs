//! Giving a chip an identity: lab mode and offload mode.

use std::path::PathBuf;

use coffre_driver::{Atecc, ConfigZone, LockTarget};
use coffre_pki::audit::{classify, Content};
use coffre_pki::util::{
    hex, public_key_from_xy, public_key_to_xy, read_bounded, rfc3339, write_atomic, MAX_PEM_BYTES,
};
use coffre_pki::{IssueOptions, Pki, Serial};
use coffre_proto::config::{ReadAccess, WritePolicy};
use coffre_proto::crc::crc16;
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use zeroize::Zeroizing;

use crate::configure::ChipState;
use crate::iokey::IoKey;
use crate::manifest::{Entry, Manifest};
use crate::{Error, Result, Ui};

/// Where the private key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The source lab's method: key generated off-chip, stored in slot 8
    /// as length-prefixed PKCS#8, read back into RAM to connect.
    Lab,
    /// The key is born in the chip and never leaves it; the chip signs.
    Offload,
    /// A Trust&GO part's own identity: the factory key in slot 0 and the
    /// certificate chain stored in the chip. Nothing is written to the chip.
    Factory,
}

impl Mode {
    /// "lab" or "offload".
    pub fn name(self) -> &'static str {
        match self {
            Mode::Lab => "lab",
            Mode::Offload => "offload",
            Mode::Factory => "factory",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "lab" => Ok(Mode::Lab),
            "offload" => Ok(Mode::Offload),
            "factory" => Ok(Mode::Factory),
            o => Err(format!("unknown mode '{o}': use lab, offload or factory")),
        }
    }
}

/// What to provision.
#[derive(Debug, Clone)]
pub struct Options {
    /// Device id: certificate CN and MQTT username.
    pub id: String,
    /// Key mode.
    pub mode: Mode,
    /// Offload: the private-key slot (default 0, the factory key).
    pub key_slot: Option<u8>,
    /// Offload: create a fresh key in `key_slot` with GenKey (the slot must
    /// allow it: slots 2–4 on Trust&GO).
    pub new_key: bool,
    /// Lab: slot-lock slot 8 afterwards. `None` asks through [`Ui::confirm`].
    pub lock_slot8: Option<bool>,
    /// Certificate options.
    pub issue: IssueOptions,
    /// Replace an existing key in slot 8 or an existing certificate.
    pub force: bool,
    /// Append the result to this manifest.
    pub manifest: Option<Manifest>,
    /// The chip image (emulated chips), recorded in the manifest.
    pub image: Option<PathBuf>,
    /// Lab mode on a hardened chip: the device's IO protection key, with
    /// which slot 8 is written and read back encrypted.
    pub io_key: Option<IoKey>,
    /// Factory mode: the trusted root (DER) the chip's chain must lead to.
    pub factory_root: Option<Vec<u8>>,
}

impl Options {
    /// Defaults for `id` in `mode`.
    pub fn new(id: &str, mode: Mode) -> Options {
        Options {
            id: id.to_string(),
            mode,
            key_slot: None,
            new_key: false,
            lock_slot8: None,
            issue: IssueOptions::default(),
            force: false,
            manifest: None,
            image: None,
            io_key: None,
            factory_root: None,
        }
    }
}

/// The result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    /// The manifest line (also appended to the manifest, if any).
    pub entry: Entry,
    /// The device certificate.
    pub cert_pem: String,
    /// Lab mode: slot 8 is now slot-locked.
    pub slot8_locked: bool,
    /// An earlier, interrupted run was completed rather than started over.
    pub resumed: bool,
    /// Offload: the chip-signed CSR (also written next to the certificate
    /// as `devices/<id>.csr.pem`).
    pub csr_pem: Option<String>,
}

/// The public key (X‖Y) of a certificate, if it is a P-256 certificate.
pub fn cert_public_key(pem_or_der: &[u8]) -> Option<[u8; 64]> {
    let der = if pem_or_der.starts_with(b"-----") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem_or_der).ok()?;
        pem.contents
    } else {
        pem_or_der.to_vec()
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let spki = cert.public_key().subject_public_key.data.as_ref();
    if spki.len() == 65 && spki[0] == 0x04 {
        let mut xy = [0u8; 64];
        xy.copy_from_slice(&spki[1..]);
        Some(xy)
    } else {
        None
    }
}

/// A device certificate found on disk.
struct Existing {
    pem: String,
    key: [u8; 64],
    serial: Serial,
}

fn existing_cert(pki: &Pki, id: &str) -> Option<Existing> {
    let bytes = read_bounded(&pki.device_cert_path(id), MAX_PEM_BYTES).ok()?;
    let pem = String::from_utf8(bytes).ok()?;
    let key = cert_public_key(pem.as_bytes())?;
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&block.contents).ok()?;
    let serial = Serial::from_der(cert.raw_serial());
    Some(Existing { pem, key, serial })
}

/// The device of `pki` whose issued certificate carries `key`, if any.
fn owner_of(pki: &Pki, key: &[u8; 64]) -> Option<String> {
    pki.index()
        .certificates
        .iter()
        .filter(|c| {
            c.kind == coffre_pki::ca::Kind::Device && c.status == coffre_pki::ca::Status::Issued
        })
        .map(|c| c.id.clone())
        .find(|id| existing_cert(pki, id).is_some_and(|c| c.key == *key))
}

/// Revoke every other certificate the index holds as issued for `id`:
/// what an interrupted run (a certificate indexed but never written, or
/// written but never recorded) or `--force` left behind must not stay
/// valid.
fn retire_others(pki: &mut Pki, id: &str, keep: &Serial, ui: &mut dyn Ui) -> Result<()> {
    for e in pki.revoke_others(id, keep)? {
        ui.step(&format!(
            "revoked the earlier certificate of {id} (serial {}): it is superseded",
            e.serial
        ));
    }
    Ok(())
}

/// Provision `chip` with an identity `opts.id`, issuing its certificate
/// from `pki`. The chip's config and data zones must be locked (see
/// [`crate::configure`] for blank chips).
pub fn provision<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    pki: &mut Pki,
    opts: &Options,
    ui: &mut dyn Ui,
) -> Result<Outcome> {
    if opts.mode == Mode::Factory {
        return factory(chip, pki, opts, ui);
    }
    coffre_pki::ca::validate_id(&opts.id)?;
    let cfg = chip
        .read_config_zone()
        .map_err(|e| Error::chip("reading the config zone", e))?;
    match ChipState::of(&cfg) {
        ChipState::Locked => {}
        s => {
            let hint = match opts.mode {
                Mode::Lab => "--configure trustngo",
                Mode::Offload | Mode::Factory => "--configure hardened (or trustngo)",
            };
            return Err(Error::State(format!(
                "the chip is not locked ({}): {} provisioning needs a configured chip; run again with {hint} to write a configuration and lock it",
                match s {
                    ChipState::Blank => "config zone unlocked: a blank chip",
                    _ => "config zone locked but data zone unlocked: configuration was interrupted",
                },
                opts.mode.name()
            )));
        }
    }
    ui.step(&format!(
        "chip {} ready: config and data zones locked",
        hex(&cfg.serial_number())
    ));
    let (pk, cert_pem, key_slot, slot8_locked, resumed, csr_pem) = match opts.mode {
        Mode::Lab => lab(chip, pki, &cfg, opts, ui)?,
        Mode::Offload => offload(chip, pki, &cfg, opts, ui)?,
        Mode::Factory => unreachable!("factory mode returned above"),
    };
    let fingerprint = coffre_pki::util::fingerprint_sha256(
        &x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map(|(_, p)| p.contents)
            .unwrap_or_default(),
    );
    let entry = Entry {
        id: opts.id.clone(),
        chip_serial: hex(&cfg.serial_number()),
        mode: opts.mode.name().into(),
        key_slot,
        public_key: hex(&pk),
        cert_fingerprint: fingerprint,
        cert_path: pki.device_cert_path(&opts.id),
        time: rfc3339(time::OffsetDateTime::now_utc()),
        image: opts.image.clone(),
    };
    if let Some(m) = &opts.manifest {
        m.append(&entry)?;
        ui.step(&format!("recorded in {}", m.path().display()));
    }
    Ok(Outcome {
        entry,
        cert_pem,
        slot8_locked,
        resumed,
        csr_pem,
    })
}

/// Factory mode: read the chip's factory chain, check it leads to the
/// trusted root and carries slot 0's key, and register the device under its
/// certificate's CN: the chain is written to the PKI's devices directory
/// and the manifest. Nothing is written to the chip.
fn factory<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    pki: &mut Pki,
    opts: &Options,
    ui: &mut dyn Ui,
) -> Result<Outcome> {
    let root = opts
        .factory_root
        .as_deref()
        .ok_or_else(|| Error::State("factory mode needs the trusted root certificate".into()))?;
    let chain = crate::factory::read_chain(chip)?;
    ui.step(&format!(
        "read the factory certificates ({}, OTP code {})",
        chain.definition,
        String::from_utf8_lossy(&chain.otp_code)
    ));
    let v = coffre_pki::factory::verify_chain(
        &chain.device,
        &chain.signer,
        root,
        &chain.slot0_public_key,
        time::OffsetDateTime::now_utc(),
    )?;
    ui.step(&format!(
        "chain verified: '{}' → '{}' → '{}'; the device certificate carries slot 0's key",
        v.device_cn, v.signer_cn, v.root_cn
    ));
    if !opts.id.is_empty() && opts.id != v.device_cn {
        return Err(Error::State(format!(
            "--id {} differs from the chip's factory identity '{}': a factory device is known by \
             its certificate's CN; drop --id or pass --id {}",
            opts.id, v.device_cn, v.device_cn
        )));
    }
    coffre_pki::ca::validate_id(&v.device_cn)?;
    let cert_pem = format!(
        "{}{}",
        coffre_pki::util::to_pem("CERTIFICATE", &chain.device),
        coffre_pki::util::to_pem("CERTIFICATE", &chain.signer)
    );
    let cert_path = pki.device_cert_path(&v.device_cn);
    if let Ok(existing) = std::fs::read(&cert_path) {
        if existing != cert_pem.as_bytes() && !opts.force {
            return Err(Error::State(format!(
                "{} already holds another certificate for '{}'; pass --force to replace it",
                cert_path.display(),
                v.device_cn
            )));
        }
    }
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    coffre_pki::util::write_atomic(&cert_path, cert_pem.as_bytes(), 0o644)?;
    ui.step(&format!(
        "registered {} ({})",
        v.device_cn,
        cert_path.display()
    ));
    let entry = Entry {
        id: v.device_cn.clone(),
        chip_serial: hex(&chain.serial_number),
        mode: Mode::Factory.name().into(),
        key_slot: 0,
        public_key: hex(&chain.slot0_public_key),
        cert_fingerprint: v.device_fingerprint.clone(),
        cert_path,
        time: rfc3339(time::OffsetDateTime::now_utc()),
        image: opts.image.clone(),
    };
    if let Some(m) = &opts.manifest {
        m.append(&entry)?;
        ui.step(&format!("recorded in {}", m.path().display()));
    }
    Ok(Outcome {
        entry,
        cert_pem,
        slot8_locked: false,
        resumed: false,
        csr_pem: None,
    })
}

type Provisioned = ([u8; 64], String, u8, bool, bool, Option<String>);

fn lab<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    pki: &mut Pki,
    cfg: &ConfigZone,
    opts: &Options,
    ui: &mut dyn Ui,
) -> Result<Provisioned> {
    let p = cfg.slot_policy(8);
    let read_key = match p.read {
        ReadAccess::Clear => None,
        ReadAccess::Encrypted { read_key } => Some(slot8_key(read_key, opts)?),
        ReadAccess::Never => {
            return Err(Error::State(format!(
                "slot 8 is not readable on this chip ({}); the lab's method cannot work here: use --mode offload",
                p.summary()
            )))
        }
    };
    if read_key.is_some() {
        ui.step("slot 8 is read and written encrypted with the IO protection key (hardened chip)");
    }
    let current = read_slot8(chip, read_key.as_ref())?;
    let existing_key = match classify(&current[..]) {
        Content::LabPkcs8Key { public_key, .. } => Some(public_key_to_xy(&public_key)),
        _ => None,
    };
    let cert = existing_cert(pki, &opts.id);
    // An earlier run may have stopped between writing the key and issuing
    // its certificate, or before the slot lock: finish it — unless the key
    // belongs to another device of this PKI.
    if let (Some(key), false) = (existing_key, opts.force) {
        if let Some(owner) = owner_of(pki, &key).filter(|o| *o != opts.id) {
            return Err(Error::State(format!(
                "slot 8 holds the key of device {owner} (certificate {}): pass --force to replace it with a new key for {}",
                pki.device_cert_path(&owner).display(),
                opts.id
            )));
        }
        match &cert {
            Some(c) if c.key == key => {
                ui.step("slot 8 already holds this device's key and its certificate matches: nothing to write");
                retire_others(pki, &opts.id, &c.serial, ui)?;
                let locked = maybe_lock_slot8(chip, cfg, &current, opts, ui)?;
                return Ok((key, c.pem.clone(), 8, locked, true, None));
            }
            None => {
                ui.step("slot 8 already holds a key but no certificate was issued for it (an earlier run was interrupted): issuing it now");
                let issued = pki.issue_device(&opts.id, &public_key_from_xy(&key)?, &opts.issue)?;
                retire_others(pki, &opts.id, &issued.serial, ui)?;
                let locked = maybe_lock_slot8(chip, cfg, &current, opts, ui)?;
                return Ok((key, issued.pem, 8, locked, true, None));
            }
            Some(_) => {
                return Err(Error::State(format!(
                    "slot 8 holds a key that does not match {}: pass --force to write a new key and issue a new certificate",
                    pki.device_cert_path(&opts.id).display()
                )))
            }
        }
    }
    if p.slot_locked {
        return Err(Error::State(
            "slot 8 is slot-locked: its contents can never change, so it cannot take a new key"
                .into(),
        ));
    }
    let write_key = match p.write {
        WritePolicy::Always => None,
        WritePolicy::Encrypted { write_key } => Some(slot8_key(write_key, opts)?),
        _ => {
            return Err(Error::State(format!(
                "slot 8 cannot be written on this chip ({}): use --mode offload",
                p.summary()
            )))
        }
    };
    if cert.is_some() && !opts.force {
        return Err(Error::State(format!(
            "{} already exists: choose another --id, or pass --force to replace it (the old certificate is then revoked)",
            pki.device_cert_path(&opts.id).display()
        )));
    }
    ui.step("generating an EC P-256 key off-chip (PKCS#8 DER), as the lab does");
    let (der, public_key) = coffre_pki::lab::generate_lab_key();
    let blob = coffre_pki::lab::encode_slot8(&der)?;
    ui.step(&format!(
        "writing slot 8: 2-byte length {:02X} {:02X}, {} bytes of DER, zero padding, 13 blocks of 32 bytes",
        blob[0],
        blob[1],
        der.len()
    ));
    match &write_key {
        None => chip
            .write_slot(8, &blob[..])
            .map_err(|e| Error::chip("writing slot 8", e))?,
        Some(k) => {
            for (b, block) in blob.chunks(32).enumerate() {
                let mut data = Zeroizing::new([0u8; 32]);
                data.copy_from_slice(block);
                chip.write_encrypted(8, b as u8, &data, k.slot, &k.key, &host_nonce())
                    .map_err(|e| {
                        Error::chip(&format!("writing slot 8 block {b} (encrypted Write)"), e)
                    })?;
            }
        }
    }
    let back = read_slot8(chip, read_key.as_ref())?;
    if back[..] != blob[..] {
        return Err(Error::ReadBack("slot 8".into()));
    }
    ui.step("slot 8 read back and compared: identical");
    let issue = IssueOptions {
        force: opts.force,
        ..opts.issue.clone()
    };
    let issued = pki.issue_device(&opts.id, &public_key, &issue)?;
    ui.step(&format!(
        "certificate issued: CN={} serial {}",
        opts.id, issued.serial
    ));
    retire_others(pki, &opts.id, &issued.serial, ui)?;
    let locked = maybe_lock_slot8(chip, cfg, &back, opts, ui)?;
    Ok((
        public_key_to_xy(&public_key),
        issued.pem,
        8,
        locked,
        false,
        None,
    ))
}

/// Fresh random NumIn for a Nonce before an encrypted Read or Write.
fn host_nonce() -> [u8; 20] {
    let mut n = [0u8; 20];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut n);
    n
}

/// The IO protection key slot 8's policy names, from the options.
fn slot8_key(slot: u8, opts: &Options) -> Result<IoKey> {
    match &opts.io_key {
        Some(k) if k.slot == slot => Ok(k.clone()),
        Some(k) => Err(Error::State(format!(
            "slot 8 is encrypted with the key in slot {slot}, but this device's IO protection key is for slot {}",
            k.slot
        ))),
        None => Err(Error::State(format!(
            "slot 8 is read and written only encrypted with the IO protection key (slot {slot}), and device {} has no copy of it (expected in <pki>/devices/{}.iokey, written by --configure hardened)",
            opts.id, opts.id
        ))),
    }
}

/// Slot 8's 416 bytes: clear reads, or 13 encrypted Reads with `key`.
fn read_slot8<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    key: Option<&IoKey>,
) -> Result<Zeroizing<[u8; 416]>> {
    let mut out = Zeroizing::new([0u8; 416]);
    match key {
        None => {
            chip.read_slot(8, &mut out[..])
                .map_err(|e| Error::chip("reading slot 8", e))?;
        }
        Some(k) => {
            for b in 0..13u8 {
                let block = chip
                    .read_encrypted(8, b, k.slot, &k.key, &host_nonce())
                    .map_err(|e| {
                        Error::chip(&format!("reading slot 8 block {b} (encrypted Read)"), e)
                    })?;
                out[32 * b as usize..32 * b as usize + 32].copy_from_slice(&block);
            }
        }
    }
    Ok(out)
}

fn maybe_lock_slot8<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    cfg: &ConfigZone,
    contents: &[u8; 416],
    opts: &Options,
    ui: &mut dyn Ui,
) -> Result<bool> {
    let p = cfg.slot_policy(8);
    if p.slot_locked {
        return Ok(true);
    }
    if !p.lockable {
        ui.step("slot 8 is not lockable on this chip: anyone on the bus can replace the key");
        return Ok(false);
    }
    let go = match opts.lock_slot8 {
        Some(v) => v,
        None => ui.confirm(
            "slot-lock slot 8 (Lock mode 0x22)",
            &[
                "slot 8's contents: this key can never be replaced or erased, not even by you".into(),
                if p.read == ReadAccess::Clear {
                    "slot 8 stays readable in clear: a probe on the bus still sees the key (use offload mode to avoid that)".into()
                } else {
                    "slot 8 stays readable through encrypted Read with the IO protection key".into()
                },
            ],
        ),
    };
    if !go {
        ui.step("slot 8 left unlocked: anyone on the bus can overwrite the key (lock it later: run the same 'coffre provision' command again with --lock-slot8)");
        return Ok(false);
    }
    chip.lock(LockTarget::Slot(8), Some(crc16(contents)))
        .map_err(|e| Error::chip("slot-locking slot 8", e))?;
    ui.step("slot 8 locked: the key can no longer be replaced");
    Ok(true)
}

fn offload<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    pki: &mut Pki,
    cfg: &ConfigZone,
    opts: &Options,
    ui: &mut dyn Ui,
) -> Result<Provisioned> {
    let slot = opts.key_slot.unwrap_or(0);
    if slot > 15 {
        return Err(Error::State(format!("slot {slot} does not exist (0–15)")));
    }
    let p = cfg.slot_policy(slot);
    if !p.private_key || !p.ext_sign {
        return Err(Error::State(format!(
            "slot {slot} cannot sign external messages ({}): choose a private-key slot with external sign, e.g. 0 (the factory key) or 2–4 on Trust&GO",
            p.summary()
        )));
    }
    let cert = existing_cert(pki, &opts.id);
    if let (Some(c), false) = (&cert, opts.force) {
        // An earlier run issued this certificate and stopped before it was
        // recorded: if it is for the key in the chip, finish that run.
        let current = chip.genkey_public(slot).ok();
        if current != Some(c.key) {
            return Err(Error::State(format!(
                "{} already exists for another key than slot {slot}'s: choose another --id, or pass --force to replace it (the old certificate is then revoked)",
                pki.device_cert_path(&opts.id).display()
            )));
        }
        ui.step(&format!(
            "{} is already issued for slot {slot}'s key (an earlier run was interrupted): finishing that run",
            pki.device_cert_path(&opts.id).display()
        ));
        retire_others(pki, &opts.id, &c.serial, ui)?;
        let csr = chip_csr(chip, slot, &opts.id, &c.key, ui)?;
        let csr_pem = write_csr(pki, &opts.id, &csr)?;
        return Ok((c.key, c.pem.clone(), slot, false, true, Some(csr_pem)));
    }
    let pk = if opts.new_key {
        if !p.genkey {
            return Err(Error::State(format!(
                "slot {slot} does not allow GenKey after the data lock ({}): use slots 2–4 on Trust&GO, or drop --new-key to use the key already there",
                p.summary()
            )));
        }
        ui.step(&format!(
            "GenKey: a new P-256 key born inside the chip in slot {slot}"
        ));
        chip.genkey_create(slot)
            .map_err(|e| Error::chip(&format!("GenKey in slot {slot}"), e))?
    } else {
        ui.step(&format!(
            "reading the public key of slot {slot} (GenKey mode 0x00)"
        ));
        chip.genkey_public(slot)
            .map_err(|e| Error::chip(&format!("reading the public key of slot {slot}"), e))?
    };
    let csr = chip_csr(chip, slot, &opts.id, &pk, ui)?;
    let issue = IssueOptions {
        force: opts.force,
        ..opts.issue.clone()
    };
    let issued = pki.issue_from_csr(&csr, &issue)?;
    ui.step(&format!(
        "certificate issued from the chip-signed CSR: CN={} serial {}",
        opts.id, issued.serial
    ));
    retire_others(pki, &opts.id, &issued.serial, ui)?;
    let csr_pem = write_csr(pki, &opts.id, &csr)?;
    Ok((pk, issued.pem, slot, false, false, Some(csr_pem)))
}

/// A PKCS#10 request for `id` and `pk`, signed by the chip's key in `slot`.
fn chip_csr<I2C: I2c, D: DelayNs>(
    chip: &mut Atecc<I2C, D>,
    slot: u8,
    id: &str,
    pk: &[u8; 64],
    ui: &mut dyn Ui,
) -> Result<Vec<u8>> {
    ui.step("building a PKCS#10 request; the chip signs it (Nonce 0x43 + Sign 0xA0)");
    let mut chip_error = None;
    let csr = coffre_pki::csr::build_csr(id, pk, |digest| {
        chip.sign_digest(slot, digest).map_err(|e| {
            let msg = e.to_string();
            chip_error = Some(msg.clone());
            msg
        })
    });
    let csr = match (csr, chip_error) {
        (Ok(c), _) => c,
        (Err(_), Some(msg)) => {
            return Err(Error::Chip {
                what: format!("signing the CSR with slot {slot}"),
                source: msg.into(),
            })
        }
        (Err(e), None) => return Err(e.into()),
    };
    coffre_pki::csr::verify_csr(&csr)?;
    ui.step("CSR signature verified against the chip's public key");
    Ok(csr)
}

/// Write `devices/<id>.csr.pem` (atomically); its PEM.
fn write_csr(pki: &Pki, id: &str, csr: &[u8]) -> Result<String> {
    let csr_pem = coffre_pki::csr::csr_pem(csr);
    let path = pki
        .device_cert_path(id)
        .with_file_name(format!("{id}.csr.pem"));
    write_atomic(&path, csr_pem.as_bytes(), 0o644)?;
    Ok(csr_pem)
}
