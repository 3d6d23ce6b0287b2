//! Issue 15, item 4: `coffre provision --fleet` killed at random points,
//! then run again, ends with index = manifest = files and no valid
//! certificate left behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ok;

const N: usize = 24;
const KILLS: usize = 10;

/// xorshift64*: reproducible "random" kill times from a seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn fleet_cmd(d: &Path, mode: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_coffre"));
    c.args(["provision", "--fleet", &N.to_string(), "--prefix", "k-"])
        .args(["--dir", "fleet", "--pki", "pki", "--mode", mode])
        .args(["--yes", "--no-lock-slot8"])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn killed_and_resumed(mode: &str, seed: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["pki", "init", "--dir", "pki"], d);
    let mut rng = Rng(seed);
    for _ in 0..KILLS {
        let mut child = fleet_cmd(d, mode).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(40 + rng.below(900)));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        // A run that ended before the kill must have succeeded.
        if out.status.code().is_some() {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = fleet_cmd(d, mode).output().unwrap();
    assert!(
        out.status.success(),
        "the rerun after {KILLS} kills (seed {seed}) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The manifest: each device once.
    let text = std::fs::read_to_string(d.join("fleet/manifest.jsonl")).unwrap();
    let mut manifest = BTreeMap::new();
    for line in text.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = e["id"].as_str().unwrap().to_string();
        let fp = e["cert_fingerprint"].as_str().unwrap().to_string();
        assert!(manifest.insert(id.clone(), fp).is_none(), "{id} twice");
    }
    let want: BTreeSet<String> = (1..=N).map(|i| format!("k-{i:03}")).collect();
    assert_eq!(manifest.keys().cloned().collect::<BTreeSet<_>>(), want);

    // The index: per device, exactly one valid certificate, the one in
    // the manifest and on disk; every other one revoked.
    let show: serde_json::Value =
        serde_json::from_str(&ok(&["pki", "show", "--dir", "pki", "--json"], d)).unwrap();
    let mut valid: BTreeMap<String, String> = BTreeMap::new();
    for dev in show["devices"].as_array().unwrap() {
        let id = dev["id"].as_str().unwrap().to_string();
        assert!(want.contains(&id), "unexpected device {id}");
        if dev["status"] == "issued" {
            let fp = dev["fingerprint_sha256"].as_str().unwrap().to_string();
            assert!(
                valid.insert(id.clone(), fp).is_none(),
                "{id} has two valid certificates (seed {seed})"
            );
            assert_eq!(
                dev["current"], true,
                "{id}'s valid certificate is not its file"
            );
        }
    }
    assert_eq!(valid, manifest, "index and manifest differ (seed {seed})");

    // The files: one certificate per device, nothing else.
    let files: BTreeSet<String> = std::fs::read_dir(d.join("pki/devices"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".crt.pem"))
        .map(|n| n.trim_end_matches(".crt.pem").to_string())
        .collect();
    assert_eq!(files, want);
    let stray: Vec<_> = std::fs::read_dir(d.join("pki/devices"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "temporary files left: {stray:?}");
}

#[test]
fn offload_fleet_killed_ten_times_then_resumed() {
    killed_and_resumed("offload", 0x0C0F_F4E1);
}

#[test]
fn lab_fleet_killed_ten_times_then_resumed() {
    killed_and_resumed("lab", 0x5107_0008);
}
