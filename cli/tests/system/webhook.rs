//! A webhook queue's dispatcher, reading from a real outbox, against a real loopback receiver:
//! signatures verify, failures are retried with the same `webhook-id`, `Retry-After` is
//! honoured, refusals and exhausted entries go to the dead-letter store, and a replay of a
//! dead letter delivers it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use earshot::mention::{mention_id, MatchOut, Mention, MentionPost};
use earshot::metrics::Latencies;
use earshot::outbox::entry::{now_us, Entry, Event};
use earshot::outbox::queue::QueueShared;
use earshot::outbox::store::{Commit, Selection, Store, Table};
use earshot::post::{Author, Platform, Post, PostFlags, Thread};
use earshot::rules::BrandKind;
use earshot::shutdown;
use earshot::sink::breaker::BreakerSettings;
use earshot::sink::dispatch::{self, Deliverer, DispatchSettings};
use earshot::sink::payload::{Payload, PayloadFormat};
use earshot::sink::signature::SigningKey;
use earshot::sink::webhook::{self, WebhookTarget};
use earshot::stage::score::author::AuthorClass;
use earshot::stage::score::recommend::{Action, Recommendation};
use earshot::stage::score::sentiment::SentimentLabel;
use earshot::stage::score::{Category, Reason, SentimentOut, Urgency};
use earshot::timestamp::rfc3339_millis;
use earshot_sim::receiver::Receiver;

use serde_json::value::RawValue;

use crate::support;

fn mention(n: u32) -> Arc<Mention> {
    by(n, "did:plc:webhooktest", None)
}

/// Mention `n` by `author`, replying to `parent` (an `at://` URI) when given.
fn by(n: u32, author: &'static str, parent: Option<String>) -> Arc<Mention> {
    let rkey = format!("3l3qo2v6sho{n:02}");
    let post = Post {
        platform: Platform::Bluesky,
        id: Cow::Owned(rkey),
        uri: None,
        url: None,
        author: Author {
            id: Cow::Borrowed(author),
            ..Author::default()
        },
        text: Cow::Borrowed("acme support is not answering"),
        lang: Some(Cow::Borrowed("en")),
        created_at: None,
        time_us: None,
        engagement: None,
        flags: PostFlags::default(),
        links: Vec::new(),
        original: None,
        thread: Thread {
            parent: parent.map(Cow::Owned),
            root: None,
        },
    };
    let mpost = MentionPost::from_post(&post);
    Arc::new(Mention {
        mention_id: mention_id(post.platform, &mpost.id),
        post: mpost,
        matches: vec![MatchOut {
            tags: Vec::new(),
            rule: "acme-mentions".into(),
            brand: "acme".into(),
            kind: BrandKind::Brand,
            terms: vec!["acme".into()],
        }],
        sentiment: SentimentOut {
            score: -0.4,
            label: SentimentLabel::Negative,
            vader: -0.4,
        },
        category: Category::Complaint,
        categories: vec![Category::Complaint],
        urgency: Urgency {
            score: 16,
            reasons: vec![Reason {
                feature: "negative_sentiment",
                points: 16,
            }],
        },
        author_class: AuthorClass::Public,
        author_classes: vec![AuthorClass::Public],
        recommendation: Recommendation {
            action: Action::Respond,
            team: Some("support"),
            reason: "complaint: support should answer".into(),
        },
        cues: Vec::new(),
        customer: None,
        queues: vec!["support".into()],
        received_at: rfc3339_millis(std::time::SystemTime::now()),
        received: Instant::now(),
    })
}

fn target(hook: std::net::SocketAddr) -> WebhookTarget {
    WebhookTarget {
        queue: "support".into(),
        url: url::Url::parse(&format!("http://{hook}/support")).unwrap(),
        key: Some(SigningKey::from_secret(support::SECRET).unwrap()),
        auth: None,
        payload: Arc::new(Payload::load(PayloadFormat::Generic, None, &BTreeMap::new()).unwrap()),
        client: webhook::client(Duration::from_secs(5)).unwrap(),
    }
}

pub(crate) fn settings(max_attempts: u32) -> DispatchSettings {
    DispatchSettings {
        max_attempts,
        retry_schedule: vec![Duration::from_millis(20), Duration::from_millis(200)],
        concurrency: 4,
        ordered: false,
        latency_budget: None,
        breaker: BreakerSettings {
            threshold: 5,
            cooldown: Duration::from_millis(50),
            max_cooldown: Duration::from_millis(200),
        },
        disable_after: None,
        cases: None,
    }
}

/// An outbox in a temporary folder.
struct Outbox {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
}

