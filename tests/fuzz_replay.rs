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

#[test]
fn store_ops_corpus() {
    let n = replay("store_ops", zswap::testing::store_model::run_bytes);
    assert!(n > 0, "the store_ops corpus is committed and non-empty");
}

/// Every codec's corpus; a codec not in this build (a feature off) is
/// skipped, and CI replays with all features too.
#[test]
fn decompress_corpora() {
    use zswap::testing::codec::run_decompress;
    fn lz4_flex(d: &[u8]) {
        assert!(run_decompress("lz4-flex", d));
    }
    fn lz4_c(d: &[u8]) {
        run_decompress("lz4-c", d);
    }
    fn zstd(d: &[u8]) {
        run_decompress("zstd", d);
    }
    fn deflate(d: &[u8]) {
        assert!(run_decompress("deflate", d));
    }
    let n = replay("decompress_lz4_flex", lz4_flex)
        + replay("decompress_lz4_c", lz4_c)
        + replay("decompress_zstd", zstd)
        + replay("decompress_deflate", deflate);
    assert!(n > 0);
}

#[test]
fn zswap_ops_corpus() {
    let n = replay("zswap_ops", zswap::testing::zswap_model::run_bytes);
    assert!(n > 0, "the zswap_ops corpus is committed and non-empty");
}

#[test]
fn swapfile_corpus() {
    let n = replay("swapfile", zswap::testing::swapfile::run_bytes);
    assert!(n > 0, "the swapfile corpus is committed and non-empty");
}
