//! The pager: what it knows of every tenant page, and the two threads that
//! act on it — the fault handler (`handler.rs`), which serves missing-page
//! faults from the crate's [`Zswap::swap_in`], and the reclaimer
//! (`reclaim.rs`), which keeps each tenant under its resident limit by
//! moving its coldest pages out with `UFFDIO_MOVE` and handing them to
//! [`Zswap::swap_out`].
//!
//! # Page states
//!
//! Each page has one state word, written only by the pager's two threads:
//!
//! | state | meaning | who leaves it |
//! |---|---|---|
//! | `NEVER` | never touched: a fault maps zeros | handler → `RESIDENT` |
//! | `RESIDENT` | mapped in the tenant's region, on its LRU list | an evictor → `OUTGOING` |
//! | `OUTGOING` | being moved out and stored | that evictor → `SWAPPED` (or back to `RESIDENT`) |
//! | `SWAPPED` | held by zswap or the swap file under a slot | handler → `RESIDENT` |
//!
//! An evictor is the reclaimer thread's, or the handler's own when it
//! reclaims directly (`reclaim.rs`); a page is isolated from its list by one
//! of them only. The word also carries the slot's offset and the time the
//! page went out (for the refault measure).
//!
//! # Why no write is lost
//!
//! The reclaimer marks a page `OUTGOING` *before* it moves it, and moves it
//! with `UFFDIO_MOVE`, which takes the page table entry away under the page
//! table lock and flushes the TLB: a store that reached the page before the
//! move is in the page the reclaimer then reads (the same frame, now at the
//! staging address); a store after it finds no page and faults. The fault
//! handler, seeing `OUTGOING`, waits for the reclaimer to finish storing
//! (the reclaimer never waits for the handler, so this cannot deadlock) and
//! then swaps the page in — with the late store's page content intact, and
//! the store itself retried by the CPU once the page is back. No page is
//! read while another thread can still write it, and the workloads take no
//! lock of the pager's: they only touch memory.
//!
//! # How a page is known to be cold
//!
//! Linux gives a user-space pager no accessed bit for anonymous memory it
//! did not fault in itself: pagemap has none, idle page tracking
//! (`/sys/kernel/mm/page_idle`) is often compiled out (it is on the machine
//! this was written on), and soft-dirty may be too. What the pager does see
//! is every fault. So each tenant's [`ListLru`] list is ordered by fault
//! time: a page joins the tail when it is faulted in, and the reclaimer
//! takes from the head the page faulted in longest ago. A page that comes
//! back within a second of going out (a *refault*, the kernel's workingset
//! signal) is marked active, and the reclaimer gives an active page one
//! rotation (second chance) before it may take it. How well this works is
//! measured, not assumed: the report gives, per tenant, the share of pages
//! swapped out that faulted back within a second, and for the key-value
//! table the fewest faults an oracle keeping the most used pages could have
//! had. On that table the order by fault time does poorly (BENCHMARKS.md:
//! 21.5% of lookups fault against the oracle's 12.9%), as it must where
//! every page holds some hot records and nothing says which page was read.

mod handler;
mod reclaim;

pub use handler::Handler;
pub use reclaim::{Evictor, Reclaimer};

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use zswap::{AreaId, GroupId, Item, ListLru, SwapSlot, Zswap};

use crate::region::Region;
use crate::uffd::Uffd;

const NEVER: u64 = 0;
const RESIDENT: u64 = 1;
const OUTGOING: u64 = 2;
const SWAPPED: u64 = 3;
const TAG: u64 = 3;
/// The out-time is kept in milliseconds, in 30 bits (12 days).
const TIME_MASK: u64 = (1 << 30) - 1;

fn tag(w: u64) -> u64 {
    w & TAG
}
fn swapped(offset: u32, ms: u64) -> u64 {
    SWAPPED | ((ms & TIME_MASK) << 2) | (u64::from(offset) << 32)
}
fn offset(w: u64) -> u32 {
    (w >> 32) as u32
}
fn out_ms(w: u64) -> u64 {
    (w >> 2) & TIME_MASK
}

/// Where a fault was served from, as the workload's probe sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A never-touched page, mapped as zeros.
    Zero = 0,
    /// Decompressed from zswap.
    Zswap = 1,
    /// Read from the swap file.
    Device = 2,
}

