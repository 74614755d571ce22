//! The workloads that run in the tenants' memory, and what they measure.
//!
//! Each tenant has one thread running one workload over its region:
//! a key-value table with zipfian keys (`kv.rs`), a sequential scanner or a
//! shifting working set (`pages.rs`). The region is plain memory to them:
//! they take no lock of the pager's and call nothing of it. Every access
//! verifies what it reads — a checksum over the record or page, the index
//! it must carry, and a version the thread keeps on the side, so a write
//! the pager lost (an older version coming back) is caught as surely as a
//! wrong or corrupt page. Such a finding is a content error; the report
//! counts them and the checks require 0.
//!
//! The thread times its own faults ([`Ctx::touch`]): it reads the tenant's
//! probe word, touches the page, reads the word again; if the handler
//! served a fault meanwhile, the time of that touch is a fault's service
//! time as the faulting thread saw it (trap, handler wake-up, swap-in,
//! install, wake-up), recorded in an HDR histogram by the page's source.

mod kv;
mod pages;

pub use kv::Kv;
pub use pages::{Scan, Shift};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::pager::{Probe, Source};

/// The workload kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Open-addressing hash table of 128-byte records, zipfian keys.
    Kv,
    /// Reads every page in order, rewriting one in four.
    Scan,
    /// Random pages in a window that slides through the region.
    Shift,
}

/// One workload: set up its data, then do operations.
pub trait Workload: Send {
    /// Writes the initial data into the whole region.
    fn init(&mut self, ctx: &mut Ctx);
    /// One operation (a lookup or an update, a page scanned).
    fn op(&mut self, ctx: &mut Ctx);
    /// The least share of operations that must fault with only
    /// `resident` pages resident, for a pager that knew every page's
    /// access rate and kept the most used ones (static optimum under
    /// independent references); None where the workload does not compute
    /// it.
    fn fault_floor(&self, _resident: usize) -> Option<f64> {
        None
    }
}

/// Builds the workload `kind` for a region of `pages` pages.
pub fn build(kind: Kind, pages: usize, seed: u64, write_percent: u32) -> Box<dyn Workload> {
    match kind {
        Kind::Kv => Box::new(Kv::new(pages, seed, write_percent)),
        Kind::Scan => Box::new(Scan::new(pages, write_percent)),
        Kind::Shift => Box::new(Shift::new(pages, seed, write_percent)),
    }
}

/// What a workload thread measured.
#[derive(Debug)]
pub struct Measured {
    /// Operations after the initial fill.
    pub ops: u64,
    /// Page accesses (touches), fill included.
    pub accesses: u64,
    /// Seconds the operations ran.
    pub seconds: f64,
    /// Accesses that found bad content.
    pub content_errors: u64,
    /// The first content error, described.
    pub first_error: Option<String>,
    /// Fault service times in ns, by source (zero, zswap, device).
    pub latency: [Histogram<u64>; 3],
    /// Faults served while the operations ran (the fill's excluded).
    pub op_faults: u64,
    /// [`Workload::fault_floor`] at the tenant's limit.
    pub fault_floor: Option<f64>,
}

/// A workload thread's view of its memory and its measurements.
pub struct Ctx {
    base: *mut u8,
    pages: usize,
    probe: Arc<Probe>,
    measured: Measured,
}

// SAFETY: the region pointer is used by this one thread only.
unsafe impl Send for Ctx {}

impl Ctx {
    /// A context over `pages` pages at `base`, reading `probe`.
    pub fn new(base: *mut u8, pages: usize, probe: Arc<Probe>) -> Ctx {
        // 1 ns to 100 s at two significant digits: 1% resolution in a few
        // KiB, so the histograms do not weigh on the memory measured.
        let h = || Histogram::new_with_bounds(1, 100_000_000_000, 2).expect("valid bounds");
        Ctx {
            base,
            pages,
            probe,
            measured: Measured {
                ops: 0,
                accesses: 0,
                seconds: 0.0,
                content_errors: 0,
                first_error: None,
                latency: [h(), h(), h()],
                op_faults: 0,
                fault_floor: None,
            },
        }
    }

    fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The region's size in pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// A pointer to byte `off` of the region.
    fn at(&self, off: usize) -> *mut u8 {
        assert!(off < self.pages * zswap::PAGE_SIZE, "outside the region");
        // SAFETY: in bounds of the region, as asserted.
        unsafe { self.base.add(off) }
    }

