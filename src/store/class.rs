//! One size class of the pool: its spans, its handle table and its lock.
//!
//! Everything of a class sits behind one mutex, and nothing of one class is
//! shared with another, so allocations, frees and reads of different
//! classes never contend, and an object can never be read while compaction
//! moves it (both hold the class lock; compaction releases it between
//! spans, so readers wait for one span's moves at most). The crate's own
//! reads may instead run without the lock ([`Class::read_unlocked`]): the
//! lock then only finds the object and counts the read on the object's
//! span, and compaction leaves a span alone while a read of it is in
//! progress (per-span reader counts, hashed; the rest of the class is
//! compacted meanwhile).
//!
//! Handles have one indirection: a handle names an entry of the class's
//! handle table, and the entry says where the object is now (span, slot,
//! length) and which generation of the entry is live. Compaction rewrites the
//! entry; the handle stays valid. A freed entry's generation is bumped, so a
//! stale or forged handle is an error ([`Error::BadHandle`]), never another
//! object's bytes. Generations are 28 bits and freed ids are reused first
//! in, first out, so one id comes back only after every other free id has;
//! an id whose generation is spent is retired (never handed out again)
//! rather than wrapped, so no stale handle can ever name a live object, at
//! a cost of 10 bytes per 2^28 reuses of one id.
//!
//! Partial spans sit in fullness buckets (zsmalloc's fullness groups):
//! allocation takes from the fullest, compaction drains the emptiest into
//! the fullest, so whole spans come free. A compaction pass finds every
//! span's objects with one scan of the handle table (grouped by span with a
//! counting sort), so it costs time linear in the class, not one scan per
//! emptied span.

use std::collections::VecDeque;

use super::span::{Span, SpanMem, SPAN_ALIGN};
use super::{Packing, ALIGN};
use crate::sync::{AtomicUsize, Mutex, Ordering};
use crate::Error;

/// Fullness buckets for partial spans.
const BUCKETS: usize = 8;
/// Bucket value of a span listed in no bucket (full).
const UNLISTED: u8 = u8::MAX;

// Entry layout: len (15 bits; 0 = free) | slot (12) | span (21) | the
// generation's low 16 bits; its high bits sit in `Inner::gen_hi`.
const LEN_BITS: u32 = 15;
const SLOT_BITS: u32 = 12;
const SPAN_BITS: u32 = 21;
pub(super) const MAX_SPANS: usize = 1 << SPAN_BITS;

/// Bits of a handle's generation.
pub(super) const GEN_BITS: u32 = 28;
/// Bits of a handle's id (its index in the class's handle table).
pub(super) const ID_BITS: u32 = 28;
/// A generation never handed out: the id is retired.
const RETIRED: u32 = (1 << GEN_BITS) - 1;

/// Reader counters per class (a span's is `sid % READER_SLOTS`): a read
/// without the lock keeps compaction off its span and the few spans
/// sharing its counter, never off the whole class.
#[cfg(not(loom))]
const READER_SLOTS: usize = 64;
#[cfg(loom)]
const READER_SLOTS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    len: u32,
    slot: u32,
    span: u32,
    gen: u32,
}

impl Entry {
    /// The packed word; the generation's high bits go to `gen_hi`.
    fn pack(self) -> (u64, u16) {
        let word = u64::from(self.len)
            | u64::from(self.slot) << LEN_BITS
            | u64::from(self.span) << (LEN_BITS + SLOT_BITS)
            | u64::from(self.gen & 0xffff) << (LEN_BITS + SLOT_BITS + SPAN_BITS);
        (word, (self.gen >> 16) as u16)
    }

