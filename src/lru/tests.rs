use super::*;
use crate::Topology;

const N0: NodeId = NodeId::ZERO;

fn values(lru: &ListLru<u32>, node: NodeId, group: GroupId) -> Vec<u32> {
    let mut v = Vec::new();
    let mut budget = usize::MAX;
    lru.walk_one(node, group, &mut budget, |g| {
        v.push(*g.item());
        LruStatus::Skip
    })
    .unwrap();
    v
}

#[test]
fn bad_input_is_a_typed_error() {
    let groups = Groups::new();
    let lru = ListLru::with_groups(&Topology::with_nodes(2), &groups);
    let it = Item::new(1u32);
    assert_eq!(
        lru.add(&it, NodeId(2), GroupId::ROOT),
        Err(Error::NodeOutOfRange {
            node: NodeId(2),
            nr_nodes: 2
        })
    );
    let ghost = GroupId::from_raw(9);
    assert_eq!(lru.add(&it, N0, ghost), Err(Error::UnknownGroup(ghost)));
    assert_eq!(lru.count_one(N0, ghost), Err(Error::UnknownGroup(ghost)));
    assert!(lru
        .walk_one(NodeId(7), GroupId::ROOT, &mut 1, |_| LruStatus::Skip)
        .is_err());
    assert!(lru.count_node(NodeId(7)).is_err());
    assert_eq!(lru.count(), 0);

    let other = ListLru::new(&Topology::single());
    assert!(lru.add(&it, N0, GroupId::ROOT).unwrap());
    assert_eq!(other.add(&it, N0, GroupId::ROOT), Err(Error::ForeignItem));
    assert_eq!(other.del(&it), Err(Error::ForeignItem));
    assert_eq!(lru.count(), 1);
}

#[test]
fn live_lrus_refuse_each_others_items_and_dropped_ones_give_their_ids_back() {
    let lrus: Vec<ListLru<u32>> = (0..32).map(|_| ListLru::new(&Topology::single())).collect();
    let items: Vec<_> = (0..32u32).map(Item::new).collect();
    for (lru, it) in lrus.iter().zip(&items) {
        assert!(lru.add(it, N0, GroupId::ROOT).unwrap());
    }
    for (i, lru) in lrus.iter().enumerate() {
        for (j, it) in items.iter().enumerate() {
            if i != j {
                assert_eq!(lru.add(it, N0, GroupId::ROOT), Err(Error::ForeignItem));
            }
        }
    }
    drop(lrus);
    assert!(items.iter().all(|it| !it.is_linked()));
    // Made and dropped 10,000 times, lrus reuse their ids: the registry
    // grows only by what other tests hold live meanwhile.
    let before = super::item::LruId::high_water();
    for _ in 0..10_000 {
        drop(ListLru::<u32>::new(&Topology::single()));
    }
    assert!(super::item::LruId::high_water() - before < 1_000);
}

#[test]
fn add_del_isolate_putback_rotate() {
    let lru = ListLru::new(&Topology::single());
    let items: Vec<_> = (0..4u32).map(Item::new).collect();
    for it in &items {
        assert!(lru.add(it, N0, GroupId::ROOT).unwrap());
    }
    assert!(
        !lru.add(&items[0], N0, GroupId::ROOT).unwrap(),
        "already linked"
    );
    assert!(lru.rotate(&items[0]).unwrap());
    assert_eq!(values(&lru, N0, GroupId::ROOT), vec![1, 2, 3, 0]);
    assert!(lru.isolate(&items[2]).unwrap());
    assert_eq!(lru.del(&items[2]).unwrap(), Del::Isolated);
    assert!(
        !lru.add(&items[2], N0, GroupId::ROOT).unwrap(),
        "isolated is not addable"
    );
    assert!(!lru.rotate(&items[2]).unwrap());
    assert!(lru.putback(&items[2], N0, GroupId::ROOT).unwrap());
    assert!(!lru.putback(&items[2], N0, GroupId::ROOT).unwrap());
    assert_eq!(values(&lru, N0, GroupId::ROOT), vec![1, 3, 0, 2]);
    assert_eq!(lru.del(&items[1]).unwrap(), Del::Removed);
    assert_eq!(lru.del(&items[1]).unwrap(), Del::NotOnList);
    assert_eq!(lru.del(&Item::new(9)).unwrap(), Del::NotOnList);
    assert_eq!(lru.count(), 3);
}

#[test]
fn group_unaware_ignores_the_group() {
    let lru = ListLru::new(&Topology::with_nodes(2));
    let it = Item::new(1u32);
    assert!(lru.add(&it, NodeId(1), GroupId::from_raw(5)).unwrap());
    assert_eq!(lru.count_one(NodeId(1), GroupId::ROOT).unwrap(), 1);
    assert_eq!(lru.count_node(NodeId(0)).unwrap(), 0);
    assert!(!lru.is_group_aware());
}

