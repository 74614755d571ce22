//! Tenant groups: the crate's memcg analogue.
//!
//! [`Groups`] owns a tree of groups rooted at [`GroupId::ROOT`]. It owns, per
//! group, the settings `zswap_max` and `zswap_writeback` and the memory.stat
//! counters (`zswap`, `zswapped`, `zswap_incomp`, `zswpin`, `zswpout`,
//! `zswpwb`), and it owns the offline protocol: [`Groups::offline`] reparents
//! every [`ListLru`](crate::ListLru) built on these groups before it returns.
//!
//! What it guarantees:
//! - Ids are dense, handed out in creation order and never reused: an
//!   offline group keeps its id, its place in the tree and its counters.
//! - A group goes offline only when it has no online child (as `rmdir` of a
//!   cgroup with children fails), so an online group's parent is online and a
//!   reparent target always exists.
//! - Reads on per-item paths (parent, state, settings, counters) take no lock:
//!   group records live in a [`SegTable`](crate::table) and the tree links are
//!   atomics that only ever go from "none" to a value. `create` and `offline`
//!   serialize on one mutex; they are rare.
//! - Settings are hierarchical as in cgroup v2: a store is allowed only if no
//!   group on the path below the root is at its `zswap_max`
//!   ([`Groups::may_zswap`], the kernel's `obj_cgroup_may_zswap`), and
//!   writeback is off if any ancestor turns it off
//!   ([`Groups::writeback_enabled`]).
//! - Counters are hierarchical, as memory.stat reads: charging a group adds to
//!   it and to every ancestor, so a parent's `zswap` includes its children's
//!   and the bytes of an offline child stay charged to its parent until they
//!   are uncharged. Charging an offline group charges its nearest online
//!   ancestor (the kernel reparents the objcg), and says which.

mod iter;

pub use iter::{PreOrder, RoundRobin};

use std::fmt;

use crate::sync::{fence, Arc, AtomicBool, AtomicU32, AtomicU64, AtomicU8, Mutex, Ordering};
use crate::table::{SegTable, CAPACITY};
use crate::Error;

/// A tenant group's id. [`GroupId::ROOT`] always exists.
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(u32);

impl GroupId {
    /// The root group.
    pub const ROOT: GroupId = GroupId(0);

    /// The id with raw number `raw`; whether such a group exists is checked
    /// where it is used.
    pub const fn from_raw(raw: u32) -> GroupId {
        GroupId(raw)
    }

    /// The raw number.
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// The id as an index into per-group tables.
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "group{}", self.0)
    }
}

/// A hierarchical counter snapshot of one group, named as in memory.stat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Bytes of compressed pool charged (`zswap`).
    pub zswap: u64,
    /// Pages stored (`zswapped`).
    pub zswapped: u64,
    /// Pages stored uncompressed (`zswap_incomp`).
    pub zswap_incomp: u64,
    /// Pages loaded back from zswap (`zswpin`).
    pub zswpin: u64,
    /// Pages stored into zswap (`zswpout`).
    pub zswpout: u64,
    /// Pages written back to the swap device (`zswpwb`).
    pub zswpwb: u64,
    /// Of `zswpwb`, pages written back because *another* group hit its
    /// `zswap_max` (not a kernel key: what [`LruPolicy::Global`] costs the
    /// bystanders; always 0 under [`LruPolicy::PerGroup`]).
    ///
    /// [`LruPolicy::Global`]: crate::LruPolicy::Global
    /// [`LruPolicy::PerGroup`]: crate::LruPolicy::PerGroup
    pub zswpwb_foreign: u64,
}

/// An event counted per group, hierarchically. Crate-private, as the
/// charges are: only the zswap that owns the entries counts them, so no
/// client can make the counters disagree with what is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GroupEvent {
    /// A page was stored (`zswpout`).
    Zswpout,
    /// A page was loaded (`zswpin`).
    Zswpin,
    /// A page was written back (`zswpwb`).
    Zswpwb,
    /// A page was written back for another group's limit
    /// ([`GroupStats::zswpwb_foreign`]).
    ZswpwbForeign,
}

