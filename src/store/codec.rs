//! Compressors chosen by name at run time, as the kernel's `compressor`
//! parameter: `lz4`, `zstd[:LEVEL]`, `deflate[:LEVEL]`, `none`.
//!
//! What it guarantees:
//! - [`Compressor::compress`] writes into the caller's buffer and gives up
//!   ([`Error::CompressPoor`]) when the output cannot fit it: the buffer's
//!   length *is* the acceptance threshold. liblz4, zstd and deflate write
//!   straight into it and stop early; lz4_flex demands a worst-case-sized
//!   buffer up front, so below that size it compresses into per-thread
//!   scratch and copies.
//! - [`Compressor::decompress`] of any bytes at all either fills the whole
//!   output buffer or returns [`Error::Decompress`]; it never panics and
//!   never writes past the buffer (every decoder used is bounds-checked, and
//!   the `decompress` fuzz target runs each on arbitrary input).
//! - No allocation on either path in steady state: codec state (zstd and
//!   deflate contexts, lz4_flex's hash table) lives in per-thread scratch
//!   made on first use; liblz4's state lives on its stack.
//!
//! `lz4` is the C liblz4 when the `liblz4` feature is on (its decoder is the
//! faster on real pages; BENCHMARKS.md) and lz4_flex otherwise; both are
//! always reachable by their own names, `lz4-c` and `lz4-flex`, so they can
//! be measured side by side. An LZO1X codec was considered: the one
//! permissively licensed pure-Rust implementation on crates.io (lzokay-native
//! 0.1) only offers allocating, reader-based APIs, so it is not offered.

use std::cell::RefCell;
use std::fmt;

use crate::Error;

/// The default zstd level (the kernel's crypto zstd default).
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;
/// The default deflate level.
pub const DEFLATE_DEFAULT_LEVEL: u8 = 6;

/// A compression algorithm, chosen by name at run time.
///
/// ```
/// use zswap::Compressor;
/// let c = Compressor::by_name("lz4").unwrap();
/// let page = [7u8; 4096];
/// let mut buf = [0u8; 4096];
/// let n = c.compress(&page, &mut buf).unwrap();
/// let mut back = [0u8; 4096];
/// c.decompress(&buf[..n], &mut back).unwrap();
/// assert_eq!(page, back);
/// assert!(c.decompress(b"garbage", &mut back).is_err());
/// assert!(Compressor::by_name("lzma").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compressor {
    /// Store as-is (fits only if the buffer is at least the input's length).
    None,
    /// lz4_flex, pure Rust.
    Lz4Flex,
    /// The C liblz4.
    #[cfg(feature = "liblz4")]
    Lz4C,
    /// zstd at a level (1..=22, or negative for the fast levels).
    #[cfg(feature = "zstd")]
    Zstd {
        /// The compression level.
        level: i32,
    },
    /// Raw deflate (no zlib header), as the kernel's `deflate`, at 0..=10.
    Deflate {
        /// The compression level.
        level: u8,
    },
}

/// Parses a compressor name as [`Compressor::by_name`] does.
///
/// ```
/// use zswap::Compressor;
/// let c: Compressor = "deflate:6".parse().unwrap();
/// assert_eq!(c.to_string(), "deflate:6");
/// let err = "deflate:11".parse::<Compressor>().unwrap_err();
/// assert_eq!(err.to_string(), "deflate takes a level from 0 to 10, not \"11\"");
/// ```
impl std::str::FromStr for Compressor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Compressor::by_name(s)
    }
}

impl fmt::Display for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compressor::None => f.write_str("none"),
            Compressor::Lz4Flex => f.write_str("lz4-flex"),
            #[cfg(feature = "liblz4")]
            Compressor::Lz4C => f.write_str("lz4-c"),
            #[cfg(feature = "zstd")]
            Compressor::Zstd { level } => write!(f, "zstd:{level}"),
            Compressor::Deflate { level } => write!(f, "deflate:{level}"),
        }
    }
}

impl Default for Compressor {
    /// [`Compressor::lz4`], the kernel's default.
    fn default() -> Self {
        Compressor::lz4()
    }
}

