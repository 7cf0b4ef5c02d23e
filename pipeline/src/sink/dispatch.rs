//! The dispatcher of one queue: reads its entries from the outbox, delivers them, removes what
//! was delivered, retries what failed, and dead-letters what cannot be delivered.
//!
//! Input → output: outbox entries of one queue, in write order → attempts through the queue's
//! sink → acks (entry removed), retries (attempt count and error kept in the entry), dead
//! letters (entry moved to the dead-letter store). What it counts:
//! `earshot_webhook_deliveries_total{queue,outcome}`, `earshot_queue_over_budget_total`,
//! and the gauges of depth, dead letters, breaker and disabled state.
//!
//! Memory is bounded by the window: at most `window` entries of a queue are held in memory
//! (being attempted or waiting for their retry); the rest stays on disk until there is room.
//! When the endpoint is down, the window fills with entries waiting for their retry and no
//! more are read, while the circuit breaker keeps them from burning their attempts.
//!
//! Why entries are read back from the store instead of handed over in memory: after a restart
//! the store is the only copy, so reading from it is the one path that is always exercised.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use super::backing::{Local, QueueBacking};
use super::breaker::{Breaker, BreakerSettings, BreakerState};
use super::cases::{self, Case, CaseSettings, Keys};
use super::file::LineWriter;
use super::nats::{self, NatsTarget};
use super::payload::{EventType, Latency, PayloadFormat};
use super::webhook::{self, Outcome, WebhookTarget};
use crate::metrics::{
    Latencies, CASE_MENTIONS, QUEUE_BREAKER_OPEN, QUEUE_CREDENTIALS_REFUSED, QUEUE_DELETES,
    QUEUE_DISABLED, QUEUE_OVER_BUDGET, WEBHOOK_DELIVERIES, WEBHOOK_RETRY_AFTER_CAPPED,
};
use crate::outbox::entry::{now_us, retracted_mention, Deletion, Entry, Event};
use crate::outbox::queue::QueueShared;
use crate::outbox::store::Store;

/// How a queue delivers.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Attempts before an entry is dead-lettered.
    pub max_attempts: u32,
    /// Retry ceilings ([`super::retry`]).
    pub retry_schedule: Vec<Duration>,
    /// Attempts in flight at once (1 for ordered queues).
    pub concurrency: usize,
    /// Only the oldest entry may be attempted.
    pub ordered: bool,
    /// Ingest → delivery budget.
    pub latency_budget: Option<Duration>,
    /// Circuit breaker.
    pub breaker: BreakerSettings,
    /// Failing this long without a success disables the queue.
    pub disable_after: Option<Duration>,
    /// Mentions continuing a case go as follow-ups ([`super::cases`]); `None`: every mention
    /// opens its own ticket. Applies to webhook queues whose template has a `[followup]`.
    pub cases: Option<CaseSettings>,
}

impl DispatchSettings {
    /// Entries held in memory at once: enough to keep `concurrency` attempts busy while some
    /// wait for their retry.
    pub fn window(&self) -> usize {
        if self.ordered {
            1
        } else {
            (self.concurrency * 8).clamp(16, 4096)
        }
    }
}

/// The sink behind a dispatcher.
pub enum Deliverer {
    /// Signed HTTP POST.
    Webhook(WebhookTarget),
    /// JetStream publish.
    Nats(NatsTarget),
    /// NDJSON lines to a file or stdout.
    Lines(LineWriter),
}

/// How long a dispatcher sleeps when nothing wakes it, to pick up entries that reached the
/// store by another path (a replay through the admin server) even without a notification.
const POLL: Duration = Duration::from_secs(1);

/// How often a dispatcher forgets its queue's cases past `keep`.
const PRUNE_CASES_EVERY: Duration = Duration::from_secs(600);

/// Runs the dispatcher of one queue over the local outbox until it is closed and empty, or
/// stopped.
pub async fn run(
    store: Arc<Store>,
    shared: Arc<QueueShared>,
    deliverer: Deliverer,
    settings: DispatchSettings,
    latencies: Latencies,
) {
    run_on(
        Arc::new(Local(store)),
        shared,
        deliverer,
        settings,
        latencies,
    )
    .await
}

/// Runs the dispatcher of one queue over `store` until it is closed and empty, or stopped.
pub async fn run_on(
    store: Arc<dyn QueueBacking>,
    shared: Arc<QueueShared>,
    deliverer: Deliverer,
    settings: DispatchSettings,
    latencies: Latencies,
) {
    match deliverer {
        Deliverer::Webhook(target) => {
            Remote::new(store, shared, Target::Webhook(target), settings, latencies)
                .run()
                .await
        }
        Deliverer::Nats(target) => {
            Remote::new(store, shared, Target::Nats(target), settings, latencies)
                .run()
                .await
        }
        Deliverer::Lines(writer) => lines(store, shared, writer, latencies).await,
    }
}

