//! The zstd decoder on arbitrary bytes: an error or a full page, never a
//! panic, never a write past the page.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    assert!(zswap::testing::codec::run_decompress("zstd", data));
});
