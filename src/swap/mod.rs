//! The swap layer zswap sits in front of: areas of slots with swap-cache
//! pins ([`SwapArea`]) and the devices written-back pages go to
//! ([`SwapDevice`]: a file, memory, or either with checksums).

mod area;
mod checksum;
mod cluster;
mod device;
mod id;

pub use area::{SlotPin, SwapArea};
pub use checksum::Checksummed;
pub(crate) use device::AlignedPage;
pub use device::{FileDevice, MemDevice, SwapDevice};
pub use id::{AreaId, SwapSlot};
