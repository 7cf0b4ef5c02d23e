//! Payload formats on real mentions (`pipeline/tests/data/payload/`): what each CRM requires
//! is present and of the right type, digests render in every format, spike events in the
//! generic envelope and in Slack (and nowhere without a `[spike]` section), hostile text
//! stays valid JSON, overrides are used, and broken templates fail at load naming the file
//! and place.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::value::RawValue;
use serde_json::Value as Json;

use super::*;

pub(super) const CUSTOMER_COMPLAINT: &str =
    include_str!("../../../tests/data/payload/mention_customer_complaint.json");
pub(super) const UNICODE_LEAD: &str =
    include_str!("../../../tests/data/payload/mention_unicode_lead.json");
pub(super) const DIGEST: &str = include_str!("../../../tests/data/payload/digest.json");
/// The spike document templates are checked against at load: a `spike.started` of acme's
/// negative mentions whose top posts hold `<!channel>`, quotes, a newline and a null URL.
pub(super) const SPIKE: &str = include_str!("../../../../rules/payloads/samples/spike.json");

/// A GUID for Dynamics cases whose author is not a customer.
pub(super) const FALLBACK_ACCOUNT: &str = "7eb682f1-ca75-e511-80d4-00155d2a68d1";

pub(super) fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.trim().to_string()).expect("test data is JSON")
}

pub(super) fn outgoing<'a>(
    id: &'a str,
    event: EventType,
    data: &'a RawValue,
    latency: Latency,
) -> Outgoing<'a> {
    Outgoing {
        id,
        event,
        data,
        queue: "support",
        attempt: 2,
        timestamp: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_778_930_123),
        latency,
        case: None,
    }
}

pub(super) const ON_TIME: Latency = Latency {
    elapsed_ms: 1_250,
    budget_ms: Some(60_000),
    over_budget: false,
};

pub(super) const LATE: Latency = Latency {
    elapsed_ms: 95_000,
    budget_ms: Some(60_000),
    over_budget: true,
};

/// The vars a queue of `format` needs for the built-in template to load and to file every
/// sample (Zoho's org and department, a Dynamics account for non-customers and digests).
pub(super) fn vars_for(format: PayloadFormat) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match format {
        PayloadFormat::Zoho => &[("org_id", "2389290"), ("department_id", "1689000000006907")],
        PayloadFormat::Dynamics => &[("customer_id", FALLBACK_ACCOUNT)],
        _ => &[],
    };
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(super) fn builtin(format: PayloadFormat) -> Payload {
    Payload::load(format, None, &vars_for(format))
        .unwrap_or_else(|e| panic!("built-in {format} template: {e}"))
}

fn body(r: &Rendered) -> Json {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| {
        panic!(
            "body is not JSON ({e}): {}",
            String::from_utf8_lossy(&r.body)
        )
    })
}

fn header<'r>(r: &'r Rendered, name: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.to_str().ok())
}

fn chars(v: &Json) -> usize {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not a string"))
        .chars()
        .count()
}

fn text_field(v: &Json, name: &str, max: usize) {
    let n = chars(v);
    assert!(n > 0, "{name} is empty");
    assert!(n <= max, "{name} has {n} characters, more than {max}");
}

