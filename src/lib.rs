//! # zswap
//!
//! The Linux kernel's memcg- and NUMA-aware `list_lru` and its zswap
//! compressed page cache, in user space.
//!
//! The foundation:
//! - [`Groups`]: the tenant tree (the memcg analogue), with the hierarchical
//!   `zswap_max` / `zswap_writeback` settings, memory.stat-style counters,
//!   offline with reparenting, and a [`RoundRobin`] reclaim cursor.
//! - [`ListLru<T>`]: one list per (NUMA node, group), with walk callbacks
//!   that isolate, rotate, skip, retry or stop ([`LruStatus`]), `putback`,
//!   exact lock-free counts, lazily made per-group lists, and reparenting.
//! - [`Topology`]: the NUMA nodes, read from sysfs, and the caller's node.
//!
//! The object store:
//! - [`Compressor`]: lz4, zstd, deflate or none, chosen by name at run time.
//! - [`ZsPool`]: a zsmalloc-like allocator: size classes, movable
//!   [`Handle`]s, compaction, footprint accounting.
//!
//! The swap layer: [`SwapArea`] (slots and swap-cache pins) and
//! [`SwapDevice`] ([`FileDevice`], [`MemDevice`], [`Checksummed`]). The
//! zswap facade, [`Zswap`], builds on all of these.
//!
//! Reclaim under pressure: [`Zswap::shrinker_count`] and
//! [`Zswap::shrinker_scan`] (the kernel's pressure shrinker, with disk
//! swap-in protection), [`Zswap::reclaim`] (`memory.reclaim`), and a
//! [`Controller`] that keeps PSI ([`PsiFile`]) near a target, as senpai
//! does.
//!
//! ## Loom
//!
//! Built with `RUSTFLAGS="--cfg loom"`, every lock, atomic and cell in this
//! crate is loom's (see `src/sync.rs`), so a downstream crate's loom models
//! that call into `zswap` check our synchronization together with theirs.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod error;
mod group;
mod lru;
mod numa;
mod pressure;
mod store;
mod swap;
mod sync;
mod table;
mod zswap;

#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod testing;

/// The page size zswap stores, loads and writes back.
pub const PAGE_SIZE: usize = 4096;

pub use error::{Error, IoError};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
pub(crate) use group::GroupEvent;
pub use group::{GroupId, GroupState, GroupStats, Groups, PreOrder, RoundRobin};
pub use lru::{Del, Item, ListLru, LruStatus, Scan, WalkGuard};
pub use numa::{current_node, NodeId, Topology, MAX_NUMNODES, NODE_ONLINE_PATH};
#[cfg(not(loom))]
pub use pressure::ControllerThread;
pub use pressure::{
    ControlStep, Controller, ControllerConfig, PressureSource, Psi, PsiFile, PsiLine, Reclaimer,
    SYSTEM_MEMORY_PSI,
};
pub use store::{
    ClassStats, Compressor, Handle, PoolConfig, PoolStats, ZsPool, ALIGN, DEFLATE_DEFAULT_LEVEL,
    ZSTD_DEFAULT_LEVEL,
};
pub use swap::{
    AreaId, Checksummed, FileDevice, MemDevice, SlotPin, SwapArea, SwapDevice, SwapSlot,
};
pub use zswap::{
    total_memory, LruPolicy, PoolLimit, ShrinkResult, ShrinkerScan, SwapSource, WorkerPolicy,
    Zswap, ZswapConfig, ZswapStats,
};

/// Compile-time checks that the types programs share between threads are
/// `Send + Sync` (an accidental `Rc` or `Cell` inside fails the build).
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Zswap>();
    send_sync::<Groups>();
    send_sync::<ZsPool>();
    send_sync::<RoundRobin>();
    send_sync::<Item<u64>>();
};

/// `ListLru<T>` is `Send + Sync` for every `T: Send + Sync`.
#[allow(dead_code)]
const fn list_lru_is_send_sync<T: Send + Sync>() {
    const fn send_sync<U: Send + Sync>() {}
    send_sync::<ListLru<T>>();
}
