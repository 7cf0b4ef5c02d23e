//! `earshot dlq list | replay | purge` on a cluster's dead letters, against a real
//! `nats-server` with JetStream: the streams are made as a node makes them
//! (`earshot::cluster::join`), dead letters are published to EARSHOT_DLQ as the deliver role
//! writes them (entries, and one that is not an entry), and the `earshot` binary works on
//! them with a config that has `[cluster]`. A replay lands on the queue's subject of
//! EARSHOT_QUEUES with its attempts reset, even right after the original publish of the same
//! entry (whose `Nats-Msg-Id` the stream remembers for ten minutes), and leaves the stream of
//! dead letters only once it is there.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream;
use earshot::cluster::dead::{self, DeadLetters};
use earshot::cluster::{dlq_subject, queue_subject, DLQ_STREAM, QUEUES_STREAM};
use earshot::dlq::Filter;
use earshot::outbox::entry::{Entry, Event};
use serde_json::value::RawValue;

use crate::support::nats::NatsServer;
use crate::support::{self, free_port, FileRun};

/// The node's queues: two that the config has (a third, `retired`, it no longer has).
const QUEUES: &str = r#"[[queue]]
id = "support"
sink = "file"
path = "support.ndjson"
[[queue]]
id = "crisis"
sink = "file"
path = "crisis.ndjson"
[[route]]
queue = "support"
"#;

