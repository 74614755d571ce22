//! `uswap`: user-space swap of live memory through userfaultfd, with the
//! `zswap` crate as its compressed cache and a temp swap file behind it.
//!
//! Each tenant (a group of the crate) owns an anonymous region registered
//! with userfaultfd and a thread running a real workload in it (a
//! key-value table with zipfian keys, a sequential scanner, a shifting
//! working set), whose data verifies itself on every access. A reclaimer
//! keeps each tenant under its resident limit, taking the coldest pages
//! off the tenant's own `ListLru` list, moving them out with `UFFDIO_MOVE`
//! and storing them with `Zswap::swap_out`; a fault handler serves the
//! faults with `Zswap::swap_in` and `UFFDIO_COPY`. The program runs the
//! same workloads twice — fully resident, then under the limits — and
//! reports throughput against the resident run, fault service times as
//! the faulting threads measured them, where the pages are, and the
//! memory the process saved by `/proc/self/statm`.
//!
//! Exit status: 0 if every tenant ran with no content error; 1 if one
//! failed or found bad content, or the run could not be set up; 2 for a
//! bad command line; 3 if userfaultfd is refused here (one line says
//! why).

#![deny(unsafe_op_in_unsafe_fn)]

mod floor;
mod pager;
mod region;
mod report;
mod run;
mod uffd;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use zswap::Compressor;

use run::{RunConfig, TenantSpec};
use workload::Kind;

/// Swaps live memory through the zswap crate with userfaultfd.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The tenants' workloads, one tenant each (kv, scan, shift).
    #[arg(long, value_delimiter = ',', default_values = ["kv", "scan", "shift"])]
    tenants: Vec<Kind>,
    /// Each tenant's memory, in MiB.
    #[arg(long, default_value_t = 32)]
    mib: usize,
    /// Seconds of operations per run (after each tenant's fill).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Each tenant's resident limit, percent of its memory (1-100).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
    resident: u32,
    /// Each group's zswap_max, percent of its memory; what does not fit
    /// is written back to the swap file.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u32).range(0..=100))]
    zswap_max: u32,
    /// The global pool limit, percent of all tenants' memory: when the
    /// pool reaches it, the shrink worker writes back round-robin.
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..=100))]
    pool: u32,
    /// Share of operations that write, percent.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(0..=100))]
    write_percent: u32,
    /// The compressor (lz4, deflate, zstd:LEVEL where built in).
    #[arg(long, default_value = "lz4")]
    compressor: Compressor,
    /// Seeds the workloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Microseconds the fault handler spins for the next fault before it
    /// sleeps (0: sleep at once).
    #[arg(long, default_value_t = 0)]
    handler_spin_us: u64,
    /// Skip the fully resident run (no throughput or savings comparison).
    #[arg(long)]
    no_baseline: bool,
    /// Write the report as JSON here ("-": standard output).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the pages over time as SVG here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Where the swap file goes (default: the temp directory).
    #[arg(long)]
    swap_dir: Option<PathBuf>,
    /// Test hook: the swap file fails every read after this many.
    #[arg(long, hide = true)]
    fail_reads_after: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Refused here: one line, its own status, before anything is built.
    if let Err(r) = uffd::Uffd::open() {
        eprintln!("uswap: {r}");
        return ExitCode::from(3);
    }
    match real_main(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("uswap: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn real_main(args: &Args) -> anyhow::Result<bool> {
    anyhow::ensure!(args.mib >= 1, "--mib must be at least 1");
    anyhow::ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be a positive number"
    );
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let pages = args.mib * (1 << 20) / zswap::PAGE_SIZE;
    let mut tenants = Vec::new();
    for (i, &kind) in args.tenants.iter().enumerate() {
        let name = format!("{}{}", format!("{kind:?}").to_lowercase(), i);
        tenants.push(TenantSpec {
            name,
            kind,
            pages,
            write_percent: args.write_percent,
        });
    }
    let mut cfg = RunConfig {
        tenants,
        duration: Duration::from_secs_f64(args.seconds),
        resident_percent: None,
        zswap_max_percent: args.zswap_max,
        pool_percent: args.pool,
        compressor: args.compressor,
        seed: args.seed,
        handler_spin: Duration::from_micros(args.handler_spin_us),
        swap_dir: args.swap_dir.clone(),
        fail_reads_after: args.fail_reads_after,
    };
    let floor = floor::measure(4096, cfg.handler_spin)?;
    let floor_spinning = floor::measure(4096, Duration::from_secs(3600))?;
    let resident = if args.no_baseline {
        None
    } else {
        eprintln!("uswap: fully resident run ({} s)", args.seconds);
        Some(run::run(&cfg, &stop)?)
    };
    cfg.resident_percent = Some(args.resident);
    eprintln!(
        "uswap: run with {}% resident, zswap_max {}%, pool {}% ({} s)",
        args.resident, args.zswap_max, args.pool, args.seconds
    );
    let limited = run::run(&cfg, &stop)?;
    let rep = report::build(&cfg, limited, resident.as_ref(), [&floor, &floor_spinning]);
    print!("{}", report::table(&rep));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&rep)?;
        if path.as_os_str() == "-" {
            println!("{text}");
        } else {
            std::fs::write(path, text)?;
        }
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, report::svg(&rep))?;
    }
    Ok(rep.ok)
}
