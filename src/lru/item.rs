//! The item handle and its link state.
//!
//! An [`Item<T>`] is a reference-counted node: the caller's value plus the
//! intrusive links of the list it may be on. Allocating it is the caller's one
//! allocation (as the kernel's zswap allocates an entry with its `list_head`
//! inside); adding, deleting, rotating, isolating and putting back never
//! allocate. Identity is the node's address: it survives rotation,
//! isolation, putback and reparenting, and [`Item::ptr_eq`] compares it.
//!
//! The count is the node's own (32 bits, as `std::sync::Arc` counts but
//! without its weak count, which nothing here needs), and so is the id of
//! the lru it is bound to (32 bits, see [`LruId`]): what the LRU adds to a
//! value is 32 bytes, the count and the id, the state word and the links
//! (the kernel's `list_head` is 16). Under loom each node carries a tracked
//! allocation, so a node never freed fails the model.
//!
//! The node's state lives in one atomic word so that every transition is a
//! single atomic step:
//!
//! | word                 | meaning                                             |
//! |----------------------|-----------------------------------------------------|
//! | `null \| DETACHED`   | on no list, owned by nobody in particular           |
//! | `list \| LINKED`     | on the physical list `list` (see below)              |
//! | `null \| ISOLATED`   | taken off by a walker or `isolate`, not yet put back |
//!
//! `list` is the list the item is on: reparenting (its group went offline)
//! rewrites the word of every item it moves, under both lists' locks, so no
//! word names a dead list. The word of a linked item changes only under the
//! lock of its list, and the links are read or written only under it; that
//! is the invariant every `unsafe` block in `lru/` rests on. A list's memory
//! lives until its `ListLru` is dropped (a freed group's lists are reset and
//! reused, never deallocated), and dropping the lru detaches every linked
//! item, so a linked word never points at freed memory. An isolated or
//! detached word carries no pointer at all.
//!
//! An item binds to the first lru that adds it (`lru` below, written once);
//! any other live lru refuses it with [`Error::ForeignItem`](crate::Error),
//! which is what keeps one lru from following another lru's pointers. An
//! lru's id is unique among live lrus and reused once that lru is dropped:
//! its drop detaches every item first, so an item still bound to the id
//! carries no pointer into it (as a reused address would not before ids).

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use super::list::ListOne;
use crate::sync::unmodeled::{ProcessMutex, ProcessMutexGuard};
use crate::sync::{fence, AtomicPtr, AtomicU32, Ordering, Tracked, UnsafeCell};

pub(super) const DETACHED: usize = 0;
pub(super) const LINKED: usize = 1;
pub(super) const ISOLATED: usize = 2;
const TAG: usize = 3;

/// Intrusive links; valid only under the lock of the list the node is on.
pub(super) struct Link<T> {
    pub(super) prev: *const Node<T>,
    pub(super) next: *const Node<T>,
}

/// The allocation behind an [`Item`].
pub(super) struct Node<T> {
    /// Handles to this node, counting the one a list holds while linked.
    refs: AtomicU32,
    /// The [`LruId`] of the lru this item is bound to; 0 while unbound.
    lru: AtomicU32,
    value: T,
    /// Tagged `*const ListOne<T>`: see the module docs.
    word: AtomicPtr<ListOne<T>>,
    pub(super) link: UnsafeCell<Link<T>>,
    /// Loom's leak check of the node (nothing in a normal build).
    _tracked: Tracked,
}

// SAFETY: `value` is shared as `&T` across threads (needs `T: Sync`) and may be
// dropped on any thread (needs `T: Send`); `word` and `lru` are atomics; `link`
// is only touched under the lock of the list the node is on (module docs).
unsafe impl<T: Send + Sync> Send for Node<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Node<T> {}

/// A packed state word.
pub(super) struct Word<T>(*mut ListOne<T>);

impl<T> Clone for Word<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Word<T> {}

impl<T> PartialEq for Word<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T> Word<T> {
    pub(super) fn linked(list: &ListOne<T>) -> Self {
        Word(
            (list as *const ListOne<T>)
                .cast_mut()
                .map_addr(|a| a | LINKED),
        )
    }

