//! Nothing grows with what was ever done, only with what is live: heap
//! bytes owned by the process, counted by a global allocator wrapper (not
//! RSS), across churn of pools, areas, slots and spans.
//!
//! - `churn_soak`: three threads swap real pages out and in and free them
//!   (every page checked) while others switch compressors, swap areas on
//!   and off (each area holding entries, some written back, before it
//!   goes), create and offline groups (each holding pages when it goes
//!   offline, freed when its last page is swapped in) and compact. After a warm-up round the heap is measured; after
//!   the churn, with everything swapped in, it must be back within a
//!   tolerance that one leaked pool or area per cycle would exceed at least
//!   four times.
//! - Swapon of a 64 GiB device costs at most 1 MiB before the first store,
//!   checksummed or not; a full device keeps at most 10 bytes of per-slot
//!   state per stored page; filling and draining slots gives the heap back.
//!
//! - Groups churned on their own (created, used, offline, freed) keep
//!   nothing: the group table stays at its peak of live groups.
//!
//! Bounded for CI; `ZSWAP_LIFECYCLE_SCALE=10` (scripts/soak.sh) runs ten
//! times the cycles, and 10^6 slots.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use zswap::testing::heap::{heap_bytes, CountingAlloc};
use zswap::testing::sample_pages;
use zswap::{
    AreaId, Checksummed, Compressor, Error, GroupId, Groups, MemDevice, NodeId, PoolLimit,
    SwapDevice, SwapSlot, Zswap, ZswapConfig, PAGE_SIZE,
};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Heap bytes the process owns now.
fn heap() -> isize {
    heap_bytes() as isize
}

/// What the test harness's own thread may allocate meanwhile (it records
/// other tests' results): the counter is process-wide.
const SLACK: isize = 4 << 10;

/// The tests measure the whole process's heap: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scale() -> usize {
    std::env::var("ZSWAP_LIFECYCLE_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// The real sample without its same-filled pages.
fn pages() -> Vec<Vec<u8>> {
    sample_pages()
        .into_iter()
        .filter(|p| p.iter().any(|&b| b != p[0]))
        .collect()
}

/// A device of `pages` pages that keeps nothing (for measuring what an
/// area costs by itself).
struct Hollow(u64);

impl SwapDevice for Hollow {
    fn pages(&self) -> u64 {
        self.0
    }
    fn read_page(&self, _: u64, page: &mut [u8]) -> Result<(), Error> {
        page.fill(0);
        Ok(())
    }
    fn write_page(&self, _: u64, _: &[u8]) -> Result<(), Error> {
        Ok(())
    }
}

fn zswap(groups: &Groups, limit: u64) -> Zswap {
    Zswap::new(
        ZswapConfig::default()
            .shrink_worker(false)
            .max_pool(PoolLimit::Bytes(limit)),
        groups,
    )
    .unwrap()
}

#[test]
fn swapon_of_64_gib_costs_under_1_mib() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let groups = Groups::new();
    let z = zswap(&groups, 1 << 30);
    let pages = 64u64 << 30 >> 12;
    // Warm-up: this thread's scratch, the root's lists, the pool's tables.
    let warm = z.swapon(Box::new(Hollow(16))).unwrap();
    let slot = z.swap_out(&pages_one(), GroupId::ROOT).unwrap();
    z.swap_in(slot, &mut vec![0u8; PAGE_SIZE]).unwrap();
    z.compact();
    z.swapoff(warm).unwrap();
    for checksummed in [false, true] {
        let before = heap();
        let dev: Box<dyn SwapDevice> = if checksummed {
            Box::new(Checksummed::new(Hollow(pages)))
        } else {
            Box::new(Hollow(pages))
        };
        let area = z.swapon(dev).unwrap();
        let cost = heap() - before;
        println!("swapon of 64 GiB (checksummed: {checksummed}): {cost} heap bytes");
        assert!(cost <= 1 << 20, "{cost} bytes");
        // A store makes one cluster, not the whole index.
        let slot = z.swap_out(&pages_one(), GroupId::ROOT).unwrap();
        let with_one = heap() - before;
        assert!(
            with_one - cost < 64 << 10,
            "{} bytes for one page",
            with_one - cost
        );
        let mut back = vec![0u8; PAGE_SIZE];
        z.swap_in(slot, &mut back).unwrap();
        drop(back);
        z.compact();
        z.swapoff(area).unwrap();
        let left = heap() - before;
        assert!(left <= SLACK, "swapoff gave it all back but {left} bytes");
    }
}

