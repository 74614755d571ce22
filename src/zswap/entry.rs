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
use crate::sync::{AtomicBool, Mutex};
use crate::{GroupId, Item, NodeId, SwapArea, SwapDevice, SwapSlot};

/// Index shards per area (a power of two).
#[cfg(not(loom))]
const SHARDS: usize = 64;
#[cfg(loom)]
const SHARDS: usize = 2;

/// What an entry holds.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Data {
    /// A page of one repeated 64-bit word.
    Same(u64),
    /// An object in pool `pool`.
    Stored {
        pool: u32,
        handle: Handle,
        len: u32,
        incompressible: bool,
    },
}

/// One stored page.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) slot: SwapSlot,
    pub(crate) data: Data,
    /// The group charged (the storing group, or its nearest online
    /// ancestor).
    pub(crate) group: GroupId,
    pub(crate) node: NodeId,
    /// Second chance: set on store, cleared (with a rotation) by the
    /// shrinker before it writes the entry back.
    pub(crate) referenced: AtomicBool,
    /// Set by the remover before it unlinks the entry, so that a shrinker
    /// putting back an entry it could not pin can tell it raced with the
    /// entry's removal and take it off again (`putback_busy` in reclaim.rs).
    pub(crate) dead: AtomicBool,
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
        matches!(
            self,
            Data::Stored {
                incompressible: true,
                ..
            }
        )
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
