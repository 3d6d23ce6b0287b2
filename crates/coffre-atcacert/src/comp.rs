//! The 72-byte compressed certificate.

use crate::date::{decode_compressed, encode_compressed, Date};
use crate::def::CertDef;
use crate::Error;

/// A compressed certificate, as a Trust&GO chip stores it in slots 10 and 12.
///
/// | bytes | content |
/// |---|---|
/// | 0–63 | signature R ‖ S |
/// | 64–66 | issue year, month, day, hour and expire years (5/4/5/5/5 bits) |
/// | 67–68 | signer id |
/// | 69 | template id (high nibble), chain id (low nibble) |
/// | 70 | serial-number source (high nibble), format version (low nibble) |
/// | 71 | format 1/2: issue-year and expire-years high bits (high nibble); reserved |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompCert {
    /// ECDSA signature R ‖ S.
    pub signature: [u8; 64],
    /// notBefore, hour precision.
    pub issue_date: Date,
    /// Validity in years; 0 means no expiration (the format's max date).
    pub expire_years: u8,
    /// Signer id.
    pub signer_id: [u8; 2],
    /// Template id.
    pub template_id: u8,
    /// Chain id.
    pub chain_id: u8,
    /// Serial-number source code.
    pub sn_source: u8,
    /// Format version (0: years 2000–2031; 1: extended dates).
    pub format: u8,
    /// The reserved low nibble of byte 71, kept as read.
    pub reserved: u8,
}

impl CompCert {
    /// Decode 72 bytes. The dates must decode; the ids are not checked
    /// against a definition here (see [`CompCert::check_def`]).
    pub fn parse(bytes: &[u8]) -> Result<CompCert, Error> {
        let b: &[u8; 72] = bytes
            .try_into()
            .map_err(|_| Error::CompCertSize(bytes.len()))?;
        let format = b[70] & 0x0F;
        if format > 2 {
            return Err(Error::UnknownFormat(format));
        }
        if format == 2 {
            return Err(Error::Unsupported(
                "compressed format 2 (curves larger than P-256)",
            ));
        }
        let (issue_date, expire_years) = decode_compressed(b)?;
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[..64]);
        Ok(CompCert {
            signature,
            issue_date,
            expire_years,
            signer_id: [b[67], b[68]],
            template_id: b[69] >> 4,
            chain_id: b[69] & 0x0F,
            sn_source: b[70] >> 4,
            format,
            reserved: b[71] & 0x0F,
        })
    }

    /// A new compressed certificate for `def`, with a zero signature. The
    /// format is 0 unless the dates need the extended form (as
    /// `atcacert_get_comp_cert_ext` decides).
    pub fn new(def: &CertDef, issue_date: Date, signer_id: [u8; 2]) -> CompCert {
        let format = u8::from(issue_date.year > 2031 || def.expire_years > 31);
        CompCert {
            signature: [0; 64],
            issue_date: Date {
                minute: 0,
                second: 0,
                ..issue_date
            },
            expire_years: def.expire_years,
            signer_id,
            template_id: def.template_id,
            chain_id: def.chain_id,
            sn_source: def.sn_source as u8,
            format,
            reserved: 0,
        }
    }

    /// The 72 bytes.
    pub fn to_bytes(&self) -> Result<[u8; 72], Error> {
        let mut b = [0u8; 72];
        b[..64].copy_from_slice(&self.signature);
        b[71] = self.reserved & 0x0F;
        encode_compressed(&self.issue_date, self.expire_years, self.format, &mut b)?;
        b[67..69].copy_from_slice(&self.signer_id);
        b[69] = (self.template_id << 4) | (self.chain_id & 0x0F);
        b[70] = (self.sn_source << 4) | (self.format & 0x0F);
        Ok(b)
    }

    /// Refuse a compressed certificate made for another definition
    /// (`ATCACERT_E_WRONG_CERT_DEF`).
    pub fn check_def(&self, def: &CertDef) -> Result<(), Error> {
        if self.template_id != def.template_id
            || self.chain_id != def.chain_id
            || self.sn_source != def.sn_source as u8
        {
            return Err(Error::WrongCertDef {
                template_id: self.template_id,
                chain_id: self.chain_id,
                sn_source: self.sn_source,
            });
        }
        Ok(())
    }
}
