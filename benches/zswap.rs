//! Criterion-run benches of the zswap facade on real pages
//! (`data/pages.bin` or `ZSWAP_PAGES`), each beside its baseline, measured
//! in alternating rounds and compared by medians (the `paired` report), as
//! in `benches/store.rs`:
//!
//! - store: `Zswap::store` of a page (pin, limits, compress, pool insert,
//!   charge, index, LRU) against compressing it into a hot buffer and
//!   copying the compressed bytes, 16-byte aligned, into the next place of
//!   a pre-touched 512 MiB arena, larger than any last-level cache (target
//!   ≥ 0.95×: what any store must do, since it must keep the bytes in
//!   memory that is not in cache), and against the raw compress alone;
//! - load: `Zswap::load` (pin, index, decompress, free) against the raw
//!   decompress of the same objects laid out one after another (target
//!   ≥ 0.90×); both read cold memory when the pages' compressed bytes
//!   exceed the last-level cache (`ZSWAP_PAGES` of a large capture, capped
//!   by `ZSWAP_BENCH_PAGES`);
//! - writeback: writing back entries (decompress + `pwrite` + free) against
//!   raw positioned 4 KiB writes to the same kind of swap file (target
//!   ≥ 0.8×), buffered (into the page cache) and direct (`O_DIRECT`, to the
//!   disk, as the kernel writes swap);
//! - a hand-written store beside both: compress, keep the bytes in a
//!   `HashMap<u32, Box<[u8]>>`, take them out and decompress (what a
//!   program without zswap would write: no limits, LRU or accounting);
//! - metadata bytes per entry;
//! - loads on two threads against one (the speed-up, 2.0 ideal).
//!
//! Same-filled pages are left out (zswap keeps them as one word). Results:
//! BENCHMARKS.md.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use zswap::testing::ColdArena;
use zswap::{
    AreaId, Compressor, FileDevice, GroupId, Groups, NodeId, PoolLimit, SwapDevice, SwapSlot,
    Topology, Zswap, ZswapConfig, PAGE_SIZE,
};

const ROUNDS: usize = 15;
/// Bytes of the cold arena of the store baseline.
const ARENA: usize = 512 << 20;
/// Pages the writeback and two-thread reports use at most (they write a
/// file and store everything twice a round).
const SIDE_PAGES: usize = 4096;

