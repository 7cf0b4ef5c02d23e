//! Template files: TOML → a compiled tree of constants and minijinja templates → for each
//! message, a JSON body assembled and serialized, plus headers.
//!
//! # The file
//! ```toml
//! content_type = "application/json"      # optional
//! [vars]                                 # defaults; a queue's vars override them
//! origin = "Social"
//! [headers]                              # optional: header name = template
//! Idempotency-Key = "{{ id }}"
//! [body]                                 # the JSON to send, as a TOML table
//! Subject = "{{ subject | oneline | truncate(255) }}"
//! Priority = "{{ {'urgent': 'High', 'high': 'High', 'medium': 'Medium', 'low': 'Low'}[priority] }}"
//! [digest.body]                          # optional: the body of a mention.digest
//! [digest.headers]                       # optional: else [headers]
//! [spike.body]                           # optional: the body of a spike.* event
//! [spike.headers]                        # optional: else [headers]
//! [followup.request]                     # a mention continuing a case: method, url, exists
//! [followup.body]                        # optional: the body of a mention.followup
//! [followup.headers]                     # optional: else [headers]
//! ```
//! A string leaf without `{{`/`{%`/`{#` is a constant. A string that is exactly one
//! `{{ expression }}` keeps the expression's type (number, bool, list, object, none); its
//! value `omit` leaves the field (or list item) out. Any other string is rendered as text. A
//! key may be a template too (a configurable custom field name); one rendering to `""` or
//! `omit` leaves its field out. Non-string TOML values are sent as they are.
//!
//! # Why the body is assembled, not printed
//! Templates produce leaves; the structure comes from the TOML, and the body is serialized
//! by serde_json. No post text can break the JSON, and no template writer has to escape
//! anything. Object keys keep the file's order.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Range;
use std::path::Path;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use minijinja::value::Value;
use minijinja::Environment;
use serde::ser::{SerializeMap, SerializeSeq};
use serde_json::Value as Json;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{PayloadError, RenderError, TemplateIssue};
use super::functions::{self, NATIVE_PREFIX, OMIT, REQUIRED_PREFIX};
use super::{context, samples, EventType, Lookup, Outgoing, PayloadFormat, Rendered};
use crate::diagnostic::line_col;

/// Largest template file read: templates are a few kilobytes, and a bigger file is a
/// mistake (the wrong path) that should not be read into memory.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;

/// Reads a template file, refusing one over [`MAX_TEMPLATE_BYTES`].
pub(super) fn read(path: &Path) -> Result<String, PayloadError> {
    let err = |source| PayloadError::Read {
        path: path.to_path_buf(),
        source,
    };
    use std::io::Read as _;
    let too_big = |len: u64| {
        err(std::io::Error::other(format!(
            "{len} bytes is more than the {MAX_TEMPLATE_BYTES} a template may have"
        )))
    };
    let len = std::fs::metadata(path).map_err(err)?.len();
    if len > MAX_TEMPLATE_BYTES {
        return Err(too_big(len));
    }
    // The size on disk says nothing about a device or a pipe (`/dev/zero`): the read itself
    // is bounded too.
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_TEMPLATE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(err)?;
    if text.len() as u64 > MAX_TEMPLATE_BYTES {
        return Err(too_big(text.len() as u64));
    }
    Ok(text)
}

/// A compiled template file.
pub(super) struct Compiled {
    file: String,
    env: Environment<'static>,
    content_type: HeaderValue,
    /// The template's `[vars]` overlaid with the queue's, as the `vars` variable.
    vars: Value,
    mention: Part,
    digest: Option<Part>,
    spike: Option<Part>,
    followup: Option<Part>,
    deleted: Option<Part>,
    request: Request,
    /// `[followup.request]`.
    followup_request: Request,
    /// `[deleted.request]`.
    deleted_request: Request,
}

/// How mentions and digests are sent (`[request]`), and follow-ups (`[followup.request]`);
/// spike events always go as a `POST` to the queue's URL (they have no record of their own
/// to be keyed by).
#[derive(Clone, Default)]
struct Request {
    method: Option<Header>,
    path: Option<Header>,
    /// A follow-up's address relative to the queue's URL.
    join: Option<Header>,
    exists: Vec<u16>,
    /// `[followup.request]`: the answers that mean the case's ticket is gone from the CRM
    /// (deleted, merged away), so the mention opens a ticket of its own.
    gone: Option<super::Gone>,
    /// The JSON pointer of the ticket id in a create's answer.
    ticket_id: Option<String>,
    /// The JSON pointer of the ticket id in a lookup's answer.
    found_ticket_id: Option<String>,
    /// A search sent before the create, for CRMs with no key a create can carry: its path
    /// (with a query), and the JSON pointer of the list that is non-empty when the record
    /// exists.
    lookup: Option<(Header, String)>,
}

/// The longest `[request] path` rendered: ids and a field name, never post text.
const MAX_PATH: usize = 512;

/// Header names with their constant values or templates.
type Headers = Vec<(HeaderName, Header)>;

/// What one event type sends.
#[derive(Clone)]
struct Part {
    headers: Headers,
    body: Node,
}

#[derive(Clone)]
enum Header {
    Const(HeaderValue),
    Text(Leaf),
}

