//! A harness that drives the [`Zswap`] facade with random operations and
//! checks it against what a sequential model knows: every live slot reads
//! back the page that went out, rejections happen only when the model says
//! they may, and the counters and charges always match the live entries.
//! Driven by `tests/zswap_model.rs` (proptest) and the `zswap_ops` fuzz
//! target.

use crate::{
    Error, GroupId, Groups, LruPolicy, MemDevice, NodeId, PoolLimit, SwapSlot, Topology, Zswap,
    ZswapConfig, PAGE_SIZE,
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
    /// `set_compressor`.
    SetCompressor { which: u8 },
}

/// The facade under test and what the model knows.
pub struct ZswapHarness {
    groups: Groups,
    zswap: Zswap,
    pages: &'static [Vec<u8>],
    live: Vec<(SwapSlot, usize)>,
    ids: Vec<GroupId>,
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

impl ZswapHarness {
    /// A zswap with a 192 KiB pool limit over a 4096-page memory device.
    pub fn new() -> Self {
        Self::with_policy(LruPolicy::PerGroup)
    }

    /// The same with the lists of `policy`.
    pub fn with_policy(policy: LruPolicy) -> Self {
        let groups = Groups::new();
        let zswap = Zswap::new(
            ZswapConfig::default()
                .shrinker(false)
                .lru_policy(policy)
                .topology(Topology::single())
                .max_pool(PoolLimit::Bytes(192 * 1024)),
            &groups,
        )
        .expect("valid config");
        zswap
            .swapon(Box::new(MemDevice::new(4096)))
            .expect("swapon");
        ZswapHarness {
            groups,
            zswap,
            pages: make_pages(),
            live: Vec::new(),
            ids: vec![GroupId::ROOT],
        }
    }

    fn group(&self, pick: u8) -> GroupId {
        // One past the end names a group that does not exist.
        let i = usize::from(pick) % (self.ids.len() + 1);
        self.ids.get(i).copied().unwrap_or(GroupId::from_raw(9999))
    }

    /// Applies `op` and checks; `Err` says what went wrong.
    pub fn apply(&mut self, op: &ZswapOp) -> Result<(), String> {
        self.step(op)
            .and_then(|()| self.check())
            .map_err(|e| format!("after {op:?}: {e}"))
    }

    fn step(&mut self, op: &ZswapOp) -> Result<(), String> {
        let z = &self.zswap;
        let g = &self.groups;
        match *op {
            ZswapOp::SwapOut { page, group } => {
                let i = usize::from(page) % self.pages.len();
                let gid = self.group(group);
                match z.swap_out(&self.pages[i], gid) {
                    Ok(slot) => self.live.push((slot, i)),
                    Err(Error::Rejected) => {
                        if g.writeback_enabled(gid) != Ok(false) {
                            return Err("rejected although writeback is allowed".into());
                        }
                    }
                    Err(Error::GroupOffline(x)) if x == gid && !g.is_online(gid) => {}
                    Err(Error::UnknownGroup(x)) if x == gid => {}
                    Err(e) => return Err(format!("swap_out: {e}")),
                }
            }
            ZswapOp::SwapIn { pick } | ZswapOp::Free { pick } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let (slot, i) = self.live.swap_remove(usize::from(pick) % self.live.len());
                if matches!(op, ZswapOp::Free { .. }) {
                    z.free(slot).map_err(|e| e.to_string())?;
                } else {
                    let mut page = vec![0u8; PAGE_SIZE];
                    z.swap_in(slot, &mut page).map_err(|e| e.to_string())?;
                    if page != self.pages[i] {
                        return Err(format!("{slot} read back other bytes"));
                    }
                }
            }
            ZswapOp::SetMax { group, kib } => {
                let _ = g.set_zswap_max(self.group(group), kib.map(|k| u64::from(k) * 1024));
            }
            ZswapOp::SetWriteback { group, enabled } => {
                let _ = g.set_zswap_writeback(self.group(group), enabled);
            }
            ZswapOp::Create { parent } => {
                if self.ids.len() < 6 {
                    if let Ok(id) = g.create(self.group(parent)) {
                        self.ids.push(id);
                    }
                }
            }
            ZswapOp::Offline { group } => {
                let _ = g.offline(self.group(group));
            }
            ZswapOp::Shrink { group } => {
                let _ = z.shrink_group(self.group(group));
            }
            ZswapOp::Scan { group, nr } => {
                let _ = z.scan(NodeId::ZERO, self.group(group), usize::from(nr));
            }
            ZswapOp::WorkerPass => {
                z.shrink_worker_pass();
            }
            ZswapOp::SetCompressor { which } => {
                let names = crate::Compressor::names();
                z.set_compressor(names[usize::from(which) % names.len()])
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Counters and charges against the live entries.
    fn check(&self) -> Result<(), String> {
        let s = self.zswap.stats();
        let root = self
            .groups
            .stats(GroupId::ROOT)
            .map_err(|e| e.to_string())?;
        if s.stored_pages > self.live.len() as u64 {
            return Err(format!(
                "{} stored for {} live slots",
                s.stored_pages,
                self.live.len()
            ));
        }
        if root.zswapped != s.stored_pages {
            return Err(format!(
                "root zswapped {} != stored {}",
                root.zswapped, s.stored_pages
            ));
        }
        if root.zswap_incomp != s.stored_incompressible_pages {
            return Err("incompressible count differs from the charges".into());
        }
        let on_lists: usize = (0..self.groups.len() as u32)
            .map(|i| {
                self.zswap
                    .count(NodeId::ZERO, GroupId::from_raw(i))
                    .unwrap_or(0)
            })
            .sum();
        if on_lists as u64 + s.same_filled_pages != s.stored_pages {
            return Err(format!(
                "{on_lists} on lists + {} same-filled != {} stored",
                s.same_filled_pages, s.stored_pages
            ));
        }
        Ok(())
    }

    /// Swaps every live slot in and checks that nothing is left charged.
    pub fn drain(&mut self) -> Result<(), String> {
        for (slot, i) in std::mem::take(&mut self.live) {
            let mut page = vec![0u8; PAGE_SIZE];
            self.zswap
                .swap_in(slot, &mut page)
                .map_err(|e| e.to_string())?;
            if page != self.pages[i] {
                return Err(format!("{slot} read back other bytes at the end"));
            }
        }
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
            14 => {
                if b() % 2 == 0 {
                    ZswapOp::WorkerPass
                } else {
                    ZswapOp::Shrink { group: b() }
                }
            }
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
