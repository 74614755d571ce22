//! Runs the `zswap-sim` binary as a user would, on small inputs: the
//! default scenario at a reduced size, `--json`, `--compare` on the
//! no-invasive-shrink scenario, every test_zswap.c scenario, the trace
//! formats (and one trace in three encodings as one workload), capture and
//! advise, a failed check's expected-versus-measured report, SIGTERM in
//! the middle of a write, and each bad input (non-zero exit, a clear
//! message, no output file left behind).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zswap-sim"))
        .args(args)
        .arg("--quiet")
        .output()
        .expect("the binary runs")
}

fn sim_raw(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_zswap-sim"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("--json prints one JSON document")
}

/// A scratch directory of this test's own, removed when the test ends.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let d = std::env::temp_dir().join(format!("zswap-sim-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Scratch(d)
}

fn sum(groups: &serde_json::Value, key: &str) -> u64 {
    groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g[key].as_u64().unwrap())
        .sum()
}

#[test]
fn default_scenario_reduced() {
    let o = sim(&["--accesses", "150000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for name in [
        "web",
        "batch",
        "analytics",
        "cache",
        "zswpwb",
        "foreign",
        "shows:",
    ] {
        assert!(out.contains(name), "{name} missing from:\n{out}");
    }
}

/// `--direct-io` writes back with `O_DIRECT` where the temporary directory's
/// file system has it, and says so; where it does not, it fails clearly.
#[test]
fn direct_io_run_or_a_clear_refusal() {
    let o = sim_raw(&["--accesses", "150000", "--direct-io", "--json"]);
    if !o.status.success() {
        assert!(stderr(&o).contains("O_DIRECT"), "{}", stderr(&o));
        return;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["device"], "direct");
    assert_eq!(sum(&v["groups"], "corrupt_swapins"), 0);
    assert!(sum(&v["groups"], "zswpwb") > 0, "nothing was written back");
}

#[test]
fn json_parses_and_is_consistent() {
    let v = json(&sim(&["--accesses", "150000", "--json"]));
    assert_eq!(v["policy"], "group-aware");
    let groups = &v["groups"];
    assert_eq!(groups.as_array().unwrap().len(), 4);
    assert_eq!(sum(groups, "corrupt_swapins"), 0);
    assert_eq!(sum(groups, "foreign_writebacks"), 0);
    assert!(sum(groups, "zswpout") > 0);
    // Every written-back page belongs to some group.
    assert_eq!(
        sum(groups, "zswpwb"),
        v["global"]["written_back_pages"].as_u64().unwrap()
    );
    assert!(v["timeline"].as_array().unwrap().len() > 10);
}

#[test]
fn compare_no_invasive_shrink() {
    let v = json(&sim(&[
        "--scenario",
        "no-invasive-shrink",
        "--compare",
        "--json",
    ]));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs[0]["policy"], "group-aware");
    assert_eq!(runs[1]["policy"], "global-lru");
    assert_eq!(sum(&runs[0]["groups"], "foreign_writebacks"), 0);
    assert!(sum(&runs[1]["groups"], "foreign_writebacks") > 0);
    // And the table form says so.
    let out = stdout(&sim(&["--scenario", "no-invasive-shrink", "--compare"]));
    assert!(
        out.contains("foreign writebacks: group-aware 0 · global-lru "),
        "{out}"
    );
}