/// A compiled template string.
#[derive(Clone, Debug)]
struct Leaf {
    /// Its name in the environment (`t12`, `=t13` for a single expression).
    name: String,
    /// Its place in the file (`body.ticket.subject`), for messages.
    field: String,
}

#[derive(Clone)]
enum Node {
    Const(Json),
    Text(Leaf),
    Native(Leaf),
    Object(Vec<(Key, Node)>),
    Array(Vec<Node>),
}

#[derive(Clone)]
enum Key {
    Const(String),
    Text(Leaf),
}

impl Compiled {
    /// The template file, for messages.
    pub(super) fn file(&self) -> &str {
        &self.file
    }

    /// Compiles `text` (read from `file`) and checks it against the samples; every mistake
    /// found is in the error.
    pub(super) fn build(
        format: PayloadFormat,
        file: &str,
        text: &str,
        queue_vars: &BTreeMap<String, String>,
    ) -> Result<Compiled, PayloadError> {
        let invalid = |issues| PayloadError::Invalid {
            file: file.to_string(),
            format,
            issues,
        };
        let mut b = Builder {
            file,
            text,
            env: functions::environment(),
            issues: Vec::new(),
            sites: BTreeMap::new(),
        };
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            b.issue(e.span().unwrap_or(0..0), "", e.message().trim().to_string());
        }
        if !syntax.is_empty() {
            return Err(invalid(b.issues));
        }
        let file_parts = b.file_parts(root.get_ref());
        let Some(FileParts {
            content_type,
            defaults,
            mention,
            digest,
            spike,
            followup,
            deleted,
            request,
            followup_request,
            deleted_request,
        }) = file_parts.filter(|_| b.issues.is_empty())
        else {
            return Err(invalid(b.issues));
        };
        let mut vars = defaults.clone();
        vars.extend(queue_vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        let Builder {
            env,
            mut issues,
            sites,
            ..
        } = b;
        let compiled = Compiled {
            file: file.to_string(),
            env,
            content_type,
            vars: Value::from_pairs(vars),
            mention,
            digest,
            spike,
            followup,
            deleted,
            request,
            followup_request,
            deleted_request,
        };
        let checks = Checks {
            compiled: &compiled,
            text,
            sites: &sites,
        };
        let failed = checks.names(&defaults, queue_vars, &mut issues);
        checks.samples(failed, &mut issues);
        if issues.is_empty() {
            Ok(compiled)
        } else {
            // File order; a queue var the template does not read (no place) last.
            issues.sort_by_key(|i| i.at.unwrap_or((u32::MAX, 0)));
            Err(invalid(issues))
        }
    }

    /// The part that renders messages of `event`, when the file has one.
    fn part(&self, event: EventType) -> Option<&Part> {
        match event {
            EventType::MentionCreated => Some(&self.mention),
            EventType::MentionDigest => self.digest.as_ref(),
            EventType::SpikeStarted | EventType::SpikeUpdated | EventType::SpikeEnded => {
                self.spike.as_ref()
            }
            EventType::MentionFollowup => self.followup.as_ref(),
            EventType::MentionDeleted => self.deleted.as_ref(),
        }
    }

    /// Whether the file can render messages of `event` (see [`super::Payload::handles`]).
    pub(super) fn handles(&self, event: EventType) -> bool {
        self.part(event).is_some()
    }

    /// Renders one message.
    pub(super) fn render(&self, out: &Outgoing<'_>) -> Result<Rendered, RenderError> {
        let file = || self.file.clone();
        let part = self.part(out.event).ok_or_else(|| match out.event {
            EventType::MentionDigest => RenderError::NoDigest { file: file() },
            EventType::MentionFollowup | EventType::MentionDeleted => {
                RenderError::NoFollowup { file: file() }
            }
            _ => RenderError::NoSpike { file: file() },
        })?;
        let ctx = context::build(out, &self.vars).map_err(|e| RenderError::Data {
            file: self.file.clone(),
            message: e.to_string(),
        })?;
        let body = self
            .eval(&part.body, &ctx)?
            .unwrap_or(Out::Owned(Json::Null));
        let body = serde_json::to_vec(&body).map_err(|e| RenderError::Data {
            file: self.file.clone(),
            message: e.to_string(),
        })?;
        let mut headers = Vec::with_capacity(part.headers.len());
        for (name, header) in &part.headers {
            let value = match header {
                Header::Const(v) => v.clone(),
                Header::Text(leaf) => {
                    let text = self.text(leaf, &ctx)?;
                    if text.is_empty() || text == OMIT {
                        continue;
                    }
                    HeaderValue::from_str(&text).map_err(|_| RenderError::Header {
                        file: self.file.clone(),
                        name: name.to_string(),
                    })?
                }
            };
            headers.push((name.clone(), value));
        }
        let mut rendered = Rendered::post(self.content_type.clone(), headers, Bytes::from(body));
        match out.event {
            EventType::MentionCreated | EventType::MentionDigest => {
                let (method, path, exists, lookup) = self.request(&ctx)?;
                rendered.method = method;
                rendered.path = path;
                rendered.exists = exists;
                rendered.lookup = lookup;
                // Digests open no case: only a mention's ticket is followed up.
                if out.event == EventType::MentionCreated && self.followup.is_some() {
                    rendered.ticket_id = self.request.ticket_id.clone();
                }
            }
            EventType::MentionFollowup | EventType::MentionDeleted => {
                let r = if out.event == EventType::MentionDeleted {
                    &self.deleted_request
                } else {
                    &self.followup_request
                };
                rendered.method = self.method(&r.method, &ctx)?;
                rendered.join = self.value(&r.join, &ctx)?;
                if rendered.join.is_empty()
                    || rendered.join.len() > MAX_PATH
                    || !rendered.join.bytes().all(path_byte)
                {
                    return Err(RenderError::Request {
                        file: self.file.clone(),
                        message: format!(
                            "followup url: {} bytes, or a character a URL path cannot carry as it is",
                            rendered.join.len()
                        ),
                    });
                }
                rendered.exists = r.exists.clone();
                rendered.gone = r.gone.clone().unwrap_or_default();
            }
            _ => {}
        }
        Ok(rendered)
    }

