//! The pressure shrinker of Linux 6.12 and later (`zswap_shrinker_count`
//! and `zswap_shrinker_scan`, the second-chance era), the disk swap-in
//! feedback it consumes (`zswap_folio_swapin`), and proactive reclaim
//! (`memory.reclaim`, zswap's part).
//!
//! The feedback: a page read back from the device, not from zswap, was
//! written back too early. The slot's owner is recorded in its index cell
//! when its page goes to the device (writeback, or a store zswap refused),
//! and the swap-in counts one against that group on the reading node. A
//! count takes up to the list's length of those off what it offers, with a
//! compare-and-swap loop, so two concurrent counts consume each swap-in
//! once between them. Each counter word packs the group's generation with
//! the count: a swap-in of a freed group whose index was reused counts for
//! nobody, and the new group starts from zero.

use super::entry::{Owner, SlotIndex};
use super::reclaim::RECLAIM_BATCH;
use super::{Inner, Zswap};
use crate::sync::{AtomicU64, Ordering};
use crate::table::SegTable;
use crate::{Error, GroupId, NodeId, PAGE_SIZE};

/// A counter word's count bits; the high 32 hold the owner's generation
/// bits.
const COUNT: u64 = u32::MAX as u64;

/// Disk swap-ins not yet consumed, per (group index, node).
pub(super) struct DiskSwapins {
    table: SegTable<Box<[AtomicU64]>>,
    nodes: usize,
}

impl DiskSwapins {
    pub(super) fn new(nodes: usize) -> Self {
        DiskSwapins {
            table: SegTable::new(),
            nodes: nodes.max(1),
        }
    }

    fn cell(&self, index: u32, node: NodeId) -> Option<&AtomicU64> {
        let cells = self.table.get_or_insert_with(index as usize, || {
            (0..self.nodes).map(|_| AtomicU64::new(0)).collect()
        })?;
        cells.get(node.index())
    }

