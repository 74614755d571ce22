//! A harness that drives the [`Zswap`] facade with random operations and
//! runs the sequential model (`zswap_seq/`) beside it. After every step:
//! the operation returned what the model says; every live slot's page is
//! where the model says (zswap or the device) and byte-equal to what went
//! out; every debugfs counter, every group's memory.stat counters and every
//! list's count equal the model's. Driven by `tests/zswap_model.rs`
//! (proptest) and the `zswap_ops` fuzz target.

use super::zswap_seq::{Model, Place};
use crate::{
    AreaId, Compressor, Error, GroupId, Groups, LruPolicy, MemDevice, NodeId, PoolLimit, SwapSlot,
    Topology, WorkerPolicy, Zswap, ZswapConfig, PAGE_SIZE,
};

/// One operation; picks are taken modulo what exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZswapOp {
    /// `swap_out` of page `page` for group `group`.
    SwapOut { page: u16, group: u8 },
    /// `swap_in` of a live slot (checked byte for byte).
    SwapIn { pick: u16 },
    /// `free` of a live slot.
    Free { pick: u16 },
    /// `set_zswap_max` (in KiB; `None`: max).
    SetMax { group: u8, kib: Option<u16> },
    /// `set_zswap_writeback`.
    SetWriteback { group: u8, enabled: bool },
    /// `Groups::create`.
    Create { parent: u8 },
    /// `Groups::offline`.
    Offline { group: u8 },
    /// `shrink_group`.
    Shrink { group: u8 },
    /// `scan` of up to `nr` entries.
    Scan { group: u8, nr: u8 },
    /// One shrink worker run.
    WorkerPass,
    /// `compact`.
    Compact,
    /// `set_compressor`.
    SetCompressor { which: u8 },
    /// `swapoff` of the area (refused while a slot is live), then a
    /// `swapon` that must reuse its index under the next generation, with
    /// the old id's slots refused.
    AreaCycle,
    /// `shrinker_count` (which consumes disk swap-ins).
    ShrinkerCount { group: u8 },
    /// `shrinker_scan` of up to `nr` entries.
    ShrinkerScan { group: u8, nr: u8 },
    /// `reclaim` of `kib` KiB from a subtree.
    Reclaim { group: u8, kib: u16 },
    /// `set_shrinker_enabled`.
    SetShrinker { on: bool },
}

/// The facade under test and its model.
pub struct ZswapHarness {
    groups: Groups,
    zswap: Zswap,
    model: Model,
    pages: &'static [Vec<u8>],
    /// Live slots, in the order picks index them.
    live: Vec<SwapSlot>,
    ids: Vec<GroupId>,
    /// The area swapped on now.
    area: AreaId,
}

/// Pages: real ones if the sample is at hand, same-filled, and random.
/// Read and built once per process: a fuzzer runs the harness thousands of
/// times a second, and reading the 8 MiB sample each time made it crawl.
fn make_pages() -> &'static [Vec<u8>] {
    static PAGES: crate::sync::unmodeled::OnceLock<Vec<Vec<u8>>> =
        crate::sync::unmodeled::OnceLock::new();
    PAGES.get_or_init(|| {
        let mut pages: Vec<Vec<u8>> = super::sample_pages().into_iter().step_by(37).collect();
        pages.push(vec![0; PAGE_SIZE]);
        pages.push(vec![0xab; PAGE_SIZE]);
        pages.extend((1..=4).map(super::random_page));
        pages
    })
}

impl Default for ZswapHarness {
    fn default() -> Self {
        Self::new()
    }
}

/// The group `pick` names: one past the end names one that does not exist.
fn pick_group(ids: &[GroupId], pick: u8) -> GroupId {
    let i = usize::from(pick) % (ids.len() + 1);
    ids.get(i).copied().unwrap_or(GroupId::from_raw(9999))
}

/// `Ok` if the real result equals the model's, else what differed.
fn same<T: PartialEq + std::fmt::Debug>(what: &str, real: T, model: T) -> Result<(), String> {
    if real == model {
        Ok(())
    } else {
        Err(format!("{what}: got {real:?}, the model says {model:?}"))
    }
}

