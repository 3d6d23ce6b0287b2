//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// Output of an `openssl` run: success, stdout and stderr joined.
pub struct Run {
    pub ok: bool,
    pub out: String,
}

/// Is the `openssl` command available? Prints a note when it is not.
pub fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("note: `openssl` is not on PATH; skipping the OpenSSL acceptance checks");
    }
    ok
}

/// Run `openssl args…` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) -> Run {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    Run {
        ok: o.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    }
}

/// Run `openssl args…` in `dir` and require success.
pub fn openssl_ok(dir: &Path, args: &[&str]) -> String {
    let r = openssl(dir, args);
    assert!(r.ok, "openssl {args:?} failed:\n{}", r.out);
    r.out
}

/// A device key pair as a chip would hold it (test stand-in).
pub fn device_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::random(&mut rand_core::OsRng)
}
