//! Entries, the slot index, and the swap areas zswap fronts.
//!
//! An entry is shared by the slot index and (unless same-filled) the LRU,
//! as one [`Item`]. The rule that keeps every race simple: **every change to
//! a slot's index entry happens under that slot's pin** ([`SwapArea::pin`]
//! for store, load and invalidate, which wait; `try_pin` for writeback,
//! which skips). The index is one atomic cell per slot, and taking an entry
//! out of it is one atomic swap, so whoever removes an entry from the index
//! is the one who frees it (its pool object, its charge, its counters),
//! exactly once.

use crate::lru::ItemCell;
use crate::store::Loc;
use crate::sync::{AtomicU16, AtomicU64, Ordering};
use crate::{AreaId, GroupId, Item, NodeId, SlotPin, SwapArea, SwapDevice, SwapSlot, PAGE_SIZE};

/// What an entry holds, as the store and load paths see it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Data {
    /// A page of one repeated 64-bit word.
    Same(u64),
    /// An object of `len` bytes at `loc` in pool `pool`: compressed, or
    /// the page itself (`len == PAGE_SIZE`) if it did not compress.
    Stored { pool: u16, loc: Loc, len: u16 },
}

/// `Entry::state`: the stored length in the low bits (0 for a same-filled
/// page, `PAGE_SIZE` for one stored as-is), then two flags.
const LEN_MASK: u16 = (1 << 13) - 1;
/// Second chance: set on store, cleared (with a rotation) by the shrinker
/// before it writes the entry back.
const REFERENCED: u16 = 1 << 13;
/// Set by the remover before it unlinks the entry, so that a shrinker
/// putting back an entry it could not pin can tell it raced with the
/// entry's removal and take it off again (`putback_busy` in reclaim.rs).
const DEAD: u16 = 1 << 14;

const _: () = assert!(PAGE_SIZE as u16 <= LEN_MASK);

/// One stored page: 24 bytes, packed as the kernel packs `zswap_entry`
/// (with the LRU's 32 bytes of count, lru id, state and links, an entry's
/// item is 56 bytes, the kernel's `zswap_entry` with its `list_head`).
#[derive(Debug)]
pub(crate) struct Entry {
    /// The object's location in its pool (zsmalloc's handle, with no
    /// table between: compaction rewrites it under the slot's pin), or a
    /// same-filled page's word. Relaxed: the pin orders it.
    word: AtomicU64,
    offset: u32,
    /// The group charged (the storing group, or its nearest online
    /// ancestor).
    group: u32,
    area: u16,
    node: u16,
    pool: u16,
    /// Length and flags: see [`LEN_MASK`].
    state: AtomicU16,
}

impl Entry {
    /// A referenced entry for `slot`.
    pub(crate) fn new(slot: SwapSlot, data: Data, group: GroupId, node: NodeId) -> Self {
        let (word, pool, len) = match data {
            Data::Same(w) => (w, 0, 0),
            Data::Stored { pool, loc, len } => (loc.to_raw(), pool, len),
        };
        debug_assert!((1..=PAGE_SIZE as u16).contains(&len) || matches!(data, Data::Same(_)));
        Entry {
            word: AtomicU64::new(word),
            offset: slot.offset,
            group: group.index() as u32,
            area: slot.area.index() as u16,
            // `MAX_NUMNODES` is 1024.
            node: node.0 as u16,
            pool,
            state: AtomicU16::new(len | REFERENCED),
        }
    }

    /// The slot the entry stores; its area's generation is not kept, so
    /// the id is the area's index of generation 0 (find the area with
    /// `Inner::area_at`).
    pub(crate) fn slot(&self) -> SwapSlot {
        SwapSlot {
            area: AreaId::new(self.area as u8),
            offset: self.offset,
        }
    }

    /// The index of the group charged, which the entry holds a reference
    /// on (so the group at that index is this entry's: `Inner::group_of`).
    pub(crate) fn group_index(&self) -> u32 {
        self.group
    }

    /// The node whose list holds the entry.
    pub(crate) fn node(&self) -> NodeId {
        NodeId(u32::from(self.node))
    }

    /// What the entry holds.
    pub(crate) fn data(&self) -> Data {
        // The length never changes; only the flags do.
        let len = self.state.load(Ordering::Relaxed) & LEN_MASK;
        let word = self.word.load(Ordering::Relaxed);
        if len == 0 {
            return Data::Same(word);
        }
        Data::Stored {
            pool: self.pool,
            loc: Loc::from_raw(word).expect("a stored entry's location is not zero"),
            len,
        }
    }

