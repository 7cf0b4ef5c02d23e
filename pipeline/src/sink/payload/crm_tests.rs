//! Every CRM format sent over real HTTP to a loopback receiver that checks what that CRM
//! requires and answers as it does (201, 204, 200; 400 naming the missing field).
//!
//! The receiver is a stand-in written from each API's documentation, one route per CRM
//! path: it cannot prove a CRM accepts a payload, but it pins down the required fields,
//! types, limits and headers in one place and shows that what the templates render gets
//! through HTTP intact. Zendesk's stand-in also honours `Idempotency-Key`, so a retry of a
//! created ticket is answered without a second ticket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodFilter;
use axum::Router;
use serde_json::{json, Value as Json};

use super::tests::{builtin, messages, outgoing, raw, spike_messages, CUSTOMER_COMPLAINT, ON_TIME};
use super::*;

const SALESFORCE: &str = "/services/data/v61.0/sobjects/Case";
const SALESFORCE_UPSERT: &str = "/services/data/v61.0/sobjects/Case/{field}/{key}";
const ZENDESK: &str = "/api/v2/tickets.json";
const HUBSPOT: &str = "/crm/v3/objects/tickets";
const DYNAMICS: &str = "/api/data/v9.2/incidents";
const DYNAMICS_KEYED: &str = "/api/data/v9.2/{keyed}";
const ZOHO: &str = "/api/v1/tickets";
const SLACK: &str = "/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX";

/// What the receiver saw: requests accepted per route, Zendesk's idempotency keys, and the
/// keys of the records created by upsert or under a unique property.
#[derive(Default)]
struct Seen {
    created: HashMap<&'static str, usize>,
    zendesk_keys: HashMap<String, u64>,
    keys: std::collections::HashSet<String>,
}

type Shared = Arc<Mutex<Seen>>;

/// A request the stand-in refuses, with the CRM's kind of message.
type Refusal = String;

fn text<'a>(b: &'a Json, pointer: &str, max: usize) -> Result<&'a str, Refusal> {
    let s = b
        .pointer(pointer)
        .and_then(Json::as_str)
        .ok_or_else(|| format!("required field missing: {pointer}"))?;
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(format!("{pointer}: {n} characters, must be 1 to {max}"));
    }
    Ok(s)
}

fn one_of(b: &Json, pointer: &str, allowed: &[&str]) -> Result<(), Refusal> {
    match b.pointer(pointer) {
        None => Ok(()),
        Some(v) if v.as_str().is_some_and(|s| allowed.contains(&s)) => Ok(()),
        Some(v) => Err(format!("{pointer}: {v} is not one of {allowed:?}")),
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Result<&'a str, Refusal> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("header {name} is required"))
}

fn json_body(h: &HeaderMap, body: &[u8]) -> Result<Json, Refusal> {
    let ct = header(h, "content-type")?;
    if !ct.starts_with("application/json") {
        return Err(format!("content-type {ct} is not JSON"));
    }
    serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))
}

/// `POST …/sobjects/Case` creates; `PATCH …/sobjects/Case/<External ID field>/<value>` is an
/// upsert: 201 when it creates, 200 when the record exists (the field must not be in the body).
fn salesforce(h: &HeaderMap, body: &[u8], seen: &Shared, path: &str) -> Result<Response, Refusal> {
    let b = json_body(h, body)?;
    let key = match path.strip_prefix(SALESFORCE) {
        Some("") => "",
        Some(k) => k
            .strip_prefix("/Earshot_Mention_Id__c/")
            .filter(|k| !k.is_empty() && !k.contains('/'))
            .ok_or("NOT_FOUND: upsert by Earshot_Mention_Id__c/<value>")?,
        None => return Err("not a Case path".into()),
    };
    if !key.is_empty() && b.get("Earshot_Mention_Id__c").is_some() {
        return Err("INVALID_FIELD: the external ID field is in the URL, not the body".into());
    }
    text(&b, "/Subject", 255)?;
    if b.get("Description").is_some() {
        text(&b, "/Description", 32_000)?;
    }
    if b.get("SuppliedName").is_some() {
        text(&b, "/SuppliedName", 80)?;
    }
    one_of(&b, "/Priority", &["High", "Medium", "Low"])?;
    let new = key.is_empty()
        || seen
            .lock()
            .unwrap()
            .keys
            .insert(format!("salesforce {key}"));
    let created =
        json!({ "id": "5003000000D8cuIQAA", "success": true, "errors": [], "created": new });
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, created.to_string()).into_response())
}

