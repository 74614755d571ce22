//! [`ItemCell`]: one atomic word that owns at most one [`Item`] reference.
//!
//! zswap's slot index is one cell per swap slot (as the kernel now keeps a
//! per-slot swap table instead of a tree per area): finding a slot's entry is
//! one load at a fixed address, with no lock and no hashing. A non-null cell
//! owns one reference to its node, leaked by [`Item::into_raw`] when stored
//! and taken back by whoever swaps it out, so an entry moves in and out of
//! the index in one atomic step and exactly one caller receives it. The
//! orderings are `Arc`'s hand-off: a store releases the value it publishes,
//! a take acquires it.
//!
//! A cell may instead hold a *tag*: a word with its low bit set (no node
//! address has it: nodes are 8-aligned), which owns nothing. zswap keeps in
//! it the group that owns a slot whose page is on the device (the kernel's
//! swap_cgroup record), in the 8 bytes the entry pointer used, so the
//! record costs no memory. [`take`](ItemCell::take) leaves a tag alone;
//! [`replace`](ItemCell::replace) drops it.

use std::marker::PhantomData;
use std::ptr;

use super::item::{Item, Node};
use crate::sync::{AtomicPtr, Ordering};

/// The bit that marks a tag.
const TAG: usize = 1;

/// The largest payload a tag holds.
pub(crate) const TAG_MAX: usize = usize::MAX >> 1;

/// An atomic `Option<Item<T>>`, or a tag.
pub(crate) struct ItemCell<T> {
    ptr: AtomicPtr<Node<T>>,
    /// The cell owns the reference its pointer stands for.
    _owns: PhantomData<Item<T>>,
}

impl<T> ItemCell<T> {
    /// An empty cell.
    pub(crate) fn new() -> Self {
        ItemCell {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _owns: PhantomData,
        }
    }

    /// Puts `item` in the cell (or empties it), dropping a tag; returns
    /// the item it held.
    pub(crate) fn replace(&self, item: Option<Item<T>>) -> Option<Item<T>> {
        let new = item.map_or(ptr::null_mut(), |i| i.into_raw().cast_mut());
        Self::owned(self.ptr.swap(new, Ordering::AcqRel))
    }

    /// The item `old`, swapped out of the cell, stood for (none for null or
    /// a tag).
    fn owned(old: *mut Node<T>) -> Option<Item<T>> {
        if old.is_null() || old.addr() & TAG != 0 {
            return None;
        }
        // SAFETY: an untagged non-null pointer in the cell is a reference
        // leaked by `into_raw` when it was stored, and the swap or exchange
        // that took it out gave it to this caller alone, so it is taken
        // back exactly once.
        Some(unsafe { Item::from_raw(old) })
    }

