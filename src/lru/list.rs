//! One list: the items of one (node, group), its lock, its count, and the
//! forwarding pointer it gets when its group goes offline.
//!
//! This is the kernel's `list_lru_one` with the v6.13+ per-list lock. It owns
//! the raw doubly-linked list and the few operations that touch links: push
//! at the tail (the hot end), unlink, move to the tail, and splice a whole
//! list onto the head (the cold end) of another. Each of them is `unsafe`
//! only in that the caller must prove the node is where it says; the lock is
//! proven by the `&mut Ends` that only a held guard can give.
//!
//! Reparenting ([`ListOne::reparent_into`]) takes the child's lock, then the
//! parent's (always descendant before ancestor, so two reparents cannot
//! deadlock), splices, rewrites every moved item's state word to name the
//! parent's list, moves the count and sets `forward` *before* either lock is
//! released. A thread that finds the child list afterwards sees `forward`
//! under the child's lock and follows it (an `add` racing the offline); a
//! thread that read an item's old word finds it changed under the lock and
//! looks again. There is never a moment when the child looks empty while its
//! items are anywhere but on one locked list. That is the order the kernel's
//! CVE-2026-53153 fix ("drain before clearing xarray entry on reparent")
//! restored.
//!
//! A list's memory is never freed while its lru lives; when its group is
//! freed it is reset ([`ListOne::release`]: no forward, no owner) and later
//! taken by the next group of the same index ([`ListOne::revive`]). Because
//! no item's word names a dead or free list (the rewrite above), a thread
//! holding a stale pointer to one only ever locks it, sees it is not where
//! its item is, and looks again; an `add` refuses a free list.

use std::ptr;

use super::item::{Node, Word};
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};
use crate::{GroupId, NodeId};

/// `ListOne::owner` of a list whose group was freed.
const FREE: u64 = u64::MAX;

/// The ends of the list; the data the list lock protects.
pub(super) struct Ends<T> {
    pub(super) head: *const Node<T>,
    pub(super) tail: *const Node<T>,
}

// SAFETY: the pointers are owned references to `Node<T>`s, which are
// `Send + Sync` for `T: Send + Sync`; moving the ends between threads moves
// nothing else.
unsafe impl<T: Send + Sync> Send for Ends<T> {}

/// One list of one (node, group). Cache-line aligned so that two groups'
/// lists never share a line.
#[repr(align(64))]
pub(super) struct ListOne<T> {
    pub(super) lock: Mutex<Ends<T>>,
    /// Items on the list; written under `lock`, read without it.
    nr_items: AtomicUsize,
    /// Null while live; once the group is offline, the list its items went to.
    forward: AtomicPtr<ListOne<T>>,
    pub(super) node: NodeId,
    /// The group (raw id) the list belongs to, or `FREE`; changed only under
    /// `lock`.
    owner: AtomicU64,
}

pub(super) type Guard<'a, T> = MutexGuard<'a, Ends<T>>;

impl<T> ListOne<T> {
    pub(super) fn new(node: NodeId, group: GroupId) -> Self {
        ListOne {
            lock: Mutex::new(Ends {
                head: ptr::null(),
                tail: ptr::null(),
            }),
            nr_items: AtomicUsize::new(0),
            forward: AtomicPtr::new(ptr::null_mut()),
            node,
            owner: AtomicU64::new(group.as_u64()),
        }
    }

    /// The group the list belongs to now (a snapshot unless the lock is
    /// held); `None` once its group was freed.
    pub(super) fn owner(&self) -> Option<GroupId> {
        let o = self.owner.load(Ordering::Acquire);
        (o != FREE).then_some(GroupId::from_raw(o))
    }

    /// Whether the list belongs to `group` (a snapshot).
    pub(super) fn owned_by(&self, group: GroupId) -> bool {
        self.owner.load(Ordering::Acquire) == group.as_u64()
    }

    /// Whether the list's group was freed (and no group took it since).
    pub(super) fn is_free(&self) -> bool {
        self.owner.load(Ordering::Acquire) == FREE
    }

