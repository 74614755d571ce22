//! [`Checksummed`]: any [`SwapDevice`] with a CRC32C per written page,
//! kept in memory, so a page corrupted on the device reads as
//! [`Error::Corrupt`], never as wrong data.
//!
//! The sums are kept per cluster of 512 pages, made at the cluster's first
//! write and dropped when [`SwapDevice::discard`] leaves it with no written
//! page: wrapping a 64 GiB device costs 256 KiB until pages are written,
//! not 128 MiB. A read loads its cluster lock-free (an `ArcSwapOption`
//! guard keeps it alive); writes and discards, which change what a cluster
//! holds, serialize on one mutex, held for a few stores (the write to the
//! device itself happens before it).

use super::cluster::CLUSTER;
use super::device::check;
use crate::sync::{Arc, ArcSwapOption, AtomicU64, Mutex, Ordering};
use crate::{Error, SwapDevice};

/// Never written (or discarded): reads are not checked.
const UNWRITTEN: u64 = 0;
/// A write failed: the page's contents are unknown, reads fail.
const POISONED: u64 = 2;

/// The sums of one cluster of pages.
struct Sums {
    sums: [AtomicU64; CLUSTER],
    /// Pages of the cluster with a sum (under the device's mutex).
    written: AtomicU64,
}

/// A device with a CRC32C per page, kept in memory: a corrupted page reads
/// as [`Error::Corrupt`], never as wrong data. [`FileDevice`]'s
/// constructors return one; wrap any other device with [`new`](Self::new).
///
/// [`FileDevice`]: crate::FileDevice
///
/// ```
/// use zswap::{Checksummed, MemDevice, SwapDevice};
/// let dev = Checksummed::new(MemDevice::new(4));
/// dev.write_page(1, &[7u8; 4096]).unwrap();
/// let mut page = [0u8; 4096];
/// dev.read_page(1, &mut page).unwrap();
/// dev.inner().write_page(1, &[8u8; 4096]).unwrap(); // corrupt behind its back
/// assert!(dev.read_page(1, &mut page).is_err());
/// dev.discard(1); // the slot was freed: its sum goes
/// assert_eq!(dev.sum_bytes(), dev.table_bytes());
/// ```
pub struct Checksummed<D> {
    inner: D,
    clusters: Box<[ArcSwapOption<Sums>]>,
    /// Serializes the writes and discards that change a cluster's count.
    change: Mutex<()>,
}

impl<D: std::fmt::Debug> std::fmt::Debug for Checksummed<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checksummed")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// Set in every sum, so no sum equals a marker.
const SUMMED: u64 = 1 << 32;

/// The page's CRC32C (Castagnoli, as ext4, btrfs and iSCSI use; the
/// `crc32c` crate computes it with SSE4.2's or ARMv8's CRC instructions
/// where the CPU has them), tagged with [`SUMMED`]. It detects every error
/// burst of up to 32 bits and all but one in 2³² other corruptions.
fn checksum(page: &[u8]) -> u64 {
    SUMMED | u64::from(crc32c::crc32c(page))
}

impl<D: SwapDevice> Checksummed<D> {
    /// Wraps `inner`.
    pub fn new(inner: D) -> Self {
        let n = (inner.pages() as usize).div_ceil(CLUSTER);
        Checksummed {
            inner,
            clusters: (0..n).map(|_| ArcSwapOption::empty()).collect(),
            change: Mutex::new(()),
        }
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The wrapped device, unwrapped: reads are no longer checked.
    pub fn into_inner(self) -> D {
        self.inner
    }

    /// Heap bytes of the sums now: the cluster table and every cluster of
    /// sums that exists.
    pub fn sum_bytes(&self) -> usize {
        let live = self.clusters.iter().filter(|c| c.load().is_some()).count();
        self.table_bytes() + live * std::mem::size_of::<Sums>()
    }

    /// Heap bytes of the cluster table alone (the cost with nothing
    /// written).
    pub fn table_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.clusters)
    }

    /// The sum of page `offset` (in range); `UNWRITTEN` if it has none.
    fn sum(&self, offset: u64) -> u64 {
        let (c, i) = (offset as usize / CLUSTER, offset as usize % CLUSTER);
        self.clusters[c]
            .load()
            .as_ref()
            .map_or(UNWRITTEN, |s| s.sums[i].load(Ordering::Acquire))
    }

    /// Sets the sum of page `offset` (in range), making or dropping its
    /// cluster as the count of written pages says.
    fn set_sum(&self, offset: u64, sum: u64) {
        let (c, i) = (offset as usize / CLUSTER, offset as usize % CLUSTER);
        let _change = self.change.lock();
        let cell = &self.clusters[c];
        let mut guard = cell.load();
        if guard.is_none() {
            if sum == UNWRITTEN {
                return;
            }
            drop(guard);
            cell.swap(Some(Arc::new(Sums {
                sums: std::array::from_fn(|_| AtomicU64::new(UNWRITTEN)),
                written: AtomicU64::new(0),
            })));
            guard = cell.load();
        }
        let sums = guard.as_deref().expect("made above");
        let prev = sums.sums[i].swap(sum, Ordering::AcqRel);
        let written = sums.written.load(Ordering::Relaxed);
        let written = match (prev == UNWRITTEN, sum == UNWRITTEN) {
            (true, false) => written + 1,
            (false, true) => written - 1,
            _ => written,
        };
        sums.written.store(written, Ordering::Relaxed);
        if written == 0 {
            // Readers holding it keep it until they let go.
            drop(cell.swap(None));
        }
    }
}

