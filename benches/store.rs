//! Criterion benches of the object store on real pages (`data/pages.bin`,
//! or the file named by `ZSWAP_PAGES`), each beside its baseline in the
//! same run:
//!
//! - `store/<codec>/raw_compress` vs `store/<codec>/compress_insert`:
//!   compressing a page alone, and compressing it then allocating and
//!   writing it in a `ZsPool` that holds a resident population with holes
//!   (target: ≥ 0.95× the raw throughput).
//! - `load/<codec>/raw_decompress` vs `load/<codec>/read_decompress`:
//!   decompressing from a `Vec`, and from the pool under its class lock
//!   (target ≥ 0.90×).
//! - Printed once (not timed): footprint ÷ sum of compressed sizes after a
//!   fill, and after freeing a random half and compacting (target ≤ 1.05×),
//!   beside the same fill with one `Box<[u8]>` per object (glibc malloc,
//!   measured with `mallinfo2`).
//!
//! Same-filled pages are left out: zswap keeps them as one word and never
//! compresses them. Run with `--all-features` to include liblz4 and zstd.
//! Results: BENCHMARKS.md.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use zswap::{Compressor, Handle, PoolConfig, ZsPool};

const PAGE: usize = 4096;
/// Pages per timed chunk (stores are freed, untimed, between chunks).
const CHUNK: usize = 1024;

fn pages() -> Vec<Vec<u8>> {
    zswap::testing::bench_pages()
}

fn codecs() -> Vec<Compressor> {
    ["lz4-flex", "lz4-c", "zstd", "deflate:1"]
        .iter()
        .filter_map(|n| Compressor::by_name(n).ok())
        .collect()
}

/// Times `per_page` over `iters` pages, cycling through `pages`, running
/// `between` untimed after each chunk; both get `state`.
fn timed<S>(
    iters: u64,
    pages: &[Vec<u8>],
    state: &mut S,
    mut per_page: impl FnMut(&mut S, &[u8]),
    mut between: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let n = (iters - done).min(CHUNK as u64);
        let start = Instant::now();
        for i in 0..n {
            per_page(state, &pages[(done + i) as usize % pages.len()]);
        }
        total += start.elapsed();
        between(state);
        done += n;
    }
    total
}

fn store(c: &mut Criterion) {
    let pages = pages();
    for codec in codecs() {
        let mut g = c.benchmark_group(format!("store/{codec}"));
        g.throughput(Throughput::Elements(1));
        let mut dst = vec![0u8; PAGE];
        g.bench_function("raw_compress", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &pages,
                    &mut dst,
                    |dst, p| {
                        let _ = black_box(codec.compress(p, dst));
                    },
                    |_| {},
                )
            })
        });
        // Steady state: a resident population with holes (every other
        // object freed), as a pool that has been storing and invalidating
        // for a while; each timed chunk fills holes and is freed untimed.
        let pool = ZsPool::new(PoolConfig::default()).unwrap();
        let resident: Vec<Handle> = pages
            .iter()
            .cycle()
            .take(4 * pages.len())
            .filter_map(|p| {
                let n = codec.compress(p, &mut dst).ok()?;
                Some(pool.insert(&dst[..n]).unwrap())
            })
            .collect();
        for h in resident.iter().step_by(2) {
            pool.free(*h).unwrap();
        }
        let mut state: (Vec<u8>, Vec<Handle>) = (dst, Vec::with_capacity(CHUNK));
        g.bench_function("compress_insert", |b| {
            b.iter_custom(|iters| {
                timed(
                    iters,
                    &pages,
                    &mut state,
                    |(dst, handles), p| {
                        if let Ok(n) = codec.compress(p, dst) {
                            handles.push(pool.insert(&dst[..n]).unwrap());
                        }
                    },
                    |(_, handles)| {
                        for h in handles.drain(..) {
                            pool.free(h).unwrap();
                        }
                    },
                )
            })
        });
        g.finish();
    }
}