    /// The text of a `[request]` value (empty when absent or `omit`).
    fn value(&self, h: &Option<Header>, ctx: &Value) -> Result<String, RenderError> {
        Ok(match h {
            None => String::new(),
            Some(Header::Const(v)) => v.to_str().unwrap_or_default().to_string(),
            Some(Header::Text(leaf)) => {
                let t = self.text(leaf, ctx)?;
                if t == OMIT {
                    String::new()
                } else {
                    t
                }
            }
        })
    }

    /// The method a `[request]` names: POST unless it says PATCH or PUT.
    fn method(&self, h: &Option<Header>, ctx: &Value) -> Result<http::Method, RenderError> {
        match self.value(h, ctx)?.as_str() {
            "" | "POST" => Ok(http::Method::POST),
            "PATCH" => Ok(http::Method::PATCH),
            "PUT" => Ok(http::Method::PUT),
            other => Err(RenderError::Request {
                file: self.file.clone(),
                message: format!("method `{other}` is not POST, PATCH or PUT"),
            }),
        }
    }

    /// The method, path and "exists" statuses of `[request]` for one message.
    #[allow(clippy::type_complexity)]
    fn request(
        &self,
        ctx: &Value,
    ) -> Result<(http::Method, String, Vec<u16>, Option<Lookup>), RenderError> {
        let text = |h: &Option<Header>| self.value(h, ctx);
        let method = self.method(&self.request.method, ctx)?;
        let path = text(&self.request.path)?;
        let path_of_create = path.clone();
        if path.len() > MAX_PATH || !path.bytes().all(path_byte) {
            return Err(RenderError::Request {
                file: self.file.clone(),
                message: format!(
                    "path: {} bytes, or a character a URL path cannot carry as it is (letters, digits and -._~/()'=:@,!$*+;%)",
                    path.len()
                ),
            });
        }
        let lookup = match &self.request.lookup {
            None => None,
            Some((h, found)) => {
                let path = text(&Some(h.clone()))?;
                if path.is_empty() {
                    // The template turned the lookup off for this queue.
                    return Ok((method, path_of_create, self.request.exists.clone(), None));
                }
                if path.len() > MAX_PATH || !path.bytes().all(query_byte) {
                    return Err(RenderError::Request {
                        file: self.file.clone(),
                        message: format!(
                            "lookup: {} bytes, or a character a URL cannot carry as it is",
                            path.len()
                        ),
                    });
                }
                Some(Lookup {
                    path,
                    found: found.clone(),
                    ticket_id: self
                        .request
                        .found_ticket_id
                        .clone()
                        .filter(|_| self.followup.is_some()),
                })
            }
        };
        Ok((method, path_of_create, self.request.exists.clone(), lookup))
    }