impl<D: SwapDevice> SwapDevice for Checksummed<D> {
    fn pages(&self) -> u64 {
        self.inner.pages()
    }

    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        self.inner.read_page(offset, page)?;
        let want = self.sum(offset);
        if want != UNWRITTEN && want != checksum(page) {
            return Err(Error::Corrupt(offset));
        }
        Ok(())
    }

    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        check(self.pages(), offset, page.len())?;
        let r = self.inner.write_page(offset, page);
        let sum = if r.is_ok() { checksum(page) } else { POISONED };
        self.set_sum(offset, sum);
        r
    }

    fn discard(&self, offset: u64) {
        if offset < self.pages() {
            self.set_sum(offset, UNWRITTEN);
            self.inner.discard(offset);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{MemDevice, PAGE_SIZE};

    #[test]
    fn sums_live_only_while_pages_are_written() {
        let dev = Checksummed::new(MemDevice::new(3 * CLUSTER as u64));
        assert_eq!(dev.sum_bytes(), dev.table_bytes());
        dev.write_page(1, &[1; PAGE_SIZE]).unwrap();
        dev.write_page(2, &[2; PAGE_SIZE]).unwrap();
        dev.write_page(2, &[3; PAGE_SIZE]).unwrap(); // rewritten: still two
        dev.write_page(CLUSTER as u64 + 5, &[4; PAGE_SIZE]).unwrap();
        let one = std::mem::size_of::<Sums>();
        assert_eq!(dev.sum_bytes(), dev.table_bytes() + 2 * one);
        dev.discard(1);
        assert_eq!(dev.sum_bytes(), dev.table_bytes() + 2 * one);
        dev.discard(2);
        dev.discard(2); // twice: no harm
        assert_eq!(dev.sum_bytes(), dev.table_bytes() + one);
        let mut page = [0u8; PAGE_SIZE];
        dev.read_page(CLUSTER as u64 + 5, &mut page).unwrap();
        assert_eq!(page, [4; PAGE_SIZE]);
        // Corrupt it behind the sum's back: caught.
        dev.inner()
            .write_page(CLUSTER as u64 + 5, &[5; PAGE_SIZE])
            .unwrap();
        assert_eq!(
            dev.read_page(CLUSTER as u64 + 5, &mut page),
            Err(Error::Corrupt(CLUSTER as u64 + 5))
        );
        dev.discard(CLUSTER as u64 + 5);
        assert_eq!(dev.sum_bytes(), dev.table_bytes());
        dev.discard(u64::MAX); // out of range: nothing
    }

    /// The sum is the standard CRC32C (the check value of "123456789" is
    /// 0xE3069283), and it catches every single-bit flip of a page.
    #[test]
    fn the_sum_is_crc32c_and_catches_bit_flips() {
        assert_eq!(checksum(b"123456789"), SUMMED | 0xE306_9283);
        let dev = Checksummed::new(MemDevice::new(1));
        let page: Vec<u8> = (0..PAGE_SIZE).map(|i| (i * 31 % 251) as u8).collect();
        dev.write_page(0, &page).unwrap();
        let mut back = vec![0u8; PAGE_SIZE];
        for bit in (0..PAGE_SIZE * 8).step_by(7) {
            let mut bad = page.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            dev.inner().write_page(0, &bad).unwrap();
            assert_eq!(dev.read_page(0, &mut back), Err(Error::Corrupt(0)));
        }
        dev.inner().write_page(0, &page).unwrap();
        dev.read_page(0, &mut back).unwrap();
        assert_eq!(back, page);
    }
}
