//! Where span memory comes from: 1 MiB chunks mapped for spans alone, one
//! block size per chunk, given back to the system when their last span is
//! freed (the kernel's zsmalloc takes whole pages from the buddy allocator
//! for the same reason).
//!
//! Spans used to come from the global allocator. Under churn that mixes
//! them, in glibc's arenas, with the crate's small allocations (entries,
//! list nodes, tables): a freed span's hole is partly taken by small
//! objects and can no longer hold a span, so the process holds more than
//! the pool's footprint. Measured with `uswap` (kv alone, half of 32 MiB
//! in zswap): the arenas held 1.3× the pool, and the process saved 0.60×
//! of what the compression ratio predicted; with spans kept apart, see
//! BENCHMARKS.md.
//!
//! Sizes that are whole multiples of 4 KiB up to 64 KiB are served here
//! (every span of a 4 KiB-page pool); anything else — a pool of smaller
//! pages in the tests — goes to the global allocator, as does everything
//! under loom, which models the pool's locking, not where its bytes live.
//!
//! Guarantees: a block is handed out once until freed. A chunk with no
//! block in use is unmapped at once, but for the last chunk of its size
//! with room, which stays mapped with its pages given back
//! (`MADV_DONTNEED`): a pool that empties gives all its memory back, and
//! one at a chunk boundary does not map and unmap on every span. The pages
//! of freed blocks go back too, every 10 ms at most (batched: each
//! `madvise` is a system call and a TLB shootdown), so the process holds
//! about what the pool's footprint says. Allocation takes one lock per
//! block size, and allocates (a chunk's free lists, sized for all its
//! blocks) only when a chunk is mapped or taken up again after it emptied.

use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::sync::unmodeled::{AtomicU64, Ordering};
use crate::sync::Mutex;

/// Bytes one chunk maps, and its alignment (so a block finds its chunk by
/// masking its address).
const CHUNK: usize = 1 << 20;
/// Block sizes are multiples of this.
const GRAIN: usize = 4096;
/// Block sizes served: `GRAIN`, 2 × `GRAIN`, … 16 × `GRAIN`.
const SIZES: usize = 16;
/// How long freed blocks may keep their pages: at most this often, a free
/// gives the pages of every freed block of its size back at once.
const PURGE_EVERY: Duration = Duration::from_millis(10);
/// "Not on the partial list".
const NONE: u32 = u32::MAX;

/// One mapped chunk of blocks of one size.
struct Chunk {
    base: usize,
    /// Freed blocks whose pages are still resident: handed out first.
    dirty: Vec<u32>,
    /// Freed blocks whose pages went back to the system.
    clean: Vec<u32>,
    /// Blocks `fresh..` were never handed out.
    fresh: u32,
    live: u32,
    blocks: u32,
    /// Position in `SizeHeap::partial`, or `NONE` when full.
    partial_pos: u32,
}

impl Chunk {
    /// Gives the pages of the dirty blocks back (`MADV_DONTNEED`, one
    /// call per run of adjacent blocks); they become clean.
    fn purge(&mut self, size: usize) {
        self.dirty.sort_unstable();
        let mut k = 0;
        while k < self.dirty.len() {
            let first = self.dirty[k];
            let mut n = 1;
            while k + n < self.dirty.len() && self.dirty[k + n] == first + n as u32 {
                n += 1;
            }
            discard(self.base + first as usize * size, n * size);
            k += n;
        }
        self.clean.append(&mut self.dirty);
    }
}

/// The chunks of one block size.
struct SizeHeap {
    /// Sorted by base address.
    chunks: Vec<Chunk>,
    /// Bases of the chunks with a block free.
    partial: Vec<usize>,
    /// When the freed blocks last gave their pages back.
    purged: Option<Instant>,
}

impl SizeHeap {
    const fn new() -> Self {
        SizeHeap {
            chunks: Vec::new(),
            partial: Vec::new(),
            purged: None,
        }
    }

    fn find(&self, base: usize) -> usize {
        self.chunks
            .binary_search_by_key(&base, |c| c.base)
            .expect("a block of a mapped chunk")
    }

    fn add_partial(&mut self, i: usize) {
        let base = self.chunks[i].base;
        self.chunks[i].partial_pos = self.partial.len() as u32;
        self.partial.push(base);
    }

