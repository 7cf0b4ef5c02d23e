//! Bluesky Jetstream over a websocket, resumable by cursor.
//!
//! Input → output: Jetstream text messages (one JSON event each) → frames, each batch carrying
//! [`Position::Cursor`]: the newest `time_us` handed on so far, for checkpoints.
//!
//! Connection: `ws://` or `wss://` (rustls, the process's one trust store: [`crate::tls`]), query parameters
//! `wantedCollections` (repeated), `cursor` and `compress` built with the `url` crate.
//!
//! Compression: with `compress = true` (the default) the source asks for `compress=true`, and
//! a Jetstream that supports it sends each event as a binary message, one zstd frame made with
//! Jetstream's published dictionary (dictionary id 1612007021, built in here): about half the
//! bytes of the JSON (`benches/NOTES.md`). Each is decompressed into one reused buffer of
//! `max_frame_bytes`: a frame whose header declares more is counted Oversize without being
//! decompressed, and one that does not decompress within the buffer (damaged, made with another
//! dictionary, larger than it said) is counted [`SkipReason::Compression`]. A server that does
//! not compress sends text, which is read as always. Without `compress`, a binary message is
//! handed on like any other frame and decode names what is wrong with it.
//!
//! Instances: `url` and `fallback_urls` list Jetstream instances to use in turn. A connection
//! that fails or is lost goes on at the next instance (after the usual backoff), from the same
//! cursor: `time_us` cursors are relay timestamps that every instance of one relay shares, and
//! the overlap and the recent-frame set absorb the small differences between instances. With
//! the default `url` the public instances are the fallbacks.
//!
//! A ping is sent every `ping_interval`; a connection that delivers
//! nothing at all (no message, no pong) for two intervals is dropped. Pongs to the server's
//! pings are queued by tungstenite when it reads the ping and flushed at once here. Every
//! failure reconnects, forever until shutdown, after capped exponential backoff with full
//! jitter ([`JitteredBackoff`]), reset once a connection has delivered frames.
//!
//! Resume: the `time_us` of each frame is found in its text (`"time_us":` then digits, with
//! `memchr::memmem`; the JSON is not parsed here). A reconnect asks for
//! `cursor = newest time_us − resume_overlap`: the overlap covers events that the relay
//! delivered out of time order (its `time_us` steps back by up to a few tens of ms) and the
//! moments around the cut. The frames it repeats are dropped by the
//! [`RecentFrames`] set of the last `resume_overlap` of frames (64-bit hashes, bounded by
//! `dedup_capacity`) and counted [`SkipReason::Duplicate`]. The first connection uses the
//! configured `cursor` as given (a checkpoint should be passed with an overlap of its own
//! subtracted), or none: live.
//!
//! Size limit: a message over `max_frame_bytes` is read, counted [`SkipReason::Oversize`] and
//! dropped without disturbing the connection, as long as it is within
//! [`LIBRARY_LIMIT_FACTOR`] × `max_frame_bytes`; tungstenite's `max_message_size` and
//! `max_frame_size` are set to that, so anything larger is refused by the library before its
//! payload is buffered. A refused message breaks the connection: it is counted Oversize and
//! the source reconnects with the usual cursor. The replay brings the same message back, so a
//! second refusal with no new frame in between is not counted again, and the next connection
//! goes live (no cursor) to get past it; that skip is logged at warn with the cursor it gave
//! up. (A refusal after new frames arrived in between counts again.)

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderValue, USER_AGENT};
use memchr::memmem;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use super::backoff::{ExponentialBackoff, JitteredBackoff};
use super::batch::Position;
use super::dedup::RecentFrames;
use super::emit::Emitter;
use super::error::SourceError;
use super::http_client::{nonzero, parse_url, USER_AGENT_VALUE};
use crate::shutdown::Shutdown;
use crate::skip::SkipReason;

