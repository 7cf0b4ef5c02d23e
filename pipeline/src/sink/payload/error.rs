//! Errors of loading a payload template and of rendering one message.

use std::fmt;
use std::path::PathBuf;

use super::PayloadFormat;

/// A payload template that cannot be used. Raised by [`super::Payload::load`] at startup, so
/// a queue never runs with a template that would fail on every message.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// A template was given for the generic format, which is built in code.
    #[error(
        "payload template {}: the `generic` format is the Standard Webhooks envelope and takes \
         no template; remove the template or choose a CRM format",
        path.display()
    )]
    GenericTemplate {
        /// The template that was given.
        path: PathBuf,
    },
    /// The template file cannot be read.
    #[error("cannot read payload template {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The template has mistakes: every one found, each with its place.
    #[error("{}", Issues { file, format: *format, issues })]
    Invalid {
        /// The template file (the repository path for a built-in one).
        file: String,
        /// The format it was loaded as.
        format: PayloadFormat,
        /// Every mistake, in file order where the place is known.
        issues: Vec<TemplateIssue>,
    },
}

struct Issues<'a> {
    file: &'a str,
    format: PayloadFormat,
    issues: &'a [TemplateIssue],
}

impl fmt::Display for Issues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "{} payload template {} has {n} error{}:",
            self.format,
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for issue in self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

/// One mistake in a template file: where it is, which field, and what is wrong.
/// Displays as `file:line:col: field: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateIssue {
    /// The template file.
    pub file: String,
    /// 1-based line and column (in characters) in the file; `None` for a mistake that is not
    /// in the file (a queue var the template does not read).
    pub at: Option<(u32, u32)>,
    /// The field path in the template (`body.ticket.subject`, `headers.Idempotency-Key`,
    /// `vars.origin`); empty for a TOML syntax error.
    pub field: String,
    /// What is wrong, with minijinja's message for a template error.
    pub message: String,
}

impl fmt::Display for TemplateIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some((line, col)) = self.at {
            write!(f, ":{line}:{col}")?;
        }
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A message that cannot be rendered in its queue's format. Permanent for that message:
/// rendering it again gives the same error, so the sink gives it up instead of retrying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// `data` is not a JSON document a template can read.
    #[error("{file}: the message's data cannot be read: {message}")]
    Data {
        /// The template file.
        file: String,
        /// serde_json's message.
        message: String,
    },
    /// A digest was sent to a queue whose template has no `[digest]` body.
    #[error("{file}: a mention.digest was sent, but the template has no [digest] body")]
    NoDigest {
        /// The template file.
        file: String,
    },
    /// A spike event was sent to a queue whose template has no `[spike]` body. The
    /// configuration refuses such a queue at load ([`super::Payload::handles`]), so this is
    /// reached only by a spike entry left in the outbox from an earlier configuration.
    #[error("{file}: a spike event was sent, but the template has no [spike] body")]
    NoSpike {
        /// The template file.
        file: String,
    },
    /// A follow-up was about to be sent with a template that has no `[followup]` body. The
    /// dispatcher sends follow-ups only to queues whose template has one, so this is reached
    /// only when the template changed between the lookup and the render.
    #[error("{file}: a mention.followup was sent, but the template has no [followup] body")]
    NoFollowup {
        /// The template file.
        file: String,
    },
    /// A template failed on this message (most often a `required(…)` value it lacks).
    #[error("{file}: {field}: {message}")]
    Template {
        /// The template file.
        file: String,
        /// The field path of the template that failed.
        field: String,
        /// minijinja's message.
        message: String,
    },
    /// `[request]` rendered a method or path that cannot be sent.
    #[error("{file}: request: {message}")]
    Request {
        /// The template file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A header template produced a value HTTP cannot carry (a newline, a control character).
    #[error("{file}: headers.{name}: the value is not a valid HTTP header value")]
    Header {
        /// The template file.
        file: String,
        /// The header name.
        name: String,
    },
}

impl RenderError {
    /// A bounded label for metrics and logs: `data`, `no_digest`, `no_spike`, `template` or
    /// `header`.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Data { .. } => "data",
            RenderError::NoDigest { .. } => "no_digest",
            RenderError::NoSpike { .. } => "no_spike",
            RenderError::NoFollowup { .. } => "no_followup",
            RenderError::Template { .. } => "template",
            RenderError::Header { .. } => "header",
            RenderError::Request { .. } => "request",
        }
    }
}
