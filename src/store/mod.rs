//! The compressed object store: run-time chosen compressors ([`Compressor`])
//! and a zsmalloc-like allocator ([`ZsPool`]) whose spans, size classes and
//! compaction live in `span.rs`, `class.rs` (with its handle table's
//! format in `handle.rs`) and `compact.rs`.

mod class;
mod codec;
mod compact;
mod handle;
#[cfg(not(loom))]
pub(crate) mod heap;
mod placed;
mod pool;
mod span;

pub use codec::{Compressor, DEFLATE_DEFAULT_LEVEL, ZSTD_DEFAULT_LEVEL};
pub(crate) use placed::{Loc, Owners, Placed};
pub use pool::{ClassStats, Handle, PoolConfig, PoolStats, ZsPool, ALIGN};

use span::Packing;
