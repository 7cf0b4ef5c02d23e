//! End to end: `earshot-loadtest run loadtest/cases/smoke` against the real earshot binary,
//! as separate processes on loopback, and every mention of both steps must arrive.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The earshot binary next to this test's `earshot-loadtest` (same profile); built with
/// `cargo build -p earshot` when missing, since Cargo builds a dependency's library for us
/// but not its binary.
fn earshot_binary() -> PathBuf {
    let loadtest = PathBuf::from(env!("CARGO_BIN_EXE_earshot-loadtest"));
    let earshot = loadtest.with_file_name(format!("earshot{}", std::env::consts::EXE_SUFFIX));
    if !earshot.is_file() {
        let profile_dir = loadtest.parent().expect("binary has a folder");
        let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cargo
            .args(["build", "-p", "earshot", "--bin", "earshot"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("cannot run cargo");
        assert!(status.success(), "cargo build -p earshot failed");
    }
    assert!(earshot.is_file(), "{} is missing", earshot.display());
    earshot
}

#[test]
fn smoke_case_delivers_every_mention_within_budget() {
    let earshot = earshot_binary();
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases/smoke");
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_earshot-loadtest"))
        .arg("run")
        .arg(&case)
        .arg("--earshot")
        .arg(&earshot)
        .arg("--out")
        .arg(out.path())
        .spawn()
        .unwrap();
    // Two 3 s steps plus start-up and drain; a hung run is killed, not waited on forever.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("the smoke run did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
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