fn zendesk(h: &HeaderMap, body: &[u8], seen: &Shared) -> Result<Response, Refusal> {
    let key = header(h, "idempotency-key")?.to_string();
    let b = json_body(h, body)?;
    text(&b, "/ticket/comment/body", 65_000)?;
    text(&b, "/ticket/subject", 150)?;
    one_of(&b, "/ticket/priority", &["urgent", "high", "normal", "low"])?;
    one_of(
        &b,
        "/ticket/type",
        &["problem", "incident", "question", "task"],
    )?;
    let tags = b.pointer("/ticket/tags").and_then(Json::as_array);
    if !tags.is_some_and(|t| {
        t.iter()
            .all(|t| t.as_str().is_some_and(|t| !t.contains(' ')))
    }) {
        return Err("ticket.tags must be a list of words".into());
    }
    let mut seen = seen.lock().unwrap();
    let next = seen.zendesk_keys.len() as u64 + 35_436;
    let (id, hit) = match seen.zendesk_keys.get(&key) {
        Some(&id) => (id, true),
        None => {
            seen.zendesk_keys.insert(key, next);
            (next, false)
        }
    };
    let lookup = if hit { "hit" } else { "miss" };
    let created = json!({ "ticket": { "id": id } }).to_string();
    Ok((
        StatusCode::CREATED,
        [("x-idempotency-lookup", lookup)],
        created,
    )
        .into_response())
}

/// A ticket create; `earshot_mention_id` has unique values, so a second ticket with the same
/// value is refused with 409.
fn hubspot(h: &HeaderMap, body: &[u8], seen: &Shared) -> Result<Response, Refusal> {
    let b = json_body(h, body)?;
    let props = b
        .get("properties")
        .and_then(Json::as_object)
        .ok_or("properties is required")?;
    text(&b, "/properties/subject", 65_536)?;
    text(&b, "/properties/hs_pipeline_stage", 100)?;
    one_of(
        &b,
        "/properties/hs_ticket_priority",
        &["LOW", "MEDIUM", "HIGH"],
    )?;
    if let Some((k, _)) = props.iter().find(|(_, v)| !v.is_string()) {
        return Err(format!("property {k} must be a string"));
    }
    if let Some(id) = props.get("earshot_mention_id").and_then(Json::as_str) {
        if !seen.lock().unwrap().keys.insert(format!("hubspot {id}")) {
            let conflict = json!({ "status": "error", "category": "CONFLICT",
                "message": format!("A ticket with earshot_mention_id {id} already exists") });
            return Ok((StatusCode::CONFLICT, conflict.to_string()).into_response());
        }
    }
    let created = json!({ "id": "512", "properties": props });
    Ok((StatusCode::CREATED, created.to_string()).into_response())
}

