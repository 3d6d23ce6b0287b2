//! Certificate definitions: a template and where the chip's data goes.
//!
//! The three Trust&GO TLS definitions are CryptoAuthLib's, field for field
//! (`app/tng/tngtls_cert_def_1_signer.c`, `tngtls_cert_def_2_device.c`,
//! `tngtls_cert_def_3_device.c`); which device definition a chip uses is
//! chosen from the ASCII code in OTP bytes 0–7 (`app/tng/tng_atca.c`).

use core::fmt;

use crate::date::DateFormat;
use crate::templates;

/// A chip zone, as atcacert numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Zone {
    /// The 128-byte configuration zone.
    Config,
    /// The 64-byte OTP zone.
    Otp,
    /// A data slot.
    Data,
}

/// Where on the chip a piece of certificate data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeviceLoc {
    /// Zone.
    pub zone: Zone,
    /// Slot, for [`Zone::Data`].
    pub slot: u8,
    /// The public key of the slot's private key (GenKey public mode), not
    /// the slot's stored bytes.
    pub is_genkey: bool,
    /// First byte.
    pub offset: u16,
    /// Number of bytes.
    pub count: u16,
}

impl fmt::Display for DeviceLoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.offset + self.count;
        match (self.zone, self.is_genkey) {
            (Zone::Data, true) => write!(f, "the public key of slot {}", self.slot),
            (Zone::Data, false) => {
                write!(f, "slot {} bytes {}..{}", self.slot, self.offset, end)
            }
            (Zone::Config, _) => write!(f, "config zone bytes {}..{}", self.offset, end),
            (Zone::Otp, _) => write!(f, "OTP bytes {}..{}", self.offset, end),
        }
    }
}

/// Where in the certificate a piece of data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertLoc {
    /// Byte offset in the certificate.
    pub offset: usize,
    /// Number of bytes (0: the certificate has no such element).
    pub count: usize,
}

/// How chip data is turned into certificate bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Copied as is.
    None,
    /// Upper-case hexadecimal (`TF_BIN2HEX_UC`).
    Bin2HexUpper,
}

/// A definition-specific element: chip data copied into the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertElement {
    /// Name, as in CryptoAuthLib.
    pub id: &'static str,
    /// Where the data comes from; `None` for a template-only element.
    pub device_loc: Option<DeviceLoc>,
    /// Where it goes.
    pub cert_loc: CertLoc,
    /// What is done to it on the way.
    pub transform: Transform,
}

/// How the certificate serial number is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SnSource {
    /// `0x40` followed by the chip's 9-byte serial number.
    DeviceSn = 0x8,
    /// `0x40` followed by the 2-byte signer id.
    SignerId = 0x9,
    /// SHA-256(subject public key ‖ encoded dates), top two bits `01`.
    PubKeyHash = 0xA,
    /// SHA-256(chip serial number ‖ encoded dates), top two bits `01`.
    DeviceSnHash = 0xB,
}

/// The standard elements every X.509 definition places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StdCertElements {
    /// Subject public key (64 bytes, X ‖ Y).
    pub public_key: CertLoc,
    /// The signature: where the DER BIT STRING starts (it runs to the end).
    pub signature: CertLoc,
    /// notBefore.
    pub issue_date: CertLoc,
    /// notAfter.
    pub expire_date: CertLoc,
    /// Signer id, 4 hexadecimal characters.
    pub signer_id: CertLoc,
    /// Serial number.
    pub cert_sn: CertLoc,
    /// Authority key identifier (20 bytes).
    pub auth_key_id: CertLoc,
    /// Subject key identifier (20 bytes).
    pub subj_key_id: CertLoc,
}

