//! The store, load and free paths of [`Zswap`](super::Zswap) (`zswap_store`,
//! `zswap_load`, `zswap_entry_free`), on `Inner`: everything that runs with
//! a slot's pin held, plus the pools and areas it reaches.

use std::cell::RefCell;

use super::entry::{Data, Entry, Pin, SlotIndex};
use super::stats::{dec, inc};
use super::tables::PoolRef;
use super::{Inner, PoolSlot, ShrinkResult};
use crate::sync::Ordering;
use crate::{Error, GroupEvent, GroupId, Item, NodeId, SwapSlot, PAGE_SIZE};

crate::sync::thread_scratch! {
    static COMPRESS_BUF: RefCell<Vec<u8>> = RefCell::new(Vec::new());
}

/// The word a same-filled page repeats (every 8-byte word equal).
pub(crate) fn same_filled(page: &[u8]) -> Option<u64> {
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8-byte chunk"));
    let first = word(&page[..8]);
    page.chunks_exact(8)
        .all(|c| word(c) == first)
        .then_some(first)
}

impl Inner {
    pub(super) fn check_store(
        &self,
        page: &[u8],
        group: GroupId,
        node: NodeId,
    ) -> Result<(), Error> {
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

    pub(super) fn store_pinned(
        &self,
        pin: &Pin<'_>,
        slot: SwapSlot,
        page: &[u8],
        group: GroupId,
        node: NodeId,
    ) -> Result<bool, Error> {
        // A duplicate goes first: if this store fails, no stale entry may
        // stay behind to be written back over the newer page later.
        if let Some(old) = pin.remove() {
            inc(&self.stats.duplicate_entry);
            self.free_entry(&old);
        }
        if !self.groups.may_zswap(group)? {
            // Reclaim from this group's own lists only; nothing freed:
            // reject. Something freed: store without checking the limit
            // again, as the kernel's `zswap_store` does after a successful
            // `shrink_memcg` (the new, hotter page is let in, and the group
            // may end a little over its `zswap_max`: IMPLEMENTATION.md).
            if !matches!(self.shrink_group(group, true), ShrinkResult::Wrote(_)) {
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
        let (len, incompressible) = (data.charged_len(), data.incompressible());
        let charged = self
            .groups
            .charge(group, len, incompressible, Some(GroupEvent::Zswpout));
        let charged = match charged {
            Ok(charged) => charged,
            Err(e) => {
                // The group was taken offline and freed while we stored:
                // give back the object and its pool reference.
                // (Not in the index yet, so no compaction has moved it.)
                if let Data::Stored { pool, loc, len } = data {
                    let p = self.pool(pool);
                    p.pool.free_placed(loc, usize::from(len));
                    self.put_pool(&p);
                }
                return Err(e);
            }
        };
        let entry = Item::new(Entry::new(slot, data, charged, node));
        inc(&self.stats.stored_pages);
        // A stored entry's pool reference was taken by
        // `compress_and_insert` and is now the entry's.
        match data {
            Data::Same(_) => inc(&self.stats.same_filled_pages),
            Data::Stored { .. } if incompressible => inc(&self.stats.stored_incompressible_pages),
            Data::Stored { .. } => {}
        }
        let replaced = pin.insert(entry.clone());
        debug_assert!(replaced.is_none(), "the slot's pin excludes other stores");
        if matches!(data, Data::Stored { .. }) {
            // Last: the entry is invisible to writeback until it is here.
            self.lru.add(&entry, node, self.list_group(charged))?;
        }
        Ok(true)
    }

    /// Compresses `page` into the current pool; `None` when rejected. A
    /// stored object's pool keeps the reference taken here, which the
    /// entry then holds.
    fn compress_and_insert(&self, page: &[u8], group: GroupId) -> Result<Option<Data>, Error> {
        let p = self.current_pool_get();
        let r = self.compress_into(&p, page, group);
        if !matches!(r, Ok(Some(_))) {
            self.put_pool(&p);
        }
        r
    }

    fn compress_into(
        &self,
        p: &super::PoolSlot,
        page: &[u8],
        group: GroupId,
    ) -> Result<Option<Data>, Error> {
        COMPRESS_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.resize(PAGE_SIZE, 0);
            // The kernel's test: a page is incompressible if dlen >= PAGE_SIZE;
            // it is then kept as-is, PAGE_SIZE bytes, which is how `Data`
            // tells it apart.
            let bytes = match p.compressor.compress(page, &mut buf[..PAGE_SIZE - 1]) {
                Ok(n) => &buf[..n],
                Err(Error::CompressPoor) => {
                    if !self.groups.writeback_enabled(group)? {
                        inc(&self.stats.reject_compress_poor);
                        return Ok(None);
                    }
                    page
                }
                Err(_) => {
                    inc(&self.stats.reject_compress_fail);
                    return Ok(None);
                }
            };
            match p.pool.insert_placed(bytes) {
                Ok(loc) => Ok(Some(Data::Stored {
                    pool: p.index,
                    loc,
                    len: bytes.len() as u16,
                })),
                Err(_) => {
                    inc(&self.stats.reject_alloc_fail);
                    Ok(None)
                }
            }
        })
    }

    /// The pool a stored entry's object lives in (`None` for a same-filled
    /// page), looked up once for everything a load or writeback does with
    /// the entry.
    pub(super) fn pool_of(&self, entry: &Entry) -> Option<PoolRef> {
        match entry.data() {
            Data::Stored { pool, .. } => Some(self.pool(pool)),
            Data::Same(_) => None,
        }
    }

    /// Fills `page` from `entry`, which the caller holds the slot's pin of
    /// (load, writeback, peek); `pool` is [`pool_of`](Self::pool_of) the
    /// entry. Decompression runs without the size class's lock, so loads of
    /// one class go on side by side.
    pub(super) fn decompress(
        &self,
        entry: &Entry,
        pool: Option<&PoolSlot>,
        page: &mut [u8],
    ) -> Result<(), Error> {
        let r = match entry.data() {
            Data::Same(word) => {
                for c in page.chunks_exact_mut(8) {
                    c.copy_from_slice(&word.to_ne_bytes());
                }
                Ok(())
            }
            data @ Data::Stored { loc, len, .. } => {
                let p = pool.expect("a stored entry's pool");
                let f = |src: &[u8]| {
                    if data.incompressible() {
                        page.copy_from_slice(src);
                        Ok(())
                    } else {
                        p.compressor.decompress(src, page)
                    }
                };
                // SAFETY: `loc` is the entry's object, of `len` bytes, in
                // `p`. It is freed only by whoever takes the entry out of
                // the slot index, and moved only by a compaction that
                // claims the slot (compact.rs); both need the slot's pin,
                // which our caller holds and releases only after this
                // returns. Zswap never writes an object after storing it.
                unsafe { p.pool.read_placed(loc, usize::from(len), f) }
            }
        };
        if r.is_err() {
            inc(&self.stats.decompress_fail);
        }
        r
    }

    pub(super) fn load_pinned(&self, pin: &Pin<'_>, page: &mut [u8]) -> Result<bool, Error> {
        let Some(entry) = pin.remove() else {
            return Ok(false);
        };
        let pool = self.pool_of(&entry);
        let r = self.decompress(&entry, pool.as_deref(), page);
        // Counted by the uncharge's walk, before the entry's group
        // reference goes (the last one frees an offline group).
        let event = r.is_ok().then_some(GroupEvent::Zswpin);
        self.free_entry_in(&entry, pool, event);
        r.map(|()| true)
    }

    /// Releases everything an entry holds. Called exactly once, by whoever
    /// took the entry out of the index.
    pub(super) fn free_entry(&self, entry: &Item<Entry>) {
        self.free_entry_in(entry, self.pool_of(entry), None);
    }

    /// [`free_entry`](Self::free_entry) with the entry's pool already
    /// looked up ([`pool_of`](Self::pool_of)), counting `event` for the
    /// entry's group (a load's `zswpin`, a writeback's `zswpwb`) as the
    /// charge goes.
    pub(super) fn free_entry_in(
        &self,
        entry: &Item<Entry>,
        pool: Option<PoolRef>,
        event: Option<GroupEvent>,
    ) {
        // Dead first, then unlink: a shrinker that puts the entry back
        // after this `del` sees `dead` and unlinks it itself (reclaim.rs).
        // An AcqRel read-modify-write, paired with the shrinker's: see
        // `putback_busy` for why plain SeqCst stores and loads would not do.
        entry.mark_dead();
        // Isolated means a shrinker holds it and will find the index changed.
        let _ = self.lru.del(entry);
        let data = entry.data();
        let _ = self.groups.uncharge(
            self.group_of(entry),
            data.charged_len(),
            data.incompressible(),
            event,
        );
        dec(&self.stats.stored_pages);
        match data {
            Data::Same(_) => dec(&self.stats.same_filled_pages),
            Data::Stored {
                pool: index,
                loc,
                len,
            } => {
                if data.incompressible() {
                    dec(&self.stats.stored_incompressible_pages);
                }
                let p = pool.unwrap_or_else(|| self.pool(index));
                // Each entry is freed once, by its remover from the index;
                // loom models check it (the pool tracks each object).
                p.pool.free_placed(loc, usize::from(len));
                // The entry's reference: an old pool's last entry gives
                // the whole pool back.
                self.put_pool(&p);
            }
        }
    }
}
