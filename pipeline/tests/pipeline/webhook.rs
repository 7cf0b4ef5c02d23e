//! The webhook sink against a real loopback receiver: signatures verify, failures are retried
//! with the same `webhook-id`, `Retry-After` is honoured, refusals are not retried.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use earshot::demo::receiver::Receiver;
use earshot::mention::{mention_id, rfc3339_millis, MatchOut, Mention, MentionPost};
use earshot::metrics::Latencies;
use earshot::post::{Author, Platform, Post, PostFlags};
use earshot::rules::BrandKind;
use earshot::shutdown;
use earshot::sink::signature::SigningKey;
use earshot::sink::webhook::{self, WebhookSettings};
use earshot::stage::score::author::AuthorClass;
use earshot::stage::score::recommend::{Action, Recommendation};
use earshot::stage::score::sentiment::SentimentLabel;
use earshot::stage::score::{Category, Reason, SentimentOut, Urgency};

use crate::support;

fn mention(n: u32) -> Arc<Mention> {
    let rkey = format!("3l3qo2v6sho{n:02}");
    let post = Post {
        platform: Platform::Bluesky,
        id: Cow::Owned(rkey),
        uri: None,
        url: None,
        author: Author {
            id: Cow::Borrowed("did:plc:webhooktest"),
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

fn settings(hook: std::net::SocketAddr, max_attempts: u32) -> WebhookSettings {
    WebhookSettings {
        queue: "support".into(),
        url: url::Url::parse(&format!("http://{hook}/support")).unwrap(),
        key: SigningKey::from_secret(support::SECRET).unwrap(),
        max_attempts,
        timeout: Duration::from_secs(5),
        concurrency: 4,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    }
}

async fn deliver(s: WebhookSettings, mentions: Vec<Arc<Mention>>) -> Duration {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(webhook::run(s, rx, Latencies::new()));
    let started = Instant::now();
    for m in mentions {
        tx.send(m).await.unwrap();
    }
    drop(tx);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("sink drains")
        .unwrap();
    started.elapsed()
}

#[tokio::test]
async fn server_errors_are_retried_until_every_mention_is_delivered_once() {
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    receiver.fail_next.store(6, Ordering::Relaxed);
    receiver.fail_status.store(500, Ordering::Relaxed);
    let mentions: Vec<_> = (0..5).map(mention).collect();
    deliver(settings(hook, 8), mentions.clone()).await;
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

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let (trigger, _) = shutdown::channel();
    let receiver = Receiver::new(SigningKey::from_secret(support::SECRET).unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    receiver.fail_next.store(1, Ordering::Relaxed);
    receiver.fail_status.store(429, Ordering::Relaxed);
    receiver.fail_retry_after.store(1, Ordering::Relaxed);
    let mut s = settings(hook, 3);
    s.backoff_max = Duration::from_secs(5);
    let took = deliver(s, vec![mention(1)]).await;
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
    deliver(settings(hook, 5), vec![mention(1)]).await;
    assert_eq!(receiver.failed.load(Ordering::Relaxed), 1);
    assert_eq!(receiver.count(), 0);
    // 503 on every attempt: exactly max_attempts tries, then given up.
    receiver.fail_next.store(100, Ordering::Relaxed);
    receiver.fail_status.store(503, Ordering::Relaxed);
    deliver(settings(hook, 3), vec![mention(2)]).await;
    assert_eq!(receiver.failed.load(Ordering::Relaxed), 1 + 3);
    assert_eq!(receiver.count(), 0);
    trigger.trigger();
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_receiver() {
    let (trigger, _) = shutdown::channel();
    let receiver =
        Receiver::new(SigningKey::from_secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAA").unwrap());
    let hook = receiver.start(0, trigger.subscribe()).await.unwrap();
    deliver(settings(hook, 1), vec![mention(1)]).await;
    assert_eq!(receiver.rejected.load(Ordering::Relaxed), 1);
    assert_eq!(receiver.count(), 0);
    trigger.trigger();
}
