//! [`ListLru<T>`]: the kernel's memcg- and NUMA-aware `list_lru`, generic.
//!
//! One list per (node, group), each with its own lock and count (the v6.13+
//! layout); a group's lists are made the first time the group adds something,
//! together with any ancestor's that are missing, so that a reparent target
//! always exists (`memcg_list_lru_alloc`). A group-unaware lru has one list
//! per node and ignores the group argument, as the kernel does.
//!
//! What it guarantees (each point is checked by the proptest model in
//! `tests/lru_model.rs` and the loom models in `loom-tests/`):
//! - `add`, `del`, `rotate`, `isolate` and `putback` are O(1), allocate
//!   nothing once the group's lists exist, and take exactly one list lock;
//!   nothing on a per-item path takes a lock shared by all groups.
//! - An item keeps its identity across rotate, isolate, putback and
//!   reparenting; `del` of an item a walker has isolated is a no-op that
//!   says so ([`Del::Isolated`]).
//! - Counts change at the moment an item is linked or unlinked, under that
//!   list's lock, and are read without a lock: at every quiescent point
//!   `count_one` is the length of the list, `count_node` and `count` the sums,
//!   and none can go below zero.
//! - When a group goes offline ([`Groups::offline`]), each of its lists is
//!   spliced onto the head (cold end) of its parent's, its items' words
//!   rewritten, and left behind forwarding to the parent's; an operation
//!   racing with that lands on the right list (see `list.rs`). When the
//!   group is freed (nothing refers to it), its lists are reset, and the
//!   next group of its index takes them over: list memory follows the most
//!   groups live at once. An operation on a freed group's id is
//!   [`Error::UnknownGroup`].
//!
//! Locking rule for callers: a walk callback runs under a list lock and must
//! not call this lru's methods directly (that would take a second list lock
//! in an order reparenting does not expect, or the same lock twice); it acts
//! on its item through the [`WalkGuard`], and does anything else inside
//! [`WalkGuard::unlocked`]. `T`'s `Drop` may run under a list lock when a
//! callback drops the last handle to an item it isolated.

mod cell;
mod item;
mod list;
mod lists;
mod walk;

pub(crate) use cell::{ItemCell, TAG_MAX};
pub(crate) use item::item_bytes;
pub use item::Item;
pub use walk::{LruStatus, WalkGuard};

use std::fmt;

use item::{LruId, Node, Word, DETACHED, ISOLATED, LINKED};
use list::{Guard, ListOne};
use lists::{GroupLists, LruHook, LruInner};

use crate::sync::{fence, Arc, Ordering};
use crate::table::SegTable;
use crate::{Error, GroupId, Groups, NodeId, Topology};

/// What [`ListLru::del`] found.
///
/// ```
/// use zswap::{Del, GroupId, Item, ListLru, NodeId, Topology};
/// let lru = ListLru::new(&Topology::single());
/// let item = Item::new("page");
/// lru.add(&item, NodeId::ZERO, GroupId::ROOT)?;
/// assert_eq!(lru.del(&item)?, Del::Removed);
/// assert_eq!(lru.del(&item)?, Del::NotOnList);
/// lru.add(&item, NodeId::ZERO, GroupId::ROOT)?;
/// lru.isolate(&item)?; // a shrinker holds it now
/// assert_eq!(lru.del(&item)?, Del::Isolated);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Del {
    /// The item was on a list and is now off it.
    Removed,
    /// A walker (or [`ListLru::isolate`]) holds the item; nothing changed.
    Isolated,
    /// The item was on no list; nothing changed.
    NotOnList,
}

