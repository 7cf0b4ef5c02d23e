//! Running as several nodes on NATS JetStream (`[cluster]`): what the nodes share, and the
//! roles a node can take.
//!
//! The stages are the single node's; what changes is what carries work between them:
//!
//! ```text
//!  source ─► ingest (lease source.<id>) ─► EARSHOT_FRAMES ─► work (every node, one consumer)
//!                 └─ position ─► KV earshot_positions          │ routed mentions, one per queue
//!                                                              ▼
//!  webhook ◄─ deliver (lease queue.<id>) ◄─ EARSHOT_QUEUES (earshot.queue.<id>)
//!                 ├─ dead letters ─► EARSHOT_DLQ (earshot.dlq.<id>)
//!                 └─ held for a digest ─► EARSHOT_HELD (earshot.held.<id>)
//! ```
//!
//! Every hand-off is acknowledged before the step behind it lets go: a position is stored only
//! after its frames are in the stream, a frame batch is acknowledged only after its mentions
//! are, a mention only once it was delivered or dead-lettered. A node that dies mid-step
//! leaves its work unacknowledged, and JetStream hands it to another node; what is done twice
//! carries the same `Nats-Msg-Id` (the batch's, the mention's `queue:id`), so the streams
//! hold it once and a receiver sees at most a repeat of the same `webhook-id`.
//!
//! - [`lease`]: one holder at a time for a role (a source's reader, a queue's deliverer).
//! - [`frames`]: frame batches as stream messages.
//! - [`ingest`], [`work`], [`deliver`], [`monitor`]: the roles.
//! - [`rules`]: one rules generation on every node.

pub mod dead;
pub mod deliver;
pub mod frames;
pub mod ingest;
pub mod lease;
pub mod monitor;
pub mod rules;
pub mod turns;
pub mod work;

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use crate::config::cluster::ClusterSettings;
use crate::sink::nats::NatsSetupError;

/// The stream of frame batches waiting for a worker.
pub const FRAMES_STREAM: &str = "EARSHOT_FRAMES";
/// The one subject frame batches are published to (the source is a header).
pub const FRAMES_SUBJECT: &str = "earshot.frames";
/// The durable consumer every worker pulls frame batches from.
pub const WORK_CONSUMER: &str = "earshot-work";
/// The stream of entries waiting for delivery, one subject per queue.
pub const QUEUES_STREAM: &str = "EARSHOT_QUEUES";
/// The stream of dead letters, one subject per queue.
pub const DLQ_STREAM: &str = "EARSHOT_DLQ";
/// The stream of mentions noise control holds for a queue's next digest.
pub const HELD_STREAM: &str = "EARSHOT_HELD";
/// The bucket of leases.
pub const LEASES_BUCKET: &str = "earshot_leases";
/// The bucket of source positions.
pub const POSITIONS_BUCKET: &str = "earshot_positions";
/// The bucket of state a role's next holder starts from (the spike detector's baselines).
pub const STATE_BUCKET: &str = "earshot_state";
/// The bucket of the cases queues have opened, by queue and a digest of the case key. Keys
/// older than [`crate::sink::cases::MAX_KEEP`] are forgotten by the servers.
pub const CASES_BUCKET: &str = "earshot_cases";

/// The subject of a queue's entries.
pub fn queue_subject(queue: &str) -> String {
    format!("earshot.queue.{queue}")
}

/// The subject of the mentions held for a queue's next digest.
pub fn held_subject(queue: &str) -> String {
    format!("earshot.held.{queue}")
}

/// The subject of a queue's dead letters.
pub fn dlq_subject(queue: &str) -> String {
    format!("earshot.dlq.{queue}")
}

/// How long the streams remember a `Nats-Msg-Id`: longer than any takeover and any retry of
/// a publish, so what a node repeats after another one's crash is recognised.
pub const DEDUP_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The pause before publishing again after `failures` failed publishes: 100 ms, doubling to
/// 5 s.
pub fn retry_pause(failures: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(failures.min(6))).min(Duration::from_secs(5))
}

/// How long a starting node waits for the servers to take its streams.
pub const JOIN_PATIENCE: Duration = Duration::from_secs(90);

/// How long one request to set a stream or bucket up may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a node cannot join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The client cannot be set up (credentials, CA).
    #[error("{0}")]
    Setup(#[from] NatsSetupError),
    /// A stream or bucket cannot be created or brought to this node's settings.
    #[error("cannot set up {what}: {reason}")]
    Streams {
        /// Which stream or bucket.
        what: String,
        /// What the server said.
        reason: String,
    },
}

/// This node's membership: its connection, and the streams and buckets every role uses.
#[derive(Clone)]
pub struct Cluster {
    /// The node's settings, its name resolved.
    pub settings: ClusterSettings,
    /// The connection.
    pub client: async_nats::Client,
    /// JetStream on it, with the cluster's timeout.
    pub js: jetstream::Context,
    /// Leases.
    pub leases: kv::Store,
    /// Source positions.
    pub positions: kv::Store,
    /// State handed from a role's holder to the next.
    pub state: kv::Store,
    /// The cases each queue has opened ([`crate::sink::cases`]).
    pub cases: kv::Store,
}

