//! A webhook queue's dispatcher against hostile or broken endpoints on loopback: a huge
//! `Retry-After`, a redirect to another server, a 1 GB answer, an answer that trickles one
//! byte a second, and an endpoint whose URL is itself a secret. Each ends with nothing lost
//! (the entry is delivered, waits in the outbox, or is in the dead-letter store) and the
//! dispatcher still running.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use earshot::metrics::Latencies;
use earshot::outbox::entry::{now_us, Entry, Event};
use earshot::outbox::queue::QueueShared;
use earshot::outbox::store::{Commit, Selection, Store, Table};
use earshot::sink::dispatch::{self, Deliverer};
use earshot::sink::payload::{Payload, PayloadFormat};
use earshot::sink::signature::SigningKey;
use earshot::sink::webhook::{self, WebhookTarget};
use serde_json::value::RawValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support;

/// What the hostile server does once it has read a request.
#[derive(Clone)]
enum Answer {
    /// Writes these bytes and closes.
    Bytes(&'static str),
    /// `200 OK` announcing 1 GB, then zeros until the client hangs up (at most 1 GB).
    Huge,
    /// `200 OK` announcing 60 bytes, then one byte a second.
    Trickle,
}

/// A loopback server that answers every request the same way, counting requests and the body
/// bytes it managed to write.
struct Hostile {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
}

impl Hostile {
    async fn start(answer: Answer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicU64::new(0));
        let (r, w) = (requests.clone(), written.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (r, w, answer) = (r.clone(), w.clone(), answer.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, answer, &r, &w).await;
                });
            }
        });
        Self {
            addr,
            requests,
            written,
        }
    }
}

async fn serve(
    mut conn: TcpStream,
    answer: Answer,
    requests: &AtomicUsize,
    written: &AtomicU64,
) -> std::io::Result<()> {
    // Read the head and the announced body: one request per connection.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    requests.fetch_add(1, Ordering::Relaxed);
    match answer {
        Answer::Bytes(b) => conn.write_all(b.as_bytes()).await?,
        Answer::Huge => {
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
                .await?;
            let zeros = vec![0u8; 64 * 1024];
            while written.load(Ordering::Relaxed) < 1 << 30 {
                conn.write_all(&zeros).await?;
                written.fetch_add(zeros.len() as u64, Ordering::Relaxed);
            }
        }
        Answer::Trickle => {
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 60\r\n\r\n")
                .await?;
            for _ in 0..60 {
                conn.write_all(b"x").await?;
                written.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    Ok(())
}

fn entry(id: &str) -> Entry {
    let data = RawValue::from_string(format!(r#"{{"mention_id":"{id}","post":{{}}}}"#)).unwrap();
    Entry::new(id.into(), Event::MentionCreated, data, now_us())
}

/// One queue, one entry in a fresh outbox, delivered to `url` with a client timeout.
struct Queue {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    shared: Arc<QueueShared>,
    task: tokio::task::JoinHandle<()>,
}

impl Queue {
    fn start(url: &str, timeout: Duration) -> Self {
        support::set_secret();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("outbox.redb")).unwrap());
        store
            .commit(&Commit {
                entries: vec![("q", entry("m1"))],
                ..Commit::default()
            })
            .unwrap();
        let shared = QueueShared::new("q", &store);
        shared.closed.store(true, Ordering::Relaxed);
        let target = WebhookTarget {
            queue: "q".into(),
            url: url::Url::parse(url).unwrap(),
            key: Some(SigningKey::from_secret(support::SECRET).unwrap()),
            auth: None,
            payload: Arc::new(
                Payload::load(PayloadFormat::Generic, None, &Default::default()).unwrap(),
            ),
            client: webhook::client(timeout).unwrap(),
        };
        let task = tokio::spawn(dispatch::run(
            store.clone(),
            shared.clone(),
            Deliverer::Webhook(target),
            crate::webhook::settings(3),
            Latencies::new(),
        ));
        Self {
            _dir: dir,
            store,
            shared,
            task,
        }
    }

    /// Waits for the dispatcher to finish by itself (everything delivered or dead).
    async fn drained(self) -> Self {
        let Queue {
            _dir,
            store,
            shared,
            task,
        } = self;
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the dispatcher drains its queue")
            .expect("the dispatcher does not panic");
        Queue {
            _dir,
            store,
            shared,
            task: tokio::spawn(async {}),
        }
    }

    fn dead_errors(&self) -> Vec<String> {
        self.store
            .list(Table::Dead, &Selection::default())
            .unwrap()
            .into_iter()
            .map(|s| s.entry.last_error.unwrap_or_default())
            .collect()
    }
}

#[tokio::test]
async fn a_huge_retry_after_is_capped_and_the_dispatcher_keeps_running() {
    for value in [
        "18446744073709551615",
        "99999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let answer: &'static str = Box::leak(
            format!("HTTP/1.1 429 Too Many Requests\r\nretry-after: {value}\r\ncontent-length: 0\r\n\r\n")
                .into_boxed_str(),
        );
        let server = Hostile::start(Answer::Bytes(answer)).await;
        let q = Queue::start(
            &format!("http://{}/hook", server.addr),
            Duration::from_secs(5),
        );
        // The first attempt's answer pauses the queue; the entry waits for the (capped) pause.
        for _ in 0..200 {
            if server.requests.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            !q.task.is_finished(),
            "{value}: the dispatcher is still running (an overflow would have panicked it)"
        );
        assert_eq!(server.requests.load(Ordering::Relaxed), 1, "{value}");
        assert_eq!(q.store.count(Table::Outbox, "q").unwrap(), 1, "{value}");
        q.shared.stop();
        tokio::time::timeout(Duration::from_secs(5), q.task)
            .await
            .unwrap()
            .expect("stopped cleanly, not panicked");
    }
}

#[tokio::test]
async fn a_redirect_is_refused_and_never_followed() {
    let elsewhere = Hostile::start(Answer::Bytes(
        "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
    ))
    .await;
    for status in [
        "301 Moved Permanently",
        "307 Temporary Redirect",
        "308 Permanent Redirect",
    ] {
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 {status}\r\nlocation: http://{}/stolen\r\ncontent-length: 0\r\n\r\n",
                elsewhere.addr
            )
            .into_boxed_str(),
        );
        let server = Hostile::start(Answer::Bytes(answer)).await;
        let q = Queue::start(
            &format!("http://{}/hook", server.addr),
            Duration::from_secs(5),
        )
        .drained()
        .await;
        assert_eq!(
            server.requests.load(Ordering::Relaxed),
            1,
            "{status}: one attempt"
        );
        let errors = q.dead_errors();
        assert_eq!(
            errors.len(),
            1,
            "{status}: the entry is dead-lettered, not lost"
        );
        assert!(
            errors[0].contains("redirects are not followed"),
            "{}",
            errors[0]
        );
    }
    assert_eq!(
        elsewhere.requests.load(Ordering::Relaxed),
        0,
        "the signed body never reaches the redirect's target"
    );
}

