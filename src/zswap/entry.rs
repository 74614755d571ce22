//! Entries, the slot index, and the swap areas zswap fronts.
//!
//! An entry is shared by the slot index and (unless same-filled) the LRU,
//! as one [`Item`]. The rule that keeps every race simple: **every change to
//! a slot's index entry happens under that slot's pin** ([`SwapArea::pin`]
//! for store, load and invalidate, which wait; `try_pin` for writeback,
//! which skips), so the index shard locks only protect the map itself, and
//! whoever removes an entry from the index is the one who frees it (its
//! pool object, its charge, its counters), exactly once.

use std::collections::HashMap;

use crate::store::Handle;
use crate::sync::{AtomicU16, Mutex, Ordering};
use crate::{AreaId, GroupId, Item, NodeId, SwapArea, SwapDevice, SwapSlot, PAGE_SIZE};

/// Index shards per area (a power of two).
#[cfg(not(loom))]
const SHARDS: usize = 64;
#[cfg(loom)]
const SHARDS: usize = 2;

/// What an entry holds, as the store and load paths see it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Data {
    /// A page of one repeated 64-bit word.
    Same(u64),
    /// An object of `len` bytes in pool `pool`: compressed, or the page
    /// itself (`len == PAGE_SIZE`) if it did not compress.
    Stored { pool: u16, handle: Handle, len: u16 },
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
/// (with the LRU's 40 bytes of count, state, owner and links, an entry's
/// item is 64 bytes).
#[derive(Debug)]
pub(crate) struct Entry {
    /// The pool handle's raw value, or a same-filled page's word.
    word: u64,
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
            Data::Stored { pool, handle, len } => (handle.to_raw(), pool, len),
        };
        debug_assert!((1..=PAGE_SIZE as u16).contains(&len) || matches!(data, Data::Same(_)));
        Entry {
            word,
            offset: slot.offset,
            group: group.index() as u32,
            area: slot.area.0,
            // `MAX_NUMNODES` is 1024.
            node: node.0 as u16,
            pool,
            state: AtomicU16::new(len | REFERENCED),
        }
    }

    /// The slot the entry stores.
    pub(crate) fn slot(&self) -> SwapSlot {
        SwapSlot {
            area: AreaId(self.area),
            offset: self.offset,
        }
    }

    /// The group charged.
    pub(crate) fn group(&self) -> GroupId {
        GroupId::from_raw(self.group)
    }

    /// The node whose list holds the entry.
    pub(crate) fn node(&self) -> NodeId {
        NodeId(u32::from(self.node))
    }

    /// What the entry holds.
    pub(crate) fn data(&self) -> Data {
        // The length never changes; only the flags do.
        let len = self.state.load(Ordering::Relaxed) & LEN_MASK;
        if len == 0 {
            return Data::Same(self.word);
        }
        Data::Stored {
            pool: self.pool,
            handle: Handle::from_raw(self.word).expect("a stored entry's handle is not zero"),
            len,
        }
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

/// Hashes a slot offset with one multiply (Fibonacci hashing): offsets are
/// small dense integers, so SipHash's cost buys nothing, and the multiply
/// spreads them into the high bits hashbrown's control bytes use.
#[derive(Default, Clone, Copy)]
pub(crate) struct OffsetHasher(u64);

impl std::hash::Hasher for OffsetHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type OffsetMap = HashMap<u32, Item<Entry>, std::hash::BuildHasherDefault<OffsetHasher>>;

/// One shard of a slot index.
type Shard = Mutex<OffsetMap>;

/// A swapped-on area: its slots and pins, its device, and the slot index.
pub(crate) struct Area {
    pub(crate) slots: SwapArea,
    pub(crate) device: Box<dyn SwapDevice>,
    shards: Box<[Shard]>,
}

impl Area {
    pub(crate) fn new(slots: SwapArea, device: Box<dyn SwapDevice>) -> Self {
        Area {
            slots,
            device,
            shards: (0..SHARDS)
                .map(|_| Mutex::new(OffsetMap::default()))
                .collect(),
        }
    }

    fn shard(&self, offset: u32) -> &Shard {
        &self.shards[offset as usize % SHARDS]
    }

    /// Puts `entry` at `offset`; returns the entry it replaced.
    pub(crate) fn insert(&self, offset: u32, entry: Item<Entry>) -> Option<Item<Entry>> {
        self.shard(offset).lock().insert(offset, entry)
    }

    /// Takes the entry at `offset` out of the index.
    pub(crate) fn remove(&self, offset: u32) -> Option<Item<Entry>> {
        self.shard(offset).lock().remove(&offset)
    }

    /// Whether `offset` maps to exactly `entry`.
    pub(crate) fn maps_to(&self, offset: u32, entry: &Item<Entry>) -> bool {
        self.shard(offset)
            .lock()
            .get(&offset)
            .is_some_and(|cur| Item::ptr_eq(cur, entry))
    }

    /// Takes every entry out of the index (teardown).
    pub(crate) fn drain(&self) -> Vec<Item<Entry>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().drain().map(|(_, e)| e).collect::<Vec<_>>())
            .collect()
    }

    /// Entries in the index now.
    pub(crate) fn entries(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(all(test, not(loom), target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// The budget: an entry's item (the LRU node around it) is at
    /// most 64 bytes, as the kernel's `zswap_entry` is.
    #[test]
    fn an_entry_item_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 24);
        assert_eq!(crate::lru::item_bytes::<Entry>(), 64);
    }

    #[test]
    fn entries_round_trip_their_fields() {
        let slot = SwapSlot {
            area: AreaId(7),
            offset: u32::MAX,
        };
        let g = GroupId::from_raw(123_456);
        let same = Entry::new(slot, Data::Same(u64::MAX), g, NodeId(1023));
        assert_eq!(same.slot(), slot);
        assert_eq!(same.group(), g);
        assert_eq!(same.node(), NodeId(1023));
        assert!(matches!(same.data(), Data::Same(u64::MAX)));
        let handle = Handle::from_raw(0xdead_beef).unwrap();
        for (len, incompressible) in [(1, false), (4095, false), (4096, true)] {
            let data = Data::Stored {
                pool: u16::MAX,
                handle,
                len,
            };
            let e = Entry::new(slot, data, g, NodeId::ZERO);
            let back = e.data();
            let Data::Stored {
                pool,
                handle: h,
                len: l,
            } = back
            else {
                panic!("stored entry read back as same-filled");
            };
            assert_eq!(
                (pool, h, l, back.incompressible()),
                (u16::MAX, handle, len, incompressible)
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
