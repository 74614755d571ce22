//! One size class of the pool: its spans, its handle table and its lock.
//!
//! Everything of a class sits behind one mutex, and nothing of one class is
//! shared with another, so allocations, frees and reads of different
//! classes never contend, and an object can never be read while compaction
//! moves it (both hold the class lock; compaction releases it between
//! spans, so readers wait for one span's moves at most). The crate's own
//! reads may instead run without the lock ([`Class::read_unlocked`]): the
//! lock then only finds the object and counts the read, and compaction
//! leaves the class alone until no such read is in progress.
//!
//! Handles have one indirection: a handle names an entry of the class's
//! handle table, and the entry says where the object is now (span, slot,
//! length) and which generation of the entry is live. Compaction rewrites the
//! entry; the handle stays valid. A freed entry's generation is bumped, so a
//! stale or forged handle is an error ([`Error::BadHandle`]), never another
//! object's bytes.
//!
//! Partial spans sit in fullness buckets (zsmalloc's fullness groups):
//! allocation takes from the fullest, compaction drains the emptiest into
//! the fullest, so whole spans come free.

use super::span::{Span, SpanMem};
use super::{Packing, ALIGN};
use crate::sync::{AtomicUsize, Mutex, Ordering};
use crate::Error;

/// Fullness buckets for partial spans.
const BUCKETS: usize = 8;
/// Bucket value of a span listed in no bucket (full).
const UNLISTED: u8 = u8::MAX;

// Entry layout: len (15 bits; 0 = free) | slot (12) | span (21) | gen (16).
const LEN_BITS: u32 = 15;
const SLOT_BITS: u32 = 12;
const SPAN_BITS: u32 = 21;
pub(super) const MAX_SPANS: usize = 1 << SPAN_BITS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    len: u32,
    slot: u32,
    span: u32,
    gen: u16,
}

impl Entry {
    fn pack(self) -> u64 {
        u64::from(self.len)
            | u64::from(self.slot) << LEN_BITS
            | u64::from(self.span) << (LEN_BITS + SLOT_BITS)
            | u64::from(self.gen) << (LEN_BITS + SLOT_BITS + SPAN_BITS)
    }

    fn unpack(v: u64) -> Self {
        let mask = |bits: u32| (1u64 << bits) - 1;
        Entry {
            len: (v & mask(LEN_BITS)) as u32,
            slot: (v >> LEN_BITS & mask(SLOT_BITS)) as u32,
            span: (v >> (LEN_BITS + SLOT_BITS) & mask(SPAN_BITS)) as u32,
            gen: (v >> (LEN_BITS + SLOT_BITS + SPAN_BITS)) as u16,
        }
    }
}

/// What the class lock protects.
struct Inner {
    /// Slots per span (the class's packing, kept here for the free
    /// functions below).
    slots: u16,
    spans: Vec<Option<Span>>,
    free_span_ids: Vec<u32>,
    buckets: [Vec<u32>; BUCKETS],
    handles: Vec<u64>,
    free_ids: Vec<u32>,
    /// Empty spans kept for reuse.
    cache: Vec<Span>,
}

/// One size class.
pub(super) struct Class {
    pub(super) packing: Packing,
    span_bytes: usize,
    page: usize,
    cache_cap: usize,
    inner: Mutex<Inner>,
    // Counters written only under `inner`'s lock (see `add_locked`) and
    // read without it as snapshots.
    pub(super) objects: AtomicUsize,
    pub(super) spans: AtomicUsize,
    pub(super) bytes_used: AtomicUsize,
    pub(super) meta: AtomicUsize,
    /// Reads in progress without the lock ([`Class::read_unlocked`]):
    /// compaction leaves the class alone while there are any.
    readers: AtomicUsize,
}