/// What one CRM requires of a rendered request, checked on a mention and on a digest.
type Check = fn(&Rendered, &Json, &Outgoing<'_>);

fn salesforce(r: &Rendered, b: &Json, out: &Outgoing<'_>) {
    // An upsert keyed by the message id in the External ID field.
    assert_eq!(r.method, http::Method::PATCH);
    assert_eq!(r.path, format!("/Earshot_Mention_Id__c/{}", out.id));
    assert!(r.exists.is_empty());
    text_field(&b["Subject"], "Subject", 255);
    text_field(&b["Description"], "Description", 32_000);
    assert!(["High", "Medium", "Low"].contains(&b["Priority"].as_str().unwrap()));
    assert_eq!(b["Origin"], "Social");
    assert_eq!(b["Status"], "New");
    assert_eq!(
        b.get("Earshot_Mention_Id__c"),
        None,
        "the key is in the URL only"
    );
    text_field(&b["SuppliedName"], "SuppliedName", 80);
}

fn zendesk(r: &Rendered, b: &Json, out: &Outgoing<'_>) {
    assert_eq!(header(r, "Idempotency-Key"), Some(out.id));
    let t = &b["ticket"];
    text_field(&t["subject"], "subject", 150);
    text_field(&t["comment"]["body"], "comment.body", 65_000);
    assert_eq!(t["comment"]["public"], false);
    assert!(["urgent", "high", "normal", "low"].contains(&t["priority"].as_str().unwrap()));
    assert!(["problem", "incident", "question", "task"].contains(&t["type"].as_str().unwrap()));
    let tags = t["tags"].as_array().expect("tags is a list");
    assert!(tags.contains(&Json::from("earshot")));
    assert!(tags.iter().all(|t| t
        .as_str()
        .is_some_and(|t| !t.is_empty() && !t.contains(' '))));
    assert_eq!(t["external_id"], out.id);
}

fn hubspot(r: &Rendered, b: &Json, out: &Outgoing<'_>) {
    // A create carrying the id in a unique property: a repeat is refused with 409.
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", ""));
    assert_eq!(r.exists, [409]);
    let p = b["properties"].as_object().expect("properties");
    assert_eq!(p["earshot_mention_id"], out.id);
    text_field(&p["subject"], "subject", 255);
    text_field(&p["content"], "content", 65_000);
    assert_eq!(p["hs_pipeline"], "0");
    assert_eq!(p["hs_pipeline_stage"], "1");
    assert!(["HIGH", "MEDIUM", "LOW"].contains(&p["hs_ticket_priority"].as_str().unwrap()));
    assert!(
        p.values().all(Json::is_string),
        "HubSpot properties are strings"
    );
}

fn dynamics(r: &Rendered, b: &Json, out: &Outgoing<'_>) {
    // Create-only through the alternate key: a repeat is answered 412.
    assert_eq!(r.method, http::Method::PATCH);
    assert_eq!(r.path, format!("(earshot_mentionid='{}')", out.id));
    assert_eq!(header(r, "If-None-Match"), Some("*"));
    assert_eq!(r.exists, [412]);
    assert_eq!(header(r, "OData-Version"), Some("4.0"));
    assert_eq!(r.content_type, "application/json; charset=utf-8");
    text_field(&b["title"], "title", 200);
    text_field(&b["description"], "description", 2_000);
    assert!(
        matches!(b["prioritycode"].as_i64(), Some(1..=3)),
        "prioritycode is an integer option: {}",
        b["prioritycode"]
    );
    assert_eq!(b["caseorigincode"].as_i64(), Some(3));
    let bind = b["customerid_account@odata.bind"].as_str().expect("bind");
    let customer = serde_json::from_str::<Json>(out.data.get()).unwrap()["customer"].clone();
    match customer["customer_id"].as_str() {
        Some(id) => assert_eq!(bind, format!("/accounts(accountnumber='{id}')")),
        None => assert_eq!(bind, format!("/accounts({FALLBACK_ACCOUNT})")),
    }
    assert!(b.get("customerid_contact@odata.bind").is_none());
}

fn zoho(r: &Rendered, b: &Json, _: &Outgoing<'_>) {
    assert_eq!(header(r, "orgId"), Some("2389290"));
    text_field(&b["subject"], "subject", 255);
    assert_eq!(b["departmentId"], "1689000000006907");
    text_field(&b["contact"]["lastName"], "contact.lastName", 80);
    assert!(b.get("contactId").is_none());
    assert!(["High", "Medium", "Low"].contains(&b["priority"].as_str().unwrap()));
    assert_eq!(b["channel"], "Web");
    assert!(["Question", "Problem", "Feature", "Others"]
        .contains(&b["classification"].as_str().unwrap()));
    text_field(&b["description"], "description", 65_535);
}

fn slack(_: &Rendered, b: &Json, _: &Outgoing<'_>) {
    text_field(&b["text"], "text", 300);
    let blocks = b["blocks"].as_array().expect("blocks");
    assert!(!blocks.is_empty() && blocks.len() <= 50);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    text_field(&blocks[0]["text"]["text"], "header", 150);
    for block in blocks {
        match block["type"].as_str().unwrap() {
            "header" => {}
            "section" => {
                if let Some(t) = block.get("text") {
                    text_field(&t["text"], "section text", 3_000);
                }
                if let Some(f) = block.get("fields") {
                    let f = f.as_array().unwrap();
                    assert!(f.len() <= 10);
                    f.iter()
                        .for_each(|f| text_field(&f["text"], "section field", 2_000));
                }
            }
            "context" => {
                let e = block["elements"].as_array().unwrap();
                assert!(!e.is_empty() && e.len() <= 10);
            }
            other => panic!("unexpected block type {other}"),
        }
    }
}

pub(super) const CHECKS: [(PayloadFormat, Check); 6] = [
    (PayloadFormat::Salesforce, salesforce),
    (PayloadFormat::Zendesk, zendesk),
    (PayloadFormat::Hubspot, hubspot),
    (PayloadFormat::Dynamics, dynamics),
    (PayloadFormat::Zoho, zoho),
    (PayloadFormat::Slack, slack),
];

/// The messages every format is checked on: two real mentions (a customer's complaint with a
/// link; a non-customer's question full of quotes, newlines, emoji and CJK), each on time and
/// late, and a digest.
pub(super) fn messages() -> Vec<(&'static str, EventType, Box<RawValue>, Latency)> {
    vec![
        (
            "customer complaint",
            EventType::MentionCreated,
            raw(CUSTOMER_COMPLAINT),
            ON_TIME,
        ),
        (
            "customer complaint, late",
            EventType::MentionCreated,
            raw(CUSTOMER_COMPLAINT),
            LATE,
        ),
        (
            "unicode lead",
            EventType::MentionCreated,
            raw(UNICODE_LEAD),
            ON_TIME,
        ),
        ("digest", EventType::MentionDigest, raw(DIGEST), LATE),
    ]
}

/// The spike events every format with a `[spike]` section is checked on: the sample spike as
/// it starts, an update and its end.
pub(super) fn spike_messages() -> Vec<(&'static str, EventType, Box<RawValue>, Latency)> {
    let started: Json = serde_json::from_str(SPIKE).unwrap();
    let mut updated = started.clone();
    updated["event"] = "updated".into();
    updated["ratio"] = 8.2.into();
    updated["mentions"] = 301.into();
    let mut ended = updated.clone();
    ended["event"] = "ended".into();
    ended["ended_at"] = "2026-11-24T10:04:12.000Z".into();
    ended["ratio"] = 1.3.into();
    vec![
        (
            "spike started",
            EventType::SpikeStarted,
            raw(&started.to_string()),
            ON_TIME,
        ),
        (
            "spike updated",
            EventType::SpikeUpdated,
            raw(&updated.to_string()),
            LATE,
        ),
        (
            "spike ended",
            EventType::SpikeEnded,
            raw(&ended.to_string()),
            ON_TIME,
        ),
    ]
}

#[test]
fn every_format_renders_what_its_crm_requires() {
    for (format, check) in CHECKS {
        let payload = builtin(format);
        assert_eq!(payload.format(), format);
        for (name, event, data, latency) in messages() {
            let out = outgoing("m_9732c588a36f7872a1a82719", event, &data, latency);
            let r = payload
                .render(&out)
                .unwrap_or_else(|e| panic!("{format} / {name}: {e}"));
            let b = body(&r);
            check(&r, &b, &out);
        }
    }
}

#[test]
fn urgency_73_with_an_escalation_is_high_priority_in_every_crm() {
    let data = raw(CUSTOMER_COMPLAINT);
    let out = outgoing("m_1", EventType::MentionCreated, &data, ON_TIME);
    let field = |format, pointer: &str| {
        let b = body(&builtin(format).render(&out).unwrap());
        b.pointer(pointer)
            .unwrap_or_else(|| panic!("{format}: no {pointer}"))
            .clone()
    };
    assert_eq!(field(PayloadFormat::Salesforce, "/Priority"), "High");
    assert_eq!(field(PayloadFormat::Zendesk, "/ticket/priority"), "high");
    assert_eq!(field(PayloadFormat::Zendesk, "/ticket/type"), "incident");
    assert_eq!(
        field(PayloadFormat::Hubspot, "/properties/hs_ticket_priority"),
        "HIGH"
    );
    assert_eq!(field(PayloadFormat::Dynamics, "/prioritycode"), 1);
    assert_eq!(field(PayloadFormat::Zoho, "/priority"), "High");
    assert_eq!(field(PayloadFormat::Zoho, "/classification"), "Problem");
    // The lead scores 16: low everywhere, and files as a task in Zendesk.
    let lead = raw(UNICODE_LEAD);
    let out = outgoing("m_2", EventType::MentionCreated, &lead, ON_TIME);
    let b = body(&builtin(PayloadFormat::Zendesk).render(&out).unwrap());
    assert_eq!(b["ticket"]["priority"], "low");
    assert_eq!(b["ticket"]["type"], "task");
    let b = body(&builtin(PayloadFormat::Dynamics).render(&out).unwrap());
    assert_eq!(b["prioritycode"], 3);
}

/// A late delivery says so in the description and in Slack; Zendesk's create says nothing
/// that changes between attempts, since Zendesk refuses an `Idempotency-Key` sent again with
/// another body.
#[test]
fn late_deliveries_are_flagged() {
    let data = raw(CUSTOMER_COMPLAINT);
    let zendesk = |latency| {
        let out = outgoing("m_1", EventType::MentionCreated, &data, latency);
        builtin(PayloadFormat::Zendesk).render(&out).unwrap().body
    };
    assert_eq!(
        zendesk(ON_TIME),
        zendesk(LATE),
        "the same body on every attempt"
    );
    for (latency, late) in [(ON_TIME, false), (LATE, true)] {
        let out = outgoing("m_1", EventType::MentionCreated, &data, latency);
        let b = body(&builtin(PayloadFormat::Salesforce).render(&out).unwrap());
        let description = b["Description"].as_str().unwrap();
        assert_eq!(
            description.contains("Late: sent 95 s after"),
            late,
            "{description}"
        );
        let b = body(&builtin(PayloadFormat::Slack).render(&out).unwrap());
        let context = b["blocks"].as_array().unwrap().last().unwrap()["elements"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(context.contains("late"), late, "{context}");
    }
}

#[test]
fn the_description_carries_the_judgement() {
    let data = raw(CUSTOMER_COMPLAINT);
    let out = outgoing("m_9732", EventType::MentionCreated, &data, ON_TIME);
    let b = body(&builtin(PayloadFormat::Salesforce).render(&out).unwrap());
    let d = b["Description"].as_str().unwrap();
    for want in [
        "my rocket skates arrived broken",
        "Bluesky post by did:plc:ewvi7nxzyoun6zhxrhs64oiz: https://bsky.app/profile/",
        "Brand: acme · category: complaint · sentiment: negative (-0.8834)",
        "Urgency: 73/100\n  - negative_sentiment: 31\n  - category: 10\n",
        "Recommendation: escalate (social): urgency 73 is at least 70",
        "Customer: ACME-C-1001, tier enterprise, owner dana@acme.example",
        "Mention m_9732, queue support (earshot)",
    ] {
        assert!(d.contains(want), "no {want:?} in:\n{d}");
    }
    assert!(!d.contains("\n\n\n"), "no runs of blank lines:\n{d}");
    assert_eq!(
        b["Subject"],
        "[acme] complaint from did:plc:ewvi7nxzyoun6zhxrhs64oiz: @acmehq.bsky.social my rocket \
         skates arrived broken and support is still not answering acme.example/orders/… third \
         time asking, need a refund"
    );
}

#[test]
fn digests_summarize_the_window() {
    let data = raw(DIGEST);
    let out = outgoing("d_1", EventType::MentionDigest, &data, ON_TIME);
    let b = body(&builtin(PayloadFormat::Zendesk).render(&out).unwrap());
    let t = &b["ticket"];
    assert_eq!(
        t["subject"],
        "[support] 42 mentions held back, 10:00–10:01 UTC"
    );
    // The most urgent example is a crisis (92): the digest is urgent.
    assert_eq!(t["priority"], "urgent");
    assert_eq!(t["type"], "task");
    let comment = t["comment"]["body"].as_str().unwrap();
    for want in [
        "42 mentions for queue support were held back",
        "  - rate_limited: 30\n",
        "Over the rate limit (30), the most urgent:",
        "Reposted 8 times: at://",
        "A storm of 3 near-identical posts",
        "  - @coyote-fan.bsky.social: 1",
    ] {
        assert!(comment.contains(want), "no {want:?} in:\n{comment}");
    }
    let b = body(&builtin(PayloadFormat::Slack).render(&out).unwrap());
    let section = b["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        section.starts_with("*Held back:* rate_limited 30, repost 8, storm 3, cooldown 1"),
        "{section}"
    );
}

/// A post of 40,000 characters of quotes, backslashes, newlines, control characters, markup,
/// emoji and CJK: every format's body is valid JSON, every field within its CRM's limit.
#[test]
fn hostile_text_stays_valid_json_within_limits() {
    let unit = "\"quoted\" \\ back\\slash\nnew line\ttab \u{1} ctl </script> <!channel> {{ not a \
                template }} {% nor this %} 🙃 日本語 ";
    let text: String = unit.chars().cycle().take(40_000).collect();
    let mut m: Json = serde_json::from_str(CUSTOMER_COMPLAINT).unwrap();
    m["post"]["text"] = Json::from(text.clone());
    m["post"]["author"]["handle"] = Json::from("\"><img src=x>\u{7f}");
    let data = raw(&m.to_string());
    for (format, check) in CHECKS {
        let out = outgoing("m_hostile", EventType::MentionCreated, &data, LATE);
        let r = builtin(format).render(&out).unwrap();
        let b = body(&r);
        check(&r, &b, &out);
    }
    // The text arrives whole where the limit allows it (Zendesk's comment: 65,000).
    let out = outgoing("m_hostile", EventType::MentionCreated, &data, LATE);
    let b = body(&builtin(PayloadFormat::Zendesk).render(&out).unwrap());
    assert!(b["ticket"]["comment"]["body"]
        .as_str()
        .unwrap()
        .starts_with(&text));
    // Slack sees it escaped: no channel ping, no tags.
    let b = body(&builtin(PayloadFormat::Slack).render(&out).unwrap());
    let shown = b["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(shown.contains("&lt;!channel&gt;") && !shown.contains("<!channel>"));
}

#[test]
fn generic_embeds_data_byte_for_byte() {
    let payload = Payload::load(PayloadFormat::Generic, None, &BTreeMap::new()).unwrap();
    assert_eq!(payload.format(), PayloadFormat::Generic);
    let spikes = spike_messages();
    let types: Vec<&str> = spikes.iter().map(|(_, e, _, _)| e.as_str()).collect();
    assert_eq!(types, ["spike.started", "spike.updated", "spike.ended"]);
    for (name, event, data, latency) in messages().into_iter().chain(spikes) {
        let mut out = outgoing("m_1", event, &data, latency);
        out.queue = "sup\"port";
        let r = payload.render(&out).unwrap();
        assert_eq!(r.content_type, "application/json");
        assert!(r.headers.is_empty());
        let body = std::str::from_utf8(&r.body).unwrap();
        assert!(
            body.contains(&format!("\"data\":{},\"delivery\"", data.get())),
            "{name}: data not embedded verbatim"
        );
        let b: Json = serde_json::from_str(body).unwrap();
        assert_eq!(b["type"], event.as_str());
        assert_eq!(b["timestamp"], "2026-11-27T11:28:50.123Z");
        assert_eq!(b["data"], serde_json::from_str::<Json>(data.get()).unwrap());
        let d = &b["delivery"];
        assert_eq!(d["queue"], "sup\"port");
        assert_eq!(d["attempt"], 2);
        assert_eq!(d["elapsed_ms"], latency.elapsed_ms);
        assert_eq!(d["budget_ms"], 60_000);
        assert_eq!(d["over_budget"], latency.over_budget);
        assert_eq!(b.as_object().unwrap().len(), 4);
    }
    // No budget: null.
    let data = raw(UNICODE_LEAD);
    let mut out = outgoing("m_1", EventType::MentionCreated, &data, ON_TIME);
    out.latency = Latency::default();
    let b = body(&payload.render(&out).unwrap());
    assert_eq!(b["delivery"]["budget_ms"], Json::Null);
    assert_eq!(b["delivery"]["over_budget"], false);
}

#[test]
fn generic_takes_no_template() {
    let e = Payload::load(
        PayloadFormat::Generic,
        Some(Path::new("mine.toml")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(matches!(e, PayloadError::GenericTemplate { .. }));
    assert!(e.to_string().contains("mine.toml"), "{e}");
}

/// Which events each payload can carry: asked when the configuration loads, so a queue sent
/// spike events must have a format that renders them.
#[test]
fn handles_says_which_events_a_payload_can_render() {
    let generic = Payload::load(PayloadFormat::Generic, None, &BTreeMap::new()).unwrap();
    assert_eq!(generic.template_file(), None);
    for event in EventType::ALL {
        assert!(generic.handles(event), "generic carries {}", event.as_str());
    }
    for format in PayloadFormat::ALL.into_iter().skip(1) {
        let payload = builtin(format);
        assert_eq!(
            payload.template_file(),
            Some(format!("rules/payloads/{format}.toml").as_str())
        );
        assert!(payload.handles(EventType::MentionCreated), "{format}");
        assert!(payload.handles(EventType::MentionDigest), "{format}");
        // Only Slack, for people, announces spikes; a CRM would open a ticket per update.
        for event in EventType::ALL.into_iter().filter(|e| e.is_spike()) {
            assert_eq!(
                payload.handles(event),
                format == PayloadFormat::Slack,
                "{format} / {}",
                event.as_str()
            );
        }
    }
}

/// A template without `[spike]` cannot render a spike event: a permanent render error that
/// names the file, like a digest sent to a template without `[digest]`.
#[test]
fn a_template_without_spike_refuses_spike_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "mentions-only.toml",
        "[body]
subject = \"{{ subject }}\"
[digest.body]
subject = \"{{ subject }}\"
",
    );
    let payload = Payload::load(PayloadFormat::Hubspot, Some(&path), &BTreeMap::new()).unwrap();
    assert!(payload.handles(EventType::MentionDigest));
    for (name, event, data, latency) in spike_messages() {
        assert!(!payload.handles(event), "{name}");
        let e = payload
            .render(&outgoing("spk_1.started", event, &data, latency))
            .unwrap_err();
        assert_eq!(
            e,
            RenderError::NoSpike {
                file: path.display().to_string()
            }
        );
        assert_eq!(e.reason(), "no_spike");
        assert!(
            e.to_string().ends_with("the template has no [spike] body"),
            "{e}"
        );
    }
    let e = builtin(PayloadFormat::Zendesk)
        .render(&outgoing(
            "spk_1.ended",
            EventType::SpikeEnded,
            &spike_messages()[2].2,
            ON_TIME,
        ))
        .unwrap_err();
    assert_eq!(e.reason(), "no_spike");
    assert!(
        e.to_string().starts_with("rules/payloads/zendesk.toml: "),
        "{e}"
    );
}

/// The variables of a spike event: its document as `data`, a subject per event, the brand,
/// and `priority` urgent for negative mentions, high for all mentions.
#[test]
fn spike_events_have_their_own_subject_and_priority() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "spike-vars.toml",
        r#"
[body]
x = 1
[spike.headers]
X-Spike = "{{ data.spike_id }}"
[spike.body]
subject = "{{ subject }}"
event = "{{ event }}"
brand = "{{ brand }}"
priority = "{{ priority }}"
urgency = "{{ urgency }}"
digest = "{{ digest }}"
id = "{{ id }}"
queue = "{{ delivery.queue }}"
posts = "{{ data.posts | length }}"
"#,
    );
    let payload = Payload::load(PayloadFormat::Zendesk, Some(&path), &BTreeMap::new()).unwrap();
    let want = [
        "Spike: acme negative mentions 11.3× baseline",
        "Spike: acme negative mentions still 8.2× baseline",
        "Spike over: acme negative mentions, peak 12.7× baseline",
    ];
    for ((name, event, data, latency), subject) in spike_messages().into_iter().zip(want) {
        let r = payload
            .render(&outgoing(
                "spk_acme_negative_1795514400.started",
                event,
                &data,
                latency,
            ))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(header(&r, "X-Spike"), Some("spk_acme_negative_1795514400"));
        let b = body(&r);
        assert_eq!(b["subject"], subject, "{name}");
        assert_eq!(b["event"], event.as_str());
        assert_eq!(b["brand"], "acme");
        assert_eq!(b["priority"], "urgent");
        assert_eq!(b["urgency"], 92, "the most urgent top post");
        assert_eq!(b["digest"], false);
        assert_eq!(b["id"], "spk_acme_negative_1795514400.started");
        assert_eq!(b["queue"], "support");
        assert_eq!(b["posts"], 3);
    }
    // A spike of all of a brand's mentions is worth attention, not yet trouble; without a
    // ratio the subject still reads.
    let mut all: Json = serde_json::from_str(SPIKE).unwrap();
    all["series"] = "all".into();
    all["ratio"] = Json::Null;
    all["posts"] = serde_json::json!([]);
    let data = raw(&all.to_string());
    let b = body(
        &payload
            .render(&outgoing("s", EventType::SpikeStarted, &data, ON_TIME))
            .unwrap(),
    );
    assert_eq!(b["subject"], "Spike: acme mentions above baseline");
    assert_eq!(b["priority"], "high");
    assert_eq!(b["urgency"], 0);
}

/// Slack's spike message: within Slack's limits, 🚨 while it lasts and ✅ when over, the
/// figures, the driving terms, and the top posts escaped and linked.
#[test]
fn slack_announces_spikes() {
    let slack_payload = builtin(PayloadFormat::Slack);
    for (name, event, data, latency) in spike_messages() {
        let out = outgoing(
            "spk_acme_negative_1795514400.started",
            event,
            &data,
            latency,
        );
        let r = slack_payload
            .render(&out)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = body(&r);
        slack(&r, &b, &out);
        let header = b["blocks"][0]["text"]["text"].as_str().unwrap();
        let emoji = if event == EventType::SpikeEnded {
            "✅ "
        } else {
            "🚨 "
        };
        assert!(header.starts_with(emoji), "{name}: {header}");
        assert!(b["text"].as_str().unwrap().starts_with(emoji), "{name}");
        assert!(header.contains("acme negative mentions"), "{header}");
    }
    let data = raw(SPIKE);
    let out = outgoing("spk_1.started", EventType::SpikeStarted, &data, ON_TIME);
    let b = body(&slack_payload.render(&out).unwrap());
    assert_eq!(
        b["blocks"][0]["text"]["text"],
        "🚨 Spike: acme negative mentions 11.3× baseline"
    );
    let fields: Vec<&str> = b["blocks"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Rate*\n12.4/s over the last 5 s (peak 14.0/s)",
            "*Baseline*\n1.1/s",
            "*Ratio*\n11.3× baseline (peak 12.7×)",
            "*Mentions*\n87 negative since 10:00 UTC",
            "*Negative share*\n82%",
            "*Priority*\nurgent",
        ]
    );
    let section = b["blocks"][2]["text"]["text"].as_str().unwrap();
    for want in [
        "*Driving terms:* outage (40, 35.0× usual), rocket skates (22, 9.5× usual), refund (17, 6.1× usual)\n\n*Top posts:*\n• [92] roadrunner-news.bsky.social (48200 followers) on Bluesky: ",
        "Third outage this month &lt;!channel&gt; &amp; counting <https://bsky.app/profile/did:plc:r2vmfzqdwgwkm2ftpktxhbfk/post/3mqa1crisis11a|post>\n",
        "• [58] 1593288271364386816 on X: is acme down?? \"service unavailable\" on every page anyone else?",
    ] {
        assert!(section.contains(want), "no {want:?} in:\n{section}");
    }
    assert!(!section.contains("<!channel>"), "{section}");
    let context = b["blocks"][3]["elements"][0]["text"].as_str().unwrap();
    assert!(
        context == "brand acme · negative mentions · started 10:00:00 UTC · queue support · spk_1.started",
        "{context}"
    );
    assert!(!context.contains("ended"), "{context}");
}

