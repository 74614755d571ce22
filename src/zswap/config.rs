//! How a [`Zswap`](super::Zswap) is configured: the kernel's module
//! parameters (`compressor`, `max_pool_percent`, `accept_threshold_percent`,
//! `shrinker_enabled`, `same_filled_pages_enabled`), set with a builder,
//! and whether this crate's shrink worker runs on a thread of its own.

use crate::{Compressor, Error, Topology};

/// The global limit on the compressed pool's footprint.
///
/// ```
/// use zswap::PoolLimit;
/// assert_eq!(PoolLimit::Bytes(1 << 20).bytes(), 1 << 20);
/// let quarter = PoolLimit::Percent { percent: 25, of_bytes: 8 << 30 };
/// assert_eq!(quarter.bytes(), 2 << 30);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum PoolLimit {
    /// At most this many bytes.
    Bytes(u64),
    /// At most `percent` of `of_bytes` (the kernel's `max_pool_percent` of
    /// total RAM).
    Percent {
        /// The share, 0..=100.
        percent: u8,
        /// The memory size it is a share of.
        of_bytes: u64,
    },
}

impl PoolLimit {
    /// The limit in bytes.
    pub fn bytes(&self) -> u64 {
        match *self {
            PoolLimit::Bytes(b) => b,
            PoolLimit::Percent { percent, of_bytes } => {
                (u128::from(of_bytes) * u128::from(percent.min(100)) / 100) as u64
            }
        }
    }
}

/// The machine's physical memory, or 1 GiB where it cannot be read.
pub fn total_memory() -> u64 {
    // SAFETY: sysconf only reads system configuration.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        pages as u64 * size as u64
    } else {
        1 << 30
    }
}

/// Which lists zswap's entries live on, and so whose pages a group at its
/// limit writes back.
///
/// ```
/// use zswap::{LruPolicy, ZswapConfig};
/// // One list for everyone, as zswap before Linux 6.8, to compare against.
/// let cfg = ZswapConfig::default().lru_policy(LruPolicy::Global);
/// # let _ = cfg;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LruPolicy {
    /// One list per (node, group), as since Linux 6.8's memcg-aware zswap:
    /// a group at its `zswap_max` writes back its own coldest pages only.
    #[default]
    PerGroup,
    /// One list per node for everyone, as before memcg-aware zswap: a group
    /// at its limit writes back whatever is coldest, anyone's (counted in
    /// the victims' [`GroupStats::zswpwb_foreign`]). For comparison; the
    /// shrinker's `count`/`scan` then see the whole list under
    /// [`GroupId::ROOT`].
    ///
    /// [`GroupStats::zswpwb_foreign`]: crate::GroupStats::zswpwb_foreign
    /// [`GroupId::ROOT`]: crate::GroupId::ROOT
    Global,
}

/// How the shrink worker spreads its writeback over the groups when the
/// global limit is hit.
///
/// ```
/// use zswap::{WorkerPolicy, ZswapConfig};
/// // Spread the global limit's writeback by each group's list length.
/// let cfg = ZswapConfig::default().worker_policy(WorkerPolicy::Proportional);
/// # let _ = cfg;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerPolicy {
    /// The kernel's `shrink_worker`: one entry per node from each online
    /// group in turn, from a cursor kept across runs. Every group loses
    /// entries at the same rate, so a small group loses a larger share of
    /// what it keeps in zswap than a large one.
    #[default]
    RoundRobin,
    /// Beyond the kernel: each round writes back from every candidate
    /// group in proportion to its list's length (32 entries per group on
    /// average, at least one each), as the pressure shrinker's per-group
    /// counts would, so every group loses about the same share.
    Proportional,
}

/// A [`Zswap`](super::Zswap)'s configuration.
///
/// ```
/// use zswap::{Compressor, PoolLimit, ZswapConfig};
/// let cfg = ZswapConfig::default()
///     .compressor("deflate:3".parse::<Compressor>()?)
///     .max_pool(PoolLimit::Bytes(64 << 20))
///     .accept_threshold_percent(80)
///     .shrink_worker(false);
/// assert_eq!(cfg.max_pool_bytes(), 64 << 20);
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ZswapConfig {
    pub(crate) compressor: Compressor,
    pub(crate) max_pool: PoolLimit,
    pub(crate) accept_threshold_percent: u8,
    pub(crate) shrink_worker: bool,
    pub(crate) shrinker_enabled: bool,
    pub(crate) swapin_protection: bool,
    pub(crate) same_filled_pages: bool,
    pub(crate) topology: Topology,
    pub(crate) lru_policy: LruPolicy,
    pub(crate) worker_policy: WorkerPolicy,
}

