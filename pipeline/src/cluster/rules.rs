//! One rules generation across the cluster: a reload on any node reaches every node, and
//! every node says whether it runs the cluster's rules.
//!
//! The cluster's generation lives in [`super::STATE_BUCKET`] under [`KEY`]: a number and the
//! [`crate::reload::digest`] of the rule files. A node that puts new rules in force because
//! its own files changed (its file watch, `SIGHUP`, `POST /rules/reload`) writes the next
//! generation with its digest (a revision-checked update, so two nodes reloading at once
//! both land, one after the other). Every node watches the key: when the cluster's digest
//! is not its own, it reloads, and if its files still differ (a node with other files, a
//! ConfigMap not yet updated on its host) it keeps its rules, says so in `/readyz` and
//! exports generation 0 until they match. Workers take a new rule set only between batches,
//! so no batch is ever judged by two generations.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::Cluster;
use crate::health::{Component, Handle, Health};
use crate::metrics::{Trigger, RULES_CLUSTER_GENERATION};
use crate::reload::Reloader;
use crate::shutdown::Shutdown;

/// The key of the cluster's rules generation.
pub const KEY: &str = "rules";

/// The cluster's rules generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// Counts the rule sets the cluster has had.
    pub generation: u64,
    /// The rules' digest.
    pub digest: String,
    /// The node that put it in force.
    pub node: String,
}

/// Keeps this node's rules the cluster's until shutdown.
pub fn spawn(
    cluster: &Cluster,
    reloader: Arc<Reloader>,
    health: &Health,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    let held = health.register(Component::Cluster, "rules generation");
    tokio::spawn(follow(cluster.clone(), reloader, held, shutdown))
}

async fn follow(cluster: Cluster, reloader: Arc<Reloader>, held: Handle, mut shutdown: Shutdown) {
    let kv = cluster.state.clone();
    let gauge = metrics::gauge!(RULES_CLUSTER_GENERATION);
    let mut in_force = reloader.in_force();
    let mut entries = loop {
        match kv.watch_with_history(KEY).await {
            Ok(w) => break w,
            Err(e) => {
                warn!(error = %e, "cannot watch the cluster's rules generation; trying again");
                tokio::select! {
                    _ = shutdown.recv() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    // The first node to start makes generation 1 of its rules.
    let mine = in_force.borrow().digest.clone();
    let first = Generation {
        generation: 1,
        digest: mine,
        node: cluster.node().to_string(),
    };
    if let Ok(body) = serde_json::to_vec(&first) {
        let _ = kv.create(KEY, Bytes::from(body)).await;
    }
    let mut cluster_gen: Option<(Generation, u64)> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = shutdown.recv() => return,
            entry = entries.next() => {
                let Some(Ok(entry)) = entry else {
                    warn!("the watch of the cluster's rules generation ended");
                    return;
                };
                let Ok(g) = serde_json::from_slice::<Generation>(&entry.value) else {
                    continue;
                };
                if g.digest != in_force.borrow().digest {
                    info!(generation = g.generation, from = %g.node, "the cluster has new rules; reloading");
                    let _ = reloader.reload(Trigger::Cluster).await;
                }
                cluster_gen = Some((g, entry.revision));
            }
            changed = in_force.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = in_force.borrow_and_update().clone();
                let local = !matches!(now.trigger, Some(Trigger::Cluster) | None);
                if let (true, Some((g, revision))) = (local, &cluster_gen) {
                    if g.digest != now.digest {
                        publish(&cluster, g.generation + 1, &now.digest, *revision).await;
                    }
                }
            }
            // A node whose files differ retries now and then: they may have been fixed
            // without a change it could see.
            _ = tick.tick() => {
                if let Some((g, _)) = &cluster_gen {
                    if g.digest != in_force.borrow().digest {
                        let _ = reloader.reload(Trigger::Cluster).await;
                    }
                }
            }
        }
        let mine = in_force.borrow().digest.clone();
        match &cluster_gen {
            Some((g, _)) if g.digest == mine => {
                gauge.set(g.generation as f64);
                held.recovered();
            }
            Some((g, _)) => {
                gauge.set(0.0);
                held.failing(format!(
                    "this node's rules (digest {mine}) differ from the cluster's generation {} (digest {}, from {}); fix its rule files",
                    g.generation, g.digest, g.node
                ));
            }
            None => {}
        }
    }
}

/// Writes generation `generation` with `digest` over the entry at `revision`; another node
/// writing first makes this one read the key again through the watch.
async fn publish(cluster: &Cluster, generation: u64, digest: &str, revision: u64) {
    let g = Generation {
        generation,
        digest: digest.to_string(),
        node: cluster.node().to_string(),
    };
    let Ok(body) = serde_json::to_vec(&g) else {
        return;
    };
    match cluster.state.update(KEY, Bytes::from(body), revision).await {
        Ok(_) => info!(generation, digest, "new rules are the cluster's"),
        Err(e) => warn!(error = %e, "another node changed the cluster's rules first"),
    }
}
