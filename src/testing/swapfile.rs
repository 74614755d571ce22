//! A harness for corrupted swap-file bytes: pages go out through the facade
//! (straight to the device, or into zswap and then written back), the bytes
//! under them are flipped or torn behind the crate's back, and every
//! `swap_in` must return the page that went out or [`Error::Corrupt`] —
//! never wrong data, never a panic — with the checksummed device on. Driven
//! by the `swapfile` fuzz target and its corpus replay in `tests/`.

use crate::sync::Arc;

use crate::{
    Checksummed, Error, GroupId, Groups, MemDevice, PoolLimit, SwapDevice, SwapSlot, Topology,
    Zswap, ZswapConfig, PAGE_SIZE,
};

/// Pages of the device.
const DEVICE_PAGES: u64 = 64;

/// One operation; picks are taken modulo what exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SwapfileOp {
    /// `swap_out` of page `seed` by the group that never stores in zswap
    /// (`direct`) or by the one that does.
    SwapOut { seed: u8, direct: bool },
    /// `shrink_group` of the zswap group: writes its coldest pages back.
    Shrink,
    /// XORs `mask` into byte `at` of a live slot's device page.
    Flip { pick: u8, at: u16, mask: u8 },
    /// Overwrites the first `len` bytes of a live slot's device page with
    /// `byte` (a torn or stray write).
    Tear { pick: u8, len: u16, byte: u8 },
    /// `swap_in` of a live slot.
    SwapIn { pick: u8 },
    /// `free` of a live slot.
    Free { pick: u8 },
}

/// Decodes operations from fuzzer bytes; a short tail reads as zeros.
pub fn decode_ops(data: &[u8]) -> Vec<SwapfileOp> {
    let mut it = data.iter().copied();
    let mut ops = Vec::new();
    while let Some(tag) = it.next() {
        let mut b = || it.next().unwrap_or(0);
        ops.push(match tag % 8 {
            0 | 1 => SwapfileOp::SwapOut {
                seed: b(),
                direct: tag & 0x80 != 0,
            },
            2 => SwapfileOp::Shrink,
            3 => SwapfileOp::Flip {
                pick: b(),
                at: u16::from_le_bytes([b(), b()]),
                mask: b(),
            },
            4 => SwapfileOp::Tear {
                pick: b(),
                len: u16::from_le_bytes([b(), b()]),
                byte: b(),
            },
            5 | 6 => SwapfileOp::SwapIn { pick: b() },
            _ => SwapfileOp::Free { pick: b() },
        });
    }
    ops
}

/// The device as both the facade and the harness see it: the harness
/// corrupts the memory under the checksums.
struct Shared(Arc<Checksummed<MemDevice>>);

impl SwapDevice for Shared {
    fn pages(&self) -> u64 {
        self.0.pages()
    }
    fn read_page(&self, offset: u64, page: &mut [u8]) -> Result<(), Error> {
        self.0.read_page(offset, page)
    }
    fn write_page(&self, offset: u64, page: &[u8]) -> Result<(), Error> {
        self.0.write_page(offset, page)
    }
}

/// A page that compresses somewhat and differs per seed.
fn page_for(seed: u8) -> Vec<u8> {
    let noise = super::random_page(u64::from(seed) + 1);
    (0..PAGE_SIZE)
        .map(|i| {
            if i % 3 == 0 {
                noise[i]
            } else {
                seed ^ (i / 64) as u8
            }
        })
        .collect()
}

/// Runs the operations decoded from `data`; panics when a `swap_in`
/// returns wrong data, an error other than [`Error::Corrupt`], or a
/// `Corrupt` for a page whose device bytes were never touched.
pub fn run_bytes(data: &[u8]) {
    let groups = Groups::new();
    let zswap = Zswap::new(
        ZswapConfig::default()
            .shrink_worker(false)
            .topology(Topology::single())
            .max_pool(PoolLimit::Bytes(1 << 20)),
        &groups,
    )
    .expect("valid config");
    let device = Arc::new(Checksummed::new(MemDevice::new(DEVICE_PAGES)));
    zswap
        .swapon(Box::new(Shared(Arc::clone(&device))))
        .expect("swapon");
    let root = GroupId::ROOT;
    let direct: GroupId = groups.create(root).expect("group");
    groups.set_zswap_max(direct, Some(0)).expect("limit");
    let cached: GroupId = groups.create(root).expect("group");

    // (slot, seed, device bytes touched since the page went out)
    let mut live: Vec<(SwapSlot, u8, bool)> = Vec::new();
    let mut buf = vec![0u8; PAGE_SIZE];
    for op in decode_ops(data).into_iter().take(300) {
        match op {
            SwapfileOp::SwapOut { seed, direct: d } => {
                let g = if d { direct } else { cached };
                match zswap.swap_out(&page_for(seed), g) {
                    Ok(slot) => live.push((slot, seed, false)),
                    Err(Error::SwapFull) => {}
                    Err(e) => panic!("swap_out: {e}"),
                }
            }
            SwapfileOp::Shrink => {
                zswap.shrink_group(cached).expect("shrink");
            }
            SwapfileOp::Flip { pick, at, mask } => {
                if let Some(l) = pick_live(&mut live, pick) {
                    let off = u64::from(l.0.offset);
                    let inner = device.inner();
                    inner.read_page(off, &mut buf).expect("inner read");
                    buf[usize::from(at) % PAGE_SIZE] ^= mask;
                    inner.write_page(off, &buf).expect("inner write");
                    l.2 |= mask != 0;
                }
            }
            SwapfileOp::Tear { pick, len, byte } => {
                if let Some(l) = pick_live(&mut live, pick) {
                    let off = u64::from(l.0.offset);
                    let inner = device.inner();
                    inner.read_page(off, &mut buf).expect("inner read");
                    let n = usize::from(len) % (PAGE_SIZE + 1);
                    let touched = buf[..n].iter().any(|&b| b != byte);
                    buf[..n].fill(byte);
                    inner.write_page(off, &buf).expect("inner write");
                    l.2 |= touched;
                }
            }
            SwapfileOp::SwapIn { pick } => {
                if live.is_empty() {
                    continue;
                }
                let i = usize::from(pick) % live.len();
                let (slot, seed, touched) = live[i];
                match zswap.swap_in(slot, &mut buf) {
                    Ok(_) => {
                        assert!(buf == page_for(seed), "swap_in returned wrong data");
                        live.swap_remove(i);
                    }
                    Err(Error::Corrupt(_)) => {
                        assert!(touched, "Corrupt for a page nobody touched");
                        // The slot stays allocated; the program frees it.
                        zswap.free(slot).expect("free after corrupt");
                        live.swap_remove(i);
                    }
                    Err(e) => panic!("swap_in: {e}"),
                }
            }
            SwapfileOp::Free { pick } => {
                if live.is_empty() {
                    continue;
                }
                let (slot, ..) = live.swap_remove(usize::from(pick) % live.len());
                zswap.free(slot).expect("free");
            }
        }
    }
    for (slot, ..) in live {
        zswap.free(slot).expect("free at the end");
    }
    let s = zswap.stats();
    assert_eq!(s.stored_pages, 0, "entries left after every slot was freed");
}

/// The live slot `pick` names, if any slot is live.
fn pick_live(live: &mut [(SwapSlot, u8, bool)], pick: u8) -> Option<&mut (SwapSlot, u8, bool)> {
    if live.is_empty() {
        None
    } else {
        let n = live.len();
        live.get_mut(usize::from(pick) % n)
    }
}
