//! `capture --pid PID --out FILE` and `advise FILE`: what zswap would do for
//! a real process.
//!
//! Capture reads the process's private, writable, anonymous mappings (the
//! heap and anonymous maps; not the stack, not file-backed memory, not the
//! kernel's vdso/vvar) through `/proc/PID/mem`, which needs root or ptrace
//! rights over the process, and writes them as raw 4 KiB pages — the format
//! of the crate's own `data/pages.bin`. Advise runs such a file through
//! every compressor and the size-class allocator and reports ratio,
//! footprint and store/load speed per codec.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use zswap::{Compressor, PoolConfig, ZsPool, PAGE_SIZE};

use crate::output::AtomicFile;

/// What a capture wrote.
#[derive(Debug, Serialize)]
pub struct Captured {
    /// Mappings read.
    pub mappings: usize,
    /// Pages written.
    pub pages: u64,
    /// Pages that could not be read (skipped).
    pub unreadable: u64,
}

/// Dumps `pid`'s anonymous, non-stack pages to `out` (at most `max_pages`).
pub fn capture(pid: u32, out: &Path, max_pages: u64) -> anyhow::Result<Captured> {
    let maps_path = format!("/proc/{pid}/maps");
    let maps = std::fs::read_to_string(&maps_path)
        .with_context(|| format!("reading {maps_path}: is {pid} a running process?"))?;
    let mem = File::open(format!("/proc/{pid}/mem")).with_context(|| {
        format!("opening /proc/{pid}/mem: capturing needs root or ptrace rights over process {pid}")
    })?;
    let mut file = AtomicFile::create(out)?;
    let mut page = vec![0u8; PAGE_SIZE];
    let mut got = Captured {
        mappings: 0,
        pages: 0,
        unreadable: 0,
    };
    let mut denied = None;
    'maps: for line in maps.lines() {
        let Some((start, end)) = anonymous_range(line) else {
            continue;
        };
        got.mappings += 1;
        let mut addr = start;
        while addr < end {
            if got.pages >= max_pages {
                break 'maps;
            }
            match mem.read_exact_at(&mut page, addr) {
                Ok(()) => {
                    file.write(&page)?;
                    got.pages += 1;
                }
                Err(e) => {
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        denied = Some(e);
                    }
                    got.unreadable += 1;
                }
            }
            addr += PAGE_SIZE as u64;
        }
    }
    if got.pages == 0 {
        match denied {
            Some(e) => {
                bail!("reading process {pid}'s memory: {e}: capturing needs root or ptrace rights")
            }
            None => bail!(
                "process {pid} has no readable anonymous pages ({} mappings, {} pages unreadable)",
                got.mappings,
                got.unreadable
            ),
        }
    }
    file.commit()?;
    Ok(got)
}

/// The range of a `/proc/PID/maps` line if it is private, writable and
/// anonymous (or the heap), and not the stack or a kernel special mapping.
fn anonymous_range(line: &str) -> Option<(u64, u64)> {
    let mut f = line.split_whitespace();
    let range = f.next()?;
    let perms = f.next()?;
    let _offset = f.next()?;
    let _dev = f.next()?;
    let inode = f.next()?;
    let name: Vec<&str> = f.collect();
    let name = name.join(" ");
    if !perms.starts_with("rw") || !perms.ends_with('p') || inode != "0" {
        return None;
    }
    let anon = name.is_empty() || name == "[heap]" || name.starts_with("[anon:");
    if !anon {
        return None;
    }
    let (a, b) = range.split_once('-')?;
    Some((
        u64::from_str_radix(a, 16).ok()?,
        u64::from_str_radix(b, 16).ok()?,
    ))
}

/// One codec's figures on a page file.
#[derive(Debug, Serialize)]
pub struct Advice {
    /// The codec.
    pub compressor: String,
    /// Raw bytes ÷ compressed bytes, over pages that compress.
    pub ratio: f64,
    /// Pool footprint ÷ raw bytes: the share of memory the pages would take.
    pub footprint_share: f64,
    /// Pool footprint ÷ compressed bytes: the allocator's overhead.
    pub allocator_overhead: f64,
    /// Pages that would not compress (stored as-is, or rejected).
    pub incompressible: u64,
    /// Compress + allocate, MiB/s of raw pages.
    pub store_mib_s: f64,
    /// Read + decompress, MiB/s of raw pages.
    pub load_mib_s: f64,
}

