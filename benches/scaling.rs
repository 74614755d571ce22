//! Many-core scaling of the zswap facade: 1..N threads (N = the machine's
//! cores; every power of two up to it, and N), each on its own group, all
//! sharing one `Zswap`, one pool and one area, for store-only, load-only,
//! and a mix on real pages: half stores, half loads, each thread's group
//! holding `RESIDENT` pages at its `zswap_max`. So a store first writes
//! the group's coldest page back (the kernel's `shrink_memcg` path), or,
//! when that entry is referenced and only rotated, is rejected and goes
//! to the swap file itself (as the kernel's store is); a load swaps in a
//! page of the group's from zswap or the file. The table says how much of
//! each the mix did. Prints
//! throughput and the speed-up over one thread per N; the target is
//! ≥ 0.9 × N for store-only and load-only. Beside them, the raw
//! decompress of the same pages on N threads, no zswap involved: what the
//! machine itself gives N threads of a load's main work (shared caches,
//! memory bandwidth, a hypervisor's placement), so a load's speed-up can
//! be read against it. The mix writes to one swap file,
//! which the file system may serialize: it is reported, not held to a
//! target.
//!
//! `cargo bench --bench scaling` (no criterion: one table, median of
//! `ROUNDS` runs per cell). Runs unchanged on 2 to 64+ cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use zswap::{
    FileDevice, GroupId, Groups, MemDevice, PoolLimit, SwapDevice, SwapSlot, SwapSource, Topology,
    Zswap, ZswapConfig, PAGE_SIZE,
};

const ROUNDS: usize = 5;
/// Operations per thread per run, cycling over the real pages.
const OPS: usize = 16_384;
/// Pages each thread's group holds when the mix starts: about half in
/// zswap, at the group's limit, the rest in the swap file.
const RESIDENT: usize = 4096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Store,
    Load,
    Mix,
    /// The baseline of the load: each thread decompresses its own
    /// compressed copies of the same pages, with no zswap at all — what
    /// the machine itself gives N threads of that work.
    Raw,
}

fn thread_counts(max: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1), |&n| Some(n * 2))
        .take_while(|&n| n < max)
        .collect();
    v.push(max);
    v
}

/// What one run did besides its wall time: pages written back and
/// swap-ins the device served (the mix's; zero elsewhere).
#[derive(Clone, Copy, Default)]
struct Io {
    written_back: u64,
    device_reads: u64,
}

