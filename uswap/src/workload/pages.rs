//! The page workloads: a sequential scanner, and a working set that shifts
//! through the region. Both work on whole pages of one format: the page's
//! index, its version, a checksum over the rest seeded by both, and 4 KiB
//! of text-like payload. A read verifies the whole page; an update bumps
//! the version, rewrites 256 bytes and the checksum. The thread keeps each
//! page's version on the side (4 bytes a page).

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use zswap::PAGE_SIZE;

use super::{checksum, fill_text, le_u64, put_u64, Ctx, Workload};

const HEADER: usize = 24;
const CHUNK: usize = 256;

/// Pages with a version each, kept on the side.
struct Paged {
    versions: Vec<u32>,
    write_percent: u32,
}

impl Paged {
    fn new(pages: usize, write_percent: u32) -> Paged {
        Paged {
            versions: vec![0; pages],
            write_percent,
        }
    }

    fn page(ctx: &mut Ctx, i: usize) -> &mut [u8] {
        ctx.bytes(i * PAGE_SIZE, PAGE_SIZE)
    }

    fn seal(page: &mut [u8], i: usize, version: u32) {
        put_u64(page, 0, i as u64);
        put_u64(page, 8, u64::from(version));
        let c = checksum(&page[HEADER..], (i as u64) << 32 ^ u64::from(version));
        put_u64(page, 16, c);
    }

    fn fill(&mut self, ctx: &mut Ctx) {
        for i in 0..ctx.pages() {
            ctx.touch(i * PAGE_SIZE);
            let page = Self::page(ctx, i);
            fill_text(&mut page[HEADER..], i as u64);
            Self::seal(page, i, 1);
            self.versions[i] = 1;
        }
    }

    /// Reads page `i`, verifies it, and updates it if `update`.
    fn access(&mut self, ctx: &mut Ctx, i: usize, update: bool) {
        ctx.touch(i * PAGE_SIZE);
        let page = Self::page(ctx, i);
        let (idx, v, c) = (le_u64(page, 0), le_u64(page, 8), le_u64(page, 16));
        let want = self.versions[i];
        let good = c == checksum(&page[HEADER..], idx << 32 ^ v);
        if idx != i as u64 || v != u64::from(want) || !good {
            ctx.content_error(|| {
                format!(
                    "page {i}: found index {idx} version {v}, expected version {want}, checksum {}",
                    if good { "good" } else { "bad" }
                )
            });
            return;
        }
        if update {
            let version = want + 1;
            let at = HEADER + (version as usize % ((PAGE_SIZE - HEADER) / CHUNK)) * CHUNK;
            fill_text(
                &mut page[at..at + CHUNK],
                u64::from(version) << 32 | i as u64,
            );
            Self::seal(page, i, version);
            self.versions[i] = version;
        }
    }
}

/// Reads every page in order, forever; `write_percent` of them (every
/// n-th, by index) are updated. The pattern LRU reclaim serves worst:
/// with less than the whole region resident, every access faults.
pub struct Scan {
    paged: Paged,
    next: usize,
}

impl Scan {
    /// A scanner over `pages` pages.
    pub fn new(pages: usize, write_percent: u32) -> Scan {
        Scan {
            paged: Paged::new(pages, write_percent),
            next: 0,
        }
    }
}

impl Workload for Scan {
    fn init(&mut self, ctx: &mut Ctx) {
        self.paged.fill(ctx);
    }

    fn op(&mut self, ctx: &mut Ctx) {
        let i = self.next;
        self.next = (i + 1) % ctx.pages();
        let update = (i % 100) < self.paged.write_percent as usize;
        self.paged.access(ctx, i, update);
    }
}

/// Random pages in a window of a quarter of the region that slides one
/// page every 256 operations: a working set that keeps moving on.
pub struct Shift {
    paged: Paged,
    rng: Xoshiro256PlusPlus,
    base: usize,
    ops: u64,
}

impl Shift {
    /// A shifting working set over `pages` pages.
    pub fn new(pages: usize, seed: u64, write_percent: u32) -> Shift {
        Shift {
            paged: Paged::new(pages, write_percent),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            base: 0,
            ops: 0,
        }
    }
}

impl Workload for Shift {
    fn init(&mut self, ctx: &mut Ctx) {
        self.paged.fill(ctx);
    }

    fn op(&mut self, ctx: &mut Ctx) {
        let pages = ctx.pages();
        let window = (pages / 4).max(1);
        self.ops += 1;
        if self.ops % 256 == 0 {
            self.base = (self.base + 1) % pages;
        }
        let r = self.rng.next_u64();
        let i = (self.base + (r % window as u64) as usize) % pages;
        let update = ((r >> 32) % 100) < u64::from(self.paged.write_percent);
        self.paged.access(ctx, i, update);
    }
}