    /// `group` is freed: the list, dead and empty since the group's
    /// reparent, is reset for the next group of its index.
    pub(super) fn release(&self, group: GroupId) {
        let ends = self.lock.lock();
        if !self.owned_by(group) {
            return;
        }
        debug_assert!(ends.head.is_null() && self.count() == 0, "freed with items");
        self.forward.store(ptr::null_mut(), Ordering::Release);
        self.owner.store(FREE, Ordering::Release);
        drop(ends);
    }

    /// Makes the list `group`'s if it is free, or if its owner is no longer
    /// live (`gone`): an `add` that raced its group's offline and free may
    /// have made lists for it after the free reset them, and reparented
    /// them itself, so they are dead and empty. Whether it is `group`'s now.
    pub(super) fn revive(&self, group: GroupId, gone: impl FnOnce(GroupId) -> bool) -> bool {
        let ends = self.lock.lock();
        let take = match self.owner() {
            None => true,
            Some(o) if o == group => false,
            Some(o) => gone(o),
        };
        if take {
            debug_assert!(ends.head.is_null() && self.count() == 0, "taken with items");
            self.forward.store(ptr::null_mut(), Ordering::Release);
            self.owner.store(group.as_u64(), Ordering::Release);
        }
        drop(ends);
        self.owned_by(group)
    }

    /// Items on the list now, without the lock; 0 once the list is dead.
    pub(super) fn count(&self) -> usize {
        self.nr_items.load(Ordering::Relaxed)
    }

    /// Whether the group went offline and this list forwards elsewhere.
    pub(super) fn is_dead(&self) -> bool {
        !self.forward.load(Ordering::Acquire).is_null()
    }

    /// The live list this one forwards to (itself if live).
    pub(super) fn resolve(&self) -> &ListOne<T> {
        let mut l = self;
        loop {
            let f = l.forward.load(Ordering::Acquire);
            if f.is_null() {
                return l;
            }
            // SAFETY: `forward` only ever points at another list of the same
            // lru, and list memory lives as long as the lru (reset and
            // reused when a group is freed, never deallocated).
            l = unsafe { &*f };
        }
    }

    /// Locks the live list this one resolves to, following forwards that
    /// appear while we wait for a lock.
    pub(super) fn lock_live(&self) -> (&ListOne<T>, Guard<'_, T>) {
        let mut l = self;
        loop {
            l = l.resolve();
            let g = l.lock.lock();
            // `forward` is only set under this lock, so this check is final.
            if !l.is_dead() {
                return (l, g);
            }
            drop(g);
        }
    }

    fn add_count(&self, delta: isize) {
        let n = self.nr_items.load(Ordering::Relaxed);
        self.nr_items
            .store(n.wrapping_add_signed(delta), Ordering::Relaxed);
    }

    /// Appends `node` at the tail (the hot end), adopting one reference.
    ///
    /// # Safety
    /// `ends` is this list's locked data, and `node` is live and on no list.
    pub(super) unsafe fn push_tail(&self, ends: &mut Ends<T>, node: *const Node<T>) {
        let old_tail = ends.tail;
        // SAFETY: `node` is on no list, so nobody else touches its links; we
        // hold the lock that will protect them from now on.
        unsafe {
            (*node).link.with_mut(|l| {
                (*l).prev = old_tail;
                (*l).next = ptr::null();
            });
        }
        if old_tail.is_null() {
            ends.head = node;
        } else {
            // SAFETY: `old_tail` is on this list, whose lock we hold.
            unsafe { (*old_tail).link.with_mut(|l| (*l).next = node) };
        }
        ends.tail = node;
        self.add_count(1);
    }

    /// Unlinks `node`; the reference the list held passes to the caller.
    ///
    /// # Safety
    /// `ends` is this list's locked data and `node` is on this list.
    pub(super) unsafe fn unlink(&self, ends: &mut Ends<T>, node: *const Node<T>) {
        // SAFETY: `node` and its neighbours are on this list; we hold its lock.
        unsafe {
            let (prev, next) = (*node).link.with(|l| ((*l).prev, (*l).next));
            if prev.is_null() {
                ends.head = next;
            } else {
                (*prev).link.with_mut(|l| (*l).next = next);
            }
            if next.is_null() {
                ends.tail = prev;
            } else {
                (*next).link.with_mut(|l| (*l).prev = prev);
            }
            (*node).link.with_mut(|l| {
                (*l).prev = ptr::null();
                (*l).next = ptr::null();
            });
        }
        self.add_count(-1);
    }

