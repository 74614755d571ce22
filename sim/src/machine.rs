//! The simulated machine: tenants with a resident-memory cap each, whose
//! coldest resident page (CLOCK) goes out through `Zswap::swap_out` when a
//! new page needs room, and whose faults come back through
//! `Zswap::swap_in`, checked byte for byte. Only the crate's public API is
//! used. The run's results come back as a [`Report`].

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use anyhow::{bail, Context};
use indicatif::ProgressBar;
use serde::Serialize;
use zswap::{
    Checksummed, Error, FileDevice, GroupId, Groups, LruPolicy, NodeId, PoolLimit, SwapSlot,
    Topology, WorkerPolicy, Zswap, ZswapConfig, PAGE_SIZE,
};

use crate::pages::{Contents, PageSource};
use crate::report::{GlobalReport, GroupReport, GroupSample, Report, Sample};
use crate::workload::{Access, Pattern, Rng};

/// One tenant: a group with its own memory and access pattern.
#[derive(Clone, Debug, Serialize)]
pub struct TenantSpec {
    /// Its name in the report.
    pub name: String,
    /// What it touches.
    pub pattern: Pattern,
    /// Pages it may keep resident before the coldest must go out.
    pub ram_pages: usize,
    /// Its `zswap_max` in bytes (`None`: max).
    pub zswap_max: Option<u64>,
    /// Its `zswap.writeback`.
    pub writeback: bool,
    /// What its pages hold.
    pub contents: Contents,
    /// Its share of the accesses, relative to the others'.
    pub weight: u32,
}

/// A whole run.
#[derive(Clone, Debug)]
pub struct RunSpec {
    /// The scenario's name.
    pub name: String,
    /// The tenants.
    pub tenants: Vec<TenantSpec>,
    /// The global pool limit in bytes.
    pub pool_bytes: u64,
    /// Accesses in all.
    pub accesses: u64,
    /// The compressor's name.
    pub compressor: String,
    /// Group-aware lists or one global LRU.
    pub policy: LruPolicy,
    /// How the shrink worker spreads writeback over the groups.
    pub worker_policy: WorkerPolicy,
    /// The pressure shrinker driven by the loop, as kswapd would: every
    /// `every` accesses, each group's `shrinker_count` is asked and a
    /// `1/div` share of it scanned. `None`: not driven.
    pub shrinker_drive: Option<(u64, u64)>,
    /// The shrinker's disk swap-in protection (the kernel's since 6.12).
    pub protection: bool,
    /// The pressure controller's target stall share (`--pressure`), run
    /// on the simulated stall share every 1/200 of the run.
    pub pressure: Option<f64>,
    /// The shrink worker on or off.
    pub shrinker: bool,
    /// The shrink worker on its own thread (timing-dependent results)
    /// instead of run by the simulation loop after the access whose store
    /// asked for it (the default: a seed gives the same results every run).
    pub async_worker: bool,
    /// Seed of the access streams.
    pub seed: u64,
    /// Timeline points.
    pub samples: u64,
    /// Pre-recorded page keys per tenant (trace mode) instead of patterns.
    pub keys: Option<Vec<std::sync::Arc<Vec<u64>>>>,
    /// Write back with direct I/O (`O_DIRECT`, as the kernel writes swap)
    /// instead of into the page cache.
    pub direct_io: bool,
}

impl RunSpec {
    /// Swap slots the run can need: every page any tenant can touch (a
    /// trace tenant's pattern is sized to the trace's distinct pages).
    fn swap_pages(&self) -> u64 {
        self.tenants
            .iter()
            .map(|t| t.pattern.footprint())
            .sum::<u64>()
            + 1024
    }
}

/// The policy's name on the command line and in reports.
pub fn policy_name(p: LruPolicy) -> &'static str {
    match p {
        LruPolicy::Global => "global-lru",
        _ => "group-aware",
    }
}

/// The worker policy's name on the command line and in reports.
pub fn worker_policy_name(p: WorkerPolicy) -> &'static str {
    match p {
        WorkerPolicy::Proportional => "proportional",
        _ => "round-robin",
    }
}

