//! [`ZsPool`]: a zsmalloc-like allocator for compressed pages.
//!
//! Objects of 1 byte to one page are rounded up to 16 bytes and served from
//! size classes; each class packs equal slots into spans of 1–8 pages chosen
//! to waste least (`get_pages_per_zspage`, taking the shortest span within
//! 2 % of the best), and neighbouring sizes that pack alike share one
//! class; compaction may leave a class's last partly filled span shorter
//! (only as long as its objects need). A [`Handle`] is opaque and survives
//! compaction.
//!
//! What it guarantees:
//! - Locking is per class: nothing on alloc, write, read or free takes a
//!   lock shared by two classes, and the pool-wide footprint counter is only
//!   touched when a span is taken from or given back to the system.
//! - An object can always be read, even while compaction moves it: the move
//!   and the read take the same class lock, and the handle's entry is
//!   rewritten before the lock is released. zswap's objects are *placed*
//!   (crate-internal, `placed.rs`): the entry keeps the location, with no
//!   handle table between, and is read without the lock while decompressing,
//!   under the slot's pin that compaction needs to move it.
//! - [`ZsPool::footprint`] is the bytes of span memory holding objects,
//!   which is what limits are measured against, never the sum of object
//!   sizes; with nothing stored it is 0. Empty spans kept in the small
//!   per-class cache are [`ZsPool::cached_bytes`], given back by
//!   [`ZsPool::shrink_cache`].
//! - Bad input is a typed error: a zero or oversized length, a wrong-length
//!   write, a stale, forged or double-freed handle; nothing stored is lost.
//!   A handle's generation is 28 bits, freed ids are reused oldest first,
//!   and an id whose generation is spent is retired, so a stale handle
//!   never names a later object, however long the program runs.
//! - Metadata per object: its 8-byte handle entry (none for a placed
//!   object), plus its share of a 32-byte span record (spans keep nothing
//!   per slot; free slots link through their own memory);
//!   [`PoolStats::meta_bytes`] reports the total.

use std::fmt;
use std::num::NonZeroU64;

use super::class::{round_up, Class, Step};
use super::handle::{GEN_BITS, ID_BITS};
use super::span::class_table;
use crate::sync::{AtomicU64, AtomicUsize, LeakTracker, Ordering};
use crate::Error;

/// Allocation granularity: object sizes round up to this.
pub const ALIGN: usize = 16;

/// How a pool is shaped. Start from the default and set fields (the
/// struct may grow, so it is not built literally outside this crate):
///
/// ```
/// use zswap::{PoolConfig, ZsPool};
/// let mut cfg = PoolConfig::default();
/// cfg.max_span_pages = 1;
/// let pool = ZsPool::new(cfg)?;
/// assert_eq!(pool.config().max_span_pages, 1);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[non_exhaustive]
pub struct PoolConfig {
    /// The page size: the largest object, and the unit spans are made of.
    /// A power of two from 256 to 16384. Default 4096.
    pub page_size: usize,
    /// The longest span, in pages (1..=8). Default 8, as zsmalloc's
    /// default chain size; a class takes the shortest span whose packing is
    /// within 2 % of the best (see BENCHMARKS.md, "Footprint").
    pub max_span_pages: usize,
    /// Empty spans each class keeps for reuse instead of freeing at once
    /// (not counted in the footprint; see [`ZsPool::cached_bytes`]).
    /// Default 1.
    pub cached_spans_per_class: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            page_size: 4096,
            max_span_pages: 8,
            cached_spans_per_class: 1,
        }
    }
}

/// An opaque reference to an object in a [`ZsPool`]. Valid until freed;
/// compaction does not change it. Its 64 bits are the class (8), the
/// generation (28) and the id (28): see [`ZsPool`] for why a stale one is
/// always refused.
///
/// ```
/// use zswap::{Handle, PoolConfig, ZsPool};
/// let pool = ZsPool::new(PoolConfig::default())?;
/// let h = pool.insert(b"object")?;
/// let raw = h.to_raw(); // to keep in a u64 field
/// let back = Handle::from_raw(raw).unwrap();
/// assert_eq!(pool.read(back, |b| b.len())?, 6);
/// pool.free(back)?;
/// assert!(pool.read(h, |_| ()).is_err()); // stale: refused
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handle(NonZeroU64);