    /// Records that compaction moved the entry's object to `loc`; the
    /// caller holds the slot's pin.
    pub(crate) fn set_loc(&self, loc: Loc) {
        debug_assert!(matches!(self.data(), Data::Stored { .. }));
        self.word.store(loc.to_raw(), Ordering::Relaxed);
    }

    /// Clears the referenced flag; whether it was set.
    pub(crate) fn take_referenced(&self) -> bool {
        self.state.fetch_and(!REFERENCED, Ordering::Relaxed) & REFERENCED != 0
    }

    /// Marks the entry dead (the remover, before it unlinks it). An AcqRel
    /// read-modify-write, paired with [`is_dead`](Self::is_dead): see
    /// `putback_busy` in reclaim.rs.
    pub(crate) fn mark_dead(&self) {
        self.state.fetch_or(DEAD, Ordering::AcqRel);
    }

    /// Whether the entry is dead, read with an AcqRel read-modify-write
    /// ordered with [`mark_dead`](Self::mark_dead).
    pub(crate) fn is_dead(&self) -> bool {
        self.state.fetch_or(0, Ordering::AcqRel) & DEAD != 0
    }
}

impl Data {
    /// Bytes charged to the group for it.
    pub(crate) fn charged_len(&self) -> u64 {
        match *self {
            Data::Same(_) => 0,
            Data::Stored { len, .. } => u64::from(len),
        }
    }

    /// Whether it is a page stored uncompressed.
    pub(crate) fn incompressible(&self) -> bool {
        matches!(self, Data::Stored { len, .. } if usize::from(*len) == PAGE_SIZE)
    }
}

/// An area's slots, each carrying its index cell.
pub(crate) type Slots = SwapArea<ItemCell<Entry>>;

/// The pin of one slot of an area: the only way to its index cell.
pub(crate) type Pin<'a> = SlotPin<'a, ItemCell<Entry>>;

/// A swapped-on area: its slots (with their pins and the slot index) and
/// its device.
///
/// The slot index is one cell per slot (8 bytes, the kernel's per-slot
/// swap table), kept in the slot's cluster beside its state byte, so it
/// exists only while a slot of the cluster is in use. A lookup is one load
/// at a fixed address, with no lock; every change happens under the slot's
/// pin, which is also the only way to the cell (see [`SlotIndex`]).
pub(crate) struct Area {
    pub(crate) slots: Slots,
    pub(crate) device: Box<dyn SwapDevice>,
}

impl Area {
    pub(crate) fn new(slots: Slots, device: Box<dyn SwapDevice>) -> Self {
        Area { slots, device }
    }

    /// Takes every entry out of the index (teardown, with no pin held: the
    /// zswap is being dropped).
    pub(crate) fn drain(&self) -> Vec<Item<Entry>> {
        let mut all = Vec::new();
        self.slots.for_each_payload(|cell| all.extend(cell.take()));
        all
    }

    /// Heap bytes of the per-slot state now (index cells, state bytes and
    /// free bits of the clusters in use, and the cluster table).
    pub(crate) fn index_bytes(&self) -> usize {
        self.slots.state_bytes()
    }

    /// Entries in the index now (a snapshot).
    pub(crate) fn entries(&self) -> usize {
        let mut n = 0;
        self.slots
            .for_each_payload(|cell| n += usize::from(cell.has_item()));
        n
    }
}

/// The index cell of a pinned slot: every change to a slot's entry happens
/// under its pin. Where the slot's page is on the device instead, the cell
/// records the group that owns it (the kernel's swap_cgroup record), in
/// the same word (see `ItemCell`'s tags).
pub(crate) trait SlotIndex {
    /// Puts `entry` in the slot (dropping an owner record); returns the
    /// entry it replaced.
    fn insert(&self, entry: Item<Entry>) -> Option<Item<Entry>>;
    /// Takes the slot's entry out of the index; an owner record stays.
    fn remove(&self) -> Option<Item<Entry>>;
    /// Empties the cell: takes the entry out, or drops the owner record.
    fn clear(&self) -> Option<Item<Entry>>;
    /// Whether the slot maps to exactly `entry`.
    fn maps_to(&self, entry: &Item<Entry>) -> bool;
    /// The slot's entry, left in the index.
    fn entry(&self) -> Option<Item<Entry>>;
    /// Records that the slot's page is on the device, owned by `group`.
    fn set_owner(&self, group: GroupId);
    /// Takes the owner record, if the cell holds one.
    fn take_owner(&self) -> Option<Owner>;
}

