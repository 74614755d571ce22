//! Per-slot state, kept per cluster of slots and only while the cluster is
//! in use (the kernel's per-cluster swap table).
//!
//! A [`Cluster`] holds, for [`CLUSTER`] consecutive slots, each slot's state
//! byte (allocated, pinned, being freed, waiters), each slot's payload (for
//! zswap, the slot's index cell) and the cluster's free bitmap. It is made
//! when a slot of it is first allocated and dropped when its last slot is
//! released, so an area costs one published pointer and a two-byte free
//! count per cluster until pages are stored: 320 KiB for a 64 GiB device,
//! against 146 MiB for per-slot arrays of the whole device.
//!
//! [`ClusterMap`] owns the clusters. Its allocator state (which slots are
//! free, per-cluster free counts, the cursor) sits behind the area's
//! allocator lock; every cluster is published through an `ArcSwapOption`, so
//! the lock-free paths (pin, unpin, free) load it with a guard that keeps it
//! alive, and a cluster dropped meanwhile is freed when its last guard goes,
//! never under a reader. A reader that finds no cluster, or a cluster whose
//! slot state is 0, sees a free slot: exactly what it would have seen a
//! moment earlier.
//!
//! What it guarantees:
//! - A cluster exists while any of its slots is allocated or freed-while-
//!   pinned: the bit of such a slot is clear, and a cluster is dropped only
//!   when all its bits are set again, under the allocator lock.
//! - A slot is handed out only from a set bit, under the lock; its state
//!   byte is then written by the allocator alone (it was 0).

use crate::sync::{Arc, ArcSwapOption, AtomicU64, AtomicU8, Guard, Ordering};

/// Slots per cluster (the kernel's `SWAPFILE_CLUSTER`). Tiny under loom, so
/// a model's few slots span several clusters.
#[cfg(not(loom))]
pub(crate) const CLUSTER: usize = 512;
#[cfg(loom)]
pub(crate) const CLUSTER: usize = 4;

/// Free-bitmap words per cluster.
const WORDS: usize = CLUSTER.div_ceil(64);

/// The state of one cluster of slots.
pub(crate) struct Cluster<T> {
    /// Each slot's state byte (see `area.rs`).
    pub(crate) state: [AtomicU8; CLUSTER],
    /// Each slot's payload (zswap: its index cell).
    pub(crate) payload: [T; CLUSTER],
    /// Free slots (1 = free); read and written under the allocator lock
    /// only (atomics for interior mutability, not for ordering).
    free: [AtomicU64; WORDS],
}

impl<T: Default> Cluster<T> {
    /// A cluster of `len` usable slots, all free.
    fn new(len: usize) -> Self {
        Cluster {
            state: std::array::from_fn(|_| AtomicU8::new(0)),
            payload: std::array::from_fn(|_| T::default()),
            free: std::array::from_fn(|w| {
                let lo = w * 64;
                let n = len.saturating_sub(lo).min(64);
                AtomicU64::new(if n == 64 { u64::MAX } else { (1u64 << n) - 1 })
            }),
        }
    }
}

impl<T> Cluster<T> {
    /// Takes the lowest free slot; its index in the cluster.
    fn take_any(&self) -> Option<usize> {
        self.free.iter().enumerate().find_map(|(w, word)| {
            let bits = word.load(Ordering::Relaxed);
            (bits != 0).then(|| {
                let bit = bits.trailing_zeros() as usize;
                word.store(bits & !(1 << bit), Ordering::Relaxed);
                w * 64 + bit
            })
        })
    }

    /// Takes slot `i` if it is free.
    fn take(&self, i: usize) -> bool {
        let word = &self.free[i / 64];
        let bits = word.load(Ordering::Relaxed);
        word.store(bits & !(1 << (i % 64)), Ordering::Relaxed);
        bits & 1 << (i % 64) != 0
    }

    /// Marks slot `i` free.
    fn put(&self, i: usize) {
        let word = &self.free[i / 64];
        let bits = word.load(Ordering::Relaxed);
        debug_assert!(bits & 1 << (i % 64) == 0, "slot freed twice");
        word.store(bits | 1 << (i % 64), Ordering::Relaxed);
    }
}

/// A loaded cluster, kept alive while this lives.
pub(crate) type ClusterGuard<T> = Guard<Option<Arc<Cluster<T>>>>;

/// The clusters of one area: the published pointers (read without a lock)
/// and the allocator state (under the area's allocator lock, which the
/// `&mut Alloc` of the changing methods stands for).
pub(crate) struct ClusterMap<T> {
    slots: u32,
    clusters: Box<[ArcSwapOption<Cluster<T>>]>,
}

/// What the allocator lock protects.
pub(crate) struct Alloc {
    /// Free slots per cluster (every slot of a cluster not made yet).
    free_in: Box<[u16]>,
    /// The cluster allocation looks in first.
    cursor: usize,
    /// Free slots in all.
    pub(crate) free: usize,
}

