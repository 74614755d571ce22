//! Placed objects (crate-internal): objects whose owner keeps their
//! location itself, so that a read goes from the owner's record straight to
//! the span, with no handle table between (zswap's entries, which is what
//! the kernel's `zswap_entry` and zsmalloc's handle are together).
//!
//! A [`Loc`] is (class, span, slot), nothing more: it is not checked, so
//! the owner must free each object once and read only live ones. What the
//! pool guarantees in return:
//! - an object stays where its `Loc` says until the owner is told
//!   otherwise: compaction moves an object only under the owner's claim on
//!   it ([`Owners::claim`]), and records the new place through the owner
//!   ([`Owners::relocate`]) before the claim is released;
//! - compaction drains a span only if the owner claims every object in it,
//!   so a read the owner makes under its claim needs no reader count and
//!   no lock while it decompresses;
//! - under `--cfg loom` every object is a tracked resource, keyed by its
//!   location (moves re-key it), so one freed twice or never freed fails
//!   the model.

use std::num::NonZeroU64;

use super::class::Class;
use super::handle::{SLOT_BITS, SPAN_BITS};
use super::pool::ZsPool;
use crate::sync::LeakTracker;
use crate::Error;

/// Where a placed object is: its class, span and slot, packed so that
/// locations sort by class, then span, then slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Loc(NonZeroU64);

/// Where a location's class (plus one) starts.
const CLASS_SHIFT: u32 = SLOT_BITS + SPAN_BITS;

impl Loc {
    pub(super) fn new(class: usize, span: u32, slot: u16) -> Self {
        debug_assert!(class < 255 && span >> SPAN_BITS == 0 && u32::from(slot) >> SLOT_BITS == 0);
        let raw =
            (class as u64 + 1) << CLASS_SHIFT | u64::from(span) << SLOT_BITS | u64::from(slot);
        Loc(NonZeroU64::new(raw).expect("class + 1 is never zero"))
    }

    pub(super) fn class(self) -> usize {
        (self.0.get() >> CLASS_SHIFT) as usize - 1
    }

    pub(super) fn span(self) -> u32 {
        (self.0.get() >> SLOT_BITS) as u32 & ((1 << SPAN_BITS) - 1)
    }

    pub(super) fn slot(self) -> u16 {
        (self.0.get() & ((1 << SLOT_BITS) - 1)) as u16
    }

    /// The raw value, to keep in an owner's word.
    pub(crate) fn to_raw(self) -> u64 {
        self.0.get()
    }

    /// A location from [`to_raw`](Self::to_raw).
    pub(crate) fn from_raw(raw: u64) -> Option<Self> {
        NonZeroU64::new(raw).map(Loc)
    }
}

/// A placed object as its owner found it, for compaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placed {
    /// Where the owner's record says it is.
    pub(crate) loc: Loc,
    /// Its length in bytes.
    pub(crate) len: u16,
    /// The owner's name for it (zswap: the slot).
    pub(crate) owner: u64,
}

/// The owner of placed objects, as compaction sees it.
pub(crate) trait Owners {
    /// What keeps one object from being read, freed or moved by anyone
    /// else while it is held; released on drop.
    type Claim<'a>
    where
        Self: 'a;
    /// Claims the object `p`, if it is still live at `p.loc` and nobody
    /// else holds it; `None` otherwise (compaction then leaves its span).
    fn claim(&self, p: &Placed) -> Option<Self::Claim<'_>>;
    /// Records, under `claim`, that the object now lives at `to`.
    fn relocate<'a>(&'a self, claim: &Self::Claim<'a>, to: Loc);
}

/// Keeps the loom leak tracker's keys in step with the moves.
struct Tracked<'a, O> {
    owners: &'a O,
    objects: &'a LeakTracker,
}

impl<O: Owners> Owners for Tracked<'_, O> {
    type Claim<'c>
        = (Loc, O::Claim<'c>)
    where
        Self: 'c;

    fn claim(&self, p: &Placed) -> Option<Self::Claim<'_>> {
        Some((p.loc, self.owners.claim(p)?))
    }

    fn relocate<'a>(&'a self, claim: &Self::Claim<'a>, to: Loc) {
        self.objects.untrack(claim.0.to_raw());
        self.objects.track(to.to_raw());
        self.owners.relocate(&claim.1, to);
    }
}

