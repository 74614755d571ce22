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
//! The store, load and free paths are in `store.rs`; the writeback protocol
//! (IMPLEMENTATION.md, "One rule for every race") is in `reclaim.rs`.

mod compact;
mod config;
mod entry;
mod reclaim;
mod shrinker;
mod stats;
mod store;
mod tables;
mod worker;

#[cfg(feature = "testing")]
pub(crate) use store::same_filled;

pub use config::{total_memory, LruPolicy, PoolLimit, WorkerPolicy, ZswapConfig};
pub use reclaim::ShrinkResult;
pub use shrinker::ShrinkerScan;
pub use stats::ZswapStats;

use entry::{Area, Entry, SlotIndex};
use stats::Counters;

use crate::sync::{Arc, ArcSwap, AtomicBool, AtomicUsize, Ordering};
use crate::table::ArcTable;
use crate::{
    AreaId, Compressor, Error, GroupId, Groups, ListLru, NodeId, RoundRobin, SwapDevice, SwapSlot,
    ZsPool, PAGE_SIZE,
};

/// One compressed pool: a compressor and the allocator its objects live in
/// (the kernel's `zswap_pool`). Given back when its references are gone
/// (`tables.rs`).
pub(crate) struct PoolSlot {
    compressor: Compressor,
    pool: ZsPool,
    /// One while current, one per entry in it, one per store compressing
    /// into it.
    refs: AtomicUsize,
    /// Its index in `Inner::pools`, which entries name it by.
    index: u16,
}

pub(crate) struct Inner {
    cfg: ZswapConfig,
    max_bytes: u64,
    accept_bytes: u64,
    groups: Groups,
    lru: ListLru<Entry>,
    pools: ArcTable<PoolSlot>,
    /// The pool new stores go to.
    current: ArcSwap<PoolSlot>,
    areas: ArcTable<Area>,
    reached_full: AtomicBool,
    stats: Counters,
    cursor: RoundRobin,
    worker: worker::WorkerSignal,
    /// The kernel's `shrinker_enabled`.
    shrinker_enabled: AtomicBool,
    /// Swap-ins served by the device, per (group, node), not yet consumed
    /// by `shrinker_count`.
    disk_swapins: shrinker::DiskSwapins,
}

/// Which store served a [`Zswap::swap_in`].
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, SwapSource, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(4)))?;
/// let slot = zswap.swap_out(&[7u8; 4096], GroupId::ROOT)?;
/// let mut page = [0u8; 4096];
/// assert_eq!(zswap.swap_in(slot, &mut page)?, SwapSource::Zswap);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SwapSource {
    /// The compressed cache held it (`zswpin`).
    Zswap,
    /// It was read from the swap device: written back, or never stored.
    Device,
}

/// A zswap instance: compressed pools in front of swap areas.
///
/// ```
/// use zswap::{Groups, GroupId, MemDevice, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT).unwrap();
/// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups).unwrap();
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
    worker: Option<worker::Worker>,
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
        inner.areas.for_each(|area| {
            for entry in area.drain() {
                inner.free_entry(&entry);
            }
        });
        // Every entry is freed; an object still allocated was lost (loom
        // reports it; a no-op otherwise).
        inner.pools.for_each(|p| p.pool.all_leaked());
    }
}

impl Zswap {
    /// A zswap over `groups`, configured by `cfg`. Starts the shrink worker
    /// if `cfg` enables it.
    pub fn new(cfg: ZswapConfig, groups: &Groups) -> Result<Self, Error> {
        cfg.validate()?;
        let compressor = cfg.compressor;
        let max_bytes = cfg.max_pool_bytes();
        let pools = ArcTable::new();
        let first = tables::insert_pool(&pools, compressor)?;
        let inner = Arc::new(Inner {
            max_bytes,
            accept_bytes: (u128::from(max_bytes) * u128::from(cfg.accept_threshold_percent) / 100)
                as u64,
            lru: ListLru::with_groups(&cfg.topology, groups),
            groups: groups.clone(),
            pools,
            current: ArcSwap::new(first),
            areas: ArcTable::new(),
            reached_full: AtomicBool::new(false),
            stats: Counters::default(),
            cursor: RoundRobin::new(),
            worker: worker::WorkerSignal::new(),
            shrinker_enabled: AtomicBool::new(cfg.shrinker_enabled),
            disk_swapins: shrinker::DiskSwapins::new(cfg.topology.nr_node_ids()),
            cfg,
        });
        let worker = if inner.cfg.shrink_worker {
            worker::Worker::start(&inner)?
        } else {
            None
        };
        Ok(Zswap { inner, worker })
    }