impl Cluster {
    /// This node's name.
    pub fn node(&self) -> &str {
        self.settings.node()
    }

    /// The largest message the servers take (frame batches are cut below it).
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}

/// Connects and brings the streams and buckets to `settings` (creating them on the first
/// node to start). `dead_letter_ttl` is how long dead letters are kept (0: until purged).
pub async fn join(
    settings: &ClusterSettings,
    dead_letter_ttl: Duration,
) -> Result<Cluster, ClusterError> {
    let name = format!("earshot:{}", settings.node());
    let client = crate::sink::nats::client(&settings.nats(), &name).await?;
    let mut js = jetstream::new(client.clone());
    // A new replicated stream waits for its group to elect a leader, which takes seconds on
    // a busy cluster: setting up gets more time than a publish.
    js.set_timeout(settings.timeout.max(SETUP_TIMEOUT));
    let replicas = settings.replicas;
    let work_queue =
        |name: &str, description: &str, subject: &str, max_bytes: i64| stream::Config {
            retention: stream::RetentionPolicy::WorkQueue,
            max_bytes,
            // A full stream refuses publishes: the step before it waits, nothing is dropped.
            discard: stream::DiscardPolicy::New,
            ..stream_config(name, description, subject, replicas)
        };
    let streams = [
        work_queue(
            FRAMES_STREAM,
            "earshot: frame batches waiting for a worker",
            FRAMES_SUBJECT,
            settings.frames_max_bytes,
        ),
        work_queue(
            QUEUES_STREAM,
            "earshot: entries waiting for delivery, by queue",
            "earshot.queue.*",
            settings.queues_max_bytes,
        ),
        stream::Config {
            max_age: dead_letter_ttl,
            ..stream_config(
                DLQ_STREAM,
                "earshot: dead letters, by queue",
                "earshot.dlq.*",
                replicas,
            )
        },
        stream_config(
            HELD_STREAM,
            "earshot: mentions held for each queue's next digest",
            "earshot.held.*",
            replicas,
        ),
    ];
    // The servers may still be starting (or electing JetStream's leader): keep trying for
    // a while before giving up on them.
    let deadline = std::time::Instant::now() + JOIN_PATIENCE;
    // All at once: a new replicated stream waits seconds for its group's first election, and
    // those waits overlap.
    let made_streams = futures_util::future::try_join_all(streams.into_iter().map(|config| {
        let js = &js;
        async move {
            let name = format!("stream {}", config.name);
            patiently(deadline, &name, || {
                js.create_or_update_stream(config.clone())
            })
            .await
        }
    }));
    let leases_name = format!("bucket {LEASES_BUCKET}");
    let positions_name = format!("bucket {POSITIONS_BUCKET}");
    let state_name = format!("bucket {STATE_BUCKET}");
    let made_leases = patiently(deadline, &leases_name, || {
        js.create_or_update_key_value(lease::bucket_config(
            LEASES_BUCKET,
            &settings.lease(),
            replicas,
        ))
    });
    let made_positions = patiently(deadline, &positions_name, || {
        js.create_or_update_key_value(kv::Config {
            bucket: POSITIONS_BUCKET.into(),
            description: "earshot: where each source resumes".into(),
            history: 1,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
    });
    let made_state = patiently(deadline, &state_name, || {
        js.create_or_update_key_value(kv::Config {
            bucket: STATE_BUCKET.into(),
            description: "earshot: state a role's next holder starts from".into(),
            history: 1,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
    });
    let cases_name = format!("bucket {CASES_BUCKET}");
    let made_cases = patiently(deadline, &cases_name, || {
        js.create_or_update_key_value(kv::Config {
            bucket: CASES_BUCKET.into(),
            description: "earshot: the cases each queue has opened".into(),
            history: 1,
            max_age: crate::sink::cases::MAX_KEEP,
            num_replicas: replicas,
            storage: stream::StorageType::File,
            ..Default::default()
        })
    });
    let ((_, leases, positions, state), cases) = futures_util::future::try_join(
        futures_util::future::try_join4(made_streams, made_leases, made_positions, made_state),
        made_cases,
    )
    .await?;
    js.set_timeout(settings.timeout);
    Ok(Cluster {
        settings: settings.clone(),
        client,
        js,
        leases,
        positions,
        state,
        cases,
    })
}

/// A replicated stream on disk, de-duplicating by `Nats-Msg-Id` over [`DEDUP_WINDOW`].
fn stream_config(name: &str, description: &str, subject: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: name.into(),
        description: Some(description.into()),
        subjects: vec![subject.into()],
        duplicate_window: DEDUP_WINDOW,
        num_replicas: replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Runs `setup` until it succeeds or `deadline` passes, pausing between tries.
async fn patiently<T, E, F, Fut>(
    deadline: std::time::Instant,
    what: &str,
    mut setup: F,
) -> Result<T, ClusterError>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    loop {
        match setup().await {
            Ok(v) => return Ok(v),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(what, error = %e, "the cluster's servers are not ready; trying again");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(ClusterError::Streams {
                    what: what.to_string(),
                    reason: e.to_string(),
                })
            }
        }
    }
}
