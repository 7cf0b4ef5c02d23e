//! The admin server's accept loop: a bounded number of connections, optional TLS, a
//! header-read timeout and an idle timeout on every connection, and graceful shutdown.
//!
//! `axum::serve` has none of these limits, and the admin port is the one part of earshot a
//! stranger may reach: so connections are served here, one hyper HTTP/1.1 connection per
//! task. A semaphore holds `max_connections` permits; a connection that finds none is
//! accepted and closed at once (and counted), so a flood costs a file descriptor for a
//! moment, never a task. hyper's `header_read_timeout` (driven by tokio's timer, so tests
//! control it) cuts off a client that trickles its headers; a watchdog on the socket closes
//! a connection on which no byte moved for `idle_timeout` (a stalled request body, a client
//! that stopped reading); a TLS handshake gets `header_read_timeout` to finish.
//!
//! On shutdown the loop stops accepting, asks every connection to finish its current answer
//! and close, and returns once all are gone (it gets every permit back).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::AdminSettings;
use crate::metrics::{ADMIN_CONNECTIONS_CLOSED, ADMIN_CONNECTIONS_REJECTED};

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// See [`AdminSettings::header_read_timeout`].
    pub header_read_timeout: Duration,
    /// See [`AdminSettings::idle_timeout`].
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits of `settings`.
    pub fn of(settings: &AdminSettings) -> Limits {
        Limits {
            max_connections: settings.max_connections.max(1),
            header_read_timeout: settings.header_read_timeout,
            idle_timeout: settings.idle_timeout,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then closes every connection
/// gracefully and returns when all are closed.
pub async fn run(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let (stop_tx, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: give connections time to close
                    // instead of spinning on the error.
                    warn!(error = %e, "admin server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics::counter!(ADMIN_CONNECTIONS_REJECTED, "reason" => "limit").increment(1);
            debug!(
                max = limits.max_connections,
                "admin connection refused: too many open"
            );
            drop(stream);
            continue;
        };
        let (app, acceptor, stop) = (app.clone(), acceptor.clone(), stop.clone());
        tokio::spawn(async move {
            connection(stream, app, acceptor, limits, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every permit back: every connection has closed.
    let _ = permits.acquire_many(limits.max_connections as u32).await;
}

/// One connection: the TLS handshake (bounded), then HTTP/1.1 until the client leaves, a
/// timeout or shutdown.
async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stop: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let stream = Watched {
        io: stream,
        activity: activity.clone(),
    };
    match acceptor {
        None => serve_http(stream, app, limits, stop, activity).await,
        Some(acceptor) => {
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => serve_http(tls, app, limits, stop, activity).await,
                Ok(Err(e)) => {
                    metrics::counter!(ADMIN_CONNECTIONS_CLOSED, "reason" => "tls_handshake")
                        .increment(1);
                    debug!(error = %e, "admin TLS handshake failed");
                }
                Err(_) => {
                    metrics::counter!(ADMIN_CONNECTIONS_CLOSED, "reason" => "tls_handshake")
                        .increment(1);
                    debug!("admin TLS handshake timed out");
                }
            }
        }
    }
}

async fn serve_http<I>(
    io: I,
    app: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    activity: Activity,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        let idle_until = activity.last() + limits.idle_timeout;
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    if e.is_timeout() {
                        metrics::counter!(ADMIN_CONNECTIONS_CLOSED, "reason" => "header_timeout")
                            .increment(1);
                        debug!("admin connection closed: request headers too slow");
                    } else {
                        debug!(error = %e, "admin connection ended with an error");
                    }
                }
                return;
            }
            _ = stop.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(idle_until) => {
                if activity.last() + limits.idle_timeout <= Instant::now() {
                    metrics::counter!(ADMIN_CONNECTIONS_CLOSED, "reason" => "idle_timeout")
                        .increment(1);
                    debug!("admin connection closed: idle");
                    return;
                }
            }
        }
    }
}

/// When a byte last moved on a connection.
#[derive(Clone)]
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// A socket that records when bytes move, for the idle timeout.
struct Watched<T> {
    io: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
