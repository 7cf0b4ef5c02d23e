//! Leases: one holder at a time for a named role of the cluster (the reader of a source, the
//! spike detector, a queue's deliverer), among the nodes that can take it, kept in a JetStream
//! key-value bucket whose entries expire.
//!
//! A contender takes a free lease by creating its key (which fails while someone holds it) and
//! keeps it by updating the key at the revision it last wrote (which fails if anyone else wrote
//! in between). The bucket's `max_age` is the lease's time to live: a holder that dies stops
//! renewing, its entry expires, and the next contender to poll creates the key. A holder that
//! stops gracefully deletes its key at its revision, so a standby takes over at its next poll.
//!
//! Safety (never two holders at once) rests on time measured from the *send* of each write:
//! the holder counts its lease as held until `sent + ttl - margin`, while the server expires
//! the entry `ttl` after it *received* the write, which is later. So a holder that cannot
//! renew (cut off, stalled) stops acting as holder before the server lets anyone else in,
//! whatever the network did with its write; only the rates of the clocks need to agree, not
//! their readings. The pure part ([`LeaseClock`]) makes these decisions from instants it is
//! given; [`Lease`] drives it against the bucket.

use std::time::Instant;

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::shutdown::Shutdown;

/// The timing of a lease (configured under `[cluster]`).
pub use crate::config::cluster::LeaseSettings;

/// What a contender knows about its own hold, and what it does next: the pure part of a
/// lease, on instants it is given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseClock {
    held: Option<Held>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    /// The revision of the key this holder last wrote.
    revision: u64,
    /// When that write was sent.
    sent: Instant,
}

/// The next thing a contender does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Try to create the key, at or after this instant.
    Acquire(Instant),
    /// Update the key at this revision, at or after this instant.
    Renew(u64, Instant),
}

impl LeaseClock {
    /// Until when the lease is this contender's, if it is at `now`.
    pub fn held_until(&self, now: Instant, s: &LeaseSettings) -> Option<Instant> {
        let h = self.held?;
        let until = h.sent + s.ttl.saturating_sub(s.margin);
        (now < until).then_some(until)
    }

    /// A create or an update sent at `sent` was acknowledged with `revision`.
    pub fn written(&mut self, sent: Instant, revision: u64) {
        self.held = Some(Held { revision, sent });
    }

    /// Someone else wrote the key (an update was refused): the lease is gone.
    pub fn lost(&mut self) {
        self.held = None;
    }

    /// The revision to delete on release, while the lease is held at `now`.
    pub fn release_revision(&self, now: Instant, s: &LeaseSettings) -> Option<u64> {
        self.held_until(now, s)?;
        self.held.map(|h| h.revision)
    }

    /// What to do next, after an attempt that ended at `now` (`failed`: it got no answer, so
    /// the same step is tried again after a poll interval).
    pub fn next(&mut self, now: Instant, failed: bool, s: &LeaseSettings) -> Step {
        if self.held_until(now, s).is_none() {
            // Expired by our own reckoning: whatever the server says, it is not ours.
            self.held = None;
        }
        match self.held {
            Some(h) if failed => Step::Renew(h.revision, now + s.poll_every),
            Some(h) => Step::Renew(h.revision, h.sent + s.renew_every),
            None => Step::Acquire(if failed { now + s.poll_every } else { now }),
        }
    }
}

/// The state a [`Lease`] publishes: until when it is held by this node (None: not held).
pub type HeldUntil = Option<Instant>;

/// One contender for one lease, driving a [`LeaseClock`] against a key of the bucket in a
/// task of its own until shutdown, when it releases the lease if it holds it.
pub struct Lease {
    state: watch::Receiver<HeldUntil>,
    task: JoinHandle<()>,
}

impl Lease {
    /// Contends for `key` in `bucket` (a bucket whose `max_age` is `settings.ttl`, made with
    /// [`bucket_config`]) as `node`.
    pub fn spawn(
        bucket: kv::Store,
        key: String,
        node: String,
        settings: LeaseSettings,
        shutdown: Shutdown,
    ) -> Lease {
        let (tx, state) = watch::channel(None);
        let task = tokio::spawn(contend(bucket, key, node, settings, tx, shutdown));
        Lease { state, task }
    }

