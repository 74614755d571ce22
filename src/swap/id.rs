//! The names of swap slots: [`AreaId`] (an area's index among the live
//! areas, and that index's generation) and [`SwapSlot`] (an area and an
//! offset in it, the kernel's `swp_entry_t`).

use std::fmt;

/// An area of a [`Zswap`](crate::Zswap) instance: its index among the
/// areas live at once (at most [`AreaId::MAX_AREAS`]) and the generation of
/// that index. `swapoff` frees the index for a later `swapon`, under the
/// next generation, so a slot of the old area is refused
/// ([`Error::UnknownArea`](crate::Error::UnknownArea)) rather than read from the new one. Generations
/// are 24 bits and freed indexes are reused oldest first.
///
/// ```
/// use zswap::{Error, GroupId, Groups, MemDevice, Zswap, ZswapConfig};
/// let zswap = Zswap::new(ZswapConfig::default(), &Groups::new())?;
/// let old = zswap.swapon(Box::new(MemDevice::new(4)))?;
/// zswap.swapoff(old)?; // nothing allocated: the area goes
/// let new = zswap.swapon(Box::new(MemDevice::new(4)))?;
/// assert_eq!(new.index(), old.index()); // the index is reused...
/// assert_ne!(new, old); // ...under the next generation
/// assert_eq!(zswap.swapoff(old), Err(Error::UnknownArea(old)));
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct AreaId(u32);

impl AreaId {
    /// How many areas can be live at once (the kernel allows 32 swap
    /// files).
    pub const MAX_AREAS: usize = 256;
    /// Bits of the generation.
    const GEN_BITS: u32 = 24;

    /// Area `index`, generation 0: what a first `swapon` hands out, and an
    /// id for a [`SwapArea`](crate::SwapArea) used on its own.
    pub const fn new(index: u8) -> AreaId {
        AreaId(index as u32)
    }

    /// Area `index` of generation `gen` (its low 24 bits).
    pub(crate) const fn with_generation(index: u8, gen: u32) -> AreaId {
        AreaId(index as u32 | (gen & ((1 << Self::GEN_BITS) - 1)) << 8)
    }

    /// The index among the live areas.
    pub const fn index(self) -> usize {
        (self.0 & 0xff) as usize
    }

    /// The generation of the index.
    pub const fn generation(self) -> u32 {
        self.0 >> 8
    }
}

impl fmt::Display for AreaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.generation() {
            0 => write!(f, "{}", self.index()),
            g => write!(f, "{}.{g}", self.index()),
        }
    }
}

impl fmt::Debug for AreaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AreaId({self})")
    }
}

/// A swap slot: an area and an offset in it (the kernel's `swp_entry_t`).
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, SwapSlot, Zswap, ZswapConfig, NodeId};
/// let zswap = Zswap::new(ZswapConfig::default(), &Groups::new())?;
/// let area = zswap.swapon(Box::new(MemDevice::new(8)))?;
/// // Slots allocated by zswap...
/// let slot = zswap.swap_out(&[5u8; 4096], GroupId::ROOT)?;
/// assert_eq!(slot.area, area);
/// // ...or named by a caller that allocates its own (`store` at a slot).
/// let mine = SwapSlot { area, offset: 7 };
/// zswap.store(mine, &[6u8; 4096], GroupId::ROOT, NodeId::ZERO)?;
/// let mut page = [0u8; 4096];
/// assert!(zswap.load(mine, &mut page)?); // Ok(true): zswap held it
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SwapSlot {
    /// The area.
    pub area: AreaId,
    /// The slot's offset in the area, in pages.
    pub offset: u32,
}

impl fmt::Display for SwapSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.area, self.offset)
    }
}
