//! Server-Sent Events, as Mastodon's streaming API sends them: an incremental parser and the
//! source built on it.
//!
//! Input → output: an HTTP `text/event-stream` body, cut anywhere → events (`event` type,
//! `data`, last event id) → an `update` event's data (one status JSON) becomes a frame; a
//! `delete` (a status id) becomes the frame `{"event":"delete","payload":"<id>"}` of the
//! streaming API's websocket form, which the decoder counts [`SkipReason::Delete`] and follows
//! (a routed status deleted is retracted); every other event is counted at the source:
//! `status.update` → [`SkipReason::Update`], `filters_changed` → [`SkipReason::StreamError`], anything else
//! (`notification`, `announcement*`, `conversation`, unnamed `message`s) →
//! [`SkipReason::OtherEvent`].
//!
//! The parser ([`SseParser`]) follows the WHATWG "event stream interpretation": lines end in
//! CR, LF or CRLF (a CRLF split between two chunks is one line end); a leading BOM is dropped;
//! `:` starts a comment (Mastodon's `:thump` heartbeat), reported so callers can see it; a
//! field without a colon has an empty value; one space after the colon is stripped; `data`
//! lines are joined with `\n`; `id` (without NUL) sets the last event id, `retry` (digits
//! only) the reconnection time; a blank line dispatches, and an event without data is not
//! dispatched. It is pure (no I/O), allocation-free in the steady state (its buffers are
//! reused), and bounded: an event whose data exceeds `max_event_bytes`, or whose line exceeds
//! it, is dropped whole and reported once as [`SseItem::Oversize`] at its dispatch, its bytes
//! discarded as they arrive. An event cut off by the end of the stream is discarded, as the
//! specification says.
//!
//! The source ([`SseOptions::run`]) reconnects forever with X's HTTP policy (see
//! [`http_client`]), sends `Last-Event-ID` when the server has set one,
//! never reconnects sooner than the server's `retry:`, and treats a 2xx response that is not
//! `text/event-stream` as an HTTP error.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use memchr::{memchr, memchr2};
use serde::Deserialize;

use super::backoff::HttpBackoffPolicy;
use super::emit::Emitter;
use super::error::SourceError;
use super::http_client::{self, BodyParser, StreamSpec};
use crate::shutdown::Shutdown;
use crate::skip::SkipReason;
use crate::stage::decode::mastodon_event_skip;

/// Room a line may take beyond the event limit: the field name and colon before the value.
const LINE_SLACK: usize = 64;

/// One dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The event type (`message` when the stream named none).
    pub event: &'a [u8],
    /// The data lines joined by `\n`.
    pub data: &'a [u8],
    /// The last event id set on the stream so far (empty when none).
    pub id: &'a [u8],
}