/// Where a handle's class (plus one) starts.
const CLASS_SHIFT: u32 = GEN_BITS + ID_BITS;
/// At most this many classes (the class field is 8 bits, 0 reserved).
const MAX_CLASSES: usize = 255;

impl Handle {
    fn new(class: usize, id: u32, gen: u32) -> Self {
        debug_assert!(class < MAX_CLASSES && id >> ID_BITS == 0 && gen >> GEN_BITS == 0);
        let raw = (class as u64 + 1) << CLASS_SHIFT | u64::from(gen) << ID_BITS | u64::from(id);
        Handle(NonZeroU64::new(raw).expect("class + 1 is never zero"))
    }

    /// (class, id, generation). A forged value with class field 0 gives a
    /// class index no pool has.
    fn parts(self) -> (usize, u32, u32) {
        let raw = self.0.get();
        let mask = |bits: u32| (1u64 << bits) - 1;
        (
            ((raw >> CLASS_SHIFT) as usize).wrapping_sub(1),
            (raw & mask(ID_BITS)) as u32,
            (raw >> ID_BITS & mask(GEN_BITS)) as u32,
        )
    }

    /// The raw value (for storing a handle compactly).
    pub fn to_raw(self) -> u64 {
        self.0.get()
    }

    /// A handle from [`to_raw`](Self::to_raw); any value is accepted, and a
    /// pool refuses one that names no live object.
    pub fn from_raw(raw: u64) -> Option<Self> {
        NonZeroU64::new(raw).map(Handle)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, id, gen) = self.parts();
        write!(f, "Handle(class {c}, id {id}, gen {gen})")
    }
}

/// One class's figures.
///
/// ```
/// use zswap::{PoolConfig, ZsPool};
/// let pool = ZsPool::new(PoolConfig::default())?;
/// for _ in 0..10 {
///     pool.insert(&[1u8; 1000])?;
/// }
/// let class = pool.class_stats().into_iter().find(|c| c.objects > 0).unwrap();
/// assert_eq!(class.objects, 10);
/// assert!(class.slot_size >= 1000);
/// assert!(class.fragmentation() < 0.9);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClassStats {
    /// Slot size in bytes.
    pub slot_size: usize,
    /// Pages per span.
    pub span_pages: usize,
    /// Slots per span.
    pub slots_per_span: usize,
    /// Live objects.
    pub objects: usize,
    /// Spans in use.
    pub spans: usize,
    /// Bytes of live objects (their own lengths).
    pub bytes_used: usize,
}

impl ClassStats {
    /// The share of the spans' bytes not holding object bytes (0..=1).
    pub fn fragmentation(&self) -> f64 {
        let held = self.spans * self.span_pages;
        if held == 0 {
            return 0.0;
        }
        let total = (self.spans * self.slots_per_span * self.slot_size) as f64;
        1.0 - self.bytes_used as f64 / total.max(1.0)
    }
}

/// Pool-wide figures.
///
/// ```
/// use zswap::{PoolConfig, ZsPool};
/// let pool = ZsPool::new(PoolConfig::default())?;
/// let h = pool.insert(&[1u8; 100])?;
/// let s = pool.stats();
/// assert_eq!((s.objects, s.bytes_used), (1, 100));
/// assert_eq!(s.footprint, pool.footprint());
/// pool.free(h)?;
/// assert_eq!(pool.stats().footprint, 0);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Bytes of span memory holding objects (what limits count).
    pub footprint: usize,
    /// Bytes of empty spans kept in the per-class caches.
    pub cached: usize,
    /// Live objects.
    pub objects: usize,
    /// Bytes of live objects.
    pub bytes_used: usize,
    /// Metadata bytes (handle tables, free id lists, span tables).
    pub meta_bytes: usize,
    /// Objects moved by compaction, ever.
    pub objects_compacted: u64,
    /// Spans given back by compaction, ever.
    pub spans_compacted: u64,
}