/// Adds `n` to a counter that only the class lock's holder writes: a load
/// and a store, no locked read-modify-write (which on x86 would also wait
/// for the object copy just made to leave the store buffer).
fn add_locked(c: &AtomicUsize, n: usize) {
    c.store(c.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

/// Subtracts `n` from such a counter.
fn sub_locked(c: &AtomicUsize, n: usize) {
    c.store(c.load(Ordering::Relaxed) - n, Ordering::Relaxed);
}

/// What one compaction step did.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Step {
    pub(super) moved: usize,
    pub(super) freed_spans: usize,
}

impl Class {
    pub(super) fn new(packing: Packing, page: usize, cache_cap: usize) -> Self {
        Class {
            packing,
            span_bytes: packing.pages * page,
            page,
            cache_cap,
            inner: Mutex::new(Inner {
                slots: packing.slots as u16,
                spans: Vec::new(),
                free_span_ids: Vec::new(),
                buckets: Default::default(),
                handles: Vec::new(),
                free_ids: Vec::new(),
                cache: Vec::new(),
            }),
            objects: AtomicUsize::new(0),
            spans: AtomicUsize::new(0),
            bytes_used: AtomicUsize::new(0),
            meta: AtomicUsize::new(0),
            readers: AtomicUsize::new(0),
        }
    }

    /// Allocates a slot for `len` bytes and fills it from `data` (if given);
    /// returns (handle id, generation). `footprint` is the pool's counter.
    pub(super) fn alloc(
        &self,
        len: usize,
        data: Option<&[u8]>,
        footprint: &AtomicUsize,
    ) -> Result<(u32, u16), Error> {
        debug_assert!(len > 0 && len <= self.packing.slot);
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let sid = match (0..BUCKETS)
            .rev()
            .find_map(|b| inner.buckets[b].last().copied())
        {
            Some(sid) => sid,
            None => self.new_span(inner, footprint)?,
        };
        let id = match inner.free_ids.pop() {
            Some(id) => id,
            None => {
                let id = u32::try_from(inner.handles.len()).map_err(|_| Error::AllocFail)?;
                grow_gently(&mut inner.handles);
                inner.handles.push(0);
                id
            }
        };
        let gen = Entry::unpack(inner.handles[id as usize]).gen;
        let slots = inner.slots;
        let span = inner.spans[sid as usize]
            .as_mut()
            .expect("listed spans exist");
        let slot = span
            .take_slot(slots, self.packing.slot)
            .expect("listed spans have a free slot");
        let off = usize::from(slot) * self.packing.slot;
        // Either way the object's `len` bytes are now written: the span
        // memory invariant (span.rs).
        match data {
            Some(data) => span.mem.write(off, data),
            None => span.mem.zero(off, len),
        }
        inner.handles[id as usize] = Entry {
            len: len as u32,
            slot: u32::from(slot),
            span: sid,
            gen,
        }
        .pack();
        relist(inner, sid);
        add_locked(&self.objects, 1);
        add_locked(&self.bytes_used, len);
        self.update_meta(inner);
        Ok((id, gen))
    }

    fn new_span(&self, inner: &mut Inner, footprint: &AtomicUsize) -> Result<u32, Error> {
        let sid = match inner.free_span_ids.last() {
            Some(&sid) => sid,
            None if inner.spans.len() < MAX_SPANS => inner.spans.len() as u32,
            None => return Err(Error::AllocFail),
        };
        let mut span = match inner.cache.pop() {
            Some(span) => span,
            None => {
                let mem = SpanMem::alloc(self.span_bytes, self.page).ok_or(Error::AllocFail)?;
                footprint.fetch_add(self.span_bytes, Ordering::Relaxed);
                Span::new(mem)
            }
        };
        span.bucket = UNLISTED;
        if inner.free_span_ids.pop().is_none() {
            grow_gently(&mut inner.spans);
            inner.spans.push(None);
        }
        inner.spans[sid as usize] = Some(span);
        relist(inner, sid);
        add_locked(&self.spans, 1);
        Ok(sid)
    }

    /// The live entry of (`id`, `gen`).
    fn entry(inner: &Inner, id: u32, gen: u16) -> Result<Entry, Error> {
        let e = Entry::unpack(*inner.handles.get(id as usize).ok_or(Error::BadHandle)?);
        if e.len == 0 || e.gen != gen {
            return Err(Error::BadHandle);
        }
        Ok(e)
    }

    /// Where the live object (`id`, `gen`) is: its span's memory, its
    /// offset and its length.
    fn locate<'a>(
        &self,
        inner: &'a Inner,
        id: u32,
        gen: u16,
    ) -> Result<(&'a SpanMem, usize, usize), Error> {
        let e = Self::entry(inner, id, gen)?;
        let span = inner.spans[e.span as usize]
            .as_ref()
            .expect("live entries name live spans");
        Ok((
            &span.mem,
            e.slot as usize * self.packing.slot,
            e.len as usize,
        ))
    }

    /// Runs `f` on the object's bytes under the class lock.
    pub(super) fn read<R>(
        &self,
        id: u32,
        gen: u16,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Error> {
        let g = self.inner.lock();
        let (mem, off, len) = self.locate(&g, id, gen)?;
        // SAFETY: a live object's `len` bytes were written when it was
        // stored or moved (span.rs).
        let bytes = unsafe { mem.read(off, len) };
        Ok(f(bytes))
    }

    /// Runs `f` on the object's bytes with the class lock released: the
    /// lock is held only to find the object and count the read, so other
    /// reads, allocations and frees of the class go on while `f` runs
    /// (decompressing a page takes a microsecond and more). Compaction,
    /// which moves objects and gives spans back, skips the class while any
    /// such read is in progress.
    ///
    /// # Safety
    /// Until this returns, no thread may free or write this object. (An
    /// allocation or a free of another object only writes a free slot, and
    /// a span is given back only once every object in it is freed.)
    pub(super) unsafe fn read_unlocked<R>(
        &self,
        id: u32,
        gen: u16,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Error> {
        /// Ends the read, also if `f` panics. Release: the read of the
        /// bytes happens before a compaction that then sees no reader.
        struct Reading<'a>(&'a AtomicUsize);
        impl Drop for Reading<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Release);
            }
        }
        let (ptr, len) = {
            let g = self.inner.lock();
            let (mem, off, len) = self.locate(&g, id, gen)?;
            // Counted under the lock, which compaction checks it under.
            self.readers.fetch_add(1, Ordering::Relaxed);
            (mem.addr(off, len), len)
        };
        let _reading = Reading(&self.readers);
        // SAFETY: the object is live and its `len` bytes were written when
        // it was stored or moved (span.rs); the lock's release orders those
        // writes before this read. Until `_reading` drops, nothing writes
        // them or frees their span: the caller frees and writes nothing of
        // this object, compaction leaves the class alone, and allocations
        // and other frees write only free slots.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        Ok(f(bytes))
    }

    /// Overwrites the object with `data`, which must have its length.
    pub(super) fn write(&self, id: u32, gen: u16, data: &[u8]) -> Result<(), Error> {
        let mut g = self.inner.lock();
        let e = Self::entry(&g, id, gen)?;
        if data.len() != e.len as usize {
            return Err(Error::ObjectSize(data.len()));
        }
        let span = g.spans[e.span as usize]
            .as_mut()
            .expect("live entries name live spans");
        span.mem.write(e.slot as usize * self.packing.slot, data);
        Ok(())
    }

    /// Frees the object; its span goes back when it empties.
    pub(super) fn free(&self, id: u32, gen: u16, footprint: &AtomicUsize) -> Result<usize, Error> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let e = Self::entry(inner, id, gen)?;
        inner.handles[id as usize] = Entry {
            len: 0,
            slot: 0,
            span: 0,
            gen: gen.wrapping_add(1),
        }
        .pack();
        inner.free_ids.push(id);
        let span = inner.spans[e.span as usize]
            .as_mut()
            .expect("live entries name live spans");
        span.put_slot(e.slot as u16, self.packing.slot);
        if span.inuse == 0 {
            self.release_span(inner, e.span, footprint);
        } else {
            relist(inner, e.span);
        }
        sub_locked(&self.objects, 1);
        sub_locked(&self.bytes_used, e.len as usize);
        self.update_meta(inner);
        Ok(e.len as usize)
    }

    /// Takes an empty span out; its memory goes to the cache or the system.
    fn release_span(&self, inner: &mut Inner, sid: u32, footprint: &AtomicUsize) {
        unlist(inner, sid);
        let span = inner.spans[sid as usize]
            .take()
            .expect("releasing a live span");
        debug_assert_eq!(span.inuse, 0);
        inner.free_span_ids.push(sid);
        if inner.cache.len() < self.cache_cap {
            let mut span = span;
            span.reset();
            inner.cache.push(span);
        } else {
            footprint.fetch_sub(self.span_bytes, Ordering::Relaxed);
        }
        sub_locked(&self.spans, 1);
    }

    /// One compaction step (`__zs_compact` on one source span): moves every
    /// object of the emptiest partial span into the fullest others, if they
    /// have room for all of them, and gives the emptied span back.
    pub(super) fn compact_step(&self, footprint: &AtomicUsize) -> Step {
        let mut g = self.inner.lock();
        // A read without the lock may be on any object of the class: leave
        // the class alone (compaction is best effort). Acquire: pairs with
        // the end of those reads. No new one can start while we hold the lock.
        if self.readers.load(Ordering::Acquire) != 0 {
            return Step::default();
        }
        let inner = &mut *g;
        let Some(src) = (0..BUCKETS).find_map(|b| inner.buckets[b].first().copied()) else {
            return Step::default();
        };
        let need = inner.spans[src as usize]
            .as_ref()
            .map_or(0, |s| u32::from(s.inuse));
        let slots = inner.slots;
        let room: u32 = inner
            .buckets
            .iter()
            .flatten()
            .filter(|&&sid| sid != src)
            .map(|&sid| {
                inner.spans[sid as usize]
                    .as_ref()
                    .map_or(0, |s| u32::from(slots - s.inuse))
            })
            .sum();
        if need == 0 || room < need {
            return Step::default();
        }
        // Take the source out of the table so source and destination can be
        // borrowed at once; it is unlisted meanwhile so it is never chosen as
        // a destination.
        unlist(inner, src);
        let mut from = inner.spans[src as usize]
            .take()
            .expect("listed spans exist");
        let mut step = Step::default();
        let slot_size = self.packing.slot;
        // The source's objects, found by scanning the handle table: spans
        // keep no reverse map (span.rs), and compaction is rare.
        let objects: Vec<(u32, Entry)> = inner
            .handles
            .iter()
            .enumerate()
            .map(|(id, &v)| (id as u32, Entry::unpack(v)))
            .filter(|(_, e)| e.len != 0 && e.span == src)
            .collect();
        debug_assert_eq!(objects.len(), need as usize);
        for (id, e) in objects {
            let slot = e.slot as u16;
            let dst_sid = (0..BUCKETS)
                .rev()
                .find_map(|b| inner.buckets[b].last().copied())
                .expect("room was counted");
            let dst = inner.spans[dst_sid as usize]
                .as_mut()
                .expect("listed spans exist");
            let new_slot = dst
                .take_slot(slots, slot_size)
                .expect("listed spans have a free slot");
            // SAFETY: the source is a live object's `len` bytes, written
            // when it was stored or last moved; the copy writes the same
            // range of the new slot, keeping the invariant (span.rs).
            unsafe {
                SpanMem::copy(
                    &from.mem,
                    usize::from(slot) * slot_size,
                    &mut dst.mem,
                    usize::from(new_slot) * slot_size,
                    e.len as usize,
                );
            }
            inner.handles[id as usize] = Entry {
                slot: u32::from(new_slot),
                span: dst_sid,
                ..e
            }
            .pack();
            from.put_slot(slot, slot_size);
            relist(inner, dst_sid);
            step.moved += 1;
        }
        inner.spans[src as usize] = Some(from);
        self.release_span(inner, src, footprint);
        step.freed_spans = 1;
        self.update_meta(inner);
        step
    }

    /// Drops cached empty spans (returns their bytes).
    pub(super) fn shrink_cache(&self, footprint: &AtomicUsize) -> usize {
        let mut g = self.inner.lock();
        let n = g.cache.len() * self.span_bytes;
        g.cache.clear();
        footprint.fetch_sub(n, Ordering::Relaxed);
        n
    }

    /// Metadata bytes: the handle table, the free id list and the span
    /// table (spans keep nothing per slot).
    fn update_meta(&self, inner: &Inner) {
        let bytes = inner.handles.capacity() * 8
            + inner.free_ids.capacity() * 4
            + inner.spans.capacity() * std::mem::size_of::<Option<Span>>()
            + inner.cache.capacity() * std::mem::size_of::<Span>();
        self.meta.store(bytes, Ordering::Relaxed);
    }

    /// Bytes of span memory this class holds (in use and cached).
    pub(super) fn span_bytes_held(&self) -> usize {
        let cached = self.inner.lock().cache.len();
        (self.spans.load(Ordering::Relaxed) + cached) * self.span_bytes
    }
}

