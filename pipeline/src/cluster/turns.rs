//! Taking turns at a role: contend for its lease, do the role while holding it, let go,
//! contend again, until the node stops. Every role held by one node at a time (a source's
//! reader, a queue's owner, the spike detector) runs this loop, and exports whether this
//! node holds the lease and how often it took it.

use std::time::Duration;

use metrics::Gauge;

use super::lease::Lease;
use super::Cluster;
use crate::metrics::{CLUSTER_LEASE_HELD, CLUSTER_LEASE_TAKEN};
use crate::shutdown::{Shutdown, ShutdownTrigger};

/// One node's turns at the lease `key`.
pub struct Turns {
    lease: Lease,
    shutdown: Shutdown,
    key: String,
    held: Gauge,
    poll: Duration,
}

impl Turns {
    /// Starts contending for `key` as this node; the lease is released at shutdown.
    pub fn new(cluster: &Cluster, key: String, trigger: &ShutdownTrigger) -> Self {
        let lease = Lease::spawn(
            cluster.leases.clone(),
            key.clone(),
            cluster.node().to_string(),
            cluster.settings.lease(),
            trigger.subscribe(),
        );
        let held = metrics::gauge!(CLUSTER_LEASE_HELD, "lease" => key.clone());
        held.set(0.0);
        Self {
            lease,
            shutdown: trigger.subscribe(),
            key,
            held,
            poll: cluster.settings.lease().poll_every,
        }
    }

    /// Waits until this node holds the lease (true), or the node stops (false).
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.lease.acquired() => {
                self.held.set(1.0);
                metrics::counter!(CLUSTER_LEASE_TAKEN, "lease" => self.key.clone()).increment(1);
                true
            }
            _ = self.shutdown.recv() => false,
        }
    }

    /// The lease (whether it is still held) and the node's shutdown, for the role's work.
    pub fn parts(&mut self) -> (&Lease, &mut Shutdown) {
        (&self.lease, &mut self.shutdown)
    }

    /// The turn ended. Unless the node is stopping, this one waits a poll before contending
    /// again, so a node whose lease is sound gets the chance to take over.
    pub async fn ended(&mut self, stopping: bool) {
        self.held.set(0.0);
        if !stopping {
            tokio::time::sleep(self.poll).await;
        }
    }

    /// Keeps the lease until the node stops (a role with nothing more to do, which no other
    /// node must start again).
    pub async fn keep_until_shutdown(&mut self) {
        self.shutdown.recv().await;
    }

    /// Waits for the lease's release after shutdown.
    pub async fn finish(self) {
        self.held.set(0.0);
        self.lease.finished().await;
    }
}
