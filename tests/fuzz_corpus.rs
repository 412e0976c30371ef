//! Replays every checked-in fuzz seed and reproducer (`fuzz/seeds/<target>/`)
//! through the fuzz target bodies on the stable toolchain, so each change is
//! checked against everything the fuzzers found.

#[path = "../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_seed_of_every_fuzz_target_replays_cleanly() {
    // STRATA_FUZZ_CORPUS=fuzz/corpus replays a campaign's whole corpus.
    let root = match std::env::var_os("STRATA_FUZZ_CORPUS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds"),
    };
    let mut total = 0;
    for target in targets::TARGETS {
        let dir = root.join(target);
        let Ok(listing) = std::fs::read_dir(&dir) else {
            panic!("{}: no seeds", dir.display());
        };
        let mut files: Vec<_> = listing.map(|e| e.unwrap().path()).collect();
        files.sort();
        assert!(!files.is_empty(), "no seed for {target}");
        for file in files {
            let data = std::fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| targets::run(target, &data));
            assert!(outcome.is_ok(), "{target}: {} fails", file.display());
            total += 1;
        }
    }
    assert!(total >= targets::TARGETS.len());
}
