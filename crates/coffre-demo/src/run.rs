//! Running scenarios: the context a case gets, and the runner that walks the
//! registry and turns outcomes into table rows.

use std::time::{Duration, Instant};

use coffre_broker::LogCursor;

use crate::report::ScenarioResult;
use crate::scenario::Scenario;
use crate::scenarios::REGISTRY;
use crate::setup::Lab;
use crate::{Error, Result};

/// How long a case waits for the broker line it expects.
pub const LOG_WAIT: Duration = Duration::from_secs(3);

/// What a case gets: the lab (PKI, chips, running broker) and its log.
pub struct Ctx<'a> {
    /// The lab.
    pub lab: &'a mut Lab,
}

impl Ctx<'_> {
    /// The position after every broker log line written so far: take it
    /// before acting, then look for what the action caused.
    pub fn log_mark(&self) -> LogCursor {
        self.lab.log.cursor()
    }

    /// The broker log lines written since `mark`.
    pub fn log_since(&self, mark: LogCursor) -> Vec<String> {
        self.lab.log.since(mark)
    }

    /// Wait (up to [`LOG_WAIT`]) for a broker log line after `mark`
    /// containing `needle`.
    pub fn wait_log(&self, mark: LogCursor, needle: &str) -> Option<String> {
        self.lab.log.wait_for(mark, needle, LOG_WAIT)
    }

    /// Whether a connection reached the broker since `mark`.
    pub fn new_connection_since(&self, mark: LogCursor) -> bool {
        self.log_since(mark)
            .iter()
            .any(|l| l.contains("New connection"))
    }
}

/// Which scenarios to run.
#[derive(Debug, Clone)]
pub struct Selection(Vec<&'static Scenario>);

impl Selection {
    /// Every scenario of the registry.
    pub fn all() -> Selection {
        Selection(REGISTRY.to_vec())
    }

    /// The scenarios named by `ids` (a scenario's id, or the id a row of a
    /// family is reported under), in the registry's order.
    pub fn only<S: AsRef<str>>(ids: &[S]) -> Result<Selection> {
        for id in ids {
            if crate::scenarios::find(id.as_ref()).is_none() {
                return Err(Error::UnknownScenario {
                    id: id.as_ref().to_string(),
                    valid: crate::scenarios::ids().join(", "),
                });
            }
        }
        Ok(Selection(
            REGISTRY
                .iter()
                .copied()
                .filter(|s| {
                    ids.iter()
                        .any(|id| s.id == id.as_ref() || s.row_ids().any(|r| r == id.as_ref()))
                })
                .collect(),
        ))
    }

    /// These scenarios, registered or not (a scenario being written can be
    /// tried before it joins the registry).
    pub fn of(scenarios: &[&'static Scenario]) -> Selection {
        Selection(scenarios.to_vec())
    }

    /// The scenarios, in run order.
    pub fn scenarios(&self) -> &[&'static Scenario] {
        &self.0
    }
}

/// Run the selected scenarios against the lab, every case in order.
/// Scenarios never abort the run: a failure is a row marked FAIL.
/// `progress` gets `PASS name (mode)` as each row ends.
pub fn run(
    lab: &mut Lab,
    selection: &Selection,
    progress: &mut dyn FnMut(&str),
) -> Vec<ScenarioResult> {
    let mut cx = Ctx { lab };
    let mut results = Vec::new();
    for scenario in selection.scenarios() {
        for case in scenario.cases {
            let t0 = Instant::now();
            let o = (case.run)(&mut cx, case);
            progress(&format!(
                "{} {} ({})",
                if o.pass { "PASS" } else { "FAIL" },
                case.name,
                case.mode.label()
            ));
            results.push(ScenarioResult {
                id: case.row_id.unwrap_or(scenario.id),
                name: case.name.to_string(),
                mode: case.mode.label().to_string(),
                expected: case.expected.to_string(),
                observed: o.observed,
                evidence: o.evidence.to_string(),
                pass: o.pass,
                millis: t0.elapsed().as_millis() as u64,
            });
        }
    }
    results
}

/// Run every scenario of the registry.
pub fn run_all(lab: &mut Lab, progress: &mut dyn FnMut(&str)) -> Vec<ScenarioResult> {
    run(lab, &Selection::all(), progress)
}