    /// Moves `node` to the tail (the hot end).
    ///
    /// # Safety
    /// As for [`unlink`](Self::unlink).
    pub(super) unsafe fn move_tail(&self, ends: &mut Ends<T>, node: *const Node<T>) {
        if ends.tail == node {
            return;
        }
        // SAFETY: forwarded: `node` is on this list and we hold its lock; it
        // is unlinked and re-linked under the same lock.
        unsafe {
            self.unlink(ends, node);
            self.push_tail(ends, node);
        }
    }

    /// The successor of `node`.
    ///
    /// # Safety
    /// As for [`unlink`](Self::unlink).
    pub(super) unsafe fn next(&self, _ends: &Ends<T>, node: *const Node<T>) -> *const Node<T> {
        // SAFETY: `node` is on this list and the caller holds its lock.
        unsafe { (*node).link.with(|l| (*l).next) }
    }

    /// Splices all of this (child) list onto the head of `parent`'s live
    /// list, moves the count, and marks this list dead, forwarding to it.
    /// Idempotent: a list already dead is left alone.
    pub(super) fn reparent_into(&self, parent: &ListOne<T>) {
        let mut child = self.lock.lock();
        if self.is_dead() {
            return;
        }
        // Descendant before ancestor: the only order two list locks are
        // ever taken in.
        let (dst, mut pg) = parent.lock_live();
        debug_assert!(!ptr::eq(dst, self), "a list cannot be its own parent");
        if !child.head.is_null() {
            // Every moved item's word names its new list, so no word ever
            // names a dead list (and so one that is later freed and reused).
            let mut cur = child.head;
            while !cur.is_null() {
                // SAFETY: `cur` is on the child list, whose lock we hold, and
                // is moving to `dst`, whose lock we hold too: its word and
                // links change only under those locks.
                unsafe {
                    (*cur).set_word(Word::linked(dst));
                    cur = (*cur).link.with(|l| (*l).next);
                }
            }
            // SAFETY: we hold both locks; every node of the child list moves
            // to the parent's list, so its links stay under a held lock.
            unsafe {
                (*child.tail).link.with_mut(|l| (*l).next = pg.head);
                if pg.head.is_null() {
                    pg.tail = child.tail;
                } else {
                    (*pg.head).link.with_mut(|l| (*l).prev = child.tail);
                }
            }
            pg.head = child.head;
            child.head = ptr::null();
            child.tail = ptr::null();
            let moved = self.nr_items.load(Ordering::Relaxed);
            dst.add_count(moved as isize);
            self.nr_items.store(0, Ordering::Relaxed);
        }
        // Release pairs with the Acquire in `resolve`/`is_dead`; set while
        // both locks are held, so no thread ever finds this list empty and
        // live while its items are elsewhere.
        self.forward
            .store((dst as *const ListOne<T>).cast_mut(), Ordering::Release);
        drop(pg);
        drop(child);
    }

    /// Detaches every node and drops the list's references (lru teardown).
    pub(super) fn drain(&self) {
        let mut ends = self.lock.lock();
        let mut cur = ends.head;
        while !cur.is_null() {
            // SAFETY: we hold the lock (and the lru is being dropped, so no
            // other thread can reach this list); `cur` is on it.
            let next = unsafe { (*cur).link.with(|l| (*l).next) };
            // SAFETY: `cur` is live: the list holds a reference to it.
            unsafe { (*cur).set_word(super::item::Word::detached()) };
            // SAFETY: the list's reference to `cur`, taken back once.
            drop(unsafe { super::item::Item::from_raw(cur) });
            cur = next;
        }
        ends.head = ptr::null();
        ends.tail = ptr::null();
        drop(ends);
        self.nr_items.store(0, Ordering::Relaxed);
    }
}
