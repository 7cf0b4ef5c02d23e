//! Rendering hostile messages with every built-in payload format: a sample mention, digest or
//! spike event whose string and number leaves are replaced by fuzzed values (and some keys
//! removed or retyped), with a fuzzed id, queue, attempt, time and latency. A body, or a
//! render error about the data, never a panic; a body is JSON whenever the content type is.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use earshot::sink::payload::{CaseRef, EventType, Latency, Outgoing, Payload, PayloadFormat};
use earshot_fuzz::{SAMPLE_DIGEST, SAMPLE_MENTION, SAMPLE_SPIKE};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Debug, Arbitrary)]
enum Leaf {
    Str(String),
    Int(i64),
    Float(f64),
    Null,
    Bool(bool),
    Remove,
    Keep,
}

#[derive(Debug, Arbitrary)]
struct Message {
    format: u8,
    event: u8,
    id: String,
    queue: String,
    attempt: u32,
    secs: u32,
    millis: u16,
    elapsed_ms: u64,
    budget_ms: Option<u64>,
    over_budget: bool,
    leaves: Vec<Leaf>,
}

/// Every format's built-in template, with a value for each var it reads (some have no
/// default: the queue must set them).
fn payloads() -> &'static [Payload] {
    static PAYLOADS: OnceLock<Vec<Payload>> = OnceLock::new();
    PAYLOADS.get_or_init(|| {
        PayloadFormat::ALL
            .iter()
            .map(|&format| {
                let names: &[&str] = match format {
                    PayloadFormat::Salesforce => &["external_id_field", "origin", "status"],
                    PayloadFormat::Zendesk => &["group_id", "requester_id"],
                    PayloadFormat::Hubspot => &["id_property", "owner_id", "pipeline", "stage"],
                    PayloadFormat::Dynamics => &[
                        "customer_id",
                        "customer_key",
                        "customer_table",
                        "origin_code",
                    ],
                    PayloadFormat::Zoho => &["channel", "contact_id", "department_id", "org_id"],
                    _ => &[],
                };
                let vars: BTreeMap<String, String> = names
                    .iter()
                    .map(|name| (name.to_string(), "7".to_string()))
                    .collect();
                Payload::load(format, None, &vars).expect("built-in template")
            })
            .collect()
    })
}

/// Replaces the leaves of `value` in document order with `leaves` (cycled), removing an
/// object's key for [`Leaf::Remove`].
fn replace(value: &mut Value, leaves: &[Leaf], at: &mut usize) {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if let Some(Leaf::Remove) = leaves.get(*at % leaves.len().max(1)) {
                    if !matches!(map[&key], Value::Object(_) | Value::Array(_)) {
                        map.remove(&key);
                        *at += 1;
                        continue;
                    }
                }
                replace(map.get_mut(&key).expect("key present"), leaves, at);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace(v, leaves, at)),
        leaf => {
            if leaves.is_empty() {
                return;
            }
            let new = match &leaves[*at % leaves.len()] {
                Leaf::Str(s) => Value::from(s.as_str()),
                Leaf::Int(i) => Value::from(*i),
                Leaf::Float(f) => {
                    serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
                }
                Leaf::Null => Value::Null,
                Leaf::Bool(b) => Value::from(*b),
                Leaf::Remove | Leaf::Keep => leaf.clone(),
            };
            *leaf = new;
            *at += 1;
        }
    }
}

fuzz_target!(|m: Message| {
    let (event, sample) = match m.event % 6 {
        0 => (EventType::MentionCreated, SAMPLE_MENTION),
        5 => (EventType::MentionFollowup, SAMPLE_MENTION),
        1 => (EventType::MentionDigest, SAMPLE_DIGEST),
        2 => (EventType::SpikeStarted, SAMPLE_SPIKE),
        3 => (EventType::SpikeUpdated, SAMPLE_SPIKE),
        _ => (EventType::SpikeEnded, SAMPLE_SPIKE),
    };
    let mut data: Value = serde_json::from_str(sample).expect("sample is JSON");
    replace(&mut data, &m.leaves, &mut 0);
    let raw = serde_json::value::to_raw_value(&data).expect("JSON");
    let out = Outgoing {
        id: &m.id,
        event,
        data: &raw,
        queue: &m.queue,
        attempt: m.attempt,
        timestamp: SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::from(m.secs))
            + Duration::from_millis(u64::from(m.millis % 1000)),
        latency: Latency {
            elapsed_ms: m.elapsed_ms,
            budget_ms: m.budget_ms,
            over_budget: m.over_budget,
        },
        // A follow-up names its case: the fuzzed id stands in for the ticket id the CRM gave.
        case: (event == EventType::MentionFollowup).then(|| CaseRef {
            mention_id: "m_0000000000000000000000ff",
            ticket_id: Some(&m.id),
        }),
    };
    let payload = &payloads()[usize::from(m.format) % PayloadFormat::ALL.len()];
    if !payload.handles(event) {
        return;
    }
    if let Ok(rendered) = payload.render(&out) {
        if rendered
            .content_type
            .as_bytes()
            .starts_with(b"application/json")
        {
            serde_json::from_slice::<Value>(&rendered.body).expect("a JSON body parses");
        }
    } else if let Err(e) = payload.render(&out) {
        let _ = (e.to_string(), e.reason());
    }
});
