//! The shrink worker's wake-up and, unless the caller runs the worker
//! itself, its thread: one OS thread per `Zswap`, woken when a store finds
//! the pool full (the kernel's `queue_work(shrink_wq, ...)`), that runs
//! `shrink_worker_pass`. Without the thread a wake-up is a request that
//! the caller takes with
//! [`Zswap::take_shrink_request`](super::Zswap::take_shrink_request) and
//! serves at a point of its choosing, so a run is deterministic. Under
//! loom there is no thread and no request: models run the pass themselves.

pub(super) use imp::{Worker, WorkerSignal};

#[cfg(not(loom))]
mod imp {
    use std::time::Duration;

    use super::super::Inner;
    use crate::sync::{spawn_named, Arc, Condvar, Mutex};
    use crate::Error;

    #[derive(Default)]
    struct State {
        wake: bool,
        stop: bool,
    }

    /// How stores wake the worker.
    #[derive(Default)]
    pub(crate) struct WorkerSignal {
        state: Mutex<State>,
        cv: Condvar,
    }

    impl WorkerSignal {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// Queues a shrink run (`queue_work(shrink_wq, ...)`).
        pub(crate) fn wake(&self) {
            let mut s = self.state.lock();
            if !s.wake {
                s.wake = true;
                self.cv.notify_one();
            }
        }

        /// Takes a queued run that no thread will serve.
        pub(crate) fn take_request(&self) -> bool {
            std::mem::take(&mut self.state.lock().wake)
        }
    }

    /// The worker thread.
    pub(crate) struct Worker {
        thread: std::thread::JoinHandle<()>,
    }

    impl Worker {
        pub(crate) fn start(inner: &Arc<Inner>) -> Result<Option<Self>, Error> {
            let inner = inner.clone();
            let thread = spawn_named("zswap-shrink", move || loop {
                {
                    let mut s = inner.worker.state.lock();
                    while !s.wake && !s.stop {
                        inner.worker.cv.wait_for(&mut s, Duration::from_millis(200));
                    }
                    if s.stop {
                        return;
                    }
                    s.wake = false;
                }
                inner.shrink_worker_pass();
            })?;
            Ok(Some(Worker { thread }))
        }

        pub(crate) fn stop(self, inner: &Inner) {
            {
                let mut s = inner.worker.state.lock();
                s.stop = true;
                inner.worker.cv.notify_one();
            }
            let _ = self.thread.join();
        }
    }
}

#[cfg(loom)]
mod imp {
    use super::super::Inner;
    use crate::sync::Arc;
    use crate::Error;

    pub(crate) struct WorkerSignal;

    impl WorkerSignal {
        pub(crate) fn new() -> Self {
            WorkerSignal
        }

        pub(crate) fn wake(&self) {}

        pub(crate) fn take_request(&self) -> bool {
            false
        }
    }

    pub(crate) struct Worker;

    impl Worker {
        pub(crate) fn start(_: &Arc<Inner>) -> Result<Option<Self>, Error> {
            Ok(None)
        }

        pub(crate) fn stop(self, _: &Inner) {}
    }
}