/// A spike with many long, hostile posts and terms: still one valid Slack message within its
/// limits, nothing unescaped.
#[test]
fn slack_spikes_stay_within_limits() {
    let unit = "\"quoted\" \\ <!channel> & <@U123> *bold* \n 🙃 日本語 ";
    let long: String = unit.chars().cycle().take(5_000).collect();
    let mut spike: Json = serde_json::from_str(SPIKE).unwrap();
    let post = spike["posts"][0].clone();
    spike["posts"] = (0..20)
        .map(|i| {
            let mut p = post.clone();
            p["text"] = Json::from(long.clone());
            p["author"] = Json::from(format!("<!here>{i}{long}"));
            p["url"] = Json::from(format!("https://example.com/{i}?a=1&b=<2>"));
            p
        })
        .collect();
    spike["terms"] = (0..30)
        .map(|i| serde_json::json!({"term": format!("<!everyone> {i} {long}"), "count": i, "lift": 2.5}))
        .collect();
    spike["brand"] = "<acme>".into();
    let data = raw(&spike.to_string());
    for event in [EventType::SpikeStarted, EventType::SpikeEnded] {
        let out = outgoing("spk_1", event, &data, LATE);
        let r = builtin(PayloadFormat::Slack).render(&out).unwrap();
        let b = body(&r);
        slack(&r, &b, &out);
        // Everything Slack reads as mrkdwn (all but the plain_text header) is escaped.
        let blocks = b["blocks"].as_array().unwrap();
        let mut mrkdwn = vec![&b["text"]];
        for block in blocks.iter().skip(1) {
            mrkdwn.extend(block.get("text").map(|t| &t["text"]));
            for list in ["fields", "elements"] {
                let items = block.get(list).and_then(Json::as_array);
                mrkdwn.extend(items.into_iter().flatten().map(|f| &f["text"]));
            }
        }
        assert_eq!(mrkdwn.len(), 1 + 6 + 1 + 1);
        for text in mrkdwn {
            let text = text.as_str().unwrap();
            for ping in [
                "<!channel>",
                "<!here>",
                "<!everyone>",
                "<@U123>",
                "<acme>",
                "<2>",
            ] {
                assert!(!text.contains(ping), "{ping} unescaped in {text}");
            }
        }
    }
}

