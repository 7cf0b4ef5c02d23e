//! Recorded posts from a file or stdin: replays, tests, `earshot replay`, pipes.
//!
//! Input → output: a file (or `-` for stdin), read in large blocks → frames, each batch
//! carrying [`Position::Offset`]: the byte offset just after its last frame, where a restart
//! resumes (`start_offset`). The input may be NDJSON (one frame per non-blank line), one or more
//! JSON documents however they are laid out (a pretty-printed API answer is one frame), or a
//! JSON array whose elements are the frames: [`Framer`] tells them apart by their first bytes.
//! A frame over `max_frame_bytes` or nested deeper than `max_json_depth` is counted
//! ([`SkipReason::Oversize`], [`SkipReason::TooDeep`]) and discarded as it is read; so is
//! input cut off inside a document ([`SkipReason::InvalidJson`], with a warning naming the
//! offset). A last line without a newline is still a frame. Without `follow` the source returns
//! `Ok` at the end of the input, after flushing; with it, it reads NDJSON only, waits for the
//! file to grow (`tail -f`, polling every `poll_interval`, flushing before each wait) until
//! shutdown, and never hands on a last line that may still be being written.
//!
//! Why large blocks: tokio reads files on its blocking pool, one hand-off per read, so a
//! 1 MiB read (over a thousand Jetstream frames) makes that cost vanish; the block buffer is
//! allocated once.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use super::batch::Position;
use super::emit::Emitter;
use super::error::SourceError;
use super::framing::{Framer, Piece};
use super::http_client::nonzero;
use crate::shutdown::Shutdown;
use crate::skip::SkipReason;

/// Settings of a file source (`[[source]] kind = "file"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// The file to read, or `-` for stdin.
    pub path: PathBuf,
    /// Longest frame handed on; a longer one is counted Oversize. 1 MiB, as for the streams.
    #[serde(default = "default_max_frame_bytes")]
    pub max_frame_bytes: usize,
    /// Deepest nesting of a JSON document the reader buffers (a deeper one is counted TooDeep
    /// as it is read); 64, as `[limits] max_json_depth`.
    #[serde(default = "default_max_json_depth")]
    pub max_json_depth: usize,
    /// Keep reading as the file grows instead of ending at its end.
    #[serde(default)]
    pub follow: bool,
    /// Where to start, in bytes (a checkpointed [`Position::Offset`]); not for stdin.
    #[serde(default)]
    pub start_offset: u64,
    /// Bytes per read. 1 MiB: see the module docs.
    #[serde(default = "default_read_buffer_bytes")]
    pub read_buffer_bytes: usize,
    /// With `follow`: how often to look for new data at the end of the file.
    #[serde(default = "default_poll_interval", with = "crate::duration")]
    pub poll_interval: Duration,
}

fn default_max_frame_bytes() -> usize {
    1 << 20
}

fn default_max_json_depth() -> usize {
    64
}

fn default_read_buffer_bytes() -> usize {
    1 << 20
}

fn default_poll_interval() -> Duration {
    Duration::from_millis(200)
}

