//! `coffre emu bench`: runs the emulator benchmark (crate `coffre-bench`)
//! and prints its report.

use anyhow::{bail, Result};
use coffre_bench::emulator::EmulatorReport;

use crate::output::{print_json, say};

/// `coffre emu bench`.
pub fn run(reads: u32, json: bool) -> Result<()> {
    if reads == 0 {
        bail!("--reads must be at least 1");
    }
    let report = coffre_bench::emulator::run(reads)?;
    if json {
        return print_json(&serde_json::to_value(&report)?);
    }
    print_report(&report);
    Ok(())
}

fn print_report(r: &EmulatorReport) {
    let t = &r.read_throughput;
    say!("emulator Read throughput (instant timing, driver → I2C → chip, wake+read+idle each):");
    say!(
        "  {} Reads in {:.3} s = {:.0} Reads/s (target > 50000)",
        t.reads,
        t.seconds,
        t.reads_per_second
    );
    say!();
    say!("datasheet timing (command write → response ready, median of 3):");
    say!("  command   table ms  measured ms  error");
    for row in &r.datasheet_timing {
        say!(
            "  {:<8}  {:>8}  {:>11.2}  {:>+5.1}%{}",
            row.command,
            row.table_ms,
            row.measured_ms,
            row.error_pct,
            if row.error_pct.abs() <= 10.0 {
                ""
            } else {
                "  (over 10%)"
            }
        );
    }
    say!();
    say!(
        "Sign of a digest through the driver (Nonce 20 ms + Sign 115 ms + two wakes, 2 ms polling): {:.1} ms",
        r.sign_digest_through_driver_ms
    );
}