/// `PATCH …/incidents(earshot_mentionid='<id>')` with `If-None-Match: *`: creates (204), or
/// 412 when a case with that key exists; a plain `POST …/incidents` creates.
fn dynamics(h: &HeaderMap, body: &[u8], seen: &Shared, path: &str) -> Result<Response, Refusal> {
    let key = match path.strip_prefix(DYNAMICS) {
        Some("") => None,
        Some(k) => Some(
            k.strip_prefix("(earshot_mentionid='")
                .and_then(|k| k.strip_suffix("')"))
                .filter(|k| !k.is_empty() && !k.contains('\''))
                .ok_or(format!("{k}: not an alternate key"))?,
        ),
        None => return Err("not an incidents path".into()),
    };
    if key.is_some() && header(h, "if-none-match")? != "*" {
        return Err("an upsert without If-None-Match: * would update an existing case".into());
    }
    if header(h, "odata-version")? != "4.0" {
        return Err("OData-Version must be 4.0".into());
    }
    let b = json_body(h, body)?;
    text(&b, "/title", 200)?;
    if b.get("description").is_some() {
        text(&b, "/description", 2_000)?;
    }
    if !matches!(b.get("prioritycode").and_then(Json::as_i64), Some(1..=3)) {
        return Err("prioritycode must be the integer 1, 2 or 3".into());
    }
    if b.get("caseorigincode").and_then(Json::as_i64).is_none() {
        return Err("caseorigincode must be an integer option value".into());
    }
    let binds: Vec<&str> = ["customerid_account", "customerid_contact"]
        .iter()
        .filter_map(|k| b.get(format!("{k}@odata.bind")).and_then(Json::as_str))
        .collect();
    let [bind] = binds[..] else {
        return Err("exactly one customerid_account/contact@odata.bind is required".into());
    };
    let ok = ["/accounts(", "/contacts("]
        .iter()
        .any(|p| bind.starts_with(p) && bind.ends_with(')') && bind.len() > p.len() + 1);
    if !ok {
        return Err(format!(
            "{bind} is not /accounts(<key>) or /contacts(<key>)"
        ));
    }
    if let Some(key) = key {
        if !seen.lock().unwrap().keys.insert(format!("dynamics {key}")) {
            let failed = json!({ "error": { "code": "0x80060882", "message": "A record with matching key values already exists." } });
            return Ok((StatusCode::PRECONDITION_FAILED, failed.to_string()).into_response());
        }
    }
    let location =
        "https://org.example/api/data/v9.2/incidents(8f1a7d3c-5b2e-4c1d-9e8f-7a6b5c4d3e2f)";
    Ok((StatusCode::NO_CONTENT, [("odata-entityid", location)]).into_response())
}

fn zoho(h: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    header(h, "orgid")?;
    let b = json_body(h, body)?;
    text(&b, "/subject", 255)?;
    text(&b, "/departmentId", 64)?;
    let contact_id = b.get("contactId").and_then(Json::as_str).is_some();
    let contact = b
        .get("contact")
        .is_some_and(|c| c.get("lastName").is_some() || c.get("email").is_some());
    if !contact_id && !contact {
        return Err("contactId, or contact with lastName or email, is required".into());
    }
    if b.get("description").is_some() {
        text(&b, "/description", 65_535)?;
    }
    let created = json!({ "id": "1892000000093003", "ticketNumber": "101" });
    Ok((StatusCode::OK, created.to_string()).into_response())
}

fn slack(h: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let b = json_body(h, body)?;
    text(&b, "/text", 40_000)?;
    let blocks = b
        .get("blocks")
        .and_then(Json::as_array)
        .ok_or("invalid_blocks")?;
    if blocks.len() > 50 {
        return Err("invalid_blocks: more than 50".into());
    }
    for (i, block) in blocks.iter().enumerate() {
        match block.get("type").and_then(Json::as_str) {
            Some("header") => {
                if block.pointer("/text/type") != Some(&json!("plain_text")) {
                    return Err(format!("invalid_blocks: {i}: header text is plain_text"));
                }
                text(block, "/text/text", 150)?;
            }
            Some("section") => {
                let has_text = block.get("text").is_some();
                if has_text {
                    text(block, "/text/text", 3_000)?;
                }
                match block.get("fields").and_then(Json::as_array) {
                    Some(f) if f.len() <= 10 => {
                        for field in f {
                            text(field, "/text", 2_000)?;
                        }
                    }
                    Some(_) => return Err(format!("invalid_blocks: {i}: more than 10 fields")),
                    None if has_text => {}
                    None => return Err(format!("invalid_blocks: {i}: text or fields")),
                }
            }
            Some("context") => {
                let e = block.get("elements").and_then(Json::as_array);
                if !e.is_some_and(|e| !e.is_empty() && e.len() <= 10) {
                    return Err(format!("invalid_blocks: {i}: 1 to 10 elements"));
                }
            }
            other => return Err(format!("invalid_blocks: {i}: type {other:?}")),
        }
    }
    Ok((StatusCode::OK, "ok").into_response())
}

