//! A Jetstream-compatible firehose server on a real loopback websocket.
//!
//! Speaks the subset of the Jetstream protocol earshot's client uses: `GET /subscribe` with
//! `wantedCollections` (repeated; commit events of other collections are not sent) and
//! `cursor` (replay from the first retained event at or after that `time_us`) and `compress=true`
//! (each event one zstd frame made with Jetstream's dictionary, as a binary message). Events come
//! from an [`EventLog`]: either generated live at a target rate ([`EventLog::generate`]) or a
//! fixed script of frames, bad ones included ([`EventLog::from_frames`]). The log is bounded
//! (oldest events fall out), like Jetstream's own replay window. A script can ask the server
//! to drop every connection after a number of frames, to exercise reconnect and resume.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;
use tracing::debug;

use crate::generator::{GenEvent, GenSettings, Generator};
use earshot::shutdown::Shutdown;

/// One retained event.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Cursor of the event.
    pub time_us: u64,
    /// The collection of a commit event, for `wantedCollections` filtering.
    pub collection: Option<String>,
    /// Frame bytes (sent as a text message when valid UTF-8, else binary).
    pub frame: Arc<[u8]>,
}

struct LogInner {
    entries: VecDeque<LogEntry>,
    /// Sequence number of `entries[0]`.
    first_seq: u64,
    closed: bool,
    /// A connection without a cursor starts at the first retained event (a script) rather
    /// than at the live tail (a generated stream).
    from_start: bool,
}

/// A bounded, append-only log of events that connections read from.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<LogInner>>,
    notify: Arc<Notify>,
    capacity: usize,
    /// Frames sent to all connections so far.
    pub sent: Arc<AtomicU64>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    /// Drop each connection after this many frames (0 = never); for resume tests.
    pub drop_after: Arc<AtomicU64>,
    /// Every request path (with query) received, for protocol tests.
    pub requests: Arc<Mutex<Vec<String>>>,
}

/// A wave of crisis posts: from `after` the generator starts, for `lasting`, at `rate` posts
/// a second on top of the steady traffic.
#[derive(Debug, Clone, Copy)]
pub struct Surge {
    /// When it starts, from the start of generation.
    pub after: Duration,
    /// How long it lasts.
    pub lasting: Duration,
    /// Crisis posts per second.
    pub rate: f64,
}

impl EventLog {
    /// An empty log keeping at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LogInner {
                entries: VecDeque::new(),
                first_seq: 0,
                closed: false,
                from_start: false,
            })),
            notify: Arc::new(Notify::new()),
            capacity: capacity.max(1),
            sent: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
            drop_after: Arc::new(AtomicU64::new(0)),
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// A log holding a fixed script of frames; `time_us` is read from each frame when it has
    /// one (bad frames take their predecessor's). A connection without a cursor gets the
    /// whole script; once sent, connections stay open and idle until [`EventLog::close`].
    pub fn from_frames(frames: Vec<Vec<u8>>) -> Self {
        let log = EventLog::scripted(frames.len().max(1));
        let mut last = 0;
        for f in frames {
            let time_us = extract_u64(&f, b"\"time_us\":").unwrap_or(last);
            last = time_us;
            let collection = extract_str(&f, b"\"collection\":\"");
            log.push(LogEntry {
                time_us,
                collection,
                frame: f.into(),
            });
        }
        log
    }

    /// An empty log that a test fills as it goes ([`EventLog::push_event`]); like a script,
    /// a connection without a cursor starts at its first event, so nothing pushed before
    /// earshot connects is missed.
    pub fn scripted(capacity: usize) -> Self {
        let log = EventLog::new(capacity);
        log.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .from_start = true;
        log
    }

    /// Appends a generated event.
    pub fn push_event(&self, event: GenEvent) {
        self.push(LogEntry {
            time_us: event.time_us,
            collection: extract_str(event.json.as_bytes(), b"\"collection\":\""),
            frame: event.json.into_bytes().into(),
        });
    }

    /// Appends an event.
    pub fn push(&self, entry: LogEntry) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.push_back(entry);
        while inner.entries.len() > self.capacity {
            inner.entries.pop_front();
            inner.first_seq += 1;
        }
        drop(inner);
        self.notify.notify_waiters();
    }

    /// Marks the log complete: connections end once they have sent everything.
    pub fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.notify.notify_waiters();
    }

    /// Generates events at `rate` per second until shutdown, stamping the wall clock as
    /// `time_us`; calls `on_event` with each (the demo uses it to know what to expect).
    pub async fn generate(
        &self,
        rate: u64,
        settings: GenSettings,
        shutdown: Shutdown,
        on_event: impl FnMut(&GenEvent) + Send,
    ) {
        self.generate_with_surge(rate, settings, None, shutdown, on_event)
            .await
    }

    /// [`EventLog::generate`], with a wave of crisis posts about `acme` on top of the
    /// steady traffic while `surge` lasts.
    pub async fn generate_with_surge(
        &self,
        rate: u64,
        settings: GenSettings,
        surge: Option<Surge>,
        mut shutdown: Shutdown,
        mut on_event: impl FnMut(&GenEvent) + Send,
    ) {
        let mut generator = Generator::new(settings);
        let started = std::time::Instant::now();
        let mut surge_carry = 0.0;
        let tick = Duration::from_millis(10);
        let per_tick = (rate as f64 * tick.as_secs_f64()).max(0.0);
        let mut carry = 0.0;
        let mut interval = tokio::time::interval(tick);
        loop {
            tokio::select! {
                _ = shutdown.recv() => break,
                _ = interval.tick() => {}
            }
            carry += per_tick;
            let n = carry.floor() as u64;
            carry -= n as f64;
            let base = now_us();
            let mut crisis = 0;
            if let Some(s) = surge {
                let t = started.elapsed();
                if t >= s.after && t < s.after + s.lasting {
                    surge_carry += s.rate * tick.as_secs_f64();
                    crisis = surge_carry.floor() as u64;
                    surge_carry -= crisis as f64;
                }
            }
            for i in 0..n + crisis {
                let event = if i < n {
                    generator.next_event(base + i)
                } else {
                    generator.crisis_event(base + i)
                };
                on_event(&event);
                self.push_event(event);
            }
        }
        self.close();
    }

    /// Index of the first retained entry at or after `cursor`, as a sequence number.
    fn seq_for_cursor(&self, cursor: Option<u64>) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match cursor {
            None if inner.from_start => inner.first_seq,
            None => inner.first_seq + inner.entries.len() as u64,
            Some(c) => {
                let idx = inner
                    .entries
                    .iter()
                    .position(|e| e.time_us >= c)
                    .unwrap_or(inner.entries.len());
                inner.first_seq + idx as u64
            }
        }
    }

    /// The entry with sequence number `seq`, or whether the log is closed.
    fn get(&self, seq: u64) -> Result<LogEntry, bool> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = seq.max(inner.first_seq);
        match inner.entries.get((seq - inner.first_seq) as usize) {
            Some(e) => Ok(e.clone()),
            None => Err(inner.closed),
        }
    }
}

