//! The crate's one error type: every bad input gets a variant, never a panic.

use std::fmt;

use crate::{AreaId, GroupId, NodeId, SwapSlot};

/// Why an operation was refused. Nothing stored is lost when one is returned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No group with this id was ever created.
    UnknownGroup(GroupId),
    /// The group is offline (or going offline).
    GroupOffline(GroupId),
    /// The operation is not allowed on the root group.
    RootGroup,
    /// The group still has an online child (as `rmdir` of a busy cgroup).
    HasOnlineChildren(GroupId),
    /// Every group id has been handed out.
    TooManyGroups,
    /// The node is not below `nr_nodes`.
    NodeOutOfRange {
        /// The node asked for.
        node: NodeId,
        /// How many nodes the structure has.
        nr_nodes: usize,
    },
    /// A node list (`0-3,5`) could not be parsed.
    BadTopology(String),
    /// The item belongs to another `ListLru`.
    ForeignItem,
    /// No compressor by this name in this build.
    UnknownCompressor(String),
    /// The compressed form does not fit the space allowed (the kernel's
    /// `reject_compress_poor`).
    CompressPoor,
    /// The compressor failed (`reject_compress_fail`).
    CompressFail,
    /// The bytes are not a valid compressed page for this codec
    /// (`decompress_fail`).
    Decompress(&'static str),
    /// The pool could not get memory from the system (`reject_alloc_fail`).
    AllocFail,
    /// The handle names no live object (stale, forged or freed).
    BadHandle,
    /// An object length outside 1..=page size, or a write of the wrong
    /// length.
    ObjectSize(usize),
    /// A configuration value is out of range.
    BadConfig(String),
    /// The slot's offset is beyond its area.
    SlotOutOfRange(SwapSlot),
    /// The slot is not allocated (never, or already freed).
    SlotNotAllocated(SwapSlot),
    /// A page buffer of the wrong length (pages are [`PAGE_SIZE`] bytes).
    ///
    /// [`PAGE_SIZE`]: crate::PAGE_SIZE
    PageSize(usize),
    /// The swap device failed.
    Io {
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
        /// Its message.
        msg: String,
    },
    /// A page read from the device does not match its checksum.
    Corrupt(u64),
    /// No swapped-on area has this id (never swapped on, swapped off, or
    /// an older generation of a reused index).
    UnknownArea(AreaId),
    /// The area still has allocated slots.
    AreaBusy(AreaId),
    /// Every slot of every area is in use.
    SwapFull,
    /// zswap rejected the page and its group may not write back.
    Rejected,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::UnknownGroup(g) => write!(f, "unknown group {g}"),
            Error::GroupOffline(g) => write!(f, "{g} is offline"),
            Error::RootGroup => f.write_str("not allowed on the root group"),
            Error::HasOnlineChildren(g) => write!(f, "{g} has online children"),
            Error::TooManyGroups => f.write_str("group ids exhausted"),
            Error::NodeOutOfRange { node, nr_nodes } => {
                write!(f, "{node} out of range (the lru has {nr_nodes} nodes)")
            }
            Error::BadTopology(s) => write!(f, "malformed node list {s:?}"),
            Error::ForeignItem => f.write_str("item belongs to another ListLru"),
            Error::UnknownCompressor(n) => write!(f, "unknown compressor {n:?}"),
            Error::CompressPoor => f.write_str("compressed data does not fit"),
            Error::CompressFail => f.write_str("compressor failed"),
            Error::Decompress(c) => write!(f, "{c}: corrupt compressed data"),
            Error::AllocFail => f.write_str("out of memory for the pool"),
            Error::BadHandle => f.write_str("handle names no live object"),
            Error::ObjectSize(n) => write!(f, "object length {n} not allowed here"),
            Error::BadConfig(c) => write!(f, "configuration out of range: {c}"),
            Error::SlotOutOfRange(s) => write!(f, "swap slot {s} out of range"),
            Error::SlotNotAllocated(s) => write!(f, "swap slot {s} is not allocated"),
            Error::PageSize(n) => write!(f, "page buffer of {n} bytes, not {}", crate::PAGE_SIZE),
            Error::Io { kind, msg } => write!(f, "swap device: {kind:?}: {msg}"),
            Error::Corrupt(o) => write!(f, "swap device page {o} fails its checksum"),
            Error::UnknownArea(a) => write!(f, "no swap area {a}"),
            Error::AreaBusy(a) => write!(f, "swap area {a} still has slots in use"),
            Error::SwapFull => f.write_str("no free swap slot"),
            Error::Rejected => f.write_str("zswap rejected the page and writeback is disabled"),
        }
    }
}

impl std::error::Error for Error {}
