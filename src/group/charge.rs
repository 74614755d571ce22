//! What a group may store and what it is charged: the settings
//! `zswap_max` and `zswap_writeback`, read hierarchically on the store and
//! writeback paths, and the memory.stat counters ([`GroupStats`]), which
//! the zswap that holds the entries charges, uncharges and counts events
//! into. Every read and update here takes no lock (the records are
//! type-stable: see the `group` module); the setters take the tree lock so
//! that they never write a record freed and reused meanwhile.

use super::{GroupId, GroupInfo, Groups, UNLIMITED};
use crate::sync::{AtomicU64, Ordering};
use crate::Error;

/// A hierarchical counter snapshot of one group, named as in memory.stat.
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT)?;
/// let zswap = Zswap::new(ZswapConfig::default(), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(16)))?;
/// let page: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
/// let slot = zswap.swap_out(&page, tenant)?;
/// let s = groups.stats(tenant)?;
/// assert_eq!((s.zswpout, s.zswapped), (1, 1));
/// assert!(s.zswap > 0); // compressed bytes charged
/// assert_eq!(groups.stats(GroupId::ROOT)?.zswapped, 1); // hierarchical
/// zswap.free(slot)?;
/// assert_eq!(groups.stats(tenant)?.zswapped, 0);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
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

impl Groups {
    /// Runs `f` on the record of the non-root group `id` under the tree
    /// lock, so that a setter never writes a record freed and reused
    /// meanwhile.
    fn with_non_root(&self, id: GroupId, f: impl FnOnce(&GroupInfo)) -> Result<(), Error> {
        let _tree = self.inner.tree.lock();
        let info = self.info(id)?;
        if info.parent_index().is_none() {
            return Err(Error::RootGroup);
        }
        f(info);
        Ok(())
    }

    /// Sets `memory.zswap.max` of a non-root group: `None` is "max".
    pub fn set_zswap_max(&self, id: GroupId, max: Option<u64>) -> Result<(), Error> {
        let v = max.map_or(UNLIMITED, |m| m.min(UNLIMITED - 1));
        self.with_non_root(id, |i| i.zswap_max.store(v, Ordering::Relaxed))
    }

    /// `memory.zswap.max` of `id` itself; `None` is "max".
    pub fn zswap_max(&self, id: GroupId) -> Result<Option<u64>, Error> {
        let v = self.info(id)?.zswap_max.load(Ordering::Relaxed);
        Ok((v != UNLIMITED).then_some(v))
    }

    /// Sets `memory.zswap.writeback` of a non-root group.
    pub fn set_zswap_writeback(&self, id: GroupId, enabled: bool) -> Result<(), Error> {
        self.with_non_root(id, |i| i.zswap_writeback.store(enabled, Ordering::Relaxed))
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
            if info.parent_index().is_none() {
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
            if info.parent_index().is_some()
                && max != UNLIMITED
                && info.zswap.load(Ordering::Relaxed) >= max
            {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    /// Charges one stored page of `bytes` to `id` (or, if `id` is offline, to
    /// its nearest online ancestor) and every ancestor, and counts `event`
    /// (the store's `zswpout`) on the same walk up the tree; returns the
    /// group actually charged, which holds a reference for the page until
    /// [`uncharge`](Self::uncharge) names it. Crate-private: the charges are
    /// the entries', and only the zswap that holds them may change them.
    pub(crate) fn charge(
        &self,
        id: GroupId,
        bytes: u64,
        incompressible: bool,
        event: Option<GroupEvent>,
    ) -> Result<GroupId, Error> {
        let target = loop {
            let target = self.nearest_online(id)?;
            // Offline and freed since we found it: look again (`id` itself
            // gone is an error above).
            if self.tryget(target) {
                break target;
            }
        };
        for info in self.charged_path(target)? {
            info.zswap.fetch_add(bytes, Ordering::Relaxed);
            info.zswapped.fetch_add(1, Ordering::Relaxed);
            if incompressible {
                info.zswap_incomp.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(e) = event {
                counter(info, e).fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(target)
    }

    /// Undoes a [`charge`](Self::charge) of the group it returned, counting
    /// `event` (the load's `zswpin`, the writeback's `zswpwb`) on the same
    /// walk, before the page's reference goes (the last one frees an
    /// offline group, which could then count nothing). Saturates at zero
    /// rather than wrapping if the caller uncharges more than it charged.
    pub(crate) fn uncharge(
        &self,
        id: GroupId,
        bytes: u64,
        incompressible: bool,
        event: Option<GroupEvent>,
    ) -> Result<(), Error> {
        for info in self.charged_path(id)? {
            sub_saturating(&info.zswap, bytes);
            sub_saturating(&info.zswapped, 1);
            if incompressible {
                sub_saturating(&info.zswap_incomp, 1);
            }
            if let Some(e) = event {
                counter(info, e).fetch_add(1, Ordering::Relaxed);
            }
        }
        // The page's reference: the last one frees an offline group.
        self.put(id);
        Ok(())
    }

    /// The records of `id` and of each ancestor up to the root, for a
    /// caller that holds a reference on `id` (a charge). Only `id`'s record
    /// is checked against its generation: a group holds a reference on its
    /// parent, so the whole path stays the groups it was while the
    /// caller's reference lives, and a parent's record is read by its
    /// index, with no second lookup of each id (one walk, where
    /// [`ancestors`](Self::ancestors) validates every step).
    fn charged_path(&self, id: GroupId) -> Result<impl Iterator<Item = &GroupInfo>, Error> {
        let first = self.info(id)?;
        Ok(std::iter::successors(Some(first), move |info| {
            let parent = info.parent_index()?;
            Some(
                self.inner
                    .infos
                    .get(parent as usize)
                    .expect("a group's parent has a record"),
            )
        }))
    }

    /// Counts `event` for `id` and every ancestor.
    pub(crate) fn count_event(&self, id: GroupId, event: GroupEvent) -> Result<(), Error> {
        for g in self.ancestors(id)? {
            counter(self.info(g)?, event).fetch_add(1, Ordering::Relaxed);
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
}

/// The counter of `event` in a group's record.
fn counter(info: &GroupInfo, event: GroupEvent) -> &AtomicU64 {
    match event {
        GroupEvent::Zswpout => &info.zswpout,
        GroupEvent::Zswpin => &info.zswpin,
        GroupEvent::Zswpwb => &info.zswpwb,
        GroupEvent::ZswpwbForeign => &info.zswpwb_foreign,
    }
}

/// A plain subtraction, repaired if it went below zero: charges and
/// uncharges (and a gauge's increments and decrements) pair up, so the
/// repair is for a caller's bug only, and the common case stays one
/// atomic operation.
pub(crate) fn sub_saturating(a: &AtomicU64, n: u64) {
    let prev = a.fetch_sub(n, Ordering::Relaxed);
    if prev < n {
        let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(if v > u64::MAX / 2 { 0 } else { v })
        });
    }
}
