//! The one error type of this crate.
//!
//! Every message says what failed and what to do next.

use std::path::PathBuf;

/// A boxed error from a signer callback (the secure element's Sign command).
pub type SignerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors of the PKI, CSR, lab-format and audit functions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A PKI directory, or one of its files, does not exist.
    #[error(
        "no PKI in {}: {} is missing; create one with `coffre pki init --dir {}`",
        dir.display(),
        missing.display(),
        dir.display()
    )]
    NotFound {
        /// The PKI directory.
        dir: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },

    /// `Pki::init` found an existing PKI and was not told to replace it.
    #[error(
        "{} already holds a PKI ({} exists); pass --force to replace it, which \
         invalidates every certificate it issued",
        dir.display(),
        existing.display()
    )]
    AlreadyExists {
        /// The PKI directory.
        dir: PathBuf,
        /// The first existing file found.
        existing: PathBuf,
    },

    /// A file could not be read, written or renamed.
    #[error("cannot {action} {}{}", path.display(), io_hint(source))]
    Io {
        /// What was being done: "read", "write", "create", "rename".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },

    /// A PKI file exists but its content is not what it should be.
    #[error(
        "{} is not a valid {what} ({detail}); restore it from a backup, or re-create \
         the PKI with `coffre pki init --force` and re-issue every certificate",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the file should hold.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },

    /// A file is larger than anything coffre writes there (a device, or
    /// a file that is not what it should be).
    #[error(
        "{} is larger than {limit} bytes, more than such a file can hold; give the right file",
        path.display()
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit, in bytes.
        limit: u64,
    },

    /// The same device id twice in one batch.
    #[error("device id {0:?} appears twice in the batch; give each device once")]
    DuplicateId(String),

    /// The CA key and the CA certificate do not belong together.
    #[error(
        "the CA key {} does not match the CA certificate {}; put back the pair that \
         belongs together, or re-create the PKI with `coffre pki init --force`",
        key.display(),
        cert.display()
    )]
    CaKeyMismatch {
        /// The CA key file.
        key: PathBuf,
        /// The CA certificate file.
        cert: PathBuf,
    },

    /// A device certificate exists already and `force` was not set.
    #[error(
        "a certificate for device {id:?} exists already ({}); pass --force to replace it, \
         and revoke the old one with `coffre pki revoke <serial>` if it must stop working",
        path.display()
    )]
    DeviceExists {
        /// The device id.
        id: String,
        /// The existing certificate file.
        path: PathBuf,
    },

    /// A device id (certificate CN) is not usable as a file name and MQTT username.
    #[error(
        "invalid device id {id:?}: {reason}; use 1 to 64 characters from A-Z a-z 0-9 . _ - \
         not starting with '.' or '-'"
    )]
    InvalidId {
        /// The id given.
        id: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A CA or broker name that cannot be used.
    #[error("invalid name {name:?}: {reason}; choose another name")]
    InvalidName {
        /// The name given.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// Validity options that make no sense.
    #[error(
        "invalid validity: {0}; give a positive number of days, or not_after later than not_before"
    )]
    InvalidValidity(String),

    /// A CSR could not be parsed.
    #[error("cannot parse the CSR: {0}; give a PKCS#10 request in DER or PEM form")]
    BadCsr(String),

    /// A CSR's self-signature does not verify.
    #[error(
        "the CSR's signature does not verify with the public key it contains ({0}); it was \
         altered or signed with another key: create it again with the device's own key \
         (`coffre provision --mode offload` makes one with the chip)"
    )]
    BadCsrSignature(String),

    /// A CSR uses an algorithm other than ECDSA P-256 with SHA-256.
    #[error("unsupported CSR: {0}; coffre issues only EC P-256 keys signed with ECDSA-SHA256")]
    UnsupportedCsr(String),

    /// A 64-byte X‖Y public key is not a point of P-256.
    #[error(
        "the public key is not a valid P-256 point; read it again from the chip \
         (GenKey mode 0x00 on the key slot)"
    )]
    InvalidPublicKey,

    /// The signer callback failed.
    #[error("the signer refused to sign; check the chip connection and the key slot")]
    Signer(#[source] SignerError),

    /// The signer returned a signature that does not verify with the public key.
    #[error(
        "the signature returned by the signer does not verify with the given public key; \
         the public key probably comes from another slot or another chip"
    )]
    SignatureMismatch,

    /// Nothing in the index matches a revocation target.
    #[error("no issued certificate has the id or serial {0:?}; list them with `coffre pki show`")]
    NotIssued(String),

    /// Every certificate matching a revocation target is revoked already.
    #[error("every certificate matching {0:?} is already revoked; nothing to do")]
    AlreadyRevoked(String),

    /// Certificate or CRL encoding failed.
    #[error("cannot encode the {what}: {detail}; this is a bug, please report it")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's message.
        detail: String,
    },

    /// A factory certificate chain does not verify (names, signatures,
    /// validity, CA flag): the text says which link fails.
    #[error("{0}")]
    FactoryChain(String),

    /// The device certificate's key is not the chip's slot 0 public key.
    #[error(
        "the device certificate's public key is not slot 0's public key: the certificate stored in \
         the chip does not belong to this chip's private key; do not trust this part"
    )]
    FactoryKeyMismatch,

    /// A certificate could not be parsed.
    #[error("cannot parse the certificate: {0}; give an X.509 certificate in DER or PEM form")]
    BadCertificate(String),

    /// The lab slot-8 blob would not fit in the slot.
    #[error(
        "the PKCS#8 key is {0} bytes, more than the 414 bytes slot 8 can hold after its \
         2-byte length; use an EC P-256 key (about 138 bytes)"
    )]
    LabKeyTooLarge(usize),

    /// The lab slot-8 blob is empty (length 0).
    #[error(
        "slot 8 holds no key (length prefix 0); provision one with `coffre provision --mode lab`"
    )]
    LabSlotEmpty,

    /// The lab slot-8 blob is erased (length 0xFFFF).
    #[error(
        "slot 8 is erased (length prefix 0xFFFF); provision a key with `coffre provision --mode lab`"
    )]
    LabSlotErased,

    /// The lab slot-8 length prefix points past the slot's end.
    #[error(
        "slot 8's length prefix says {len} bytes but only {available} follow it; the slot \
         content is damaged or is not in the lab format: provision it again"
    )]
    LabLengthPastSlot {
        /// Length from the prefix.
        len: usize,
        /// Bytes available after the prefix.
        available: usize,
    },

    /// The lab slot-8 DER is not a PKCS#8 EC P-256 private key.
    #[error(
        "slot 8's content is not a PKCS#8 EC P-256 private key ({0}); provision it again \
         with `coffre provision --mode lab`"
    )]
    LabNotPkcs8(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn encoding(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Error::Encoding {
            what,
            detail: detail.to_string(),
        }
    }
}

/// What to do about an OS error, for [`Error::Io`]: the error itself is
/// its source, printed after it.
fn io_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => " (check that the path exists)",
        K::PermissionDenied => " (check that you may access it)",
        K::ReadOnlyFilesystem => " (its file system is read-only: make changes on a writable copy)",
        K::StorageFull | K::QuotaExceeded => " (free some space, then run the command again)",
        _ => "",
    }
}
