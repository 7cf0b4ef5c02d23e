//! NDJSON over a long-lived chunked HTTP response, as X's filtered stream sends it.
//!
//! Input → output: a `GET` whose body is one JSON document per line, with `\r\n` keep-alive
//! lines while the stream is quiet → one frame per non-blank line. A line over
//! `max_frame_bytes` is counted [`SkipReason::Oversize`] and the rest of it discarded as it
//! arrives (see [`lines`](super::lines)); keep-alives are not frames and are not counted. In-band
//! error objects (`{"errors":[…operational-disconnect…]}`) are frames: `decode` counts them.
//!
//! The connection loop ([`http_client`]) follows X's reconnect policy:
//! non-2xx → HTTP-error backoff (429 → the rate-limit sequence), connection errors, a body
//! that ends and a stall (nothing, not even a keep-alive, for `stall_timeout`) → network
//! backoff. The bearer token is read from the named environment variable once, at start; a
//! missing variable is an error, not a retry loop. A line cut off by a lost connection is
//! handed on as it is (decode counts it `invalid_json` if it is truncated JSON), so nothing
//! read disappears silently.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::backoff::HttpBackoffPolicy;
use super::emit::Emitter;
use super::error::SourceError;
use super::http_client::{self, BodyParser, StreamSpec};
use super::lines::{Line, LineSplitter};
use crate::shutdown::Shutdown;
use crate::skip::SkipReason;

/// Settings of an NDJSON-over-HTTP source (`[[source]] kind = "http_stream"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpStreamOptions {
    /// The stream, e.g. `https://api.x.com/2/tweets/search/stream?expansions=author_id`.
    pub url: String,
    /// The name of an environment variable holding a bearer token (read at start).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest line handed on; a longer one is counted Oversize. 1 MiB: an X v2 payload with
    /// every expansion is tens of KiB.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Reconnect when nothing at all, not even a keep-alive, arrives for this long. 30 s: X
    /// sends a keep-alive every 20 s and says to reconnect after none for that long plus margin.
    #[serde(default = "default_stall_timeout", with = "crate::duration")]
    pub stall_timeout: Duration,
    /// How long connecting, up to the response headers, may take.
    #[serde(default = "default_connect_timeout", with = "crate::duration")]
    pub connect_timeout: Duration,
    /// Reconnect delays (X's policy by default).
    #[serde(default)]
    pub backoff: HttpBackoffPolicy,
}

fn default_max_frame_bytes() -> usize {
    1 << 20
}

fn default_stall_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl HttpStreamOptions {
    /// Options for `url` with every default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            bearer_token_env: None,
            headers: BTreeMap::new(),
            max_frame_bytes: default_max_frame_bytes(),
            stall_timeout: default_stall_timeout(),
            connect_timeout: default_connect_timeout(),
            backoff: HttpBackoffPolicy::default(),
        }
    }

    fn spec(&self) -> Result<StreamSpec, SourceError> {
        StreamSpec::build(
            "http_stream",
            &self.url,
            self.bearer_token_env.as_deref(),
            &self.headers,
            self.max_frame_bytes,
            self.stall_timeout,
            self.connect_timeout,
            self.backoff,
        )
    }

    /// Reads the stream until shutdown, reconnecting forever; returns `Ok` on shutdown after
    /// flushing the partial batch. Errors: bad options or a missing token variable (before
    /// connecting), a closed channel.
    pub async fn run(
        self,
        mut emitter: Emitter,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let spec = self.spec()?;
        let mut body = NdjsonBody {
            lines: LineSplitter::new(self.max_frame_bytes),
        };
        http_client::run_stream(spec, &mut body, &mut emitter, &mut shutdown).await
    }
}

struct NdjsonBody {
    lines: LineSplitter,
}

fn hand_on(line: Line<'_>, emitter: &mut Emitter, frames: &mut u64) -> Result<(), SourceError> {
    *frames += 1;
    match line {
        Line::Frame { bytes, .. } => emitter.push(bytes, None),
        Line::Oversize => {
            emitter.skip(SkipReason::Oversize);
            Ok(())
        }
    }
}

impl BodyParser for NdjsonBody {
    fn feed(&mut self, chunk: &[u8], emitter: &mut Emitter) -> Result<u64, SourceError> {
        let mut frames = 0;
        self.lines
            .feed(chunk, &mut |line| hand_on(line, emitter, &mut frames))?;
        Ok(frames)
    }

