//! The crate's one error type: every bad input gets a variant, never a panic.

use std::fmt;

use crate::sync::unmodeled::Arc;
use crate::{AreaId, GroupId, NodeId, SwapSlot};

/// An I/O error of a swap device, kept whole (it is [`Error::Io`]'s
/// `source()`), with what the device was doing. Shared, so that [`Error`]
/// stays `Clone`; two are equal when their kinds and messages are.
///
/// ```
/// use zswap::{Error, FileDevice};
/// let err = FileDevice::create("/no/such/dir/swap", 16).unwrap_err();
/// let Error::Io(io) = &err else { panic!("{err}") };
/// assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
/// // The `io::Error` is kept whole, as the error's source.
/// let source = std::error::Error::source(&err).unwrap();
/// assert!(source.to_string().contains("No such file"));
/// ```
#[derive(Clone, Debug)]
pub struct IoError {
    context: Option<Arc<str>>,
    error: Arc<std::io::Error>,
}

impl IoError {
    /// An error of `kind` with message `msg` (no OS error behind it).
    pub(crate) fn new(kind: std::io::ErrorKind, msg: impl Into<String>) -> Self {
        std::io::Error::new(kind, msg.into()).into()
    }

    /// `error`, met while doing `context` (a path, say).
    pub(crate) fn with_context(context: impl Into<String>, error: std::io::Error) -> Self {
        IoError {
            context: Some(context.into().into()),
            error: Arc::new(error),
        }
    }

    /// The kind of the underlying error.
    pub fn kind(&self) -> std::io::ErrorKind {
        self.error.kind()
    }

    /// The underlying error.
    pub fn io_error(&self) -> &std::io::Error {
        &self.error
    }
}

impl From<std::io::Error> for IoError {
    fn from(error: std::io::Error) -> Self {
        IoError {
            context: None,
            error: Arc::new(error),
        }
    }
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.context {
            Some(c) => write!(f, "{c}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.to_string() == other.to_string()
    }
}

impl Eq for IoError {}

/// Why an operation was refused. Nothing stored is lost when one is returned.
///
/// ```
/// use zswap::{Error, GroupId, Groups};
/// let groups = Groups::new();
/// let g = groups.create(GroupId::ROOT)?;
/// groups.offline(g)?; // nothing refers to it: freed at once
/// assert_eq!(groups.create(g), Err(Error::UnknownGroup(g)));
/// assert_eq!(groups.offline(GroupId::ROOT), Err(Error::RootGroup));
/// # Ok::<(), Error>(())
/// ```
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
    /// A known compressor given a level it does not take: out of its
    /// range, not a number, or any level for one that has none.
    CompressorLevel {
        /// The compressor's name.
        compressor: &'static str,
        /// The level given.
        level: String,
        /// The levels it takes (inclusive); `None` if it takes none.
        levels: Option<(i32, i32)>,
    },
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
    /// The swap device failed; the I/O error is this error's `source()`.
    Io(IoError),
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
    /// A pressure-stall (PSI) file could not be read or parsed.
    Pressure {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
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
            Error::CompressorLevel {
                compressor,
                level,
                levels: Some((lo, hi)),
            } => write!(
                f,
                "{compressor} takes a level from {lo} to {hi}, not {level:?}"
            ),
            Error::CompressorLevel {
                compressor, level, ..
            } => write!(f, "{compressor} takes no level (got {level:?})"),
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
            Error::Io(e) => write!(f, "swap device: {e}"),
            Error::Corrupt(o) => write!(f, "swap device page {o} fails its checksum"),
            Error::UnknownArea(a) => write!(f, "no swap area {a}"),
            Error::AreaBusy(a) => write!(f, "swap area {a} still has slots in use"),
            Error::SwapFull => f.write_str("no free swap slot"),
            Error::Rejected => f.write_str("zswap rejected the page and writeback is disabled"),
            Error::Pressure { path, reason } => write!(f, "{path}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e.io_error()),
            _ => None,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn an_io_error_is_kept_whole_and_is_the_source() {
        let os = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let e = Error::Io(IoError::with_context("/tmp/swap", os));
        let Error::Io(io) = &e else { unreachable!() };
        assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(io.io_error().raw_os_error(), Some(libc::ENOSPC));
        let source = e.source().expect("the I/O error");
        assert!(source.to_string().contains("os error 28"), "{source}");
        assert!(e.to_string().starts_with("swap device: /tmp/swap: "), "{e}");
        // Clone and compare (the models compare results).
        assert_eq!(e.clone(), e);
        let other: Error = std::io::Error::other("injected").into();
        assert_ne!(e, other);
        assert!(Error::BadHandle.source().is_none());
    }
}
