//! One run: build the groups, the zswap with its swap file, the tenants'
//! regions and the pager; start the fault handler, the reclaimer and one
//! workload thread per tenant; sample while they run; then stop and join
//! every thread, unregister the regions, free every slot and unmap
//! everything, in that order, whether the run ended by its clock, by
//! Ctrl-C or by a tenant's failure.
//!
//! The process's resident set is read before the run and at its end, so
//! two runs of one program — fully resident, then under the limits —
//! compare what the process really held.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use zswap::{
    Compressor, Error, FileDevice, GroupId, GroupStats, Groups, ListLru, PoolLimit, SwapDevice,
    Topology, Zswap, ZswapConfig, ZswapStats, PAGE_SIZE,
};

use crate::pager::{Handler, Pager, PagerCounts, Reclaimer, Tenant};
use crate::region::{rss_bytes, Region};
use crate::uffd::Uffd;
use crate::workload::{self, Ctx, Kind, Measured};

/// A tenant to run.
#[derive(Clone, Debug)]
pub struct TenantSpec {
    /// Its name.
    pub name: String,
    /// Its workload.
    pub kind: Kind,
    /// Its memory, in pages.
    pub pages: usize,
    /// Share of operations that write.
    pub write_percent: u32,
}

/// How to run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The tenants.
    pub tenants: Vec<TenantSpec>,
    /// How long the operations run, after each tenant's fill.
    pub duration: Duration,
    /// Each tenant's resident limit, percent of its pages (None: no limit,
    /// the fully resident run).
    pub resident_percent: Option<u32>,
    /// Each tenant's `zswap_max`, percent of its bytes.
    pub zswap_max_percent: u32,
    /// The global pool limit, percent of all tenants' bytes.
    pub pool_percent: u32,
    /// The compressor.
    pub compressor: Compressor,
    /// Seeds the workloads.
    pub seed: u64,
    /// How long the handler spins for the next fault before it sleeps.
    pub handler_spin: Duration,
    /// Where the swap file goes (the temp directory if None).
    pub swap_dir: Option<PathBuf>,
    /// Test hook: the swap file fails every read after this many.
    pub fail_reads_after: Option<u64>,
}

/// A point of the time series: per tenant, pages resident, in zswap, on
/// disk.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub t: f64,
    /// Per tenant `[resident, zswap, disk]`.
    pub pages: Vec<[u64; 3]>,
}

/// What one tenant did in a run.
#[derive(Debug)]
pub struct TenantRun {
    /// Its spec.
    pub spec: TenantSpec,
    /// Its resident limit in pages (`usize::MAX`: none).
    pub limit: usize,
    /// What its thread measured.
    pub measured: Measured,
    /// The pager's counters, in `Counts` order.
    pub counts: PagerCounts,
    /// Its group's zswap counters.
    pub group: GroupStats,
    /// Pages with a frame at the end, by `mincore`.
    pub resident: usize,
    /// Pages swapped out at the end, by the pager's states.
    pub swapped: u64,
    /// Why the pager stopped serving it.
    pub error: Option<String>,
}

/// What a run measured.
#[derive(Debug)]
pub struct RunResult {
    /// Per tenant.
    pub tenants: Vec<TenantRun>,
    /// Growth of the process's resident set over the run, in bytes.
    pub rss_growth: u64,
    /// zswap's counters at the end.
    pub zswap: ZswapStats,
    /// The time series, every 100 ms.
    pub series: Vec<Sample>,
}

/// A swap file that fails every read after `after` (the device-error test).
struct FailingReads<D> {
    inner: D,
    after: u64,
    reads: AtomicU64,
}

impl<D: SwapDevice> SwapDevice for FailingReads<D> {
    fn pages(&self) -> u64 {
        self.inner.pages()
    }
    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        if self.reads.fetch_add(1, Ordering::Relaxed) >= self.after {
            return Err(std::io::Error::other("injected read error").into());
        }
        self.inner.read_page(offset, page)
    }
    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        self.inner.write_page(offset, page)
    }
    fn discard(&self, offset: u64) {
        self.inner.discard(offset)
    }
}

