//! Every fuzz target replays its committed corpus and every crash ever
//! found (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`), on stable.

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &PathBuf) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd
                .map(|e| e.expect("readable directory entry").path())
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

#[test]
fn every_target_replays_its_corpus_and_regressions() {
    let mut total = 0;
    for t in coffre_fuzz::TARGETS {
        let corpus = files(&fuzz_dir().join("corpus").join(t.name));
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{} is empty: seed it (scripts/fuzz.sh seeds and runs every target)",
            t.name
        );
        let regressions = files(&fuzz_dir().join("regressions").join(t.name));
        for f in corpus.iter().chain(&regressions) {
            let data = std::fs::read(f).expect("readable corpus file");
            let name = f.display().to_string();
            let r = std::panic::catch_unwind(|| (t.run)(&data));
            assert!(r.is_ok(), "{} fails on {name}", t.name);
            total += 1;
        }
    }
    eprintln!("replayed {total} inputs");
}

#[test]
fn every_libfuzzer_target_has_a_function() {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names: Vec<String> = files(&dir)
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    names.sort();
    let mut ours: Vec<String> = coffre_fuzz::TARGETS
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    ours.sort();
    assert_eq!(
        names, ours,
        "fuzz/fuzz_targets and coffre_fuzz::TARGETS differ"
    );
}
