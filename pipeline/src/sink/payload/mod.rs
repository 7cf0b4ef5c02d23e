//! Payload formats: one outgoing message → the HTTP request body and the extra headers a CRM
//! endpoint expects.
//!
//! # Input → output
//! An [`Outgoing`] (a mention, a digest or a spike event as raw JSON, its id, its queue, the
//! attempt and how late it is) → a [`Rendered`] (content type, format-specific headers, body bytes). The
//! webhook sink owns everything around it — URL, authentication, signature, retries — so one
//! sink serves every CRM and a format is a pure function with no I/O, clock or metrics.
//!
//! # Formats
//! - [`PayloadFormat::Generic`]: the Standard Webhooks envelope
//!   `{"type":…,"timestamp":…,"data":<data>,"delivery":{…}}`, written in code with the `data`
//!   bytes copied in unparsed. It is the hot path (a local receiver takes every mention), so
//!   it costs a buffer sized up front and one copy of the data, and it takes no template.
//! - Every CRM format ([`PayloadFormat::Salesforce`], `Zendesk`, `Hubspot`, `Dynamics`,
//!   `Zoho`, `Slack`) is a template file, `rules/payloads/<format>.toml`, built into the
//!   binary. A team changes what its CRM receives by pointing a queue at its own copy; the
//!   template language and the variables are described in `rules/payloads/README.md`.
//!
//! # Why templates are TOML mirroring the JSON
//! The `[body]` table has the shape of the JSON sent; each string in it is a small
//! [minijinja](https://docs.rs/minijinja) template. The body is assembled as a JSON value and
//! serialized, so whatever a post's text holds (quotes, newlines, emoji) the output is valid
//! JSON: no template ever writes JSON syntax. A string that is a single `{{ expression }}`
//! keeps the expression's type, so an option-set code stays an integer and a tag list stays a
//! list.
//!
//! # Errors are found at load
//! [`Payload::load`] compiles every template, checks every variable name, and renders every
//! template against sample mentions, digests and spike events (with and without a customer,
//! with empty and full digests, spikes started, updated and ended, with and without posts)
//! with undefined values as errors, so a typo in a team's override stops
//! earshot at startup with `file:line:col`, not at the first mention. What can still fail at
//! render ([`RenderError`]) depends on the data: a required value a mention does not have.

mod context;
mod error;
mod functions;
mod generic;
mod samples;
mod template;

#[cfg(test)]
mod crm_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;

pub use error::{PayloadError, RenderError, TemplateIssue};

/// The shape of the HTTP request a queue sends: the Standard Webhooks envelope or one CRM's
/// record-creation call. Chosen per queue (`format = "zendesk"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// Standard Webhooks envelope with the mention as `data`: for receivers of our own.
    #[default]
    Generic,
    /// Salesforce Case sObject (`POST /services/data/vXX.X/sobjects/Case`).
    Salesforce,
    /// Zendesk ticket (`POST /api/v2/tickets.json`) with an `Idempotency-Key` header.
    Zendesk,
    /// HubSpot ticket (`POST /crm/v3/objects/tickets`).
    Hubspot,
    /// Microsoft Dynamics 365 / Dataverse case (`POST /api/data/v9.2/incidents`).
    Dynamics,
    /// Zoho Desk ticket (`POST /api/v1/tickets`).
    Zoho,
    /// Slack-compatible incoming-webhook message, for people rather than a CRM.
    Slack,
}

impl PayloadFormat {
    /// Every format, in documentation order: for tests and listings.
    pub const ALL: [PayloadFormat; 7] = [
        PayloadFormat::Generic,
        PayloadFormat::Salesforce,
        PayloadFormat::Zendesk,
        PayloadFormat::Hubspot,
        PayloadFormat::Dynamics,
        PayloadFormat::Zoho,
        PayloadFormat::Slack,
    ];