impl Class {
    /// Runs `f` on the placed object's `len` bytes at (`sid`, `slot`), with
    /// the class lock held only to find its span.
    ///
    /// # Safety
    /// The object is live, of `len` bytes, and until this returns nobody
    /// frees, writes or moves it (the owner's claim).
    unsafe fn read_placed<R>(
        &self,
        sid: u32,
        slot: u16,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        let off = usize::from(slot) * self.packing.slot;
        let (ptr, token) = {
            let g = self.inner.lock();
            let span = g.spans[sid as usize]
                .as_ref()
                .expect("a live object's span is live");
            span.mem.prefetch(off, len);
            (span.mem.addr(off, len), span.mem.token())
        };
        // SAFETY: the object's `len` bytes were written when it was stored
        // or moved (span.rs), and the lock's release ordered those writes
        // before this read. Until we return nothing writes them or frees
        // their span: the caller's claim keeps the object from being freed,
        // written or moved, compaction drains only a span all of whose
        // objects it claimed, and allocations and other frees write only
        // free slots.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        token.read_during(|| f(bytes))
    }
}

impl ZsPool {
    /// Stores `data` as a placed object; the caller keeps its location.
    pub(crate) fn insert_placed(&self, data: &[u8]) -> Result<Loc, Error> {
        let c = self.class_of_len(data.len())?;
        let class = &self.classes[c];
        let mut g = class.inner.lock();
        let (sid, slot) = class.place(&mut g, data.len(), Some(data), &self.footprint)?;
        drop(g);
        let loc = Loc::new(c, sid, slot);
        self.objects.track(loc.to_raw());
        Ok(loc)
    }

    /// Runs `f` on the `len` bytes of the placed object at `loc`, without
    /// holding its class lock while `f` runs.
    ///
    /// # Safety
    /// `loc` is a live placed object of `len` bytes of this pool, and until
    /// this returns nobody frees, writes or moves it: the caller holds what
    /// its [`Owners::claim`] would take.
    pub(crate) unsafe fn read_placed<R>(
        &self,
        loc: Loc,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        // SAFETY: forwarded to the caller.
        unsafe { self.classes[loc.class()].read_placed(loc.span(), loc.slot(), len, f) }
    }

    /// Frees the placed object of `len` bytes at `loc`, which the caller
    /// no longer names; its span goes back when it empties.
    pub(crate) fn free_placed(&self, loc: Loc, len: usize) {
        self.objects.untrack(loc.to_raw());
        let class = &self.classes[loc.class()];
        let mut g = class.inner.lock();
        class.unplace(&mut g, loc.span(), loc.slot(), len, &self.footprint);
    }

    /// Compacts the placed objects of every class, where `objects` are all
    /// the live ones the owner found (in any order; each class's lock is
    /// released between spans). Returns the bytes by which the footprint
    /// fell.
    pub(crate) fn compact_placed<O: Owners>(&self, objects: &mut [Placed], owners: &O) -> usize {
        let before = self.footprint();
        objects.sort_unstable_by_key(|p| p.loc);
        let owners = Tracked {
            owners,
            objects: &self.objects,
        };
        let mut rest = &*objects;
        while let Some(first) = rest.first() {
            let c = first.loc.class();
            let n = rest.partition_point(|p| p.loc.class() == c);
            let (mine, others) = rest.split_at(n);
            rest = others;
            let Some(class) = self.classes.get(c) else {
                continue;
            };
            let step = class.compact_placed(c, mine, &owners, &self.footprint);
            self.count_compacted(step);
        }
        before.saturating_sub(self.footprint())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_sort() {
        let a = Loc::new(254, (1 << SPAN_BITS) - 1, (1 << SLOT_BITS) - 1);
        assert_eq!(
            (a.class(), a.span(), a.slot()),
            (254, (1 << SPAN_BITS) - 1, 4095)
        );
        assert_eq!(Loc::from_raw(a.to_raw()), Some(a));
        let b = Loc::new(0, 0, 0);
        assert_eq!((b.class(), b.span(), b.slot()), (0, 0, 0));
        assert!(Loc::new(1, 0, 0) > Loc::new(0, 7, 9));
        assert!(Loc::new(1, 2, 0) > Loc::new(1, 1, 4095));
    }
}