fn pages_one() -> Vec<u8> {
    pages().swap_remove(0)
}

#[test]
fn a_full_device_keeps_at_most_10_bytes_of_slot_state_per_page() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let groups = Groups::new();
    let z = zswap(&groups, 1 << 30);
    let n = 1u32 << 16;
    z.swapon(Box::new(Hollow(u64::from(n)))).unwrap();
    // Same-filled pages: no pool object, so what is not the entry is the
    // slot's state.
    let slots: Vec<SwapSlot> = (0..n)
        .map(|i| {
            z.swap_out(&vec![i as u8; PAGE_SIZE], GroupId::ROOT)
                .unwrap()
        })
        .collect();
    let per_slot = z.metadata_bytes_per_entry() - Zswap::entry_bytes() as f64;
    println!("per-slot state on a full device: {per_slot:.2} B per stored page");
    assert!(per_slot <= 10.0, "{per_slot}");
    for s in slots {
        z.free(s).unwrap();
    }
}

#[test]
fn filling_and_draining_slots_gives_the_heap_back() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let groups = Groups::new();
    // A limit above what the fill stores: every page stays in zswap (the
    // hollow device keeps nothing written to it).
    let z = zswap(&groups, 1 << 40);
    let n = 100_000 * scale() as u64;
    let area = z.swapon(Box::new(Hollow(n))).unwrap();
    let pages = pages();
    // Warm-up: per-thread scratch, the pool's first spans.
    let s = z.swap_out(&pages[0], GroupId::ROOT).unwrap();
    z.free(s).unwrap();
    z.compact();
    let mut back = vec![0u8; PAGE_SIZE];
    let before = heap();
    let slots: Vec<SwapSlot> = (0..n as usize)
        .map(|i| z.swap_out(&pages[i % pages.len()], GroupId::ROOT).unwrap())
        .collect();
    let full = heap() - before;
    for (i, s) in slots.into_iter().enumerate() {
        z.swap_in(s, &mut back).unwrap();
        assert!(back == pages[i % pages.len()], "slot {i} came back changed");
    }
    assert_eq!(z.stats().written_back_pages, 0);
    z.compact();
    let after = heap() - before;
    println!("{n} slots: {full} heap bytes full, {after} after draining");
    // Everything went back (the slot vector itself is freed too).
    assert!(after.abs() <= SLACK, "{after} bytes left");
    z.swapoff(area).unwrap();
}

/// One round of churn; returns what it did.
#[derive(Default, Debug)]
struct Counts {
    swaps: AtomicUsize,
    switches: AtomicUsize,
    area_cycles: AtomicUsize,
    written_back: AtomicUsize,
    groups: AtomicUsize,
}