    /// The value of a node, `None` when it is left out (`omit`).
    fn eval<'a>(&'a self, node: &'a Node, ctx: &Value) -> Result<Option<Out<'a>>, RenderError> {
        Ok(Some(match node {
            Node::Const(j) => Out::Borrowed(j),
            Node::Text(leaf) => match self.text(leaf, ctx)? {
                s if s == OMIT => return Ok(None),
                s => Out::Owned(Json::String(s)),
            },
            Node::Native(leaf) => match self.native(leaf, ctx)? {
                Json::String(s) if s == OMIT => return Ok(None),
                j => Out::Owned(j),
            },
            Node::Object(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, node) in entries {
                    let key = match key {
                        Key::Const(k) => Cow::Borrowed(k.as_str()),
                        Key::Text(leaf) => match self.text(leaf, ctx)? {
                            k if k.is_empty() || k == OMIT => continue,
                            k => Cow::Owned(k),
                        },
                    };
                    if let Some(value) = self.eval(node, ctx)? {
                        out.push((key, value));
                    }
                }
                Out::Object(out)
            }
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for node in items {
                    out.extend(self.eval(node, ctx)?);
                }
                Out::Array(out)
            }
        }))
    }

    fn text(&self, leaf: &Leaf, ctx: &Value) -> Result<String, RenderError> {
        self.env
            .get_template(&leaf.name)
            .and_then(|t| t.render(ctx.clone()))
            .map_err(|e| self.failed(leaf, describe(&e)))
    }

    /// A single-expression leaf: its JSON output parsed back, keeping the value's type.
    fn native(&self, leaf: &Leaf, ctx: &Value) -> Result<Json, RenderError> {
        let text = self.text(leaf, ctx)?;
        serde_json::from_str(&text).map_err(|e| {
            self.failed(
                leaf,
                format!("the expression did not give a JSON value ({e}); was `safe` applied?"),
            )
        })
    }

    fn failed(&self, leaf: &Leaf, message: String) -> RenderError {
        RenderError::Template {
            file: self.file.clone(),
            field: leaf.field.clone(),
            message,
        }
    }

    /// Every leaf of a part, headers first.
    fn leaves<'a>(part: &'a Part, out: &mut Vec<(&'a Leaf, LeafKind)>) {
        for (_, h) in &part.headers {
            if let Header::Text(leaf) = h {
                out.push((leaf, LeafKind::Header));
            }
        }
        fn walk<'a>(node: &'a Node, out: &mut Vec<(&'a Leaf, LeafKind)>) {
            match node {
                Node::Const(_) => {}
                Node::Text(leaf) => out.push((leaf, LeafKind::Text)),
                Node::Native(leaf) => out.push((leaf, LeafKind::Native)),
                Node::Object(entries) => {
                    for (key, node) in entries {
                        if let Key::Text(leaf) = key {
                            out.push((leaf, LeafKind::Text));
                        }
                        walk(node, out);
                    }
                }
                Node::Array(items) => items.iter().for_each(|n| walk(n, out)),
            }
        }
        walk(&part.body, out);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LeafKind {
    Header,
    Text,
    Native,
}

/// A rendered body: borrowed constants, rendered leaves, and objects in the file's order.
enum Out<'a> {
    Borrowed(&'a Json),
    Owned(Json),
    Object(Vec<(Cow<'a, str>, Out<'a>)>),
    Array(Vec<Out<'a>>),
}

impl serde::Serialize for Out<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Out::Borrowed(j) => j.serialize(s),
            Out::Owned(j) => j.serialize(s),
            Out::Object(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Out::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
        }
    }
}

/// minijinja's error as one line: kind, detail, and the template line when it has several.
fn describe(e: &minijinja::Error) -> String {
    let mut m = match e.detail() {
        Some(d) if d.starts_with(REQUIRED_PREFIX) => d.to_string(),
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(line) = e.line().filter(|&l| l > 1) {
        m.push_str(&format!(" (template line {line})"));
    }
    m
}

/// Where a template string is in the file, to place its errors.
struct Site {
    field: String,
    /// The TOML span of the string (quotes included) or key.
    span: Range<usize>,
    /// The string as TOML decoded it: the template source.
    source: String,
}

struct FileParts {
    content_type: HeaderValue,
    defaults: BTreeMap<String, String>,
    mention: Part,
    digest: Option<Part>,
    spike: Option<Part>,
    followup: Option<Part>,
    deleted: Option<Part>,
    request: Request,
    followup_request: Request,
    deleted_request: Request,
}

/// The bytes a rendered `[request] path` may hold: unreserved and sub-delimiter characters of
/// a URL path, so a value can neither leave the path (`?`, `#`) nor need escaping.
fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/()'=:@,!$*+;%".contains(&b)
}

/// [`path_byte`] and a query's `?` and `&`, for a lookup.
fn query_byte(b: u8) -> bool {
    path_byte(b) || b == b'?' || b == b'&'
}

/// An optional per-event section (`[digest]`, `[spike]`, `[followup]`) as found: its body,
/// headers and (`[followup]` only) request, each `None` when absent or broken.
type Section = (Option<Node>, Option<Headers>, Option<Option<Request>>);

/// Walks the TOML document, compiling templates and collecting every mistake.
struct Builder<'a> {
    file: &'a str,
    text: &'a str,
    env: Environment<'static>,
    issues: Vec<TemplateIssue>,
    /// Keyed by template name.
    sites: BTreeMap<String, Site>,
}

const TOP_KEYS: &str = "content_type, [vars], [headers], [body], [digest], [spike], [followup], [deleted] and [request]";