    /// Empties the cell if its word is an item (`tag` false) or a tag
    /// (`tag` true); returns the word it took.
    fn take_word(&self, tag: bool) -> Option<*mut Node<T>> {
        let mut cur = self.ptr.load(Ordering::Acquire);
        loop {
            if cur.is_null() || (cur.addr() & TAG != 0) != tag {
                return None;
            }
            match self.ptr.compare_exchange_weak(
                cur,
                ptr::null_mut(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(old) => return Some(old),
                Err(now) => cur = now,
            }
        }
    }

    /// Takes the cell's item out, leaving the cell empty; a tag stays.
    pub(crate) fn take(&self) -> Option<Item<T>> {
        self.take_word(false).and_then(Self::owned)
    }

    /// Puts the tag `value` (at most [`TAG_MAX`]) in the cell; returns the
    /// item it replaced, if any.
    pub(crate) fn set_tag(&self, value: usize) -> Option<Item<T>> {
        debug_assert!(value <= TAG_MAX);
        let word = ptr::without_provenance_mut((value << 1) | TAG);
        Self::owned(self.ptr.swap(word, Ordering::AcqRel))
    }

    /// The cell's tag, if it holds one (a snapshot).
    #[cfg(test)]
    pub(crate) fn tag(&self) -> Option<usize> {
        let w = self.ptr.load(Ordering::Acquire).addr();
        (w & TAG != 0).then_some(w >> 1)
    }

    /// Takes the cell's tag out, leaving it empty; an item stays.
    pub(crate) fn take_tag(&self) -> Option<usize> {
        self.take_word(true).map(|w| w.addr() >> 1)
    }

    /// Whether the cell holds exactly `item` (its address; never
    /// dereferenced).
    pub(crate) fn holds(&self, item: &Item<T>) -> bool {
        ptr::eq(self.ptr.load(Ordering::Acquire), item.as_ptr())
    }

    /// A new handle on the cell's item, if it holds one.
    ///
    /// # Safety
    /// Nobody may take the item out of the cell and drop it while this
    /// runs (zswap: the caller holds the slot's pin, which every change to
    /// the cell needs).
    pub(crate) unsafe fn get(&self) -> Option<Item<T>> {
        let w = self.ptr.load(Ordering::Acquire);
        if w.is_null() || w.addr() & TAG != 0 {
            return None;
        }
        // SAFETY: an untagged non-null word is a reference the cell owns,
        // and the caller keeps anyone from taking it out (and dropping it)
        // meanwhile, so the node is live.
        Some(unsafe { Item::clone_raw(w) })
    }

    /// Whether the cell holds an item (a snapshot; a tag is not one).
    pub(crate) fn has_item(&self) -> bool {
        let w = self.ptr.load(Ordering::Acquire);
        !w.is_null() && w.addr() & TAG == 0
    }
}

impl<T> Default for ItemCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for ItemCell<T> {
    fn drop(&mut self) {
        drop(self.replace(None));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_cell_hands_its_item_out_once() {
        let cell = ItemCell::new();
        let a = Item::new(1u32);
        assert!(!cell.has_item() && cell.replace(Some(a.clone())).is_none());
        assert!(cell.holds(&a) && !cell.holds(&Item::new(1)));
        let b = Item::new(2u32);
        let old = cell.replace(Some(b.clone())).expect("held a");
        assert!(Item::ptr_eq(&old, &a) && cell.holds(&b));
        assert!(Item::ptr_eq(&cell.take().expect("held b"), &b));
        assert!(cell.take().is_none() && !cell.has_item());
    }

    /// A tag owns nothing: `take` leaves it, `replace` drops it, and an
    /// item put over it is taken back whole.
    #[test]
    fn a_tag_is_kept_apart_from_items() {
        let cell = ItemCell::new();
        assert!(cell.set_tag(TAG_MAX).is_none());
        assert_eq!(cell.tag(), Some(TAG_MAX));
        assert!(!cell.has_item() && cell.take().is_none());
        assert_eq!(cell.tag(), Some(TAG_MAX), "take leaves a tag");
        assert_eq!(cell.take_tag(), Some(TAG_MAX));
        assert_eq!((cell.tag(), cell.take_tag()), (None, None));
        cell.set_tag(0);
        let a = Item::new(5u32);
        assert!(
            cell.replace(Some(a.clone())).is_none(),
            "the tag is dropped"
        );
        assert_eq!(cell.take_tag(), None, "an item stays");
        let back = cell.set_tag(7).expect("the item it replaced");
        assert!(Item::ptr_eq(&back, &a));
        assert!(cell.replace(None).is_none() && cell.tag().is_none());
    }

    #[test]
    fn dropping_a_cell_releases_its_reference() {
        use crate::sync::{Arc, AtomicUsize};
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let a = Item::new(Counted(drops.clone()));
        let cell = ItemCell::new();
        cell.replace(Some(a.clone()));
        drop(cell);
        assert_eq!(drops.load(Ordering::Relaxed), 0, "`a` still holds it");
        drop(a);
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "freed once, when the last reference went"
        );
    }
}
