//! Compaction of one size class (`__zs_compact`): objects move out of the
//! emptiest partial spans into the fullest, and each emptied span is given
//! back.
//!
//! One pass drains partial spans emptiest first, one source span per hold
//! of the class lock, so stores, loads and frees of the class wait for one
//! span's moves at most. A span that took objects in this pass is never a
//! source afterwards (the objects it took were not listed for it, so
//! draining it would move them back and forth; zsmalloc likewise never
//! takes a destination as a source). The objects of each source are found
//! without a scan per span:
//!
//! - a pool of handles ([`Class::compact`]) groups its live objects by span
//!   with one scan of its handle table (a counting sort), and rewrites the
//!   table's entries as it moves them (its reads hold the class lock, so
//!   none sees an object mid-move);
//! - a pool whose owner keeps the objects' locations itself (zswap:
//!   [`Class::compact_placed`]) is told them by the owner, which claims
//!   each object of a source before its move and records the new location
//!   under the claim. A source is drained only if every object in it is
//!   claimed, so nobody can be reading it; one with an object the owner
//!   could not claim (busy) gets one more try at the end of the pass.
//!
//! After the pass, the emptiest partial span left (the class's tail) is
//! drained once more if a shorter span would hold what the other partial
//! spans have no room for: that span is made first ([`Class::open_tail`]),
//! so every class's tail costs the pages it needs rather than a whole span
//! of the class's length.

use super::class::{relist, unlist, Class, Inner, Step, UNLISTED};
use super::placed::{Loc, Owners, Placed};
use super::span::{Span, SpanMem};
use crate::sync::{AtomicUsize, Ordering};

/// What draining one span came to.
enum SpanStep {
    Moved(Step),
    /// One of its objects could not be claimed (its owner is using it).
    Busy,
    /// The other spans cannot take its objects: the pass is over.
    NoRoom,
    /// Given back or filled since the scan.
    Gone,
}

impl Class {
    /// Compacts a class of handles: see the module docs. Linear in the
    /// class: one scan of the handle table groups the live objects by span.
    /// An object that moved or was freed since is skipped; one allocated
    /// into a source span since keeps that span.
    pub(super) fn compact(&self, footprint: &AtomicUsize) -> Step {
        let (by_span, candidates) = {
            let g = self.inner.lock();
            (ObjectsBySpan::scan(&g), emptiest_first(&g))
        };
        let mut step = self.pass(candidates, |src, took| {
            self.drain_handles(src, &by_span, footprint, took)
        });
        if let Some((src, dst)) = self.open_tail(footprint) {
            // The pass moved objects into the tail: find them again.
            let by_span = ObjectsBySpan::scan(&self.inner.lock());
            if let SpanStep::Moved(s) =
                self.drain_handles(src, &by_span, footprint, &mut Vec::new())
            {
                step.add(s);
            }
            self.close_tail(dst, footprint);
        }
        step
    }

    /// Compacts a class whose owner keeps its objects' locations: `objects`
    /// are the class's objects the owner found, sorted by location (so one
    /// span's are adjacent). Each source span is drained only if the owner
    /// claims every object in it; the owner records each new location
    /// under its claim, with the class lock held.
    pub(super) fn compact_placed<O: Owners>(
        &self,
        class: usize,
        objects: &[Placed],
        owners: &O,
        footprint: &AtomicUsize,
    ) -> Step {
        let candidates = emptiest_first(&self.inner.lock());
        let of_span = |src: u32| {
            let lo = objects.partition_point(|o| o.loc.span() < src);
            let hi = objects.partition_point(|o| o.loc.span() <= src);
            &objects[lo..hi]
        };
        // Where the pass moved objects to, for the tail below.
        let mut moved = Vec::new();
        let mut step = self.pass(candidates, |src, took| {
            self.drain_placed(
                class,
                src,
                of_span(src),
                owners,
                footprint,
                took,
                &mut moved,
            )
        });
        if let Some((src, dst)) = self.open_tail(footprint) {
            let mut listed = of_span(src).to_vec();
            listed.extend(moved.iter().filter(|o| o.loc.span() == src));
            listed.sort_unstable_by_key(|o| o.loc);
            // Nothing drained after it: where it moves things is not kept.
            let (took, moved) = (&mut Vec::new(), &mut Vec::new());
            if let SpanStep::Moved(s) =
                self.drain_placed(class, src, &listed, owners, footprint, took, moved)
            {
                step.add(s);
            }
            self.close_tail(dst, footprint);
        }
        step
    }

