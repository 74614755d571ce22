//! ListLru operation sequences against the sequential model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zswap::testing::lru_model::run_bytes(data));