    /// Bytes `off..off + len` of the region: the one place the workloads
    /// turn tenant memory into a slice.
    pub fn bytes(&mut self, off: usize, len: usize) -> &mut [u8] {
        assert!(
            off + len <= self.pages * zswap::PAGE_SIZE,
            "outside the region"
        );
        // SAFETY: in bounds (asserted) of the region, which stays mapped
        // for the run and which only this thread reads or writes (the
        // pager moves its pages, contents intact); the `&mut self` borrow
        // keeps two such slices from overlapping.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off), len) }
    }

    /// Touches the byte at `off` (the first access of a page or record),
    /// timing it if it waited on a fault.
    #[inline]
    pub fn touch(&mut self, off: usize) {
        self.measured.accesses += 1;
        let before = self.probe().served();
        let t0 = Instant::now();
        // SAFETY: in the region, which is mapped for the run; a missing
        // page faults and the pager maps it.
        unsafe { std::ptr::read_volatile(self.at(off)) };
        let after = self.probe().served();
        if after != before {
            let ns = t0.elapsed().as_nanos() as u64;
            let h = &mut self.measured.latency[Probe::source(after) as usize];
            let _ = h.record(ns.max(1));
        }
    }

    /// Counts a content error.
    pub fn content_error(&mut self, what: impl FnOnce() -> String) {
        if self.probe().failed() {
            return; // a stopped tenant's zero page is not bad content
        }
        self.measured.content_errors += 1;
        if self.measured.first_error.is_none() {
            self.measured.first_error = Some(what());
        }
    }

    /// Runs `w`: the fill, then operations until `stop` or `duration`
    /// passes, or the pager fails this tenant. `resident` is the tenant's
    /// limit in pages, for the workload's fault floor.
    pub fn run(
        mut self,
        w: &mut dyn Workload,
        stop: &AtomicBool,
        duration: Duration,
        resident: usize,
    ) -> Measured {
        w.init(&mut self);
        self.measured.fault_floor = w.fault_floor(resident.min(self.pages));
        let faults0 = self.probe().served() >> 2;
        let start = Instant::now();
        'run: loop {
            for _ in 0..64 {
                w.op(&mut self);
                self.measured.ops += 1;
            }
            if stop.load(Ordering::Relaxed) || self.probe().failed() || start.elapsed() >= duration
            {
                break 'run;
            }
        }
        self.measured.seconds = start.elapsed().as_secs_f64();
        self.measured.op_faults = (self.probe().served() >> 2) - faults0;
        self.measured
    }
}

/// A 64-bit checksum of `bytes` (whole 8-byte words; a multiply-rotate
/// mix, enough to tell one page or record from another and from garbage).
pub fn checksum(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for c in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        h = (h ^ w).wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(29);
    }
    h ^ (h >> 32)
}

/// A 64-bit mixer (splitmix64's finalizer).
pub fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

const WORDS: [&[u8]; 32] = [
    b"the ",
    b"page ",
    b"swap ",
    b"memory ",
    b"tenant ",
    b"record ",
    b"of ",
    b"and ",
    b"compressed ",
    b"cache ",
    b"fault ",
    b"to ",
    b"in ",
    b"a ",
    b"list ",
    b"group ",
    b"value=",
    b"key=",
    b"user:",
    b"order ",
    b"status=ok ",
    b"2026-12-02 ",
    b"\n",
    b"id=",
    b"writeback ",
    b"zswap ",
    b"cold ",
    b"hot ",
    b"is ",
    b"was ",
    b"pool ",
    b", ",
];

/// Fills `buf` with text-like bytes drawn from `seed`: words from a small
/// vocabulary and numbers, which compress about as well as the heap of a
/// program holding text records (2-3x with lz4).
pub fn fill_text(buf: &mut [u8], seed: u64) {
    let mut x = mix64(seed) | 1;
    let mut i = 0;
    while i < buf.len() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word: &[u8] = if x & 0x700 == 0 {
            // A number now and then: the part that does not repeat.
            let digits = (x >> 16) % 100_000;
            let s = format!("{digits} ");
            let n = s.len().min(buf.len() - i);
            buf[i..i + n].copy_from_slice(&s.as_bytes()[..n]);
            i += n;
            continue;
        } else {
            WORDS[(x & 31) as usize]
        };
        let n = word.len().min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[..n]);
        i += n;
    }
}

/// The little-endian u64 at byte `off` of `b`.
pub fn le_u64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Writes `v` as the little-endian u64 at byte `off` of `b`.
pub fn put_u64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

impl Measured {
    /// Faults this thread timed, all sources.
    pub fn faults(&self) -> u64 {
        self.latency.iter().map(|h| h.len()).sum()
    }
    /// The histogram for `source`.
    pub fn latency(&self, source: Source) -> &Histogram<u64> {
        &self.latency[source as usize]
    }
}
