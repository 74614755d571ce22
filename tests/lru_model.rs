//! The proptest state machine for `ListLru`: random sequences of add, del,
//! isolate, putback, rotate, walks with random callback scripts, group
//! creation and offline-with-reparent, run against the sequential model in
//! `zswap::testing::lru_model`; results, every list's order and every count
//! are compared after each step.

use proptest::prelude::*;
use zswap::testing::lru_model::{Action, LruHarness, LruOp};

fn action() -> impl Strategy<Value = Action> + Clone {
    prop_oneof![
        4 => Just(Action::Skip),
        2 => Just(Action::Rotate),
        3 => Just(Action::Remove),
        1 => Just(Action::RemoveRetry),
        1 => Just(Action::Retry),
        1 => Just(Action::RetryLocked),
        1 => Just(Action::Stop),
    ]
}

fn op() -> impl Strategy<Value = LruOp> {
    let script = prop::collection::vec(action(), 0..6);
    prop_oneof![
        8 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(item, node, group)| LruOp::Add { item, node, group }),
        3 => any::<u8>().prop_map(|item| LruOp::Del { item }),
        2 => any::<u8>().prop_map(|item| LruOp::Isolate { item }),
        3 => (any::<u8>(), any::<u8>(), any::<u8>())
            .prop_map(|(item, node, group)| LruOp::Putback { item, node, group }),
        2 => any::<u8>().prop_map(|item| LruOp::Rotate { item }),
        4 => (any::<u8>(), any::<u8>(), 0u8..24, script.clone())
            .prop_map(|(node, group, budget, script)| LruOp::Walk { node, group, budget, script }),
        1 => (any::<u8>(), 0u8..24, script)
            .prop_map(|(node, budget, script)| LruOp::WalkNode { node, budget, script }),
        2 => any::<u8>().prop_map(|parent| LruOp::Create { parent }),
        2 => any::<u8>().prop_map(|group| LruOp::Offline { group }),
    ]
}

fn cases() -> u32 {
    zswap::testing::proptest_cases(3000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn list_lru_matches_model(ops in prop::collection::vec(op(), 1..120)) {
        let mut h = LruHarness::new();
        for op in &ops {
            if let Err(e) = h.apply(op) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}

/// A hand-picked sequence that covers reparenting under a walk, putback to
/// an offline group, and budget exhaustion by rotation.
#[test]
fn scripted_sequence() {
    let mut h = LruHarness::new();
    let ops = [
        LruOp::Create { parent: 0 },
        LruOp::Create { parent: 1 },
        LruOp::Add {
            item: 0,
            node: 0,
            group: 2,
        },
        LruOp::Add {
            item: 1,
            node: 0,
            group: 2,
        },
        LruOp::Add {
            item: 2,
            node: 0,
            group: 1,
        },
        LruOp::Add {
            item: 3,
            node: 1,
            group: 2,
        },
        LruOp::Walk {
            node: 0,
            group: 2,
            budget: 1,
            script: vec![Action::Remove],
        },
        LruOp::Del { item: 0 },
        LruOp::Offline { group: 2 },
        LruOp::Putback {
            item: 0,
            node: 0,
            group: 2,
        },
        LruOp::Walk {
            node: 0,
            group: 1,
            budget: 9,
            script: vec![Action::Rotate],
        },
        LruOp::Walk {
            node: 0,
            group: 1,
            budget: 5,
            script: vec![Action::Retry, Action::RemoveRetry],
        },
        LruOp::Offline { group: 1 },
        LruOp::WalkNode {
            node: 1,
            budget: 4,
            script: vec![Action::Stop],
        },
        LruOp::Add {
            item: 9,
            node: 5,
            group: 0,
        },
        LruOp::Add {
            item: 9,
            node: 0,
            group: 40,
        },
    ];
    for op in &ops {
        h.apply(op).unwrap();
    }
}