    /// One swap-in from the device of a page `owner` wrote out.
    pub(super) fn add(&self, owner: Owner, node: NodeId) {
        let Some(c) = self.cell(owner.index, node) else {
            return;
        };
        let gen = u64::from(owner.gen) << 32;
        let mut cur = c.load(Ordering::Relaxed);
        loop {
            let new = if cur & !COUNT == gen {
                gen | ((cur & COUNT) + 1).min(COUNT)
            } else {
                gen | 1
            };
            match c.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Takes up to `freeable` of `group`'s pending swap-ins on `node`
    /// (the kernel's cmpxchg loop); returns how many it took.
    pub(super) fn consume(&self, group: GroupId, node: NodeId, freeable: u64) -> u64 {
        let Some(c) = self
            .table
            .get(group.index())
            .and_then(|cells| cells.get(node.index()))
        else {
            return 0;
        };
        let gen = u64::from(Owner::of(group).gen) << 32;
        let mut cur = c.load(Ordering::Relaxed);
        loop {
            if cur & !COUNT != gen {
                return 0;
            }
            let take = (cur & COUNT).min(freeable);
            match c.compare_exchange_weak(cur, cur - take, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return take,
                Err(now) => cur = now,
            }
        }
    }

    /// `group`'s pending swap-ins on `node` (a snapshot).
    pub(super) fn pending(&self, group: GroupId, node: NodeId) -> u64 {
        let gen = u64::from(Owner::of(group).gen) << 32;
        self.table
            .get(group.index())
            .and_then(|cells| cells.get(node.index()))
            .map(|c| c.load(Ordering::Relaxed))
            .filter(|w| w & !COUNT == gen)
            .map_or(0, |w| w & COUNT)
    }
}

/// What one [`Zswap::shrinker_scan`] did.
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, NodeId, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let g = groups.create(GroupId::ROOT)?;
/// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(64)))?;
/// let page: Vec<u8> = (0..4096).map(|i| (i * 7 % 256) as u8).collect();
/// zswap.swap_out(&page, g)?;
/// let first = zswap.shrinker_scan(NodeId::ZERO, g, 8)?; // second chance
/// assert_eq!((first.written, first.stop), (0, true));
/// let second = zswap.shrinker_scan(NodeId::ZERO, g, 8)?;
/// assert_eq!((second.written, second.stop), (1, false));
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShrinkerScan {
    /// Pages written back (the kernel's return when not `SHRINK_STOP`).
    pub written: usize,
    /// `SHRINK_STOP`: the shrinker is off or the group may not write back,
    /// the walk met a slot busy in the swap cache (a sign it reached warm
    /// pages), or nothing was written.
    pub stop: bool,
}

impl Inner {
    /// The slot's page was read from the device: one swap-in against the
    /// group that owns it, on the reading node (`zswap_folio_swapin`).
    pub(super) fn note_disk_swapin(&self, pin: &super::entry::Pin<'_>) {
        if let Some(owner) = pin.take_owner() {
            let node = self.cfg.topology.current_node();
            self.disk_swapins.add(owner, node);
        }
    }
}

impl Zswap {
    /// The kernel's `zswap_shrinker_count`: how many of `group`'s entries
    /// on `node` the pressure shrinker offers to write back. 0 when the
    /// shrinker is off, the group may not write back, or stores nothing.
    /// Otherwise the list's length, less the disk swap-ins of the group's
    /// pages on this node since the last count (consumed here: each one
    /// protects an entry once), scaled by the group's compression ratio:
    /// `freeable × (compressed bytes ÷ PAGE_SIZE) ÷ stored pages`, so the
    /// better its pages compress, the less writing them back is worth.
    /// Compressed bytes and stored pages are the group's hierarchical
    /// `zswap` and `zswapped`, as the kernel's `memcg_page_state`.
    ///
    /// ```
    /// use zswap::{GroupId, Groups, MemDevice, NodeId, Zswap, ZswapConfig};
    /// let groups = Groups::new();
    /// let g = groups.create(GroupId::ROOT)?;
    /// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups)?;
    /// zswap.swapon(Box::new(MemDevice::new(64)))?;
    /// let page: Vec<u8> = (0..4096).map(|i| (i % 7) as u8).collect();
    /// for _ in 0..8 {
    ///     zswap.swap_out(&page, g)?;
    /// }
    /// // 8 entries that compress about 40:1: writing one back frees
    /// // 1/40 of a page, so the shrinker offers none.
    /// assert_eq!(zswap.count(NodeId::ZERO, g)?, 8);
    /// assert_eq!(zswap.shrinker_count(NodeId::ZERO, g)?, 0);
    /// # Ok::<(), zswap::Error>(())
    /// ```
    pub fn shrinker_count(&self, node: NodeId, group: GroupId) -> Result<u64, Error> {
        let inner = &self.inner;
        inner.groups.state(group)?;
        let list = inner.list_group(group);
        let freeable = inner.lru.count_objects(node, list)? as u64;
        if !inner.shrinker_enabled.load(Ordering::Relaxed)
            || !inner.groups.writeback_enabled(group)?
        {
            return Ok(0);
        }
        let stats = inner.groups.stats(group)?;
        let (backing, stored) = (stats.zswap / PAGE_SIZE as u64, stats.zswapped);
        if stored == 0 || freeable == 0 {
            return Ok(0);
        }
        let freeable = if inner.cfg.swapin_protection {
            freeable - inner.disk_swapins.consume(group, node, freeable)
        } else {
            freeable
        };
        Ok((u128::from(freeable) * u128::from(backing) / u128::from(stored)) as u64)
    }

    /// The kernel's `zswap_shrinker_scan`: writes back up to `nr` of
    /// `group`'s coldest entries on `node` with second chance (a
    /// referenced entry is rotated once instead), and stops at a slot busy
    /// in the swap cache. `stop` is the kernel's `SHRINK_STOP`.
    pub fn shrinker_scan(
        &self,
        node: NodeId,
        group: GroupId,
        nr: usize,
    ) -> Result<ShrinkerScan, Error> {
        let inner = &self.inner;
        inner.groups.state(group)?;
        let list = inner.list_group(group);
        inner.lru.count_objects(node, list)?;
        if !inner.shrinker_enabled.load(Ordering::Relaxed)
            || !inner.groups.writeback_enabled(group)?
        {
            return Ok(ShrinkerScan {
                written: 0,
                stop: true,
            });
        }
        let mut budget = nr;
        let w = inner.walk_writeback(node, list, None, &mut budget);
        Ok(ShrinkerScan {
            written: w.written,
            stop: w.busy || w.written == 0,
        })
    }

    /// Turns the pressure shrinker on or off (the kernel's writable
    /// `shrinker_enabled` parameter).
    pub fn set_shrinker_enabled(&self, enabled: bool) {
        self.inner
            .shrinker_enabled
            .store(enabled, Ordering::Relaxed);
    }

    /// Disk swap-ins of `group`'s pages on `node` that no
    /// [`shrinker_count`](Self::shrinker_count) has consumed yet.
    pub fn disk_swapins(&self, node: NodeId, group: GroupId) -> Result<u64, Error> {
        self.inner.groups.state(group)?;
        self.inner
            .lru
            .count_objects(node, self.inner.list_group(group))?;
        Ok(self.inner.disk_swapins.pending(group, node))
    }

    /// Proactive reclaim of zswap's part of `memory.reclaim`: writes back
    /// from `group` and its descendants until `bytes` of compressed pool
    /// are freed or nothing more can be. Each pass visits the subtree in
    /// pre-order, `group` first, and writes back up to 32 of each group's
    /// coldest entries per node (with second chance), so the children take
    /// turns, as the kernel's memcg iteration does; a group that may not
    /// write back (or is offline, or stores nothing) is skipped. Gives up
    /// after 16 passes that wrote nothing. Returns the pool bytes freed,
    /// which may pass `bytes` by up to a batch.
    ///
    /// ```
    /// use zswap::{GroupId, Groups, MemDevice, Zswap, ZswapConfig};
    /// let groups = Groups::new();
    /// let parent = groups.create(GroupId::ROOT)?;
    /// let (a, b) = (groups.create(parent)?, groups.create(parent)?);
    /// groups.set_zswap_writeback(b, false)?;
    /// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups)?;
    /// zswap.swapon(Box::new(MemDevice::new(64)))?;
    /// let page: Vec<u8> = (0..4096).map(|i| (i * 7 % 251) as u8).collect();
    /// for g in [a, a, b, b] {
    ///     zswap.swap_out(&page, g)?;
    /// }
    /// let freed = zswap.reclaim(parent, u64::MAX)?;
    /// assert_eq!(groups.stats(a)?.zswapped, 0); // all of a's written back
    /// assert_eq!(groups.stats(b)?.zswapped, 2); // b may not write back
    /// assert!(freed > 0);
    /// # Ok::<(), zswap::Error>(())
    /// ```
    pub fn reclaim(&self, group: GroupId, bytes: u64) -> Result<u64, Error> {
        self.reclaim_from(group, bytes, true)
    }

    /// [`reclaim`](Self::reclaim) from `group`'s own lists alone, not its
    /// descendants' (the pressure controller's, which weighs each group on
    /// its own).
    pub(crate) fn reclaim_own(&self, group: GroupId, bytes: u64) -> Result<u64, Error> {
        self.reclaim_from(group, bytes, false)
    }

    /// NUMA nodes of the lists.
    pub(crate) fn nr_nodes(&self) -> usize {
        self.inner.lru.nr_nodes()
    }

    fn reclaim_from(&self, group: GroupId, bytes: u64, subtree: bool) -> Result<u64, Error> {
        let inner = &self.inner;
        if !inner.groups.is_online(group) {
            inner.groups.state(group)?;
            return Err(Error::GroupOffline(group));
        }
        let (mut freed, mut failures) = (0u64, 0u32);
        while freed < bytes {
            let subtree: Vec<GroupId> = if subtree {
                inner
                    .groups
                    .iter()
                    .filter(|&g| inner.owns(group, g))
                    .collect()
            } else {
                vec![group]
            };
            let (mut attempted, mut wrote) = (false, false);
            for g in subtree {
                let Some(w) = inner.shrink_lists(g, None, RECLAIM_BATCH) else {
                    continue;
                };
                attempted = true;
                wrote |= w.written > 0;
                freed += w.bytes;
                if freed >= bytes {
                    break;
                }
            }
            if !attempted {
                break;
            }
            if !wrote {
                failures += 1;
                if failures == super::reclaim::MAX_RECLAIM_RETRIES {
                    break;
                }
            }
        }
        Ok(freed)
    }

    /// Whether a store asked for a shrink-worker run since the last call
    /// (the pool hit its limit), taking the request. For a zswap made with
    /// [`ZswapConfig::shrink_worker`](crate::ZswapConfig::shrink_worker)
    /// off, whose caller serves requests with
    /// [`shrink_worker_pass`](Self::shrink_worker_pass) at points of its
    /// own choosing; with the worker's thread, the thread takes them.
    pub fn take_shrink_request(&self) -> bool {
        self.inner.worker.take_request()
    }
}
