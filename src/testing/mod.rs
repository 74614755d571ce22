//! Test harnesses shared by the proptest state machines, the fuzz targets
//! and the corpus replay in `tests/`. Not part of the public API: hidden
//! from the docs and free to change.

#![allow(missing_docs)]

#[cfg(not(loom))]
pub mod codec;
#[cfg(not(loom))]
pub mod faulty;
#[cfg(not(loom))]
pub mod lru_model;
#[cfg(not(loom))]
pub mod store_model;
#[cfg(not(loom))]
pub mod zswap_model;