    /// After a pass, when the class's emptiest partial span (the tail)
    /// could not be drained for want of room, and a span shorter than it
    /// would make up that room: makes that span, empty and listed, so that
    /// draining the tail fills the other partial spans and puts what is
    /// left into it (every class keeps a partly filled span; a short one
    /// wastes less). Returns (tail, new span); `None` if there is nothing
    /// to gain.
    fn open_tail(&self, footprint: &AtomicUsize) -> Option<(u32, u32)> {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let &src = inner.buckets.iter().flatten().next()?;
        let span = inner.spans[src as usize].as_ref()?;
        let page = self.span_bytes / self.packing.pages;
        let (pages, objects) = (span.mem.len() / page, usize::from(span.inuse));
        let room = inner.room_beside(span, self.objects.load(Ordering::Relaxed));
        let short = objects.checked_sub(room).filter(|&n| n > 0)?;
        let fit = (1..pages).find(|l| l * page / self.packing.slot >= short)?;
        let dst = self.new_span(inner, fit * page, footprint).ok()?;
        Some((src, dst))
    }

    /// Gives the span [`open_tail`](Self::open_tail) made back if the tail
    /// could not be drained into it (a busy object, a store into the tail
    /// meanwhile) and nothing was stored into it either.
    fn close_tail(&self, dst: u32, footprint: &AtomicUsize) {
        let mut g = self.inner.lock();
        if matches!(&g.spans[dst as usize], Some(span) if span.inuse == 0) {
            self.release_span(&mut g, dst, footprint);
        }
    }

    /// One pass over `candidates` (emptiest first): `drain(src, took)`
    /// drains one source; spans found busy get one more try at the end.
    fn pass(
        &self,
        mut candidates: Vec<u32>,
        mut drain: impl FnMut(u32, &mut Vec<u32>) -> SpanStep,
    ) -> Step {
        candidates.reverse(); // popped from the back: emptiest first
        let mut total = Step::default();
        let mut busy = Vec::new();
        let mut second_round = false;
        // Spans that took objects this pass, sorted: never sources after.
        let mut took = Vec::new();
        loop {
            let Some(src) = candidates.pop() else {
                if second_round || busy.is_empty() {
                    break;
                }
                second_round = true;
                candidates = std::mem::take(&mut busy);
                candidates.reverse();
                continue;
            };
            if took.binary_search(&src).is_ok() {
                continue;
            }
            match drain(src, &mut took) {
                SpanStep::Moved(step) => total.add(step),
                SpanStep::Busy => busy.push(src),
                SpanStep::NoRoom => break,
                SpanStep::Gone => {}
            }
        }
        total
    }

    /// Empties span `src` of a class of handles, under one hold of the
    /// class lock.
    fn drain_handles(
        &self,
        src: u32,
        by_span: &ObjectsBySpan,
        footprint: &AtomicUsize,
        took: &mut Vec<u32>,
    ) -> SpanStep {
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut from = match self.take_source(inner, src, None) {
            Ok(from) => from,
            Err(step) => return step,
        };
        let mut step = Step::default();
        from.mem.token().write_during(|| {
            for &id in by_span.objects_of(src) {
                let Some(e) = inner.entry_at(id) else {
                    continue;
                };
                if e.len == 0 || e.span != src {
                    continue; // freed or moved since the scan
                }
                let (span, slot) = self.move_one(inner, &mut from, e.slot as u16, e.len, took);
                inner.set_entry(
                    id,
                    super::handle::Entry {
                        slot: u32::from(slot),
                        span,
                        ..e
                    },
                );
                step.moved += 1;
            }
        });
        self.put_source(inner, src, from, footprint, &mut step);
        SpanStep::Moved(step)
    }

    /// Empties span `src` of a class of placed objects, whose `listed`
    /// objects the owner found there: claims each (outside the lock), and
    /// moves them only if they are all of the span's objects; adds each
    /// moved object, at its new place, to `moved`.
    #[allow(clippy::too_many_arguments)]
    fn drain_placed<O: Owners>(
        &self,
        class: usize,
        src: u32,
        listed: &[Placed],
        owners: &O,
        footprint: &AtomicUsize,
        took: &mut Vec<u32>,
        moved: &mut Vec<Placed>,
    ) -> SpanStep {
        let mut claims = Vec::with_capacity(listed.len());
        for o in listed {
            match owners.claim(o) {
                Some(c) => claims.push((o, c)),
                None => return SpanStep::Busy,
            }
        }
        let mut g = self.inner.lock();
        let inner = &mut *g;
        let mut from = match self.take_source(inner, src, Some(claims.len())) {
            Ok(from) => from,
            Err(step) => return step,
        };
        let mut step = Step::default();
        from.mem.token().write_during(|| {
            for (o, claim) in &claims {
                let (span, slot) =
                    self.move_one(inner, &mut from, o.loc.slot(), u32::from(o.len), took);
                let loc = Loc::new(class, span, slot);
                owners.relocate(claim, loc);
                moved.push(Placed { loc, ..**o });
                step.moved += 1;
            }
        });
        self.put_source(inner, src, from, footprint, &mut step);
        // The claims go after the lock: a claim's release may wake a
        // waiter, which then finds the new location.
        drop(g);
        drop(claims);
        SpanStep::Moved(step)
    }

