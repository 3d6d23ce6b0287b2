//! The scenario table written by `coffre demo --json`: an array of
//! `{name, expected, observed, evidence, pass}`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One scenario's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
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
        };
    };
    let source = Some(path.display().to_string());
    let empty = |message: String| ScenarioTable {
        source: source.clone(),
        modified: None,
        scenarios: Vec::new(),
        message: Some(message),
    };
    let text = match std::fs::read_to_string(path) {
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
}