/// What the parser reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseItem<'a> {
    /// An event, at its terminating blank line.
    Event(SseEvent<'a>),
    /// A comment line's text after the `:` (`thump` for Mastodon's heartbeat).
    Comment(&'a [u8]),
    /// An event over the size limit, dropped whole; `event` is its type as far as it was seen.
    Oversize {
        /// The event type, if the stream named it before the limit was hit.
        event: &'a [u8],
    },
}

/// Incremental event-stream parser; one per stream, reused across chunks and reconnects.
#[derive(Debug, Clone)]
pub struct SseParser {
    max_event_bytes: usize,
    /// A line cut by a chunk boundary (bounded by `max_event_bytes + LINE_SLACK`).
    line: Vec<u8>,
    /// The current line went over the bound: discard to its end.
    line_overflow: bool,
    /// The last chunk ended in CR: an LF opening the next one belongs to that line end.
    after_cr: bool,
    /// No line has been processed yet on this connection (a BOM may open it).
    at_stream_start: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    oversize: bool,
    last_event_id: Vec<u8>,
    retry: Option<Duration>,
}

impl SseParser {
    /// A parser dropping events whose data exceeds `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            line: Vec::new(),
            line_overflow: false,
            after_cr: false,
            at_stream_start: true,
            event: Vec::new(),
            data: Vec::new(),
            oversize: false,
            last_event_id: Vec::new(),
            retry: None,
        }
    }

    /// The last event id the stream set (empty when none): sent as `Last-Event-ID` on
    /// reconnect.
    pub fn last_event_id(&self) -> &[u8] {
        &self.last_event_id
    }

    /// The reconnection time the stream asked for with `retry:`, if any.
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// Ends the stream: discards a partial line and an undispatched event; keeps the last event
    /// id and the reconnection time for the next connection.
    pub fn end_of_stream(&mut self) {
        self.line.clear();
        self.line_overflow = false;
        self.after_cr = false;
        self.at_stream_start = true;
        self.event.clear();
        self.data.clear();
        self.oversize = false;
    }

    fn max_line(&self) -> usize {
        self.max_event_bytes.saturating_add(LINE_SLACK)
    }

    /// Feeds one chunk, calling `on` for each event, comment and oversize event completed in
    /// it; stops at `on`'s first error.
    pub fn feed<E>(
        &mut self,
        mut chunk: &[u8],
        on: &mut impl FnMut(SseItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                chunk = &chunk[1..];
            }
        }
        while !chunk.is_empty() {
            let Some(i) = memchr2(b'\r', b'\n', chunk) else {
                if !self.line_overflow {
                    if self.line.len() + chunk.len() > self.max_line() {
                        self.overflow_line(chunk);
                        self.line_overflow = true;
                    } else {
                        self.line.extend_from_slice(chunk);
                    }
                }
                return Ok(());
            };
            let part = &chunk[..i];
            let mut next = i + 1;
            if chunk[i] == b'\r' {
                if next < chunk.len() {
                    if chunk[next] == b'\n' {
                        next += 1;
                    }
                } else {
                    self.after_cr = true;
                }
            }
            chunk = &chunk[next..];
            if self.line_overflow {
                self.line_overflow = false;
            } else if self.line.is_empty() {
                if part.len() > self.max_line() {
                    self.overflow_line(part);
                } else {
                    self.process_line(part, on)?;
                }
            } else if self.line.len() + part.len() > self.max_line() {
                self.overflow_line(part);
            } else {
                self.line.extend_from_slice(part);
                let line = std::mem::take(&mut self.line);
                let result = self.process_line(&line, on);
                self.line = line;
                self.line.clear();
                result?;
            }
        }
        Ok(())
    }

    /// The line being assembled went over the bound: a comment is simply dropped, any other
    /// line drops the event it belongs to.
    fn overflow_line(&mut self, tail: &[u8]) {
        let first = self.line.first().or(tail.first()).copied();
        if first != Some(b':') {
            self.oversize = true;
            self.data.clear();
        }
        self.line.clear();
        self.at_stream_start = false;
    }

    fn process_line<E>(
        &mut self,
        line: &[u8],
        on: &mut impl FnMut(SseItem<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut line = line;
        if self.at_stream_start {
            self.at_stream_start = false;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch(on);
        }
        if line[0] == b':' {
            return on(SseItem::Comment(&line[1..]));
        }
        let (name, value) = match memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => {
                self.event.clear();
                self.event.extend_from_slice(value);
            }
            b"data" if !self.oversize => {
                if self.data.len() + value.len() > self.max_event_bytes {
                    self.oversize = true;
                    self.data.clear();
                } else {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                }
            }
            b"id" if memchr(0, value).is_none() => {
                self.last_event_id.clear();
                self.last_event_id.extend_from_slice(value);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |n, d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.retry = Some(Duration::from_millis(ms));
            }
            // Unknown fields, and the cases above whose condition fails, are ignored.
            _ => {}
        }
        Ok(())
    }

    fn dispatch<E>(&mut self, on: &mut impl FnMut(SseItem<'_>) -> Result<(), E>) -> Result<(), E> {
        if self.oversize {
            self.oversize = false;
            self.data.clear();
            let result = on(SseItem::Oversize { event: &self.event });
            self.event.clear();
            return result;
        }
        if self.data.is_empty() {
            self.event.clear();
            return Ok(());
        }
        self.data.pop();
        let event: &[u8] = if self.event.is_empty() {
            b"message"
        } else {
            &self.event
        };
        let result = on(SseItem::Event(SseEvent {
            event,
            data: &self.data,
            id: &self.last_event_id,
        }));
        self.event.clear();
        self.data.clear();
        result
    }
}

