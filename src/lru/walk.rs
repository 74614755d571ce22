//! The walker: `__list_lru_walk_one`, with the lock rule made structural.
//!
//! A walk visits one list from the head (coldest) under that list's lock and
//! hands the callback a [`WalkGuard`] for one item at a time. The guard is the
//! callback's only way to touch the list: [`WalkGuard::isolate`] takes the
//! item off (the counts drop at that moment, exactly once), and
//! [`WalkGuard::unlocked`] releases the list lock around a closure, as
//! `MutexGuard::unlocked` does. Because the walker sees every unlock, "I
//! dropped the lock" and the status the callback returns cannot disagree in a
//! way that corrupts anything:
//!
//! | status         | lock kept                      | lock was dropped            |
//! |----------------|--------------------------------|-----------------------------|
//! | `Removed`      | continue with the next item    | restart (debug assertion)   |
//! | `RemovedRetry` | restart from the head          | restart from the head       |
//! | `Rotate`       | move to the tail, continue     | restart (debug assertion)   |
//! | `Skip`         | continue                       | restart (debug assertion)   |
//! | `Retry`        | restart from the head          | restart from the head       |
//! | `Stop`         | return                         | return                      |
//!
//! The kernel learned the middle column the hard way ("don't return LRU_SKIP
//! if we have dropped lru lock"): continuing from a cursor that was valid
//! only under the lock walks freed memory. Here the walker never continues
//! after an unlock, whatever the callback says. `Removed*` without an
//! isolation and `Rotate` of an isolated item are debug assertions too; in
//! release builds the walker acts on what really happened.
//!
//! The budget is decremented before each callback, so a callback that keeps
//! answering `Retry` cannot livelock the walk. The returned count is the
//! number of items the callback actually isolated, never the number of
//! `Removed` answers: a removal is counted where it happens, once (the
//! kernel's node count drifted when zswap removed an entry and the walker
//! counted it again).

use super::item::{value, Item, Node, Word, LINKED};
use super::list::{Guard, ListOne};
use crate::{GroupId, NodeId};

/// What a walk callback did with the item it was shown.
///
/// ```
/// use zswap::{GroupId, Item, ListLru, LruStatus, NodeId, Topology};
/// let lru = ListLru::new(&Topology::single());
/// let items: Vec<_> = (0..4).map(Item::new).collect();
/// for i in &items {
///     lru.add(i, NodeId::ZERO, GroupId::ROOT)?;
/// }
/// let mut budget = 10;
/// let mut seen = Vec::new();
/// lru.walk_one(NodeId::ZERO, GroupId::ROOT, &mut budget, |g| {
///     seen.push(*g.item());
///     match *g.item() {
///         0 => LruStatus::Rotate, // referenced: a second chance at the hot end
///         1 => LruStatus::Skip,   // busy: leave it
///         _ => LruStatus::Stop,   // enough
///     }
/// })?;
/// assert_eq!(seen, [0, 1, 2]);
/// assert_eq!(lru.count(), 4); // nothing isolated
/// # Ok::<(), zswap::Error>(())
/// ```
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LruStatus {
    /// The callback isolated the item and kept the lock.
    Removed,
    /// The callback isolated the item and dropped the lock meanwhile: the
    /// walk restarts from the head.
    RemovedRetry,
    /// Move the item to the tail (the hot end) and go on.
    Rotate,
    /// Leave the item where it is and go on.
    Skip,
    /// The callback dropped the lock (or wants a fresh look): restart from
    /// the head; nothing was removed.
    Retry,
    /// End this list's walk now.
    Stop,
}

/// The callback's view of the item under the walker, and its only handle on
/// the list lock. Given as `&mut` to the callback of
/// [`ListLru::walk_one`](crate::ListLru::walk_one) and friends.
///
/// ```
/// use zswap::{GroupId, Item, ListLru, LruStatus, NodeId, Topology};
/// let lru = ListLru::new(&Topology::single());
/// let item = Item::new(String::from("cold"));
/// lru.add(&item, NodeId::ZERO, GroupId::ROOT)?;
/// let mut budget = 1;
/// lru.walk_one(NodeId::ZERO, GroupId::ROOT, &mut budget, |g| {
///     let taken = g.isolate().expect("on this list");
///     // Slow work (I/O) without the list lock; the walk then restarts.
///     g.unlocked(|| assert_eq!(*taken, "cold"));
///     LruStatus::RemovedRetry
/// })?;
/// assert_eq!(lru.count(), 0);
/// # Ok::<(), zswap::Error>(())
/// ```
pub struct WalkGuard<'a, T> {
    list: &'a ListOne<T>,
    guard: Option<Guard<'a, T>>,
    cur: *const Node<T>,
    /// A reference that keeps `cur` alive once the list may no longer hold
    /// one (after `isolate`, or while the lock is released).
    held: Option<Item<T>>,
    isolated: bool,
    dropped: bool,
}

impl<'a, T> WalkGuard<'a, T> {
    /// The item's value.
    pub fn item(&self) -> &T {
        // SAFETY: `cur` is alive: either it is on the list and we hold the
        // lock (so its list reference cannot go), or `held` owns a reference.
        unsafe { value(self.cur) }
    }

    /// A new handle to the item (for example to keep it past the callback).
    pub fn handle(&self) -> Item<T> {
        // SAFETY: `cur` is alive, as in `item`.
        unsafe { Item::clone_raw(self.cur) }
    }

