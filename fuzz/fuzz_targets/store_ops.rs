//! ZsPool operation sequences against the handle → bytes model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zswap::testing::store_model::run_bytes(data));
