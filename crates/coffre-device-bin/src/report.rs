//! Every message to the user, from one place: boot steps, events, the
//! summary, and the one error line at the end.

use std::error::Error as StdError;
use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use coffre_agent::{Event, PublisherSummary};

/// Why the program stops, and with which exit code.
#[derive(Debug)]
pub struct Failure {
    message: String,
    source: Option<Box<dyn StdError + Send + Sync>>,
    code: u8,
}

impl Failure {
    /// A file or device that could not be used.
    pub fn io(message: impl Into<String>, e: impl StdError + Send + Sync + 'static) -> Self {
        Self::other(message, e)
    }

    /// Anything else, with its cause.
    pub fn other(message: impl Into<String>, e: impl StdError + Send + Sync + 'static) -> Self {
        Failure {
            message: message.into(),
            source: Some(Box::new(e)),
            code: 1,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Every cause below `e`, joined as the error line shows them ("a: b"):
/// the whole chain, not only the first link (an image that cannot be read
/// says why, down to the OS error).
fn causes(e: &dyn StdError) -> Option<Box<dyn StdError + Send + Sync>> {
    let mut parts = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    (!parts.is_empty()).then(|| parts.join(": ").into())
}

impl From<coffre_agent::Error> for Failure {
    fn from(e: coffre_agent::Error) -> Self {
        Failure {
            message: e.to_string(),
            code: if e.is_chip_gone() { 3 } else { 1 },
            source: causes(&e),
        }
    }
}

impl From<coffre_device_bin::bus::OpenError> for Failure {
    fn from(e: coffre_device_bin::bus::OpenError) -> Self {
        Failure {
            message: e.to_string(),
            code: if e.is_unsupported() { 2 } else { 1 },
            source: causes(&e),
        }
    }
}

/// Read a file the program needs.
pub fn read(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .map_err(|e| Failure::io(format!("cannot read {what}: {}", path.display()), e))
}

/// Where messages go (stderr), and how many.
pub struct Out {
    quiet: bool,
}

impl Out {
    /// Messages on, or only failures.
    pub fn new(quiet: bool) -> Self {
        Out { quiet }
    }

    fn say(&self, line: fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Something the user may want to know (an address read another way).
    pub fn note(&self, msg: &str) {
        self.say(format_args!("note: {msg}"));
    }

    /// The boot starts.
    pub fn boot_start(&self, mode: &str, bus: &impl fmt::Display) {
        self.say(format_args!("boot ({mode} mode, {bus}):"));
    }

    /// One boot step.
    pub fn boot_step(&self, step: u8, msg: &str) {
        self.say(format_args!("  [{step}/5] {msg}"));
    }

    /// What the publisher reports.
    pub fn event(&self, e: &Event) {
        match e {
            Event::Connected {
                broker,
                tls_version,
                mqtt,
                elapsed,
                ..
            } => self.say(format_args!(
                "connected to {broker}: mutual {tls_version}, {mqtt}, in {:.1} ms",
                elapsed.as_secs_f64() * 1000.0
            )),
            Event::Published {
                seq,
                puback_reason,
                rtt,
            } => self.say(format_args!(
                "reading {seq} acknowledged ({puback_reason}) in {:.1} ms",
                rtt.as_secs_f64() * 1000.0
            )),
            Event::Disconnected { error: Some(e) } => self.say(format_args!("disconnected: {e}")),
            Event::Reconnecting { delay, attempt } => self.say(format_args!(
                "reconnecting in {:.1} s (attempt {attempt})",
                delay.as_secs_f64()
            )),
            Event::SensorSkipped { error } => {
                self.say(format_args!("sensor reading skipped: {error}"))
            }
            _ => {}
        }
    }

    /// The end of a run.
    pub fn summary(&self, s: &PublisherSummary) {
        self.say(format_args!(
            "{} readings taken, {} acknowledged, {} waiting in the queue",
            s.taken, s.published, s.pending
        ));
    }

    /// The one error line, with its causes; the exit code.
    pub fn fail(&self, f: &Failure) -> ExitCode {
        let mut line = format!("error: {f}");
        let mut cause = f.source.as_deref().map(|s| s as &(dyn StdError + 'static));
        while let Some(c) = cause {
            line.push_str(&format!(": {c}"));
            cause = c.source();
        }
        eprintln!("{line}");
        ExitCode::from(f.code)
    }
}
