//! A pressure controller, as Meta's senpai runs zswap in production (TMO):
//! it reads memory pressure (PSI: the share of time tasks stalled on
//! memory) and keeps it near a target by reclaiming from zswap in steps.
//! Below the target it probes: it writes back up to `max_step_bytes` per
//! step, scaled by how far below the target pressure is and by its current
//! gain, spread over the groups in proportion to their pressure-shrinker
//! counts (so a group that may not write back, or whose pages keep coming
//! back from disk, gives little or nothing). At or above the target it
//! backs off: it reclaims nothing and halves its gain, which then recovers
//! a quarter of the way back to 1 at each calm step, so a plant that
//! answers late does not make it oscillate.
//!
//! The pressure comes through [`PressureSource`] ([`PsiFile`] for the
//! kernel's files; tests feed a plant model) and the reclaim goes through
//! [`Reclaimer`] (implemented by [`Zswap`]), so the control law is tested
//! apart from any kernel. [`Controller::step`] runs one step for a caller
//! that drives it; [`Controller::start`] runs it on a thread of its own
//! every `interval`, until [`ControllerThread::stop`] hands it back.

mod psi;

use std::time::Duration;

pub use psi::{PressureSource, Psi, PsiFile, PsiLine, SYSTEM_MEMORY_PSI};

use crate::{Error, GroupId, NodeId, Zswap};

/// What the controller reclaims through.
///
/// ```
/// use zswap::{GroupId, Groups, MemDevice, Reclaimer, Zswap, ZswapConfig};
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT)?;
/// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(64)))?;
/// let page: Vec<u8> = (0..4096).map(|i| (i * 7 % 256) as u8).collect();
/// zswap.swap_out(&page, tenant)?;
/// // Zswap's weights are the pressure shrinker's counts, one per group.
/// let weights = zswap.weights()?;
/// assert!(weights.iter().any(|&(g, _)| g == tenant));
/// # Ok::<(), zswap::Error>(())
/// ```
pub trait Reclaimer: Send {
    /// The groups it may reclaim from, each with its weight: the pressure
    /// shrinker's count of its own lists (0 for one that may not write
    /// back).
    fn weights(&self) -> Result<Vec<(GroupId, u64)>, Error>;

    /// Writes back up to about `bytes` of compressed pool from `group`'s
    /// own lists (not its descendants', which have weights of their own);
    /// returns the bytes freed.
    fn reclaim(&self, group: GroupId, bytes: u64) -> Result<u64, Error>;
}

impl Reclaimer for Zswap {
    fn weights(&self) -> Result<Vec<(GroupId, u64)>, Error> {
        let nodes = self.nr_nodes();
        let mut out = Vec::new();
        for g in self.groups().iter() {
            let mut w = 0;
            for n in 0..nodes {
                w += self.shrinker_count(NodeId(n as u32), g)?;
            }
            out.push((g, w));
        }
        Ok(out)
    }

    fn reclaim(&self, group: GroupId, bytes: u64) -> Result<u64, Error> {
        self.reclaim_own(group, bytes)
    }
}

impl<R: Reclaimer + Sync + ?Sized> Reclaimer for &R {
    fn weights(&self) -> Result<Vec<(GroupId, u64)>, Error> {
        (**self).weights()
    }

    fn reclaim(&self, group: GroupId, bytes: u64) -> Result<u64, Error> {
        (**self).reclaim(group, bytes)
    }
}

impl<R: Reclaimer + Sync + ?Sized> Reclaimer for crate::sync::unmodeled::Arc<R> {
    fn weights(&self) -> Result<Vec<(GroupId, u64)>, Error> {
        (**self).weights()
    }

    fn reclaim(&self, group: GroupId, bytes: u64) -> Result<u64, Error> {
        (**self).reclaim(group, bytes)
    }
}

/// How a [`Controller`] behaves.
///
/// ```
/// use std::time::Duration;
/// use zswap::ControllerConfig;
/// let mut cfg = ControllerConfig::default();
/// cfg.target = 0.0005; // 0.05% of the time stalled
/// cfg.interval = Duration::from_secs(6); // senpai's
/// assert_eq!(cfg.max_step_bytes, 16 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct ControllerConfig {
    /// The pressure to keep: the share of time (0 to 0.5) some task may
    /// stall on memory. Default 0.001 (0.1%).
    pub target: f64,
    /// Time between steps on the controller's thread. Default 2 s.
    pub interval: Duration,
    /// The most one step reclaims, in bytes of compressed pool. Default
    /// 16 MiB.
    pub max_step_bytes: u64,
    /// The factor the gain is multiplied by when pressure is at or above
    /// the target (0 to 1, exclusive). Default 0.5.
    pub backoff: f64,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            target: 0.001,
            interval: Duration::from_secs(2),
            max_step_bytes: 16 << 20,
            backoff: 0.5,
        }
    }
}

impl ControllerConfig {
    fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::BadConfig(what));
        if !(self.target > 0.0 && self.target <= 0.5) {
            return bad(format!(
                "pressure target {} (give 0 < target <= 0.5)",
                self.target
            ));
        }
        if self.interval.is_zero() || self.interval > Duration::from_secs(86_400) {
            return bad(format!("controller interval {:?}", self.interval));
        }
        if self.max_step_bytes == 0 {
            return bad("max_step_bytes 0".into());
        }
        if !(self.backoff > 0.0 && self.backoff < 1.0) {
            return bad(format!("backoff {}", self.backoff));
        }
        Ok(())
    }
}