    /// The groups this zswap charges.
    pub fn groups(&self) -> &Groups {
        &self.inner.groups
    }

    /// Adds a swap area backed by `device`, one slot per device page. The
    /// id reuses the index of an area swapped off earlier (oldest first),
    /// under a new generation; at most [`AreaId::MAX_AREAS`] are live.
    pub fn swapon(&self, device: Box<dyn SwapDevice>) -> Result<AreaId, Error> {
        self.inner.add_area(device)
    }

    /// Removes an area and gives back all it holds: its slot index, its
    /// slot states and its device (closed when dropped). Refused
    /// ([`Error::AreaBusy`]) while any of its slots is allocated: swap
    /// everything in (or free it) first, as the kernel's swapoff brings
    /// every page back before it lets go. The check and the close are one
    /// step under the area's allocator lock, so a `swap_out` racing with it
    /// either gets its slot first (and swapoff is refused) or looks
    /// elsewhere. Every entry sits on an allocated slot, so an area with
    /// none allocated holds none. A slot of the old area is
    /// [`Error::UnknownArea`] from then on, also once a later `swapon`
    /// reuses the index.
    pub fn swapoff(&self, area: AreaId) -> Result<(), Error> {
        self.inner.remove_area(area)
    }

    /// Areas live now, and pools live now (the current one and any older
    /// one that still holds entries).
    pub fn live_areas_and_pools(&self) -> (usize, usize) {
        (self.inner.areas.live(), self.inner.pools.live())
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
        let pin = area.slots.pin(slot.offset)?;
        let stored = inner.store_pinned(&pin, slot, page, group, node);
        if !matches!(stored, Ok(true)) {
            // The caller writes the page to the device: record its owner.
            pin.set_owner(group);
        }
        stored
    }

    /// Loads `slot`'s page into `page` and drops the entry (`zswap_load`;
    /// loads are exclusive). `Ok(false)`: zswap does not hold it (it was
    /// written back, or never stored), and the caller reads the device;
    /// that counts as a disk swap-in against the slot's owner, as the
    /// kernel's `swap_read_folio` calls `zswap_folio_swapin` (see
    /// [`shrinker_count`](Self::shrinker_count)).
    pub fn load(&self, slot: SwapSlot, page: &mut [u8]) -> Result<bool, Error> {
        if page.len() != PAGE_SIZE {
            return Err(Error::PageSize(page.len()));
        }
        let area = self.inner.area(slot.area)?;
        let pin = area.slots.pin(slot.offset)?;
        let hit = self.inner.load_pinned(&pin, page)?;
        if !hit {
            self.inner.note_disk_swapin(&pin);
        }
        Ok(hit)
    }