impl FileOptions {
    /// Options for `path` with every default.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_frame_bytes: default_max_frame_bytes(),
            max_json_depth: default_max_json_depth(),
            follow: false,
            start_offset: 0,
            read_buffer_bytes: default_read_buffer_bytes(),
            poll_interval: default_poll_interval(),
        }
    }

    fn is_stdin(&self) -> bool {
        self.path == Path::new("-")
    }

    fn io_error(&self, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: self.path.clone(),
            source,
        }
    }

    async fn open(&self) -> Result<Pin<Box<dyn AsyncRead + Send>>, SourceError> {
        if self.is_stdin() {
            if self.start_offset != 0 {
                return Err(SourceError::InvalidOption {
                    field: "start_offset",
                    reason: "stdin cannot seek".into(),
                });
            }
            return Ok(Box::pin(tokio::io::stdin()));
        }
        let mut file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| self.io_error(e))?;
        file.set_max_buf_size(self.read_buffer_bytes);
        if self.start_offset != 0 {
            file.seek(std::io::SeekFrom::Start(self.start_offset))
                .await
                .map_err(|e| self.io_error(e))?;
        }
        Ok(Box::pin(file))
    }

    /// Reads the input, handing on its frames; returns `Ok` at its end (without `follow`) or
    /// on shutdown, after flushing the partial batch. Errors: the file cannot be opened or
    /// read, bad options, a closed channel.
    pub async fn run(
        self,
        mut emitter: Emitter,
        mut shutdown: Shutdown,
    ) -> Result<(), SourceError> {
        nonzero("max_frame_bytes", self.max_frame_bytes as u128)?;
        nonzero("read_buffer_bytes", self.read_buffer_bytes as u128)?;
        nonzero("poll_interval", self.poll_interval.as_nanos())?;
        let mut reader = self.open().await?;
        let source = emitter.source();
        emitter.stats().record_connect();
        tracing::info!(source, path = %self.path.display(), offset = self.start_offset, "reading");
        let (max, depth, start) = (self.max_frame_bytes, self.max_json_depth, self.start_offset);
        // A file being followed may end in a document still being written: lines only.
        let mut framer = if self.follow {
            Framer::lines_only(max, depth, start)
        } else {
            Framer::new(max, depth, start)
        };
        let path = self.path.as_path();
        let mut buf = vec![0u8; self.read_buffer_bytes];
        loop {
            let read = tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                _ = emitter.linger() => {
                    emitter.flush().await?;
                    continue;
                }
                r = reader.read(&mut buf) => r.map_err(|e| self.io_error(e))?,
            };
            if read == 0 {
                if !self.follow {
                    framer.finish(&mut |piece| hand_on(piece, path, &mut emitter))?;
                    tracing::info!(source, path = %self.path.display(), "end of input");
                    break;
                }
                emitter.flush().await?;
                tokio::select! {
                    biased;
                    _ = shutdown.recv() => break,
                    _ = tokio::time::sleep(self.poll_interval) => continue,
                }
            }
            framer.feed(&buf[..read], &mut |piece| {
                hand_on(piece, path, &mut emitter)
            })?;
        }
        emitter.stats().record_disconnect();
        emitter.flush().await
    }
}

