//! What a run shows: per-group and global results (serde, for `--json`),
//! the timeline the chart draws, and the plain-text tables, one run or two
//! side by side (`--compare`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::trace::TraceStats;
use crate::workload::Pattern;

/// One run's results.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// `group-aware` or `global-lru`.
    pub policy: String,
    /// The shrink worker's policy: `round-robin` or `proportional`.
    pub worker_policy: String,
    /// Whether the pressure shrinker's count took disk swap-ins off.
    pub protection: bool,
    /// The compressor used.
    pub compressor: String,
    /// The swap file's I/O: `buffered` (page cache) or `direct` (`O_DIRECT`).
    pub device: String,
    /// The shrink worker: `inline` (run by the simulation loop: the same
    /// results every run), `thread` (`--async-worker`), or `off`.
    pub worker: String,
    /// Accesses simulated.
    pub accesses: u64,
    /// Wall time of the accesses.
    pub elapsed_ms: u64,
    /// The global pool limit.
    pub pool_limit_bytes: u64,
    /// One entry per tenant group.
    pub groups: Vec<GroupReport>,
    /// The zswap-wide counters.
    pub global: GlobalReport,
    /// Pool bytes and writebacks over time.
    pub timeline: Vec<Sample>,
    /// The pressure controller, if it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<PressureReport>,
    /// What the trace held (trace runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceStats>,
    /// The scenario's check of what the run should show (scenario runs
    /// only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<Check>,
}

/// A scenario's check of one run: what it expects, what was measured.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Whether the run showed it. Only group-aware runs are held to it.
    pub ok: bool,
    /// What the scenario expects, in words and thresholds.
    pub expected: String,
    /// What the run measured.
    pub measured: String,
    /// Why it may have failed, when the inputs explain it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// One tenant group's results.
#[derive(Clone, Debug, Serialize)]
pub struct GroupReport {
    /// Tenant name.
    pub name: String,
    /// Its access pattern.
    pub pattern: Pattern,
    /// Its resident-memory cap in pages.
    pub ram_pages: u64,
    /// Its `zswap_max` (`null`: max).
    pub zswap_max: Option<u64>,
    /// Its `zswap.writeback`.
    pub writeback: bool,
    /// Accesses it made.
    pub accesses: u64,
    /// Accesses that found the page swapped out.
    pub faults: u64,
    /// Pages it sent out (zswap or the device).
    pub swap_outs: u64,
    /// Pages zswap stored (`zswpout`).
    pub zswpout: u64,
    /// Pages in zswap at the end (`zswapped`).
    pub stored_pages: u64,
    /// Pool bytes charged at the end (`zswap`).
    pub pool_bytes: u64,
    /// The most pool bytes charged at any sample.
    pub peak_pool_bytes: u64,
    /// Stored bytes ÷ pool bytes at the end.
    pub ratio: f64,
    /// Faults zswap served (`zswpin`).
    pub zswpin: u64,
    /// Its pages written back (`zswpwb`).
    pub zswpwb: u64,
    /// Of those, written back because *another* group hit its limit.
    pub foreign_writebacks: u64,
    /// Pool bytes the pressure controller reclaimed from it.
    pub reclaimed_bytes: u64,
    /// Pages zswap did not take (written straight to the device, or kept
    /// resident when writeback is off).
    pub rejects: u64,
    /// Pages that could go nowhere and stayed resident.
    pub kept_resident: u64,
    /// Faults served by the swap device.
    pub disk_reads: u64,
    /// Swap-ins that returned wrong bytes (must be 0).
    pub corrupt_swapins: u64,
}

/// Zswap-wide counters (the kernel's debugfs names).
#[derive(Clone, Debug, Serialize)]
pub struct GlobalReport {
    /// Pool bytes at the end.
    pub pool_total_size: u64,
    /// The most pool bytes at any sample.
    pub peak_pool_total: u64,
    /// Entries at the end.
    pub stored_pages: u64,
    /// Same-filled entries at the end.
    pub same_filled_pages: u64,
    /// Incompressible entries at the end.
    pub stored_incompressible_pages: u64,
    /// Pages written back in all.
    pub written_back_pages: u64,
    /// Stores that found the pool full.
    pub pool_limit_hit: u64,
    /// Writebacks that failed or found the slot busy.
    pub reject_reclaim_fail: u64,
    /// Pages that did not compress well enough.
    pub reject_compress_poor: u64,
    /// Pool allocations that failed.
    pub reject_alloc_fail: u64,
    /// Stores over a slot already stored.
    pub duplicate_entry: u64,
    /// Decompressions that failed (must be 0).
    pub decompress_fail: u64,
}

/// The timeline at one point.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Accesses so far.
    pub access: u64,
    /// Pool bytes in all.
    pub pool_total: u64,
    /// Per group, in the order of `groups`.
    pub groups: Vec<GroupSample>,
}

/// One group at one point of the timeline.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct GroupSample {
    /// Pool bytes charged.
    pub pool_bytes: u64,
    /// Pages written back so far.
    pub zswpwb: u64,
    /// Of those, foreign.
    pub foreign: u64,
    /// Pool bytes the pressure controller reclaimed from it so far.
    pub reclaimed: u64,
}

/// The pressure controller's run (`--pressure`).
#[derive(Clone, Debug, Serialize)]
pub struct PressureReport {
    /// The stall share it kept near.
    pub target: f64,
    /// Steps it ran.
    pub steps: u64,
    /// The mean stall share it read over the second half of the run.
    pub mean_pressure: f64,
    /// Pool bytes it reclaimed in all.
    pub reclaimed_bytes: u64,
}

