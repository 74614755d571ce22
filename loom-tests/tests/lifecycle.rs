//! Loom models of what the crate gives back, raced against its readers, on
//! the real `Zswap` built with `--cfg loom`: an old pool dropped by the
//! load of its last entry while another load reads from it, an area freed
//! by swapoff (and its index reused) while a writeback holds it, and
//! compaction moving objects while a load decompresses without the class
//! lock. Pools and areas are `Arc`s under loom (leaks are reported), every
//! pool object and pin is leak-tracked, and span bytes are stood for by a
//! loom cell that reads hold and moves and frees write.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use zswap::{AreaId, Compressor, GroupId, Groups, MemDevice, NodeId, SwapSlot, Zswap, PAGE_SIZE};
use zswap_loom_tests::{model, small_zswap};

const N0: NodeId = NodeId::ZERO;

fn slot(offset: u32) -> SwapSlot {
    SwapSlot {
        area: AreaId::new(0),
        offset,
    }
}

/// A page that compresses to about 2 KiB (half noise, half zeros), so
/// that seven share a four-page span of one size class.
fn half_noise(tag: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(tag);
    (0..PAGE_SIZE)
        .map(|i| {
            if i < PAGE_SIZE / 2 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            } else {
                0
            }
        })
        .collect()
}

fn tiny(groups: &Groups, slots: u64) -> Arc<Zswap> {
    Arc::new(small_zswap(groups, slots))
}

/// Two loads of the old pool's last two entries after a compressor
/// switch: whichever finishes second drops the pool, spans and all, and
/// neither may read a freed span (the spans' loom cells) or lose a page.
#[test]
fn old_pool_free_vs_load() {
    model("old_pool_free_vs_load", || {
        let groups = Groups::new();
        let z = tiny(&groups, 4);
        let (a, b) = (half_noise(1), half_noise(2));
        assert!(z.store(slot(0), &a, GroupId::ROOT, N0).unwrap());
        assert!(z.store(slot(1), &b, GroupId::ROOT, N0).unwrap());
        z.set_compressor(Compressor::Deflate { level: 1 }).unwrap();
        assert_eq!(z.live_areas_and_pools(), (1, 2));
        let loader = {
            let z = z.clone();
            thread::Builder::new()
                .stack_size(4 << 20)
                .spawn(move || {
                    let mut got = vec![0u8; PAGE_SIZE];
                    assert!(z.load(slot(1), &mut got).unwrap());
                    got
                })
                .unwrap()
        };
        let mut got = vec![0u8; PAGE_SIZE];
        assert!(z.load(slot(0), &mut got).unwrap());
        assert!(got == a);
        assert!(loader.join().unwrap() == b);
        // The old pool went with its last entry.
        assert_eq!(z.live_areas_and_pools(), (1, 1));
        assert_eq!(z.stats().pool_total_size, 0);
    });
}

