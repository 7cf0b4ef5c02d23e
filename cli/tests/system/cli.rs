//! The `earshot` binary as a user runs it: replay, check and demo.

use std::process::Stdio;

use crate::support::{self, earshot};

/// Counts in replay's stderr summary: `skipped like: 105` → ("skipped like", 105), and the
/// `key=value` pairs of its first line.
fn summary(stderr: &str) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    for line in stderr.lines() {
        let line = line.trim();
        if let Some((k, v)) = line.rsplit_once(": ") {
            if let Ok(n) = v.parse() {
                m.insert(k.to_string(), n);
            }
        }
        for pair in line.split_whitespace() {
            if let Some((k, v)) = pair.split_once('=') {
                if let Ok(n) = v.parse() {
                    m.insert(k.to_string(), n);
                }
            }
        }
    }
    m
}

#[test]
fn replay_decodes_every_jetstream_post_and_reports_every_non_post_by_kind() {
    let out = earshot()
        .args(["replay", "--quiet", "--workers", "1"])
        .arg(support::fixtures().join("jetstream-sample.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = summary(&stderr);
    // SOURCES.md: 152 events; 17 post creates; 105 likes, 15 reposts, 6+3 follows, 1 post
    // delete, 1 block, 2 updates, 1 identity, 1 account.
    assert_eq!(s["frames"], 152, "{stderr}");
    assert_eq!(s["posts"], 17, "{stderr}");
    assert_eq!(s["skipped like"], 105, "{stderr}");
    assert_eq!(s["skipped repost"], 15, "{stderr}");
    assert_eq!(s["skipped identity"], 1, "{stderr}");
    assert_eq!(s["skipped account"], 1, "{stderr}");
    assert_eq!(s["skipped"], 152 - 17, "{stderr}");
}

#[test]
fn replay_decodes_the_x_stream_and_counts_the_error_line() {
    let out = earshot()
        .args(["replay", "--quiet"])
        .arg(support::fixtures().join("x-v2-stream.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let s = summary(&stderr);
    assert_eq!(s["frames"], 9, "{stderr}");
    assert_eq!(s["posts"], 8, "{stderr}");
    assert_eq!(s["skipped stream_error"], 1, "{stderr}");
}

/// `earshot replay --quiet [args] <input>`: exit status checked, the summary counts and the
/// whole stderr.
fn replay_file(
    args: &[&str],
    input: &std::path::Path,
) -> (std::collections::BTreeMap<String, u64>, String) {
    let out = earshot()
        .args(["replay", "--quiet"])
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (summary(&stderr), stderr)
}

/// The fixture's text, and its non-empty lines.
fn fixture_text(name: &str) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(support::fixtures().join(name)).unwrap();
    let lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    (text, lines)
}

#[test]
fn replay_reads_a_pretty_printed_mastodon_status_as_one_frame() {
    // As the API returns it (and as the documentation prints it): one status over 100 lines.
    let (text, lines) = fixture_text("mastodon-status.json");
    assert!(lines.len() > 50, "the fixture is pretty-printed");
    let (s, stderr) = replay_file(&[], &support::fixtures().join("mastodon-status.json"));
    assert_eq!(s["frames"], 1, "{stderr}");
    assert_eq!(s["posts"], 1, "{stderr}");
    assert_eq!(s["skipped"], 0, "{stderr}");
    // The same status through stdin, matched by a rule on its text.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("bank.rules");
    std::fs::write(
        &rules,
        "brand bank \"Bank\"\n  rule bank-talk: \"sort code\"\n",
    )
    .unwrap();
    let (mentions, stdout) = replay_stdin_as(&["--rules", rules.to_str().unwrap()], &text);
    assert_eq!(mentions.len(), 1, "{stdout}");
    assert_eq!(mentions[0]["post"]["platform"], "mastodon", "{stdout}");
    assert_eq!(mentions[0]["matches"][0]["brand"], "bank", "{stdout}");
}

#[test]
fn replay_reads_json_arrays_of_x_and_mastodon_items() {
    let dir = tempfile::tempdir().unwrap();
    // A page of X v2 stream items: the fixture's lines as one array, laid out over lines.
    let (_, x_lines) = fixture_text("x-v2-stream.ndjson");
    let x_page = dir.path().join("x-page.json");
    std::fs::write(&x_page, format!("[\n{}\n]\n", x_lines.join(",\n"))).unwrap();
    let (s, stderr) = replay_file(&[], &x_page);
    // As the NDJSON: 8 tweets and the stream error object.
    assert_eq!(s["frames"], 9, "{stderr}");
    assert_eq!(s["posts"], 8, "{stderr}");
    assert_eq!(s["skipped stream_error"], 1, "{stderr}");
    // A page of Mastodon statuses, pretty-printed as an API returns a timeline.
    let (first, _) = fixture_text("mastodon-status.json");
    let (second, _) = fixture_text("mastodon-status-hello-world.json");
    let statuses = dir.path().join("statuses.json");
    std::fs::write(&statuses, format!("[{}, {}]", first.trim(), second.trim())).unwrap();
    let (s, stderr) = replay_file(&[], &statuses);
    assert_eq!(s["frames"], 2, "{stderr}");
    assert_eq!(s["posts"], 2, "{stderr}");
    assert_eq!(s["skipped"], 0, "{stderr}");
}

#[test]
fn replay_skips_an_oversize_array_element_and_reads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = fixture_text("mastodon-status.json");
    let (second, _) = fixture_text("mastodon-status-hello-world.json");
    // Over the embedded default's 1 MiB `max_frame_bytes`.
    let big = format!("{{\"content\": \"{}\"}}", "x".repeat(2 << 20));
    let path = dir.path().join("page.json");
    std::fs::write(
        &path,
        format!("[{}, {big}, {}]", first.trim(), second.trim()),
    )
    .unwrap();
    let (s, stderr) = replay_file(&[], &path);
    assert_eq!(s["frames"], 3, "{stderr}");
    assert_eq!(s["posts"], 2, "{stderr}");
    assert_eq!(s["skipped oversize"], 1, "{stderr}");
    assert_eq!(s["skipped"], 1, "{stderr}");
}

#[test]
fn replay_counts_truncated_json_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let (_, x_lines) = fixture_text("x-v2-stream.ndjson");
    // The array is cut off in the middle of its fourth element.
    let whole = format!("[\n{}\n]\n", x_lines[..4].join(",\n"));
    let cut = whole.len() - x_lines[3].len() / 2;
    let path = dir.path().join("cut.json");
    std::fs::write(&path, &whole[..cut]).unwrap();
    let (s, stderr) = replay_file(&[], &path);
    assert_eq!(s["frames"], 4, "{stderr}");
    assert_eq!(s["posts"], 3, "{stderr}");
    assert_eq!(s["skipped invalid_json"], 1, "{stderr}");
    assert!(
        stderr.contains("JSON cut off at the end of the input"),
        "{stderr}"
    );
    // A pretty-printed document cut off the same way.
    let (status, _) = fixture_text("mastodon-status.json");
    let path = dir.path().join("cut-status.json");
    std::fs::write(&path, &status[..status.len() / 2]).unwrap();
    let (s, stderr) = replay_file(&[], &path);
    assert_eq!(s["frames"], 1, "{stderr}");
    assert_eq!(s["posts"], 0, "{stderr}");
    assert_eq!(s["skipped invalid_json"], 1, "{stderr}");
    assert!(
        stderr.contains("JSON cut off at the end of the input"),
        "{stderr}"
    );
}

/// Runs `earshot replay [args] --format jetstream -` on `input`; the mentions it prints and
/// its whole stdout.
fn replay_stdin(args: &[&str], input: &str) -> (Vec<serde_json::Value>, String) {
    let mut all = args.to_vec();
    all.extend(["--format", "jetstream"]);
    replay_stdin_as(&all, input)
}

/// Runs `earshot replay [args] -` on `input`; the mentions it prints and its whole stdout.
fn replay_stdin_as(args: &[&str], input: &str) -> (Vec<serde_json::Value>, String) {
    let mut child = earshot()
        .arg("replay")
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, stdout)
}