/// A certificate definition (`atcacert_def_t`, X.509 compressed type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertDef {
    /// A short name for messages.
    pub name: &'static str,
    /// Template id (compressed certificate byte 69, high nibble).
    pub template_id: u8,
    /// Chain id (byte 69, low nibble).
    pub chain_id: u8,
    /// Slot of the private key this certificate certifies.
    pub private_key_slot: u8,
    /// Serial-number source (byte 70, high nibble).
    pub sn_source: SnSource,
    /// notBefore format.
    pub issue_date_format: DateFormat,
    /// notAfter format.
    pub expire_date_format: DateFormat,
    /// The TBSCertificate inside the template.
    pub tbs: CertLoc,
    /// Default validity in years.
    pub expire_years: u8,
    /// Where the subject public key is on the chip (64 bytes, or 72 with
    /// the chip's 4-byte padding before X and Y).
    pub public_key_loc: DeviceLoc,
    /// Where the 72-byte compressed certificate is on the chip.
    pub comp_cert_loc: DeviceLoc,
    /// Standard elements.
    pub std: StdCertElements,
    /// Definition-specific elements.
    pub elements: &'static [CertElement],
    /// The template certificate (DER).
    pub template: &'static [u8],
}

const fn cl(offset: usize, count: usize) -> CertLoc {
    CertLoc { offset, count }
}

const fn data(slot: u8, count: u16) -> DeviceLoc {
    DeviceLoc {
        zone: Zone::Data,
        slot,
        is_genkey: false,
        offset: 0,
        count,
    }
}

const fn config(offset: u16, count: u16) -> DeviceLoc {
    DeviceLoc {
        zone: Zone::Config,
        slot: 0,
        is_genkey: false,
        offset,
        count,
    }
}

const SLOT0_PUBKEY: DeviceLoc = DeviceLoc {
    zone: Zone::Data,
    slot: 0,
    is_genkey: true,
    offset: 0,
    count: 64,
};

/// The Trust&GO signer certificate definition (template 1): slot 11 holds
/// the signer's public key, slot 12 its compressed certificate.
pub const TNGTLS_SIGNER: CertDef = CertDef {
    name: "Trust&GO signer (template 1)",
    template_id: 1,
    chain_id: 0,
    private_key_slot: 0,
    sn_source: SnSource::PubKeyHash,
    issue_date_format: DateFormat::Rfc5280Utc,
    expire_date_format: DateFormat::Rfc5280Gen,
    tbs: cl(4, 430),
    expire_years: 31,
    public_key_loc: data(11, 72),
    comp_cert_loc: data(12, 72),
    std: StdCertElements {
        public_key: cl(266, 64),
        signature: cl(446, 64),
        issue_date: cl(128, 13),
        expire_date: cl(143, 15),
        signer_id: cl(235, 4),
        cert_sn: cl(15, 16),
        auth_key_id: cl(414, 20),
        subj_key_id: cl(381, 20),
    },
    elements: &[CertElement {
        id: "subject",
        device_loc: None,
        cert_loc: cl(158, 81),
        transform: Transform::None,
    }],
    template: &templates::TNGTLS_SIGNER_1,
};

const SN03: CertElement = CertElement {
    id: "SN03",
    device_loc: Some(config(0, 4)),
    cert_loc: cl(0, 8),
    transform: Transform::Bin2HexUpper,
};
const SN48: CertElement = CertElement {
    id: "SN48",
    device_loc: Some(config(8, 5)),
    cert_loc: cl(0, 10),
    transform: Transform::Bin2HexUpper,
};

/// The 608A Trust&GO device certificate definition (template 2, OTP codes
/// `wdNxAjae` and `Rsuy5YJh`, CryptoAuthLib's legacy support).
pub const TNGTLS_DEVICE_2: CertDef = CertDef {
    name: "Trust&GO device (template 2)",
    template_id: 2,
    chain_id: 0,
    private_key_slot: 0,
    sn_source: SnSource::PubKeyHash,
    issue_date_format: DateFormat::Rfc5280Utc,
    expire_date_format: DateFormat::Rfc5280Gen,
    tbs: cl(4, 415),
    expire_years: 28,
    public_key_loc: SLOT0_PUBKEY,
    comp_cert_loc: data(10, 72),
    std: StdCertElements {
        public_key: cl(257, 64),
        signature: cl(431, 64),
        issue_date: cl(128, 13),
        expire_date: cl(143, 15),
        signer_id: cl(120, 4),
        cert_sn: cl(15, 16),
        auth_key_id: cl(399, 20),
        subj_key_id: cl(366, 20),
    },
    elements: &[
        CertElement {
            cert_loc: cl(206, 8),
            ..SN03
        },
        CertElement {
            cert_loc: cl(214, 10),
            ..SN48
        },
    ],
    template: &templates::TNGTLS_DEVICE_2,
};

