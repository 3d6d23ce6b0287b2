//! Everything the program says to its user goes through here: results on
//! stdout ([`say!`], [`say_text`], [`print_json`]), progress, warnings and
//! hints on stderr ([`note!`], [`ask`]), the final error ([`error`]); and
//! the mapping from errors to exit codes.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::bus::{AnyI2cError, Opened};
use crate::exit;

/// A line of the command's result on stdout.
macro_rules! say {
    () => {
        $crate::output::stdout_line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::output::stdout_line(format_args!($($t)*))
    };
}
pub(crate) use say;

/// A line for the user on stderr: progress, a warning, what to do next.
macro_rules! note {
    () => {
        $crate::output::stderr_line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::output::stderr_line(format_args!($($t)*))
    };
}
pub(crate) use note;

#[doc(hidden)]
pub fn stdout_line(args: std::fmt::Arguments<'_>) {
    println!("{args}");
}

#[doc(hidden)]
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    eprintln!("{args}");
}

/// Text already laid out in lines (a table, PEM) on stdout, as is.
pub fn say_text(text: &str) {
    print!("{text}");
}

/// A question on stderr, without a newline, so the answer is typed after it.
pub fn ask(question: &str) {
    use std::io::Write as _;
    eprint!("{question}");
    let _ = std::io::stderr().flush();
}

/// The secure element did not answer: exit code 3.
#[derive(Debug)]
pub struct NoChip(pub String);

impl std::fmt::Display for NoChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoChip {}

/// The exit code for an error chain.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|c| c.is::<NoChip>()) {
        exit::NO_CHIP
    } else if e.chain().any(|c| {
        matches!(
            c.downcast_ref::<coffre_pki::Error>(),
            Some(coffre_pki::Error::FactoryChain(_) | coffre_pki::Error::FactoryKeyMismatch)
        ) || c
            .downcast_ref::<coffre_provision::Error>()
            .is_some_and(coffre_provision::Error::is_factory_refusal)
    }) {
        exit::FACTORY_REFUSED
    } else {
        exit::ERROR
    }
}

/// Convert a driver result, turning "no chip" into [`NoChip`] and adding
/// what was being done.
pub fn drv<T>(r: Result<T, coffre_driver::Error<AnyI2cError>>, what: &str) -> Result<T> {
    r.map_err(|e| match e {
        coffre_driver::Error::NotPresent { .. } => anyhow::Error::new(NoChip(e.to_string())),
        other => anyhow::anyhow!("{other}"),
    })
    .with_context(|| what.to_string())
}

/// Bytes as hex, 16 per line, with offsets.
pub fn hex_dump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, chunk) in bytes.chunks(16).enumerate() {
        let _ = write!(s, "{:04x}  ", i * 16);
        for (j, b) in chunk.iter().enumerate() {
            if j == 8 {
                s.push(' ');
            }
            let _ = write!(s, "{b:02x} ");
        }
        s.push('\n');
    }
    s
}

/// Bytes as contiguous lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    coffre_emu::transcript::hex(bytes)
}

/// Print a JSON value.
pub fn print_json(v: &serde_json::Value) -> Result<()> {
    say!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Write the bus transcript if one was asked for.
pub fn finish_transcript(o: &Opened, path: Option<&Path>) -> Result<()> {
    let (Some(path), Some(board)) = (path, o.board.as_ref()) else {
        return Ok(());
    };
    let t = board.bus.take_transcript();
    let json = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl") | Some("json")
    );
    let text = if json { t.to_json_lines() } else { t.to_text() };
    coffre_fs::write_atomic(path, text.as_bytes(), 0o644)
        .with_context(|| format!("cannot write the transcript to {}", path.display()))?;
    note!(
        "bus transcript: {} events written to {}",
        t.events.len(),
        path.display()
    );
    Ok(())
}

/// Report an error that ends the program, with its causes.
pub fn error(e: &anyhow::Error) {
    note!("error: {e:#}");
}
