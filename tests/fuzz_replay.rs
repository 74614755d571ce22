//! Replays every committed fuzz corpus and regression input under plain
//! `cargo test`, so what the fuzzers found stays fixed without cargo-fuzz.

use std::fs;
use std::path::Path;

/// Runs `body` on every file under `fuzz/{corpus,regressions}/<target>/`;
/// returns how many inputs it ran.
fn replay(target: &str, body: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files.iter().filter(|f| f.is_file()) {
            let data = fs::read(f).unwrap();
            let r = std::panic::catch_unwind(|| body(&data));
            assert!(r.is_ok(), "fuzz input {} fails", f.display());
            n += 1;
        }
    }
    n
}

#[test]
fn lru_ops_corpus() {
    let n = replay("lru_ops", zswap::testing::lru_model::run_bytes);
    assert!(n > 0, "the lru_ops corpus is committed and non-empty");
    println!("replayed {n} lru_ops inputs");
}
