//! Reclaim: writeback of one entry, the walk that writes back from one
//! list, shrinking one group's lists (`shrink_memcg`) and the round-robin
//! shrink worker's pass. The pressure shrinker and proactive reclaim build
//! on the walk (`shrinker.rs`); the worker's thread is `worker.rs`.
//!
//! Writeback (`zswap_writeback_entry`), the protocol IMPLEMENTATION.md
//! sets out under "One rule for every race":
//! 1. the walker isolates the coldest entry and releases the list lock;
//! 2. writeback *tries* the slot's pin — a holder (load, store, invalidate in
//!    flight) means the slot is busy, and writeback skips it;
//! 3. holding the pin, it checks that the index still maps the slot to
//!    *this* entry — if not, the entry was invalidated or replaced, and its
//!    remover has freed it: nothing to do;
//! 4. it decompresses and writes the page to the device; on a device error
//!    the entry goes back on its list, untouched (nothing is lost);
//! 5. it takes the entry out of the index (it still maps: the pin excludes
//!    every other change) and frees it, then drops the pin.
//!
//! Because a slot freed while pinned is released only when the pin goes,
//! the slot cannot be reused while step 4's write is in flight: the
//! recycled-slot race (CVE-2023-53178) cannot happen.

use std::cell::RefCell;

use super::entry::{Entry, SlotIndex};
use super::stats::inc;
use super::Inner;
use crate::swap::AlignedPage;
use crate::{GroupEvent, GroupId, Item, LruPolicy, LruStatus, NodeId, WorkerPolicy};

// The page writeback decompresses into: aligned, so a direct device
// writes it as it is.
crate::sync::thread_scratch! {
    static PAGE_BUF: RefCell<Option<Box<AlignedPage>>> = RefCell::new(None);
}

/// The kernel's `MAX_RECLAIM_RETRIES`: fruitless passes before the shrink
/// worker gives up.
pub(crate) const MAX_RECLAIM_RETRIES: u32 = 16;

/// Entries written back per group and node in one pass of proactive
/// reclaim, and per group on average in one round of the proportional
/// worker (the kernel's `SWAP_CLUSTER_MAX`).
pub(crate) const RECLAIM_BATCH: usize = 32;

/// What shrinking one group did (`shrink_memcg`'s return).
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, ShrinkResult, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT)?;
/// let zswap = Zswap::new(ZswapConfig::default(), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(8)))?;
/// assert_eq!(zswap.shrink_group(tenant)?, ShrinkResult::Skipped); // nothing stored
/// let page: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
/// zswap.swap_out(&page, tenant)?;
/// // The first pass clears the entry's referenced mark (second chance)...
/// assert_eq!(zswap.shrink_group(tenant)?, ShrinkResult::Failed);
/// // ...the second writes it back.
/// assert_eq!(zswap.shrink_group(tenant)?, ShrinkResult::Wrote(1));
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShrinkResult {
    /// Not a candidate: offline, writeback disabled, or nothing stored
    /// (`-ENOENT`); not counted as a failure.
    Skipped,
    /// Walked but wrote nothing back (`-EAGAIN`).
    Failed,
    /// Wrote back this many pages.
    Wrote(usize),
}

/// What one walk of a list wrote back.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Walked {
    /// Pages written back.
    pub(super) written: usize,
    /// Pool bytes they were charged (what writing them back freed).
    pub(super) bytes: u64,
    /// Whether the walk met a slot busy in the swap cache (pinned) and
    /// stopped there (the kernel's `encountered_page_in_swapcache`).
    pub(super) busy: bool,
}

/// What writing one entry back came to.
enum Writeback {
    /// Written back; the pool bytes it was charged.
    Written(u64),
    /// Invalidated or replaced meanwhile; its remover freed it.
    Gone,
    /// The slot's pin is held (a load, store or invalidate in flight, or a
    /// shrinker checking a stale entry of the same slot); the caller puts
    /// the entry back.
    Busy,
    /// Decompression or the device failed; the entry is back on its list.
    Failed,
}

