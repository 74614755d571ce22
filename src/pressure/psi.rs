//! Pressure stall information: the kernel's `/proc/pressure/memory` (the
//! system) or a cgroup's `memory.pressure`, parsed, and turned into the
//! one number the controller keeps near its target: the share of wall time
//! some task stalled on memory since the last read.
//!
//! A PSI file holds two lines, `some` and `full`, each
//! `avg10=A avg60=B avg300=C total=T` (averages in percent, `total` the
//! cumulative stall in microseconds). The share over an interval is the
//! growth of `some`'s `total` over the wall time between two reads, as
//! Meta's senpai computes it; the first read, with nothing to compare,
//! uses `avg10`. Malformed text is a typed error, never a panic.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::Error;

/// Where the pressure a controller keeps near its target comes from.
///
/// ```
/// use zswap::{Error, PressureSource};
///
/// /// Pressure from a program's own signal, say the share of time its
/// /// request queue stalled (here a fixed reading).
/// struct QueueStalls(f64);
///
/// impl PressureSource for QueueStalls {
///     fn read(&mut self) -> Result<f64, Error> {
///         Ok(self.0)
///     }
/// }
/// assert_eq!(QueueStalls(0.002).read()?, 0.002);
/// # Ok::<(), Error>(())
/// ```
pub trait PressureSource: Send {
    /// The share of wall time (0..=1) some task stalled on memory since
    /// the previous call.
    fn read(&mut self) -> Result<f64, Error>;
}

/// One line of a PSI file.
///
/// ```
/// use zswap::Psi;
/// let psi: Psi = "some avg10=0.25 avg60=0.10 avg300=0.05 total=900".parse()?;
/// assert_eq!((psi.some.avg10, psi.some.total_us), (0.25, 900));
/// assert!(psi.full.is_none());
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PsiLine {
    /// Percent of the last 10 s stalled.
    pub avg10: f64,
    /// Percent of the last 60 s.
    pub avg60: f64,
    /// Percent of the last 300 s.
    pub avg300: f64,
    /// Microseconds stalled since boot (or the cgroup's creation).
    pub total_us: u64,
}

/// A PSI file's two lines.
///
/// ```
/// use zswap::Psi;
/// let text = "some avg10=1.50 avg60=0.80 avg300=0.20 total=123456\n\
///             full avg10=0.50 avg60=0.10 avg300=0.00 total=4567\n";
/// let psi: Psi = text.parse()?;
/// assert_eq!(psi.some.total_us, 123_456);
/// assert_eq!(psi.full.unwrap().avg10, 0.5);
/// assert!("some avg10=x".parse::<Psi>().is_err());
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Psi {
    /// Some task stalled.
    pub some: PsiLine,
    /// Every task stalled (absent from the kernel's CPU file, and from
    /// kernels before 5.13 for the system's).
    pub full: Option<PsiLine>,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Pressure {
        path: "PSI text".into(),
        reason: reason.into(),
    }
}

fn parse_line(fields: std::str::SplitAsciiWhitespace<'_>) -> Result<PsiLine, Error> {
    let mut line = PsiLine::default();
    let mut seen = 0u8;
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| malformed(format!("field {field:?} has no '='")))?;
        let avg = || -> Result<f64, Error> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=100.0).contains(v))
                .ok_or_else(|| malformed(format!("{key}={value:?} is not a percentage")))
        };
        match key {
            "avg10" => line.avg10 = avg()?,
            "avg60" => line.avg60 = avg()?,
            "avg300" => line.avg300 = avg()?,
            "total" => {
                line.total_us = value
                    .parse()
                    .map_err(|_| malformed(format!("total={value:?} is not a count")))?
            }
            // Later kernels may add fields: ignored.
            _ => continue,
        }
        seen += 1;
    }
    if seen < 4 {
        return Err(malformed("a line lacks avg10, avg60, avg300 or total"));
    }
    Ok(line)
}

impl std::str::FromStr for Psi {
    type Err = Error;

    fn from_str(text: &str) -> Result<Psi, Error> {
        let (mut some, mut full) = (None, None);
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = l.split_ascii_whitespace();
            match fields.next() {
                Some("some") => some = Some(parse_line(fields)?),
                Some("full") => full = Some(parse_line(fields)?),
                _ => return Err(malformed(format!("unexpected line {l:?}"))),
            }
        }
        Ok(Psi {
            some: some.ok_or_else(|| malformed("no 'some' line"))?,
            full,
        })
    }
}

/// A PSI file read at each [`read`](PressureSource::read).
///
/// ```no_run
/// use zswap::{PressureSource, PsiFile};
/// let mut psi = PsiFile::system()?; // /proc/pressure/memory
/// let share = psi.read()?; // 0.0..=1.0 of the time since the last read
/// # Ok::<(), zswap::Error>(())
/// ```
#[derive(Debug)]
pub struct PsiFile {
    path: PathBuf,
    last: Option<(u64, Instant)>,
}