/// What a [`ListLru::scan_objects`] pass did.
///
/// ```
/// use zswap::{GroupId, Item, ListLru, LruStatus, NodeId, Topology};
/// let lru = ListLru::new(&Topology::single());
/// let items: Vec<_> = (0..5).map(Item::new).collect();
/// for i in &items {
///     lru.add(i, NodeId::ZERO, GroupId::ROOT)?;
/// }
/// // Isolate the even ones among the three coldest.
/// let scan = lru.scan_objects(NodeId::ZERO, GroupId::ROOT, 3, |g| {
///     if *g.item() % 2 == 0 {
///         g.isolate();
///         zswap::LruStatus::Removed
///     } else {
///         LruStatus::Rotate
///     }
/// })?;
/// assert_eq!((scan.scanned, scan.isolated), (3, 2));
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Scan {
    /// Items shown to the callback.
    pub scanned: usize,
    /// Items the callback isolated.
    pub isolated: usize,
}

/// A generic, NUMA-node- and group-sharded LRU (the kernel's `list_lru`).
///
/// ```
/// use zswap::{GroupId, Groups, Item, ListLru, LruStatus, NodeId, Topology};
///
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT).unwrap();
/// let lru = ListLru::with_groups(&Topology::single(), &groups);
/// let pages: Vec<_> = (0..4).map(Item::new).collect();
/// for p in &pages {
///     lru.add(p, NodeId::ZERO, tenant).unwrap();
/// }
/// lru.rotate(&pages[0]).unwrap(); // touched: now the hottest
///
/// // Reclaim two of the coldest, keeping what we took.
/// let mut taken = Vec::new();
/// let mut budget = 2;
/// lru.walk_one(NodeId::ZERO, tenant, &mut budget, |g| {
///     taken.push(*g.item());
///     g.isolate();
///     LruStatus::Removed
/// })
/// .unwrap();
/// assert_eq!(taken, vec![1, 2]);
/// assert_eq!(lru.count_one(NodeId::ZERO, tenant).unwrap(), 2);
///
/// // Offline the tenant: its items move to the root's list.
/// groups.offline(tenant).unwrap();
/// assert_eq!(lru.count_one(NodeId::ZERO, GroupId::ROOT).unwrap(), 2);
/// assert_eq!(lru.del(&pages[3]).unwrap(), zswap::Del::Removed);
/// ```
pub struct ListLru<T> {
    inner: Arc<LruInner<T>>,
    hook: Option<u64>,
}

impl<T> fmt::Debug for ListLru<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListLru")
            .field("nr_nodes", &self.inner.nr_nodes)
            .field("group_aware", &self.inner.groups.is_some())
            .field("count", &self.count())
            .finish()
    }
}

impl<T> Drop for ListLru<T> {
    fn drop(&mut self) {
        if let (Some(key), Some(groups)) = (self.hook, self.inner.groups.as_ref()) {
            groups.unregister_hook(key);
        }
    }
}

impl<T> ListLru<T> {
    /// A group-unaware lru: one list per node of `topology`.
    pub fn new(topology: &Topology) -> Self {
        let nr_nodes = topology.nr_node_ids();
        let lists = SegTable::new();
        lists.get_or_insert_with(0, || GroupLists::new(nr_nodes, GroupId::ROOT));
        ListLru {
            inner: Arc::new(LruInner {
                nr_nodes,
                groups: None,
                lists,
                id: LruId::new(),
            }),
            hook: None,
        }
    }

    /// A group-aware lru over `groups`: one list per (node, group), made
    /// lazily; [`Groups::offline`] reparents it.
    pub fn with_groups(topology: &Topology, groups: &Groups) -> Self
    where
        T: Send + Sync + 'static,
    {
        let nr_nodes = topology.nr_node_ids();
        let lists = SegTable::new();
        lists.get_or_insert_with(0, || GroupLists::new(nr_nodes, GroupId::ROOT));
        let inner = Arc::new(LruInner {
            nr_nodes,
            groups: Some(groups.clone()),
            lists,
            id: LruId::new(),
        });
        let key = groups.register_hook(Box::new(LruHook(inner.clone())));
        ListLru {
            inner,
            hook: Some(key),
        }
    }

    /// Per-node lists: `nr_node_ids` of the topology.
    pub fn nr_nodes(&self) -> usize {
        self.inner.nr_nodes
    }

    /// Whether this lru keeps one list per group.
    pub fn is_group_aware(&self) -> bool {
        self.inner.groups.is_some()
    }