/// A swap file in the temporary directory, unlinked as soon as it is open:
/// the device keeps its descriptor, and nothing is left behind however the
/// run ends (an error, Ctrl-C, a kill).
/// Checksummed, as the crate's file devices are by default.
fn swap_file(pages: u64, direct: bool) -> anyhow::Result<Checksummed<FileDevice>> {
    let dir = std::env::temp_dir();
    let device = FileDevice::temp_in(&dir, pages, direct)
        .with_context(|| format!("creating a swap file in {}", dir.display()))?;
    // The device's own removal on drop then finds nothing, which it allows.
    let path = device.inner().path();
    std::fs::remove_file(path)
        .with_context(|| format!("unlinking the swap file {}", path.display()))?;
    Ok(device)
}

/// Runs `spec`; `bar` (if any) advances once per access.
pub fn run(
    spec: &RunSpec,
    source: &PageSource,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<Report> {
    let groups = Groups::new();
    let zswap = Zswap::new(
        ZswapConfig::default()
            .compressor(spec.compressor.parse()?)
            .max_pool(PoolLimit::Bytes(spec.pool_bytes))
            .shrink_worker(spec.shrinker && spec.async_worker)
            .lru_policy(spec.policy)
            .worker_policy(spec.worker_policy)
            .swapin_protection(spec.protection)
            .topology(Topology::single()),
        &groups,
    )
    .with_context(|| format!("configuring zswap with compressor {:?}", spec.compressor))?;
    zswap
        .swapon(Box::new(swap_file(spec.swap_pages(), spec.direct_io)?))
        .context("swapon")?;

    let mut tenants = Vec::new();
    for (i, t) in spec.tenants.iter().enumerate() {
        let group = groups.create(GroupId::ROOT)?;
        groups.set_zswap_max(group, t.zswap_max)?;
        groups.set_zswap_writeback(group, t.writeback)?;
        let share = spec.accesses * u64::from(t.weight)
            / spec
                .tenants
                .iter()
                .map(|t| u64::from(t.weight))
                .sum::<u64>()
                .max(1);
        let keys = match &spec.keys {
            Some(k) => Keys::Trace(k[i].clone(), 0),
            None => Keys::Pattern(t.pattern.start(spec.seed ^ ((i as u64 + 1) * 7919), share)),
        };
        tenants.push(Tenant {
            spec: t,
            group,
            salt: (i as u64 + 1) << 40,
            keys,
            mem: Memory::new(t.ram_pages),
            counts: Counts::default(),
            reclaimed: 0,
        });
    }
    let schedule: Vec<usize> = tenants
        .iter()
        .enumerate()
        .flat_map(|(i, t)| std::iter::repeat_n(i, t.spec.weight as usize))
        .collect();
    if schedule.is_empty() {
        bail!("no tenant has a share of the accesses");
    }

    let mut m = Machine {
        zswap: &zswap,
        source,
        buf: vec![0u8; PAGE_SIZE],
    };
    let every = (spec.accesses / spec.samples.max(1)).max(1);
    let mut timeline = Vec::new();
    let mut rng = Rng::new(spec.seed);
    let mut pressure = spec
        .pressure
        .map(|target| crate::pressure::PressureLoop::new(target, spec, &zswap))
        .transpose()?;
    let start = Instant::now();
    for n in 0..spec.accesses {
        let t = &mut tenants[schedule[rng.below(schedule.len() as u64) as usize]];
        if let Some(key) = t.keys.next() {
            m.touch(t, key)?;
        }
        // The worker, unthreaded: a store that hit the global limit asked
        // for a pass, which runs here, at the same point every run.
        if spec.shrinker && !spec.async_worker && zswap.take_shrink_request() {
            zswap.shrink_worker_pass();
        }
        if let Some(p) = pressure.as_mut() {
            if n % p.every == p.every - 1 {
                p.step(n + 1, &groups, &mut tenants)?;
            }
        }
        if let Some((every, div)) = spec.shrinker_drive {
            if n % every == every - 1 {
                for t in &tenants {
                    let count = zswap.shrinker_count(NodeId::ZERO, t.group)?;
                    if count > 0 {
                        let nr = (count / div).max(1) as usize;
                        zswap.shrinker_scan(NodeId::ZERO, t.group, nr)?;
                    }
                }
            }
        }
        if n % every == 0 || n + 1 == spec.accesses {
            timeline.push(sample(n + 1, &zswap, &groups, &tenants)?);
        }
        if let Some(b) = bar {
            if n % 4096 == 0 {
                b.set_position(n);
            }
        }
    }
    let elapsed = start.elapsed();
    if let Some(b) = bar {
        b.set_position(spec.accesses);
    }
    let mut r = report(spec, &zswap, &groups, &tenants, timeline, elapsed)?;
    r.pressure = pressure.map(|p| p.summary());
    Ok(r)
}

/// Where a tenant's keys come from.
#[derive(Debug)]
enum Keys {
    Pattern(Access),
    Trace(std::sync::Arc<Vec<u64>>, usize),
}

impl Keys {
    fn next(&mut self) -> Option<u64> {
        match self {
            Keys::Pattern(a) => Some(a.next_key()),
            Keys::Trace(k, i) => {
                let key = k.get(*i).copied();
                *i += 1;
                key
            }
        }
    }
}

/// What the machine counted for a tenant (the rest comes from the crate).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    /// Accesses made.
    pub accesses: u64,
    /// Accesses to a page that was swapped out.
    pub faults: u64,
    /// Pages sent out (`swap_out` calls that succeeded).
    pub swap_outs: u64,
    /// Pages zswap and the device both refused (kept resident).
    pub kept: u64,
    /// Swap-ins whose bytes were not the page that went out.
    pub corrupt: u64,
}

