//! `--trace FILE`: real access traces, mapped onto 4 KiB pages.
//!
//! Formats (chosen by `--trace-format`, or guessed from the name and the
//! first line):
//! - `csv`: a plain CSV of `time,key,size` per line, no header; `key` is a
//!   byte address. Lines starting with `#` are skipped.
//! - `libcachesim-csv`: libCacheSim's CSV with a header naming the columns
//!   (for example `version,time,op,size,lbn`, or
//!   `time,obj_id,obj_size,next_access_vtime`). Keys are taken from `lbn`
//!   or `lba` (512-byte sectors), `offset`/`addr` (bytes), or `obj_id`/`key`/
//!   `id` (object ids, each object its own run of pages); sizes from
//!   `size`/`obj_size`/`len`.
//! - `oracle-general`: libCacheSim's 24-byte binary records (`u32 time,
//!   u64 obj_id, u32 obj_size, i64 next_access_vtime`, little-endian), as
//!   its public traces (cloudPhysicsIO among them) are published;
//!   `.zst`-compressed files are read as they are.
//!
//! A request of `size` bytes touches every page it covers (at most
//! [`MAX_PAGES_PER_REQUEST`]). Malformed input is an error naming the line
//! (or record) — never a silently skipped request.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context};
use clap::ValueEnum;

use crate::workload::mix;

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
    Bytes,
    Sectors,
    Object,
}

/// The page keys a trace touches, in order, at most `limit` of them.
pub fn read(path: &Path, format: TraceFormat, limit: u64) -> anyhow::Result<Vec<u64>> {
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
    let mut keys = Vec::new();
    match format {
        TraceFormat::OracleGeneral => oracle(&mut reader, limit, &mut keys)?,
        TraceFormat::Csv => csv(&mut reader, false, limit, &mut keys)?,
        _ => csv(&mut reader, true, limit, &mut keys)?,
    }
    if keys.is_empty() {
        bail!("trace {} holds no requests", path.display());
    }
    Ok(keys)
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

/// Adds the pages of one request.
fn push(keys: &mut Vec<u64>, unit: KeyUnit, key: u64, size: u64, limit: u64) {
    let (first, pages) = match unit {
        KeyUnit::Bytes | KeyUnit::Sectors => {
            let start = if unit == KeyUnit::Sectors {
                key.saturating_mul(512)
            } else {
                key
            };
            let end = start.saturating_add(size.max(1));
            let first = start / 4096;
            (first, (end.div_ceil(4096)).saturating_sub(first))
        }
        // Objects get their own region: the id's hash, pages after it.
        KeyUnit::Object => (mix(key) & !0xfff, size.max(1).div_ceil(4096)),
    };
    for i in 0..pages.clamp(1, MAX_PAGES_PER_REQUEST) {
        if keys.len() as u64 >= limit {
            return;
        }
        keys.push(first.wrapping_add(i));
    }
}

fn oracle(r: &mut impl Read, limit: u64, keys: &mut Vec<u64>) -> anyhow::Result<()> {
    let mut rec = [0u8; 24];
    let mut n = 0u64;
    while (keys.len() as u64) < limit {
        match read_record(r, &mut rec) {
            Ok(0) => break,
            Ok(24) => {}
            Ok(got) => bail!("oracleGeneral record {n}: only {got} of 24 bytes (truncated file?)"),
            Err(e) => return Err(e).context(format!("reading oracleGeneral record {n}")),
        }
        let id = u64::from_le_bytes(rec[4..12].try_into().expect("8 bytes"));
        let size = u32::from_le_bytes(rec[12..16].try_into().expect("4 bytes"));
        push(keys, KeyUnit::Object, id, u64::from(size), limit);
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

fn csv(r: &mut impl BufRead, header: bool, limit: u64, keys: &mut Vec<u64>) -> anyhow::Result<()> {
    // Column of the key, its unit, and the size column (if any).
    let mut cols: Option<(usize, KeyUnit, Option<usize>)> =
        (!header).then_some((1, KeyUnit::Bytes, Some(2)));
    let mut line = String::new();
    let mut no = 0u64;
    while (keys.len() as u64) < limit {
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
        push(keys, unit, key, size, limit);
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
        (c, KeyUnit::Object)
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
        let mut k = Vec::new();
        csv(&mut text.as_bytes(), header, u64::MAX, &mut k)?;
        Ok(k)
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
            let mut k = Vec::new();
            let _ = csv(&mut &bytes[..], round % 3 == 0, 1000, &mut k);
            let _ = csv(&mut &bytes[..], false, 1000, &mut k);
            let _ = oracle(&mut &bytes[..], 1000, &mut k);
            assert!(k.len() <= 3000);
        }
    }

    #[test]
    fn oracle_records_and_truncation() {
        let mut data = Vec::new();
        for id in [7u64, 8, 7] {
            data.extend_from_slice(&1u32.to_le_bytes());
            data.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(&4096u32.to_le_bytes());
            data.extend_from_slice(&(-1i64).to_le_bytes());
        }
        let mut k = Vec::new();
        oracle(&mut &data[..], u64::MAX, &mut k).unwrap();
        assert_eq!(k.len(), 3);
        assert_eq!(k[0], k[2]);
        assert_ne!(k[0], k[1]);
        let mut k = Vec::new();
        let e = oracle(&mut &data[..30], u64::MAX, &mut k).unwrap_err();
        assert!(format!("{e:#}").contains("record 1"), "{e:#}");
    }
}