/// The pool alone: insert of already-compressed objects (the copy into the
/// pool included), freed untimed between chunks, in the same steady state
/// as `compress_insert`.
fn pool_only(c: &mut Criterion) {
    let pages = pages();
    let Ok(codec) = Compressor::by_name("lz4") else {
        return;
    };
    let mut dst = vec![0u8; PAGE];
    let objects: Vec<Vec<u8>> = pages
        .iter()
        .filter_map(|p| codec.compress(p, &mut dst).ok().map(|n| dst[..n].to_vec()))
        .collect();
    let pool = ZsPool::new(PoolConfig::default()).unwrap();
    let resident: Vec<Handle> = objects
        .iter()
        .cycle()
        .take(4 * objects.len())
        .map(|o| pool.insert(o).unwrap())
        .collect();
    for h in resident.iter().step_by(2) {
        pool.free(*h).unwrap();
    }
    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(1));
    let mut handles: Vec<Handle> = Vec::with_capacity(CHUNK);
    g.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            timed(
                iters,
                &objects,
                &mut handles,
                |hs, o| hs.push(pool.insert(o).unwrap()),
                |hs| {
                    for h in hs.drain(..) {
                        pool.free(h).unwrap();
                    }
                },
            )
        })
    });
    g.finish();
}

fn load(c: &mut Criterion) {
    let pages = pages();
    for codec in codecs() {
        let mut g = c.benchmark_group(format!("load/{codec}"));
        g.throughput(Throughput::Elements(1));
        let pool = ZsPool::new(PoolConfig::default()).unwrap();
        let mut packed = Vec::new();
        let mut handles = Vec::new();
        let mut dst = vec![0u8; PAGE];
        for p in &pages {
            if let Ok(n) = codec.compress(p, &mut dst) {
                packed.push(dst[..n].to_vec());
                handles.push(pool.insert(&dst[..n]).unwrap());
            }
        }
        let mut page = vec![0u8; PAGE];
        let mut i = 0;
        g.bench_function("raw_decompress", |b| {
            b.iter(|| {
                i = (i + 1) % packed.len();
                codec.decompress(&packed[i], &mut page).unwrap();
                black_box(&page);
            })
        });
        g.bench_function("read_decompress", |b| {
            b.iter(|| {
                i = (i + 1) % handles.len();
                pool.read(handles[i], |src| codec.decompress(src, &mut page))
                    .unwrap()
                    .unwrap();
                black_box(&page);
            })
        });
        g.finish();
    }
}