/// A tenant during a run: its group, keys, memory and counts.
pub(crate) struct Tenant<'a> {
    spec: &'a TenantSpec,
    pub(crate) group: GroupId,
    salt: u64,
    keys: Keys,
    mem: Memory,
    pub(crate) counts: Counts,
    /// Pool bytes the pressure controller reclaimed from it.
    pub(crate) reclaimed: u64,
}

/// A page's place.
#[derive(Clone, Copy, Debug)]
enum State {
    Resident(u32),
    Out(SwapSlot),
}

/// A tenant's memory: a CLOCK ring of resident keys and where every page is.
struct Memory {
    table: HashMap<u64, State, BuildHasherDefault<KeyHasher>>,
    ring: Vec<u64>,
    referenced: Vec<bool>,
    hand: usize,
    cap: usize,
}

impl Memory {
    fn new(cap: usize) -> Self {
        Memory {
            table: HashMap::default(),
            ring: Vec::with_capacity(cap),
            referenced: Vec::with_capacity(cap),
            hand: 0,
            cap: cap.max(1),
        }
    }
}

struct Machine<'a> {
    zswap: &'a Zswap,
    source: &'a PageSource,
    buf: Vec<u8>,
}

impl Machine<'_> {
    fn touch(&mut self, t: &mut Tenant<'_>, key: u64) -> anyhow::Result<()> {
        t.counts.accesses += 1;
        match t.mem.table.get(&key).copied() {
            Some(State::Resident(i)) => t.mem.referenced[i as usize] = true,
            Some(State::Out(slot)) => {
                t.counts.faults += 1;
                self.zswap
                    .swap_in(slot, &mut self.buf)
                    .with_context(|| format!("swap_in of {}'s page {key}", t.spec.name))?;
                if self.source.page(&t.spec.contents, t.salt, key) != &self.buf[..] {
                    t.counts.corrupt += 1;
                }
                self.insert(t, key)?;
            }
            None => self.insert(t, key)?,
        }
        Ok(())
    }

    /// Makes `key` resident, sending the coldest page out if the tenant is
    /// at its cap.
    fn insert(&mut self, t: &mut Tenant<'_>, key: u64) -> anyhow::Result<()> {
        let i = if t.mem.ring.len() < t.mem.cap {
            t.mem.ring.push(key);
            t.mem.referenced.push(true);
            t.mem.ring.len() - 1
        } else {
            match self.evict(t)? {
                Some(i) => {
                    t.mem.ring[i] = key;
                    t.mem.referenced[i] = true;
                    i
                }
                None => {
                    // Nothing could go out: the tenant grows past its cap.
                    t.mem.ring.push(key);
                    t.mem.referenced.push(true);
                    t.mem.ring.len() - 1
                }
            }
        };
        t.mem.table.insert(key, State::Resident(i as u32));
        Ok(())
    }

    /// CLOCK: the first unreferenced page from the hand goes out; returns
    /// its ring index, or `None` when no page could be sent out.
    fn evict(&mut self, t: &mut Tenant<'_>) -> anyhow::Result<Option<usize>> {
        let len = t.mem.ring.len();
        for _ in 0..2 * len + 1 {
            let i = t.mem.hand % len;
            t.mem.hand = (i + 1) % len;
            if std::mem::take(&mut t.mem.referenced[i]) {
                continue;
            }
            let victim = t.mem.ring[i];
            let page = self.source.page(&t.spec.contents, t.salt, victim);
            match self.zswap.swap_out(page, t.group) {
                Ok(slot) => {
                    t.counts.swap_outs += 1;
                    t.mem.table.insert(victim, State::Out(slot));
                    return Ok(Some(i));
                }
                Err(Error::Rejected | Error::SwapFull) => {
                    // Stays resident, as a page reclaim cannot write out
                    // stays in memory: the tenant grows past its cap.
                    t.counts.kept += 1;
                    t.mem.referenced[i] = true;
                    return Ok(None);
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("swap_out for {}", t.spec.name));
                }
            }
        }
        Ok(None)
    }
}

