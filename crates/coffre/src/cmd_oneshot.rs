//! `coffre bench`: runs the harness (crate `coffre-bench`) and prints its
//! report.

use std::path::PathBuf;

use anyhow::{Context, Result};
use coffre_bench::{is_device_row, BenchOptions, Ratios, Report};

use crate::output::print_json;
use crate::output::{note, say};
use clap::Args;

#[allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)] // clap's --help text, not rustdoc
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Runs per configuration.
    #[arg(long, default_value = "30", value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub runs: u16,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// The device binary to measure. Default: the shipped build of
    /// scripts/build-device.sh (target/device-static/TARGET/device, the newest), else the
    /// `device` profile's (target/device), else the one beside this program.
    #[arg(long, value_name = "PATH")]
    pub device: Option<PathBuf>,
}

impl BenchArgs {
    /// Run `coffre bench`.
    pub fn run(self) -> Result<()> {
        let device = match self.device {
            Some(p) => p,
            None => device_exe()?,
        };
        bench(self.runs.into(), device, self.json)
    }
}

/// The device binary as shipped (statically linked, scripts/build-device.sh;
/// the newest when several targets were built) when there is one, else the
/// `device` profile's build (target/device), else the one beside this
/// executable (same build).
fn device_exe() -> Result<PathBuf> {
    let me = std::env::current_exe().context("cannot find this executable")?;
    let name = format!("coffre-device{}", std::env::consts::EXE_SUFFIX);
    let Some(target) = me.parent().and_then(|d| d.parent()) else {
        return Ok(me.with_file_name(name));
    };
    let newest_static = std::fs::read_dir(target.join("device-static"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|t| t.path().join("device").join(&name))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p);
    Ok(newest_static
        .into_iter()
        .chain([target.join("device").join(&name)])
        .find(|p| p.exists())
        .unwrap_or_else(|| me.with_file_name(name)))
}

/// `coffre bench`.
pub fn bench(runs: usize, device_exe: PathBuf, json_out: bool) -> Result<()> {
    let opts = BenchOptions { runs, device_exe };
    let report = coffre_bench::run(&opts, &mut |line| note!("{line}"))?;
    if json_out {
        return print_json(&serde_json::to_value(&report)?);
    }
    print_report(&report);
    Ok(())
}

fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "met"
    } else {
        "MISSED"
    }
}

fn print_report(r: &Report) {
    say!(
        "One device process: boot + connect + 1 QoS 1 publish + clean disconnect, {} runs each",
        r.runs
    );
    say!(
        "{:<40} {:>8} {:>10} {:>8} {:>9} {:>9} {:>5}",
        "",
        "nodelay",
        "wall p50",
        "p90",
        "CPU",
        "max RSS",
        "fail"
    );
    for row in &r.processes {
        say!(
            "{:<40} {:>8} {:>8.2}ms {:>6.2}ms {:>7.2}ms {:>6.1}MiB {:>5}",
            row.what,
            row.broker_nodelay,
            row.wall_median_ms,
            row.wall_p90_ms,
            row.cpu_mean_ms,
            row.max_rss_kib as f64 / 1024.0,
            row.failures
        );
    }
    say!();
    say!("Handshake in process (TCP connect → TLS with mutual authentication → CONNACK), TLS 1.2:");
    for h in &r.handshakes {
        say!(
            "  {:<46} p50 {:>8.2} ms  (TLS part {:>8.2} ms)  over {} runs",
            h.what,
            h.connect_median_ms,
            h.tls_median_ms,
            h.runs
        );
    }
    say!();
    say!("Publish → receive latency, both ends connected, QoS 1, mutual TLS, same host clock:");
    for l in &r.latency {
        say!(
            "  {:<46} p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms  ({} of {} received)",
            l.what,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.received,
            l.sent
        );
    }
    if let Some(f) = &r.firmware {
        say!();
        say!("embedded-tls driver (coffre-firmware) on the host, TLS 1.3, the chip signs:");
        say!(
            "  connect → CONNACK p50 {:.2} ms over {} runs (chip in datasheet timing: {:.1} ms over {}); futures: connect {} B, publish {} B; record buffers {} B; session heap {} B",
            f.connect_median_ms,
            f.runs,
            f.connect_datasheet_median_ms,
            f.datasheet_runs,
            f.connect_future_bytes,
            f.publish_future_bytes,
            f.record_buffers_bytes,
            f.session_heap_bytes
        );
    }
    let failed: usize = r
        .processes
        .iter()
        .filter(|p| is_device_row(p))
        .map(|p| p.failures)
        .sum();
    let q = &r.ratios;
    say!();
    say!("coffre-device (worst configuration) / mosquitto_pub (best configuration):");
    say!(
        "  median wall {:.2}× (target ≤ {}): {}",
        q.wall,
        Ratios::WALL_TARGET,
        verdict(q.wall, Ratios::WALL_TARGET)
    );
    say!(
        "  max RSS     {:.2}× (target ≤ {}): {}",
        q.max_rss,
        Ratios::RSS_TARGET,
        verdict(q.max_rss, Ratios::RSS_TARGET)
    );
    say!(
        "  CPU         {:.2}× (target ≤ {}): {}",
        q.cpu,
        Ratios::CPU_TARGET,
        verdict(q.cpu, Ratios::CPU_TARGET)
    );
    if failed > 0 {
        say!("  {failed} device run(s) FAILED: the figures above are not valid");
    }
}
