//! A swap area: N slots, a slot allocator, and a swap-cache pin per slot.
//!
//! This is the part of the kernel's swap layer that zswap's correctness
//! leans on. Writeback must "claim the slot in the swap cache" before it
//! looks at the slot's entry; a load in flight holds the same claim, so
//! writeback skips (`skip_if_exists`). And a slot freed while claimed is not
//! released until the claim goes, so a slot can never be handed to a new
//! owner while a stale write to it is in flight (CVE-2023-53178, the
//! recycled-slot race).
//!
//! What it guarantees, per slot, with one atomic state byte:
//! - `alloc` hands out only free slots; `free` of a slot not allocated (or
//!   already freed) is [`Error::SlotNotAllocated`], never a corruption.
//! - [`SwapArea::try_pin`] succeeds for at most one holder at a time, and
//!   only on an allocated slot that is not being freed.
//! - A slot freed while pinned becomes allocatable exactly when its
//!   [`SlotPin`] drops, and not before.
//!
//! The state bytes (and a per-slot payload, zswap's index cell) live in
//! clusters of 512 slots that exist only while one of their slots is in use
//! (`cluster.rs`): an area of a 64 GiB device costs 320 KiB until pages are
//! stored. Allocation takes a per-area lock (as the kernel's `si->lock`);
//! pins and state checks take none.
//!
//! A [`pin`](SwapArea::pin) that finds the slot held parks rather than
//! spins, as a swap-in sleeps on a locked folio: it sets the slot's
//! `WAITERS` bit while the slot is still pinned and sleeps on one of a few
//! hashed wait queues (the kernel's folio wait table); the holder's unpin
//! sees the bit and wakes that queue. The bit is set under the queue's lock
//! and the waker takes the same lock, so no wake-up is lost.

use std::fmt;

use super::cluster::{split, Alloc, ClusterGuard, ClusterMap};
use super::id::{AreaId, SwapSlot};
use crate::sync::{AtomicBool, AtomicU8, Condvar, LeakTracker, Mutex, Ordering};
use crate::Error;

const ALLOCATED: u8 = 1;
const PINNED: u8 = 2;
/// Freed while pinned: released when the pin goes.
const DYING: u8 = 4;
/// Pinned, and someone sleeps on the slot's wait queue: the unpin wakes it.
const WAITERS: u8 = 8;

/// Wait queues per area (hashed by offset; a power of two).
#[cfg(not(loom))]
const WAIT_QUEUES: usize = 16;
#[cfg(loom)]
const WAIT_QUEUES: usize = 1;

/// One wait queue: the lock under which a waiter sets `WAITERS` and the
/// condition it sleeps on.
#[derive(Debug)]
struct WaitQueue {
    lock: Mutex<()>,
    wake: Condvar,
}

/// The slots of one area and their pins. `T` is a value kept per slot
/// while the slot's cluster exists, reached through the slot's pin (zswap
/// keeps its index there); `()` for an area used on its own.
///
/// ```
/// use zswap::{AreaId, SwapArea};
/// let area: SwapArea = SwapArea::new(AreaId::new(0), 4).unwrap();
/// let slot = area.alloc().unwrap();
/// let pin = area.try_pin(slot.offset).unwrap();
/// assert!(area.try_pin(slot.offset).is_none()); // one holder at a time
/// area.free(slot.offset).unwrap();              // freed while pinned...
/// assert_eq!(area.free_slots(), 3);             // ...but not reusable yet
/// drop(pin);
/// assert_eq!(area.free_slots(), 4);
/// ```
pub struct SwapArea<T = ()> {
    id: AreaId,
    slots: u32,
    clusters: ClusterMap<T>,
    alloc: Mutex<Alloc>,
    /// Set (under the `alloc` lock) by [`close`](SwapArea::close): no slot is
    /// allocated or claimed again.
    closed: AtomicBool,
    /// Where `pin` sleeps while a slot is held.
    waits: Box<[WaitQueue]>,
    /// Live pins, under loom: two at once on one slot, or one never
    /// dropped, fails the model.
    pins: LeakTracker,
}

impl<T> Drop for SwapArea<T> {
    fn drop(&mut self) {
        // A pin borrows its area: one still live now was forgotten.
        self.pins.all_leaked();
    }
}

impl<T> fmt::Debug for SwapArea<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwapArea")
            .field("id", &self.id)
            .field("slots", &self.slots)
            .field("free", &self.free_slots())
            .finish()
    }
}

