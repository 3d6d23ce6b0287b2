//! Issue 15: nothing lost on a full disk or with two writers; bounded
//! input, usage errors with exit code 2, quiet ends on closed pipes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{coffre, err, names_in, ok, Tmpfs};

// Issue 15, item 2: on a full disk, provisioning fails, says why, and
// issues no certificate; the image and its directory are untouched.
#[test]
fn a_full_disk_fails_provisioning_and_issues_nothing() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    let disk = Tmpfs::mount(&p.join("full"), "64k");
    ok(&["emu", "new", "--out", "full/chip.img"], p);
    let before = std::fs::read(p.join("full/chip.img")).unwrap();
    let filler = disk.fill();
    let listing = names_in(&p.join("full"));
    for (id, extra) in [
        ("lab-1", &["--mode", "lab"][..]),
        (
            "off-1",
            &["--mode", "offload", "--new-key", "--key-slot", "2"][..],
        ),
    ] {
        let mut args = vec![
            "provision",
            "--bus",
            "emu:full/chip.img",
            "--id",
            id,
            "--yes",
        ];
        args.extend_from_slice(extra);
        let o = coffre(&args, p);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{id}: {stderr}");
        assert!(stderr.contains("No space left on device"), "{id}: {stderr}");
        assert!(stderr.contains("could not save"), "{id}: {stderr}");
        assert!(
            !p.join(format!("pki/devices/{id}.crt.pem")).exists(),
            "{id}: no certificate for a key that was not stored"
        );
        assert_eq!(std::fs::read(p.join("full/chip.img")).unwrap(), before);
        assert_eq!(
            names_in(&p.join("full")),
            listing,
            "no stray temporary file"
        );
    }
    // With room again, the same command works.
    std::fs::remove_file(filler).unwrap();
    ok(
        &[
            "provision",
            "--bus",
            "emu:full/chip.img",
            "--id",
            "lab-1",
            "--mode",
            "lab",
            "--yes",
        ],
        p,
    );
    assert!(p.join("pki/devices/lab-1.crt.pem").exists());
}

// Issue 15, item 3: while `emu serve` holds an image, another process
// cannot write it (and is told who holds it); afterwards it can.
#[test]
fn a_served_image_is_refused_to_a_second_writer() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    ok(&["emu", "new", "--out", "A.img"], p);
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args([
            "emu",
            "serve",
            "--image",
            "A.img",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(p)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening "), "{line}");
    let args = [
        "provision",
        "--bus",
        "emu:A.img",
        "--id",
        "dev",
        "--mode",
        "lab",
        "--yes",
    ];
    let e = err(&args, p);
    assert!(e.contains("in use by another process"), "{e}");
    assert!(e.contains(&format!("pid {}", daemon.id())), "{e}");
    assert!(e.contains("emu serve"), "{e}");
    assert!(!p.join("pki/devices/dev.crt.pem").exists());
    let e = err(&["emu", "new", "--out", "A.img", "--force"], p);
    assert!(e.contains("in use by another process"), "{e}");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    ok(&args, p);
    ok(&["chip", "read-slot", "8", "--bus", "emu:A.img"], p);
}
