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

use std::marker::PhantomData;
use std::ptr;

use super::item::{Item, Node};
use crate::sync::{AtomicPtr, Ordering};

/// An atomic `Option<Item<T>>`.
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

    /// Puts `item` in the cell (or empties it); returns what it held.
    pub(crate) fn replace(&self, item: Option<Item<T>>) -> Option<Item<T>> {
        let new = item.map_or(ptr::null_mut(), |i| i.into_raw().cast_mut());
        let old = self.ptr.swap(new, Ordering::AcqRel);
        if old.is_null() {
            return None;
        }
        // SAFETY: a non-null pointer in the cell is a reference leaked by
        // `into_raw` when it was stored, and the swap gave it to this caller
        // alone, so it is taken back exactly once.
        Some(unsafe { Item::from_raw(old) })
    }

    /// Empties the cell; returns what it held.
    pub(crate) fn take(&self) -> Option<Item<T>> {
        self.replace(None)
    }

    /// Whether the cell holds exactly `item` (its address; never
    /// dereferenced).
    pub(crate) fn holds(&self, item: &Item<T>) -> bool {
        ptr::eq(self.ptr.load(Ordering::Acquire), item.as_ptr())
    }

    /// Whether the cell holds anything (a snapshot).
    pub(crate) fn is_empty(&self) -> bool {
        self.ptr.load(Ordering::Acquire).is_null()
    }
}

impl<T> Default for ItemCell<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for ItemCell<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_cell_hands_its_item_out_once() {
        let cell = ItemCell::new();
        let a = Item::new(1u32);
        assert!(cell.is_empty() && cell.replace(Some(a.clone())).is_none());
        assert!(cell.holds(&a) && !cell.holds(&Item::new(1)));
        let b = Item::new(2u32);
        let old = cell.replace(Some(b.clone())).expect("held a");
        assert!(Item::ptr_eq(&old, &a) && cell.holds(&b));
        assert!(Item::ptr_eq(&cell.take().expect("held b"), &b));
        assert!(cell.take().is_none() && cell.is_empty());
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