    /// The groups this lru is sharded by, if group-aware.
    pub fn groups(&self) -> Option<&Groups> {
        self.inner.groups.as_ref()
    }

    fn owner(&self) -> u32 {
        self.inner.id.get()
    }

    fn check(&self, node: NodeId, group: GroupId) -> Result<(), Error> {
        if node.index() >= self.inner.nr_nodes {
            return Err(Error::NodeOutOfRange {
                node,
                nr_nodes: self.inner.nr_nodes,
            });
        }
        if let Some(groups) = &self.inner.groups {
            groups.info(group)?;
        }
        Ok(())
    }

    /// Whether `node` belongs to this lru (`Ok(false)`: to none yet).
    fn owns(&self, node: &Node<T>) -> Result<bool, Error> {
        if node.bound_to(self.owner()) {
            Ok(true)
        } else if node.bound_to(0) {
            Ok(false)
        } else {
            Err(Error::ForeignItem)
        }
    }

    /// The list of (node, group) if it exists; no allocation. A group's
    /// index may hold the lists of an earlier group of that index, freed
    /// (or, racing a free, a later one): only lists `group` owns count.
    fn existing(&self, node: NodeId, group: GroupId) -> Option<&ListOne<T>> {
        if !self.is_group_aware() {
            return self.inner.lists.get(0)?.nodes.get(node.index());
        }
        let l = self
            .inner
            .lists
            .get(group.index())?
            .nodes
            .get(node.index())?;
        l.owned_by(group).then_some(l)
    }

    /// The list an add to (node, group) starts from, making the group's
    /// lists if needed. It may be dead; `lock_live` follows it.
    fn list_for_add(&self, node: NodeId, group: GroupId) -> Result<&ListOne<T>, Error> {
        self.check(node, group)?;
        if let Some(l) = self.existing(node, group) {
            return Ok(l);
        }
        let gl = self.alloc_group_lists(group)?;
        Ok(&gl.nodes[node.index()])
    }

    /// `memcg_list_lru_alloc`: publishes lists for the group (or, if it is
    /// no longer online, its nearest online ancestor) and every ancestor
    /// missing them, root first, so a reparent target always exists.
    #[cold]
    fn alloc_group_lists(&self, group: GroupId) -> Result<&GroupLists<T>, Error> {
        let groups = self
            .inner
            .groups
            .as_ref()
            .ok_or(Error::UnknownGroup(group))?;
        let target = groups.nearest_online(group)?;
        let chain: Vec<GroupId> = groups.ancestors(target)?.collect();
        for &g in chain.iter().rev() {
            self.inner.lists_of(g).ok_or(Error::TooManyGroups)?;
        }
        // Pairs with the fence in `Groups::offline` (store-buffering): either
        // the offline's hook sees the lists we just published and reparents
        // them, or we see the group no longer online and reparent them
        // ourselves. Reparenting is idempotent, so both doing it is fine.
        fence(Ordering::SeqCst);
        for pair in chain.windows(2) {
            let (child, parent) = (pair[0], pair[1]);
            if !groups.is_online(child) {
                self.inner.reparent(child, parent);
            }
        }
        self.inner
            .lists
            .get(target.index())
            .ok_or(Error::UnknownGroup(target))
    }

    /// Locks the live list a linked item is on; `Err(tag)` if it is not
    /// linked.
    fn lock_home(&self, node: &Node<T>) -> Result<(&ListOne<T>, Guard<'_, T>), usize> {
        loop {
            let w = node.word();
            if w.tag() != LINKED {
                return Err(w.tag());
            }
            // SAFETY: the item is bound to this lru (checked by the caller),
            // so a linked word names one of this lru's lists, which live as
            // long as `self`.
            let home: &ListOne<T> = unsafe { &*w.list() };
            let (l, g) = home.lock_live();
            // Under `l`'s lock, a word still equal to `w` means the item is on
            // `resolve(w.list()) == l`; otherwise it moved: look again.
            if node.word() == w {
                return Ok((l, g));
            }
        }
    }