#[test]
fn lists_are_lazy_and_reparent_to_the_cold_end() {
    let groups = Groups::new();
    let a = groups.create(GroupId::ROOT).unwrap();
    let b = groups.create(a).unwrap();
    let lru = ListLru::with_groups(&Topology::single(), &groups);
    assert!(lru.existing(N0, b).is_none());
    let x = Item::new(1u32);
    let y = Item::new(2u32);
    let z = Item::new(3u32);
    lru.add(&x, N0, b).unwrap();
    // memcg_list_lru_alloc made b's and every ancestor's lists.
    assert!(lru.existing(N0, a).is_some());
    lru.add(&y, N0, a).unwrap();
    lru.add(&z, N0, b).unwrap();
    groups.offline(b).unwrap();
    assert_eq!(
        values(&lru, N0, a),
        vec![1, 3, 2],
        "b's items go in front of a's"
    );
    // Nothing refers to b any more (its items are a's now): it is freed,
    // and its id is refused.
    assert_eq!(lru.count_one(N0, b), Err(Error::UnknownGroup(b)));
    assert!(lru.isolate(&x).unwrap());
    assert_eq!(lru.putback(&x, N0, b), Err(Error::UnknownGroup(b)));
    assert!(lru.putback(&x, N0, a).unwrap());
    let w = Item::new(4u32);
    assert_eq!(lru.add(&w, N0, b), Err(Error::UnknownGroup(b)));
    assert!(lru.add(&w, N0, a).unwrap());
    assert_eq!(values(&lru, N0, a), vec![3, 2, 1, 4]);
    // b's index serves a new group, whose lists start empty.
    let c = groups.create(a).unwrap();
    assert_eq!((c.index(), c.generation()), (b.index(), b.generation() + 1));
    assert_eq!(values(&lru, N0, c), Vec::<u32>::new());
    assert!(lru.add(&Item::new(5u32), N0, c).unwrap());
    assert_eq!(values(&lru, N0, c), vec![5]);
    groups.offline(c).unwrap();
    groups.offline(a).unwrap();
    assert_eq!(values(&lru, N0, GroupId::ROOT), vec![5, 3, 2, 1, 4]);
    assert_eq!(lru.del(&z).unwrap(), Del::Removed);
    assert_eq!(lru.count_one(N0, GroupId::ROOT).unwrap(), 4);
}

#[test]
fn unlocked_lets_the_callback_use_the_lru() {
    let lru = ListLru::new(&Topology::single());
    let items: Vec<_> = (0..3u32).map(Item::new).collect();
    for it in &items {
        lru.add(it, N0, GroupId::ROOT).unwrap();
    }
    let mut budget = 1;
    let mut seen = None;
    lru.walk_one(N0, GroupId::ROOT, &mut budget, |g| {
        let me = g.handle();
        // Someone deletes the item while the lock is released...
        g.unlocked(|| assert_eq!(lru.del(&me).unwrap(), Del::Removed));
        // ...so it can no longer be isolated from this list.
        seen = Some(g.isolate().is_none());
        LruStatus::Retry
    })
    .unwrap();
    assert_eq!(seen, Some(true));
    assert_eq!(lru.count(), 2);
    assert_eq!(values(&lru, N0, GroupId::ROOT), vec![1, 2]);
}

#[test]
fn walk_counts_only_real_isolations_and_budget_bounds_retry() {
    let lru = ListLru::new(&Topology::single());
    let items: Vec<_> = (0..3u32).map(Item::new).collect();
    for it in &items {
        lru.add(it, N0, GroupId::ROOT).unwrap();
    }
    // Retry forever: the budget, decremented first, ends it.
    let mut budget = 10;
    let mut calls = 0;
    let n = lru
        .walk_one(N0, GroupId::ROOT, &mut budget, |_| {
            calls += 1;
            LruStatus::Retry
        })
        .unwrap();
    assert_eq!((n, calls, budget), (0, 10, 0));
    // Rotating everything visits round and round until the budget ends.
    let mut budget = 7;
    let mut seen = Vec::new();
    lru.walk_one(N0, GroupId::ROOT, &mut budget, |g| {
        seen.push(*g.item());
        LruStatus::Rotate
    })
    .unwrap();
    assert_eq!(seen, vec![0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(values(&lru, N0, GroupId::ROOT), vec![1, 2, 0]);
}

#[test]
fn a_panicking_callback_leaves_the_lru_consistent() {
    let lru = ListLru::new(&Topology::single());
    let items: Vec<_> = (0..3u32).map(Item::new).collect();
    for it in &items {
        lru.add(it, N0, GroupId::ROOT).unwrap();
    }
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lru.walk_one(N0, GroupId::ROOT, &mut 3, |g| {
            g.isolate();
            panic!("callback bug");
        })
    }));
    assert!(r.is_err());
    assert_eq!(lru.count(), 2);
    assert!(items[0].is_isolated());
    assert_eq!(values(&lru, N0, GroupId::ROOT), vec![1, 2]);
}

