//! Criterion benches of `ListLru`, each beside the baseline it is judged by.
//!
//! - `add_del`, `rotate`, `walk`: one thread, per-operation and per-item
//!   cost (absolute targets: add+del ≤ 40 ns, walk ≤ 30 ns per item).
//! - `two_threads`: two threads adding and deleting at once, each in its own
//!   group (`sharded`), against the design before memcg-aware zswap: one
//!   global list under one lock (`global_lock`, the same code made
//!   group-unaware with one node, so the ratio isolates the sharding).
//!   Target: sharded ≥ 1.5× the baseline's throughput.
//!
//! Results and the machine they were measured on: BENCHMARKS.md.

#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zswap::{GroupId, Groups, Item, ListLru, LruStatus, NodeId, Topology};

const N0: NodeId = NodeId::ZERO;

fn add_del(c: &mut Criterion) {
    let mut g = c.benchmark_group("add_del");
    g.throughput(Throughput::Elements(1));
    let groups = Groups::new();
    let tenant = groups.create(GroupId::ROOT).unwrap();
    let lru = ListLru::with_groups(&Topology::single(), &groups);
    // A populated list, so links touch neighbours as in real use.
    let resident: Vec<_> = (0..1024u64).map(Item::new).collect();
    for it in &resident {
        lru.add(it, N0, tenant).unwrap();
    }
    let item = Item::new(0u64);
    g.bench_function("group_aware", |b| {
        b.iter(|| {
            lru.add(black_box(&item), N0, tenant).unwrap();
            lru.del(black_box(&item)).unwrap()
        })
    });
    let flat = ListLru::new(&Topology::single());
    let flat_resident: Vec<_> = (0..1024u64).map(Item::new).collect();
    for it in &flat_resident {
        flat.add(it, N0, GroupId::ROOT).unwrap();
    }
    let item2 = Item::new(0u64);
    g.bench_function("group_unaware", |b| {
        b.iter(|| {
            flat.add(black_box(&item2), N0, GroupId::ROOT).unwrap();
            flat.del(black_box(&item2)).unwrap()
        })
    });
    g.finish();
}

fn rotate(c: &mut Criterion) {
    let mut g = c.benchmark_group("rotate");
    g.throughput(Throughput::Elements(1));
    let lru = ListLru::new(&Topology::single());
    let items: Vec<_> = (0..1024u64).map(Item::new).collect();
    for it in &items {
        lru.add(it, N0, GroupId::ROOT).unwrap();
    }
    let mut i = 0;
    g.bench_function("rotate", |b| {
        b.iter(|| {
            i = (i + 7) % items.len();
            lru.rotate(black_box(&items[i])).unwrap()
        })
    });
    g.finish();
}

fn walk(c: &mut Criterion) {
    const N: usize = 4096;
    let mut g = c.benchmark_group("walk");
    g.throughput(Throughput::Elements(N as u64));
    let lru = ListLru::new(&Topology::single());
    let items: Vec<_> = (0..N as u64).map(Item::new).collect();
    for it in &items {
        lru.add(it, N0, GroupId::ROOT).unwrap();
    }
    g.bench_function("skip", |b| {
        b.iter(|| {
            let mut budget = N;
            let mut sum = 0u64;
            lru.walk_one(N0, GroupId::ROOT, &mut budget, |w| {
                sum += *w.item();
                LruStatus::Skip
            })
            .unwrap();
            black_box(sum)
        })
    });
    g.bench_function("rotate", |b| {
        b.iter(|| {
            let mut budget = N;
            lru.walk_one(N0, GroupId::ROOT, &mut budget, |_| LruStatus::Rotate)
                .unwrap()
        })
    });
    g.bench_function("isolate_putback", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut budget = N;
                let mut taken = Vec::with_capacity(N);
                lru.walk_one(N0, GroupId::ROOT, &mut budget, |w| {
                    taken.push(w.isolate().unwrap());
                    LruStatus::Removed
                })
                .unwrap();
                for it in &taken {
                    lru.putback(it, N0, GroupId::ROOT).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Two threads, each doing `iters` add+del pairs on its own items in `group`
/// of its index; the wall time of the slower.
fn run_two(lru: &ListLru<u64>, groups: [GroupId; 2], iters: u64) -> Duration {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = groups
            .iter()
            .map(|&group| {
                let barrier = &barrier;
                s.spawn(move || {
                    let items: Vec<_> = (0..64u64).map(Item::new).collect();
                    for it in &items[..32] {
                        lru.add(it, N0, group).unwrap();
                    }
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters as usize {
                        let it = &items[32 + i % 32];
                        lru.add(it, N0, group).unwrap();
                        lru.del(it).unwrap();
                    }
                    let t = start.elapsed();
                    for it in &items[..32] {
                        lru.del(it).unwrap();
                    }
                    t
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .max()
            .unwrap()
    })
}

fn two_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads");
    // One iteration = one add+del pair on each of the two threads.
    g.throughput(Throughput::Elements(2));
    let groups = Groups::new();
    let a = groups.create(GroupId::ROOT).unwrap();
    let b = groups.create(GroupId::ROOT).unwrap();
    let sharded = ListLru::with_groups(&Topology::single(), &groups);
    g.bench_function("sharded", |bench| {
        bench.iter_custom(|iters| run_two(&sharded, [a, b], iters))
    });
    let global = ListLru::new(&Topology::single());
    g.bench_function("global_lock", |bench| {
        bench.iter_custom(|iters| run_two(&global, [GroupId::ROOT, GroupId::ROOT], iters))
    });
    g.finish();
}

criterion_group!(benches, add_del, rotate, walk, two_threads);
criterion_main!(benches);
