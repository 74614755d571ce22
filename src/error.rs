//! The crate's one error type: every bad input gets a variant, never a panic.

use std::fmt;

use crate::{GroupId, NodeId};

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
        }
    }
}

impl std::error::Error for Error {}
