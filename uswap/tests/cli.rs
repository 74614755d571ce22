//! The `uswap` binary end to end: short runs over live memory, the JSON it
//! writes, a workload that writes continuously, a swap file that fails,
//! Ctrl-C, and userfaultfd refused by a seccomp filter.
//!
//! Where this machine refuses userfaultfd, each run test prints why and
//! returns early — unless `USWAP_REQUIRE_UFFD` is set (CI sets it: it runs
//! as root, where userfaultfd works), which makes the refusal a failure.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn uswap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_uswap"))
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("uswap-test-{}-{name}", std::process::id()))
}

/// Waits for `child` at most `limit`; kills it and fails if it hangs.
fn wait(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("uswap did not finish within {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

/// Runs uswap with the words of `line` and then `extra`; None (after
/// saying why) where userfaultfd is refused and not required.
fn run(line: &str, extra: &[&str]) -> Option<Output> {
    let child = uswap()
        .args(line.split(' '))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn uswap");
    let out = wait(child, Duration::from_secs(120));
    if out.status.code() == Some(3) {
        let why = String::from_utf8_lossy(&out.stderr);
        assert!(
            std::env::var_os("USWAP_REQUIRE_UFFD").is_none(),
            "userfaultfd is required here (USWAP_REQUIRE_UFFD) but was refused: {why}"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    Some(out)
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(path: &PathBuf) -> Value {
    let v = serde_json::from_str(&std::fs::read_to_string(path).expect("json written"))
        .expect("valid json");
    let _ = std::fs::remove_file(path);
    v
}

fn u(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a count: {v}"))
}

/// A short run: two tenants, a few seconds, half resident, a small
/// `zswap_max` and a small global limit, so pages reach the swap file by
/// both kinds of writeback.
#[test]
fn two_tenants_swap_through_zswap_and_the_swap_file() {
    let path = temp("two.json");
    let svg = temp("two.svg");
    let Some(out) = run(
        "--tenants kv,shift --mib 4 --seconds 1.5 --resident 50 --zswap-max 10 --pool 5",
        &[
            "--json",
            path.to_str().unwrap(),
            "--svg",
            svg.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    let r = json(&path);
    let drawn = std::fs::read_to_string(&svg).expect("svg written");
    let _ = std::fs::remove_file(&svg);
    assert!(drawn.starts_with("<svg") && drawn.contains("polyline"));
    assert_eq!(r["ok"], true);
    // The global limit was reached: the shrink worker ran too.
    assert!(u(&r, "pool_limit_hit") > 0, "{r}");
    assert!(u(&r, "written_back_pages") > 0, "{r}");
    let tenants = r["tenants"].as_array().expect("tenants");
    assert_eq!(tenants.len(), 2);
    let (mut from_zswap, mut from_disk) = (0, 0);
    for t in tenants {
        assert_eq!(u(t, "content_errors"), 0, "{t}");
        assert!(t["error"].is_null(), "{t}");
        assert!(u(t, "faults") > 0, "{t}");
        assert!(u(t, "ops") > 0, "{t}");
        assert!(u(t, "zswpout") > 0, "{t}");
        for key in [
            "ops_per_s",
            "resident_ops_per_s",
            "throughput_vs_resident",
            "refault_1s_share",
        ] {
            assert!(t[key].is_f64(), "{key} missing: {t}");
        }
        for src in ["zswap", "device", "zero"] {
            let l = &t["latency_us"][src];
            for key in ["count", "p50", "p99", "p999", "max"] {
                assert!(l[key].is_number(), "latency_us.{src}.{key} missing: {t}");
            }
        }
        for key in [
            "pages_resident",
            "pages_in_zswap",
            "pages_on_disk",
            "zswpin",
            "zswpwb",
            "zswpwb_foreign",
            "accesses",
            "faults_timed",
        ] {
            let _ = u(t, key);
        }
        assert!(t["bytes_saved"].is_i64(), "{t}");
        assert!(u(t, "pages_resident") <= u(t, "pages"));
        from_zswap += u(&t["pager"], "zswap_ins");
        from_disk += u(&t["pager"], "device_ins");
    }
    assert!(from_zswap > 0, "no swap-in from zswap: {r}");
    assert!(from_disk > 0, "no swap-in from the swap file: {r}");
    let m = &r["memory"];
    for key in [
        "resident_run_bytes",
        "limited_run_bytes",
        "saved_bytes",
        "predicted_bytes",
        "compression_ratio",
        "saved_vs_predicted",
    ] {
        assert!(m[key].is_number(), "memory.{key} missing: {m}");
    }
    // The limit holds while the workloads run: the pager lets a tenant
    // get at most its direct-reclaim slack (128 pages) and a batch in
    // flight (32) over it.
    let series = r["series"].as_array().expect("series");
    assert!(!series.is_empty());
    for (i, t) in tenants.iter().enumerate() {
        let limit = u(t, "resident_limit");
        let worst = series
            .iter()
            .map(|p| p["pages"][i][0].as_u64().unwrap())
            .max()
            .unwrap();
        assert!(
            worst <= limit + 160,
            "{}: {worst} resident, limit {limit}",
            t["name"]
        );
    }
}

/// Every operation writes, while the reclaimer moves pages out under it:
/// a write lost between the move and the store would come back as an old
/// version, a content error.
#[test]
fn a_continuous_writer_loses_nothing() {
    let path = temp("writer.json");
    let Some(out) = run(
        "--tenants kv,shift --mib 4 --seconds 2 --resident 40 --write-percent 100 --no-baseline",
        &["--json", path.to_str().unwrap()],
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    let r = json(&path);
    for t in r["tenants"].as_array().unwrap() {
        assert_eq!(u(t, "content_errors"), 0, "{t}");
        assert!(u(&t["pager"], "swap_outs") > 100, "{t}");
        assert!(
            u(&t["pager"], "zswap_ins") + u(&t["pager"], "device_ins") > 100,
            "{t}"
        );
    }
}

/// The swap file fails every read after a few: the tenant whose fault
/// needed one stops with a message, the run ends (nothing hangs), and the
/// exit status says it failed.
#[test]
fn a_swap_file_read_error_stops_the_tenant_not_the_process() {
    let path = temp("fail.json");
    let Some(out) = run(
        "--tenants scan --mib 2 --seconds 2 --zswap-max 1 --no-baseline --fail-reads-after 5",
        &["--json", path.to_str().unwrap()],
    ) else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = json(&path);
    assert_eq!(r["ok"], false);
    let t = &r["tenants"][0];
    let err = t["error"].as_str().expect("the tenant's error");
    assert!(
        err.contains("swap-in") && err.contains("injected read error"),
        "{err}"
    );
    assert_eq!(
        u(t, "content_errors"),
        0,
        "a stopped tenant's zero page is not counted"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stopped:"),
        "{}",
        text(&out)
    );
}

/// Ctrl-C ends the run early, joins every thread and still reports.
#[test]
fn sigint_ends_the_run_cleanly() {
    if run("--tenants kv --mib 1 --seconds 0.2 --no-baseline", &[]).is_none() {
        return;
    }
    let child = uswap()
        .args("--tenants kv,scan --mib 4 --seconds 60 --no-baseline".split(' '))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill sends a signal to our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let start = Instant::now();
    let out = wait(child, Duration::from_secs(30));
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kv0"),
        "{}",
        text(&out)
    );
}

/// A bad command line is a usage error, not a run.
#[test]
fn bad_arguments_are_refused() {
    for args in [
        &["--resident", "0"][..],
        &["--tenants", "nope"],
        &["--mib", "0"],
        &["--seconds", "-1"],
    ] {
        let out = uswap().args(args).output().expect("run");
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(
            !String::from_utf8_lossy(&out.stderr).is_empty(),
            "{args:?}: no message"
        );
    }
}

/// userfaultfd denied by a seccomp filter (the syscall answers ENOSYS,
/// `/dev/userfaultfd`'s ioctl EPERM): one line on stderr, status 3.
#[cfg(target_arch = "x86_64")]
#[test]
fn a_refused_userfaultfd_is_one_clear_line() {
    use std::os::unix::process::CommandExt;
    let mut cmd = uswap();
    cmd.args(["--seconds", "1"]);
    // SAFETY: between fork and exec the closure only makes two prctl
    // calls on a filter that lives in this (copied) address space.
    unsafe { cmd.pre_exec(deny_userfaultfd) };
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("uswap: userfaultfd refused"), "{err}");
    assert!(out.stdout.is_empty());
}

/// Installs a seccomp filter: `userfaultfd(2)` fails with ENOSYS, and
/// `ioctl(USERFAULTFD_IOC_NEW)` with EPERM.
#[cfg(target_arch = "x86_64")]
fn deny_userfaultfd() -> std::io::Result<()> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 4), // arch
        f(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        f(RET_K, 0, 0, RET_ALLOW),
        f(LD_W_ABS, 0, 0, 0), // nr
        f(JEQ_K, 0, 1, libc::SYS_userfaultfd as u32),
        f(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
        f(JEQ_K, 0, 3, libc::SYS_ioctl as u32),
        f(LD_W_ABS, 0, 0, 24), // args[1], low word
        f(JEQ_K, 0, 1, 0xAA00),
        f(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
        f(RET_K, 0, 0, RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut _,
    };
    // SAFETY: prctl with the documented arguments; the program is valid
    // for the call.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
