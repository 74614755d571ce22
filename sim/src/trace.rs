//! `--trace FILE`: real access traces, mapped onto 4 KiB pages.
//!
//! Formats (chosen by `--trace-format`, or guessed from the name and the
//! first line):
//! - `csv`: a plain CSV of `time,key,size` per line, no header; `key` is a
//!   byte address. Lines starting with `#` are skipped.
//! - `libcachesim-csv`: libCacheSim's CSV with a header naming the columns
//!   (for example `version,time,op,size,lbn`, or
//!   `time,obj_id,obj_size,next_access_vtime`). Keys are taken from `lbn`,
//!   `lba`, `sector`, `obj_id`, `key` or `id` (block numbers), or from
//!   `offset`/`addr` (bytes); sizes from `size`/`obj_size`/`len`.
//! - `oracle-general`: libCacheSim's 24-byte binary records (`u32 time,
//!   u64 obj_id, u32 obj_size, i64 next_access_vtime`, little-endian), as
//!   its public traces (cloudPhysicsIO among them) are published;
//!   `.zst`-compressed files are read as they are.
//!
//! # One mapping for every format
//!
//! A key is a byte address where its column says so (`offset`, `addr`, the
//! plain CSV's key) and otherwise a block number of 512-byte sectors: the
//! CSV's `lbn` and oracleGeneral's `obj_id` alike, since libCacheSim's
//! oracleGeneral encoding of a block trace keeps the block number as the
//! object id. A request at byte address `a` (`a = block × 512`) of `size`
//! bytes touches pages `⌊a / 4096⌋` to `⌈(a + max(size, 1)) / 4096⌉ − 1`,
//! at most [`MAX_PAGES_PER_REQUEST`] of them. So the CSV and oracleGeneral
//! encodings of one trace give the same page stream. The arithmetic is in
//! 128 bits and the largest page number, `(2⁶⁴ − 1) × 512 / 4096 + 2²⁰`,
//! is below 2⁶², so every id maps, none wraps, and none needs folding.
//!
//! Malformed input is an error naming the line (or record) — never a
//! silently skipped request.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use std::collections::HashSet;

use anyhow::{bail, Context};
use clap::ValueEnum;
use serde::Serialize;

/// Pages one request may touch; larger requests are cut.
pub const MAX_PAGES_PER_REQUEST: u64 = 64;

/// A trace's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TraceFormat {
    /// Guess from the file name and first line.
    Auto,
    /// `time,key,size`, key a byte address, no header.
    Csv,
    /// libCacheSim's CSV with a header line.
    LibcachesimCsv,
    /// libCacheSim's oracleGeneral binary (optionally `.zst`).
    OracleGeneral,
}

/// How a key column addresses data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyUnit {
    /// A byte address.
    Bytes,
    /// A block number of 512-byte sectors (`lbn`, `obj_id`).
    Sectors,
}

/// What a trace held, as the report states it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TraceStats {
    /// Requests read (the last one possibly cut at the access limit).
    pub requests: u64,
    /// Distinct keys (block numbers, object ids or addresses) among them.
    pub distinct_keys: u64,
    /// Bytes the requests asked for (their sizes, summed).
    pub bytes: u64,
    /// Page accesses the requests make.
    pub page_accesses: u64,
    /// Distinct pages among those.
    pub distinct_pages: u64,
}

/// A trace's page accesses in order, and what it held.
pub struct Trace {
    /// Page keys, one per page access.
    pub pages: Vec<u64>,
    /// The counts.
    pub stats: TraceStats,
}

/// Collects the pages of requests, up to `limit` page accesses.
struct Sink {
    pages: Vec<u64>,
    keys: HashSet<u64>,
    requests: u64,
    bytes: u64,
    limit: u64,
}

impl Sink {
    fn new(limit: u64) -> Self {
        Sink {
            pages: Vec::new(),
            keys: HashSet::new(),
            requests: 0,
            bytes: 0,
            limit,
        }
    }

    fn full(&self) -> bool {
        self.pages.len() as u64 >= self.limit
    }

    /// Adds the pages of one request (see the module's mapping).
    fn push(&mut self, unit: KeyUnit, key: u64, size: u64) {
        if self.full() {
            return;
        }
        self.requests += 1;
        self.bytes = self.bytes.saturating_add(size);
        self.keys.insert(key);
        let start = match unit {
            KeyUnit::Bytes => u128::from(key),
            KeyUnit::Sectors => u128::from(key) * 512,
        };
        let end = start + u128::from(size.max(1));
        let first = start / 4096;
        let pages = (end.div_ceil(4096) - first).min(u128::from(MAX_PAGES_PER_REQUEST));
        for i in 0..pages {
            if self.full() {
                return;
            }
            self.pages
                .push(u64::try_from(first + i).expect("below 2^62, see the module"));
        }
    }

