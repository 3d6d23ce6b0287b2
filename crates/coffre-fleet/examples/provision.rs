//! Time the provision stage alone: N emulated chips made ready (offload:
//! key born in each chip, CSR signed by the chip), every certificate issued
//! by one PKI in one journal batch, the fleet manifest written.
//!
//! ```sh
//! cargo run --release -p coffre-fleet --example provision -- 100000 /dev/shm/prov
//! ```
//!
//! It needs no broker and no open-file limit, so it runs where a fleet of
//! that size cannot connect.

use std::path::PathBuf;

use coffre_fleet::stage::{provision, ProvisionPlan};
use coffre_fleet::{FleetMode, Progress};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let devices: usize = args.next().as_deref().unwrap_or("1000").parse()?;
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "prov".into()));
    let base = coffre_fleet::util::self_rss_kib();
    let mut last = 0;
    let p = provision(
        &ProvisionPlan {
            dir,
            devices,
            mode: FleetMode::Offload,
        },
        &mut |p| match p {
            Progress::Step(s) => eprintln!("{s}"),
            Progress::Provisioning(done, total) if done >= last + total / 10 => {
                last = done;
                eprintln!("{done}/{total}");
            }
            _ => {}
        },
    )?;
    let rss = coffre_fleet::util::self_rss_kib();
    let manifest_lines = std::fs::read_to_string(&p.manifest)?.lines().count();
    println!(
        "{} identities provisioned in {:.1} s ({:.2} ms each); manifest {} lines; memory {:.1} KiB per provisioned device",
        p.devices.len(),
        p.elapsed.as_secs_f64(),
        p.elapsed.as_secs_f64() * 1000.0 / devices as f64,
        manifest_lines,
        rss.saturating_sub(base) as f64 / devices as f64
    );
    Ok(())
}
