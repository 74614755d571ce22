//! The model's pressure shrinker: disk swap-ins counted against the
//! owner (index and generation) of the page read back, and the count that
//! consumes them, scaled by compressed pages per stored page.

use super::Model;
use crate::{Error, GroupId, PAGE_SIZE};

impl Model {
    /// A page of `owner` (index, generation) read back from the device.
    pub(super) fn disk_swapin(&mut self, (g, gen): (usize, u32)) {
        let c = self.disk_swapins.entry(g).or_insert((gen, 0));
        if c.0 != gen {
            *c = (gen, 0);
        }
        c.1 += 1;
    }

    /// `Zswap::disk_swapins` of `id` (one node).
    pub fn disk_swapins(&self, id: GroupId) -> Result<u64, Error> {
        let g = self.index(id)?;
        Ok(match self.disk_swapins.get(&g) {
            Some(&(gen, n)) if gen == self.groups[g].gen => n,
            _ => 0,
        })
    }

    /// The worker of [`WorkerPolicy::Proportional`](crate::WorkerPolicy).
    pub fn with_proportional_worker(mut self) -> Self {
        self.proportional = true;
        self
    }

    /// `Zswap::set_shrinker_enabled`.
    pub fn set_shrinker_enabled(&mut self, on: bool) {
        self.shrinker_on = on;
    }

    /// `Zswap::shrinker_count` (one node): the list's length less the
    /// disk swap-ins it consumes, scaled by compressed pages per stored
    /// page.
    pub fn shrinker_count(&mut self, id: GroupId) -> Result<u64, Error> {
        let g = self.index(id)?;
        if !self.shrinker_on || !self.writeback_enabled(g) {
            return Ok(0);
        }
        let freeable = self.lists.get(&self.list_of(g)).map_or(0, Vec::len) as u64;
        let stats = self.groups[g].stats;
        let (backing, stored) = (stats.zswap / PAGE_SIZE as u64, stats.zswapped);
        if stored == 0 || freeable == 0 {
            return Ok(0);
        }
        let gen = self.groups[g].gen;
        let consumed = match self.disk_swapins.get_mut(&g) {
            Some((c_gen, n)) if *c_gen == gen => {
                let take = (*n).min(freeable);
                *n -= take;
                take
            }
            _ => 0,
        };
        Ok((freeable - consumed) * backing / stored)
    }
}