/// Swapoff, and a swapon that reuses the index, while a writeback of the
/// area's last entry may be in flight: the writeback's area stays alive
/// under it (it is dropped after), a stale slot is refused, and the new
/// area is untouched.
#[test]
fn swapoff_and_reuse_vs_writeback() {
    model("swapoff_and_reuse_vs_writeback", || {
        let groups = Groups::new();
        let z = tiny(&groups, 4);
        let page = half_noise(3);
        assert!(z.store(slot(1), &page, GroupId::ROOT, N0).unwrap());
        assert_eq!(z.scan(N0, GroupId::ROOT, 1).unwrap(), 0, "second chance");
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        z.invalidate(slot(1)).unwrap();
        let old = AreaId::new(0);
        loop {
            match z.swapoff(old) {
                Ok(()) => break,
                Err(zswap::Error::AreaBusy(_)) => thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        let new = z.swapon(Box::new(MemDevice::new(4))).unwrap();
        assert_eq!((new.index(), new.generation()), (0, 1));
        shrinker.join().unwrap();
        assert!(matches!(
            z.store(slot(1), &page, GroupId::ROOT, N0),
            Err(zswap::Error::UnknownArea(_))
        ));
        let fresh = SwapSlot {
            area: new,
            offset: 1,
        };
        assert!(z.store(fresh, &page, GroupId::ROOT, N0).unwrap());
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(fresh, &mut got).unwrap();
        assert!(got == page);
        assert_eq!(z.stats().stored_pages, 0);
        assert_eq!(z.live_areas_and_pools(), (1, 1));
    });
}

/// A load decompressing without the class lock while compaction empties
/// spans of the same class: the load holds its slot's pin, which
/// compaction needs to claim the object, and a span is drained only when
/// all its objects are claimed, so no move or span free writes bytes being
/// read (the spans' loom cells); a moved object's entry says where it went,
/// and every page reads back.
#[test]
fn load_vs_compaction() {
    model("load_vs_compaction", || {
        let groups = Groups::new();
        let z = tiny(&groups, 16);
        let pages: Vec<Vec<u8>> = (0..8).map(half_noise).collect();
        for (i, p) in pages.iter().enumerate() {
            assert!(z.store(slot(i as u32), p, GroupId::ROOT, N0).unwrap());
        }
        // Seven fill one span, the eighth opens a second: free six of the
        // first, leaving two spans of one object each.
        for i in 1..7 {
            z.invalidate(slot(i)).unwrap();
        }
        let before = z.stats().pool_total_size;
        let compactor = {
            let z = z.clone();
            thread::spawn(move || z.compact())
        };
        // The eighth page's span is the one compaction drains first.
        let mut got = vec![0u8; PAGE_SIZE];
        assert!(z.load(slot(7), &mut got).unwrap());
        assert!(got == pages[7]);
        compactor.join().unwrap();
        assert!(z.stats().pool_total_size <= before);
        assert!(z.load(slot(0), &mut got).unwrap());
        assert!(got == pages[0]);
        assert_eq!(z.stats().pool_total_size, 0);
    });
}

/// Slot state lives in clusters (four slots each under loom) that exist
/// only while a slot of theirs is in use. The invalidation of a cluster's
/// last slot (which drops the cluster) races a store that claims another
/// slot of it (which makes one again) and a writeback that pins the
/// invalidated slot through the cluster it loaded: nothing is freed under
/// the writeback, the store's page survives, and no cluster leaks (loom's
/// `Arc` tracking).
#[test]
fn cluster_free_vs_store_vs_writeback() {
    model("cluster_free_vs_store_vs_writeback", || {
        let groups = Groups::new();
        let z = tiny(&groups, 8);
        let (old, new) = (half_noise(4), half_noise(5));
        assert!(z.store(slot(1), &old, GroupId::ROOT, N0).unwrap());
        assert_eq!(z.scan(N0, GroupId::ROOT, 1).unwrap(), 0, "second chance");
        let shrinker = {
            let z = z.clone();
            thread::spawn(move || z.scan(N0, GroupId::ROOT, 1).unwrap())
        };
        let storer = {
            let z = z.clone();
            let new = new.clone();
            thread::spawn(move || assert!(z.store(slot(2), &new, GroupId::ROOT, N0).unwrap()))
        };
        z.invalidate(slot(1)).unwrap();
        let written = shrinker.join().unwrap();
        storer.join().unwrap();
        assert!(written <= 1);
        let mut got = vec![0u8; PAGE_SIZE];
        z.swap_in(slot(2), &mut got).unwrap();
        assert!(got == new);
        assert_eq!(z.stats().stored_pages, 0);
        // Every slot is free: the area can go, clusters and all.
        z.swapoff(AreaId::new(0)).unwrap();
    });
}

/// A store charging a group races the group's offline, which frees it if
/// nothing refers to it yet: the store is charged to the group (which then
/// lives until the page goes), or to its online parent while it is dying,
/// or refused with a typed error, giving back the pool object it took. In
/// every case nothing leaks (the pool's object tracking), and once the page
/// is gone the group is freed and every counter is back to zero.
#[test]
fn group_free_vs_store_charging_it() {
    model("group_free_vs_store_charging_it", || {
        let groups = Groups::new();
        let tenant = groups.create(GroupId::ROOT).unwrap();
        let z = tiny(&groups, 4);
        let page = half_noise(6);
        let storer = {
            let (z, page) = (z.clone(), page.clone());
            thread::spawn(move || z.store(slot(1), &page, tenant, N0))
        };
        groups.offline(tenant).unwrap();
        match storer.join().unwrap() {
            Ok(true) => {
                let mut got = vec![0u8; PAGE_SIZE];
                assert!(z.load(slot(1), &mut got).unwrap());
                assert!(got == page);
            }
            Ok(false) => panic!("nothing limits this store"),
            Err(zswap::Error::GroupOffline(_) | zswap::Error::UnknownGroup(_)) => {}
            Err(e) => panic!("{e}"),
        }
        // Refused before the slot was claimed, or after (it holds no page).
        match z.invalidate(slot(1)) {
            Ok(()) | Err(zswap::Error::SlotNotAllocated(_)) => {}
            Err(e) => panic!("{e}"),
        }
        assert_eq!(groups.live(), 1);
        assert_eq!(
            groups.state(tenant),
            Err(zswap::Error::UnknownGroup(tenant))
        );
        assert_eq!(z.stats().stored_pages, 0);
        assert_eq!(z.stats().pool_total_size, 0);
        let root = groups.stats(GroupId::ROOT).unwrap();
        assert_eq!((root.zswap, root.zswapped), (0, 0));
    });
}