impl SlotIndex for Pin<'_> {
    fn insert(&self, entry: Item<Entry>) -> Option<Item<Entry>> {
        self.payload().replace(Some(entry))
    }

    fn remove(&self) -> Option<Item<Entry>> {
        self.payload().take()
    }

    fn clear(&self) -> Option<Item<Entry>> {
        self.payload().replace(None)
    }

    fn maps_to(&self, entry: &Item<Entry>) -> bool {
        self.payload().holds(entry)
    }

    fn entry(&self) -> Option<Item<Entry>> {
        // SAFETY: only the pin's holder (us) changes the cell.
        unsafe { self.payload().get() }
    }

    fn set_owner(&self, group: GroupId) {
        let replaced = self.payload().set_tag(Owner::of(group).tag());
        debug_assert!(replaced.is_none(), "an owner is recorded over no entry");
    }

    fn take_owner(&self) -> Option<Owner> {
        self.payload().take_tag().map(Owner::from_tag)
    }
}

/// The group that owns a slot whose page is on the device: its index and
/// the low bits of its generation (31 on 64-bit targets; none on 32-bit,
/// where a tag has 31 bits for the index alone), enough to tell a live
/// group from a freed one whose index was reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

/// Generation bits an owner record keeps.
const OWNER_GEN_BITS: u32 = if usize::BITS >= 64 { 31 } else { 0 };

impl Owner {
    /// The record of `group`.
    pub(crate) fn of(group: GroupId) -> Self {
        Owner {
            index: group.index() as u32,
            gen: Self::gen_bits(group.generation()),
        }
    }

    /// The generation bits a record keeps of `gen`.
    pub(crate) fn gen_bits(gen: u32) -> u32 {
        gen & ((1u64 << OWNER_GEN_BITS) - 1) as u32
    }

    fn tag(self) -> usize {
        let word = (u64::from(self.gen) << 32) | u64::from(self.index);
        (word as usize) & crate::lru::TAG_MAX
    }

    fn from_tag(tag: usize) -> Self {
        let word = tag as u64;
        Owner {
            index: word as u32,
            gen: Self::gen_bits((word >> 32) as u32),
        }
    }
}

#[cfg(all(test, not(loom), target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// An entry's item (the LRU node around it) is 56 bytes, as the
    /// kernel's `zswap_entry` is with its `list_head` (and glibc serves it
    /// from a 64-byte chunk, where 64 bytes took an 80-byte one).
    #[test]
    fn an_entry_item_is_56_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        assert_eq!(crate::lru::item_bytes::<Entry>(), 56);
    }

    #[test]
    fn entries_round_trip_their_fields() {
        let slot = SwapSlot {
            area: AreaId::new(7),
            offset: u32::MAX,
        };
        let g = GroupId::new(123_456, 7);
        let same = Entry::new(slot, Data::Same(u64::MAX), g, NodeId(1023));
        assert_eq!(same.slot(), slot);
        assert_eq!(same.group_index(), 123_456);
        assert_eq!(same.node(), NodeId(1023));
        assert!(matches!(same.data(), Data::Same(u64::MAX)));
        let loc = Loc::from_raw(0xdead_beef).unwrap();
        for (len, incompressible) in [(1, false), (4095, false), (4096, true)] {
            let data = Data::Stored {
                pool: u16::MAX,
                loc,
                len,
            };
            let e = Entry::new(slot, data, g, NodeId::ZERO);
            let back = e.data();
            let Data::Stored {
                pool,
                loc: h,
                len: l,
            } = back
            else {
                panic!("stored entry read back as same-filled");
            };
            assert_eq!(
                (pool, h, l, back.incompressible()),
                (u16::MAX, loc, len, incompressible)
            );
            // Flags leave the length alone.
            assert!(e.take_referenced() && !e.take_referenced());
            assert!(!e.is_dead());
            e.mark_dead();
            assert!(e.is_dead());
            assert_eq!(e.data().charged_len(), u64::from(len));
        }
    }
}
