//! Faults with real `earshot run` processes on loopback: shutdown while the outbox is full
//! (the endpoint down), a second signal, and panics injected into a worker and into a
//! delivery (the `fault-injection` feature, which the test command turns on). In every case
//! the process ends, says what it left, and a restart delivers every mention: none is lost.
//! And a disk that fills up for real (a small tmpfs, mounted as root) holds the pipeline until
//! there is room again, without a restart.

use std::process::Child;
use std::time::{Duration, Instant};

use crate::delivery::{
    append, log_tail, posts, tagged_posts, terminate, wait_for, Endpoint, Setup,
};
use crate::support;

/// Sends `signal` to the process.
fn kill(child: &Child, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
}

/// Waits for the process to exit by itself, within `limit`; its exit code.
fn exit_within(child: &mut Child, limit: Duration, setup: &Setup, n: u32) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "earshot did not exit within {limit:?}:\n{}",
        log_tail(setup, n)
    );
}

fn log(setup: &Setup, n: u32) -> String {
    std::fs::read_to_string(setup.dir.join(format!("earshot-{n}.log"))).unwrap_or_default()
}

/// A setup whose outbox holds at most `max_entries`, and whose endpoint is not up yet.
fn small_outbox(max_entries: u64) -> Setup {
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    let text = std::fs::read_to_string(&setup.config).unwrap().replace(
        "path = \"state/outbox.redb\"\n",
        &format!("path = \"state/outbox.redb\"\nmax_entries = {max_entries}\n"),
    );
    std::fs::write(&setup.config, text).unwrap();
    setup
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_full_outbox_ends_a_second_signal_ends_at_once_and_nothing_is_lost() {
    let setup = small_outbox(20);
    let (frames, expected) = posts(17, 3000);
    append(&setup.input, &frames);
    // The endpoint is down: the outbox fills, the writer waits for room, the workers wait
    // behind it and the source blocks on a full channel.
    let mut first = setup.start(1);
    assert!(
        wait_for(Duration::from_secs(60), || log(&setup, 1)
            .contains("the outbox is full"))
        .await,
        "the outbox never filled:\n{}",
        log_tail(&setup, 1)
    );
    kill(&first, "-TERM");
    // Graceful: sources stop, what was routed is committed, the queue tries until the drain
    // deadline (the endpoint is still down), then the process exits and says what it left.
    let code = exit_within(&mut first, Duration::from_secs(60), &setup, 1);
    let text = log(&setup, 1);
    assert_eq!(code, Some(0), "{}", log_tail(&setup, 1));
    assert!(
        text.contains("left in the outbox for the next start: queue all:"),
        "{}",
        log_tail(&setup, 1)
    );

    // Again, with a second SIGTERM right after the first: no drain, exit 130 at once.
    let mut second = setup.start(2);
    assert!(
        wait_for(Duration::from_secs(60), || log(&setup, 2)
            .contains("the outbox is full"))
        .await,
        "the outbox is full again at once:\n{}",
        log_tail(&setup, 2)
    );
    kill(&second, "-TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    kill(&second, "-TERM");
    let code = exit_within(&mut second, Duration::from_secs(20), &setup, 2);
    assert_eq!(code, Some(130), "{}", log_tail(&setup, 2));
    let text = log(&setup, 2);
    assert!(text.contains("second signal"), "{}", log_tail(&setup, 2));
    assert!(
        text.contains("undelivered entries stay in the outbox"),
        "{}",
        log_tail(&setup, 2)
    );

    // The endpoint comes back: a third start delivers every mention, from the outbox and from
    // the input the first runs never got to.
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    let third = setup.start(3);
    let all = wait_for(Duration::from_secs(120), || endpoint.ids() == expected).await;
    terminate(third);
    let got = endpoint.ids();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(all, "missing {missing:?}…\n{}", log_tail(&setup, 3));
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature (scripts/test.sh turns it on)"
)]
async fn a_worker_panic_shuts_down_cleanly_exits_non_zero_and_a_restart_loses_nothing() {
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    let (frames, expected) = posts(23, 3000);
    append(&setup.input, &frames);
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    let mut first = setup.start_with(1, &[("EARSHOT_FAULT_PANIC_WORKER", "3")]);
    let code = exit_within(&mut first, Duration::from_secs(60), &setup, 1);
    let text = log(&setup, 1);
    assert_eq!(code, Some(70), "{}", log_tail(&setup, 1));
    assert!(
        text.contains("injected fault: a worker panics on batch 3"),
        "{}",
        log_tail(&setup, 1)
    );
    assert!(
        text.contains("earshot shuts down cleanly and exits non-zero"),
        "{}",
        log_tail(&setup, 1)
    );
    let second = setup.start(2);
    let all = wait_for(Duration::from_secs(90), || endpoint.ids() == expected).await;
    terminate(second);
    let got = endpoint.ids();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(all, "missing {missing:?}…\n{}", log_tail(&setup, 2));
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs the fault-injection feature (scripts/test.sh turns it on)"
)]
async fn a_panicking_delivery_is_dead_lettered_and_everything_else_is_delivered() {
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    let (frames, expected) = posts(29, 2000);
    append(&setup.input, &frames);
    let victim = expected.iter().nth(expected.len() / 2).unwrap().clone();
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    let mut first = setup.start_with(1, &[("EARSHOT_FAULT_PANIC_DELIVERY", victim.as_str())]);
    let code = exit_within(&mut first, Duration::from_secs(60), &setup, 1);
    assert_eq!(code, Some(70), "{}", log_tail(&setup, 1));
    assert!(
        log(&setup, 1).contains("a delivery attempt panicked"),
        "{}",
        log_tail(&setup, 1)
    );
    // The rest is delivered after a restart; the entry that panicked waits in the
    // dead-letter store, and a replay (with the bug gone) delivers it.
    let second = setup.start(2);
    let mut rest = expected.clone();
    rest.remove(&victim);
    let delivered = wait_for(Duration::from_secs(90), || endpoint.ids() == rest).await;
    assert!(delivered, "{}", log_tail(&setup, 2));
    let (ok, out, err) = setup.dlq(&["list"]);
    assert!(ok, "{err}");
    assert!(out.contains(&victim), "{out}");
    assert!(out.contains("the delivery attempt panicked"), "{out}");
    let (ok, _, err) = setup.dlq(&["replay", "--id", &victim]);
    assert!(ok, "{err}");
    let all = wait_for(Duration::from_secs(30), || endpoint.ids() == expected).await;
    terminate(second);
    assert!(all, "{}", log_tail(&setup, 2));
}

