//! Tenant groups: the crate's memcg analogue.
//!
//! [`Groups`] owns a tree of groups rooted at [`GroupId::ROOT`]. It owns, per
//! group, the settings `zswap_max` and `zswap_writeback` and the memory.stat
//! counters (`zswap`, `zswapped`, `zswap_incomp`, `zswpin`, `zswpout`,
//! `zswpwb`), and it owns the offline protocol: [`Groups::offline`] reparents
//! every [`ListLru`](crate::ListLru) built on these groups before it returns.
//!
//! What it guarantees:
//! - A group is freed once it is offline and nothing refers to it: no
//!   child record, no charged entry (a reference count, the kernel's css
//!   refcount). Its record and, in every [`ListLru`](crate::ListLru) built
//!   on these groups, its lists are reset for reuse, and its index goes to
//!   a free list, reused oldest first under the index's next generation.
//!   Memory follows the groups live at once, not the groups ever made.
//! - A [`GroupId`] is an index and a generation: a stale id (of a freed
//!   group) is [`Error::UnknownGroup`], never another tenant's group.
//! - A group goes offline only when it has no online child (as `rmdir` of a
//!   cgroup with children fails), so an online group's parent is online and a
//!   reparent target always exists; a group's record outlives its children's
//!   (each holds a reference on its parent).
//! - Reads on per-item paths (parent, state, settings, counters) take no
//!   lock: group records live in a [`SegTable`](crate::table) and are never
//!   deallocated, only reused (type-stable memory, as the kernel's
//!   `SLAB_TYPESAFE_BY_RCU`), and a reader checks the generation. `create`,
//!   `offline`, freeing, the settings' setters and the tree's links (which
//!   iteration reads) are under one mutex; all are rare.
//! - Settings are hierarchical as in cgroup v2: a store is allowed only if no
//!   group on the path below the root is at its `zswap_max`
//!   ([`Groups::may_zswap`], the kernel's `obj_cgroup_may_zswap`), and
//!   writeback is off if any ancestor turns it off
//!   ([`Groups::writeback_enabled`]).
//! - Counters are hierarchical, as memory.stat reads: charging a group adds to
//!   it and to every ancestor, so a parent's `zswap` includes its children's
//!   and the bytes of an offline child stay charged to its parent until they
//!   are uncharged. Charging an offline group charges its nearest online
//!   ancestor (the kernel reparents the objcg), and says which. A child's
//!   events stay counted in its parent after the child is freed.

mod charge;
mod id;
mod iter;

pub use charge::GroupStats;
pub(crate) use charge::{sub_saturating, GroupEvent};
pub use id::{GroupId, GroupState};
pub use iter::{PreOrder, RoundRobin};

use std::collections::VecDeque;
use std::fmt;

use crate::sync::{fence, Arc, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Mutex, Ordering};
use crate::table::{SegTable, CAPACITY};
use crate::Error;

const ONLINE: u8 = 0;
const DYING: u8 = 1;
const OFFLINE: u8 = 2;
const NONE: u32 = u32::MAX;
const UNLIMITED: u64 = u64::MAX;

/// `GroupInfo::life`: the generation in the high 32 bits, references in
/// the low 32 (0: the record is free).
const REFS: u64 = u32::MAX as u64;

/// One group's record. Never deallocated while the tree lives: a freed
/// record is reset and reused under its index's next generation.
pub(crate) struct GroupInfo {
    /// Generation and references: one while online, one per child record,
    /// one per charged entry. A reader checks the generation; a reference
    /// is taken only while the count is not 0 and the generation matches.
    life: AtomicU64,
    /// The parent's index (`NONE` for the root). Set at creation, under the
    /// tree lock, before the record is published.
    parent: AtomicU32,
    state: AtomicU8,
    first_child: AtomicU32,
    last_child: AtomicU32,
    next_sibling: AtomicU32,
    zswap_max: AtomicU64,
    zswap_writeback: AtomicBool,
    zswap: AtomicU64,
    zswapped: AtomicU64,
    zswap_incomp: AtomicU64,
    zswpin: AtomicU64,
    zswpout: AtomicU64,
    zswpwb: AtomicU64,
    zswpwb_foreign: AtomicU64,
}

