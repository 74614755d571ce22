//! Where written-back pages go: the [`SwapDevice`] trait and its backends.
//!
//! - [`FileDevice`]: a swap file at a path; positioned reads and writes at
//!   `slot × 4096` (`pread`/`pwrite`, so threads never share a cursor or a
//!   lock). Durability: none is promised or paid for. Like the kernel's swap,
//!   the file's contents mean nothing after the process ends, so there is no
//!   `fsync`; a write is complete when `pwrite` has taken all its bytes, and
//!   a short or failed write is an error the caller sees. Buffered by
//!   default (a written page lands in the page cache and the kernel flushes
//!   it later), or direct ([`FileDevice::create_direct`], `O_DIRECT`) as
//!   the kernel itself writes swap: the page goes to the disk, and memory
//!   written back is memory freed, not moved into the page cache. Direct
//!   I/O needs 4 KiB-aligned buffers; a caller's unaligned page goes
//!   through a per-thread aligned copy.
//! - [`MemDevice`]: pages in memory, for tests and for programs that want
//!   zswap's accounting without a disk.
//! - [`Checksummed`]: wraps any device with a per-page CRC32C kept in
//!   memory, so a page corrupted on the device reads as [`Error::Corrupt`],
//!   never as wrong data. [`FileDevice`]'s constructors return their file
//!   wrapped so; the `_unchecked` ones, for benchmarks and for callers
//!   whose storage checks itself, return the bare file.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::sync::Mutex;
use crate::{Checksummed, Error, IoError, PAGE_SIZE};

/// A page aligned for direct I/O (to 4 KiB, which covers every logical
/// block size).
#[repr(C, align(4096))]
pub(crate) struct AlignedPage(pub(crate) [u8; PAGE_SIZE]);

impl AlignedPage {
    /// A zeroed page on the heap.
    pub(crate) fn boxed() -> Box<AlignedPage> {
        Box::new(AlignedPage([0; PAGE_SIZE]))
    }
}

// The copy an unaligned page goes through on a direct device.
crate::sync::thread_scratch! {
    static BOUNCE: RefCell<Option<Box<AlignedPage>>> = RefCell::new(None);
}

/// Whether `page` may go to a direct device as it is.
fn is_aligned(page: &[u8]) -> bool {
    page.as_ptr().addr() % PAGE_SIZE == 0
}

/// Runs `f` on this thread's aligned bounce page.
fn with_bounce<R>(f: impl FnOnce(&mut [u8; PAGE_SIZE]) -> Result<R, Error>) -> Result<R, Error> {
    BOUNCE.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| {
            Error::Io(IoError::new(
                std::io::ErrorKind::WouldBlock,
                "direct I/O bounce buffer in use",
            ))
        })?;
        f(&mut slot.get_or_insert_with(AlignedPage::boxed).0)
    })
}

/// A device of 4 KiB pages addressed by slot offset.
///
/// ```
/// use std::sync::Mutex;
/// use zswap::{Error, GroupId, Groups, SwapDevice, Zswap, ZswapConfig, PAGE_SIZE};
///
/// /// Pages kept in one vector (a device of your own: a block device, a
/// /// remote store, a file with its own format).
/// struct VecDevice(Mutex<Vec<u8>>);
///
/// impl SwapDevice for VecDevice {
///     fn pages(&self) -> u64 {
///         (self.0.lock().unwrap().len() / PAGE_SIZE) as u64
///     }
///     fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
///         let at = offset as usize * PAGE_SIZE;
///         page.copy_from_slice(&self.0.lock().unwrap()[at..at + PAGE_SIZE]);
///         Ok(())
///     }
///     fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
///         let at = offset as usize * PAGE_SIZE;
///         self.0.lock().unwrap()[at..at + PAGE_SIZE].copy_from_slice(page);
///         Ok(())
///     }
/// }
///
/// let zswap = Zswap::new(ZswapConfig::default(), &Groups::new())?;
/// zswap.swapon(Box::new(VecDevice(Mutex::new(vec![0; 16 * PAGE_SIZE]))))?;
/// let slot = zswap.swap_out(&[3u8; PAGE_SIZE], GroupId::ROOT)?;
/// let mut back = [0u8; PAGE_SIZE];
/// zswap.swap_in(slot, &mut back)?;
/// assert_eq!(back, [3u8; PAGE_SIZE]);
/// # Ok::<(), Error>(())
/// ```
pub trait SwapDevice: Send + Sync {
    /// Pages the device holds.
    fn pages(&self) -> u64;