impl Inner {
    /// The group `entry` is charged to (it holds a reference on it, so the
    /// live group at its index is its own).
    pub(super) fn group_of(&self, entry: &Entry) -> GroupId {
        self.groups.id_at(entry.group_index())
    }

    /// The group whose lists hold `group`'s entries: itself, or everyone's
    /// one list (`GroupId::ROOT`) under [`LruPolicy::Global`].
    pub(super) fn list_group(&self, group: GroupId) -> GroupId {
        match self.cfg.lru_policy {
            LruPolicy::PerGroup => group,
            LruPolicy::Global => GroupId::ROOT,
        }
    }

    /// Writes `entry` back; `for_limit`: the group whose limit asked, so a
    /// writeback of anyone else's page counts as foreign.
    fn writeback_entry(&self, entry: &Item<Entry>, for_limit: Option<GroupId>) -> Writeback {
        let slot = entry.slot();
        // By index: the entry does not keep its area's generation. A newer
        // area at the index (this one swapped off, its slots all freed,
        // and a swapon since) holds no slot that maps to this entry, so
        // the re-check below gives up.
        let Some(area) = self.area_at(slot.area.index()) else {
            return Writeback::Gone;
        };
        let Some(pin) = area.slots.try_pin(slot.offset) else {
            return Writeback::Busy;
        };
        if !pin.maps_to(entry) {
            return Writeback::Gone;
        }
        let pool = self.pool_of(entry);
        let written = PAGE_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            let page = &mut buf.get_or_insert_with(AlignedPage::boxed).0;
            self.decompress(entry, pool.as_deref(), page)
                .and_then(|()| area.device.write_page(u64::from(slot.offset), page))
        });
        if written.is_err() {
            // Still mapped (we hold the pin): back on its list, as it was.
            let _ = self
                .lru
                .putback(entry, entry.node(), self.list_group(self.group_of(entry)));
            return Writeback::Failed;
        }
        let removed = pin.remove();
        debug_assert!(removed.as_ref().is_some_and(|r| Item::ptr_eq(r, entry)));
        // Counted before the free, which may free the entry's group (its
        // last reference); `zswpwb` by the free's own uncharge.
        let group = self.group_of(entry);
        // The slot's page is on the device now: the cell records its owner,
        // whose swap-in from the device the shrinker will hear of.
        pin.set_owner(group);
        if let Some(asker) = for_limit {
            if !self.owns(asker, group) {
                let _ = self.groups.count_event(group, GroupEvent::ZswpwbForeign);
            }
        }
        inc(&self.stats.written_back_pages);
        let bytes = entry.data().charged_len();
        self.free_entry_in(entry, pool, Some(GroupEvent::Zswpwb));
        drop(pin);
        Writeback::Written(bytes)
    }

    /// Puts back an entry whose slot was busy. The pin holder usually
    /// removes it, but need not (the holder may be another shrinker checking
    /// a stale entry of the same slot), and an entry left isolated could
    /// never be reclaimed. The remover marks the entry dead, then unlinks
    /// it; we link it, then read the mark. Both marks are read-modify-writes
    /// on `dead` with AcqRel, so they are ordered: if ours comes second we
    /// see `dead` and unlink the entry ourselves; if ours comes first, it
    /// releases our link to the remover, whose unlink then finds the entry
    /// linked and removes it. Either way no freed entry stays on a list.
    /// (A SeqCst store and load would leave a store-buffering window, and
    /// loom finds it.)
    fn putback_busy(&self, entry: &Item<Entry>) {
        if self
            .lru
            .putback(entry, entry.node(), self.list_group(self.group_of(entry)))
            .unwrap_or(false)
            && entry.is_dead()
        {
            let _ = self.lru.del(entry);
        }
    }

    /// Walks one list with the writeback callback (`shrink_memcg_cb`).
    /// `for_limit`: the group whose `zswap_max` asked for this walk, so
    /// that writebacks of anyone else's pages count as foreign.
    pub(super) fn walk_writeback(
        &self,
        node: NodeId,
        list: GroupId,
        for_limit: Option<GroupId>,
        budget: &mut usize,
    ) -> Walked {
        let global = self.cfg.lru_policy == LruPolicy::Global;
        let mut walked = Walked::default();
        let _ = self.lru.walk_one(node, list, budget, |g| {
            // Second chance: a referenced entry is rotated once.
            if g.item().take_referenced() {
                return LruStatus::Rotate;
            }
            // On everyone's list, an entry whose group disabled writeback
            // stays (on per-group lists the whole walk is skipped).
            if global
                && !self
                    .groups
                    .writeback_enabled(self.group_of(g.item()))
                    .unwrap_or(false)
            {
                return LruStatus::Skip;
            }
            let Some(entry) = g.isolate() else {
                return LruStatus::Skip;
            };
            let result = g.unlocked(|| {
                let r = self.writeback_entry(&entry, for_limit);
                if matches!(r, Writeback::Busy) {
                    self.putback_busy(&entry);
                }
                r
            });
            match result {
                Writeback::Written(bytes) => {
                    walked.written += 1;
                    walked.bytes += bytes;
                    LruStatus::RemovedRetry
                }
                Writeback::Gone => LruStatus::RemovedRetry,
                Writeback::Busy => {
                    // A swap-in made it hot: we are shrinking into the warm
                    // end; stop (the kernel's EEXIST → LRU_STOP).
                    inc(&self.stats.reject_reclaim_fail);
                    walked.busy = true;
                    LruStatus::Stop
                }
                Writeback::Failed => {
                    inc(&self.stats.reject_reclaim_fail);
                    LruStatus::RemovedRetry
                }
            }
        });
        walked
    }

    /// Whether `asker`'s pages include `group`'s: itself or a descendant.
    pub(super) fn owns(&self, asker: GroupId, group: GroupId) -> bool {
        self.groups
            .ancestors(group)
            .is_ok_and(|mut a| a.any(|g| g == asker))
    }

    /// `shrink_memcg`: one entry per node from `group`'s own lists (from
    /// everyone's list under [`LruPolicy::Global`]). `for_limit` is set when
    /// `group`'s own `zswap_max` asked (the store path).
    pub(super) fn shrink_group(&self, group: GroupId, for_limit: bool) -> ShrinkResult {
        match self.shrink_lists(group, for_limit.then_some(group), 1) {
            None => ShrinkResult::Skipped,
            Some(w) if w.written > 0 => ShrinkResult::Wrote(w.written),
            Some(_) => ShrinkResult::Failed,
        }
    }

    /// Walks `group`'s own lists, `per_node` entries of each node's; `None`
    /// if it is no candidate (offline, writeback disabled, nothing stored:
    /// `-ENOENT`).
    pub(super) fn shrink_lists(
        &self,
        group: GroupId,
        for_limit: Option<GroupId>,
        per_node: usize,
    ) -> Option<Walked> {
        if !self.groups.is_online(group) || !self.groups.writeback_enabled(group).unwrap_or(false) {
            return None;
        }
        if self.listed(group) == 0 {
            return None;
        }
        let list = self.list_group(group);
        let nodes = self.lru.nr_nodes();
        let mut all = Walked::default();
        for n in 0..nodes {
            let mut budget = per_node;
            let w = self.walk_writeback(NodeId(n as u32), list, for_limit, &mut budget);
            all.written += w.written;
            all.bytes += w.bytes;
            all.busy |= w.busy;
        }
        Some(all)
    }

    /// A raw scan: up to `nr` entries of one list, whatever the shrinker
    /// setting (what [`Zswap::scan`](super::Zswap::scan) does).
    pub(super) fn scan(
        &self,
        node: NodeId,
        group: GroupId,
        nr: usize,
    ) -> Result<usize, crate::Error> {
        self.lru.count_objects(node, group)?;
        if !self.groups.writeback_enabled(group)? {
            return Ok(0);
        }
        let mut budget = nr;
        Ok(self.walk_writeback(node, group, None, &mut budget).written)
    }

    /// One run of the shrink worker, by the configured policy.
    pub(super) fn shrink_worker_pass(&self) -> usize {
        match self.cfg.worker_policy {
            WorkerPolicy::RoundRobin => self.shrink_round_robin(),
            WorkerPolicy::Proportional => self.shrink_proportional(),
        }
    }

    /// A run of [`WorkerPolicy::Proportional`]: rounds over the candidate
    /// lists (the online groups that may write back and store something,
    /// in pre-order; everyone's one list under [`LruPolicy::Global`]),
    /// each round writing back from each in proportion to its length,
    /// `32 × candidates` entries in all (at least one per group), until
    /// the pool is under the accept threshold. A round that writes nothing
    /// counts a failure; 16 end the run, as the round-robin worker's do.
    fn shrink_proportional(&self) -> usize {
        let (mut failures, mut written) = (0u32, 0usize);
        while self.pool_total_size() > self.accept_bytes {
            let groups: Vec<GroupId> = match self.cfg.lru_policy {
                LruPolicy::PerGroup => self.groups.iter().collect(),
                LruPolicy::Global => vec![GroupId::ROOT],
            };
            let candidates: Vec<(GroupId, usize)> = groups
                .into_iter()
                .filter(|&g| self.groups.writeback_enabled(g).unwrap_or(false))
                .map(|g| (g, self.listed(g)))
                .filter(|&(_, n)| n > 0)
                .collect();
            if candidates.is_empty() {
                break;
            }
            let total: usize = candidates.iter().map(|&(_, n)| n).sum();
            let budget = RECLAIM_BATCH * candidates.len();
            let mut round = 0;
            for (g, n) in candidates {
                if self.pool_total_size() <= self.accept_bytes {
                    break;
                }
                let share = (budget * n).div_ceil(total).max(1);
                round += self.shrink_lists(g, None, share).map_or(0, |w| w.written);
            }
            written += round;
            if round == 0 {
                failures += 1;
                if failures == MAX_RECLAIM_RETRIES {
                    break;
                }
            }
        }
        written
    }

    /// Entries on `group`'s own lists, all nodes.
    fn listed(&self, group: GroupId) -> usize {
        let list = self.list_group(group);
        (0..self.lru.nr_nodes())
            .map(|n| self.lru.count_one(NodeId(n as u32), list).unwrap_or(0))
            .sum()
    }

    /// One run of the kernel's `shrink_worker`: round-robin over the
    /// online groups from the persistent cursor until the pool is under the
    /// accept threshold; groups with nothing to write back are skipped
    /// without counting; a pass with no attempt, or a failed attempt, counts
    /// a failure; 16 failures end the run.
    fn shrink_round_robin(&self) -> usize {
        let (mut failures, mut attempts, mut written) = (0u32, 0u32, 0usize);
        while self.pool_total_size() > self.accept_bytes {
            let Some(group) = self.cursor.next(&self.groups) else {
                if attempts == 0 {
                    failures += 1;
                    if failures == MAX_RECLAIM_RETRIES {
                        break;
                    }
                }
                attempts = 0;
                continue;
            };
            match self.shrink_group(group, false) {
                ShrinkResult::Skipped => continue,
                ShrinkResult::Wrote(n) => {
                    attempts += 1;
                    written += n;
                }
                ShrinkResult::Failed => {
                    attempts += 1;
                    failures += 1;
                    if failures == MAX_RECLAIM_RETRIES {
                        break;
                    }
                }
            }
        }
        written
    }
}
