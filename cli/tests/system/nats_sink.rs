//! The `nats` sink against a real `nats-server` with JetStream: an `earshot run` process reads
//! a growing NDJSON file of generated posts and publishes every routed mention to a subject
//! of a stream the test made, as a team would. The server is killed with SIGKILL in the middle
//! and started again on the same store while posts keep arriving: the stream ends up holding
//! every mention exactly once, each with its `Nats-Msg-Id` and `Earshot-Event` headers and
//! the mention contract as its body.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::delivery::{append, posts, terminate};
use crate::support::nats::NatsServer;
use crate::support::{self, free_port, FileRun};

/// The stream the test's team reads, and its subject.
const STREAM: &str = "CRM";
const SUBJECT: &str = "crm.mentions";

/// Creates the stream, waiting for JetStream to be ready after a start.
async fn make_stream(server: &NatsServer) -> jetstream::Context {
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);
    let config = stream::Config {
        name: STREAM.into(),
        subjects: vec![SUBJECT.into()],
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    for _ in 0..100 {
        if js.get_or_create_stream(config.clone()).await.is_ok() {
            return js;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot create the stream:\n{}", server.log_tail());
}

/// Messages in the stream now (0 while the server is down).
async fn count(js: &jetstream::Context) -> u64 {
    match js.get_stream(STREAM).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// Polls [`count`] until it reaches `want` or `limit` passes; returns the last count.
async fn count_reaching(js: &jetstream::Context, want: u64, limit: Duration) -> u64 {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let n = count(js).await;
        if n >= want || std::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_queue_holds_every_mention_once_through_a_server_kill() {
    let mut server = NatsServer::start();
    make_stream(&server).await;
    // A list, as an operator writes one: the second server is never up.
    let servers = format!("{},nats://127.0.0.1:{}", server.url(), free_port());
    let FileRun { dir, input, config } = FileRun::new(
        &format!("127.0.0.1:{}", free_port()),
        &format!(
            r#"[[queue]]
id = "stream"
sink = "nats"
url = "{url}"
subject = "{SUBJECT}"
timeout = "2s"
concurrency = 8
max_attempts = 100
retry_schedule = ["50ms", "100ms", "200ms"]
breaker_failures = 3
breaker_cooldown = "50ms"
breaker_max_cooldown = "200ms"
[queue.noise]
reposts = false
storm = false
[[route]]
queue = "stream"
"#,
            url = servers
        ),
    );
    let (frames, expected) = posts(67, 2000);
    let (before, during) = frames.split_at(1000);
    append(&input, before);
    let log = std::fs::File::create(dir.join("earshot.log")).unwrap();
    let child = support::earshot()
        .args(["run", "--config"])
        .arg(&config)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_tail = || {
        let text = std::fs::read_to_string(dir.join("earshot.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    };

    let js = make_stream(&server).await;
    let seen = count_reaching(&js, 20, Duration::from_secs(60)).await;
    assert!(
        seen >= 20,
        "nothing published before the kill:\n{}",
        log_tail()
    );
    // The server goes down mid-stream while the second half of the posts arrives…
    server.kill();
    append(&input, during);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // …and comes back on the same store.
    server.restart();
    let js = make_stream(&server).await;
    let want = expected.len() as u64;
    let last = count_reaching(&js, want, Duration::from_secs(60)).await;
    terminate(child);
    assert_eq!(last, want, "stream holds {last} of {want}:\n{}", log_tail());

    // Each message: a mention routed by the run, once, with its headers.
    let stream = js.get_stream(STREAM).await.unwrap();
    let mut ids = BTreeSet::new();
    for seq in 1..=want {
        let m = stream.get_raw_message(seq).await.unwrap();
        let id = m.headers.get("Nats-Msg-Id").unwrap().as_str().to_string();
        assert_eq!(
            m.headers.get("Earshot-Event").unwrap().as_str(),
            "mention.created"
        );
        let body: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(
            body["mention_id"],
            id.as_str(),
            "the header names the body's mention"
        );
        assert!(ids.insert(id), "a mention is in the stream twice");
    }
    assert_eq!(ids, expected);
    eprintln!("nats sink: {want} mentions, each once, {seen} of them before the kill");
}