/// A zsmalloc-like allocator of objects up to one page.
///
/// ```
/// use zswap::{PoolConfig, ZsPool};
/// let pool = ZsPool::new(PoolConfig::default()).unwrap();
/// let h = pool.insert(b"compressed bytes").unwrap();
/// assert_eq!(pool.read(h, |b| b.to_vec()).unwrap(), b"compressed bytes");
/// assert_eq!(pool.footprint(), 4096); // one span of the 16-byte class
/// pool.free(h).unwrap();
/// assert!(pool.free(h).is_err()); // a double free is refused
/// assert_eq!(pool.footprint(), 0); // nothing stored, nothing counted...
/// assert_eq!(pool.shrink_cache(), 4096); // ...and the cached span goes back
/// ```
pub struct ZsPool {
    cfg: PoolConfig,
    pub(super) classes: Box<[Class]>,
    /// Class index per 16-byte size step.
    size_class: Box<[u16]>,
    pub(super) footprint: AtomicUsize,
    objects_compacted: AtomicU64,
    spans_compacted: AtomicU64,
    /// Live objects, under loom (see [`ZsPool::all_leaked`]).
    pub(super) objects: LeakTracker,
}

impl fmt::Debug for ZsPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZsPool")
            .field("cfg", &self.cfg)
            .field("classes", &self.classes.len())
            .field("footprint", &self.footprint())
            .finish()
    }
}

impl ZsPool {
    /// A pool shaped by `cfg`; [`Error::BadConfig`] if it is out of range.
    pub fn new(cfg: PoolConfig) -> Result<Self, Error> {
        let ok = cfg.page_size.is_power_of_two()
            && (256..=16384).contains(&cfg.page_size)
            && (1..=8).contains(&cfg.max_span_pages)
            && cfg.cached_spans_per_class <= 64;
        if !ok {
            return Err(Error::BadConfig(format!("{cfg:?}")));
        }
        let (packings, size_class) = class_table(cfg.page_size, cfg.max_span_pages);
        // At most 184 classes (16 KiB pages, 8-page spans): the handle's
        // class field always fits (a unit test in span.rs checks every shape).
        debug_assert!(packings.len() <= MAX_CLASSES);
        Ok(ZsPool {
            classes: packings
                .into_iter()
                .map(|p| Class::new(p, cfg.page_size, cfg.cached_spans_per_class))
                .collect(),
            size_class: size_class.into_boxed_slice(),
            cfg,
            footprint: AtomicUsize::new(0),
            objects_compacted: AtomicU64::new(0),
            spans_compacted: AtomicU64::new(0),
            objects: LeakTracker::new(),
        })
    }

    /// The pool's shape.
    pub fn config(&self) -> PoolConfig {
        self.cfg
    }

    pub(super) fn class_of_len(&self, len: usize) -> Result<usize, Error> {
        if len == 0 || len > self.cfg.page_size {
            return Err(Error::ObjectSize(len));
        }
        Ok(usize::from(self.size_class[round_up(len) / ALIGN - 1]))
    }

    fn class(&self, h: Handle) -> Result<(&Class, u32, u32), Error> {
        let (c, id, gen) = h.parts();
        let class = self.classes.get(c).ok_or(Error::BadHandle)?;
        Ok((class, id, gen))
    }

    /// Allocates an object of `len` bytes, zeroed until written.
    pub fn alloc(&self, len: usize) -> Result<Handle, Error> {
        let c = self.class_of_len(len)?;
        let (id, gen) = self.classes[c].alloc(len, None, &self.footprint)?;
        let h = Handle::new(c, id, gen);
        self.objects.track(h.to_raw());
        Ok(h)
    }

    /// Allocates an object holding `data`, in one lock hold.
    pub fn insert(&self, data: &[u8]) -> Result<Handle, Error> {
        let c = self.class_of_len(data.len())?;
        let (id, gen) = self.classes[c].alloc(data.len(), Some(data), &self.footprint)?;
        let h = Handle::new(c, id, gen);
        self.objects.track(h.to_raw());
        Ok(h)
    }

    /// Overwrites an object; `data` must have the object's length.
    pub fn write(&self, h: Handle, data: &[u8]) -> Result<(), Error> {
        let (class, id, gen) = self.class(h)?;
        class.write(id, gen, data)
    }

    /// Runs `f` on the object's bytes (zsmalloc's map). `f` runs under the
    /// object's class lock: keep it short (decompressing a page is fine) and
    /// do not call into this pool from it.
    pub fn read<R>(&self, h: Handle, f: impl FnOnce(&[u8]) -> R) -> Result<R, Error> {
        let (class, id, gen) = self.class(h)?;
        class.read(id, gen, f)
    }