    /// The name used in configuration and messages (`"zendesk"`).
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Generic => "generic",
            PayloadFormat::Salesforce => "salesforce",
            PayloadFormat::Zendesk => "zendesk",
            PayloadFormat::Hubspot => "hubspot",
            PayloadFormat::Dynamics => "dynamics",
            PayloadFormat::Zoho => "zoho",
            PayloadFormat::Slack => "slack",
        }
    }

    /// Whether the receiver checks the Standard Webhooks signature, so the queue needs a
    /// signing secret: only for the generic envelope, which earshot's own receivers and the
    /// teams' code read. CRM APIs and Slack authenticate the caller by its `Authorization`
    /// header or URL and never look at `webhook-signature`; their secret is optional.
    pub fn needs_signature(self) -> bool {
        self == PayloadFormat::Generic
    }

    /// The built-in template of a CRM format: its path in the repository (for messages) and
    /// its text, which is `rules/payloads/<format>.toml` embedded at build time. `None` for
    /// [`PayloadFormat::Generic`], which is built in code. A team starts an override by
    /// copying this file.
    pub fn builtin_template(self) -> Option<(&'static str, &'static str)> {
        let text = match self {
            PayloadFormat::Generic => return None,
            PayloadFormat::Salesforce => {
                include_str!("../../../../rules/payloads/salesforce.toml")
            }
            PayloadFormat::Zendesk => include_str!("../../../../rules/payloads/zendesk.toml"),
            PayloadFormat::Hubspot => include_str!("../../../../rules/payloads/hubspot.toml"),
            PayloadFormat::Dynamics => include_str!("../../../../rules/payloads/dynamics.toml"),
            PayloadFormat::Zoho => include_str!("../../../../rules/payloads/zoho.toml"),
            PayloadFormat::Slack => include_str!("../../../../rules/payloads/slack.toml"),
        };
        let path = match self {
            PayloadFormat::Generic => unreachable!("returned above"),
            PayloadFormat::Salesforce => "rules/payloads/salesforce.toml",
            PayloadFormat::Zendesk => "rules/payloads/zendesk.toml",
            PayloadFormat::Hubspot => "rules/payloads/hubspot.toml",
            PayloadFormat::Dynamics => "rules/payloads/dynamics.toml",
            PayloadFormat::Zoho => "rules/payloads/zoho.toml",
            PayloadFormat::Slack => "rules/payloads/slack.toml",
        };
        Some((path, text))
    }
}

impl std::fmt::Display for PayloadFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event types a queue delivers: what `data` holds, and which body a template uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// One routed mention: `data` is the mention contract (README "The mention contract").
    MentionCreated,
    /// Mentions held back from a queue in one window (rate limit, reposts, storms,
    /// cool-down), summarized: `data` is the digest document.
    MentionDigest,
    /// A brand's mentions (or its negative mentions) rose far above their baseline: `data`
    /// is the spike document (README "Spikes").
    SpikeStarted,
    /// A spike still under way: the same document with its figures now.
    SpikeUpdated,
    /// A spike that is over: the document with `ended_at` set.
    SpikeEnded,
    /// A mention that continues a case opened by an earlier one (a reply in the same thread,
    /// or the same author again within the queue's window): `data` is the mention contract,
    /// and the message names the case ([`CaseRef`]). A CRM gets it as a comment or note on
    /// the ticket; the generic envelope as `mention.followup`.
    MentionFollowup,
    /// The author deleted the post of a mention the queue was sent: `data` is the deletion
    /// (`mention_id`, `post.id`, `post.url`, `deleted_at`). A CRM gets it as a note on the
    /// case's ticket ([`CaseRef`]); the generic envelope as `mention.deleted`.
    MentionDeleted,
}

impl EventType {
    /// Every event type, in documentation order.
    pub const ALL: [EventType; 7] = [
        EventType::MentionCreated,
        EventType::MentionFollowup,
        EventType::MentionDeleted,
        EventType::MentionDigest,
        EventType::SpikeStarted,
        EventType::SpikeUpdated,
        EventType::SpikeEnded,
    ];

    /// The Standard Webhooks event type (`"mention.created"`, `"spike.started"`, …), also
    /// the template variable `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::MentionCreated => "mention.created",
            EventType::MentionDigest => "mention.digest",
            EventType::SpikeStarted => "spike.started",
            EventType::SpikeUpdated => "spike.updated",
            EventType::SpikeEnded => "spike.ended",
            EventType::MentionFollowup => "mention.followup",
            EventType::MentionDeleted => "mention.deleted",
        }
    }

    /// Whether `data` is a spike document (`spike.started`, `spike.updated`, `spike.ended`),
    /// rendered by a template's `[spike]` section.
    pub fn is_spike(self) -> bool {
        matches!(
            self,
            EventType::SpikeStarted | EventType::SpikeUpdated | EventType::SpikeEnded
        )
    }
}