impl GroupInfo {
    fn new() -> Self {
        GroupInfo {
            life: AtomicU64::new(0),
            parent: AtomicU32::new(NONE),
            state: AtomicU8::new(OFFLINE),
            first_child: AtomicU32::new(NONE),
            last_child: AtomicU32::new(NONE),
            next_sibling: AtomicU32::new(NONE),
            zswap_max: AtomicU64::new(UNLIMITED),
            zswap_writeback: AtomicBool::new(true),
            zswap: AtomicU64::new(0),
            zswapped: AtomicU64::new(0),
            zswap_incomp: AtomicU64::new(0),
            zswpin: AtomicU64::new(0),
            zswpout: AtomicU64::new(0),
            zswpwb: AtomicU64::new(0),
            zswpwb_foreign: AtomicU64::new(0),
        }
    }

    /// Makes a free record the group of `parent` (under the tree lock,
    /// before it is published by `life`).
    fn reset(&self, parent: Option<GroupId>, writeback: bool) {
        let r = Ordering::Relaxed;
        self.parent
            .store(parent.map_or(NONE, |p| p.index() as u32), r);
        self.state.store(ONLINE, r);
        for link in [&self.first_child, &self.last_child, &self.next_sibling] {
            link.store(NONE, r);
        }
        self.zswap_max.store(UNLIMITED, r);
        self.zswap_writeback.store(writeback, r);
        for c in [
            &self.zswap,
            &self.zswapped,
            &self.zswap_incomp,
            &self.zswpin,
            &self.zswpout,
            &self.zswpwb,
            &self.zswpwb_foreign,
        ] {
            c.store(0, r);
        }
    }

    fn state(&self) -> GroupState {
        match self.state.load(Ordering::Acquire) {
            ONLINE => GroupState::Online,
            DYING => GroupState::Dying,
            _ => GroupState::Offline,
        }
    }

    /// The generation now.
    fn generation(&self) -> u32 {
        (self.life.load(Ordering::Acquire) >> 32) as u32
    }

    fn parent_index(&self) -> Option<u32> {
        let p = self.parent.load(Ordering::Relaxed);
        (p != NONE).then_some(p)
    }
}

/// Called by `offline` and by a group's free for every structure that
/// keeps per-group lists.
pub(crate) trait OfflineHook: Send + Sync {
    /// Moves everything of `child` onto `parent` (online) before returning.
    fn reparent(&self, child: GroupId, parent: GroupId);

    /// `group` (offline, reparented) is freed: reset what is kept for it,
    /// so its index can serve another group.
    fn release(&self, group: GroupId);
}

/// What `create`, `offline`, freeing and the tree's links serialize on.
struct Tree {
    /// Indexes handed out so far.
    next_id: u32,
    /// Indexes of freed groups, reused oldest first.
    free: VecDeque<u32>,
    hooks: Vec<(u64, Box<dyn OfflineHook>)>,
    next_hook: u64,
}

struct Inner {
    infos: SegTable<GroupInfo>,
    /// Indexes below this have records.
    len: AtomicU32,
    /// Groups live now (created and not freed), root included.
    live: AtomicU32,
    tree: Mutex<Tree>,
}

/// The tenant tree. Cloning gives another handle to the same tree.
///
/// ```
/// use zswap::{GroupId, Groups};
/// let groups = Groups::new();
/// let a = groups.create(GroupId::ROOT).unwrap();
/// let b = groups.create(a).unwrap();
/// groups.set_zswap_max(a, Some(0)).unwrap();
/// assert!(!groups.may_zswap(b).unwrap()); // an ancestor is at its max
/// groups.set_zswap_writeback(a, false).unwrap();
/// assert!(!groups.writeback_enabled(b).unwrap()); // the child follows
/// assert!(groups.offline(a).is_err()); // b is still online
/// groups.offline(b).unwrap();
/// groups.offline(a).unwrap();
/// assert_eq!(groups.iter().collect::<Vec<_>>(), vec![GroupId::ROOT]);
/// ```
#[derive(Clone)]
pub struct Groups {
    inner: Arc<Inner>,
}

impl Default for Groups {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Groups").field("len", &self.len()).finish()
    }
}

