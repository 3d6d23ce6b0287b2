//! Running the built binary from tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Run `coffre args…` in `dir`, no standard input.
pub fn coffre(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(args)
        .current_dir(dir)
        .env_remove("COFFRE_BUS")
        .stdin(Stdio::null())
        .output()
        .expect("coffre runs")
}

/// Run it and require success; its stdout.
pub fn ok(args: &[&str], dir: &Path) -> String {
    let o = coffre(args, dir);
    assert!(
        o.status.success(),
        "coffre {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Run it and require failure; its stderr.
pub fn err(args: &[&str], dir: &Path) -> String {
    let o = coffre(args, dir);
    assert!(!o.status.success(), "coffre {args:?} should fail");
    String::from_utf8_lossy(&o.stderr).to_string()
}