impl Compressor {
    /// What `lz4` names in this build: the C liblz4 with the `liblz4`
    /// feature, lz4_flex without.
    ///
    /// ```
    /// use zswap::Compressor;
    /// assert_eq!(Compressor::lz4(), Compressor::by_name("lz4").unwrap());
    /// ```
    pub const fn lz4() -> Self {
        #[cfg(feature = "liblz4")]
        {
            Compressor::Lz4C
        }
        #[cfg(not(feature = "liblz4"))]
        {
            Compressor::Lz4Flex
        }
    }

    /// The names [`by_name`](Self::by_name) accepts in this build (levels
    /// go after a colon: `zstd:9`, `deflate:1`).
    pub fn names() -> &'static [&'static str] {
        &[
            "none",
            "lz4",
            "lz4-flex",
            #[cfg(feature = "liblz4")]
            "lz4-c",
            #[cfg(feature = "zstd")]
            "zstd",
            "deflate",
        ]
    }

    /// The compressor called `name`, optionally with `:LEVEL`.
    pub fn by_name(name: &str) -> Result<Self, Error> {
        let unknown = || Error::UnknownCompressor(name.to_owned());
        let (base, level) = match name.trim().split_once(':') {
            Some((b, l)) => (b, Some(l.trim())),
            None => (name.trim(), None),
        };
        let bad_level =
            |compressor: &'static str, levels: Option<(i32, i32)>| Error::CompressorLevel {
                compressor,
                level: level.unwrap_or_default().to_owned(),
                levels,
            };
        let no_level = |c: Compressor, compressor: &'static str| match level {
            Some(_) => Err(bad_level(compressor, None)),
            None => Ok(c),
        };
        match base.to_ascii_lowercase().as_str() {
            "none" => no_level(Compressor::None, "none"),
            #[cfg(feature = "liblz4")]
            "lz4" | "lz4-c" => no_level(Compressor::Lz4C, "lz4"),
            #[cfg(not(feature = "liblz4"))]
            "lz4" => no_level(Compressor::Lz4Flex, "lz4"),
            "lz4-flex" => no_level(Compressor::Lz4Flex, "lz4-flex"),
            #[cfg(feature = "zstd")]
            "zstd" => {
                let range = zstd::compression_level_range();
                let levels = Some((*range.start(), *range.end()));
                let level = match level {
                    None => ZSTD_DEFAULT_LEVEL,
                    Some(l) => l.parse().map_err(|_| bad_level("zstd", levels))?,
                };
                if !range.contains(&level) {
                    return Err(bad_level("zstd", levels));
                }
                Ok(Compressor::Zstd { level })
            }
            "deflate" => {
                let levels = Some((0, 10));
                let level = match level {
                    None => DEFLATE_DEFAULT_LEVEL,
                    Some(l) => l.parse().map_err(|_| bad_level("deflate", levels))?,
                };
                if level > 10 {
                    return Err(bad_level("deflate", levels));
                }
                Ok(Compressor::Deflate { level })
            }
            _ => Err(unknown()),
        }
    }

    /// Compresses `src` into `dst`; the length written, or
    /// [`Error::CompressPoor`] if it does not fit `dst`, or
    /// [`Error::CompressFail`] if the codec failed.
    pub fn compress(&self, src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        match *self {
            Compressor::None => {
                let out = dst.get_mut(..src.len()).ok_or(Error::CompressPoor)?;
                out.copy_from_slice(src);
                Ok(src.len())
            }
            Compressor::Lz4Flex => lz4flex::compress(src, dst),
            #[cfg(feature = "liblz4")]
            Compressor::Lz4C => lz4c::compress(src, dst),
            #[cfg(feature = "zstd")]
            Compressor::Zstd { level } => zstd_codec::compress(level, src, dst),
            Compressor::Deflate { level } => deflate::compress(level, src, dst),
        }
    }

    /// Decompresses `src` into all of `dst`: exactly `dst.len()` bytes, or
    /// [`Error::Decompress`]. Never panics, whatever `src` holds.
    pub fn decompress(&self, src: &[u8], dst: &mut [u8]) -> Result<(), Error> {
        // Built only on failure: a load is on the hot path.
        let fail = || Error::Decompress(self.family());
        let n = match *self {
            Compressor::None => {
                if src.len() != dst.len() {
                    return Err(fail());
                }
                dst.copy_from_slice(src);
                src.len()
            }
            Compressor::Lz4Flex => {
                lz4_flex::block::decompress_into(src, dst).map_err(|_| fail())?
            }
            #[cfg(feature = "liblz4")]
            Compressor::Lz4C => lz4c::decompress(src, dst).ok_or_else(fail)?,
            #[cfg(feature = "zstd")]
            Compressor::Zstd { .. } => zstd_codec::decompress(src, dst).ok_or_else(fail)?,
            Compressor::Deflate { .. } => deflate::decompress(src, dst).ok_or_else(fail)?,
        };
        if n == dst.len() {
            Ok(())
        } else {
            Err(fail())
        }
    }

    /// The codec family, without level: what [`Error::Decompress`] names.
    pub fn family(&self) -> &'static str {
        match self {
            Compressor::None => "none",
            Compressor::Lz4Flex => "lz4-flex",
            #[cfg(feature = "liblz4")]
            Compressor::Lz4C => "lz4-c",
            #[cfg(feature = "zstd")]
            Compressor::Zstd { .. } => "zstd",
            Compressor::Deflate { .. } => "deflate",
        }
    }
}