    /// Reads page `offset` into `page` (exactly [`PAGE_SIZE`] bytes).
    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error>;

    /// Writes `page` (exactly [`PAGE_SIZE`] bytes) at `offset`.
    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error>;

    /// Page `offset` no longer holds anything (the kernel's swap discard):
    /// its slot was freed. A device may drop what it keeps for the page
    /// ([`Checksummed`](crate::Checksummed) drops its sum, and the sums of a cluster with none
    /// left). Zswap calls it, holding the slot's pin, before the slot can
    /// be reused. Does nothing by default.
    fn discard(&self, offset: u64) {
        let _ = offset;
    }
}

pub(super) fn check(pages: u64, offset: u64, len: usize) -> Result<(), Error> {
    if len != PAGE_SIZE {
        return Err(Error::PageSize(len));
    }
    if offset >= pages {
        return Err(Error::Io(IoError::new(
            std::io::ErrorKind::InvalidInput,
            format!("page {offset} beyond a device of {pages} pages"),
        )));
    }
    Ok(())
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.into())
    }
}

/// A swap file.
///
/// The constructors return it inside [`Checksummed`]: a page the disk, the
/// file system or another process corrupted reads as [`Error::Corrupt`]
/// (and zswap's load as that error, the slot kept), never as wrong bytes.
///
/// ```
/// use zswap::{Error, FileDevice, SwapDevice};
/// let dev = FileDevice::temp(4)?; // removed when dropped
/// dev.write_page(2, &[7u8; 4096])?;
/// let mut page = [0u8; 4096];
/// dev.read_page(2, &mut page)?;
/// assert_eq!(page, [7u8; 4096]);
/// // Bytes changed behind the device's back are caught:
/// std::os::unix::fs::FileExt::write_all_at(dev.inner().file(), &[0], 2 * 4096)?;
/// assert!(matches!(dev.read_page(2, &mut page), Err(Error::Corrupt(2))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    pages: u64,
    path: PathBuf,
    remove_on_drop: bool,
    direct: bool,
}

impl FileDevice {
    /// Creates (or truncates) the file at `path`, sized for `pages` pages
    /// (sparse: nothing is written until pages are). Buffered I/O, each
    /// page checksummed.
    pub fn create(path: impl AsRef<Path>, pages: u64) -> Result<Checksummed<Self>, Error> {
        Self::open(path.as_ref(), pages, false).map(Checksummed::new)
    }

    /// As [`create`](Self::create), with direct I/O (`O_DIRECT`): pages
    /// bypass the page cache, as the kernel's swap writes do. A file system
    /// without direct I/O (tmpfs among them) refuses it with
    /// [`Error::Io`].
    pub fn create_direct(path: impl AsRef<Path>, pages: u64) -> Result<Checksummed<Self>, Error> {
        Self::open(path.as_ref(), pages, true).map(Checksummed::new)
    }

    /// As [`create`](Self::create) (or [`create_direct`](Self::create_direct)
    /// if `direct`) without the checksums: what the storage returns is
    /// what a read returns, corrupted or not. For benchmarks, and for
    /// storage that checks itself (a file system with data checksums).
    pub fn create_unchecked(
        path: impl AsRef<Path>,
        pages: u64,
        direct: bool,
    ) -> Result<Self, Error> {
        Self::open(path.as_ref(), pages, direct)
    }

