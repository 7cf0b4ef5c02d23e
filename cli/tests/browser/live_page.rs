//! The live dashboard in a real browser (Chromium or Chrome, driven over the DevTools
//! protocol): the page is only useful if its script runs under its own Content-Security-
//! Policy, follows the event stream and draws what responders read, which no router test
//! can show.
//!
//! `dashboard_follows_the_demo_live` runs `earshot demo` with an injected spike and watches
//! the page update and show it; it saves a screenshot to `target/artifacts/`.
//! `dashboard_shows_post_text_as_text_and_filters` serves a hub the test feeds itself, so it
//! can publish hostile text and check filtering exactly.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

use crate::support::earshot;

/// The browsers the test drives, in the order it looks for them on `PATH` when
/// `EARSHOT_CHROME` does not name one; `scripts/test.sh` searches the same names and passes
/// what it found (or installed) in `EARSHOT_CHROME`.
const BROWSERS: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome-stable",
    "google-chrome",
];

/// The browser executable: `EARSHOT_CHROME` when set, else the first of [`BROWSERS`] on
/// `PATH`.
fn browser_path() -> PathBuf {
    if let Some(path) = std::env::var_os("EARSHOT_CHROME").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "EARSHOT_CHROME={} is not a file",
            path.display()
        );
        return path;
    }
    let dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    BROWSERS
        .iter()
        .find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "no browser: the live dashboard test drives Chromium; set EARSHOT_CHROME to its \
                 executable or put one of {BROWSERS:?} on PATH (scripts/test.sh installs \
                 Debian's chromium)"
            )
        })
}

/// A headless Chromium with a fresh profile, no network beyond what the page asks for.
fn launch() -> (Browser, tempfile::TempDir) {
    let profile = tempfile::Builder::new()
        .prefix("earshot-chromium-")
        .tempdir()
        .unwrap();
    let args: Vec<&OsStr> = [
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    .iter()
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(browser_path()))
        .headless(true)
        .sandbox(false)
        .args(args)
        .user_data_dir(Some(profile.path().to_path_buf()))
        .window_size(Some((1440, 1000)))
        // The test polls the page for minutes; the default 30 s idle limit is for scripts.
        .idle_browser_timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let browser = Browser::new(options).expect("Chromium starts");
    (browser, profile)
}

/// What the page shows, read in one evaluation.
#[derive(Debug, Default, serde::Deserialize)]
struct Seen {
    status: String,
    /// `[brand, data-rate, hidden]` of each card.
    cards: Vec<(String, String, bool)>,
    feed: Vec<String>,
    spikes: Vec<String>,
    brand_options: Vec<String>,
    queue_options: Vec<String>,
    updated: String,
}

impl Seen {
    fn rate(&self, brand: &str) -> Option<&str> {
        self.cards
            .iter()
            .find(|(b, _, _)| b == brand)
            .map(|(_, r, _)| r.as_str())
    }

    fn visible_cards(&self) -> Vec<&str> {
        self.cards
            .iter()
            .filter(|(_, _, hidden)| !hidden)
            .map(|(b, _, _)| b.as_str())
            .collect()
    }
}

const READ_PAGE: &str = r#"JSON.stringify({
  status: (document.querySelector('#status') || {}).textContent || '',
  cards: Array.from(document.querySelectorAll('[data-brand]'))
    .map((c) => [c.dataset.brand, c.dataset.rate || '', c.hidden]),
  feed: Array.from(document.querySelectorAll('#feed > li')).map((r) => r.textContent),
  spikes: Array.from(document.querySelectorAll('[data-spike]')).map((s) => s.dataset.spike),
  brand_options: Array.from(document.querySelectorAll('#brand-filter option')).map((o) => o.value),
  queue_options: Array.from(document.querySelectorAll('#queue-filter option')).map((o) => o.value),
  updated: (document.querySelector('#updated') || {}).textContent || '',
})"#;

fn evaluate(tab: &Tab, js: &str) -> serde_json::Value {
    tab.evaluate(js, false)
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
        .value
        .unwrap_or(serde_json::Value::Null)
}

fn read_page(tab: &Tab) -> Seen {
    match evaluate(tab, READ_PAGE) {
        serde_json::Value::String(s) => serde_json::from_str(&s).unwrap(),
        other => panic!("the page answered {other}"),
    }
}