impl ZswapHarness {
    /// A zswap with a 192 KiB pool limit over a 4096-page memory device.
    pub fn new() -> Self {
        Self::with_policy(LruPolicy::PerGroup)
    }

    /// The same with the lists of `policy`.
    pub fn with_policy(policy: LruPolicy) -> Self {
        Self::with_policies(policy, WorkerPolicy::RoundRobin)
    }

    /// The same with the lists of `policy` and the shrink worker of
    /// `worker`.
    pub fn with_policies(policy: LruPolicy, worker: WorkerPolicy) -> Self {
        let groups = Groups::new();
        let zswap = Zswap::new(
            ZswapConfig::default()
                .shrink_worker(false)
                .worker_policy(worker)
                .lru_policy(policy)
                .topology(Topology::single())
                .max_pool(PoolLimit::Bytes(192 * 1024)),
            &groups,
        )
        .expect("valid config");
        let area = zswap
            .swapon(Box::new(MemDevice::new(4096)))
            .expect("swapon");
        let (max, accept) = zswap.limits();
        let model = Model::new(zswap.compressor(), max, accept, policy);
        ZswapHarness {
            model: match worker {
                WorkerPolicy::Proportional => model.with_proportional_worker(),
                _ => model,
            },
            groups,
            zswap,
            pages: make_pages(),
            live: Vec::new(),
            ids: vec![GroupId::ROOT],
            area,
        }
    }

    /// Applies `op` to both and compares; `Err` says what differed.
    pub fn apply(&mut self, op: &ZswapOp) -> Result<(), String> {
        self.step(op)
            .and_then(|()| self.check())
            .map_err(|e| format!("after {op:?}: {e}"))
    }