impl Source {
    fn from_bits(b: u64) -> Source {
        match b & 3 {
            1 => Source::Zswap,
            2 => Source::Device,
            _ => Source::Zero,
        }
    }
}

/// What a tenant's workload thread shares with the pager: not a lock, two
/// words the handler writes before it wakes the faulting thread. The
/// thread reads `served` before and after an access; if it changed, the
/// access waited on a fault, and the low two bits say where from.
#[derive(Debug, Default)]
pub struct Probe {
    served: AtomicU64,
    failed: AtomicBool,
}

impl Probe {
    /// The fault count (shifted) and the last fault's source.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Acquire)
    }
    /// The source in a `served` word.
    pub fn source(served: u64) -> Source {
        Source::from_bits(served)
    }
    /// True once the pager could not serve one of this tenant's faults:
    /// the tenant stops.
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
    fn note(&self, source: Source) {
        let old = self.served.load(Ordering::Relaxed);
        self.served
            .store(((old >> 2) + 1) << 2 | source as u64, Ordering::Release);
    }
}

/// One tenant page on the LRU list.
#[derive(Debug)]
pub struct PageRef {
    index: u32,
    /// Refaulted within a second of going out: one rotation before the
    /// reclaimer may take it.
    active: AtomicBool,
}

/// The pager's counters for one tenant.
#[derive(Debug, Default)]
pub struct Counts {
    /// Faults on never-touched pages.
    pub zero_fills: AtomicU64,
    /// Faults served from zswap.
    pub zswap_ins: AtomicU64,
    /// Faults served from the swap file.
    pub device_ins: AtomicU64,
    /// Pages moved out and stored.
    pub swap_outs: AtomicU64,
    /// Swap-ins within a second of that page's swap-out.
    pub refaults_1s: AtomicU64,
    /// Active pages given a second chance.
    pub rotations: AtomicU64,
    /// Pages moved back because the store refused them.
    pub moved_back: AtomicU64,
    /// Faults that found their page on its way out and waited for it.
    pub raced_outgoing: AtomicU64,
    /// Pages the kernel would not move (pinned or shared: `EBUSY`).
    pub move_busy: AtomicU64,
    /// Pages the fault handler took out itself (direct reclaim).
    pub direct_reclaim: AtomicU64,
    /// Nanoseconds the handler spent in swap-ins from zswap, from its
    /// reading the fault to the page being installed.
    pub handler_zswap_ns: AtomicU64,
}

/// [`Counts`] read at one moment.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PagerCounts {
    /// Faults on never-touched pages.
    pub zero_fills: u64,
    /// Faults served from zswap.
    pub zswap_ins: u64,
    /// Faults served from the swap file.
    pub device_ins: u64,
    /// Pages moved out and stored.
    pub swap_outs: u64,
    /// Swap-ins within a second of the page's swap-out.
    pub refaults_1s: u64,
    /// Active pages given a second chance.
    pub rotations: u64,
    /// Pages moved back after a refused store.
    pub moved_back: u64,
    /// Faults that found their page on its way out.
    pub raced_outgoing: u64,
    /// Pages the kernel would not move (`EBUSY`).
    pub move_busy: u64,
    /// Pages the handler took out itself (direct reclaim).
    pub direct_reclaim: u64,
    /// Nanoseconds the handler spent serving zswap faults.
    pub handler_zswap_ns: u64,
}

impl Counts {
    /// The counters' values now.
    pub fn snapshot(&self) -> PagerCounts {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PagerCounts {
            zero_fills: r(&self.zero_fills),
            zswap_ins: r(&self.zswap_ins),
            device_ins: r(&self.device_ins),
            swap_outs: r(&self.swap_outs),
            refaults_1s: r(&self.refaults_1s),
            rotations: r(&self.rotations),
            moved_back: r(&self.moved_back),
            raced_outgoing: r(&self.raced_outgoing),
            move_busy: r(&self.move_busy),
            direct_reclaim: r(&self.direct_reclaim),
            handler_zswap_ns: r(&self.handler_zswap_ns),
        }
    }
}

