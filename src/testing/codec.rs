//! The `decompress_*` fuzz targets' body: one codec decoding arbitrary
//! bytes must return an error or a full page, never panic, never write past
//! the page.

use crate::Compressor;

const GUARD: u8 = 0xA5;

/// Decodes `data` with the codec called `name` into a 4096-byte page (or a
/// 256-byte one, when the first byte is odd) followed by guard bytes; panics
/// if the codec wrote past the page. Returns false if the codec is not in
/// this build.
pub fn run_decompress(name: &str, data: &[u8]) -> bool {
    let Ok(c) = Compressor::by_name(name) else {
        return false;
    };
    let page = if data.first().is_some_and(|b| b % 2 == 1) {
        256
    } else {
        4096
    };
    let mut buf = vec![GUARD; page + 64];
    let r = c.decompress(data, &mut buf[..page]);
    assert!(
        buf[page..].iter().all(|&b| b == GUARD),
        "{name} wrote past the page"
    );
    if r.is_ok() {
        // A page that decodes must re-encode and decode to itself.
        let mut packed = vec![0u8; page * 2 + 64];
        let n = c
            .compress(&buf[..page], &mut packed)
            .expect("room for any page");
        let mut back = vec![0u8; page];
        c.decompress(&packed[..n], &mut back)
            .expect("own output decodes");
        assert_eq!(back, &buf[..page], "{name} round trip");
    }
    true
}
