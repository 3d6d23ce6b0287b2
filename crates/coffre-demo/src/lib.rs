//! The lab's scenarios, run for real: emulated chips, the real driver, a
//! real Mosquitto, real TLS — each scenario with its evidence (a broker log
//! line, a client error, an MQTT reason code, bytes on a bus or a wire).
#![forbid(unsafe_code)]

pub mod proxy;
pub mod report;
mod scenarios;
mod setup;

pub use report::{stride, stride_table, table, ScenarioResult, StrideRow};
pub use scenarios::run_all;
pub use setup::{Lab, LabOptions};

/// What went wrong setting the lab up (a failed scenario is not an error:
/// it is a row marked FAIL).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Setup failed.
    #[error("demo setup: {0}")]
    Setup(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// Wrap any displayable error as a setup error.
pub(crate) fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Setup(format!("{what}: {e}"))
}
