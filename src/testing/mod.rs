//! Test harnesses shared by the proptest state machines, the fuzz targets
//! and the corpus replay in `tests/`. Not part of the public API: hidden
//! from the docs and free to change.

#![allow(missing_docs)]

/// Proptest cases for a state-machine test: `ZSWAP_PROPTEST_CASES` if set
/// to a number, else `default`.
pub fn proptest_cases(default: u32) -> u32 {
    std::env::var("ZSWAP_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An incompressible page: xorshift bytes from `seed`.
pub fn random_page(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..crate::PAGE_SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The pages benches run on: the file named by `ZSWAP_PAGES`, else the
/// committed sample, without its same-filled pages (zswap keeps those as
/// one word and never compresses them). Panics if the file cannot be read.
pub fn bench_pages() -> Vec<Vec<u8>> {
    let path = std::env::var("ZSWAP_PAGES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/data/pages.bin").into());
    let all = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    all.chunks_exact(crate::PAGE_SIZE)
        .filter(|p| crate::zswap::same_filled(p).is_none())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Where a bench's "compress, then copy" store baseline puts compressed
/// bytes: written through once when made (so no page fault is timed),
/// then filled in order, 16-byte aligned, and wrapped, so that every copy
/// lands on memory not touched for the last `bytes` bytes (cold, when
/// larger than the last-level cache).
pub struct ColdArena {
    mem: Vec<u8>,
    at: usize,
}

impl ColdArena {
    /// An arena of `bytes` bytes.
    pub fn new(bytes: usize) -> Self {
        ColdArena {
            mem: vec![1u8; bytes],
            at: 0,
        }
    }

    /// Copies `bytes` into the next place.
    pub fn put(&mut self, bytes: &[u8]) {
        if self.at + bytes.len() > self.mem.len() {
            self.at = 0;
        }
        self.mem[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at = (self.at + bytes.len()).next_multiple_of(crate::ALIGN);
    }
}

/// The committed real-page sample (`data/pages.bin`), page by page; empty
/// where the file is not at hand.
pub fn sample_pages() -> Vec<Vec<u8>> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/pages.bin"))
        .map(|all| {
            all.chunks_exact(crate::PAGE_SIZE)
                .map(<[u8]>::to_vec)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(not(loom))]
pub mod codec;
#[cfg(not(loom))]
pub mod faulty;
/// A counting global allocator.
pub mod heap;
#[cfg(not(loom))]
pub mod lru_model;
#[cfg(not(loom))]
pub mod store_model;
#[cfg(not(loom))]
pub mod swapfile;
#[cfg(not(loom))]
pub mod zswap_model;
#[cfg(not(loom))]
pub mod zswap_seq;
