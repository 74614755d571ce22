//! The proptest state machine for the zswap facade against its sequential
//! model (`zswap::testing::zswap_seq`): random swap-outs, swap-ins, frees,
//! limit and writeback settings, group creation and offline, shrinks,
//! scans, the pressure shrinker's counts and scans, proactive reclaim,
//! worker runs, compactions and compressor switches. After every step the result
//! is the model's, every live slot's page is where the model says and
//! byte-equal to what went out, and every debugfs counter, every group's
//! memory.stat counters and every list's count equal the model's.

use proptest::prelude::*;
use zswap::testing::zswap_model::{ZswapHarness, ZswapOp};
use zswap::{LruPolicy, WorkerPolicy};

fn op() -> impl Strategy<Value = ZswapOp> {
    prop_oneof![
        12 => (any::<u16>(), any::<u8>()).prop_map(|(page, group)| ZswapOp::SwapOut { page, group }),
        5 => any::<u16>().prop_map(|pick| ZswapOp::SwapIn { pick }),
        2 => any::<u16>().prop_map(|pick| ZswapOp::Free { pick }),
        2 => (any::<u8>(), prop::option::of(0u16..256)).prop_map(|(group, kib)| ZswapOp::SetMax { group, kib }),
        1 => (any::<u8>(), prop::bool::weighted(0.7)).prop_map(|(group, enabled)| ZswapOp::SetWriteback { group, enabled }),
        2 => any::<u8>().prop_map(|parent| ZswapOp::Create { parent }),
        1 => any::<u8>().prop_map(|group| ZswapOp::Offline { group }),
        1 => any::<u8>().prop_map(|group| ZswapOp::Shrink { group }),
        2 => (any::<u8>(), 0u8..16).prop_map(|(group, nr)| ZswapOp::Scan { group, nr }),
        1 => Just(ZswapOp::WorkerPass),
        1 => Just(ZswapOp::Compact),
        1 => Just(ZswapOp::AreaCycle),
        1 => any::<u8>().prop_map(|which| ZswapOp::SetCompressor { which }),
        2 => any::<u8>().prop_map(|group| ZswapOp::ShrinkerCount { group }),
        2 => (any::<u8>(), 0u8..16).prop_map(|(group, nr)| ZswapOp::ShrinkerScan { group, nr }),
        1 => (any::<u8>(), 0u16..256).prop_map(|(group, kib)| ZswapOp::Reclaim { group, kib }),
        1 => prop::bool::weighted(0.8).prop_map(|on| ZswapOp::SetShrinker { on }),
    ]
}

fn cases() -> u32 {
    zswap::testing::proptest_cases(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn zswap_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(ZswapHarness::new(), &ops)?;
    }

    /// The same invariants hold with one list for everyone.
    #[test]
    fn global_lru_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(ZswapHarness::with_policy(LruPolicy::Global), &ops)?;
    }

    /// And with the proportional shrink worker.
    #[test]
    fn proportional_worker_matches_model(ops in prop::collection::vec(op(), 1..250)) {
        run(ZswapHarness::with_policies(LruPolicy::PerGroup, WorkerPolicy::Proportional), &ops)?;
    }
}

fn run(mut h: ZswapHarness, ops: &[ZswapOp]) -> Result<(), TestCaseError> {
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

/// Areas cycle through swapoff and swapon in the model: refused while a
/// slot is live, reused under the next generation once none is, with pools
/// switched and given back between.
#[test]
fn areas_and_pools_cycle_against_the_model() {
    use ZswapOp::*;
    let mut h = ZswapHarness::new();
    let ops = [
        AreaCycle,
        SwapOut { page: 3, group: 0 },
        SwapOut { page: 40, group: 0 },
        AreaCycle, // busy
        SetCompressor { which: 1 },
        Scan { group: 0, nr: 8 },
        Scan { group: 0, nr: 8 }, // written back: the area holds a device page
        SwapIn { pick: 0 },
        AreaCycle, // still busy
        Free { pick: 0 },
        AreaCycle,
        SwapOut { page: 7, group: 0 },
        SwapIn { pick: 0 },
        AreaCycle,
    ];
    for op in &ops {
        h.apply(op).unwrap();
    }
    h.drain().unwrap();
}

/// The proportional worker against the model on a run that works it:
/// four sibling groups storing in the ratio 1:2:4:8 until the global limit
/// is hit, then passes (which first give every entry its second chance),
/// and more stores and passes, under both list designs.
#[test]
fn proportional_worker_on_groups_of_four_sizes() {
    use ZswapOp::*;
    for policy in [LruPolicy::PerGroup, LruPolicy::Global] {
        let mut h = ZswapHarness::with_policies(policy, WorkerPolicy::Proportional);
        let mut ops = vec![Create { parent: 0 }; 4];
        let weights = [1u8, 2, 4, 8];
        for round in 0..3u16 {
            for i in 0..150u16 {
                // Groups 1..=4 (the ids after the root), by weight.
                let mut pick = (i * 7 + round) % 15;
                let group = weights
                    .iter()
                    .position(|&w| {
                        let hit = pick < u16::from(w);
                        pick = pick.saturating_sub(u16::from(w));
                        hit
                    })
                    .unwrap() as u8
                    + 1;
                ops.push(SwapOut {
                    page: round * 150 + i,
                    group,
                });
            }
            ops.extend([WorkerPass, WorkerPass, ShrinkerCount { group: 4 }]);
        }
        for op in &ops {
            h.apply(op).unwrap_or_else(|e| panic!("{policy:?}: {e}"));
        }
        h.drain().unwrap();
    }
}
