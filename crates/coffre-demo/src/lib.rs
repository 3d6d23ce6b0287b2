//! The lab's scenarios, run for real: emulated chips, the real driver, a
//! real Mosquitto, real TLS — each scenario with its evidence (a broker log
//! line, a client error, an MQTT reason code, bytes on a bus or a wire).
//!
//! Set the lab up (a PKI, emulated chips provisioned in both key modes, a
//! mosquitto on a free loopback port), run scenarios from the registry, and
//! print the table and the STRIDE table:
//!
//! ```
//! use coffre_demo::{run, stride, stride_table, table, Lab, LabOptions, Selection};
//!
//! let dir = tempfile::tempdir()?;
//! let mut lab = Lab::setup(&LabOptions { dir: dir.path().into() }, &mut |_| {})?;
//! let only = Selection::only(&["acl", "wrong-chip"])?;
//! let results = run(&mut lab, &only, &mut |step| eprintln!("{step}"));
//! assert_eq!(results.len(), 3); // wrong-chip in lab and offload mode, then acl
//! assert!(results.iter().all(|r| r.pass), "{}", table(&results, true));
//! assert!(results[2].evidence.contains("0x87"));
//! print!("{}{}", table(&results, false), stride_table(&stride(&results)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Scenarios and the registry
//!
//! A [`Scenario`] is a unit: its id, the STRIDE rows it proves
//! ([`Threat`]), and its cases — one row of the table each, with what is
//! tried, the key [`Mode`] it runs in, what should happen, and the function
//! that tries it and returns an [`Outcome`] with typed [`Evidence`]. Each
//! lives in its own module under `src/scenarios/`; [`REGISTRY`] lists them
//! in run order. The runner ([`run`]), the tables ([`table`],
//! [`stride`]), `coffre demo --only` and the web explorer's scenario view
//! all read the registry.
//!
//! While a scenario runs, the broker log is followed by one reader
//! ([`coffre_broker::LogFollower`]): take a mark with [`Ctx::log_mark`]
//! before acting, then wait for the line the action should cause with
//! [`Ctx::wait_log`].
//!
//! # Adding a scenario: a worked example
//!
//! Say the subscriber's certificate should not let it write readings (its
//! ACL grants `read` only). Write `src/scenarios/subscriber_writes.rs`:
//!
//! ```
//! use coffre_demo::device::{publish_once, Device};
//! use coffre_demo::setup::SUB_ID;
//! use coffre_demo::{Case, Ctx, Evidence, Mode, Outcome, Scenario, Source, Threat};
//!
//! pub(crate) const SCENARIO: Scenario = Scenario {
//!     id: "subscriber-writes",
//!     proves: &[Threat::ElevationOfPrivilege],
//!     cases: &[Case::new(
//!         "subscriber publishes a reading",
//!         Mode::Offload,
//!         "MQTT 5 PUBACK 0x87 Not authorized",
//!         run,
//!     )],
//! };
//!
//! fn run(cx: &mut Ctx<'_>, case: &Case) -> Outcome {
//!     let mark = cx.log_mark();
//!     let dev = Device::boot(cx.lab, SUB_ID, case.mode, SUB_ID, false);
//!     let run = publish_once(dev, SUB_ID, cx.lab.broker_addr, |_| {});
//!     // The broker names the client by its certificate: u'm5stack'.
//!     let line = cx.wait_log(mark, "u'm5stack'");
//!     let reason = run.pubacks.first().map(|p| p.1);
//!     Outcome::new(
//!         reason == Some(0x87),
//!         match reason {
//!             Some(r) => format!("PUBACK 0x{r:02X}"),
//!             None => format!("no PUBACK: {}", run.error.unwrap_or_default()),
//!         },
//!         Evidence::measured(format!("PUBACK reason 0x{:02X}", reason.unwrap_or(0)))
//!             .with(Source::Broker, line.unwrap_or_default()),
//!     )
//! }
//! # // Run it here as the registry would.
//! # let dir = tempfile::tempdir()?;
//! # let mut lab = coffre_demo::Lab::setup(&coffre_demo::LabOptions { dir: dir.path().into() }, &mut |_| {})?;
//! # let r = coffre_demo::run(&mut lab, &coffre_demo::Selection::of(&[&SCENARIO]), &mut |_| {});
//! # assert!(r[0].pass, "{}", coffre_demo::table(&r, true));
//! # assert!(r[0].evidence.contains("u'm5stack'"), "{}", r[0].evidence);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! then add its module name to the `registry!` list in
//! `src/scenarios/mod.rs`, where it should run:
//!
//! ```text
//! registry! {
//!     ...
//!     acl,
//!     subscriber_writes,
//!     tls11,
//!     ...
//! }
//! ```
//!
//! That is all: `coffre demo` runs it and prints its row,
//! `coffre demo --only subscriber-writes` runs it alone, the STRIDE table
//! counts it under "Elevation of privilege", and the web explorer lists
//! it. Cases of one scenario that differ only by mode share one function
//! that reads `case.mode`; a family whose rows have other ids reports them
//! with [`Case::reported_as`].
#![forbid(unsafe_code)]

pub mod device;
pub mod proxy;
pub mod report;
mod run;
mod scenario;
mod scenarios;
pub mod setup;

pub use report::{stride, stride_table, table, ScenarioResult, StrideRow};
pub use run::{run, run_all, Ctx, Selection, LOG_WAIT};
pub use scenario::{Case, Evidence, Mode, Outcome, Scenario, Source, Threat};
pub use scenarios::{find, ids, REGISTRY};
pub use setup::{Lab, LabOptions};

/// What a scenario module needs.
pub(crate) mod prelude {
    pub use crate::run::Ctx;
    pub use crate::scenario::{Case, Evidence, Mode, Outcome, Scenario, Source, Threat};
}

/// What went wrong setting the lab up or choosing scenarios (a failed
/// scenario is not an error: it is a row marked FAIL).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Setup failed.
    #[error("demo setup: {0}")]
    Setup(String),
    /// `--only` named a scenario the registry does not have.
    #[error("unknown scenario '{id}': the scenarios are {valid}")]
    UnknownScenario {
        /// The id asked for.
        id: String,
        /// The valid ids, comma-separated.
        valid: String,
    },
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;

/// Wrap any displayable error as a setup error.
pub(crate) fn setup<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::Setup(format!("{what}: {e}"))
}
