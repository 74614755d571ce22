//! Pre-order iteration over online groups, and the persistent round-robin
//! cursor reclaim uses (`mem_cgroup_iter` and zswap's `next_shrink`).
//!
//! Both read the tree's links under the tree lock (the links change when a
//! freed group is unlinked; a step is short and steps are rare: one per
//! group the shrink worker visits). A cursor stores a group *id*, never a
//! reference, so a group that goes offline cannot be pinned by it: the
//! kernel's shrink worker once held a reference to a dying memcg and kept it
//! from being freed. Here the next step from an offline group simply skips
//! its subtree (an offline group has no online descendants), and a cursor
//! whose group has been freed since starts a new pass at the root.

use super::{GroupId, Groups, NONE};
use crate::sync::{AtomicU64, Ordering};

impl Groups {
    /// The pre-order successor of `id` (live), descending into its
    /// children only when `descend`. Tree lock held.
    fn pre_order_next(&self, id: GroupId, descend: bool) -> Option<GroupId> {
        let info = self.info(id).ok()?;
        if descend {
            let first = info.first_child.load(Ordering::Relaxed);
            if first != NONE {
                return Some(self.id_at(first));
            }
        }
        let mut cur = info;
        loop {
            let sibling = cur.next_sibling.load(Ordering::Relaxed);
            if sibling != NONE {
                return Some(self.id_at(sibling));
            }
            cur = self.info(self.parent_of(cur)?).ok()?;
        }
    }

    /// The next online group after `id` in pre-order, or `None` at the end
    /// of the tree (or if `id` no longer exists). `id` itself may be
    /// offline.
    pub(crate) fn next_online_after(&self, id: GroupId) -> Option<GroupId> {
        let _tree = self.inner.tree.lock();
        let mut cur = id;
        let mut descend = self.is_online(id);
        loop {
            let next = self.pre_order_next(cur, descend)?;
            if self.is_online(next) {
                return Some(next);
            }
            cur = next;
            descend = false;
        }
    }
}

/// The online groups in pre-order, root first. Made by [`Groups::iter`].
///
/// ```
/// use zswap::{GroupId, Groups};
/// let groups = Groups::new();
/// let a = groups.create(GroupId::ROOT)?;
/// let a1 = groups.create(a)?;
/// let b = groups.create(GroupId::ROOT)?;
/// let order: Vec<GroupId> = groups.iter().collect();
/// assert_eq!(order[0], GroupId::ROOT);
/// assert_eq!(order.len(), 4);
/// assert!(order.iter().position(|&g| g == a) < order.iter().position(|&g| g == a1));
/// # let _ = b;
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Debug)]
pub struct PreOrder<'a> {
    groups: &'a Groups,
    next: Option<GroupId>,
}

impl<'a> PreOrder<'a> {
    pub(super) fn new(groups: &'a Groups) -> Self {
        PreOrder {
            groups,
            next: Some(GroupId::ROOT),
        }
    }
}

impl Iterator for PreOrder<'_> {
    type Item = GroupId;

    fn next(&mut self) -> Option<GroupId> {
        let cur = self.next?;
        self.next = self.groups.next_online_after(cur);
        Some(cur)
    }
}

/// A round-robin cursor over the online groups that persists across calls
/// and may be shared by threads (the zswap shrink worker's `next_shrink`).
///
/// Each [`next`](RoundRobin::next) returns the online group after the last
/// one returned, in pre-order from the root, and `None` once per full pass.
///
/// ```
/// use zswap::{GroupId, Groups, RoundRobin};
/// let groups = Groups::new();
/// let a = groups.create(GroupId::ROOT).unwrap();
/// let b = groups.create(GroupId::ROOT).unwrap();
/// let rr = RoundRobin::new();
/// assert_eq!(rr.next(&groups), Some(GroupId::ROOT));
/// assert_eq!(rr.next(&groups), Some(a));
/// groups.offline(b).unwrap(); // the cursor does not pin b
/// assert_eq!(rr.next(&groups), None); // end of the pass
/// assert_eq!(rr.next(&groups), Some(GroupId::ROOT));
/// ```
#[derive(Debug)]
pub struct RoundRobin {
    /// The raw id last returned, or `START` before a pass.
    pos: AtomicU64,
}

const START: u64 = u64::MAX;

impl Default for RoundRobin {
    fn default() -> Self {
        Self::new()
    }
}

impl RoundRobin {
    /// A cursor at the start of a pass.
    pub fn new() -> Self {
        RoundRobin {
            pos: AtomicU64::new(START),
        }
    }

    /// The next online group, or `None` when a pass is complete (the call
    /// after that starts a new pass at the root). If the group last
    /// returned has been freed since, a new pass starts at once.
    pub fn next(&self, groups: &Groups) -> Option<GroupId> {
        let mut cur = self.pos.load(Ordering::Acquire);
        loop {
            let candidate = match cur {
                START => Some(GroupId::ROOT),
                // Freed since it was returned: a new pass.
                raw if groups.info(GroupId::from_raw(raw)).is_err() => Some(GroupId::ROOT),
                raw => groups.next_online_after(GroupId::from_raw(raw)),
            };
            let new = candidate.map_or(START, GroupId::as_u64);
            match self
                .pos
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return candidate,
                Err(actual) => cur = actual,
            }
        }
    }

    /// The group last returned, if a pass is under way.
    pub fn position(&self) -> Option<GroupId> {
        let p = self.pos.load(Ordering::Acquire);
        (p != START).then_some(GroupId::from_raw(p))
    }
}