    /// Whether this node holds the lease now. Reads the time, so a lease the task could not
    /// renew stops being held when it runs out even if the task is stuck.
    pub fn holds(&self) -> bool {
        self.state
            .borrow()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Waits until this node holds the lease.
    pub async fn acquired(&mut self) {
        let _ = self
            .state
            .wait_for(|until| until.is_some_and(|u| Instant::now() < u))
            .await;
    }

    /// Stops contending at once, without releasing: what a crash of the node looks like to
    /// the others (tests).
    pub fn abandon(self) {
        self.task.abort();
    }

    /// Waits for the task to end (after shutdown, once the lease is released).
    pub async fn finished(self) {
        let _ = self.task.await;
    }
}

/// The settings of the bucket leases with `settings` live in.
pub fn bucket_config(name: &str, settings: &LeaseSettings, replicas: usize) -> kv::Config {
    kv::Config {
        bucket: name.to_string(),
        description: "earshot leases: which node holds which role".into(),
        history: 1,
        max_age: settings.ttl,
        num_replicas: replicas,
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    }
}

async fn contend(
    bucket: kv::Store,
    key: String,
    node: String,
    s: LeaseSettings,
    tx: watch::Sender<HeldUntil>,
    mut shutdown: Shutdown,
) {
    let mut clock = LeaseClock::default();
    let mut step = Step::Acquire(Instant::now());
    loop {
        let at = match step {
            Step::Acquire(at) | Step::Renew(_, at) => at,
        };
        tokio::select! {
            _ = shutdown.recv() => break,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let sent = Instant::now();
        let value = Bytes::from(node.clone());
        // An answer later than the time to live is no answer.
        let limit = s.ttl;
        let failed = match step {
            Step::Acquire(_) => {
                match tokio::time::timeout(limit, bucket.create(&key, value)).await {
                    Ok(Ok(revision)) => {
                        clock.written(sent, revision);
                        info!(lease = %key, node = %node, "lease taken");
                        false
                    }
                    Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => true,
                    Ok(Err(e)) => {
                        debug!(lease = %key, error = %e, "cannot take the lease");
                        true
                    }
                    Err(_) => true,
                }
            }
            Step::Renew(revision, _) => {
                match tokio::time::timeout(limit, bucket.update(&key, value, revision)).await {
                    Ok(Ok(revision)) => {
                        clock.written(sent, revision);
                        false
                    }
                    Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                        warn!(lease = %key, node = %node, "lease lost: another node holds it");
                        clock.lost();
                        false
                    }
                    Ok(Err(e)) => {
                        warn!(lease = %key, error = %e, "cannot renew the lease");
                        true
                    }
                    Err(_) => {
                        warn!(lease = %key, "no answer to the lease renewal");
                        true
                    }
                }
            }
        };
        let now = Instant::now();
        let _ = tx.send(clock.held_until(now, &s));
        step = clock.next(now, failed, &s);
    }
    if let Some(revision) = clock.release_revision(Instant::now(), &s) {
        let _ = tx.send(None);
        match bucket.delete_expect_revision(&key, Some(revision)).await {
            Ok(()) => info!(lease = %key, node = %node, "lease released"),
            Err(e) => warn!(lease = %key, error = %e, "cannot release the lease; it expires"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> LeaseSettings {
        LeaseSettings::default()
    }

    #[test]
    fn a_lease_is_held_until_its_time_to_live_less_the_margin_from_the_send() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = LeaseClock::default();
        assert_eq!(c.next(t0, false, &s), Step::Acquire(t0));
        c.written(t0, 7);
        let until = t0 + Duration::from_millis(5500);
        assert_eq!(c.held_until(t0 + Duration::from_secs(5), &s), Some(until));
        assert_eq!(c.held_until(until, &s), None);
        assert_eq!(c.release_revision(t0, &s), Some(7));
        assert_eq!(c.release_revision(until, &s), None);
    }

    #[test]
    fn the_holder_renews_on_schedule_and_retries_a_failed_renewal_sooner() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = LeaseClock::default();
        c.written(t0, 1);
        let after = t0 + Duration::from_millis(10);
        assert_eq!(c.next(after, false, &s), Step::Renew(1, t0 + s.renew_every));
        // A renewal that got no answer is tried again a poll interval later…
        let t1 = t0 + s.renew_every + Duration::from_millis(50);
        assert_eq!(c.next(t1, true, &s), Step::Renew(1, t1 + s.poll_every));
        // …until the lease runs out by the holder's own clock: then it must take it anew.
        let late = t0 + s.ttl;
        assert_eq!(c.next(late, true, &s), Step::Acquire(late + s.poll_every));
        assert_eq!(c.held_until(late, &s), None);
    }

    #[test]
    fn a_lost_lease_is_contended_for_again_at_once() {
        let s = settings();
        let t0 = Instant::now();
        let mut c = LeaseClock::default();
        c.written(t0, 3);
        c.lost();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(c.held_until(t1, &s), None);
        assert_eq!(c.next(t1, false, &s), Step::Acquire(t1));
        assert_eq!(c.next(t1, true, &s), Step::Acquire(t1 + s.poll_every));
    }

    #[test]
    fn settings_must_fit_two_renewals_and_the_margin_in_the_lease() {
        assert!(settings().validate().is_ok());
        let tight = LeaseSettings {
            ttl: Duration::from_secs(3),
            ..settings()
        };
        let e = tight.validate().unwrap_err();
        assert!(e.contains("two renewals"), "{e}");
        let zero = LeaseSettings {
            poll_every: Duration::ZERO,
            ..settings()
        };
        assert!(zero.validate().is_err());
    }
}
