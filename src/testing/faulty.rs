//! A fault-injecting swap device for soak tests: fails, or writes only part
//! of, a chosen share of writes, deterministically from a seed.

use crate::sync::{AtomicU64, Ordering};
use crate::{Error, SwapDevice, PAGE_SIZE};

/// Wraps a device; one write in `one_in` fails outright, and one in
/// `one_in` writes only half the page and then fails (a short write).
#[derive(Debug)]
pub struct FaultyDevice<D> {
    inner: D,
    one_in: u64,
    state: AtomicU64,
    /// Writes failed so far.
    pub failed: AtomicU64,
    /// Writes cut short so far.
    pub short: AtomicU64,
}

impl<D: SwapDevice> FaultyDevice<D> {
    /// Faults one write in `one_in` of each kind (0: never).
    pub fn new(inner: D, one_in: u64, seed: u64) -> Self {
        FaultyDevice {
            inner,
            one_in,
            state: AtomicU64::new(seed | 1),
            failed: AtomicU64::new(0),
            short: AtomicU64::new(0),
        }
    }

    fn roll(&self) -> u64 {
        // A shared xorshift; races only make it less predictable.
        let mut x = self.state.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.store(x, Ordering::Relaxed);
        x
    }
}

impl<D: SwapDevice> SwapDevice for FaultyDevice<D> {
    fn pages(&self) -> u64 {
        self.inner.pages()
    }

    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        self.inner.read_page(offset, page)
    }

    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        if self.one_in > 0 {
            match self.roll() % self.one_in {
                0 => {
                    self.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(std::io::Error::other("injected write failure").into());
                }
                1 => {
                    // Half a page lands, then the write fails: the device
                    // holds a torn page that must never be read as data.
                    let mut torn = vec![0u8; PAGE_SIZE];
                    self.inner.read_page(offset, &mut torn)?;
                    torn[..PAGE_SIZE / 2].copy_from_slice(&page[..PAGE_SIZE / 2]);
                    self.inner.write_page(offset, &torn)?;
                    self.short.fetch_add(1, Ordering::Relaxed);
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "injected short write",
                    )
                    .into());
                }
                _ => {}
            }
        }
        self.inner.write_page(offset, page)
    }
}