/// What one route checks: the headers, the body, what was seen, and the request's path.
type Check = fn(&HeaderMap, &[u8], &Shared, &str) -> Result<Response, Refusal>;

/// One route: counts what it accepts; a refusal is a 400 naming what is wrong.
fn route(path: &'static str, method: axum::routing::MethodFilter, check: Check) -> Router<Shared> {
    Router::new().route(
        path,
        axum::routing::on(
            method,
            move |State(seen): State<Shared>,
                  uri: axum::http::Uri,
                  headers: HeaderMap,
                  body: Bytes| async move {
                match check(&headers, &body, &seen, uri.path()) {
                    Ok(response) => {
                        *seen.lock().unwrap().created.entry(path).or_default() += 1;
                        response
                    }
                    Err(why) => (StatusCode::BAD_REQUEST, json!({ "error": why }).to_string())
                        .into_response(),
                }
            },
        ),
    )
}

/// Starts the stand-in on 127.0.0.1, port 0; returns its address and what it saw.
async fn receiver() -> (std::net::SocketAddr, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .merge(route(SALESFORCE_UPSERT, MethodFilter::PATCH, salesforce))
        .merge(route(SALESFORCE, MethodFilter::POST, salesforce))
        .merge(route(ZENDESK, MethodFilter::POST, |h, b, s, _| {
            zendesk(h, b, s)
        }))
        .merge(route(HUBSPOT, MethodFilter::POST, |h, b, s, _| {
            hubspot(h, b, s)
        }))
        .merge(route(DYNAMICS, MethodFilter::POST, dynamics))
        .merge(route(DYNAMICS_KEYED, MethodFilter::PATCH, dynamics))
        .merge(route(ZOHO, MethodFilter::POST, |h, b, _, _| zoho(h, b)))
        .merge(route(SLACK, MethodFilter::POST, |h, b, _, _| slack(h, b)))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (addr, seen)
}

fn client() -> reqwest::Client {
    crate::tls::ensure_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}