/// tungstenite refuses messages over this many times `max_frame_bytes`; smaller oversize
/// messages are read and skipped in place. 4×: a few MiB at most held once, and a margin
/// wide enough that in practice every oversize message is skipped without a reconnect.
pub const LIBRARY_LIMIT_FACTOR: usize = 4;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Settings of a Jetstream source (`[[source]] kind = "jetstream"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JetstreamOptions {
    /// The subscribe endpoint.
    pub url: String,
    /// Instances to go on at when `url`'s connection fails or is lost, in order (then `url`
    /// again). Unset: the other public instances when `url` is the default one, else none.
    pub fallback_urls: Option<Vec<String>>,
    /// Ask for zstd-compressed events (`compress=true`).
    pub compress: bool,
    /// Collections to receive (`wantedCollections`); empty means all.
    pub wanted_collections: Vec<String>,
    /// Where the first connection starts (`time_us`); none means live.
    pub cursor: Option<u64>,
    /// Largest message handed on. 1 MiB: a post event is about 1 KiB; atproto records are
    /// limited well below this.
    pub max_frame_bytes: usize,
    /// How often to ping; a connection silent for two intervals is dropped.
    #[serde(with = "crate::duration")]
    pub ping_interval: Duration,
    /// How far before the newest `time_us` a reconnect resumes (see the module docs).
    #[serde(with = "crate::duration")]
    pub resume_overlap: Duration,
    /// How long the TCP + TLS + websocket handshake may take.
    #[serde(with = "crate::duration")]
    pub connect_timeout: Duration,
    /// Most frame hashes kept for dropping replayed frames (about 32 bytes each).
    pub dedup_capacity: usize,
    /// Reconnect delays.
    pub backoff: ExponentialBackoff,
}

impl Default for JetstreamOptions {
    fn default() -> Self {
        Self {
            url: DEFAULT_URL.into(),
            fallback_urls: None,
            compress: true,
            wanted_collections: vec!["app.bsky.feed.post".into()],
            cursor: None,
            max_frame_bytes: 1 << 20,
            ping_interval: Duration::from_secs(30),
            resume_overlap: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            dedup_capacity: 1 << 20,
            backoff: ExponentialBackoff::default(),
        }
    }
}

/// The default instance.
pub const DEFAULT_URL: &str = "wss://jetstream2.us-east.bsky.network/subscribe";

/// The public instances besides [`DEFAULT_URL`]: the fallbacks of a source left at the default.
pub const PUBLIC_FALLBACKS: [&str; 3] = [
    "wss://jetstream1.us-east.bsky.network/subscribe",
    "wss://jetstream1.us-west.bsky.network/subscribe",
    "wss://jetstream2.us-west.bsky.network/subscribe",
];

/// Jetstream's zstd dictionary for `compress=true` (the `/subscribe` endpoint's), as the
/// Jetstream repository publishes it.
pub const ZSTD_DICTIONARY: &[u8] = include_bytes!("jetstream-zstd.zdict");

/// The `time_us` of a Jetstream event, read from its text: the first `"time_us":` followed by
/// optional spaces and digits. Jetstream writes it at the top level before the record, so the
/// first occurrence is the event's own.
pub fn time_us(finder: &memmem::Finder<'_>, frame: &[u8]) -> Option<u64> {
    let start = finder.find(frame)? + finder.needle().len();
    let rest = frame[start..].trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 20 {
        return None;
    }
    rest[..digits].iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

impl JetstreamOptions {
    /// The URL of a connection to `url` starting at `cursor` (none: live). Parameters already
    /// in the configured URL are kept, except `wantedCollections`, `cursor` and `compress`,
    /// which the options own.
    pub fn connect_url(&self, cursor: Option<u64>) -> Result<Url, SourceError> {
        self.connect_url_at(&self.url, cursor)
    }

    /// [`JetstreamOptions::connect_url`] for instance `base`.
    pub fn connect_url_at(&self, base: &str, cursor: Option<u64>) -> Result<Url, SourceError> {
        let mut url = parse_url(base, &["ws", "wss"])?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "wantedCollections" && k != "cursor" && k != "compress")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.set_query(None);
        let any = !kept.is_empty()
            || !self.wanted_collections.is_empty()
            || cursor.is_some()
            || self.compress;
        if any {
            let mut query = url.query_pairs_mut();
            query.extend_pairs(kept);
            for c in &self.wanted_collections {
                query.append_pair("wantedCollections", c);
            }
            if let Some(cursor) = cursor {
                query.append_pair("cursor", &cursor.to_string());
            }
            if self.compress {
                query.append_pair("compress", "true");
            }
        }
        Ok(url)
    }

    /// The instances, in the order they are tried: `url`, then its fallbacks.
    pub fn instances(&self) -> Vec<&str> {
        let mut out = vec![self.url.as_str()];
        match &self.fallback_urls {
            Some(list) => out.extend(list.iter().map(String::as_str)),
            None if self.url == DEFAULT_URL => out.extend(PUBLIC_FALLBACKS),
            None => {}
        }
        out
    }

    fn validate(&self) -> Result<(), SourceError> {
        nonzero("max_frame_bytes", self.max_frame_bytes as u128)?;
        nonzero("ping_interval", self.ping_interval.as_nanos())?;
        nonzero("connect_timeout", self.connect_timeout.as_nanos())?;
        nonzero("dedup_capacity", self.dedup_capacity as u128)?;
        for base in self.instances() {
            let url = self.connect_url_at(base, self.cursor)?;
            url.as_str()
                .into_client_request()
                .map_err(|e| SourceError::bad_url(base, e.to_string()))?;
        }
        Ok(())
    }

    /// Reads Jetstream until shutdown, reconnecting forever; returns `Ok` on shutdown after
    /// flushing the partial batch. Errors: bad options (before connecting), a closed channel.
    pub async fn run(
        self,
        mut emitter: Emitter,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        self.validate()?;
        crate::tls::ensure_crypto_provider();
        let limit = self.max_frame_bytes.saturating_mul(LIBRARY_LIMIT_FACTOR);
        let config = WebSocketConfig::default()
            .max_message_size(Some(limit))
            .max_frame_size(Some(limit));
        let mut state = Resume {
            finder: memmem::Finder::new(b"\"time_us\":"),
            recent: RecentFrames::new(self.dedup_capacity, self.resume_overlap),
            overlap_us: u64::try_from(self.resume_overlap.as_micros()).unwrap_or(u64::MAX),
            newest_us: None,
            refusals_without_progress: 0,
            max_frame_bytes: self.max_frame_bytes,
            decompressor: if self.compress {
                Some(
                    zstd::bulk::Decompressor::with_dictionary(ZSTD_DICTIONARY)
                        .map_err(|e| SourceError::bad_url(&self.url, format!("zstd: {e}")))?,
                )
            } else {
                None
            },
            inflated: Vec::new(),
        };
        let instances = self.instances();
        let mut at = 0usize;
        let mut backoff = JitteredBackoff::new(self.backoff, fastrand::Rng::new());
        let source = emitter.source();
        loop {
            if shutdown.is_shutdown() {
                break;
            }
            let cursor = state.cursor(self.cursor);
            let url = self.connect_url_at(instances[at % instances.len()], cursor)?;
            let mut request = url
                .as_str()
                .into_client_request()
                .map_err(|e| SourceError::bad_url(url.as_str(), e.to_string()))?;
            request
                .headers_mut()
                .insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
            let connecting = tokio_tungstenite::connect_async_tls_with_config(
                request,
                Some(config),
                true,
                Some(tokio_tungstenite::Connector::Rustls(
                    crate::tls::client_config(),
                )),
            );
            let connected = tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                r = tokio::time::timeout(self.connect_timeout, connecting) => r,
            };
            let mut delivered = false;
            match connected {
                Err(_) => {
                    tracing::warn!(source, url = %crate::redact::url(&url), "jetstream connect timed out")
                }
                Ok(Err(error)) => {
                    tracing::warn!(source, url = %crate::redact::url(&url), %error, "jetstream connect failed")
                }
                Ok(Ok((ws, _response))) => {
                    emitter.stats().record_connect();
                    tracing::info!(source, url = %crate::redact::url(&url), cursor, "jetstream connected");
                    match self
                        .session(ws, &mut state, &mut emitter, &mut shutdown)
                        .await?
                    {
                        End::Shutdown => break,
                        End::Lost { delivered: d, why } => {
                            delivered = d;
                            tracing::warn!(source, url = %crate::redact::url(&url), why = %why, "jetstream connection lost");
                        }
                    }
                }
            }
            emitter.stats().record_reconnect();
            emitter.flush().await?;
            if delivered {
                backoff.reset();
            }
            if instances.len() > 1 {
                at = (at + 1) % instances.len();
                tracing::info!(source, next = %crate::redact::text(instances[at]), "jetstream going on at the next instance");
            }
            if state.refusals_without_progress == 2 {
                tracing::warn!(
                    source,
                    given_up_cursor = state.newest_us.map(|n| n.saturating_sub(state.overlap_us)),
                    "a message over the size limit keeps coming back; resuming live past it"
                );
            }
            let delay = backoff.next_delay();
            tracing::info!(
                source,
                delay_ms = delay.as_millis() as u64,
                "jetstream reconnecting"
            );
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                _ = tokio::time::sleep(delay) => {}
            }
        }
        emitter.stats().record_disconnect();
        tracing::info!(
            source,
            newest_time_us = state.newest_us,
            "jetstream stopped"
        );
        emitter.flush().await
    }

    async fn session(
        &self,
        mut ws: Ws,
        state: &mut Resume,
        emitter: &mut Emitter,
        shutdown: &mut Shutdown,
    ) -> Result<End, SourceError> {
        let ping = self.ping_interval;
        let start = Instant::now();
        let (mut last_rx, mut last_ping) = (start, start);
        let keepalive = tokio::time::sleep_until(start + ping);
        let mut keepalive = std::pin::pin!(keepalive);
        let mut delivered = false;
        let lost = |delivered: bool, why: String| Ok(End::Lost { delivered, why });
        loop {
            tokio::select! {
                biased;
                _ = shutdown.recv() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    return Ok(End::Shutdown);
                }
                _ = emitter.linger() => emitter.flush().await?,
                msg = ws.next() => {
                    match msg {
                        Some(Ok(Message::Text(text))) => {
                            state.on_text(text.as_bytes(), emitter)?;
                            delivered = true;
                        }
                        Some(Ok(Message::Binary(bytes))) => {
                            // Jetstream sends binary (zstd) only when asked with
                            // `compress=true`; without it a binary message is a malformed
                            // frame, and decode names what is wrong with it like any other.
                            state.on_binary(&bytes, emitter)?;
                            delivered = true;
                        }
                        Some(Ok(Message::Ping(_))) => {
                            if let Err(e) = ws.flush().await {
                                return lost(delivered, format!("answering a ping failed: {e}"));
                            }
                        }
                        Some(Ok(Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame.map_or_else(
                                || "closed by the server".to_owned(),
                                |f| format!("closed by the server: {} {}", f.code, f.reason),
                            );
                            return lost(delivered, why);
                        }
                        Some(Err(WsError::Capacity(e))) => {
                            state.on_refused(emitter);
                            return lost(delivered, format!("message refused: {e}"));
                        }
                        Some(Err(WsError::Utf8(e))) => {
                            emitter.skip(SkipReason::InvalidUtf8);
                            return lost(delivered, format!("text message not UTF-8: {e}"));
                        }
                        Some(Err(e)) => return lost(delivered, e.to_string()),
                        None => return lost(delivered, "stream ended".into()),
                    }
                    // After the frame is handed on: time blocked on backpressure is not a
                    // silence of the server.
                    last_rx = Instant::now();
                }
                _ = &mut keepalive => {
                    let now = Instant::now();
                    if now >= last_rx + 2 * ping {
                        let why = format!("nothing received for {} ms", (now - last_rx).as_millis());
                        return lost(delivered, why);
                    }
                    if now >= last_ping + ping {
                        let sent = tokio::time::timeout(ping, ws.send(Message::Ping(Default::default())));
                        match sent.await {
                            Ok(Ok(())) => last_ping = now,
                            Ok(Err(e)) => return lost(delivered, format!("ping failed: {e}")),
                            Err(_) => return lost(delivered, "ping could not be sent".into()),
                        }
                    }
                    keepalive.as_mut().reset((last_ping + ping).min(last_rx + 2 * ping));
                }
            }
        }
    }
}

/// How a connection ended.
enum End {
    Shutdown,
    Lost { delivered: bool, why: String },
}

/// What survives reconnects: the resume point, the recent frames, the refusal streak.
struct Resume {
    finder: memmem::Finder<'static>,
    recent: RecentFrames,
    overlap_us: u64,
    /// Newest `time_us` of the frames seen.
    newest_us: Option<u64>,
    /// Library refusals since the last new frame.
    refusals_without_progress: u32,
    max_frame_bytes: usize,
    /// Jetstream's dictionary, ready, when compression was asked for.
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
    /// Where each compressed message is decompressed (capacity `max_frame_bytes`, reused).
    inflated: Vec<u8>,
}

impl Resume {
    /// The cursor of the next connection.
    fn cursor(&self, configured: Option<u64>) -> Option<u64> {
        if self.refusals_without_progress >= 2 {
            return None;
        }
        match self.newest_us {
            Some(newest) => Some(newest.saturating_sub(self.overlap_us)),
            None => configured,
        }
    }

    fn on_text(&mut self, frame: &[u8], emitter: &mut Emitter) -> Result<(), SourceError> {
        let time = time_us(&self.finder, frame);
        if self.replayed(frame, time) {
            emitter.skip_len(SkipReason::Duplicate, frame.len());
            return Ok(());
        }
        if frame.len() > self.max_frame_bytes {
            emitter.skip_len(SkipReason::Oversize, frame.len());
            return Ok(());
        }
        emitter.push(frame, self.newest_us.map(Position::Cursor))
    }

    /// Whether `frame` (with its `time_us`, when known) was handed on already: a replay after
    /// a reconnect. A new one moves the resume point and ends a refusal streak.
    fn replayed(&mut self, frame: &[u8], time: Option<u64>) -> bool {
        let newest = match (self.newest_us, time) {
            (Some(n), Some(t)) => Some(n.max(t)),
            (n, t) => n.or(t),
        };
        let hash = self.recent.hash(frame);
        let stamp = time.or(newest).unwrap_or(0);
        if !self.recent.insert(hash, stamp, newest.unwrap_or(0)) {
            return true;
        }
        self.newest_us = newest;
        self.refusals_without_progress = 0;
        false
    }

    /// A binary message: a zstd frame to decompress when compression was asked for (see the
    /// module docs), else a frame as it is.
    fn on_binary(&mut self, bytes: &[u8], emitter: &mut Emitter) -> Result<(), SourceError> {
        let Some(decompressor) = self.decompressor.as_mut() else {
            return self.on_text(bytes, emitter);
        };
        let declared = zstd::zstd_safe::get_frame_content_size(bytes)
            .ok()
            .flatten();
        if declared.is_some_and(|n| n > self.max_frame_bytes as u64) {
            // Not decompressed; a replay of it is known by its compressed bytes, which the
            // same server makes the same.
            let skip = if self.replayed(bytes, None) {
                SkipReason::Duplicate
            } else {
                SkipReason::Oversize
            };
            emitter.skip_len(skip, bytes.len());
            return Ok(());
        }
        let mut inflated = std::mem::take(&mut self.inflated);
        inflated.clear();
        inflated.reserve_exact(self.max_frame_bytes);
        let result = match decompressor.decompress_to_buffer(bytes, &mut inflated) {
            Ok(_) => self.on_text(&inflated, emitter),
            Err(_) => {
                emitter.skip_len(SkipReason::Compression, bytes.len());
                Ok(())
            }
        };
        self.inflated = inflated;
        result
    }

    fn on_refused(&mut self, emitter: &mut Emitter) {
        if self.refusals_without_progress == 0 {
            emitter.skip(SkipReason::Oversize);
        }
        self.refusals_without_progress = self.refusals_without_progress.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::Ordering;

    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

    use super::*;
    use crate::source::testutil::{self, TEST_TIMEOUT};

    #[test]
    fn time_us_table() {
        let finder = memmem::Finder::new(b"\"time_us\":");
        let cases: &[(&[u8], Option<u64>)] = &[
            (
                br#"{"did":"d","time_us":1725911162329308,"kind":"commit"}"#,
                Some(1725911162329308),
            ),
            (br#"{"time_us": 42}"#, Some(42)),
            (br#"{"time_us":"42"}"#, None),
            (br#"{"time_us":}"#, None),
            (br#"{"time_us":99999999999999999999999}"#, None),
            (br#"{"did":"d"}"#, None),
            (br#"{"time_us":1,"record":{"time_us":2}}"#, Some(1)),
        ];
        for (frame, want) in cases {
            assert_eq!(
                time_us(&finder, frame),
                *want,
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
        for line in testutil::fixture_lines("jetstream-sample.ndjson") {
            let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
            assert_eq!(time_us(&finder, &line), v["time_us"].as_u64());
        }
    }

    #[test]
    fn connect_url_table() {
        let mut o = JetstreamOptions {
            url: "wss://js.example/subscribe?cursor=1&wantedCollections=x&compress=false".into(),
            wanted_collections: vec!["app.bsky.feed.post".into(), "app.bsky.feed.like".into()],
            ..JetstreamOptions::default()
        };
        let cases: &[(Option<u64>, &str)] = &[
            (
                Some(17),
                "wss://js.example/subscribe?wantedCollections=app.bsky.feed.post\
                 &wantedCollections=app.bsky.feed.like&cursor=17&compress=true",
            ),
            (
                None,
                "wss://js.example/subscribe?wantedCollections=app.bsky.feed.post\
                 &wantedCollections=app.bsky.feed.like&compress=true",
            ),
        ];
        for (cursor, want) in cases {
            assert_eq!(o.connect_url(*cursor).expect("url").as_str(), *want);
        }
        o.url = "ws://127.0.0.1:1/subscribe".into();
        o.wanted_collections.clear();
        o.compress = false;
        assert_eq!(
            o.connect_url(None).expect("url").as_str(),
            "ws://127.0.0.1:1/subscribe"
        );
        o.url = "https://js.example/subscribe".into();
        assert_eq!(o.validate().expect_err("scheme").reason(), "bad_url");
    }

    #[test]
    fn options_defaults_and_unknown_keys() {
        let o: JetstreamOptions =
            toml::from_str("cursor = 5\nresume_overlap = \"2s\"").expect("ok");
        assert_eq!(o.cursor, Some(5));
        assert_eq!(o.resume_overlap, Duration::from_secs(2));
        assert_eq!(o.wanted_collections, vec!["app.bsky.feed.post".to_owned()]);
        assert_eq!(o.url, "wss://jetstream2.us-east.bsky.network/subscribe");
        assert!(o.compress, "compression is asked for by default");
        assert_eq!(o.instances().len(), 4, "the public instances");
        let own: JetstreamOptions = toml::from_str("url = \"wss://js.example/subscribe\"\nfallback_urls = [\"wss://js2.example/subscribe\"]").expect("ok");
        assert_eq!(
            own.instances(),
            ["wss://js.example/subscribe", "wss://js2.example/subscribe"]
        );
        let alone: JetstreamOptions =
            toml::from_str("url = \"wss://js.example/subscribe\"").expect("ok");
        assert_eq!(alone.instances(), ["wss://js.example/subscribe"]);
        assert_eq!(o.ping_interval, Duration::from_secs(30));
        assert!(toml::from_str::<JetstreamOptions>("wanted = []").is_err());
        let zero = JetstreamOptions {
            max_frame_bytes: 0,
            ..JetstreamOptions::default()
        };
        assert_eq!(
            zero.validate().expect_err("zero").reason(),
            "invalid_option"
        );
    }

    /// One accepted websocket connection of the test server and the URI it asked for.
    struct Conn {
        ws: WebSocketStream<TcpStream>,
        query: BTreeMap<String, Vec<String>>,
    }

    async fn accept(listener: &TcpListener) -> Conn {
        let (tcp, _) = listener.accept().await.expect("accept");
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The error type is tungstenite's, fixed by its `Callback` trait.
        #[allow(clippy::result_large_err)]
        let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            let _ = tx.send(req.uri().to_string());
            Ok(resp)
        };
        let ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .expect("handshake");
        let uri = rx.await.expect("uri");
        let url = Url::parse(&format!("ws://test{uri}")).expect("uri parses");
        assert_eq!(url.path(), "/subscribe");
        let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in url.query_pairs() {
            query
                .entry(k.into_owned())
                .or_default()
                .push(v.into_owned());
        }
        Conn { ws, query }
    }

    impl Conn {
        fn cursor(&self) -> Option<u64> {
            self.query
                .get("cursor")
                .map(|v| v[0].parse().expect("numeric cursor"))
        }

        async fn send_text(&mut self, lines: &[Vec<u8>]) {
            for line in lines {
                let text = String::from_utf8(line.clone()).expect("utf-8");
                self.ws.feed(Message::text(text)).await.expect("send");
            }
            self.ws.flush().await.expect("flush");
        }

        /// `lines` as Jetstream sends them with `compress=true`: each one zstd frame made with
        /// the published dictionary.
        async fn send_compressed(&mut self, lines: &[Vec<u8>]) {
            let mut c = zstd::bulk::Compressor::with_dictionary(3, ZSTD_DICTIONARY).expect("dict");
            for line in lines {
                let z = c.compress(line).expect("compress");
                self.ws.feed(Message::Binary(z.into())).await.expect("send");
            }
            self.ws.flush().await.expect("flush");
        }

        /// Lines of `lines[..cut]` a Jetstream replay from `cursor` repeats, then the rest.
        async fn replay(&mut self, lines: &[Vec<u8>], cut: usize, cursor: u64, end: usize) {
            let finder = memmem::Finder::new(b"\"time_us\":");
            let repeated: Vec<Vec<u8>> = lines[..cut]
                .iter()
                .filter(|l| time_us(&finder, l).is_some_and(|t| t >= cursor))
                .cloned()
                .collect();
            self.send_text(&repeated).await;
            self.send_text(&lines[cut..end]).await;
        }
    }

    fn newest(lines: &[Vec<u8>]) -> u64 {
        let finder = memmem::Finder::new(b"\"time_us\":");
        lines
            .iter()
            .filter_map(|l| time_us(&finder, l))
            .max()
            .expect("times")
    }

    fn repeats(lines: &[Vec<u8>], cursor: u64) -> u64 {
        let finder = memmem::Finder::new(b"\"time_us\":");
        lines
            .iter()
            .filter(|l| time_us(&finder, l).is_some_and(|t| t >= cursor))
            .count() as u64
    }

    fn options(addr: std::net::SocketAddr) -> JetstreamOptions {
        JetstreamOptions {
            url: format!("ws://{addr}/subscribe"),
            compress: false,
            wanted_collections: vec!["app.bsky.feed.post".into(), "app.bsky.feed.like".into()],
            cursor: Some(1_783_175_888_000_000),
            max_frame_bytes: 2048,
            resume_overlap: Duration::from_millis(100),
            backoff: ExponentialBackoff {
                base: Duration::from_millis(5),
                cap: Duration::from_millis(20),
            },
            ..JetstreamOptions::default()
        }
    }

    async fn stop(
        trigger: crate::shutdown::ShutdownTrigger,
        source: tokio::task::JoinHandle<Result<(), SourceError>>,
    ) {
        trigger.trigger();
        let result = tokio::time::timeout(TEST_TIMEOUT, source).await;
        result
            .expect("stops")
            .expect("no panic")
            .expect("Ok on shutdown");
    }

    /// The whole sample, cut midway by a dropped connection: the source resumes with
    /// `cursor = newest − overlap`, the server replays from there, and the frames handed on
    /// are exactly the original sequence once each. Along the way: the server's ping gets a
    /// pong, an oversize message is counted and skipped in place, and a binary message is handed
    /// on as a frame.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn resumes_after_a_cut_without_loss_or_duplicates() {
        const CUT: usize = 80;
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        assert_eq!(lines.len(), 152);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let o = options(addr);
        let overlap_us = o.resume_overlap.as_micros() as u64;
        let (report_tx, mut report_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut first = accept(&listener).await;
                report_tx.send((first.query.clone(), true)).expect("report");
                first
                    .ws
                    .send(Message::Ping(b"hi".to_vec().into()))
                    .await
                    .expect("ping");
                let pong = loop {
                    match first.ws.next().await {
                        Some(Ok(Message::Pong(p))) => break p,
                        Some(Ok(_)) => continue,
                        other => panic!("no pong: {other:?}"),
                    }
                };
                report_tx
                    .send((BTreeMap::new(), &pong[..] == b"hi"))
                    .expect("report");
                first.send_text(&lines[..40]).await;
                let big = format!("{{\"time_us\":1,\"pad\":\"{}\"}}", "x".repeat(5000));
                first.ws.send(Message::text(big)).await.expect("send big");
                first
                    .ws
                    .send(Message::Binary(b"\x28\xb5\x2f\xfd".to_vec().into()))
                    .await
                    .expect("bin");
                first.send_text(&lines[40..CUT]).await;
                drop(first); // the cut: no close frame

                let mut second = accept(&listener).await;
                report_tx
                    .send((second.query.clone(), true))
                    .expect("report");
                let cursor = second.cursor().expect("resumed with a cursor");
                second.replay(&lines, CUT, cursor, lines.len()).await;
                std::future::pending::<()>().await;
            })
        };
        let (emitter, rx, stats) = testutil::emitter(256, 32);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));

        let (mut frames, batches) = testutil::recv_frames(&rx, lines.len() + 1).await;
        // The binary message is handed on in place, for decode to classify.
        assert_eq!(frames.remove(40), b"\x28\xb5\x2f\xfd".to_vec());
        assert_eq!(frames, lines, "the original sequence, once each");
        assert!(batches >= 5, "frames came in batches of at most 32");

        let (q1, _) = report_rx.recv().await.expect("first connection");
        assert_eq!(
            q1.get("wantedCollections").expect("collections"),
            &vec![
                "app.bsky.feed.post".to_owned(),
                "app.bsky.feed.like".to_owned()
            ]
        );
        assert_eq!(q1.get("cursor"), Some(&vec!["1783175888000000".to_owned()]));
        let (_, pong_ok) = report_rx.recv().await.expect("pong report");
        assert!(pong_ok, "the server's ping was answered with its payload");
        let (q2, _) = report_rx.recv().await.expect("second connection");
        let want_cursor = newest(&lines[..CUT]) - overlap_us;
        assert_eq!(q2.get("cursor"), Some(&vec![want_cursor.to_string()]));
        assert!(q2.contains_key("wantedCollections"));

        let duplicates = repeats(&lines[..CUT], want_cursor);
        assert!(
            duplicates > 0 && duplicates < CUT as u64,
            "the overlap repeats part: {duplicates}"
        );
        let total = lines.len() as u64 + duplicates + 2;
        testutil::wait_until("every frame counted", || stats.frames() == total).await;
        stop(trigger, source).await;
        server.abort();
        assert_eq!(stats.skipped(SkipReason::Duplicate), duplicates);
        assert_eq!(stats.skipped(SkipReason::Oversize), 1);
        assert_eq!(stats.skipped(SkipReason::WrongShape), 0);
        assert_eq!(stats.connects.load(Ordering::Relaxed), 2);
        assert_eq!(stats.reconnects.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.last_position.load(Ordering::Relaxed),
            newest(&lines),
            "checkpoint position is the newest time_us"
        );
    }

    /// A message too big even to read is refused by tungstenite: counted once, the source
    /// reconnects with its cursor, meets the same message in the replay, and then goes live.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn message_refused_by_the_library_is_counted_once_and_passed() {
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let o = options(addr);
        let huge = format!(
            "{{\"time_us\":1783175888300000,\"pad\":\"{}\"}}",
            "x".repeat(20_000)
        );
        assert!(huge.len() > o.max_frame_bytes * LIBRARY_LIMIT_FACTOR);
        let (cursor_tx, mut cursor_rx) = tokio::sync::mpsc::unbounded_channel();
        let server = {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut c = accept(&listener).await;
                cursor_tx.send(c.cursor()).expect("report");
                c.send_text(&lines[..10]).await;
                let _ = c.ws.send(Message::text(huge.clone())).await;
                let mut c = accept(&listener).await;
                cursor_tx.send(c.cursor()).expect("report");
                let cursor = c.cursor().expect("cursor");
                c.replay(&lines, 10, cursor, 10).await;
                let _ = c.ws.send(Message::text(huge)).await;
                let mut c = accept(&listener).await;
                cursor_tx.send(c.cursor()).expect("report");
                c.send_text(&lines[10..20]).await;
                std::future::pending::<()>().await;
            })
        };
        let (emitter, rx, stats) = testutil::emitter(256, 8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));
        let (frames, _) = testutil::recv_frames(&rx, 20).await;
        assert_eq!(frames, lines[..20].to_vec());
        stop(trigger, source).await;
        server.abort();
        let c1 = cursor_rx.recv().await.expect("c1");
        let c2 = cursor_rx.recv().await.expect("c2");
        let c3 = cursor_rx.recv().await.expect("c3");
        assert_eq!(c1, Some(1_783_175_888_000_000));
        assert_eq!(c2, Some(newest(&lines[..10]) - 100_000));
        assert_eq!(c3, None, "past a message that keeps coming back: live");
        assert_eq!(stats.skipped(SkipReason::Oversize), 1);
        assert_eq!(stats.connects.load(Ordering::Relaxed), 3);
    }

    /// A server that goes silent (answers no ping) is dropped after two ping intervals.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn silent_server_is_dropped_after_two_ping_intervals() {
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut o = options(addr);
        o.cursor = None;
        o.ping_interval = Duration::from_millis(100);
        let (ping_tx, ping_rx) = tokio::sync::oneshot::channel();
        let server = {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut c = accept(&listener).await;
                assert_eq!(c.cursor(), None, "live start");
                c.send_text(&lines[..3]).await;
                let got_ping = loop {
                    match c.ws.next().await {
                        Some(Ok(Message::Ping(_))) => break true,
                        Some(Ok(_)) => continue,
                        _ => break false,
                    }
                };
                let _ = ping_tx.send(got_ping);
                // Silence: keep the connection, read nothing, answer nothing.
                let mut c2 = accept(&listener).await;
                let cursor = c2.cursor().expect("resumed");
                c2.replay(&lines, 3, cursor, 6).await;
                drop(c);
                std::future::pending::<()>().await;
            })
        };
        let (emitter, rx, stats) = testutil::emitter(256, 8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));
        let (frames, _) = testutil::recv_frames(&rx, 6).await;
        assert_eq!(frames, lines[..6].to_vec());
        assert!(ping_rx.await.expect("ping report"), "the client pings");
        stop(trigger, source).await;
        server.abort();
        assert_eq!(stats.connects.load(Ordering::Relaxed), 2);
    }

    /// With `compress` (the default) the source asks for `compress=true` and decompresses each
    /// binary message with Jetstream's dictionary: the frames handed on are the original JSON.
    /// A damaged frame is counted `compression`, one declaring more than the limit `oversize`,
    /// and a text message from a server that does not compress is read as it is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compressed_events_are_decompressed_with_the_published_dictionary() {
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let o = JetstreamOptions {
            compress: true,
            ..options(addr)
        };
        let (query_tx, query_rx) = tokio::sync::oneshot::channel();
        let server = {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut conn = accept(&listener).await;
                query_tx.send(conn.query.clone()).expect("report");
                conn.send_compressed(&lines[..100]).await;
                let damaged = b"\x28\xb5\x2f\xfd\x20\x05garbage".to_vec();
                conn.ws
                    .send(Message::Binary(damaged.into()))
                    .await
                    .expect("send");
                let big = format!("{{\"time_us\":1,\"pad\":\"{}\"}}", "x".repeat(5000));
                conn.send_compressed(&[big.into_bytes()]).await;
                conn.send_text(&lines[100..]).await;
                std::future::pending::<()>().await;
            })
        };
        let (emitter, rx, stats) = testutil::emitter(256, 32);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));
        let (frames, _) = testutil::recv_frames(&rx, lines.len()).await;
        assert_eq!(frames, lines, "the original JSON, in order");
        let query = query_rx.await.expect("query");
        assert_eq!(query.get("compress"), Some(&vec!["true".to_owned()]));
        testutil::wait_until("skips counted", || {
            stats.skipped(SkipReason::Compression) == 1 && stats.skipped(SkipReason::Oversize) == 1
        })
        .await;
        stop(trigger, source).await;
        server.abort();
    }

    /// Two instances: the first is lost midway; the source goes on at the second from its
    /// cursor, and the frames handed on are the original sequence once each.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lost_instance_fails_over_to_the_next_from_the_cursor() {
        const CUT: usize = 70;
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        let first = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let second = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let o = JetstreamOptions {
            fallback_urls: Some(vec![format!(
                "ws://{}/subscribe",
                second.local_addr().expect("addr")
            )]),
            ..options(first.local_addr().expect("addr"))
        };
        let overlap_us = o.resume_overlap.as_micros() as u64;
        let (cursor_tx, cursor_rx) = tokio::sync::oneshot::channel();
        let server = {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut a = accept(&first).await;
                a.send_text(&lines[..CUT]).await;
                drop(a);
                drop(first); // the instance is gone: connecting to it is refused
                let mut b = accept(&second).await;
                let cursor = b.cursor().expect("resumed with a cursor");
                cursor_tx.send(cursor).expect("report");
                b.replay(&lines, CUT, cursor, lines.len()).await;
                std::future::pending::<()>().await;
            })
        };
        let (emitter, rx, stats) = testutil::emitter(256, 32);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));
        let (frames, _) = testutil::recv_frames(&rx, lines.len()).await;
        assert_eq!(
            frames, lines,
            "once each, in order, across the two instances"
        );
        let cursor = cursor_rx.await.expect("cursor");
        assert_eq!(cursor, newest(&lines[..CUT]) - overlap_us);
        stop(trigger, source).await;
        server.abort();
        assert_eq!(stats.connects.load(Ordering::Relaxed), 2);
    }
}