/// A claim on one slot (the swap cache's folio lock, in effect). Unpins on
/// drop, releasing the slot if it was freed meanwhile.
///
/// ```
/// use zswap::{AreaId, SwapArea};
/// let area = SwapArea::new(AreaId::new(0), 8)?;
/// let slot = area.alloc().unwrap();
/// let pin = area.pin(slot.offset)?; // waits for any other holder
/// assert!(area.try_pin(slot.offset).is_none()); // held: writeback would skip it
/// area.free(slot.offset)?; // freed while pinned...
/// assert_eq!(area.free_slots(), 7); // ...released only when the pin goes
/// drop(pin);
/// assert_eq!(area.free_slots(), 8);
/// # Ok::<(), zswap::Error>(())
/// ```
#[must_use = "the pin is released when dropped"]
pub struct SlotPin<'a, T = ()> {
    area: &'a SwapArea<T>,
    offset: u32,
    /// The slot's cluster, which a pinned slot keeps in existence.
    cluster: ClusterGuard<T>,
}

impl<T> SlotPin<'_, T> {
    /// The pinned slot.
    pub fn slot(&self) -> SwapSlot {
        SwapSlot {
            area: self.area.id,
            offset: self.offset,
        }
    }

    /// The slot's value (zswap: its index cell), which only the pin's
    /// holder may change.
    pub(crate) fn payload(&self) -> &T {
        let cluster = self.cluster.as_deref().expect("a pinned slot's cluster");
        &cluster.payload[split(self.offset).1]
    }

    fn state(&self) -> &AtomicU8 {
        let cluster = self.cluster.as_deref().expect("a pinned slot's cluster");
        &cluster.state[split(self.offset).1]
    }
}

impl<T> fmt::Debug for SlotPin<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SlotPin({})", self.slot())
    }
}

impl<T> Drop for SlotPin<'_, T> {
    fn drop(&mut self) {
        self.area.unpin(self);
    }
}

impl SwapArea {
    /// An area of `slots` free slots (at least one, at most
    /// `u32::MAX - 1`). Nothing per slot is allocated until slots are.
    pub fn new(id: AreaId, slots: u64) -> Result<Self, Error> {
        Self::with_payload(id, slots)
    }
}

impl<T: Default> SwapArea<T> {
    /// An area whose slots each carry a `T` (made with the slot's cluster).
    pub(crate) fn with_payload(id: AreaId, slots: u64) -> Result<Self, Error> {
        let n = u32::try_from(slots)
            .ok()
            .filter(|&n| n > 0 && n < u32::MAX)
            .ok_or_else(|| Error::BadConfig(format!("{slots} swap slots")))?;
        let (clusters, alloc) = ClusterMap::new(n);
        Ok(SwapArea {
            id,
            slots: n,
            clusters,
            alloc: Mutex::new(alloc),
            closed: AtomicBool::new(false),
            waits: (0..WAIT_QUEUES)
                .map(|_| WaitQueue {
                    lock: Mutex::new(()),
                    wake: Condvar::new(),
                })
                .collect(),
            pins: LeakTracker::new(),
        })
    }

    /// Allocates a free slot (from the cluster last allocated in, first);
    /// `None` when the area is full or closed.
    pub fn alloc(&self) -> Option<SwapSlot> {
        let mut alloc = self.alloc.lock();
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let offset = self.clusters.alloc(&mut alloc, ALLOCATED)?;
        Some(SwapSlot {
            area: self.id,
            offset,
        })
    }

    /// Allocates the slot at `offset` if it is free, for programs that run
    /// their own slot allocator and hand zswap the slots they chose.
    /// `Ok(false)` if it is already allocated.
    pub fn claim(&self, offset: u32) -> Result<bool, Error> {
        self.check(offset)?;
        let mut alloc = self.alloc.lock();
        if self.closed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        Ok(self.clusters.claim(&mut alloc, offset, ALLOCATED))
    }
}

impl<T> SwapArea<T> {
    /// The area's id.
    pub fn id(&self) -> AreaId {
        self.id
    }

    /// Slots in the area.
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Slots free to allocate now.
    pub fn free_slots(&self) -> usize {
        self.alloc.lock().free
    }

    /// Heap bytes of the per-slot state now (cluster table, free counts and
    /// the clusters in use, payloads included).
    pub fn state_bytes(&self) -> usize {
        self.clusters.bytes()
    }

    /// Calls `f` on the value of every slot whose cluster exists (teardown
    /// and counting; the values are not pinned).
    pub(crate) fn for_each_payload(&self, f: impl FnMut(&T)) {
        self.clusters.for_each_payload(f);
    }

    /// Calls `f` on every slot allocated now (a snapshot, in offset order;
    /// none is pinned).
    pub(crate) fn for_each_allocated(&self, mut f: impl FnMut(u32)) {
        self.clusters.for_each_state(|offset, state| {
            if state.load(Ordering::Relaxed) & (ALLOCATED | DYING) == ALLOCATED {
                f(offset);
            }
        });
    }

    fn check(&self, offset: u32) -> Result<(), Error> {
        if offset < self.slots {
            return Ok(());
        }
        Err(Error::SlotOutOfRange(SwapSlot {
            area: self.id,
            offset,
        }))
    }