    fn unpack(v: u64, hi: u16) -> Self {
        let mask = |bits: u32| (1u64 << bits) - 1;
        Entry {
            len: (v & mask(LEN_BITS)) as u32,
            slot: (v >> LEN_BITS & mask(SLOT_BITS)) as u32,
            span: (v >> (LEN_BITS + SLOT_BITS) & mask(SPAN_BITS)) as u32,
            gen: (v >> (LEN_BITS + SLOT_BITS + SPAN_BITS)) as u32 | u32::from(hi) << 16,
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
    /// The handle table: packed [`Entry`] words...
    handles: Vec<u64>,
    /// ...and the high bits of each entry's generation.
    gen_hi: Vec<u16>,
    /// Freed ids, reused oldest first.
    free_ids: VecDeque<u32>,
    /// The generation a new id starts at: above every generation of any id
    /// trimmed off the table's end, so a stale handle of a trimmed id never
    /// names the object of the id that replaces it.
    gen_floor: u32,
    /// Empty spans kept for reuse.
    cache: Vec<Span>,
}

impl Inner {
    fn entry_at(&self, id: u32) -> Option<Entry> {
        let i = id as usize;
        Some(Entry::unpack(*self.handles.get(i)?, self.gen_hi[i]))
    }

    fn set_entry(&mut self, id: u32, e: Entry) {
        let (word, hi) = e.pack();
        self.handles[id as usize] = word;
        self.gen_hi[id as usize] = hi;
    }
}

/// One size class.
pub(super) struct Class {
    pub(super) packing: Packing,
    span_bytes: usize,
    cache_cap: usize,
    inner: Mutex<Inner>,
    // Counters written only under `inner`'s lock (see `add_locked`) and
    // read without it as snapshots.
    pub(super) objects: AtomicUsize,
    pub(super) spans: AtomicUsize,
    pub(super) bytes_used: AtomicUsize,
    pub(super) meta: AtomicUsize,
    /// Bytes of empty spans in the cache (not counted in the footprint).
    pub(super) cached: AtomicUsize,
    /// Reads in progress without the lock ([`Class::read_unlocked`]), per
    /// span (hashed): compaction leaves a span alone while its counter is
    /// not zero.
    readers: Box<[AtomicUsize]>,
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
            cache_cap,
            inner: Mutex::new(Inner {
                slots: packing.slots as u16,
                spans: Vec::new(),
                free_span_ids: Vec::new(),
                buckets: Default::default(),
                handles: Vec::new(),
                gen_hi: Vec::new(),
                free_ids: VecDeque::new(),
                gen_floor: 0,
                cache: Vec::new(),
            }),
            objects: AtomicUsize::new(0),
            spans: AtomicUsize::new(0),
            bytes_used: AtomicUsize::new(0),
            meta: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            readers: (0..READER_SLOTS).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    fn readers_of(&self, sid: u32) -> &AtomicUsize {
        &self.readers[sid as usize % READER_SLOTS]
    }

    /// Allocates a slot for `len` bytes and fills it from `data` (if given);
    /// returns (handle id, generation). `footprint` is the pool's counter.
    pub(super) fn alloc(
        &self,
        len: usize,
        data: Option<&[u8]>,
        footprint: &AtomicUsize,
    ) -> Result<(u32, u32), Error> {
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
        let id = match inner.free_ids.pop_front() {
            Some(id) => id,
            None => {
                let id = inner.handles.len() as u32;
                if id >> ID_BITS != 0 {
                    return Err(Error::AllocFail);
                }
                grow_gently(&mut inner.handles);
                grow_gently(&mut inner.gen_hi);
                let (word, hi) = Entry {
                    len: 0,
                    slot: 0,
                    span: 0,
                    gen: inner.gen_floor,
                }
                .pack();
                inner.handles.push(word);
                inner.gen_hi.push(hi);
                id
            }
        };
        let gen = inner.entry_at(id).expect("ids index the table").gen;
        debug_assert!(gen < RETIRED, "a retired id was handed out");
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
        inner.set_entry(
            id,
            Entry {
                len: len as u32,
                slot: u32::from(slot),
                span: sid,
                gen,
            },
        );
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
            Some(span) => {
                sub_locked(&self.cached, self.span_bytes);
                span
            }
            None => Span::new(SpanMem::alloc(self.span_bytes, SPAN_ALIGN).ok_or(Error::AllocFail)?),
        };
        footprint.fetch_add(self.span_bytes, Ordering::Relaxed);
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
    fn entry(inner: &Inner, id: u32, gen: u32) -> Result<Entry, Error> {
        let e = inner.entry_at(id).ok_or(Error::BadHandle)?;
        if e.len == 0 || e.gen != gen {
            return Err(Error::BadHandle);
        }
        Ok(e)
    }

    /// Where the live object (`id`, `gen`) is: its span, the span's id,
    /// its offset and its length.
    fn locate<'a>(
        &self,
        inner: &'a Inner,
        id: u32,
        gen: u32,
    ) -> Result<(&'a Span, u32, usize, usize), Error> {
        let e = Self::entry(inner, id, gen)?;
        let span = inner.spans[e.span as usize]
            .as_ref()
            .expect("live entries name live spans");
        Ok((
            span,
            e.span,
            e.slot as usize * self.packing.slot,
            e.len as usize,
        ))
    }

    /// Runs `f` on the object's bytes under the class lock.
    pub(super) fn read<R>(
        &self,
        id: u32,
        gen: u32,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, Error> {
        let g = self.inner.lock();
        let (span, _, off, len) = self.locate(&g, id, gen)?;
        // SAFETY: a live object's `len` bytes were written when it was
        // stored or moved (span.rs).
        let bytes = unsafe { span.mem.read(off, len) };
        Ok(f(bytes))
    }

    /// Runs `f` on the object's bytes with the class lock released: the
    /// lock is held only to find the object and count the read, so other
    /// reads, allocations and frees of the class go on while `f` runs
    /// (decompressing a page takes a microsecond and more). Compaction,
    /// which moves objects and gives spans back, skips the object's span
    /// (and those sharing its reader counter) while the read is in
    /// progress.
    ///
    /// # Safety
    /// Until this returns, no thread may free or write this object. (An
    /// allocation or a free of another object only writes a free slot, and
    /// a span is given back only once every object in it is freed.)
    pub(super) unsafe fn read_unlocked<R>(
        &self,
        id: u32,
        gen: u32,
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
        let (ptr, len, readers, token) = {
            let g = self.inner.lock();
            let (span, sid, off, len) = self.locate(&g, id, gen)?;
            span.mem.prefetch(off, len);
            let readers = self.readers_of(sid);
            // Counted under the lock, which compaction checks it under.
            readers.fetch_add(1, Ordering::Relaxed);
            (span.mem.addr(off, len), len, readers, span.mem.token())
        };
        let _reading = Reading(readers);
        // SAFETY: the object is live and its `len` bytes were written when
        // it was stored or moved (span.rs); the lock's release orders those
        // writes before this read. Until `_reading` drops, nothing writes
        // them or frees their span: the caller frees and writes nothing of
        // this object, compaction leaves its span alone, and allocations
        // and other frees write only free slots.
        let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
        // Under loom, the span's token is read for as long as the bytes
        // are: a move or a free of the span meanwhile fails the model.
        Ok(token.read_during(|| f(bytes)))
    }

    /// Overwrites the object with `data`, which must have its length.
    pub(super) fn write(&self, id: u32, gen: u32, data: &[u8]) -> Result<(), Error> {
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
    pub(super) fn free(&self, id: u32, gen: u32, footprint: &AtomicUsize) -> Result<usize, Error> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let e = Self::entry(inner, id, gen)?;
        let next = gen + 1;
        inner.set_entry(
            id,
            Entry {
                len: 0,
                slot: 0,
                span: 0,
                gen: next,
            },
        );
        // A spent generation retires the id: it is never handed out again,
        // so a stale handle can never name a later object (module docs).
        if next != RETIRED {
            inner.free_ids.push_back(id);
        }
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
        // Under loom: nobody may be reading the span's bytes now.
        span.mem.token().write_now();
        inner.free_span_ids.push(sid);
        footprint.fetch_sub(self.span_bytes, Ordering::Relaxed);
        if inner.cache.len() < self.cache_cap {
            let mut span = span;
            span.reset();
            inner.cache.push(span);
            add_locked(&self.cached, self.span_bytes);
        }
        sub_locked(&self.spans, 1);
    }

    /// Compacts the class (`__zs_compact`): moves every object of the
    /// emptiest partial spans into the fullest others, one source span per
    /// lock hold, and gives each emptied span back. A span being read
    /// without the lock ([`read_unlocked`](Self::read_unlocked)) is left for
    /// the end of the pass and then skipped if still read; the rest of the
    /// class is compacted meanwhile.
    ///
    /// Linear in the class: one scan of the handle table groups the live
    /// objects by span (a counting sort), so a source span's objects are
    /// found without another scan. An object that moved or was freed since
    /// is skipped; one allocated into a source span since keeps that span.
    pub(super) fn compact(&self, footprint: &AtomicUsize) -> Step {
        let (by_span, mut candidates) = {
            let g = self.inner.lock();
            (ObjectsBySpan::scan(&g), emptiest_first(&g))
        };
        candidates.reverse(); // popped from the back: emptiest first
        let mut total = Step::default();
        let mut busy = Vec::new();
        let mut second_round = false;
        // Spans that took objects this pass: never sources afterwards. The
        // scan does not list what moved into them, so draining one would
        // leave those behind and only move objects back and forth
        // (zsmalloc likewise never takes a destination as a source).
        let mut took = Vec::new();
        loop {
            let Some(src) = candidates.pop() else {
                if second_round || busy.is_empty() {
                    break;
                }
                // Spans that were being read: one more try each.
                second_round = true;
                candidates = std::mem::take(&mut busy);
                candidates.reverse();
                continue;
            };
            if took.binary_search(&src).is_ok() {
                continue;
            }
            match self.compact_span(src, &by_span, footprint, &mut took) {
                SpanStep::Moved(step) => {
                    total.moved += step.moved;
                    total.freed_spans += step.freed_spans;
                }
                SpanStep::Read => busy.push(src),
                SpanStep::NoRoom => break,
                SpanStep::Gone => {}
            }
        }
        total
    }

    /// Empties span `src` into the fullest other partial spans, under one
    /// hold of the class lock; adds each span it moved objects into to
    /// `took` (sorted).
    fn compact_span(
        &self,
        src: u32,
        by_span: &ObjectsBySpan,
        footprint: &AtomicUsize,
        took: &mut Vec<u32>,
    ) -> SpanStep {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let slots = inner.slots;
        let need = match inner.spans.get(src as usize) {
            Some(Some(span)) if span.bucket != UNLISTED => u32::from(span.inuse),
            // Given back, or full, since the scan.
            _ => return SpanStep::Gone,
        };
        // Acquire: pairs with the end of each read without the lock, whose
        // reads of the bytes then happen before our moves. No new read of
        // the span can start while we hold the lock.
        if self.readers_of(src).load(Ordering::Acquire) != 0 {
            return SpanStep::Read;
        }
        // Free slots outside `src`: full spans have none, so this is every
        // free slot of the class less the source's own.
        let spans = self.spans.load(Ordering::Relaxed);
        let objects = self.objects.load(Ordering::Relaxed);
        let room = (spans * usize::from(slots))
            .saturating_sub(objects)
            .saturating_sub(usize::from(slots) - need as usize);
        if need == 0 || room < need as usize {
            return SpanStep::NoRoom;
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
        let token = from.mem.token();
        token.write_during(|| {
            for &id in by_span.objects_of(src) {
                let Some(e) = inner.entry_at(id) else {
                    continue;
                };
                if e.len == 0 || e.span != src {
                    continue; // freed or moved since the scan
                }
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
                inner.set_entry(
                    id,
                    Entry {
                        slot: u32::from(new_slot),
                        span: dst_sid,
                        ..e
                    },
                );
                from.put_slot(slot, slot_size);
                relist(inner, dst_sid);
                if let Err(at) = took.binary_search(&dst_sid) {
                    took.insert(at, dst_sid);
                }
                step.moved += 1;
            }
        });
        let emptied = from.inuse == 0;
        inner.spans[src as usize] = Some(from);
        if emptied {
            self.release_span(inner, src, footprint);
            step.freed_spans = 1;
        } else {
            // An object was allocated into it after the scan: it stays.
            relist(inner, src);
        }
        self.update_meta(inner);
        SpanStep::Moved(step)
    }

    /// Drops cached empty spans (returns their bytes), and trims the
    /// tables of what they no longer hold (see [`trim`]).
    pub(super) fn shrink_cache(&self) -> usize {
        let mut g = self.inner.lock();
        let n = g.cache.len() * self.span_bytes;
        g.cache = Vec::new();
        sub_locked(&self.cached, n);
        trim(&mut g);
        self.update_meta(&g);
        n
    }

    /// Metadata bytes: the handle table, the free id list and the span
    /// table (spans keep nothing per slot).
    fn update_meta(&self, inner: &Inner) {
        let bytes = inner.handles.capacity() * 8
            + inner.gen_hi.capacity() * 2
            + inner.free_ids.capacity() * 4
            + inner.spans.capacity() * std::mem::size_of::<Option<Span>>()
            + inner.cache.capacity() * std::mem::size_of::<Span>();
        self.meta.store(bytes, Ordering::Relaxed);
    }

    /// Bytes of span memory this class holds for objects, and in its
    /// cache, recounted under the lock.
    pub(super) fn span_bytes_held(&self) -> (usize, usize) {
        let g = self.inner.lock();
        let in_use = g.spans.iter().filter(|s| s.is_some()).count();
        (in_use * self.span_bytes, g.cache.len() * self.span_bytes)
    }
}

/// What compacting one span came to.
enum SpanStep {
    Moved(Step),
    /// A read without the lock is on it (or on a span sharing its counter).
    Read,
    /// The other spans cannot take its objects: the pass is over.
    NoRoom,
    /// Given back or filled since the scan.
    Gone,
}

/// The class's live objects grouped by span, from one scan of the handle
/// table: span `s`'s ids are `ids[start[s]..start[s + 1]]`.
struct ObjectsBySpan {
    start: Vec<u32>,
    ids: Vec<u32>,
}

impl ObjectsBySpan {
    fn scan(inner: &Inner) -> Self {
        let spans = inner.spans.len();
        let live = || {
            (0..inner.handles.len() as u32)
                .filter_map(|id| inner.entry_at(id).map(|e| (id, e)))
                .filter(|(_, e)| e.len != 0)
        };
        let mut start = vec![0u32; spans + 1];
        for (_, e) in live() {
            start[e.span as usize + 1] += 1;
        }
        for i in 0..spans {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut ids = vec![0u32; start[spans] as usize];
        for (id, e) in live() {
            let at = &mut fill[e.span as usize];
            ids[*at as usize] = id;
            *at += 1;
        }
        ObjectsBySpan { start, ids }
    }

    /// The ids that were in span `sid` at the scan.
    fn objects_of(&self, sid: u32) -> &[u32] {
        let s = sid as usize;
        match (self.start.get(s), self.start.get(s + 1)) {
            (Some(&a), Some(&b)) => &self.ids[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// Cuts the handle table after its last live id and the span table after
/// its last span, and gives the spare capacity of every table back, so a
/// class that held many objects and holds few again costs what it holds.
/// The generation floor rises above every generation cut off, so the ids
/// grown again later start where no stale handle of the cut ones can
/// reach; an id whose generation is nearly spent is kept rather than cut.
fn trim(inner: &mut Inner) {
    let len = inner.handles.len();
    let mut end = len;
    let mut floor = inner.gen_floor;
    while end > 0 {
        let e = inner.entry_at(end as u32 - 1).expect("in range");
        if e.len != 0 || e.gen >= RETIRED - 1 {
            break;
        }
        floor = floor.max(e.gen + 1);
        end -= 1;
    }
    if end < len {
        inner.gen_floor = floor;
        inner.handles.truncate(end);
        inner.gen_hi.truncate(end);
        inner.free_ids.retain(|&id| (id as usize) < end);
    }
    let spans_end = inner
        .spans
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    if spans_end < inner.spans.len() {
        inner.spans.truncate(spans_end);
        inner
            .free_span_ids
            .retain(|&sid| (sid as usize) < spans_end);
    }
    inner.handles.shrink_to_fit();
    inner.gen_hi.shrink_to_fit();
    inner.free_ids.shrink_to_fit();
    inner.spans.shrink_to_fit();
    inner.free_span_ids.shrink_to_fit();
    inner.buckets.iter_mut().for_each(Vec::shrink_to_fit);
}

/// The partial spans, emptiest first (the order compaction drains them).
fn emptiest_first(inner: &Inner) -> Vec<u32> {
    inner.buckets.iter().flatten().copied().collect()
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
            gen: RETIRED,
        };
        let (word, hi) = e.pack();
        assert_eq!(Entry::unpack(word, hi), e);
    }

    /// An id whose generation is spent is retired, never wrapped: its
    /// last handle stays refused and a fresh id serves the next object.
    #[test]
    fn a_spent_generation_retires_its_id() {
        let (classes, _) = super::super::span::class_table(4096, 4);
        let class = Class::new(classes[0], 4096, 0);
        let footprint = AtomicUsize::new(0);
        let (id, gen) = class.alloc(16, Some(&[7; 16]), &footprint).unwrap();
        assert_eq!((id, gen), (0, 0));
        class.free(id, gen, &footprint).unwrap();
        // Age id 0 to its last generation.
        {
            let mut g = class.inner.lock();
            let e = g.entry_at(0).unwrap();
            g.set_entry(
                0,
                Entry {
                    gen: RETIRED - 1,
                    ..e
                },
            );
        }
        let (id, last) = class.alloc(16, Some(&[8; 16]), &footprint).unwrap();
        assert_eq!((id, last), (0, RETIRED - 1));
        class.free(id, last, &footprint).unwrap();
        let (next, gen) = class.alloc(16, Some(&[9; 16]), &footprint).unwrap();
        assert_eq!((next, gen), (1, 0), "id 0 is retired");
        assert!(class.free(0, last, &footprint).is_err());
        assert!(class.free(0, RETIRED, &footprint).is_err());
        assert!(class.inner.lock().free_ids.is_empty());
        class.free(next, gen, &footprint).unwrap();
        assert_eq!(footprint.load(Ordering::Relaxed), 0);
    }
}