fn churn(
    z: &Arc<Zswap>,
    pages: &Arc<Vec<Vec<u8>>>,
    tenants: &[GroupId],
    rounds: usize,
    c: &Counts,
) {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Joined one by one at the end: a scope's implicit join can return
        // before a thread's thread-locals (a codec's scratch) are freed.
        let mut threads = Vec::new();
        for (t, &group) in tenants.iter().enumerate() {
            let (z, pages, stop) = (z.clone(), pages.clone(), &stop);
            threads.push(s.spawn(move || {
                let mut held: Vec<(SwapSlot, usize)> = Vec::new();
                let mut back = vec![0u8; PAGE_SIZE];
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ t as u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if held.len() < 64 && x % 3 != 0 {
                        let i = (x >> 8) as usize % pages.len();
                        match z.swap_out(&pages[i], group) {
                            Ok(slot) => held.push((slot, i)),
                            Err(Error::SwapFull) => {}
                            Err(e) => panic!("{e}"),
                        }
                    } else if let Some((slot, i)) = held.pop() {
                        if x % 5 == 0 {
                            z.free(slot).unwrap();
                        } else {
                            z.swap_in(slot, &mut back).unwrap();
                            assert!(back == pages[i], "{slot} came back changed");
                        }
                    }
                    c.swaps.fetch_add(1, Ordering::Relaxed);
                }
                for (slot, _) in held {
                    z.free(slot).unwrap();
                }
            }));
        }
        // Creates groups, swaps pages out for each, takes it offline with
        // its pages still stored, and swaps them in: the last one frees it.
        threads.push(s.spawn(|| {
            let groups = z.groups();
            let mut back = vec![0u8; PAGE_SIZE];
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                let g = groups.create(GroupId::ROOT).unwrap();
                let held: Vec<(SwapSlot, usize)> = (0..2)
                    .filter_map(|_| {
                        k += 1;
                        let i = k % pages.len();
                        match z.swap_out(&pages[i], g) {
                            Ok(slot) => Some((slot, i)),
                            Err(Error::SwapFull) => None,
                            Err(e) => panic!("{e}"),
                        }
                    })
                    .collect();
                groups.offline(g).unwrap();
                for (slot, i) in held {
                    z.swap_in(slot, &mut back).unwrap();
                    assert!(back == pages[i]);
                }
                assert_eq!(groups.state(g), Err(Error::UnknownGroup(g)), "freed");
                c.groups.fetch_add(1, Ordering::Relaxed);
            }
        }));
        // Switches compressors, and compacts.
        threads.push(s.spawn(|| {
            let names = Compressor::names();
            while !stop.load(Ordering::Relaxed) {
                let n = c.switches.fetch_add(1, Ordering::Relaxed);
                z.set_compressor(names[n % names.len()].parse().unwrap())
                    .unwrap();
                if n % 16 == 0 {
                    z.compact();
                }
            }
        }));
        // Cycles areas: each holds entries, some written back, and goes.
        let mut offset_page = 0;
        for _ in 0..rounds {
            let area: AreaId = z.swapon(Box::new(MemDevice::new(64))).unwrap();
            let mut mine = Vec::new();
            for offset in 0..8u32 {
                let slot = SwapSlot { area, offset };
                let i = offset_page % pages.len();
                offset_page += 1;
                if z.store(slot, &pages[i], GroupId::ROOT, NodeId::ZERO)
                    .unwrap()
                {
                    mine.push((slot, i));
                } else {
                    z.free(slot).unwrap();
                }
            }
            // The root's list holds this area's entries (the swappers'
            // are on their own groups' lists): a first scan takes their
            // second chance, a second writes half of them back.
            for budget in [8, 4] {
                let n = z.scan(NodeId::ZERO, GroupId::ROOT, budget).unwrap();
                c.written_back.fetch_add(n, Ordering::Relaxed);
            }
            let mut back = vec![0u8; PAGE_SIZE];
            for (slot, i) in mine {
                z.swap_in(slot, &mut back).unwrap();
                assert!(back == pages[i]);
            }
            z.swapoff(area).unwrap();
            c.area_cycles.fetch_add(1, Ordering::Relaxed);
        }
        // The other threads run until each has done as many of its own
        // cycles (counted, not timed: on a loaded machine a switch, which
        // makes a whole pool, may get less of the CPU than a round here).
        // A thread that panicked ends the wait (its join reports it).
        while (c.switches.load(Ordering::Relaxed) < rounds
            || c.groups.load(Ordering::Relaxed) < rounds)
            && !threads.iter().any(|t| t.is_finished())
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    });
}

