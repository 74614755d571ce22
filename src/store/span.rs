//! One span: 1–8 contiguous pages holding equal-sized slots of one size
//! class (zsmalloc's zspage), and the size-class table that decides how
//! slots pack.
//!
//! A span owns its memory (a block of the span heap, `heap.rs`; from the
//! global allocator where that does not serve its size) and a 32-byte
//! record; it keeps no per-slot metadata at all. Slots never used
//! are handed out in order (`fresh`); a freed slot's first two bytes hold
//! the next free slot, so the free list lives in memory nobody else uses,
//! as zsmalloc's `link_free` does. Compaction finds a span's objects from
//! one scan per pass (of its class's handle table, or of the owner's
//! records for placed objects), which is rare work, rather than keeping a
//! reverse map on every object. Nothing here is
//! synchronized: a span is only ever changed under its class's lock. The
//! one access outside it is `Class::read_placed`, which reads a live
//! placed object's bytes after the lock is released; every write under the
//! lock goes to a free slot (an allocation, or the link of the slot being
//! freed) or, in compaction (which drains a span of placed objects only
//! once it holds its owner's claim on each), moves objects, so no write
//! touches bytes being read that way.
//!
//! Span memory is not zeroed. The invariant the `unsafe` here rests on: the
//! first `len` bytes of a live object's slot have been written (by the
//! insert, the zero-fill of a bare `alloc`, a `write`, or the compaction move
//! that put the object there), and so have the first two bytes of every slot
//! on the free list (its link); nothing else is ever read.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

use crate::sync::AccessToken;

/// End of a span's free list.
const NO_SLOT: u16 = u16::MAX;

/// Memory held from the system for one span, `bytes` long: a block of the
/// span heap (`heap.rs`), or from the global allocator.
pub(super) struct SpanMem {
    ptr: NonNull<u8>,
    bytes: u32,
    align_shift: u8,
    /// Under loom, stands for the bytes (nothing otherwise): reads without
    /// the class lock hold it for reading, compaction's moves and the
    /// span's release for writing.
    token: AccessToken,
}

// SAFETY: `SpanMem` owns its allocation exclusively; moving that ownership
// between threads is fine, and all access goes through `&mut`/`&` of the
// owning span under its class lock.
unsafe impl Send for SpanMem {}
// SAFETY: shared access only reads; writes need `&mut SpanMem`, and never
// touch the bytes a read without the class lock is reading (module docs).
unsafe impl Sync for SpanMem {}

/// The alignment of spans the global allocator serves (sizes the span
/// heap does not, and everything under loom): the objects' own
/// ([`ALIGN`](super::ALIGN), 16 bytes, what 64-bit glibc's `malloc`
/// returns anyway), not a page: glibc serves a page-aligned request by
/// `memalign`, which strands the leading fragment (the pool's arenas held
/// 1.3× its footprint that way in `uswap`'s mixed run, BENCHMARKS.md).
pub(super) const SPAN_ALIGN: usize = super::ALIGN;

/// `align_shift` of memory from the span heap (`heap.rs`), which spans of
/// whole 4 KiB pages come from: no alignment shift is that large.
#[cfg(not(loom))]
const FROM_HEAP: u8 = u8::MAX;