/// What zswap would do with a page file.
#[derive(Debug, Serialize)]
pub struct AdviceReport {
    /// The file.
    pub file: String,
    /// Pages in it.
    pub pages: u64,
    /// Pages with every byte the same (kept as one word, never compressed).
    pub same_filled: u64,
    /// Per codec.
    pub codecs: Vec<Advice>,
}

/// Runs the pages in `path` through every codec of this build.
pub fn advise(path: &Path) -> anyhow::Result<AdviceReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.is_empty() || bytes.len() % PAGE_SIZE != 0 {
        bail!(
            "{}: {} bytes is not a whole number of 4096-byte pages",
            path.display(),
            bytes.len()
        );
    }
    let pages: Vec<&[u8]> = bytes.chunks_exact(PAGE_SIZE).collect();
    let distinct: Vec<&[u8]> = pages
        .iter()
        .copied()
        .filter(|p| p.iter().any(|&b| b != p[0]))
        .collect();
    let mut codecs = Vec::new();
    for name in [
        "lz4-flex",
        "lz4-c",
        "zstd:1",
        "zstd:3",
        "deflate:1",
        "deflate:6",
    ] {
        let Ok(c) = Compressor::by_name(name) else {
            continue;
        };
        codecs.push(advise_one(c, &distinct)?);
    }
    Ok(AdviceReport {
        file: path.display().to_string(),
        pages: pages.len() as u64,
        same_filled: (pages.len() - distinct.len()) as u64,
        codecs,
    })
}

fn advise_one(c: Compressor, pages: &[&[u8]]) -> anyhow::Result<Advice> {
    let pool = ZsPool::new(PoolConfig::default())?;
    let mut buf = vec![0u8; PAGE_SIZE];
    let mut handles = Vec::with_capacity(pages.len());
    let (mut compressed, mut incompressible) = (0u64, 0u64);
    let t = Instant::now();
    for p in pages {
        let (n, stored) = match c.compress(p, &mut buf[..PAGE_SIZE - 1]) {
            Ok(n) => (n, &buf[..n]),
            Err(zswap::Error::CompressPoor) => {
                incompressible += 1;
                (PAGE_SIZE, *p)
            }
            Err(e) => return Err(e).context(format!("compressing with {c}")),
        };
        compressed += n as u64;
        handles.push((pool.insert(stored)?, n == PAGE_SIZE));
    }
    let store_s = t.elapsed().as_secs_f64();
    let footprint = pool.footprint() as u64;
    let mut page = vec![0u8; PAGE_SIZE];
    let t = Instant::now();
    for (p, &(h, raw)) in pages.iter().zip(&handles) {
        let n = pool.read_into(h, &mut buf)?;
        if raw {
            page.copy_from_slice(&buf[..n]);
        } else {
            c.decompress(&buf[..n], &mut page)?;
        }
        if page != *p {
            bail!("{c} returned a different page: a bug, please report it");
        }
    }
    let load_s = t.elapsed().as_secs_f64();
    let raw = (pages.len() * PAGE_SIZE) as f64;
    let mib = raw / (1024.0 * 1024.0);
    Ok(Advice {
        compressor: c.to_string(),
        ratio: raw / compressed.max(1) as f64,
        footprint_share: footprint as f64 / raw.max(1.0),
        allocator_overhead: footprint as f64 / compressed.max(1) as f64,
        incompressible,
        store_mib_s: mib / store_s.max(1e-9),
        load_mib_s: mib / load_s.max(1e-9),
    })
}

/// The advice as a table.
pub fn advice_table(r: &AdviceReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}: {} pages ({} MiB), {} same-filled (zswap keeps each as one word)",
        r.file,
        r.pages,
        crate::report::mib(r.pages * PAGE_SIZE as u64),
        r.same_filled
    );
    let _ = writeln!(
        s,
        "{:<10} {:>7} {:>10} {:>10} {:>8} {:>11} {:>11}",
        "codec", "ratio", "footprint", "allocator", "incomp", "store MiB/s", "load MiB/s"
    );
    for a in &r.codecs {
        let _ = writeln!(
            s,
            "{:<10} {:>7.2} {:>9.1}% {:>9.3}x {:>8} {:>11.0} {:>11.0}",
            a.compressor,
            a.ratio,
            100.0 * a.footprint_share,
            a.allocator_overhead,
            a.incompressible,
            a.store_mib_s,
            a.load_mib_s
        );
    }
    s
}