fn sample(
    at: u64,
    zswap: &Zswap,
    groups: &Groups,
    tenants: &[Tenant<'_>],
) -> anyhow::Result<Sample> {
    let mut gs = Vec::with_capacity(tenants.len());
    for t in tenants {
        let s = groups.stats(t.group)?;
        gs.push(GroupSample {
            pool_bytes: s.zswap,
            zswpwb: s.zswpwb,
            foreign: s.zswpwb_foreign,
            reclaimed: t.reclaimed,
        });
    }
    Ok(Sample {
        access: at,
        pool_total: zswap.stats().pool_total_size,
        groups: gs,
    })
}

fn report(
    spec: &RunSpec,
    zswap: &Zswap,
    groups: &Groups,
    tenants: &[Tenant<'_>],
    timeline: Vec<Sample>,
    elapsed: std::time::Duration,
) -> anyhow::Result<Report> {
    let mut out = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let s = groups.stats(t.group)?;
        let peak = timeline
            .iter()
            .map(|p| p.groups[i].pool_bytes)
            .max()
            .unwrap_or(0);
        out.push(GroupReport {
            name: t.spec.name.clone(),
            pattern: t.spec.pattern.clone(),
            ram_pages: t.spec.ram_pages as u64,
            zswap_max: t.spec.zswap_max,
            writeback: t.spec.writeback,
            accesses: t.counts.accesses,
            faults: t.counts.faults,
            swap_outs: t.counts.swap_outs,
            zswpout: s.zswpout,
            stored_pages: s.zswapped,
            pool_bytes: s.zswap,
            peak_pool_bytes: peak,
            ratio: if s.zswap > 0 {
                (s.zswapped * PAGE_SIZE as u64) as f64 / s.zswap as f64
            } else {
                0.0
            },
            zswpin: s.zswpin,
            zswpwb: s.zswpwb,
            foreign_writebacks: s.zswpwb_foreign,
            reclaimed_bytes: t.reclaimed,
            rejects: t.counts.swap_outs.saturating_sub(s.zswpout) + t.counts.kept,
            kept_resident: t.counts.kept,
            disk_reads: t.counts.faults.saturating_sub(s.zswpin),
            corrupt_swapins: t.counts.corrupt,
        });
    }
    let z = zswap.stats();
    Ok(Report {
        scenario: spec.name.clone(),
        policy: policy_name(spec.policy).into(),
        compressor: zswap.compressor().to_string(),
        device: if spec.direct_io { "direct" } else { "buffered" }.into(),
        worker_policy: worker_policy_name(spec.worker_policy).into(),
        protection: spec.protection,
        worker: match (spec.shrinker, spec.async_worker) {
            (false, _) => "off",
            (true, false) => "inline",
            (true, true) => "thread",
        }
        .into(),
        accesses: spec.accesses,
        elapsed_ms: elapsed.as_millis() as u64,
        pool_limit_bytes: spec.pool_bytes,
        groups: out,
        global: GlobalReport {
            pool_total_size: z.pool_total_size,
            peak_pool_total: timeline.iter().map(|p| p.pool_total).max().unwrap_or(0),
            stored_pages: z.stored_pages,
            same_filled_pages: z.same_filled_pages,
            stored_incompressible_pages: z.stored_incompressible_pages,
            written_back_pages: z.written_back_pages,
            pool_limit_hit: z.pool_limit_hit,
            reject_reclaim_fail: z.reject_reclaim_fail,
            reject_compress_poor: z.reject_compress_poor,
            reject_alloc_fail: z.reject_alloc_fail,
            duplicate_entry: z.duplicate_entry,
            decompress_fail: z.decompress_fail,
        },
        timeline,
        pressure: None,
        trace: None,
        check: None,
    })
}

/// Keys are already mixed or dense: a multiply-shift hash is enough.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}
