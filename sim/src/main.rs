//! `zswap-sim`: tenant groups over real page data through the `zswap`
//! crate's public API — per-group limits, the global limit and its shrink
//! worker, writeback to a temporary swap file — and what it all did, as a
//! table, JSON or a chart. Also: the kernel's test_zswap.c cases as named
//! scenarios, real traces, and "what would zswap do for my process".

mod capture;
mod machine;
mod output;
mod pages;
mod pressure;
mod report;
mod scenario;
mod svg;
mod trace;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use zswap::{LruPolicy, WorkerPolicy};

use machine::{RunSpec, TenantSpec};
use pages::{Contents, PageSource};
use report::Report;

/// Runs tenant groups over real pages through zswap and shows what it did.
#[derive(Parser, Debug)]
#[command(name = "zswap-sim", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Dump a live process's anonymous, non-stack pages to a file (needs
    /// root or ptrace rights over the process).
    Capture {
        /// The process.
        #[arg(long)]
        pid: u32,
        /// Where the pages go (raw 4 KiB pages).
        #[arg(long)]
        out: PathBuf,
        /// At most this many pages.
        #[arg(long, default_value_t = 65_536)]
        max_pages: u64,
    },
    /// Run a page file through every compressor and the allocator: ratio,
    /// footprint, store and load speed per codec.
    Advise {
        /// Raw 4 KiB pages (from `capture`, or `data/pages.bin`).
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// What `--compare` sets side by side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Compare {
    /// Group-aware lists against one global LRU.
    Lru,
    /// The round-robin shrink worker against the proportional one.
    Worker,
}

/// The shrink worker's policy on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum WorkerPolicyArg {
    /// One entry per group in turn, as the kernel's shrink_worker.
    RoundRobin,
    /// In proportion to each group's list length.
    Proportional,
}