/// Sends a `mention.deleted`: to a CRM as a note on the ticket of the mention's case (found
/// by its post's thread key), to the generic envelope or a NATS subject as it is. A queue
/// that cannot say it (a template without `[deleted]`, no ticket known) counts it `not_sent`
/// and is done with it.
async fn deletion(
    target: &Target,
    store: &dyn QueueBacking,
    queue: &str,
    entry: &Entry,
    n: u32,
    latency: Latency,
    cases_on: bool,
) -> webhook::Attempt {
    let not_sent = |why: &str| {
        metrics::counter!(QUEUE_DELETES, "queue" => queue.to_string(), "outcome" => "not_sent")
            .increment(1);
        webhook::Attempt::new(Outcome::Delivered, format!("deletion not sent: {why}"))
    };
    let case = match target {
        Target::Webhook(t) if t.payload.format() != PayloadFormat::Generic => {
            if !t.payload.handles(EventType::MentionDeleted) {
                return not_sent("the queue's template has no [deleted] section");
            }
            if !cases_on {
                return not_sent(
                    "the queue keeps no cases (cases.follow_ups is off), so no ticket is known",
                );
            }
            let key = serde_json::from_str::<Deletion>(entry.data.get())
                .map(|d| format!("post:{}", d.post.thread_key));
            let found = match &key {
                Ok(k) => store.cases(queue, &[k.as_str()]).await.ok(),
                Err(_) => None,
            };
            match found
                .and_then(|v| v.into_iter().next().flatten())
                .and_then(|b| Case::from_bytes(&b))
                .filter(|c| c.ticket_id.is_some())
            {
                Some(c) => Some(c),
                None => return not_sent("no ticket is known for the mention"),
            }
        }
        _ => None,
    };
    let a = target.attempt(entry, n, latency, case.as_ref()).await;
    if a.outcome == Outcome::Delivered {
        metrics::counter!(QUEUE_DELETES, "queue" => queue.to_string(), "outcome" => "notified")
            .increment(1);
    }
    a
}

fn count(queue: &str, outcome: &'static str, n: u64) {
    metrics::counter!(WEBHOOK_DELIVERIES, "queue" => queue.to_string(), "outcome" => outcome)
        .increment(n);
}