#[test]
fn dropping_the_lru_detaches_items() {
    let items: Vec<_> = (0..3u32).map(Item::new).collect();
    {
        let lru = ListLru::new(&Topology::single());
        for it in &items {
            lru.add(it, N0, GroupId::ROOT).unwrap();
        }
        lru.isolate(&items[1]).unwrap();
    }
    assert!(!items[0].is_linked() && !items[2].is_linked());
    assert!(items[1].is_isolated());
}

#[test]
fn values_drop_exactly_once() {
    use crate::sync::{AtomicUsize, Ordering as O};
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct D;
    impl Drop for D {
        fn drop(&mut self) {
            DROPS.fetch_add(1, O::Relaxed);
        }
    }
    let lru = ListLru::new(&Topology::single());
    for _ in 0..5 {
        lru.add(&Item::new(D), N0, GroupId::ROOT).unwrap();
    }
    assert_eq!(DROPS.load(O::Relaxed), 0, "the list keeps its items alive");
    // A walk that isolates and drops two items frees them.
    lru.walk_one(N0, GroupId::ROOT, &mut 2, |g| {
        drop(g.isolate());
        LruStatus::Removed
    })
    .unwrap();
    assert_eq!(DROPS.load(O::Relaxed), 2);
    drop(lru);
    assert_eq!(DROPS.load(O::Relaxed), 5);
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "dropped the lock and returned Skip")]
fn skip_after_dropping_the_lock_is_caught() {
    let lru = ListLru::new(&Topology::single());
    let it = Item::new(1u32);
    lru.add(&it, N0, GroupId::ROOT).unwrap();
    let _ = lru.walk_one(N0, GroupId::ROOT, &mut 1, |g| {
        g.unlocked(|| ());
        LruStatus::Skip
    });
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "without isolating")]
fn removed_without_isolating_is_caught() {
    let lru = ListLru::new(&Topology::single());
    let it = Item::new(1u32);
    lru.add(&it, N0, GroupId::ROOT).unwrap();
    let _ = lru.walk_one(N0, GroupId::ROOT, &mut 1, |_| LruStatus::Removed);
}

#[test]
fn concurrent_smoke() {
    let groups = Groups::new();
    let gs: Vec<_> = (0..4)
        .map(|_| groups.create(GroupId::ROOT).unwrap())
        .collect();
    let lru = ListLru::with_groups(&Topology::with_nodes(2), &groups);
    std::thread::scope(|s| {
        for (t, &g) in gs.iter().enumerate() {
            let lru = &lru;
            s.spawn(move || {
                let items: Vec<_> = (0..200u32).map(Item::new).collect();
                for round in 0..50 {
                    // The victim is freed by its offline (nothing refers to
                    // it): from then on, its thread uses the root.
                    let g = if lru.groups().unwrap().state(g).is_ok() {
                        g
                    } else {
                        GroupId::ROOT
                    };
                    for it in &items {
                        match lru.add(it, NodeId((t % 2) as u32), g) {
                            Ok(added) => assert!(added),
                            Err(Error::UnknownGroup(_)) => {
                                assert!(lru.add(it, NodeId((t % 2) as u32), GroupId::ROOT).unwrap())
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    let mut budget = 100;
                    let mut isolated = Vec::new();
                    let taken = lru
                        .walk_one(NodeId((t % 2) as u32), g, &mut budget, |w| {
                            if round % 2 == 0 {
                                isolated.push(w.isolate().unwrap());
                                LruStatus::Removed
                            } else {
                                LruStatus::Rotate
                            }
                        })
                        .unwrap_or(0);
                    assert_eq!(taken, isolated.len());
                    if lru.groups().unwrap().is_online(g) {
                        assert_eq!(taken, if round % 2 == 0 { 100 } else { 0 });
                    }
                    for it in &isolated {
                        // Once the victim is freed, its items go back to the
                        // root's list.
                        match lru.putback(it, NodeId((t % 2) as u32), g) {
                            Ok(back) => assert!(back),
                            Err(Error::UnknownGroup(_)) => assert!(lru
                                .putback(it, NodeId((t % 2) as u32), GroupId::ROOT)
                                .unwrap()),
                            Err(e) => panic!("{e}"),
                        }
                    }
                    for it in &items {
                        assert_eq!(lru.del(it).unwrap(), Del::Removed);
                    }
                }
            });
        }
        let groups = &groups;
        let victim = gs[3];
        s.spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(2));
            groups.offline(victim).unwrap();
        });
    });
    assert_eq!(lru.count(), 0);
}
