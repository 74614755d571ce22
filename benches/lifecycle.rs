//! What swapping on costs before anything is stored: the resident memory
//! (RSS, from /proc/self/statm) and the heap bytes (a counting allocator)
//! that `Zswap::swapon` of a 64 GiB swap file takes, plain and
//! checksummed, then after one page is stored and after it is swapped back
//! in. The baseline is the design this replaced: per-slot arrays of the
//! whole device (an 8-byte index cell, a state byte and a free bit per
//! slot), whose cost is computed beside it.
//!
//! `cargo bench --bench lifecycle` (prints a table; no criterion: the
//! figures are sizes, not times).

use zswap::testing::heap::{heap_bytes, CountingAlloc};
use zswap::{Checksummed, FileDevice, GroupId, Groups, SwapDevice, Zswap, ZswapConfig, PAGE_SIZE};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Resident bytes of this process.
fn rss() -> i64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: i64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn heap() -> i64 {
    heap_bytes()
}

fn kib(b: i64) -> String {
    format!("{:.0} KiB", b as f64 / 1024.0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let groups = Groups::new();
    let z = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups).unwrap();
    let page: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 7 / 5) as u8).collect();
    // Warm-up: this thread's scratch, the root's lists, the pool's tables.
    let warm = z.swapon(Box::new(FileDevice::temp(16).unwrap())).unwrap();
    let s = z.swap_out(&page, GroupId::ROOT).unwrap();
    z.swap_in(s, &mut vec![0u8; PAGE_SIZE]).unwrap();
    z.compact();
    z.swapoff(warm).unwrap();

    let slots: u64 = 64 << 30 >> 12;
    let old_design = slots as i64 * 8 + slots as i64 + slots as i64 / 8;
    println!("swapon of a 64 GiB swap file ({slots} slots)");
    println!();
    println!("| device | heap at swapon | RSS at swapon | heap after one store | after swapping it in | per-slot arrays (the old design) |");
    println!("|---|---|---|---|---|---|");
    for checksummed in [false, true] {
        let (h0, r0) = (heap(), rss());
        let file = FileDevice::temp(slots).unwrap();
        let dev: Box<dyn SwapDevice> = if checksummed {
            Box::new(Checksummed::new(file))
        } else {
            Box::new(file)
        };
        let area = z.swapon(dev).unwrap();
        let (h1, r1) = (heap() - h0, rss() - r0);
        let slot = z.swap_out(&page, GroupId::ROOT).unwrap();
        let h2 = heap() - h0;
        let mut back = vec![0u8; PAGE_SIZE];
        z.swap_in(slot, &mut back).unwrap();
        drop(back);
        z.compact();
        let h3 = heap() - h0;
        z.swapoff(area).unwrap();
        let old = old_design + if checksummed { slots as i64 * 8 } else { 0 };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            if checksummed {
                "checksummed file"
            } else {
                "file"
            },
            kib(h1),
            kib(r1),
            kib(h2),
            kib(h3),
            kib(old),
        );
    }
}
