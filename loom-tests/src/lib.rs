//! Loom models of zswap's races live in `tests/`; build them with
//! `RUSTFLAGS="--cfg loom"` (see `scripts/loom.sh`). This library holds what
//! the model files share.

/// `loom::model`, printing how many interleavings it explored (the figure
/// VERIFICATION.md records).
#[cfg(loom)]
pub fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = runs.clone();
    let mut builder = loom::model::Builder::new();
    // The facade's pin waits are yield loops: give them room.
    builder.max_branches = 20_000;
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    println!(
        "loom model {name}: {} interleavings",
        runs.load(Ordering::Relaxed)
    );
}
