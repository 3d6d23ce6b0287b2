//! Errors of provisioning, each saying what to do next.

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The chip did not answer or refused a command.
    #[error("{what}")]
    Chip {
        /// What was being done.
        what: String,
        /// The driver's error text.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The chip is absent (no ACK at its address).
    #[error("{0}")]
    NoChip(String),
    /// PKI failure.
    #[error(transparent)]
    Pki(#[from] coffre_pki::Error),
    /// A state the requested operation cannot start from.
    #[error("{0}")]
    State(String),
    /// The person said no at a confirmation.
    #[error("stopped before '{0}': nothing irreversible was done at that step; run again and answer yes (or pass --yes) to go on")]
    Declined(String),
    /// What was read back differs from what was written.
    #[error("read-back mismatch after writing {0}: the chip does not hold what was written; nothing was locked — check the bus and run again")]
    ReadBack(String),
    /// Manifest problems.
    #[error("{0}")]
    Manifest(String),
    /// A factory certificate stored in the chip does not rebuild.
    #[error("{what}")]
    FactoryCerts {
        /// Which certificate or slot.
        what: String,
        /// Why.
        source: coffre_atcacert::Error,
    },
    /// File IO.
    #[error("file {path}")]
    Io {
        /// File concerned.
        path: std::path::PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// Wrap a driver error, keeping "chip absent" distinguishable.
    pub fn chip<E: core::fmt::Debug>(what: &str, e: coffre_driver::Error<E>) -> Error {
        match e {
            coffre_driver::Error::NotPresent { .. } => Error::NoChip(format!("{what}: {e}")),
            other => Error::Chip {
                what: what.to_string(),
                source: other.to_string().into(),
            },
        }
    }

    /// The chip's factory identity is refused: its certificates do not
    /// rebuild, do not chain to the trusted root, or do not belong to its
    /// slot 0 key.
    pub fn is_factory_refusal(&self) -> bool {
        matches!(
            self,
            Error::FactoryCerts { .. }
                | Error::Pki(coffre_pki::Error::FactoryChain(_))
                | Error::Pki(coffre_pki::Error::FactoryKeyMismatch)
        )
    }

    /// True when the chip was not found.
    pub fn is_no_chip(&self) -> bool {
        matches!(self, Error::NoChip(_))
    }
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
