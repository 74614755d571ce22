//! Loom models of `ListLru`'s races, on the crate's real types built with
//! `--cfg loom` (run: `RUSTFLAGS="--cfg loom" cargo test -p zswap-loom-tests
//! --release`; see the README). Each model checks, in every interleaving,
//! that every item is removed at most once, that the counts equal the items
//! really on the lists, and (through loom's `Arc` tracking) that no item is
//! leaked or freed twice.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use zswap::{Del, Error, GroupId, Groups, Item, ListLru, LruStatus, NodeId, Topology};
use zswap_loom_tests::model;

const N0: NodeId = NodeId::ZERO;

/// A group under the root holding items 1 (`x`, coldest) and 2 (`y`).
#[allow(clippy::type_complexity)]
fn child_with_two_items() -> (Groups, GroupId, Arc<ListLru<u32>>, Item<u32>, Item<u32>) {
    let groups = Groups::new();
    let child = groups.create(GroupId::ROOT).unwrap();
    let lru = Arc::new(ListLru::with_groups(&Topology::single(), &groups));
    let x = Item::new(1u32);
    let y = Item::new(2u32);
    lru.add(&x, N0, child).unwrap();
    lru.add(&y, N0, child).unwrap();
    (groups, child, lru, x, y)
}

/// Items still on the lists, by walking them all with `Skip`.
fn on_lists(lru: &ListLru<u32>) -> Vec<u32> {
    let mut seen = Vec::new();
    let mut budget = usize::MAX;
    lru.walk(&mut budget, |g| {
        seen.push(*g.item());
        LruStatus::Skip
    });
    seen
}

/// (1) A walker that isolates with the lock dropped (`RemovedRetry`, as
/// zswap's writeback does) races `del` of the same item.
#[test]
fn walker_removed_retry_vs_del() {
    model("walker_removed_retry_vs_del", || {
        let lru = Arc::new(ListLru::new(&Topology::single()));
        let a = Item::new(1u32);
        let b = Item::new(2u32);
        lru.add(&a, N0, GroupId::ROOT).unwrap();
        lru.add(&b, N0, GroupId::ROOT).unwrap();

        let walker = {
            let lru = lru.clone();
            thread::spawn(move || {
                let mut taken = Vec::new();
                let mut budget = 3;
                let n = lru
                    .walk_one(N0, GroupId::ROOT, &mut budget, |g| {
                        let item = g.isolate().expect("walked item is on the list");
                        g.unlocked(|| taken.push(*item));
                        LruStatus::RemovedRetry
                    })
                    .unwrap();
                assert_eq!(n, taken.len());
                taken
            })
        };
        let del = lru.del(&a).unwrap();
        let rotated = lru.rotate(&b).unwrap();
        let taken = walker.join().unwrap();
        // Only the walker can take b off, so a failed rotate means it had.
        assert!(rotated || taken.contains(&2));

        let a_removed_by_walker = taken.contains(&1);
        match del {
            Del::Removed => assert!(!a_removed_by_walker),
            Del::Isolated => assert!(a_removed_by_walker),
            Del::NotOnList => panic!("a was linked or isolated throughout"),
        }
        let left = on_lists(&lru);
        assert_eq!(lru.count(), left.len());
        assert_eq!(
            left.len() + taken.len() + usize::from(del == Del::Removed),
            2
        );
        assert!(!left.contains(&1));
    });
}

/// (2) `del` races the reparenting of its item's group.
#[test]
fn del_vs_reparent() {
    model("del_vs_reparent", || {
        let (groups, child, lru, x, y) = child_with_two_items();

        let offline = {
            let groups = groups.clone();
            thread::spawn(move || groups.offline(child).unwrap())
        };
        assert_eq!(lru.del(&x).unwrap(), Del::Removed);
        offline.join().unwrap();

        assert_eq!(on_lists(&lru), vec![2]);
        assert_eq!(lru.count_one(N0, GroupId::ROOT).unwrap(), 1);
        // Nothing refers to it after its offline: freed.
        assert_eq!(lru.count_one(N0, child), Err(Error::UnknownGroup(child)));
        assert_eq!(lru.count(), 1);
        assert_eq!(lru.del(&y).unwrap(), Del::Removed);
        assert_eq!(lru.count(), 0);
    });
}

