//! The crate's one error type.

use core::fmt;

/// Why a certificate could not be rebuilt, made or checked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A compressed certificate is not 72 bytes long.
    CompCertSize(usize),
    /// The compressed certificate names another template, chain or
    /// serial-number source than the definition (CryptoAuthLib's
    /// `ATCACERT_E_WRONG_CERT_DEF`): the slot holds no certificate of this
    /// kind, or it is corrupted.
    WrongCertDef {
        /// Template id in the compressed certificate.
        template_id: u8,
        /// Chain id in the compressed certificate.
        chain_id: u8,
        /// Serial-number source in the compressed certificate.
        sn_source: u8,
    },
    /// The compressed certificate's format version is not 0, 1 or 2.
    UnknownFormat(u8),
    /// A date in the compressed certificate or given to [`crate::issue`] is
    /// not a valid date, or does not fit the certificate's date format.
    InvalidDate,
    /// A chip location the definition needs was not provided.
    MissingDeviceData(crate::DeviceLoc),
    /// Data for a location is shorter than the location.
    ShortDeviceData(crate::DeviceLoc),
    /// The public key is not a point of the P-256 curve (an empty slot reads
    /// as zeros or ones).
    InvalidPublicKey,
    /// The definition asks for something this crate does not implement
    /// (a transform, a serial-number source, a date format).
    Unsupported(&'static str),
    /// The certificate or template is not the DER this crate expects.
    BadDer(&'static str),
    /// The signature does not verify with the issuer's public key.
    BadSignature,
    /// The signing callback failed.
    Signing,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CompCertSize(n) => write!(f, "a compressed certificate is 72 bytes, got {n}"),
            Error::WrongCertDef {
                template_id,
                chain_id,
                sn_source,
            } => write!(
                f,
                "the compressed certificate does not match the certificate definition \
                 (template {template_id}, chain {chain_id}, serial-number source {sn_source:#x}): \
                 the slot is empty, corrupted or holds another kind of certificate"
            ),
            Error::UnknownFormat(v) => {
                write!(f, "unknown compressed certificate format version {v}")
            }
            Error::InvalidDate => f.write_str("the compressed certificate holds an invalid date"),
            Error::MissingDeviceData(loc) => write!(f, "no data read from the chip for {loc}"),
            Error::ShortDeviceData(loc) => write!(f, "too few bytes read from the chip for {loc}"),
            Error::InvalidPublicKey => f.write_str("the public key is not a valid P-256 point"),
            Error::Unsupported(what) => write!(f, "not supported: {what}"),
            Error::BadDer(what) => write!(f, "malformed certificate: {what}"),
            Error::BadSignature => {
                f.write_str("the certificate's signature does not verify with the issuer's key")
            }
            Error::Signing => f.write_str("signing the certificate failed"),
        }
    }
}

impl core::error::Error for Error {}
