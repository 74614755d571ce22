//! The report: per tenant, what its workload did and how its faults were
//! served; for the process, the memory the limits saved against the fully
//! resident run and what the measured compression ratio predicted. Printed
//! as a table, written as JSON (`--json`), drawn as SVG (`--svg`).

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;
use zswap::PAGE_SIZE;

use crate::pager::PagerCounts;
use crate::pager::Source;
use crate::run::{RunConfig, RunResult, Sample, TenantRun};
use crate::workload::Kind;

/// Fault service times of one source, in µs.
#[derive(Debug, Serialize)]
pub struct Latency {
    /// Faults timed.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Slowest.
    pub max: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let us = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50: us(0.5),
            p99: us(0.99),
            p999: us(0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

/// Fault service times by where the page came from.
#[derive(Debug, Serialize)]
pub struct Latencies {
    /// Pages decompressed from zswap.
    pub zswap: Latency,
    /// Pages read from the swap file.
    pub device: Latency,
    /// Never-touched pages (zero-filled).
    pub zero: Latency,
}

/// One tenant's line.
#[derive(Debug, Serialize)]
pub struct TenantReport {
    /// Its name.
    pub name: String,
    /// Its workload.
    pub workload: Kind,
    /// Its memory, in pages.
    pub pages: usize,
    /// Its resident limit, in pages.
    pub resident_limit: usize,
    /// Operations after the fill.
    pub ops: u64,
    /// Operations a second under the limit.
    pub ops_per_s: f64,
    /// Operations a second in the fully resident run (None if not run).
    pub resident_ops_per_s: Option<f64>,
    /// `ops_per_s / resident_ops_per_s`.
    pub throughput_vs_resident: Option<f64>,
    /// Page accesses, fill included.
    pub accesses: u64,
    /// Faults the pager served (zero-fills, zswap, swap file).
    pub faults: u64,
    /// Faults the workload thread timed (those its touches met).
    pub faults_timed: u64,
    /// Faults while the operations ran, per operation.
    pub faults_per_op: f64,
    /// The least faults per operation any pager could have had with this
    /// many pages resident (an oracle keeping the most used pages; kv
    /// only).
    pub fault_floor_per_op: Option<f64>,
    /// Mean time the handler spent on a zswap fault, in µs: reading the
    /// slot back, installing the page, listing it.
    pub handler_us_per_zswap_fault: f64,
    /// Fault service times, as the faulting thread measured them.
    pub latency_us: Latencies,
    /// Pages with a frame at the end (`mincore`).
    pub pages_resident: usize,
    /// Pages held in zswap at the end (its group's `zswapped`).
    pub pages_in_zswap: u64,
    /// Pages in the swap file at the end.
    pub pages_on_disk: u64,
    /// Compressed bytes charged to its group.
    pub zswap_bytes: u64,
    /// Its region's bytes without a frame, less its compressed bytes.
    pub bytes_saved: i64,
    /// Stores into zswap.
    pub zswpout: u64,
    /// Loads from zswap.
    pub zswpin: u64,
    /// Its pages written back to the swap file.
    pub zswpwb: u64,
    /// Of those, written back for another group's limit.
    pub zswpwb_foreign: u64,
    /// The pager's counters.
    pub pager: PagerCounts,
    /// Of the pages swapped out, the share that faulted back within a
    /// second.
    pub refault_1s_share: f64,
    /// Accesses that found bad content (must be 0).
    pub content_errors: u64,
    /// The first of them.
    pub first_content_error: Option<String>,
    /// Why the pager stopped serving it, if it did.
    pub error: Option<String>,
}

/// The process's memory, from `/proc/self/statm`.
#[derive(Debug, Serialize)]
pub struct Memory {
    /// Resident-set growth of the fully resident run.
    pub resident_run_bytes: Option<u64>,
    /// Resident-set growth of the run under the limits.
    pub limited_run_bytes: u64,
    /// The difference: what the limits saved.
    pub saved_bytes: Option<i64>,
    /// Pages stored in zswap over the pool's footprint at the end.
    pub compression_ratio: f64,
    /// What that ratio predicts: pages in zswap less the pool, plus pages
    /// on disk.
    pub predicted_bytes: i64,
    /// `saved_bytes / predicted_bytes`.
    pub saved_vs_predicted: Option<f64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Each tenant's resident limit, percent.
    pub resident_percent: u32,
    /// Each group's `zswap_max`, percent of its bytes.
    pub zswap_max_percent: u32,
    /// The global pool limit, percent of all tenants' bytes.
    pub pool_percent: u32,
    /// The compressor.
    pub compressor: String,
    /// Seconds of operations per run.
    pub seconds: f64,
    /// Per tenant.
    pub tenants: Vec<TenantReport>,
    /// The process's memory.
    pub memory: Memory,
    /// zswap's pages written back (global).
    pub written_back_pages: u64,
    /// zswap's pool limit hits.
    pub pool_limit_hit: u64,
    /// The userfaultfd round trip on this machine, in the same run: a
    /// handler that only installs a ready page, waiting for faults as the
    /// pager's does (`floor.rs`).
    pub uffd_floor_us: Latency,
    /// The same with a handler that never sleeps: what is left is the
    /// trap, the message and the faulting thread's wake-up.
    pub uffd_floor_spinning_us: Latency,
    /// The limited run over time.
    pub series: Vec<Sample>,
    /// No content error and no tenant stopped.
    pub ok: bool,
}

fn tenant(t: &TenantRun, resident: Option<&TenantRun>) -> TenantReport {
    let m = &t.measured;
    let ops_per_s = m.ops as f64 / m.seconds.max(1e-9);
    let resident_ops = resident.map(|r| r.measured.ops as f64 / r.measured.seconds.max(1e-9));
    let g = &t.group;
    let on_disk = t.swapped.saturating_sub(g.zswapped);
    let c = t.counts;
    TenantReport {
        name: t.spec.name.clone(),
        workload: t.spec.kind,
        pages: t.spec.pages,
        resident_limit: t.limit.min(t.spec.pages),
        ops: m.ops,
        ops_per_s,
        resident_ops_per_s: resident_ops,
        throughput_vs_resident: resident_ops.map(|r| ops_per_s / r),
        accesses: m.accesses,
        faults: c.zero_fills + c.zswap_ins + c.device_ins,
        faults_timed: m.faults(),
        faults_per_op: m.op_faults as f64 / m.ops.max(1) as f64,
        fault_floor_per_op: if t.limit < t.spec.pages {
            m.fault_floor
        } else {
            Some(0.0)
        },
        handler_us_per_zswap_fault: c.handler_zswap_ns as f64 / 1000.0 / c.zswap_ins.max(1) as f64,
        latency_us: Latencies {
            zswap: Latency::of(m.latency(Source::Zswap)),
            device: Latency::of(m.latency(Source::Device)),
            zero: Latency::of(m.latency(Source::Zero)),
        },
        pages_resident: t.resident,
        pages_in_zswap: g.zswapped,
        pages_on_disk: on_disk,
        zswap_bytes: g.zswap,
        bytes_saved: ((t.spec.pages - t.resident) * PAGE_SIZE) as i64 - g.zswap as i64,
        zswpout: g.zswpout,
        zswpin: g.zswpin,
        zswpwb: g.zswpwb,
        zswpwb_foreign: g.zswpwb_foreign,
        pager: c,
        refault_1s_share: c.refaults_1s as f64 / c.swap_outs.max(1) as f64,
        content_errors: m.content_errors,
        first_content_error: m.first_error.clone(),
        error: t.error.clone(),
    }
}

/// Builds the report of `limited`, compared with `resident` if it ran.
pub fn build(
    cfg: &RunConfig,
    limited: RunResult,
    resident: Option<&RunResult>,
    floor: [&Histogram<u64>; 2],
) -> Report {
    let tenants: Vec<TenantReport> = limited
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| tenant(t, resident.map(|r| &r.tenants[i])))
        .collect();
    let z = &limited.zswap;
    let in_zswap: u64 = tenants.iter().map(|t| t.pages_in_zswap).sum();
    let on_disk: u64 = tenants.iter().map(|t| t.pages_on_disk).sum();
    let pool = z.pool_total_size;
    let ratio = (in_zswap * PAGE_SIZE as u64) as f64 / pool.max(1) as f64;
    let predicted =
        (in_zswap * PAGE_SIZE as u64) as i64 - pool as i64 + (on_disk * PAGE_SIZE as u64) as i64;
    let saved = resident.map(|r| r.rss_growth as i64 - limited.rss_growth as i64);
    let ok = tenants
        .iter()
        .all(|t| t.content_errors == 0 && t.error.is_none());
    Report {
        resident_percent: cfg.resident_percent.unwrap_or(100),
        zswap_max_percent: cfg.zswap_max_percent,
        pool_percent: cfg.pool_percent,
        compressor: cfg.compressor.to_string(),
        seconds: cfg.duration.as_secs_f64(),
        tenants,
        memory: Memory {
            resident_run_bytes: resident.map(|r| r.rss_growth),
            limited_run_bytes: limited.rss_growth,
            saved_bytes: saved,
            compression_ratio: ratio,
            predicted_bytes: predicted,
            saved_vs_predicted: saved.map(|s| s as f64 / predicted.max(1) as f64),
        },
        written_back_pages: z.written_back_pages,
        pool_limit_hit: z.pool_limit_hit,
        uffd_floor_us: Latency::of(floor[0]),
        uffd_floor_spinning_us: Latency::of(floor[1]),
        series: limited.series,
        ok,
    }
}

fn mib(b: i64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// The report as a table.
pub fn table(r: &Report) -> String {
    let mut s = String::new();
    let l = |l: &Latency| {
        if l.count == 0 {
            "-".to_string()
        } else {
            format!("{:.1}/{:.1}/{:.1}", l.p50, l.p99, l.p999)
        }
    };
    let _ = writeln!(
        s,
        "{:<8} {:<6} {:>10} {:>8} {:>10} {:>8} {:>9} {:>22} {:>22} {:>6}",
        "tenant",
        "work",
        "ops/s",
        "vs full",
        "accesses",
        "faults",
        "fault/op",
        "zswap p50/p99/p99.9 µs",
        "disk p50/p99/p99.9 µs",
        "errors"
    );
    for t in &r.tenants {
        let _ = writeln!(
            s,
            "{:<8} {:<6} {:>10.0} {:>8} {:>10} {:>8} {:>9.3} {:>22} {:>22} {:>6}",
            t.name,
            format!("{:?}", t.workload).to_lowercase(),
            t.ops_per_s,
            t.throughput_vs_resident
                .map_or("-".into(), |x| format!("{x:.2}x")),
            t.accesses,
            t.faults,
            t.faults_per_op,
            l(&t.latency_us.zswap),
            l(&t.latency_us.device),
            t.content_errors,
        );
    }
    let _ = writeln!(
        s,
        "{:<8} {:>20} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "tenant",
        "resident/zswap/disk",
        "saved MiB",
        "zswpout",
        "zswpin",
        "zswpwb",
        "foreign",
        "refault"
    );
    for t in &r.tenants {
        let _ = writeln!(
            s,
            "{:<8} {:>20} {:>9.1} {:>8} {:>8} {:>8} {:>8} {:>7.1}%",
            t.name,
            format!(
                "{}/{}/{}",
                t.pages_resident, t.pages_in_zswap, t.pages_on_disk
            ),
            mib(t.bytes_saved),
            t.zswpout,
            t.zswpin,
            t.zswpwb,
            t.zswpwb_foreign,
            100.0 * t.refault_1s_share,
        );
    }
    let m = &r.memory;
    match (m.resident_run_bytes, m.saved_bytes, m.saved_vs_predicted) {
        (Some(full), Some(saved), Some(vs)) => {
            let _ = writeln!(
                s,
                "memory (statm): fully resident run +{:.1} MiB, under limits +{:.1} MiB: saved {:.1} MiB, {:.2}x of the {:.1} MiB the measured ratio ({:.2}x) predicts",
                mib(full as i64), mib(m.limited_run_bytes as i64), mib(saved), vs, mib(m.predicted_bytes), m.compression_ratio
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "memory (statm): under limits +{:.1} MiB (no fully resident run to compare); compression ratio {:.2}x",
                mib(m.limited_run_bytes as i64),
                m.compression_ratio
            );
        }
    }
    for (f, how) in [
        (&r.uffd_floor_us, "waiting as the pager's does"),
        (&r.uffd_floor_spinning_us, "never sleeping"),
    ] {
        let _ = writeln!(
            s,
            "userfaultfd round trip here, a handler that only installs a ready page, {how}: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs",
            f.p50, f.p99, f.p999
        );
    }
    for t in &r.tenants {
        if let Some(e) = &t.error {
            let _ = writeln!(s, "{}: stopped: {e}", t.name);
        }
        if let Some(e) = &t.first_content_error {
            let _ = writeln!(
                s,
                "{}: {} content errors, first: {e}",
                t.name, t.content_errors
            );
        }
    }
    s
}

/// The report as an SVG: per tenant, where its pages were over the run
/// (resident, zswap, disk), one panel each.
pub fn svg(r: &Report) -> String {
    let (w, ph, pad) = (720.0, 160.0, 40.0);
    let n = r.tenants.len().max(1);
    let h = pad + n as f64 * (ph + pad);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let colors = ["#4c78a8", "#f58518", "#e45756"];
    let names = ["resident", "zswap", "disk"];
    let tmax = r.series.last().map_or(1.0, |p| p.t).max(1e-3);
    for (i, t) in r.tenants.iter().enumerate() {
        let y0 = pad + i as f64 * (ph + pad);
        let lat = &t.latency_us.zswap;
        let _ = writeln!(
            s,
            r#"<text x="{pad}" y="{}">{} ({:?}): pages over time; zswap faults p50 {:.1} µs, p99 {:.1} µs</text>"#,
            y0 - 8.0,
            t.name,
            t.workload,
            lat.p50,
            lat.p99
        );
        let _ = writeln!(
            s,
            r##"<rect x="{pad}" y="{y0}" width="{}" height="{ph}" fill="none" stroke="#999"/>"##,
            w - 2.0 * pad
        );
        let x = |tt: f64| pad + (w - 2.0 * pad) * tt / tmax;
        let y = |pages: u64| y0 + ph - ph * pages as f64 / t.pages.max(1) as f64;
        for (k, color) in colors.iter().enumerate() {
            let pts: Vec<String> = r
                .series
                .iter()
                .map(|p| format!("{:.1},{:.1}", x(p.t), y(p.pages[i][k])))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                pts.join(" ")
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" fill="{color}">{}</text>"#,
                w - pad - 70.0,
                y0 + 16.0 + 14.0 * k as f64,
                names[k]
            );
        }
    }
    let _ = writeln!(s, "</svg>");
    s
}