impl Builder<'_> {
    fn issue(&mut self, span: Range<usize>, field: &str, message: String) {
        let (line, col) = line_col(self.text, span.start);
        self.issues.push(TemplateIssue {
            file: self.file.to_string(),
            at: Some((line, col)),
            field: field.to_string(),
            message,
        });
    }

    fn file_parts(&mut self, root: &DeTable<'_>) -> Option<FileParts> {
        let mut content_type = Some(HeaderValue::from_static("application/json"));
        let mut defaults = BTreeMap::new();
        let mut headers = Some(Vec::new());
        let mut body = None;
        let mut digest: Option<Section> = None;
        let mut spike: Option<Section> = None;
        let mut followup: Option<Section> = None;
        let mut deleted: Option<Section> = None;
        let mut request = Some(Request::default());
        for (key, value) in root.iter() {
            let name = key.get_ref().as_ref();
            match name {
                "content_type" => {
                    content_type = match value.get_ref().as_str().map(HeaderValue::from_str) {
                        Some(Ok(v)) => Some(v),
                        _ => {
                            self.issue(
                                value.span(),
                                "content_type",
                                "must be a string that is a valid header value".into(),
                            );
                            None
                        }
                    }
                }
                "vars" => match value.get_ref().as_table() {
                    Some(t) => {
                        for (k, v) in t.iter() {
                            match v.get_ref().as_str() {
                                Some(s) => {
                                    defaults.insert(k.get_ref().to_string(), s.to_string());
                                }
                                None => self.issue(
                                    v.span(),
                                    &format!("vars.{}", k.get_ref()),
                                    "vars are strings (a queue's vars are strings too); quote it"
                                        .into(),
                                ),
                            }
                        }
                    }
                    None => self.issue(value.span(), "vars", "must be a table ([vars])".into()),
                },
                "headers" => headers = self.headers("headers", value),
                "body" => body = self.body("body", value),
                "digest" => digest = self.section("digest", key.span(), value),
                "spike" => spike = self.section("spike", key.span(), value),
                "followup" => followup = self.section("followup", key.span(), value),
                "deleted" => deleted = self.section("deleted", key.span(), value),
                "request" => request = self.request("request", value),
                other => self.issue(
                    key.span(),
                    other,
                    format!("unknown key: a template has {TOP_KEYS}"),
                ),
            }
        }
        if !root.iter().any(|(k, _)| k.get_ref() == "body") {
            self.issue(0..0, "body", "the template has no [body] table".into());
        }
        let headers = headers?;
        let mention = Part {
            headers: headers.clone(),
            body: body?,
        };
        // A section without headers of its own sends the file's [headers].
        let part = |section: &Option<Section>| -> Option<Option<Part>> {
            match section {
                None => Some(None),
                Some((body, own, _)) => Some(Some(Part {
                    headers: own.clone().unwrap_or_else(|| headers.clone()),
                    body: body.clone()?,
                })),
            }
        };
        let request = request?;
        if (followup.is_some() || deleted.is_some()) && request.ticket_id.is_none() {
            self.issue(
                0..0,
                "request.ticket_id",
                "a template with [followup] or [deleted] needs [request] ticket_id, the JSON pointer of the ticket id in the create's answer".into(),
            );
        }
        if followup.is_some() && request.lookup.is_some() && request.found_ticket_id.is_none() {
            self.issue(
                0..0,
                "request.found_ticket_id",
                "a template with [followup] and a lookup needs [request] found_ticket_id, the JSON pointer of the ticket id in the lookup's answer".into(),
            );
        }
        let section_request = |s: &Option<Section>| match s {
            None => Some(Request::default()),
            Some((_, _, r)) => r.clone().flatten(),
        };
        let followup_request = section_request(&followup)?;
        let deleted_request = section_request(&deleted)?;
        Some(FileParts {
            content_type: content_type?,
            defaults,
            mention,
            digest: part(&digest)?,
            spike: part(&spike)?,
            followup: part(&followup)?,
            deleted: part(&deleted)?,
            request,
            followup_request,
            deleted_request,
        })
    }

    /// `[request]`: `method` and `path` (constants or templates), `exists` (statuses), a
    /// `lookup` with `found`, and the pointers `ticket_id` / `found_ticket_id`.
    /// `[followup.request]` (`name`): `method`, `url`, `exists`, and `gone` / `gone_codes` (the
    /// statuses, and the words of a 4xx answer, that mean the case's ticket is gone).
    fn request(&mut self, name: &str, value: &Spanned<DeValue<'_>>) -> Option<Request> {
        let Some(t) = value.get_ref().as_table() else {
            self.issue(value.span(), name, format!("must be a table ([{name}])"));
            return None;
        };
        let followup = name != "request";
        let keys = if followup {
            "method, url, exists, gone and gone_codes"
        } else {
            "method, path, exists, lookup, found, ticket_id and found_ticket_id"
        };
        let mut r = Request::default();
        let (mut lookup, mut found) = (None, None);
        let mut gone = super::Gone::default();
        for (k, v) in t.iter() {
            let key = k.get_ref().as_ref();
            let field = format!("{name}.{key}");
            let allowed = match key {
                "method" | "exists" => true,
                "url" | "gone" | "gone_codes" => followup,
                "path" | "lookup" | "found" | "ticket_id" | "found_ticket_id" => !followup,
                _ => false,
            };
            if !allowed {
                self.issue(
                    k.span(),
                    &field,
                    format!("unknown key: [{name}] has {keys}"),
                );
                continue;
            }
            match (key, v.get_ref()) {
                ("ticket_id" | "found_ticket_id", DeValue::String(s)) if s.starts_with('/') => {
                    if key == "ticket_id" {
                        r.ticket_id = Some(s.to_string());
                    } else {
                        r.found_ticket_id = Some(s.to_string());
                    }
                }
                ("ticket_id" | "found_ticket_id", _) => {
                    self.issue(v.span(), &field, "a JSON pointer (`/id`)".into());
                }
                ("url", DeValue::String(s)) => {
                    r.join = Some(if has_syntax(s) {
                        Header::Text(self.template(&field, v.span(), s, false))
                    } else if let (true, Ok(h)) =
                        (s.bytes().all(path_byte), HeaderValue::from_str(s))
                    {
                        Header::Const(h)
                    } else {
                        self.issue(
                            v.span(),
                            &field,
                            "a character a URL path cannot carry as it is".into(),
                        );
                        continue;
                    });
                }
                ("method" | "path", DeValue::String(s)) => {
                    let part = if has_syntax(s) {
                        Header::Text(self.template(&field, v.span(), s, false))
                    } else if key == "method" && !["POST", "PATCH", "PUT"].contains(&s.as_ref()) {
                        self.issue(v.span(), &field, "POST, PATCH or PUT".into());
                        continue;
                    } else if key == "path" && !s.bytes().all(path_byte) {
                        self.issue(
                            v.span(),
                            &field,
                            "a character a URL path cannot carry as it is".into(),
                        );
                        continue;
                    } else {
                        match HeaderValue::from_str(s) {
                            Ok(h) => Header::Const(h),
                            Err(_) => {
                                self.issue(v.span(), &field, "not valid here".into());
                                continue;
                            }
                        }
                    };
                    if key == "method" {
                        r.method = Some(part);
                    } else {
                        r.path = Some(part);
                    }
                }
                ("gone", DeValue::Array(items)) => {
                    gone.statuses = self.statuses(items, &field, 400..=499);
                }
                ("gone_codes", DeValue::Array(items)) => {
                    for item in items {
                        match item.get_ref().as_str() {
                            Some(s) if !s.is_empty() && s.len() <= 128 => {
                                gone.codes.push(s.to_string())
                            }
                            _ => self.issue(
                                item.span(),
                                &field,
                                "an error code of the CRM's answer, 1 to 128 characters".into(),
                            ),
                        }
                    }
                }
                ("gone" | "gone_codes", _) => {
                    self.issue(v.span(), &field, "a list".into());
                }
                ("exists", DeValue::Array(items)) => {
                    r.exists = self.statuses(items, &field, 200..=599);
                }
                ("lookup", DeValue::String(s)) => {
                    let part = if has_syntax(s) {
                        Header::Text(self.template(&field, v.span(), s, false))
                    } else if let (true, Ok(h)) =
                        (s.bytes().all(query_byte), HeaderValue::from_str(s))
                    {
                        Header::Const(h)
                    } else {
                        self.issue(
                            v.span(),
                            &field,
                            "a character a URL cannot carry as it is".into(),
                        );
                        continue;
                    };
                    lookup = Some((part, k.span()));
                }
                ("found", DeValue::String(s)) if s.starts_with('/') => found = Some(s.to_string()),
                ("found", _) => {
                    self.issue(v.span(), &field, "a JSON pointer (`/data`)".into());
                }
                ("exists", _) => self.issue(v.span(), &field, "a list of statuses".into()),
                _ => self.issue(v.span(), &field, "a string".into()),
            }
        }
        if followup {
            r.gone = Some(gone);
        }
        if followup && r.join.is_none() {
            self.issue(
                value.span(),
                &format!("{name}.url"),
                "a follow-up needs `url`, its address relative to the queue's url (`tickets/{{ case.ticket_id }}/comments`)".into(),
            );
        }
        match (lookup, found) {
            (Some((path, _)), Some(found)) => r.lookup = Some((path, found)),
            (None, None) => {}
            (Some((_, span)), None) => {
                self.issue(span, "request.lookup", "needs `found`, the JSON pointer of the list that is non-empty when the record exists".into())
            }
            (None, Some(_)) => self.issue(value.span(), "request.found", "applies only with `lookup`".into()),
        }
        Some(r)
    }

    /// A list of HTTP statuses within `range`; each other item is reported.
    fn statuses(
        &mut self,
        items: &toml::de::DeArray<'_>,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Vec<u16> {
        let mut out = Vec::new();
        for item in items {
            match item
                .get_ref()
                .as_integer()
                .and_then(|i| i64::from_str_radix(i.as_str(), i.radix()).ok())
            {
                Some(n) if range.contains(&n) => out.push(n as u16),
                _ => self.issue(
                    item.span(),
                    field,
                    format!("an HTTP status, {} to {}", range.start(), range.end()),
                ),
            }
        }
        out
    }

    /// An optional per-event section, `[name.body]` (required in it) and `[name.headers]`.
    /// `None` when the value is not a table (reported).
    fn section(
        &mut self,
        name: &str,
        key_span: Range<usize>,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<Section> {
        let Some(t) = value.get_ref().as_table() else {
            self.issue(value.span(), name, format!("must be a table ([{name}])"));
            return None;
        };
        let (mut body, mut headers, mut request) = (None, None, None);
        let mut has_body = false;
        let followup = matches!(name, "followup" | "deleted");
        for (k, v) in t.iter() {
            match k.get_ref().as_ref() {
                "body" => {
                    has_body = true;
                    body = self.body(&format!("{name}.body"), v);
                }
                "headers" => headers = self.headers(&format!("{name}.headers"), v),
                "request" if followup => {
                    request = Some(self.request(&format!("{name}.request"), v));
                }
                other => {
                    let has = if followup {
                        format!("[{name}.request], [{name}.body] and [{name}.headers]")
                    } else {
                        format!("[{name}.body] and [{name}.headers]")
                    };
                    self.issue(
                        k.span(),
                        &format!("{name}.{other}"),
                        format!("unknown key: [{name}] has {has}"),
                    )
                }
            }
        }
        if !has_body {
            self.issue(
                key_span.clone(),
                name,
                format!("[{name}] needs a [{name}.body] table"),
            );
        }
        if followup && request.is_none() {
            self.issue(
                key_span,
                name,
                format!("[{name}] needs a [{name}.request] table with its url"),
            );
            request = Some(None);
        }
        Some((body, headers, request))
    }

    fn body(&mut self, field: &str, value: &Spanned<DeValue<'_>>) -> Option<Node> {
        if value.get_ref().as_table().is_none() {
            self.issue(value.span(), field, "must be a table".into());
            return None;
        }
        Some(self.node(field, value))
    }

    fn headers(&mut self, field: &str, value: &Spanned<DeValue<'_>>) -> Option<Headers> {
        let Some(table) = value.get_ref().as_table() else {
            self.issue(
                value.span(),
                field,
                "must be a table of header templates".into(),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in table.iter() {
            let path = format!("{field}.{}", k.get_ref());
            let Ok(name) = HeaderName::from_bytes(k.get_ref().as_bytes()) else {
                self.issue(k.span(), &path, "not a valid HTTP header name".into());
                continue;
            };
            let Some(s) = v.get_ref().as_str() else {
                self.issue(v.span(), &path, "a header value is a string".into());
                continue;
            };
            if has_syntax(s) {
                let leaf = self.template(&path, v.span(), s, false);
                out.push((name, Header::Text(leaf)));
            } else {
                match HeaderValue::from_str(s) {
                    Ok(value) => out.push((name, Header::Const(value))),
                    Err(_) => self.issue(v.span(), &path, "not a valid header value".into()),
                }
            }
        }
        Some(out)
    }

    fn node(&mut self, field: &str, value: &Spanned<DeValue<'_>>) -> Node {
        let span = value.span();
        match value.get_ref() {
            DeValue::String(s) if !has_syntax(s) => Node::Const(Json::String(s.to_string())),
            DeValue::String(s) => {
                let native = single_expression(s);
                let leaf = self.template(field, span, s, native);
                if native {
                    Node::Native(leaf)
                } else {
                    Node::Text(leaf)
                }
            }
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Node::Const(Json::from(n)),
                Err(_) => {
                    self.issue(span, field, "integer out of range".into());
                    Node::Const(Json::Null)
                }
            },
            DeValue::Float(f) => match f.as_str().parse::<f64>().ok().map(Json::from) {
                Some(j @ Json::Number(_)) => Node::Const(j),
                _ => {
                    self.issue(span, field, "JSON has no inf or nan".into());
                    Node::Const(Json::Null)
                }
            },
            DeValue::Boolean(b) => Node::Const(Json::Bool(*b)),
            DeValue::Datetime(d) => Node::Const(Json::String(d.to_string())),
            DeValue::Array(items) => Node::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.node(&format!("{field}[{i}]"), v))
                    .collect(),
            ),
            DeValue::Table(t) => {
                let mut entries = Vec::with_capacity(t.len());
                for (k, v) in t.iter() {
                    let key = k.get_ref().as_ref();
                    let path = format!("{field}.{key}");
                    let key = if has_syntax(key) {
                        Key::Text(self.template(&path, k.span(), key, false))
                    } else {
                        Key::Const(key.to_string())
                    };
                    entries.push((key, self.node(&path, v)));
                }
                Node::Object(entries)
            }
        }
    }

    /// Compiles one template string, recording a syntax error at its place in the file.
    fn template(&mut self, field: &str, span: Range<usize>, source: &str, native: bool) -> Leaf {
        let name = format!(
            "{}t{}",
            if native { NATIVE_PREFIX } else { "" },
            self.sites.len()
        );
        let site = Site {
            field: field.to_string(),
            span,
            source: source.to_string(),
        };
        let result = self
            .env
            .add_template_owned(name.clone(), source.to_string());
        if let Err(e) = result {
            let offset = locate(self.text, &site, e.range().map_or(0, |r| r.start));
            self.issue(offset..offset, field, describe(&e));
        }
        self.sites.insert(name.clone(), site);
        Leaf {
            name,
            field: field.to_string(),
        }
    }
}