impl<T: Default> ClusterMap<T> {
    /// The map of an area of `slots` slots (at least one), with no cluster
    /// made, and its allocator state.
    pub(crate) fn new(slots: u32) -> (Self, Alloc) {
        let n = (slots as usize).div_ceil(CLUSTER);
        let map = ClusterMap {
            slots,
            clusters: (0..n).map(|_| ArcSwapOption::empty()).collect(),
        };
        let alloc = Alloc {
            free_in: (0..n).map(|c| map.len_of(c) as u16).collect(),
            cursor: 0,
            free: slots as usize,
        };
        (map, alloc)
    }

    /// Cluster `c`, made (and published) if it does not exist yet.
    fn make(&self, c: usize, _alloc: &mut Alloc) -> ClusterGuard<T> {
        let guard = self.clusters[c].load();
        if guard.is_some() {
            return guard;
        }
        drop(guard);
        let fresh = Arc::new(Cluster::new(self.len_of(c)));
        self.clusters[c].swap(Some(fresh));
        self.clusters[c].load()
    }

    /// Allocates a free slot, in the cursor's cluster first; its offset.
    /// The slot's state byte is set to `allocated`.
    pub(crate) fn alloc(&self, alloc: &mut Alloc, allocated: u8) -> Option<u32> {
        if alloc.free == 0 {
            return None;
        }
        let n = self.clusters.len();
        let c = (0..n)
            .map(|i| (alloc.cursor + i) % n)
            .find(|&c| alloc.free_in[c] > 0)?;
        alloc.cursor = c;
        let guard = self.make(c, alloc);
        let cluster = guard.as_deref().expect("just made");
        let i = cluster.take_any().expect("the count said a slot is free");
        alloc.free_in[c] -= 1;
        alloc.free -= 1;
        let prev = cluster.state[i].swap(allocated, Ordering::AcqRel);
        debug_assert_eq!(prev, 0, "a free slot was in use");
        Some((c * CLUSTER + i) as u32)
    }

    /// Allocates slot `offset` (in range) if it is free.
    pub(crate) fn claim(&self, alloc: &mut Alloc, offset: u32, allocated: u8) -> bool {
        let (c, i) = split(offset);
        let guard = self.make(c, alloc);
        let cluster = guard.as_deref().expect("just made");
        if !cluster.take(i) {
            return false;
        }
        alloc.free_in[c] -= 1;
        alloc.free -= 1;
        let prev = cluster.state[i].swap(allocated, Ordering::AcqRel);
        debug_assert_eq!(prev, 0, "a free slot was in use");
        true
    }
}

impl<T> ClusterMap<T> {
    /// Usable slots of cluster `c` (the last one may be short).
    fn len_of(&self, c: usize) -> usize {
        (self.slots as usize - c * CLUSTER).min(CLUSTER)
    }

    /// The cluster of `offset` (in range), if it exists.
    #[inline]
    pub(crate) fn load(&self, offset: u32) -> ClusterGuard<T> {
        self.clusters[offset as usize / CLUSTER].load()
    }

    /// Gives slot `offset` back (its state byte is already 0); a cluster
    /// whose every slot is free again is dropped.
    pub(crate) fn put(&self, alloc: &mut Alloc, offset: u32) {
        let (c, i) = split(offset);
        let guard = self.clusters[c].load();
        let cluster = guard
            .as_deref()
            .expect("an allocated slot's cluster exists");
        cluster.put(i);
        alloc.free_in[c] += 1;
        alloc.free += 1;
        if usize::from(alloc.free_in[c]) == self.len_of(c) {
            // Readers holding it keep it until they let go.
            drop(self.clusters[c].swap(None));
        }
    }

    /// Calls `f` on the payload of every slot of every cluster that exists.
    pub(crate) fn for_each_payload(&self, mut f: impl FnMut(&T)) {
        for c in self.clusters.iter() {
            if let Some(cluster) = &*c.load() {
                cluster.payload.iter().for_each(&mut f);
            }
        }
    }

    /// Calls `f` with the offset and state byte of every slot of every
    /// cluster that exists.
    pub(crate) fn for_each_state(&self, mut f: impl FnMut(u32, &AtomicU8)) {
        for (c, cell) in self.clusters.iter().enumerate() {
            if let Some(cluster) = &*cell.load() {
                for (i, state) in cluster.state.iter().enumerate() {
                    f((c * CLUSTER + i) as u32, state);
                }
            }
        }
    }

    /// Clusters that exist now.
    pub(crate) fn live_clusters(&self) -> usize {
        self.clusters.iter().filter(|c| c.load().is_some()).count()
    }

    /// Heap bytes of the per-slot state now: the cluster table, the free
    /// counts and every cluster that exists.
    pub(crate) fn bytes(&self) -> usize {
        let table = std::mem::size_of_val(&*self.clusters) + self.clusters.len() * 2;
        table + self.live_clusters() * std::mem::size_of::<Cluster<T>>()
    }
}

/// (cluster, index in the cluster) of `offset`.
#[inline]
pub(crate) fn split(offset: u32) -> (usize, usize) {
    (offset as usize / CLUSTER, offset as usize % CLUSTER)
}
