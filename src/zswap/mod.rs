//! [`Zswap`]: the compressed cache in front of swap devices, keyed by swap
//! slot, with per-group limits, a global limit, and writeback.
//!
//! The store path mirrors the kernel's `zswap_store`: drop any older entry
//! of the slot first (so a failed store can never leave stale data to be
//! written back later), check the group's hierarchical `zswap_max` (reclaim
//! from that group's own lists if it is at its limit, reject if that frees
//! nothing), check the global limit with the accept-threshold hysteresis,
//! keep a same-filled page as one word, compress into per-thread scratch
//! (a page that does not compress is stored as-is when its group may write
//! back, rejected otherwise), allocate in the current pool, charge, index,
//! and put the entry on its group's LRU last — an entry is invisible to
//! writeback until then.
//!
//! Every change to a slot's entry happens under that slot's pin (see
//! `entry.rs`), which is the kernel's swap-cache folio lock: store, load and
//! invalidate wait for it; writeback only tries it and skips a busy slot.
//! The writeback protocol (DESIGN.md, "The invalidate-versus-writeback
//! race") is in `reclaim.rs`.

mod config;
mod entry;
mod reclaim;
mod stats;

pub use config::{total_memory, PoolLimit, ZswapConfig};
pub use reclaim::ShrinkResult;
pub use stats::ZswapStats;

use std::cell::RefCell;

use entry::{Area, Data, Entry};
use stats::{dec, inc, Counters};

use crate::sync::{Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::table::SegTable;
use crate::{
    AreaId, Compressor, Error, GroupEvent, GroupId, Groups, Item, ListLru, NodeId, PoolConfig,
    RoundRobin, SwapArea, SwapDevice, SwapSlot, ZsPool, PAGE_SIZE,
};

crate::sync::thread_scratch! {
    static COMPRESS_BUF: RefCell<Vec<u8>> = RefCell::new(Vec::new());
}

/// One compressed pool: a compressor and the allocator its objects live in.
struct PoolSlot {
    compressor: Compressor,
    pool: ZsPool,
    entries: AtomicUsize,
}

pub(crate) struct Inner {
    cfg: ZswapConfig,
    max_bytes: u64,
    accept_bytes: u64,
    groups: Groups,
    lru: ListLru<Entry>,
    pools: SegTable<PoolSlot>,
    npools: AtomicUsize,
    current: AtomicUsize,
    pool_lock: Mutex<()>,
    areas: SegTable<Area>,
    nareas: AtomicUsize,
    area_lock: Mutex<()>,
    reached_full: AtomicBool,
    stats: Counters,
    cursor: RoundRobin,
    worker: reclaim::WorkerSignal,
}

/// A zswap instance: compressed pools in front of swap areas.
///
/// ```
/// use zswap::{Groups, GroupId, MemDevice, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT).unwrap();
/// let zswap = Zswap::new(ZswapConfig::default().shrinker(false), &groups).unwrap();
/// zswap.swapon(Box::new(MemDevice::new(1024))).unwrap();
///
/// let page = vec![0x5a; 4096];
/// let slot = zswap.swap_out(&page, tenant).unwrap();
/// assert_eq!(zswap.stats().same_filled_pages, 1);
/// let mut back = vec![0u8; 4096];
/// zswap.swap_in(slot, &mut back).unwrap();
/// assert_eq!(back, page);
/// ```
pub struct Zswap {
    inner: Arc<Inner>,
    worker: Option<reclaim::Worker>,
}

impl std::fmt::Debug for Zswap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zswap")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Zswap {
    /// Stops the shrink worker, then frees every entry still stored, so the
    /// groups (which may outlive this zswap) keep no stale charges.
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            w.stop(&self.inner);
        }
        let inner = &self.inner;
        for i in 0..inner.nareas.load(Ordering::Acquire) {
            if let Some(area) = inner.areas.get(i) {
                for entry in area.drain() {
                    inner.free_entry(&entry);
                }
            }
        }
    }
}

