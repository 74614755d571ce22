//! Soak: several threads swap real pages out and in and free them while the
//! shrink worker and writeback run against a device that fails 1% of writes
//! and cuts another 1% short, and another thread compacts the pools (which
//! moves objects while loads decompress others without the class lock). Every page that comes back must be the page
//! that went out; at the end nothing is left charged or counted.
//!
//! Bounded in CI (`ZSWAP_SOAK_OPS`, default 300,000 operations in all);
//! for the long run: `ZSWAP_SOAK_OPS=1000000 cargo test --release --test zswap_soak`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zswap::testing::faulty::FaultyDevice;
use zswap::testing::{random_page, sample_pages};
use zswap::{
    Checksummed, Error, GroupId, Groups, MemDevice, NodeId, PoolLimit, SwapSlot, Zswap,
    ZswapConfig, PAGE_SIZE,
};

const THREADS: usize = 3;

/// The real sample plus 64 incompressible pages.
fn pages() -> Vec<Vec<u8>> {
    let mut v = sample_pages();
    v.extend((0..64).map(|i| random_page(0x9e37_79b9_7f4a_7c15 + i)));
    v
}

#[test]
fn soak_with_faulty_device() {
    let total_ops: usize = std::env::var("ZSWAP_SOAK_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let groups = Groups::new();
    let tenants: Vec<GroupId> = (0..THREADS)
        .map(|_| groups.create(GroupId::ROOT).unwrap())
        .collect();
    groups.set_zswap_max(tenants[0], Some(256 * 1024)).unwrap();
    let z = Arc::new(
        Zswap::new(
            ZswapConfig::default()
                .shrink_worker(true)
                .max_pool(PoolLimit::Bytes(2 << 20)),
            &groups,
        )
        .unwrap(),
    );
    let faulty = FaultyDevice::new(MemDevice::new(1 << 16), 100, 42);
    z.swapon(Box::new(Checksummed::new(faulty))).unwrap();
    let pages = Arc::new(pages());
    let done = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (z, done) = (z.clone(), done.clone());
        std::thread::spawn(move || {
            let mut given_back = 0;
            while !done.load(Ordering::Relaxed) {
                given_back += z.compact();
                std::thread::sleep(Duration::from_millis(1));
            }
            given_back
        })
    };

    let handles: Vec<_> = tenants
        .iter()
        .enumerate()
        .map(|(t, &group)| {
            let (z, pages) = (z.clone(), pages.clone());
            std::thread::spawn(move || {
                let mut live: HashMap<SwapSlot, usize> = HashMap::new();
                let mut x = 0x2545_f491_4f6c_dd1du64 ^ (t as u64 + 1);
                let mut page = vec![0u8; PAGE_SIZE];
                let (mut out, mut failed_out, mut back) = (0usize, 0usize, 0usize);
                for _ in 0..total_ops / THREADS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let roll = x % 100;
                    if roll < 55 && live.len() < 2000 || live.is_empty() {
                        let i = (x >> 8) as usize % pages.len();
                        match z.swap_out(&pages[i], group) {
                            Ok(slot) => {
                                live.insert(slot, i);
                                out += 1;
                            }
                            // The page stays with us: nothing is lost.
                            Err(Error::Io(_)) => failed_out += 1,
                            Err(e) => panic!("swap_out: {e}"),
                        }
                    } else {
                        let slot = *live.keys().nth((x >> 8) as usize % live.len()).unwrap();
                        let i = live.remove(&slot).unwrap();
                        if roll < 90 {
                            z.swap_in(slot, &mut page).unwrap();
                            assert!(page == pages[i], "page {i} corrupted at {slot}");
                            back += 1;
                        } else {
                            z.free(slot).unwrap();
                        }
                    }
                }
                for (slot, i) in live.drain() {
                    z.swap_in(slot, &mut page).unwrap();
                    assert!(page == pages[i], "page {i} corrupted at {slot}");
                    back += 1;
                }
                (out, failed_out, back)
            })
        })
        .collect();
    let mut sums = (0, 0, 0);
    for h in handles {
        let (o, f, b) = h.join().unwrap();
        sums = (sums.0 + o, sums.1 + f, sums.2 + b);
    }
    done.store(true, Ordering::Relaxed);
    let compacted = compactor.join().unwrap();
    let s = z.stats();
    println!(
        "soak: {total_ops} ops, {} stored, {} failed to the device, {} read back; written back {}, reclaim failures {}, pool limit hits {}, {compacted} bytes given back by compaction",
        sums.0, sums.1, sums.2, s.written_back_pages, s.reject_reclaim_fail, s.pool_limit_hit
    );
    assert!(s.written_back_pages > 0, "writeback ran");
    assert_eq!(s.stored_pages, 0);
    assert_eq!((s.same_filled_pages, s.stored_incompressible_pages), (0, 0));
    for &g in &tenants {
        let gs = groups.stats(g).unwrap();
        assert_eq!((gs.zswap, gs.zswapped, gs.zswap_incomp), (0, 0, 0), "{g}");
        assert_eq!(z.count(NodeId::ZERO, g).unwrap(), 0);
    }
}
