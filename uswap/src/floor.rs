//! The floor of a userfaultfd fault on this machine, measured in the same
//! run as the pager: a region whose faults a thread serves by installing a
//! page it has ready (`UFFDIO_COPY`, nothing else — no swap-in, no
//! bookkeeping), waiting for the next fault as the pager's handler does
//! (`poll`, after an optional spin). The faulting thread times each touch
//! as the workloads do. What the pager adds to a zswap fault is its
//! service time less this floor; a machine whose floor is above a target
//! cannot meet it with any pager.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use zswap::PAGE_SIZE;

use crate::region::Region;
use crate::uffd::{Msg, Uffd, EVENT_PAGEFAULT};

/// Times `pages` faults, each served by a copy of a ready page; the
/// handler spins `spin` before it sleeps.
pub fn measure(pages: usize, spin: Duration) -> anyhow::Result<Histogram<u64>> {
    let uffd = Arc::new(Uffd::open().map_err(|r| anyhow::anyhow!("{r}"))?);
    let region = Region::new(pages)?;
    uffd.register(region.addr(), region.len())?;
    let done = Arc::new(AtomicBool::new(false));
    let server = {
        let (uffd, done) = (Arc::clone(&uffd), Arc::clone(&done));
        std::thread::Builder::new()
            .name("uswap-floor".into())
            .spawn(move || serve(&uffd, &done, spin))?
    };
    let mut h = Histogram::new_with_bounds(1, 100_000_000_000, 2)?;
    for i in 0..pages {
        let t0 = Instant::now();
        // SAFETY: a page of the region, mapped for this function's length;
        // the fault is served by the thread above.
        unsafe { std::ptr::read_volatile(region.base().add(i * PAGE_SIZE)) };
        h.record((t0.elapsed().as_nanos() as u64).max(1))?;
    }
    done.store(true, Ordering::Release);
    server
        .join()
        .map_err(|_| anyhow::anyhow!("the floor's handler panicked"))??;
    uffd.unregister(region.addr(), region.len())?;
    Ok(h)
}

fn serve(uffd: &Uffd, done: &AtomicBool, spin: Duration) -> std::io::Result<()> {
    let page = vec![7u8; PAGE_SIZE];
    let mut msgs = [Msg::default(); 16];
    while !done.load(Ordering::Acquire) {
        let n = uffd.read(&mut msgs)?;
        if n == 0 {
            // Spin as the handler does, then sleep (10 ms at a time, to
            // notice the end).
            if uffd.spin_for_message(spin, || done.load(Ordering::Acquire)) {
                continue;
            }
            let mut fds = [libc::pollfd {
                fd: uffd.raw(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one valid pollfd entry.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, 10) };
            continue;
        }
        for m in &msgs[..n] {
            if m.event == EVENT_PAGEFAULT {
                let at = m.address() & !(PAGE_SIZE as u64 - 1);
                // SAFETY: `page` is one readable page.
                match unsafe { uffd.copy(at, page.as_ptr(), PAGE_SIZE as u64) } {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        uffd.wake(at, PAGE_SIZE as u64)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}
