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

/// Exit code 2 (usage), a message naming `needle`, no panic.
fn usage_error(args: &[&str], dir: &std::path::Path, needle: &str) {
    let o = coffre(args, dir);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "coffre {args:?}: {stderr}");
    assert!(stderr.contains(needle), "coffre {args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "coffre {args:?}: {stderr}");
}

// Issue 15, item 11: intervals are bounded and never panic.
#[test]
fn publish_intervals_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    for bad in [
        "0s",
        "0ms",
        "99999999999999999999s",
        "1e400s",
        "NaNs",
        "-1s",
        "2d",
    ] {
        let flag = format!("--interval={bad}");
        let args = ["publish", "--bus", "emu:chip.img", "--id", "x", &flag];
        usage_error(&args, p, "--interval");
    }
    usage_error(
        &[
            "fleet",
            "--devices",
            "2",
            "--duration",
            "99999999999999999999s",
        ],
        p,
        "--duration",
    );
}

// Issue 15, item 11: slot numbers are checked as usage errors.
#[test]
fn key_slots_out_of_range_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["emu", "new", "--out", "chip.img"], p);
    let prov = [
        "provision",
        "--bus",
        "emu:chip.img",
        "--id",
        "x",
        "--key-slot",
        "99",
    ];
    usage_error(&prov, p, "--key-slot");
    usage_error(
        &["inspect", "--bus", "emu:chip.img", "--key-slot", "16"],
        p,
        "--key-slot",
    );
    usage_error(
        &[
            "publish",
            "--bus",
            "emu:chip.img",
            "--id",
            "x",
            "--key-slot",
            "99",
        ],
        p,
        "--key-slot",
    );
    usage_error(
        &["chip", "read-slot", "16", "--bus", "emu:chip.img"],
        p,
        "16",
    );
}

// Issue 15, item 11: fleet ids cannot leave --dir.
#[test]
fn fleet_prefixes_cannot_escape_the_directory() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    std::fs::create_dir_all(p.join("a/b")).unwrap();
    let work = p.join("a/b");
    ok(&["pki", "init"], &work);
    let abs = format!("{}/abs-", p.display());
    for prefix in ["../../escape-", abs.as_str(), "sub/x-", ".hidden-", ""] {
        usage_error(
            &[
                "provision",
                "--fleet",
                "2",
                "--prefix",
                prefix,
                "--dir",
                "fleet",
                "--mode",
                "lab",
                "--yes",
            ],
            &work,
            "--prefix",
        );
    }
    assert_eq!(
        names_in(p),
        vec!["a".to_string()],
        "nothing written outside"
    );
    assert_eq!(names_in(&work), vec!["pki".to_string()]);
    usage_error(&["provision", "--fleet", "0"], &work, "--fleet");
    usage_error(
        &["provision", "--bus", "emu:x.img", "--id", "../x"],
        &work,
        "--id",
    );
}

// Issue 15, item 11: input files are read with a size limit.
#[test]
fn input_files_have_a_size_limit() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["emu", "new", "--out", "chip.img"], p);
    let e = err(
        &["inspect", "--bus", "emu:chip.img", "--cert", "/dev/zero"],
        p,
    );
    assert!(e.contains("limit"), "{e}");
    std::fs::create_dir(p.join("b")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", p.join("b/mosquitto.conf")).unwrap();
    let e = err(&["broker", "run", "--config", "b"], p);
    assert!(e.contains("limit"), "{e}");
}

// Issue 15, item 11: a closed stdout or stderr ends the program quietly.
#[test]
fn closed_output_ends_the_program_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["emu", "new", "--out", "chip.img"], p);
    // As `coffre … 2>&1 | head -0`: both outputs go to a pipe whose reader is gone.
    let cases: [&[&str]; 3] = [
        &["chip", "read-slot", "8", "--bus", "emu:chip.img"],
        &["inspect", "--bus", "emu:chip.img"],
        &[
            "publish",
            "--bus",
            "emu:chip.img",
            "--id",
            "x",
            "--broker",
            "127.0.0.1:1",
            "--count",
            "1",
        ],
    ];
    for args in cases {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = Command::new(env!("CARGO_BIN_EXE_coffre"))
            .args(args)
            .current_dir(p)
            .stdin(Stdio::null())
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .status()
            .unwrap();
        assert_ne!(status.code(), Some(101), "coffre {args:?} panicked");
        assert!(
            status.signal() == Some(13) || status.code().is_some_and(|c| c < 100),
            "coffre {args:?}: {status:?}"
        );
    }
    // Only stdout closed: no panic message on stderr either.
    let mut child = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["chip", "read-slot", "8", "--bus", "emu:chip.img"])
        .current_dir(p)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// Issue 15, item 5: two publishers cannot share one --queue directory.
#[test]
fn a_second_publisher_on_one_queue_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["pki", "init"], p);
    for id in ["a", "b"] {
        let img = format!("{id}.img");
        ok(&["emu", "new", "--out", &img], p);
        let bus = format!("emu:{img}");
        ok(
            &["provision", "--bus", &bus, "--id", id, "--mode", "offload"],
            p,
        );
    }
    // No broker listens on port 1: the first publisher waits for one,
    // holding its queue.
    let publish = |id: &str| {
        let bus = format!("emu:{id}.img");
        let args = [
            "publish",
            "--bus",
            &bus,
            "--id",
            id,
            "--broker",
            "127.0.0.1:1",
            "--queue",
            "q",
            "--count",
            "1",
        ]
        .map(String::from);
        Command::new(env!("CARGO_BIN_EXE_coffre"))
            .args(args)
            .current_dir(p)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut first = publish("a");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !p.join("q/lock").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first publisher never opened its queue"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = publish("b").wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    let _ = first.kill();
    let _ = first.wait();
    assert!(!second.status.success(), "{stderr}");
    assert!(stderr.contains("in use by another publisher"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.id())), "{stderr}");
}

// Issue 15, item 10: the kit daemon's limits are options with bounds.
#[test]
fn kit_daemon_limits_are_bounded_options() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    ok(&["emu", "new", "--out", "k.img"], p);
    usage_error(
        &["emu", "serve", "--image", "k.img", "--max-clients", "0"],
        p,
        "--max-clients",
    );
    usage_error(
        &["emu", "serve", "--image", "k.img", "--idle-timeout", "0s"],
        p,
        "--idle-timeout",
    );
}

// Issue 15, item 11: every numeric option has a bound.
#[test]
fn counts_and_rates_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    usage_error(&["fleet", "--devices", "0"], p, "--devices");
    usage_error(&["fleet", "--devices", "99999999999"], p, "--devices");
    for bad in ["0", "NaN", "inf", "-5", "1e9"] {
        let flag = format!("--rate={bad}");
        usage_error(&["fleet", &flag], p, "--rate");
    }
    usage_error(&["bench", "--runs", "0"], p, "--runs");
}
