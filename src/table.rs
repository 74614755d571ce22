//! A grow-only table indexed by small dense integers (group ids), readable
//! without a lock, and on it [`ArcTable`], whose values come and go (pools,
//! swap areas).
//!
//! This is the crate's stand-in for the kernel's xarray-plus-RCU lookup of a
//! memcg's lists: [`SegTable::get`] is two acquire loads, never a lock, so the
//! per-item paths of the LRU and of the group counters take no global lock.
//!
//! What it guarantees: a slot is written at most once (first writer wins, a
//! loser's value is dropped and the winner's returned), and a value, once
//! published, stays at the same address until the table itself is dropped.
//! That is what lets callers hand out `&V` tied to `&self` and keep raw
//! pointers to values (group records and the LRU's lists, reused rather than
//! freed when their group is). Memory grows
//! with the largest index ever used, in segments that double in size, so the
//! overhead is at most twice the slots in use plus one pointer per segment.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use crate::sync::{Arc, ArcSwapOption, AtomicPtr, AtomicUsize, Guard, Mutex, Ordering};

/// Slots in segment 0; segment `s` holds `FIRST << s` slots.
#[cfg(not(loom))]
const FIRST: usize = 32;
#[cfg(not(loom))]
const SEGMENTS: usize = 27;
/// Tiny under loom: every slot is a modelled atomic.
#[cfg(loom)]
const FIRST: usize = 2;
#[cfg(loom)]
const SEGMENTS: usize = 6;

/// The largest index a table can hold, plus one.
pub(crate) const CAPACITY: usize = FIRST * ((1 << SEGMENTS) - 1);

/// A grow-only, set-once table of `V`s indexed by `usize`.
pub(crate) struct SegTable<V> {
    /// Each entry points at the first slot of a segment of `FIRST << s` slots.
    segments: Box<[AtomicPtr<AtomicPtr<V>>]>,
    _owns: PhantomData<Box<V>>,
}

// SAFETY: the table owns boxed `V`s and hands out `&V` to any thread, which is
// exactly what `Box<V>: Send` plus `V: Sync` permit.
unsafe impl<V: Send + Sync> Send for SegTable<V> {}
// SAFETY: as above; all shared mutation goes through atomics.
unsafe impl<V: Send + Sync> Sync for SegTable<V> {}

/// (segment, offset in segment) of an index.
fn locate(index: usize) -> (usize, usize) {
    let j = index + FIRST;
    let seg = (usize::BITS - 1 - j.leading_zeros()) as usize - FIRST.trailing_zeros() as usize;
    (seg, j - (FIRST << seg))
}