    pub(super) fn detached() -> Self {
        Word(ptr::without_provenance_mut(DETACHED))
    }

    pub(super) fn isolated() -> Self {
        Word(ptr::without_provenance_mut(ISOLATED))
    }

    pub(super) fn tag(self) -> usize {
        self.0.addr() & TAG
    }

    /// The list of a linked word.
    pub(super) fn list(self) -> *const ListOne<T> {
        self.0.map_addr(|a| a & !TAG)
    }
}

impl<T> Node<T> {
    pub(super) fn word(&self) -> Word<T> {
        // Acquire pairs with the Release stores below: a reader that sees a
        // list pointer sees that list fully built.
        Word(self.word.load(Ordering::Acquire))
    }

    pub(super) fn set_word(&self, w: Word<T>) {
        self.word.store(w.0, Ordering::Release);
    }

    /// Moves the word from `old` to `new` if it still is `old`.
    pub(super) fn cas_word(&self, old: Word<T>, new: Word<T>) -> Result<(), Word<T>> {
        self.word
            .compare_exchange(old.0, new.0, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(Word)
    }

    /// Binds the node to the lru of id `owner` if unbound; whether it is
    /// bound to `owner` now.
    pub(super) fn bind(&self, owner: u32) -> bool {
        match self
            .lru
            .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(bound) => bound == owner,
        }
    }

    /// Whether the node is bound to the lru of id `owner`.
    pub(super) fn bound_to(&self, owner: u32) -> bool {
        self.lru.load(Ordering::Acquire) == owner
    }
}

/// The id an lru binds its items with: nonzero, unique among live lrus,
/// given back (for a later lru to reuse) when dropped. An lru drops it
/// after detaching every item (`LruInner`'s fields drop after its `Drop`).
pub(super) struct LruId(u32);

/// Ids of dropped lrus, and the next never used.
struct IdPool {
    next: u32,
    free: Vec<u32>,
}

static IDS: ProcessMutex<IdPool> = ProcessMutex::new(IdPool {
    next: 1,
    free: Vec::new(),
});

/// The registry, locked (a panic under its lock leaves it consistent: each
/// change is one push, one pop or one increment).
fn ids() -> ProcessMutexGuard<'static, IdPool> {
    IDS.lock().unwrap_or_else(|e| e.into_inner())
}

impl LruId {
    /// A fresh id. Aborts if 2^32 − 1 lrus are live at once (each holds
    /// far more than the 4 bytes that would take), as a count overflow does.
    pub(super) fn new() -> Self {
        let mut ids = ids();
        if let Some(id) = ids.free.pop() {
            return LruId(id);
        }
        let id = ids.next;
        if id == u32::MAX {
            std::process::abort();
        }
        ids.next += 1;
        LruId(id)
    }

    pub(super) fn get(&self) -> u32 {
        self.0
    }

    /// Ids ever handed out (the registry's high-water mark), for the test
    /// that holds it flat under churn.
    #[cfg(test)]
    pub(super) fn high_water() -> u32 {
        ids().next
    }
}

impl Drop for LruId {
    fn drop(&mut self) {
        ids().free.push(self.0);
    }
}

/// A value that can sit on a [`ListLru`](crate::ListLru): a reference-counted
/// handle whose identity (its address) is stable across rotate, isolate,
/// putback and reparent. Cloning clones the handle, not the value.
///
/// ```
/// use zswap::Item;
/// let a = Item::new(7u32);
/// let b = a.clone();
/// assert!(Item::ptr_eq(&a, &b) && *b == 7);
/// assert!(!Item::ptr_eq(&a, &Item::new(7)));
/// ```
pub struct Item<T> {
    node: NonNull<Node<T>>,
    _owns: PhantomData<Node<T>>,
}

// SAFETY: an item shares its node across threads as `Arc<Node<T>>` would, and
// the node is `Send + Sync` exactly when `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for Item<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for Item<T> {}

/// More handles than this to one node (2^31: 16 GiB of handles) is a leak
/// loop: abort, as `Arc` does past `isize::MAX`.
const MAX_REFS: u32 = i32::MAX as u32;

