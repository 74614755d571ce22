//! Zswap facade operations (swap-out/in, limits, writeback settings, group
//! offline, shrinking, compressor switches) against the model's invariants.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zswap::testing::zswap_model::run_bytes(data));
