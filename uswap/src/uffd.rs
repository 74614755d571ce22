//! The userfaultfd file descriptor: opening it (the syscall, else
//! `/dev/userfaultfd`), the API handshake, registering ranges in
//! missing-page mode, reading fault messages, and the four ioctls the pager
//! resolves faults and moves pages with (`UFFDIO_COPY`, `UFFDIO_ZEROPAGE`,
//! `UFFDIO_MOVE`, `UFFDIO_WAKE`).
//!
//! The structs and ioctl numbers are written out here from
//! `include/uapi/linux/userfaultfd.h` rather than taken from the C headers
//! of the build machine, which may predate `UFFDIO_MOVE` (Linux 6.8): what
//! the running kernel supports is asked at run time, in the handshake, and
//! a kernel without `UFFDIO_MOVE` is refused with one clear line.
//!
//! Guarantees: every failure is an [`io::Error`] carrying the errno; the
//! descriptor is closed on drop; nothing here panics.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const UFFD_API: u64 = 0xAA;
const UFFDIO: u64 = 0xAA;
/// `UFFD_FEATURE_MOVE`: the kernel has `UFFDIO_MOVE`.
const UFFD_FEATURE_MOVE: u64 = 1 << 16;
/// `UFFD_USER_MODE_ONLY`: faults from user mode only, which an unprivileged
/// process may ask for even where `vm.unprivileged_userfaultfd` is 0.
const UFFD_USER_MODE_ONLY: libc::c_int = 1;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;
/// `UFFDIO_COPY_MODE_DONTWAKE` and `UFFDIO_MOVE_MODE_DONTWAKE`.
const MODE_DONTWAKE: u64 = 1;
/// `UFFD_EVENT_PAGEFAULT`.
pub const EVENT_PAGEFAULT: u8 = 0x12;
/// `UFFD_PAGEFAULT_FLAG_WRITE`.
pub const PAGEFAULT_FLAG_WRITE: u64 = 1;

const fn iowr(nr: u64, size: usize) -> libc::c_ulong {
    ((3 << 30) | ((size as u64) << 16) | (UFFDIO << 8) | nr) as libc::c_ulong
}
const fn ior(nr: u64, size: usize) -> libc::c_ulong {
    ((2 << 30) | ((size as u64) << 16) | (UFFDIO << 8) | nr) as libc::c_ulong
}

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

#[repr(C)]
struct UffdioZeropage {
    range: UffdioRange,
    mode: u64,
    zeropage: i64,
}

#[repr(C)]
struct UffdioMove {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    moved: i64,
}

/// `struct uffd_msg`: 32 bytes; for a page fault, `arg[0]` holds the flags
/// and `arg[1]` the address.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Msg {
    /// `UFFD_EVENT_*`.
    pub event: u8,
    reserved1: u8,
    reserved2: u16,
    reserved3: u32,
    arg: [u64; 3],
}

impl Msg {
    /// A page fault's flags (`UFFD_PAGEFAULT_FLAG_*`).
    pub fn flags(&self) -> u64 {
        self.arg[0]
    }
    /// A page fault's address.
    pub fn address(&self) -> u64 {
        self.arg[1]
    }
}

const UFFDIO_API: libc::c_ulong = iowr(0x3F, std::mem::size_of::<UffdioApi>());
const UFFDIO_REGISTER: libc::c_ulong = iowr(0x00, std::mem::size_of::<UffdioRegister>());
const UFFDIO_UNREGISTER: libc::c_ulong = ior(0x01, std::mem::size_of::<UffdioRange>());
const UFFDIO_WAKE: libc::c_ulong = ior(0x02, std::mem::size_of::<UffdioRange>());
const UFFDIO_COPY: libc::c_ulong = iowr(0x03, std::mem::size_of::<UffdioCopy>());
const UFFDIO_ZEROPAGE: libc::c_ulong = iowr(0x04, std::mem::size_of::<UffdioZeropage>());
const UFFDIO_MOVE: libc::c_ulong = iowr(0x05, std::mem::size_of::<UffdioMove>());
/// `USERFAULTFD_IOC_NEW` on `/dev/userfaultfd`.
const USERFAULTFD_IOC_NEW: libc::c_ulong = (0xAA << 8) as libc::c_ulong;