impl<T> Item<T> {
    /// A new item holding `value`, on no list.
    pub fn new(value: T) -> Self {
        let node = Box::new(Node {
            refs: AtomicU32::new(1),
            lru: AtomicU32::new(0),
            value,
            word: AtomicPtr::new(Word::<T>::detached().0),
            link: UnsafeCell::new(Link {
                prev: ptr::null(),
                next: ptr::null(),
            }),
            _tracked: Tracked::new(),
        });
        Item {
            node: NonNull::from(Box::leak(node)),
            _owns: PhantomData,
        }
    }

    /// Whether two handles are the same item.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.node == b.node
    }

    /// Whether the item is on a list now (a racy snapshot).
    pub fn is_linked(&self) -> bool {
        self.node().word().tag() == LINKED
    }

    /// Whether a walker or `isolate` holds the item off its list now (a racy
    /// snapshot).
    pub fn is_isolated(&self) -> bool {
        self.node().word().tag() == ISOLATED
    }

    pub(super) fn node(&self) -> &Node<T> {
        // SAFETY: this handle holds a reference, so the node is alive.
        unsafe { self.node.as_ref() }
    }

    pub(super) fn as_ptr(&self) -> *const Node<T> {
        self.node.as_ptr()
    }

    /// Leaks one reference as the raw pointer a list holds.
    pub(super) fn into_raw(self) -> *const Node<T> {
        let ptr = self.as_ptr();
        std::mem::forget(self);
        ptr
    }

    /// Takes back a reference leaked by [`into_raw`](Self::into_raw).
    ///
    /// # Safety
    /// `ptr` must come from `into_raw`, and that reference must not be taken
    /// back twice.
    pub(super) unsafe fn from_raw(ptr: *const Node<T>) -> Self {
        Item {
            // SAFETY: `into_raw` gave out a node's address, never null.
            node: unsafe { NonNull::new_unchecked(ptr.cast_mut()) },
            _owns: PhantomData,
        }
    }

    /// A new handle to the node at `ptr`.
    ///
    /// # Safety
    /// `ptr` must point at a live node (one whose reference count the caller
    /// knows to be positive for the duration of this call).
    pub(super) unsafe fn clone_raw(ptr: *const Node<T>) -> Self {
        // SAFETY: the node is live (the caller's promise), so reading its
        // count is sound; we add one and adopt it.
        unsafe {
            acquire_ref(&(*ptr).refs);
            Self::from_raw(ptr)
        }
    }
}

/// Adds a reference. Relaxed, as `Arc::clone`: a new handle is made from
/// an existing one, which already orders everything the node holds.
fn acquire_ref(refs: &AtomicU32) {
    if refs.fetch_add(1, Ordering::Relaxed) > MAX_REFS {
        std::process::abort();
    }
}

impl<T> Clone for Item<T> {
    fn clone(&self) -> Self {
        acquire_ref(&self.node().refs);
        Item {
            node: self.node,
            _owns: PhantomData,
        }
    }
}

impl<T> Drop for Item<T> {
    fn drop(&mut self) {
        // Release: our uses of the node happen before its free; the last
        // dropper's Acquire fence sees every other dropper's uses (the
        // protocol of `Arc::drop`).
        if self.node().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: that was the last reference: no handle and no list holds
        // the node, and `Item::new` made it with `Box`.
        drop(unsafe { Box::from_raw(self.node.as_ptr()) });
    }
}

impl<T> Deref for Item<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.node().value
    }
}

impl<T: fmt::Debug> fmt::Debug for Item<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Item").field(&self.node().value).finish()
    }
}

/// Bytes one item takes on the heap: the node (its count and lru id, the
/// value, its state word, its links), before the allocator's rounding.
pub(crate) const fn item_bytes<T>() -> usize {
    std::mem::size_of::<Node<T>>()
}

/// The value of the node at `ptr`.
///
/// # Safety
/// The node must stay alive for `'a`.
pub(super) unsafe fn value<'a, T>(ptr: *const Node<T>) -> &'a T {
    // SAFETY: forwarded to the caller.
    unsafe { &(*ptr).value }
}
