//! The runs the sim knows by name: the default four-tenant mix, and the
//! user-space counterparts of the kernel's
//! `tools/testing/selftests/cgroup/test_zswap.c` cases, each with what it
//! shows and a check of it.

use zswap::{LruPolicy, WorkerPolicy};

use crate::machine::{RunSpec, TenantSpec};
use crate::pages::Contents;
use crate::report::Report;
use crate::workload::Pattern;

const MIB: u64 = 1024 * 1024;

/// A named run and what it is meant to show.
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// The kernel selftest it mirrors, if any.
    pub mirrors: Option<&'static str>,
    /// One line: what it does.
    pub does: &'static str,
    /// Its tenants.
    pub tenants: Vec<TenantSpec>,
    /// Global pool limit.
    pub pool_bytes: u64,
    /// Default number of accesses.
    pub accesses: u64,
    /// Whether the shrink worker runs.
    pub shrinker: bool,
    /// How the worker spreads writeback (the check is held to runs with
    /// this policy).
    pub worker: WorkerPolicy,
    /// The pressure shrinker driven by the loop: `(every, div)`, see
    /// `RunSpec::shrinker_drive`.
    pub shrinker_drive: Option<(u64, u64)>,
    /// Run it twice, with and without disk swap-in protection (the check
    /// is held to the run with it).
    pub both_protections: bool,
    /// The pressure controller's target, if the scenario runs it.
    pub pressure: Option<f64>,
    /// What the run should show, in words and thresholds.
    pub expected: &'static str,
    /// Whether the run showed it (group-aware runs only), and what it
    /// measured.
    pub check: fn(&Report, &[Report]) -> (bool, String),
}

/// Every scenario name, the default first.
pub const NAMES: &[&str] = &[
    "default",
    "usage",
    "swapin-nozswap",
    "zswapin",
    "writeback-enabled",
    "writeback-disabled",
    "no-invasive-shrink",
    "incompressible",
    "proportional",
    "protection",
    "pressure",
];

fn tenant(name: &str, pattern: Pattern, ram_pages: usize) -> TenantSpec {
    TenantSpec {
        name: name.into(),
        pattern,
        ram_pages,
        zswap_max: None,
        writeback: true,
        contents: Contents::Real,
        weight: 1,
    }
}

fn group<'a>(r: &'a Report, name: &str) -> &'a crate::report::GroupReport {
    r.groups
        .iter()
        .find(|g| g.name == name)
        .expect("the scenario's own tenant")
}