    fn finish(self) -> Trace {
        let mut distinct = self.pages.clone();
        distinct.sort_unstable();
        distinct.dedup();
        Trace {
            stats: TraceStats {
                requests: self.requests,
                distinct_keys: self.keys.len() as u64,
                bytes: self.bytes,
                page_accesses: self.pages.len() as u64,
                distinct_pages: distinct.len() as u64,
            },
            pages: self.pages,
        }
    }
}

/// The page accesses of a trace, in order, at most `limit` of them.
pub fn read(path: &Path, format: TraceFormat, limit: u64) -> anyhow::Result<Trace> {
    let file = File::open(path).with_context(|| format!("opening trace {}", path.display()))?;
    let zst = path.extension().is_some_and(|e| e == "zst");
    let reader: Box<dyn Read> = if zst {
        Box::new(zstd::stream::read::Decoder::new(file).context("reading a .zst trace")?)
    } else {
        Box::new(file)
    };
    let mut reader = BufReader::new(reader);
    let format = match format {
        TraceFormat::Auto => guess(path, &mut reader)?,
        f => f,
    };
    let mut sink = Sink::new(limit);
    match format {
        TraceFormat::OracleGeneral => oracle(&mut reader, &mut sink)?,
        TraceFormat::Csv => csv(&mut reader, false, &mut sink)?,
        _ => csv(&mut reader, true, &mut sink)?,
    }
    if sink.pages.is_empty() {
        bail!("trace {} holds no requests", path.display());
    }
    Ok(sink.finish())
}

fn guess(path: &Path, r: &mut BufReader<Box<dyn Read>>) -> anyhow::Result<TraceFormat> {
    let name = path.to_string_lossy();
    if name.contains("oracleGeneral") || name.ends_with(".bin") || name.contains(".bin.") {
        return Ok(TraceFormat::OracleGeneral);
    }
    let head = r.fill_buf().context("reading the trace")?;
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    // A header names its columns: some field is not a number at all. A
    // first line of numbers only, however odd (`1e300`, `NaN`, `0x1f`), is
    // data, and its key is judged as data (with its line number).
    let names_columns = std::str::from_utf8(line).is_ok_and(|l| {
        l.split(',')
            .map(str::trim)
            .any(|f| f.bytes().any(|b| b.is_ascii_alphabetic()) && !number_like(f))
    });
    if names_columns {
        Ok(TraceFormat::LibcachesimCsv)
    } else if line
        .iter()
        .all(|b| b.is_ascii() && !b.is_ascii_control() || *b == b'\r')
    {
        Ok(TraceFormat::Csv)
    } else {
        Ok(TraceFormat::OracleGeneral)
    }
}

fn oracle(r: &mut impl Read, sink: &mut Sink) -> anyhow::Result<()> {
    let mut rec = [0u8; 24];
    let mut n = 0u64;
    while !sink.full() {
        match read_record(r, &mut rec) {
            Ok(0) => break,
            Ok(24) => {}
            Ok(got) => bail!("oracleGeneral record {n}: only {got} of 24 bytes (truncated file?)"),
            Err(e) => return Err(e).context(format!("reading oracleGeneral record {n}")),
        }
        let id = u64::from_le_bytes(rec[4..12].try_into().expect("8 bytes"));
        let size = u32::from_le_bytes(rec[12..16].try_into().expect("4 bytes"));
        sink.push(KeyUnit::Sectors, id, u64::from(size));
        n += 1;
    }
    Ok(())
}