/// The 608B Trust&GO device certificate definition (template 3, OTP codes
/// `KQp2ZkD8` and `x6tjuZMy`): CN `sn` + the 9-byte serial number in
/// upper-case hex, and a subjectAltName `eui48_` + slot 5's 12 bytes.
pub const TNGTLS_DEVICE_3: CertDef = CertDef {
    name: "Trust&GO device (template 3)",
    template_id: 3,
    chain_id: 0,
    private_key_slot: 0,
    sn_source: SnSource::PubKeyHash,
    issue_date_format: DateFormat::Rfc5280Utc,
    expire_date_format: DateFormat::Rfc5280Gen,
    tbs: cl(4, 457),
    expire_years: 28,
    public_key_loc: SLOT0_PUBKEY,
    comp_cert_loc: data(10, 72),
    std: StdCertElements {
        public_key: cl(253, 64),
        signature: cl(473, 64),
        issue_date: cl(128, 13),
        expire_date: cl(143, 15),
        signer_id: cl(120, 4),
        cert_sn: cl(15, 16),
        auth_key_id: cl(441, 20),
        subj_key_id: cl(408, 20),
    },
    elements: &[
        CertElement {
            cert_loc: cl(208, 8),
            ..SN03
        },
        CertElement {
            cert_loc: cl(216, 10),
            ..SN48
        },
        CertElement {
            id: "EUI-48",
            device_loc: Some(data(5, 12)),
            cert_loc: cl(355, 12),
            transform: Transform::None,
        },
    ],
    template: &templates::TNGTLS_DEVICE_3,
};

/// Length of the certificate-definition code at the start of OTP.
pub const OTP_CODE_LEN: usize = 8;

/// The device definition CryptoAuthLib picks for OTP bytes 0–7
/// (`g_tng_cert_def_map` in `app/tng/tng_atca.c`, Trust&GO TLS entries,
/// legacy ones included as the PyPI build enables them).
pub fn device_def_for_otp(otp: &[u8]) -> Option<&'static CertDef> {
    let code = otp.get(..OTP_CODE_LEN)?;
    match code {
        b"KQp2ZkD8" | b"x6tjuZMy" => Some(&TNGTLS_DEVICE_3),
        b"wdNxAjae" | b"Rsuy5YJh" => Some(&TNGTLS_DEVICE_2),
        _ => None,
    }
}

impl CertDef {
    /// Every chip location the definition reads (public key, compressed
    /// certificate, elements), sorted and without duplicates.
    pub fn device_locs(&self) -> alloc::vec::Vec<DeviceLoc> {
        let mut v = alloc::vec![self.public_key_loc, self.comp_cert_loc];
        v.extend(self.elements.iter().filter_map(|e| e.device_loc));
        if matches!(self.sn_source, SnSource::DeviceSn | SnSource::DeviceSnHash) {
            v.push(config(0, 13));
        }
        v.sort();
        v.dedup();
        v
    }

    /// The OTP code a chip with this device definition carries (the first
    /// of CryptoAuthLib's codes for it); `None` for the signer definition.
    pub fn otp_code(&self) -> Option<&'static [u8; OTP_CODE_LEN]> {
        match self.template_id {
            3 => Some(b"KQp2ZkD8"),
            2 => Some(b"wdNxAjae"),
            _ => None,
        }
    }
}
