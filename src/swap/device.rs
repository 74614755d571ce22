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
//! - [`Checksummed`]: wraps any device with a per-page 64-bit checksum kept
//!   in memory, so a page corrupted on the device reads as
//!   [`Error::Corrupt`], never as wrong data.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::sync::Mutex;
use crate::{Error, IoError, PAGE_SIZE};

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
    /// (sparse: nothing is written until pages are). Buffered I/O.
    pub fn create(path: impl AsRef<Path>, pages: u64) -> Result<Self, Error> {
        Self::open(path.as_ref(), pages, false)
    }

    /// As [`create`](Self::create), with direct I/O (`O_DIRECT`): pages
    /// bypass the page cache, as the kernel's swap writes do. A file system
    /// without direct I/O (tmpfs among them) refuses it with
    /// [`Error::Io`].
    pub fn create_direct(path: impl AsRef<Path>, pages: u64) -> Result<Self, Error> {
        Self::open(path.as_ref(), pages, true)
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
    /// device is dropped. Buffered I/O.
    pub fn temp(pages: u64) -> Result<Self, Error> {
        Self::temp_in(&std::env::temp_dir(), pages, false)
    }

    /// As [`temp`](Self::temp) in `dir`, with direct I/O if `direct` (see
    /// [`create_direct`](Self::create_direct)).
    pub fn temp_in(dir: &Path, pages: u64, direct: bool) -> Result<Self, Error> {
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
        let path = f.path().to_path_buf();
        exercise(&f);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            4 * PAGE_SIZE as u64
        );
        drop(f);
        assert!(!path.exists(), "a temp device removes its file");
        exercise(&Checksummed::new(MemDevice::new(4)));
    }

    #[test]
    fn corruption_on_a_file_is_an_error() {
        let dev = Checksummed::new(FileDevice::temp(2).unwrap());
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
        assert!(dev.is_direct());
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
