//! Noise control (interim: everything delivered).
#![allow(missing_docs)]
use crate::mention::Mention;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    #[serde(with = "crate::source::duration")]
    pub digest_every: Duration,
}
impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            digest_every: Duration::from_secs(60),
        }
    }
}
pub struct NoiseGate;
pub enum Verdict {
    Deliver,
    Hold(Held),
}
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldReason {
    Repost,
}
impl HoldReason {
    pub fn as_str(self) -> &'static str {
        "repost"
    }
}
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Held {
    pub reason: HoldReason,
    pub at_ms: u64,
}
#[derive(Debug, Serialize)]
pub struct Digest {
    digest_id: String,
}
impl Digest {
    pub fn build(queue: &str, start: u64, _end: u64, _held: &[Held]) -> Digest {
        Digest {
            digest_id: format!("d_{queue}_{start}"),
        }
    }
}
impl NoiseGate {
    pub fn new(_c: &NoiseConfig) -> Self {
        NoiseGate
    }
    pub fn admit(&mut self, _m: &Mention, _now_ms: u64) -> Verdict {
        Verdict::Deliver
    }
    pub fn digest_sent(&mut self, _now_ms: u64) {}
}