/// The built-in templates are the files in `rules/payloads/`, embedded: a team copying the
/// file starts from exactly what earshot sends.
#[test]
fn built_in_templates_are_the_files_in_rules_payloads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("rules/payloads/README.md")).unwrap();
    for format in PayloadFormat::ALL {
        let Some((path, text)) = format.builtin_template() else {
            assert_eq!(format, PayloadFormat::Generic);
            continue;
        };
        assert_eq!(path, format!("rules/payloads/{format}.toml"));
        let on_disk = std::fs::read_to_string(root.join(path)).unwrap();
        assert_eq!(on_disk, text, "{path} differs from the built-in copy");
        assert!(
            readme.contains(&format!("`{format}`")),
            "README lacks {format}"
        );
    }
    for name in context::NAMES {
        assert!(
            readme.contains(&format!("| `{name}")),
            "README's variable table lacks {name}"
        );
    }
}

#[test]
fn payloads_are_shareable() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Payload>();
}

#[test]
fn zoho_needs_org_and_department_at_load() {
    let e = Payload::load(PayloadFormat::Zoho, None, &BTreeMap::new()).unwrap_err();
    let msg = e.to_string();
    for want in [
        "rules/payloads/zoho.toml:",
        "headers.orgId: with the sample mention",
        "`vars.org_id` is undefined",
        "body.departmentId: with the sample mention",
        "`vars.department_id` is undefined",
        "set it in the queue's vars",
    ] {
        assert!(msg.contains(want), "no {want:?} in:\n{msg}");
    }
}