/// Store and load ratios measured in alternating rounds (raw, pool, raw,
/// pool, ...) and compared by their medians, so that a noisy neighbour
/// slows both sides alike. Printed, not timed by criterion.
fn paired(_: &mut Criterion) {
    let pages = pages();
    println!(
        "\npaired ratios, median of 21 alternating rounds over {} pages:",
        pages.len()
    );
    for codec in codecs() {
        let pool = ZsPool::new(PoolConfig::default()).unwrap();
        let mut dst = vec![0u8; PAGE];
        let mut page = vec![0u8; PAGE];
        let packed: Vec<Vec<u8>> = pages
            .iter()
            .filter_map(|p| codec.compress(p, &mut dst).ok().map(|n| dst[..n].to_vec()))
            .collect();
        // Steady state, as in `store`: a resident population (4x the pages)
        // with every other object freed, whose holes each round's stores
        // fill; the round's objects are freed afterwards.
        let resident: Vec<Handle> = packed
            .iter()
            .cycle()
            .take(4 * packed.len())
            .map(|o| pool.insert(o).unwrap())
            .collect();
        for h in resident.iter().step_by(2) {
            pool.free(*h).unwrap();
        }
        // Loads read a compact population, as the raw baseline's `Vec`s are.
        let loads = ZsPool::new(PoolConfig::default()).unwrap();
        let compact: Vec<Handle> = packed.iter().map(|o| loads.insert(o).unwrap()).collect();
        let (mut raw_c, mut pool_c, mut raw_d, mut pool_d) = (vec![], vec![], vec![], vec![]);
        // A third store baseline: compress, then copy the bytes into a large
        // ring (storing them anywhere costs that much).
        let mut ring = vec![0u8; 64 << 20];
        let mut at = 0usize;
        let mut copy_c = vec![];
        let mut fresh = Vec::with_capacity(pages.len());
        for _ in 0..21 {
            let t = Instant::now();
            for p in &pages {
                let _ = black_box(codec.compress(p, &mut dst));
            }
            raw_c.push(t.elapsed());
            let t = Instant::now();
            for p in &pages {
                if let Ok(n) = codec.compress(p, &mut dst) {
                    fresh.push(pool.insert(&dst[..n]).unwrap());
                }
            }
            pool_c.push(t.elapsed());
            let t = Instant::now();
            for p in &pages {
                if let Ok(n) = codec.compress(p, &mut dst) {
                    if at + n > ring.len() {
                        at = 0;
                    }
                    ring[at..at + n].copy_from_slice(&dst[..n]);
                    at += n.next_multiple_of(16);
                }
            }
            copy_c.push(t.elapsed());
            black_box(&ring);
            for h in fresh.drain(..) {
                pool.free(h).unwrap();
            }
            let t = Instant::now();
            for o in &packed {
                codec.decompress(o, &mut page).unwrap();
                black_box(&page);
            }
            raw_d.push(t.elapsed());
            let t = Instant::now();
            for h in &compact {
                loads
                    .read(*h, |o| codec.decompress(o, &mut page))
                    .unwrap()
                    .unwrap();
                black_box(&page);
            }
            pool_d.push(t.elapsed());
        }
        let med = |v: &mut Vec<Duration>| {
            v.sort();
            v[v.len() / 2].as_secs_f64()
        };
        let per = |d: f64, n: usize| d * 1e9 / n as f64;
        let (rc, pc, rd, pd) = (
            med(&mut raw_c),
            med(&mut pool_c),
            med(&mut raw_d),
            med(&mut pool_d),
        );
        let cc = med(&mut copy_c);
        println!(
            "  {codec:<10} store: compress+copy into a 64 MiB ring {:>6.0} ns, ratio to raw {:.3}x, compress+insert to it {:.3}x",
            per(cc, pages.len()),
            rc / cc,
            cc / pc
        );
        println!(
            "  {codec:<10} store: raw compress {:>6.0} ns, compress+insert {:>6.0} ns, ratio {:.3}x | load: raw decompress {:>6.0} ns, read+decompress {:>6.0} ns, ratio {:.3}x",
            per(rc, pages.len()),
            per(pc, pages.len()),
            rc / pc,
            per(rd, packed.len()),
            per(pd, packed.len()),
            rd / pd
        );
    }
}

