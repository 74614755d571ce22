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
//!
//! The pool's footprint and metadata are in `benches/footprint.rs`.
//!
//! Same-filled pages are left out: zswap keeps them as one word and never
//! compresses them. Run with `--all-features` to include liblz4 and zstd.
//! Results: BENCHMARKS.md.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use zswap::testing::ColdArena;
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
        let mut ring = ColdArena::new(64 << 20);
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
                    ring.put(&dst[..n]);
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

criterion_group!(benches, paired, pool_only, store, load);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
