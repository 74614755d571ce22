//! The kernel's zswap debugfs counters, as atomics and as a plain snapshot.

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of every counter the kernel's zswap exports in debugfs.
/// Gauges (`pool_total_size`, `stored_pages`, `stored_incompressible_pages`,
/// `same_filled_pages`) are current values; the rest count events.
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, Zswap, ZswapConfig};
/// let zswap = Zswap::new(ZswapConfig::default(), &Groups::new())?;
/// zswap.swapon(Box::new(MemDevice::new(8)))?;
/// zswap.swap_out(&[0u8; 4096], GroupId::ROOT)?; // same-filled: one word
/// let page: Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
/// zswap.swap_out(&page, GroupId::ROOT)?;
/// let s = zswap.stats();
/// assert_eq!((s.stored_pages, s.same_filled_pages), (2, 1));
/// assert!(s.pool_total_size > 0);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZswapStats {
    /// Stores rejected because the pool was at its limit.
    pub pool_limit_hit: u64,
    /// Writebacks that failed (slot busy, device error).
    pub reject_reclaim_fail: u64,
    /// Stores rejected because the pool could not get memory.
    pub reject_alloc_fail: u64,
    /// Stores rejected because an entry could not be allocated (kept for
    /// parity with the kernel; this crate's entries come from the global
    /// allocator, whose failure aborts).
    pub reject_kmemcache_fail: u64,
    /// Stores rejected because the compressor failed.
    pub reject_compress_fail: u64,
    /// Stores rejected because the page did not compress and its group may
    /// not write back.
    pub reject_compress_poor: u64,
    /// Loads or writebacks whose data failed to decompress.
    pub decompress_fail: u64,
    /// Pages written back to a swap device.
    pub written_back_pages: u64,
    /// Bytes the pools hold from the system.
    pub pool_total_size: u64,
    /// Entries stored now.
    pub stored_pages: u64,
    /// Entries stored uncompressed now.
    pub stored_incompressible_pages: u64,
    /// Same-filled entries stored now.
    pub same_filled_pages: u64,
    /// Stores that replaced an entry already at their slot.
    pub duplicate_entry: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) pool_limit_hit: AtomicU64,
    pub(crate) reject_reclaim_fail: AtomicU64,
    pub(crate) reject_alloc_fail: AtomicU64,
    pub(crate) reject_compress_fail: AtomicU64,
    pub(crate) reject_compress_poor: AtomicU64,
    pub(crate) decompress_fail: AtomicU64,
    pub(crate) written_back_pages: AtomicU64,
    pub(crate) stored_pages: AtomicU64,
    pub(crate) stored_incompressible_pages: AtomicU64,
    pub(crate) same_filled_pages: AtomicU64,
    pub(crate) duplicate_entry: AtomicU64,
}

/// Adds one.
pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Takes one away (gauges only; never below zero): one atomic operation,
/// repaired as the groups' uncharge repairs its counters.
pub(crate) fn dec(c: &AtomicU64) {
    crate::group::sub_saturating(c, 1);
}

impl Counters {
    pub(crate) fn snapshot(&self, pool_total_size: u64) -> ZswapStats {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ZswapStats {
            pool_limit_hit: r(&self.pool_limit_hit),
            reject_reclaim_fail: r(&self.reject_reclaim_fail),
            reject_alloc_fail: r(&self.reject_alloc_fail),
            reject_kmemcache_fail: 0,
            reject_compress_fail: r(&self.reject_compress_fail),
            reject_compress_poor: r(&self.reject_compress_poor),
            decompress_fail: r(&self.decompress_fail),
            written_back_pages: r(&self.written_back_pages),
            pool_total_size,
            stored_pages: r(&self.stored_pages),
            stored_incompressible_pages: r(&self.stored_incompressible_pages),
            same_filled_pages: r(&self.same_filled_pages),
            duplicate_entry: r(&self.duplicate_entry),
        }
    }
}