/// Microseconds since the epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn extract_u64(frame: &[u8], key: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(frame, key)? + key.len();
    let digits = frame[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&frame[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

fn extract_str(frame: &[u8], key: &[u8]) -> Option<String> {
    let at = memchr::memmem::find(frame, key)? + key.len();
    let len = memchr::memchr(b'"', &frame[at..])?;
    std::str::from_utf8(&frame[at..at + len])
        .ok()
        .map(str::to_string)
}

/// Serves `log` on `listener` until shutdown.
pub async fn serve(listener: TcpListener, log: EventLog, mut shutdown: Shutdown) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.recv() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "simulator accept failed");
                    continue;
                }
            },
        };
        let (log, shutdown) = (log.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = connection(stream, log, shutdown).await {
                debug!(error = %e, "simulator connection ended");
            }
        });
    }
}

/// Binds 127.0.0.1 on `port` (0 = any) and serves in the background.
pub async fn start(port: u16, log: EventLog, shutdown: Shutdown) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, log, shutdown));
    Ok(addr)
}

async fn connection(
    stream: TcpStream,
    log: EventLog,
    mut shutdown: Shutdown,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut path = String::new();
    // The callback's error type is the library's; it never fails here.
    #[allow(clippy::result_large_err)]
    let capture = |req: &Request, resp: Response| {
        path = req.uri().to_string();
        Ok(resp)
    };
    let ws = tokio_tungstenite::accept_hdr_async(stream, capture).await?;
    log.connections.fetch_add(1, Ordering::Relaxed);
    log.requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    let query = url::Url::parse(&format!("ws://simulator{path}")).ok();
    let pairs: Vec<(String, String)> = query
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let wanted: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "wantedCollections")
        .map(|(_, v)| v.clone())
        .collect();
    let cursor = pairs
        .iter()
        .find(|(k, _)| k == "cursor")
        .and_then(|(_, v)| v.parse().ok());
    // `compress=true`: each event one zstd frame with Jetstream's dictionary, as a binary
    // message (level 3, the Go encoder's default that Jetstream uses).
    let mut compressor = pairs
        .iter()
        .any(|(k, v)| k == "compress" && v == "true")
        .then(|| {
            zstd::bulk::Compressor::with_dictionary(3, earshot::source::jetstream::ZSTD_DICTIONARY)
        })
        .transpose()
        .map_err(tokio_tungstenite::tungstenite::Error::Io)?;
    let (mut tx, mut rx) = ws.split();
    let mut seq = log.seq_for_cursor(cursor);
    let drop_after = log.drop_after.load(Ordering::Relaxed);
    let mut sent_here = 0u64;
    loop {
        let notified = log.notify.notified();
        match log.get(seq) {
            Ok(entry) => {
                seq += 1;
                if !wanted.is_empty() {
                    if let Some(c) = &entry.collection {
                        if !wanted.iter().any(|w| w == c) {
                            continue;
                        }
                    }
                }
                let msg = match (&mut compressor, std::str::from_utf8(&entry.frame)) {
                    (Some(c), _) => Message::binary(
                        c.compress(&entry.frame)
                            .map_err(tokio_tungstenite::tungstenite::Error::Io)?,
                    ),
                    (None, Ok(s)) => Message::text(s),
                    (None, Err(_)) => Message::binary(entry.frame.to_vec()),
                };
                tx.send(msg).await?;
                log.sent.fetch_add(1, Ordering::Relaxed);
                sent_here += 1;
                if drop_after > 0 && sent_here >= drop_after {
                    // Drop the TCP connection without a close handshake, as a network failure does.
                    return Ok(());
                }
            }
            Err(closed) => {
                if closed {
                    let _ = tx.send(Message::Close(None)).await;
                    // Let the client read the rest; it closes when done.
                    let _ = tokio::time::timeout(Duration::from_secs(5), rx.next()).await;
                    return Ok(());
                }
                tokio::select! {
                    _ = notified => {}
                    _ = shutdown.recv() => {
                        let _ = tx.send(Message::Close(None)).await;
                        return Ok(());
                    }
                    msg = rx.next() => match msg {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
    }
}
