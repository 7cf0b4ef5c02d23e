//! End to end: `earshot-loadtest run loadtest/cases/smoke` against the real earshot binary,
//! as separate processes on loopback, and every mention of both steps must arrive; and the
//! `spikes` subcommand as a user runs it.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The earshot binary next to this test's `earshot-loadtest` (same profile); built with
/// `cargo build -p earshot-cli` when missing, since Cargo builds a dependency's library for us
/// but not its binary.
fn earshot_binary() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_earshot-loadtest"));
    let earshot = loadtest.with_file_name(format!("earshot{}", std::env::consts::EXE_SUFFIX));
    if !earshot.is_file() {
        let profile_dir = loadtest.parent().expect("binary has a folder");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["build", "-p", "earshot-cli", "--bin", "earshot"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cannot run cargo");
        assert!(status.success(), "cargo build -p earshot-cli failed");
    }
    assert!(earshot.is_file(), "{} is missing", earshot.display());
    earshot
}

#[test]
fn smoke_case_delivers_every_mention_within_budget() {
    let earshot = earshot_binary();
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/smoke");
    let out = tempfile::tempdir().unwrap();
    let status = run_case(&case, &earshot, out.path(), 90, "the smoke run");
    // Two 3 s steps plus start-up and drain; a hung run is killed, not waited on forever.
    assert!(status.success(), "earshot-loadtest run failed: {status}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap())
            .unwrap();
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    for s in steps {
        assert!(s["expected"].as_u64().unwrap() > 20, "{s}");
        assert_eq!(s["lost"], 0, "{s}");
        assert_eq!(s["expected"], s["delivered"], "{s}");
        assert!(s["p99_ms"].as_f64().unwrap() > 0.0, "{s}");
    }
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["rejected"], 0);
    assert_eq!(report["unexpected"], 0);
    assert_eq!(report["earshot_exit"], "exit status: 0");
    assert!(report["scrapes"].as_array().unwrap().len() >= 3);
    assert!(
        report["scrapes"].as_array().unwrap().last().unwrap()["frames_received"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(report["sustained_rate"], 1000, "{:#}", report["steps"]);
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("Highest sustained rate: 1000 events/s"), "{md}");
    let svg = std::fs::read_to_string(out.path().join("report.svg")).unwrap();
    assert_eq!(svg.matches("<circle").count(), 6);
}

/// `earshot-loadtest spikes`: a short simulation from the command line writes both report
/// files and prints a verdict per goal; a settings file it cannot accept stops it.
#[test]
fn spikes_subcommand_writes_its_report() {
    let out = tempfile::tempdir().unwrap();
    let settings = out.path().join("spikes.toml");
    std::fs::write(
        &settings,
        "[spikes]\nwindows = [\"5s\", \"10s\", \"15s\", \"60s\"]\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_earshot-loadtest"))
        .args(["spikes", "--hours", "3", "--seed", "2", "--out"])
        .arg(out.path().join("r"))
        .arg("--settings")
        .arg(&settings)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        stdout.matches("PASS ").count() + stdout.matches("FAIL ").count(),
        2,
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("r/report.json")).unwrap())
            .unwrap();
    assert_eq!(
        json["settings"]["windows"],
        serde_json::json!(["5s", "10s", "15s", "1m"])
    );
    assert_eq!(json["simulation"]["seed"], 2);
    assert!(out.path().join("r/report.md").is_file());

    std::fs::write(&settings, "[spikes]\np_value = 0.5\n").unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_earshot-loadtest"))
        .args(["spikes", "--hours", "1", "--out"])
        .arg(out.path().join("bad"))
        .arg("--settings")
        .arg(&settings)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("p_value"));
    assert!(!out.path().join("bad").exists());
}

/// The overload machinery end to end, small: a slow receiver, a tiny outbox and a firehose
/// that waits on earshot; the runner must wait for the drain and report every mention
/// delivered, the outbox at its limit and the drain time.
#[test]
fn a_small_overload_fills_the_outbox_drains_and_loses_nothing() {
    let earshot = earshot_binary();
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("tiny-overload");
    std::fs::create_dir(&case).unwrap();
    let template = std::fs::read_to_string(cases.join("overload/earshot.toml"))
        .unwrap()
        .replace("max_entries = 50000", "max_entries = 20");
    assert!(template.contains("max_entries = 20\n"));
    std::fs::write(case.join("earshot.toml"), template).unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    std::fs::write(
        case.join("case.toml"),
        format!(
            "kind = \"overload\"\nseed = 2\nmention_rate = 0.1\nsteps = [2000]\nstep_seconds = 3\n\
             p99_budget_ms = 60000\nsample_seconds = 1\nfirehose_max_lag = 500\n\
             receiver_delay_ms = 200\ndrain_timeout_seconds = 120\nrules = {:?}\n",
            rules.display().to_string()
        ),
    )
    .unwrap();
    let out = dir.path().join("report");
    let status = run_case(&case, &earshot, &out, 240, "the small overload run");
    assert!(status.success(), "earshot-loadtest run failed: {status}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let d = &report["delivery"];
    assert!(d["expected"].as_u64().unwrap() > 100, "{d}");
    assert_eq!(d["expected"], d["delivered"], "{d}");
    assert_eq!(d["lost"], 0, "{d}");
    assert_eq!(d["duplicates"], 0, "{d}");
    assert!(report["drain_seconds"].as_f64().is_some(), "{report:#}");
    let depth_max = report["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["queue_depth"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(depth_max >= 20, "the outbox never filled: {depth_max}");
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| no mention lost | yes |"), "{md}");
    assert!(md.contains("| backlog drained | yes |"), "{md}");
    for chart in [
        "overload-rss.svg",
        "overload-outbox.svg",
        "overload-sent.svg",
    ] {
        assert!(out.join(chart).is_file(), "{chart}");
    }
}

/// Runs `earshot-loadtest run CASE` with `earshot` into `out` and waits for it to end; a hung
/// run is killed after `limit_s`, not waited on for ever.
fn run_case(
    case: &Path,
    earshot: &Path,
    out: &Path,
    limit_s: u64,
    what: &str,
) -> std::process::ExitStatus {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_earshot-loadtest"))
        .arg("run")
        .arg(case)
        .arg("--earshot")
        .arg(earshot)
        .arg("--out")
        .arg(out)
        .spawn()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(limit_s) {
            let _ = child.kill();
            panic!("{what} did not finish in {limit_s} s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