/// (2b) The first `add` of a group (which makes its lists) races that
/// group's offline: the item must end up on the parent's list, never on a
/// list nobody will reparent.
#[test]
fn first_add_vs_offline() {
    model("first_add_vs_offline", || {
        let groups = Groups::new();
        let child = groups.create(GroupId::ROOT).unwrap();
        let lru = Arc::new(ListLru::with_groups(&Topology::single(), &groups));
        let x = Item::new(7u32);

        let offline = {
            let groups = groups.clone();
            thread::spawn(move || groups.offline(child).unwrap())
        };
        // Before the offline (then reparented), while it is dying (onto
        // the root's list), or after its free (refused).
        let added = match lru.add(&x, N0, child) {
            Ok(added) => added,
            Err(Error::UnknownGroup(_)) => lru.add(&x, N0, GroupId::ROOT).unwrap(),
            Err(e) => panic!("{e}"),
        };
        assert!(added);
        offline.join().unwrap();

        // Nothing refers to it after its offline: freed.
        assert_eq!(lru.count_one(N0, child), Err(Error::UnknownGroup(child)));
        assert_eq!(lru.count_one(N0, GroupId::ROOT).unwrap(), 1);
        let mut budget = 8;
        let mut seen = 0;
        lru.walk_one(N0, GroupId::ROOT, &mut budget, |g| {
            seen += 1;
            assert_eq!(*g.item(), 7);
            LruStatus::Skip
        })
        .unwrap();
        assert_eq!(seen, 1);
        assert_eq!(lru.del(&x).unwrap(), Del::Removed);
    });
}

/// (3) Two walkers on one list, one of them dropping the lock.
#[test]
fn two_walkers_one_list() {
    model("two_walkers_one_list", || {
        let lru = Arc::new(ListLru::new(&Topology::single()));
        let items: Vec<_> = (0..2u32).map(Item::new).collect();
        for it in &items {
            lru.add(it, N0, GroupId::ROOT).unwrap();
        }
        let isolated = Arc::new(AtomicUsize::new(0));
        let spawn_walker = |drop_lock: bool| {
            let lru = lru.clone();
            let isolated = isolated.clone();
            thread::spawn(move || {
                let mut budget = 1;
                let n = lru
                    .walk_one(N0, GroupId::ROOT, &mut budget, |g| {
                        g.isolate().expect("walked item is on the list");
                        isolated.fetch_add(1, Ordering::Relaxed);
                        if drop_lock {
                            g.unlocked(|| ());
                            LruStatus::RemovedRetry
                        } else {
                            LruStatus::Removed
                        }
                    })
                    .unwrap();
                assert_eq!(n, 1);
            })
        };
        let t1 = spawn_walker(false);
        let t2 = spawn_walker(true);
        t1.join().unwrap();
        t2.join().unwrap();

        assert_eq!(isolated.load(Ordering::Relaxed), 2);
        assert_eq!(lru.count(), 0);
        for it in &items {
            assert!(it.is_isolated());
            assert_eq!(lru.del(it).unwrap(), Del::Isolated);
        }
    });
}

/// (4) `add` while another thread walks (rotating) and the main thread
/// counts: counts never exceed what was added and end exact.
#[test]
fn add_while_walking_while_counting() {
    model("add_while_walking_while_counting", || {
        let lru = Arc::new(ListLru::new(&Topology::single()));
        let a = Item::new(1u32);
        let b = Item::new(2u32);
        lru.add(&a, N0, GroupId::ROOT).unwrap();

        let adder = {
            let lru = lru.clone();
            thread::spawn(move || assert!(lru.add(&b, N0, GroupId::ROOT).unwrap()))
        };
        let walker = {
            let lru = lru.clone();
            thread::spawn(move || {
                let mut budget = 2;
                lru.walk_one(N0, GroupId::ROOT, &mut budget, |_| LruStatus::Rotate)
                    .unwrap();
            })
        };
        let c = lru.count();
        assert!((1..=2).contains(&c), "count {c}");
        adder.join().unwrap();
        walker.join().unwrap();

        assert_eq!(lru.count(), 2);
        let mut left = on_lists(&lru);
        left.sort_unstable();
        assert_eq!(left, vec![1, 2]);
        drop(a);
    });
}