    fn step(&mut self, op: &ZswapOp) -> Result<(), String> {
        let (z, g, m) = (&self.zswap, &self.groups, &mut self.model);
        let group_of = |p| pick_group(&self.ids, p);
        match *op {
            ZswapOp::SwapOut { page, group } => {
                let i = usize::from(page) % self.pages.len();
                let gid = group_of(group);
                let want = m.swap_out(i, &self.pages[i], gid);
                match (z.swap_out(&self.pages[i], gid), want) {
                    (Ok(slot), Ok((_, pending))) => {
                        // Where it went is checked with every live slot.
                        m.place(slot.offset, pending);
                        self.live.push(slot);
                    }
                    (real, want) => same("swap_out", real.map(|_| ()), want.map(|_| ()))?,
                }
            }
            ZswapOp::SwapIn { pick } | ZswapOp::Free { pick } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let slot = self.live.swap_remove(usize::from(pick) % self.live.len());
                if matches!(op, ZswapOp::Free { .. }) {
                    z.free(slot).map_err(|e| e.to_string())?;
                    m.free(slot.offset);
                } else {
                    let mut page = vec![0u8; PAGE_SIZE];
                    z.swap_in(slot, &mut page).map_err(|e| e.to_string())?;
                    let (_, i) = m.swap_in(slot.offset).ok_or("a live slot the model lost")?;
                    if page != self.pages[i] {
                        return Err(format!("{slot} read back other bytes"));
                    }
                }
            }
            ZswapOp::SetMax { group, kib } => {
                let (gid, max) = (group_of(group), kib.map(|k| u64::from(k) * 1024));
                same(
                    "set_zswap_max",
                    g.set_zswap_max(gid, max),
                    m.set_max(gid, max),
                )?;
            }
            ZswapOp::SetWriteback { group, enabled } => {
                let gid = group_of(group);
                same(
                    "set_zswap_writeback",
                    g.set_zswap_writeback(gid, enabled),
                    m.set_writeback(gid, enabled),
                )?;
            }
            ZswapOp::Create { parent } => {
                // Ids of freed groups stay in `ids` (stale, to be refused);
                // creating stops at 12, freed indexes reused meanwhile.
                if self.ids.len() < 12 {
                    let parent = group_of(parent);
                    let id = g.create(parent);
                    same("create", id.clone(), m.create(parent))?;
                    if let Ok(id) = id {
                        self.ids.push(id);
                    }
                }
            }
            ZswapOp::Offline { group } => {
                let gid = group_of(group);
                same("offline", g.offline(gid), m.offline(gid))?;
            }
            ZswapOp::Shrink { group } => {
                let gid = group_of(group);
                same("shrink_group", z.shrink_group(gid), m.shrink_group(gid))?;
            }
            ZswapOp::Scan { group, nr } => {
                let (gid, nr) = (group_of(group), usize::from(nr));
                same("scan", z.scan(NodeId::ZERO, gid, nr), m.scan(gid, nr))?;
            }
            ZswapOp::ShrinkerCount { group } => {
                let gid = group_of(group);
                same(
                    "shrinker_count",
                    z.shrinker_count(NodeId::ZERO, gid),
                    m.shrinker_count(gid),
                )?;
            }
            ZswapOp::ShrinkerScan { group, nr } => {
                let (gid, nr) = (group_of(group), usize::from(nr));
                same(
                    "shrinker_scan",
                    z.shrinker_scan(NodeId::ZERO, gid, nr),
                    m.shrinker_scan(gid, nr),
                )?;
            }
            ZswapOp::Reclaim { group, kib } => {
                let (gid, bytes) = (group_of(group), u64::from(kib) * 1024);
                same("reclaim", z.reclaim(gid, bytes), m.reclaim(gid, bytes))?;
            }
            ZswapOp::SetShrinker { on } => {
                z.set_shrinker_enabled(on);
                m.set_shrinker_enabled(on);
            }
            ZswapOp::WorkerPass => {
                same("shrink worker", z.shrink_worker_pass(), m.worker_pass())?;
            }
            ZswapOp::Compact => {
                same("compact", z.compact(), m.compact())?;
            }
            ZswapOp::AreaCycle => {
                let old = self.area;
                let idle = self.live.is_empty();
                let want = if idle {
                    Ok(())
                } else {
                    Err(Error::AreaBusy(old))
                };
                same("swapoff", z.swapoff(old), want)?;
                if idle {
                    let stale = SwapSlot {
                        area: old,
                        offset: 0,
                    };
                    same(
                        "store to a swapped-off area",
                        z.store(stale, &self.pages[0], GroupId::ROOT, NodeId::ZERO),
                        Err(Error::UnknownArea(old)),
                    )?;
                    let new = z
                        .swapon(Box::new(MemDevice::new(4096)))
                        .map_err(|e| e.to_string())?;
                    same(
                        "the reused area id",
                        (new.index(), new.generation()),
                        (old.index(), old.generation() + 1),
                    )?;
                    self.area = new;
                }
                same("live areas", z.live_areas_and_pools().0, 1)?;
            }
            ZswapOp::SetCompressor { which } => {
                let names = Compressor::names();
                let name = names[usize::from(which) % names.len()];
                let c = Compressor::by_name(name).map_err(|e| e.to_string())?;
                z.set_compressor(c).map_err(|e| e.to_string())?;
                m.set_compressor(c);
            }
        }
        Ok(())
    }

    /// Every live page, every counter and every list count against the
    /// model.
    fn check(&self) -> Result<(), String> {
        same("stats", self.zswap.stats(), self.model.stats())?;
        // Old pools are given back when their last entry goes.
        same(
            "live pools",
            self.zswap.live_areas_and_pools().1,
            self.model.live_pools(),
        )?;
        // Groups are freed when offline and unreferenced, and their ids
        // reused: the live ones must match, and every id the harness ever
        // held is either live in both or refused by both.
        same(
            "live groups",
            self.groups.live(),
            self.model.live_groups().len(),
        )?;
        for &id in &self.ids {
            same(
                &format!("{id}'s state"),
                self.groups.state(id).map(|_| ()),
                self.model.group_stats(id).map(|_| ()),
            )?;
        }
        for id in self.model.live_groups() {
            same(
                &format!("{id:?}'s stats"),
                self.groups.stats(id),
                self.model.group_stats(id),
            )?;
            same(
                &format!("{id:?}'s list count"),
                self.zswap.count(NodeId::ZERO, id),
                Ok(self.model.listed(id)),
            )?;
            same(
                &format!("{id:?}'s disk swap-ins"),
                self.zswap.disk_swapins(NodeId::ZERO, id),
                self.model.disk_swapins(id),
            )?;
        }
        same("live slots", self.live.len(), self.model.slots().count())?;
        let mut page = vec![0u8; PAGE_SIZE];
        for &slot in &self.live {
            let (place, i) = self
                .model
                .place_of(slot.offset)
                .ok_or_else(|| format!("{slot} is live but the model has no page for it"))?;
            let in_zswap = self
                .zswap
                .peek(slot, &mut page)
                .map_err(|e| e.to_string())?;
            same(&format!("{slot}'s place"), in_zswap, place == Place::Zswap)?;
            if page != self.pages[i] {
                return Err(format!("{slot} holds other bytes"));
            }
        }
        Ok(())
    }

    /// Swaps every live slot in; afterwards nothing may be stored or
    /// charged, and the counters still equal the model's.
    pub fn drain(&mut self) -> Result<(), String> {
        for slot in std::mem::take(&mut self.live) {
            let mut page = vec![0u8; PAGE_SIZE];
            self.zswap
                .swap_in(slot, &mut page)
                .map_err(|e| e.to_string())?;
            let (_, i) = self
                .model
                .swap_in(slot.offset)
                .ok_or("a live slot the model lost")?;
            if page != self.pages[i] {
                return Err(format!("{slot} read back other bytes at the end"));
            }
        }
        self.check()?;
        let s = self.zswap.stats();
        let root = self
            .groups
            .stats(GroupId::ROOT)
            .map_err(|e| e.to_string())?;
        if s.stored_pages != 0 || root.zswap != 0 || root.zswapped != 0 {
            return Err(format!("left over: {s:?} {root:?}"));
        }
        Ok(())
    }
}