fn same_filled(page: &[u8]) -> Option<u64> {
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8-byte chunk"));
    let first = word(&page[..8]);
    page.chunks_exact(8)
        .all(|c| word(c) == first)
        .then_some(first)
}

impl Zswap {
    /// A zswap over `groups`, configured by `cfg`. Starts the shrink worker
    /// if `cfg` enables it.
    pub fn new(cfg: ZswapConfig, groups: &Groups) -> Result<Self, Error> {
        cfg.validate()?;
        let compressor = Compressor::by_name(&cfg.compressor)?;
        let max_bytes = cfg.max_pool_bytes();
        let inner = Arc::new(Inner {
            max_bytes,
            accept_bytes: (u128::from(max_bytes) * u128::from(cfg.accept_threshold_percent) / 100)
                as u64,
            lru: ListLru::with_groups(&cfg.topology, groups),
            groups: groups.clone(),
            pools: SegTable::new(),
            npools: AtomicUsize::new(0),
            current: AtomicUsize::new(0),
            pool_lock: Mutex::new(()),
            areas: SegTable::new(),
            nareas: AtomicUsize::new(0),
            area_lock: Mutex::new(()),
            reached_full: AtomicBool::new(false),
            stats: Counters::default(),
            cursor: RoundRobin::new(),
            worker: reclaim::WorkerSignal::new(),
            cfg,
        });
        inner.add_pool(compressor)?;
        let worker = if inner.cfg.shrinker {
            reclaim::Worker::start(&inner)?
        } else {
            None
        };
        Ok(Zswap { inner, worker })
    }

    /// The groups this zswap charges.
    pub fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// Adds a swap area backed by `device`, one slot per device page.
    pub fn swapon(&self, device: Box<dyn SwapDevice>) -> Result<AreaId, Error> {
        let inner = &self.inner;
        let _g = inner.area_lock.lock();
        let n = inner.nareas.load(Ordering::Acquire);
        let id = AreaId(u16::try_from(n).map_err(|_| Error::BadConfig("too many areas".into()))?);
        let slots = SwapArea::new(id, device.pages())?;
        inner
            .areas
            .get_or_insert_with(n, || Area::new(slots, device))
            .ok_or_else(|| Error::BadConfig("too many areas".into()))?;
        inner.nareas.store(n + 1, Ordering::Release);
        Ok(id)
    }

    /// Removes an area. Refused ([`Error::AreaBusy`]) while any of its slots
    /// is allocated: swap everything in (or free it) first, as the kernel's
    /// swapoff brings every page back before it lets go.
    pub fn swapoff(&self, area: AreaId) -> Result<(), Error> {
        let a = self.inner.area(area)?;
        let _g = self.inner.area_lock.lock();
        if a.slots.free_slots() != a.slots.slots() as usize || a.entries() != 0 {
            return Err(Error::AreaBusy(area));
        }
        a.online.store(false, Ordering::Release);
        Ok(())
    }

    /// Stores `page` for `slot`, charged to `group`, on `node`'s list
    /// (`zswap_store`). Claims the slot if the caller's own allocator handed
    /// it out. `Ok(false)`: rejected (see [`stats`](Self::stats) for why);
    /// the slot then holds no entry.
    pub fn store(
        &self,
        slot: SwapSlot,
        page: &[u8],
        group: GroupId,
        node: NodeId,
    ) -> Result<bool, Error> {
        let inner = &self.inner;
        inner.check_store(page, group, node)?;
        let area = inner.area(slot.area)?;
        area.slots.claim(slot.offset)?;
        let _pin = area.slots.pin(slot.offset)?;
        inner.store_pinned(area, slot, page, group, node)
    }