/// The scenario called `name`.
pub fn by_name(name: &str) -> Option<Scenario> {
    let uniform = |pages| Pattern::Uniform { pages };
    Some(match name {
        "default" => Scenario {
            name: "default",
            mirrors: None,
            does: "four tenants (zipfian web, sequential batch, phase-shifting analytics, \
                   a small cache) with group limits and a global limit that force both \
                   kinds of reclaim",
            tenants: vec![
                TenantSpec {
                    weight: 4,
                    ..tenant(
                        "web",
                        Pattern::Zipf {
                            pages: 12_000,
                            s: 0.99,
                        },
                        3_000,
                    )
                },
                TenantSpec {
                    zswap_max: Some(4 * MIB),
                    weight: 2,
                    ..tenant("batch", Pattern::Scan { pages: 6_000 }, 2_000)
                },
                TenantSpec {
                    weight: 3,
                    ..tenant(
                        "analytics",
                        Pattern::Shift {
                            pages: 6_000,
                            s: 0.9,
                            at: 0.5,
                        },
                        2_000,
                    )
                },
                TenantSpec {
                    zswap_max: Some(2 * MIB),
                    weight: 2,
                    ..tenant(
                        "cache",
                        Pattern::Zipf {
                            pages: 5_000,
                            s: 0.7,
                        },
                        1_500,
                    )
                },
            ],
            pool_bytes: 12 * MIB,
            accesses: 3_000_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected:
                "batch and cache write back pages of their own (zswpwb > 0 between them), the \
                global limit is hit (pool_limit_hit > 0), and every swap-in returns the page that \
                went out",
            check: |r, _| {
                let limited = group(r, "batch").zswpwb + group(r, "cache").zswpwb;
                let foreign: u64 = r.groups.iter().map(|g| g.foreign_writebacks).sum();
                (
                    limited > 0 && r.global.pool_limit_hit > 0 && r.corrupt() == 0,
                    format!(
                        "group limits made batch and cache write back {limited} of their own \
                         pages; the global limit was hit {} times and the shrink worker wrote \
                         back the rest; {foreign} pages were written back for another group's \
                         limit; every swap-in returned the page that went out",
                        r.global.pool_limit_hit
                    ),
                )
            },
        },
        "usage" => Scenario {
            name: "usage",
            mirrors: Some("test_zswap_usage"),
            does: "one group touches more memory than it may keep: pages go to zswap",
            tenants: vec![tenant("app", uniform(4_000), 1_000)],
            pool_bytes: 256 * MIB,
            accesses: 40_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected:
                "the group stores pages in zswap (zswpout > 0) and is charged pool bytes (peak > 0)",
            check: |r, _| {
                let g = group(r, "app");
                (
                    g.zswpout > 0 && g.peak_pool_bytes > 0,
                    format!(
                        "zswpout {} and up to {:.1} MiB of pool charged to the group",
                        g.zswpout,
                        g.peak_pool_bytes as f64 / MIB as f64
                    ),
                )
            },
        },
        "swapin-nozswap" => Scenario {
            name: "swapin-nozswap",
            mirrors: Some("test_swapin_nozswap"),
            does: "zswap_max 0: every page goes straight to the swap file and comes back from it",
            tenants: vec![TenantSpec {
                zswap_max: Some(0),
                ..tenant("app", uniform(2_000), 500)
            }],
            pool_bytes: 256 * MIB,
            accesses: 20_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected:
                "nothing goes to zswap (zswpout = 0) and faults read the swap file (disk reads > 0)",
            check: |r, _| {
                let g = group(r, "app");
                (
                    g.zswpout == 0 && g.disk_reads > 0,
                    format!(
                        "zswpout {}, {} faults read from the swap file",
                        g.zswpout, g.disk_reads
                    ),
                )
            },
        },
        "zswapin" => Scenario {
            name: "zswapin",
            mirrors: Some("test_zswapin"),
            does: "pages go to zswap and fault back from it, never touching the disk",
            tenants: vec![tenant("app", uniform(2_000), 500)],
            pool_bytes: 256 * MIB,
            accesses: 20_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected:
                "faults are served by zswap (zswpin > 0) and never by the disk (disk reads = 0)",
            check: |r, _| {
                let g = group(r, "app");
                (
                    g.zswpin > 0 && g.disk_reads == 0,
                    format!("zswpin {}, disk reads {}", g.zswpin, g.disk_reads),
                )
            },
        },
        "writeback-enabled" => Scenario {
            name: "writeback-enabled",
            mirrors: Some("test_zswap_writeback_enabled"),
            does: "a 1 MiB zswap_max with writeback on: the group writes its coldest pages back",
            tenants: vec![TenantSpec {
                zswap_max: Some(MIB),
                ..tenant("app", uniform(4_000), 500)
            }],
            pool_bytes: 256 * MIB,
            accesses: 30_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected: "the group writes its own pages back (zswpwb > 0)",
            check: |r, _| {
                let g = group(r, "app");
                (
                    g.zswpwb > 0,
                    format!(
                        "zswpwb {}, pool held at {:.2} MiB",
                        g.zswpwb,
                        g.peak_pool_bytes as f64 / MIB as f64
                    ),
                )
            },
        },
        "writeback-disabled" => Scenario {
            name: "writeback-disabled",
            mirrors: Some("test_zswap_writeback_disabled"),
            does: "the same with zswap.writeback 0: nothing is written back; what does not \
                   fit stays in memory",
            tenants: vec![TenantSpec {
                zswap_max: Some(MIB),
                writeback: false,
                ..tenant("app", uniform(4_000), 500)
            }],
            pool_bytes: 256 * MIB,
            accesses: 30_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected:
                "nothing is written back (zswpwb = 0) and pages that fit nowhere stay resident \
                (kept resident > 0)",
            check: |r, _| {
                let g = group(r, "app");
                (
                    g.zswpwb == 0 && g.kept_resident > 0,
                    format!(
                        "zswpwb {}, {} pages stayed resident past the cap",
                        g.zswpwb, g.kept_resident
                    ),
                )
            },
        },
        "no-invasive-shrink" => Scenario {
            name: "no-invasive-shrink",
            mirrors: Some("test_no_invasive_cgroup_shrink"),
            does: "a group at a small zswap_max reclaims beside a bystander that has pages in \
                   zswap: only its own pages may be written back",
            tenants: vec![
                TenantSpec {
                    weight: 1,
                    ..tenant("control", uniform(1_500), 500)
                },
                TenantSpec {
                    zswap_max: Some(MIB),
                    weight: 4,
                    ..tenant("wb", uniform(6_000), 500)
                },
            ],
            pool_bytes: 256 * MIB,
            accesses: 60_000,
            shrinker: false,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected:
                "wb writes back its own pages (zswpwb > 0) and control loses none (zswpwb = 0, \
                foreign = 0)",
            check: |r, _| {
                let (c, wb) = (group(r, "control"), group(r, "wb"));
                (
                    c.zswpwb == 0 && c.foreign_writebacks == 0 && wb.zswpwb > 0,
                    format!(
                        "wb wrote back {} of its own pages; control lost {} (foreign {})",
                        wb.zswpwb, c.zswpwb, c.foreign_writebacks
                    ),
                )
            },
        },
        "incompressible" => Scenario {
            name: "incompressible",
            mirrors: Some("test_zswap_incompressible"),
            does: "random pages with writeback on: zswap keeps them uncompressed \
                   (zswap_incomp) rather than rejecting them",
            tenants: vec![TenantSpec {
                contents: Contents::Incompressible,
                ..tenant("app", uniform(2_000), 500)
            }],
            pool_bytes: 256 * MIB,
            accesses: 20_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected: "random pages are stored as-is (stored_incompressible_pages > 0)",
            check: |r, _| {
                let n = r.global.stored_incompressible_pages;
                (
                    n > 0,
                    format!("{n} pages stored as-is, ratio {:.2}", group(r, "app").ratio),
                )
            },
        },
        "protection" => Scenario {
            name: "protection",
            mirrors: None,
            does: "a working set four times the memory, cycling through zswap, with the \
                   pressure shrinker writing back all it counts every 5,000 accesses, run \
                   with and without the disk swap-in protection of Linux 6.12",
            tenants: vec![tenant("app", uniform(6_000), 1_500)],
            pool_bytes: 256 * MIB,
            accesses: 200_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: Some((5_000, 1)),
            both_protections: true,
            pressure: None,
            expected: "protection cuts the pages read back from the swap file by at least 10%",
            check: |r, all| {
                let reads = |r: &Report| group(r, "app").disk_reads;
                let wb = |r: &Report| group(r, "app").zswpwb;
                if !r.protection {
                    return (
                        true,
                        format!("disk reads {}, written back {}", reads(r), wb(r)),
                    );
                }
                let Some(without) = all.iter().find(|o| !o.protection) else {
                    return (false, "no run without protection to compare with".into());
                };
                let (with, none) = (reads(r), reads(without));
                (
                    none > 0 && (with as f64) <= 0.9 * none as f64,
                    format!(
                        "disk reads {with} with protection, {none} without ({:+.1}%); \
                         written back {} and {}",
                        100.0 * (with as f64 - none as f64) / none.max(1) as f64,
                        wb(r),
                        wb(without)
                    ),
                )
            },
        },
        "pressure" => Scenario {
            name: "pressure",
            mirrors: None,
            does: "the pressure controller (senpai's law) on a simulated stall share: it \
                   writes back the tenants' cold pages until faults from the swap file \
                   stall 5% of the time, in proportion to their shrinker counts, never \
                   from the tenant that may not write back",
            tenants: vec![
                TenantSpec {
                    weight: 2,
                    ..tenant(
                        "hot",
                        Pattern::Zipf {
                            pages: 20_000,
                            s: 1.1,
                        },
                        2_000,
                    )
                },
                tenant(
                    "warm",
                    Pattern::Zipf {
                        pages: 10_000,
                        s: 0.9,
                    },
                    2_000,
                ),
                TenantSpec {
                    writeback: false,
                    ..tenant(
                        "pinned",
                        Pattern::Zipf {
                            pages: 5_000,
                            s: 1.0,
                        },
                        1_000,
                    )
                },
            ],
            pool_bytes: 256 * MIB,
            accesses: 400_000,
            shrinker: true,
            worker: WorkerPolicy::RoundRobin,
            shrinker_drive: None,
            both_protections: false,
            pressure: Some(0.05),
            expected: "the controller reclaims from hot and warm, nothing from pinned, and the \
                       stall share it reads over the second half is within 0.25x to 2x its \
                       target",
            check: |r, _| {
                let Some(p) = &r.pressure else {
                    return (false, "the controller did not run".into());
                };
                let (hot, warm, pinned) = (
                    group(r, "hot").reclaimed_bytes,
                    group(r, "warm").reclaimed_bytes,
                    group(r, "pinned").reclaimed_bytes,
                );
                let m = p.mean_pressure / p.target;
                (
                    hot > 0 && warm > 0 && pinned == 0 && (0.25..=2.0).contains(&m),
                    format!(
                        "reclaimed hot {:.1} MiB, warm {:.1}, pinned {:.1}; read {:.2}% on \
                         average over the second half, target {:.2}%",
                        hot as f64 / MIB as f64,
                        warm as f64 / MIB as f64,
                        pinned as f64 / MIB as f64,
                        p.mean_pressure * 100.0,
                        p.target * 100.0
                    ),
                )
            },
        },
        "proportional" => Scenario {
            name: "proportional",
            mirrors: None,
            does: "four sibling groups with working sets 1:2:4:8, accesses in proportion, \
                   only the global limit: the proportional worker writes back the same share \
                   of each group's pages, where round-robin squeezes the small ones",
            tenants: [("xs", 1u32), ("s", 2), ("m", 4), ("l", 8)]
                .into_iter()
                .map(|(name, k)| TenantSpec {
                    weight: k,
                    ..tenant(name, uniform(500 * u64::from(k)), 125 * k as usize)
                })
                .collect(),
            pool_bytes: 4 * MIB,
            accesses: 200_000,
            shrinker: true,
            worker: WorkerPolicy::Proportional,
            shrinker_drive: None,
            both_protections: false,
            pressure: None,
            expected: "the share of each group's swapped-out pages written back is within \
                       1.2x between the largest and the smallest",
            check: |r, _| {
                let shares: Vec<String> = r
                    .groups
                    .iter()
                    .map(|g| {
                        format!(
                            "{} {:.1}%",
                            g.name,
                            100.0 * g.zswpwb as f64 / g.swap_outs.max(1) as f64
                        )
                    })
                    .collect();
                let spread = r.writeback_spread();
                (
                    spread.is_some_and(|x| x <= 1.2),
                    format!(
                        "written back {}: largest ÷ smallest {}",
                        shares.join(", "),
                        spread.map_or("-".into(), |x| format!("{x:.2}"))
                    ),
                )
            },
        },
        _ => return None,
    })
}

impl Scenario {
    /// The run spec of this scenario.
    pub fn spec(
        &self,
        policy: LruPolicy,
        compressor: &str,
        accesses: Option<u64>,
        seed: u64,
    ) -> RunSpec {
        RunSpec {
            name: self.name.into(),
            tenants: self.tenants.clone(),
            pool_bytes: self.pool_bytes,
            accesses: accesses.unwrap_or(self.accesses),
            compressor: compressor.into(),
            policy,
            worker_policy: self.worker,
            shrinker_drive: self.shrinker_drive,
            protection: true,
            pressure: self.pressure,
            shrinker: self.shrinker,
            async_worker: false,
            seed,
            samples: 200,
            keys: None,
            direct_io: false,
        }
    }
}