/// The checks made once the file compiles: names, then sample renders.
struct Checks<'a> {
    compiled: &'a Compiled,
    text: &'a str,
    sites: &'a BTreeMap<String, Site>,
}

impl Checks<'_> {
    fn issue(&self, name: &str, offset: usize, message: String) -> TemplateIssue {
        let site = &self.sites[name];
        let (line, col) = line_col(self.text, locate(self.text, site, offset));
        TemplateIssue {
            file: self.compiled.file.clone(),
            at: Some((line, col)),
            field: site.field.clone(),
            message,
        }
    }

    /// Every variable a template names exists; every var the queue sets is read.
    fn names(
        &self,
        defaults: &BTreeMap<String, String>,
        queue_vars: &BTreeMap<String, String>,
        issues: &mut Vec<TemplateIssue>,
    ) -> HashSet<String> {
        let mut failed = HashSet::new();
        let env = &self.compiled.env;
        let globals: BTreeSet<String> = env.globals().map(|(k, _)| k.to_string()).collect();
        let mut read = BTreeSet::new();
        let mut reads_all_vars = false;
        for name in self.sites.keys() {
            let Ok(t) = env.get_template(name) else {
                continue;
            };
            for var in t.undeclared_variables(false) {
                if !context::NAMES.contains(&var.as_str()) && !globals.contains(&var) {
                    let at = self.sites[name].source.find(var.as_str()).unwrap_or(0);
                    failed.insert(name.clone());
                    issues.push(self.issue(
                        name,
                        at,
                        format!(
                            "unknown variable `{var}`; the variables are {}",
                            context::NAMES.join(", ")
                        ),
                    ));
                }
            }
            for path in t.undeclared_variables(true) {
                match path.strip_prefix("vars.") {
                    Some(v) => {
                        read.insert(v.split('.').next().unwrap_or(v).to_string());
                    }
                    None if path == "vars" => reads_all_vars = true,
                    None => {}
                }
            }
        }
        if reads_all_vars {
            return failed;
        }
        for var in queue_vars.keys() {
            if !read.contains(var) && !defaults.contains_key(var) {
                let known: Vec<&str> = read
                    .iter()
                    .map(String::as_str)
                    .chain(defaults.keys().map(String::as_str))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                issues.push(TemplateIssue {
                    file: self.compiled.file.clone(),
                    at: None,
                    field: format!("vars.{var}"),
                    message: format!(
                        "the queue sets var `{var}`, which this template does not read \
                         (it reads: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                });
            }
        }
        failed
    }

    /// Renders every leaf against every sample it applies to; the first failure of each
    /// leaf is an issue. A `required(…)` failure is not: it depends on the message.
    /// `failed`: the templates already reported, which are not reported again.
    fn samples(&self, mut failed: HashSet<String>, issues: &mut Vec<TemplateIssue>) {
        let c = self.compiled;
        for sample in samples::all() {
            let Some(part) = c.part(sample.event) else {
                continue;
            };
            let ctx = context::build(&sample.outgoing(), &c.vars)
                .expect("the samples are JSON minijinja reads");
            let mut leaves = Vec::new();
            Compiled::leaves(part, &mut leaves);
            for (leaf, kind) in leaves {
                if failed.contains(&leaf.name) {
                    continue;
                }
                let problem = match c.env.get_template(&leaf.name).and_then(|t| t.render(&ctx)) {
                    Err(e) if e.detail().is_some_and(|d| d.starts_with(REQUIRED_PREFIX)) => None,
                    Err(e) => Some((e.range().map_or(0, |r| r.start), describe(&e))),
                    Ok(text) => match kind {
                        LeafKind::Native => serde_json::from_str::<Json>(&text).err().map(|e| {
                            (0, format!("the expression did not give a JSON value ({e})"))
                        }),
                        LeafKind::Header if HeaderValue::from_str(&text).is_err() => Some((
                            0,
                            "renders a value that is not a valid header value (a newline?)"
                                .to_string(),
                        )),
                        _ => None,
                    },
                };
                if let Some((offset, message)) = problem {
                    let hint = if message.contains("`vars.") {
                        "; give the var a default in this file's [vars] or set it in the \
                         queue's vars"
                    } else {
                        ""
                    };
                    issues.push(self.issue(
                        &leaf.name,
                        offset,
                        format!("with {}: {message}{hint}", sample.name),
                    ));
                    failed.insert(leaf.name.clone());
                }
            }
            // What `[request]` renders must make a method and a URL path.
            let request = match sample.event {
                EventType::MentionCreated | EventType::MentionDigest => {
                    Some((c.request(&ctx).err(), &c.request))
                }
                EventType::MentionFollowup => {
                    Some((c.render(&sample.outgoing()).err(), &c.followup_request))
                }
                EventType::MentionDeleted => {
                    Some((c.render(&sample.outgoing()).err(), &c.deleted_request))
                }
                _ => None,
            };
            if let Some((Some(RenderError::Request { message, .. }), r)) = request {
                {
                    let leaf = [&r.path, &r.method, &r.join]
                        .into_iter()
                        .find_map(|h| match h {
                            Some(Header::Text(leaf)) if !failed.contains(&leaf.name) => {
                                Some(leaf.name.clone())
                            }
                            _ => None,
                        });
                    if let Some(name) = leaf {
                        issues.push(self.issue(
                            &name,
                            0,
                            format!("with {}: request: {message}", sample.name),
                        ));
                        failed.insert(name);
                    }
                }
            }
        }
    }
}

/// The byte offset in the file of byte `offset` of a template string, exact when the TOML
/// string holds its text verbatim (no escapes), else the start of the string.
fn locate(text: &str, site: &Site, offset: usize) -> usize {
    let raw = &text[site.span.clone()];
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else if raw.starts_with('"') || raw.starts_with('\'') {
        1
    } else {
        0
    };
    if raw.len() < 2 * quote {
        return site.span.start;
    }
    let mut inner = &raw[quote..raw.len() - quote];
    let mut skip = 0;
    if quote == 3 {
        // A newline right after the opening quotes is not part of the string.
        for nl in ["\r\n", "\n"] {
            if let Some(rest) = inner.strip_prefix(nl) {
                inner = rest;
                skip = nl.len();
                break;
            }
        }
    }
    if inner == site.source && offset <= inner.len() {
        site.span.start + quote + skip + offset
    } else {
        site.span.start
    }
}

/// Whether a string has template syntax at all; one without is a constant.
fn has_syntax(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// Whether a string is exactly one `{{ expression }}` (spaces around allowed), which keeps
/// the expression's JSON type.
fn single_expression(s: &str) -> bool {
    let t = s.trim();
    t.len() >= 4
        && t.starts_with("{{")
        && t.ends_with("}}")
        && !has_syntax(&t[2..t.len() - 2])
        && !t[2..t.len() - 2].contains("}}")
}
