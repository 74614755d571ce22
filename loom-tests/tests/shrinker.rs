//! Loom models of the pressure shrinker on the real `Zswap` built with
//! `--cfg loom`: the disk swap-in feedback consumed by concurrent counts
//! (the kernel's cmpxchg loop), and a shrinker scan racing a store and a
//! swap-in of the same group.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use zswap::testing::random_page;
use zswap::{
    AreaId, GroupId, Groups, MemDevice, NodeId, PoolLimit, SwapSlot, Topology, Zswap, ZswapConfig,
    PAGE_SIZE,
};
use zswap_loom_tests::model;

const N0: NodeId = NodeId::ZERO;
const ROOT: GroupId = GroupId::ROOT;

fn slot(offset: u32) -> SwapSlot {
    SwapSlot {
        area: AreaId::new(0),
        offset,
    }
}

/// A page no codec compresses, so it is stored as-is and the shrinker's
/// ratio scaling is 1: a count is the list's length less the swap-ins it
/// consumed. (Odd seeds, each its own page.)
fn page(seed: u64) -> Vec<u8> {
    random_page(2 * seed + 3)
}

/// No worker, one node, no limit to speak of, a 4-page memory device.
fn tiny() -> (Groups, Zswap) {
    let groups = Groups::new();
    let cfg = ZswapConfig::default()
        .shrink_worker(false)
        .topology(Topology::single())
        .max_pool(PoolLimit::Bytes(1 << 30));
    let z = Zswap::new(cfg, &groups).unwrap();
    z.swapon(Box::new(MemDevice::new(4))).unwrap();
    (groups, z)
}

/// Stores `page(offset)` at each slot, then writes them all back (a first
/// scan clears their referenced marks).
fn written_back(z: &Zswap, offsets: &[u32]) {
    for &o in offsets {
        assert!(z.store(slot(o), &page(u64::from(o)), ROOT, N0).unwrap());
    }
    let n = offsets.len();
    assert_eq!(z.scan(N0, ROOT, n).unwrap(), 0, "second chance");
    assert_eq!(z.scan(N0, ROOT, n).unwrap(), n);
}

/// Two counts race a disk swap-in: between them and what is left pending,
/// each of the two swap-ins is consumed exactly once.
#[test]
fn two_counts_vs_disk_swapin() {
    model("two_counts_vs_disk_swapin", || {
        let (_groups, z) = tiny();
        written_back(&z, &[0, 1]);
        // Two entries on the list for the counts to offer.
        assert!(z.store(slot(2), &page(2), ROOT, N0).unwrap());
        assert!(z.store(slot(3), &page(3), ROOT, N0).unwrap());
        let mut back = vec![0u8; PAGE_SIZE];
        z.swap_in(slot(0), &mut back).unwrap();
        assert_eq!(z.disk_swapins(N0, ROOT).unwrap(), 1);
        let z = Arc::new(z);
        let counts: Vec<_> = (0..2)
            .map(|_| {
                let z = z.clone();
                thread::spawn(move || z.shrinker_count(N0, ROOT).unwrap())
            })
            .collect();
        z.swap_in(slot(1), &mut back).unwrap();
        assert_eq!(back, page(1));
        let consumed: u64 = counts.into_iter().map(|c| 2 - c.join().unwrap()).sum();
        let pending = z.disk_swapins(N0, ROOT).unwrap();
        assert_eq!(consumed + pending, 2, "each swap-in consumed once");
    });
}

/// A shrinker scan of a group races a store to it and a swap-in of one of
/// its written-back pages: every page reads back as it went out, the
/// swap-in is counted against the group once, and the counters agree with
/// what is stored.
#[test]
fn scan_vs_store_vs_disk_swapin() {
    model("scan_vs_store_vs_disk_swapin", || {
        let (groups, z) = tiny();
        written_back(&z, &[0]);
        assert!(z.store(slot(1), &page(1), ROOT, N0).unwrap());
        assert_eq!(z.scan(N0, ROOT, 1).unwrap(), 0, "second chance");
        let z = Arc::new(z);
        let scanner = {
            let z = z.clone();
            thread::spawn(move || z.shrinker_scan(N0, ROOT, 1).unwrap())
        };
        let storer = {
            let z = z.clone();
            thread::spawn(move || assert!(z.store(slot(2), &page(2), ROOT, N0).unwrap()))
        };
        let mut back = vec![0u8; PAGE_SIZE];
        z.swap_in(slot(0), &mut back).unwrap();
        assert_eq!(back, page(0));
        let scan = scanner.join().unwrap();
        storer.join().unwrap();
        assert!(scan.written <= 1);
        assert_eq!(z.disk_swapins(N0, ROOT).unwrap(), 1);
        for o in [1, 2] {
            z.swap_in(slot(o), &mut back).unwrap();
            assert_eq!(back, page(u64::from(o)), "slot {o}");
        }
        let s = z.stats();
        assert_eq!(s.stored_pages, 0);
        let g = groups.stats(ROOT).unwrap();
        assert_eq!((g.zswap, g.zswapped), (0, 0));
        assert_eq!(s.written_back_pages, 1 + scan.written as u64);
    });
}
