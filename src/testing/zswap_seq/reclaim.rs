//! The model's reclaim: the list walk with second chance, `shrink_memcg`,
//! the shrinker's scan, the round-robin cursor and the shrink worker.

use super::Model;
use crate::{Error, GroupId, ShrinkResult, ShrinkerScan};

/// The shrink worker's give-up count (`MAX_RECLAIM_RETRIES`).
const MAX_RECLAIM_RETRIES: u32 = 16;

impl Model {
    /// The list a group's entries go onto: its own, or the root's (which
    /// is everyone's) under [`LruPolicy::Global`](crate::LruPolicy::Global).
    pub(super) fn list_of(&self, g: usize) -> usize {
        if self.global_list {
            0
        } else {
            g
        }
    }

    /// The list walk with the writeback callback, from the cold end, one
    /// budget unit per entry shown: a referenced entry is rotated to the
    /// hot end once (second chance); on everyone's list an entry whose
    /// group may not write back is skipped; any other is written back and
    /// the walk restarts from the head. The device never fails here.
    fn walk(&mut self, list: usize, asker: Option<usize>, budget: &mut usize) -> usize {
        self.walk_bytes(list, asker, budget).0
    }

    /// [`walk`](Self::walk), with the pool bytes the written entries were
    /// charged.
    fn walk_bytes(
        &mut self,
        list: usize,
        asker: Option<usize>,
        budget: &mut usize,
    ) -> (usize, u64) {
        let (mut written, mut bytes) = (0, 0);
        let mut i = 0;
        while let Some(&slot) = self.lists.get(&list).and_then(|l| l.get(i)) {
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            let e = self.entries.get_mut(&slot).expect("listed entries exist");
            if e.referenced {
                e.referenced = false;
                let l = self.lists.get_mut(&list).expect("walked");
                let last = i + 1 == l.len();
                l.remove(i);
                l.push(slot);
                // The walk goes on from the rotated entry's old successor,
                // which is none if it was last.
                if last {
                    break;
                }
                continue;
            }
            let group = e.group;
            if self.global_list && !self.writeback_enabled(group) {
                i += 1;
                continue;
            }
            let e = self.entries.remove(&slot).expect("listed entries exist");
            self.device
                .insert(slot, (e.page, (group, self.groups[group].gen)));
            bytes += e.len;
            self.count(group, |s| s.zswpwb += 1);
            // Counted before the free, which may free the group.
            if let Some(asker) = asker {
                if !self.ancestors(group).contains(&asker) {
                    self.count(group, |s| s.zswpwb_foreign += 1);
                }
            }
            self.stats.written_back_pages += 1;
            self.free_entry(slot, e);
            written += 1;
            i = 0;
        }
        (written, bytes)
    }

    /// `shrink_memcg`: one entry from `g`'s own list.
    pub(super) fn shrink(&mut self, g: usize, for_limit: bool) -> ShrinkResult {
        if !self.groups[g].online || !self.writeback_enabled(g) {
            return ShrinkResult::Skipped;
        }
        let list = self.list_of(g);
        if self.lists.get(&list).is_none_or(Vec::is_empty) {
            return ShrinkResult::Skipped;
        }
        let mut budget = 1;
        match self.walk(list, for_limit.then_some(g), &mut budget) {
            0 => ShrinkResult::Failed,
            n => ShrinkResult::Wrote(n),
        }
    }

    /// `Zswap::shrink_group`.
    pub fn shrink_group(&mut self, id: GroupId) -> Result<ShrinkResult, Error> {
        let g = self.index(id)?;
        Ok(self.shrink(g, false))
    }

    /// `Zswap::scan` of up to `nr` entries of `id`'s own list (under
    /// [`LruPolicy::Global`] only the root's holds anything).
    pub fn scan(&mut self, id: GroupId, nr: usize) -> Result<usize, Error> {
        let g = self.index(id)?;
        if !self.writeback_enabled(g) {
            return Ok(0);
        }
        let mut budget = nr;
        Ok(self.walk(g, None, &mut budget))
    }

    /// `Zswap::shrinker_scan` of up to `nr` entries of `id`'s list (one
    /// node; nothing is ever busy here).
    pub fn shrinker_scan(&mut self, id: GroupId, nr: usize) -> Result<ShrinkerScan, Error> {
        let g = self.index(id)?;
        let mut scan = ShrinkerScan::default();
        if self.shrinker_on && self.writeback_enabled(g) {
            let mut budget = nr;
            scan.written = self.walk(self.list_of(g), None, &mut budget);
        }
        scan.stop = scan.written == 0;
        Ok(scan)
    }