/// The system's memory pressure file.
pub const SYSTEM_MEMORY_PSI: &str = "/proc/pressure/memory";

impl PsiFile {
    /// The system's memory pressure, `/proc/pressure/memory`.
    pub fn system() -> Result<Self, Error> {
        Self::open(SYSTEM_MEMORY_PSI)
    }

    /// A cgroup's memory pressure: `dir/memory.pressure`.
    pub fn cgroup(dir: impl AsRef<Path>) -> Result<Self, Error> {
        Self::open(dir.as_ref().join("memory.pressure"))
    }

    /// The PSI file at `path`, read once now to check it is there and
    /// well formed: a kernel without PSI (built without `CONFIG_PSI`, or
    /// booted with `psi=0`) has no such file, or refuses to read it, and
    /// that is a clear error here rather than at the first step.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let f = PsiFile {
            path: path.as_ref().to_path_buf(),
            last: None,
        };
        f.sample()?;
        Ok(f)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads and parses the file now.
    pub fn sample(&self) -> Result<Psi, Error> {
        let shown = self.path.display().to_string();
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::Pressure {
            path: shown.clone(),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::Unsupported => format!(
                    "no pressure stall information ({e}): the kernel needs CONFIG_PSI, \
                     not booted with psi=0, and for a cgroup, cgroup v2"
                ),
                _ => e.to_string(),
            },
        })?;
        text.parse::<Psi>().map_err(|e| match e {
            Error::Pressure { reason, .. } => Error::Pressure {
                path: shown,
                reason,
            },
            other => other,
        })
    }
}

impl PressureSource for PsiFile {
    fn read(&mut self) -> Result<f64, Error> {
        let psi = self.sample()?;
        let now = Instant::now();
        let share = match self.last {
            Some((total, at)) => {
                let wall = now.duration_since(at).as_micros() as f64;
                let stalled = psi.some.total_us.saturating_sub(total) as f64;
                if wall > 0.0 {
                    (stalled / wall).min(1.0)
                } else {
                    psi.some.avg10 / 100.0
                }
            }
            None => psi.some.avg10 / 100.0,
        };
        self.last = Some((psi.some.total_us, now));
        Ok(share)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn malformed_text_is_a_typed_error_never_a_panic() {
        for bad in [
            "",
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0",
            "some avg10=0.00 avg60=0.00 avg300=0.00",
            "some avg10=NaN avg60=0.00 avg300=0.00 total=0",
            "some avg10=101 avg60=0.00 avg300=0.00 total=0",
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1",
            "some avg10 avg60=0.00 avg300=0.00 total=0",
            "partial avg10=0.00 avg60=0.00 avg300=0.00 total=0",
        ] {
            assert!(
                matches!(bad.parse::<Psi>(), Err(Error::Pressure { .. })),
                "{bad:?}"
            );
        }
        // Garbage of every byte never panics.
        let mut x = 7u64;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"some full avg10=0.5 total=9\n x"[(x % 30) as usize]
                })
                .collect();
            let _ = String::from_utf8_lossy(&bytes).parse::<Psi>();
        }
    }

    #[test]
    fn the_share_is_the_growth_of_the_total_over_wall_time() {
        let dir = std::env::temp_dir().join(format!("zswap-psi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("memory.pressure");
        let write = |total: u64| {
            std::fs::write(
                &file,
                format!(
                    "some avg10=2.00 avg60=1.00 avg300=0.50 total={total}\n\
                     full avg10=1.00 avg60=0.50 avg300=0.25 total={}\n",
                    total / 2
                ),
            )
            .unwrap()
        };
        write(1_000);
        let mut psi = PsiFile::cgroup(&dir).unwrap();
        assert_eq!(psi.read().unwrap(), 0.02, "the first read: avg10");
        std::thread::sleep(std::time::Duration::from_millis(50));
        write(1_000 + 25_000); // 25 ms stalled in about 50 ms
        let share = psi.read().unwrap();
        assert!(share > 0.1 && share <= 0.5, "{share}");
        std::fs::write(&file, "some avg10=oops").unwrap();
        let e = psi.read().unwrap_err();
        assert!(e.to_string().contains("memory.pressure"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
        let e = PsiFile::cgroup(&dir).unwrap_err();
        assert!(e.to_string().contains("CONFIG_PSI"), "{e}");
    }

    /// The real file, where the kernel has one: it parses (this machine's
    /// may read zero throughout, which is still a reading).
    #[test]
    fn the_system_file_parses_where_it_exists() {
        match PsiFile::system() {
            Ok(mut psi) => {
                let share = psi.read().unwrap();
                assert!((0.0..=1.0).contains(&share));
            }
            Err(Error::Pressure { reason, .. }) => {
                eprintln!("no PSI here: {reason}");
            }
            Err(e) => panic!("{e}"),
        }
    }
}