/// The bench's pages, at most `ZSWAP_BENCH_PAGES` of them.
fn pages() -> Vec<Vec<u8>> {
    let mut pages = zswap::testing::bench_pages();
    if let Some(cap) = std::env::var("ZSWAP_BENCH_PAGES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        pages.truncate(cap);
    }
    pages
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

/// A zswap over `dev` with no worker and no pool limit to speak of.
fn zswap_on(codec: &str, dev: impl SwapDevice + 'static) -> Zswap {
    let z = Zswap::new(
        ZswapConfig::default()
            .compressor(codec.parse().expect("a known codec"))
            .shrink_worker(false)
            .topology(Topology::single())
            .max_pool(PoolLimit::Bytes(1 << 40)),
        &Groups::new(),
    )
    .unwrap();
    z.swapon(Box::new(dev)).unwrap();
    z
}

fn slot(i: usize) -> SwapSlot {
    SwapSlot {
        area: AreaId::new(0),
        offset: i as u32,
    }
}

fn paired(_: &mut Criterion) {
    let pages = pages();
    let n = pages.len();
    println!("\nzswap paired ratios, median of {ROUNDS} alternating rounds over {n} pages:");
    // `cargo bench --bench zswap -- zstd` runs one codec's rounds (a name
    // it contains: `lz4` runs both lz4s).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for name in ["lz4", "lz4-flex", "zstd", "deflate:1"] {
        let Ok(codec) = Compressor::by_name(name) else {
            continue;
        };
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let z = zswap_on(name, FileDevice::temp(3 * n as u64 + 16).unwrap());
        // A steady state, as the store baseline's pre-touched arena is one:
        // a resident population with holes (two more copies of the pages,
        // every other page invalidated), so that the timed stores fill
        // holes in spans that exist rather than map new ones, the loads
        // give no span back, and both scatter over the pool, as they do in
        // a pool that has been in use.
        for (i, p) in pages.iter().cycle().take(2 * n).enumerate() {
            z.store(slot(n + i), p, GroupId::ROOT, NodeId::ZERO)
                .unwrap();
        }
        for i in (0..2 * n).step_by(2) {
            z.invalidate(slot(n + i)).unwrap();
        }
        let mut dst = vec![0u8; PAGE_SIZE];
        let mut page = vec![0u8; PAGE_SIZE];
        let (mut raw_c, mut store, mut raw_d, mut load) = (vec![], vec![], vec![], vec![]);
        let (mut hand_s, mut hand_l) = (vec![], vec![]);
        let mut hand: HashMap<u32, Box<[u8]>> = HashMap::with_capacity(n);
        let mut meta = 0.0;
        // The objects one after another, 16-byte aligned, as a pool lays
        // them out (`None`: the page did not compress and is copied).
        let mut laid = Vec::new();
        let packed: Vec<Option<(usize, usize)>> = pages
            .iter()
            .map(|p| {
                let k = codec.compress(p, &mut dst[..PAGE_SIZE - 1]).ok()?;
                let at = laid.len();
                laid.extend_from_slice(&dst[..k]);
                laid.resize((laid.len() + 15) & !15, 0);
                Some((at, k))
            })
            .collect();
        let mut arena = ColdArena::new(ARENA);
        let mut copy_c = vec![];
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for p in &pages {
                let _ = black_box(codec.compress(p, &mut dst[..PAGE_SIZE - 1]));
            }
            raw_c.push(t.elapsed());
            let t = Instant::now();
            for p in &pages {
                match codec.compress(p, &mut dst[..PAGE_SIZE - 1]) {
                    Ok(k) => arena.put(&dst[..k]),
                    Err(_) => arena.put(p),
                }
            }
            copy_c.push(t.elapsed());
            let t = Instant::now();
            for (i, p) in pages.iter().enumerate() {
                z.store(slot(i), p, GroupId::ROOT, NodeId::ZERO).unwrap();
            }
            store.push(t.elapsed());
            // Measured while every page is stored.
            meta = z.metadata_bytes_per_entry();
            let t = Instant::now();
            for (p, c) in pages.iter().zip(&packed) {
                match *c {
                    Some((at, k)) => codec.decompress(&laid[at..at + k], &mut page).unwrap(),
                    None => page.copy_from_slice(p),
                }
                black_box(&page);
            }
            raw_d.push(t.elapsed());
            let t = Instant::now();
            for i in 0..n {
                assert!(z.load(slot(i), &mut page).unwrap());
                black_box(&page);
            }
            load.push(t.elapsed());
            for i in 0..n {
                z.invalidate(slot(i)).unwrap();
            }
            // By hand: compress, keep the bytes in a map; take them out and
            // decompress (no limits, no LRU, no accounting, one thread).
            let t = Instant::now();
            for (i, p) in pages.iter().enumerate() {
                let kept: Box<[u8]> = match codec.compress(p, &mut dst[..PAGE_SIZE - 1]) {
                    Ok(k) => dst[..k].into(),
                    Err(_) => p.as_slice().into(),
                };
                hand.insert(i as u32, kept);
            }
            hand_s.push(t.elapsed());
            let t = Instant::now();
            for i in 0..n {
                let kept = hand.remove(&(i as u32)).unwrap();
                if kept.len() == PAGE_SIZE {
                    page.copy_from_slice(&kept);
                } else {
                    codec.decompress(&kept, &mut page).unwrap();
                }
                black_box(&page);
            }
            hand_l.push(t.elapsed());
        }
        let per = |d: f64| d * 1e9 / n as f64;
        let (rc, st, rd, ld) = (median(raw_c), median(store), median(raw_d), median(load));
        let (hs, hl, cc) = (median(hand_s), median(hand_l), median(copy_c));
        println!(
            "  {name:<10} store {:>6.0} ns vs compress + copy to a cold arena {:>6.0} ns: {:.3}x (vs raw compress {:>6.0} ns: {:.3}x) | load {:>6.0} ns vs raw decompress {:>6.0} ns: {:.3}x | metadata {:.1} B/entry (item {} B)",
            per(st),
            per(cc),
            cc / st,
            per(rc),
            rc / st,
            per(ld),
            per(rd),
            rd / ld,
            meta,
            Zswap::entry_bytes()
        );
        println!(
            "  {:<10} by hand (compress + HashMap<u32, Box<[u8]>>): store {:>6.0} ns (zswap takes {:.3}x), load {:>6.0} ns (zswap takes {:.3}x)",
            "",
            per(hs),
            st / hs,
            per(hl),
            ld / hl
        );
    }

    let side = &pages[..n.min(SIDE_PAGES)];
    writeback(side, false);
    writeback(side, true);
    two_threads(side);
}

