use super::*;

fn pages() -> Vec<(&'static str, Vec<u8>)> {
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut random = vec![0u8; 4096];
    for b in random.iter_mut() {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        *b = rng as u8;
    }
    let text: Vec<u8> = b"the quick brown fox jumps over the lazy dog; "
        .iter()
        .copied()
        .cycle()
        .take(4096)
        .collect();
    let mut half = vec![0u8; 4096];
    half[..2048].copy_from_slice(&random[..2048]);
    vec![
        ("zero", vec![0; 4096]),
        ("text", text),
        ("half", half),
        ("random", random),
    ]
}

fn all() -> Vec<Compressor> {
    Compressor::names()
        .iter()
        .map(|n| Compressor::by_name(n).unwrap())
        .chain([
            Compressor::by_name("deflate:1").unwrap(),
            #[cfg(feature = "zstd")]
            Compressor::by_name("zstd:-3").unwrap(),
        ])
        .collect()
}

#[test]
fn round_trips_and_rejects_poor_pages() {
    for c in all() {
        for (what, page) in pages() {
            let mut buf = vec![0u8; 4096];
            match c.compress(&page, &mut buf[..4095]) {
                Ok(n) => {
                    let mut back = vec![0u8; 4096];
                    c.decompress(&buf[..n], &mut back).unwrap();
                    assert_eq!(back, page, "{c} {what}");
                    assert!(
                        what != "random" || c == Compressor::None,
                        "{c} squeezed random data"
                    );
                }
                Err(Error::CompressPoor) => {
                    assert!(
                        what == "random" || c == Compressor::None,
                        "{c} {what} was poor"
                    );
                }
                Err(e) => panic!("{c} {what}: {e}"),
            }
        }
    }
}

#[test]
fn names_and_levels() {
    for n in Compressor::names() {
        assert!(Compressor::by_name(n).is_ok(), "{n}");
    }
    assert_eq!(
        Compressor::by_name("deflate:9").unwrap(),
        Compressor::Deflate { level: 9 }
    );
    assert_eq!(
        Compressor::by_name(" LZ4-flex ").unwrap(),
        Compressor::Lz4Flex
    );
    for bad in ["", "brotli", "zstd-ish:3"] {
        assert_eq!(
            Compressor::by_name(bad),
            Err(Error::UnknownCompressor(bad.to_owned())),
            "{bad}"
        );
    }
    // A known compressor with a level it does not take says which it takes.
    let level = |compressor, level: &str, levels| Error::CompressorLevel {
        compressor,
        level: level.to_owned(),
        levels,
    };
    assert_eq!(Compressor::by_name("lz4:3"), Err(level("lz4", "3", None)));
    assert_eq!(Compressor::by_name("none:1"), Err(level("none", "1", None)));
    assert_eq!(
        Compressor::by_name("deflate:11"),
        Err(level("deflate", "11", Some((0, 10))))
    );
    assert_eq!(
        Compressor::by_name("deflate:x"),
        Err(level("deflate", "x", Some((0, 10))))
    );
    assert_eq!(
        "deflate:11".parse::<Compressor>().unwrap_err().to_string(),
        "deflate takes a level from 0 to 10, not \"11\""
    );
    #[cfg(feature = "zstd")]
    {
        let e = Compressor::by_name("zstd:99").unwrap_err();
        assert!(
            matches!(
                e,
                Error::CompressorLevel {
                    compressor: "zstd",
                    levels: Some(_),
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("zstd takes a level from "), "{e}");
    }
    #[cfg(not(feature = "zstd"))]
    assert_eq!(
        Compressor::by_name("zstd:99"),
        Err(Error::UnknownCompressor("zstd:99".to_owned()))
    );
}

#[test]
fn garbage_and_truncation_are_errors() {
    for c in all() {
        for (what, page) in pages() {
            let mut buf = vec![0u8; 8192];
            let n = c.compress(&page, &mut buf).unwrap();
            let mut out = vec![0u8; 4096];
            for cut in [0, 1, n / 2, n.saturating_sub(1)] {
                if cut < n {
                    assert!(
                        c.decompress(&buf[..cut], &mut out).is_err(),
                        "{c} {what} cut {cut}"
                    );
                }
            }
            // Into a too-small page: an error, and nothing past it is touched.
            let mut small = vec![0xAAu8; 4096 + 16];
            assert!(
                c.decompress(&buf[..n], &mut small[..4000]).is_err(),
                "{c} {what}"
            );
            assert!(
                small[4000..].iter().all(|&b| b == 0xAA),
                "{c} wrote past the page"
            );
        }
        let mut out = vec![0u8; 4096];
        for junk in [&b""[..], b"\xff\xff\xff\xff", &[0x1f; 64]] {
            assert!(c.decompress(junk, &mut out).is_err(), "{c}");
        }
    }
}