impl Outbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("outbox.redb")).unwrap());
        Self { _dir: dir, store }
    }

    fn add(&self, mentions: &[Arc<Mention>]) {
        let entries = mentions
            .iter()
            .map(|m| {
                let data = RawValue::from_string(serde_json::to_string(&**m).unwrap()).unwrap();
                let e = Entry::new(m.mention_id.clone(), Event::MentionCreated, data, now_us());
                ("support", e)
            })
            .collect();
        self.store
            .commit(&Commit {
                entries,
                ..Commit::default()
            })
            .unwrap();
    }

    /// Runs the queue's dispatcher until everything in the outbox is delivered or dead.
    async fn deliver(&self, hook: std::net::SocketAddr, s: DispatchSettings) -> Duration {
        self.deliver_to(target(hook), s).await
    }

    /// [`Outbox::deliver`] through `target`.
    async fn deliver_to(&self, target: WebhookTarget, s: DispatchSettings) -> Duration {
        let shared = QueueShared::new("support", &self.store);
        shared.closed.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let task = tokio::spawn(dispatch::run(
            self.store.clone(),
            shared,
            Deliverer::Webhook(target),
            s,
            Latencies::new(),
        ));
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the dispatcher drains the outbox")
            .unwrap();
        started.elapsed()
    }

    fn count(&self, table: Table) -> u64 {
        self.store.count(table, "support").unwrap()
    }
}

async fn deliver(
    hook: std::net::SocketAddr,
    s: DispatchSettings,
    mentions: Vec<Arc<Mention>>,
) -> (Duration, Outbox) {
    let outbox = Outbox::new();
    outbox.add(&mentions);
    let took = outbox.deliver(hook, s).await;
    (took, outbox)
}

#[tokio::test]
async fn server_errors_are_retried_until_every_mention_is_delivered_once() {
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    receiver.fail_next.store(6, Ordering::Relaxed);
    receiver.fail_status.store(500, Ordering::Relaxed);
    let mentions: Vec<_> = (0..5).map(mention).collect();
    let (_, outbox) = deliver(hook, settings(8), mentions.clone()).await;
    assert_eq!(
        outbox.count(Table::Outbox),
        0,
        "delivered entries are removed"
    );
    assert_eq!(outbox.count(Table::Dead), 0);
    assert_eq!(receiver.failed.load(Ordering::Relaxed), 6);
    assert_eq!(receiver.count(), 5);
    assert_eq!(receiver.duplicates.load(Ordering::Relaxed), 0);
    assert_eq!(receiver.rejected.load(Ordering::Relaxed), 0);
    let got = receiver.received.lock().unwrap();
    for m in &mentions {
        assert!(
            got.by_id.contains_key(&m.mention_id),
            "{} missing",
            m.mention_id
        );
    }
    trigger.trigger();
}

/// A generic queue with follow-ups on: the author's later mentions and a reply to the first
/// arrive as `mention.followup` naming the first; another author's mention opens its own
/// case. The cases are kept in the outbox file.
#[tokio::test]
async fn a_generic_queue_with_follow_ups_names_the_case_of_each_mention() {
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    let first = by(1, "did:plc:alice", None);
    let again = by(2, "did:plc:alice", None);
    let reply = by(3, "did:plc:bob", Some(first.post.id.clone()));
    let other = by(4, "did:plc:carol", None);
    let mut s = settings(3);
    s.cases = Some(earshot::sink::cases::CaseSettings {
        author_window: Duration::from_secs(3600),
        keep: Duration::from_secs(86_400),
    });
    let mentions = vec![first.clone(), again.clone(), reply.clone(), other.clone()];
    let (_, outbox) = deliver(hook, s, mentions).await;
    let rec = receiver.received.lock().unwrap();
    assert_eq!(rec.by_id.len(), 4);
    let followups: BTreeMap<&str, &str> = rec
        .followups
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        followups,
        BTreeMap::from([
            (again.mention_id.as_str(), first.mention_id.as_str()),
            (reply.mention_id.as_str(), first.mention_id.as_str()),
        ])
    );
    let kept = outbox
        .store
        .cases(
            "support",
            &[
                &format!("post:{}", reply.post.id),
                "author:bluesky:did:plc:carol",
            ],
        )
        .unwrap();
    let case = |v: &Option<Vec<u8>>| {
        earshot::sink::cases::Case::from_bytes(v.as_deref().unwrap())
            .unwrap()
            .mention_id
    };
    assert_eq!(
        case(&kept[0]),
        first.mention_id,
        "a follow-up extends its case"
    );
    assert_eq!(case(&kept[1]), other.mention_id);
    // Past `keep`, the cases are pruned.
    let gone = outbox
        .store
        .prune_cases("support", &|v| {
            earshot::sink::cases::stale(v, now_us() + 90_000_000_000, Duration::from_secs(86_400))
        })
        .unwrap();
    assert_eq!(gone, 7, "each mention's post key and each author's key");
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    receiver.fail_next.store(1, Ordering::Relaxed);
    receiver.fail_status.store(429, Ordering::Relaxed);
    receiver.fail_retry_after.store(1, Ordering::Relaxed);
    let (took, _) = deliver(hook, settings(3), vec![mention(1)]).await;
    assert_eq!(receiver.count(), 1);
    // Our own backoff would have retried after at most 20 ms; the server asked for 1 s.
    assert!(took >= Duration::from_millis(950), "retried after {took:?}");
    trigger.trigger();
}