    fn end(&mut self, emitter: &mut Emitter) -> Result<u64, SourceError> {
        let mut frames = 0;
        let result = self
            .lines
            .finish(&mut |line| hand_on(line, emitter, &mut frames));
        self.lines.reset(0);
        result.map(|()| frames)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::source::testutil::{
        self, header, read_request_head, write_body_in_chunks, write_chunk, write_chunked_head,
    };

    /// The X fixture as X sends it: `\r\n` line ends, keep-alive blank lines in between.
    fn x_body() -> (Vec<Vec<u8>>, Vec<u8>) {
        let lines = testutil::fixture_lines("x-v2-stream.ndjson");
        assert_eq!(lines.len(), 9);
        let mut body = b"\r\n".to_vec();
        for (i, line) in lines.iter().enumerate() {
            body.extend_from_slice(line);
            body.extend_from_slice(b"\r\n");
            if i % 3 == 1 {
                body.extend_from_slice(b"\r\n\r\n");
            }
        }
        (lines, body)
    }

    async fn stop(
        trigger: crate::shutdown::ShutdownTrigger,
        source: tokio::task::JoinHandle<Result<(), SourceError>>,
    ) {
        trigger.trigger();
        let result = tokio::time::timeout(testutil::TEST_TIMEOUT, source).await;
        result
            .expect("stops")
            .expect("no panic")
            .expect("Ok on shutdown");
    }

    fn fast(options: &mut HttpStreamOptions) {
        options.backoff.network_step = Duration::from_millis(5);
        options.backoff.http_base = Duration::from_millis(5);
        options.backoff.rate_limit_base = Duration::from_millis(60);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn x_lines_split_across_chunks_arrive_exactly_with_the_token() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (lines, body) = x_body();
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            head_tx
                .send(read_request_head(&mut s).await)
                .expect("report");
            write_chunked_head(&mut s, "application/json").await;
            write_body_in_chunks(&mut s, &body, &[1, 7, 100, 2, 4096, 13, 999]).await;
            std::future::pending::<()>().await;
        });
        std::env::set_var("EARSHOT_TEST_X_TOKEN", "AAAA-x-token");
        let mut options = HttpStreamOptions::new(format!("http://{addr}/2/tweets/search/stream"));
        options.bearer_token_env = Some("EARSHOT_TEST_X_TOKEN".into());
        options.headers.insert("x-extra".into(), "1".into());
        let (emitter, rx, stats) = testutil::emitter(64, 4);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(options.run(emitter, shutdown));

