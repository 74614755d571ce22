//! The fault handler: one thread that reads the userfaultfd's messages and
//! resolves each missing-page fault.
//!
//! - A never-touched page gets the zero page (`UFFDIO_ZEROPAGE`) on a read
//!   and a zeroed copy on a write (so the write does not fault again to
//!   break the zero page's sharing).
//! - A swapped-out page is read back with [`zswap::Zswap::swap_in`] (which
//!   frees its slot) and installed with `UFFDIO_COPY`, which wakes the
//!   faulting thread.
//! - A page on its way out (`OUTGOING`) is waited for: the reclaimer
//!   finishes storing it, then it is swapped in (see the module above).
//! - A page already back (`RESIDENT`: the reclaimer moved it back after a
//!   refused store, or two faults named the same page) needs only a wake.
//! - A tenant far over its limit (the reclaimer fell behind) first has a
//!   batch of its own pages taken out by the handler: direct reclaim.
//!
//! Before it installs a page, the handler bumps the tenant's [`Probe`] so
//! the faulting thread, once awake, knows its access waited on a fault and
//! where the page came from. A swap-in that fails (a device error) stops
//! that tenant: it is marked failed and its thread woken with a zero page,
//! so nothing hangs; other tenants go on.
//!
//! [`Probe`]: super::Probe

use std::sync::atomic::Ordering;
use std::sync::Arc;

use zswap::{NodeId, SwapSource, PAGE_SIZE};

use super::reclaim::DIRECT_SLACK;
use super::{out_ms, tag, Evictor, Pager, Source, Tenant, NEVER, OUTGOING, RESIDENT, SWAPPED};
use crate::uffd::{Msg, EVENT_PAGEFAULT, PAGEFAULT_FLAG_WRITE};

/// The handler thread's state: its buffers and its stop signal.
pub struct Handler {
    pager: Arc<Pager>,
    /// An eventfd: written to stop the thread out of its `poll` (shared
    /// with the stoppers, so none writes to a closed descriptor).
    stop: Arc<std::os::fd::OwnedFd>,
    page: Box<[u8]>,
    zeros: Box<[u8]>,
    /// Spin this long on an empty queue before sleeping in `poll`.
    spin: std::time::Duration,
    /// For direct reclaim, when the reclaimer falls behind.
    evictor: Evictor,
}