#[test]
fn dynamics_without_a_customer_fails_to_render_clearly() {
    let payload = Payload::load(PayloadFormat::Dynamics, None, &BTreeMap::new()).unwrap();
    let lead = raw(UNICODE_LEAD);
    let e = payload
        .render(&outgoing("m_2", EventType::MentionCreated, &lead, ON_TIME))
        .unwrap_err();
    assert_eq!(e.reason(), "template");
    let msg = e.to_string();
    assert!(
        msg.starts_with("rules/payloads/dynamics.toml: body.customerid_account@odata.bind: required: no customer"),
        "{msg}"
    );
    // A customer's mention still files under its account.
    let customer = raw(CUSTOMER_COMPLAINT);
    let r = payload
        .render(&outgoing(
            "m_1",
            EventType::MentionCreated,
            &customer,
            ON_TIME,
        ))
        .unwrap();
    assert_eq!(
        body(&r)["customerid_account@odata.bind"],
        "/accounts(accountnumber='ACME-C-1001')"
    );
    // Contacts bind through contacts.
    let mut vars = vars_for(PayloadFormat::Dynamics);
    vars.insert("customer_table".into(), "contact".into());
    let payload = Payload::load(PayloadFormat::Dynamics, None, &vars).unwrap();
    let b = body(
        &payload
            .render(&outgoing("m_2", EventType::MentionCreated, &lead, ON_TIME))
            .unwrap(),
    );
    assert_eq!(
        b["customerid_contact@odata.bind"],
        format!("/contacts({FALLBACK_ACCOUNT})")
    );
    assert!(b.get("customerid_account@odata.bind").is_none());
}

#[test]
fn vars_override_defaults_and_templated_keys_can_be_left_out() {
    let data = raw(CUSTOMER_COMPLAINT);
    let out = outgoing("m_1", EventType::MentionCreated, &data, ON_TIME);
    let vars = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let sf = Payload::load(
        PayloadFormat::Salesforce,
        None,
        &vars(&[("origin", "Web"), ("external_id_field", "")]),
    )
    .unwrap();
    let b = body(&sf.render(&out).unwrap());
    assert_eq!(b["Origin"], "Web");
    assert!(b.get("Earshot_Mention_Id__c").is_none() && b.get("").is_none());
    let hs = Payload::load(
        PayloadFormat::Hubspot,
        None,
        &vars(&[
            ("pipeline", "77"),
            ("stage", "78"),
            ("id_property", "earshot_id"),
        ]),
    )
    .unwrap();
    let b = body(&hs.render(&out).unwrap());
    assert_eq!(b["properties"]["hs_pipeline"], "77");
    assert_eq!(b["properties"]["hs_pipeline_stage"], "78");
    assert_eq!(b["properties"]["earshot_id"], "m_1");
    assert!(b["properties"].get("hubspot_owner_id").is_none());
    let zd = Payload::load(
        PayloadFormat::Zendesk,
        None,
        &vars(&[("requester_id", "361"), ("group_id", "20")]),
    )
    .unwrap();
    let b = body(&zd.render(&out).unwrap());
    assert_eq!(b["ticket"]["requester_id"], 361);
    assert_eq!(b["ticket"]["group_id"], 20);
    assert!(b["ticket"].get("requester").is_none());
}

/// A queue var no template reads is a typo in the config: refused at load.
#[test]
fn a_queue_var_the_template_does_not_read_is_refused() {
    let mut vars = BTreeMap::new();
    vars.insert("pipline".to_string(), "5".to_string());
    let e = Payload::load(PayloadFormat::Hubspot, None, &vars).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(
            "rules/payloads/hubspot.toml: vars.pipline: the queue sets var `pipline`, which \
             this template does not read (it reads: id_property, owner_id, pipeline, stage)"
        ),
        "{msg}"
    );
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_queue_override_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "zendesk-acme.toml",
        r#"
[vars]
group = "social"

[headers]
Idempotency-Key = "{{ id }}"
X-Team = "{{ vars.group }}"