/// What one step did.
///
/// ```
/// use zswap::{Controller, ControllerConfig, Error, GroupId, PressureSource, Reclaimer};
///
/// struct High;
/// impl PressureSource for High {
///     fn read(&mut self) -> Result<f64, Error> {
///         Ok(0.5) // far above any target
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
/// let mut c = Controller::new(High, Nothing, ControllerConfig::default())?;
/// let step = c.step()?;
/// assert_eq!((step.asked, step.reclaimed), (0, 0)); // backing off
/// assert_eq!(step.gain, 0.5);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct ControlStep {
    /// The pressure read (share of time stalled since the last read).
    pub pressure: f64,
    /// The gain after this step (1: full probes; lower after pressure).
    pub gain: f64,
    /// Bytes the step set out to reclaim (0 when backing off).
    pub asked: u64,
    /// Bytes it reclaimed.
    pub reclaimed: u64,
    /// Per group: (group, bytes reclaimed from it).
    pub groups: Vec<(GroupId, u64)>,
}

/// The smallest gain backing off leaves.
const MIN_GAIN: f64 = 1.0 / 64.0;

/// Keeps memory pressure near a target by reclaiming from zswap.
///
/// ```
/// use zswap::{ControllerConfig, Controller, GroupId, Groups, MemDevice, PressureSource};
/// use zswap::{Error, Zswap, ZswapConfig};
///
/// /// A source that reads no pressure at all (a test's; real programs use
/// /// `PsiFile::system()` or `PsiFile::cgroup(path)`).
/// struct Calm;
/// impl PressureSource for Calm {
///     fn read(&mut self) -> Result<f64, Error> {
///         Ok(0.0)
///     }
/// }
///
/// let groups = Groups::new();
/// let tenant = groups.create(GroupId::ROOT)?;
/// let zswap = Zswap::new(ZswapConfig::default().shrink_worker(false), &groups)?;
/// zswap.swapon(Box::new(MemDevice::new(1024)))?;
/// let page: Vec<u8> = (0..4096).map(|i| (i * 7 % 256) as u8).collect();
/// for _ in 0..64 {
///     zswap.swap_out(&page, tenant)?;
/// }
/// let mut cfg = ControllerConfig::default();
/// cfg.max_step_bytes = 4096;
/// let mut controller = Controller::new(Calm, zswap, cfg)?;
/// let mut reclaimed = 0;
/// for _ in 0..4 {
///     reclaimed += controller.step()?.reclaimed; // no pressure: probe
/// }
/// assert!(reclaimed > 0);
/// # Ok::<(), Error>(())
/// ```
#[derive(Debug)]
pub struct Controller<S, R> {
    source: S,
    reclaimer: R,
    cfg: ControllerConfig,
    gain: f64,
}

impl<S: PressureSource, R: Reclaimer> Controller<S, R> {
    /// A controller reading `source` and reclaiming through `reclaimer`.
    /// A target outside (0, 0.5], a zero interval or step, or a backoff
    /// outside (0, 1) is [`Error::BadConfig`].
    pub fn new(source: S, reclaimer: R, cfg: ControllerConfig) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Controller {
            source,
            reclaimer,
            cfg,
            gain: 1.0,
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &ControllerConfig {
        &self.cfg
    }

    /// The reclaimer (to read its state between steps).
    pub fn reclaimer(&self) -> &R {
        &self.reclaimer
    }

    /// One step: read the pressure, then probe or back off.
    pub fn step(&mut self) -> Result<ControlStep, Error> {
        let pressure = self.source.read()?;
        if !pressure.is_finite() || pressure < 0.0 {
            return Err(Error::Pressure {
                path: "pressure source".into(),
                reason: format!("read {pressure}, not a share of time"),
            });
        }
        let pressure = pressure.min(1.0);
        let target = self.cfg.target;
        if pressure >= target {
            self.gain = (self.gain * self.cfg.backoff).max(MIN_GAIN);
            return Ok(ControlStep {
                pressure,
                gain: self.gain,
                ..ControlStep::default()
            });
        }
        let asked = (self.cfg.max_step_bytes as f64 * self.gain * (1.0 - pressure / target)) as u64;
        self.gain = (self.gain + (1.0 - self.gain) / 4.0).min(1.0);
        let mut step = ControlStep {
            pressure,
            gain: self.gain,
            asked,
            ..ControlStep::default()
        };
        let weights = self.reclaimer.weights()?;
        let total: u128 = weights.iter().map(|&(_, w)| u128::from(w)).sum();
        if total == 0 || asked == 0 {
            return Ok(step);
        }
        for (group, w) in weights {
            let share = (u128::from(asked) * u128::from(w) / total) as u64;
            if share == 0 {
                continue;
            }
            match self.reclaimer.reclaim(group, share) {
                Ok(got) => {
                    step.reclaimed += got;
                    step.groups.push((group, got));
                }
                // Gone or going offline since the weights were read.
                Err(Error::UnknownGroup(_) | Error::GroupOffline(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(step)
    }
}

#[cfg(not(loom))]
mod thread;
#[cfg(not(loom))]
pub use thread::ControllerThread;
