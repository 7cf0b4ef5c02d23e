//! The few series of earshot's Prometheus `/metrics` the runner follows each second: frames
//! received from the firehose (is earshot keeping up?), mentions routed, webhook deliveries
//! by outcome, posts dropped by reason (where did a loss happen?), and the two places a
//! backlog waits: the frame channel and the outbox (is backpressure where it should be?).

use std::collections::BTreeMap;

use serde::Serialize;

/// One scrape, reduced to what the report shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Scrape {
    /// Seconds since the runner started earshot.
    pub t: f64,
    /// `earshot_source_frames_received_total`, summed over sources.
    pub frames_received: u64,
    /// `earshot_worker_frames_processed_total`: frames the workers have run through the stages
    /// (in cluster mode they come back through the frame stream, possibly well after the
    /// source read them).
    pub frames_processed: u64,
    /// `earshot_stage_posts_dropped_total{stage="source"}`: frames the sources skipped
    /// (deletes, identity and account events), which never reach a worker. The workers are
    /// done when `frames_processed + source_skipped = frames_received`.
    pub source_skipped: u64,
    /// `earshot_route_mentions_routed_total`, summed over queues.
    pub mentions_routed: u64,
    /// `earshot_webhook_deliveries_total` by outcome, summed over queues.
    pub deliveries: BTreeMap<String, u64>,
    /// `earshot_stage_posts_dropped_total` by reason (non-zero only), summed over stages.
    pub dropped: BTreeMap<String, u64>,
    /// `earshot_channel_frame_batches`: batches waiting between sources and workers.
    pub channel_batches: u64,
    /// `earshot_queue_depth`, summed over queues: entries waiting in the outbox.
    pub queue_depth: u64,
}

impl Scrape {
    /// Webhook deliveries that succeeded.
    pub fn delivered(&self) -> u64 {
        self.deliveries.get("delivered").copied().unwrap_or(0)
    }
}

/// The value of label `name` in a `{a="x",b="y"}` label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = labels;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches([',', ' ']);
        let after = &rest[eq + 2..];
        let end = after.find('"')?;
        if key == name {
            return Some(&after[..end]);
        }
        rest = &after[end + 1..];
    }
    None
}

/// Reduces a Prometheus text exposition to a [`Scrape`] (with `t` = 0).
pub fn parse(text: &str) -> Scrape {
    let mut s = Scrape::default();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let v = v.max(0.0) as u64;
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], series[i + 1..].trim_end_matches('}')),
            None => (series, ""),
        };
        match name {
            "earshot_source_frames_received_total" => s.frames_received += v,
            "earshot_worker_frames_processed_total" => s.frames_processed += v,
            "earshot_route_mentions_routed_total" => s.mentions_routed += v,
            "earshot_webhook_deliveries_total" => {
                let outcome = label(labels, "outcome").unwrap_or("?").to_string();
                *s.deliveries.entry(outcome).or_default() += v;
            }
            "earshot_channel_frame_batches" => s.channel_batches += v,
            "earshot_queue_depth" => s.queue_depth += v,
            "earshot_stage_posts_dropped_total" if v > 0 => {
                if label(labels, "stage") == Some("source") {
                    s.source_skipped += v;
                }
                let reason = label(labels, "reason").unwrap_or("?").to_string();
                *s.dropped.entry(reason).or_default() += v;
            }
            _ => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_labels_and_keeps_reasons() {
        let text = "\
# TYPE earshot_source_frames_received_total counter
earshot_source_frames_received_total{source=\"a\"} 10
earshot_source_frames_received_total{source=\"b\"} 5
earshot_worker_frames_processed_total 14
earshot_route_mentions_routed_total{queue=\"all\"} 3
earshot_webhook_deliveries_total{queue=\"all\",outcome=\"delivered\"} 3
earshot_webhook_deliveries_total{queue=\"x\",outcome=\"delivered\"} 1
earshot_stage_posts_dropped_total{stage=\"decode\",reason=\"delete\"} 4
earshot_stage_posts_dropped_total{stage=\"source\",reason=\"identity\"} 1
earshot_stage_posts_dropped_total{stage=\"decode\",reason=\"oversize\"} 0
earshot_stage_duration_seconds{stage=\"match\",quantile=\"0.99\"} 0.00001
earshot_channel_frame_batches 63
earshot_queue_depth{queue=\"all\"} 20000
earshot_queue_depth{queue=\"b\"} 5
";
        let s = parse(text);
        assert_eq!(s.frames_received, 15);
        assert_eq!(s.frames_processed, 14);
        assert_eq!(s.mentions_routed, 3);
        assert_eq!(s.deliveries["delivered"], 4);
        assert_eq!(s.dropped.len(), 2);
        assert_eq!(s.dropped["delete"], 4);
        assert_eq!(s.source_skipped, 1);
        assert_eq!(s.delivered(), 4);
        assert_eq!(s.channel_batches, 63);
        assert_eq!(s.queue_depth, 20_005);
        assert_eq!(parse("").delivered(), 0);
    }
}
