//! The controller on a thread of its own: one step every interval until
//! stopped. Stopping wakes the thread at once (it waits on a condition
//! variable, not in a sleep) and hands the controller back.

use std::thread::JoinHandle;

use super::{ControlStep, Controller, PressureSource, Reclaimer};
use crate::sync::{spawn_named, Arc, Condvar, Mutex};
use crate::Error;

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    stop: bool,
    steps: u64,
    last: Option<Result<ControlStep, Error>>,
}

/// A [`Controller`] running on its own thread.
///
/// ```
/// use std::time::Duration;
/// use zswap::{Controller, ControllerConfig, Error, GroupId, PressureSource, Reclaimer};
///
/// struct Calm;
/// impl PressureSource for Calm {
///     fn read(&mut self) -> Result<f64, Error> {
///         Ok(0.0)
///     }
/// }
/// struct Nothing;
/// impl Reclaimer for Nothing {
///     fn weights(&self) -> Result<Vec<(GroupId, u64)>, Error> {
///         Ok(vec![])
///     }
///     fn reclaim(&self, _: GroupId, _: u64) -> Result<u64, Error> {
///         Ok(0)
///     }
/// }
/// let mut cfg = ControllerConfig::default();
/// cfg.interval = Duration::from_millis(1);
/// let running = Controller::new(Calm, Nothing, cfg)?.start()?;
/// while running.steps() < 3 {
///     std::thread::sleep(Duration::from_millis(1));
/// }
/// let controller = running.stop(); // handed back, to restart or drop
/// assert_eq!(controller.config().interval, Duration::from_millis(1));
/// # Ok::<(), Error>(())
/// ```
pub struct ControllerThread<S, R> {
    shared: Arc<Shared>,
    handle: JoinHandle<Controller<S, R>>,
}

impl<S, R> std::fmt::Debug for ControllerThread<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerThread")
            .field("steps", &self.steps())
            .finish_non_exhaustive()
    }
}

impl<S, R> Controller<S, R>
where
    S: PressureSource + 'static,
    R: Reclaimer + 'static,
{
    /// Runs [`step`](Self::step) every `interval` on a thread named
    /// `zswap-pressure`. A step's error is kept (see
    /// [`ControllerThread::last`]) and the next step tries again.
    pub fn start(self) -> Result<ControllerThread<S, R>, Error> {
        let shared = Arc::new(Shared::default());
        let theirs = shared.clone();
        let mut controller = self;
        let handle = spawn_named("zswap-pressure", move || loop {
            {
                let mut s = theirs.state.lock();
                if !s.stop {
                    theirs.wake.wait_for(&mut s, controller.cfg.interval);
                }
                if s.stop {
                    drop(s);
                    return controller;
                }
            }
            let r = controller.step();
            let mut s = theirs.state.lock();
            s.steps += 1;
            s.last = Some(r);
        })
        .map_err(Error::from)?;
        Ok(ControllerThread { shared, handle })
    }
}

impl<S, R> ControllerThread<S, R> {
    /// Steps run so far.
    pub fn steps(&self) -> u64 {
        self.shared.state.lock().steps
    }

    /// What the last step did, or its error.
    pub fn last(&self) -> Option<Result<ControlStep, Error>> {
        self.shared.state.lock().last.clone()
    }

    /// Stops the thread (waking it if it waits) and hands the controller
    /// back. A step in progress finishes first.
    pub fn stop(self) -> Controller<S, R> {
        {
            let mut s = self.shared.state.lock();
            s.stop = true;
            self.shared.wake.notify_one();
        }
        match self.handle.join() {
            Ok(c) => c,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}
