//! Running the built binary from tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A child process stopped with SIGTERM (then SIGKILL after 5 s) when dropped.
pub struct Kill(pub std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_secs(5) {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.0.kill();
    }
}

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

/// The `coffre-device` binary, another package's: built beside this one
/// (a no-op when `cargo test --workspace` already did).
pub fn device_exe() -> std::path::PathBuf {
    let built = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "coffre-device-bin"])
        .status()
        .unwrap();
    assert!(built.success());
    Path::new(env!("CARGO_BIN_EXE_coffre"))
        .with_file_name(format!("coffre-device{}", std::env::consts::EXE_SUFFIX))
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

/// A tmpfs of `size` (e.g. "64k") mounted on `dir`, unmounted on drop: a
/// real small disk to fill. Mounting needs root, as the test suite has in
/// CI; without it the test fails and says so rather than passing unseen.
pub struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            o.status.success(),
            "this test mounts a small tmpfs to fill it and needs root (CI runs the suite as root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Fill the file system: a file grows until the disk refuses a byte.
    pub fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = [0u8; 512];
        while f.write_all(&chunk).and_then(|_| f.sync_all()).is_ok() {}
        while f.write_all(&chunk[..1]).and_then(|_| f.sync_all()).is_ok() {}
        path
    }
}

impl Tmpfs {
    /// Mount it again read-only: writes fail with EROFS, for root too.
    pub fn read_only(&self) {
        let o = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .output()
            .expect("mount runs");
        assert!(
            o.status.success(),
            "remount read-only: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The names of the files in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Start `coffre broker run` in `dir` (configured there by `broker config`)
/// and wait until it says it is running; the rest of its output is drained.
/// The broker stops when the returned handle is dropped.
pub fn broker_run(dir: &Path) -> Kill {
    use std::io::{BufRead, BufReader};
    let mut b = Command::new(env!("CARGO_BIN_EXE_coffre"))
        .args(["broker", "run"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("coffre broker run starts");
    let out = b.stdout.take().expect("piped stdout");
    let b = Kill(b);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains(" running") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("mosquitto did not start");
    b
}