    fn open(path: &Path, pages: u64, direct: bool) -> Result<Self, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = path.to_path_buf();
        let bytes = pages
            .checked_mul(PAGE_SIZE as u64)
            .filter(|_| pages > 0)
            .ok_or_else(|| Error::BadConfig(format!("{pages} device pages")))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(if direct { libc::O_DIRECT } else { 0 })
            .open(&path)
            .map_err(|e| {
                let context = format!(
                    "{}{}",
                    path.display(),
                    if direct { " (O_DIRECT)" } else { "" }
                );
                Error::Io(IoError::with_context(context, e))
            })?;
        file.set_len(bytes)?;
        Ok(FileDevice {
            file,
            pages,
            path,
            remove_on_drop: false,
            direct,
        })
    }

    /// A swap file in the system's temporary directory, removed when the
    /// device is dropped. Buffered I/O, each page checksummed.
    pub fn temp(pages: u64) -> Result<Checksummed<Self>, Error> {
        Self::temp_in(&std::env::temp_dir(), pages, false)
    }

    /// As [`temp`](Self::temp) in `dir`, with direct I/O if `direct` (see
    /// [`create_direct`](Self::create_direct)).
    pub fn temp_in(dir: &Path, pages: u64, direct: bool) -> Result<Checksummed<Self>, Error> {
        Self::temp_unchecked(dir, pages, direct).map(Checksummed::new)
    }

    /// As [`temp_in`](Self::temp_in) without the checksums (see
    /// [`create_unchecked`](Self::create_unchecked)).
    pub fn temp_unchecked(dir: &Path, pages: u64, direct: bool) -> Result<Self, Error> {
        use crate::sync::unmodeled::{AtomicU64 as StdCounter, Ordering as O};
        // Not a synchronization primitive: a process-wide counter for
        // unique file names.
        static NEXT: StdCounter = StdCounter::new(0);
        let name = format!(
            "zswap-{}-{}.swap",
            std::process::id(),
            NEXT.fetch_add(1, O::Relaxed)
        );
        let mut dev = Self::open(&dir.join(name), pages, direct)?;
        dev.remove_on_drop = true;
        Ok(dev)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is open for direct I/O.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The open file (to inspect it, or to fault-inject in tests).
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for FileDevice {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl SwapDevice for FileDevice {
    fn pages(&self) -> u64 {
        self.pages
    }

    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        check(self.pages, offset, page.len())?;
        let at = offset * PAGE_SIZE as u64;
        if !self.direct || is_aligned(page) {
            return Ok(self.file.read_exact_at(page, at)?);
        }
        with_bounce(|buf| {
            self.file.read_exact_at(buf, at)?;
            page.copy_from_slice(buf);
            Ok(())
        })
    }

    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        check(self.pages, offset, page.len())?;
        let at = offset * PAGE_SIZE as u64;
        if !self.direct || is_aligned(page) {
            return Ok(self.file.write_all_at(page, at)?);
        }
        with_bounce(|buf| {
            buf.copy_from_slice(page);
            Ok(self.file.write_all_at(buf, at)?)
        })
    }
}

/// One page of a [`MemDevice`]: `None` until written.
type MemPage = Mutex<Option<Box<[u8]>>>;

/// Pages in memory; a page never written reads as zeros.
///
/// ```
/// use zswap::{MemDevice, SwapDevice};
/// let dev = MemDevice::new(4);
/// let mut page = [1u8; 4096];
/// dev.read_page(3, &mut page)?;
/// assert_eq!(page, [0u8; 4096]); // never written: zeros
/// dev.write_page(3, &[9u8; 4096])?;
/// dev.read_page(3, &mut page)?;
/// assert_eq!(page, [9u8; 4096]);
/// assert!(dev.write_page(4, &page).is_err()); // beyond the device
/// # Ok::<(), zswap::Error>(())
/// ```
pub struct MemDevice {
    pages: Box<[MemPage]>,
}

impl std::fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemDevice")
            .field("pages", &self.pages.len())
            .finish()
    }
}

