//! Live hub: what the dashboard at `GET /live` shows, fanned out to every connected browser.
//!
//! Input: the monitor's snapshot document (once a second, [`LiveHub::set_snapshot`]) and
//! routed mentions and spike events ([`LiveHub::publish`]), each already JSON. Output: one
//! [`Viewer`] per browser, yielding the latest snapshot first and then every snapshot,
//! mention and spike as [`LiveMessage`]s, which the admin server writes as Server-Sent Events.
//!
//! Why it is shaped so:
//! - Mentions and spikes go through a `tokio::sync::broadcast` channel of
//!   [`EVENT_CAPACITY`]: publishing never blocks the pipeline, and a browser that cannot keep
//!   up skips what it missed (counted in [`LiveHub::lagged`], and told with a `lagged`
//!   message) instead of holding memory for it.
//! - The snapshot is a `watch` value: a viewer that connects late gets the latest one at
//!   once, and a slow viewer only ever sees the newest, never a queue of stale ones.
//! - [`LiveHub::viewers`] counts connected viewers so the monitor can skip building mention
//!   JSON while nobody watches.
//! - [`LiveHub::close`] ends every viewer: an event stream never finishes on its own, and the
//!   admin server's graceful shutdown waits for every open response, so `admin::serve` closes
//!   the hub when shutdown is signalled. Dropping the hub ends the viewers too.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{broadcast, watch};

/// Mentions and spike events a viewer may fall behind by before it skips. A second of the
/// demo's routed mentions is a few dozen; a browser tab that stalls for longer than this
/// buffer resumes from the present, which is what a live view should show.
pub const EVENT_CAPACITY: usize = 1024;

/// What a published event is; names the Server-Sent Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveKind {
    /// A routed mention (`mention`).
    Mention,
    /// A spike started, updated or ended (`spike`).
    Spike,
}

impl LiveKind {
    /// The event name the browser listens for.
    pub fn event(self) -> &'static str {
        match self {
            LiveKind::Mention => "mention",
            LiveKind::Spike => "spike",
        }
    }
}

/// One message for a viewer: an event name and its JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveMessage {
    /// `snapshot`, `mention`, `spike`, or `lagged` (`{"skipped": n}`: events this viewer
    /// missed because it fell behind).
    pub event: &'static str,
    /// The JSON document, one line.
    pub data: Arc<str>,
}

/// Counters shared by the hub and its viewers; outlives the hub while viewers run.
#[derive(Debug, Default)]
struct Counters {
    viewers: AtomicUsize,
    lagged: AtomicU64,
}

/// The live dashboard's fan-out point. `Send + Sync`, shared behind an `Arc` by the monitor
/// that publishes and the admin server that subscribes.
#[derive(Debug)]
pub struct LiveHub {
    events: broadcast::Sender<(LiveKind, Arc<str>)>,
    snapshot: watch::Sender<Option<Arc<str>>>,
    closed: watch::Sender<bool>,
    counters: Arc<Counters>,
}

impl LiveHub {
    /// A hub with no snapshot yet and no viewers.
    pub fn new() -> Arc<LiveHub> {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        Arc::new(LiveHub {
            events,
            snapshot: watch::channel(None).0,
            closed: watch::channel(false).0,
            counters: Arc::default(),
        })
    }

    /// Replaces the latest snapshot document; every viewer gets it next.
    pub fn set_snapshot(&self, json: String) {
        self.snapshot.send_replace(Some(json.into()));
    }

    /// Sends a mention or spike document to every viewer connected now. Never blocks: a
    /// viewer that is [`EVENT_CAPACITY`] events behind skips the oldest.
    pub fn publish(&self, kind: LiveKind, json: String) {
        // An error only means nobody is connected; the event is for live viewers only.
        let _ = self.events.send((kind, json.into()));
    }

    /// Connected viewers (browsers on `/live/events`).
    pub fn viewers(&self) -> usize {
        self.counters.viewers.load(Ordering::Relaxed)
    }

    /// Events skipped by viewers that fell behind, summed over all viewers since the start.
    pub fn lagged(&self) -> u64 {
        self.counters.lagged.load(Ordering::Relaxed)
    }

    /// Ends every viewer's stream, now and later (a viewer subscribing after this gets the
    /// latest snapshot, then the end). Idempotent.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// A new viewer: the latest snapshot (if there is one yet), then everything published.
    pub fn subscribe(&self) -> Viewer {
        let mut snapshot = self.snapshot.subscribe();
        let first = snapshot
            .borrow_and_update()
            .clone()
            .map(|data| LiveMessage {
                event: "snapshot",
                data,
            });
        self.counters.viewers.fetch_add(1, Ordering::Relaxed);
        Viewer {
            first,
            events: self.events.subscribe(),
            snapshot,
            closed: self.closed.subscribe(),
            counters: self.counters.clone(),
        }
    }
}

/// One connected browser's view of the hub; counted in [`LiveHub::viewers`] until dropped.
#[derive(Debug)]
pub struct Viewer {
    first: Option<LiveMessage>,
    events: broadcast::Receiver<(LiveKind, Arc<str>)>,
    snapshot: watch::Receiver<Option<Arc<str>>>,
    closed: watch::Receiver<bool>,
    counters: Arc<Counters>,
}