    /// The state byte of `offset` (in range) in `cluster`, if it exists.
    fn state_in(cluster: &ClusterGuard<T>, offset: u32) -> Option<&AtomicU8> {
        Some(&cluster.as_deref()?.state[split(offset).1])
    }

    fn not_allocated(&self, offset: u32) -> Error {
        Error::SlotNotAllocated(SwapSlot {
            area: self.id,
            offset,
        })
    }

    /// Closes the area if every slot is free (swapoff): from then on
    /// nothing is allocated or claimed. The check and the close happen under
    /// the allocator's lock, so an allocation racing with it either lands
    /// first (and the close is refused) or fails. Returns whether this call
    /// closed it (false if it was closed already).
    pub fn close(&self) -> bool {
        let alloc = self.alloc.lock();
        if alloc.free != self.slots as usize || self.closed.load(Ordering::Relaxed) {
            return false;
        }
        self.closed.store(true, Ordering::Release);
        true
    }

    /// Whether [`close`](Self::close) succeeded.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Gives `offset` back to the allocator (its state byte is 0 now).
    fn release(&self, offset: u32) {
        let mut alloc = self.alloc.lock();
        self.clusters.put(&mut alloc, offset);
    }

    /// Frees an allocated slot. If it is pinned, it stays reserved until the
    /// pin drops.
    pub fn free(&self, offset: u32) -> Result<(), Error> {
        self.check(offset)?;
        let cluster = self.clusters.load(offset);
        let state = Self::state_in(&cluster, offset).ok_or_else(|| self.not_allocated(offset))?;
        let mut s = state.load(Ordering::Acquire);
        loop {
            if s & ALLOCATED == 0 || s & DYING != 0 {
                return Err(self.not_allocated(offset));
            }
            let next = if s & PINNED != 0 { s | DYING } else { 0 };
            match state.compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & PINNED == 0 {
            drop(cluster);
            self.release(offset);
        }
        Ok(())
    }

    /// Whether `offset` is allocated (and not being freed).
    pub fn is_allocated(&self, offset: u32) -> bool {
        if self.check(offset).is_err() {
            return false;
        }
        let cluster = self.clusters.load(offset);
        Self::state_in(&cluster, offset)
            .is_some_and(|s| s.load(Ordering::Acquire) & (ALLOCATED | DYING) == ALLOCATED)
    }

    /// Claims `offset` for its one holder; `None` if someone holds it, or it
    /// is not allocated, or it is being freed (the kernel's
    /// `swapcache_prepare` failing with EEXIST or ENOENT).
    pub fn try_pin(&self, offset: u32) -> Option<SlotPin<'_, T>> {
        self.check(offset).ok()?;
        let cluster = self.clusters.load(offset);
        let state = Self::state_in(&cluster, offset)?;
        let mut s = state.load(Ordering::Acquire);
        loop {
            if s & (ALLOCATED | PINNED | DYING) != ALLOCATED {
                return None;
            }
            match state.compare_exchange(s, s | PINNED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    self.pins.track(u64::from(offset));
                    return Some(SlotPin {
                        area: self,
                        offset,
                        cluster,
                    });
                }
                Err(now) => s = now,
            }
        }
    }

    /// Claims `offset`, sleeping while another holder has it, as a swap-in
    /// sleeps on a locked swap-cache folio. Fails if the slot is not
    /// allocated or is being freed.
    pub fn pin(&self, offset: u32) -> Result<SlotPin<'_, T>, Error> {
        self.check(offset)?;
        loop {
            if let Some(pin) = self.try_pin(offset) {
                return Ok(pin);
            }
            let cluster = self.clusters.load(offset);
            let Some(state) = Self::state_in(&cluster, offset) else {
                return Err(self.not_allocated(offset));
            };
            let s = state.load(Ordering::Acquire);
            if s & (ALLOCATED | DYING) != ALLOCATED {
                return Err(self.not_allocated(offset));
            }
            if s & PINNED == 0 {
                continue; // released meanwhile: try again
            }
            let queue = self.wait_queue(offset);
            let guard = queue.lock.lock();
            // Ask the holder to wake us, while it still holds the slot: if
            // the state moved on (unpinned, freed), look again instead. The
            // unpin clears the bit and then takes this queue's lock to
            // wake us, so it cannot wake before we sleep.
            if state
                .compare_exchange(s, s | WAITERS, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                drop(queue.wake.wait(guard));
            }
        }
    }

    /// Whether someone sleeps on `offset` (tests).
    #[cfg(test)]
    fn has_waiters(&self, offset: u32) -> bool {
        let cluster = self.clusters.load(offset);
        Self::state_in(&cluster, offset).is_some_and(|s| s.load(Ordering::Acquire) & WAITERS != 0)
    }

    fn wait_queue(&self, offset: u32) -> &WaitQueue {
        &self.waits[offset as usize & (WAIT_QUEUES - 1)]
    }

    fn unpin(&self, pin: &SlotPin<'_, T>) {
        let offset = pin.offset;
        // Before the state changes: the next pin of this slot tracks anew.
        self.pins.untrack(u64::from(offset));
        let state = pin.state();
        let mut s = state.load(Ordering::Acquire);
        loop {
            debug_assert!(s & PINNED != 0, "unpinning an unpinned slot");
            let next = if s & DYING != 0 {
                0
            } else {
                s & !(PINNED | WAITERS)
            };
            match state.compare_exchange(s, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        if s & WAITERS != 0 {
            // Under the queue's lock: a waiter that set the bit is asleep
            // by now (it set it holding this lock, and sleeping releases it).
            let queue = self.wait_queue(offset);
            let _guard = queue.lock.lock();
            queue.wake.notify_all();
        }
        if s & DYING != 0 {
            self.release(offset);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_and_errors() {
        let a = SwapArea::new(AreaId::new(3), 2).unwrap();
        let s0 = a.alloc().unwrap();
        let s1 = a.alloc().unwrap();
        assert_eq!((s0.offset, s1.offset), (0, 1));
        assert!(a.alloc().is_none());
        a.free(0).unwrap();
        let err = Error::SlotNotAllocated(SwapSlot {
            area: AreaId::new(3),
            offset: 0,
        });
        assert_eq!(a.free(0), Err(err));
        let out = SwapSlot {
            area: AreaId::new(3),
            offset: 9,
        };
        assert_eq!(a.free(9), Err(Error::SlotOutOfRange(out)));
        assert!(a.try_pin(9).is_none() && a.try_pin(0).is_none());
        assert_eq!(a.alloc().unwrap().offset, 0);
        assert!(SwapArea::new(AreaId::new(0), 0).is_err());
    }

    #[test]
    fn claim_and_bitmap_edges() {
        let a = SwapArea::new(AreaId::new(0), 130).unwrap();
        assert_eq!(a.claim(129), Ok(true));
        assert_eq!(a.claim(129), Ok(false));
        assert!(a.claim(130).is_err());
        let got: Vec<u32> = std::iter::from_fn(|| a.alloc().map(|s| s.offset)).collect();
        assert_eq!(got.len(), 129);
        assert!(!got.contains(&129) && got.iter().all(|&o| o < 129));
        assert_eq!(a.free_slots(), 0);
        a.free(64).unwrap();
        assert_eq!(a.alloc().unwrap().offset, 64);
    }

    #[test]
    fn close_only_when_empty_and_for_good() {
        let a = SwapArea::new(AreaId::new(0), 2).unwrap();
        let s = a.alloc().unwrap();
        assert!(!a.close() && !a.is_closed());
        a.free(s.offset).unwrap();
        assert!(a.close() && a.is_closed());
        assert!(a.alloc().is_none());
        assert_eq!(a.claim(1), Ok(false));
    }

    #[test]
    fn a_waiting_pin_sleeps_until_the_holder_unpins() {
        let a = SwapArea::new(AreaId::new(0), 64).unwrap();
        let s = a.alloc().unwrap();
        let held = a.try_pin(s.offset).unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                let pin = a.pin(s.offset).unwrap();
                pin.slot()
            });
            // The waiter parks (sets WAITERS) while we hold the slot.
            while !a.has_waiters(s.offset) {
                std::thread::yield_now();
            }
            drop(held);
            assert_eq!(waiter.join().unwrap(), s);
        });
        // Freed while a waiter sleeps: the waiter gets the error.
        let held = a.try_pin(s.offset).unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| a.pin(s.offset).map(|p| p.slot()));
            while !a.has_waiters(s.offset) {
                std::thread::yield_now();
            }
            a.free(s.offset).unwrap();
            drop(held);
            assert!(matches!(
                waiter.join().unwrap(),
                Err(Error::SlotNotAllocated(_))
            ));
        });
        assert_eq!(a.free_slots(), 64);
    }

    #[test]
    fn a_pinned_slot_is_released_by_its_pin() {
        let a = SwapArea::new(AreaId::new(0), 1).unwrap();
        let s = a.alloc().unwrap();
        let pin = a.try_pin(s.offset).unwrap();
        assert_eq!(pin.slot(), s);
        a.free(s.offset).unwrap();
        assert!(a.free(s.offset).is_err(), "double free while pinned");
        assert!(!a.is_allocated(s.offset));
        assert!(a.alloc().is_none(), "not reusable while pinned");
        drop(pin);
        assert_eq!(a.alloc().unwrap(), s);
        // An unpin without a free leaves the slot allocated.
        drop(a.try_pin(s.offset).unwrap());
        assert!(a.is_allocated(s.offset));
    }
}