impl SpanMem {
    /// `bytes` of uninitialized, `align`-aligned memory; `None` if the
    /// system has none (the kernel's `reject_alloc_fail`). Not zeroed: a
    /// span's bytes are only ever read where an object was written (see
    /// [`read`](Self::read)), so zeroing would be a memset of every new span
    /// on the store path for nothing.
    pub(super) fn alloc(bytes: usize, align: usize) -> Option<Self> {
        let layout = Layout::from_size_align(bytes, align).ok()?;
        if layout.size() == 0 {
            return None;
        }
        let size = u32::try_from(bytes).ok()?;
        #[cfg(not(loom))]
        if let Some(ptr) = super::heap::alloc(bytes) {
            return Some(SpanMem {
                ptr,
                bytes: size,
                align_shift: FROM_HEAP,
                token: AccessToken::new(),
            });
        }
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc::alloc(layout) })?;
        Some(SpanMem {
            ptr,
            bytes: size,
            align_shift: align.trailing_zeros() as u8,
            token: AccessToken::new(),
        })
    }

    fn layout(&self) -> Layout {
        Layout::from_size_align(self.bytes as usize, 1 << self.align_shift)
            .expect("the layout was valid at allocation")
    }

    pub(super) fn len(&self) -> usize {
        self.bytes as usize
    }

    /// The span's loom token (see `crate::sync::AccessToken`).
    pub(super) fn token(&self) -> AccessToken {
        self.token.clone()
    }

    fn check(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len()),
            "slot outside its span"
        );
    }

    /// The bytes `off..off + len`.
    ///
    /// # Safety
    /// Every byte of the range must have been written (by [`write`],
    /// [`zero`] or [`copy`]) since the span was allocated: the class only
    /// reads the first `len` bytes of a live object's slot, which its
    /// insert, alloc, write or compaction move wrote.
    ///
    /// [`write`]: Self::write
    /// [`zero`]: Self::zero
    /// [`copy`]: Self::copy
    pub(super) unsafe fn read(&self, off: usize, len: usize) -> &[u8] {
        self.check(off, len);
        // SAFETY: in bounds (checked) of memory we own; initialized by the
        // caller's contract; `&self` excludes writers for the borrow.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) }
    }

    /// The address of byte `off` of a range of `len` bytes, for a read
    /// that outlives the borrow of this span (`Class::read_placed`): the
    /// memory stays where it is until the span is dropped.
    pub(super) fn addr(&self, off: usize, len: usize) -> *const u8 {
        self.check(off, len);
        // SAFETY: in bounds (checked) of our one allocation.
        unsafe { self.ptr.as_ptr().add(off) }
    }

    /// Asks the CPU to bring the cache lines of `off..off + len` in, all at
    /// once, before a read walks them in order: an object's lines are then
    /// fetched in parallel instead of one stream the hardware prefetcher
    /// picks up only after the first misses. A hint only; nothing is read.
    pub(super) fn prefetch(&self, off: usize, len: usize) {
        self.check(off, len);
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let start = self.ptr.as_ptr().wrapping_add(off);
            for line in (0..len).step_by(64) {
                // SAFETY: a prefetch never faults and reads nothing the
                // program can observe; the address is inside our span.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line).cast()) }
            }
        }
    }

    /// Writes `data` at `off`.
    pub(super) fn write(&mut self, off: usize, data: &[u8]) {
        self.check(off, data.len());
        // SAFETY: in bounds (checked) of memory we own; `data` cannot
        // overlap it (it is borrowed while we hold `&mut self`); and no read
        // without the class lock covers these bytes (module docs: they are a
        // free slot, or compaction is moving objects and there is none).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(off), data.len())
        }
    }

    /// Zeroes `off..off + len`.
    pub(super) fn zero(&mut self, off: usize, len: usize) {
        self.check(off, len);
        // SAFETY: in bounds (checked) of memory we own; a freshly allocated
        // slot, which no read covers.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(off), 0, len) }
    }

    /// Copies `len` bytes from `src` at `src_off` to `dst` at `dst_off`.
    ///
    /// # Safety
    /// The source range must be initialized, as for [`read`](Self::read).
    pub(super) unsafe fn copy(
        src: &SpanMem,
        src_off: usize,
        dst: &mut SpanMem,
        dst_off: usize,
        len: usize,
    ) {
        // SAFETY: forwarded to the caller.
        let from = unsafe { src.read(src_off, len) };
        dst.write(dst_off, from);
    }
}

impl Drop for SpanMem {
    fn drop(&mut self) {
        // Under loom: nobody may be reading the bytes as they go.
        self.token.write_now();
        #[cfg(not(loom))]
        if self.align_shift == FROM_HEAP {
            // SAFETY: a block `heap::alloc` gave for this size, freed once;
            // the span is gone, so nobody uses it.
            unsafe { super::heap::free(self.ptr, self.bytes as usize) };
            return;
        }
        // SAFETY: allocated in `alloc` with this very layout (rebuilt from
        // the same size and alignment), freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout()) }
    }
}

