//! The swap layer zswap sits in front of: areas of slots with swap-cache
//! pins ([`SwapArea`]) and the devices written-back pages go to
//! ([`SwapDevice`]: a file, memory, or either with checksums).

mod area;
mod device;

pub use area::{AreaId, SlotPin, SwapArea, SwapSlot};
pub(crate) use device::AlignedPage;
pub use device::{Checksummed, FileDevice, MemDevice, SwapDevice};
