//! The fuzz targets' checks (tests/fuzz/checks.rs) as plain tests: every seed of every
//! target, and every input a fuzz run found to crash (tests/fuzz/regressions/TARGET/, kept
//! after the fix), must pass. This is how a crash once found stays fixed without cargo-fuzz
//! or a nightly compiler: `cargo test --test reliability fuzz::`.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The files in `tests/fuzz/<kind>/<target>/`, sorted (none if the directory is absent).
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz")
        .join(kind)
        .join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    files.retain(|f| f.is_file() && !f.ends_with("README.md"));
    files.sort();
    files
}

/// Runs `target`'s check on each input; a panic names the file.
fn run_all(target: &str, files: &[PathBuf]) {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
        .1;
    for file in files {
        let data = std::fs::read(file).unwrap();
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target}: the check fails on {}", file.display());
        }
    }
}

#[test]
fn every_target_has_seeds_and_they_pass() {
    for (target, _) in checks::TARGETS {
        let seeds = inputs("seeds", target);
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        run_all(target, &seeds);
    }
}

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let target = path.file_name().unwrap().to_str().unwrap().to_string();
                assert!(
                    checks::TARGETS.iter().any(|(t, _)| *t == target),
                    "{} is not a fuzz target's name",
                    path.display()
                );
            }
        }
    }
    for (target, _) in checks::TARGETS {
        run_all(target, &inputs("regressions", target));
    }
}

#[test]
fn every_target_is_built_by_the_fuzz_crate() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/Cargo.toml"),
    )
    .unwrap();
    for (target, _) in checks::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{target}\"")),
            "tests/fuzz/Cargo.toml has no [[bin]] {target}"
        );
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fuzz/fuzz_targets")
            .join(format!("{target}.rs"));
        let text = std::fs::read_to_string(&source).unwrap();
        assert!(
            text.contains(&format!("checks::{target}(")),
            "{}",
            source.display()
        );
    }
}
