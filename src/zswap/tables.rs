//! The pools and the swap areas of a [`Zswap`](super::Zswap): how each is
//! found, and how each is given back.
//!
//! **Pools.** The current pool is published through an `ArcSwap`, as the
//! kernel publishes `zswap_pool` under RCU. Every pool counts references
//! (`PoolSlot::refs`, the kernel's percpu_ref on `zswap_pool`): one while it
//! is current, one per entry stored in it, and one per store compressing
//! into it. A store takes its reference with "increment unless zero"
//! (`zswap_pool_tryget`), so a pool whose count reached zero is never
//! revived; the store then finds the newer current pool. Whoever drops the
//! count to zero takes the pool out of the table, and the pool (its spans
//! with it) is dropped once the last guard on it goes. The table's index is
//! reused by a later switch, so switches are not capped: only pools live at
//! once are (65,536, as an entry names its pool in 16 bits).
//!
//! **Areas.** `swapoff` closes the area (refused while any slot is
//! allocated), takes it out of the table, and the area — its slot index,
//! its slot states and its device — is dropped once the last operation that
//! looked it up lets go. Its index is reused by a later `swapon` under the
//! next generation of [`AreaId`], so a stale slot is refused.
//!
//! A lookup is a lock-free `ArcSwapOption` load that keeps the pool or area
//! alive while its guard lives, so nothing is freed under a reader.

use std::ops::Deref;

use super::entry::Area;
use super::{Inner, PoolSlot};
use crate::sync::{Arc, Guard, Ordering};
use crate::table::ArcTable;
use crate::{AreaId, Compressor, Error, PoolConfig, SwapSlot, ZsPool};

/// Pools live at once: an entry names its pool in 16 bits.
const MAX_POOLS: usize = 1 << 16;

/// Makes `compressor`'s pool at a free index of `pools`, with the one
/// reference of the current pool (the caller publishes it as current).
pub(super) fn insert_pool(
    pools: &ArcTable<PoolSlot>,
    compressor: Compressor,
) -> Result<Arc<PoolSlot>, Error> {
    let (_, pool) = pools.insert(
        MAX_POOLS,
        || Error::BadConfig("65,536 pools are live (each still holds entries)".into()),
        |index, _| {
            Ok(Arc::new(PoolSlot {
                compressor,
                pool: ZsPool::new(PoolConfig::default())?,
                refs: crate::sync::AtomicUsize::new(1),
                index: index as u16,
            }))
        },
    )?;
    Ok(pool)
}

impl PoolSlot {
    /// Takes a reference unless the count is already zero (the pool is
    /// being given back): `zswap_pool_tryget`.
    fn tryget(&self) -> bool {
        self.refs
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |r| {
                (r != 0).then_some(r + 1)
            })
            .is_ok()
    }
}

/// A value of one of the tables (a pool, an area), alive while this lives:
/// the guard of a cell that was full when it was loaded.
pub(super) struct Held<T>(Guard<Option<Arc<T>>>);

impl<T> Held<T> {
    /// The guard, if its cell held a value.
    fn of(guard: Guard<Option<Arc<T>>>) -> Option<Self> {
        guard.is_some().then_some(Held(guard))
    }
}

impl<T> Deref for Held<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.0
            .as_deref()
            .expect("a Held is made only of a full cell")
    }
}

/// A pool, alive while this lives.
pub(super) type PoolRef = Held<PoolSlot>;

/// An area, alive while this lives (its slots, index and device).
pub(super) type AreaRef = Held<Area>;

/// The current pool with a reference taken for the entry about to be
/// stored in it; the store either hands the reference to the entry or
/// gives it back with [`Inner::put_pool`].
pub(super) struct CurrentPool(Guard<Arc<PoolSlot>>);

impl Deref for CurrentPool {
    type Target = PoolSlot;
    fn deref(&self) -> &PoolSlot {
        &self.0
    }
}

impl Inner {
    /// Makes `compressor`'s new pool the current one; the old one is given
    /// back once its last entry goes.
    pub(super) fn add_pool(&self, compressor: Compressor) -> Result<(), Error> {
        let pool = insert_pool(&self.pools, compressor)?;
        let old = self.current.swap(pool);
        // The old pool's "current" reference.
        self.put_pool(&old);
        Ok(())
    }