/// File and stdout queues: write entries in order, in batches; an I/O error is retried after
/// a pause, never skipped.
async fn lines(
    store: Arc<dyn QueueBacking>,
    shared: Arc<QueueShared>,
    mut writer: LineWriter,
    lat: Latencies,
) {
    let q = shared.id.clone();
    let mut after = 0u64;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let closed = shared.closed.load(Ordering::Relaxed);
        let (batch, broken) = match store.read(&q, after, 512).await {
            Ok(r) => r,
            Err(e) => {
                error!(queue = %q, error = %e, "cannot read the outbox; retrying");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if !broken.is_empty() {
            bury_broken(&*store, &shared, &broken).await;
            after = after.max(*broken.iter().max().unwrap_or(&0));
        }
        if batch.is_empty() {
            if closed {
                break;
            }
            let _ = tokio::time::timeout(POLL, shared.notify.notified()).await;
            continue;
        }
        // A file or stdout queue keeps its lines: a deletion is counted, not written (the
        // lines are the mention contract only).
        let deletions = batch
            .iter()
            .filter(|s| s.entry.event == Event::MentionDeleted)
            .count() as u64;
        if deletions > 0 {
            metrics::counter!(QUEUE_DELETES, "queue" => q.clone(), "outcome" => "not_sent")
                .increment(deletions);
            for s in &batch {
                if s.entry.event == Event::MentionDeleted {
                    if let Some(mid) = retracted_mention(&s.entry.data) {
                        shared.forget_retraction(&mid);
                    }
                }
            }
        }
        let lines = batch
            .iter()
            .filter(|s| s.entry.event != Event::MentionDeleted)
            .map(|s| s.entry.data.get());
        match writer.write(lines).await {
            Ok(()) => {
                let seqs: Vec<u64> = batch.iter().map(|s| s.seq).collect();
                after = *seqs.last().unwrap_or(&after);
                if let Err(e) = store.ack(&q, &seqs).await {
                    error!(queue = %q, error = %e, "cannot remove delivered entries");
                }
                shared.sub_depth(seqs.len() as u64);
                count(&q, "delivered", seqs.len() as u64);
                let now = now_us();
                for s in &batch {
                    lat.record_delivery(Duration::from_micros(
                        now.saturating_sub(s.entry.received_us),
                    ));
                }
                shared.export();
            }
            Err(e) => {
                error!(queue = %q, error = %e, "cannot write mentions; retrying");
                tokio::time::sleep(POLL).await;
            }
        }
    }
    let _ = writer.finish().await;
    shared.export();
    debug!(queue = %q, "dispatcher finished");
}

async fn bury_broken(store: &dyn QueueBacking, shared: &QueueShared, seqs: &[u64]) {
    let items: Vec<(u64, Option<&Entry>)> = seqs.iter().map(|&s| (s, None)).collect();
    match store.bury(&shared.id, &items).await {
        Ok(()) => {
            error!(queue = %shared.id, entries = seqs.len(),
                "outbox entries that no longer parse were moved to the dead-letter store");
            shared.sub_depth(seqs.len() as u64);
            shared.dead.fetch_add(seqs.len() as u64, Ordering::Relaxed);
        }
        Err(e) => error!(queue = %shared.id, error = %e, "cannot move broken entries"),
    }
}

struct Slot {
    entry: Entry,
    due: Instant,
    running: bool,
    /// The mention's case keys, when the queue sends follow-ups.
    keys: Option<Arc<Keys>>,
    /// For a `mention.deleted` entry: the mention it retracts.
    retracts: Option<String>,
}

/// What a [`Remote`] queue delivers to, one attempt at a time.
#[derive(Debug)]
enum Target {
    Webhook(WebhookTarget),
    Nats(NatsTarget),
}

impl Target {
    async fn attempt(
        &self,
        entry: &Entry,
        n: u32,
        latency: Latency,
        case: Option<&Case>,
    ) -> webhook::Attempt {
        match self {
            Target::Webhook(t) => webhook::attempt(t, entry, n, latency, case).await,
            Target::Nats(t) => nats::attempt(t, entry).await,
        }
    }

    /// Whether mentions can go as follow-ups: a webhook whose format has them.
    fn follows_up(&self) -> bool {
        match self {
            Target::Webhook(t) => t.payload.handles(EventType::MentionFollowup),
            Target::Nats(_) => false,
        }
    }

    /// Whether a delivered create opened a case that follow-ups can address: the generic
    /// envelope names the first mention; a CRM needs the ticket id from its answer.
    fn opened(&self, ticket_id: Option<&str>) -> bool {
        match self {
            Target::Webhook(t) => {
                t.payload.format() == PayloadFormat::Generic || ticket_id.is_some()
            }
            Target::Nats(_) => false,
        }
    }
}

/// The case `entry` continues, looked up in `store` (a failed lookup is logged and makes a
/// ticket of its own: a second ticket is better than a mention held back).
async fn find_case(
    store: &dyn QueueBacking,
    queue: &str,
    keys: &Keys,
    entry: &Entry,
    s: &CaseSettings,
) -> Option<Case> {
    let lookups = keys.lookups();
    match store.cases(queue, &lookups).await {
        Ok(found) => {
            let found: Vec<Option<Case>> = found
                .iter()
                .map(|v| v.as_deref().and_then(Case::from_bytes))
                .collect();
            cases::choose(keys, &found, &entry.id, now_us(), s)
        }
        Err(e) => {
            warn!(queue = %queue, error = %e, "cannot look the mention's case up; it opens a ticket of its own");
            None
        }
    }
}

/// Keeps the case a delivered mention opened or continued, under its own keys.
async fn keep_case(store: &dyn QueueBacking, queue: &str, keys: &Keys, case: &Case) {
    let records = keys.records();
    if let Err(e) = store.record_case(queue, &records, &case.to_bytes()).await {
        warn!(queue = %queue, error = %e, "cannot keep the mention's case; the next mention of its thread opens a ticket of its own");
    }
}

/// The dispatcher of a queue whose sink is across the network (a webhook, a NATS stream):
/// concurrent attempts, the retry schedule with jitter, `Retry-After`, the breaker, ordering,
/// disabling and dead letters.
struct Remote {
    store: Arc<dyn QueueBacking>,
    shared: Arc<QueueShared>,
    target: Arc<Target>,
    s: DispatchSettings,
    lat: Latencies,
    slots: BTreeMap<u64, Slot>,
    read_after: u64,
    /// Attempts in flight: the entry's key, how it ended, and whether it was the breaker's
    /// probe.
    tasks: JoinSet<(u64, webhook::Attempt, bool)>,
    /// The entry key and probe flag of each attempt in flight, by task: what a panicked
    /// attempt was about, since its result never comes.
    in_flight: std::collections::HashMap<tokio::task::Id, (u64, bool)>,
    breaker: Breaker,
    disabled: bool,
    rng: fastrand::Rng,
    acks: Vec<u64>,
    /// Follow-ups: the settings, when the queue and its target send them.
    cases: Option<CaseSettings>,
    next_prune: Instant,
    /// Retracted mentions dropped before they were sent: their `mention.deleted` is dropped
    /// too.
    dropped: std::collections::HashSet<String>,
}

impl Remote {
    fn new(
        store: Arc<dyn QueueBacking>,
        shared: Arc<QueueShared>,
        target: Target,
        s: DispatchSettings,
        lat: Latencies,
    ) -> Self {
        let cases = s.cases.filter(|_| target.follows_up());
        Self {
            cases,
            next_prune: Instant::now(),
            dropped: std::collections::HashSet::new(),
            breaker: Breaker::new(s.breaker),
            store,
            shared,
            target: Arc::new(target),
            s,
            lat,
            slots: BTreeMap::new(),
            read_after: 0,
            tasks: JoinSet::new(),
            in_flight: std::collections::HashMap::new(),
            disabled: false,
            rng: fastrand::Rng::new(),
            acks: Vec::new(),
        }
    }

    async fn run(mut self) {
        let q = self.shared.id.clone();
        let gauge_breaker = metrics::gauge!(QUEUE_BREAKER_OPEN, "queue" => q.clone());
        let gauge_disabled = metrics::gauge!(QUEUE_DISABLED, "queue" => q.clone());
        gauge_disabled.set(0.0);
        loop {
            let now = Instant::now();
            if self.shared.stop.load(Ordering::Relaxed) {
                self.tasks.abort_all();
                break;
            }
            if self.shared.reenable.swap(false, Ordering::Relaxed) && self.disabled {
                info!(queue = %q, "queue enabled again");
                self.disabled = false;
                self.breaker = Breaker::new(self.s.breaker);
                self.read_after = 0;
            }
            if !self.disabled && self.past_disable_limit(now) {
                self.disable(now).await;
            }
            self.shared.disabled.store(self.disabled, Ordering::Relaxed);
            gauge_disabled.set(if self.disabled { 1.0 } else { 0.0 });
            gauge_breaker.set(match self.breaker.state(now) {
                BreakerState::Closed => 0.0,
                _ => 1.0,
            });
            let read_nothing = self.refill(now).await;
            self.prune_cases(now).await;
            self.start_due(now);
            self.flush_acks().await;
            if self.shared.closed.load(Ordering::Relaxed)
                && self.slots.is_empty()
                && self.tasks.is_empty()
                && read_nothing
            {
                break;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.joined(done).await;
                    // Take every other attempt that has ended too, so their acks share one
                    // store transaction and the window refills in one read.
                    while let Some(done) = self.tasks.try_join_next_with_id() {
                        self.joined(done).await;
                    }
                }
                _ = self.shared.notify.notified() => {}
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
        self.flush_acks().await;
        self.shared.export();
        debug!(queue = %q, "dispatcher finished");
    }

    /// An attempt task ended: with its result, or without one (it panicked, or was aborted
    /// when the queue was disabled or stopped).
    async fn joined(
        &mut self,
        done: Result<(tokio::task::Id, (u64, webhook::Attempt, bool)), tokio::task::JoinError>,
    ) {
        match done {
            Ok((id, (seq, attempt, probe))) => {
                self.in_flight.remove(&id);
                self.finished(seq, attempt, probe).await;
            }
            Err(e) => {
                let Some((seq, probe)) = self.in_flight.remove(&e.id()) else {
                    return;
                };
                if !e.is_panic() {
                    // Aborted: the entry is still in the store and is read again.
                    if let Some(slot) = self.slots.get_mut(&seq) {
                        slot.running = false;
                    }
                    return;
                }
                // A panic is a bug in earshot, most likely about this entry (its payload):
                // trying it again would panic again, and an ordered queue would stall behind
                // it. It goes to the dead-letter store, where it waits for a fixed earshot
                // and a replay; the panic hook has started a clean shutdown meanwhile. It says
                // nothing about the endpoint, but a probe that never answered must not leave
                // the breaker waiting for it: it counts as a failed probe.
                if probe {
                    self.breaker.failed(Instant::now());
                }
                let Some(mut slot) = self.slots.remove(&seq) else {
                    return;
                };
                count(&self.shared.id, "panicked", 1);
                error!(queue = %self.shared.id, id = %slot.entry.id,
                    "a delivery attempt panicked; the entry goes to the dead-letter store");
                slot.entry.attempts += 1;
                slot.entry.last_error = Some(
                    "the delivery attempt panicked (a bug in earshot); replay it once fixed".into(),
                );
                self.bury(&mut [(seq, slot.entry)]).await;
            }
        }
    }

    fn past_disable_limit(&self, now: Instant) -> bool {
        // A queue waiting for its credentials keeps its backlog for the operator who fixes
        // them; disabling would dead-letter it.
        if self.shared.credentials_refused.load(Ordering::Relaxed) {
            return false;
        }
        match (self.s.disable_after, self.breaker.failing_for(now)) {
            (Some(limit), Some(failing)) => failing >= limit,
            _ => false,
        }
    }

    /// The endpoint has failed for too long: everything of this queue, in memory and in the
    /// store, moves to the dead-letter store until a replay re-enables the queue.
    async fn disable(&mut self, now: Instant) {
        self.disabled = true;
        let failing = self.breaker.failing_for(now).unwrap_or_default();
        error!(queue = %self.shared.id, failing_s = failing.as_secs(),
            "the endpoint has failed for longer than disable_after; the queue is disabled and its entries go to the dead-letter store (`earshot dlq replay` enables it again)");
        self.tasks.abort_all();
        let reason = format!(
            "queue disabled: the endpoint failed for {}s",
            failing.as_secs()
        );
        let slots = std::mem::take(&mut self.slots);
        let mut items: Vec<(u64, Entry)> = slots
            .into_iter()
            .map(|(seq, mut slot)| {
                slot.entry.last_error.get_or_insert_with(|| reason.clone());
                (seq, slot.entry)
            })
            .collect();
        self.bury(&mut items).await;
    }

    async fn bury(&mut self, items: &mut [(u64, Entry)]) {
        if items.is_empty() {
            return;
        }
        let refs: Vec<(u64, Option<&Entry>)> = items.iter().map(|(s, e)| (*s, Some(e))).collect();
        match self.store.bury(&self.shared.id, &refs).await {
            Ok(()) => {
                self.shared.sub_depth(items.len() as u64);
                self.shared
                    .dead
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                self.shared.export();
            }
            Err(e) => error!(queue = %self.shared.id, error = %e,
                "cannot move entries to the dead-letter store; they stay in the outbox"),
        }
    }

    /// Reads entries into the window. Returns true when the store had nothing new.
    async fn refill(&mut self, now: Instant) -> bool {
        let window = self.s.window();
        let room = window.saturating_sub(self.slots.len());
        // Read in chunks of a quarter window at least: one read transaction per delivery
        // would cost more than the delivery.
        if room == 0 || (room < window / 4 && !self.slots.is_empty()) {
            return false;
        }
        let (batch, broken) = match self
            .store
            .read(&self.shared.id, self.read_after, room)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                error!(queue = %self.shared.id, error = %e, "cannot read the outbox");
                return false;
            }
        };
        if !broken.is_empty() {
            bury_broken(&*self.store, &self.shared, &broken).await;
            self.read_after = self.read_after.max(*broken.iter().max().unwrap_or(&0));
        }
        let nothing = batch.is_empty() && broken.is_empty();
        if self.disabled {
            let mut items: Vec<(u64, Entry)> = batch
                .into_iter()
                .map(|s| {
                    let mut e = s.entry;
                    e.last_error
                        .get_or_insert_with(|| "queue disabled".to_string());
                    (s.seq, e)
                })
                .collect();
            self.bury(&mut items).await;
            return nothing;
        }
        for s in batch {
            self.read_after = s.seq;
            let keys = match (&self.cases, s.entry.event) {
                (Some(_), Event::MentionCreated) => Keys::of(&s.entry.data).map(Arc::new),
                _ => None,
            };
            let retracts = (s.entry.event == Event::MentionDeleted)
                .then(|| retracted_mention(&s.entry.data))
                .flatten();
            if let Some(mid) = &retracts {
                // Known again after a restart: the entry itself is the lasting record.
                self.shared.retract(mid);
            }
            self.slots.insert(
                s.seq,
                Slot {
                    entry: s.entry,
                    due: now,
                    running: false,
                    keys,
                    retracts,
                },
            );
        }
        nothing
    }

    /// Forgets the queue's cases past `keep`, every [`PRUNE_CASES_EVERY`].
    async fn prune_cases(&mut self, now: Instant) {
        let Some(s) = self.cases else {
            return;
        };
        if now < self.next_prune {
            return;
        }
        self.next_prune = now + PRUNE_CASES_EVERY;
        match self
            .store
            .prune_cases(&self.shared.id, now_us(), s.keep)
            .await
        {
            Ok(0) => {}
            Ok(n) => debug!(queue = %self.shared.id, cases = n, "forgot cases past keep"),
            Err(e) => warn!(queue = %self.shared.id, error = %e, "cannot prune the queue's cases"),
        }
    }

    /// Drops waiting mentions whose posts were deleted (never sent), and the deletions of
    /// mentions dropped so.
    fn drop_retracted(&mut self) {
        // Nothing retracted (the usual case): no lock per entry on every turn of the loop.
        let none = self.dropped.is_empty()
            && self
                .shared
                .retracted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty();
        if none {
            return;
        }
        let mut gone: Vec<u64> = Vec::new();
        for (seq, slot) in &self.slots {
            if slot.running {
                continue;
            }
            match (&slot.retracts, slot.entry.event) {
                (None, Event::MentionCreated) if self.shared.is_retracted(&slot.entry.id) => {
                    gone.push(*seq);
                }
                (Some(mid), _) if self.dropped.contains(mid) => gone.push(*seq),
                _ => {}
            }
        }
        for seq in gone {
            let Some(slot) = self.slots.remove(&seq) else {
                continue;
            };
            match slot.retracts {
                None => {
                    metrics::counter!(QUEUE_DELETES, "queue" => self.shared.id.clone(), "outcome" => "dropped")
                        .increment(1);
                    debug!(queue = %self.shared.id, id = %slot.entry.id, "the post was deleted before its mention was sent; dropped");
                    self.dropped.insert(slot.entry.id);
                }
                Some(mid) => {
                    self.dropped.remove(&mid);
                    self.shared.forget_retraction(&mid);
                }
            }
            self.acks.push(seq);
        }
    }

    fn start_due(&mut self, now: Instant) {
        if self.disabled {
            return;
        }
        self.drop_retracted();
        // A deletion waits while its mention is still here (being sent, or waiting to be);
        // looked at only when the window holds a deletion.
        let present: HashSet<&str> = if self.slots.values().any(|s| s.retracts.is_some()) {
            self.slots
                .values()
                .filter(|s| s.entry.event == Event::MentionCreated)
                .map(|s| s.entry.id.as_str())
                .collect()
        } else {
            HashSet::new()
        };
        let waiting: HashSet<u64> = self
            .slots
            .iter()
            .filter(|(_, s)| s.retracts.as_deref().is_some_and(|m| present.contains(m)))
            .map(|(seq, _)| *seq)
            .collect();
        let concurrency = if self.s.ordered {
            1
        } else {
            self.s.concurrency.max(1)
        };
        // Mentions that may open a case, attempted now: one of the same author or thread
        // waits for it, so that it goes as a follow-up of the ticket it opens.
        let mut opening: HashSet<String> = self
            .slots
            .values()
            .filter(|s| s.running)
            .filter_map(|s| s.keys.as_ref())
            .flat_map(|k| k.records().map(str::to_string))
            .collect();
        let candidates: Vec<u64> = if self.s.ordered {
            self.slots.keys().next().copied().into_iter().collect()
        } else {
            self.slots
                .iter()
                .filter(|(_, s)| !s.running && s.due <= now)
                .map(|(k, _)| *k)
                .collect()
        };
        for seq in candidates {
            if self.tasks.len() >= concurrency || !self.breaker.allows(now) {
                break;
            }
            let Some(slot) = self.slots.get_mut(&seq) else {
                continue;
            };
            if slot.running || slot.due > now {
                continue;
            }
            if waiting.contains(&seq) {
                continue;
            }
            if let Some(keys) = &slot.keys {
                if keys.waits_for(&opening) {
                    continue;
                }
                opening.extend(keys.records().map(str::to_string));
            }
            slot.running = true;
            let probe = self.breaker.state(now) == BreakerState::HalfOpen;
            self.breaker.started(now);
            let entry = slot.entry.clone();
            let target = self.target.clone();
            let elapsed = Duration::from_micros(now_us().saturating_sub(entry.received_us));
            let latency = Latency {
                elapsed_ms: elapsed.as_millis() as u64,
                budget_ms: self.s.latency_budget.map(|b| b.as_millis() as u64),
                over_budget: self.s.latency_budget.is_some_and(|b| elapsed > b),
            };
            let n = entry.attempts + 1;
            let follow_up = self.cases.zip(slot.keys.clone());
            let store = self.store.clone();
            let queue = self.shared.id.clone();
            let cases_on = self.cases.is_some();
            let handle = self.tasks.spawn(async move {
                #[cfg(feature = "fault-injection")]
                crate::fault::delivery(&entry.id);
                if entry.event == Event::MentionDeleted {
                    let a = deletion(&target, &*store, &queue, &entry, n, latency, cases_on).await;
                    return (seq, a, probe);
                }
                let Some((settings, keys)) = follow_up else {
                    let a = target.attempt(&entry, n, latency, None).await;
                    return (seq, a, probe);
                };
                let mut case = find_case(&*store, &queue, &keys, &entry, &settings).await;
                let mut a = target.attempt(&entry, n, latency, case.as_ref()).await;
                if case.is_some() && a.outcome == Outcome::Rejected && a.gone {
                    // The case's ticket is gone from the CRM (deleted, merged away): the
                    // mention opens a ticket of its own, which the thread goes on with.
                    debug!(queue = %queue, id = %entry.id, "the case's ticket is gone; opening a new one");
                    case = None;
                    a = target.attempt(&entry, n, latency, None).await;
                }
                if a.outcome == Outcome::Delivered {
                    let (kept, kind) = match case {
                        // The case goes on: its last mention is this one.
                        Some(c) => (Some(Case { at_us: now_us(), ..c }), "followup"),
                        None if target.opened(a.ticket_id.as_deref()) => (
                            Some(Case {
                                mention_id: entry.id.clone(),
                                ticket_id: a.ticket_id.clone(),
                                at_us: now_us(),
                            }),
                            "opened",
                        ),
                        None => (None, "opened"),
                    };
                    if let Some(c) = &kept {
                        keep_case(&*store, &queue, &keys, c).await;
                    }
                    metrics::counter!(CASE_MENTIONS, "queue" => queue, "kind" => kind).increment(1);
                }
                (seq, a, probe)
            });
            self.in_flight.insert(handle.id(), (seq, probe));
        }
    }

    async fn finished(&mut self, seq: u64, attempt: webhook::Attempt, probe: bool) {
        let now = Instant::now();
        let Some(mut slot) = self.slots.remove(&seq) else {
            return;
        };
        slot.running = false;
        let retracts = slot.retracts.clone();
        self.finished_slot(seq, slot, attempt, probe, now).await;
        self.settle_retraction(seq, retracts.as_deref());
    }

    async fn finished_slot(
        &mut self,
        seq: u64,
        mut slot: Slot,
        attempt: webhook::Attempt,
        probe: bool,
        now: Instant,
    ) {
        let q = self.shared.id.clone();
        // A failed probe says the endpoint is still down, nothing about this entry: it does
        // not use up one of the entry's attempts, so an outage of any length dead-letters
        // nothing (past `disable_after`, the queue is disabled instead).
        // Refused credentials say nothing about the entry either.
        if !(probe && matches!(attempt.outcome, Outcome::Retry(_)))
            && attempt.outcome != Outcome::Unauthorized
        {
            slot.entry.attempts += 1;
        }
        match attempt.outcome {
            Outcome::Delivered => {
                let was_failing = self.breaker.state(now) != BreakerState::Closed
                    || self.breaker.failing_for(now).is_some();
                self.breaker.succeeded();
                if was_failing {
                    info!(queue = %q, "the endpoint accepts deliveries again");
                    // Entries waiting out a retry failed because of the outage, not
                    // because of themselves: they go now.
                    for s in self.slots.values_mut() {
                        s.due = s.due.min(now);
                    }
                }
                if self
                    .shared
                    .credentials_refused
                    .swap(false, Ordering::Relaxed)
                {
                    info!(queue = %q, "the endpoint accepts the queue's credentials again");
                    metrics::gauge!(QUEUE_CREDENTIALS_REFUSED, "queue" => q.clone()).set(0.0);
                }
                count(&q, "delivered", 1);
                let elapsed =
                    Duration::from_micros(now_us().saturating_sub(slot.entry.received_us));
                self.lat.record_delivery(elapsed);
                if self.s.latency_budget.is_some_and(|b| elapsed > b) {
                    metrics::counter!(QUEUE_OVER_BUDGET, "queue" => q.clone()).increment(1);
                }
                self.acks.push(seq);
            }
            Outcome::Rejected | Outcome::Redirected => {
                // The endpoint answered: it is up, just refusing this entry.
                self.breaker.succeeded();
                let outcome = match attempt.outcome {
                    Outcome::Redirected => "redirected",
                    _ => "rejected",
                };
                count(&q, outcome, 1);
                warn!(queue = %q, id = %slot.entry.id, detail = %attempt.detail,
                    "the endpoint refused an entry; it goes to the dead-letter store");
                slot.entry.last_error = Some(attempt.detail);
                self.bury(&mut [(seq, slot.entry)]).await;
            }
            Outcome::Unauthorized => {
                // Only an operator can fix credentials: the entry waits, keeps its attempts
                // and is never dead-lettered for it; the breaker spaces the tries out.
                count(&q, "unauthorized", 1);
                if !self
                    .shared
                    .credentials_refused
                    .swap(true, Ordering::Relaxed)
                {
                    error!(queue = %q, detail = %attempt.detail,
                        "the queue's credentials are refused: its entries wait, none is dead-lettered, until they are accepted again");
                    metrics::gauge!(QUEUE_CREDENTIALS_REFUSED, "queue" => q.clone()).set(1.0);
                }
                self.shared.set_refusal(&attempt.detail);
                slot.entry.last_error = Some(attempt.detail);
                self.breaker.failed(now);
                slot.due = super::breaker::later(now, self.s.breaker.cooldown);
                if let Err(e) = self.store.update(&q, seq, &slot.entry).await {
                    debug!(queue = %q, error = %e, "cannot record the last error");
                }
                self.slots.insert(seq, slot);
            }
            Outcome::Retry(after) => {
                slot.entry.last_error = Some(attempt.detail.clone());
                if attempt.retry_after_capped {
                    metrics::counter!(WEBHOOK_RETRY_AFTER_CAPPED, "queue" => q.clone())
                        .increment(1);
                    warn!(queue = %q, cap_s = webhook::MAX_RETRY_AFTER.as_secs(),
                        "the endpoint asked to wait longer than the cap; waiting the cap");
                }
                match after {
                    Some(d) => self.breaker.pause(now, super::breaker::later(now, d)),
                    None => {
                        if self.breaker.failed(now) {
                            warn!(queue = %q, detail = %attempt.detail,
                                "circuit breaker open: deliveries paused");
                        }
                    }
                }
                if slot.entry.attempts >= self.s.max_attempts.max(1) {
                    count(&q, "dead", 1);
                    warn!(queue = %q, id = %slot.entry.id, attempts = slot.entry.attempts,
                        detail = %attempt.detail, "giving up after the last attempt; the entry goes to the dead-letter store");
                    self.bury(&mut [(seq, slot.entry)]).await;
                    return;
                }
                count(&q, "retry", 1);
                debug!(queue = %q, id = %slot.entry.id, detail = %attempt.detail, "attempt failed");
                let wait = super::retry::delay(
                    &self.s.retry_schedule,
                    slot.entry.attempts,
                    after,
                    &mut self.rng,
                );
                slot.due = super::breaker::later(now, wait);
                if let Err(e) = self.store.update(&q, seq, &slot.entry).await {
                    debug!(queue = %q, error = %e, "cannot record the attempt count");
                }
                self.slots.insert(seq, slot);
            }
        }
    }

    /// Forgets the retraction of a `mention.deleted` entry that is done (delivered, or given
    /// up).
    fn settle_retraction(&mut self, seq: u64, retracts: Option<&str>) {
        if let (Some(mid), false) = (retracts, self.slots.contains_key(&seq)) {
            self.dropped.remove(mid);
            self.shared.forget_retraction(mid);
        }
    }

    async fn flush_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let acks = std::mem::take(&mut self.acks);
        if let Err(e) = self.store.ack(&self.shared.id, &acks).await {
            error!(queue = %self.shared.id, error = %e,
                "cannot remove delivered entries; they may be delivered again");
        }
        self.shared.sub_depth(acks.len() as u64);
        self.shared.export();
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = now + POLL;
        let concurrency = if self.s.ordered {
            1
        } else {
            self.s.concurrency.max(1)
        };
        if self.tasks.len() >= concurrency {
            // A finishing attempt wakes the loop.
        } else if !self.breaker.allows(now) {
            if let Some(t) = self.breaker.next_change(now) {
                wake = wake.min(t);
            }
        } else {
            for s in self.slots.values() {
                if !s.running {
                    wake = wake.min(s.due.max(now));
                }
            }
        }
        wake
    }
}