    /// Loads `slot`'s page into `page` and drops the entry (`zswap_load`;
    /// loads are exclusive). `Ok(false)`: zswap does not hold it (it was
    /// written back, or never stored).
    pub fn load(&self, slot: SwapSlot, page: &mut [u8]) -> Result<bool, Error> {
        if page.len() != PAGE_SIZE {
            return Err(Error::PageSize(page.len()));
        }
        let area = self.inner.area(slot.area)?;
        let _pin = area.slots.pin(slot.offset)?;
        self.inner.load_pinned(area, slot, page)
    }

    /// The swap slot was freed: drop its entry, if any, and free the slot
    /// (`zswap_invalidate`). Waits for a writeback of the slot in flight.
    pub fn invalidate(&self, slot: SwapSlot) -> Result<(), Error> {
        let area = self.inner.area(slot.area)?;
        let pin = area.slots.pin(slot.offset)?;
        if let Some(e) = area.remove(slot.offset) {
            self.inner.free_entry(&e);
        }
        // Freed while still pinned: the slot goes back to the allocator when
        // the pin drops, with no window in which a writeback could claim it
        // between our removal and the free.
        let r = area.slots.free(slot.offset);
        drop(pin);
        r
    }

    /// Swaps `page` out for `group`: a slot is allocated, the page goes to
    /// zswap, or to the swap device if zswap rejects it and the group may
    /// write back; otherwise [`Error::Rejected`] and nothing is kept.
    pub fn swap_out(&self, page: &[u8], group: GroupId) -> Result<SwapSlot, Error> {
        let inner = &self.inner;
        let node = inner.cfg.topology.current_node();
        inner.check_store(page, group, node)?;
        let (area, slot) = inner.alloc_slot()?;
        let pin = area.slots.pin(slot.offset)?;
        let r = match inner.store_pinned(area, slot, page, group, node) {
            Ok(true) => Ok(()),
            Ok(false) => match inner.groups.writeback_enabled(group) {
                Ok(true) => area.device.write_page(u64::from(slot.offset), page),
                Ok(false) => Err(Error::Rejected),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if r.is_err() {
            // Released when the pin drops (see `invalidate`).
            area.slots.free(slot.offset)?;
        }
        drop(pin);
        r.map(|()| slot)
    }

    /// Reads `slot`'s page back (from zswap, else from the device) and frees
    /// the slot.
    pub fn swap_in(&self, slot: SwapSlot, page: &mut [u8]) -> Result<(), Error> {
        if page.len() != PAGE_SIZE {
            return Err(Error::PageSize(page.len()));
        }
        let area = self.inner.area(slot.area)?;
        let pin = area.slots.pin(slot.offset)?;
        if !self.inner.load_pinned(area, slot, page)? {
            area.device.read_page(u64::from(slot.offset), page)?;
        }
        // Released when the pin drops (see `invalidate`).
        let r = area.slots.free(slot.offset);
        drop(pin);
        r
    }

    /// Frees `slot` without reading it (the page was discarded).
    pub fn free(&self, slot: SwapSlot) -> Result<(), Error> {
        self.invalidate(slot)
    }

    /// Makes `name` the compressor of new stores. Stored entries keep their
    /// pool; an old pool gives its memory back when its last entry goes.
    pub fn set_compressor(&self, name: &str) -> Result<(), Error> {
        let c = Compressor::by_name(name)?;
        self.inner.add_pool(c)
    }

    /// The compressor of new stores.
    pub fn compressor(&self) -> Compressor {
        self.inner.current_pool().1.compressor
    }

    /// Every debugfs counter.
    pub fn stats(&self) -> ZswapStats {
        self.inner.stats.snapshot(self.inner.pool_total_size())
    }

    /// The global limit in bytes, and the accept threshold.
    pub fn limits(&self) -> (u64, u64) {
        (self.inner.max_bytes, self.inner.accept_bytes)
    }

    /// Entries on `group`'s list of `node` (the shrinker's count).
    pub fn count(&self, node: NodeId, group: GroupId) -> Result<usize, Error> {
        self.inner.lru.count_objects(node, group)
    }

    /// Writes back up to `nr` of `group`'s coldest entries on `node` (the
    /// shrinker's scan, for a program's own memory-pressure signal).
    /// Returns the pages written back.
    pub fn scan(&self, node: NodeId, group: GroupId, nr: usize) -> Result<usize, Error> {
        self.inner.scan(node, group, nr)
    }

    /// Shrinks `group`'s own lists by one entry per node (`shrink_memcg`).
    pub fn shrink_group(&self, group: GroupId) -> Result<ShrinkResult, Error> {
        self.inner.groups.state(group)?;
        Ok(self.inner.shrink_group(group))
    }

    /// Heap bytes of one entry beyond its compressed object: the entry
    /// itself (an LRU item), its slot-index cell, and its pool metadata
    /// (handle entry and span share), as last measured by the pool.
    pub fn metadata_bytes_per_entry(&self) -> f64 {
        let item = crate::lru::item_bytes::<Entry>() as f64;
        // hashbrown: key + value + one control byte, at 7/8 load at most.
        let index = (4 + std::mem::size_of::<Item<Entry>>() + 1) as f64 * 8.0 / 7.0;
        let (objects, meta) = (0..self.inner.npools.load(Ordering::Acquire))
            .filter_map(|i| self.inner.pools.get(i))
            .map(|p| p.pool.stats())
            .fold((0usize, 0usize), |(o, m), s| {
                (o + s.objects, m + s.meta_bytes)
            });
        let pool = if objects > 0 {
            meta as f64 / objects as f64
        } else {
            0.0
        };
        item + index + pool
    }

    /// Heap bytes of one entry's LRU item (value and links), alone.
    pub fn entry_bytes() -> usize {
        crate::lru::item_bytes::<Entry>()
    }

    /// Runs one pass of the shrink worker now (round-robin over the groups
    /// until the pool is under the accept threshold or 16 passes fail);
    /// returns the pages written back.
    pub fn shrink_worker_pass(&self) -> usize {
        self.inner.shrink_worker_pass()
    }
}

impl Inner {
    fn add_pool(&self, compressor: Compressor) -> Result<(), Error> {
        let _g = self.pool_lock.lock();
        let n = self.npools.load(Ordering::Acquire);
        let pool = ZsPool::new(PoolConfig::default())?;
        self.pools
            .get_or_insert_with(n, || PoolSlot {
                compressor,
                pool,
                entries: AtomicUsize::new(0),
            })
            .ok_or_else(|| Error::BadConfig("too many pools".into()))?;
        self.npools.store(n + 1, Ordering::Release);
        self.current.store(n, Ordering::Release);
        Ok(())
    }

    fn current_pool(&self) -> (usize, &PoolSlot) {
        let i = self.current.load(Ordering::Acquire);
        (i, self.pools.get(i).expect("the current pool exists"))
    }

    fn pool_total_size(&self) -> u64 {
        (0..self.npools.load(Ordering::Acquire))
            .filter_map(|i| self.pools.get(i))
            .map(|p| p.pool.footprint() as u64)
            .sum()
    }

    fn area(&self, id: AreaId) -> Result<&Area, Error> {
        let i = usize::from(id.0);
        if i >= self.nareas.load(Ordering::Acquire) {
            return Err(Error::UnknownArea(id));
        }
        let a = self.areas.get(i).ok_or(Error::UnknownArea(id))?;
        if !a.online.load(Ordering::Acquire) {
            return Err(Error::UnknownArea(id));
        }
        Ok(a)
    }

    fn alloc_slot(&self) -> Result<(&Area, SwapSlot), Error> {
        (0..self.nareas.load(Ordering::Acquire))
            .filter_map(|i| self.areas.get(i))
            .filter(|a| a.online.load(Ordering::Acquire))
            .find_map(|a| a.slots.alloc().map(|s| (a, s)))
            .ok_or(Error::SwapFull)
    }

    fn check_store(&self, page: &[u8], group: GroupId, node: NodeId) -> Result<(), Error> {
        if page.len() != PAGE_SIZE {
            return Err(Error::PageSize(page.len()));
        }
        if node.index() >= self.lru.nr_nodes() {
            return Err(Error::NodeOutOfRange {
                node,
                nr_nodes: self.lru.nr_nodes(),
            });
        }
        if !self.groups.is_online(group) {
            self.groups.state(group)?;
            return Err(Error::GroupOffline(group));
        }
        Ok(())
    }

    /// Whether the global limit lets a store in (and the bookkeeping of
    /// `zswap_is_full` / `zswap_can_accept`).
    fn global_limit_allows(&self) -> bool {
        let total = self.pool_total_size();
        if total >= self.max_bytes {
            inc(&self.stats.pool_limit_hit);
            self.reached_full.store(true, Ordering::Relaxed);
            self.worker.wake();
            return false;
        }
        if self.reached_full.load(Ordering::Relaxed) {
            if total > self.accept_bytes {
                self.worker.wake();
                return false;
            }
            self.reached_full.store(false, Ordering::Relaxed);
        }
        true
    }

    fn store_pinned(
        &self,
        area: &Area,
        slot: SwapSlot,
        page: &[u8],
        group: GroupId,
        node: NodeId,
    ) -> Result<bool, Error> {
        // A duplicate goes first: if this store fails, no stale entry may
        // stay behind to be written back over the newer page later.
        if let Some(old) = area.remove(slot.offset) {
            inc(&self.stats.duplicate_entry);
            self.free_entry(&old);
        }
        if !self.groups.may_zswap(group)? {
            // Reclaim from this group's own lists only; nothing freed: reject.
            let freed = self.shrink_group(group);
            if !matches!(freed, ShrinkResult::Wrote(_)) || !self.groups.may_zswap(group)? {
                return Ok(false);
            }
        }
        if !self.global_limit_allows() {
            return Ok(false);
        }
        let data = match self
            .cfg
            .same_filled_pages
            .then(|| same_filled(page))
            .flatten()
        {
            Some(word) => Data::Same(word),
            None => match self.compress_and_insert(page, group)? {
                Some(data) => data,
                None => return Ok(false),
            },
        };
        let incompressible = matches!(
            data,
            Data::Stored {
                incompressible: true,
                ..
            }
        );
        let len = match data {
            Data::Same(_) => 0,
            Data::Stored { len, .. } => u64::from(len),
        };
        let charged = self.groups.charge(group, len, incompressible)?;
        self.groups.count_event(charged, GroupEvent::Zswpout)?;
        let entry = Item::new(Entry {
            slot,
            data,
            group: charged,
            node,
            referenced: AtomicBool::new(true),
            dead: AtomicBool::new(false),
        });
        inc(&self.stats.stored_pages);
        match data {
            Data::Same(_) => inc(&self.stats.same_filled_pages),
            Data::Stored { pool, .. } => {
                if incompressible {
                    inc(&self.stats.stored_incompressible_pages);
                }
                self.pool(pool).entries.fetch_add(1, Ordering::Relaxed);
            }
        }
        let replaced = area.insert(slot.offset, entry.clone());
        debug_assert!(replaced.is_none(), "the slot's pin excludes other stores");
        if matches!(data, Data::Stored { .. }) {
            // Last: the entry is invisible to writeback until it is here.
            self.lru.add(&entry, node, charged)?;
        }
        Ok(true)
    }

    /// Compresses `page` into the current pool; `None` when rejected.
    fn compress_and_insert(&self, page: &[u8], group: GroupId) -> Result<Option<Data>, Error> {
        let (pi, p) = self.current_pool();
        COMPRESS_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.resize(PAGE_SIZE, 0);
            // The kernel's test: a page is incompressible if dlen >= PAGE_SIZE.
            let (bytes, incompressible) =
                match p.compressor.compress(page, &mut buf[..PAGE_SIZE - 1]) {
                    Ok(n) => (&buf[..n], false),
                    Err(Error::CompressPoor) => {
                        if !self.groups.writeback_enabled(group)? {
                            inc(&self.stats.reject_compress_poor);
                            return Ok(None);
                        }
                        (page, true)
                    }
                    Err(_) => {
                        inc(&self.stats.reject_compress_fail);
                        return Ok(None);
                    }
                };
            match p.pool.insert(bytes) {
                Ok(handle) => Ok(Some(Data::Stored {
                    pool: pi as u32,
                    handle,
                    len: bytes.len() as u32,
                    incompressible,
                })),
                Err(_) => {
                    inc(&self.stats.reject_alloc_fail);
                    Ok(None)
                }
            }
        })
    }

