//! What the crate gives back: old pools when their last entry goes, areas
//! (index, slot states, device) at swapoff with their ids reused under a new
//! generation, the allocator's empty spans, and handles that stay refused
//! however often their ids are reused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use zswap::testing::sample_pages;
use zswap::{
    AreaId, Compressor, Error, GroupId, Groups, MemDevice, NodeId, PoolConfig, SwapDevice,
    SwapSlot, ZsPool, Zswap, ZswapConfig, PAGE_SIZE,
};

fn zswap(groups: &Groups) -> Zswap {
    Zswap::new(ZswapConfig::default().shrink_worker(false), groups).unwrap()
}

/// The real sample without its same-filled pages.
fn pages() -> Vec<Vec<u8>> {
    sample_pages()
        .into_iter()
        .filter(|p| p.iter().any(|&b| b != p[0]))
        .collect()
}

/// A memory device that counts how many of its kind are alive.
struct Counted {
    dev: MemDevice,
    alive: Arc<AtomicUsize>,
}

impl Counted {
    fn new(pages: u64, alive: &Arc<AtomicUsize>) -> Box<Self> {
        alive.fetch_add(1, Ordering::SeqCst);
        Box::new(Counted {
            dev: MemDevice::new(pages),
            alive: alive.clone(),
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SwapDevice for Counted {
    fn pages(&self) -> u64 {
        self.dev.pages()
    }
    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        self.dev.read_page(offset, page)
    }
    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        self.dev.write_page(offset, page)
    }
}

#[test]
fn old_pools_are_given_back_with_their_last_entry() {
    let groups = Groups::new();
    let z = zswap(&groups);
    z.swapon(Box::new(MemDevice::new(4096))).unwrap();
    let pages = pages();
    let names = Compressor::names();
    let mut slots = Vec::new();
    // 40 switches, each pool left holding pages (the first pool held none
    // and went at the first switch).
    for (i, page) in pages.iter().take(400).enumerate() {
        if i % 10 == 0 {
            z.set_compressor(names[(i / 10) % names.len()].parse().unwrap())
                .unwrap();
        }
        slots.push((z.swap_out(page, GroupId::ROOT).unwrap(), page));
    }
    assert_eq!(z.live_areas_and_pools(), (1, 40));
    let mut back = vec![0u8; PAGE_SIZE];
    for (slot, page) in slots {
        z.swap_in(slot, &mut back).unwrap();
        assert_eq!(&back, page);
    }
    // Only the current pool is left, holding nothing and counting nothing.
    assert_eq!(z.live_areas_and_pools(), (1, 1));
    let s = z.stats();
    assert_eq!((s.stored_pages, s.pool_total_size), (0, 0));
    // A switch with nothing stored gives the old pool back at once.
    z.set_compressor(Compressor::Deflate { level: 6 }).unwrap();
    assert_eq!(z.live_areas_and_pools(), (1, 1));
}

/// Switching is not capped: more switches than an entry's 16-bit pool
/// index could name, since indexes of given-back pools are reused.
#[test]
fn compressor_switches_are_not_capped() {
    let groups = Groups::new();
    let z = zswap(&groups);
    z.swapon(Box::new(MemDevice::new(16))).unwrap();
    let page = &pages()[0];
    let slot = z.swap_out(page, GroupId::ROOT).unwrap();
    for i in 0..(1usize << 16) + 100 {
        z.set_compressor(if i % 2 == 0 {
            Compressor::Deflate { level: 6 }
        } else {
            Compressor::lz4()
        })
        .unwrap();
    }
    // The first pool still holds its entry; the rest came and went.
    assert_eq!(z.live_areas_and_pools(), (1, 2));
    let mut back = vec![0u8; PAGE_SIZE];
    z.swap_in(slot, &mut back).unwrap();
    assert_eq!(&back, page);
    assert_eq!(z.live_areas_and_pools(), (1, 1));
}

#[test]
fn swapoff_gives_the_area_back_and_its_id_is_reused() {
    let groups = Groups::new();
    let z = zswap(&groups);
    let alive = Arc::new(AtomicUsize::new(0));
    let a = z.swapon(Counted::new(64, &alive)).unwrap();
    assert_eq!((a.index(), a.generation()), (0, 0));
    let page = &pages()[1];
    let slot = z.swap_out(page, GroupId::ROOT).unwrap();
    assert_eq!(z.swapoff(a), Err(Error::AreaBusy(a)));
    // Written back, then swapped in: the area held entries and a page on
    // its device before it goes.
    assert_eq!(
        z.scan(NodeId::ZERO, GroupId::ROOT, 1).unwrap(),
        0,
        "second chance"
    );
    assert_eq!(z.scan(NodeId::ZERO, GroupId::ROOT, 1).unwrap(), 1);
    let mut back = vec![0u8; PAGE_SIZE];
    z.swap_in(slot, &mut back).unwrap();
    assert_eq!(&back, page);
    z.swapoff(a).unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 0, "the device was closed");
    assert_eq!(z.live_areas_and_pools().0, 0);
    assert_eq!(z.swapoff(a), Err(Error::UnknownArea(a)));
    // The index comes back under the next generation; the old id and its
    // slots are refused.
    let b = z.swapon(Counted::new(64, &alive)).unwrap();
    assert_eq!((b.index(), b.generation()), (0, 1));
    assert_ne!(a, b);
    let stale = SwapSlot {
        area: a,
        offset: slot.offset,
    };
    assert_eq!(
        z.store(stale, page, GroupId::ROOT, NodeId::ZERO),
        Err(Error::UnknownArea(a))
    );
    assert_eq!(z.swap_in(stale, &mut back), Err(Error::UnknownArea(a)));
    assert_eq!(z.invalidate(stale), Err(Error::UnknownArea(a)));
    let fresh = z.swap_out(page, GroupId::ROOT).unwrap();
    assert_eq!(fresh.area, b);
    z.swap_in(fresh, &mut back).unwrap();
    z.swapoff(b).unwrap();
    drop(z);
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

#[test]
fn areas_are_capped_only_by_those_live_at_once() {
    let groups = Groups::new();
    let z = zswap(&groups);
    let ids: Vec<AreaId> = (0..AreaId::MAX_AREAS)
        .map(|_| z.swapon(Box::new(MemDevice::new(1))).unwrap())
        .collect();
    assert!(matches!(
        z.swapon(Box::new(MemDevice::new(1))),
        Err(Error::BadConfig(_))
    ));
    for id in &ids {
        z.swapoff(*id).unwrap();
    }
    // A thousand swapon/swapoff cycles later the table is as small as it was.
    for _ in 0..1000 {
        let id = z.swapon(Box::new(MemDevice::new(1))).unwrap();
        z.swapoff(id).unwrap();
    }
    assert_eq!(z.live_areas_and_pools().0, 0);
}

#[test]
fn a_stale_handle_stays_refused_through_2_pow_17_reuses() {
    let pool = ZsPool::new(PoolConfig::default()).unwrap();
    let stale = pool.insert(b"the first owner").unwrap();
    pool.free(stale).unwrap();
    let neighbour = pool.insert(b"a neighbour, live").unwrap();
    for i in 0..(1u32 << 17) {
        // One free id: FIFO reuse hands the stale one back every time.
        let h = pool.insert(&i.to_ne_bytes()).unwrap();
        assert_eq!(pool.free(stale), Err(Error::BadHandle), "reuse {i}");
        assert_eq!(pool.len_of(stale), Err(Error::BadHandle));
        pool.free(h).unwrap();
    }
    assert_eq!(
        pool.read(neighbour, |b| b.to_vec()).unwrap(),
        b"a neighbour, live"
    );
    pool.free(neighbour).unwrap();
    assert_eq!(pool.footprint(), 0);
}

#[test]
fn forged_handles_are_refused() {
    let pool = ZsPool::new(PoolConfig::default()).unwrap();
    let live = pool.insert(&[1; 100]).unwrap();
    for raw in [1, u64::MAX, 1 << 63, live.to_raw() ^ 1 << 40, 0xff << 56] {
        let h = zswap::Handle::from_raw(raw).unwrap();
        assert_eq!(pool.free(h), Err(Error::BadHandle), "{raw:#x}");
    }
    assert_eq!(pool.free(live), Ok(100));
}

#[test]
fn empty_spans_are_not_counted_and_go_back_on_compaction() {
    let groups = Groups::new();
    let z = zswap(&groups);
    z.swapon(Box::new(MemDevice::new(4096))).unwrap();
    let pages = pages();
    let slots: Vec<SwapSlot> = pages[..500]
        .iter()
        .map(|p| z.swap_out(p, GroupId::ROOT).unwrap())
        .collect();
    assert!(z.stats().pool_total_size > 0);
    for s in slots {
        z.free(s).unwrap();
    }
    // Each class keeps an empty span cached, which the limit ignores...
    assert_eq!(z.stats().pool_total_size, 0);
    // ...and compaction gives back.
    assert!(z.compact() > 0);
    assert_eq!(z.compact(), 0);
}

/// A class's tables shrink back once it holds few objects again, and the
/// ids grown again later do not revive the stale handles of the ids cut.
#[test]
fn trimmed_tables_keep_stale_handles_refused() {
    let pool = ZsPool::new(PoolConfig::default()).unwrap();
    let old: Vec<zswap::Handle> = (0..5000u32)
        .map(|i| pool.insert(&i.to_ne_bytes()).unwrap())
        .collect();
    let full_meta = pool.stats().meta_bytes;
    for h in &old {
        pool.free(*h).unwrap();
    }
    pool.compact();
    pool.shrink_cache();
    let s = pool.stats();
    assert_eq!((s.footprint, s.cached), (0, 0));
    assert!(
        s.meta_bytes < full_meta / 10,
        "{} of {full_meta}",
        s.meta_bytes
    );
    let new: Vec<zswap::Handle> = (0..5000u32)
        .map(|i| pool.insert(&(i + 1).to_ne_bytes()).unwrap())
        .collect();
    for h in &old {
        assert_eq!(pool.len_of(*h), Err(Error::BadHandle), "{h:?}");
    }
    for (i, h) in new.iter().enumerate() {
        assert_eq!(
            pool.read(*h, |b| b.to_vec()).unwrap(),
            (i as u32 + 1).to_ne_bytes()
        );
    }
}