    /// The node of the list being walked.
    pub fn node(&self) -> NodeId {
        self.list.node
    }

    /// The group of the list being walked (the root's for a group-unaware
    /// lru).
    pub fn group(&self) -> GroupId {
        self.list.owner().unwrap_or(GroupId::ROOT)
    }

    /// Items left on the list being walked.
    pub fn list_count(&self) -> usize {
        self.list.count()
    }

    /// Takes the item off the list (`list_lru_isolate`): the list and node
    /// counts drop now, and the item is isolated until someone calls
    /// [`ListLru::putback`](crate::ListLru::putback) or drops it. Returns the
    /// item, or `None` if it already left this list (isolated before, or
    /// removed or moved by another thread while the lock was released
    /// through [`unlocked`](Self::unlocked)).
    pub fn isolate(&mut self) -> Option<Item<T>> {
        if self.isolated {
            return None;
        }
        let ends = self
            .guard
            .as_mut()
            .expect("the walker holds the lock during callbacks");
        // SAFETY: `cur` is alive (see `item`).
        let node = unsafe { &*self.cur };
        let w = node.word();
        // Under our lock, the item is on this list iff its word is linked and
        // resolves here, and this list is live (see `item.rs`).
        // SAFETY: a linked word's list pointer is a list of this lru, which
        // outlives `self`.
        let here = w.tag() == LINKED
            && std::ptr::eq(unsafe { &*w.list() }.resolve(), self.list)
            && !self.list.is_dead()
            && !self.list.is_free();
        if !here {
            return None;
        }
        // SAFETY: `cur` is on this list and `ends` is its locked data.
        unsafe { self.list.unlink(ends, self.cur) };
        node.set_word(Word::isolated());
        self.isolated = true;
        // SAFETY: the list's reference, which `unlink` passed to us.
        let item = unsafe { Item::from_raw(self.cur) };
        let out = item.clone();
        if self.held.is_none() {
            self.held = Some(item);
        }
        Some(out)
    }

    /// Runs `f` with the list lock released, then takes it again. The walk
    /// will restart from the head (or stop) after this callback returns,
    /// whatever the callback answers; answer `RemovedRetry`, `Retry` or
    /// `Stop`.
    pub fn unlocked<R>(&mut self, f: impl FnOnce() -> R) -> R {
        if self.held.is_none() {
            self.held = Some(self.handle());
        }
        self.dropped = true;
        drop(self.guard.take());
        let r = f();
        self.guard = Some(self.list.lock.lock());
        r
    }

    /// Whether [`unlocked`](Self::unlocked) has been called.
    pub fn lock_was_dropped(&self) -> bool {
        self.dropped
    }
}

/// What the walker does after one callback.
enum Next {
    Continue,
    Restart,
    Stop,
}

/// Walks `list` (already resolved, live or not) with `cb`; returns the number
/// of items the callback isolated.
pub(super) fn walk_list<T, F>(list: &ListOne<T>, nr_to_walk: &mut usize, cb: &mut F) -> usize
where
    F: FnMut(&mut WalkGuard<'_, T>) -> LruStatus,
{
    let mut isolated = 0;
    let mut ends = list.lock.lock();
    'restart: loop {
        // Dead (offline: its items are on the parent's list) or free (its
        // group freed, which a stale walker may meet): nothing to walk.
        if list.is_dead() || list.is_free() {
            break;
        }
        let mut cur = ends.head;
        while !cur.is_null() {
            if *nr_to_walk == 0 {
                break 'restart;
            }
            *nr_to_walk -= 1;
            // SAFETY: `cur` is on this list and we hold its lock.
            let next = unsafe { list.next(&ends, cur) };
            let mut g = WalkGuard {
                list,
                guard: Some(ends),
                cur,
                held: None,
                isolated: false,
                dropped: false,
            };
            let status = cb(&mut g);
            ends = g.guard.take().expect("unlocked() re-takes the lock");
            let (was_isolated, dropped) = (g.isolated, g.dropped);
            isolated += usize::from(was_isolated);
            // May drop the last reference and run `T::drop` under the lock.
            drop(g);
            match decide(status, was_isolated, dropped) {
                Next::Stop => break 'restart,
                Next::Restart => continue 'restart,
                Next::Continue => {
                    if status == LruStatus::Rotate && !was_isolated {
                        // SAFETY: not isolated and the lock was never dropped,
                        // so `cur` is still on this list.
                        unsafe { list.move_tail(&mut ends, cur) };
                    }
                    cur = next;
                }
            }
        }
        break;
    }
    isolated
}

fn decide(status: LruStatus, isolated: bool, dropped: bool) -> Next {
    use LruStatus::*;
    debug_assert!(
        isolated || !matches!(status, Removed | RemovedRetry),
        "walk callback returned {status:?} without isolating the item"
    );
    debug_assert!(
        !(isolated && status == Rotate),
        "walk callback isolated the item and returned Rotate"
    );
    debug_assert!(
        !dropped || matches!(status, RemovedRetry | Retry | Stop),
        "walk callback dropped the lock and returned {status:?}"
    );
    match status {
        Stop => Next::Stop,
        _ if dropped => Next::Restart,
        RemovedRetry | Retry => Next::Restart,
        Removed | Rotate | Skip => Next::Continue,
    }
}