    fn pool(&self, i: u32) -> &PoolSlot {
        self.pools
            .get(i as usize)
            .expect("entries name existing pools")
    }

    /// Fills `page` from `entry`.
    fn decompress(&self, entry: &Entry, page: &mut [u8]) -> Result<(), Error> {
        let r = match entry.data {
            Data::Same(word) => {
                for c in page.chunks_exact_mut(8) {
                    c.copy_from_slice(&word.to_ne_bytes());
                }
                Ok(())
            }
            Data::Stored {
                pool,
                handle,
                incompressible,
                ..
            } => {
                let p = self.pool(pool);
                p.pool
                    .read(handle, |src| {
                        if incompressible {
                            page.copy_from_slice(src);
                            Ok(())
                        } else {
                            p.compressor.decompress(src, page)
                        }
                    })
                    .and_then(|r| r)
            }
        };
        if r.is_err() {
            inc(&self.stats.decompress_fail);
        }
        r
    }

    fn load_pinned(&self, area: &Area, slot: SwapSlot, page: &mut [u8]) -> Result<bool, Error> {
        let Some(entry) = area.remove(slot.offset) else {
            return Ok(false);
        };
        let r = self.decompress(&entry, page);
        if r.is_ok() {
            self.groups.count_event(entry.group, GroupEvent::Zswpin)?;
        }
        self.free_entry(&entry);
        r.map(|()| true)
    }

