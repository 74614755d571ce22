//! NUMA nodes: the topology the lists are sharded by, and the caller's node.
//!
//! The kernel keeps one list per node so that reclaim on one node never walks
//! another node's memory; this module tells the rest of the crate how many
//! nodes there are and where the calling thread runs. The topology comes from
//! `/sys/devices/system/node/online` (a cpulist such as `0` or `0-1,3`); where
//! that file is absent or unreadable (containers, non-Linux systems) the
//! machine is one node, `0`. The current node comes from `getcpu(2)`. Every
//! API that takes a node also accepts any explicit [`NodeId`] below
//! [`Topology::nr_node_ids`], so callers and tests can shard as they like.

use std::fmt;

use crate::Error;

/// A NUMA node number, as the kernel numbers them.
///
/// ```
/// use zswap::{NodeId, Topology};
/// let topology = Topology::from_cpulist("0-1,3")?; // sysfs's node list
/// assert!(topology.is_online(NodeId(3)));
/// assert!(!topology.is_online(NodeId(2)));
/// assert_eq!(topology.nr_node_ids(), 4);
/// assert_eq!(NodeId::ZERO.index(), 0);
/// # Ok::<(), zswap::Error>(())
/// ```
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    /// Node 0, which every machine has.
    pub const ZERO: NodeId = NodeId(0);

    /// The node as an index into per-node arrays.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "node{}", self.0)
    }
}

/// Which nodes exist: the online set and `nr_node_ids` (highest node + 1).
///
/// ```
/// use zswap::{NodeId, Topology};
/// let t = Topology::from_cpulist("0-1,3").unwrap();
/// assert_eq!(t.nr_node_ids(), 4);
/// assert!(t.is_online(NodeId(3)) && !t.is_online(NodeId(2)));
/// assert_eq!(Topology::single().nr_node_ids(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    online: Vec<NodeId>,
}

/// Where Linux lists the online nodes.
pub const NODE_ONLINE_PATH: &str = "/sys/devices/system/node/online";

/// The most node ids a topology may span (the kernel's default NODES_SHIFT
/// maximum is 1024).
pub const MAX_NUMNODES: u32 = 1024;

impl Topology {
    /// One node, `0`.
    pub fn single() -> Self {
        Topology {
            online: vec![NodeId::ZERO],
        }
    }

    /// `n` nodes numbered `0..n` (at least one, at most [`MAX_NUMNODES`]).
    pub fn with_nodes(n: u32) -> Self {
        let n = n.clamp(1, MAX_NUMNODES);
        Topology {
            online: (0..n).map(NodeId).collect(),
        }
    }

    /// The machine's topology, read from [`NODE_ONLINE_PATH`]; one node when
    /// the file is absent or malformed.
    pub fn detect() -> Self {
        std::fs::read_to_string(NODE_ONLINE_PATH)
            .ok()
            .and_then(|s| Self::from_cpulist(&s).ok())
            .unwrap_or_else(Self::single)
    }

    /// Parses the kernel's list format (`0`, `0-3`, `0,2-3`).
    pub fn from_cpulist(list: &str) -> Result<Self, Error> {
        let bad = || Error::BadTopology(list.trim().to_owned());
        let mut online = Vec::new();
        for part in list.trim().split(',').filter(|p| !p.is_empty()) {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let lo: u32 = lo.trim().parse().map_err(|_| bad())?;
            let hi: u32 = hi.trim().parse().map_err(|_| bad())?;
            if lo > hi || hi >= MAX_NUMNODES {
                return Err(bad());
            }
            online.extend((lo..=hi).map(NodeId));
        }
        if online.is_empty() {
            return Err(bad());
        }
        online.sort_unstable();
        online.dedup();
        Ok(Topology { online })
    }

    /// The online nodes, ascending.
    pub fn online(&self) -> &[NodeId] {
        &self.online
    }

    /// Whether `node` is online.
    pub fn is_online(&self, node: NodeId) -> bool {
        self.online.binary_search(&node).is_ok()
    }

    /// Highest online node + 1: the length of per-node arrays.
    pub fn nr_node_ids(&self) -> usize {
        self.online.last().map_or(1, |n| n.index() + 1)
    }

    /// The node the calling thread runs on, when it is in this topology;
    /// otherwise the first online node.
    pub fn current_node(&self) -> NodeId {
        match current_node() {
            Some(n) if self.is_online(n) => n,
            _ => self.online[0],
        }
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::detect()
    }
}

/// The node the calling thread runs on now, by `getcpu(2)`; `None` where the
/// call is unavailable.
pub fn current_node() -> Option<NodeId> {
    #[cfg(target_os = "linux")]
    {
        let mut cpu: libc::c_uint = 0;
        let mut node: libc::c_uint = 0;
        // SAFETY: getcpu writes one `unsigned int` through each non-null
        // pointer, both of which point at live locals; the third argument
        // (the unused tcache) may be null.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_getcpu,
                &mut cpu as *mut libc::c_uint,
                &mut node as *mut libc::c_uint,
                std::ptr::null_mut::<libc::c_void>(),
            )
        };
        (rc == 0).then_some(NodeId(node))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_lists() {
        assert_eq!(
            Topology::from_cpulist("0\n").unwrap().online(),
            &[NodeId(0)]
        );
        assert_eq!(Topology::from_cpulist("0,2-3").unwrap().nr_node_ids(), 4);
        for bad in ["", "x", "3-1", "0-99999", "-", "1,,a"] {
            assert!(Topology::from_cpulist(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn detect_and_current_agree() {
        let t = Topology::detect();
        assert!(t.is_online(t.current_node()));
        assert!(t.nr_node_ids() >= 1);
    }
}
