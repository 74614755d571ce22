//! Anonymous memory regions: a tenant's memory and the pager's staging
//! pages. A region is mapped private and anonymous, read-write, with
//! transparent huge pages off (a move or a fault works on one 4 KiB page),
//! and unmapped when dropped. It also answers, from the kernel's own page
//! tables (`mincore`), how many of its pages are resident.

use std::io;

use zswap::PAGE_SIZE;

/// A private anonymous mapping of whole pages.
#[derive(Debug)]
pub struct Region {
    base: *mut u8,
    pages: usize,
}

// SAFETY: the region is plain memory; who touches which page when is the
// pager's and the workloads' business, and they only use raw pointers.
unsafe impl Send for Region {}
// SAFETY: as above: shared access goes through raw pointers only.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `pages` pages.
    pub fn new(pages: usize) -> io::Result<Region> {
        let len = pages * PAGE_SIZE;
        // SAFETY: a fresh anonymous mapping at an address the kernel picks.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = Region {
            base: p.cast(),
            pages,
        };
        // SAFETY: advice on our own mapping; it changes no contents.
        if unsafe { libc::madvise(p, len, libc::MADV_NOHUGEPAGE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(region)
    }

    /// The first byte.
    pub fn base(&self) -> *mut u8 {
        self.base
    }

    /// The first byte's address.
    pub fn addr(&self) -> u64 {
        self.base as u64
    }

    /// Its size in pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        (self.pages * PAGE_SIZE) as u64
    }

    /// Page `i`'s address.
    pub fn page_addr(&self, i: usize) -> u64 {
        debug_assert!(i < self.pages);
        self.addr() + (i * PAGE_SIZE) as u64
    }

    /// Which page `addr` falls in, if it is in this region.
    pub fn page_of(&self, addr: u64) -> Option<usize> {
        let off = addr.checked_sub(self.addr())?;
        (off < self.len()).then_some(off as usize / PAGE_SIZE)
    }

    /// Frees the frames of `count` pages from page `i` on
    /// (`MADV_DONTNEED`): the range reads as missing again.
    pub fn discard(&self, i: usize, count: usize) -> io::Result<()> {
        // SAFETY: a page-aligned range inside our own mapping; dropping its
        // frames is what the caller asks for.
        let r = unsafe {
            libc::madvise(
                self.base.add(i * PAGE_SIZE).cast(),
                count * PAGE_SIZE,
                libc::MADV_DONTNEED,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Pages of this region with a frame, by the kernel's `mincore`.
    pub fn resident(&self) -> io::Result<usize> {
        let mut vec = vec![0u8; self.pages];
        // SAFETY: `vec` has one byte per page of the range, as mincore
        // writes.
        let r =
            unsafe { libc::mincore(self.base.cast(), self.pages * PAGE_SIZE, vec.as_mut_ptr()) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(vec.iter().filter(|&&b| b & 1 != 0).count())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which nothing uses once its owner drops
        // it (the run joins every thread first).
        unsafe { libc::munmap(self.base.cast(), self.pages * PAGE_SIZE) };
    }
}

/// The process's resident set in bytes (`/proc/self/statm`, second field).
pub fn rss_bytes() -> io::Result<u64> {
    let s = std::fs::read_to_string("/proc/self/statm")?;
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "statm"))?;
    Ok(pages * PAGE_SIZE as u64)
}