impl Groups {
    /// A tree holding only [`GroupId::ROOT`].
    pub fn new() -> Self {
        let infos = SegTable::new();
        let root = infos
            .get_or_insert_with(0, GroupInfo::new)
            .expect("index 0 fits");
        root.reset(None, true);
        // The root is never offline: its one reference never goes.
        root.life.store(1, Ordering::Release);
        Groups {
            inner: Arc::new(Inner {
                infos,
                len: AtomicU32::new(1),
                live: AtomicU32::new(1),
                tree: Mutex::new(Tree {
                    next_id: 1,
                    free: VecDeque::new(),
                    hooks: Vec::new(),
                    next_hook: 0,
                }),
            }),
        }
    }

    /// Whether two handles name the same tree.
    pub fn same_tree(&self, other: &Groups) -> bool {
        std::ptr::eq(&*self.inner, &*other.inner)
    }

    /// How many indexes have been handed out (the size of every per-group
    /// table), root included: the most groups ever live at once, not the
    /// groups ever created.
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire) as usize
    }

    /// Groups live now (created and not yet freed; online or offline),
    /// root included.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::Acquire) as usize
    }

    /// Always false: the root exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The record of `id`, if `id` names a live group (its index's
    /// generation, not freed). A record freed and reused meanwhile is
    /// memory-safe to read (records are never deallocated); callers that
    /// must not see that hold a reference (a charge) or the tree lock.
    #[inline]
    pub(crate) fn info(&self, id: GroupId) -> Result<&GroupInfo, Error> {
        if id.index() >= self.inner.len.load(Ordering::Acquire) as usize {
            return Err(Error::UnknownGroup(id));
        }
        // Not `ok_or`: a load counted the drop of an unused error here.
        let Some(info) = self.inner.infos.get(id.index()) else {
            return Err(Error::UnknownGroup(id));
        };
        let life = info.life.load(Ordering::Acquire);
        if (life >> 32) as u32 != id.generation() || life & REFS == 0 {
            return Err(Error::UnknownGroup(id));
        }
        Ok(info)
    }

    /// The id of the live group at `index` (its current generation): for
    /// structures that keep only the index of a group they hold a
    /// reference on (a charged entry).
    pub(crate) fn id_at(&self, index: u32) -> GroupId {
        let gen = self
            .inner
            .infos
            .get(index as usize)
            .map_or(0, GroupInfo::generation);
        GroupId::new(index, gen)
    }

    /// The parent of the live group `info` (the root has none).
    fn parent_of(&self, info: &GroupInfo) -> Option<GroupId> {
        info.parent_index().map(|p| self.id_at(p))
    }

    /// Takes a reference on `id` unless it is freed or being freed (the
    /// kernel's `css_tryget`); whether it did.
    fn tryget(&self, id: GroupId) -> bool {
        let Some(info) = self.inner.infos.get(id.index()) else {
            return false;
        };
        info.life
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |life| {
                ((life >> 32) as u32 == id.generation() && life & REFS != 0).then_some(life + 1)
            })
            .is_ok()
    }

    /// Drops a reference on the live group `id`; whether it was the last
    /// (the caller then frees the group, with the tree lock held).
    fn drop_ref(&self, id: GroupId) -> bool {
        let info = self.inner.infos.get(id.index()).expect("a live record");
        // AcqRel: every use under the reference happens before the free.
        info.life.fetch_sub(1, Ordering::AcqRel) & REFS == 1
    }

    /// Drops a reference on the live group `id`; the last one frees it.
    fn put(&self, id: GroupId) {
        if self.drop_ref(id) {
            let mut tree = self.inner.tree.lock();
            self.free_locked(&mut tree, id);
        }
    }

    /// Drops a reference with the tree lock held; the last one frees it.
    fn put_locked(&self, tree: &mut Tree, id: GroupId) {
        if self.drop_ref(id) {
            self.free_locked(tree, id);
        }
    }

    /// Frees `id`, whose references are all gone (so no reader can take a
    /// new one, and `info` refuses it): unlinks it from its parent's
    /// children, resets its lists in every registered lru, bumps its
    /// index's generation and queues the index for reuse; then drops its
    /// reference on its parent, which may free that too.
    fn free_locked(&self, tree: &mut Tree, id: GroupId) {
        let mut id = id;
        loop {
            let info = self.inner.infos.get(id.index()).expect("a live record");
            let parent = self.parent_of(info).expect("the root is never freed");
            self.unlink_child(parent, id);
            for (_, hook) in &tree.hooks {
                hook.release(id);
            }
            // A new generation, no references: `info` and `tryget` refuse
            // the old id from here on.
            info.life.store(
                u64::from(id.generation().wrapping_add(1)) << 32,
                Ordering::Release,
            );
            tree.free.push_back(id.index() as u32);
            self.inner.live.fetch_sub(1, Ordering::Relaxed);
            // The child's reference on its parent.
            if !self.drop_ref(parent) {
                return;
            }
            id = parent;
        }
    }

    /// Removes `child` from `parent`'s list of children (tree lock held).
    fn unlink_child(&self, parent: GroupId, child: GroupId) {
        let p = self.info(parent).expect("a child's parent lives");
        let c = self.inner.infos.get(child.index()).expect("a live record");
        let raw = child.index() as u32;
        let next = c.next_sibling.load(Ordering::Relaxed);
        let mut prev = NONE;
        let mut cur = p.first_child.load(Ordering::Relaxed);
        while cur != raw {
            debug_assert!(cur != NONE, "a child is on its parent's list");
            if cur == NONE {
                return;
            }
            prev = cur;
            cur = self
                .inner
                .infos
                .get(cur as usize)
                .map_or(NONE, |i| i.next_sibling.load(Ordering::Relaxed));
        }
        if prev == NONE {
            p.first_child.store(next, Ordering::Relaxed);
        } else if let Some(pi) = self.inner.infos.get(prev as usize) {
            pi.next_sibling.store(next, Ordering::Relaxed);
        }
        if p.last_child.load(Ordering::Relaxed) == raw {
            p.last_child.store(prev, Ordering::Relaxed);
        }
        c.next_sibling.store(NONE, Ordering::Relaxed);
    }

    /// Creates an online child of `parent`, at the oldest freed index (under
    /// its next generation) or a new one.
    pub fn create(&self, parent: GroupId) -> Result<GroupId, Error> {
        let mut tree = self.inner.tree.lock();
        let p = self.info(parent)?;
        if p.state() != GroupState::Online {
            return Err(Error::GroupOffline(parent));
        }
        let index = match tree.free.front() {
            Some(&i) => i,
            None if (tree.next_id as usize) < CAPACITY && tree.next_id != NONE => tree.next_id,
            None => return Err(Error::TooManyGroups),
        };
        let info = self
            .inner
            .infos
            .get_or_insert_with(index as usize, GroupInfo::new)
            .ok_or(Error::TooManyGroups)?;
        if index == tree.next_id {
            tree.next_id += 1;
            // Release pairs with the Acquire in `info`: the record exists.
            self.inner.len.store(tree.next_id, Ordering::Release);
        } else {
            tree.free.pop_front();
        }
        // cgroup v2: a new cgroup's zswap.writeback starts as its parent's.
        info.reset(Some(parent), p.zswap_writeback.load(Ordering::Relaxed));
        let gen = info.generation();
        // The parent's reference for this child.
        p.life.fetch_add(1, Ordering::Relaxed);
        // Published: one reference, its own (online). Release: the reset
        // fields are visible to whoever sees the generation.
        info.life.store(u64::from(gen) << 32 | 1, Ordering::Release);
        self.inner.live.fetch_add(1, Ordering::Relaxed);
        let last = p.last_child.load(Ordering::Relaxed);
        if last == NONE {
            p.first_child.store(index, Ordering::Relaxed);
        } else if let Some(l) = self.inner.infos.get(last as usize) {
            l.next_sibling.store(index, Ordering::Relaxed);
        }
        p.last_child.store(index, Ordering::Relaxed);
        Ok(GroupId::new(index, gen))
    }

    /// Takes `id` offline: every registered list of it is spliced into its
    /// parent's before this returns, and reclaim never targets it again. It
    /// is freed at once if nothing refers to it (no charged entry, no
    /// child), else when the last such reference goes.
    ///
    /// Fails for the root, an unknown or already offline group, and a group
    /// with an online child.
    pub fn offline(&self, id: GroupId) -> Result<(), Error> {
        let mut tree = self.inner.tree.lock();
        let info = self.info(id)?;
        let parent = self.parent_of(info).ok_or(Error::RootGroup)?;
        if info.state() != GroupState::Online {
            return Err(Error::GroupOffline(id));
        }
        if self
            .children_locked(id)
            .into_iter()
            .any(|c| self.state(c) == Ok(GroupState::Online))
        {
            return Err(Error::HasOnlineChildren(id));
        }
        // Dying first: a list allocation racing with us either happened
        // before the hooks run (and is reparented by them) or sees Dying and
        // allocates for the parent instead. SeqCst orders this store before
        // the hooks' reads of the list table, against the allocation's
        // publish-then-check (a store-buffering pair, hence the fences).
        info.state.store(DYING, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        for (_, hook) in &tree.hooks {
            hook.reparent(id, parent);
        }
        info.state.store(OFFLINE, Ordering::Release);
        // Its own reference (online).
        self.put_locked(&mut tree, id);
        Ok(())
    }

    /// `id`'s parent; `None` for the root.
    pub fn parent(&self, id: GroupId) -> Result<Option<GroupId>, Error> {
        Ok(self.parent_of(self.info(id)?))
    }

    /// `id`'s life-cycle state.
    pub fn state(&self, id: GroupId) -> Result<GroupState, Error> {
        Ok(self.info(id)?.state())
    }

    /// Whether `id` exists and is online.
    pub fn is_online(&self, id: GroupId) -> bool {
        self.state(id) == Ok(GroupState::Online)
    }

    /// `id` if online, else its nearest online ancestor (the root at worst).
    pub fn nearest_online(&self, id: GroupId) -> Result<GroupId, Error> {
        let mut cur = id;
        loop {
            let info = self.info(cur)?;
            match (info.state(), self.parent_of(info)) {
                (GroupState::Online, _) | (_, None) => return Ok(cur),
                (_, Some(p)) => cur = p,
            }
        }
    }

    /// `id`, then its parent, up to and including the root.
    pub fn ancestors(&self, id: GroupId) -> Result<impl Iterator<Item = GroupId> + '_, Error> {
        self.info(id)?;
        Ok(std::iter::successors(Some(id), move |&g| {
            self.info(g).ok().and_then(|i| self.parent_of(i))
        }))
    }

    /// The direct children of `id` now, oldest first (online or offline
    /// and not yet freed).
    pub fn children(&self, id: GroupId) -> impl Iterator<Item = GroupId> {
        let _tree = self.inner.tree.lock();
        self.children_locked(id).into_iter()
    }

    /// The children of `id`, read with the tree lock held (the links change
    /// only under it).
    fn children_locked(&self, id: GroupId) -> Vec<GroupId> {
        let mut out = Vec::new();
        let mut cur = self
            .info(id)
            .map_or(NONE, |i| i.first_child.load(Ordering::Relaxed));
        while cur != NONE {
            out.push(self.id_at(cur));
            cur = self
                .inner
                .infos
                .get(cur as usize)
                .map_or(NONE, |i| i.next_sibling.load(Ordering::Relaxed));
        }
        out
    }

    /// The online groups in pre-order from the root (`mem_cgroup_iter`).
    pub fn iter(&self) -> PreOrder<'_> {
        PreOrder::new(self)
    }

    /// Registers a structure to be reparented on every `offline`; returns
    /// the key that unregisters it.
    pub(crate) fn register_hook(&self, hook: Box<dyn OfflineHook>) -> u64 {
        let mut tree = self.inner.tree.lock();
        let key = tree.next_hook;
        tree.next_hook += 1;
        tree.hooks.push((key, hook));
        key
    }

    /// Removes a hook; the hook is dropped after the tree lock is released.
    pub(crate) fn unregister_hook(&self, key: u64) {
        let removed = {
            let mut tree = self.inner.tree.lock();
            let pos = tree.hooks.iter().position(|(k, _)| *k == key);
            pos.map(|p| tree.hooks.swap_remove(p))
        };
        drop(removed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