/// A dead letter as the deliver role writes it: five attempts, the last refused.
fn dead_entry(id: &str, event: Event) -> Entry {
    let data = RawValue::from_string(format!(r#"{{"mention_id":"{id}","text":"late"}}"#)).unwrap();
    let mut e = Entry::new(id.into(), event, data, 1_700_000_000_000_000);
    e.attempts = 5;
    e.last_error = Some("HTTP 503".into());
    e.dead_us = Some(1_700_000_060_000_000);
    e
}

/// Publishes `body` to `subject` with `msg_id`; returns its sequence in the stream.
async fn publish(js: &jetstream::Context, subject: String, msg_id: &str, body: Vec<u8>) -> u64 {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    js.publish_with_headers(subject, headers, body.into())
        .await
        .expect("publish")
        .await
        .expect("acknowledged")
        .sequence
}

/// Buries `id` of `queue` in EARSHOT_DLQ; returns its sequence there.
async fn bury(js: &jetstream::Context, queue: &str, id: &str, event: Event) -> u64 {
    let body = dead_entry(id, event).to_bytes();
    publish(js, dlq_subject(queue), &format!("{queue}:{id}:1"), body).await
}

/// Every message of `stream` on `subject`, in order: (`Nats-Msg-Id`, body).
async fn messages(js: &jetstream::Context, stream: &str, subject: &str) -> Vec<(String, Vec<u8>)> {
    let mut s = js.get_stream(stream).await.unwrap();
    let state = s.info().await.unwrap().state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(m) = s.get_raw_message(seq).await else {
            continue; // deleted
        };
        if m.subject.as_str() != subject {
            continue;
        }
        let id = m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        out.push((id, m.payload.to_vec()));
    }
    out
}

/// `earshot dlq <args> --config <config>`: (success, stdout, stderr).
fn dlq(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = support::earshot()
        .arg("dlq")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dead_letters_are_listed_replayed_and_purged() {
    let server = NatsServer::start();
    let run = FileRun::new(
        &format!("127.0.0.1:{}", free_port()),
        &format!(
            "{QUEUES}[cluster]\nurl = \"{}\"\nreplicas = 1\nnode = \"t\"\ntimeout = \"5s\"\n",
            server.url()
        ),
    );
    let config = earshot::config::Config::load(&run.config).expect("the test config loads");
    let settings = config.cluster.clone().expect("[cluster]");
    let node = earshot::cluster::join(&settings, Duration::ZERO)
        .await
        .unwrap_or_else(|e| panic!("join: {e}\n{}", server.log_tail()));
    let js = &node.js;

    let m1 = bury(js, "support", "m_1", Event::MentionCreated).await;
    bury(js, "support", "m_2", Event::MentionCreated).await;
    bury(js, "crisis", "s_1.started", Event::SpikeStarted).await;
    let bad = publish(
        js,
        dlq_subject("support"),
        "support:unreadable-9:9",
        b"{\"id\": \"m_cut".to_vec(),
    )
    .await;
    bury(js, "support", "m_3", Event::MentionCreated).await;
    let unreadable = format!("unreadable-{bad}");

    // list: every queue's, as the single node prints them, and nothing consumed.
    let (ok, out, err) = dlq(&run.config, &["list"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(err.contains("5 dead letters"), "{err}");
    assert_eq!(
        lines[0],
        "support\tm_1\tmention.created\tattempts=5\tdead_at=2023-11-14T22:14:20.000Z\tHTTP 503"
    );
    assert_eq!(lines[2], "crisis\ts_1.started\tspike.started\tattempts=5\tdead_at=2023-11-14T22:14:20.000Z\tHTTP 503");
    assert!(
        lines[3].starts_with(&format!("support\t{unreadable}\t-\tattempts=0\t"))
            && lines[3].contains("unreadable (13 bytes)"),
        "{}",
        lines[3]
    );
    let (ok, out, err) = dlq(&run.config, &["list", "--queue", "crisis", "--json"]);
    assert!(ok, "{err}");
    let letter: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON letter");
    assert_eq!(letter["queue"], "crisis");
    assert_eq!(letter["id"], "s_1.started");
    assert_eq!(letter["event"], "spike.started");
    assert_eq!(letter["data"]["text"], "late");
    let (ok, out, err) = dlq(&run.config, &["list", "--id", "m_2", "--id", "m_3"]);
    assert!(ok && out.lines().count() == 2, "{out}{err}");
    assert_eq!(
        messages(js, DLQ_STREAM, &dlq_subject("support"))
            .await
            .len(),
        4
    );

    // Reading is bounded: a limit of two reads two and says how many it left.
    let letters = DeadLetters::open(js, settings.timeout).await.unwrap();
    let read = letters.read(&Filter::default(), 2).await.unwrap();
    assert_eq!((read.letters.len(), read.total, read.unread), (2, 5, 3));
    assert_eq!(read.letters[0].seq, m1);
    let read = letters
        .read(&Filter::default(), dead::MAX_READ)
        .await
        .unwrap();
    assert_eq!((read.letters.len(), read.total, read.unread), (5, 5, 0));

    // The work role published m_1 a moment ago: its `Nats-Msg-Id` is in the stream's window.
    publish(
        js,
        queue_subject("support"),
        "support:m_1",
        Entry::new(
            "m_1".into(),
            Event::MentionCreated,
            RawValue::from_string("{}".into()).unwrap(),
            1,
        )
        .to_bytes(),
    )
    .await;

    // replay: the queue's entries go back, attempts reset; the unreadable one stays.
    let (ok, out, err) = dlq(&run.config, &["replay", "--queue", "support"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("replayed 3"), "{out}");
    assert!(
        err.contains(&format!("left in {DLQ_STREAM}: support\t{unreadable}")),
        "{err}"
    );
    let queued = messages(js, QUEUES_STREAM, &queue_subject("support")).await;
    let replayed: Vec<(String, Entry)> = queued
        .iter()
        .filter(|(id, _)| id.contains(":replay:"))
        .map(|(id, body)| (id.clone(), Entry::from_bytes(body).unwrap()))
        .collect();
    assert_eq!(queued.len(), 4, "the original publish and three replays");
    assert_eq!(
        replayed
            .iter()
            .map(|(_, e)| e.id.as_str())
            .collect::<Vec<_>>(),
        ["m_1", "m_2", "m_3"]
    );
    assert_eq!(replayed[0].0, format!("support:m_1:replay:{m1}"));
    for (_, e) in &replayed {
        assert_eq!(
            (e.attempts, &e.last_error, e.dead_us),
            (0, &None, None),
            "{}",
            e.id
        );
        assert_eq!(e.event, Event::MentionCreated);
        assert_eq!(
            e.data.get(),
            format!(r#"{{"mention_id":"{}","text":"late"}}"#, e.id)
        );
    }
    let (ok, out, err) = dlq(&run.config, &["list"]);
    assert!(ok, "{err}");
    let left: Vec<&str> = out.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(left, ["s_1.started", unreadable.as_str()], "{out}");

    // A replay to a queue the config no longer has says where the entry waits.
    bury(js, "retired", "r_1", Event::MentionCreated).await;
    let (ok, out, err) = dlq(&run.config, &["replay", "--id", "r_1"]);
    assert!(ok && out.starts_with("replayed 1"), "{out}{err}");
    assert!(
        err.contains("queue `retired` is not in this config")
            && err.contains("earshot.queue.retired"),
        "{err}"
    );

    // purge: refused without a selection; by id (the unreadable one); a whole queue; all.
    let (ok, _, err) = dlq(&run.config, &["purge"]);
    assert!(!ok && err.contains("--all"), "{err}");
    let (ok, out, err) = dlq(&run.config, &["purge", "--id", &unreadable]);
    assert!(ok && out.trim() == "purged 1", "{out}{err}");
    bury(js, "crisis", "s_2.started", Event::SpikeStarted).await;
    bury(js, "support", "m_4", Event::MentionCreated).await;
    let (ok, out, err) = dlq(&run.config, &["purge", "--queue", "crisis"]);
    assert!(ok && out.trim() == "purged 2", "{out}{err}");
    let (ok, out, err) = dlq(&run.config, &["list"]);
    assert!(
        ok && out.lines().count() == 1 && out.contains("\tm_4\t"),
        "{out}{err}"
    );
    bury(js, "crisis", "s_3.started", Event::SpikeStarted).await;
    let (ok, out, err) = dlq(&run.config, &["purge", "--all"]);
    assert!(ok && out.trim() == "purged 2", "{out}{err}");
    let (ok, out, err) = dlq(&run.config, &["list"]);
    assert!(
        ok && out.is_empty() && err.contains("0 dead letters"),
        "{out}{err}"
    );
    // What was replayed is still waiting for its deliverer.
    assert_eq!(
        messages(js, QUEUES_STREAM, &queue_subject("support"))
            .await
            .len(),
        4
    );
}