impl Report {
    /// Wrong bytes returned by any swap-in (must be 0).
    pub fn corrupt(&self) -> u64 {
        self.groups.iter().map(|g| g.corrupt_swapins).sum()
    }

    /// What tells this run from `other`: the list design, or (the same
    /// design) the worker's policy.
    pub fn label(&self, other: &Report) -> &str {
        if self.policy != other.policy {
            &self.policy
        } else if self.protection != other.protection {
            if self.protection {
                "protection"
            } else {
                "no protection"
            }
        } else {
            &self.worker_policy
        }
    }

    /// Of each group's pages sent out, the share written back from zswap;
    /// the largest share over the smallest (`None` if a group sent none
    /// out or had none written back).
    pub fn writeback_spread(&self) -> Option<f64> {
        let shares: Vec<f64> = self
            .groups
            .iter()
            .map(|g| g.zswpwb as f64 / g.swap_outs.max(1) as f64)
            .collect();
        let min = shares.iter().copied().fold(f64::INFINITY, f64::min);
        let max = shares.iter().copied().fold(0.0, f64::max);
        (min > 0.0 && min.is_finite()).then(|| max / min)
    }
}

/// Bytes as MiB with one decimal.
pub fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1024.0 * 1024.0))
}

/// The per-group table and the global line of one run.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} · policy {} · {} · {} swap file · {} {} worker · {} accesses in {:.1} s · pool limit {} MiB",
        r.scenario,
        r.policy,
        r.compressor,
        r.device,
        r.worker,
        r.worker_policy,
        r.accesses,
        r.elapsed_ms as f64 / 1000.0,
        mib(r.pool_limit_bytes)
    );
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "group",
        "faults",
        "zswpout",
        "stored",
        "pool MiB",
        "ratio",
        "zswpin",
        "zswpwb",
        "foreign",
        "rejects"
    );
    for g in &r.groups {
        let _ = writeln!(
            s,
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>6.2} {:>8} {:>8} {:>8} {:>8}",
            g.name,
            g.faults,
            g.zswpout,
            g.stored_pages,
            mib(g.pool_bytes),
            g.ratio,
            g.zswpin,
            g.zswpwb,
            g.foreign_writebacks,
            g.rejects
        );
    }
    let gl = &r.global;
    let _ = writeln!(
        s,
        "pool {} MiB (peak {}) · {} stored ({} same-filled, {} incompressible) · written back {} · pool_limit_hit {} · reject_reclaim_fail {} · reject_compress_poor {} · wrong swap-ins {}",
        mib(gl.pool_total_size),
        mib(gl.peak_pool_total),
        gl.stored_pages,
        gl.same_filled_pages,
        gl.stored_incompressible_pages,
        gl.written_back_pages,
        gl.pool_limit_hit,
        gl.reject_reclaim_fail,
        gl.reject_compress_poor,
        r.corrupt()
    );
    if let Some(p) = &r.pressure {
        let per: Vec<String> = r
            .groups
            .iter()
            .map(|g| format!("{} {}", g.name, mib(g.reclaimed_bytes)))
            .collect();
        let _ = writeln!(
            s,
            "pressure controller: target {:.2}% · {} steps · read {:.2}% on average over the second half · reclaimed {} MiB ({})",
            p.target * 100.0,
            p.steps,
            p.mean_pressure * 100.0,
            mib(p.reclaimed_bytes),
            per.join(", ")
        );
    }
    if let Some(t) = &r.trace {
        let _ = writeln!(
            s,
            "trace: {} requests · {} distinct keys · {} MiB requested · {} page accesses · {} distinct pages",
            t.requests,
            t.distinct_keys,
            mib(t.bytes),
            t.page_accesses,
            t.distinct_pages
        );
    }
    s
}

/// Two runs of the same inputs side by side, group by group.
pub fn compare(a: &Report, b: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} · same accesses, two policies · {} accesses",
        a.scenario, a.accesses
    );
    let (la, lb) = (a.label(b), b.label(a));
    let _ = writeln!(s, "{:<10} | {:^35} | {:^35}", "", la, lb);
    let head = format!(
        "{:>8} {:>8} {:>8} {:>8}",
        "zswpin", "zswpwb", "foreign", "disk rd"
    );
    let _ = writeln!(s, "{:<10} | {head:>35} | {head:>35}", "group");
    for (ga, gb) in a.groups.iter().zip(&b.groups) {
        let cell = |g: &GroupReport| {
            format!(
                "{:>8} {:>8} {:>8} {:>8}",
                g.zswpin, g.zswpwb, g.foreign_writebacks, g.disk_reads
            )
        };
        let _ = writeln!(s, "{:<10} | {:>35} | {:>35}", ga.name, cell(ga), cell(gb));
    }
    let total = |r: &Report| r.groups.iter().map(|g| g.foreign_writebacks).sum::<u64>();
    let _ = writeln!(
        s,
        "foreign writebacks: {la} {} · {lb} {}",
        total(a),
        total(b)
    );
    let spread = |r: &Report| {
        r.writeback_spread()
            .map_or("-".to_string(), |x| format!("{x:.2}"))
    };
    let _ = writeln!(
        s,
        "written-back share, largest ÷ smallest: {la} {} · {lb} {}",
        spread(a),
        spread(b)
    );
    s
}