/// One message about to be sent (one attempt). Borrowed, so the sink renders each attempt
/// from the message it holds without copying it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The `webhook-id` and idempotency key: the same on every retry and after a restart, so
    /// a CRM that saw an earlier attempt does not open a second ticket.
    pub id: &'a str,
    /// What `data` is.
    pub event: EventType,
    /// The mention contract JSON, the digest JSON or the spike document, exactly as it will
    /// be embedded.
    pub data: &'a serde_json::value::RawValue,
    /// The queue it is delivered for (`delivery.queue`).
    pub queue: &'a str,
    /// 1 for the first attempt (`delivery.attempt`).
    pub attempt: u32,
    /// Now, for the envelope's `timestamp`: passed in so rendering reads no clock.
    pub timestamp: SystemTime,
    /// How long the message has taken so far against the queue's budget.
    pub latency: Latency,
    /// The case a [`EventType::MentionFollowup`] continues, or whose ticket a
    /// [`EventType::MentionDeleted`] is noted on; `None` for every other event.
    pub case: Option<CaseRef<'a>>,
}

/// The case a follow-up continues: the mention that opened it and, when the CRM said, the id
/// of the ticket (`case.mention_id`, `case.ticket_id` in templates; `case` in the generic
/// envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseRef<'a> {
    /// The message id of the mention that opened the case.
    pub mention_id: &'a str,
    /// The CRM's id of the ticket that mention created.
    pub ticket_id: Option<&'a str>,
}

/// How late a delivery is: a late ticket is flagged so an agent knows the post is older than
/// the queue promises (`delivery.elapsed_ms`, `delivery.budget_ms`, `delivery.over_budget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Latency {
    /// Milliseconds from receiving the post to this attempt.
    pub elapsed_ms: u64,
    /// The queue's latency budget in milliseconds, when it has one.
    pub budget_ms: Option<u64>,
    /// `elapsed_ms` exceeds the budget (decided by the sink, which owns the budget).
    pub over_budget: bool,
}

/// A rendered request: what the sink sends, besides the URL, authentication and signature.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The `Content-Type` header: validated when the template loads, so it always fits.
    pub content_type: HeaderValue,
    /// Headers the format adds (Zendesk's `Idempotency-Key`, Dynamics' `OData-Version`, …);
    /// empty for the generic envelope, whose Standard Webhooks headers the sink adds.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The request body.
    pub body: Bytes,
    /// The HTTP method: `POST` unless the template's `[request]` says `PATCH` or `PUT` (an
    /// upsert keyed by the message id).
    pub method: http::Method,
    /// Appended to the queue's URL (`/Earshot_Mention_Id__c/m_…`, `(earshot_mentionid='m_…')`);
    /// empty for most formats.
    pub path: String,
    /// Statuses that mean the record for this message exists already (a retry after the
    /// create went through): the delivery is done. Empty for most formats.
    pub exists: Vec<u16>,
    /// A search to send before the create (Zoho Desk), for a CRM whose create cannot carry a
    /// key: when it finds the record, the delivery is done.
    pub lookup: Option<Lookup>,
    /// A follow-up's address, resolved against the queue's URL as a link is
    /// (`tickets/123.json` beside `…/api/v2/tickets.json`); empty for everything else.
    pub join: String,
    /// The JSON pointer of the ticket id in the create's answer (`/ticket/id`), kept to
    /// address the case's follow-ups; `None` when the format has no follow-ups.
    pub ticket_id: Option<String>,
    /// A follow-up's answers that mean its ticket is gone from the CRM.
    pub gone: Gone,
}

/// The answers to a follow-up that mean the case's ticket is gone from the CRM (deleted by an
/// agent, merged into another): the mention is then sent as a ticket of its own. A template's
/// `[followup.request]` says which: `gone` statuses (404 and 410 by default), and
/// `gone_codes`, words that in a 4xx answer name the missing record (Salesforce answers 400
/// `INVALID_CROSS_REFERENCE_KEY` for a comment on a deleted case, HubSpot 400 for an
/// association to a missing ticket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    /// Statuses that mean gone, whatever the answer says.
    pub statuses: Vec<u16>,
    /// Words whose presence in a 4xx answer means gone.
    pub codes: Vec<String>,
}

impl Default for Gone {
    fn default() -> Self {
        Self {
            statuses: vec![404, 410],
            codes: Vec::new(),
        }
    }
}

impl Gone {
    /// Whether an answer of `status` with `body` (a bounded part) means the ticket is gone.
    pub fn says(&self, status: u16, body: &[u8]) -> bool {
        self.statuses.contains(&status)
            || ((400..500).contains(&status)
                && self
                    .codes
                    .iter()
                    .any(|c| memchr::memmem::find(body, c.as_bytes()).is_some()))
    }
}

