//! Compaction of zswap's pools. An entry keeps its object's location
//! itself (no handle table between, as the kernel's `zswap_entry` keeps its
//! zsmalloc handle), so compaction asks the slots where the objects are and
//! fixes each entry up when it moves the entry's object.
//!
//! What it guarantees, with the rule every race here follows (every change
//! to a slot's entry happens under the slot's pin):
//! - an object moves only while compaction holds its slot's pin (`try_pin`:
//!   a slot being stored, loaded, invalidated or written back is left
//!   alone, and so is its object's span), and the entry's new location is
//!   written before the pin goes, so whoever pins the slot next reads the
//!   object where it is;
//! - a span is drained only when every object in it is claimed so, so no
//!   load (which reads under its pin, without the class lock) can be
//!   reading it;
//! - a slot is pinned only for a moment: once to note its object's place
//!   (the scan), once while its span is drained.

use super::entry::{Data, Entry, Pin, SlotIndex};
use super::tables::AreaRef;
use super::Inner;
use crate::store::{Loc, Owners, Placed};
use crate::Item;

/// The areas live when the compaction began; a placed object's owner is
/// (area's position << 32 | offset).
struct SlotOwners<'a> {
    areas: &'a [AreaRef],
    /// The pool being compacted.
    pool: u16,
}

impl Owners for SlotOwners<'_> {
    type Claim<'a>
        = (Pin<'a>, Item<Entry>)
    where
        Self: 'a;

    fn claim(&self, p: &Placed) -> Option<Self::Claim<'_>> {
        let area = self.areas.get((p.owner >> 32) as usize)?;
        let pin = area.slots.try_pin(p.owner as u32)?;
        let entry = pin.entry()?;
        match entry.data() {
            // An object at the place the scan saw, of the length the move
            // will copy: the same one, or one stored there since.
            Data::Stored { pool, loc, len }
                if pool == self.pool && loc == p.loc && len == p.len =>
            {
                Some((pin, entry))
            }
            _ => None,
        }
    }

    fn relocate<'a>(&'a self, claim: &Self::Claim<'a>, to: Loc) {
        claim.1.set_loc(to);
    }
}

impl Inner {
    /// Compacts every pool and gives each class's cached spans back;
    /// returns the bytes of span memory given back.
    pub(super) fn compact_pools(&self) -> usize {
        let areas: Vec<AreaRef> = (0..self.areas.bound())
            .filter_map(|i| self.area_at(i))
            .collect();
        let scanned = self.scan_placed(&areas);
        self.compact_scanned(&areas, scanned)
    }

    /// Where `areas`' stored objects are, by pool: (pool index, objects),
    /// each noted under a momentary pin; a busy slot is left out.
    fn scan_placed(&self, areas: &[AreaRef]) -> Vec<(u16, Vec<Placed>)> {
        let mut by_pool: Vec<(u16, Vec<Placed>)> = Vec::new();
        for (a, area) in areas.iter().enumerate() {
            area.slots.for_each_allocated(|offset| {
                let Some(pin) = area.slots.try_pin(offset) else {
                    return; // busy: its span stays
                };
                let Some(Data::Stored { pool, loc, len }) = pin.entry().map(|e| e.data()) else {
                    return;
                };
                let placed = Placed {
                    loc,
                    len,
                    owner: (a as u64) << 32 | u64::from(offset),
                };
                match by_pool.iter_mut().find(|(p, _)| *p == pool) {
                    Some((_, objects)) => objects.push(placed),
                    None => by_pool.push((pool, vec![placed])),
                }
            });
        }
        by_pool
    }

    /// Compacts every pool with the objects a [`scan_placed`] of `areas`
    /// found: those that moved or went since are left where they are, by
    /// the claim's re-check (`SlotOwners::claim`).
    ///
    /// [`scan_placed`]: Self::scan_placed
    fn compact_scanned(&self, areas: &[AreaRef], mut by_pool: Vec<(u16, Vec<Placed>)>) -> usize {
        let mut freed = 0;
        self.pools.for_each(|p| {
            let held = p.pool.footprint() + p.pool.cached_bytes();
            if let Some((_, objects)) = by_pool.iter_mut().find(|(i, _)| *i == p.index) {
                let owners = SlotOwners {
                    areas,
                    pool: p.index,
                };
                p.pool.compact_placed(objects, &owners);
            }
            p.pool.shrink_cache();
            freed += held.saturating_sub(p.pool.footprint());
        });
        freed
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Data, SlotIndex};
    use crate::{
        AreaId, GroupId, Groups, MemDevice, NodeId, PoolLimit, SwapSlot, Topology, Zswap,
        ZswapConfig, PAGE_SIZE,
    };

