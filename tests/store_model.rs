//! The proptest state machine for `ZsPool`: random insert, alloc, write,
//! read, free, stale-handle use, compaction and cache shrinking against a
//! handle → bytes model; every live object byte-equal, the footprint exact
//! and never below the live bytes, after every step.

use proptest::prelude::*;
use zswap::testing::store_model::{StoreHarness, StoreOp};
use zswap::PoolConfig;

fn op() -> impl Strategy<Value = StoreOp> {
    prop_oneof![
        10 => (any::<u16>(), any::<u8>()).prop_map(|(len, seed)| StoreOp::Insert { len, seed }),
        2 => any::<u16>().prop_map(|len| StoreOp::Alloc { len }),
        2 => (any::<u8>(), any::<u8>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, seed, wrong_len)| StoreOp::Write { pick, seed, wrong_len }),
        3 => any::<u8>().prop_map(|pick| StoreOp::Read { pick }),
        8 => any::<u8>().prop_map(|pick| StoreOp::Free { pick }),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(pick, read)| StoreOp::Stale { pick, read }),
        2 => Just(StoreOp::Compact),
        1 => Just(StoreOp::ShrinkCache),
    ]
}

fn cases() -> u32 {
    zswap::testing::proptest_cases(1000)
}

fn run(mut h: StoreHarness, ops: &[StoreOp]) -> Result<(), TestCaseError> {
    for op in ops {
        if let Err(e) = h.apply(op) {
            prop_assert!(false, "{}", e);
        }
    }
    if let Err(e) = h.drain() {
        prop_assert!(false, "{}", e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn small_pool_matches_model(ops in prop::collection::vec(op(), 1..300)) {
        run(StoreHarness::small(), &ops)?;
    }

    #[test]
    fn page_pool_matches_model(ops in prop::collection::vec(op(), 1..200)) {
        run(StoreHarness::new(PoolConfig::default()), &ops)?;
    }
}

/// Fill, free every other object, compact: whole spans come back and the
/// footprint falls close to the live bytes.
#[test]
fn compaction_gives_spans_back() {
    let mut h = StoreHarness::new(PoolConfig::default());
    for i in 0..4000u16 {
        h.apply(&StoreOp::Insert {
            len: 700 + i % 64,
            seed: i as u8,
        })
        .unwrap();
    }
    let full = h.pool().footprint();
    for i in 0..2000u16 {
        h.apply(&StoreOp::Free {
            pick: (i % 7) as u8,
        })
        .unwrap();
    }
    let before = h.pool().footprint();
    h.apply(&StoreOp::Compact).unwrap();
    let after = h.pool().footprint();
    let s = h.pool().stats();
    assert!(
        after < before,
        "compaction freed nothing ({before} -> {after})"
    );
    assert!(
        (after as f64) < s.bytes_used as f64 * 1.25,
        "after compaction {after} B hold {} B of objects (full: {full})",
        s.bytes_used
    );
    assert!(s.objects_compacted > 0 && s.spans_compacted > 0);
    h.drain().unwrap();
}