#[tokio::test]
async fn refusals_are_not_retried_and_the_last_attempt_gives_up() {
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    // 400: refused for good, one attempt.
    receiver.fail_next.store(1, Ordering::Relaxed);
    receiver.fail_status.store(400, Ordering::Relaxed);
    let (_, refused) = deliver(hook, settings(5), vec![mention(1)]).await;
    assert_eq!(receiver.failed.load(Ordering::Relaxed), 1);
    assert_eq!(receiver.count(), 0);
    assert_eq!(
        refused.count(Table::Dead),
        1,
        "a refusal is dead-lettered at once"
    );
    // 503 on every attempt: exactly max_attempts tries, then given up.
    receiver.fail_next.store(100, Ordering::Relaxed);
    receiver.fail_status.store(503, Ordering::Relaxed);
    let (_, dead) = deliver(hook, settings(3), vec![mention(2)]).await;
    assert_eq!(receiver.failed.load(Ordering::Relaxed), 1 + 3);
    assert_eq!(receiver.count(), 0);
    let letters = dead.store.list(Table::Dead, &Selection::default()).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].entry.attempts, 3);
    assert_eq!(letters[0].entry.last_error.as_deref(), Some("HTTP 503"));
    // Replayed once the endpoint works again: delivered with the same id.
    receiver.fail_next.store(0, Ordering::Relaxed);
    let replayed = dead.store.replay(&Selection::default()).unwrap();
    assert_eq!(replayed.len(), 1);
    dead.deliver(hook, settings(3)).await;
    assert_eq!(receiver.count(), 1);
    assert!(receiver
        .received
        .lock()
        .unwrap()
        .by_id
        .contains_key(&mention(2).mention_id));
    assert_eq!(dead.count(Table::Dead), 0);
    trigger.trigger();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_receiver() {
    let (trigger, _) = shutdown::channel();
    let receiver =
        Receiver::new(SigningKey::from_secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAA").unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    deliver(hook, settings(1), vec![mention(1)]).await;
    assert_eq!(receiver.rejected.load(Ordering::Relaxed), 1);
    assert_eq!(receiver.count(), 0);
    trigger.trigger();
}

/// A template that fails on one message's data (a header carrying the post text, which here
/// holds a newline) dead-letters that message at its first attempt, names the failure in the
/// dead letter, and counts it by queue and reason; the next message goes through.
#[tokio::test]
async fn a_payload_that_cannot_render_is_dead_lettered_and_counted_by_reason() {
    // The recorder, installed before anything counts.
    let _ = earshot::metrics::prometheus();
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    let template = "[headers]\nX-Text = \"{{ text }}\"\n[body]\nid = \"{{ id }}\"\n";
    let payload = Payload::parse(
        PayloadFormat::Hubspot,
        "header.toml",
        template,
        &BTreeMap::new(),
    )
    .expect("the template compiles");
    let mut broken = (*mention(1)).clone();
    broken.post.text = "acme support\nis not answering".into();
    let outbox = Outbox::new();
    outbox.add(&[Arc::new(broken), mention(2)]);
    let target = WebhookTarget {
        payload: Arc::new(payload),
        ..target(hook)
    };
    outbox.deliver_to(target, settings(3)).await;
    // The demo receiver checks generic bodies, so it refuses the HubSpot one: what matters is
    // that the second message was rendered and sent.
    let sent = receiver.count() as u64 + receiver.rejected.load(Ordering::Relaxed);
    assert_eq!(sent, 1, "the other message is rendered and sent");
    let letters = outbox
        .store
        .list(Table::Dead, &Selection::default())
        .unwrap();
    let unrenderable: Vec<_> = letters
        .iter()
        .filter(|l| {
            l.entry
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with("the payload template failed: "))
        })
        .collect();
    assert_eq!(unrenderable.len(), 1, "{letters:?}");
    assert_eq!(
        unrenderable[0].entry.attempts, 1,
        "rendering again gives the same"
    );
    let metrics = earshot::metrics::prometheus().render();
    let series = "earshot_payload_render_errors_total{queue=\"support\",reason=\"header\"} ";
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .unwrap_or_else(|| panic!("no {series} in\n{metrics}"));
    assert!(count.trim().parse::<u64>().unwrap() >= 1, "{count}");
    trigger.trigger();
}