impl From<WorkerPolicyArg> for WorkerPolicy {
    fn from(p: WorkerPolicyArg) -> Self {
        match p {
            WorkerPolicyArg::RoundRobin => WorkerPolicy::RoundRobin,
            WorkerPolicyArg::Proportional => WorkerPolicy::Proportional,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Policy {
    /// Per-group lists: a group at its limit writes back its own pages.
    GroupAware,
    /// One LRU for everyone, as before memcg-aware zswap.
    GlobalLru,
}

impl From<Policy> for LruPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::GroupAware => LruPolicy::PerGroup,
            Policy::GlobalLru => LruPolicy::Global,
        }
    }
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Scenario to run: default, usage, swapin-nozswap, zswapin,
    /// writeback-enabled, writeback-disabled, no-invasive-shrink,
    /// incompressible, or `all` for every test_zswap.c case. Not with
    /// `--trace`, which replaces the scenario.
    #[arg(long, default_value = "default", conflicts_with = "trace")]
    scenario: String,
    /// Which LRU design to run.
    #[arg(long, value_enum, default_value_t = Policy::GroupAware)]
    policy: Policy,
    /// Run two designs on the same inputs, side by side: the two list
    /// designs (`--compare`, or `--compare lru`), or the shrink worker's two
    /// policies (`--compare worker`).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "lru")]
    compare: Option<Compare>,
    /// How the shrink worker spreads writeback over the groups when the
    /// global limit is hit (default: the scenario's; round-robin, as the
    /// kernel, but for the proportional scenario).
    #[arg(long, value_enum)]
    worker_policy: Option<WorkerPolicyArg>,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    json: bool,
    /// Also draw pool bytes and writebacks over time into this SVG file
    /// (with `--scenario all`, of the last scenario).
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// Drive one tenant from a real access trace instead of a scenario.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// The trace's format.
    #[arg(long, value_enum, default_value_t = trace::TraceFormat::Auto)]
    trace_format: trace::TraceFormat,
    /// Trace mode: resident pages (default: a quarter of the pages the trace touches).
    #[arg(long, requires = "trace")]
    ram_pages: Option<usize>,
    /// Accesses to simulate (default: the scenario's; trace mode: the whole
    /// trace, up to 10 million pages).
    #[arg(long)]
    accesses: Option<u64>,
    /// Compressor: lz4, lz4-flex, lz4-c, zstd, zstd:LEVEL, deflate, deflate:LEVEL or none.
    #[arg(long, default_value = "lz4")]
    compressor: String,
    /// Page contents from this file of raw 4 KiB pages instead of the
    /// embedded sample (e.g. a `capture`).
    #[arg(long, value_name = "FILE")]
    pages: Option<PathBuf>,
    /// Seed of the access streams.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write back to the swap file with direct I/O (`O_DIRECT`, as the
    /// kernel writes swap: written-back pages leave memory instead of
    /// moving into the page cache). Needs a file system that has it
    /// (not tmpfs): set TMPDIR to one.
    #[arg(long)]
    direct_io: bool,
    /// Run the pressure controller (as senpai runs zswap): every 1/200 of
    /// the run it reads a simulated stall share (a fault from zswap stalls
    /// for 0.2 accesses' time, one from the swap file for 20) and reclaims
    /// from the groups in proportion to their shrinker counts to keep it
    /// near TARGET (a share of time; default 0.05). The pressure scenario
    /// runs it by default.
    #[arg(long, value_name = "TARGET", num_args = 0..=1, default_missing_value = "0.05")]
    pressure: Option<f64>,
    /// Run zswap's shrink worker on its own thread, as the kernel's
    /// workqueue does, instead of inline in the simulation loop right after
    /// the store that asked for it. Results then vary from run to run with
    /// the threads' timing; without it a seed gives the same results every
    /// run.
    #[arg(long)]
    async_worker: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// Writes to stdout; a closed pipe (`zswap-sim | head`) ends the program
/// quietly instead of panicking.
fn emit(s: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(s.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("zswap-sim: error: writing the output: {e}");
        std::process::exit(1);
    }
}

/// `println!` through [`emit`].
macro_rules! outln {
    () => { emit("\n") };
    ($($t:tt)*) => { emit(&format!("{}\n", format_args!($($t)*))) };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = output::remove_temps_on_signals() {
        eprintln!("zswap-sim: error: {e:#}");
        return ExitCode::FAILURE;
    }
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zswap-sim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.cmd {
        Some(Cmd::Capture {
            pid,
            out,
            max_pages,
        }) => {
            if max_pages == 0 {
                bail!("--max-pages 0: nothing would be captured (give at least 1)");
            }
            fits_in_memory("--max-pages", max_pages)?;
            output::check_target(&out).context("--out")?;
            let c = capture::capture(pid, &out, max_pages)?;
            eprintln!(
                "captured {} pages from {} mappings of process {pid} into {} ({} unreadable, skipped)",
                c.pages,
                c.mappings,
                out.display(),
                c.unreadable
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Cmd::Advise { file, json }) => {
            let r = capture::advise(&file)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                emit(&capture::advice_table(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        None => run(cli.run),
    }
}

/// Refuses a page count whose pages would not fit in this machine's
/// memory, before anything is allocated for them (`what` names the flag).
fn fits_in_memory(what: &str, pages: u64) -> anyhow::Result<()> {
    let memory = zswap::total_memory();
    if pages.checked_mul(4096).is_none_or(|b| b > memory) {
        bail!(
            "{what} {pages}: {} GiB of pages, more than this machine's {:.1} GiB of memory",
            pages.saturating_mul(4096) >> 30,
            memory as f64 / f64::from(1u32 << 30)
        );
    }
    Ok(())
}

fn run(a: RunArgs) -> anyhow::Result<ExitCode> {
    if a.accesses == Some(0) {
        bail!("--accesses 0: nothing would be simulated (give at least 1)");
    }
    if let Some(r) = a.ram_pages {
        fits_in_memory("--ram-pages", r as u64)?;
    }
    // Before minutes of simulation, not after.
    if let Some(svg) = &a.svg {
        output::check_target(svg).context("--svg")?;
    }
    zswap::Compressor::by_name(&a.compressor).with_context(|| {
        format!(
            "--compressor {:?}: this build has {}",
            a.compressor,
            zswap::Compressor::names().join(", ")
        )
    })?;
    let source = match &a.pages {
        Some(p) => {
            let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            PageSource::from_bytes(bytes).with_context(|| format!("{}", p.display()))?
        }
        None => PageSource::embedded(),
    };
    // (list design, worker policy) of each run; a worker policy of `None`
    // is the scenario's own.
    let lru: LruPolicy = a.policy.into();
    let worker = a.worker_policy.map(WorkerPolicy::from);
    let variants: Vec<(LruPolicy, Option<WorkerPolicy>)> = match a.compare {
        None => vec![(lru, worker)],
        Some(Compare::Lru) => vec![(LruPolicy::PerGroup, worker), (LruPolicy::Global, worker)],
        Some(Compare::Worker) => vec![
            (lru, Some(WorkerPolicy::RoundRobin)),
            (lru, Some(WorkerPolicy::Proportional)),
        ],
    };
    // (specs, the scenario they run, the trace they replay) per run group.
    let mut jobs: Vec<Jobs> = Vec::new();
    if let Some(path) = &a.trace {
        let limit = a.accesses.unwrap_or(10_000_000);
        let trace = trace::read(path, a.trace_format, limit)?;
        let distinct = trace.stats.distinct_pages;
        let keys = std::sync::Arc::new(trace.pages);
        let ram = a.ram_pages.unwrap_or((distinct as usize / 4).max(16));
        let name = path
            .file_name()
            .map_or("trace".into(), |n| n.to_string_lossy().into_owned());
        let specs = variants
            .iter()
            .map(|&(policy, worker)| RunSpec {
                name: format!("trace {name}"),
                tenants: vec![TenantSpec {
                    name: "trace".into(),
                    pattern: workload::Pattern::Uniform { pages: distinct },
                    ram_pages: ram,
                    zswap_max: None,
                    writeback: true,
                    contents: Contents::Real,
                    weight: 1,
                }],
                // A pool of a quarter of the memory, as zswap's default 20%.
                pool_bytes: (ram as u64 * 4096 / 4).max(1 << 20),
                accesses: keys.len() as u64,
                compressor: a.compressor.clone(),
                policy,
                worker_policy: worker.unwrap_or_default(),
                shrinker_drive: None,
                protection: true,
                pressure: a.pressure,
                shrinker: true,
                async_worker: a.async_worker,
                seed: a.seed,
                samples: 200,
                keys: Some(vec![keys.clone()]),
                direct_io: a.direct_io,
            })
            .collect();
        jobs.push((specs, None, Some(trace.stats)));
    } else {
        let names: Vec<&str> = if a.scenario == "all" {
            scenario::NAMES[1..].to_vec()
        } else {
            vec![a.scenario.as_str()]
        };
        for name in names {
            let Some(s) = scenario::by_name(name) else {
                bail!(
                    "unknown scenario {name:?}; the scenarios are {} (or all)",
                    scenario::NAMES.join(", ")
                );
            };
            // A scenario about protection runs with and without it, unless
            // --compare asks for another pair.
            let protections: &[bool] = if s.both_protections && a.compare.is_none() {
                &[true, false]
            } else {
                &[true]
            };
            let specs = variants
                .iter()
                .flat_map(|&v| protections.iter().map(move |&on| (v, on)))
                .map(|((p, worker), protection)| RunSpec {
                    direct_io: a.direct_io,
                    async_worker: a.async_worker,
                    worker_policy: worker.unwrap_or(s.worker),
                    protection,
                    pressure: a.pressure.or(s.pressure),
                    ..s.spec(p, &a.compressor, a.accesses, a.seed)
                })
                .collect();
            jobs.push((specs, Some(s), None));
        }
    }

    let mut all: Vec<Vec<Report>> = Vec::new();
    let mut failed = Vec::new();
    for (specs, scen, trace) in &jobs {
        let mut reports = Vec::new();
        for spec in specs {
            let bar = (!a.quiet).then(|| progress(spec));
            let mut r = machine::run(spec, &source, bar.as_ref())?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if r.corrupt() > 0 {
                bail!(
                    "{} swap-ins returned wrong bytes: a bug, please report it",
                    r.corrupt()
                );
            }
            r.trace.clone_from(trace);
            reports.push(r);
        }
        // Checked once every run of the group is in: a check may compare.
        if let Some(s) = scen {
            let checks: Vec<report::Check> = reports
                .iter()
                .map(|r| check(s, r, &reports, &source, a.pages.is_some()))
                .collect();
            for (r, c) in reports.iter_mut().zip(checks) {
                if !c.ok && held_to(s, r) {
                    failed.push(s.name.to_string());
                }
                r.check = Some(c);
            }
        }
        if !a.json {
            print_runs(&reports, scen.as_ref());
        }
        all.push(reports);
    }
    if a.json {
        let doc = if all.len() == 1 && all[0].len() == 1 {
            serde_json::to_value(&all[0][0])?
        } else if all.len() == 1 {
            serde_json::json!({ "runs": all[0] })
        } else {
            serde_json::json!({ "scenarios": all })
        };
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    }
    if let Some(path) = &a.svg {
        let runs: Vec<&Report> = all.last().map(|v| v.iter().collect()).unwrap_or_default();
        svg::write(path, &runs)?;
        if !a.json {
            outln!("chart: {}", path.display());
        }
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "zswap-sim: scenario check failed: {} ({} says what was expected and measured)",
            failed.join(", "),
            if a.json {
                "each run's \"check\""
            } else {
                "the table"
            }
        );
        Ok(ExitCode::FAILURE)
    }
}

/// Whether `r` is held to `s`'s check: a group-aware run with the
/// scenario's own worker policy (the others are shown for comparison).
fn held_to(s: &scenario::Scenario, r: &Report) -> bool {
    r.policy == "group-aware"
        && r.worker_policy == machine::worker_policy_name(s.worker)
        && r.protection
}

/// One group of runs: their specs, the scenario they run, the trace they
/// replay.
type Jobs = (
    Vec<RunSpec>,
    Option<scenario::Scenario>,
    Option<trace::TraceStats>,
);

/// Holds `r` to what `s` expects. A failure on page data that is mostly
/// same-filled says why: zswap keeps such a page as one word that charges
/// no pool bytes, so limits are never reached and nothing is written back.
fn check(
    s: &scenario::Scenario,
    r: &Report,
    all: &[Report],
    source: &PageSource,
    own_pages: bool,
) -> report::Check {
    let (ok, measured) = (s.check)(r, all);
    let share = source.same_filled_share();
    let why = (!ok && share >= 0.5).then(|| {
        format!(
            "{:.0}% of the {} pages are same-filled (mostly zero pages): zswap keeps each \
             as one word that charges no pool bytes, so limits are rarely reached and \
             little is written back; capture a busier process, or run without --pages \
             for the embedded sample",
            share * 100.0,
            if own_pages { "--pages" } else { "sample" }
        )
    });
    report::Check {
        ok,
        expected: s.expected.to_string(),
        measured,
        why,
    }
}

fn progress(spec: &RunSpec) -> ProgressBar {
    let bar = ProgressBar::new(spec.accesses);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:28} [{bar:40}] {percent:>3}% · {elapsed} elapsed · {eta} left",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_message(format!(
        "{} ({})",
        spec.name,
        machine::policy_name(spec.policy)
    ));
    bar
}

fn print_runs(reports: &[Report], scen: Option<&scenario::Scenario>) {
    if let Some(s) = scen {
        match s.mirrors {
            Some(k) => outln!("== {} (the kernel's {k}): {}", s.name, s.does),
            None => outln!("== {}: {}", s.name, s.does),
        }
    }
    for r in reports {
        emit(&report::table(r));
        if let (Some(c), Some(s)) = (&r.check, scen) {
            if !held_to(s, r) {
                let other = if r.policy != "group-aware" {
                    r.policy.as_str()
                } else if !r.protection {
                    "no protection"
                } else {
                    r.worker_policy.as_str()
                };
                outln!("under {other}: {}", c.measured);
            } else if c.ok {
                outln!("shows: {}", c.measured);
            } else {
                outln!("FAILED: expected {}", c.expected);
                outln!("        measured {}", c.measured);
                if let Some(why) = &c.why {
                    outln!("        why: {why}");
                }
            }
        }
        outln!();
    }
    if let [a, b] = reports {
        emit(&report::compare(a, b));
        outln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bar says what its times are ("13s elapsed · 5s left"), not
    /// two bare durations with a slash between.
    #[test]
    fn the_progress_bar_reads_naturally() {
        use indicatif::{InMemoryTerm, ProgressDrawTarget};
        let spec =
            scenario::by_name("usage")
                .unwrap()
                .spec(LruPolicy::PerGroup, "lz4", Some(1_000), 1);
        let bar = progress(&spec);
        let term = InMemoryTerm::new(2, 160);
        bar.set_draw_target(ProgressDrawTarget::term_like(Box::new(term.clone())));
        bar.set_position(500);
        bar.tick();
        let shown = term.contents();
        assert!(shown.starts_with("usage (group-aware)"), "{shown}");
        assert!(shown.contains(" 50% · "), "{shown}");
        assert!(
            shown.contains(" elapsed · ") && shown.trim_end().ends_with(" left"),
            "{shown}"
        );
    }
}