mod lz4flex {
    use super::RefCell;
    use crate::Error;
    use lz4_flex::block::{compress_into_with_table, get_maximum_output_size, CompressTable};

    /// Per-thread hash table (lz4_flex would otherwise allocate one per
    /// call) and worst-case output buffer.
    struct Scratch {
        table: CompressTable,
        out: Vec<u8>,
    }

    crate::sync::thread_scratch! {
        static SCRATCH: RefCell<Option<Scratch>> = RefCell::new(None);
    }

    /// lz4_flex insists on an output buffer of the worst-case size before it
    /// starts, so a smaller limit goes through the scratch buffer and one
    /// copy of the compressed bytes.
    pub(super) fn compress(src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        let worst = get_maximum_output_size(src.len());
        SCRATCH.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|_| Error::CompressFail)?;
            let s = slot.get_or_insert_with(|| Scratch {
                table: CompressTable::default(),
                out: Vec::new(),
            });
            if dst.len() >= worst {
                return compress_into_with_table(src, dst, &mut s.table)
                    .map_err(|_| Error::CompressFail);
            }
            if s.out.len() < worst {
                s.out.resize(worst, 0);
            }
            let n = compress_into_with_table(src, &mut s.out, &mut s.table)
                .map_err(|_| Error::CompressFail)?;
            let out = dst.get_mut(..n).ok_or(Error::CompressPoor)?;
            out.copy_from_slice(&s.out[..n]);
            Ok(n)
        })
    }
}

#[cfg(feature = "liblz4")]
mod lz4c {
    use crate::Error;
    use std::os::raw::{c_char, c_int};

    pub(super) fn compress(src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        let (Ok(sl), Ok(dl)) = (c_int::try_from(src.len()), c_int::try_from(dst.len())) else {
            return Err(Error::CompressFail);
        };
        // SAFETY: LZ4_compress_default reads `sl` bytes from `src` and writes
        // at most `dl` bytes to `dst` (it returns 0 rather than overflow);
        // both lengths are the slices' own. Its state lives on its stack.
        let n = unsafe {
            lz4_sys::LZ4_compress_default(
                src.as_ptr() as *const c_char,
                dst.as_mut_ptr() as *mut c_char,
                sl,
                dl,
            )
        };
        if n > 0 {
            Ok(n as usize)
        } else {
            Err(Error::CompressPoor)
        }
    }

    pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Option<usize> {
        let sl = c_int::try_from(src.len()).ok()?;
        let dl = c_int::try_from(dst.len()).ok()?;
        // SAFETY: LZ4_decompress_safe is liblz4's decoder for untrusted
        // input: it reads at most `sl` bytes of `src`, writes at most `dl`
        // bytes of `dst`, and returns a negative value on malformed input.
        let n = unsafe {
            lz4_sys::LZ4_decompress_safe(
                src.as_ptr() as *const c_char,
                dst.as_mut_ptr() as *mut c_char,
                sl,
                dl,
            )
        };
        usize::try_from(n).ok()
    }
}

#[cfg(feature = "zstd")]
mod zstd_codec {
    use super::RefCell;
    use crate::Error;
    use zstd::zstd_safe::{CCtx, CParameter, DCtx};

    /// zstd_safe's contexts directly: `zstd::bulk` reports "does not fit"
    /// as an `io::Error`, which allocates.
    struct Contexts {
        level: i32,
        cctx: CCtx<'static>,
        dctx: DCtx<'static>,
    }

    crate::sync::thread_scratch! {
        static CTX: RefCell<Option<Contexts>> = RefCell::new(None);
    }

    fn with<R>(level: Option<i32>, f: impl FnOnce(&mut Contexts) -> R) -> Option<R> {
        CTX.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let want = level.or(slot.as_ref().map(|c| c.level));
            let want = want.unwrap_or(super::ZSTD_DEFAULT_LEVEL);
            if slot.as_ref().is_none_or(|c| c.level != want) {
                let mut cctx = CCtx::try_create()?;
                cctx.set_parameter(CParameter::CompressionLevel(want))
                    .ok()?;
                // A page is small and its size is known: no checksum, no
                // content size in the frame.
                cctx.set_parameter(CParameter::ChecksumFlag(false)).ok()?;
                cctx.set_parameter(CParameter::ContentSizeFlag(false))
                    .ok()?;
                *slot = Some(Contexts {
                    level: want,
                    cctx,
                    dctx: DCtx::try_create()?,
                });
            }
            slot.as_mut().map(f)
        })
    }

    pub(super) fn compress(level: i32, src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        with(Some(level), |c| c.cctx.compress2(dst, src))
            .ok_or(Error::CompressFail)?
            .map_err(|_| Error::CompressPoor)
    }

    pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Option<usize> {
        // Any level's context decompresses any frame: reuse what exists.
        with(None, |c| c.dctx.decompress(dst, src).ok()).flatten()
    }
}

mod deflate {
    use super::RefCell;
    use crate::Error;
    use miniz_oxide::deflate::core::{self as zdeflate, CompressorOxide, TDEFLFlush, TDEFLStatus};
    use miniz_oxide::inflate::core::{self as zinflate, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;

    crate::sync::thread_scratch! {
        static COMP: RefCell<Option<(u8, Box<CompressorOxide>)>> = RefCell::new(None);
        static DECOMP: RefCell<Option<Box<DecompressorOxide>>> = RefCell::new(None);
    }

    pub(super) fn compress(level: u8, src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
        COMP.with(|cell| {
            let mut slot = cell.try_borrow_mut().map_err(|_| Error::CompressFail)?;
            let c = match slot.as_mut() {
                Some((l, c)) if *l == level => {
                    c.reset();
                    c
                }
                _ => {
                    let mut c = Box::<CompressorOxide>::default();
                    // Raw deflate, no zlib header: the kernel's `deflate`.
                    c.set_format_and_level(miniz_oxide::DataFormat::Raw, level);
                    *slot = Some((level, c));
                    &mut slot.as_mut().expect("just set").1
                }
            };
            let (status, consumed, written) = zdeflate::compress(c, src, dst, TDEFLFlush::Finish);
            match status {
                TDEFLStatus::Done if consumed == src.len() => Ok(written),
                TDEFLStatus::Okay | TDEFLStatus::Done => Err(Error::CompressPoor),
                _ => Err(Error::CompressFail),
            }
        })
    }

    pub(super) fn decompress(src: &[u8], dst: &mut [u8]) -> Option<usize> {
        DECOMP.with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            let d = slot.get_or_insert_with(Box::default);
            d.init();
            let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
            let (status, _, written) = zinflate::decompress(d, src, dst, 0, flags);
            (status == TINFLStatus::Done).then_some(written)
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
