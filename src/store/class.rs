//! One size class of the pool: its spans, its handle table and its lock.
//!
//! Everything of a class sits behind one mutex, and nothing of one class is
//! shared with another, so allocations, frees and reads of different
//! classes never contend, and an object can never be read while compaction
//! moves it (both hold the class lock; compaction, in `compact.rs`,
//! releases it between spans, so readers wait for one span's moves at
//! most). Placed objects (`placed.rs`, zswap's) are read with the lock held
//! only to find the span: their owner's claim keeps compaction away.
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
//! a cost of 10 bytes per 2^28 reuses of one id. Placed objects have no
//! entry in the table: [`Class::place`] and [`Class::unplace`] are the
//! slot-level steps both kinds share.
//!
//! Partial spans sit in fullness buckets (zsmalloc's fullness groups):
//! allocation takes from the fullest, compaction drains the emptiest into
//! the fullest, so whole spans come free.

use std::collections::VecDeque;

use super::handle::{Entry, ID_BITS, MAX_SPANS, RETIRED};
use super::span::{Span, SpanMem, SPAN_ALIGN};
use super::{Packing, ALIGN};
use crate::sync::{AtomicUsize, Mutex, Ordering};
use crate::Error;

/// Fullness buckets for partial spans.
const BUCKETS: usize = 8;
/// Bucket value of a span listed in no bucket (full).
pub(super) const UNLISTED: u8 = u8::MAX;

/// What the class lock protects.
pub(super) struct Inner {
    /// Slots of all its spans (a span's own count: tails may be short).
    pub(super) capacity: usize,
    pub(super) spans: Vec<Option<Span>>,
    free_span_ids: Vec<u32>,
    pub(super) buckets: [Vec<u32>; BUCKETS],
    /// The handle table: packed [`Entry`] words...
    pub(super) handles: Vec<u64>,
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
    /// The fullest partial span (the last listed of the fullest bucket):
    /// where allocations and compaction's moves go.
    pub(super) fn fullest_partial(&self) -> Option<u32> {
        (0..BUCKETS)
            .rev()
            .find_map(|b| self.buckets[b].last().copied())
    }

    /// Free slots outside `span` (a partial span of the class with `objects`
    /// objects in all): full spans have none, so this is every free slot
    /// of the class less the span's own.
    pub(super) fn room_beside(&self, span: &Span, objects: usize) -> usize {
        self.capacity
            .saturating_sub(objects)
            .saturating_sub(usize::from(span.slots - span.inuse))
    }

    pub(super) fn entry_at(&self, id: u32) -> Option<Entry> {
        let i = id as usize;
        Some(Entry::unpack(*self.handles.get(i)?, self.gen_hi[i]))
    }

    pub(super) fn set_entry(&mut self, id: u32, e: Entry) {
        let (word, hi) = e.pack();
        self.handles[id as usize] = word;
        self.gen_hi[id as usize] = hi;
    }
}