/// A tenant as the pager sees it.
#[derive(Debug)]
pub struct Tenant {
    /// Its group: its zswap charges and LRU list.
    pub group: GroupId,
    /// Its memory.
    pub region: Region,
    state: Box<[AtomicU64]>,
    items: Box<[Item<PageRef>]>,
    /// Pages it may keep resident (`usize::MAX`: no limit).
    pub limit: AtomicUsize,
    /// Pages resident now, by the pager's count.
    pub resident: AtomicUsize,
    /// Shared with the workload thread.
    pub probe: Arc<Probe>,
    /// The pager's counters.
    pub counts: Counts,
    /// Why the pager stopped serving it.
    pub error: Mutex<Option<String>>,
}

impl Tenant {
    /// A tenant of `region`'s pages in `group`, resident limit `limit`.
    pub fn new(group: GroupId, region: Region, limit: usize) -> Tenant {
        let pages = region.pages();
        Tenant {
            group,
            state: (0..pages).map(|_| AtomicU64::new(NEVER)).collect(),
            items: (0..pages)
                .map(|i| {
                    Item::new(PageRef {
                        index: i as u32,
                        active: AtomicBool::new(false),
                    })
                })
                .collect(),
            region,
            limit: AtomicUsize::new(limit),
            resident: AtomicUsize::new(0),
            probe: Arc::default(),
            counts: Counts::default(),
            error: Mutex::new(None),
        }
    }

    /// Stops serving this tenant: records why, and tells its workload.
    pub fn fail(&self, why: String) {
        let mut e = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(why);
        }
        self.probe.failed.store(true, Ordering::Release);
    }

    /// Pages over the resident limit.
    fn over(&self) -> usize {
        self.resident
            .load(Ordering::Relaxed)
            .saturating_sub(self.limit.load(Ordering::Relaxed))
    }
}

/// What the handler and the reclaimer share.
pub struct Pager {
    /// The userfaultfd every region is registered with.
    pub uffd: Uffd,
    /// The compressed cache and swap file.
    pub zswap: Arc<Zswap>,
    /// The one swap area's id.
    pub area: AreaId,
    /// The tenants.
    pub tenants: Vec<Tenant>,
    lru: ListLru<PageRef>,
    epoch: Instant,
    reclaimer: std::sync::OnceLock<std::thread::Thread>,
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pager")
            .field("tenants", &self.tenants.len())
            .finish()
    }
}

impl Pager {
    /// A pager over `tenants`, whose regions it registers with `uffd`.
    pub fn new(
        uffd: Uffd,
        zswap: Arc<Zswap>,
        area: AreaId,
        tenants: Vec<Tenant>,
        lru: ListLru<PageRef>,
    ) -> std::io::Result<Pager> {
        for t in &tenants {
            uffd.register(t.region.addr(), t.region.len())?;
        }
        Ok(Pager {
            uffd,
            zswap,
            area,
            tenants,
            lru,
            epoch: Instant::now(),
            reclaimer: std::sync::OnceLock::new(),
        })
    }

    /// Unregisters every tenant's region: a thread still waiting on a
    /// fault wakes and, from then on, faults are the kernel's (zero
    /// pages). Called once the workloads are joined, and by the handler if
    /// it cannot go on. (The evictors' staging pages go with their
    /// mappings.)
    pub fn unregister(&self) {
        for t in &self.tenants {
            let _ = self.uffd.unregister(t.region.addr(), t.region.len());
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn slot(&self, w: u64) -> SwapSlot {
        SwapSlot {
            area: self.area,
            offset: offset(w),
        }
    }

    /// Wakes the reclaimer: a fault took a tenant over its limit.
    fn kick(&self) {
        if let Some(t) = self.reclaimer.get() {
            t.unpark();
        }
    }

    /// The tenant owning `addr`, and the page's index.
    fn locate(&self, addr: u64) -> Option<(usize, usize)> {
        self.tenants
            .iter()
            .enumerate()
            .find_map(|(ti, t)| t.region.page_of(addr).map(|p| (ti, p)))
    }

    /// Pages of `t` swapped out now (in zswap or the swap file).
    pub fn swapped(&self, t: &Tenant) -> usize {
        t.state
            .iter()
            .filter(|s| tag(s.load(Ordering::Relaxed)) == SWAPPED)
            .count()
    }

    /// Frees every slot still held (pages swapped out when the run ended).
    pub fn release_slots(&self) {
        for t in &self.tenants {
            for s in t.state.iter() {
                let w = s.swap(NEVER, Ordering::AcqRel);
                if tag(w) == SWAPPED {
                    let _ = self.zswap.free(self.slot(w));
                }
            }
        }
    }
}