#[test]
fn replay_prints_one_contract_line_per_matched_post() {
    let input = concat!(
        r#"{"did":"did:plc:aaa","time_us":1725911162330509,"kind":"commit","commit":{"rev":"3l3qo2vpcwufs","operation":"create","collection":"app.bsky.feed.post","rkey":"3l3qo2v6show4","record":{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"@acmehq.bsky.social my order arrived broken and support is not answering. I want a refund"},"cid":"bafy"}}"#,
        "\n",
        r#"{"did":"did:plc:bbb","time_us":1725911162330510,"kind":"commit","commit":{"rev":"3l3qo2vpcwufs","operation":"create","collection":"app.bsky.feed.post","rkey":"3l3qo2v6show5","record":{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"pacmen and other games"},"cid":"bafy"}}"#,
        "\n"
    );
    let (lines, stdout) = replay_stdin(&[], input);
    assert_eq!(lines.len(), 1, "{stdout}");
    let m = &lines[0];
    assert_eq!(
        m["post"]["id"],
        "at://did:plc:aaa/app.bsky.feed.post/3l3qo2v6show4"
    );
    assert_eq!(m["post"]["platform"], "bluesky");
    assert_eq!(
        m["post"]["url"],
        "https://bsky.app/profile/did:plc:aaa/post/3l3qo2v6show4"
    );
    assert_eq!(m["post"]["lang"], "en");
    assert_eq!(m["matches"][0]["brand"], "acme");
    assert_eq!(m["matches"][0]["kind"], "brand");
    assert_eq!(m["sentiment"]["label"], "negative");
    assert!(m["sentiment"]["score"].as_f64().unwrap() < -0.05);
    assert_eq!(m["category"], "complaint");
    let score = m["urgency"]["score"].as_i64().unwrap();
    let sum: i64 = m["urgency"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["points"].as_i64().unwrap())
        .sum();
    assert_eq!(score, sum);
    assert!(m["urgency"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["feature"] == "direct_address"));
    assert!(m["mention_id"].as_str().unwrap().starts_with("m_"));
    assert_eq!(m["queues"], serde_json::json!(["stdout"]));
}

