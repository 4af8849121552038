//! The fuzz targets' committed inputs, replayed on stable: every file of
//! `tests/fuzz/corpus/<target>/` (seeds) and `tests/fuzz/regressions/<target>/` (inputs that
//! once crashed or hung a target, kept after the fix) goes through the target's entry
//! function, the very code the fuzzer runs (`tests/fuzz/src/lib.rs`, included below). None
//! may panic, and every seed must still be accepted by its reader. Fuzzing itself needs
//! nightly and cargo-fuzz: see tests/fuzz/README.md.

use std::path::{Path, PathBuf};

#[path = "fuzz/src/lib.rs"]
mod entries;

fn files_of(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_seed_and_regression_input_is_handled_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let mut failures = Vec::new();
    for &(target, entry) in entries::TARGETS {
        let seeds = files_of(&root.join("corpus").join(target));
        assert!(!seeds.is_empty(), "{target}: no seeds in tests/fuzz/corpus");
        let regressions = files_of(&root.join("regressions").join(target));
        for (file, is_seed) in seeds
            .iter()
            .map(|f| (f, true))
            .chain(regressions.iter().map(|f| (f, false)))
        {
            let bytes = std::fs::read(file).unwrap();
            match std::panic::catch_unwind(|| entry(&bytes)) {
                Ok(accepted) if is_seed && !accepted => {
                    failures.push(format!("{}: a seed its reader rejects", file.display()))
                }
                Ok(_) => {}
                Err(_) => failures.push(format!("{}: panicked", file.display())),
            }
        }
    }
    let _ = std::fs::remove_dir_all(entries::scratch_dir());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