impl MemDevice {
    /// A device of `pages` pages.
    pub fn new(pages: u64) -> Self {
        MemDevice {
            pages: (0..pages).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl SwapDevice for MemDevice {
    fn pages(&self) -> u64 {
        self.pages.len() as u64
    }

    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        check(self.pages(), offset, page.len())?;
        match &*self.pages[offset as usize].lock() {
            Some(p) => page.copy_from_slice(p),
            None => page.fill(0),
        }
        Ok(())
    }

    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        check(self.pages(), offset, page.len())?;
        *self.pages[offset as usize].lock() = Some(page.into());
        Ok(())
    }

    /// Drops the page's copy: its memory goes back.
    fn discard(&self, offset: u64) {
        if let Some(p) = self.pages.get(offset as usize) {
            *p.lock() = None;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::Checksummed;

    fn exercise(dev: &dyn SwapDevice) {
        let mut page = vec![0u8; PAGE_SIZE];
        dev.read_page(0, &mut page).unwrap();
        dev.write_page(2, &[9u8; PAGE_SIZE]).unwrap();
        dev.read_page(2, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 9));
        assert_eq!(dev.write_page(2, &[1u8; 100]), Err(Error::PageSize(100)));
        assert!(dev.write_page(dev.pages(), &[0u8; PAGE_SIZE]).is_err());
        assert!(dev.read_page(u64::MAX, &mut page).is_err());
    }

    #[test]
    fn backends_read_what_they_wrote() {
        exercise(&MemDevice::new(4));
        let f = FileDevice::temp(4).unwrap();
        let path = f.inner().path().to_path_buf();
        exercise(&f);
        exercise(f.inner());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            4 * PAGE_SIZE as u64
        );
        drop(f);
        assert!(!path.exists(), "a temp device removes its file");
        exercise(&Checksummed::new(MemDevice::new(4)));
        let bare = FileDevice::temp_unchecked(&std::env::temp_dir(), 4, false).unwrap();
        exercise(&bare);
    }

    /// The default file device catches a flipped byte; the unchecked one
    /// returns it.
    #[test]
    fn corruption_on_a_file_is_an_error() {
        let dev = FileDevice::temp(2).unwrap();
        dev.write_page(1, &[5u8; PAGE_SIZE]).unwrap();
        // Flip one byte in the file itself.
        dev.inner()
            .file
            .write_all_at(&[6], PAGE_SIZE as u64 + 77)
            .unwrap();
        let mut page = vec![0u8; PAGE_SIZE];
        assert_eq!(dev.read_page(1, &mut page), Err(Error::Corrupt(1)));
        // Unwritten pages are not checked.
        dev.read_page(0, &mut page).unwrap();
        let bare = dev.into_inner();
        bare.read_page(1, &mut page).unwrap();
        assert_eq!(page[77], 6);
    }

    /// A direct device (where the file system has direct I/O: the test
    /// tries the temporary directory, then the crate's own) reads what it
    /// wrote through aligned and unaligned buffers alike; where neither has
    /// it, opening is a typed error that names `O_DIRECT`.
    #[test]
    fn direct_io_reads_what_it_wrote() {
        let dirs = [
            std::env::temp_dir(),
            PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        ];
        let mut refused = Vec::new();
        let dev = dirs
            .iter()
            .find_map(|d| match FileDevice::temp_in(d, 4, true) {
                Ok(dev) => Some(dev),
                Err(e) => {
                    assert!(
                        matches!(&e, Error::Io(io) if io.to_string().contains("O_DIRECT")),
                        "{e}"
                    );
                    refused.push(e);
                    None
                }
            });
        let Some(dev) = dev else {
            eprintln!("no direct I/O here: {refused:?}");
            return;
        };
        assert!(dev.inner().is_direct());
        exercise(&dev);
        let mut aligned = AlignedPage::boxed();
        let mut unaligned = vec![0u8; PAGE_SIZE + 1];
        let odd: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 7) as u8).collect();
        unaligned[1..].copy_from_slice(&odd);
        dev.write_page(1, &unaligned[1..]).unwrap();
        dev.read_page(1, &mut aligned.0).unwrap();
        assert_eq!(&aligned.0[..], &odd[..]);
        aligned.0.fill(3);
        dev.write_page(3, &aligned.0).unwrap();
        dev.read_page(3, &mut unaligned[1..]).unwrap();
        assert!(unaligned[1..].iter().all(|&b| b == 3));
    }
}