/// Decodes fuzzer bytes into operations.
pub fn decode_ops(data: &[u8]) -> Vec<ZswapOp> {
    let mut it = data.iter().copied();
    let mut ops = Vec::new();
    while let Some(tag) = it.next() {
        let mut b = || it.next().unwrap_or(0);
        ops.push(match tag % 16 {
            0..=5 => ZswapOp::SwapOut {
                page: u16::from_le_bytes([b(), b()]),
                group: b(),
            },
            6 | 7 => ZswapOp::SwapIn {
                pick: u16::from_le_bytes([b(), b()]),
            },
            8 => ZswapOp::Free {
                pick: u16::from_le_bytes([b(), b()]),
            },
            9 => {
                let (group, k) = (b(), b());
                ZswapOp::SetMax {
                    group,
                    kib: (k != 255).then_some(u16::from(k) * 4),
                }
            }
            10 => {
                let (group, e) = (b(), b());
                ZswapOp::SetWriteback {
                    group,
                    enabled: e % 4 != 0,
                }
            }
            11 => ZswapOp::Create { parent: b() },
            12 => ZswapOp::Offline { group: b() },
            13 => {
                let (group, nr) = (b(), b());
                ZswapOp::Scan { group, nr: nr % 16 }
            }
            14 => match b() % 8 {
                0 => ZswapOp::WorkerPass,
                1 => ZswapOp::Shrink { group: b() },
                2 => ZswapOp::Compact,
                3 => ZswapOp::AreaCycle,
                4 => ZswapOp::ShrinkerCount { group: b() },
                5 => {
                    let (group, nr) = (b(), b());
                    ZswapOp::ShrinkerScan { group, nr: nr % 16 }
                }
                6 => {
                    let (group, k) = (b(), b());
                    ZswapOp::Reclaim {
                        group,
                        kib: u16::from(k) * 2,
                    }
                }
                _ => ZswapOp::SetShrinker { on: b() % 4 != 0 },
            },
            _ => ZswapOp::SetCompressor { which: b() },
        });
    }
    ops
}

/// The `zswap_ops` fuzz target's body.
pub fn run_bytes(data: &[u8]) {
    let mut h = ZswapHarness::new();
    for op in decode_ops(data).iter().take(400) {
        if let Err(e) = h.apply(op) {
            panic!("Zswap broke an invariant: {e}");
        }
    }
    if let Err(e) = h.drain() {
        panic!("Zswap drain: {e}");
    }
}