#[test]
fn replay_without_a_config_runs_from_any_folder() {
    // A new user's first run: their own rules and posts in a folder that has no `rules/`, no
    // routing or scoring file. The embedded default brings its scoring and routing built in.
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap();
    let here = dir.path().canonicalize().unwrap();
    assert!(
        !here.starts_with(&repo),
        "{} is in the repository",
        here.display()
    );
    std::fs::write(
        here.join("my.rules"),
        "brand skates \"Rocket Skates\"\n  rule skates-talk: \"rocket skates\"\n",
    )
    .unwrap();
    let post = |rkey: &str, text: &str| {
        format!(
            r#"{{"did":"did:plc:aaa","time_us":1725911162330509,"kind":"commit","commit":{{"rev":"3l3qo2vpcwufs","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"{text}"}},"cid":"bafy"}}}}"#
        )
    };
    let posts = format!(
        "{}\n{}\n",
        post(
            "3l3qo2v6show4",
            "my rocket skates broke on day one, terrible"
        ),
        post("3l3qo2v6show5", "a quiet day at the lake")
    );
    std::fs::write(here.join("posts.ndjson"), posts).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_earshot"))
        .current_dir(&here)
        .env("EARSHOT_LOG", "warn")
        .args(["replay", "--rules", "my.rules", "posts.ndjson"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["matches"][0]["brand"], "skates", "{stdout}");
    assert_eq!(lines[0]["sentiment"]["label"], "negative", "{stdout}");
    // Routed by the built-in routing file.
    assert_eq!(
        lines[0]["queues"],
        serde_json::json!(["stdout"]),
        "{stdout}"
    );
    // Nothing was written beside the user's files.
    let mut names: Vec<String> = std::fs::read_dir(&here)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["my.rules", "posts.ndjson"]);
}