    /// `Zswap::reclaim`: passes over the online subtree of `id` in
    /// pre-order, 32 entries of each candidate's list per pass, until
    /// `bytes` are freed, no group is a candidate, or 16 passes wrote
    /// nothing.
    pub fn reclaim(&mut self, id: GroupId, bytes: u64) -> Result<u64, Error> {
        let g = self.index(id)?;
        if !self.groups[g].online {
            return Err(Error::GroupOffline(id));
        }
        let (mut freed, mut failures) = (0, 0);
        while freed < bytes {
            let mut subtree = Vec::new();
            let mut next = Some(g);
            while let Some(x) = next {
                subtree.push(x);
                next = self
                    .pre_order_next(x, true)
                    .filter(|&n| self.ancestors(n).contains(&g));
            }
            let (mut attempted, mut wrote) = (false, false);
            for x in subtree {
                let list = self.list_of(x);
                if !self.groups[x].online
                    || !self.writeback_enabled(x)
                    || self.lists.get(&list).is_none_or(Vec::is_empty)
                {
                    continue;
                }
                attempted = true;
                let mut budget = 32;
                let (n, b) = self.walk_bytes(list, None, &mut budget);
                wrote |= n > 0;
                freed += b;
                if freed >= bytes {
                    break;
                }
            }
            if !attempted {
                break;
            }
            if !wrote {
                failures += 1;
                if failures == MAX_RECLAIM_RETRIES {
                    break;
                }
            }
        }
        Ok(freed)
    }

    /// The pre-order successor of `g`, into its children only if `descend`.
    fn pre_order_next(&self, g: usize, descend: bool) -> Option<usize> {
        if descend {
            if let Some(&c) = self.groups[g].children.first() {
                return Some(c);
            }
        }
        let mut cur = g;
        loop {
            let parent = self.groups[cur].parent?;
            let siblings = &self.groups[parent].children;
            let at = siblings
                .iter()
                .position(|&s| s == cur)
                .expect("a child of its parent");
            if let Some(&next) = siblings.get(at + 1) {
                return Some(next);
            }
            cur = parent;
        }
    }

    /// The round-robin cursor's next online group, `None` once per pass.
    fn next_group(&mut self) -> Option<usize> {
        let next = match self.cursor {
            None => Some(0),
            Some(g) => {
                let mut cur = g;
                let mut descend = self.groups[g].online;
                loop {
                    match self.pre_order_next(cur, descend) {
                        Some(n) if self.groups[n].online => break Some(n),
                        Some(n) => {
                            cur = n;
                            descend = false;
                        }
                        None => break None,
                    }
                }
            }
        };
        self.cursor = next;
        next
    }

    /// One run of the shrink worker: pages written back.
    pub fn worker_pass(&mut self) -> usize {
        if self.proportional {
            self.proportional_pass()
        } else {
            self.round_robin_pass()
        }
    }

    /// The proportional worker: rounds in which every candidate list (an
    /// online group that may write back, with entries; the root's alone
    /// under the global list) gives `ceil(32 × candidates × its length ÷
    /// all lengths)` entries, until the pool is under the threshold; 16
    /// rounds that write nothing end it.
    fn proportional_pass(&mut self) -> usize {
        let (mut failures, mut written) = (0, 0);
        while self.footprint() > self.accept_bytes {
            let mut order = Vec::new();
            let mut next = Some(0);
            while let Some(x) = next {
                order.push(x);
                next = self.pre_order_next(x, true);
            }
            let groups: Vec<usize> = if self.global_list {
                vec![0]
            } else {
                order
                    .into_iter()
                    .filter(|&x| self.groups[x].online)
                    .collect()
            };
            let candidates: Vec<(usize, usize)> = groups
                .into_iter()
                .filter(|&x| self.writeback_enabled(x))
                .map(|x| (x, self.lists.get(&self.list_of(x)).map_or(0, Vec::len)))
                .filter(|&(_, n)| n > 0)
                .collect();
            if candidates.is_empty() {
                break;
            }
            let total: usize = candidates.iter().map(|&(_, n)| n).sum();
            let budget = 32 * candidates.len();
            let mut round = 0;
            for (x, n) in candidates {
                if self.footprint() <= self.accept_bytes {
                    break;
                }
                let mut share = (budget * n).div_ceil(total).max(1);
                round += self.walk(self.list_of(x), None, &mut share);
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

    /// The kernel's round-robin worker.
    fn round_robin_pass(&mut self) -> usize {
        let (mut failures, mut attempts, mut written) = (0, 0, 0);
        while self.footprint() > self.accept_bytes {
            let Some(g) = self.next_group() else {
                if attempts == 0 {
                    failures += 1;
                    if failures == MAX_RECLAIM_RETRIES {
                        break;
                    }
                }
                attempts = 0;
                continue;
            };
            match self.shrink(g, false) {
                ShrinkResult::Skipped => {}
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

    /// Entries on `id`'s own list (`Zswap::count`).
    pub fn listed(&self, id: GroupId) -> usize {
        self.lists.get(&id.index()).map_or(0, Vec::len)
    }
}