/// A span in use by a class: 32 bytes beside its memory.
pub(super) struct Span {
    pub(super) mem: SpanMem,
    /// Head of the free list of used-then-freed slots, or `NO_SLOT`.
    free_head: u16,
    /// Slots `fresh..` have never been handed out.
    fresh: u16,
    pub(super) inuse: u16,
    /// Slots it has: its class's, or fewer for a short tail span that
    /// compaction made (`Class::open_tail`).
    pub(super) slots: u16,
    /// Fullness bucket (maintained by the class).
    pub(super) bucket: u8,
    /// Position in the bucket (maintained by the class).
    pub(super) pos: u32,
}

impl Span {
    pub(super) fn new(mem: SpanMem, slots: u16) -> Self {
        Span {
            mem,
            free_head: NO_SLOT,
            fresh: 0,
            inuse: 0,
            slots,
            bucket: 0,
            pos: 0,
        }
    }

    /// Whether all its slots are in use.
    pub(super) fn is_full(&self) -> bool {
        self.free_head == NO_SLOT && self.fresh == self.slots
    }

    /// Takes a free slot (its slots are `size` bytes).
    pub(super) fn take_slot(&mut self, size: usize) -> Option<u16> {
        let slots = self.slots;
        let slot = if self.free_head != NO_SLOT {
            let slot = self.free_head;
            // SAFETY: a slot on the free list had its link written by
            // `put_slot` (span invariant).
            let link = unsafe { self.mem.read(usize::from(slot) * size, 2) };
            self.free_head = u16::from_ne_bytes([link[0], link[1]]);
            slot
        } else if self.fresh < slots {
            self.fresh += 1;
            self.fresh - 1
        } else {
            return None;
        };
        self.inuse += 1;
        // The next allocation from this span reads the next free slot's
        // link, and the store after it writes that slot: bring it in now,
        // a whole compression before, rather than miss on it under the
        // class lock then (a freed slot has been out of cache for long).
        let next = if self.free_head != NO_SLOT {
            self.free_head
        } else {
            self.fresh
        };
        if next < slots {
            self.mem.prefetch(usize::from(next) * size, size);
        }
        Some(slot)
    }

    /// Puts `slot` (of `size` bytes) on the free list.
    pub(super) fn put_slot(&mut self, slot: u16, size: usize) {
        debug_assert!(slot < self.fresh && self.inuse > 0);
        self.mem
            .write(usize::from(slot) * size, &self.free_head.to_ne_bytes());
        self.free_head = slot;
        self.inuse -= 1;
    }

    /// Forgets every slot (the span is empty and goes to the cache).
    pub(super) fn reset(&mut self) {
        debug_assert_eq!(self.inuse, 0);
        self.free_head = NO_SLOT;
        self.fresh = 0;
    }
}

/// How one size class packs: slot size, pages per span, slots per span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Packing {
    pub(super) slot: usize,
    pub(super) pages: usize,
    pub(super) slots: usize,
}

/// How far (in per-mille of a span's bytes) a shorter span's usage may fall
/// below the best before the longer span is taken.
///
/// zsmalloc takes the span length of the best usage outright. Each class
/// keeps one partly filled span, so a longer span costs up to its whole
/// length per class in a pool that is small or was just compacted; a span
/// within 2 % of the best gives up little packing for a tail half as long.
/// Measured on 734 MiB of captured real pages (BENCHMARKS.md): 8-page
/// spans with this tolerance hold 1.050× the compressed bytes at 16k
/// objects and 1.026× at 188k, against 1.074× and 1.021× with the best
/// usage alone and 1.063× and 1.041× with 4-page spans.
const SHORTER_SPAN_SLACK: usize = 20;

/// `get_pages_per_zspage`, with [`SHORTER_SPAN_SLACK`]: the shortest span
/// (1..=`max_pages`) whose share of bytes used by whole slots is within the
/// slack of the best length's.
pub(super) fn packing(slot: usize, page: usize, max_pages: usize) -> Packing {
    // Usage in per-mille, as the kernel's usedpc.
    let used = |pages: usize| {
        let bytes = pages * page;
        bytes / slot * slot * 1000 / bytes
    };
    let best = (1..=max_pages).map(used).max().unwrap_or(0);
    let pages = (1..=max_pages)
        .find(|&p| used(p) + SHORTER_SPAN_SLACK >= best)
        .unwrap_or(1);
    Packing {
        slot,
        pages,
        slots: pages * page / slot,
    }
}