    fn remove_partial(&mut self, i: usize) {
        let pos = self.chunks[i].partial_pos as usize;
        self.chunks[i].partial_pos = NONE;
        self.partial.swap_remove(pos);
        if let Some(&moved) = self.partial.get(pos) {
            let j = self.find(moved);
            self.chunks[j].partial_pos = pos as u32;
        }
    }

    /// Maps a new chunk for blocks of `size`; its index.
    fn map_chunk(&mut self, size: usize) -> Option<usize> {
        let base = map_aligned()?;
        let blocks = CHUNK / size;
        let i = self.chunks.partition_point(|c| c.base < base);
        // Room first (the free lists at full size, too), so neither the
        // heap nor a later free ever allocates half-way.
        self.chunks.reserve(1);
        self.partial.reserve(1);
        self.chunks.insert(
            i,
            Chunk {
                base,
                dirty: Vec::with_capacity(blocks),
                clean: Vec::with_capacity(blocks),
                fresh: 0,
                live: 0,
                blocks: blocks as u32,
                partial_pos: NONE,
            },
        );
        // Chunks after `i` moved, but the partial list names chunks by
        // base and each keeps its own position in it: nothing to fix.
        self.add_partial(i);
        Some(i)
    }

    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let i = match self.partial.last() {
            Some(&base) => self.find(base),
            None => self.map_chunk(size)?,
        };
        let c = &mut self.chunks[i];
        if c.live == 0 && c.dirty.capacity() == 0 {
            // A kept empty chunk taken up again: its free lists return.
            c.dirty.reserve_exact(c.blocks as usize);
            c.clean.reserve_exact(c.blocks as usize);
        }
        let block = match c.dirty.pop().or_else(|| c.clean.pop()) {
            Some(b) => b,
            None => {
                c.fresh += 1;
                c.fresh - 1
            }
        };
        c.live += 1;
        let ptr = c.base + block as usize * size;
        if c.live == c.blocks {
            self.remove_partial(i);
        }
        NonNull::new(ptr as *mut u8)
    }

    /// Takes back a block.
    fn free(&mut self, ptr: NonNull<u8>, size: usize) {
        let addr = ptr.as_ptr() as usize;
        let i = self.find(addr & !(CHUNK - 1));
        let c = &mut self.chunks[i];
        let was_full = c.live == c.blocks;
        c.dirty.push(((addr - c.base) / size) as u32);
        c.live -= 1;
        let empty = c.live == 0;
        if was_full {
            self.add_partial(i);
        }
        if empty {
            if self.partial.len() > 1 {
                self.remove_partial(i);
                let base = self.chunks.remove(i).base;
                unmap(base);
                // A heap that shrank gives its tables' spare room back.
                if self.chunks.capacity() > 2 * self.chunks.len() + 4 {
                    self.chunks.shrink_to(self.chunks.len() + 4);
                    self.partial.shrink_to(self.chunks.len() + 4);
                }
            } else {
                // The last chunk with room: kept mapped, so a pool at a
                // chunk boundary does not map and unmap on every span, but
                // its pages and its free lists go back, and every block is
                // fresh again.
                let c = &mut self.chunks[i];
                discard(c.base, CHUNK);
                c.dirty = Vec::new();
                c.clean = Vec::new();
                c.fresh = 0;
            }
        }
        // Batched, so a drain pays one call per run of adjacent blocks per
        // period, not one per span: `madvise` is a system call and a TLB
        // shootdown to every CPU running this process.
        let now = Instant::now();
        if self
            .purged
            .is_none_or(|t| now.duration_since(t) >= PURGE_EVERY)
        {
            self.purged = Some(now);
            for c in &mut self.chunks {
                if !c.dirty.is_empty() {
                    c.purge(size);
                }
            }
        }
    }
}

static HEAPS: [Mutex<SizeHeap>; SIZES] = [const { Mutex::new(SizeHeap::new()) }; SIZES];
/// Bytes of blocks in use, for the tests that count the process's heap.
static LIVE: AtomicU64 = AtomicU64::new(0);

fn index(size: usize) -> Option<usize> {
    (size > 0 && size % GRAIN == 0 && size / GRAIN <= SIZES).then(|| size / GRAIN - 1)
}