    /// The current pool, with a reference taken (`zswap_pool_current_get`).
    pub(super) fn current_pool_get(&self) -> CurrentPool {
        loop {
            let cur = self.current.load();
            if cur.tryget() {
                return CurrentPool(cur);
            }
            // Its count reached zero: it was replaced (the swap comes
            // before the put), so the next load finds the newer pool.
        }
    }

    /// The current pool, for reading its settings.
    pub(super) fn current_pool(&self) -> CurrentPool {
        CurrentPool(self.current.load())
    }

    /// The pool at table index `index`, which a live entry names (its
    /// reference keeps the pool in the table).
    pub(super) fn pool(&self, index: u16) -> PoolRef {
        self.pools
            .load(usize::from(index))
            .and_then(Held::of)
            .expect("entries name pools in the table")
    }

    /// Drops one reference to `pool`; the last one takes the pool out of
    /// the table, and it is dropped, spans and all, with its last guard.
    pub(super) fn put_pool(&self, pool: &PoolSlot) {
        // AcqRel: every use of the pool under a reference happens before
        // its removal.
        if pool.refs.fetch_sub(1, Ordering::AcqRel) == 1 {
            let removed = self.pools.remove(usize::from(pool.index));
            debug_assert!(removed.is_some(), "a pool is removed once");
        }
    }

    /// Bytes of span memory holding objects, over every live pool
    /// (`pool_total_size`).
    pub(super) fn pool_total_size(&self) -> u64 {
        let mut total = 0;
        self.pools.for_each(|p| total += p.pool.footprint() as u64);
        total
    }

    /// The live area `id` (of its generation, and not swapped off).
    pub(super) fn area(&self, id: AreaId) -> Result<AreaRef, Error> {
        match self.area_at(id.index()) {
            Some(a) if a.slots.id() == id && !a.slots.is_closed() => Ok(a),
            _ => Err(Error::UnknownArea(id)),
        }
    }

    /// The area now at index `index`, whatever its generation (writeback of
    /// an entry, which stores only the index: the slot's pin and re-check
    /// refuse a stranger's slot).
    pub(super) fn area_at(&self, index: usize) -> Option<AreaRef> {
        self.areas.load(index).and_then(Held::of)
    }

    /// A free slot of some area (a closed area's `alloc` returns `None`).
    pub(super) fn alloc_slot(&self) -> Result<(AreaRef, SwapSlot), Error> {
        (0..self.areas.bound())
            .find_map(|i| {
                let area = self.area_at(i)?;
                let slot = area.slots.alloc()?;
                Some((area, slot))
            })
            .ok_or(Error::SwapFull)
    }

    /// Adds an area for `device` at a free index, under the index's next
    /// generation.
    pub(super) fn add_area(&self, device: Box<dyn crate::SwapDevice>) -> Result<AreaId, Error> {
        let pages = device.pages();
        let (_, area) = self.areas.insert(
            AreaId::MAX_AREAS,
            || Error::BadConfig(format!("{} areas are live", AreaId::MAX_AREAS)),
            |index, gen| {
                let id = AreaId::with_generation(index as u8, gen);
                let slots = crate::SwapArea::with_payload(id, pages)?;
                Ok(Arc::new(Area::new(slots, device)))
            },
        )?;
        Ok(area.slots.id())
    }

    /// Closes area `id` if no slot of it is allocated, and takes it out of
    /// the table: it is dropped (index, slot states, device) when the last
    /// operation that looked it up lets go.
    pub(super) fn remove_area(&self, id: AreaId) -> Result<(), Error> {
        let area = self.area(id)?;
        if !area.slots.close() {
            // Slots in use, or a racing swapoff closed it first.
            return Err(if area.slots.is_closed() {
                Error::UnknownArea(id)
            } else {
                Error::AreaBusy(id)
            });
        }
        debug_assert_eq!(area.entries(), 0);
        let removed = self.areas.remove(id.index());
        debug_assert!(removed.is_some(), "an area is removed once");
        Ok(())
    }
}