[body.ticket]
subject = "{{ brand | upper }}: {{ text | oneline | truncate(20) }}"
urgency = "{{ urgency }}"
late = "{{ delivery.over_budget }}"
links = "{{ data.post.links | default([]) }}"
tags = ["earshot", "{{ vars.group }}", "{{ omit }}"]
fixed = 3
[body.ticket.comment]
body = "{{ text }}"
"#,
    );
    let mut vars = BTreeMap::new();
    vars.insert("group".to_string(), "vip".to_string());
    let payload = Payload::load(PayloadFormat::Zendesk, Some(&path), &vars).unwrap();
    let data = raw(CUSTOMER_COMPLAINT);
    let r = payload
        .render(&outgoing("m_1", EventType::MentionCreated, &data, LATE))
        .unwrap();
    assert_eq!(header(&r, "X-Team"), Some("vip"));
    let b = body(&r);
    let t = &b["ticket"];
    assert_eq!(t["subject"], "ACME: @acmehq.bsky.social…");
    assert_eq!(t["urgency"], 73);
    assert_eq!(t["late"], true);
    assert_eq!(
        t["links"],
        serde_json::json!(["https://acme.example/orders/88412"])
    );
    assert_eq!(t["tags"], serde_json::json!(["earshot", "vip"]));
    assert_eq!(t["fixed"], 3);
    // Keys keep the file's order.
    let keys: Vec<&String> = t.as_object().unwrap().keys().collect();
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(text.find("\"subject\"").unwrap() < text.find("\"urgency\"").unwrap());
    assert_eq!(keys.len(), 7);
    // No [digest]: a digest cannot be rendered in it.
    let digest = raw(DIGEST);
    let e = payload
        .render(&outgoing("d_1", EventType::MentionDigest, &digest, LATE))
        .unwrap_err();
    assert_eq!(e.reason(), "no_digest");
}

/// Each broken template, the place its error is reported at, and words of the message.
#[test]
fn broken_templates_fail_at_load_naming_file_and_place() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "template syntax",
            "[body]\nok = \"{{ id }}\"\nsubject = \"{{ subject | oneline }\"\n",
            ":3:33: body.subject:",
            &["syntax error", "expected end of variable block"],
        ),
        (
            "syntax on the second line of a multi-line string",
            "[body]\ndescription = \"\"\"\nline one {{ id }}\nline two {% if %}\n\"\"\"\n",
            ":4:16: body.description:",
            &["syntax error: unexpected end of block (template line 2)"],
        ),
        (
            "unknown variable",
            "[body]\nsubject = \"{{ sujbect }}\"\n",
            ":2:15: body.subject:",
            &["unknown variable `sujbect`", "the variables are id, event"],
        ),
        (
            "misspelt data path",
            "[body]\ntext = \"hello {{ data.post.txet }}\"\n",
            ":2:18: body.text:",
            &["with the sample mention", "`data.post.txet` is undefined"],
        ),
        (
            "a field only some mentions have",
            "[body]\nlinks = \"{{ data.post.links[0] }}\"\n",
            ":2:22: body.links:",
            &["without the optional fields", "undefined"],
        ),
        (
            "an unknown var",
            "[body]\norigin = \"{{ vars.origin }}\"\n",
            ":2:14: body.origin:",
            &["`vars.origin` is undefined", "give the var a default"],
        ),
        (
            "an unknown filter",
            "[body]\nsubject = \"{{ subject | shout }}\"\n",
            ":2:25: body.subject:",
            &["unknown filter: filter shout is unknown"],
        ),
        (
            "bad TOML",
            "[body]\nsubject = \"{{ subject }}\nnext = 1\n",
            ":2:25: invalid basic string",
            &[],
        ),
        (
            "unknown top-level key",
            "content_typ = \"text/plain\"\n[body]\nx = 1\n",
            ":1:1: content_typ: unknown key",
            &["content_type, [vars], [headers], [body], [digest], [spike], [followup], [deleted] and [request]"],
        ),
        (
            "no body",
            "[headers]\nX-A = \"1\"\n",
            ":1:1: body: the template has no [body] table",
            &[],
        ),
        (
            "bad header name",
            "[headers]\n\"X A\" = \"1\"\n[body]\nx = 1\n",
            ":2:1: headers.X A: not a valid HTTP header name",
            &[],
        ),
        (
            "a var that is not a string",
            "[vars]\nstage = 1\n[body]\nx = \"{{ vars.stage }}\"\n",
            ":2:9: vars.stage: vars are strings",
            &[],
        ),
        (
            "digest without a body",
            "[body]\nx = 1\n[digest.headers]\nX-A = \"1\"\n",
            ":3:2: digest: [digest] needs a [digest.body] table",
            &[],
        ),
        (
            "digest template reading the mention",
            "[body]\nx = 1\n[digest.body]\ntext = \"{{ data.post.text }}\"\n",
            ":4:16: digest.body.text: with the sample digest",
            &["`data.post` is undefined"],
        ),
        (
            "spike without a body",
            "[body]\nx = 1\n[spike.headers]\nX-A = \"1\"\n",
            ":3:2: spike: [spike] needs a [spike.body] table",
            &[],
        ),
        (
            "unknown key in spike",
            "[body]\nx = 1\n[spike.body]\nx = 1\n[spike.bdy]\ny = 2\n",
            ":5:8: spike.bdy: unknown key: [spike] has [spike.body] and [spike.headers]",
            &[],
        ),
        (
            "spike template reading the mention",
            "[body]\nx = 1\n[spike.body]\ntext = \"{{ data.post.text }}\"\n",
            ":4:16: spike.body.text: with the sample spike (rules/payloads/samples/spike.json)",
            &["`data.post` is undefined"],
        ),
        (
            "spike template assuming every spike has posts",
            "[body]\nx = 1\n[spike.body]\nfirst = \"{{ data.posts[0].text }}\"\n",
            ":4:23: spike.body.first: with a sample spike of all mentions without terms, posts",
            &["undefined"],
        ),
        (
            "spike template assuming a negative share",
            "[body]\nx = 1\n[spike.body]\nshare = \"{{ data.negative_share * 100 }}\"\n",
            ":4:13: spike.body.share: with a sample spike of all mentions",
            &["unsupported types none and number"],
        ),
        (
            "spike template with a syntax error",
            "[body]\nx = 1\n[spike.body]\ntext = \"{{ subject | }}\"\n",
            ":4:",
            &["spike.body.text", "syntax error"],
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (name, text, at, words)) in cases.iter().enumerate() {
        let path = write(&dir, &format!("case{i}.toml"), text);
        let e = match Payload::load(PayloadFormat::Zendesk, Some(&path), &BTreeMap::new()) {
            Ok(_) => panic!("{name}: loaded"),
            Err(e) => e,
        };
        let msg = e.to_string();
        let want = format!("{}{at}", path.display());
        assert!(msg.contains(&want), "{name}: no {want:?} in:\n{msg}");
        for w in *words {
            assert!(msg.contains(w), "{name}: no {w:?} in:\n{msg}");
        }
    }
}

#[test]
fn every_mistake_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "many.toml",
        "[body]\na = \"{{ nope }}\"\nb = \"{{ id }\"\nc = \"{{ data.nope }}\"\n",
    );
    let e = Payload::load(PayloadFormat::Slack, Some(&path), &BTreeMap::new()).unwrap_err();
    let PayloadError::Invalid { issues, .. } = &e else {
        panic!("{e}")
    };
    // The syntax error stops the checks that need a compiled file.
    assert_eq!(issues.len(), 1, "{e}");
    std::fs::write(
        &path,
        "[body]\na = \"{{ nope }}\"\nb = \"{{ data.nope }}\"\nc = \"{{ vars.x }}\"\n",
    )
    .unwrap();
    let e = Payload::load(PayloadFormat::Slack, Some(&path), &BTreeMap::new()).unwrap_err();
    let PayloadError::Invalid { issues, .. } = &e else {
        panic!("{e}")
    };
    let fields: Vec<&str> = issues.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["body.a", "body.b", "body.c"], "{e}");
}

