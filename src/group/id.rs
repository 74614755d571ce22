//! A group's name and state: [`GroupId`], an index with the generation
//! that makes a freed group's id stale rather than another tenant's, and
//! [`GroupState`], where a group is in its life cycle.

use std::fmt;

/// A tenant group's id: its index among the groups live at once and that
/// index's generation. [`GroupId::ROOT`] always exists. An index is reused
/// once its group is freed, under the next generation, so an id of a freed
/// group is refused ([`Error::UnknownGroup`](crate::Error::UnknownGroup))
/// everywhere.
///
/// ```
/// use zswap::{GroupId, Groups};
/// let groups = Groups::new();
/// let g = groups.create(GroupId::ROOT)?;
/// assert_eq!(GroupId::from_raw(g.as_u64()), g); // round-trips through a u64
/// groups.offline(g)?; // freed: nothing refers to it
/// let h = groups.create(GroupId::ROOT)?;
/// assert_eq!(h.index(), g.index()); // the index is reused...
/// assert_ne!(h, g); // ...under the next generation
/// assert!(groups.stats(g).is_err()); // so the stale id is refused
/// # Ok::<(), zswap::Error>(())
/// ```
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(u64);

impl GroupId {
    /// The root group.
    pub const ROOT: GroupId = GroupId(0);

    /// The id with raw value `raw` (see [`as_u64`](Self::as_u64)); whether
    /// such a group exists is checked where it is used.
    pub const fn from_raw(raw: u64) -> GroupId {
        GroupId(raw)
    }

    /// The raw value: the generation in the high 32 bits, the index in the
    /// low 32.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Group `index` of generation `gen`.
    pub(crate) const fn new(index: u32, gen: u32) -> GroupId {
        GroupId((gen as u64) << 32 | index as u64)
    }

    /// The index among the live groups (per-group tables are indexed by it).
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as u32 as usize
    }

    /// The generation of the index.
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.generation() {
            0 => write!(f, "group{}", self.index()),
            g => write!(f, "group{}.{g}", self.index()),
        }
    }
}

/// A group's life cycle.
///
/// ```
/// use zswap::{GroupId, GroupState, Groups, MemDevice, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let g = groups.create(GroupId::ROOT)?;
/// let zswap = Zswap::new(ZswapConfig::default(), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(4)))?;
/// assert_eq!(groups.state(g)?, GroupState::Online);
/// let slot = zswap.swap_out(&[1u8; 4096], g)?;
/// groups.offline(g)?;
/// assert_eq!(groups.state(g)?, GroupState::Offline); // its page refers to it
/// zswap.free(slot)?;
/// assert!(groups.state(g).is_err()); // the last reference went: freed
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// Usable.
    Online,
    /// `offline` is reparenting it; nothing new lands on its lists.
    Dying,
    /// Reparented; its record and counters remain until nothing refers
    /// to it (a charged entry, a child), then it is freed.
    Offline,
}