/// One run of `mode` on `n` threads: the timed phase's wall time, and its
/// writeback.
fn run(mode: Mode, n: usize, pages: &[Vec<u8>]) -> (Duration, Io) {
    let groups = Groups::new();
    let z = Zswap::new(
        ZswapConfig::default()
            .shrink_worker(false)
            .topology(Topology::single())
            .max_pool(PoolLimit::Bytes(1 << 40)),
        &groups,
    )
    .unwrap();
    let slots = (n * (OPS + RESIDENT) + 1024) as u64;
    let device: Box<dyn SwapDevice> = match mode {
        Mode::Mix => Box::new(FileDevice::temp(slots).unwrap()),
        _ => Box::new(MemDevice::new(slots)),
    };
    z.swapon(device).unwrap();
    let ids: Vec<GroupId> = (0..n)
        .map(|_| groups.create(GroupId::ROOT).unwrap())
        .collect();
    let page = |t: usize, i: usize| &pages[(t * 7919 + i) % pages.len()];
    // Load-only times swap-ins of pages stored beforehand, untimed.
    let stored: Vec<Vec<SwapSlot>> = if mode == Mode::Load {
        (0..n)
            .map(|t| {
                (0..OPS)
                    .map(|i| z.swap_out(page(t, i), ids[t]).unwrap())
                    .collect()
            })
            .collect()
    } else if mode == Mode::Mix {
        // The group's resident pages, untimed: half of them, then a limit
        // at what those take, then the other half, which the limit sends
        // to the file (written back or rejected). So the mix starts with
        // the group at its limit and about half its pages in the file.
        (0..n)
            .map(|t| {
                let fill = |from: usize| {
                    (from..from + RESIDENT / 2)
                        .map(|i| z.swap_out(page(t, OPS + i), ids[t]).unwrap())
                        .collect::<Vec<_>>()
                };
                let mut live = fill(0);
                let held = groups.stats(ids[t]).unwrap().zswap;
                groups.set_zswap_max(ids[t], Some(held)).unwrap();
                live.extend(fill(RESIDENT / 2));
                live
            })
            .collect()
    } else {
        vec![Vec::new(); n]
    };
    // The raw baseline's input: each thread's pages, compressed beforehand.
    let codec = z.compressor();
    let raw: Vec<Vec<Vec<u8>>> = if mode == Mode::Raw {
        (0..n)
            .map(|t| {
                (0..OPS)
                    .map(|i| {
                        let mut out = vec![0u8; PAGE_SIZE];
                        let len = codec.compress(page(t, i), &mut out).unwrap_or(0);
                        out.truncate(len);
                        out
                    })
                    .collect()
            })
            .collect()
    } else {
        vec![Vec::new(); n]
    };
    let barrier = Barrier::new(n + 1);
    let written_before = z.stats().written_back_pages;
    let device_reads = AtomicU64::new(0);
    let mut wall = Duration::ZERO;
    std::thread::scope(|s| {
        for ((t, mine), packed) in stored.into_iter().enumerate().zip(raw) {
            let (z, barrier, g, device_reads) = (&z, &barrier, ids[t], &device_reads);
            s.spawn(move || {
                let mut back = vec![0u8; PAGE_SIZE];
                barrier.wait();
                match mode {
                    Mode::Store => {
                        for i in 0..OPS {
                            z.swap_out(page(t, i), g).unwrap();
                        }
                    }
                    Mode::Load => {
                        for slot in mine {
                            z.swap_in(slot, &mut back).unwrap();
                        }
                    }
                    Mode::Raw => {
                        for (i, c) in packed.iter().enumerate() {
                            // An incompressible page (len 0) is a copy.
                            if c.is_empty() {
                                back.copy_from_slice(page(t, i));
                            } else {
                                codec.decompress(c, &mut back).unwrap();
                            }
                        }
                    }
                    Mode::Mix => {
                        let mut live = mine;
                        for i in 0..OPS {
                            if i % 2 == 0 {
                                live.push(z.swap_out(page(t, i), g).unwrap());
                            } else {
                                let slot = live.swap_remove((i * 7919) % live.len());
                                if z.swap_in(slot, &mut back).unwrap() == SwapSource::Device {
                                    device_reads.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let t0 = Instant::now();
        barrier.wait();
        wall = t0.elapsed();
    });
    let io = Io {
        written_back: z.stats().written_back_pages - written_before,
        device_reads: device_reads.into_inner(),
    };
    (wall, io)
}

/// The run of median wall time.
fn median(mut v: Vec<(Duration, Io)>) -> (Duration, Io) {
    v.sort_by_key(|r| r.0);
    v[v.len() / 2]
}

fn main() {
    let pages = zswap::testing::bench_pages();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\nzswap scaling on {cores} cores: {OPS} operations per thread, each thread its own group, \
         one Zswap, pool and area; median of {ROUNDS} runs; {} real pages",
        pages.len()
    );
    println!(
        "{:>4} | {:>22} | {:>22} | {:>22} | {:>22} | the mix's writeback",
        "N",
        "store (pages/s, ×1)",
        "load (pages/s, ×1)",
        "mix + writeback (×1)",
        "raw decompress (×1)"
    );
    let mut base = [0.0f64; 4];
    for n in thread_counts(cores) {
        let mut cells = Vec::new();
        let mut mix = Io::default();
        for (k, mode) in [Mode::Store, Mode::Load, Mode::Mix, Mode::Raw]
            .into_iter()
            .enumerate()
        {
            let (wall, io) = median((0..ROUNDS).map(|_| run(mode, n, &pages)).collect());
            let rate = (n * OPS) as f64 / wall.as_secs_f64();
            if n == 1 {
                base[k] = rate;
            }
            if mode == Mode::Mix {
                mix = io;
            }
            cells.push(format!("{:>12.0} {:>7.2}x", rate, rate / base[k]));
        }
        // Half the mix's operations are stores, half loads.
        let half = (n * OPS / 2) as f64;
        println!(
            "{n:>4} | {} | {} | {} | {} | {:.2} written back per store, {:.2} of loads from the file",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            mix.written_back as f64 / half,
            mix.device_reads as f64 / half
        );
    }
}