#[test]
fn a_missing_template_file_is_named() {
    let e = Payload::load(
        PayloadFormat::Zendesk,
        Some(Path::new("/nonexistent/zendesk.toml")),
        &BTreeMap::new(),
    )
    .unwrap_err();
    assert!(matches!(e, PayloadError::Read { .. }));
    assert!(e.to_string().contains("/nonexistent/zendesk.toml"), "{e}");
}

/// A header carrying post text breaks on the first post with a newline: a render error for
/// that message, not a malformed request.
#[test]
fn a_header_value_http_cannot_carry_is_a_render_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "header.toml",
        "[headers]\nX-Text = \"{{ text }}\"\n[body]\nid = \"{{ id }}\"\n",
    );
    let payload = Payload::load(PayloadFormat::Hubspot, Some(&path), &BTreeMap::new()).unwrap();
    let lead = raw(UNICODE_LEAD);
    let e = payload
        .render(&outgoing("m_2", EventType::MentionCreated, &lead, ON_TIME))
        .unwrap_err();
    assert_eq!(e.reason(), "header");
    assert!(
        e.to_string()
            .ends_with("headers.x-text: the value is not a valid HTTP header value"),
        "{e}"
    );
}

#[test]
fn a_template_that_never_ends_is_refused_after_its_limit() {
    // A device reports no size and never ends: the read stops at the limit.
    let err = super::template::read(Path::new("/dev/zero")).unwrap_err();
    assert!(err.to_string().contains("a template may have"), "{err}");
}

#[test]
fn a_request_section_is_checked_at_load_and_sets_method_path_and_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        Payload::load(PayloadFormat::Salesforce, Some(&file), &BTreeMap::new())
    };
    let Err(e) = load(
        "bad.toml",
        "[request]\nmethod = \"DELETE\"\nexists = [99, 409]\nretry = 1\n[body]\nSubject = \"s\"\n",
    ) else {
        panic!("loaded")
    };
    let e = e.to_string();
    let Err(e2) = load(
        "half.toml",
        "[request]\nlookup = \"/search?k={{ id }}\"\n[body]\nSubject = \"s\"\n",
    ) else {
        panic!("loaded")
    };
    assert!(
        e2.to_string()
            .contains("half.toml:2:1: request.lookup: needs `found`"),
        "{e2}"
    );
    for want in [
        "bad.toml:2:10: request.method: POST, PATCH or PUT",
        "bad.toml:3:11: request.exists: an HTTP status, 200 to 599",
        "bad.toml:4:1: request.retry: unknown key: [request] has method, path, exists, lookup, found, ticket_id and found_ticket_id",
    ] {
        assert!(e.contains(want), "{want}\nin\n{e}");
    }
    // A path made of post text could leave the path (`?`, `#`, spaces): the sample
    // mentions rendered at load catch it.
    let Err(e) = load(
        "text.toml",
        "[request]\npath = \"/{{ text }}\"\n[body]\nSubject = \"s\"\n",
    ) else {
        panic!("loaded")
    };
    let e = e.to_string();
    assert!(e.contains("request: path:"), "{e}");
    let payload = load(
        "put.toml",
        "[request]\nmethod = \"PUT\"\npath = \"/Key__c/{{ id }}\"\nexists = [409]\nlookup = \"/search?key={{ id }}&limit=1\"\nfound = \"/data\"\n[body]\nSubject = \"s\"\n",
    )
    .unwrap();
    let data = raw(CUSTOMER_COMPLAINT);
    let r = payload
        .render(&outgoing("m_1", EventType::MentionCreated, &data, ON_TIME))
        .unwrap();
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.exists.as_slice()),
        ("PUT", "/Key__c/m_1", &[409][..])
    );
    assert_eq!(
        r.lookup,
        Some(Lookup {
            path: "/search?key=m_1&limit=1".into(),
            found: "/data".into(),
            ticket_id: None,
        })
    );
}

/// Every CRM template renders a follow-up as its API's comment or note on the case's ticket,
/// at an address beside the create's; the generic envelope says `mention.followup` and names
/// the case; Slack has none.
#[test]
fn follow_ups_render_as_each_crm_comment_or_note() {
    let data = raw(CUSTOMER_COMPLAINT);
    let case = CaseRef {
        mention_id: "m_first",
        ticket_id: Some("4711"),
    };
    let follow = |format: PayloadFormat| {
        let mut out = outgoing("m_2", EventType::MentionFollowup, &data, ON_TIME);
        out.case = Some(case);
        builtin(format).render(&out).unwrap()
    };
    let cases: [(PayloadFormat, &str, &str, &str, &str); 5] = [
        (
            PayloadFormat::Salesforce,
            "https://acme.my.salesforce.com/services/data/v61.0/sobjects/Case",
            "POST",
            "https://acme.my.salesforce.com/services/data/v61.0/sobjects/CaseComment",
            "/ParentId",
        ),
        (
            PayloadFormat::Zendesk,
            "https://acme.zendesk.com/api/v2/tickets.json",
            "PUT",
            "https://acme.zendesk.com/api/v2/tickets/4711.json",
            "/ticket/comment/body",
        ),
        (
            PayloadFormat::Hubspot,
            "https://api.hubapi.com/crm/v3/objects/tickets",
            "POST",
            "https://api.hubapi.com/crm/v3/objects/notes",
            "/associations/0/to/id",
        ),
        (
            PayloadFormat::Dynamics,
            "https://contoso.crm.dynamics.com/api/data/v9.2/incidents",
            "POST",
            "https://contoso.crm.dynamics.com/api/data/v9.2/annotations",
            "/objectid_incident@odata.bind",
        ),
        (
            PayloadFormat::Zoho,
            "https://desk.zoho.com/api/v1/tickets",
            "POST",
            "https://desk.zoho.com/api/v1/tickets/4711/comments",
            "/content",
        ),
    ];
    for (format, create, method, url, field) in cases {
        let r = follow(format);
        let joined = url::Url::parse(create).unwrap().join(&r.join).unwrap();
        assert_eq!(
            (r.method.as_str(), joined.as_str()),
            (method, url),
            "{format}"
        );
        let b = body(&r);
        let value = b
            .pointer(field)
            .unwrap_or_else(|| panic!("{format}: {field} in {b}"));
        let text = value.as_str().unwrap_or_default();
        assert!(
            text.contains("4711") || text.contains("m_first"),
            "{format}: {field} = {value}"
        );
        assert!(r.ticket_id.is_none() && r.lookup.is_none(), "{format}");
        // The create says where its answer holds the ticket id.
        let created = builtin(format)
            .render(&outgoing("m_1", EventType::MentionCreated, &data, ON_TIME))
            .unwrap();
        assert!(created.ticket_id.is_some(), "{format}");
    }
    assert_eq!(
        body(&follow(PayloadFormat::Zendesk))["ticket"]["comment"]["public"],
        false
    );
    assert!(!builtin(PayloadFormat::Slack).handles(EventType::MentionFollowup));
    let generic = Payload::load(PayloadFormat::Generic, None, &BTreeMap::new()).unwrap();
    let mut out = outgoing("m_2", EventType::MentionFollowup, &data, ON_TIME);
    out.case = Some(case);
    let envelope = body(&generic.render(&out).unwrap());
    assert_eq!(envelope["type"], "mention.followup");
    assert_eq!(
        envelope["case"],
        serde_json::json!({"mention_id": "m_first", "ticket_id": "4711"})
    );
    assert_eq!(
        envelope["data"]["mention_id"],
        body(
            &generic
                .render(&outgoing("m_2", EventType::MentionCreated, &data, ON_TIME))
                .unwrap()
        )["data"]["mention_id"]
    );
}