/// Bytes glibc's malloc holds from the system and has in use.
fn malloc_bytes() -> (usize, usize) {
    // SAFETY: mallinfo2 only reads the allocator's statistics.
    let mi = unsafe { libc::mallinfo2() };
    (mi.arena + mi.hblkhd, mi.uordblks + mi.hblkhd)
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

/// The `n` compressed objects both fills use, and which half survives.
fn fill_set(n: usize) -> (Compressor, Vec<Vec<u8>>, Vec<bool>) {
    let pages = pages();
    let codec = Compressor::by_name("lz4").expect("lz4 is always built");
    let mut dst = vec![0u8; PAGE];
    let objects: Vec<Vec<u8>> = pages
        .iter()
        .cycle()
        .filter_map(|p| codec.compress(p, &mut dst).ok().map(|n| dst[..n].to_vec()))
        .take(n)
        .collect();
    (codec, objects, keep_mask(n))
}

/// Runs in a fresh child process, so that malloc's arena holds nothing
/// else: one `Box<[u8]>` per object, then a random half freed. Prints
/// held and in-use bytes after each.
fn malloc_child(n: usize) {
    // Everything the fill needs is made before the first reading and kept
    // alive to the last, so the arena's growth is the boxes' alone.
    let pages = pages();
    let codec = Compressor::by_name("lz4").expect("lz4 is always built");
    let keep = keep_mask(n);
    let mut dst = vec![0u8; PAGE];
    let mut boxes: Vec<Option<Box<[u8]>>> = Vec::with_capacity(n);
    let (held0, used0) = malloc_bytes();
    for p in pages.iter().cycle() {
        if boxes.len() == n {
            break;
        }
        if let Ok(len) = codec.compress(p, &mut dst) {
            boxes.push(Some(dst[..len].into()));
        }
    }
    let (held1, used1) = malloc_bytes();
    for (b, k) in boxes.iter_mut().zip(&keep) {
        if !k {
            *b = None;
        }
    }
    let (held2, used2) = malloc_bytes();
    black_box(&boxes);
    black_box(&pages);
    println!(
        "{} {} {} {}",
        held1 - held0,
        used1 - used0,
        held2.saturating_sub(held0),
        used2.saturating_sub(used0)
    );
}

fn footprint(_: &mut Criterion) {
    for n in [16_384, 65_536] {
        footprint_report(n);
    }
}

fn footprint_report(n: usize) {
    let (codec, objects, keep) = fill_set(n);
    let sum: usize = objects.iter().map(Vec::len).sum();
    let kept: usize = objects
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(o, _)| o.len())
        .sum();
    let nkept = keep.iter().filter(|k| **k).count();

    let pool = ZsPool::new(PoolConfig::default()).unwrap();
    let hs: Vec<Handle> = objects.iter().map(|o| pool.insert(o).unwrap()).collect();
    let full = pool.footprint();
    let meta_full = pool.stats().meta_bytes;
    for (h, k) in hs.iter().zip(&keep) {
        if !k {
            pool.free(*h).unwrap();
        }
    }
    let freed = pool.footprint();
    pool.compact();
    pool.shrink_cache();
    let compacted = pool.footprint();

    let r = |a: usize, b: usize| a as f64 / b as f64;
    println!(
        "\nfootprint: {n} objects ({codec}, {:.1} MiB compressed, compression ratio {:.2})",
        sum as f64 / 1048576.0,
        r(n * PAGE, sum)
    );
    println!(
        "  ZsPool after fill:                    {:.3}x of compressed bytes",
        r(full, sum)
    );
    println!(
        "  ZsPool metadata after fill:           {:.1} B per object",
        r(meta_full, n)
    );
    println!(
        "  ZsPool after freeing half:            {:.3}x of kept bytes",
        r(freed, kept)
    );
    println!(
        "  ZsPool after freeing half + compact:  {:.3}x of kept bytes",
        r(compacted, kept)
    );
    let _ = nkept;

    let exe = std::env::current_exe().expect("bench binary path");
    let out = std::process::Command::new(exe)
        .env("ZSWAP_BENCH_MALLOC", n.to_string())
        .output()
        .expect("malloc baseline child");
    let nums: Vec<usize> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    if let [held1, used1, held2, used2] = nums[..] {
        println!(
            "  malloc Box<[u8]> after fill:          {:.3}x held, {:.3}x in use",
            r(held1, sum),
            r(used1, sum)
        );
        println!(
            "  malloc Box<[u8]> after freeing half:  {:.3}x held, {:.3}x in use (no compaction)",
            r(held2, kept),
            r(used2, kept)
        );
    }
}

criterion_group!(benches, footprint, paired, pool_only, store, load);

fn main() {
    if let Some(n) = std::env::var("ZSWAP_BENCH_MALLOC")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        malloc_child(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