impl Rendered {
    /// A `POST` of `body` to the queue's URL, with nothing else to it: what every message is
    /// until a `[request]` says otherwise.
    pub fn post(
        content_type: HeaderValue,
        headers: Vec<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Rendered {
        Rendered {
            content_type,
            headers,
            body,
            method: http::Method::POST,
            path: String::new(),
            exists: Vec::new(),
            lookup: None,
            join: String::new(),
            ticket_id: None,
            gone: Gone::default(),
        }
    }
}

/// A search sent before a create: `GET <queue url><path>`; the record exists when the answer
/// is 200 and `found` points at a non-empty list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// Appended to the queue's URL, query included.
    pub path: String,
    /// The JSON pointer of the list of records found.
    pub found: String,
    /// The JSON pointer of the found record's ticket id (`/data/0/id`), when the format has
    /// follow-ups.
    pub ticket_id: Option<String>,
}

/// A compiled payload format: `Send + Sync`, built once per queue at startup and shared
/// behind an `Arc` by every delivery task of the queue.
pub struct Payload {
    format: PayloadFormat,
    kind: Kind,
}

enum Kind {
    Generic,
    /// Boxed: a template environment is large and the generic path should not carry it.
    Template(Box<template::Compiled>),
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Payload");
        d.field("format", &self.format);
        if let Kind::Template(t) = &self.kind {
            d.field("template", &t.file());
        }
        d.finish()
    }
}

impl Payload {
    /// Compiles the payload of a queue. `template`: the queue's override file, else the
    /// built-in template of `format`; `vars`: the queue's `[queue.vars]` (strings), exposed
    /// to templates as `vars.<name>` over the template's own `[vars]` defaults.
    ///
    /// Every template is compiled and rendered against sample data here, so a syntax error,
    /// an unknown variable or a missing required var is reported now with `file:line:col`,
    /// all at once ([`PayloadError::Invalid`]). `generic` takes no template (a template is
    /// an error) and ignores `vars`.
    pub fn load(
        format: PayloadFormat,
        template: Option<&Path>,
        vars: &BTreeMap<String, String>,
    ) -> Result<Payload, PayloadError> {
        let kind = match (format, template) {
            (PayloadFormat::Generic, None) => Kind::Generic,
            (PayloadFormat::Generic, Some(path)) => {
                return Err(PayloadError::GenericTemplate {
                    path: path.to_path_buf(),
                })
            }
            (_, Some(path)) => {
                let text = template::read(path)?;
                return Payload::parse(format, &path.display().to_string(), &text, vars);
            }
            (_, None) => {
                let (file, text) = format
                    .builtin_template()
                    .expect("every format but generic has a built-in template");
                Kind::Template(Box::new(template::Compiled::build(
                    format, file, text, vars,
                )?))
            }
        };
        Ok(Payload { format, kind })
    }

    /// Compiles template text as [`Payload::load`] compiles a queue's override file after
    /// reading it (`file` names it in messages); no I/O. `generic` takes no template, so
    /// for it any text is [`PayloadError::GenericTemplate`].
    pub fn parse(
        format: PayloadFormat,
        file: &str,
        text: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Payload, PayloadError> {
        if format == PayloadFormat::Generic {
            return Err(PayloadError::GenericTemplate { path: file.into() });
        }
        let compiled = template::Compiled::build(format, file, text, vars)?;
        Ok(Payload {
            format,
            kind: Kind::Template(Box::new(compiled)),
        })
    }

    /// Renders one attempt. Errors are about this message's data (a required value it does
    /// not have, a header value with a newline) and are permanent: retrying renders the same.
    pub fn render(&self, out: &Outgoing<'_>) -> Result<Rendered, RenderError> {
        match &self.kind {
            Kind::Generic => Ok(generic::render(out)),
            Kind::Template(t) => t.render(out),
        }
    }

    /// The format this payload was loaded as.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// Whether this payload can render messages of `event`: the generic envelope carries
    /// every event; a template carries mentions always, digests with a `[digest]` section and
    /// spike events with a `[spike]` section. Asked when the configuration loads, so a queue
    /// that is sent spike events with a template lacking `[spike]` is refused at startup
    /// instead of dead-lettering every spike ([`RenderError::NoSpike`]).
    pub fn handles(&self, event: EventType) -> bool {
        match &self.kind {
            Kind::Generic => true,
            Kind::Template(t) => t.handles(event),
        }
    }

    /// The template file this payload renders with (the repository path of a built-in one,
    /// `rules/payloads/slack.toml`), for messages; `None` for the generic envelope.
    pub fn template_file(&self) -> Option<&str> {
        match &self.kind {
            Kind::Generic => None,
            Kind::Template(t) => Some(t.file()),
        }
    }
}
