//! The lists an lru owns, group by group: one [`GroupLists`] (a list per
//! node) per group index, in a lock-free table. A group's lists are made on
//! its first add, or taken over from the freed group that held its index
//! before; when the group goes offline they are spliced into its parent's
//! ([`LruHook`], registered with [`Groups`]); when it is freed they are
//! reset for the next group of the index; when the lru is dropped every
//! item still linked is detached, and only then is the lru's id given
//! back. List memory is never freed while the lru lives, so a list pointer
//! read from an item's word stays valid (see `item.rs`).

use super::item::LruId;
use super::list::ListOne;
use crate::group::OfflineHook;
use crate::sync::Arc;
use crate::table::SegTable;
use crate::{GroupId, Groups, NodeId};

/// The lists of one group, one per node.
pub(super) struct GroupLists<T> {
    pub(super) nodes: Box<[ListOne<T>]>,
}

/// What a [`ListLru`](super::ListLru) shares with its offline hook.
pub(super) struct LruInner<T> {
    pub(super) nr_nodes: usize,
    pub(super) groups: Option<Groups>,
    pub(super) lists: SegTable<GroupLists<T>>,
    /// What this lru's items are bound to; given back after `Drop` has
    /// detached them.
    pub(super) id: LruId,
}

impl<T> GroupLists<T> {
    pub(super) fn new(nr_nodes: usize, group: GroupId) -> Self {
        GroupLists {
            nodes: (0..nr_nodes)
                .map(|n| ListOne::new(NodeId(n as u32), group))
                .collect(),
        }
    }
}

impl<T> LruInner<T> {
    /// How many group slots may hold lists.
    pub(super) fn slots(&self) -> usize {
        self.groups.as_ref().map_or(1, Groups::len)
    }

    /// The lists of `group` (made or taken over if its index's lists are
    /// free), or `None` beyond the table.
    pub(super) fn lists_of(&self, group: GroupId) -> Option<&GroupLists<T>> {
        let nr_nodes = self.nr_nodes;
        let gl = self
            .lists
            .get_or_insert_with(group.index(), || GroupLists::new(nr_nodes, group))?;
        if !gl.nodes[0].owned_by(group) {
            let gone = |o: GroupId| self.groups.as_ref().is_none_or(|g| g.state(o).is_err());
            for l in gl.nodes.iter() {
                l.revive(group, gone);
            }
        }
        Some(gl)
    }

    /// Splices every list of `child` into `parent`'s.
    pub(super) fn reparent(&self, child: GroupId, parent: GroupId) {
        let Some(cl) = self.lists.get(child.index()) else {
            return;
        };
        if !cl.nodes[0].owned_by(child) {
            return; // never added to under this generation
        }
        let Some(pl) = self.lists_of(parent) else {
            return;
        };
        for (c, p) in cl.nodes.iter().zip(pl.nodes.iter()) {
            c.reparent_into(p);
        }
    }

    /// `group` was freed: its lists (dead and empty) are reset for reuse.
    fn release(&self, group: GroupId) {
        if let Some(gl) = self.lists.get(group.index()) {
            gl.nodes.iter().for_each(|l| l.release(group));
        }
    }
}

impl<T> Drop for LruInner<T> {
    fn drop(&mut self) {
        for gi in 0..self.slots() {
            if let Some(gl) = self.lists.get(gi) {
                gl.nodes.iter().for_each(ListOne::drain);
            }
        }
    }
}

/// Registered with [`Groups`] so that `offline` reparents this lru.
pub(super) struct LruHook<T>(pub(super) Arc<LruInner<T>>);

impl<T: Send + Sync> OfflineHook for LruHook<T> {
    fn reparent(&self, child: GroupId, parent: GroupId) {
        self.0.reparent(child, parent);
    }

    fn release(&self, group: GroupId) {
        self.0.release(group);
    }
}
