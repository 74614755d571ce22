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

/// A zswap with no worker, one node, no pool limit to speak of, and a
/// memory device of `slots` slots: the setting the models of compaction
/// and of what the crate gives back share.
#[cfg(loom)]
pub fn small_zswap(groups: &zswap::Groups, slots: u64) -> zswap::Zswap {
    let cfg = zswap::ZswapConfig::default()
        .shrink_worker(false)
        .topology(zswap::Topology::single())
        .max_pool(zswap::PoolLimit::Bytes(1 << 30));
    let z = zswap::Zswap::new(cfg, groups).unwrap();
    z.swapon(Box::new(zswap::MemDevice::new(slots))).unwrap();
    z
}
