//! The reclaimer: one thread that keeps every tenant at or under its
//! resident limit.
//!
//! When a tenant is over, it walks that tenant's own LRU list from the
//! cold end (`walk_one` on the tenant's group: no other tenant's pages are
//! looked at), isolating up to a batch of pages and rotating the active
//! ones once. Each isolated page is marked `OUTGOING`, moved to the
//! batch's staging page with `UFFDIO_MOVE`, and stored with
//! [`zswap::Zswap::swap_out`], which applies the group's `zswap_max` (and
//! writes the group's own coldest entries back to the swap file to make
//! room), the global pool limit and the shrink worker. The staging pages'
//! frames are then dropped together (`MADV_DONTNEED`: one TLB flush a
//! batch). If the store is refused (the
//! group may not write back, or the swap file is full), the page is moved
//! back where it was, and goes back on the list.
//!
//! With nothing over its limit, the thread sleeps until the fault handler
//! wakes it (a fault that took a tenant over), or for a millisecond.
//!
//! Each page out costs a TLB shootdown (the move clears a live page table
//! entry, and the tenant's thread runs on another CPU), so under a fault
//! storm one reclaimer can fall behind. The fault handler then reclaims
//! directly, as the kernel's charging task does at `memory.max`: once a
//! tenant is more than [`DIRECT_SLACK`] pages over its limit, the handler
//! takes a batch out of that tenant itself before serving its next fault.
//! That throttles the tenant to the pace of its own reclaim and holds the
//! limit within the slack. [`Evictor`] is the part both use, each with its
//! own staging pages.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use zswap::{Item, LruStatus, NodeId, PAGE_SIZE};

use super::{swapped, tag, PageRef, Pager, Tenant, OUTGOING, RESIDENT};
use crate::region::Region;

/// Pages taken from one list per walk.
pub(super) const BATCH: usize = 32;

/// How far over its limit a tenant may get before the fault handler
/// reclaims for it directly.
pub const DIRECT_SLACK: usize = 4 * BATCH;

/// Takes a tenant's coldest pages out: the staging pages a batch is
/// moved to, and the steps of a page out.
pub struct Evictor {
    /// Registered with the pager's userfaultfd (`UFFDIO_MOVE` wants both
    /// ends in its ranges); a batch's frames are dropped together.
    staging: Region,
    taken: Vec<Item<PageRef>>,
}

impl Evictor {
    /// An evictor with its own staging pages, registered with `pager`'s
    /// userfaultfd.
    pub fn new(pager: &Pager) -> io::Result<Evictor> {
        let staging = Region::new(BATCH)?;
        pager.uffd.register(staging.addr(), staging.len())?;
        Ok(Evictor {
            staging,
            taken: Vec::with_capacity(BATCH),
        })
    }

    /// Takes up to `want` (at most a batch) of `t`'s coldest pages out;
    /// how many went.
    pub fn shrink(&mut self, pager: &Pager, t: &Tenant, want: usize) -> usize {
        let want = want.min(BATCH);
        let taken = &mut self.taken;
        // Up to the whole list: every active page met is rotated once and
        // loses its mark, so one pass always ends with pages to take.
        let mut budget = pager.lru.count_one(NodeId::ZERO, t.group).unwrap_or(0);
        let _ = pager.lru.walk_one(NodeId::ZERO, t.group, &mut budget, |g| {
            if taken.len() >= want {
                return LruStatus::Stop;
            }
            if g.item().active.swap(false, Ordering::Relaxed) {
                t.counts.rotations.fetch_add(1, Ordering::Relaxed);
                return LruStatus::Rotate;
            }
            match g.isolate() {
                Some(item) => {
                    taken.push(item);
                    LruStatus::Removed
                }
                None => LruStatus::Skip,
            }
        });
        let mut out = 0;
        for (k, item) in self.taken.drain(..).enumerate() {
            if swap_out(&self.staging, pager, t, &item, k) {
                out += 1;
            }
        }
        if out > 0 {
            if let Err(e) = self.staging.discard(0, BATCH) {
                t.fail(format!("dropping the staging pages failed: {e}"));
            }
        }
        out
    }
}

/// Moves page `item` of `t` out to page `k` of `staging` and stores it;
/// false if it stayed.
fn swap_out(staging: &Region, pager: &Pager, t: &Tenant, item: &Item<PageRef>, k: usize) -> bool {
    let i = item.index as usize;
    let w = t.state[i].load(Ordering::Acquire);
    debug_assert_eq!(tag(w), RESIDENT, "only resident pages are listed");
    let page_addr = t.region.page_addr(i);
    let stage = staging.page_addr(k);
    // OUTGOING before the move: a fault after the move finds it so.
    t.state[i].store(OUTGOING, Ordering::Release);
    if let Err(e) = pager
        .uffd
        .move_page(stage, page_addr, PAGE_SIZE as u64, false)
    {
        // Not moved (pinned, or not there): it stays resident.
        t.state[i].store(RESIDENT, Ordering::Release);
        let _ = pager.lru.putback(item, NodeId::ZERO, t.group);
        t.counts.move_busy.fetch_add(1, Ordering::Relaxed);
        if e.raw_os_error() != Some(libc::EBUSY) {
            t.fail(format!("moving page {i} out failed: {e}"));
        }
        return false;
    }
    // SAFETY: staging page `k` is mapped (the move put this page
    // there) and only this evictor touches it until it is dropped or
    // moved back.
    let page = unsafe { std::slice::from_raw_parts(staging.base().add(k * PAGE_SIZE), PAGE_SIZE) };
    match pager.zswap.swap_out(page, t.group) {
        Ok(slot) => {
            debug_assert_eq!(slot.area, pager.area);
            t.state[i].store(swapped(slot.offset, pager.now_ms()), Ordering::Release);
            t.resident.fetch_sub(1, Ordering::Relaxed);
            t.counts.swap_outs.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(_) => {
            // Refused: back where it was, woken if a thread waits.
            let back = pager
                .uffd
                .move_page(page_addr, stage, PAGE_SIZE as u64, true);
            t.state[i].store(RESIDENT, Ordering::Release);
            let _ = pager.lru.putback(item, NodeId::ZERO, t.group);
            t.counts.moved_back.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = back {
                t.fail(format!("moving page {i} back failed: {e}"));
            }
            false
        }
    }
}

/// The reclaimer thread's state.
pub struct Reclaimer {
    pager: Arc<Pager>,
    evictor: Evictor,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Reclaimer {
    /// A reclaimer for `pager` that runs until `stop` is set.
    pub fn new(
        pager: Arc<Pager>,
        stop: Arc<std::sync::atomic::AtomicBool>,
    ) -> io::Result<Reclaimer> {
        let evictor = Evictor::new(&pager)?;
        Ok(Reclaimer {
            pager,
            evictor,
            stop,
        })
    }

    /// Runs on the calling thread until stopped.
    pub fn run(mut self) {
        let _ = self.pager.reclaimer.set(std::thread::current());
        while !self.stop.load(Ordering::Acquire) {
            let mut did = 0;
            for t in &self.pager.tenants {
                let over = t.over();
                if over > 0 && !t.probe.failed() {
                    did += self.evictor.shrink(&self.pager, t, over);
                }
            }
            if did == 0 {
                std::thread::park_timeout(Duration::from_millis(1));
            }
        }
    }
}