/// Settings of an SSE source (`[[source]] kind = "sse"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SseOptions {
    /// The stream, e.g. `https://mastodon.social/api/v1/streaming/public`.
    pub url: String,
    /// The name of an environment variable holding a bearer token (read at start).
    #[serde(default)]
    pub bearer_token_env: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Largest event data handed on; a bigger event is counted Oversize. 1 MiB: a Mastodon
    /// status is a few KiB, so only a broken or hostile stream reaches it.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Reconnect when nothing at all (heartbeats included) arrives for this long. 60 s:
    /// Mastodon sends a `:thump` heartbeat every 15 s or so.
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
    Duration::from_secs(60)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SseOptions {
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
            "sse",
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
    /// flushing the partial batch. Errors: bad options (before connecting), a closed channel.
    pub async fn run(
        self,
        mut emitter: Emitter,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        let spec = self.spec()?;
        let mut body = SseBody {
            parser: SseParser::new(self.max_frame_bytes),
        };
        http_client::run_stream(spec, &mut body, &mut emitter, &mut shutdown).await
    }
}

struct SseBody {
    parser: SseParser,
}

impl BodyParser for SseBody {
    fn feed(&mut self, chunk: &[u8], emitter: &mut Emitter) -> Result<u64, SourceError> {
        let mut frames = 0u64;
        self.parser.feed(chunk, &mut |item| {
            match item {
                SseItem::Event(ev) => {
                    frames += 1;
                    let deleted_id = (ev.event == b"delete")
                        .then(|| ev.data.trim_ascii())
                        .filter(|id| {
                            !id.is_empty() && id.len() <= 64 && id.iter().all(u8::is_ascii_digit)
                        });
                    match (mastodon_event_skip(ev.event), deleted_id) {
                        (None, _) => emitter.push(ev.data, None)?,
                        // A delete goes on to the decoder in the streaming API's websocket
                        // form, so a routed status that was deleted can be retracted.
                        (Some(_), Some(id)) => {
                            let mut frame = Vec::with_capacity(id.len() + 40);
                            frame.extend_from_slice(br#"{"event":"delete","payload":""#);
                            frame.extend_from_slice(id);
                            frame.extend_from_slice(br#""}"#);
                            emitter.push(&frame, None)?;
                        }
                        (Some(reason), None) => emitter.skip_len(reason, ev.data.len()),
                    }
                }
                SseItem::Oversize { .. } => {
                    frames += 1;
                    emitter.skip(SkipReason::Oversize);
                }
                SseItem::Comment(text) => {
                    tracing::trace!(source = emitter.source(), len = text.len(), "sse comment");
                }
            }
            Ok::<(), SourceError>(())
        })?;
        Ok(frames)
    }

    fn end(&mut self, _emitter: &mut Emitter) -> Result<u64, SourceError> {
        self.parser.end_of_stream();
        Ok(0)
    }

    fn accept(&self, response: &reqwest::Response) -> Result<(), String> {
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match content_type {
            Some(ct)
                if ct
                    .trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream") =>
            {
                Ok(())
            }
            other => Err(format!("content type {other:?} is not text/event-stream")),
        }
    }

    fn add_headers(&self, headers: &mut HeaderMap) {
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        let id = self.parser.last_event_id();
        if !id.is_empty() {
            if let Ok(value) = HeaderValue::from_bytes(id) {
                headers.insert("last-event-id", value);
            }
        }
    }

    fn min_reconnect_delay(&self) -> Duration {
        self.parser.retry().unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tokio::net::TcpListener;

    use super::*;
    use crate::source::testutil::{self, header, read_request_head, write_body_in_chunks};

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Got {
        Ev {
            event: String,
            data: String,
            id: String,
        },
        Comment(String),
        Big,
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    fn parse(max: usize, chunks: &[&[u8]]) -> (Vec<Got>, SseParser) {
        let mut p = SseParser::new(max);
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut |item| {
                out.push(match item {
                    SseItem::Event(e) => Got::Ev {
                        event: text(e.event),
                        data: text(e.data),
                        id: text(e.id),
                    },
                    SseItem::Comment(c) => Got::Comment(text(c)),
                    SseItem::Oversize { .. } => Got::Big,
                });
                Ok::<(), ()>(())
            })
            .expect("no error");
        }
        (out, p)
    }

    /// Whole, byte by byte, and cut in two at every position: always the same items.
    fn parse_all_ways(max: usize, input: &[u8]) -> Vec<Got> {
        let (whole, _) = parse(max, &[input]);
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            parse(max, &bytes).0,
            whole,
            "byte by byte: {:?}",
            text(input)
        );
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(
                parse(max, &[a, b]).0,
                whole,
                "split at {i}: {:?}",
                text(input)
            );
        }
        whole
    }

