//! What a scenario is: its declaration (id, rows, key modes, STRIDE rows)
//! and what running it gives (an [`Outcome`] with typed [`Evidence`]).

use std::fmt;

use coffre_agent::boot::KeyMode;
use serde::Serialize;

use crate::run::Ctx;

/// The key mode a row runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The lab's way: the key was written into slot 8 and is read into RAM.
    Lab,
    /// The key was born in the chip (slot 0), which signs.
    Offload,
    /// The key mode plays no part (no chip, or the chip is not reached);
    /// devices that boot anyway boot in offload mode. Shown as `-`.
    Any,
}

impl Mode {
    /// The word in the table's mode column.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Lab => "lab",
            Mode::Offload => "offload",
            Mode::Any => "-",
        }
    }

    /// How a device boots in this mode.
    pub fn key_mode(self) -> KeyMode {
        match self {
            Mode::Lab => KeyMode::Lab,
            Mode::Offload | Mode::Any => KeyMode::Offload { slot: 0 },
        }
    }
}

/// A row of the lab's STRIDE table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Threat {
    /// Spoofing identity.
    Spoofing,
    /// Tampering with data.
    Tampering,
    /// Repudiation.
    Repudiation,
    /// Information disclosure.
    InformationDisclosure,
    /// Denial of service.
    DenialOfService,
    /// Elevation of privilege.
    ElevationOfPrivilege,
}

impl Threat {
    /// Every threat, in the table's order.
    pub const ALL: [Threat; 6] = [
        Threat::Spoofing,
        Threat::Tampering,
        Threat::Repudiation,
        Threat::InformationDisclosure,
        Threat::DenialOfService,
        Threat::ElevationOfPrivilege,
    ];

    /// The threat class as the table names it.
    pub fn name(self) -> &'static str {
        match self {
            Threat::Spoofing => "Spoofing",
            Threat::Tampering => "Tampering",
            Threat::Repudiation => "Repudiation",
            Threat::InformationDisclosure => "Information disclosure",
            Threat::DenialOfService => "Denial of service",
            Threat::ElevationOfPrivilege => "Elevation of privilege",
        }
    }

    /// The lab's mitigation.
    pub fn mitigation(self) -> &'static str {
        match self {
            Threat::Spoofing => {
                "key in the secure element; broker checks the chain and the handshake signature"
            }
            Threat::Tampering => {
                "TLS integrity: a modified record breaks the MAC and the broker drops the link"
            }
            Threat::Repudiation => {
                "only the holder of the chip's key can produce the handshake signature"
            }
            Threat::InformationDisclosure => {
                "TLS session: payloads are opaque to network sniffers"
            }
            Threat::DenialOfService => {
                "mTLS rejects unauthorised clients before any MQTT processing; QoS 1 and the queue survive outages"
            }
            Threat::ElevationOfPrivilege => {
                "each identity has exactly its ACL rights; the key is not extractable from the chip (offload)"
            }
        }
    }
}

/// A scenario: one thing tried against the lab, in one or more cases (one
/// row of the table each). Declared as a `const` in its own module under
/// `src/scenarios/` and listed once in the registry.
#[derive(Debug)]
pub struct Scenario {
    /// Its id (`--only` takes it; the STRIDE table names it).
    pub id: &'static str,
    /// The STRIDE rows it proves.
    pub proves: &'static [Threat],
    /// Its rows, in the order they run.
    pub cases: &'static [Case],
}

impl Scenario {
    /// The ids its rows are reported under (its own, and any other a case
    /// of a family reports as).
    pub fn row_ids(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.cases.iter().map(|c| c.row_id.unwrap_or(self.id))
    }

    /// The key modes its cases run in.
    pub fn modes(&self) -> Vec<Mode> {
        let mut m: Vec<Mode> = Vec::new();
        for c in self.cases {
            if !m.contains(&c.mode) {
                m.push(c.mode);
            }
        }
        m
    }
}