/// Why userfaultfd cannot be used here: the one line the program prints.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An open, handshaken userfaultfd with `UFFDIO_MOVE`.
#[derive(Debug)]
pub struct Uffd {
    fd: OwnedFd,
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

impl Uffd {
    /// Opens a userfaultfd (non-blocking, close-on-exec) and checks that
    /// the kernel moves pages; [`Refused`] says why not.
    pub fn open() -> Result<Uffd, Refused> {
        let fd = Self::open_fd()?;
        let uffd = Uffd { fd };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: 0,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_API reads and writes exactly one `uffdio_api`,
        // which `api` is, for the call's duration.
        if unsafe { libc::ioctl(uffd.raw(), UFFDIO_API, &mut api) } != 0 {
            return Err(Refused(format!(
                "userfaultfd refused: the UFFDIO_API handshake failed: {}",
                errno()
            )));
        }
        if api.features & UFFD_FEATURE_MOVE == 0 {
            return Err(Refused(
                "userfaultfd refused: this kernel lacks UFFDIO_MOVE (Linux 6.8 or later is needed to move a page out atomically)".into(),
            ));
        }
        Ok(uffd)
    }

    fn open_fd() -> Result<OwnedFd, Refused> {
        let flags = libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: the userfaultfd syscall takes one int of flags and
        // returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, flags | UFFD_USER_MODE_ONLY) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let first = errno();
        // The device node, for a process that may open it but is denied
        // the syscall (vm.unprivileged_userfaultfd = 0, older kernels).
        // SAFETY: a NUL-terminated path and plain flags.
        let dev =
            unsafe { libc::open(c"/dev/userfaultfd".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if dev >= 0 {
            // SAFETY: a fresh descriptor that nothing else owns.
            let dev = unsafe { OwnedFd::from_raw_fd(dev) };
            // SAFETY: USERFAULTFD_IOC_NEW takes the flags as its argument.
            let fd = unsafe { libc::ioctl(dev.as_raw_fd(), USERFAULTFD_IOC_NEW, flags) };
            if fd >= 0 {
                // SAFETY: a fresh descriptor that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        let why = match first.raw_os_error() {
            Some(libc::ENOSYS) => "the kernel has no userfaultfd (ENOSYS), or a seccomp filter hides it",
            Some(libc::EPERM) => "not permitted (EPERM): vm.unprivileged_userfaultfd is 0 and /dev/userfaultfd is not open to this user, or a seccomp filter denies it",
            _ => "the syscall failed",
        };
        Err(Refused(format!("userfaultfd refused: {why} ({first})")))
    }

    /// The raw descriptor, for `poll` and `read`.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Registers `[start, start + len)` in missing-page mode.
    pub fn register(&self, start: u64, len: u64) -> io::Result<()> {
        let mut reg = UffdioRegister {
            range: UffdioRange { start, len },
            mode: UFFDIO_REGISTER_MODE_MISSING,
            ioctls: 0,
        };
        // SAFETY: UFFDIO_REGISTER reads and writes one `uffdio_register`.
        if unsafe { libc::ioctl(self.raw(), UFFDIO_REGISTER, &mut reg) } != 0 {
            return Err(errno());
        }
        Ok(())
    }

    /// Unregisters `[start, start + len)`; threads waiting on a fault
    /// there are woken and retry.
    pub fn unregister(&self, start: u64, len: u64) -> io::Result<()> {
        let range = UffdioRange { start, len };
        // SAFETY: UFFDIO_UNREGISTER reads one `uffdio_range`.
        if unsafe { libc::ioctl(self.raw(), UFFDIO_UNREGISTER, &range) } != 0 {
            return Err(errno());
        }
        Ok(())
    }

    /// Reads pending messages into `buf` (non-blocking): how many, 0 if
    /// none is pending.
    pub fn read(&self, buf: &mut [Msg]) -> io::Result<usize> {
        let bytes = std::mem::size_of_val(buf);
        // SAFETY: `buf` is `bytes` writable bytes of plain-data messages.
        let n = unsafe { libc::read(self.raw(), buf.as_mut_ptr().cast(), bytes) };
        if n < 0 {
            let e = errno();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(0),
                _ => Err(e),
            };
        }
        Ok(n as usize / std::mem::size_of::<Msg>())
    }

    /// Polls for a pending message without sleeping, for up to `spin` or
    /// until `give_up()` says so: true if one is pending. (The fault
    /// handler and the floor's handler both wait this way before they
    /// sleep.)
    pub fn spin_for_message(&self, spin: std::time::Duration, give_up: impl Fn() -> bool) -> bool {
        let start = std::time::Instant::now();
        let mut fds = [libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        }];
        while start.elapsed() < spin && !give_up() {
            // SAFETY: one valid pollfd entry; a zero timeout never blocks.
            if unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) } > 0 {
                return true;
            }
            fds[0].revents = 0;
            std::hint::spin_loop();
        }
        false
    }

