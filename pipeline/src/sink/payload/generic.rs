//! The generic format: the Standard Webhooks envelope
//! `{"type":…,"timestamp":…,"data":<data>,"delivery":{…}}`.
//!
//! This is the hot path — a local receiver takes every routed mention, and its throughput is
//! benchmarked — so the envelope is written straight into one buffer sized up front: the
//! `data` bytes are copied in verbatim, never parsed or re-serialized (they are valid JSON
//! already: a [`RawValue`](serde_json::value::RawValue) can hold nothing else), and only the
//! queue name goes through serde_json for escaping.

use std::io::Write;

use bytes::Bytes;
use http::HeaderValue;

use super::{Outgoing, Rendered};
use crate::timestamp::rfc3339_millis;

/// Bytes of the envelope around `data` apart from the queue name and a follow-up's case: keys,
/// timestamp and numbers (about 150), rounded up so the buffer never grows.
const ENVELOPE_BYTES: usize = 192;

/// Writes the envelope. Infallible: every part is either valid JSON already or written here.
pub(super) fn render(out: &Outgoing<'_>) -> Rendered {
    let data = out.data.get().as_bytes();
    let mut body = Vec::with_capacity(data.len() + out.queue.len() + ENVELOPE_BYTES);
    body.extend_from_slice(b"{\"type\":\"");
    body.extend_from_slice(out.event.as_str().as_bytes());
    body.extend_from_slice(b"\",\"timestamp\":\"");
    body.extend_from_slice(rfc3339_millis(out.timestamp).as_bytes());
    body.extend_from_slice(b"\",\"data\":");
    body.extend_from_slice(data);
    body.extend_from_slice(b",\"delivery\":{\"queue\":");
    serde_json::to_writer(&mut body, out.queue).expect("a string serializes into a Vec");
    let l = out.latency;
    // Writing to a Vec cannot fail.
    let _ = write!(
        body,
        ",\"attempt\":{},\"elapsed_ms\":{},\"budget_ms\":",
        out.attempt, l.elapsed_ms
    );
    match l.budget_ms {
        Some(ms) => {
            let _ = write!(body, "{ms}");
        }
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(if l.over_budget {
        b",\"over_budget\":true}"
    } else {
        b",\"over_budget\":false}"
    });
    if let Some(case) = out.case {
        // The case of a follow-up: ids earshot wrote or the CRM answered, escaped as strings.
        body.extend_from_slice(b",\"case\":{\"mention_id\":");
        serde_json::to_writer(&mut body, case.mention_id).expect("a string serializes");
        if let Some(ticket) = case.ticket_id {
            body.extend_from_slice(b",\"ticket_id\":");
            serde_json::to_writer(&mut body, ticket).expect("a string serializes");
        }
        body.push(b'}');
    }
    body.push(b'}');
    Rendered::post(
        HeaderValue::from_static("application/json"),
        Vec::new(),
        Bytes::from(body),
    )
}
