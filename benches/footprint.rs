//! What the store and the facade hold, printed once (nothing here is
//! timed), on real pages: `data/pages.bin`, or the file named by
//! `ZSWAP_PAGES` (a `zswap-sim capture` of real processes, taken at bench
//! time and never committed).
//!
//! - **Footprint** of a `ZsPool` ÷ the compressed bytes it holds, after a
//!   fill of 16,384 objects and of every distinct page of the file, and
//!   after a random half is freed and the pool compacted (targets ≤ 1.06×
//!   at 16k objects, ≤ 1.03× at ≥ 100 MiB of distinct pages), for spans of
//!   up to 4 pages and of up to 8 side by side, beside the same fill with
//!   one `Box<[u8]>` per object (glibc malloc, `mallinfo2`, in a fresh
//!   child process).
//! - **Metadata per stored page**, all-in: every byte the global allocator
//!   hands the crate while a `Zswap` stores the file's pages (entries, the
//!   slot index, the pools' tables, the span heap's own tables), counted by
//!   a counting allocator, ÷ the entries stored (target ≤ 72 B at ≥ 100k
//!   entries). Span memory, where the compressed bytes live, is footprint,
//!   not metadata, and comes from the span heap, not the allocator.
//!
//! Same-filled pages are left out (zswap keeps them as one word), and so
//! are repeated pages: a figure from a file with fewer distinct pages than
//! asked is marked as cycled. Results: BENCHMARKS.md.

#![allow(missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;

use zswap::testing::heap::{global_bytes, CountingAlloc};
use zswap::{
    AreaId, Compressor, FileDevice, GroupId, Groups, Handle, NodeId, PoolConfig, PoolLimit,
    SwapSlot, Topology, Zswap, ZswapConfig, PAGE_SIZE,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// 100 MiB of pages: the least the large footprint figure counts.
const LARGE: usize = 25_600;
/// The least number of entries the metadata figure counts.
const META_ENTRIES: usize = 100_000;

/// The file's pages, same-filled and repeated pages left out.
fn distinct_pages() -> Vec<Vec<u8>> {
    let mut seen = HashSet::new();
    zswap::testing::bench_pages()
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect()
}

/// The first `n` pages' lz4 objects (cycling if the file has fewer), and
/// which half survives the random free.
fn fill_set(pages: &[Vec<u8>], n: usize) -> (Vec<Vec<u8>>, Vec<bool>) {
    let codec = Compressor::by_name("lz4").expect("lz4 is always built");
    let mut dst = vec![0u8; PAGE_SIZE];
    let objects = pages
        .iter()
        .cycle()
        .take(n)
        .map(|p| match codec.compress(p, &mut dst) {
            Ok(k) => dst[..k].to_vec(),
            // Stored as-is, as zswap stores a page that does not compress.
            Err(_) => p.clone(),
        })
        .collect();
    (objects, keep_mask(n))
}

/// Which of `n` objects survive the random half-free (fixed seed).
fn keep_mask(n: usize) -> Vec<bool> {
    let mut x = 0x2545f4914f6cdd1du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x & 1 == 0
        })
        .collect()
}

fn ratio(a: usize, b: usize) -> f64 {
    a as f64 / b as f64
}

/// The footprint of a pool with spans of up to `span_pages` pages after
/// the fill, and after the half-free and a compaction.
fn pool_footprint(objects: &[Vec<u8>], keep: &[bool], span_pages: usize) -> (usize, usize) {
    let mut cfg = PoolConfig::default();
    cfg.max_span_pages = span_pages;
    let pool = zswap::ZsPool::new(cfg).expect("a valid pool shape");
    let hs: Vec<Handle> = objects.iter().map(|o| pool.insert(o).unwrap()).collect();
    let full = pool.footprint();
    for (h, k) in hs.iter().zip(keep) {
        if !k {
            pool.free(*h).unwrap();
        }
    }
    pool.compact();
    pool.shrink_cache();
    (full, pool.footprint())
}

fn footprint(pages: &[Vec<u8>]) {
    let large = if pages.len() >= LARGE {
        pages.len()
    } else {
        65_536
    };
    println!("\nfootprint ÷ compressed bytes (lz4), spans of up to 4 pages | up to 8 pages:");
    for n in [16_384, large] {
        let (objects, keep) = fill_set(pages, n);
        let sum: usize = objects.iter().map(Vec::len).sum();
        let kept: usize = objects
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(o, _)| o.len())
            .sum();
        let ratios = |(full, compacted)| (ratio(full, sum), ratio(compacted, kept));
        let (f4, c4) = ratios(pool_footprint(&objects, &keep, 4));
        let (f8, c8) = ratios(pool_footprint(&objects, &keep, 8));
        let cycled = if n > pages.len() {
            " (cycled: repeats pages)"
        } else {
            ""
        };
        println!(
            "  {n} objects{cycled}, {:.1} MiB of pages, {:.1} MiB compressed (ratio {:.2}):",
            (n * PAGE_SIZE) as f64 / 1048576.0,
            sum as f64 / 1048576.0,
            ratio(n * PAGE_SIZE, sum)
        );
        println!("    after the fill:                     {f4:.3}x | {f8:.3}x");
        println!("    after freeing half and compacting:  {c4:.3}x | {c8:.3}x");
        match malloc_baseline(n) {
            Some((held1, held2)) => println!(
                "    malloc, one Box<[u8]> per object:   {:.3}x after the fill, {:.3}x after freeing half (no compaction)",
                ratio(held1, sum),
                ratio(held2, kept)
            ),
            None => println!("    malloc baseline: the child process failed"),
        }
    }
}