/// A `[followup]` needs its url and the create's ticket id pointer; its url must stay a path.
#[test]
fn a_followup_section_is_checked_at_load() {
    let load = |text: &str| Payload::parse(PayloadFormat::Zoho, "f.toml", text, &BTreeMap::new());
    let base = "[body]\nsubject = \"s\"\n";
    let err = load(&format!("{base}[followup.body]\ncontent = \"c\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[followup] needs a [followup.request]"),
        "{err}"
    );
    assert!(err.contains("needs [request] ticket_id"), "{err}");
    let err = load(&format!(
        "[request]\nticket_id = \"/id\"\n{base}[followup.request]\npath = \"x\"\n[followup.body]\ncontent = \"c\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("followup.request.path: unknown key"), "{err}");
    assert!(err.contains("a follow-up needs `url`"), "{err}");
    let ok = load(&format!(
        "[request]\nticket_id = \"/id\"\n{base}[followup.request]\nurl = \"tickets/{{{{ case.ticket_id }}}}/comments\"\n[followup.body]\ncontent = \"{{{{ case.mention_id }}}}: {{{{ text }}}}\"\n"
    ));
    assert!(ok.is_ok(), "{:?}", ok.err());
    let err = load(&format!(
        "[request]\nticket_id = \"/id\"\ngone = [404]\n{base}[followup.request]\nurl = \"c\"\ngone = [200]\ngone_codes = [\"\"]\n[followup.body]\ncontent = \"c\"\n"
    ))
    .unwrap_err()
    .to_string();
    for want in [
        "f.toml:3:1: request.gone: unknown key",
        "followup.request.gone: an HTTP status, 400 to 499",
        "followup.request.gone_codes: an error code",
    ] {
        assert!(err.contains(want), "{want} in {err}");
    }
}

/// Which answers to a follow-up mean its ticket is gone: the template's statuses (404 and 410
/// unless it says otherwise), or one of its codes in a 4xx answer.
#[test]
fn a_gone_ticket_is_told_by_status_or_by_the_crms_code() {
    let data = raw(CUSTOMER_COMPLAINT);
    let mut out = outgoing("m_2", EventType::MentionFollowup, &data, ON_TIME);
    out.case = Some(CaseRef {
        mention_id: "m_1",
        ticket_id: Some("500000000000000001"),
    });
    let sf = builtin(PayloadFormat::Salesforce)
        .render(&out)
        .unwrap()
        .gone;
    let refused = br#"[{"message":"invalid cross reference id","errorCode":"INVALID_CROSS_REFERENCE_KEY","fields":["ParentId"]}]"#;
    assert!(sf.says(400, refused));
    assert!(sf.says(404, b""));
    assert!(!sf.says(400, br#"[{"errorCode":"REQUIRED_FIELD_MISSING"}]"#));
    assert!(
        !sf.says(500, refused),
        "a 5xx is retried, never read as gone"
    );
    let zendesk = builtin(PayloadFormat::Zendesk).render(&out).unwrap().gone;
    assert_eq!(zendesk, Gone::default());
    assert!(zendesk.says(404, b"") && !zendesk.says(400, refused));
}

/// `rules/payloads/examples/<format>.http`: what each CRM format sends for the customer's
/// complaint in `tests/data/payload/mention_customer_complaint.json`, as a ticket and as a
/// follow-up of ticket 4711, rendered by the built-in template. The README points users at
/// these files; this test keeps them what the templates render (`EARSHOT_UPDATE_EXAMPLES=1`
/// rewrites them after a template change).
#[test]
fn the_rendered_examples_are_what_the_templates_send() {
    let data = raw(CUSTOMER_COMPLAINT);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules/payloads/examples");
    let queues = [
        (
            PayloadFormat::Salesforce,
            "https://acme.my.salesforce.com/services/data/v61.0/sobjects/Case",
        ),
        (
            PayloadFormat::Dynamics,
            "https://contoso.crm.dynamics.com/api/data/v9.2/incidents",
        ),
        (
            PayloadFormat::Hubspot,
            "https://api.hubapi.com/crm/v3/objects/tickets",
        ),
        (
            PayloadFormat::Zendesk,
            "https://acme.zendesk.com/api/v2/tickets.json",
        ),
        (PayloadFormat::Zoho, "https://desk.zoho.com/api/v1/tickets"),
    ];
    let request = |r: &Rendered, url: &url::Url| {
        let mut s = format!("{} {}\n", r.method, url);
        s += &format!("Content-Type: {}\n", r.content_type.to_str().unwrap());
        for (n, v) in &r.headers {
            s += &format!("{}: {}\n", n, v.to_str().unwrap());
        }
        let body: Json = serde_json::from_slice(&r.body).expect("JSON body");
        s + "\n" + &serde_json::to_string_pretty(&body).unwrap() + "\n"
    };
    let mut stale = Vec::new();
    for (format, queue_url) in queues {
        let payload = builtin(format);
        let base = url::Url::parse(queue_url).unwrap();
        let ticket = payload
            .render(&outgoing(
                "m_5f1c0e2a9b7d4c3e8a6f0b1d",
                EventType::MentionCreated,
                &data,
                ON_TIME,
            ))
            .unwrap();
        let mut out = outgoing(
            "m_9a8b7c6d5e4f3a2b1c0d9e8f",
            EventType::MentionFollowup,
            &data,
            ON_TIME,
        );
        out.case = Some(CaseRef {
            mention_id: "m_5f1c0e2a9b7d4c3e8a6f0b1d",
            ticket_id: Some("4711"),
        });
        let follow = payload.render(&out).unwrap();
        let mut text = format!(
            "# {format}: what earshot sends for the mention in\n\
             # pipeline/tests/data/payload/mention_customer_complaint.json, rendered by the built-in\n\
             # template rules/payloads/{format}.toml with the queue URL {queue_url}\n\
             # (written by the test the_rendered_examples_are_what_the_templates_send).\n\n"
        );
        if let Some(l) = &ticket.lookup {
            text += &format!(
                "## The search before the create (a ticket found ends the delivery)\n\nGET {}{}\n\n",
                queue_url, l.path
            );
        }
        let ticket_url = url::Url::parse(&format!("{queue_url}{}", ticket.path)).unwrap();
        text += "## The ticket\n\n";
        text += &request(&ticket, &ticket_url);
        if !ticket.exists.is_empty() {
            text += &format!(
                "\n(answered {:?} when the ticket exists already: delivered)\n",
                ticket.exists
            );
        }
        if let Some(p) = &ticket.ticket_id {
            text += &format!("\n(the ticket id is read from the answer at {p})\n");
        }
        text += "\n## A follow-up: the same customer again, on ticket 4711\n\n";
        text += &request(&follow, &base.join(&follow.join).unwrap());
        let path = dir.join(format!("{format}.http"));
        if std::env::var_os("EARSHOT_UPDATE_EXAMPLES").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from what the templates render: run this test with EARSHOT_UPDATE_EXAMPLES=1 and review the diff"
    );
}