/// One size class.
pub(super) struct Class {
    pub(super) packing: Packing,
    pub(super) span_bytes: usize,
    cache_cap: usize,
    pub(super) inner: Mutex<Inner>,
    // Counters written only under `inner`'s lock (see `add_locked`) and
    // read without it as snapshots.
    pub(super) objects: AtomicUsize,
    pub(super) spans: AtomicUsize,
    pub(super) bytes_used: AtomicUsize,
    pub(super) meta: AtomicUsize,
    /// Bytes of empty spans in the cache (not counted in the footprint).
    pub(super) cached: AtomicUsize,
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

impl Step {
    /// Counts `other` in too.
    pub(super) fn add(&mut self, other: Step) {
        self.moved += other.moved;
        self.freed_spans += other.freed_spans;
    }
}

impl Class {
    pub(super) fn new(packing: Packing, page: usize, cache_cap: usize) -> Self {
        Class {
            packing,
            span_bytes: packing.pages * page,
            cache_cap,
            inner: Mutex::new(Inner {
                capacity: 0,
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
        }
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
        let id = match inner.free_ids.front() {
            Some(&id) => id,
            None => {
                let id = inner.handles.len() as u32;
                if id >> ID_BITS != 0 {
                    return Err(Error::AllocFail);
                }
                id
            }
        };
        let (sid, slot) = self.place(inner, len, data, footprint)?;
        if inner.free_ids.pop_front().is_none() {
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
        }
        let gen = inner.entry_at(id).expect("ids index the table").gen;
        debug_assert!(gen < RETIRED, "a retired id was handed out");
        inner.set_entry(
            id,
            Entry {
                len: len as u32,
                slot: u32::from(slot),
                span: sid,
                gen,
            },
        );
        self.update_meta(inner);
        Ok((id, gen))
    }

    /// Takes a slot for `len` bytes from the fullest partial span (or a new
    /// one) and writes `data` (or zeros) into it: returns (span id, slot).
    /// Counts the object; the caller records where it is.
    pub(super) fn place(
        &self,
        inner: &mut Inner,
        len: usize,
        data: Option<&[u8]>,
        footprint: &AtomicUsize,
    ) -> Result<(u32, u16), Error> {
        let sid = match inner.fullest_partial() {
            Some(sid) => sid,
            None => self.new_span(inner, self.span_bytes, footprint)?,
        };
        let span = inner.spans[sid as usize]
            .as_mut()
            .expect("listed spans exist");
        let slot = span
            .take_slot(self.packing.slot)
            .expect("listed spans have a free slot");
        let off = usize::from(slot) * self.packing.slot;
        // Either way the object's `len` bytes are now written: the span
        // memory invariant (span.rs).
        match data {
            Some(data) => span.mem.write(off, data),
            None => span.mem.zero(off, len),
        }
        relist(inner, sid);
        add_locked(&self.objects, 1);
        add_locked(&self.bytes_used, len);
        Ok((sid, slot))
    }

    /// Frees `slot` of span `sid`, an object of `len` bytes; the span goes
    /// back when it empties. The caller has forgotten where it was.
    pub(super) fn unplace(
        &self,
        inner: &mut Inner,
        sid: u32,
        slot: u16,
        len: usize,
        footprint: &AtomicUsize,
    ) {
        let span = inner.spans[sid as usize]
            .as_mut()
            .expect("live objects name live spans");
        span.put_slot(slot, self.packing.slot);
        if span.inuse == 0 {
            self.release_span(inner, sid, footprint);
        } else {
            relist(inner, sid);
        }
        sub_locked(&self.objects, 1);
        sub_locked(&self.bytes_used, len);
    }

    /// Makes a span of `bytes` (the class's length, or a shorter whole
    /// number of pages for a tail, `Class::open_tail`) and lists it empty;
    /// returns its id.
    pub(super) fn new_span(
        &self,
        inner: &mut Inner,
        bytes: usize,
        footprint: &AtomicUsize,
    ) -> Result<u32, Error> {
        let sid = match inner.free_span_ids.last() {
            Some(&sid) => sid,
            None if inner.spans.len() < MAX_SPANS => inner.spans.len() as u32,
            None => return Err(Error::AllocFail),
        };
        // The cache holds spans of the class's length only.
        let cached = if bytes == self.span_bytes {
            inner.cache.pop()
        } else {
            None
        };
        let mut span = match cached {
            Some(span) => {
                sub_locked(&self.cached, self.span_bytes);
                span
            }
            None => {
                let mem = SpanMem::alloc(bytes, SPAN_ALIGN).ok_or(Error::AllocFail)?;
                Span::new(mem, (bytes / self.packing.slot) as u16)
            }
        };
        footprint.fetch_add(bytes, Ordering::Relaxed);
        inner.capacity += usize::from(span.slots);
        span.bucket = UNLISTED;
        if inner.free_span_ids.pop().is_none() {
            grow_gently(&mut inner.spans);
            inner.spans.push(None);
        }
        inner.spans[sid as usize] = Some(span);
        relist(inner, sid);
        add_locked(&self.spans, 1);
        self.update_meta(inner);
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
        self.unplace(inner, e.span, e.slot as u16, e.len as usize, footprint);
        self.update_meta(inner);
        Ok(e.len as usize)
    }

    /// Takes an empty span out; its memory goes to the cache or the system.
    pub(super) fn release_span(&self, inner: &mut Inner, sid: u32, footprint: &AtomicUsize) {
        unlist(inner, sid);
        let span = inner.spans[sid as usize]
            .take()
            .expect("releasing a live span");
        debug_assert_eq!(span.inuse, 0);
        // Under loom: nobody may be reading the span's bytes now.
        span.mem.token().write_now();
        inner.free_span_ids.push(sid);
        let bytes = span.mem.len();
        footprint.fetch_sub(bytes, Ordering::Relaxed);
        inner.capacity -= usize::from(span.slots);
        if bytes == self.span_bytes && inner.cache.len() < self.cache_cap {
            let mut span = span;
            span.reset();
            inner.cache.push(span);
            add_locked(&self.cached, self.span_bytes);
        }
        sub_locked(&self.spans, 1);
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
    pub(super) fn update_meta(&self, inner: &Inner) {
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
        let in_use = g.spans.iter().flatten().map(|s| s.mem.len()).sum();
        (in_use, g.cache.len() * self.span_bytes)
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

/// Makes room for one more element growing by an eighth, not by doubling:
/// the handle and span tables are per-object metadata, and doubling would
/// leave up to half of them as slack. Still amortized O(1).
fn grow_gently<T>(v: &mut Vec<T>) {
    if v.len() == v.capacity() {
        v.reserve_exact(v.len() / 8 + 16);
    }
}

/// The bucket a span belongs in: `UNLISTED` when full.
fn bucket_of(span: &Span) -> u8 {
    if span.is_full() {
        UNLISTED
    } else {
        (usize::from(span.inuse) * BUCKETS / usize::from(span.slots)) as u8
    }
}

pub(super) fn unlist(inner: &mut Inner, sid: u32) {
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
pub(super) fn relist(inner: &mut Inner, sid: u32) {
    let span = inner.spans[sid as usize]
        .as_ref()
        .expect("relisting a live span");
    let want = bucket_of(span);
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