/// A tmpfs of `size` mounted on `dir` for the life of the value (the test runs as root, as
/// the test command does).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a small tmpfs to fill a disk for real, which needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(&self.0)
            .status();
    }
}

/// `/readyz` of the process: status and body.
async fn readyz(setup: &Setup) -> (u16, String) {
    support::readyz(&format!("127.0.0.1:{}", setup.admin_port)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_the_pipeline_until_there_is_room_and_loses_nothing() {
    let setup = Setup::new("[queue.noise]\nreposts = false\nstorm = false");
    let disk = Tmpfs::mount(&setup.dir.join("state"), "256k");
    let (frames, expected) = posts(31, 8000);
    append(&setup.input, &frames);
    // The endpoint is down, so every mention stays in the outbox until the disk is full.
    let child = setup.start(1);
    assert!(
        wait_for(Duration::from_secs(60), || log(&setup, 1)
            .contains("cannot write to the outbox"))
        .await,
        "the disk never filled:\n{}",
        log_tail(&setup, 1)
    );
    // While the disk stays full, every retry fails: the pipeline waits and says why.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !log(&setup, 1).contains("the outbox takes writes again"),
        "{}",
        log_tail(&setup, 1)
    );
    let (status, body) = readyz(&setup).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot write"), "{body}");
    // Room again: the writer reopens the store and commits; readiness comes back.
    disk.resize("64m");
    assert!(
        wait_for(Duration::from_secs(30), || log(&setup, 1)
            .contains("the outbox takes writes again"))
        .await,
        "{}",
        log_tail(&setup, 1)
    );
    let mut ready = false;
    for _ in 0..100 {
        if readyz(&setup).await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "{:?}", readyz(&setup).await);
    let mut endpoint = Endpoint::new(setup.hook_port);
    endpoint.up().await;
    let all = wait_for(Duration::from_secs(90), || endpoint.ids() == expected).await;
    terminate(child);
    let got = endpoint.ids();
    let missing: Vec<_> = expected.difference(&got).take(5).collect();
    assert!(all, "missing {missing:?}…\n{}", log_tail(&setup, 1));
    assert_eq!(got, expected);
    drop(disk);
}

/// libfaketime, which the test command installs (Debian package `faketime`).
fn libfaketime() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("EARSHOT_LIBFAKETIME") {
        return p.into();
    }
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found.expect("libfaketime.so.1 under /usr/lib/*/faketime/ (apt-get install faketime; scripts/test.sh does)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_jumping_ten_years_ahead_and_back_stops_nothing() {
    let setup = Setup::new("");
    // Before the spike monitor counted monotonic seconds, a jump stalled the whole pipeline
    // while the detector closed every second of it (about 15 s per year jumped here).
    // Mentions to a file (a webhook receiver would rightly refuse signatures years off), and
    // spike events to the same queue, where a false alarm would show.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let head = &text[..text.find("[[queue]]").unwrap()];
    let out = setup.dir.join("out.ndjson");
    std::fs::write(
        &setup.config,
        format!(
            "{head}[[queue]]\nid = \"all\"\nsink = \"file\"\npath = \"{}\"\n[queue.noise]\nreposts = false\nstorm = false\n[[route]]\nqueue = \"all\"\n[spikes]\nqueues = [\"all\"]\n",
            out.display()
        ),
    )
    .unwrap();
    let clock = setup.dir.join("faketime.rc");
    std::fs::write(&clock, "+0\n").unwrap();
    let lib = libfaketime();
    let tagged = tagged_posts(37, 6000);
    let expected: std::collections::BTreeSet<String> =
        tagged.iter().filter_map(|(_, id)| id.clone()).collect();
    let lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let child = setup.start_with(
        1,
        &[
            ("LD_PRELOAD", lib.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            // Only the wall clock jumps, as when NTP steps it; the monotonic clock goes on.
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let mut want = 0;
    for (i, (chunk, offset)) in tagged.chunks(2000).zip(["+0", "+3650d", "+0"]).enumerate() {
        std::fs::write(&clock, format!("{offset}\n")).unwrap();
        // Let a second pass on the new clock before the posts come.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let frames: Vec<String> = chunk.iter().map(|(f, _)| f.clone()).collect();
        append(&setup.input, &frames);
        want += chunk.iter().filter(|(_, id)| id.is_some()).count();
        assert!(
            wait_for(Duration::from_secs(30), || lines().len() >= want).await,
            "phase {i} (clock {offset}): {} of {want} mentions written\n{}",
            lines().len(),
            log_tail(&setup, 1)
        );
    }
    terminate(child);
    let written = lines();
    assert_eq!(written.len(), expected.len(), "every mention, once");
    assert!(
        !written.iter().any(|l| l.contains("\"spike_id\"")),
        "no spike event from a clock jump"
    );
}