    /// Takes span `src` out of the table to drain it, if it is still
    /// partial, the other partial spans have room for its objects, and
    /// (for placed objects) it holds exactly the `claimed` ones.
    fn take_source(
        &self,
        inner: &mut Inner,
        src: u32,
        claimed: Option<usize>,
    ) -> Result<Span, SpanStep> {
        let (need, room) = match inner.spans.get(src as usize) {
            Some(Some(span)) if span.bucket != UNLISTED => (
                usize::from(span.inuse),
                inner.room_beside(span, self.objects.load(Ordering::Relaxed)),
            ),
            // Given back, or full, since the scan.
            _ => return Err(SpanStep::Gone),
        };
        if claimed.is_some_and(|n| n != need) {
            // Stored into since the owner looked: it stays.
            return Err(SpanStep::Gone);
        }
        if need == 0 || room < need {
            return Err(SpanStep::NoRoom);
        }
        // Out of the table, so that source and destination can be borrowed
        // at once, and unlisted, so that it is never a destination.
        unlist(inner, src);
        Ok(inner.spans[src as usize]
            .take()
            .expect("listed spans exist"))
    }

    /// Moves the object of `len` bytes at `slot` of `from` into the
    /// fullest partial span: returns its new (span, slot), and adds that
    /// span to `took` (sorted).
    fn move_one(
        &self,
        inner: &mut Inner,
        from: &mut Span,
        slot: u16,
        len: u32,
        took: &mut Vec<u32>,
    ) -> (u32, u16) {
        let slot_size = self.packing.slot;
        let dst_sid = inner.fullest_partial().expect("room was counted");
        let dst = inner.spans[dst_sid as usize]
            .as_mut()
            .expect("listed spans exist");
        let new_slot = dst
            .take_slot(slot_size)
            .expect("listed spans have a free slot");
        // SAFETY: the source is a live object's `len` bytes, written when
        // it was stored or last moved; the copy writes the same range of
        // the new slot, keeping the invariant (span.rs).
        unsafe {
            SpanMem::copy(
                &from.mem,
                usize::from(slot) * slot_size,
                &mut dst.mem,
                usize::from(new_slot) * slot_size,
                len as usize,
            );
        }
        from.put_slot(slot, slot_size);
        relist(inner, dst_sid);
        if let Err(at) = took.binary_search(&dst_sid) {
            took.insert(at, dst_sid);
        }
        (dst_sid, new_slot)
    }

    /// Puts a drained source back in the table: given back if it emptied,
    /// relisted if an object stayed.
    fn put_source(
        &self,
        inner: &mut Inner,
        src: u32,
        from: Span,
        footprint: &AtomicUsize,
        step: &mut Step,
    ) {
        let emptied = from.inuse == 0;
        inner.spans[src as usize] = Some(from);
        if emptied {
            self.release_span(inner, src, footprint);
            step.freed_spans = 1;
        } else {
            relist(inner, src);
        }
        self.update_meta(inner);
    }
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

/// The partial spans, emptiest first (the order compaction drains them).
fn emptiest_first(inner: &Inner) -> Vec<u32> {
    inner.buckets.iter().flatten().copied().collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{PoolConfig, ZsPool};

    /// 3,620-byte objects: a class of 9 slots in 8-page spans.
    fn obj(i: usize) -> Vec<u8> {
        (0..3620).map(|j| (i * 31 + j) as u8).collect()
    }

    /// A pass that stops for want of room leaves two partial spans; the
    /// tail is then drained into the other and a 2-page span instead of
    /// staying an 8-page one, and every object reads back.
    #[test]
    fn the_tail_moves_into_a_span_that_fits_it() {
        let pool = ZsPool::new(PoolConfig::default()).unwrap();
        let span = 8 * 4096;
        let handles: Vec<_> = (0..27).map(|i| pool.insert(&obj(i)).unwrap()).collect();
        assert_eq!(pool.footprint(), 3 * span, "three full spans");
        // Keep 5 of the first span, 4 of the second, 2 of the third.
        let keep = |i: usize| i % 9 < [5, 4, 2][i / 9];
        for (i, &h) in handles.iter().enumerate() {
            if !keep(i) {
                pool.free(h).unwrap();
            }
        }
        pool.compact();
        // The third drains into the first (7 of 9); the second (4) does
        // not fit in the first's 2 free slots, so it goes 2 there and 2
        // into a new 2-page span.
        assert_eq!(pool.footprint(), span + 2 * 4096);
        assert_eq!(pool.stats().objects, 11);
        for (i, &h) in handles.iter().enumerate() {
            if keep(i) {
                assert_eq!(pool.read(h, <[u8]>::to_vec).unwrap(), obj(i));
                pool.free(h).unwrap();
            }
        }
        assert_eq!(pool.footprint(), 0);
        // The short span is not cached as one of the class's own.
        assert_eq!(pool.cached_bytes(), span);
    }
}