/// The merged class table: for every 16-byte size step up to `page`, its
/// packing; neighbouring sizes that pack into the same pages with the same
/// slot count share the larger class (zsmalloc's `can_merge`).
pub(super) fn class_table(page: usize, max_pages: usize) -> (Vec<Packing>, Vec<u16>) {
    let steps = page / super::ALIGN;
    let mut classes: Vec<Packing> = Vec::new();
    let mut map = vec![0u16; steps];
    // From the largest size down, as the kernel does.
    for step in (0..steps).rev() {
        let p = packing((step + 1) * super::ALIGN, page, max_pages);
        match classes.last() {
            Some(prev) if prev.pages == p.pages && prev.slots == p.slots => {}
            _ => classes.push(p),
        }
        map[step] = (classes.len() - 1) as u16;
    }
    // Index classes from the smallest.
    classes.reverse();
    let top = classes.len() as u16 - 1;
    for m in &mut map {
        *m = top - *m;
    }
    (classes, map)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn packing_matches_zsmalloc_examples() {
        // 4096 fits whole pages; 3264 (0xcc0) wastes least over 4 pages (5
        // slots: 99.6 % used), and 1 to 3 pages waste more than the slack.
        assert_eq!(
            packing(4096, 4096, 4),
            Packing {
                slot: 4096,
                pages: 1,
                slots: 1
            }
        );
        assert_eq!(
            packing(3264, 4096, 4),
            Packing {
                slot: 3264,
                pages: 4,
                slots: 5
            }
        );
        assert_eq!(
            packing(16, 4096, 4),
            Packing {
                slot: 16,
                pages: 1,
                slots: 256
            }
        );
        // 1,360 bytes: 3 slots in one page use 99.6 %; the 8-page best
        // (24 slots, 99.6 %) is no better, so the shortest span is taken.
        assert_eq!(packing(1360, 4096, 8).pages, 1);
        // 1,056 bytes: 8 pages use 99.9 % (31 slots), 5 pages 97.9 % (19
        // slots), within the slack; 4 pages use 96.7 %, not.
        assert_eq!(
            packing(1056, 4096, 8),
            Packing {
                slot: 1056,
                pages: 5,
                slots: 19
            }
        );
    }

    #[test]
    fn every_shape_fits_the_handle_and_entry_fields() {
        for page in [256, 512, 1024, 2048, 4096, 8192, 16384] {
            for max in 1..=8 {
                let (classes, _) = class_table(page, max);
                assert!(classes.len() <= 255, "{page} {max}: {}", classes.len());
                assert!(classes.iter().all(|p| p.slots < 1 << 12 && p.pages <= max));
            }
        }
    }

    #[test]
    fn classes_merge_and_cover_every_size() {
        let (classes, map) = class_table(4096, 4);
        assert_eq!(map.len(), 256);
        assert!(
            classes.len() < 256,
            "some classes merged: {}",
            classes.len()
        );
        for (step, &c) in map.iter().enumerate() {
            let size = (step + 1) * 16;
            let p = classes[c as usize];
            assert!(p.slot >= size, "size {size} in class of {}", p.slot);
            assert_eq!(p.slots, p.pages * 4096 / p.slot);
        }
        // Class slots strictly increase.
        assert!(classes.windows(2).all(|w| w[0].slot < w[1].slot));
    }

    #[test]
    fn slots_cycle_through_the_free_list() {
        let mut s = Span::new(SpanMem::alloc(256, 256).unwrap(), 4);
        let taken: Vec<_> = (0..4).map(|_| s.take_slot(64).unwrap()).collect();
        assert_eq!(taken, vec![0, 1, 2, 3]);
        assert!(s.is_full() && s.take_slot(64).is_none());
        s.put_slot(2, 64);
        s.put_slot(0, 64);
        assert!(!s.is_full());
        assert_eq!(s.take_slot(64), Some(0));
        assert_eq!(s.take_slot(64), Some(2));
        assert_eq!(s.inuse, 4);
        assert!(std::mem::size_of::<Span>() <= 32);
    }
}