#[test]
fn every_test_zswap_scenario_shows_what_it_should() {
    let o = sim(&["--scenario", "all"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert_eq!(out.matches("shows:").count(), 10, "{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn svg_is_written_whole() {
    let d = scratch("svg");
    let path = d.join("run.svg");
    let o = sim(&[
        "--scenario",
        "writeback-enabled",
        "--svg",
        path.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        std::fs::read_dir(&*d).unwrap().count(),
        1,
        "no temporary file left"
    );
}

fn oracle_trace(path: &Path) {
    let mut data = Vec::new();
    let mut x = 1u64;
    for t in 0..30_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = (x % 64).pow(2) * 8; // skewed; a 4 KiB block is 8 sectors
        data.extend_from_slice(&(t / 100).to_le_bytes());
        data.extend_from_slice(&id.to_le_bytes());
        data.extend_from_slice(&4096u32.to_le_bytes());
        data.extend_from_slice(&(-1i64).to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

#[test]
fn traces_in_each_format() {
    let d = scratch("traces");
    let bin = d.join("small.oracleGeneral.bin");
    oracle_trace(&bin);
    let v = json(&sim(&[
        "--trace",
        bin.to_str().unwrap(),
        "--json",
        "--ram-pages",
        "20",
    ]));
    assert_eq!(v["accesses"], 30_000);
    assert!(v["groups"][0]["faults"].as_u64().unwrap() > 0);

    let csv = d.join("lbn.csv");
    let mut text = String::from("version,time,op,size,lbn\n");
    for i in 0..5000u64 {
        text += &format!("1,{i},R,8192,{}\n", (i * 7919 % 3000) * 8);
    }
    std::fs::write(&csv, text).unwrap();
    let v = json(&sim(&["--trace", csv.to_str().unwrap(), "--json"]));
    assert_eq!(v["accesses"], 10_000, "8 KiB requests touch two pages");

    let plain = d.join("plain.csv");
    std::fs::write(&plain, "0,0,4096\n1,4096,4096\n2,0,4096\n").unwrap();
    let v = json(&sim(&[
        "--trace",
        plain.to_str().unwrap(),
        "--trace-format",
        "csv",
        "--json",
    ]));
    assert_eq!(v["accesses"], 3);
}

#[test]
fn capture_then_advise_a_child_process() {
    let d = scratch("capture");
    // A shell that fills its heap, says so, then blocks reading its stdin:
    // once "ready" arrives the heap exists and stays put while we read it.
    // (A bare `sleep` caught just after exec has no anonymous pages yet:
    // the dynamic loader has not run.)
    let mut child = Command::new("sh")
        .args(["-c", "v=$(seq 1 20000); echo ready; read x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = d.join("sh.pages");
    let pid = child.id().to_string();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    let o = sim_raw(&["capture", "--pid", &pid, "--out", out.to_str().unwrap()]);
    let _ = child.kill();
    let _ = child.wait();
    if !o.status.success() {
        // No ptrace rights here (a hardened sandbox): the message says so.
        assert!(stderr(&o).contains("ptrace"), "{}", stderr(&o));
        assert!(!out.exists());
        return;
    }
    let len = std::fs::metadata(&out).unwrap().len();
    assert!(len > 0 && len % 4096 == 0);
    let v = json(&sim_raw(&["advise", out.to_str().unwrap(), "--json"]));
    assert!(v["pages"].as_u64().unwrap() > 0);
    assert!(!v["codecs"].as_array().unwrap().is_empty());
}

#[test]
fn advise_the_committed_sample() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/pages.bin");
    let o = sim_raw(&["advise", sample]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("lz4") && out.contains("deflate") && out.contains("zstd"),
        "{out}"
    );
}

/// Runs `args`, expects failure with `msg` in stderr.
fn fails(args: &[&str], msg: &str) {
    let o = sim_raw(args);
    assert!(!o.status.success(), "{args:?} succeeded");
    let e = stderr(&o);
    assert!(e.contains(msg), "{args:?}: expected {msg:?} in:\n{e}");
}

#[test]
fn bad_input_fails_clearly() {
    let d = scratch("bad");
    fails(&["--bogus"], "unexpected argument '--bogus'");
    fails(&["--policy", "lru"], "invalid value 'lru'");
    fails(&["--scenario", "nope"], "unknown scenario \"nope\"");
    fails(&["--compressor", "lzo"], "--compressor \"lzo\"");
    let missing = d.join("missing.csv");
    fails(&["--trace", missing.to_str().unwrap()], "opening trace");
    let bad = d.join("bad.csv");
    std::fs::write(&bad, "0,0,4096\n1,4096,4096\n2,zz,4096\n").unwrap();
    fails(
        &["--trace", bad.to_str().unwrap()],
        "trace line 3: key \"zz\"",
    );
    // A key beyond u64 is an error with its line number, never u64::MAX,
    // and a first line holding one is data, not a header.
    let huge = d.join("huge.csv");
    std::fs::write(&huge, "0,1e300,4096\n1,4096,4096\n").unwrap();
    fails(
        &["--trace", huge.to_str().unwrap()],
        "trace line 1: key \"1e300\"",
    );
    let beyond = d.join("beyond.csv");
    std::fs::write(&beyond, "0,0,4096\n1,18446744073709551616,4096\n").unwrap();
    fails(
        &["--trace", beyond.to_str().unwrap()],
        "trace line 2: key \"18446744073709551616\"",
    );
    let short = d.join("short.oracleGeneral.bin");
    std::fs::write(&short, [0u8; 30]).unwrap();
    fails(
        &["--trace", short.to_str().unwrap()],
        "record 1: only 6 of 24 bytes",
    );
    let odd = d.join("odd.pages");
    std::fs::write(&odd, b"abc").unwrap();
    fails(
        &["advise", odd.to_str().unwrap()],
        "not a whole number of 4096-byte pages",
    );
    fails(&["--pages", odd.to_str().unwrap()], "whole 4096-byte pages");
    let out = d.join("never.pages");
    fails(
        &[
            "capture",
            "--pid",
            "999999999",
            "--out",
            out.to_str().unwrap(),
        ],
        "is 999999999 a running process",
    );
    assert!(!out.exists());
    // Page counts beyond memory, or none, are refused before anything is
    // allocated (--ram-pages 10^18 used to abort in the allocator).
    let csv = d.join("one.csv");
    std::fs::write(&csv, "0,0,4096\n").unwrap();
    fails(
        &[
            "--trace",
            csv.to_str().unwrap(),
            "--ram-pages",
            "1000000000000000000",
        ],
        "--ram-pages 1000000000000000000: ",
    );
    for (max_pages, why) in [
        ("0", "--max-pages 0: nothing would be captured"),
        ("18446744073709551615", "more than this machine's"),
    ] {
        let capture = ["capture", "--pid", "1", "--out", out.to_str().unwrap()];
        fails(&[&capture[..], &["--max-pages", max_pages]].concat(), why);
    }
    assert!(!out.exists());
    // A flag that does not apply is an error, not ignored.
    fails(&["--ram-pages", "100"], "--trace");
    fails(
        &["--scenario", "usage", "--trace", csv.to_str().unwrap()],
        "cannot be used with",
    );
    // An output that is not a regular file is refused before the run and
    // never replaced: a device node, a directory, a symbolic link.
    use std::os::unix::fs::FileTypeExt;
    fails(
        &["--scenario", "usage", "--svg", "/dev/null"],
        "not a regular file",
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    fails(
        &["--scenario", "usage", "--svg", d.to_str().unwrap()],
        "not a regular file",
    );
    let target = d.join("target.svg");
    std::fs::write(&target, "keep me").unwrap();
    let link = d.join("link.svg");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    fails(
        &["--scenario", "usage", "--svg", link.to_str().unwrap()],
        "a symbolic link",
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let nodir = d.join("no/such/dir/chart.svg");
    fails(
        &["--scenario", "usage", "--svg", nodir.to_str().unwrap()],
        "chart.svg",
    );
    // Nothing half-written anywhere in the scratch directory.
    let left: Vec<_> = std::fs::read_dir(&*d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A full disk: the chart cannot be written; the run says so, exits
/// non-zero and leaves nothing behind. The full disk is a 16 KiB tmpfs in a
/// private mount namespace (`unshare -Urm`, no root needed where user
/// namespaces are allowed, as on the CI machines).
#[test]
fn full_disk_leaves_no_half_written_file() {
    let d = scratch("fullfs");
    let script = format!(
        "mount -t tmpfs -o size=16k none {dir} && {sim} --quiet --scenario usage --svg {dir}/chart.svg; \
         rc=$?; ls -A {dir}; exit $rc",
        dir = d.display(),
        sim = env!("CARGO_BIN_EXE_zswap-sim"),
    );
    let o = Command::new("unshare")
        .args(["-Urm", "sh", "-c", &script])
        .output();
    let Some(o) = o
        .ok()
        .filter(|o| !String::from_utf8_lossy(&o.stderr).contains("unshare:"))
    else {
        eprintln!("skipped: no mount namespaces here (unshare -Urm failed)");
        return;
    };
    assert!(!o.status.success(), "writing to a full disk succeeded");
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        stdout(&o).lines().filter(|l| l.contains("chart")).count(),
        0,
        "{}",
        stdout(&o)
    );
}

/// `--accesses 0` is the same error with and without `--json` (the JSON
/// run used to succeed where the table run failed its check).
#[test]
fn zero_accesses_is_one_error_in_both_modes() {
    for json in [false, true] {
        let mut args = vec!["--scenario", "usage", "--accesses", "0"];
        if json {
            args.push("--json");
        }
        let o = sim(&args);
        assert!(!o.status.success(), "json {json}");
        assert!(
            stderr(&o).contains("--accesses 0: nothing would be simulated"),
            "json {json}: {}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty(), "json {json}: no half report");
    }
}

/// A failed check says what was expected and what was measured, in the
/// table and in the JSON alike, and both exit non-zero; on page data that
/// is mostly zero pages it says why nothing was written back.
#[test]
fn a_failed_check_says_expected_measured_and_why() {
    let d = scratch("zeros");
    let zeros = d.join("zeros.pages");
    let mut data = vec![0u8; 64 * 4096];
    data[..4096].fill(7); // one page of real data among zero pages
    data[4096..8192]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    std::fs::write(&zeros, data).unwrap();
    let args = [
        "--scenario",
        "writeback-enabled",
        "--pages",
        zeros.to_str().unwrap(),
    ];
    let o = sim(&args);
    assert!(!o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("FAILED: expected the group writes its own pages back (zswpwb > 0)"),
        "{out}"
    );
    assert!(out.contains("measured zswpwb 0"), "{out}");
    assert!(
        out.contains("98% of the --pages pages are same-filled (mostly zero pages)"),
        "{out}"
    );
    assert!(stderr(&o).contains("scenario check failed: writeback-enabled"));

    let o = sim(&[&args[..], &["--json"]].concat());
    assert!(!o.status.success(), "the JSON run fails its check too");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["check"]["ok"], false);
    assert!(v["check"]["expected"]
        .as_str()
        .unwrap()
        .contains("zswpwb > 0"));
    assert!(v["check"]["measured"]
        .as_str()
        .unwrap()
        .contains("zswpwb 0"));
    assert!(v["check"]["why"].as_str().unwrap().contains("same-filled"));

    // A passing run carries its check too, without a `why`.
    let v = json(&sim(&["--scenario", "usage", "--json"]));
    assert_eq!(v["check"]["ok"], true);
    assert!(v["check"].get("why").is_none());
}

/// One block trace written as libCacheSim CSV (block numbers in `lbn`, and
/// again in `obj_id`) and as oracleGeneral (the block number as the object
/// id) is one workload: the same page accesses and the same counts, which
/// the report states in the JSON and in the table. Ids up to u64::MAX map
/// without overflow.
#[test]
fn a_trace_is_one_workload_in_every_format() {
    let d = scratch("same-trace");
    let (lbn, obj, bin) = (
        d.join("t.csv"),
        d.join("o.csv"),
        d.join("t.oracleGeneral.bin"),
    );
    let mut lbn_text = String::from("version,time,op,size,lbn\n");
    let mut obj_text = String::from("time,obj_id,obj_size,next_access_vtime\n");
    let mut records = Vec::new();
    let mut x = 7u64;
    for t in 0..6_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let block = match t % 50 {
            0 => u64::MAX - x % 64, // the far end of the id space
            _ => (x % 1_500) * 3,   // unaligned blocks: requests share pages
        };
        let size = [512u32, 4096, 8192, 16_384][(x >> 20) as usize % 4];
        lbn_text += &format!("1,{t},R,{size},{block}\n");
        obj_text += &format!("{t},{block},{size},-1\n");
        records.extend_from_slice(&t.to_le_bytes());
        records.extend_from_slice(&block.to_le_bytes());
        records.extend_from_slice(&size.to_le_bytes());
        records.extend_from_slice(&(-1i64).to_le_bytes());
    }
    std::fs::write(&lbn, lbn_text).unwrap();
    std::fs::write(&obj, obj_text).unwrap();
    std::fs::write(&bin, records).unwrap();
    let run = |p: &Path| json(&sim(&["--trace", p.to_str().unwrap(), "--json"]));
    let (a, b, c) = (run(&lbn), run(&obj), run(&bin));
    let t = &c["trace"];
    assert_eq!(t["requests"], 6_000);
    assert_eq!(a["trace"], *t);
    assert_eq!(b["trace"], *t);
    assert_eq!(a["accesses"], c["accesses"]);
    assert_eq!(t["page_accesses"], c["accesses"]);
    let distinct = t["distinct_pages"].as_u64().unwrap();
    assert!(distinct > 100 && distinct < t["page_accesses"].as_u64().unwrap());
    assert!(t["distinct_keys"].as_u64().unwrap() <= 1_500 + 64);
    assert!(t["bytes"].as_u64().unwrap() >= 6_000 * 512);
    // The same faults: one page stream, one deterministic memory model.
    assert_eq!(a["groups"][0]["faults"], c["groups"][0]["faults"]);
    let table = stdout(&sim(&["--trace", bin.to_str().unwrap()]));
    assert!(
        table.contains("trace: 6000 requests · ") && table.contains("distinct pages"),
        "{table}"
    );
}

/// SIGTERM in the middle of writing an output file removes the temporary
/// file: the process dies of the signal and leaves nothing behind. The
/// output is a `capture` of a child holding 256 MiB, signalled the moment
/// its temporary file appears (skipped without ptrace rights).
#[test]
fn sigterm_mid_write_leaves_no_temporary_file() {
    let d = scratch("sigterm");
    // This test binary, asked to hold memory and wait (see below).
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hold_memory_until_stdin_closes", "--ignored"])
        .arg("--nocapture")
        .env("ZSWAP_SIM_TEST_HOLD_MEMORY", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    while !line.starts_with("ready") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the holder died");
    }
    let out = d.join("big.pages");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_zswap-sim"))
        .args(["capture", "--pid", &child.id().to_string()])
        .args(["--out", out.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let temp_exists = || {
        std::fs::read_dir(&*d)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains(".tmp-"))
    };
    let mut signalled = false;
    let status = loop {
        if let Some(status) = sim.try_wait().unwrap() {
            break status;
        }
        if !signalled && temp_exists() {
            let kill = Command::new("kill")
                .args(["-TERM", &sim.id().to_string()])
                .status()
                .unwrap();
            assert!(kill.success());
            signalled = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    drop(child.stdin.take());
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut sim.stderr.take().unwrap(), &mut err).unwrap();
    if !signalled {
        // Refused (no ptrace rights) before any temporary file existed.
        assert!(
            !status.success() && err.contains("ptrace"),
            "{status}: {err}"
        );
        eprintln!("skipped: {err}");
        return;
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "died of SIGTERM: {status} {err}");
    assert!(!temp_exists(), "the temporary file was removed");
    assert!(!out.exists(), "no output from an interrupted capture");
}

/// Not a test of its own (ignored, so it is never counted): the child of
/// the SIGTERM test. Holds 256 MiB of non-zero anonymous memory, says
/// "ready", and waits for stdin to close.
#[test]
#[ignore = "the SIGTERM test's child process, run by that test"]
fn hold_memory_until_stdin_closes() {
    if std::env::var_os("ZSWAP_SIM_TEST_HOLD_MEMORY").is_none() {
        return;
    }
    let held = vec![0x5au8; 256 << 20];
    println!("ready");
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
    std::hint::black_box(&held);
}

/// With a seed, a run prints the same results every time: the shrink
/// worker runs inline at fixed points of the loop (`--async-worker` keeps
/// the thread). Only the wall-clock field may differ.
#[test]
fn a_seed_gives_the_same_results_every_run() {
    let run = || {
        let mut v = json(&sim(&["--accesses", "150000", "--json", "--seed", "7"]));
        let obj = v.as_object_mut().unwrap();
        assert!(
            obj.remove("elapsed_ms").is_some(),
            "the one wall-clock field"
        );
        v
    };
    let (a, b) = (run(), run());
    assert_eq!(a["worker"], "inline");
    assert!(
        a["global"]["pool_limit_hit"].as_u64().unwrap() > 0,
        "the worker ran"
    );
    assert_eq!(a, b);
    let t = json(&sim(&["--scenario", "usage", "--json", "--async-worker"]));
    assert_eq!(t["worker"], "thread");
}

/// `--compare worker` sets the kernel's round-robin shrink worker beside
/// the proportional one on groups of four sizes: round-robin writes back a
/// far larger share of the small groups' pages; proportional keeps the
/// shares within 1.2x, and only it is held to the check.
#[test]
fn proportional_worker_evens_the_written_back_share() {
    let o = sim(&[
        "--scenario",
        "proportional",
        "--compare",
        "worker",
        "--json",
    ]);
    let v = json(&o);
    let runs = v["runs"].as_array().unwrap();
    let spread = |r: &serde_json::Value| {
        let shares: Vec<f64> = r["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["zswpwb"].as_f64().unwrap() / g["swap_outs"].as_f64().unwrap())
            .collect();
        shares.iter().copied().fold(0.0, f64::max) / shares.iter().copied().fold(1.0, f64::min)
    };
    assert_eq!(runs[0]["worker_policy"], "round-robin");
    assert_eq!(runs[1]["worker_policy"], "proportional");
    let (rr, prop) = (spread(&runs[0]), spread(&runs[1]));
    assert!(rr > 1.5, "round-robin squeezes the small groups: {rr}");
    assert!(prop <= 1.2, "proportional: {prop}");
    assert_eq!(runs[1]["check"]["ok"], true);
    let table = stdout(&sim(&["--scenario", "proportional", "--compare", "worker"]));
    assert!(table.contains("under round-robin: written back"), "{table}");
    assert!(table.contains("written-back share, largest ÷ smallest: round-robin"));
}

/// The protection scenario runs with and without the disk swap-in
/// protection and holds the first to cutting disk reads by 10% or more;
/// the pressure scenario runs the controller, which reclaims from the
/// tenants that may write back and never from the one that may not.
#[test]
fn protection_and_pressure_scenarios() {
    let v = json(&sim(&["--scenario", "protection", "--json"]));
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(
        (
            runs[0]["protection"].as_bool(),
            runs[1]["protection"].as_bool()
        ),
        (Some(true), Some(false))
    );
    let reads = |r: &serde_json::Value| r["groups"][0]["disk_reads"].as_f64().unwrap();
    assert!(
        reads(&runs[0]) <= 0.9 * reads(&runs[1]),
        "{} vs {}",
        reads(&runs[0]),
        reads(&runs[1])
    );
    assert_eq!(runs[0]["check"]["ok"], true);

    let v = json(&sim(&["--scenario", "pressure", "--json"]));
    let p = &v["pressure"];
    assert_eq!(p["steps"], 200);
    assert!(p["reclaimed_bytes"].as_u64().unwrap() > 0);
    let by = |name: &str| {
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .unwrap()["reclaimed_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(by("hot") > 0 && by("warm") > 0);
    assert_eq!(by("pinned"), 0);
    // The timeline carries each group's reclaim, for the chart.
    let last = v["timeline"].as_array().unwrap().last().unwrap();
    assert_eq!(last["groups"][0]["reclaimed"].as_u64().unwrap(), by("hot"));
    // The chart draws each group's reclaim.
    let d = scratch("pressure-svg");
    let chart = d.join("pressure.svg");
    let o = sim(&["--scenario", "pressure", "--svg", chart.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("MiB the controller reclaimed"));
    // A target out of range is refused before the run.
    let o = sim(&["--scenario", "usage", "--pressure", "0.9"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("pressure target 0.9"), "{}", stderr(&o));
}
