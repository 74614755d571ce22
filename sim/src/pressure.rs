//! `--pressure`: the crate's pressure controller stepped by the
//! simulation loop on a simulated stall share (faults from zswap and from
//! the swap file, weighed by what they would stall), with what it
//! reclaimed booked per tenant.

use anyhow::Context;
use zswap::{Controller, ControllerConfig, Error, Groups, PressureSource, Zswap};

use crate::machine::{RunSpec, Tenant};
use crate::report::PressureReport;

/// Time units one access costs, and the stall of a fault served by zswap
/// (decompression) and by the swap file: the simulated stall share is the
/// stall time over all the time of the accesses since the last step.
const ACCESS_COST: f64 = 1.0;
const ZSWAP_FAULT_STALL: f64 = 0.2;
const DISK_FAULT_STALL: f64 = 20.0;

/// The stall share the controller reads: set by the loop before each step.
struct SimPressure(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl PressureSource for SimPressure {
    fn read(&mut self) -> Result<f64, Error> {
        Ok(f64::from_bits(
            self.0.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }
}

/// The pressure controller stepped by the simulation loop.
pub(crate) struct PressureLoop<'z> {
    controller: Controller<SimPressure, &'z Zswap>,
    share: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Accesses between steps.
    pub every: u64,
    target: f64,
    /// (accesses, faults, zswap faults) at the last step.
    last: (u64, u64, u64),
    steps: u64,
    readings: Vec<f64>,
    reclaimed: u64,
}

impl<'z> PressureLoop<'z> {
    pub fn new(target: f64, spec: &RunSpec, zswap: &'z Zswap) -> anyhow::Result<Self> {
        let share = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut cfg = ControllerConfig::default();
        cfg.target = target;
        // A step may give back up to 1/32 of the global limit.
        cfg.max_step_bytes = (spec.pool_bytes / 32).max(4096);
        let controller =
            Controller::new(SimPressure(share.clone()), zswap, cfg).context("--pressure")?;
        Ok(PressureLoop {
            controller,
            share,
            every: (spec.accesses / 200).max(1),
            target,
            last: (0, 0, 0),
            steps: 0,
            readings: Vec::new(),
            reclaimed: 0,
        })
    }

    /// Sets the stall share of the accesses since the last step, then
    /// steps the controller and books what it reclaimed per tenant.
    pub fn step(
        &mut self,
        at: u64,
        groups: &Groups,
        tenants: &mut [Tenant<'_>],
    ) -> anyhow::Result<()> {
        let faults: u64 = tenants.iter().map(|t| t.counts.faults).sum();
        let mut zswpin = 0;
        for t in tenants.iter() {
            zswpin += groups.stats(t.group)?.zswpin;
        }
        let (acc, f, z) = (at - self.last.0, faults - self.last.1, zswpin - self.last.2);
        self.last = (at, faults, zswpin);
        let disk = f.saturating_sub(z);
        let stall = z as f64 * ZSWAP_FAULT_STALL + disk as f64 * DISK_FAULT_STALL;
        let share = stall / (acc as f64 * ACCESS_COST + stall).max(1.0);
        self.share
            .store(share.to_bits(), std::sync::atomic::Ordering::Relaxed);
        let step = self.controller.step()?;
        self.steps += 1;
        self.readings.push(step.pressure);
        self.reclaimed += step.reclaimed;
        for (g, bytes) in step.groups {
            if let Some(t) = tenants.iter_mut().find(|t| t.group == g) {
                t.reclaimed += bytes;
            }
        }
        Ok(())
    }

    pub fn summary(self) -> PressureReport {
        let half = &self.readings[self.readings.len() / 2..];
        PressureReport {
            target: self.target,
            steps: self.steps,
            mean_pressure: half.iter().sum::<f64>() / half.len().max(1) as f64,
            reclaimed_bytes: self.reclaimed,
        }
    }
}