    /// A page whose first 1,900 bytes are noise and the rest zeros: it
    /// compresses to a little under 2 KiB, a class of two slots per page.
    fn page(seed: u64) -> Vec<u8> {
        noisy(seed, 1900)
    }

    /// A page whose first `noise` bytes are noise and the rest zeros.
    fn noisy(seed: u64, noise: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..PAGE_SIZE)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i < noise {
                    x as u8
                } else {
                    0
                }
            })
            .collect()
    }

    fn slot(offset: u32) -> SwapSlot {
        SwapSlot {
            area: AreaId::new(0),
            offset,
        }
    }

    fn zswap(groups: &Groups, slots: u64) -> Zswap {
        let cfg = ZswapConfig::default()
            .shrink_worker(false)
            .topology(Topology::single())
            .max_pool(PoolLimit::Bytes(1 << 30));
        let z = Zswap::new(cfg, groups).unwrap();
        z.swapon(Box::new(MemDevice::new(slots))).unwrap();
        z
    }

    /// Spans 0 {page 1} and 1 {page 3} (page 2 invalidated).
    fn fragmented(z: &Zswap) {
        for i in 1..=3 {
            assert!(z
                .store(slot(i), &page(i.into()), GroupId::ROOT, NodeId::ZERO)
                .unwrap());
        }
        assert_eq!(
            z.stats().pool_total_size,
            2 * PAGE_SIZE as u64,
            "two per page"
        );
        z.invalidate(slot(2)).unwrap();
    }

    fn load(z: &Zswap, i: u32) {
        let mut back = vec![0; PAGE_SIZE];
        assert!(z.load(slot(i), &mut back).unwrap());
        assert!(back == page(i.into()), "page {i} read back whole");
    }

    /// An object whose slot is pinned (a load, a store, a writeback in
    /// progress) is not moved, and neither is the rest of its span; once
    /// the pins go, the next pass merges the two spans and every page reads
    /// back from where its entry now says.
    #[test]
    fn pinned_slots_keep_their_spans_and_moved_entries_follow() {
        let groups = Groups::new();
        let z = zswap(&groups, 8);
        fragmented(&z);
        let area = z.inner.area_at(0).unwrap();
        let pins = [
            area.slots.try_pin(1).unwrap(),
            area.slots.try_pin(3).unwrap(),
        ];
        assert_eq!(z.compact(), 0, "both spans are held");
        assert_eq!(z.stats().pool_total_size, 2 * PAGE_SIZE as u64);
        drop(pins);
        assert_eq!(z.compact(), PAGE_SIZE);
        assert_eq!(z.stats().pool_total_size, PAGE_SIZE as u64);
        load(&z, 1);
        load(&z, 3);
        assert_eq!(z.stats().pool_total_size, 0);
    }

    /// One pinned object keeps only its own span: the other span's object
    /// moves in beside it.
    #[test]
    fn one_pinned_slot_still_lets_the_other_span_drain() {
        let groups = Groups::new();
        let z = zswap(&groups, 8);
        fragmented(&z);
        let area = z.inner.area_at(0).unwrap();
        let pin = area.slots.try_pin(1).unwrap();
        assert_eq!(z.compact(), PAGE_SIZE);
        drop(pin);
        load(&z, 3);
        load(&z, 1);
    }

    /// The tail fitting of `store/compact.rs` on placed objects: pages
    /// that compress to about 3.6 KiB (a class of 9 slots in 8-page
    /// spans), three spans of them stored, `kept[i]` of the `i`th kept;
    /// after compaction the pool holds `pages` pages, and every page reads
    /// back.
    fn tail_fits(kept: [u64; 3], pages: u64) {
        let groups = Groups::new();
        let z = zswap(&groups, 32);
        for i in 0..27 {
            let page = noisy(i, 3580);
            assert!(z
                .store(slot(i as u32), &page, GroupId::ROOT, NodeId::ZERO)
                .unwrap());
        }
        let span = 8 * PAGE_SIZE as u64;
        assert_eq!(z.stats().pool_total_size, 3 * span, "three full spans");
        let keep = |i: u64| i % 9 < kept[(i / 9) as usize];
        for i in (0..27).filter(|&i| !keep(i)) {
            z.invalidate(slot(i as u32)).unwrap();
        }
        z.compact();
        assert_eq!(z.stats().pool_total_size, pages * PAGE_SIZE as u64);
        let mut back = vec![0; PAGE_SIZE];
        for i in (0..27).filter(|&i| keep(i)) {
            assert!(z.load(slot(i as u32), &mut back).unwrap());
            assert!(back == noisy(i, 3580), "page {i} read back whole");
        }
        assert_eq!(z.stats().pool_total_size, 0);
    }

    /// The claim's re-check: between the scan and the drain, two objects
    /// of one span are freed and their pages stored again, each into the
    /// other's place (a span's free slots go last in, first out), with the
    /// same length. Each slot still holds an object of the pool, and the
    /// span as many as the scan saw; only the location the claim compares
    /// tells the scan's objects from these. So the span stays, and every
    /// page reads back whole; a fresh scan then drains it into a short
    /// span.
    #[test]
    fn objects_that_swapped_places_since_the_scan_stay() {
        let groups = Groups::new();
        let z = zswap(&groups, 16);
        let page = |i: u32| noisy(i.into(), 3580);
        let store = |i: u32| {
            assert!(z
                .store(slot(i), &page(i), GroupId::ROOT, NodeId::ZERO)
                .unwrap());
        };
        // One span of nine (8 pages); 0, 1 and 2 kept.
        (0..9).for_each(store);
        for i in 3..9 {
            z.invalidate(slot(i)).unwrap();
        }
        let areas = [z.inner.area_at(0).unwrap()];
        let placed = |i: u32| match areas[0].slots.try_pin(i).unwrap().entry().unwrap().data() {
            Data::Stored { loc, len, .. } => (loc, len),
            Data::Same(_) => panic!("page {i} is stored"),
        };
        let scanned = z.inner.scan_placed(&areas);
        let before = [placed(0), placed(1)];
        assert_eq!(before[0].1, before[1].1, "two objects of one length");
        z.invalidate(slot(0)).unwrap();
        z.invalidate(slot(1)).unwrap();
        store(0);
        store(1);
        assert_eq!(
            [placed(0), placed(1)],
            [before[1], before[0]],
            "each in the other's place"
        );
        let span = 8 * PAGE_SIZE as u64;
        assert_eq!(z.stats().pool_total_size, span);
        z.inner.compact_scanned(&areas, scanned);
        assert_eq!(
            z.stats().pool_total_size,
            span,
            "the span stays: two of its objects are not the scan's"
        );
        assert!(z.compact() > 0, "a fresh scan drains it");
        assert!(z.stats().pool_total_size < span);
        let mut back = vec![0; PAGE_SIZE];
        for i in 0..3 {
            assert!(z.load(slot(i), &mut back).unwrap());
            assert!(back == page(i), "page {i} read back whole");
        }
    }

    /// 5, 4 and 2 kept: the third span drains into the first, the second
    /// does not fit in the first's two free slots, so it fills them and
    /// puts the rest into a new 2-page span (8 + 2 pages, not 16).
    #[test]
    fn a_tail_that_did_not_fit_moves_into_a_short_span() {
        tail_fits([5, 4, 2], 8 + 2);
    }

    /// 2, 2 and 1 kept: the pass drains the third and then the second into
    /// the first, which is left the one partial span, with objects it took
    /// in this pass (found from the pass's own moves, not the scan): they
    /// all move into a 5-page span.
    #[test]
    fn a_tail_that_took_objects_in_the_pass_moves_too() {
        tail_fits([2, 2, 1], 5);
    }
}
