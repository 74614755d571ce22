//! Loom models of the facade's races, on the real `Zswap` built with
//! `--cfg loom`: writeback (the shrinker's scan) against invalidate, load,
//! and free-then-re-store of the same slot (the recycled-slot bug,
//! CVE-2023-53178). Each asserts that no page is lost or returned stale,
//! that no object is freed twice (checked inside the crate under loom), and
//! that charges, counts and the LRU match the live entries.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use zswap::{
    AreaId, Compressor, GroupId, Groups, LruPolicy, MemDevice, NodeId, PoolLimit, SwapSlot,
    Topology, Zswap, ZswapConfig, PAGE_SIZE,
};
use zswap_loom_tests::model;

const N0: NodeId = NodeId::ZERO;
const SLOT: SwapSlot = SwapSlot {
    area: AreaId::new(0),
    offset: 1,
};
/// A second slot, for a store racing something done to `SLOT`.
const OTHER: SwapSlot = SwapSlot {
    area: AreaId::new(0),
    offset: 2,
};

fn page(tag: u8) -> Vec<u8> {
    (0..PAGE_SIZE)
        .map(|i| tag.wrapping_add((i / 64) as u8))
        .collect()
}

/// A tiny zswap with the lists of `policy`: no worker, one node, no pool
/// limit to speak of, a 4-page memory device.
fn tiny(groups: &Groups, policy: LruPolicy) -> Zswap {
    let cfg = ZswapConfig::default()
        .shrink_worker(false)
        .lru_policy(policy)
        .topology(Topology::single())
        .max_pool(PoolLimit::Bytes(1 << 30));
    let z = Zswap::new(cfg, groups).unwrap();
    z.swapon(Box::new(MemDevice::new(4))).unwrap();
    z
}

/// A zswap holding `page(1)` at `SLOT`, its referenced mark already cleared
/// so the next scan writes it back.
fn setup() -> (Groups, Arc<Zswap>) {
    let groups = Groups::new();
    let z = tiny(&groups, LruPolicy::PerGroup);
    assert!(z.store(SLOT, &page(1), GroupId::ROOT, N0).unwrap());
    assert_eq!(z.scan(N0, GroupId::ROOT, 1).unwrap(), 0, "second chance");
    (groups, Arc::new(z))
}

fn assert_empty(groups: &Groups, z: &Zswap) {
    let s = z.stats();
    assert_eq!(s.stored_pages, 0);
    assert_eq!(z.count(N0, GroupId::ROOT).unwrap(), 0);
    let g = groups.stats(GroupId::ROOT).unwrap();
    assert_eq!((g.zswap, g.zswapped), (0, 0));
}

#[test]
fn invalidate_vs_writeback() {
    model("invalidate_vs_writeback", || {
        let (groups, z) = setup();
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        z.invalidate(SLOT).unwrap();
        let written = shrinker.join().unwrap();
        assert!(written <= 1);
        assert_empty(&groups, &z);
        assert_eq!(z.stats().written_back_pages, written as u64);
    });
}

#[test]
fn load_vs_writeback() {
    model("load_vs_writeback", || {
        let (groups, z) = setup();
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(SLOT, &mut got).unwrap();
        assert!(got == page(1), "no page lost, none stale");
        shrinker.join().unwrap();
        assert_empty(&groups, &z);
    });
}

#[test]
fn recycled_slot_vs_writeback() {
    model("recycled_slot_vs_writeback", || {
        let (groups, z) = setup();
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        // The slot is freed and reused for a new page while writeback of
        // the old one may be in flight.
        z.invalidate(SLOT).unwrap();
        assert!(z.store(SLOT, &page(2), GroupId::ROOT, N0).unwrap());
        shrinker.join().unwrap();
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(SLOT, &mut got).unwrap();
        assert!(got == page(2), "the old page must never come back");
        assert_empty(&groups, &z);
    });
}