/// A group's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// Usable.
    Online,
    /// `offline` is reparenting it; nothing new lands on its lists.
    Dying,
    /// Reparented; its id and counters remain.
    Offline,
}

const ONLINE: u8 = 0;
const DYING: u8 = 1;
const OFFLINE: u8 = 2;
const NONE: u32 = u32::MAX;
const UNLIMITED: u64 = u64::MAX;

/// One group's record. Immutable fields are set before publication.
pub(crate) struct GroupInfo {
    parent: Option<GroupId>,
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
    fn new(parent: Option<GroupId>) -> Self {
        GroupInfo {
            parent,
            state: AtomicU8::new(ONLINE),
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

    fn state(&self) -> GroupState {
        match self.state.load(Ordering::Acquire) {
            ONLINE => GroupState::Online,
            DYING => GroupState::Dying,
            _ => GroupState::Offline,
        }
    }
}

/// Called by `offline` for every structure that keeps per-group lists.
pub(crate) trait OfflineHook: Send + Sync {
    /// Moves everything of `child` onto `parent` (online) before returning.
    fn reparent(&self, child: GroupId, parent: GroupId);
}

/// What `create` and `offline` serialize on.
struct Tree {
    next_id: u32,
    hooks: Vec<(u64, Box<dyn OfflineHook>)>,
    next_hook: u64,
}

struct Inner {
    infos: SegTable<GroupInfo>,
    /// Ids below this are published.
    len: AtomicU32,
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
        infos.get_or_insert_with(0, || GroupInfo::new(None));
        Groups {
            inner: Arc::new(Inner {
                infos,
                len: AtomicU32::new(1),
                tree: Mutex::new(Tree {
                    next_id: 1,
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

    /// How many ids have been handed out (online or not), root included.
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire) as usize
    }

    /// Always false: the root exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    #[inline]
    pub(crate) fn info(&self, id: GroupId) -> Result<&GroupInfo, Error> {
        if id.0 >= self.inner.len.load(Ordering::Acquire) {
            return Err(Error::UnknownGroup(id));
        }
        self.inner
            .infos
            .get(id.index())
            .ok_or(Error::UnknownGroup(id))
    }

    /// Creates an online child of `parent`.
    pub fn create(&self, parent: GroupId) -> Result<GroupId, Error> {
        let mut tree = self.inner.tree.lock();
        let p = self.info(parent)?;
        if p.state() != GroupState::Online {
            return Err(Error::GroupOffline(parent));
        }
        let raw = tree.next_id;
        if raw as usize >= CAPACITY || raw == NONE {
            return Err(Error::TooManyGroups);
        }
        let id = GroupId(raw);
        let inherit = p.zswap_writeback.load(Ordering::Relaxed);
        let info = self
            .inner
            .infos
            .get_or_insert_with(id.index(), || GroupInfo::new(Some(parent)))
            .ok_or(Error::TooManyGroups)?;
        // cgroup v2: a new cgroup's zswap.writeback starts as its parent's.
        info.zswap_writeback.store(inherit, Ordering::Relaxed);
        tree.next_id += 1;
        // Publish the id before linking it, so a reader that finds it by a
        // link can look it up. Release pairs with the Acquire in `info`.
        self.inner.len.store(tree.next_id, Ordering::Release);
        let last = p.last_child.load(Ordering::Relaxed);
        if last == NONE {
            p.first_child.store(raw, Ordering::Release);
        } else {
            self.info(GroupId(last))?
                .next_sibling
                .store(raw, Ordering::Release);
        }
        p.last_child.store(raw, Ordering::Relaxed);
        Ok(id)
    }

    /// Takes `id` offline: every registered list of it is spliced into its
    /// parent's before this returns, and reclaim never targets it again.
    ///
    /// Fails for the root, an unknown or already offline group, and a group
    /// with an online child.
    pub fn offline(&self, id: GroupId) -> Result<(), Error> {
        let tree = self.inner.tree.lock();
        let info = self.info(id)?;
        let parent = info.parent.ok_or(Error::RootGroup)?;
        if info.state() != GroupState::Online {
            return Err(Error::GroupOffline(id));
        }
        if self
            .children(id)
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
        Ok(())
    }

    /// `id`'s parent; `None` for the root.
    pub fn parent(&self, id: GroupId) -> Result<Option<GroupId>, Error> {
        Ok(self.info(id)?.parent)
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
            match (info.state(), info.parent) {
                (GroupState::Online, _) | (_, None) => return Ok(cur),
                (_, Some(p)) => cur = p,
            }
        }
    }

    /// `id`, then its parent, up to and including the root.
    pub fn ancestors(&self, id: GroupId) -> Result<impl Iterator<Item = GroupId> + '_, Error> {
        self.info(id)?;
        Ok(std::iter::successors(Some(id), move |&g| {
            self.info(g).ok().and_then(|i| i.parent)
        }))
    }

    /// The direct children of `id`, oldest first (online or not).
    pub fn children(&self, id: GroupId) -> impl Iterator<Item = GroupId> + '_ {
        let first = self
            .info(id)
            .map_or(NONE, |i| i.first_child.load(Ordering::Acquire));
        std::iter::successors((first != NONE).then_some(GroupId(first)), move |&c| {
            let next = self.info(c).ok()?.next_sibling.load(Ordering::Acquire);
            (next != NONE).then_some(GroupId(next))
        })
    }

    /// The online groups in pre-order from the root (`mem_cgroup_iter`).
    pub fn iter(&self) -> PreOrder<'_> {
        PreOrder::new(self)
    }

    fn non_root(&self, id: GroupId) -> Result<&GroupInfo, Error> {
        let info = self.info(id)?;
        if info.parent.is_none() {
            return Err(Error::RootGroup);
        }
        Ok(info)
    }

    /// Sets `memory.zswap.max` of a non-root group: `None` is "max".
    pub fn set_zswap_max(&self, id: GroupId, max: Option<u64>) -> Result<(), Error> {
        let v = max.map_or(UNLIMITED, |m| m.min(UNLIMITED - 1));
        self.non_root(id)?.zswap_max.store(v, Ordering::Relaxed);
        Ok(())
    }

    /// `memory.zswap.max` of `id` itself; `None` is "max".
    pub fn zswap_max(&self, id: GroupId) -> Result<Option<u64>, Error> {
        let v = self.info(id)?.zswap_max.load(Ordering::Relaxed);
        Ok((v != UNLIMITED).then_some(v))
    }

    /// Sets `memory.zswap.writeback` of a non-root group.
    pub fn set_zswap_writeback(&self, id: GroupId, enabled: bool) -> Result<(), Error> {
        self.non_root(id)?
            .zswap_writeback
            .store(enabled, Ordering::Relaxed);
        Ok(())
    }

    /// `memory.zswap.writeback` of `id` itself.
    pub fn zswap_writeback(&self, id: GroupId) -> Result<bool, Error> {
        Ok(self.info(id)?.zswap_writeback.load(Ordering::Relaxed))
    }

    /// Whether `id`'s pages may be written back: no group from `id` to the
    /// root has writeback turned off.
    pub fn writeback_enabled(&self, id: GroupId) -> Result<bool, Error> {
        for g in self.ancestors(id)? {
            if !self.info(g)?.zswap_writeback.load(Ordering::Relaxed) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether `id` may store more (`obj_cgroup_may_zswap`): for `id` and each
    /// ancestor below the root, "max" passes, 0 fails, otherwise the
    /// hierarchical `zswap` usage must be under the max. Optimistic, as in
    /// the kernel: the charge happens after compression.
    pub fn may_zswap(&self, id: GroupId) -> Result<bool, Error> {
        for g in self.ancestors(id)? {
            let info = self.info(g)?;
            if info.parent.is_none() {
                break;
            }
            let max = info.zswap_max.load(Ordering::Relaxed);
            if max == UNLIMITED {
                continue;
            }
            if max == 0 || info.zswap.load(Ordering::Relaxed) >= max {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The nearest group on the path from `id` to the root that is over its
    /// `zswap_max`: the one whose lists reclaim should shrink.
    pub fn over_limit(&self, id: GroupId) -> Result<Option<GroupId>, Error> {
        for g in self.ancestors(id)? {
            let info = self.info(g)?;
            let max = info.zswap_max.load(Ordering::Relaxed);
            if info.parent.is_some()
                && max != UNLIMITED
                && info.zswap.load(Ordering::Relaxed) >= max
            {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    /// Charges one stored page of `bytes` to `id` (or, if `id` is offline, to
    /// its nearest online ancestor) and every ancestor; returns the group
    /// actually charged, which the uncharge must name. Crate-private: the
    /// charges are the entries', and only the zswap that holds them may
    /// change them.
    pub(crate) fn charge(
        &self,
        id: GroupId,
        bytes: u64,
        incompressible: bool,
    ) -> Result<GroupId, Error> {
        let target = self.nearest_online(id)?;
        for g in self.ancestors(target)? {
            let info = self.info(g)?;
            info.zswap.fetch_add(bytes, Ordering::Relaxed);
            info.zswapped.fetch_add(1, Ordering::Relaxed);
            if incompressible {
                info.zswap_incomp.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(target)
    }

    /// Undoes a [`charge`](Self::charge) of the group it returned. Saturates
    /// at zero rather than wrapping if the caller uncharges more than it
    /// charged.
    pub(crate) fn uncharge(
        &self,
        id: GroupId,
        bytes: u64,
        incompressible: bool,
    ) -> Result<(), Error> {
        /// A plain subtraction, repaired if it went below zero: charges and
        /// uncharges pair up, so the repair is for a caller's bug only, and
        /// the common case stays one atomic operation.
        fn sub(a: &AtomicU64, n: u64) {
            let prev = a.fetch_sub(n, Ordering::Relaxed);
            if prev < n {
                let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(if v > u64::MAX / 2 { 0 } else { v })
                });
            }
        }
        for g in self.ancestors(id)? {
            let info = self.info(g)?;
            sub(&info.zswap, bytes);
            sub(&info.zswapped, 1);
            if incompressible {
                sub(&info.zswap_incomp, 1);
            }
        }
        Ok(())
    }

    /// Counts `event` for `id` and every ancestor.
    pub(crate) fn count_event(&self, id: GroupId, event: GroupEvent) -> Result<(), Error> {
        for g in self.ancestors(id)? {
            let info = self.info(g)?;
            let c = match event {
                GroupEvent::Zswpout => &info.zswpout,
                GroupEvent::Zswpin => &info.zswpin,
                GroupEvent::Zswpwb => &info.zswpwb,
                GroupEvent::ZswpwbForeign => &info.zswpwb_foreign,
            };
            c.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// `id`'s hierarchical counters (itself and all descendants).
    pub fn stats(&self, id: GroupId) -> Result<GroupStats, Error> {
        let i = self.info(id)?;
        Ok(GroupStats {
            zswap: i.zswap.load(Ordering::Relaxed),
            zswapped: i.zswapped.load(Ordering::Relaxed),
            zswap_incomp: i.zswap_incomp.load(Ordering::Relaxed),
            zswpin: i.zswpin.load(Ordering::Relaxed),
            zswpout: i.zswpout.load(Ordering::Relaxed),
            zswpwb: i.zswpwb.load(Ordering::Relaxed),
            zswpwb_foreign: i.zswpwb_foreign.load(Ordering::Relaxed),
        })
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