/// Runs `cfg` until its clock ends or `stop` is set.
pub fn run(cfg: &RunConfig, stop: &Arc<AtomicBool>) -> Result<RunResult> {
    let rss0 = rss_bytes().context("reading /proc/self/statm")?;
    let groups = Groups::new();
    let total_pages: usize = cfg.tenants.iter().map(|t| t.pages).sum();
    let total_bytes = (total_pages * PAGE_SIZE) as u64;
    let mut gids = Vec::new();
    for t in &cfg.tenants {
        let g = groups.create(GroupId::ROOT)?;
        let bytes = (t.pages * PAGE_SIZE) as u64;
        groups.set_zswap_max(g, Some(bytes * u64::from(cfg.zswap_max_percent) / 100))?;
        gids.push(g);
    }
    let zcfg = ZswapConfig::default()
        .compressor(cfg.compressor)
        .topology(Topology::single())
        .max_pool(PoolLimit::Bytes(
            total_bytes * u64::from(cfg.pool_percent) / 100,
        ));
    let zswap = Arc::new(Zswap::new(zcfg, &groups)?);
    let dir = cfg.swap_dir.clone().unwrap_or_else(std::env::temp_dir);
    let file = FileDevice::temp_in(&dir, total_pages as u64, false)
        .with_context(|| format!("creating a swap file in {}", dir.display()))?;
    let device: Box<dyn SwapDevice> = match cfg.fail_reads_after {
        Some(after) => Box::new(FailingReads {
            inner: file,
            after,
            reads: AtomicU64::new(0),
        }),
        None => Box::new(file),
    };
    let area = zswap.swapon(device)?;

    let lru = ListLru::with_groups(&Topology::single(), &groups);
    let mut tenants = Vec::new();
    for (spec, &g) in cfg.tenants.iter().zip(&gids) {
        let region = Region::new(spec.pages).context("mapping a tenant's region")?;
        let limit = cfg
            .resident_percent
            .map_or(usize::MAX, |p| (spec.pages * p as usize / 100).max(1));
        tenants.push(Tenant::new(g, region, limit));
    }
    let uffd = Uffd::open().map_err(|r| anyhow::anyhow!("{r}"))?;
    let pager = Arc::new(
        Pager::new(uffd, Arc::clone(&zswap), area, tenants, lru)
            .context("registering the regions")?,
    );

    // Declared before the workers so that, on every path out of here, the
    // workers are stopped and joined first (one may wait on a fault) and
    // the pager's threads after them.
    let mut threads = PagerThreads::start(&pager, cfg.handler_spin)?;
    let run_stop = Arc::new(AtomicBool::new(false));
    let mut workers = Workers {
        stop: Arc::clone(&run_stop),
        handles: Vec::new(),
    };

    let start = Instant::now();
    for (i, spec) in cfg.tenants.iter().enumerate() {
        let t = &pager.tenants[i];
        let ctx = Ctx::new(t.region.base(), spec.pages, Arc::clone(&t.probe));
        let mut w = workload::build(
            spec.kind,
            spec.pages,
            cfg.seed ^ i as u64,
            spec.write_percent,
        );
        let stop = Arc::clone(&run_stop);
        let duration = cfg.duration;
        let limit = t.limit.load(Ordering::Relaxed);
        workers.handles.push(
            std::thread::Builder::new()
                .name(format!("uswap-{}", spec.name))
                .spawn(move || ctx.run(&mut *w, &stop, duration, limit))?,
        );
    }

    let mut series = Vec::new();
    while !workers.handles.iter().all(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if stop.load(Ordering::Relaxed) {
            run_stop.store(true, Ordering::Relaxed);
        }
        series.push(sample(&pager, &groups, start));
    }
    let measured: Vec<Measured> = std::mem::take(&mut workers.handles)
        .into_iter()
        .map(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("a workload thread panicked"))
        })
        .collect::<Result<_>>()?;
    let rss_end = rss_bytes()?;

    let mut out = Vec::new();
    for ((spec, m), t) in cfg.tenants.iter().zip(measured).zip(&pager.tenants) {
        out.push(TenantRun {
            spec: spec.clone(),
            limit: t.limit.load(Ordering::Relaxed),
            measured: m,
            counts: t.counts.snapshot(),
            group: groups.stats(t.group)?,
            resident: t.region.resident()?,
            swapped: pager.swapped(t) as u64,
            error: t.error.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        });
    }
    let zstats = zswap.stats();

    threads.stop()?;
    drop(threads);
    pager.release_slots();
    drop(pager);
    drop(zswap);
    Ok(RunResult {
        tenants: out,
        rss_growth: rss_end.saturating_sub(rss0),
        zswap: zstats,
        series,
    })
}

/// The fault handler and the reclaimer. [`PagerThreads::stop`] stops and
/// joins both; dropping does the same (an early return mid-run), then
/// unregisters the regions.
struct PagerThreads {
    pager: Arc<Pager>,
    stop_reclaim: Arc<AtomicBool>,
    reclaimer: Option<JoinHandle<()>>,
    stop_handler: Box<dyn Fn() + Send>,
    handler: Option<JoinHandle<()>>,
}

impl PagerThreads {
    fn start(pager: &Arc<Pager>, spin: Duration) -> Result<PagerThreads> {
        let handler = Handler::new(Arc::clone(pager), spin)?;
        let stop_reclaim = Arc::new(AtomicBool::new(false));
        let reclaimer = Reclaimer::new(Arc::clone(pager), Arc::clone(&stop_reclaim))?;
        let mut threads = PagerThreads {
            pager: Arc::clone(pager),
            stop_reclaim,
            reclaimer: None,
            stop_handler: Box::new(handler.stopper()),
            handler: None,
        };
        threads.handler = Some(
            std::thread::Builder::new()
                .name("uswap-faults".into())
                .spawn(move || handler.run())?,
        );
        threads.reclaimer = Some(
            std::thread::Builder::new()
                .name("uswap-reclaim".into())
                .spawn(move || reclaimer.run())?,
        );
        Ok(threads)
    }

    /// Stops the reclaimer, then the handler, and joins both.
    fn stop(&mut self) -> Result<()> {
        self.stop_reclaim.store(true, Ordering::Release);
        let mut panicked = false;
        if let Some(r) = self.reclaimer.take() {
            r.thread().unpark();
            panicked |= r.join().is_err();
        }
        if let Some(h) = self.handler.take() {
            (self.stop_handler)();
            panicked |= h.join().is_err();
        }
        anyhow::ensure!(!panicked, "a pager thread panicked");
        Ok(())
    }
}

impl Drop for PagerThreads {
    fn drop(&mut self) {
        let _ = self.stop();
        self.pager.unregister();
    }
}

/// The workload threads; stopped and joined when dropped.
struct Workers {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<Measured>>,
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn sample(pager: &Pager, groups: &Groups, start: Instant) -> Sample {
    Sample {
        t: start.elapsed().as_secs_f64(),
        pages: pager
            .tenants
            .iter()
            .map(|t| {
                let resident = t.resident.load(Ordering::Relaxed) as u64;
                let zswapped = groups.stats(t.group).map_or(0, |s| s.zswapped);
                let swapped = pager.swapped(t) as u64;
                [resident, zswapped, swapped.saturating_sub(zswapped)]
            })
            .collect(),
    }
}
