//! Write the seed inputs of every fuzz target into `DIR/<target>/seed-N`
//! (default DIR: fuzz/corpus), without touching files already there.

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    for t in coffre_fuzz::TARGETS {
        let d = dir.join(t.name);
        if let Err(e) = std::fs::create_dir_all(&d) {
            eprintln!("error: cannot create {}: {e}", d.display());
            return std::process::ExitCode::FAILURE;
        }
        for (i, s) in coffre_fuzz::seeds::seeds(t.name).iter().enumerate() {
            let f = d.join(format!("seed-{i}"));
            if !f.exists() {
                if let Err(e) = std::fs::write(&f, s) {
                    eprintln!("error: cannot write {}: {e}", f.display());
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