/// Polls the page until `done` holds; past `within`, fails with what the page showed.
fn wait_for(tab: &Tab, what: &str, within: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
    let deadline = Instant::now() + within;
    loop {
        let seen = read_page(tab);
        if done(&seen) {
            return seen;
        }
        if Instant::now() > deadline {
            panic!("{what}: not seen within {within:?}; the page showed {seen:#?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn screenshot(tab: &Tab, name: &str) -> PathBuf {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, png).unwrap();
    let path = path.canonicalize().unwrap();
    println!("screenshot: {}", path.display());
    path
}

/// `earshot demo`, killed if the test ends before it does.
struct Demo {
    child: Child,
    /// Its stdout and stderr lines, as they come.
    stdout: Arc<Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let mut child = earshot()
            .arg("demo")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let lines = BufReader::new(child.stdout.take().unwrap());
        let sink = stdout.clone();
        let out = std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = stdout.clone();
        let err = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(format!("stderr: {line}"));
            }
        });
        Demo {
            child,
            stdout,
            readers: vec![out, err],
        }
    }

    /// Everything it printed so far; all of it once it has exited.
    fn output(&mut self) -> String {
        if self.child.try_wait().ok().flatten().is_some() {
            for reader in self.readers.drain(..) {
                let _ = reader.join();
            }
        }
        self.stdout.lock().unwrap().join("\n")
    }

    /// The dashboard login link the demo prints at start.
    fn dashboard_url(&mut self, within: Duration) -> String {
        const MARK: &str = "live dashboard at ";
        let deadline = Instant::now() + within;
        loop {
            let found = self.stdout.lock().unwrap().iter().find_map(|l| {
                let at = l.find(MARK)?;
                l[at + MARK.len()..]
                    .split_whitespace()
                    .next()
                    .map(str::to_owned)
            });
            if let Some(url) = found {
                return url;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "earshot demo exited ({status}) before printing `{MARK}…`:\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "earshot demo printed no `{MARK}…` line within {within:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Opens the dashboard at `url` and checks that it follows a live pipeline: the acme card,
/// its rate changing, rows in the feed, and an acme spike before `spike_by`.
fn follow_live(tab: &Tab, url: &str, spike_by: Instant) {
    tab.navigate_to(url).unwrap();
    tab.wait_until_navigated().unwrap();

    let first = wait_for(tab, "the acme card", Duration::from_secs(30), |s| {
        s.rate("acme").is_some_and(|r| !r.is_empty())
    });
    assert!(first.brand_options.iter().any(|b| b == "acme"), "{first:?}");
    assert!(first.status.contains("Live"), "{first:?}");
    let rate = first.rate("acme").unwrap().to_owned();
    wait_for(
        tab,
        "the acme rate changing (live updates)",
        Duration::from_secs(30),
        |s| s.rate("acme").is_some_and(|r| r != rate),
    );
    wait_for(tab, "rows in the feed", Duration::from_secs(30), |s| {
        !s.feed.is_empty()
    });
    let within = spike_by.saturating_duration_since(Instant::now());
    let seen = wait_for(tab, "an acme spike", within, |s| {
        s.spikes.iter().any(|k| k.starts_with("acme:"))
    });
    let spike_text = evaluate(
        tab,
        r#"document.querySelector('[data-spike^="acme:"]').textContent"#,
    );
    assert!(
        spike_text.as_str().is_some_and(|t| t.contains('×')),
        "the spike shows its ratio: {spike_text}"
    );
    assert!(seen.feed.len() <= 200, "the feed is capped");
}

#[test]
fn dashboard_follows_the_demo_live() {
    let started = Instant::now();
    let mut demo = Demo::start(&[
        "--rate",
        "300",
        "--admin",
        "127.0.0.1:0",
        "--spike-after",
        "20",
        "--duration",
        "150",
    ]);
    // The demo prints a one-time login link, not the bare page address.
    let url = demo.dashboard_url(Duration::from_secs(60));
    assert!(url.contains("/login?code="), "{url}");

    let (browser, _profile) = launch();
    let tab = browser.new_tab().unwrap();
    // The spike is injected 20 s after the demo starts; detecting it takes some windows.
    follow_live(&tab, &url, started + Duration::from_secs(140));
    screenshot(&tab, "live-dashboard.png");

    // Stopping earshot with the page still open: the event stream must not hold up the
    // graceful shutdown.
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(demo.child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "earshot demo still running 60 s after SIGTERM with the dashboard open:\n{}",
            demo.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(exit.success(), "{exit}:\n{}", demo.output());
    wait_for(
        &tab,
        "the page noticing the server is gone",
        Duration::from_secs(30),
        |s| !s.status.contains("Live"),
    );
}

/// A snapshot with two brands and two queues, as the monitor writes it.
fn snapshot() -> String {
    let series = |n: u64| (0..300).map(|i| (i * n) % 7).collect::<Vec<_>>();
    serde_json::json!({
        "at": 1_732_400_000_000u64,
        "queues": ["support", "pr"],
        "brands": [
            {"id": "acme", "kind": "brand", "rate": 4.2, "negative_share": 0.31,
             "counts": series(3), "negatives": series(1), "spike": true},
            {"id": "globex", "kind": "competitor", "rate": 1.5, "negative_share": null,
             "counts": series(2), "negatives": series(0), "spike": false},
        ],
        "spikes": [],
    })
    .to_string()
}

fn mention(id: &str, brand: &str, queue: &str, text: &str, url: &str) -> String {
    serde_json::json!({
        "id": id, "at": "2026-11-24T10:00:00.000Z", "brands": [brand], "queues": [queue],
        "urgency": 80, "sentiment": "negative", "category": "complaint",
        "author": "someone.example", "text": text, "url": url, "platform": "bluesky",
    })
    .to_string()
}

const HOSTILE: &str =
    r#"<img src=x onerror="window.__pwned=1"><b>bold</b> & <script>window.__pwned=2</script>"#;

#[test]
fn dashboard_shows_post_text_as_text_and_filters() {
    use earshot::live::{LiveHub, LiveKind};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let hub = LiveHub::new();
    hub.set_snapshot(snapshot());
    let (trigger, shutdown) = earshot::shutdown::channel();
    // No token configured: the page opens through a login link only, as in `earshot demo`.
    let settings = earshot::admin::AdminSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let mut state = earshot::admin::AdminState::new(&settings, None);
    state.live = Some(hub.clone());
    let access = state.access.clone();
    let (addr, server) = runtime
        .block_on(earshot::admin::serve(&settings, state, shutdown))
        .unwrap();

    let (browser, _profile) = launch();
    let tab = browser.new_tab().unwrap();
    // Without a session the page is refused; the login link signs the browser in, once.
    let base = format!("http://{addr}");
    tab.navigate_to(&format!("{base}/live")).unwrap();
    tab.wait_until_navigated().unwrap();
    let refused = evaluate(&tab, "document.body.textContent");
    assert!(
        refused
            .as_str()
            .is_some_and(|t| t.contains("EARSHOT_ADMIN_TOKEN")),
        "{refused}"
    );
    let login = access.login_url(&base);
    tab.navigate_to(&login).unwrap();
    tab.wait_until_navigated().unwrap();
    assert!(tab.get_url().ends_with("/live"), "{}", tab.get_url());
    // `/` leads to the dashboard.
    tab.navigate_to(&format!("{base}/")).unwrap();
    tab.wait_until_navigated().unwrap();
    let seen = wait_for(&tab, "both brand cards", Duration::from_secs(20), |s| {
        s.cards.len() == 2 && s.status.contains("Live")
    });
    assert!(tab.get_url().ends_with("/live"), "{}", tab.get_url());
    assert_eq!(seen.rate("acme"), Some("4.2"));
    assert!(seen.updated.starts_with("updated "), "{seen:?}");
    assert_eq!(seen.brand_options, ["", "acme", "globex"]);
    assert_eq!(seen.queue_options, ["", "support", "pr"]);

    hub.publish(
        LiveKind::Mention,
        mention(
            "m_1",
            "acme",
            "support",
            HOSTILE,
            "javascript:window.__pwned=3",
        ),
    );
    hub.publish(
        LiveKind::Mention,
        mention("m_2", "globex", "pr", "plain words", "https://bsky.app/x"),
    );
    let seen = wait_for(&tab, "two feed rows", Duration::from_secs(20), |s| {
        s.feed.len() == 2
    });
    assert!(
        seen.feed[1].contains(HOSTILE),
        "the post text is shown as written: {:?}",
        seen.feed[1]
    );
    assert_eq!(
        evaluate(
            &tab,
            "[document.querySelectorAll('#feed img, #feed script, #feed b').length, \
              typeof window.__pwned, \
              Array.from(document.querySelectorAll('#feed a')).map((a) => a.href).join(' ')] \
             .join('|')"
        ),
        "0|undefined|https://bsky.app/x",
        "no markup from a post, no script ran, no javascript: link"
    );

    hub.publish(
        LiveKind::Spike,
        serde_json::json!({
            "spike_id": "spk_acme_negative_1", "event": "started", "brand": "acme",
            "brand_kind": "brand", "series": "negative",
            "started_at": "2026-11-24T10:00:00.000Z", "at": "2026-11-24T10:00:07.000Z",
            "ended_at": null, "window_s": 5, "rate": 12.4, "baseline": 1.1, "ratio": 11.3,
            "peak_rate": 14.0, "peak_ratio": 12.7, "mentions": 87, "negative_share": 0.82,
            "p_value": 1.2e-12, "terms": [{"term": "<i>outage</i>", "count": 40, "lift": 35.0}],
            "posts": [{"mention_id": "m_1", "url": "https://bsky.app/p", "platform": "bluesky",
                       "author": "a", "followers": 1200, "text": HOSTILE,
                       "urgency": 80, "sentiment": "negative"}],
        })
        .to_string(),
    );
    wait_for(&tab, "the acme spike", Duration::from_secs(20), |s| {
        s.spikes == ["acme:negative"]
    });
    assert_eq!(
        evaluate(
            &tab,
            r#"[document.querySelector('[data-spike="acme:negative"] .ratio').textContent,
                document.querySelector('[data-spike="acme:negative"] .chip').firstChild.textContent,
                document.querySelectorAll('#spikes img, #spikes i').length].join('|')"#
        ),
        "11.3×baseline|<i>outage</i>|0"
    );
    screenshot(&tab, "live-dashboard-fixture.png");

    let choose = |select: &str, value: &str| {
        evaluate(
            &tab,
            &format!(
                "(() => {{ const s = document.querySelector('#{select}'); s.value = '{value}'; \
                 s.dispatchEvent(new Event('change')); return s.value; }})()"
            ),
        )
    };
    assert_eq!(choose("brand-filter", "globex"), "globex");
    let seen = wait_for(&tab, "only globex", Duration::from_secs(10), |s| {
        s.visible_cards() == ["globex"] && s.feed.len() == 1 && s.spikes.is_empty()
    });
    assert!(seen.feed[0].contains("plain words"), "{seen:?}");
    assert!(
        tab.get_url().ends_with("/live?brand=globex"),
        "{}",
        tab.get_url()
    );

    choose("brand-filter", "");
    assert_eq!(choose("queue-filter", "support"), "support");
    let seen = wait_for(
        &tab,
        "only the support queue",
        Duration::from_secs(10),
        |s| s.visible_cards() == ["acme"] && s.feed.len() == 1 && s.spikes == ["acme:negative"],
    );
    assert!(seen.feed[0].contains("→ support"), "{seen:?}");

    // An ended spike stays listed a while, marked ended.
    choose("queue-filter", "");
    hub.publish(
        LiveKind::Spike,
        serde_json::json!({
            "spike_id": "spk_acme_negative_1", "event": "ended", "brand": "acme",
            "brand_kind": "brand", "series": "negative",
            "started_at": "2026-11-24T10:00:00.000Z", "at": "2026-11-24T10:04:00.000Z",
            "ended_at": "2026-11-24T10:04:00.000Z", "window_s": 5, "rate": 1.0,
            "baseline": 1.1, "ratio": 0.9, "peak_rate": 14.0, "peak_ratio": 12.7,
            "mentions": 120, "negative_share": 0.4, "p_value": 0.5, "terms": [], "posts": [],
        })
        .to_string(),
    );
    let ended = r#"document.querySelectorAll('[data-spike="acme:negative"][data-state="ended"]').length
        + '|' + document.querySelector('#spike-count').textContent"#;
    let deadline = Instant::now() + Duration::from_secs(10);
    while evaluate(&tab, ended) != "1|0" {
        assert!(
            Instant::now() < deadline,
            "the ended spike: {:?}",
            read_page(&tab)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Shutdown with the page open ends its event stream, so the server stops.
    trigger.trigger();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), server).await })
        .expect("the admin server stopped within 10 s with the dashboard open")
        .unwrap();
    wait_for(
        &tab,
        "the page saying it lost the server",
        Duration::from_secs(20),
        |s| !s.status.contains("Live"),
    );
}
