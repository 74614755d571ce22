//! The crate's one switch between the real synchronization primitives and
//! [loom]'s model-checked ones.
//!
//! Nothing else in `src/` names `std::sync`, `parking_lot`, `arc_swap` or
//! `loom`: every lock, atomic, shared pointer, published pointer
//! (`ArcSwap`), interior-mutability cell and spin hint comes from here. A
//! normal build gets `parking_lot`'s non-poisoning mutex, `arc_swap`'s
//! lock-free published pointers and the standard library's atomics; a
//! build with `RUSTFLAGS="--cfg loom"` gets loom's (and loom-visible
//! stand-ins for `arc_swap`), so the loom models in `loom-tests/` check the
//! crate's real types, and a downstream crate that builds its own loom
//! models with `--cfg loom` gets this crate on loom as well.
//!
//! Both builds expose the same API: `Mutex::lock` never fails (a panic while
//! holding a lock does not poison it: the data structures in this crate keep
//! their invariants across any panic of a user callback, because a callback
//! only ever sees one item and the structure is consistent whenever it runs),
//! and [`UnsafeCell`] is accessed only through `with` / `with_mut`, which loom
//! uses to detect unsynchronized access.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
#[allow(unused_imports)]
mod imp {
    pub(crate) use arc_swap::{ArcSwap, ArcSwapOption, Guard};
    pub(crate) use std::hint::spin_loop;
    pub(crate) use std::sync::atomic::fence;
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicI64, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
        Ordering,
    };
    pub(crate) use std::sync::Arc;
    pub(crate) use std::thread::yield_now;
    pub(crate) use std::thread_local;

    /// A non-poisoning mutex (`parking_lot`'s).
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(parking_lot::Mutex<T>);

    /// The guard of a [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value` (`const`: statics use it).
        pub(crate) const fn new(value: T) -> Self {
            Mutex(parking_lot::Mutex::new(value))
        }

        /// Locks the mutex; never fails.
        #[inline]
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }

    /// A condition variable for [`Mutex`] (`parking_lot`'s).
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(parking_lot::Condvar);

    impl Condvar {
        /// A condition variable with no waiter.
        pub(crate) fn new() -> Self {
            Condvar(parking_lot::Condvar::new())
        }

        /// Releases `guard`'s lock, parks until notified (or spuriously
        /// woken), and locks again.
        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(&mut guard);
            guard
        }

        /// Waits for a notification, or `timeout`. Only the shrink worker's
        /// thread waits with a timeout, and that thread does not exist
        /// under loom.
        pub(crate) fn wait_for<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            timeout: std::time::Duration,
        ) {
            let _ = self.0.wait_for(guard, timeout);
        }

        /// Wakes one waiter.
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        /// Wakes every waiter.
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// Spawns a named OS thread.
    pub(crate) fn spawn_named<T: Send + 'static, F: FnOnce() -> T + Send + 'static>(
        name: &str,
        f: F,
    ) -> std::io::Result<std::thread::JoinHandle<T>> {
        std::thread::Builder::new().name(name.to_owned()).spawn(f)
    }

    /// An `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        /// A new cell holding `value`.
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Calls `f` with a shared raw pointer to the contents.
        #[inline]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Calls `f` with an exclusive raw pointer to the contents.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Leak and double-release tracking of keyed resources (pool objects,
    /// slot pins). Free in a normal build; see the loom build's.
    #[derive(Debug, Default)]
    pub(crate) struct LeakTracker;

    impl LeakTracker {
        /// A tracker with nothing live.
        pub(crate) fn new() -> Self {
            LeakTracker
        }

        /// `key` is now live.
        #[inline]
        pub(crate) fn track(&self, _key: u64) {}

        /// `key` is released.
        #[inline]
        pub(crate) fn untrack(&self, _key: u64) {}

        /// Everything still live is a leak.
        #[inline]
        pub(crate) fn all_leaked(&self) {}
    }

    /// Stands for plain heap memory that loom cannot see (a pool span's
    /// bytes): reads and writes of that memory are bracketed by the token's
    /// `read_during` / `write_during`, so that under loom two of them that
    /// race fail the model. Nothing in a normal build.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct AccessToken;

    impl AccessToken {
        /// A token for a new region.
        #[inline]
        pub(crate) fn new() -> Self {
            AccessToken
        }

        /// Runs `f`, which reads the region.
        #[inline]
        pub(crate) fn read_during<R>(&self, f: impl FnOnce() -> R) -> R {
            f()
        }

        /// Runs `f`, which writes (or moves out of) the region.
        #[inline]
        pub(crate) fn write_during<R>(&self, f: impl FnOnce() -> R) -> R {
            f()
        }

        /// The region is written or freed now.
        #[inline]
        pub(crate) fn write_now(&self) {}
    }

    /// One allocation loom reports as leaked if it is never dropped (a field of a hand-counted
    /// node: the LRU's items). Nothing in a normal build.
    #[derive(Debug, Default)]
    pub(crate) struct Tracked;

    impl Tracked {
        /// A live allocation.
        #[inline]
        pub(crate) fn new() -> Self {
            Tracked
        }
    }
}

