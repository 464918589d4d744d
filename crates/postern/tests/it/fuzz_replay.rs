//! Replays the fuzz corpora and crash reproducers (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz targets' own checks (`fuzz/harness.rs`), so
//! that what fuzzing once found stays fixed without running a fuzzer.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../../../../fuzz/harness.rs"]
mod harness;

#[test]
fn fuzz_corpora_and_reproducers_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut failed: Vec<PathBuf> = Vec::new();
    for (name, check) in harness::TARGETS {
        let mut replayed = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("directory entry").path();
                let data = std::fs::read(&path).expect("corpus file");
                if std::panic::catch_unwind(|| check(&data)).is_err() {
                    failed.push(path);
                }
                replayed += 1;
            }
        }
        assert!(replayed > 0, "fuzz/corpus/{name} has no inputs");
    }
    assert!(
        failed.is_empty(),
        "inputs that fail their target's checks: {failed:#?}"
    );
}
