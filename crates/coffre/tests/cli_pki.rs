//! `coffre pki` through the built binary: many processes at once, and
//! bounded input.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{coffre, err, ok, Tmpfs};
use p256::pkcs8::EncodePublicKey;

fn key_pem(dir: &Path) {
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = sk
        .public_key()
        .to_public_key_pem(Default::default())
        .unwrap();
    std::fs::write(dir.join("k.pem"), pem).unwrap();
}

/// A PKI in `dir/c` with one device, d1, for the key in `dir/key`.
fn pki_with_d1(dir: &Path, key: &str) {
    ok(&["pki", "init", "--dir", "c"], dir);
    ok(
        &[
            "pki",
            "issue",
            "--dir",
            "c",
            "--id",
            "d1",
            "--public-key",
            key,
        ],
        dir,
    );
}

fn device_ids(dir: &Path) -> Vec<String> {
    let show: serde_json::Value =
        serde_json::from_str(&ok(&["pki", "show", "--dir", "c", "--json"], dir)).unwrap();
    let mut ids: Vec<String> = show["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// Issue 15, item 1: `for i in $(seq 20); do coffre pki issue --dir c --id d$i
/// --public-key k.pem & done; wait` left 1–3 of 20 entries in the index.
#[test]
fn twenty_concurrent_issues_lose_no_index_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["pki", "init", "--dir", "c"], d);
    key_pem(d);
    for round in 0..2 {
        let children: Vec<_> = (1..=20)
            .map(|i| {
                Command::new(env!("CARGO_BIN_EXE_coffre"))
                    .args(["pki", "issue", "--dir", "c", "--public-key", "k.pem"])
                    .arg("--id")
                    .arg(format!("r{round}-d{i:02}"))
                    .current_dir(d)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let ids = device_ids(d);
    let want: Vec<String> = (0..2)
        .flat_map(|r| (1..=20).map(move |i| format!("r{r}-d{i:02}")))
        .collect();
    assert_eq!(ids, want, "every certificate issued is in the index");
    assert_eq!(std::fs::read_dir(d.join("c/devices")).unwrap().count(), 40);
    // ... so every one can be revoked, here while others issue.
    let issuing = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["pki", "issue", "--dir", "c", "--public-key", "k.pem"])
        .args(["--id", "late"])
        .current_dir(d)
        .stdin(Stdio::null())
        .output();
    for id in &want[..5] {
        ok(&["pki", "revoke", id, "--dir", "c"], d);
    }
    assert!(issuing.unwrap().status.success());
    let show: serde_json::Value =
        serde_json::from_str(&ok(&["pki", "show", "--dir", "c", "--json"], d)).unwrap();
    assert_eq!(show["devices"].as_array().unwrap().len(), 41);
    assert_eq!(show["crl"]["revoked"], 5);
}

#[test]
fn a_second_issue_for_the_same_id_is_refused_even_when_concurrent() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["pki", "init", "--dir", "c"], d);
    key_pem(d);
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_coffre"))
                .args(["pki", "issue", "--dir", "c", "--public-key", "k.pem"])
                .args(["--id", "same"])
                .current_dir(d)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let wins = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.success())
        .filter(|ok| *ok)
        .count();
    assert_eq!(wins, 1, "exactly one process issues 'same'");
    assert_eq!(device_ids(d), vec!["same".to_string()]);
    let o = coffre(&["pki", "show", "--dir", "c"], d);
    assert!(o.status.success());
}

/// Issue 15, item 11: out-of-range days panicked (and `init` left
/// `devices/` behind); `--public-key /dev/zero` read forever.
#[test]
fn out_of_range_days_are_usage_errors_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for days in ["9999999", "0", "36501", "many"] {
        let o = coffre(&["pki", "init", "--dir", "c", "--days", days], d);
        assert_eq!(o.status.code(), Some(2), "init --days {days}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--days"), "{err}");
        assert!(!d.join("c").exists(), "init --days {days} wrote c/");
    }
    ok(&["pki", "init", "--dir", "c"], d);
    key_pem(d);
    let o = coffre(
        &[
            "pki",
            "issue",
            "--dir",
            "c",
            "--id",
            "x",
            "--public-key",
            "k.pem",
            "--days",
            "99999999",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!d.join("c/devices/x.crt.pem").exists());
}

#[cfg(unix)]
#[test]
fn an_endless_key_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(&["pki", "init", "--dir", "c"], d);
    for flag in ["--public-key", "--csr"] {
        let mut args = vec!["pki", "issue", "--dir", "c", flag, "/dev/zero"];
        if flag == "--public-key" {
            args.extend(["--id", "z"]);
        }
        let o = coffre(&args, d);
        assert_eq!(o.status.code(), Some(1), "{flag}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("/dev/zero") && err.contains("larger than"),
            "{err}"
        );
    }
}