impl Default for ZswapConfig {
    /// lz4, 20% of physical memory, accept threshold 90%, shrink worker on,
    /// same-filled pages on, the machine's NUMA topology.
    fn default() -> Self {
        ZswapConfig {
            compressor: Compressor::lz4(),
            max_pool: PoolLimit::Percent {
                percent: 20,
                of_bytes: total_memory(),
            },
            accept_threshold_percent: 90,
            shrink_worker: true,
            shrinker_enabled: true,
            swapin_protection: true,
            same_filled_pages: true,
            topology: Topology::detect(),
            lru_policy: LruPolicy::PerGroup,
            worker_policy: WorkerPolicy::RoundRobin,
        }
    }
}

impl ZswapConfig {
    /// The compressor of new stores; a name parses into one
    /// (`"zstd:3".parse()?`, see [`Compressor::by_name`]).
    pub fn compressor(mut self, compressor: Compressor) -> Self {
        self.compressor = compressor;
        self
    }

    /// The global pool limit.
    pub fn max_pool(mut self, limit: PoolLimit) -> Self {
        self.max_pool = limit;
        self
    }

    /// Once full, accept stores again only under this share of the limit.
    pub fn accept_threshold_percent(mut self, percent: u8) -> Self {
        self.accept_threshold_percent = percent;
        self
    }

    /// Whether the shrink worker (the kernel's `shrink_worker`, which
    /// writes back round-robin when the global limit is hit) runs on a
    /// thread of its own, woken by stores. Off: nothing runs in the
    /// background, and the caller runs
    /// [`Zswap::shrink_worker_pass`](crate::Zswap::shrink_worker_pass)
    /// when [`Zswap::take_shrink_request`](crate::Zswap::take_shrink_request)
    /// says a store asked for it (deterministic, as a simulator wants).
    pub fn shrink_worker(mut self, threaded: bool) -> Self {
        self.shrink_worker = threaded;
        self
    }

    /// The kernel's `shrinker_enabled` module parameter: whether the
    /// pressure shrinker ([`Zswap::shrinker_count`] and
    /// [`Zswap::shrinker_scan`]) offers and writes back entries. On by
    /// default here, since nothing calls them but the program (the
    /// kernel's default is off because its shrinker runs under every
    /// reclaim). Changeable later with
    /// [`Zswap::set_shrinker_enabled`](crate::Zswap::set_shrinker_enabled).
    ///
    /// [`Zswap::shrinker_count`]: crate::Zswap::shrinker_count
    /// [`Zswap::shrinker_scan`]: crate::Zswap::shrinker_scan
    pub fn shrinker_enabled(mut self, enabled: bool) -> Self {
        self.shrinker_enabled = enabled;
        self
    }

    /// Whether same-filled pages are kept as one word.
    pub fn same_filled_pages(mut self, enabled: bool) -> Self {
        self.same_filled_pages = enabled;
        self
    }

    /// The NUMA topology the LRU is sharded by.
    pub fn topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// Per-group lists (the default) or one list for everyone.
    pub fn lru_policy(mut self, policy: LruPolicy) -> Self {
        self.lru_policy = policy;
        self
    }

    /// Whether [`Zswap::shrinker_count`](crate::Zswap::shrinker_count)
    /// takes the group's disk swap-ins off what it offers (on, as the
    /// kernel since 6.12). Off, for comparison: the count is the list's
    /// length scaled by the ratio, and pages that keep coming back from
    /// disk are written back again as readily as any.
    pub fn swapin_protection(mut self, enabled: bool) -> Self {
        self.swapin_protection = enabled;
        self
    }

    /// How the shrink worker spreads writeback over the groups
    /// (round-robin, as the kernel, by default).
    pub fn worker_policy(mut self, policy: WorkerPolicy) -> Self {
        self.worker_policy = policy;
        self
    }

    /// The limit in bytes.
    pub fn max_pool_bytes(&self) -> u64 {
        self.max_pool.bytes()
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.accept_threshold_percent > 100 {
            return Err(Error::BadConfig(format!(
                "accept_threshold_percent {}",
                self.accept_threshold_percent
            )));
        }
        if let PoolLimit::Percent { percent, .. } = self.max_pool {
            if percent > 100 {
                return Err(Error::BadConfig(format!("max_pool_percent {percent}")));
            }
        }
        Ok(())
    }
}