    fn ev(event: &str, data: &str, id: &str) -> Got {
        Got::Ev {
            event: event.into(),
            data: data.into(),
            id: id.into(),
        }
    }

    #[test]
    fn spec_table() {
        let long_comment = format!(":{}\ndata: ok\n\n", "c".repeat(200));
        let cases: Vec<(&str, usize, &[u8], Vec<Got>)> = vec![
            (
                "one data line",
                64,
                b"data: a\n\n",
                vec![ev("message", "a", "")],
            ),
            (
                "lines joined by LF",
                64,
                b"data:a\ndata: b\n\n",
                vec![ev("message", "a\nb", "")],
            ),
            (
                "one space stripped",
                64,
                b"data:  two\n\n",
                vec![ev("message", " two", "")],
            ),
            (
                "named event",
                64,
                b"event: update\ndata: {}\n\n",
                vec![ev("update", "{}", "")],
            ),
            (
                "field without colon",
                64,
                b"event: x\ndata\n\n",
                vec![ev("x", "", "")],
            ),
            (
                "no data, no dispatch",
                64,
                b"event: x\n\ndata: y\n\n",
                vec![ev("message", "y", "")],
            ),
            (
                "comment",
                64,
                b":thump\n",
                vec![Got::Comment("thump".into())],
            ),
            (
                "CR, LF, CRLF",
                64,
                b"data: a\r\rdata: b\r\n\r\ndata: c\n\n",
                vec![
                    ev("message", "a", ""),
                    ev("message", "b", ""),
                    ev("message", "c", ""),
                ],
            ),
            (
                "id persists",
                64,
                b"id: 7\ndata: a\n\ndata: b\n\n",
                vec![ev("message", "a", "7"), ev("message", "b", "7")],
            ),
            (
                "id with NUL ignored",
                64,
                b"id: a\0b\ndata: x\n\n",
                vec![ev("message", "x", "")],
            ),
            (
                "BOM dropped",
                64,
                b"\xEF\xBB\xBFdata: bom\n\n",
                vec![ev("message", "bom", "")],
            ),
            (
                "BOM only at start",
                64,
                b"data: x\n\n\xEF\xBB\xBFdata: y\n\n",
                vec![ev("message", "x", "")],
            ),
            ("unterminated event dropped", 64, b"data: never", vec![]),
            (
                "unknown and upper-case fields ignored",
                64,
                b"foo: 1\nDATA: 2\n\n",
                vec![],
            ),
            (
                "oversize single line",
                8,
                b"data: 123456789\n\ndata: ok\n\n",
                vec![Got::Big, ev("message", "ok", "")],
            ),
            (
                "oversize across lines",
                8,
                b"data: 12345\ndata: 6789\n\n",
                vec![Got::Big],
            ),
            (
                "exactly the limit",
                8,
                b"data: 123\ndata: 4567\n\n",
                vec![ev("message", "123\n4567", "")],
            ),
            (
                "long comment dropped, event kept",
                8,
                long_comment.as_bytes(),
                vec![ev("message", "ok", "")],
            ),
        ];
        for (name, max, input, want) in cases {
            assert_eq!(parse_all_ways(max, input), want, "{name}");
        }
    }