/// A block of `size` bytes, aligned to 4 KiB, if this heap serves that
/// size and the system has memory; `None` sends the caller to the global
/// allocator.
pub(super) fn alloc(size: usize) -> Option<NonNull<u8>> {
    let p = HEAPS[index(size)?].lock().alloc(size)?;
    LIVE.fetch_add(size as u64, Ordering::Relaxed);
    Some(p)
}

/// Gives back a block from [`alloc`].
///
/// # Safety
///
/// `ptr` must come from `alloc(size)`, not be freed since, and not be used
/// after.
pub(super) unsafe fn free(ptr: NonNull<u8>, size: usize) {
    let k = index(size).expect("a size alloc served");
    HEAPS[k].lock().free(ptr, size);
    LIVE.fetch_sub(size as u64, Ordering::Relaxed);
}

/// Bytes of span blocks in use now, process-wide.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
pub(crate) fn live_bytes() -> u64 {
    LIVE.load(Ordering::Relaxed)
}

/// Maps `CHUNK` bytes aligned to `CHUNK`: maps twice that and unmaps the
/// ends.
fn map_aligned() -> Option<usize> {
    // SAFETY: a fresh private anonymous mapping where the kernel likes.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * CHUNK,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as usize;
    let base = (start + CHUNK - 1) & !(CHUNK - 1);
    let (head, tail) = (base - start, start + 2 * CHUNK - (base + CHUNK));
    // SAFETY: the parts of our own fresh mapping outside [base, base +
    // CHUNK), which nothing refers to.
    unsafe {
        if head > 0 {
            libc::munmap(start as *mut libc::c_void, head);
        }
        if tail > 0 {
            libc::munmap((base + CHUNK) as *mut libc::c_void, tail);
        }
    }
    Some(base)
}

fn discard(addr: usize, len: usize) {
    // SAFETY: a range of a chunk this heap mapped in which no block is in
    // use: its pages may be dropped (they read as zeros after).
    unsafe { libc::madvise(addr as *mut libc::c_void, len, libc::MADV_DONTNEED) };
}

fn unmap(base: usize) {
    // SAFETY: a chunk this heap mapped, whose every block was freed.
    unsafe { libc::munmap(base as *mut libc::c_void, CHUNK) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks are distinct and writable, come back for reuse, and a chunk
    /// whose blocks are all freed is unmapped.
    #[test]
    fn blocks_are_reused_and_empty_chunks_go_back() {
        let size = 3 * GRAIN;
        let per_chunk = CHUNK / size;
        let mut h = SizeHeap::new();
        let mut blocks = Vec::new();
        for i in 0..per_chunk + 3 {
            let p = h.alloc(size).unwrap();
            // SAFETY: a fresh block of `size` bytes.
            unsafe { std::ptr::write_bytes(p.as_ptr(), i as u8, size) };
            blocks.push(p);
        }
        assert_eq!(h.chunks.len(), 2);
        let mut addrs: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), per_chunk + 3, "every block distinct");
        // Free the second chunk's three: the only chunk with room, it
        // stays mapped, empty, its pages given back.
        for p in blocks.drain(per_chunk..) {
            h.free(p, size);
        }
        assert_eq!((h.chunks.len(), h.partial.len()), (2, 1));
        assert_eq!((h.chunks[0].live + h.chunks[1].live) as usize, per_chunk);
        // Free one of the first chunk's: now two have room, and the empty
        // one is unmapped.
        let p = blocks.swap_remove(7);
        h.free(p, size);
        assert_eq!((h.chunks.len(), h.partial.len()), (2, 2));
        let q = blocks.swap_remove(8);
        h.free(q, size);
        // The freed blocks come back first, last freed first.
        let again = h.alloc(size).unwrap();
        assert!(again == q || again == p);
        blocks.push(again);
        for p in blocks {
            h.free(p, size);
        }
        // Everything freed: one chunk left, mapped and empty.
        assert_eq!(h.chunks.len(), 1);
        assert_eq!(h.chunks[0].live, 0);
    }

    #[test]
    fn only_whole_grains_up_to_sixteen_are_served() {
        assert_eq!(index(4096), Some(0));
        assert_eq!(index(16 * 4096), Some(15));
        assert_eq!(index(17 * 4096), None);
        assert_eq!(index(256), None);
        assert_eq!(index(0), None);
    }
}
