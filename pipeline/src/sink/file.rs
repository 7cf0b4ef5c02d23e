//! File and stdout sink: outbox entries → one JSON line each (the mention contract, or a
//! digest), appended.
//!
//! The dispatcher hands over a batch of lines; they go through one buffer and one flush, so a
//! burst costs one write call and a quiet stream still shows every line at once. A file is
//! synced to disk after each batch before the entries are removed from the outbox: a crash
//! then repeats lines (at-least-once), it never loses one.

use std::path::PathBuf;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use crate::metrics::FILE_MENTIONS_WRITTEN;

/// Where the lines go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Appended to a file (created if missing).
    File(PathBuf),
    /// Standard output.
    Stdout,
}

/// An open line sink.
pub struct LineWriter {
    queue: String,
    target: Target,
    out: Option<BufWriter<Box<dyn AsyncWrite + Send + Unpin>>>,
    file: Option<tokio::fs::File>,
    written: metrics::Counter,
}

impl LineWriter {
    /// A writer for `queue` to `target`; the file is opened at the first write.
    pub fn new(queue: &str, target: Target) -> Self {
        Self {
            written: metrics::counter!(FILE_MENTIONS_WRITTEN, "queue" => queue.to_string()),
            queue: queue.to_string(),
            target,
            out: None,
            file: None,
        }
    }

    async fn open(&mut self) -> std::io::Result<()> {
        if self.out.is_some() {
            return Ok(());
        }
        let sink: Box<dyn AsyncWrite + Send + Unpin> = match &self.target {
            Target::Stdout => Box::new(tokio::io::stdout()),
            Target::File(path) => {
                let file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await?;
                self.file = Some(file.try_clone().await?);
                Box::new(file)
            }
        };
        self.out = Some(BufWriter::with_capacity(64 * 1024, sink));
        Ok(())
    }

    /// Writes each line followed by a newline, flushes, and syncs a file.
    pub async fn write<'a>(&mut self, lines: impl Iterator<Item = &'a str>) -> std::io::Result<()> {
        if let Err(e) = self.open().await {
            return Err(std::io::Error::new(
                e.kind(),
                format!("queue {}: cannot open {:?}: {e}", self.queue, self.target),
            ));
        }
        let out = self.out.as_mut().expect("opened above");
        let mut n = 0u64;
        for line in lines {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
            n += 1;
        }
        out.flush().await?;
        if let Some(file) = &self.file {
            file.sync_data().await?;
        }
        self.written.increment(n);
        Ok(())
    }

    /// Flushes what is buffered.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.flush().await?;
        }
        Ok(())
    }
}

/// Writes every mention received on `rx` to stdout as one JSON line, until the channel
/// closes (`earshot replay`'s output, which delivers nothing and so needs no outbox).
/// Returns the number of lines written.
pub async fn print_mentions(
    mut rx: tokio::sync::mpsc::Receiver<std::sync::Arc<crate::mention::Mention>>,
) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(64 * 1024, tokio::io::stdout());
    let mut line = Vec::with_capacity(4096);
    let mut n = 0u64;
    while let Some(m) = rx.recv().await {
        let mut next = Some(m);
        while let Some(m) = next.take() {
            line.clear();
            serde_json::to_writer(&mut line, &*m).map_err(std::io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line).await?;
            n += 1;
            next = rx.try_recv().ok();
        }
        out.flush().await?;
    }
    out.flush().await?;
    Ok(n)
}