impl Viewer {
    /// The next message, or `None` once the hub is closed or dropped. Cancel-safe.
    pub async fn next(&mut self) -> Option<LiveMessage> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            if *self.closed.borrow() {
                return None;
            }
            tokio::select! {
                closed = self.closed.wait_for(|c| *c) => {
                    // Either closed now, or the hub is gone: both end the stream.
                    let _ = closed;
                    return None;
                }
                received = self.events.recv() => match received {
                    Ok((kind, data)) => return Some(LiveMessage { event: kind.event(), data }),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        self.counters.lagged.fetch_add(skipped, Ordering::Relaxed);
                        return Some(LiveMessage {
                            event: "lagged",
                            data: format!("{{\"skipped\":{skipped}}}").into(),
                        });
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
                changed = self.snapshot.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let latest = self.snapshot.borrow_and_update().clone();
                    if let Some(data) = latest {
                        return Some(LiveMessage { event: "snapshot", data });
                    }
                }
            }
        }
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.counters.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The next message, failing the test instead of hanging when none comes.
    async fn next(viewer: &mut Viewer) -> Option<LiveMessage> {
        tokio::time::timeout(Duration::from_secs(5), viewer.next())
            .await
            .expect("the viewer got nothing within 5 s")
    }

    fn message(event: &'static str, data: &str) -> Option<LiveMessage> {
        Some(LiveMessage {
            event,
            data: data.into(),
        })
    }

    #[tokio::test]
    async fn a_late_viewer_gets_the_latest_snapshot_first_then_what_is_published() {
        let hub = LiveHub::new();
        hub.set_snapshot("{\"at\":1}".into());
        hub.set_snapshot("{\"at\":2}".into());
        hub.publish(LiveKind::Mention, "{\"id\":\"before\"}".into());
        let mut viewer = hub.subscribe();
        assert_eq!(next(&mut viewer).await, message("snapshot", "{\"at\":2}"));
        hub.publish(LiveKind::Mention, "{\"id\":\"m1\"}".into());
        hub.publish(LiveKind::Spike, "{\"spike_id\":\"s1\"}".into());
        assert_eq!(
            next(&mut viewer).await,
            message("mention", "{\"id\":\"m1\"}")
        );
        assert_eq!(
            next(&mut viewer).await,
            message("spike", "{\"spike_id\":\"s1\"}")
        );
        hub.set_snapshot("{\"at\":3}".into());
        assert_eq!(next(&mut viewer).await, message("snapshot", "{\"at\":3}"));
    }

    #[tokio::test]
    async fn a_viewer_before_any_snapshot_waits_for_the_first() {
        let hub = LiveHub::new();
        let mut viewer = hub.subscribe();
        let hub2 = hub.clone();
        let waiting = tokio::spawn(async move { viewer.next().await });
        tokio::task::yield_now().await;
        hub2.set_snapshot("{\"at\":1}".into());
        assert_eq!(
            waiting.await.unwrap(),
            message("snapshot", "{\"at\":1}"),
            "the first snapshot is delivered, not skipped"
        );
    }

    #[tokio::test]
    async fn a_slow_viewer_sees_only_the_newest_snapshot() {
        let hub = LiveHub::new();
        let mut viewer = hub.subscribe();
        for at in 1..=5 {
            hub.set_snapshot(format!("{{\"at\":{at}}}"));
        }
        assert_eq!(next(&mut viewer).await, message("snapshot", "{\"at\":5}"));
    }

    #[tokio::test]
    async fn viewers_are_counted_while_connected() {
        let hub = LiveHub::new();
        assert_eq!(hub.viewers(), 0);
        let a = hub.subscribe();
        let b = hub.subscribe();
        assert_eq!(hub.viewers(), 2);
        drop(a);
        assert_eq!(hub.viewers(), 1);
        drop(b);
        assert_eq!(hub.viewers(), 0);
    }

    #[tokio::test]
    async fn a_lagging_viewer_skips_the_oldest_and_is_told_and_counted() {
        let hub = LiveHub::new();
        let mut viewer = hub.subscribe();
        let extra = 10;
        for i in 0..EVENT_CAPACITY + extra {
            hub.publish(LiveKind::Mention, format!("{{\"n\":{i}}}"));
        }
        assert_eq!(
            next(&mut viewer).await,
            message("lagged", &format!("{{\"skipped\":{extra}}}"))
        );
        assert_eq!(hub.lagged(), extra as u64);
        assert_eq!(
            next(&mut viewer).await,
            message("mention", &format!("{{\"n\":{extra}}}")),
            "it resumes with the oldest event still buffered"
        );
    }

    #[tokio::test]
    async fn publishing_without_viewers_is_fine() {
        let hub = LiveHub::new();
        hub.publish(LiveKind::Spike, "{}".into());
        assert_eq!(hub.viewers(), 0);
        assert_eq!(hub.lagged(), 0);
    }

    #[tokio::test]
    async fn closing_the_hub_ends_every_viewer_even_one_waiting() {
        let hub = LiveHub::new();
        hub.set_snapshot("{\"at\":1}".into());
        let mut waiting = hub.subscribe();
        assert!(next(&mut waiting).await.is_some());
        let pending = tokio::spawn(async move { waiting.next().await });
        tokio::task::yield_now().await;
        hub.close();
        hub.close();
        assert_eq!(pending.await.unwrap(), None);
        let mut late = hub.subscribe();
        assert_eq!(next(&mut late).await, message("snapshot", "{\"at\":1}"));
        assert_eq!(next(&mut late).await, None);
        drop(late);
        assert_eq!(hub.viewers(), 0);
    }

    #[tokio::test]
    async fn dropping_the_hub_ends_its_viewers() {
        let hub = LiveHub::new();
        let mut viewer = hub.subscribe();
        drop(hub);
        assert_eq!(next(&mut viewer).await, None);
    }

    #[test]
    fn the_hub_is_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<LiveHub>();
        shareable::<Viewer>();
    }
}
