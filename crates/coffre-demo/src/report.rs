//! The scenario table and the lab's STRIDE table.

use serde::Serialize;

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
}

/// The lab's STRIDE table mapped onto scenario ids.
pub fn stride(results: &[ScenarioResult]) -> Vec<StrideRow> {
    let rows: [(&str, &str, &[&str]); 6] = [
        (
            "Spoofing",
            "key in the secure element; broker checks the chain and the handshake signature",
            &["valid-chip", "wrong-chip", "no-client-cert", "foreign-ca", "expired-cert", "revoked-cert"],
        ),
        (
            "Tampering",
            "TLS integrity: a modified record breaks the MAC and the broker drops the link",
            &["tamper"],
        ),
        (
            "Repudiation",
            "only the holder of the chip's key can produce the handshake signature",
            &["wrong-chip", "valid-chip", "bus-probe"],
        ),
        (
            "Information disclosure",
            "TLS session: payloads are opaque to network sniffers",
            &["disclosure", "tls-1.1"],
        ),
        (
            "Denial of service",
            "mTLS rejects unauthorised clients before any MQTT processing; QoS 1 and the queue survive outages",
            &["no-client-cert", "chip-absent", "broker-restart", "chip-pulled"],
        ),
        (
            "Elevation of privilege",
            "each identity has exactly its ACL rights; the key is not extractable from the chip (offload)",
            &["acl", "bus-probe", "unlocked-chip"],
        ),
    ];
    rows.iter()
        .map(|(threat, mitigation, ids)| {
            let relevant: Vec<&ScenarioResult> =
                results.iter().filter(|r| ids.contains(&r.id)).collect();
            StrideRow {
                threat,
                mitigation,
                proven_by: ids.to_vec(),
                holds: !relevant.is_empty() && relevant.iter().all(|r| r.pass),
            }
        })
        .collect()
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
            clip(&r.evidence, 70)
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
            if r.holds { "holds" } else { "BROKEN" },
            r.mitigation,
            "",
            r.proven_by.join(", ")
        ));
    }
    s
}
