//! Steady state allocates nothing: compressing and decompressing pages with
//! every codec, and storing, reading and freeing them in a `ZsPool`, once
//! per-thread scratch and the pool's spans exist. Counted by a global
//! allocator wrapper, on this test's own thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use zswap::{Compressor, PoolConfig, ZsPool};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is thread-local.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

fn sample_pages() -> Vec<Vec<u8>> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/pages.bin");
    let all = std::fs::read(path).expect("data/pages.bin is committed");
    all.chunks(4096)
        .step_by(16)
        .take(64)
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn codecs_and_pool_allocate_nothing_in_steady_state() {
    let pages = sample_pages();
    // Steady state for the pool means spans with room exist: each round
    // frees everything, so let the classes keep their empty spans.
    let mut cfg = PoolConfig::default();
    cfg.cached_spans_per_class = 8;
    let pool = ZsPool::new(cfg).unwrap();
    let mut dst = vec![0u8; 4096];
    let mut back = vec![0u8; 4096];
    let mut handles = Vec::with_capacity(pages.len());
    for name in Compressor::names() {
        let c = Compressor::by_name(name).unwrap();
        let mut round = |count: bool| {
            let before = allocs();
            for p in &pages {
                let _ = c.compress(p, &mut dst[..3072]);
            }
            if count {
                assert_eq!(allocs() - before, 0, "{name} compress alone allocated");
            }
            let before = allocs();
            for p in &pages {
                if let Ok(n) = c.compress(p, &mut dst[..3072]) {
                    c.decompress(&dst[..n], &mut back).unwrap();
                    assert_eq!(&back, p);
                    handles.push(pool.insert(&dst[..n]).unwrap());
                }
            }
            for h in handles.drain(..) {
                pool.read(h, |b| assert!(!b.is_empty())).unwrap();
                pool.free(h).unwrap();
            }
            if count {
                assert_eq!(allocs() - before, 0, "{name} allocated in steady state");
            }
            let before = allocs();
            for p in &pages {
                let _ = c.compress(p, &mut dst[..3072]);
            }
            if count {
                assert_eq!(allocs() - before, 0, "{name} compress allocated");
            }
        };
        round(false); // warm-up: scratch, contexts, spans, handle tables
        round(false);
        round(true);
    }
}
