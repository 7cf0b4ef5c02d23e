//! File and stdout sink: mention → one JSON line (the mention contract), appended.
//!
//! Lines are written through a buffer and flushed whenever the channel is momentarily empty,
//! so a burst costs one write call and a quiet stream still shows every line at once.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tracing::error;

use crate::mention::Mention;
use crate::metrics::FILE_MENTIONS_WRITTEN;

/// Where the lines go.
#[derive(Debug, Clone)]
pub enum Target {
    /// Appended to a file (created if missing).
    File(PathBuf),
    /// Standard output.
    Stdout,
}

/// Writes every mention received on `rx` as one JSON line, until the channel closes.
/// Returns the number of lines written, or the I/O error that stopped it.
pub async fn run(
    queue: String,
    target: Target,
    rx: mpsc::Receiver<Arc<Mention>>,
) -> std::io::Result<u64> {
    let result = match &target {
        Target::Stdout => write_all(&queue, tokio::io::stdout(), rx).await,
        Target::File(path) => {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            write_all(&queue, file, rx).await
        }
    };
    if let Err(e) = &result {
        error!(queue = %queue, target = ?target, error = %e, "mention sink failed");
    }
    result
}

async fn write_all<W: AsyncWrite + Unpin>(
    queue: &str,
    out: W,
    mut rx: mpsc::Receiver<Arc<Mention>>,
) -> std::io::Result<u64> {
    let written = metrics::counter!(FILE_MENTIONS_WRITTEN, "queue" => queue.to_string());
    let mut out = BufWriter::with_capacity(64 * 1024, out);
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
            written.increment(1);
            next = rx.try_recv().ok();
        }
        out.flush().await?;
    }
    out.flush().await?;
    Ok(n)
}