#[test]
fn two_shrinkers_one_group() {
    model("two_shrinkers_one_group", || {
        let (groups, z) = setup();
        let spawn = || {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        let (a, b) = (spawn(), spawn());
        let written = a.join().unwrap() + b.join().unwrap();
        assert_eq!(written, 1, "written back exactly once");
        assert_eq!(z.stats().written_back_pages, 1);
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(SLOT, &mut got).unwrap();
        assert!(got == page(1));
        assert_empty(&groups, &z);
    });
}

#[test]
fn swapoff_vs_writeback() {
    model("swapoff_vs_writeback", || {
        let (groups, z) = setup();
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        z.invalidate(SLOT).unwrap();
        // Swapoff waits (here: retries) until no slot is in use, so it can
        // never pull the area from under a writeback holding a pin.
        loop {
            match z.swapoff(AreaId::new(0)) {
                Ok(()) => break,
                Err(zswap::Error::AreaBusy(_)) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        shrinker.join().unwrap();
        assert_empty(&groups, &z);
        assert!(matches!(
            z.store(SLOT, &page(3), GroupId::ROOT, N0),
            Err(zswap::Error::UnknownArea(_))
        ));
    });
}

#[test]
fn group_offline_vs_shrink() {
    model("group_offline_vs_shrink", || {
        let groups = Groups::new();
        let child = groups.create(GroupId::ROOT).unwrap();
        let cfg = ZswapConfig::default()
            .shrink_worker(false)
            .topology(Topology::single())
            .max_pool(PoolLimit::Bytes(1 << 30));
        let z = Arc::new(Zswap::new(cfg, &groups).unwrap());
        z.swapon(Box::new(MemDevice::new(4))).unwrap();
        assert!(z.store(SLOT, &page(1), child, N0).unwrap());
        assert_eq!(z.scan(N0, child, 1).unwrap(), 0, "second chance");
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.shrink_group(child).unwrap())
        };
        groups.offline(child).unwrap();
        shrinker.join().unwrap();
        let written = z.stats().written_back_pages as usize;
        // Written back, or reparented to the root's list: never both, never
        // neither; the root's hierarchical charge counts it while stored.
        assert_eq!(z.count(N0, GroupId::ROOT).unwrap() + written, 1);
        // Offline, the child lives while its page is stored, and is freed
        // with it (here by the writeback, or by the swap-in below).
        let want = if written == 1 {
            Err(zswap::Error::UnknownGroup(child))
        } else {
            Ok(0)
        };
        assert_eq!(z.count(N0, child), want);
        assert_eq!(
            groups.stats(GroupId::ROOT).unwrap().zswapped as usize,
            1 - written
        );
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(SLOT, &mut got).unwrap();
        assert!(got == page(1));
        assert_empty(&groups, &z);
        assert_eq!(groups.live(), 1, "the child is freed");
    });
}

/// A shrinker holding the pin of a slot to check a stale entry while
/// another shrinker tries to write back the slot's live entry: the live
/// entry is put back (never left off every list while stored), and a
/// stale entry is never put back.
#[test]
fn stale_and_live_writeback_of_one_slot() {
    model("stale_and_live_writeback_of_one_slot", || {
        let (groups, z) = setup();
        let stale = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        z.invalidate(SLOT).unwrap();
        assert!(z.store(SLOT, &page(2), GroupId::ROOT, N0).unwrap());
        // Clear the new entry's referenced mark (a lone entry's rotation
        // ends a walk), so the next shrinker goes for it at once.
        let _ = z.scan(N0, GroupId::ROOT, 1).unwrap();
        let live = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        stale.join().unwrap();
        live.join().unwrap();
        let s = z.stats();
        assert_eq!(
            s.stored_pages as usize,
            z.count(N0, GroupId::ROOT).unwrap(),
            "every stored entry is on its list"
        );
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(SLOT, &mut got).unwrap();
        assert!(got == page(2));
        assert_empty(&groups, &z);
    });
}

/// The design before memcg-aware zswap (`LruPolicy::Global`): a group at
/// its limit writes back a bystander's entry from everyone's list while the
/// bystander invalidates it. The same protocol must hold on the shared
/// list: the page is written back or invalidated, never both; a foreign
/// writeback is counted on the bystander exactly when it happened; the
/// limited group's store goes in exactly when its reclaim wrote a page
/// back (the kernel's rule: no second look at the limit).
#[test]
fn global_lru_foreign_writeback_vs_invalidate() {
    model("global_lru_foreign_writeback_vs_invalidate", || {
        let groups = Groups::new();
        let bystander = groups.create(GroupId::ROOT).unwrap();
        let limited = groups.create(GroupId::ROOT).unwrap();
        groups.set_zswap_max(limited, Some(0)).unwrap();
        let z = tiny(&groups, LruPolicy::Global);
        assert!(z.store(SLOT, &page(1), bystander, N0).unwrap());
        // Everyone's list is the root's; clear the referenced mark.
        assert_eq!(z.scan(N0, GroupId::ROOT, 1).unwrap(), 0, "second chance");
        let z = Arc::new(z);
        let storer = {
            let z = z.clone();
            thread::spawn(move || z.store(OTHER, &page(2), limited, N0).unwrap())
        };
        z.invalidate(SLOT).unwrap();
        let stored = storer.join().unwrap();
        let b = groups.stats(bystander).unwrap();
        assert_eq!(
            b.zswpwb_foreign, b.zswpwb,
            "every writeback here is foreign"
        );
        // Over its limit the store reclaims first; as in the kernel, a
        // reclaim that wrote a page back lets the new page in without a
        // second look at the limit, and one that found nothing rejects it.
        assert_eq!(stored, b.zswpwb == 1, "stored iff the reclaim wrote");
        assert_eq!(z.stats().written_back_pages, b.zswpwb);
        assert_eq!(groups.stats(limited).unwrap().zswpwb, 0);
        assert_eq!((b.zswap, b.zswapped), (0, 0));
        if stored {
            z.invalidate(OTHER).unwrap();
        }
        assert_empty(&groups, &z);
    });
}

/// A compressor switch racing a store (which may have picked the old pool
/// just before the switch) and the invalidation of the old pool's last
/// entry (which gives the old pool's cached memory back when it is no
/// longer current): every page reads back, nothing leaks (the pools' leak
/// tracking), and the counters match.
#[test]
fn compressor_switch_vs_store_vs_last_free() {
    model("compressor_switch_vs_store_vs_last_free", || {
        let (groups, z) = setup();
        // deflate's compressor state lives on the stack: give the threads
        // room (loom's default coroutine stack is small).
        let spawn = |f: Box<dyn FnOnce() + Send>| {
            thread::Builder::new().stack_size(4 << 20).spawn(f).unwrap()
        };
        let switcher = {
            let z = z.clone();
            spawn(Box::new(move || {
                z.set_compressor(Compressor::Deflate { level: 1 }).unwrap()
            }))
        };
        let storer = {
            let z = z.clone();
            spawn(Box::new(move || {
                assert!(z.store(OTHER, &page(2), GroupId::ROOT, N0).unwrap())
            }))
        };
        z.invalidate(SLOT).unwrap();
        switcher.join().unwrap();
        storer.join().unwrap();
        assert_eq!(z.stats().stored_pages, 1);
        let mut got = vec![0u8; PAGE_SIZE];
        assert!(z.load(OTHER, &mut got).unwrap());
        assert!(got == page(2));
        z.invalidate(OTHER).unwrap();
        assert_empty(&groups, &z);
    });
}