#[cfg(loom)]
#[allow(unused_imports)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::atomic::fence;
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicI64, AtomicPtr, AtomicU16, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
        Ordering,
    };
    pub(crate) use loom::sync::Arc;
    pub(crate) use loom::thread::yield_now;
    pub(crate) use loom::thread_local;

    /// `arc_swap`'s guard, as the loom stand-ins below hand it out: the
    /// loaded value itself (an `Arc` clone), which keeps what it points at
    /// alive exactly as a real guard does.
    #[derive(Debug)]
    pub(crate) struct Guard<T>(T);

    impl<T> std::ops::Deref for Guard<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    /// A loom-visible stand-in for `arc_swap::ArcSwap`: a loom mutex around
    /// the `Arc`, so loom sees every load and store as a synchronizing
    /// step (the real one's are lock-free, with the same guarantees: a
    /// loaded `Arc` stays alive while its guard lives).
    #[derive(Debug)]
    pub(crate) struct ArcSwap<T>(Mutex<Arc<T>>);

    impl<T> ArcSwap<T> {
        /// Holding `value`.
        pub(crate) fn new(value: Arc<T>) -> Self {
            ArcSwap(Mutex::new(value))
        }

        /// The value now.
        pub(crate) fn load(&self) -> Guard<Arc<T>> {
            Guard(self.0.lock().clone())
        }

        /// Replaces the value; returns the old one.
        pub(crate) fn swap(&self, value: Arc<T>) -> Arc<T> {
            std::mem::replace(&mut *self.0.lock(), value)
        }
    }

    /// A loom-visible stand-in for `arc_swap::ArcSwapOption` (see
    /// [`ArcSwap`]).
    #[derive(Debug)]
    pub(crate) struct ArcSwapOption<T>(Mutex<Option<Arc<T>>>);

    impl<T> ArcSwapOption<T> {
        /// Holding nothing.
        pub(crate) fn empty() -> Self {
            ArcSwapOption(Mutex::new(None))
        }

        /// The value now.
        pub(crate) fn load(&self) -> Guard<Option<Arc<T>>> {
            Guard(self.0.lock().clone())
        }

        /// Replaces the value; returns the old one.
        pub(crate) fn swap(&self, value: Option<Arc<T>>) -> Option<Arc<T>> {
            std::mem::replace(&mut *self.0.lock(), value)
        }
    }

    /// A non-poisoning mutex over loom's.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// The guard of a [`Mutex`].
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value`.
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        /// Locks the mutex; never fails (poisoning is ignored).
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }

    /// A condition variable over loom's, with the non-loom build's API.
    #[derive(Debug)]
    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        /// A condition variable with no waiter.
        pub(crate) fn new() -> Self {
            Condvar(loom::sync::Condvar::new())
        }

        /// Releases `guard`'s lock, parks until notified, and locks again.
        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0
                .wait(guard)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// Wakes every waiter.
        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }

    /// Leak and double-release tracking of keyed resources (pool objects,
    /// slot pins), in the manner of sharded-slab's loom tests: each live key
    /// holds a `loom::alloc::Track`, so a resource still live when
    /// [`all_leaked`](Self::all_leaked) declares the end of its owner's life
    /// is reported by loom as a leaked allocation, in the interleaving that
    /// leaked it. Tracking the same key twice (two pins on one slot, one
    /// object handed out twice) or releasing one that is not live (a double
    /// free) panics at once. The map sits behind a `std` mutex, invisible to
    /// loom, so tracking adds no interleavings: loom runs one thread at a
    /// time, and no loom operation happens while it is held.
    #[derive(Debug, Default)]
    pub(crate) struct LeakTracker {
        live: std::sync::Mutex<std::collections::HashMap<u64, loom::alloc::Track<u64>>>,
    }

    impl LeakTracker {
        /// A tracker with nothing live.
        pub(crate) fn new() -> Self {
            Self::default()
        }

        fn map(
            &self,
        ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, loom::alloc::Track<u64>>>
        {
            self.live.lock().unwrap_or_else(|p| p.into_inner())
        }

        /// `key` is now live; panics if it already was.
        pub(crate) fn track(&self, key: u64) {
            let old = self.map().insert(key, loom::alloc::Track::new(key));
            assert!(old.is_none(), "resource {key:#x} handed out twice");
        }

        /// `key` is released; panics if it was not live.
        pub(crate) fn untrack(&self, key: u64) {
            let old = self.map().remove(&key);
            assert!(old.is_some(), "resource {key:#x} released twice");
        }

        /// The owner is done: whatever is still live is leaked, and loom
        /// reports it at the end of this execution.
        pub(crate) fn all_leaked(&self) {
            for (_, track) in self.map().drain() {
                std::mem::forget(track);
            }
        }
    }

    /// Stands for plain heap memory that loom cannot see (a pool span's
    /// bytes): a loom `UnsafeCell` read for as long as `read_during` runs and
    /// written for as long as `write_during` runs, so a write (a compaction
    /// move, a span given back) that races a read without a happens-before
    /// edge fails the model, as it would corrupt the real bytes.
    #[derive(Clone)]
    pub(crate) struct AccessToken(loom::sync::Arc<loom::cell::UnsafeCell<()>>);

    impl std::fmt::Debug for AccessToken {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("AccessToken")
        }
    }

    impl Default for AccessToken {
        fn default() -> Self {
            Self::new()
        }
    }

    impl AccessToken {
        /// A token for a new region.
        pub(crate) fn new() -> Self {
            AccessToken(loom::sync::Arc::new(loom::cell::UnsafeCell::new(())))
        }

        /// Runs `f`, which reads the region.
        pub(crate) fn read_during<R>(&self, f: impl FnOnce() -> R) -> R {
            self.0.with(|_| f())
        }

        /// Runs `f`, which writes (or moves out of) the region.
        pub(crate) fn write_during<R>(&self, f: impl FnOnce() -> R) -> R {
            self.0.with_mut(|_| f())
        }

        /// The region is written or freed now.
        pub(crate) fn write_now(&self) {
            self.0.with_mut(|_| ());
        }
    }

    /// One allocation loom reports as leaked if it is never dropped (a
    /// field of a hand-counted node: the LRU's items).
    #[derive(Debug)]
    pub(crate) struct Tracked(#[allow(dead_code)] loom::alloc::Track<()>);

    impl Tracked {
        /// A live allocation.
        pub(crate) fn new() -> Self {
            Tracked(loom::alloc::Track::new(()))
        }
    }
}

#[allow(unused_imports)]
pub(crate) use imp::*;

/// Process-wide plumbing that is not synchronization between the crate's
/// threads, so loom never models it: a counter for unique temporary file
/// names, data the test harnesses build once per process, an error's shared
/// payload, the registry of live lrus' ids.
pub(crate) mod unmodeled {
    #[cfg(feature = "testing")]
    pub(crate) use std::sync::atomic::AtomicI64;
    pub(crate) use std::sync::atomic::{AtomicU64, Ordering};
    /// Shared payloads that are not synchronization (an error's I/O error).
    pub(crate) use std::sync::Arc;
    #[allow(unused_imports)]
    pub(crate) use std::sync::OnceLock;
    /// A process-wide lock taken only when an lru is made or dropped.
    pub(crate) use std::sync::{Mutex as ProcessMutex, MutexGuard as ProcessMutexGuard};
}

/// Declares a per-thread scratch value with a `const` initializer: std's
/// `thread_local!` with `const { .. }` normally, loom's (which takes no
/// `const` block) under loom.
#[cfg(not(loom))]
macro_rules! thread_scratch {
    ($(static $name:ident: $t:ty = $init:expr;)+) => {
        std::thread_local! { $(static $name: $t = const { $init };)+ }
    };
}

/// Declares a per-thread scratch value (loom build).
#[cfg(loom)]
macro_rules! thread_scratch {
    ($(static $name:ident: $t:ty = $init:expr;)+) => {
        loom::thread_local! { $(static $name: $t = $init;)+ }
    };
}

pub(crate) use thread_scratch;