/// Bytes glibc's malloc holds from the system.
fn malloc_held() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let mi = unsafe { libc::mallinfo2() };
    mi.arena + mi.hblkhd
}

/// Runs [`malloc_child`] for `n` objects in a fresh process, so that the
/// arena holds nothing else.
fn malloc_baseline(n: usize) -> Option<(usize, usize)> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env("ZSWAP_BENCH_MALLOC", n.to_string())
        .output()
        .ok()?;
    let nums: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums[..] {
        [a, b] => Some((a, b)),
        _ => None,
    }
}

/// One `Box<[u8]>` per object, then a random half freed; prints the bytes
/// malloc holds after each.
fn malloc_child(n: usize) {
    // Everything the fill needs is made before the first reading and kept
    // alive to the last, so the arena's growth is the boxes' alone.
    let pages = distinct_pages();
    let (objects, keep) = fill_set(&pages, n);
    let mut boxes: Vec<Option<Box<[u8]>>> = Vec::with_capacity(n);
    let held0 = malloc_held();
    boxes.extend(objects.iter().map(|o| Some(o.as_slice().into())));
    let held1 = malloc_held();
    for (b, k) in boxes.iter_mut().zip(&keep) {
        if !k {
            *b = None;
        }
    }
    let held2 = malloc_held();
    black_box(&boxes);
    println!("{} {}", held1 - held0, held2.saturating_sub(held0));
}

fn slot(i: usize) -> SwapSlot {
    SwapSlot {
        area: AreaId::new(0),
        offset: i as u32,
    }
}

/// Metadata per stored page, counted by the global allocator.
fn metadata(pages: &[Vec<u8>]) {
    let n = pages.len().max(META_ENTRIES);
    let z = Zswap::new(
        ZswapConfig::default()
            .compressor("lz4".parse().expect("lz4 is always built"))
            .shrink_worker(false)
            .topology(Topology::single())
            .max_pool(PoolLimit::Bytes(1 << 40)),
        &Groups::new(),
    )
    .unwrap();
    z.swapon(Box::new(FileDevice::temp(n as u64 + 16).unwrap()))
        .unwrap();
    // Per-thread scratch and the like, made once, are not per page.
    z.store(slot(n), &pages[0], GroupId::ROOT, NodeId::ZERO)
        .unwrap();
    z.invalidate(slot(n)).unwrap();
    let before = global_bytes();
    for (i, p) in pages.iter().cycle().take(n).enumerate() {
        z.store(slot(i), p, GroupId::ROOT, NodeId::ZERO).unwrap();
    }
    let after = global_bytes();
    let entries = z.stats().stored_pages as usize;
    assert_eq!(entries, n);
    let counted = (after - before) as f64 / entries as f64;
    let cycled = if n > pages.len() {
        " (cycled: repeats pages)"
    } else {
        ""
    };
    println!(
        "\nmetadata per stored page, {entries} entries{cycled}: {counted:.1} B counted by the allocator \
         (the crate's own estimate: {:.1} B, of which the entry {} B)",
        z.metadata_bytes_per_entry(),
        Zswap::entry_bytes()
    );
    let keep = keep_mask(n);
    for (i, k) in keep.iter().enumerate() {
        if !k {
            z.invalidate(slot(i)).unwrap();
        }
    }
    z.compact();
    let left = z.stats().stored_pages as usize;
    println!(
        "  after invalidating a random half and compacting: {:.1} B per entry left ({left})",
        (global_bytes() - before) as f64 / left as f64
    );
}

fn main() {
    if let Some(n) = std::env::var("ZSWAP_BENCH_MALLOC")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        malloc_child(n);
        return;
    }
    // `cargo bench` passes `--bench`; a filter that names neither report
    // skips them, as criterion's filters do.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let runs = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    if !runs("footprint") && !runs("metadata") {
        return;
    }
    let pages = distinct_pages();
    println!(
        "{} distinct pages ({:.1} MiB), same-filled and repeated pages left out",
        pages.len(),
        (pages.len() * PAGE_SIZE) as f64 / 1048576.0
    );
    if runs("footprint") {
        footprint(&pages);
    }
    if runs("metadata") {
        metadata(&pages);
    }
}
