//! Page contents: what a tenant's page `key` holds. Real pages come from
//! the crate's committed sample (`data/pages.bin`, embedded in the binary)
//! or from a file of raw 4 KiB pages; scenarios also use incompressible
//! pages (random bytes).

use std::sync::Arc;

use serde::Serialize;
use zswap::PAGE_SIZE;

use crate::workload::{mix, Rng};

/// The committed real-page sample: 2,048 pages of interpreter heaps.
static SAMPLE: &[u8] = include_bytes!("../../data/pages.bin");

/// Where a tenant's page contents come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contents {
    /// Real pages (the embedded sample, or `--pages FILE`).
    Real,
    /// Random bytes: nothing compresses.
    Incompressible,
}

/// The page sets contents are drawn from.
#[derive(Clone, Debug)]
pub struct PageSource {
    real: Arc<Vec<u8>>,
    random: Arc<Vec<u8>>,
    same_filled: f64,
}

impl PageSource {
    /// The embedded sample.
    pub fn embedded() -> Self {
        Self::from_bytes(SAMPLE.to_vec()).expect("the embedded sample is whole pages")
    }

    /// Pages from raw bytes (a multiple of 4 KiB, at least one page).
    pub fn from_bytes(real: Vec<u8>) -> anyhow::Result<Self> {
        if real.is_empty() || real.len() % PAGE_SIZE != 0 {
            anyhow::bail!(
                "a page file holds whole 4096-byte pages; this one has {} bytes",
                real.len()
            );
        }
        let mut rng = Rng::new(0x5eed);
        let random: Vec<u8> = (0..64 * PAGE_SIZE).map(|_| rng.next_u64() as u8).collect();
        let same = real
            .chunks_exact(PAGE_SIZE)
            .filter(|p| same_filled(p))
            .count();
        Ok(PageSource {
            same_filled: same as f64 / (real.len() / PAGE_SIZE) as f64,
            real: Arc::new(real),
            random: Arc::new(random),
        })
    }

    /// The share of the real pages that are same-filled (one 8-byte word
    /// repeated; zero pages above all), which zswap keeps as one word and
    /// charges nothing for.
    pub fn same_filled_share(&self) -> f64 {
        self.same_filled
    }

    /// The page `key` of a tenant salted `salt` holds. The same key always
    /// holds the same bytes, so a swap-in can be checked.
    pub fn page(&self, contents: &Contents, salt: u64, key: u64) -> &[u8] {
        let h = mix(salt ^ mix(key));
        match contents {
            Contents::Real => nth(&self.real, h),
            Contents::Incompressible => nth(&self.random, h),
        }
    }
}

/// Whether a page is one 8-byte word repeated, as zswap's
/// `zswap_is_page_same_filled` tests.
fn same_filled(page: &[u8]) -> bool {
    let first = &page[..8];
    page.chunks_exact(8).all(|w| w == first)
}

fn nth(pages: &[u8], h: u64) -> &[u8] {
    let n = (pages.len() / PAGE_SIZE) as u64;
    let i = (h % n) as usize;
    &pages[i * PAGE_SIZE..(i + 1) * PAGE_SIZE]
}