    /// Adds `item` at the tail (hot end) of the list of (`node`, `group`)
    /// (`list_lru_add`). `Ok(false)` if it is on a list or isolated already.
    /// Adding to an offline group adds to its nearest online ancestor.
    pub fn add(&self, item: &Item<T>, node: NodeId, group: GroupId) -> Result<bool, Error> {
        let start = self.list_for_add(node, group)?;
        if !item.node().bind(self.owner()) {
            return Err(Error::ForeignItem);
        }
        self.link(item, start, DETACHED, group)
    }

    /// Links `item` at the tail of the live list `start` resolves to, if
    /// its state is `from` (DETACHED for `add`, ISOLATED for `putback`).
    /// A list whose group was freed meanwhile (a caller racing its own
    /// group's free) refuses: [`Error::UnknownGroup`].
    fn link(
        &self,
        item: &Item<T>,
        start: &ListOne<T>,
        from: usize,
        group: GroupId,
    ) -> Result<bool, Error> {
        let n = item.node();
        if n.word().tag() != from {
            return Ok(false);
        }
        let (l, mut ends) = start.lock_live();
        if l.is_free() {
            return Err(Error::UnknownGroup(group));
        }
        loop {
            let w = n.word();
            if w.tag() != from {
                return Ok(false);
            }
            if n.cas_word(w, Word::linked(l)).is_ok() {
                break;
            }
        }
        // SAFETY: we hold `l`'s lock, and the CAS from `from` made us the
        // only thread that may link this node; the list adopts a reference.
        unsafe { l.push_tail(&mut ends, item.clone().into_raw()) };
        Ok(true)
    }

    /// Removes `item` from its list (`list_lru_del`), wherever reparenting
    /// has moved it.
    pub fn del(&self, item: &Item<T>) -> Result<Del, Error> {
        self.take(item, Word::detached())
    }

    /// Takes `item` off its list and marks it isolated, as a walker's
    /// [`WalkGuard::isolate`] does; `Ok(false)` if it was not on a list.
    pub fn isolate(&self, item: &Item<T>) -> Result<bool, Error> {
        Ok(self.take(item, Word::isolated())? == Del::Removed)
    }

    fn take(&self, item: &Item<T>, after: Word<T>) -> Result<Del, Error> {
        let n = item.node();
        if !self.owns(n)? {
            return Ok(Del::NotOnList);
        }
        let (l, mut ends) = match self.lock_home(n) {
            Ok(locked) => locked,
            Err(ISOLATED) => return Ok(Del::Isolated),
            Err(_) => return Ok(Del::NotOnList),
        };
        // SAFETY: `lock_home` proved the item is on `l`, whose lock we hold.
        unsafe { l.unlink(&mut ends, item.as_ptr()) };
        n.set_word(after);
        drop(ends);
        // SAFETY: the list's reference, passed to us by `unlink`. The caller
        // holds another, so this never drops the value.
        drop(unsafe { Item::from_raw(item.as_ptr()) });
        Ok(Del::Removed)
    }

    /// Puts an isolated `item` back at the tail of (`node`, `group`)'s list
    /// (`list_lru_putback`); `Ok(false)` if it is not isolated. An offline
    /// group's item goes to its nearest online ancestor's list.
    pub fn putback(&self, item: &Item<T>, node: NodeId, group: GroupId) -> Result<bool, Error> {
        let start = self.list_for_add(node, group)?;
        if !self.owns(item.node())? {
            return Ok(false);
        }
        self.link(item, start, ISOLATED, group)
    }

    /// Moves `item` to the tail (hot end) of its list: it was used.
    /// `Ok(false)` if it is not on a list.
    pub fn rotate(&self, item: &Item<T>) -> Result<bool, Error> {
        if !self.owns(item.node())? {
            return Ok(false);
        }
        let Ok((l, mut ends)) = self.lock_home(item.node()) else {
            return Ok(false);
        };
        // SAFETY: `lock_home` proved the item is on `l`, whose lock we hold.
        unsafe { l.move_tail(&mut ends, item.as_ptr()) };
        Ok(true)
    }