impl Handler {
    /// A handler for `pager`; `spin` is how long it polls the queue
    /// without sleeping after a fault (0: sleep at once).
    pub fn new(pager: Arc<Pager>, spin: std::time::Duration) -> std::io::Result<Handler> {
        // SAFETY: eventfd takes an initial count and flags.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let evictor = Evictor::new(&pager)?;
        Ok(Handler {
            evictor,
            pager,
            // SAFETY: a fresh descriptor nothing else owns.
            stop: Arc::new(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }),
            page: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            zeros: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            spin,
        })
    }

    /// A function that stops the thread running [`Handler::run`].
    pub fn stopper(&self) -> impl Fn() + Send + 'static {
        use std::os::fd::AsRawFd;
        let fd = Arc::clone(&self.stop);
        move || {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes to an eventfd the closure keeps open,
            // as eventfd expects.
            unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }
    }

    /// Serves faults until stopped. A failure to read the descriptor
    /// fails every tenant and unregisters the regions, so no thread stays
    /// blocked on a fault nobody will serve.
    pub fn run(mut self) {
        let mut msgs = [Msg::default(); 16];
        if let Err(e) = self.serve(&mut msgs) {
            for t in &self.pager.tenants {
                t.fail(format!("the fault handler stopped: {e}"));
            }
            self.pager.unregister();
        }
    }

    fn serve(&mut self, msgs: &mut [Msg]) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        loop {
            let n = self.pager.uffd.read(msgs)?;
            if n == 0 {
                if self.pager.uffd.spin_for_message(self.spin, || false) {
                    continue;
                }
                let mut fds = [
                    libc::pollfd {
                        fd: self.pager.uffd.raw(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: self.stop.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // SAFETY: two valid pollfd entries.
                let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
                if r < 0 {
                    let e = std::io::Error::last_os_error();
                    if e.kind() != std::io::ErrorKind::Interrupted {
                        return Err(e);
                    }
                }
                if fds[1].revents != 0 {
                    return Ok(());
                }
                continue;
            }
            for m in &msgs[..n] {
                if m.event == EVENT_PAGEFAULT {
                    self.fault(m.address(), m.flags() & PAGEFAULT_FLAG_WRITE != 0);
                }
            }
        }
    }

    fn fault(&mut self, addr: u64, write: bool) {
        let pager = Arc::clone(&self.pager);
        let Some((ti, i)) = pager.locate(addr) else {
            // The staging page, touched by nobody: map it so nothing waits.
            let page = addr & !(PAGE_SIZE as u64 - 1);
            let _ = pager.uffd.zeropage(page, PAGE_SIZE as u64);
            return;
        };
        let t = &pager.tenants[ti];
        let over = t.over();
        if over > DIRECT_SLACK && !t.probe.failed() {
            // The reclaimer fell behind: this tenant pays for its own
            // reclaim before its fault is served (see `reclaim.rs`).
            let n = self.evictor.shrink(&pager, t, over - DIRECT_SLACK / 2);
            t.counts
                .direct_reclaim
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        let page_addr = t.region.page_addr(i);
        let mut waited = false;
        loop {
            let w = t.state[i].load(Ordering::Acquire);
            match tag(w) {
                NEVER => {
                    t.probe.note(Source::Zero);
                    let r = if write {
                        // SAFETY: `zeros` is one readable page.
                        unsafe {
                            pager
                                .uffd
                                .copy(page_addr, self.zeros.as_ptr(), PAGE_SIZE as u64)
                        }
                    } else {
                        pager.uffd.zeropage(page_addr, PAGE_SIZE as u64)
                    };
                    if let Err(e) = r {
                        if e.raw_os_error() != Some(libc::EEXIST) {
                            self.fail(t, page_addr, format!("mapping a new page failed: {e}"));
                            return;
                        }
                    }
                    t.counts.zero_fills.fetch_add(1, Ordering::Relaxed);
                    self.installed(t, i, false);
                    return;
                }
                RESIDENT => {
                    // Already back: the waiting thread retries its access.
                    let _ = pager.uffd.wake(page_addr, PAGE_SIZE as u64);
                    return;
                }
                OUTGOING => {
                    if !waited {
                        waited = true;
                        t.counts.raced_outgoing.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::yield_now();
                }
                SWAPPED => {
                    let t0 = std::time::Instant::now();
                    let source = match pager.zswap.swap_in(pager.slot(w), &mut self.page) {
                        Ok(SwapSource::Zswap) => Source::Zswap,
                        Ok(SwapSource::Device) => Source::Device,
                        Err(e) => {
                            // The slot is kept (zswap never drops what it
                            // could not read); the tenant stops.
                            self.fail(t, page_addr, format!("swap-in of page {i} failed: {e}"));
                            return;
                        }
                    };
                    match source {
                        Source::Zswap => &t.counts.zswap_ins,
                        _ => &t.counts.device_ins,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                    let refault =
                        (pager.now_ms().wrapping_sub(out_ms(w)) & super::TIME_MASK) < 1000;
                    if refault {
                        t.counts.refaults_1s.fetch_add(1, Ordering::Relaxed);
                    }
                    t.probe.note(source);
                    // SAFETY: `page` is one readable page.
                    let r = unsafe {
                        pager
                            .uffd
                            .copy(page_addr, self.page.as_ptr(), PAGE_SIZE as u64)
                    };
                    if let Err(e) = r {
                        t.state[i].store(NEVER, Ordering::Release);
                        self.fail(t, page_addr, format!("installing page {i} failed: {e}"));
                        return;
                    }
                    self.installed(t, i, refault);
                    if source == Source::Zswap {
                        let ns = t0.elapsed().as_nanos() as u64;
                        t.counts.handler_zswap_ns.fetch_add(ns, Ordering::Relaxed);
                    }
                    return;
                }
                _ => unreachable!("a two-bit tag"),
            }
        }
    }

    /// Page `i` is mapped: resident, on the tail of its LRU list.
    fn installed(&self, t: &Tenant, i: usize, refault: bool) {
        let pager = &self.pager;
        t.state[i].store(RESIDENT, Ordering::Release);
        let item = &t.items[i];
        item.active.store(refault, Ordering::Relaxed);
        let listed = if item.is_isolated() {
            pager.lru.putback(item, NodeId::ZERO, t.group)
        } else {
            pager.lru.add(item, NodeId::ZERO, t.group)
        };
        debug_assert!(matches!(listed, Ok(true)), "a page is listed once");
        if t.resident.fetch_add(1, Ordering::Relaxed) + 1 > t.limit.load(Ordering::Relaxed) {
            pager.kick();
        }
    }

    /// Stops `t`: marks it failed, then maps a zero page at `page_addr`
    /// (or wakes it) so its thread wakes, sees the mark and ends.
    fn fail(&self, t: &Tenant, page_addr: u64, why: String) {
        t.fail(why);
        t.probe.note(Source::Zero);
        if self
            .pager
            .uffd
            .zeropage(page_addr, PAGE_SIZE as u64)
            .is_err()
        {
            let _ = self.pager.uffd.wake(page_addr, PAGE_SIZE as u64);
        }
    }
}
