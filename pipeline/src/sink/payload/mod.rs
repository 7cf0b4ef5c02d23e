//! Payload formats (interim: generic only).
#![allow(missing_docs)]
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    Generic,
    Salesforce,
    Zendesk,
    Hubspot,
    Dynamics,
    Zoho,
    Slack,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    MentionCreated,
    MentionDigest,
}
impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MentionCreated => "mention.created",
            Self::MentionDigest => "mention.digest",
        }
    }
}
pub struct Outgoing<'a> {
    pub id: &'a str,
    pub event: EventType,
    pub data: &'a serde_json::value::RawValue,
    pub queue: &'a str,
    pub attempt: u32,
    pub timestamp: std::time::SystemTime,
    pub latency: Latency,
}
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    pub elapsed_ms: u64,
    pub budget_ms: Option<u64>,
    pub over_budget: bool,
}
pub struct Rendered {
    pub content_type: String,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: bytes::Bytes,
}
#[derive(Debug)]
pub struct Payload {
    format: PayloadFormat,
}
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(String);
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(String);
impl Payload {
    pub fn load(
        format: PayloadFormat,
        _template: Option<&Path>,
        _vars: &BTreeMap<String, String>,
    ) -> Result<Payload, PayloadError> {
        Ok(Payload { format })
    }
    pub fn format(&self) -> PayloadFormat {
        self.format
    }
    pub fn render(&self, out: &Outgoing<'_>) -> Result<Rendered, RenderError> {
        let mut body = format!(
            "{{\"type\":\"{}\",\"timestamp\":\"{}\",\"data\":",
            out.event.as_str(),
            crate::mention::rfc3339_millis(out.timestamp)
        );
        body.push_str(out.data.get());
        body.push_str(&format!(
            ",\"delivery\":{{\"queue\":{},\"attempt\":{},\"elapsed_ms\":{},\"over_budget\":{}}}}}",
            serde_json::to_string(out.queue).unwrap(),
            out.attempt,
            out.latency.elapsed_ms,
            out.latency.over_budget
        ));
        Ok(Rendered {
            content_type: "application/json".into(),
            headers: Vec::new(),
            body: body.into(),
        })
    }
}
