//! Loom models of zswap's compaction on the real `Zswap` built with
//! `--cfg loom`: an entry keeps its object's location itself, and
//! compaction moves the object and rewrites the entry under the slot's pin.
//! Raced against a load of the object being moved, and against an
//! invalidate and re-store of its slot: no page is lost or read stale, no
//! object is freed twice or leaked (the pool tracks each object under loom,
//! keyed by its location, moves included), and no span is written or given
//! back while a load reads it (each span's bytes are a loom cell).
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use zswap::{AreaId, GroupId, Groups, NodeId, SwapSlot, Zswap, PAGE_SIZE};
use zswap_loom_tests::{model, small_zswap};

const N0: NodeId = NodeId::ZERO;

fn slot(offset: u32) -> SwapSlot {
    SwapSlot {
        area: AreaId::new(0),
        offset,
    }
}

/// A page whose first 1,900 bytes are noise and the rest zeros: it
/// compresses to a little under 2 KiB, a class of two slots per page.
fn page(seed: u64) -> Vec<u8> {
    noisy(seed, 1900)
}

/// A page whose first `noise` bytes are noise and the rest zeros.
fn noisy(seed: u64, noise: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..PAGE_SIZE)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i < noise {
                x as u8
            } else {
                0
            }
        })
        .collect()
}

/// A zswap whose one class holds page 1 in one span and page 3 in another
/// (page 2, stored beside page 1, invalidated): compaction drains page 3's
/// span (listed first of the two equally full) into page 1's.
fn fragmented() -> (Groups, Arc<Zswap>) {
    let groups = Groups::new();
    let z = small_zswap(&groups, 4);
    for i in 1..=3 {
        assert!(z
            .store(slot(i), &page(i.into()), GroupId::ROOT, N0)
            .unwrap());
    }
    assert_eq!(z.stats().pool_total_size, 2 * PAGE_SIZE as u64);
    z.invalidate(slot(2)).unwrap();
    (groups, Arc::new(z))
}

fn load(z: &Zswap, i: u32, want: u64) {
    let mut back = vec![0; PAGE_SIZE];
    assert!(z.load(slot(i), &mut back).unwrap(), "slot {i} is stored");
    assert!(back == page(want), "slot {i} reads back page {want}");
}

/// Loading a page while compaction may be moving it: the load reads it
/// whole, from wherever its entry says under the pin. (`lifecycle.rs`'s
/// `load_vs_compaction` races the same with seven objects to a span; this
/// one, with two, is the model that fails when compaction drains a span
/// whose objects it has not all claimed.)
#[test]
fn compaction_vs_load() {
    model("compaction_vs_load", || {
        let (_groups, z) = fragmented();
        let compactor = {
            let z = z.clone();
            thread::spawn(move || z.compact())
        };
        load(&z, 3, 3);
        compactor.join().unwrap();
        load(&z, 1, 1);
        let s = z.stats();
        assert_eq!((s.stored_pages, s.pool_total_size), (0, 0));
    });
}

/// Invalidating a page and storing another at its slot while compaction may
/// be moving the first: the move follows the entry it claimed, never the
/// new one, and both objects are freed exactly once.
#[test]
fn compaction_vs_invalidate_and_restore() {
    model("compaction_vs_invalidate_and_restore", || {
        let (_groups, z) = fragmented();
        let compactor = {
            let z = z.clone();
            thread::spawn(move || z.compact())
        };
        z.invalidate(slot(3)).unwrap();
        assert!(z.store(slot(3), &page(4), GroupId::ROOT, N0).unwrap());
        compactor.join().unwrap();
        load(&z, 1, 1);
        load(&z, 3, 4);
        let s = z.stats();
        assert_eq!((s.stored_pages, s.pool_total_size), (0, 0));
    });
}

/// Three spans of a class of 9 slots in 8-page spans (pages that compress
/// to about 3.6 KiB), 5, 4 and 2 of their pages kept: a compaction drains
/// the third span into the first, and then the second, which the first has
/// no room for, into the first and a new 2-page span (the tail fitted to
/// what it holds), while a page of that second span is loaded. Either the
/// load holds the page's pin first and the tail stays where it is (the new
/// span given back), or the page is read from where it moved; no span is
/// leaked either way.
#[test]
fn tail_fitting_vs_load() {
    model("tail_fitting_vs_load", || {
        let groups = Groups::new();
        let z = small_zswap(&groups, 28);
        let kept = |i: u32| i % 9 < [5, 4, 2][(i / 9) as usize];
        for i in 0..27 {
            assert!(z
                .store(slot(i), &noisy(i.into(), 3580), GroupId::ROOT, N0)
                .unwrap());
        }
        for i in (0..27).filter(|&i| !kept(i)) {
            z.invalidate(slot(i)).unwrap();
        }
        let z = Arc::new(z);
        let compactor = {
            let z = z.clone();
            thread::spawn(move || z.compact())
        };
        // The second span's first page.
        let mut back = vec![0; PAGE_SIZE];
        assert!(z.load(slot(9), &mut back).unwrap());
        assert!(back == noisy(9, 3580));
        compactor.join().unwrap();
        for i in (0..27).filter(|&i| kept(i) && i != 9) {
            assert!(z.load(slot(i), &mut back).unwrap());
            assert!(back == noisy(i.into(), 3580), "page {i} read back whole");
        }
        let s = z.stats();
        assert_eq!((s.stored_pages, s.pool_total_size), (0, 0));
    });
}
