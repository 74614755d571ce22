//! A global allocator that counts the heap bytes the process owns, for the
//! tests and benches that hold memory flat (`tests/lifecycle_soak.rs`,
//! `benches/lifecycle.rs`). Install it with
//! `#[global_allocator] static A: CountingAlloc = CountingAlloc;`.

use std::alloc::{GlobalAlloc, Layout, System};

use crate::sync::unmodeled::{AtomicI64, Ordering};

static LIVE: AtomicI64 = AtomicI64::new(0);

/// The system allocator, counting the bytes live.
pub struct CountingAlloc;

// SAFETY: forwards every call to the system allocator unchanged; the
// counter is a plain atomic that allocates nothing.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Heap bytes the process owns now (meaningful only where
/// [`CountingAlloc`] is the global allocator): the global allocator's, and
/// the span blocks the pools hold from their own heap.
pub fn heap_bytes() -> i64 {
    #[cfg(not(loom))]
    let spans = crate::store::heap::live_bytes() as i64;
    #[cfg(loom)]
    let spans = 0;
    LIVE.load(Ordering::Relaxed) + spans
}

/// Bytes the global allocator has handed out and not had back (meaningful
/// only where [`CountingAlloc`] is the global allocator): the process's
/// heap without the pools' span blocks.
pub fn global_bytes() -> i64 {
    LIVE.load(Ordering::Relaxed)
}