/// (2c) The kernel's CVE-2026-53153 shape: a walker holds the child's list
/// (and drops its lock mid-callback) while the child is reparented and
/// another thread deletes an item of it. Exactly one of walker and `del`
/// removes the item, and everything left is on the root's list.
#[test]
fn walker_and_del_vs_reparent() {
    model("walker_and_del_vs_reparent", || {
        let (groups, child, lru, x, _y) = child_with_two_items();

        let walker = {
            let lru = lru.clone();
            thread::spawn(move || {
                let mut budget = 1;
                let mut taken = None;
                // Refused once the child is freed (its items are the
                // root's by then).
                match lru.walk_one(N0, child, &mut budget, |g| {
                    let it = g.isolate().expect("walked item is on the list");
                    g.unlocked(|| taken = Some(*it));
                    LruStatus::RemovedRetry
                }) {
                    Ok(_) | Err(Error::UnknownGroup(_)) => {}
                    Err(e) => panic!("{e}"),
                }
                taken
            })
        };
        let offline = {
            let groups = groups.clone();
            thread::spawn(move || groups.offline(child).unwrap())
        };
        let del = lru.del(&x).unwrap();
        let taken = walker.join().unwrap();
        offline.join().unwrap();

        let x_by_walker = taken == Some(1);
        assert_eq!(del == Del::Removed, !x_by_walker, "x removed exactly once");
        assert_eq!(del == Del::Isolated, x_by_walker);
        let left = on_lists(&lru);
        assert_eq!(lru.count(), left.len());
        assert_eq!(lru.count_one(N0, GroupId::ROOT).unwrap(), left.len());
        // Nothing refers to it after its offline: freed.
        assert_eq!(lru.count_one(N0, child), Err(Error::UnknownGroup(child)));
        assert_eq!(
            left.len() + usize::from(taken.is_some()) + usize::from(del == Del::Removed),
            2
        );
    });
}

/// (2d) `putback` of an isolated item to a group racing that group's
/// offline: the item ends up on the live list of the parent, counted once.
#[test]
fn putback_vs_reparent() {
    model("putback_vs_reparent", || {
        let (groups, child, lru, x, y) = child_with_two_items();
        assert!(lru.isolate(&x).unwrap());

        let offline = {
            let groups = groups.clone();
            thread::spawn(move || groups.offline(child).unwrap())
        };
        let back = match lru.putback(&x, N0, child) {
            Ok(back) => back,
            Err(Error::UnknownGroup(_)) => lru.putback(&x, N0, GroupId::ROOT).unwrap(),
            Err(e) => panic!("{e}"),
        };
        assert!(back);
        offline.join().unwrap();

        assert_eq!(lru.count_one(N0, GroupId::ROOT).unwrap(), 2);
        assert_eq!(lru.count(), 2);
        let mut left = on_lists(&lru);
        left.sort_unstable();
        assert_eq!(left, vec![1, 2]);
        assert_eq!(lru.del(&x).unwrap(), Del::Removed);
        assert_eq!(lru.del(&y).unwrap(), Del::Removed);
    });
}

/// (8) A group is taken offline (its items reparented, their words
/// rewritten), freed, and its index reused by a new group that adds an
/// item, while another thread deletes one of the old group's items: the
/// delete finds the item wherever it is (never on the reused list), and
/// every count matches the items on the lists.
#[test]
fn del_vs_offline_free_and_reuse() {
    model("del_vs_offline_free_and_reuse", || {
        let (groups, child, lru, x, y) = child_with_two_items();
        let deleter = {
            let lru = lru.clone();
            thread::spawn(move || lru.del(&x).unwrap())
        };
        groups.offline(child).unwrap();
        // Nothing refers to it: freed, and its index serves a new group.
        let reused = groups.create(GroupId::ROOT).unwrap();
        assert_eq!(reused.index(), child.index());
        let z = Item::new(3u32);
        assert!(lru.add(&z, N0, reused).unwrap());
        assert_eq!(deleter.join().unwrap(), Del::Removed);
        assert_eq!(lru.count_one(N0, reused).unwrap(), 1);
        assert_eq!(lru.count_one(N0, GroupId::ROOT).unwrap(), 1);
        assert_eq!(lru.count(), 2);
        let mut left = on_lists(&lru);
        left.sort_unstable();
        assert_eq!(left, vec![2, 3]);
        assert_eq!(lru.del(&y).unwrap(), Del::Removed);
        assert_eq!(lru.del(&z).unwrap(), Del::Removed);
        assert_eq!(lru.count(), 0);
    });
}
