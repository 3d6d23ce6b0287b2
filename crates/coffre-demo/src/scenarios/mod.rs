//! The registry: every scenario, one module each, in the order the demo
//! runs them. Adding a scenario is one new module here and one line in
//! [`registry!`] below (see the crate docs for a worked example).

use crate::scenario::Scenario;

/// Declare the scenario modules and list their `SCENARIO`s, in run order.
macro_rules! registry {
    ($($module:ident),* $(,)?) => {
        $(mod $module;)*
        /// Every scenario, in the order the demo runs them.
        pub static REGISTRY: &[&Scenario] = &[$(&$module::SCENARIO),*];
    };
}

registry! {
    chip_absent,
    wrong_chip,
    valid_chip,
    no_client_cert,
    foreign_ca,
    expired_cert,
    revoked_cert,
    acl,
    tls11,
    unlocked_chip,
    chip_pulled,
    broker_restart,
    bus_probe,
    encrypted_bus,
    tamper,
    disclosure,
    clientid_takeover,
    live_revocation,
    factory_identity,
    manifest_tamper,
    firmware_core,
}

/// What several scenarios share.
mod refused;

/// The scenario with this id, or the family that reports a row under it.
pub fn find(id: &str) -> Option<&'static Scenario> {
    REGISTRY.iter().copied().find(|s| s.id == id).or_else(|| {
        REGISTRY
            .iter()
            .copied()
            .find(|s| s.row_ids().any(|r| r == id))
    })
}

/// Every id `--only` accepts: each scenario's, then the row ids of
/// families, once each, in run order.
pub fn ids() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = REGISTRY.iter().map(|s| s.id).collect();
    for s in REGISTRY {
        for r in s.row_ids() {
            if !out.contains(&r) {
                out.push(r);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_every_scenario_has_rows() {
        let mut seen = Vec::new();
        for s in REGISTRY {
            assert!(!s.cases.is_empty(), "{} has no case", s.id);
            assert!(!seen.contains(&s.id), "{} twice", s.id);
            seen.push(s.id);
            for c in s.cases {
                assert!(!c.name.is_empty() && !c.expected.is_empty(), "{}", s.id);
            }
        }
        // A family's row ids never shadow another scenario.
        for s in REGISTRY {
            for r in s.row_ids() {
                assert!(r == s.id || !seen.contains(&r), "{r} reported by {}", s.id);
            }
        }
        assert_eq!(find("pub-sub").map(|s| s.id), Some("valid-chip"));
        assert!(find("nope").is_none());
        assert!(ids().contains(&"pub-sub"));
    }
}
