//! The scenario table written by `coffre demo --json`: an array of
//! `{name, expected, observed, evidence, pass}` (with the scenario `id` when
//! the demo wrote it), read next to the demo's scenario registry: what each
//! registered scenario proves and how it fared in the table.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// The scenario's id in the registry, when the table gives it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// What was tried ("wrong chip").
    pub name: String,
    /// What should happen.
    #[serde(default)]
    pub expected: String,
    /// What happened.
    #[serde(default)]
    pub observed: String,
    /// The proof: a broker log line, a client error, a packet (text or any
    /// JSON value).
    #[serde(default)]
    pub evidence: serde_json::Value,
    /// Observed matches expected.
    #[serde(default)]
    pub pass: bool,
}

/// The answer of `GET /api/scenarios`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScenarioTable {
    /// The file read, if one is configured.
    pub source: Option<String>,
    /// When the file was last written (RFC 3339).
    pub modified: Option<String>,
    /// The scenarios, in the file's order.
    pub scenarios: Vec<Scenario>,
    /// Why the list is empty, when it is.
    pub message: Option<String>,
    /// Every scenario of the demo's registry, with its verdict in this table.
    pub registry: Vec<Registered>,
}

/// A scenario of the demo's registry, as the explorer lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registered {
    /// Its id (`coffre demo --only ID`).
    pub id: &'static str,
    /// The STRIDE rows it proves.
    pub proves: Vec<&'static str>,
    /// Its rows: what is tried, in which key mode, what should happen.
    pub cases: Vec<RegisteredCase>,
    /// Its verdict in the table: `pass`, `fail` or `not run`.
    pub verdict: &'static str,
}

/// One row a registered scenario produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredCase {
    /// What is tried.
    pub name: &'static str,
    /// Key mode (`lab`, `offload`, `-`).
    pub mode: &'static str,
    /// What should happen.
    pub expected: &'static str,
}

/// The registry, each scenario judged by the table's rows reported under
/// its ids.
fn registry(rows: &[Scenario]) -> Vec<Registered> {
    coffre_demo::REGISTRY
        .iter()
        .map(|s| {
            let ids: Vec<&str> = s.row_ids().collect();
            let mine: Vec<&Scenario> = rows
                .iter()
                .filter(|r| ids.contains(&r.id.as_str()))
                .collect();
            Registered {
                id: s.id,
                proves: s.proves.iter().map(|t| t.name()).collect(),
                cases: s
                    .cases
                    .iter()
                    .map(|c| RegisteredCase {
                        name: c.name,
                        mode: c.mode.label(),
                        expected: c.expected,
                    })
                    .collect(),
                verdict: if mine.is_empty() {
                    "not run"
                } else if mine.iter().all(|r| r.pass) {
                    "pass"
                } else {
                    "fail"
                },
            }
        })
        .collect()
}

/// Read the table at `path` (`None`: none configured). A missing or
/// unreadable file gives an empty table with a message saying what to do.
pub fn load(path: Option<&Path>) -> ScenarioTable {
    let Some(path) = path else {
        return ScenarioTable {
            source: None,
            modified: None,
            scenarios: Vec::new(),
            message: Some(
                "no scenario table configured: run `coffre demo --json FILE` and start the explorer with that file"
                    .into(),
            ),
            registry: registry(&[]),
        };
    };
    let source = Some(path.display().to_string());
    let empty = |message: String| ScenarioTable {
        source: source.clone(),
        modified: None,
        scenarios: Vec::new(),
        message: Some(message),
        registry: registry(&[]),
    };
    // A scenario table is a few kilobytes; 4 MiB is far above any real one.
    let text = match coffre_fs::read_limited(path, 4 << 20).and_then(|b| {
        String::from_utf8(b)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    }) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return empty(format!(
                "{} does not exist yet: run `coffre demo --json {}` to write it",
                path.display(),
                path.display()
            ))
        }
        Err(e) => return empty(format!("{} could not be read: {e}", path.display())),
    };
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .map(|t| {
            time::OffsetDateTime::from(t)
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        });
    // Either the array itself or an object holding it under "scenarios".
    let parsed = serde_json::from_str::<Vec<Scenario>>(&text).or_else(|e| {
        #[derive(Deserialize)]
        struct Wrapped {
            scenarios: Vec<Scenario>,
        }
        serde_json::from_str::<Wrapped>(&text)
            .map(|w| w.scenarios)
            .map_err(|_| e)
    });
    match parsed {
        Ok(scenarios) => ScenarioTable {
            message: scenarios
                .is_empty()
                .then(|| "the scenario table is empty".to_string()),
            source,
            modified,
            registry: registry(&scenarios),
            scenarios,
        },
        Err(e) => empty(format!(
            "{} is not a scenario table ({e}); expected an array of {{name, expected, observed, evidence, pass}}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_bad_and_good_files() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(None).message.is_some());
        let p = dir.path().join("s.json");
        let t = load(Some(&p));
        assert!(t.scenarios.is_empty());
        assert!(t.message.unwrap().contains("does not exist"));
        std::fs::write(&p, "{").unwrap();
        assert!(load(Some(&p))
            .message
            .unwrap()
            .contains("not a scenario table"));
        std::fs::write(
            &p,
            r#"[{"name":"valid chip","expected":"SUBACK","observed":"SUBACK","evidence":"granted QoS 1","pass":true}]"#,
        )
        .unwrap();
        let t = load(Some(&p));
        assert_eq!(t.scenarios.len(), 1);
        assert!(t.scenarios[0].pass);
        assert!(t.message.is_none() && t.modified.is_some());
        std::fs::write(&p, r#"{"scenarios":[{"name":"x","pass":false}]}"#).unwrap();
        assert_eq!(load(Some(&p)).scenarios[0].name, "x");
    }

    #[test]
    fn the_registry_is_judged_by_the_rows_under_its_ids() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let t = load(Some(&p));
        let ids: Vec<&str> = t.registry.iter().map(|r| r.id).collect();
        assert_eq!(
            ids,
            coffre_demo::REGISTRY
                .iter()
                .map(|s| s.id)
                .collect::<Vec<_>>()
        );
        assert!(t.registry.iter().all(|r| r.verdict == "not run"));
        // pub-sub is a row of the valid-chip family.
        std::fs::write(
            &p,
            r#"{"scenarios":[
                {"id":"acl","name":"publish outside the ACL","pass":true},
                {"id":"valid-chip","name":"3. valid chip","pass":true},
                {"id":"pub-sub","name":"4. publisher → subscriber","pass":false}]}"#,
        )
        .unwrap();
        let t = load(Some(&p));
        let verdict = |id: &str| t.registry.iter().find(|r| r.id == id).unwrap().verdict;
        assert_eq!(verdict("acl"), "pass");
        assert_eq!(verdict("valid-chip"), "fail");
        assert_eq!(verdict("tamper"), "not run");
        let acl = t.registry.iter().find(|r| r.id == "acl").unwrap();
        assert_eq!(acl.proves, ["Elevation of privilege"]);
        assert_eq!(acl.cases[0].mode, "offload");
        assert_eq!(t.scenarios[0].id, "acl");
    }
}