#[test]
fn check_reports_every_config_error_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"[pipeline]
workers = "two"

[admin]
listen = "127.0.0.1:9464"
colour = "red"

[[source]]
id = "x"
type = "carrier-pigeon"

[[source]]
id = "plain"
type = "jetstream"
url = "ws://jetstream.example.com/subscribe"

[[queue]]
id = "support"
sink = "webhook"
url = "http://crm.example.com/hooks"
secret_env = "EARSHOT_TEST_SURELY_UNSET_VARIABLE"

[[queue]]
id = "archive"
sink = "file"
path = "archive.ndjson"
format = "zendesk"
retry_schedule = []
auth = { scheme = "bearer", env = "EARSHOT_TEST_SURELY_UNSET_TOKEN" }

[queue.noise]
storm_distance = 40

[[queue]]
id = "stream"
sink = "nats"
url = "nats://nats.example.com:4222,tls://nats-2.example.com:4222"
subject = "crm.*"
secret_env = "EARSHOT_TEST_WEBHOOK_SECRET"
nats_auth = { kind = "credentials", env = "EARSHOT_TEST_SURELY_UNSET_CREDS" }

[[queue]]
id = "nosubject"
sink = "nats"
url = "tls://earshot:hunter2@nats.example.com:4222"

[[queue]]
id = "lines"
sink = "stdout"
subject = "crm.mentions"

[[route]]
queue = "nowhere"
"#,
    )
    .unwrap();
    let out = earshot()
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for want in [
        format!("{file}:2:11: pipeline: invalid type"),
        format!("{file}:6:1: admin: unknown field `colour`"),
        format!("{file}:10:8: source `x`: unknown type `carrier-pigeon`"),
        format!("{file}:12:1: source `plain`: url: `ws://` is only allowed to a loopback address"),
        "queue `support`: url: `http://` is only allowed to a loopback address".to_string(),
        "`EARSHOT_TEST_SURELY_UNSET_VARIABLE` (secret_env) is not set".to_string(),
        "route: unknown queue `nowhere`".to_string(),
        "queue `archive`: retry_schedule needs at least one duration".to_string(),
        "queue `archive`: format, template and auth apply to webhook queues only".to_string(),
        "`EARSHOT_TEST_SURELY_UNSET_TOKEN` (auth.env) is not set".to_string(),
        "queue `archive`: noise: ".to_string(),
        "queue `stream`: url 1: `nats://` is only allowed to a loopback address; use `tls://`"
            .to_string(),
        "queue `nosubject`: url 1: credentials in a URL end up in files and logs".to_string(),
        "queue `stream`: subject: `crm.*`: wildcards".to_string(),
        "queue `stream`: secret_env signs webhooks".to_string(),
        "`EARSHOT_TEST_SURELY_UNSET_CREDS` (nats_auth.env) is not set".to_string(),
        "queue `nosubject`: a nats queue needs `subject`".to_string(),
        "queue `lines`: subject, nats_auth and ca apply to nats queues only".to_string(),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("hunter2"),
        "a password reached the output:\n{stderr}"
    );
}