/// Makes room for one more element growing by an eighth, not by doubling:
/// the handle and span tables are per-object metadata, and doubling would
/// leave up to half of them as slack. Still amortized O(1).
fn grow_gently<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 8 + 16);
    }
}

/// The bucket a span of `slots` slots belongs in: `UNLISTED` when full.
fn bucket_of(span: &Span, slots: u16) -> u8 {
    if span.is_full(slots) {
        UNLISTED
    } else {
        (usize::from(span.inuse) * BUCKETS / usize::from(slots)) as u8
    }
}

fn unlist(inner: &mut Inner, sid: u32) {
    let span = inner.spans[sid as usize]
        .as_mut()
        .expect("unlisting a live span");
    let (b, pos) = (span.bucket, span.pos);
    span.bucket = UNLISTED;
    if b == UNLISTED {
        return;
    }
    let list = &mut inner.buckets[b as usize];
    list.swap_remove(pos as usize);
    if let Some(&moved) = list.get(pos as usize) {
        inner.spans[moved as usize]
            .as_mut()
            .expect("listed spans exist")
            .pos = pos;
    }
}

/// Moves a span to the bucket its fullness says.
fn relist(inner: &mut Inner, sid: u32) {
    let span = inner.spans[sid as usize]
        .as_ref()
        .expect("relisting a live span");
    let want = bucket_of(span, inner.slots);
    if want == span.bucket {
        return;
    }
    unlist(inner, sid);
    if want != UNLISTED {
        let list = &mut inner.buckets[want as usize];
        let pos = list.len() as u32;
        list.push(sid);
        let span = inner.spans[sid as usize]
            .as_mut()
            .expect("relisting a live span");
        span.bucket = want;
        span.pos = pos;
    }
}

/// Size rounded up to the allocation granularity.
pub(super) fn round_up(len: usize) -> usize {
    len.div_ceil(ALIGN) * ALIGN
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            len: 16384,
            slot: 4095,
            span: (MAX_SPANS - 1) as u32,
            gen: u16::MAX,
        };
        assert_eq!(Entry::unpack(e.pack()), e);
    }
}