fn hand_on(piece: Piece<'_>, path: &Path, emitter: &mut Emitter) -> Result<(), SourceError> {
    match piece {
        Piece::Frame { bytes, end } => emitter.push(bytes, end.map(Position::Offset)),
        Piece::Skip {
            reason,
            len,
            at,
            why,
        } => {
            if reason == SkipReason::InvalidJson {
                // Cut-off input is a fault of the input as a whole: say where.
                tracing::warn!(source = emitter.source(), path = %path.display(), offset = at, "{why}; skipped");
            }
            emitter.skip_len(reason, len);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::source::batch::Batch;
    use crate::source::testutil;

    async fn read_all(
        options: FileOptions,
        max_frames: usize,
    ) -> (Vec<Batch>, crate::skip::SkipCounts) {
        let (emitter, rx, stats) = testutil::emitter(1024, max_frames);
        let (_trigger, shutdown) = crate::shutdown::channel();
        options
            .run(emitter, shutdown)
            .await
            .expect("reads to the end");
        assert!(!stats.connected.load(Ordering::Relaxed));
        (rx.try_iter().collect(), stats.skip_counts())
    }

    fn temp_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write");
        f.flush().expect("flush");
        f
    }

    #[tokio::test]
    async fn table() {
        // (name, content, max_frame_bytes, read buffer, start offset,
        //  expected frames, expected last offset, expected oversize count)
        type Case = (
            &'static str,
            &'static [u8],
            usize,
            usize,
            u64,
            &'static [&'static str],
            u64,
            u64,
        );
        let cases: &[Case] = &[
            (
                "plain",
                b"{\"a\":1}\n{\"b\":2}\n",
                64,
                4096,
                0,
                &["{\"a\":1}", "{\"b\":2}"],
                16,
                0,
            ),
            (
                "no trailing newline",
                b"{}\n[1]",
                64,
                4096,
                0,
                &["{}", "[1]"],
                6,
                0,
            ),
            (
                "crlf and blank lines",
                b"\r\n{}\r\n\n\n[]\r\n",
                64,
                4096,
                0,
                &["{}", "[]"],
                12,
                0,
            ),
            (
                "oversize lines skipped",
                b"{}\n0123456789\n[]\n",
                4,
                4096,
                0,
                &["{}", "[]"],
                17,
                1,
            ),
            (
                "oversize across reads",
                b"abcdefghijklmnop\n{}\n",
                4,
                3,
                0,
                &["{}"],
                20,
                1,
            ),
            (
                "tiny reads",
                b"{\"a\":1}\n{\"b\":2}\n",
                64,
                1,
                0,
                &["{\"a\":1}", "{\"b\":2}"],
                16,
                0,
            ),
            (
                "resume at an offset",
                b"{\"a\":1}\n{\"b\":2}\n",
                64,
                4096,
                8,
                &["{\"b\":2}"],
                16,
                0,
            ),
            ("empty file", b"", 64, 4096, 0, &[], 0, 0),
        ];
        for &(name, content, max, read, start, want, want_offset, oversize) in cases {
            let f = temp_with(content);
            let mut o = FileOptions::new(f.path());
            o.max_frame_bytes = max;
            o.read_buffer_bytes = read;
            o.start_offset = start;
            let (batches, skips) = read_all(o, 2).await;
            let frames: Vec<Vec<u8>> = batches.iter().flat_map(testutil::frames_of).collect();
            let want: Vec<Vec<u8>> = want.iter().map(|w| w.as_bytes().to_vec()).collect();
            assert_eq!(frames, want, "{name}");
            let last = batches.last().and_then(|b| b.position);
            if want.is_empty() {
                assert_eq!(last, None, "{name}");
            } else {
                assert_eq!(last, Some(Position::Offset(want_offset)), "{name}");
            }
            assert_eq!(skips.0[SkipReason::Oversize.index()], oversize, "{name}");
        }
    }

    #[tokio::test]
    async fn offsets_of_every_batch_point_after_its_last_line() {
        let content = b"{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n{\"i\":3}\n{\"i\":4}\n";
        let f = temp_with(content);
        let (batches, _) = read_all(FileOptions::new(f.path()), 2).await;
        let positions: Vec<_> = batches.iter().map(|b| b.position).collect();
        let want = [16, 32, 40].map(|o| Some(Position::Offset(o)));
        assert_eq!(positions, want);
        // Resuming at each checkpoint yields exactly the frames after it.
        for (i, offset) in [16u64, 32].iter().enumerate() {
            let mut o = FileOptions::new(f.path());
            o.start_offset = *offset;
            let (rest, _) = read_all(o, 8).await;
            let frames: Vec<Vec<u8>> = rest.iter().flat_map(testutil::frames_of).collect();
            assert_eq!(frames.len(), 5 - 2 * (i + 1));
        }
    }

    #[tokio::test]
    async fn jetstream_fixture_reads_whole() {
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        let o = FileOptions::new(testutil::fixture("jetstream-sample.ndjson"));
        let (batches, skips) = read_all(o, 256).await;
        let frames: Vec<Vec<u8>> = batches.iter().flat_map(testutil::frames_of).collect();
        assert_eq!(frames, lines);
        assert_eq!(skips.total(), 0);
    }

    #[tokio::test]
    async fn documents_and_arrays_are_read_as_frames() {
        // A pretty-printed document is one frame, resumable after it.
        let status = testutil::fixture_bytes("mastodon-status.json");
        let doc = status.trim_ascii_end();
        let o = FileOptions::new(testutil::fixture("mastodon-status.json"));
        let (batches, skips) = read_all(o, 8).await;
        let frames: Vec<Vec<u8>> = batches.iter().flat_map(testutil::frames_of).collect();
        assert_eq!(frames, [doc.to_vec()]);
        let end = Position::Offset(doc.len() as u64);
        assert_eq!(batches.last().and_then(|b| b.position), Some(end));
        assert_eq!(skips.total(), 0);
        // An array's elements are the frames; only the batch that ends the array carries a
        // position, since resuming inside the array would start mid-array.
        let lines = testutil::fixture_lines("jetstream-sample.ndjson");
        let mut array = b"[".to_vec();
        array.extend(lines.join(&b",\n  "[..]));
        array.extend(b"]\n");
        let f = temp_with(&array);
        let (batches, skips) = read_all(FileOptions::new(f.path()), 64).await;
        let frames: Vec<Vec<u8>> = batches.iter().flat_map(testutil::frames_of).collect();
        assert_eq!(frames, lines);
        assert_eq!(skips.total(), 0);
        let positions: Vec<_> = batches.iter().map(|b| b.position).collect();
        let (last, before) = positions.split_last().unwrap();
        assert_eq!(*last, Some(Position::Offset(array.len() as u64 - 1)));
        assert!(before.iter().all(Option::is_none), "{positions:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_reads_lines_only() {
        let f = temp_with(b"{\n\"a\":1}\n");
        let mut o = FileOptions::new(f.path());
        o.follow = true;
        o.poll_interval = Duration::from_millis(5);
        let (emitter, rx, _stats) = testutil::emitter(64, 8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));
        let (frames, _) = testutil::recv_frames(&rx, 2).await;
        assert_eq!(frames, vec![b"{".to_vec(), b"\"a\":1}".to_vec()]);
        trigger.trigger();
        let result = tokio::time::timeout(testutil::TEST_TIMEOUT, source).await;
        result.expect("stops").expect("no panic").expect("Ok");
    }

    #[tokio::test]
    async fn missing_file_and_bad_options_are_errors() {
        let (emitter, _rx, _) = testutil::emitter(4, 4);
        let (_t, shutdown) = crate::shutdown::channel();
        let err = FileOptions::new("/definitely/not/here.ndjson")
            .run(emitter, shutdown.clone())
            .await
            .expect_err("missing");
        assert_eq!(err.reason(), "io");
        assert!(err.to_string().contains("/definitely/not/here.ndjson"));
        let (emitter, _rx, _) = testutil::emitter(4, 4);
        let mut o = FileOptions::new("-");
        o.start_offset = 3;
        assert_eq!(
            o.run(emitter, shutdown).await.expect_err("seek").reason(),
            "invalid_option"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn follow_picks_up_appended_lines_and_stops_on_shutdown() {
        let mut f = temp_with(b"{\"a\":1}\n{\"b\":");
        let mut o = FileOptions::new(f.path());
        o.follow = true;
        o.poll_interval = Duration::from_millis(5);
        let (emitter, rx, _stats) = testutil::emitter(64, 8);
        let (trigger, shutdown) = crate::shutdown::channel();
        let source = tokio::spawn(o.run(emitter, shutdown));
        let (first, _) = testutil::recv_frames(&rx, 1).await;
        assert_eq!(first, vec![b"{\"a\":1}".to_vec()]);
        f.write_all(b"2}\n{\"c\":3}\n").expect("append");
        f.flush().expect("flush");
        let (more, _) = testutil::recv_frames(&rx, 2).await;
        assert_eq!(more, vec![b"{\"b\":2}".to_vec(), b"{\"c\":3}".to_vec()]);
        trigger.trigger();
        let result = tokio::time::timeout(testutil::TEST_TIMEOUT, source).await;
        result.expect("stops").expect("no panic").expect("Ok");
    }

    #[test]
    fn options_parse() {
        let o: FileOptions = toml::from_str("path = \"-\"\nfollow = true").expect("parses");
        assert!(o.is_stdin() && o.follow);
        assert_eq!(o.read_buffer_bytes, 1 << 20);
        assert!(toml::from_str::<FileOptions>("path = \"x\"\nfolow = true").is_err());
    }
}