    /// Releases everything an entry holds. Called exactly once, by whoever
    /// took the entry out of the index.
    fn free_entry(&self, entry: &Item<Entry>) {
        // Dead first, then unlink: a shrinker that puts the entry back
        // after this `del` sees `dead` and unlinks it itself (reclaim.rs).
        // An AcqRel read-modify-write, paired with the shrinker's: see
        // `putback_busy` for why plain SeqCst stores and loads would not do.
        entry.dead.swap(true, Ordering::AcqRel);
        // Isolated means a shrinker holds it and will find the index changed.
        let _ = self.lru.del(entry);
        let _ = self
            .groups
            .uncharge(entry.group, entry.charged_len(), entry.incompressible());
        dec(&self.stats.stored_pages);
        match entry.data {
            Data::Same(_) => dec(&self.stats.same_filled_pages),
            Data::Stored {
                pool,
                handle,
                incompressible,
                ..
            } => {
                if incompressible {
                    dec(&self.stats.stored_incompressible_pages);
                }
                let p = self.pool(pool);
                let freed = p.pool.free(handle);
                // Each entry is freed once, by its remover from the index;
                // loom models and debug builds check it.
                if cfg!(any(debug_assertions, loom)) {
                    assert!(freed.is_ok(), "an entry's object freed twice");
                }
                let left = p.entries.fetch_sub(1, Ordering::Relaxed) - 1;
                if left == 0 && pool as usize != self.current.load(Ordering::Acquire) {
                    // An old pool's last entry: give its memory back.
                    p.pool.shrink_cache();
                }
            }
        }
    }
}