    /// Items on the list of (`node`, `group`) (`list_lru_count_one`);
    /// 0 for a group with no lists or an offline group.
    pub fn count_one(&self, node: NodeId, group: GroupId) -> Result<usize, Error> {
        self.check(node, group)?;
        Ok(self.existing(node, group).map_or(0, ListOne::count))
    }

    /// Items on every list of `node` (`list_lru_count_node`).
    pub fn count_node(&self, node: NodeId) -> Result<usize, Error> {
        self.check(node, GroupId::ROOT)?;
        Ok((0..self.inner.slots())
            .filter_map(|gi| self.inner.lists.get(gi))
            .map(|gl| gl.nodes[node.index()].count())
            .sum())
    }

    /// Items on every list (`list_lru_count`).
    pub fn count(&self) -> usize {
        (0..self.inner.slots())
            .filter_map(|gi| self.inner.lists.get(gi))
            .flat_map(|gl| gl.nodes.iter())
            .map(ListOne::count)
            .sum()
    }

    /// Walks the list of (`node`, `group`) from the coldest item, calling
    /// `isolate` for each until `nr_to_walk` runs out (it is decremented
    /// before each call) or the callback answers [`LruStatus::Stop`]
    /// (`list_lru_walk_one`). Returns how many items the callback isolated.
    /// An offline group's list is empty: its items are on its parent's.
    pub fn walk_one<F>(
        &self,
        node: NodeId,
        group: GroupId,
        nr_to_walk: &mut usize,
        mut isolate: F,
    ) -> Result<usize, Error>
    where
        F: FnMut(&mut WalkGuard<'_, T>) -> LruStatus,
    {
        self.check(node, group)?;
        Ok(self
            .existing(node, group)
            .map_or(0, |l| walk::walk_list(l, nr_to_walk, &mut isolate)))
    }

    /// Walks every list of `node`, the root's first, then the groups' in id
    /// order (`list_lru_walk_node`). As in the kernel, `Stop` ends one list's
    /// walk, and the walk goes on to the next list while budget remains.
    pub fn walk_node<F>(
        &self,
        node: NodeId,
        nr_to_walk: &mut usize,
        mut isolate: F,
    ) -> Result<usize, Error>
    where
        F: FnMut(&mut WalkGuard<'_, T>) -> LruStatus,
    {
        self.check(node, GroupId::ROOT)?;
        let mut isolated = 0;
        for gi in 0..self.inner.slots() {
            if *nr_to_walk == 0 {
                break;
            }
            if let Some(gl) = self.inner.lists.get(gi) {
                isolated += walk::walk_list(&gl.nodes[node.index()], nr_to_walk, &mut isolate);
            }
        }
        Ok(isolated)
    }

    /// Walks every node's lists (`list_lru_walk`).
    pub fn walk<F>(&self, nr_to_walk: &mut usize, mut isolate: F) -> usize
    where
        F: FnMut(&mut WalkGuard<'_, T>) -> LruStatus,
    {
        let mut isolated = 0;
        for n in 0..self.inner.nr_nodes {
            if *nr_to_walk == 0 {
                break;
            }
            isolated += self
                .walk_node(NodeId(n as u32), nr_to_walk, &mut isolate)
                .unwrap_or(0);
        }
        isolated
    }

    /// The shrinker's count: freeable items of (`node`, `group`).
    pub fn count_objects(&self, node: NodeId, group: GroupId) -> Result<usize, Error> {
        self.count_one(node, group)
    }

    /// The shrinker's scan: walks up to `nr_to_scan` items of (`node`,
    /// `group`) with `isolate`.
    pub fn scan_objects<F>(
        &self,
        node: NodeId,
        group: GroupId,
        nr_to_scan: usize,
        isolate: F,
    ) -> Result<Scan, Error>
    where
        F: FnMut(&mut WalkGuard<'_, T>) -> LruStatus,
    {
        let mut left = nr_to_scan;
        let isolated = self.walk_one(node, group, &mut left, isolate)?;
        Ok(Scan {
            scanned: nr_to_scan - left,
            isolated,
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