        let (frames, batches) = testutil::recv_frames(&rx, 9).await;
        assert_eq!(
            frames, lines,
            "exactly the 9 lines, in order, without terminators"
        );
        assert!(batches >= 3, "batches of at most 4 frames");
        stop(trigger, source).await;
        server.abort();
        assert!(rx.try_recv().is_err(), "no blank or extra frames");
        assert_eq!(stats.frames(), 9);
        assert_eq!(stats.skip_counts().total(), 0);
        let head = head_rx.await.expect("head");
        assert_eq!(header(&head, "authorization"), Some("Bearer AAAA-x-token"));
        assert_eq!(header(&head, "x-extra"), Some("1"));
        assert!(header(&head, "user-agent").is_some_and(|ua| ua.starts_with("earshot/")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rate_limited_then_stalled_then_served() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (lines, body) = x_body();
        let first_two: usize = lines[..2].iter().map(|l| l.len() + 2).sum::<usize>() + 2;
        let (times_tx, mut times_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            // 1: 429. 2: two lines, then silence (a stall). 3: everything after them.
            let (mut s, _) = listener.accept().await.expect("accept");
            read_request_head(&mut s).await;
            times_tx.send(tokio::time::Instant::now()).expect("report");
            let refuse = "HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n";
            s.write_all(refuse.as_bytes()).await.expect("write");
            let (mut s2, _) = listener.accept().await.expect("accept");
            read_request_head(&mut s2).await;
            times_tx.send(tokio::time::Instant::now()).expect("report");
            write_chunked_head(&mut s2, "application/json").await;
            write_chunk(&mut s2, &body[..first_two]).await;
            let (mut s3, _) = listener.accept().await.expect("accept");
            read_request_head(&mut s3).await;
            times_tx.send(tokio::time::Instant::now()).expect("report");
            write_chunked_head(&mut s3, "application/json").await;
            write_body_in_chunks(&mut s3, &body[first_two..], &[50, 3]).await;
            std::future::pending::<()>().await;
        });
        let mut options = HttpStreamOptions::new(format!("http://{addr}/stream"));
        fast(&mut options);
        options.stall_timeout = Duration::from_millis(300);
        let (emitter, rx, stats) = testutil::emitter(64, 4);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(options.run(emitter, shutdown));

        let (frames, _) = testutil::recv_frames(&rx, 9).await;
        assert_eq!(frames, lines);
        stop(trigger, source).await;
        server.abort();
        let t1 = times_rx.recv().await.expect("first connect");
        let t2 = times_rx.recv().await.expect("second connect");
        let t3 = times_rx.recv().await.expect("third connect");
        assert!(
            t2 - t1 >= Duration::from_millis(60),
            "429 waits the rate-limit base"
        );
        assert!(
            t3 - t2 >= Duration::from_millis(300),
            "a stall is noticed only after its timeout"
        );
        assert_eq!(
            stats.connects.load(Ordering::Relaxed),
            2,
            "the 429 is no connection"
        );
        assert_eq!(stats.reconnects.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn missing_token_variable_is_a_clear_error() {
        let mut options = HttpStreamOptions::new("http://127.0.0.1:9/stream");
        options.bearer_token_env = Some("EARSHOT_TEST_NO_SUCH_TOKEN".into());
        let (emitter, _rx, _stats) = testutil::emitter(1, 1);
        let (_trigger, shutdown) = crate::shutdown::channel();
        let err = options
            .run(emitter, shutdown)
            .await
            .expect_err("missing token");
        assert!(
            matches!(err, SourceError::MissingToken { ref var } if var == "EARSHOT_TEST_NO_SUCH_TOKEN")
        );
        assert!(err.to_string().contains("EARSHOT_TEST_NO_SUCH_TOKEN"));
    }

    #[test]
    fn options_parse() {
        let o: HttpStreamOptions = toml::from_str(
            "url = \"https://api.x.com/2/tweets/search/stream\"\n\
             bearer_token_env = \"X_BEARER\"\n\
             [headers]\nx-a = \"b\"\n[backoff]\nhttp_base = \"1s\"",
        )
        .expect("parses");
        assert_eq!(o.stall_timeout, Duration::from_secs(30));
        assert_eq!(o.backoff.http_base, Duration::from_secs(1));
        assert_eq!(o.backoff.rate_limit_base, Duration::from_secs(60));
        assert_eq!(o.headers.get("x-a").map(String::as_str), Some("b"));
        assert!(toml::from_str::<HttpStreamOptions>("url = \"http://x\"\nmax_frames = 1").is_err());
    }

    /// Writes numbered lines as fast as the client takes them, `lines_per_chunk` per chunk,
    /// counting whole chunks written; sets `done` after the last.
    async fn endless_writer(
        mut s: TcpStream,
        total_lines: u64,
        written: Arc<AtomicU64>,
        done: Arc<AtomicBool>,
    ) {
        read_request_head(&mut s).await;
        write_chunked_head(&mut s, "application/json").await;
        let mut n = 0u64;
        let mut chunk = Vec::new();
        while n < total_lines {
            chunk.clear();
            for _ in 0..64 {
                chunk.extend_from_slice(
                    format!("{{\"n\":{n},\"pad\":\"{:040}\"}}\r\n", 0).as_bytes(),
                );
                n += 1;
            }
            write_chunk(&mut s, &chunk).await;
            written.store(n, Ordering::Relaxed);
        }
        done.store(true, Ordering::Relaxed);
        std::future::pending::<()>().await;
    }

    /// Backpressure: with a channel of one batch and no consumer, the source stops reading,
    /// the server's writes block, and nothing is lost once the channel drains.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_channel_stops_reading_and_resumes_when_drained() {
        // ~32 MiB: far more than socket buffers, hyper's buffer and one batch can hold.
        const TOTAL: u64 = 64 * 8192;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let written = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let server = {
            let (written, done) = (written.clone(), done.clone());
            tokio::spawn(async move {
                let (s, _) = listener.accept().await.expect("accept");
                endless_writer(s, TOTAL, written, done).await;
            })
        };
        let mut options = HttpStreamOptions::new(format!("http://{addr}/firehose"));
        // Shorter than the time the source will spend blocked: blocking must not count.
        options.stall_timeout = Duration::from_millis(200);
        let (emitter, rx, stats) = testutil::emitter(1, 16);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(options.run(emitter, shutdown));

        // Wait until the server has made no progress for a while: its writes block.
        let mut last = u64::MAX;
        let mut still = 0;
        testutil::wait_until("the server's writes to block", || {
            assert!(
                !done.load(Ordering::Relaxed),
                "server wrote everything: no backpressure"
            );
            let now = written.load(Ordering::Relaxed);
            still = if now == last { still + 1 } else { 0 };
            last = now;
            still >= 250
        })
        .await;
        // One batch sits in the channel; the source is blocked handing on the next one, so
        // exactly one batch's frames are counted, and far fewer than the server tried to send.
        assert_eq!(rx.len(), 1);
        assert_eq!(stats.frames(), 16, "the source stopped at the full channel");
        assert!(last < TOTAL);

        // Drain: everything arrives, in order, exactly once.
        let (frames, _) = testutil::recv_frames(&rx, TOTAL as usize).await;
        assert!(done.load(Ordering::Relaxed));
        for (i, f) in frames.iter().enumerate() {
            let want = format!("{{\"n\":{i},");
            assert!(f.starts_with(want.as_bytes()), "frame {i} out of order");
        }
        stop(trigger, source).await;
        server.abort();
        assert_eq!(stats.frames(), TOTAL);
        assert_eq!(
            stats.connects.load(Ordering::Relaxed),
            1,
            "backpressure is not a stall"
        );
    }
}
