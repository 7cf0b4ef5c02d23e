//! Helpers for the sources' tests: fixtures, an emitter whose batches can be collected, and
//! bits of hand-written HTTP for raw test servers on 127.0.0.1.
#![cfg(test)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Receiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::batch::{Batch, BatchLimits};
use super::emit::{Emitter, SourceStats};

/// The bound on every test's network wait: generous, so a slow CI machine never fails a test,
/// but a hang ends with a message.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `core/tests/fixtures/formats/<name>`: the recorded format samples (see SOURCES.md
/// there).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/fixtures/formats")
        .join(name)
}

/// The bytes of a fixture.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture readable")
}

/// The non-empty lines of a fixture, without terminators.
pub fn fixture_lines(name: &str) -> Vec<Vec<u8>> {
    fixture_bytes(name)
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// An emitter on a channel of `capacity` batches, with small batches and a short linger.
pub fn emitter(capacity: usize, max_frames: usize) -> (Emitter, Receiver<Batch>, Arc<SourceStats>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let stats = Arc::new(SourceStats::default());
    let limits = BatchLimits {
        max_frames,
        max_bytes: 1 << 20,
        linger: Duration::from_millis(2),
    };
    (Emitter::new(0, tx, limits, stats.clone()), rx, stats)
}

/// The frames of a batch, owned.
pub fn frames_of(batch: &Batch) -> Vec<Vec<u8>> {
    let mut start = 0usize;
    let mut out = Vec::with_capacity(batch.len());
    for &end in &batch.ends {
        out.push(batch.data[start..end as usize].to_vec());
        start = end as usize;
    }
    out
}

/// Receives batches until `n` frames have arrived (panics after [`TEST_TIMEOUT`]); returns
/// the frames and the number of batches they came in. Blocks in `block_in_place`, as a worker
/// thread would: call it from a multi-thread runtime.
pub async fn recv_frames(rx: &Receiver<Batch>, n: usize) -> (Vec<Vec<u8>>, usize) {
    let deadline = std::time::Instant::now() + TEST_TIMEOUT;
    let mut frames = Vec::new();
    let mut batches = 0;
    while frames.len() < n {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match tokio::task::block_in_place(|| rx.recv_timeout(left)) {
            Ok(batch) => {
                assert!(!batch.is_empty(), "empty batch sent");
                batches += 1;
                frames.extend(frames_of(&batch));
            }
            Err(e) => panic!("{e} with {} of {n} frames", frames.len()),
        }
    }
    (frames, batches)
}

/// Waits until `cond` holds (panics after [`TEST_TIMEOUT`]).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TEST_TIMEOUT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Reads an HTTP/1.1 request head (up to the blank line) and returns it as text.
pub async fn read_request_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.expect("read request");
        assert_eq!(n, 1, "client closed before the end of its request head");
        head.push(byte[0]);
    }
    String::from_utf8(head).expect("ASCII request head")
}

/// The value of header `name` (case-insensitive) in a request head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Writes a `200 OK` chunked response head with `content_type`.
pub async fn write_chunked_head(stream: &mut TcpStream, content_type: &str) {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
}

/// Writes one chunk of a chunked body.
pub async fn write_chunk(stream: &mut TcpStream, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).await.expect("write chunk");
}

/// Writes `body` as chunks whose sizes cycle through `sizes`, so frames and line ends are cut
/// at many different places.
pub async fn write_body_in_chunks(stream: &mut TcpStream, body: &[u8], sizes: &[usize]) {
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        write_chunk(stream, &rest[..n]).await;
        rest = &rest[n..];
        i += 1;
    }
    stream.flush().await.expect("flush");
}