#[test]
fn churn_soak() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let groups = Groups::new();
    let tenants: Vec<GroupId> = (0..3)
        .map(|_| groups.create(GroupId::ROOT).unwrap())
        .collect();
    let z = Arc::new(zswap(&groups, 4 << 20));
    // The swappers' area: 3 threads × 64 slots at most.
    let main = z.swapon(Box::new(MemDevice::new(256))).unwrap();
    let pages = Arc::new(pages());
    let warm = Counts::default();
    churn(&z, &pages, &tenants, 20, &warm);
    // This thread's per-codec scratch (deflate's compressor state is about
    // 300 KiB) is made at its first use of each codec: make it now.
    let mut back = vec![0u8; PAGE_SIZE];
    for name in Compressor::names() {
        z.set_compressor(name.parse().unwrap()).unwrap();
        let slot = z.swap_out(&pages[0], GroupId::ROOT).unwrap();
        z.swap_in(slot, &mut back).unwrap();
    }
    drop(back);
    z.compact();
    let before = heap();
    let c = Counts::default();
    let rounds = 1000 * scale();
    churn(&z, &pages, &tenants, rounds, &c);
    assert_eq!(z.stats().stored_pages, 0);
    z.compact();
    let after = heap();
    let grown = after - before;
    // The smallest thing a cycle could leak: an area over an empty 64-page
    // device. An empty pool is larger.
    let area_bytes = {
        let b = heap();
        let a = z.swapon(Box::new(MemDevice::new(64))).unwrap();
        let cost = heap() - b;
        z.swapoff(a).unwrap();
        cost
    };
    let cycles = c.area_cycles.load(Ordering::Relaxed);
    let tolerance = area_bytes * cycles as isize / 4;
    println!(
        "churn: {:?}; heap {before} -> {after} ({grown:+} bytes); one area costs {area_bytes} B, \
         tolerance {tolerance} B; live areas and pools {:?}",
        c,
        z.live_areas_and_pools()
    );
    assert!(cycles >= 1000 * scale());
    assert!(c.switches.load(Ordering::Relaxed) >= 1000, "{c:?}");
    assert!(c.written_back.load(Ordering::Relaxed) > 0, "{c:?}");
    assert!(c.groups.load(Ordering::Relaxed) >= 1000, "{c:?}");
    assert!(grown.abs() <= tolerance, "{grown} bytes grew");
    assert_eq!(z.live_areas_and_pools(), (1, 1));
    assert_eq!(z.stats().pool_total_size, 0);
    assert_eq!(groups.live(), 1 + tenants.len());
    z.swapoff(main).unwrap();
}

/// Groups churned on their own keep nothing: each is created, stores a
/// page, goes offline holding it, and is freed when the page is swapped in;
/// the heap and the group table come back to where they were.
#[test]
fn group_churn_keeps_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let groups = Groups::new();
    let z = zswap(&groups, 1 << 30);
    z.swapon(Box::new(MemDevice::new(64))).unwrap();
    let page = pages_one();
    let mut back = vec![0u8; PAGE_SIZE];
    let mut cycle = || {
        let g = groups.create(GroupId::ROOT).unwrap();
        let slot = z.swap_out(&page, g).unwrap();
        groups.offline(g).unwrap();
        z.swap_in(slot, &mut back).unwrap();
    };
    // Warm-up: the root's lists, the pool's tables, the first group index.
    cycle();
    z.compact();
    let before = heap();
    let n = 10_000 * scale();
    for _ in 0..n {
        cycle();
    }
    z.compact();
    let grown = heap() - before;
    println!(
        "group churn: {n} groups created, used, taken offline and freed: {grown:+} heap bytes"
    );
    assert!(grown.abs() <= SLACK, "{grown} bytes grew");
    assert_eq!((groups.len(), groups.live()), (2, 1));
    assert_eq!(z.stats().stored_pages, 0);
}