#[test]
fn check_reports_spike_settings_errors_with_their_location() {
    support::set_secret();
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = earshot()
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} passed the check");
        (
            path.display().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (file, stderr) = check("windows.toml", "[spikes]\nwindows = [\"5s\", \"soon\"]\n");
    assert!(
        stderr.contains(&format!("{file}:2:")) && stderr.contains("spikes"),
        "{stderr}"
    );
    let (file, stderr) = check(
        "values.toml",
        "[rules]\npaths = [\"rules\"]\n\n[spikes]\nqueues = [\"nowhere\"]\np_value = 0.5\nwindows = [\"5s\", \"2m\"]\nbaseline_half_life = \"10m\"\n",
    );
    for want in [
        format!("{file}:4:2: spikes.p_value must be above 0 and at most 0.05"),
        format!("{file}:4:2: spikes.queues names `nowhere`, which is not a queue"),
        format!("{file}:4:2: spikes.baseline_half_life"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    // Limits beyond what the process can hold, and a depth of 0.
    let (file, stderr) = check(
        "limits.toml",
        "[rules]\npaths = [\"rules\"]\n\n[limits]\nmax_frame_bytes = 18446744073709551615\nmax_json_depth = 100000\n",
    );
    for want in [
        format!("{file}:4:2: limits.max_frame_bytes must be at most 67108864"),
        format!("{file}:4:2: limits.max_json_depth must be at most 1024"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    // A spike queue whose payload template cannot carry spike events.
    let (_, stderr) = check(
        "template.toml",
        &format!(
            "[rules]\npaths = [\"{}\"]\n[spikes]\nqueues = [\"tickets\"]\n[[queue]]\nid = \"tickets\"\nsink = \"webhook\"\nurl = \"https://crm.example.com/hooks\"\nsecret_env = \"{}\"\nformat = \"zendesk\"\n[[route]]\nqueue = \"tickets\"\n",
            support::rules_dir().display(),
            support::SECRET_ENV
        ),
    );
    assert!(
        stderr.contains("queue `tickets`") && stderr.contains("has no [spike] section"),
        "{stderr}"
    );
}

#[test]
fn check_reports_each_rule_mistake_then_each_failing_example() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("acme.rules");
    let check = |text: &str| {
        std::fs::write(&rules, text).unwrap();
        let out = earshot()
            .args(["check", "--rules"])
            .arg(&rules)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = rules.display().to_string();

    // Several mistakes: each is printed with its location; nothing runs.
    let (ok, _, stderr) = check(
        "brand acme \"Acme\"\n\
         \x20 rule a: acme NEAR/3 (refund lang:en)\n\
         \x20 rule b: acme -list:jobs\n\
         \x20 rule c tags=Support: acme followers:lots\n\
         \x20 expect hit acme\n",
    );
    assert!(!ok);
    for want in [
        format!("{file}:2:23: NEAR/3 joins two terms"),
        format!("{file}:3:17: unknown list 'jobs'"),
        format!("{file}:4:10: invalid tag 'Support'"),
        format!("{file}:4:29: expected a comparison and a count after 'followers:'"),
        format!("{file}:5:14: expected the post's text in double quotes"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert_eq!(stderr.matches(&file).count(), 5, "{stderr}");

    // Valid rules whose examples do not all hold: each failing example, at its line.
    let rules_text = "list jobs: hiring OR careers\n\
         brand acme \"Acme\"\n\
         \x20 rule support: (acme OR @acmehq) NEAR/3 (refund* OR broken) -list:jobs\n\
         \x20   expect hit \"Acme, my order arrived broken\"\n\
         \x20   expect hit \"acme has not refunded me\"\n\
         \x20   expect miss \"acme is hiring: refund analysts\"\n\
         \x20   expect miss \"ACME refund please\"\n\
         \x20   expect hit \"acme, where is my money\"\n";
    let (ok, _, stderr) = check(rules_text);
    assert!(!ok);
    for want in [
        format!("{file}:7:5: example expects rule 'support' not to hit, but it does (on: acme, refund*)"),
        format!("{file}:8:5: example expects rule 'support' to hit, but it does not (terms found: acme)"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert_eq!(stderr.matches(&file).count(), 2, "{stderr}");

    // Fixed: every example runs and passes.
    let fixed = rules_text
        .replace("expect miss \"ACME refund", "expect hit \"ACME refund")
        .replace("where is my money", "where is my refund");
    let (ok, stdout, stderr) = check(&fixed);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("1 rules, 6 terms, 5 examples pass"),
        "{stdout}"
    );
}

#[test]
fn check_accepts_the_embedded_default_and_the_shipped_rules() {
    let out = earshot().args(["check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: 1 sources"), "{stdout}");
}

#[test]
fn demo_routes_signed_mentions_within_seconds() {
    let out = earshot()
        .args([
            "demo",
            "--duration",
            "4",
            "--rate",
            "1000",
            "--admin",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("→ "), "no routed mention shown:\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let s = summary(last.replace(", ", " ").as_str());
    assert!(last.contains("delivered with valid signatures"), "{last}");
    assert!(last.contains(" 0 rejected"), "{last}");
    let _ = s;
}

/// `earshot run` on a config file, reading the loopback Jetstream simulator with the same
/// protocol as the public endpoint, writing mentions to a file queue, and stopping cleanly on
/// SIGTERM with everything written.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reads_jetstream_and_stops_gracefully_on_sigterm() {
    use earshot_sim::generator::{GenSettings, Generator};
    use earshot_sim::simulator::{self, EventLog};
    use std::time::{Duration, Instant};

    let mut generator = Generator::new(GenSettings {
        seed: 7,
        mention_rate: 0.2,
    });
    let base = simulator::now_us();
    let mut frames = Vec::new();
    let mut expected = std::collections::BTreeSet::new();
    for i in 0..500u64 {
        let e = generator.next_event(base + i * 1000);
        if e.json.contains("app.bsky.feed.like") {
            continue;
        }
        if let (Some(uri), Some(_)) = (&e.post_uri, e.mentions) {
            expected.insert(uri.clone());
        }
        frames.push(e.json.into_bytes());
    }
    let (trigger, _) = earshot::shutdown::channel();
    let sim = simulator::start(0, EventLog::from_frames(frames), trigger.subscribe())
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mentions.ndjson");
    let config = dir.path().join("earshot.toml");
    std::fs::write(
        &config,
        format!(
            r#"[rules]
paths = ["{rules}"]
[admin]
listen = "127.0.0.1:0"
[[source]]
id = "bluesky"
type = "jetstream"
url = "ws://{sim}/subscribe"
[[queue]]
id = "all"
sink = "file"
path = "mentions.ndjson"
[queue.noise]
reposts = false
storm = false
[[route]]
queue = "all"
"#,
            rules = support::rules_dir().display()
        ),
    )
    .unwrap();
    let mut child = earshot()
        .args(["run", "--config"])
        .arg(&config)
        .spawn()
        .unwrap();

    let lines = |path: &std::path::Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines(&out).len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "earshot run exited with {exit}");

    let got: std::collections::BTreeSet<String> = lines(&out)
        .iter()
        .map(|m| m["post"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(lines(&out).len(), expected.len(), "each mention once");
    trigger.trigger();
}

#[test]
fn replay_of_an_unreadable_input_fails_and_says_why() {
    let out = earshot()
        .args(["replay", "--quiet", "/nonexistent/earshot-input.ndjson"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("source failed: input0: cannot read /nonexistent/earshot-input.ndjson"),
        "{stderr}"
    );
}

#[test]
fn replay_judges_who_is_speaking_and_attaches_the_customer_record() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::write(
        dir.path().join("customers.csv"),
        "platform,handle,customer_id,tier,account_owner,lifetime_value,notes\n\
         bluesky,did:plc:aaa,C-1042,Gold,dana@acme.example,12500.50,renewal in May\n",
    )
    .unwrap();
    let config = format!(
        "[rules]\npaths = [{rules:?}]\nwatch = \"0\"\n\n[admin]\nenabled = false\n\n\
         [scoring]\npath = {scoring:?}\n\n[customers]\npath = \"customers.csv\"\n\n\
         [[source]]\nid = \"in\"\ntype = \"file\"\npath = \"-\"\n\n\
         [[queue]]\nid = \"out\"\nsink = \"stdout\"\n\n[[route]]\nqueue = \"out\"\n",
        rules = root.join("rules").display().to_string(),
        scoring = root.join("rules/scoring.toml").display().to_string(),
    );
    let config_path = dir.path().join("earshot.toml");
    std::fs::write(&config_path, config).unwrap();
    let post = |did: &str, rkey: &str, text: &str| {
        format!(
            r#"{{"did":"{did}","time_us":1725911162330509,"kind":"commit","commit":{{"rev":"3l3qo2vpcwufs","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"{text}"}},"cid":"bafy"}}}}"#
        )
    };
    let input = [
        post(
            "did:plc:aaa",
            "3l3qo2v6show4",
            "@acmehq my acme order is delayed again, still waiting on the refund",
        ),
        post(
            "did:plc:bbb",
            "3l3qo2v6show5",
            "Globex lost my parcel again. Thinking of switching to Acme",
        ),
    ]
    .join("\n");
    let config_arg = config_path.display().to_string();
    let (lines, stdout) = replay_stdin(&["--config", &config_arg], &input);
    assert_eq!(lines.len(), 2, "{stdout}");
    let by_author = |did: &str| {
        lines
            .iter()
            .find(|m| m["post"]["author"]["id"] == did)
            .unwrap_or_else(|| panic!("{did} in {stdout}"))
    };

    // A known customer complaining, with no emotional word: negative, a complaint, the
    // customer's record and tier points, and support should answer.
    let m = by_author("did:plc:aaa");
    assert_eq!(m["sentiment"]["label"], "negative", "{m}");
    assert_eq!(m["category"], "complaint", "{m}");
    assert_eq!(m["author_class"], "customer", "{m}");
    assert_eq!(m["customer"]["customer_id"], "C-1042", "{m}");
    assert_eq!(m["customer"]["tier"], "gold", "{m}");
    assert_eq!(m["customer"]["account_owner"], "dana@acme.example", "{m}");
    assert_eq!(m["recommendation"]["action"], "respond", "{m}");
    assert_eq!(m["recommendation"]["team"], "support", "{m}");
    let reasons = m["urgency"]["reasons"].as_array().unwrap();
    assert!(
        reasons
            .iter()
            .any(|r| r["feature"] == "customer_tier" && r["points"] == 14),
        "{m}"
    );
    let sum: i64 = reasons.iter().map(|r| r["points"].as_i64().unwrap()).sum();
    assert_eq!(m["urgency"]["score"].as_i64().unwrap(), sum);
    assert!(m["cues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["cue"] == "delayed" && c["signal"] == "complaint"));

    // A competitor's unhappy customer: a lead for sales, the author a prospect, no record.
    let m = by_author("did:plc:bbb");
    assert_eq!(m["category"], "lead", "{m}");
    assert_eq!(m["author_class"], "prospect", "{m}");
    assert!(m["customer"].is_null(), "{m}");
    assert_eq!(m["recommendation"]["team"], "sales", "{m}");
}

/// A post that declares no language gets one detected where a rule's `lang:` needs it: the
/// Spanish complaint matches the Spanish support rule, and the mention says the language was
/// detected; a declared one is said to be declared.
#[test]
fn replay_detects_the_language_a_rule_needs_and_says_so() {
    let post = |rkey: &str, langs: &str, text: &str| {
        format!(
            r#"{{"did":"did:plc:aaa","time_us":1725911162330509,"kind":"commit","commit":{{"rev":"3l3qo2vpcwufs","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z",{langs}"text":"{text}"}},"cid":"bafy"}}}}"#
        )
    };
    let input = [
        post(
            "3l3qo2v6sho01",
            "",
            "@acmehq mis patines llegaron rotos y nadie del soporte contesta, quiero un reembolso",
        ),
        post(
            "3l3qo2v6sho02",
            r#""langs":["en"],"#,
            "@acmehq my rocket skates arrived broken, I need help",
        ),
    ]
    .join("\n")
        + "\n";
    let (lines, stdout) = replay_stdin(&[], &input);
    assert_eq!(lines.len(), 2, "{stdout}");
    let by_key = |rkey: &str| {
        lines
            .iter()
            .find(|m| m["post"]["id"].as_str().unwrap().ends_with(rkey))
            .unwrap_or_else(|| panic!("{rkey} in {stdout}"))
    };
    let es = by_key("sho01");
    assert_eq!(
        (&es["post"]["lang"], &es["post"]["lang_source"]),
        (&"es".into(), &"detected".into())
    );
    let rules: Vec<&str> = es["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"acme-support-es"), "{rules:?}");
    let en = by_key("sho02");
    assert_eq!(
        (&en["post"]["lang"], &en["post"]["lang_source"]),
        (&"en".into(), &"declared".into())
    );
}

/// A loopback `app.bsky.actor.getProfiles` answering for one author: the profile the lexicon
/// describes (`profiles` of `profileViewDetailed`), for every call; the calls are counted.
async fn profile_api(
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/xrpc/app.bsky.actor.getProfiles",
        axum::routing::get(move |uri: axum::http::Uri| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let asked = uri
                    .query()
                    .unwrap_or_default()
                    .contains("did%3Aplc%3Areporter");
                let profiles = if asked {
                    serde_json::json!([{"did": "did:plc:reporter", "handle": "dana.bsky.social",
                        "displayName": "Dana", "description": "Tech reporter at Planet News",
                        "followersCount": 48200, "followsCount": 311, "postsCount": 5120,
                        "indexedAt": "2026-11-30T08:12:44.123Z", "labels": []}])
                } else {
                    serde_json::json!([])
                };
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({ "profiles": profiles }).to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `earshot run` with enrichment on: a Bluesky mention by a bare DID is scored and sent with
/// the author's profile (handle, name, followers, description: press and influencer), one
/// call for two mentions of the same author.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_enriches_bluesky_authors_from_the_profile_api() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let api = profile_api(calls.clone()).await;
    let admin = format!("127.0.0.1:{}", support::free_port());
    let run = support::FileRun::new(
        &admin,
        &format!(
            "[enrichment]\nenabled = true\nurl = \"http://{api}/xrpc/app.bsky.actor.getProfiles\"\ndeadline = \"5s\"\n{}",
            support::catch_all_queue("sink = \"file\"\npath = \"mentions.ndjson\"")
        ),
    );
    let post = |rkey: &str, text: &str| {
        format!(
            r#"{{"did":"did:plc:reporter","time_us":1725911162330509,"kind":"commit","commit":{{"rev":"r","operation":"create","collection":"app.bsky.feed.post","rkey":"{rkey}","record":{{"$type":"app.bsky.feed.post","createdAt":"2024-09-09T19:46:03.190Z","langs":["en"],"text":"{text}"}},"cid":"bafy"}}}}"#
        )
    };
    std::fs::write(
        &run.input,
        format!(
            "{}\n{}\n",
            post(
                "3l3qo2v6sho01",
                "Acme support has not answered my refund request for a week"
            ),
            post(
                "3l3qo2v6sho02",
                "Writing a story on Acme rocket skates breaking: who else had this?"
            )
        ),
    )
    .unwrap();
    let mut child = support::earshot()
        .args(["run", "--config"])
        .arg(&run.config)
        .current_dir(&run.dir)
        .env("EARSHOT_ADMIN_TOKEN", "test-token")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = run.dir.join("mentions.ndjson");
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while read().len() < 2 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let mentions = read();
    assert_eq!(mentions.len(), 2);
    for m in &mentions {
        let a = &m["post"]["author"];
        assert_eq!(
            (&a["handle"], &a["followers"], &a["name"]),
            (&"dana.bsky.social".into(), &48200.into(), &"Dana".into())
        );
        let classes: Vec<&str> = m["author_classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert!(
            classes.contains(&"press") && classes.contains(&"influencer"),
            "{classes:?}"
        );
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second from the cache"
    );
}