/// Sends a rendered request the way the webhook sink does: its method, the queue's URL with
/// its path, content type, the format's headers, the body.
async fn send(client: &reqwest::Client, url: &str, r: &Rendered) -> (u16, String) {
    let mut req = client
        .request(r.method.clone(), format!("{url}{}", r.path))
        .header(http::header::CONTENT_TYPE, r.content_type.clone())
        .body(r.body.clone());
    for (name, value) in &r.headers {
        req = req.header(name.clone(), value.clone());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Each format's path, the status of a first attempt and of a repeat of it: an upsert
/// answers 200, a unique property 409, an alternate key with `If-None-Match` 412, Zendesk's
/// idempotency key the first answer again.
const ROUTES: [(PayloadFormat, &str, u16, u16); 6] = [
    (PayloadFormat::Salesforce, SALESFORCE, 201, 200),
    (PayloadFormat::Zendesk, ZENDESK, 201, 201),
    (PayloadFormat::Hubspot, HUBSPOT, 201, 409),
    (PayloadFormat::Dynamics, DYNAMICS, 204, 412),
    (PayloadFormat::Zoho, ZOHO, 200, 200),
    (PayloadFormat::Slack, SLACK, 200, 200),
];

#[tokio::test]
async fn every_crm_accepts_what_its_template_renders() {
    let (addr, seen) = receiver().await;
    let client = client();
    let mut sent = 0;
    for (format, path, first, repeat) in ROUTES {
        let payload = builtin(format);
        let url = format!("http://{addr}{path}");
        for (i, (name, event, data, latency)) in messages().into_iter().enumerate() {
            let id = format!("m_{format}_{i}");
            // The first attempt and a retry of it: the same id, so the same idempotency key.
            for attempt in [1, 2] {
                let mut out = outgoing(&id, event, &data, latency);
                out.attempt = attempt;
                let r = payload.render(&out).unwrap();
                let (status, reply) = send(&client, &url, &r).await;
                let want = if attempt == 1 { first } else { repeat };
                assert_eq!(status, want, "{format} / {name} attempt {attempt}: {reply}");
                if attempt == 2 && status != first {
                    assert!(
                        r.exists.contains(&status) || status == 200,
                        "{format}: {status} is not taken as delivered"
                    );
                }
                sent += 1;
            }
        }
    }
    let seen = seen.lock().unwrap();
    let accepted: usize = seen.created.values().sum();
    assert_eq!(accepted, sent, "every request was accepted");
    // Zendesk saw each message's key once: retries opened no second ticket.
    assert_eq!(seen.zendesk_keys.len(), messages().len());
}

/// Spike events reach Slack as messages it accepts: started, updated and ended.
#[tokio::test]
async fn slack_accepts_spike_events() {
    let (addr, seen) = receiver().await;
    let client = client();
    let payload = builtin(PayloadFormat::Slack);
    let url = format!("http://{addr}{SLACK}");
    let spikes = spike_messages();
    for (name, event, data, latency) in &spikes {
        let out = outgoing(
            "spk_acme_negative_1795514400.started",
            *event,
            data,
            *latency,
        );
        let r = payload.render(&out).unwrap();
        let (status, reply) = send(&client, &url, &r).await;
        assert_eq!(status, 200, "{name}: {reply}");
    }
    assert_eq!(seen.lock().unwrap().created[SLACK], spikes.len());
}

/// The stand-in is not a rubber stamp: a template that leaves out what a CRM requires is
/// refused with the field named.
#[tokio::test]
async fn a_request_missing_a_required_field_is_refused() {
    let (addr, _) = receiver().await;
    let client = client();
    let dir = tempfile::tempdir().unwrap();
    let data = raw(CUSTOMER_COMPLAINT);
    let out = outgoing("m_1", EventType::MentionCreated, &data, ON_TIME);
    let cases = [
        (
            PayloadFormat::Zendesk,
            ZENDESK,
            "[body.ticket]\nsubject = \"{{ subject | truncate(150) }}\"\n[headers]\nIdempotency-Key = \"{{ id }}\"\n",
            "/ticket/comment/body",
        ),
        (
            PayloadFormat::Zendesk,
            ZENDESK,
            "[body.ticket]\nsubject = \"s\"\ncomment = { body = \"{{ text }}\" }\ntags = []\n",
            "header idempotency-key is required",
        ),
        (
            PayloadFormat::Salesforce,
            SALESFORCE,
            "[body]\nDescription = \"{{ text }}\"\n",
            "/Subject",
        ),
        (
            PayloadFormat::Dynamics,
            DYNAMICS,
            "[headers]\nOData-Version = \"4.0\"\n[body]\ntitle = \"{{ subject | truncate(200) }}\"\nprioritycode = \"High\"\n",
            "prioritycode must be the integer",
        ),
        (
            PayloadFormat::Hubspot,
            HUBSPOT,
            "[body.properties]\nsubject = \"{{ subject }}\"\nhs_pipeline_stage = \"1\"\nurgency = \"{{ urgency }}\"\n",
            "property urgency must be a string",
        ),
    ];
    for (i, (format, path, template, want)) in cases.into_iter().enumerate() {
        let file = dir.path().join(format!("t{i}.toml"));
        std::fs::write(&file, template).unwrap();
        let payload = Payload::load(format, Some(&file), &Default::default()).unwrap();
        let r = payload.render(&out).unwrap();
        let (status, reply) = send(&client, &format!("http://{addr}{path}"), &r).await;
        assert_eq!(status, 400, "{format} case {i}: {reply}");
        assert!(reply.contains(want), "{format} case {i}: {reply}");
    }
}