/// Loads on two threads against one: the same pages stored, then loaded
/// by one thread, or by two taking alternate slots. The ratio is the
/// speed-up (2.0 ideal on two idle cores); what stands in its way is
/// shared state: the size classes' locks, the list locks, the group's
/// counters. Run on the real pages (spread over many size classes), and on
/// one page stored in every slot (every object in one class: the worst case
/// for a class lock held across decompression).
fn two_threads(pages: &[Vec<u8>]) {
    let one_class: Vec<Vec<u8>> = vec![pages[0].clone(); pages.len()];
    for (what, pages) in [("real pages", pages), ("one size class", &one_class[..])] {
        let n = pages.len();
        let z = zswap_on("lz4", FileDevice::temp(n as u64 + 16).unwrap());
        let store_all = || {
            for (i, p) in pages.iter().enumerate() {
                z.store(slot(i), p, GroupId::ROOT, NodeId::ZERO).unwrap();
            }
        };
        let load = |from: usize, step: usize| {
            let mut page = vec![0u8; PAGE_SIZE];
            for i in (from..n).step_by(step) {
                assert!(z.load(slot(i), &mut page).unwrap());
                black_box(&page);
            }
        };
        let (mut one, mut two) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            store_all();
            let t = Instant::now();
            load(0, 1);
            one.push(t.elapsed());
            store_all();
            let t = Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| load(1, 2));
                load(0, 2);
            });
            two.push(t.elapsed());
        }
        let (o, t) = (median(one), median(two));
        println!(
            "  lz4 loads on two threads, {what}: {:>5.0} ns/page vs {:>5.0} ns/page on one: {:.2}x the throughput",
            t * 1e9 / n as f64,
            o * 1e9 / n as f64,
            o / t
        );
    }
}

/// A page aligned for direct I/O, as the raw baseline hands it to `pwrite`.
#[repr(C, align(4096))]
struct Aligned([u8; PAGE_SIZE]);

/// Writeback (decompress + `pwrite` + free) against raw positioned writes of
/// the same pages to the same kind of file: buffered (into the page cache)
/// or direct (`O_DIRECT`, to the disk, as the kernel writes swap). Zswap
/// writes back to the default file device (a CRC32C per page) and, in the
/// same rounds, to an unchecked one: the second ratio is the checksum's
/// cost.
fn writeback(pages: &[Vec<u8>], direct: bool) {
    let n = pages.len();
    let dir = std::env::temp_dir();
    let size = n as u64 + 16;
    let (checked, unchecked, raw) = match (
        FileDevice::temp_in(&dir, size, direct),
        FileDevice::temp_unchecked(&dir, size, direct),
        FileDevice::temp_unchecked(&dir, size, direct),
    ) {
        (Ok(c), Ok(u), Ok(r)) => (c, u, r),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            println!("  writeback (direct={direct}): skipped, {e}");
            return;
        }
    };
    let zs = [zswap_on("lz4", checked), zswap_on("lz4", unchecked)];
    let aligned: Vec<Box<Aligned>> = pages
        .iter()
        .map(|p| {
            let mut a = Box::new(Aligned([0; PAGE_SIZE]));
            a.0.copy_from_slice(p);
            a
        })
        .collect();
    // Direct writes go to the disk: fewer rounds keep the run short.
    let rounds = if direct { 5 } else { ROUNDS };
    let (mut wb, mut pw) = ([vec![], vec![]], vec![]);
    for _ in 0..rounds {
        for (z, times) in zs.iter().zip(&mut wb) {
            for (i, p) in pages.iter().enumerate() {
                z.store(slot(i), p, GroupId::ROOT, NodeId::ZERO).unwrap();
            }
            // Clear the referenced marks (second chance) untimed.
            assert_eq!(z.scan(NodeId::ZERO, GroupId::ROOT, n).unwrap(), 0);
            let t = Instant::now();
            let written = z.scan(NodeId::ZERO, GroupId::ROOT, n).unwrap();
            times.push(t.elapsed());
            assert_eq!(written, n);
            for i in 0..n {
                z.invalidate(slot(i)).unwrap();
            }
        }
        let t = Instant::now();
        for (i, p) in aligned.iter().enumerate() {
            raw.write_page(i as u64, &p.0).unwrap();
        }
        pw.push(t.elapsed());
    }
    let [c, u] = wb.map(median);
    let p = median(pw);
    let ns = |t: f64| t * 1e9 / n as f64;
    println!(
        "  writeback ({}) {:>6.0} ns/page vs raw pwrite {:>6.0} ns/page: {:.3}x; \
         unchecked {:>6.0} ns/page: {:.3}x (the CRC32C costs {:.3}x)",
        if direct { "direct" } else { "buffered" },
        ns(c),
        ns(p),
        p / c,
        ns(u),
        p / u,
        u / c
    );
}

criterion_group!(benches, paired);
criterion_main!(benches);
