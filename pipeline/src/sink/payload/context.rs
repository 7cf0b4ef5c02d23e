//! The variables a template sees: the message (`id`, `event`, `data`, `delivery`, `vars`)
//! and values worked out once here for each kind of message (mention, digest, spike) so that
//! templates stay short and every CRM says the same thing (`subject`, `priority`, `author`,
//! …). Documented for template writers in `rules/payloads/README.md`; keep the two in step.

use minijinja::value::Value;

use super::functions::{level, oneline};
use super::{EventType, Outgoing};
use crate::timestamp::rfc3339_millis;

/// Every top-level variable name, for the load-time check that a template names no other.
pub(super) const NAMES: &[&str] = &[
    "id",
    "event",
    "digest",
    "timestamp",
    "data",
    "delivery",
    "vars",
    "brand",
    "author",
    "text",
    "url",
    "platform",
    "category",
    "urgency",
    "priority",
    "subject",
    "customer",
    "examples",
    "case",
];

/// The context of one message. Fails only when `data` is not JSON minijinja can hold.
pub(super) fn build(out: &Outgoing<'_>, vars: &Value) -> Result<Value, serde_json::Error> {
    let data: Value = serde_json::from_str(out.data.get())?;
    let l = out.latency;
    let delivery = Value::from_pairs([
        ("queue", Value::from(out.queue)),
        ("attempt", Value::from(out.attempt)),
        ("elapsed_ms", Value::from(l.elapsed_ms)),
        (
            "budget_ms",
            l.budget_ms.map_or(Value::from(()), Value::from),
        ),
        ("over_budget", Value::from(l.over_budget)),
    ]);
    let derived = match out.event {
        EventType::MentionCreated | EventType::MentionFollowup => Derived::of_mention(&data),
        EventType::MentionDeleted => Derived::of_deletion(&data),
        EventType::MentionDigest => Derived::of_digest(&data, out.queue),
        EventType::SpikeStarted | EventType::SpikeUpdated | EventType::SpikeEnded => {
            Derived::of_spike(&data, out.event)
        }
    };
    Ok(Value::from_pairs([
        ("id", Value::from(out.id)),
        ("event", Value::from(out.event.as_str())),
        ("digest", Value::from(out.event == EventType::MentionDigest)),
        ("timestamp", Value::from(rfc3339_millis(out.timestamp))),
        ("data", data),
        ("delivery", delivery),
        ("vars", vars.clone()),
        ("brand", Value::from(derived.brand)),
        ("author", Value::from(derived.author)),
        ("text", Value::from(derived.text)),
        ("url", Value::from(derived.url)),
        ("platform", Value::from(derived.platform)),
        ("category", Value::from(derived.category)),
        ("urgency", Value::from(derived.urgency)),
        ("priority", Value::from(derived.priority)),
        ("subject", Value::from(derived.subject)),
        ("customer", derived.customer),
        ("examples", Value::from(derived.examples)),
        (
            "case",
            out.case.map_or(Value::from(()), |c| {
                Value::from_pairs([
                    ("mention_id", Value::from(c.mention_id)),
                    (
                        "ticket_id",
                        c.ticket_id.map_or(Value::from(()), Value::from),
                    ),
                ])
            }),
        ),
    ]))
}

/// The convenience values: always present and of one type (strings are `""` when unknown),
/// so templates need no `is defined` tests for them.
struct Derived {
    brand: String,
    author: String,
    text: String,
    url: String,
    platform: &'static str,
    category: String,
    urgency: i64,
    priority: &'static str,
    subject: String,
    customer: Value,
    examples: Vec<Value>,
}

impl Derived {
    fn of_mention(data: &Value) -> Derived {
        let post = get(data, "post");
        let who = get(&post, "author");
        let handle = string(&get(&who, "handle"));
        let author = if handle.is_empty() {
            string(&get(&who, "id"))
        } else {
            format!("@{handle}")
        };
        let brand = string(&get(&index(&get(data, "matches"), 0), "brand"));
        let text = string(&get(&post, "text"));
        let category = string(&get(data, "category"));
        let urgency = int(&get(&get(data, "urgency"), "score"));
        let action = string(&get(&get(data, "recommendation"), "action"));
        let mut subject = String::new();
        if !brand.is_empty() {
            subject.push_str(&format!("[{brand}] "));
        }
        subject.push_str(&format!(
            "{} from {author}: {}",
            if category.is_empty() {
                "mention"
            } else {
                &category
            },
            oneline(&text)
        ));
        Derived {
            author,
            url: string(&get(&post, "url")),
            platform: platform_name(&string(&get(&post, "platform"))),
            priority: level(urgency, &category, &action),
            urgency,
            category,
            subject,
            text,
            brand,
            customer: customer(&get(data, "customer")),
            examples: Vec::new(),
        }
    }

    /// A deletion: `data` names the deleted post; the text is gone, and the note says so.
    fn of_deletion(data: &Value) -> Derived {
        let post = get(data, "post");
        let url = string(&get(&post, "url"));
        Derived {
            brand: String::new(),
            author: String::new(),
            text: String::new(),
            subject: format!(
                "Post deleted by its author: {}",
                if url.is_empty() {
                    string(&get(&post, "id"))
                } else {
                    url.clone()
                }
            ),
            url,
            platform: platform_name(&string(&get(&post, "platform"))),
            category: "deleted".to_string(),
            urgency: 0,
            priority: "low",
            customer: Value::from(()),
            examples: Vec::new(),
        }
    }