/// Reads up to a whole record; the bytes read (0 at a clean end).
fn read_record(r: &mut impl Read, rec: &mut [u8; 24]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < rec.len() {
        match r.read(&mut rec[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn csv(r: &mut impl BufRead, header: bool, sink: &mut Sink) -> anyhow::Result<()> {
    // Column of the key, its unit, and the size column (if any).
    let mut cols: Option<(usize, KeyUnit, Option<usize>)> =
        (!header).then_some((1, KeyUnit::Bytes, Some(2)));
    let mut line = String::new();
    let mut no = 0u64;
    while !sink.full() {
        line.clear();
        no += 1;
        if r.read_line(&mut line)
            .with_context(|| format!("trace line {no}"))?
            == 0
        {
            break;
        }
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = l.split(',').map(str::trim).collect();
        let Some((kc, unit, sc)) = cols else {
            cols =
                Some(header_columns(&fields).with_context(|| format!("trace line {no}: header"))?);
            continue;
        };
        let field = |c: usize, what: &str| -> anyhow::Result<u64> {
            let f = fields.get(c).with_context(|| {
                format!(
                    "trace line {no}: no {what} column (expected at least {} fields)",
                    c + 1
                )
            })?;
            parse_num(f).with_context(|| format!("trace line {no}: {what} {f:?} is not a number"))
        };
        let key = field(kc, "key")?;
        let size = match sc {
            Some(c) => field(c, "size")?,
            None => 4096,
        };
        sink.push(unit, key, size);
    }
    Ok(())
}

fn header_columns(fields: &[&str]) -> anyhow::Result<(usize, KeyUnit, Option<usize>)> {
    let find = |names: &[&str]| {
        fields
            .iter()
            .position(|f| names.iter().any(|n| f.eq_ignore_ascii_case(n)))
    };
    let key = if let Some(c) = find(&["lbn", "lba", "sector"]) {
        (c, KeyUnit::Sectors)
    } else if let Some(c) = find(&["offset", "addr", "address", "byte_offset"]) {
        (c, KeyUnit::Bytes)
    } else if let Some(c) = find(&["obj_id", "object_id", "key", "id", "obj"]) {
        // A block number, as oracleGeneral's obj_id (see the module).
        (c, KeyUnit::Sectors)
    } else {
        bail!(
            "no key column in {:?} (expected lbn, lba, offset, obj_id or key)",
            fields.join(",")
        );
    };
    let size = find(&["size", "obj_size", "len", "length", "bytes"]);
    Ok((key.0, key.1, size))
}

/// A decimal or `0x` hexadecimal number (some block traces use hex), or a
/// float that is a whole number a `u64` holds (`4.096e3`). Anything else —
/// beyond `u64`, negative, fractional, infinite, NaN — is `None`, never a
/// saturated value.
fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok().or_else(|| {
            s.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0)
                // 2^64: the first float a `u64` cannot hold.
                .filter(|f| *f < 18_446_744_073_709_551_616.0)
                .map(|f| f as u64)
        }),
    }
}

/// Whether `s` is written as a number, in range or not (`1e300`, `NaN`,
/// `0xff`, `-3`): a data field rather than a column name.
fn number_like(s: &str) -> bool {
    parse_num(s).is_some()
        || s.parse::<f64>().is_ok()
        || s.strip_prefix("0x")
            .or_else(|| s.strip_prefix("0X"))
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(text: &str, header: bool) -> anyhow::Result<Vec<u64>> {
        let mut sink = Sink::new(u64::MAX);
        csv(&mut text.as_bytes(), header, &mut sink)?;
        Ok(sink.pages)
    }

    fn oracle_bytes(reqs: &[(u64, u32)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (t, &(id, size)) in reqs.iter().enumerate() {
            data.extend_from_slice(&(t as u32).to_le_bytes());
            data.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(&size.to_le_bytes());
            data.extend_from_slice(&(-1i64).to_le_bytes());
        }
        data
    }

    /// The CSV (block numbers in `lbn`, or in `obj_id`) and oracleGeneral
    /// encodings of one block trace give the same page stream and the same
    /// counts, extreme ids included.
    #[test]
    fn csv_and_oracle_encodings_of_one_trace_agree() {
        let mut rng = crate::workload::Rng::new(11);
        let mut reqs: Vec<(u64, u32)> = (0..2_000)
            .map(|_| {
                let block = match rng.below(4) {
                    0 => rng.below(64),
                    1 => rng.below(1 << 30),
                    2 => u64::MAX - rng.below(1 << 20),
                    _ => rng.next_u64(),
                };
                let size = [0, 512, 4096, 8192, 65_536, 1 << 20][rng.below(6) as usize];
                (block, size)
            })
            .collect();
        reqs.push((u64::MAX, u32::MAX));
        let mut lbn = String::from("version,time,op,size,lbn\n");
        let mut obj = String::from("time,obj_id,obj_size,next_access_vtime\n");
        for (t, (id, size)) in reqs.iter().enumerate() {
            lbn.push_str(&format!("1,{t},R,{size},{id}\n"));
            obj.push_str(&format!("{t},{id},{size},-1\n"));
        }
        let read_csv = |text: &str| {
            let mut sink = Sink::new(u64::MAX);
            csv(&mut text.as_bytes(), true, &mut sink).unwrap();
            sink.finish()
        };
        let mut sink = Sink::new(u64::MAX);
        oracle(&mut &oracle_bytes(&reqs)[..], &mut sink).unwrap();
        let (a, b, c) = (read_csv(&lbn), read_csv(&obj), sink.finish());
        assert_eq!(a.pages, c.pages);
        assert_eq!(b.pages, c.pages);
        assert_eq!(a.stats, c.stats);
        assert_eq!(c.stats.requests, reqs.len() as u64);
        assert!(c.pages.iter().all(|&p| p < 1 << 62));
    }

    #[test]
    fn counts_and_the_mapping() {
        // Block 8 is byte 4096, page 1; an 8 KiB request there touches
        // pages 1 and 2; a 512-byte one at block 9 page 1 again.
        let t = {
            let mut sink = Sink::new(u64::MAX);
            oracle(
                &mut &oracle_bytes(&[(8, 8192), (9, 512), (8, 4096)])[..],
                &mut sink,
            )
            .unwrap();
            sink.finish()
        };
        assert_eq!(t.pages, [1, 2, 1, 1]);
        assert_eq!(
            t.stats,
            TraceStats {
                requests: 3,
                distinct_keys: 2,
                bytes: 8192 + 512 + 4096,
                page_accesses: 4,
                distinct_pages: 2,
            }
        );
        // The limit cuts page accesses, the request it cuts counted once.
        let mut sink = Sink::new(3);
        oracle(&mut &oracle_bytes(&[(0, 8192), (16, 8192)])[..], &mut sink).unwrap();
        let t = sink.finish();
        assert_eq!((t.pages.len(), t.stats.requests), (3, 2));
    }

    #[test]
    fn plain_csv_maps_bytes_to_pages() {
        let k = keys_of("0,4096,8192\n1,0,100\n", false).unwrap();
        assert_eq!(k, [1, 2, 0]);
    }

    #[test]
    fn libcachesim_header_with_lbn() {
        let k = keys_of(
            "version,time,op,size,lbn\n1,0,R,4096,8\n1,1,W,512,9\n",
            true,
        )
        .unwrap();
        assert_eq!(k, [1, 1]);
    }

    #[test]
    fn bad_line_names_its_number() {
        let e = keys_of("0,1,2\n0,x,2\n", false).unwrap_err();
        assert!(format!("{e:#}").contains("line 2"), "{e:#}");
        let e = keys_of("time,foo\n1,2\n", true).unwrap_err();
        assert!(format!("{e:#}").contains("no key column"), "{e:#}");
    }

    /// Garbage in any format is an error or some keys, never a panic.
    #[test]
    fn keys_beyond_u64_are_errors_not_saturated() {
        for (bad, why) in [
            ("18446744073709551616", "2^64"),
            ("1e300", "a float beyond u64"),
            ("NaN", "not a number"),
            ("inf", "infinite"),
            ("-5", "negative"),
            ("1.5", "fractional"),
            ("0x1ffffffffffffffff", "hex beyond u64"),
        ] {
            let e = keys_of(&format!("0,0,4096\n1,{bad},4096\n"), false).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains("trace line 2: key"), "{why}: {msg}");
        }
        // The largest key a u64 holds is fine, as is a whole float.
        assert!(keys_of("0,18446744073709551615,1\n1,4.096e3,1\n", false).is_ok());
    }

    #[test]
    fn a_first_line_of_odd_numbers_is_data_not_a_header() {
        let guess_of = |text: &str| {
            let mut r: BufReader<Box<dyn Read>> =
                BufReader::new(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())));
            guess(Path::new("trace.csv"), &mut r).unwrap()
        };
        assert_eq!(guess_of("0,1e300,4096\n"), TraceFormat::Csv);
        assert_eq!(guess_of("0,NaN,4096\n"), TraceFormat::Csv);
        assert_eq!(guess_of("0,0x1f,4096\n"), TraceFormat::Csv);
        assert_eq!(
            guess_of("time,obj_id,obj_size\n"),
            TraceFormat::LibcachesimCsv
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = crate::workload::Rng::new(7);
        for round in 0..3000 {
            let len = rng.below(200) as usize;
            let alphabet = b"0123456789,x-.#\n\r lbnsizeobj_id";
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if round % 2 == 0 {
                        alphabet[rng.below(alphabet.len() as u64) as usize]
                    } else {
                        rng.next_u64() as u8
                    }
                })
                .collect();
            for header in [round % 3 == 0, false] {
                let mut sink = Sink::new(1000);
                let _ = csv(&mut &bytes[..], header, &mut sink);
                assert!(sink.pages.len() <= 1000);
            }
            let mut sink = Sink::new(1000);
            let _ = oracle(&mut &bytes[..], &mut sink);
            assert!(sink.pages.len() <= 1000);
        }
    }

    #[test]
    fn oracle_records_and_truncation() {
        let data = oracle_bytes(&[(7 * 8, 4096), (8 * 8, 4096), (7 * 8, 4096)]);
        let mut sink = Sink::new(u64::MAX);
        oracle(&mut &data[..], &mut sink).unwrap();
        assert_eq!(sink.pages, [7, 8, 7]);
        let mut sink = Sink::new(u64::MAX);
        let e = oracle(&mut &data[..30], &mut sink).unwrap_err();
        assert!(format!("{e:#}").contains("record 1"), "{e:#}");
    }
}