/// A PKI on read-only media (or another user's files) is read, and changes
/// nothing: `pki show` used to fail because it could not open `index.lock`
/// for writing. Changing it fails, says why, and leaves every file as it was.
#[test]
fn a_read_only_pki_can_be_shown_but_not_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let disk = Tmpfs::mount(&p.join("ro"), "4m");
    key_pem(p);
    ok(&["pki", "init", "--dir", "ro/c"], p);
    for id in ["d1", "d2"] {
        ok(
            &[
                "pki",
                "issue",
                "--dir",
                "ro/c",
                "--id",
                id,
                "--public-key",
                "k.pem",
            ],
            p,
        );
    }
    ok(&["pki", "revoke", "--dir", "ro/c", "d2"], p);
    // A writer was killed mid-line: a reader drops the line, in memory only.
    let journal = p.join("ro/c/index.jsonl");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(br#"{"op":"issue","kind":"device","id":"d3","ser"#);
    std::fs::write(&journal, &bytes).unwrap();
    let snapshot = |dir: &Path| -> Vec<(String, Vec<u8>)> {
        common::names_in(dir)
            .into_iter()
            .filter(|n| n != "devices")
            .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
            .collect()
    };
    let before = snapshot(&p.join("ro/c"));
    disk.read_only();

    let show: serde_json::Value =
        serde_json::from_str(&ok(&["pki", "show", "--dir", "ro/c", "--json"], p)).unwrap();
    let status: Vec<(&str, &str)> = show["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status, [("d1", "issued"), ("d2", "revoked")], "{show}");
    let out = coffre(&["pki", "show", "--dir", "ro/c"], p);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("cut short"), "no warning: {text}");

    let e = err(&["pki", "revoke", "--dir", "ro/c", "d1"], p);
    assert!(e.contains("Read-only file system"), "{e}");
    assert!(e.contains("make changes on a writable copy"), "{e}");
    assert_eq!(e.matches("Read-only file system").count(), 1, "{e}");
    assert_eq!(snapshot(&p.join("ro/c")), before, "a file changed");
}

