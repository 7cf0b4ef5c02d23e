//! `[cluster]`: running as one of several nodes on NATS JetStream instead of alone on the
//! local outbox. Present means cluster mode; absent, nothing about a single node changes.
//!
//! Checked at load ([`ClusterSettings::problems`]): the servers' URLs (TLS unless on loopback,
//! never with credentials in them), the credentials' variable, the CA file, the node's name,
//! the replicas and the lease timings, so a node that could not join never starts.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::sink::nats::{NatsAuth, NatsConnect};

/// The timing of a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a lease lasts without renewal: the bucket's `max_age`. A dead holder's role
    /// is taken over at most `ttl + poll_every` after its last renewal.
    pub ttl: Duration,
    /// How often the holder renews (well within `ttl`, so that a renewal or two may fail).
    pub renew_every: Duration,
    /// How often a contender tries to take a lease someone else holds.
    pub poll_every: Duration,
    /// How much before the server's expiry the holder stops counting the lease as its own.
    pub margin: Duration,
}

impl Default for LeaseSettings {
    /// A 6 s lease renewed every 2 s, polled every second: a dead holder is replaced within
    /// about 7 s.
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(6),
            renew_every: Duration::from_secs(2),
            poll_every: Duration::from_secs(1),
            margin: Duration::from_millis(500),
        }
    }
}

impl LeaseSettings {
    /// Whether the timings make sense together: renewals and the margin well inside the
    /// time to live.
    pub fn validate(&self) -> Result<(), String> {
        if self.poll_every.is_zero() || self.renew_every.is_zero() {
            return Err("renew_every and poll_every must be above 0".into());
        }
        if self.renew_every * 2 + self.margin > self.ttl {
            return Err(format!(
                "a lease of {:?} cannot be renewed every {:?} with a margin of {:?}: two \
                 renewals and the margin must fit in it",
                self.ttl, self.renew_every, self.margin
            ));
        }
        Ok(())
    }
}

/// A part of the pipeline a node can take on; several per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads sources: one node per source at a time, by lease, publishing frame batches.
    Ingest,
    /// Decodes, matches, judges and routes frame batches from the shared consumer.
    Work,
    /// Delivers queues: one node per queue at a time, by lease.
    Deliver,
    /// Runs the spike detector over every worker's mentions: one node at a time, by lease.
    Monitor,
}

impl Role {
    /// The name in the config and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Work => "work",
            Role::Deliver => "deliver",
            Role::Monitor => "monitor",
        }
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's name, unique in the cluster (a lease's holder, a client's name). Left
    /// out: the `HOSTNAME` variable (a Kubernetes pod's name), resolved at load.
    #[serde(default)]
    pub node: Option<String>,
    /// The NATS servers, comma-separated: `tls://…`, or `nats://` to loopback only.
    pub url: String,
    /// Credentials, read from the environment.
    #[serde(default)]
    pub auth: Option<NatsAuth>,
    /// A PEM bundle of the CAs that sign the servers' certificates (default: public roots).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Copies JetStream keeps of every stream and bucket (1 to 5; 3 survives the loss of a
    /// server).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// What this node does (default: everything).
    #[serde(default = "all_roles")]
    pub roles: Vec<Role>,
    /// How long a lease lasts without renewal: a dead holder's role is taken over about this
    /// long (plus a poll) after its last renewal.
    #[serde(default = "default_ttl", with = "crate::duration")]
    pub lease_ttl: Duration,
    /// How often a holder renews its leases.
    #[serde(default = "default_renew", with = "crate::duration")]
    pub lease_renew: Duration,
    /// Connect timeout, and how long a publish waits for the stream's acknowledgement.
    #[serde(default = "default_timeout", with = "crate::duration")]
    pub timeout: Duration,
    /// Most bytes of frame batches the cluster holds for the workers; past it, publishing
    /// waits (the sources slow down) instead of anything being dropped.
    #[serde(default = "default_stream_bytes")]
    pub frames_max_bytes: i64,
    /// Most bytes of entries waiting for delivery, all queues together; past it the workers
    /// wait, as a full outbox makes a single node wait.
    #[serde(default = "default_stream_bytes")]
    pub queues_max_bytes: i64,
}