    /// Copies the object into `buf`; returns its length.
    /// [`Error::ObjectSize`] if `buf` is too short.
    pub fn read_into(&self, h: Handle, buf: &mut [u8]) -> Result<usize, Error> {
        self.read(h, |b| {
            let out = buf.get_mut(..b.len()).ok_or(Error::ObjectSize(b.len()))?;
            out.copy_from_slice(b);
            Ok(b.len())
        })?
    }

    /// The object's length.
    pub fn len_of(&self, h: Handle) -> Result<usize, Error> {
        self.read(h, <[u8]>::len)
    }

    /// Frees an object; returns its length.
    pub fn free(&self, h: Handle) -> Result<usize, Error> {
        let (class, id, gen) = self.class(h)?;
        let len = class.free(id, gen, &self.footprint)?;
        self.objects.untrack(h.to_raw());
        Ok(len)
    }

    /// Declares every object still allocated leaked: under loom, each is
    /// reported as a leaked allocation at the end of the execution; free
    /// otherwise. For an owner that frees all it knows of before dropping
    /// the pool (zswap's `Drop`), so that what remains is what it lost.
    pub(crate) fn all_leaked(&self) {
        self.objects.all_leaked();
    }

    /// Compacts every class: moves objects out of the emptiest spans into
    /// the fullest and gives the emptied spans back (to the cache first,
    /// then the system). Each class's lock is released between spans, and a
    /// span being read is skipped, not the class; each class costs time
    /// linear in its objects and spans. Returns the bytes by which the
    /// footprint fell.
    pub fn compact(&self) -> usize {
        let before = self.footprint();
        for class in self.classes.iter() {
            self.count_compacted(class.compact(&self.footprint));
        }
        before.saturating_sub(self.footprint())
    }

    /// Adds one class's compaction to the pool's counts.
    pub(super) fn count_compacted(&self, step: Step) {
        self.objects_compacted
            .fetch_add(step.moved as u64, Ordering::Relaxed);
        self.spans_compacted
            .fetch_add(step.freed_spans as u64, Ordering::Relaxed);
    }

    /// Gives every cached empty span back to the system; returns the bytes.
    pub fn shrink_cache(&self) -> usize {
        self.classes.iter().map(Class::shrink_cache).sum()
    }

    /// Bytes of span memory holding objects: what limits are measured
    /// against. 0 when nothing is stored.
    pub fn footprint(&self) -> usize {
        self.footprint.load(Ordering::Relaxed)
    }

    /// Bytes of empty spans kept for reuse (at most
    /// [`PoolConfig::cached_spans_per_class`] per class), held from the
    /// system but holding nothing.
    pub fn cached_bytes(&self) -> usize {
        self.classes
            .iter()
            .map(|c| c.cached.load(Ordering::Relaxed))
            .sum()
    }

    /// Per-class figures, smallest class first.
    pub fn class_stats(&self) -> Vec<ClassStats> {
        self.classes
            .iter()
            .map(|c| ClassStats {
                slot_size: c.packing.slot,
                span_pages: c.packing.pages,
                slots_per_span: c.packing.slots,
                objects: c.objects.load(Ordering::Relaxed),
                spans: c.spans.load(Ordering::Relaxed),
                bytes_used: c.bytes_used.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Pool-wide figures.
    pub fn stats(&self) -> PoolStats {
        let mut s = PoolStats {
            footprint: self.footprint(),
            cached: self.cached_bytes(),
            objects_compacted: self.objects_compacted.load(Ordering::Relaxed),
            spans_compacted: self.spans_compacted.load(Ordering::Relaxed),
            ..PoolStats::default()
        };
        for c in self.classes.iter() {
            s.objects += c.objects.load(Ordering::Relaxed);
            s.bytes_used += c.bytes_used.load(Ordering::Relaxed);
            s.meta_bytes += c.meta.load(Ordering::Relaxed);
        }
        s
    }

    /// Span bytes holding objects, recounted under each class lock (for
    /// tests: equals [`footprint`](Self::footprint) at any quiescent point).
    #[doc(hidden)]
    pub fn recount_footprint(&self) -> usize {
        self.classes.iter().map(|c| c.span_bytes_held().0).sum()
    }

    /// Cached span bytes, recounted under each class lock (for tests:
    /// equals [`cached_bytes`](Self::cached_bytes) at any quiescent point).
    #[doc(hidden)]
    pub fn recount_cached(&self) -> usize {
        self.classes.iter().map(|c| c.span_bytes_held().1).sum()
    }
}