/// Another user's PKI (the CA key is 0600, the directory not theirs) can be
/// shown: the key is read only to sign. When that user may write the
/// directory but not read the key, issuing and revoking fail on the key,
/// before anything is written. As root, the commands run as `nobody`
/// (root reads every file); otherwise the test takes the permissions away
/// from its own user.
#[test]
fn another_users_pki_can_be_shown_and_not_signed_with() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    let mode =
        |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    // In /tmp, which every user may traverse (TMPDIR may not be).
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let p = tmp.path();
    mode(p, 0o755);
    key_pem(p);
    mode(&p.join("k.pem"), 0o644);
    pki_with_d1(p, "k.pem");
    let c = p.join("c");
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    // The binary where `nobody` can run it (the checkout may be private).
    let exe = if root {
        let exe = p.join("coffre");
        if std::fs::hard_link(env!("CARGO_BIN_EXE_coffre"), &exe).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_coffre"), &exe).unwrap();
        }
        exe
    } else {
        mode(&c.join("ca.key.pem"), 0o000);
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_coffre"))
    };
    let run = |args: &[&str]| {
        let mut cmd = Command::new(&exe);
        cmd.args(args).current_dir(p).stdin(Stdio::null());
        if root {
            cmd.uid(65534).gid(65534);
        }
        cmd.output().unwrap()
    };
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for d in [c.clone(), c.join("devices")] {
            for n in common::names_in(&d) {
                if d.join(&n).is_file() && n != "index.lock" && n != "ca.key.pem" {
                    v.push((n.clone(), std::fs::read(d.join(&n)).unwrap()));
                }
            }
        }
        v
    };
    let before = snapshot();

    // 1. A directory it may not write: shown, not changed.
    mode(&c, 0o555);
    let out = run(&["pki", "show", "--dir", "c", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(show["devices"][0]["id"], "d1", "{show}");
    assert_eq!(show["devices"][0]["status"], "issued", "{show}");
    let out = run(&["pki", "show", "--dir", "c"]);
    let e = String::from_utf8_lossy(&out.stdout);
    assert!(
        e.contains("warning: c/ca.key.pem cannot be read by this user"),
        "{e}"
    );
    let out = run(&["pki", "revoke", "--dir", "c", "d1"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("index.lock"), "{e}");

    // 2. A directory it may write, and a key it may not read: every
    // signature fails on the key, and nothing is written.
    mode(&c, 0o777);
    mode(&c.join("devices"), 0o777);
    for f in ["index.lock", "index.jsonl", "crl.pem"] {
        mode(&c.join(f), 0o666);
    }
    for args in [
        &[
            "pki",
            "issue",
            "--dir",
            "c",
            "--id",
            "d2",
            "--public-key",
            "k.pem",
        ][..],
        &["pki", "revoke", "--dir", "c", "d1"],
        &["pki", "crl", "--dir", "c"],
    ] {
        let out = run(args);
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(e.contains("cannot read c/ca.key.pem"), "{args:?}: {e}");
        assert_eq!(
            e.to_lowercase().matches("permission denied").count(),
            1,
            "{e}"
        );
    }
    let show: serde_json::Value =
        serde_json::from_str(&ok(&["pki", "show", "--dir", "c", "--json"], p)).unwrap();
    assert_eq!(show["devices"].as_array().unwrap().len(), 1, "{show}");
    assert_eq!(show["devices"][0]["status"], "issued", "{show}");
    assert_eq!(snapshot(), before, "a file changed");
    mode(&c.join("ca.key.pem"), 0o600);
}

/// The CRL expires 30 days after it is written, and then mosquitto refuses
/// every client (its CRL check fails). `broker run` refuses to start on an
/// expired CRL, says when the CRL of a running broker expires, and
/// `pki crl` writes a fresh one and reloads the broker: the device is let
/// in again without a restart.
#[test]
fn an_expired_crl_is_caught_and_pki_crl_lets_the_devices_back_in() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path();
    let sk = p256::SecretKey::random(&mut rand_core::OsRng);
    let pem = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&sk, Default::default()).unwrap();
    std::fs::write(p.join("d1.key.pem"), pem.as_bytes()).unwrap();
    pki_with_d1(p, "d1.key.pem");
    let port = coffre_fs::free_loopback_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    ok(
        &[
            "broker",
            "config",
            "--pki",
            "c",
            "--out",
            "b",
            "--listen",
            &listen,
            "--publisher",
            "d1",
        ],
        p,
    );
    let publish = || {
        Command::new("mosquitto_pub")
            .current_dir(p)
            .args(["-h", "localhost", "-p", &port.to_string()])
            .args(["--cafile", "c/ca.crt.pem"])
            .args(["--cert", "c/devices/d1.crt.pem", "--key", "d1.key.pem"])
            .args(["-t", "m5go/env", "-m", "{}", "-q", "1"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    };
    let ago = |secs: i64| {
        (time::OffsetDateTime::now_utc() - time::Duration::seconds(secs))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let month = 30 * 86_400;

    // A CRL dated in the future would lock everyone out as well: refused.
    let e = err(
        &[
            "pki",
            "crl",
            "--dir",
            "c",
            "--this-update",
            "2099-01-01T00:00:00Z",
        ],
        p,
    );
    assert!(e.contains("in the future"), "{e}");

    // 1. Expired: shown as such, and the broker does not start.
    ok(
        &[
            "pki",
            "crl",
            "--dir",
            "c",
            "--this-update",
            &ago(month + 86_400),
        ],
        p,
    );
    let show = ok(&["pki", "show", "--dir", "c"], p);
    assert!(
        show.contains("EXPIRED") && show.contains("coffre pki crl"),
        "{show}"
    );
    let e = err(&["broker", "run", "--config", "b"], p);
    assert!(
        e.contains("expired on") && e.contains("coffre pki crl --dir"),
        "{e}"
    );

    // 2. A CRL that expires 8 s from now: the broker starts with a warning,
    // then says when it has expired; the device is refused from then on.
    ok(
        &["pki", "crl", "--dir", "c", "--this-update", &ago(month - 8)],
        p,
    );
    let mut run = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["broker", "run", "--config", "b"])
        .current_dir(p)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err_out = run.stderr.take().unwrap();
    let _run = common::Kill(run);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err_out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return line,
                Ok(_) => {}
                Err(_) => panic!("broker run never said '{what}'"),
            }
        }
    };
    let warning = wait_for("warning: the CRL");
    assert!(warning.contains("min)"), "{warning}");
    wait_for("mosquitto listening");
    wait_for("mosquitto now refuses every new client");
    assert!(
        !publish(),
        "mosquitto accepted a device with an expired CRL"
    );

    // 3. `pki crl` reloads the running broker: the device is back.
    let out = ok(&["pki", "crl", "--dir", "c"], p);
    assert!(out.contains("CRL reloaded"), "{out}");
    assert!(publish(), "the device is still refused after a fresh CRL");
}