    /// Installs a copy of the page at `src` at `dst` (`UFFDIO_COPY`) and
    /// wakes the threads waiting on it. `EEXIST` if a page is there.
    ///
    /// # Safety
    ///
    /// `src` must point to one readable page.
    pub unsafe fn copy(&self, dst: u64, src: *const u8, len: u64) -> io::Result<()> {
        let mut c = UffdioCopy {
            dst,
            src: src as u64,
            len,
            mode: 0,
            copy: 0,
        };
        // SAFETY: UFFDIO_COPY reads `len` bytes at `src`, readable by this
        // function's contract, and writes the struct's `copy` field.
        retry(|| unsafe { libc::ioctl(self.raw(), UFFDIO_COPY, &mut c) })
    }

    /// Maps the zero page at `[dst, dst + len)` (`UFFDIO_ZEROPAGE`) and
    /// wakes the threads waiting on it.
    pub fn zeropage(&self, dst: u64, len: u64) -> io::Result<()> {
        let mut z = UffdioZeropage {
            range: UffdioRange { start: dst, len },
            mode: 0,
            zeropage: 0,
        };
        // SAFETY: UFFDIO_ZEROPAGE reads and writes one `uffdio_zeropage`.
        retry(|| unsafe { libc::ioctl(self.raw(), UFFDIO_ZEROPAGE, &mut z) })
    }

    /// Moves the page at `src` to `dst` (`UFFDIO_MOVE`): the page table
    /// entry changes hands under its lock, so a write to `src` lands either
    /// in the moved page or, after the move, faults. `wake` wakes threads
    /// waiting on `dst`. `dst` must be unmapped (else `EEXIST`) and both
    /// ranges registered with this descriptor.
    pub fn move_page(&self, dst: u64, src: u64, len: u64, wake: bool) -> io::Result<()> {
        let mut m = UffdioMove {
            dst,
            src,
            len,
            mode: if wake { 0 } else { MODE_DONTWAKE },
            moved: 0,
        };
        // SAFETY: UFFDIO_MOVE reads and writes one `uffdio_move`; it
        // changes only page tables of ranges registered with this
        // descriptor, whose memory the caller owns.
        retry(|| unsafe { libc::ioctl(self.raw(), UFFDIO_MOVE, &mut m) })
    }

    /// Wakes the threads waiting on a fault in `[start, start + len)`
    /// (`UFFDIO_WAKE`): for a fault whose page is already there.
    pub fn wake(&self, start: u64, len: u64) -> io::Result<()> {
        let range = UffdioRange { start, len };
        // SAFETY: UFFDIO_WAKE reads one `uffdio_range`.
        retry(|| unsafe { libc::ioctl(self.raw(), UFFDIO_WAKE, &range) })
    }
}

/// Runs an ioctl again while the kernel says `EAGAIN` (the address space
/// was changing under it).
fn retry(mut f: impl FnMut() -> libc::c_int) -> io::Result<()> {
    loop {
        if f() == 0 {
            return Ok(());
        }
        let e = errno();
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ioctl numbers agree with the kernel's header, as computed by
    /// its `_IOWR`/`_IOR` macros for these sizes.
    #[test]
    fn ioctl_numbers_match_the_uapi_header() {
        assert_eq!(std::mem::size_of::<Msg>(), 32);
        assert_eq!(UFFDIO_API, 0xc018aa3f);
        assert_eq!(UFFDIO_REGISTER, 0xc020aa00);
        assert_eq!(UFFDIO_UNREGISTER, 0x8010aa01);
        assert_eq!(UFFDIO_WAKE, 0x8010aa02);
        assert_eq!(UFFDIO_COPY, 0xc028aa03);
        assert_eq!(UFFDIO_ZEROPAGE, 0xc020aa04);
        assert_eq!(UFFDIO_MOVE, 0xc028aa05);
    }
}
