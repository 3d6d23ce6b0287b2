//! The scenario table and the lab's STRIDE table.

use serde::Serialize;

use crate::scenario::Threat;
use crate::scenarios::REGISTRY;

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Short id, e.g. `wrong-chip`.
    pub id: &'static str,
    /// What is tried.
    pub name: String,
    /// Key mode (lab, offload) or "-" when it does not apply.
    pub mode: String,
    /// What should happen.
    pub expected: String,
    /// What happened.
    pub observed: String,
    /// The proof: a broker log line, a client error, an MQTT packet.
    pub evidence: String,
    /// Observed matches expected.
    pub pass: bool,
    /// Wall time of the scenario, ms.
    pub millis: u64,
}

/// One STRIDE row of the lab, with the scenarios that prove it.
#[derive(Debug, Clone, Serialize)]
pub struct StrideRow {
    /// Threat class.
    pub threat: &'static str,
    /// The lab's mitigation.
    pub mitigation: &'static str,
    /// Scenario ids that prove it.
    pub proven_by: Vec<&'static str>,
    /// All those scenarios passed.
    pub holds: bool,
    /// At least one of them ran (`coffre demo --only` may run none).
    #[serde(skip)]
    pub tried: bool,
}

/// The lab's STRIDE table: each threat with the scenarios of the registry
/// that prove it, and whether those that ran all passed.
pub fn stride(results: &[ScenarioResult]) -> Vec<StrideRow> {
    Threat::ALL
        .iter()
        .map(|&threat| {
            let proven_by: Vec<&'static str> = REGISTRY
                .iter()
                .filter(|s| s.proves.contains(&threat))
                .map(|s| s.id)
                .collect();
            let relevant: Vec<&ScenarioResult> = results
                .iter()
                .filter(|r| proven_by.contains(&r.id))
                .collect();
            StrideRow {
                threat: threat.name(),
                mitigation: threat.mitigation(),
                holds: !relevant.is_empty() && relevant.iter().all(|r| r.pass),
                tried: !relevant.is_empty(),
                proven_by,
            }
        })
        .collect()
}

/// Shorten evidence for a table cell: drop log timestamps and OpenSSL's
/// error-code prefixes, keep the words.
pub fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, part) in s.split(" | ").enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        let mut p = part.to_string();
        // "broker: 2026-11-25T03:20:50: …" → "broker: …"
        if let Some(idx) = p.find(": 20") {
            let rest = &p[idx + 2..];
            if rest.len() > 21 && rest.as_bytes()[10] == b'T' && &rest[19..21] == ": " {
                p = format!("{}: {}", &p[..idx], &rest[21..]);
            }
        }
        // "OpenSSL Error[0]: error:0A00007B:SSL routines::bad signature" → "OpenSSL: bad signature"
        while let Some(e) = p.find("error:") {
            let tail = &p[e..];
            match tail.find("::") {
                Some(k) if k < 60 => {
                    let head = p[..e]
                        .trim_end()
                        .trim_end_matches("OpenSSL Error[0]:")
                        .trim_end()
                        .to_string();
                    p = format!("{head} OpenSSL: {}", &tail[k + 2..]);
                }
                _ => break,
            }
        }
        out.push_str(p.trim());
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    if one_line.chars().count() <= n {
        one_line
    } else {
        let mut t: String = one_line.chars().take(n.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The scenario table as text. `wide` prints the evidence in full.
pub fn table(results: &[ScenarioResult], wide: bool) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<4} {:<34} {:<8} {:<34} {:<34} {}\n",
        "", "scenario", "mode", "expected", "observed", "evidence"
    ));
    for r in results {
        let ev = if wide {
            r.evidence.replace('\n', " ")
        } else {
            clip(&tidy(&r.evidence), 90)
        };
        s.push_str(&format!(
            "{:<4} {:<34} {:<8} {:<34} {:<34} {}\n",
            if r.pass { "PASS" } else { "FAIL" },
            clip(&r.name, 34),
            r.mode,
            clip(&r.expected, 34),
            clip(&r.observed, 34),
            ev
        ));
    }
    let passed = results.iter().filter(|r| r.pass).count();
    s.push_str(&format!(
        "\n{passed} passed, {} failed\n",
        results.len() - passed
    ));
    s
}

/// The STRIDE table as text.
pub fn stride_table(rows: &[StrideRow]) -> String {
    let mut s = String::from(
        "STRIDE (the lab's threat table), each row with the scenarios that prove it:\n",
    );
    for r in rows {
        s.push_str(&format!(
            "  {:<23} {:<6} {}\n  {:<23}        proven by: {}\n",
            r.threat,
            match (r.tried, r.holds) {
                (false, _) => "not run",
                (true, true) => "holds",
                (true, false) => "BROKEN",
            },
            r.mitigation,
            "",
            r.proven_by.join(", ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_keeps_the_words() {
        let e = "broker: 2026-11-25T03:20:50: OpenSSL Error[0]: error:0A00007B:SSL routines::bad signature | client: refused";
        assert_eq!(tidy(e), "broker: OpenSSL: bad signature | client: refused");
        assert_eq!(tidy("PUBACK 0x87"), "PUBACK 0x87");
    }
}