fn default_replicas() -> usize {
    3
}
fn all_roles() -> Vec<Role> {
    vec![Role::Ingest, Role::Work, Role::Deliver, Role::Monitor]
}
fn default_ttl() -> Duration {
    LeaseSettings::default().ttl
}
fn default_renew() -> Duration {
    LeaseSettings::default().renew_every
}
fn default_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_stream_bytes() -> i64 {
    1 << 30
}

/// The longest node name: it is a key's value and part of client and consumer names.
const MAX_NODE: usize = 64;

impl ClusterSettings {
    /// The lease timings: renewals as configured, contenders polling at most every second
    /// (and twice per renewal at least), a margin of a tenth of the lease up to 500 ms.
    pub fn lease(&self) -> LeaseSettings {
        LeaseSettings {
            ttl: self.lease_ttl,
            renew_every: self.lease_renew,
            poll_every: (self.lease_renew / 2)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
            margin: (self.lease_ttl / 10).min(Duration::from_millis(500)),
        }
    }

    /// How a client of this node reaches the servers.
    pub fn nats(&self) -> NatsConnect<'_> {
        NatsConnect {
            queue: self.node(),
            url: &self.url,
            auth: self.auth.as_ref(),
            ca: self.ca.as_deref(),
            timeout: self.timeout,
        }
    }

    /// Whether this node takes on `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The node's name (resolved at load).
    pub fn node(&self) -> &str {
        self.node.as_deref().unwrap_or("")
    }

    /// Fills in the node's name from `HOSTNAME` when the file leaves it out.
    pub(crate) fn resolve_node(&mut self) {
        if self.node.is_none() {
            self.node = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty());
        }
    }

    /// What is wrong, each as `(key, message)`. The URLs are named by position, never
    /// repeated (one may hold credentials).
    pub fn problems(
        &self,
        check_url: impl Fn(&url::Url) -> Result<(), String>,
    ) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match self.node.as_deref() {
            None => out.push((
                "node",
                "cluster.node: name this node (unique in the cluster), or set HOSTNAME".to_string(),
            )),
            Some(n) => {
                if n.is_empty()
                    || n.len() > MAX_NODE
                    || !n
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    out.push((
                        "node",
                        format!("cluster.node: 1 to {MAX_NODE} letters, digits, `-` or `_`"),
                    ));
                }
            }
        }
        if self.url.trim().is_empty() {
            out.push((
                "url",
                "cluster.url: name at least one NATS server".to_string(),
            ));
        }
        for (n, u) in self.url.split(',').map(str::trim).enumerate() {
            if self.url.trim().is_empty() {
                break;
            }
            let which = format!("cluster.url {}", n + 1);
            match url::Url::parse(u) {
                Err(e) => out.push(("url", format!("{which}: {e}"))),
                Ok(parsed) => {
                    if let Err(m) = check_url(&parsed) {
                        out.push(("url", format!("{which}: {m}")));
                    }
                    if !parsed.username().is_empty() || parsed.password().is_some() {
                        out.push((
                            "url",
                            format!("{which}: credentials in a URL end up in files and logs; put them in an environment variable named by cluster.auth"),
                        ));
                    }
                }
            }
        }
        if let Some(auth) = &self.auth {
            if std::env::var(&auth.env).is_err() {
                out.push((
                    "auth",
                    format!(
                        "cluster.auth: environment variable `{}` is not set",
                        auth.env
                    ),
                ));
            }
        }
        if let Some(ca) = &self.ca {
            if !ca.is_file() {
                out.push((
                    "ca",
                    format!("cluster.ca: `{}` is not a readable file", ca.display()),
                ));
            }
        }
        if !(1..=5).contains(&self.replicas) {
            out.push((
                "replicas",
                "cluster.replicas: JetStream keeps 1 to 5 copies".to_string(),
            ));
        }
        if self.roles.is_empty() {
            out.push((
                "roles",
                "cluster.roles: give this node at least one of ingest, work, deliver, monitor"
                    .to_string(),
            ));
        }
        if let Err(m) = self.lease().validate() {
            out.push(("lease_ttl", format!("cluster.lease_ttl, lease_renew: {m}")));
        }
        if self.timeout.is_zero() {
            out.push(("timeout", "cluster.timeout must be above 0".to_string()));
        }
        if self.frames_max_bytes < 1 << 20 || self.queues_max_bytes < 1 << 20 {
            out.push((
                "frames_max_bytes",
                "cluster.frames_max_bytes and queues_max_bytes must be at least 1 MiB".to_string(),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    const HEAD: &str = "[rules]\npaths = []\n";

    fn errors(cluster: &str) -> Vec<String> {
        match Config::parse("c.toml", &format!("{HEAD}{cluster}"), Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn a_cluster_section_loads_with_its_defaults() {
        let text = format!("{HEAD}[cluster]\nnode = \"n-1\"\nurl = \"nats://127.0.0.1:4222, tls://nats.example:4222\"\n");
        let c = Config::parse("c.toml", &text, Path::new("."))
            .unwrap_or_else(|e| panic!("{e}"))
            .cluster
            .expect("cluster mode");
        assert_eq!(c.node(), "n-1");
        assert_eq!(c.replicas, 3);
        assert!(c.has(Role::Ingest) && c.has(Role::Work) && c.has(Role::Deliver));
        assert_eq!(c.lease(), LeaseSettings::default());
    }

    #[test]
    fn cluster_mistakes_are_named_with_their_place_and_secrets_are_not_repeated() {
        let cases: &[(&str, &str)] = &[
            ("node = \"n 1\"\nurl = \"nats://127.0.0.1:4222\"", "c.toml:4:8: cluster.node: 1 to 64"),
            ("node = \"n\"\nurl = \"nats://nats.example:4222\"", "cluster.url 1: `nats://` is only allowed to a loopback address"),
            ("node = \"n\"\nurl = \"tls://earshot:hunter2@nats.example:4222\"", "cluster.url 1: credentials in a URL"),
            ("node = \"n\"\nurl = \"nats://127.0.0.1:1\"\nreplicas = 7", "cluster.replicas: JetStream keeps 1 to 5 copies"),
            ("node = \"n\"\nurl = \"nats://127.0.0.1:1\"\nroles = []", "cluster.roles: give this node at least one"),
            ("node = \"n\"\nurl = \"nats://127.0.0.1:1\"\nroles = [\"watch\"]", "unknown variant `watch`"),
            ("node = \"n\"\nurl = \"nats://127.0.0.1:1\"\nlease_ttl = \"1s\"\nlease_renew = \"1s\"", "cluster.lease_ttl, lease_renew:"),
            ("node = \"n\"\nurl = \"nats://127.0.0.1:1\"\nauth = { kind = \"token\", env = \"EARSHOT_TEST_UNSET_NATS_TOKEN\" }", "environment variable `EARSHOT_TEST_UNSET_NATS_TOKEN` is not set"),
            ("node = \"n\"\nurl = \"nats://127.0.0.1:1\"\nca = \"missing-ca.pem\"", "missing-ca.pem` is not a readable file"),
        ];
        for (body, want) in cases {
            let got = errors(&format!("[cluster]\n{body}\n"));
            assert!(got.iter().any(|e| e.contains(want)), "{body:?}: {got:?}");
            assert!(got.iter().all(|e| !e.contains("hunter2")), "{got:?}");
        }
    }
}
