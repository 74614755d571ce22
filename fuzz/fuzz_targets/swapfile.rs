//! Corrupted swap-file bytes under a checksummed device: every swap-in
//! returns the page that went out or `Error::Corrupt`, never wrong data.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zswap::testing::swapfile::run_bytes(data));