    fn of_digest(data: &Value, queue: &str) -> Derived {
        let mut examples: Vec<Value> = items(&get(&get(data, "rate_limited"), "top"));
        for section in ["reposts", "storms"] {
            for group in items(&get(data, section)) {
                examples.extend(items(&get(&group, "examples")));
            }
        }
        let (mut urgency, mut priority) = (0, "low");
        for e in &examples {
            let u = summary_urgency(e);
            urgency = urgency.max(u);
            let p = level(u, &string(&get(e, "category")), "");
            if rank(p) > rank(priority) {
                priority = p;
            }
        }
        let total = int(&get(data, "total"));
        let queue = match string(&get(data, "queue")) {
            q if q.is_empty() => queue.to_string(),
            q => q,
        };
        let subject = format!(
            "[{queue}] {total} mention{} held back, {}–{} UTC",
            if total == 1 { "" } else { "s" },
            clock(&string(&get(data, "window_start"))),
            clock(&string(&get(data, "window_end"))),
        );
        Derived {
            brand: examples
                .first()
                .map(|e| string(&get(e, "brand")))
                .unwrap_or_default(),
            author: String::new(),
            text: String::new(),
            url: String::new(),
            platform: "Web",
            category: "digest".to_string(),
            urgency,
            priority,
            subject,
            customer: Value::from(()),
            examples,
        }
    }

    /// A spike event: `data` is the spike document. A spike is about a brand, not one post,
    /// so the post variables are empty; `priority` is `urgent` for a spike of negative
    /// mentions (a crisis in the making) and `high` for one of all mentions (attention, not
    /// yet trouble); `urgency` is the highest of the top posts'.
    fn of_spike(data: &Value, event: EventType) -> Derived {
        let brand = string(&get(data, "brand"));
        let series = string(&get(data, "series"));
        let what = match series.as_str() {
            "negative" => format!("{brand} negative mentions"),
            _ => format!("{brand} mentions"),
        };
        let times = |key: &str| match float(&get(data, key)) {
            Some(r) => format!("{r:.1}× baseline"),
            None => "above baseline".to_string(),
        };
        let subject = match event {
            EventType::SpikeUpdated => format!("Spike: {what} still {}", times("ratio")),
            EventType::SpikeEnded => format!("Spike over: {what}, peak {}", times("peak_ratio")),
            _ => format!("Spike: {what} {}", times("ratio")),
        };
        let urgency = items(&get(data, "posts"))
            .iter()
            .map(|p| int(&get(p, "urgency")))
            .max()
            .unwrap_or(0);
        Derived {
            brand,
            author: String::new(),
            text: String::new(),
            url: String::new(),
            platform: "Web",
            category: "spike".to_string(),
            urgency,
            priority: if series == "negative" {
                "urgent"
            } else {
                "high"
            },
            subject,
            customer: Value::from(()),
            examples: Vec::new(),
        }
    }
}

/// `data.customer` with every field present (`none` when the table has no value), or `none`
/// when the author is not a customer.
fn customer(c: &Value) -> Value {
    if c.is_undefined() || c.is_none() {
        return Value::from(());
    }
    let field = |k: &str| match get(c, k) {
        v if v.is_undefined() => Value::from(()),
        v => v,
    };
    Value::from_pairs([
        ("customer_id", field("customer_id")),
        ("tier", field("tier")),
        ("account_owner", field("account_owner")),
        ("lifetime_value", field("lifetime_value")),
    ])
}

/// The name a person reads (and Zoho's `channel` knows) for a contract platform id.
fn platform_name(id: &str) -> &'static str {
    match id {
        "bluesky" => "Bluesky",
        "x" => "X",
        "mastodon" => "Mastodon",
        "reddit" => "Reddit",
        _ => "Web",
    }
}

fn rank(level: &str) -> u8 {
    match level {
        "urgent" => 3,
        "high" => 2,
        "medium" => 1,
        _ => 0,
    }
}

/// A digest summary's urgency: a number, or the contract's `{"score": …}` object.
fn summary_urgency(summary: &Value) -> i64 {
    let u = get(summary, "urgency");
    match i64::try_from(u.clone()) {
        Ok(n) => n,
        Err(_) => int(&get(&u, "score")),
    }
}

/// `HH:MM` of an RFC 3339 time, or the text as it is when it is not one.
fn clock(rfc3339: &str) -> &str {
    rfc3339.get(11..16).unwrap_or(rfc3339)
}

fn get(v: &Value, key: &str) -> Value {
    v.get_attr(key).unwrap_or(Value::UNDEFINED)
}

fn index(v: &Value, i: usize) -> Value {
    v.get_item_by_index(i).unwrap_or(Value::UNDEFINED)
}

fn items(v: &Value) -> Vec<Value> {
    if v.is_undefined() || v.is_none() {
        return Vec::new();
    }
    v.try_iter().map(|it| it.collect()).unwrap_or_default()
}

fn string(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_default()
}

fn int(v: &Value) -> i64 {
    i64::try_from(v.clone()).unwrap_or(0)
}

/// A number as `f64` (an integer too), `None` for anything else (null, missing).
fn float(v: &Value) -> Option<f64> {
    if v.is_number() {
        f64::try_from(v.clone()).ok()
    } else {
        None
    }
}