#[tokio::test]
async fn a_gigabyte_answer_is_not_read() {
    let server = Hostile::start(Answer::Huge).await;
    let q = Queue::start(
        &format!("http://{}/hook", server.addr),
        Duration::from_secs(20),
    )
    .drained()
    .await;
    assert_eq!(q.store.count(Table::Outbox, "q").unwrap(), 0, "delivered");
    assert!(q.dead_errors().is_empty());
    // What the server got out before the client hung up: the socket buffers plus at most the
    // body cap, far from the gigabyte it announced.
    let written = server.written.load(Ordering::Relaxed);
    assert!(
        written < 64 << 20,
        "the client read {written} bytes of the answer"
    );
}

#[tokio::test]
async fn an_answer_that_trickles_is_cut_off_by_the_queue_timeout() {
    let server = Hostile::start(Answer::Trickle).await;
    let q = Queue::start(
        &format!("http://{}/hook", server.addr),
        Duration::from_millis(500),
    )
    .drained()
    .await;
    // The status was 200: delivered, without waiting a minute for the rest of the body.
    assert_eq!(q.store.count(Table::Outbox, "q").unwrap(), 0);
    assert!(server.written.load(Ordering::Relaxed) < 60);
}

#[tokio::test]
async fn a_secret_url_never_reaches_an_error_or_a_dead_letter() {
    // A port nobody listens on: every attempt fails with a connection error.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let url = format!("http://127.0.0.1:{port}/services/T0001/B0001/sEcReTtOkEn?key=sEcReT2");
    let q = Queue::start(&url, Duration::from_secs(2)).drained().await;
    let errors = q.dead_errors();
    assert_eq!(errors.len(), 1, "given up after its attempts, kept");
    assert!(!errors[0].is_empty());
    for e in &errors {
        assert!(!e.contains("sEcReT"), "the URL leaked: {e}");
        assert!(!e.contains("/services/"), "the URL leaked: {e}");
    }
    assert_eq!(
        earshot::redact::url(&url::Url::parse(&url).unwrap()),
        format!("http://127.0.0.1:{port}/…")
    );
}