    /// The swap slot was freed: drop its entry, if any, and free the slot
    /// (`zswap_invalidate`). Waits for a writeback of the slot in flight.
    pub fn invalidate(&self, slot: SwapSlot) -> Result<(), Error> {
        let area = self.inner.area(slot.area)?;
        let pin = area.slots.pin(slot.offset)?;
        match pin.clear() {
            Some(e) => self.inner.free_entry(&e),
            // Its page, if any, is on the device: let the device drop it.
            None => area.device.discard(u64::from(slot.offset)),
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
        let r = match inner.store_pinned(&pin, slot, page, group, node) {
            Ok(true) => Ok(()),
            Ok(false) => match inner.groups.writeback_enabled(group) {
                Ok(true) => {
                    pin.set_owner(group);
                    area.device.write_page(u64::from(slot.offset), page)
                }
                Ok(false) => Err(Error::Rejected),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if r.is_err() {
            pin.clear();
            // Released when the pin drops (see `invalidate`).
            area.slots.free(slot.offset)?;
        }
        drop(pin);
        r.map(|()| slot)
    }

    /// Reads `slot`'s page back (from zswap, else from the device), frees
    /// the slot, and says which of the two served it: a pager that times
    /// its faults tells a memory-speed swap-in from a disk read by it.
    pub fn swap_in(&self, slot: SwapSlot, page: &mut [u8]) -> Result<SwapSource, Error> {
        if page.len() != PAGE_SIZE {
            return Err(Error::PageSize(page.len()));
        }
        let area = self.inner.area(slot.area)?;
        let pin = area.slots.pin(slot.offset)?;
        let source = if self.inner.load_pinned(&pin, page)? {
            SwapSource::Zswap
        } else {
            area.device.read_page(u64::from(slot.offset), page)?;
            self.inner.note_disk_swapin(&pin);
            area.device.discard(u64::from(slot.offset));
            SwapSource::Device
        };
        // Released when the pin drops (see `invalidate`).
        let r = area.slots.free(slot.offset);
        drop(pin);
        r.map(|()| source)
    }

    /// Reads `slot`'s page from wherever it is and changes nothing: no list
    /// moves, no counters, the entry stays. `Ok(true)` if zswap holds it,
    /// `Ok(false)` if it was read from the device. For the model harness,
    /// which checks every live slot after every step: under the slot's pin
    /// the entry leaves the index only for the read and goes back as it
    /// was.
    #[cfg(feature = "testing")]
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn peek(&self, slot: SwapSlot, page: &mut [u8]) -> Result<bool, Error> {
        if page.len() != PAGE_SIZE {
            return Err(Error::PageSize(page.len()));
        }
        let area = self.inner.area(slot.area)?;
        let pin = area.slots.pin(slot.offset)?;
        match pin.remove() {
            Some(entry) => {
                let r = self
                    .inner
                    .decompress(&entry, self.inner.pool_of(&entry).as_deref(), page);
                let replaced = pin.insert(entry);
                debug_assert!(replaced.is_none(), "the pin excludes other stores");
                r.map(|()| true)
            }
            None => area
                .device
                .read_page(u64::from(slot.offset), page)
                .map(|()| false),
        }
    }

    /// Frees `slot` without reading it (the page was discarded).
    pub fn free(&self, slot: SwapSlot) -> Result<(), Error> {
        self.invalidate(slot)
    }

    /// Makes `compressor` the compressor of new stores (a name parses into
    /// one: `z.set_compressor("zstd:3".parse()?)`). Stored entries keep
    /// their pool; an old pool is dropped, spans and all, when its last
    /// entry goes. Switches are not counted against any limit.
    pub fn set_compressor(&self, compressor: Compressor) -> Result<(), Error> {
        self.inner.add_pool(compressor)
    }

    /// The compressor of new stores.
    pub fn compressor(&self) -> Compressor {
        self.inner.current_pool().compressor
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
        Ok(self.inner.shrink_group(group, false))
    }

    /// Heap bytes of one entry beyond its compressed object: the entry
    /// itself (an LRU item), its share of the slot index (8 bytes per slot
    /// of every area ever swapped on, used or not, spread over the entries
    /// stored), and its pool metadata (handle entry and span share), as
    /// last measured by the pool.
    pub fn metadata_bytes_per_entry(&self) -> f64 {
        let item = crate::lru::item_bytes::<Entry>() as f64;
        let (mut objects, mut meta) = (0usize, 0usize);
        self.inner.pools.for_each(|p| {
            let s = p.pool.stats();
            objects += s.objects;
            meta += s.meta_bytes;
        });
        let entries = self.inner.stats.stored_pages.load(Ordering::Relaxed).max(1) as f64;
        let mut index = 0usize;
        self.inner.areas.for_each(|a| index += a.index_bytes());
        let index = index as f64 / entries;
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

    /// Compacts every pool (zsmalloc's compaction, which the kernel runs
    /// from the pool's own shrinker): in each size class, objects move out
    /// of the emptiest spans into the fullest, and the emptied spans go
    /// back to the system, with the empty spans each class kept cached.
    /// Returns the bytes of span memory given back (the global limit no
    /// longer counts the compacted part; it never counted the cache). For a
    /// program's own memory-pressure signal or a timer; stores, loads and
    /// writeback go on meanwhile (a class's lock is released between
    /// spans, and an object whose slot is in use — being stored, loaded,
    /// invalidated or written back — stays where it is, with its span).
    /// Each entry keeps its object's location, so a pass first notes every
    /// stored slot's object (pinning each slot for a moment) and rewrites
    /// the entry of each object it moves.
    pub fn compact(&self) -> usize {
        self.inner.compact_pools()
    }

    /// Runs one pass of the shrink worker now (round-robin over the groups
    /// until the pool is under the accept threshold or 16 passes fail);
    /// returns the pages written back.
    pub fn shrink_worker_pass(&self) -> usize {
        self.inner.shrink_worker_pass()
    }
}