impl<V> SegTable<V> {
    /// An empty table.
    pub(crate) fn new() -> Self {
        SegTable {
            segments: (0..SEGMENTS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            _owns: PhantomData,
        }
    }

    fn segment(&self, seg: usize) -> Option<NonNull<AtomicPtr<V>>> {
        // Acquire pairs with the Release in `segment_or_alloc`: the slots'
        // initialization happens-before our use of them.
        NonNull::new(self.segments[seg].load(Ordering::Acquire))
    }

    fn segment_or_alloc(&self, seg: usize) -> NonNull<AtomicPtr<V>> {
        if let Some(s) = self.segment(seg) {
            return s;
        }
        let fresh: Box<[AtomicPtr<V>]> = (0..FIRST << seg)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        let fresh = Box::into_raw(fresh) as *mut AtomicPtr<V>;
        match self.segments[seg].compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` came from `Box::into_raw` just above and is non-null.
            Ok(_) => unsafe { NonNull::new_unchecked(fresh) },
            Err(winner) => {
                // SAFETY: we lost the race, so `fresh` was never published and
                // is still ours; it was a boxed slice of `FIRST << seg` slots.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(fresh, FIRST << seg)) });
                // SAFETY: the winner's pointer is non-null (the CAS saw it).
                unsafe { NonNull::new_unchecked(winner) }
            }
        }
    }

    /// The value at `index`, if one was published.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&V> {
        if index >= CAPACITY {
            return None;
        }
        let (seg, off) = locate(index);
        let base = self.segment(seg)?;
        // SAFETY: `off < FIRST << seg` by construction of `locate`, and the
        // segment lives as long as `self`.
        let slot = unsafe { &*base.as_ptr().add(off) };
        // Acquire pairs with the publishing CAS: `V` is fully built.
        let value = slot.load(Ordering::Acquire);
        // SAFETY: a published value is a leaked `Box<V>` freed only in `Drop`,
        // which cannot run while `&self` is borrowed.
        NonNull::new(value).map(|p| unsafe { &*p.as_ptr() })
    }

    /// The value at `index`, publishing `make()` there if the slot is empty.
    /// Returns `None` when `index` is beyond [`CAPACITY`].
    pub(crate) fn get_or_insert_with(&self, index: usize, make: impl FnOnce() -> V) -> Option<&V> {
        if index >= CAPACITY {
            return None;
        }
        if let Some(v) = self.get(index) {
            return Some(v);
        }
        let (seg, off) = locate(index);
        let base = self.segment_or_alloc(seg);
        // SAFETY: as in `get`.
        let slot = unsafe { &*base.as_ptr().add(off) };
        let fresh = Box::into_raw(Box::new(make()));
        let published = match slot.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh,
            Err(winner) => {
                // SAFETY: `fresh` lost the race and was never shared.
                drop(unsafe { Box::from_raw(fresh) });
                winner
            }
        };
        // SAFETY: a published value lives until the table is dropped.
        Some(unsafe { &*published })
    }
}

impl<V> Drop for SegTable<V> {
    fn drop(&mut self) {
        for (seg, head) in self.segments.iter().enumerate() {
            let base = head.load(Ordering::Acquire);
            if base.is_null() {
                continue;
            }
            for off in 0..FIRST << seg {
                // SAFETY: `off` is inside the segment, which we own.
                let value = unsafe { &*base.add(off) }.load(Ordering::Acquire);
                if !value.is_null() {
                    // SAFETY: published values are leaked boxes, freed only here.
                    drop(unsafe { Box::from_raw(value) });
                }
            }
            // SAFETY: the segment is a leaked boxed slice of `FIRST << seg` slots.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(base, FIRST << seg)) });
        }
    }
}

/// A table of shared values (`Arc<V>`) at small indexes that are handed
/// out and given back at run time: the pools and the swap areas of a
/// `Zswap`. A removed value's index is reused, oldest freed first, and each
/// reuse bumps the index's generation, so an id that carries it (`AreaId`)
/// can tell a stale user from the new owner. The table's memory grows with
/// the most values live at once, never with how many were ever inserted.
///
/// Each cell is an `ArcSwapOption`: a lookup is a lock-free load that keeps
/// the value alive for as long as its guard lives, so a value removed
/// meanwhile is dropped when its last reader lets go, never under one.
/// Inserting and removing serialize on one mutex (they are rare: swapon,
/// swapoff, a compressor switch, an old pool's last entry).
pub(crate) struct ArcTable<V> {
    cells: SegTable<ArcSwapOption<V>>,
    ids: Mutex<Ids>,
    /// Every index ever filled is below this.
    high: AtomicUsize,
}

/// Which indexes are free, and each one's generation.
struct Ids {
    free: VecDeque<usize>,
    /// Generation of each index used so far (bumped on each removal).
    gens: Vec<u32>,
}

impl<V> ArcTable<V> {
    pub(crate) fn new() -> Self {
        ArcTable {
            cells: SegTable::new(),
            ids: Mutex::new(Ids {
                free: VecDeque::new(),
                gens: Vec::new(),
            }),
            high: AtomicUsize::new(0),
        }
    }

    /// Puts `make(index, generation)` at a free index (the oldest freed, or
    /// a new one); returns the index and the value. `full()` when `limit`
    /// values are live.
    pub(crate) fn insert<E>(
        &self,
        limit: usize,
        full: impl FnOnce() -> E,
        make: impl FnOnce(usize, u32) -> Result<Arc<V>, E>,
    ) -> Result<(usize, Arc<V>), E> {
        let mut ids = self.ids.lock();
        let index = match ids.free.front() {
            Some(&i) => i,
            None if ids.gens.len() < limit.min(CAPACITY) => ids.gens.len(),
            None => return Err(full()),
        };
        let gen = ids.gens.get(index).copied().unwrap_or(0);
        let value = make(index, gen)?;
        if index == ids.gens.len() {
            ids.gens.push(0);
        } else {
            ids.free.pop_front();
        }
        let cell = self
            .cells
            .get_or_insert_with(index, ArcSwapOption::empty)
            .expect("index below CAPACITY");
        let old = cell.swap(Some(value.clone()));
        debug_assert!(old.is_none(), "a free index held a value");
        // Release pairs with the Acquire in `for_each`: a reader that sees
        // the new bound finds the cell.
        self.high.fetch_max(index + 1, Ordering::Release);
        Ok((index, value))
    }

    /// The value at `index` now, kept alive while the guard lives.
    #[inline]
    pub(crate) fn load(&self, index: usize) -> Option<Guard<Option<Arc<V>>>> {
        Some(self.cells.get(index)?.load())
    }

    /// Empties `index` and frees it for reuse under the next generation;
    /// returns the value it held (dropped by the caller, or by its last
    /// reader).
    pub(crate) fn remove(&self, index: usize) -> Option<Arc<V>> {
        let mut ids = self.ids.lock();
        let old = self.cells.get(index)?.swap(None)?;
        ids.gens[index] = ids.gens[index].wrapping_add(1);
        ids.free.push_back(index);
        Some(old)
    }

    /// Calls `f` on every value now in the table, in index order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<V>)) {
        let high = self.high.load(Ordering::Acquire);
        for i in 0..high {
            if let Some(cell) = self.cells.get(i) {
                if let Some(v) = &*cell.load() {
                    f(v);
                }
            }
        }
    }

    /// Every index that has held a value is below this (read without a
    /// lock).
    pub(crate) fn bound(&self) -> usize {
        self.high.load(Ordering::Acquire)
    }

    /// Values live now.
    pub(crate) fn live(&self) -> usize {
        let ids = self.ids.lock();
        ids.gens.len() - ids.free.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locate_covers_every_index_once() {
        let mut expect = (0usize, 0usize);
        for i in 0..10_000 {
            assert_eq!(locate(i), expect, "index {i}");
            expect.1 += 1;
            if expect.1 == FIRST << expect.0 {
                expect = (expect.0 + 1, 0);
            }
        }
    }

    #[test]
    fn set_once_and_bounds() {
        let t: SegTable<String> = SegTable::new();
        assert!(t.get(5).is_none());
        assert_eq!(t.get_or_insert_with(5, || "a".into()).unwrap(), "a");
        assert_eq!(t.get_or_insert_with(5, || "b".into()).unwrap(), "a");
        assert_eq!(t.get_or_insert_with(5000, || "c".into()).unwrap(), "c");
        assert!(t.get(CAPACITY).is_none());
        assert!(t.get_or_insert_with(CAPACITY, || "d".into()).is_none());
        assert_eq!(t.get(5000).unwrap(), "c");
    }
}