    #[test]
    fn retry_and_end_of_stream() {
        let (_, p) = parse(64, &[b"retry: 1500\nretry: 1.5\nid: 42\ndata: partial"]);
        assert_eq!(p.retry(), Some(Duration::from_millis(1500)));
        let mut p = p;
        p.end_of_stream();
        assert_eq!(p.last_event_id(), b"42", "id survives a reconnect");
        let mut got = Vec::new();
        p.feed(b"data: fresh\n\n", &mut |i| {
            if let SseItem::Event(e) = i {
                got.push(text(e.data));
            }
            Ok::<(), ()>(())
        })
        .expect("ok");
        assert_eq!(
            got,
            vec!["fresh".to_owned()],
            "the partial event was discarded"
        );
    }

    fn tally(items: &[Got]) -> (BTreeMap<String, usize>, usize) {
        let mut by_type = BTreeMap::new();
        let mut heartbeats = 0;
        for item in items {
            match item {
                Got::Ev { event, .. } => *by_type.entry(event.clone()).or_insert(0) += 1,
                Got::Comment(c) if c == "thump" => heartbeats += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        (by_type, heartbeats)
    }

    #[test]
    fn mastodon_fixture_in_every_chunking() {
        let input = testutil::fixture_bytes("mastodon-stream.sse");
        let (whole, _) = parse(1 << 20, &[&input]);
        let (by_type, heartbeats) = tally(&whole);
        let want: BTreeMap<String, usize> = [
            ("update", 4),
            ("status.update", 4),
            ("delete", 3),
            ("notification", 1),
            ("filters_changed", 1),
            ("announcement", 1),
            ("announcement.reaction", 1),
            ("announcement.delete", 1),
            ("conversation", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        assert_eq!(by_type, want);
        assert_eq!(heartbeats, 1);
        for item in &whole {
            if let Got::Ev { event, data, .. } = item {
                if event == "update" {
                    let v: serde_json::Value = serde_json::from_str(data).expect("update is JSON");
                    assert!(
                        v.is_object() && v.get("id").is_some(),
                        "update is a status object"
                    );
                }
            }
        }
        // Fixed chunk sizes, including 1 (a cut at every byte) ...
        for size in (1..=64).chain([97, 1000, 4096]) {
            let chunks: Vec<&[u8]> = input.chunks(size).collect();
            assert_eq!(parse(1 << 20, &chunks).0, whole, "chunks of {size}");
        }
        // ... every two-piece cut, and the same stream with CRLF and CR line ends.
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(parse(1 << 20, &[a, b]).0, whole, "cut at {i}");
        }
        for eol in [&b"\r\n"[..], b"\r"] {
            let mut converted = Vec::new();
            for line in input.split(|&b| b == b'\n') {
                converted.extend_from_slice(line);
                converted.extend_from_slice(eol);
            }
            for size in [1, 2, 3, 7, 64] {
                let chunks: Vec<&[u8]> = converted.chunks(size).collect();
                assert_eq!(
                    parse(1 << 20, &chunks).0,
                    whole,
                    "{eol:?} in chunks of {size}"
                );
            }
        }
    }

    #[test]
    fn classify_table() {
        let cases: &[(&[u8], Option<SkipReason>)] = &[
            (b"update", None),
            (b"delete", Some(SkipReason::Delete)),
            (b"status.update", Some(SkipReason::Update)),
            (b"filters_changed", Some(SkipReason::StreamError)),
            (b"notification", Some(SkipReason::OtherEvent)),
            (b"message", Some(SkipReason::OtherEvent)),
        ];
        for (event, want) in cases {
            assert_eq!(mastodon_event_skip(event), *want, "{}", text(event));
        }
    }

    #[test]
    fn options_parse_and_validate() {
        let o: SseOptions = toml::from_str(
            "url = \"https://mastodon.social/api/v1/streaming/public\"\nstall_timeout = \"90s\"",
        )
        .expect("parses");
        assert_eq!(o.stall_timeout, Duration::from_secs(90));
        assert_eq!(o.max_frame_bytes, 1 << 20);
        assert!(toml::from_str::<SseOptions>("url = \"http://x\"\nstal_timeout = \"1s\"").is_err());
        assert!(
            toml::from_str::<SseOptions>("stall_timeout = \"1s\"").is_err(),
            "url required"
        );
        let mut bad = SseOptions::new("ws://x");
        assert_eq!(bad.spec().expect_err("scheme").reason(), "bad_url");
        bad.url = "http://x".into();
        bad.max_frame_bytes = 0;
        assert_eq!(bad.spec().expect_err("zero").reason(), "invalid_option");
    }

    /// A Mastodon-like server: a wrong content type first (an HTTP error to back off from),
    /// then the fixture stream, cut into odd chunks, held open.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn source_reads_mastodon_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (heads_tx, mut heads_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            heads_tx
                .send(read_request_head(&mut s).await)
                .expect("report");
            testutil::write_chunked_head(&mut s, "application/json").await;
            drop(s);
            let (mut s, _) = listener.accept().await.expect("accept");
            heads_tx
                .send(read_request_head(&mut s).await)
                .expect("report");
            testutil::write_chunked_head(&mut s, "text/event-stream; charset=utf-8").await;
            let body = testutil::fixture_bytes("mastodon-stream.sse");
            write_body_in_chunks(&mut s, &body, &[5, 300, 1, 2000, 77]).await;
            std::future::pending::<()>().await;
        });
        std::env::set_var("EARSHOT_TEST_SSE_TOKEN", "masto-token");
        let mut options = SseOptions::new(format!("http://{addr}/api/v1/streaming/public"));
        options.bearer_token_env = Some("EARSHOT_TEST_SSE_TOKEN".into());
        options.backoff.http_base = Duration::from_millis(10);
        let (emitter, rx, stats) = testutil::emitter(64, 3);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(options.run(emitter, shutdown));

        // Four statuses, and the three deletes in the websocket form the decoder reads.
        let (frames, _) = testutil::recv_frames(&rx, 7).await;
        let mut deletes = 0;
        for f in &frames {
            let v: serde_json::Value = serde_json::from_slice(f).expect("JSON");
            if v["event"] == "delete" {
                deletes += 1;
                assert!(v["payload"].as_str().is_some_and(|id| !id.is_empty()));
            } else {
                assert!(v.get("content").is_some());
            }
        }
        assert_eq!(deletes, 3);
        testutil::wait_until("all 17 events counted", || stats.frames() == 17).await;
        trigger.trigger();
        let result = tokio::time::timeout(testutil::TEST_TIMEOUT, source).await;
        result
            .expect("stops")
            .expect("no panic")
            .expect("Ok on shutdown");
        server.abort();

        let want = [
            (SkipReason::Delete, 0),
            (SkipReason::Update, 4),
            (SkipReason::StreamError, 1),
            (SkipReason::OtherEvent, 5),
        ];
        for (reason, n) in want {
            assert_eq!(stats.skipped(reason), n, "{}", reason.as_str());
        }
        assert_eq!(stats.skip_counts().total(), 10);
        assert_eq!(
            stats.connects.load(Ordering::Relaxed),
            1,
            "the JSON response is no stream"
        );
        assert_eq!(stats.reconnects.load(Ordering::Relaxed), 1);
        for _ in 0..2 {
            let head = heads_rx.recv().await.expect("request head");
            assert_eq!(header(&head, "authorization"), Some("Bearer masto-token"));
            assert_eq!(header(&head, "accept"), Some("text/event-stream"));
            assert!(
                head.starts_with("GET /api/v1/streaming/public HTTP/1.1"),
                "{head}"
            );
        }
    }
}