/// One row of a scenario: what is tried, in which key mode, what should
/// happen, and the function that tries it.
pub struct Case {
    /// What is tried (the table's scenario column).
    pub name: &'static str,
    /// The key mode.
    pub mode: Mode,
    /// What should happen.
    pub expected: &'static str,
    /// The id the row is reported under when it is not the scenario's (a
    /// family of scenarios sharing one module).
    pub row_id: Option<&'static str>,
    /// Run it. A failure is an [`Outcome`] with `pass: false`, never a panic.
    pub run: fn(&mut Ctx<'_>, &Case) -> Outcome,
}

impl Case {
    /// A case reported under its scenario's id.
    pub const fn new(
        name: &'static str,
        mode: Mode,
        expected: &'static str,
        run: fn(&mut Ctx<'_>, &Case) -> Outcome,
    ) -> Case {
        Case {
            name,
            mode,
            expected,
            row_id: None,
            run,
        }
    }

    /// The same case, reported under `id`.
    pub const fn reported_as(mut self, id: &'static str) -> Case {
        self.row_id = Some(id);
        self
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("expected", &self.expected)
            .field("row_id", &self.row_id)
            .finish_non_exhaustive()
    }
}

/// What a case showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Observed matches expected.
    pub pass: bool,
    /// What happened, in a few words.
    pub observed: String,
    /// The proof.
    pub evidence: Evidence,
}

impl Outcome {
    /// An outcome.
    pub fn new(pass: bool, observed: impl Into<String>, evidence: Evidence) -> Outcome {
        Outcome {
            pass,
            observed: observed.into(),
            evidence,
        }
    }

    /// The case could not be tried (its setup failed): a failed row.
    pub fn not_tried(why: impl Into<String>) -> Outcome {
        Outcome::new(false, why, Evidence::default())
    }
}

/// Where a piece of evidence comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A line of the broker's log.
    Broker,
    /// The device program's error or report.
    Client,
    /// The subscriber's view of what it received.
    Subscriber,
    /// The device's five-step boot.
    Boot,
    /// How the MQTT session ended.
    Session,
    /// The device seen from the network side.
    Device,
    /// The `openssl` command line tool.
    Openssl,
    /// What the scenario measured or counted itself.
    Measured,
}

impl Source {
    fn label(self) -> Option<&'static str> {
        match self {
            Source::Broker => Some("broker"),
            Source::Client => Some("client"),
            Source::Subscriber => Some("subscriber"),
            Source::Boot => Some("boot"),
            Source::Session => Some("session"),
            Source::Device => Some("device"),
            Source::Openssl => Some("openssl"),
            Source::Measured => None,
        }
    }
}

/// The proof of an outcome: pieces of evidence, each with its source.
/// Displayed as `broker: … | client: …`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The pieces, in order.
    pub parts: Vec<(Source, String)>,
}

impl Evidence {
    /// Add a piece.
    pub fn with(mut self, source: Source, text: impl Into<String>) -> Evidence {
        self.parts.push((source, text.into()));
        self
    }

    /// Evidence from a broker log line.
    pub fn broker(line: impl Into<String>) -> Evidence {
        Evidence::default().with(Source::Broker, line)
    }

    /// Evidence from the device program.
    pub fn client(text: impl Into<String>) -> Evidence {
        Evidence::default().with(Source::Client, text)
    }

    /// A fact the scenario measured.
    pub fn measured(text: impl Into<String>) -> Evidence {
        Evidence::default().with(Source::Measured, text)
    }

    /// The pieces from `source`.
    pub fn from_source(&self, source: Source) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .filter(move |(s, _)| *s == source)
            .map(|(_, t)| t.as_str())
    }

    /// Nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (source, text)) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            match source.label() {
                Some(l) => write!(f, "{l}: {text}")?,
                None => f.write_str(text)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_reads_as_before() {
        let e = Evidence::broker("bad signature").with(Source::Client, "refused");
        assert_eq!(e.to_string(), "broker: bad signature | client: refused");
        let e = Evidence::measured("SUBACK Granted").with(Source::Broker, "x");
        assert_eq!(e.to_string(), "SUBACK Granted | broker: x");
        assert_eq!(e.from_source(Source::Broker).collect::<Vec<_>>(), ["x"]);
        assert_eq!(Evidence::default().to_string(), "");
    }
}
