//! `SourceError`: why a source could not start or had to stop.
//!
//! Input → output: a failure inside a source → one variant with enough context for an operator
//! (the URL, the variable name, the file) and a bounded [`SourceError::reason`] used as a metric
//! label.
//!
//! Only failures that retrying cannot fix end a source: a bad URL or header, a missing token,
//! an unreadable file, a channel whose workers are gone. Transport failures (refused
//! connections, HTTP errors, stalls, resets) never surface here: every network source
//! reconnects forever with backoff and counts them in
//! [`SourceStats`](crate::source::emit::SourceStats) and the logs instead.

use std::path::PathBuf;

/// Why a source could not start, or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The configured URL does not parse, or has a scheme this source cannot speak.
    #[error("bad url {url}: {reason}")]
    BadUrl {
        /// The URL as it may be shown ([`crate::redact::text`]): scheme, host and port, since a
        /// stream URL may carry a key in its path or query. Built by [`SourceError::bad_url`].
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The environment variable that should hold the bearer token is not set (or not UTF-8).
    #[error("environment variable {var} (bearer token) is not set")]
    MissingToken {
        /// The variable's name.
        var: String,
    },
    /// A configured header name or value (the bearer token included) is not valid in HTTP.
    #[error("bad header {name:?}: {reason}")]
    BadHeader {
        /// The header's name (never its value: it may be a secret).
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range (a zero frame limit, a zero interval).
    #[error("invalid option {field}: {reason}")]
    InvalidOption {
        /// The option's field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// Reading the input file or stdin failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path (`-` for stdin).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The credentials of an OAuth API (Reddit) cannot be set up: a variable not set, a table
    /// that is incomplete. Names variables, never their values.
    #[error("credentials: {0}")]
    Credentials(String),
    /// Every receiver of the batch channel is gone: the workers have stopped, so nothing can
    /// take frames any more.
    #[error("the batch channel is closed: the workers are gone")]
    ChannelClosed,
    /// Shutdown came while the pipeline was full, and the source stopped without handing its
    /// last batch on (counted under the `shutdown` skip reason). Not a failure of the source.
    #[error("stopped at shutdown with the pipeline full")]
    StoppedFull,
}

impl SourceError {
    /// A [`SourceError::BadUrl`] that names `url` only by its scheme, host and port.
    pub fn bad_url(url: &str, reason: impl Into<String>) -> SourceError {
        SourceError::BadUrl {
            url: crate::redact::text(url),
            reason: reason.into(),
        }
    }

    /// Every value [`SourceError::reason`] can take: the `reason` label values of
    /// `earshot_source_errors_total`, registered at 0 for each source at start.
    pub const REASONS: [&'static str; 9] = [
        "bad_url",
        "missing_token",
        "bad_header",
        "invalid_option",
        "http_client",
        "credentials",
        "io",
        "channel_closed",
        "stopped_full",
    ];

    /// A bounded, stable name for the error, used as a metric label and in summaries.
    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::BadUrl { .. } => "bad_url",
            SourceError::MissingToken { .. } => "missing_token",
            SourceError::BadHeader { .. } => "bad_header",
            SourceError::InvalidOption { .. } => "invalid_option",
            SourceError::HttpClient(_) => "http_client",
            SourceError::Credentials(_) => "credentials",
            SourceError::Io { .. } => "io",
            SourceError::ChannelClosed => "channel_closed",
            SourceError::StoppedFull => "stopped_full",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_url_is_named_without_its_path_query_or_user() {
        let e = SourceError::bad_url(
            "wss://me:pw@stream.example/v1/KEY123?token=SECRET",
            "scheme",
        );
        let shown = e.to_string();
        assert_eq!(shown, "bad url wss://stream.example/…: scheme");
        for secret in ["KEY123", "SECRET", "pw"] {
            assert!(!format!("{e:?}").contains(secret), "{e:?}");
        }
        let e = SourceError::bad_url("not a url ?token=SECRET", "relative URL without a base");
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }

    #[test]
    fn reasons_are_distinct_and_messages_name_the_culprit() {
        let cases: Vec<(SourceError, &str, &str)> = vec![
            (
                SourceError::bad_url("ftp://x/feed", "scheme"),
                "bad_url",
                "ftp://x/…",
            ),
            (
                SourceError::MissingToken {
                    var: "X_TOKEN".into(),
                },
                "missing_token",
                "X_TOKEN",
            ),
            (
                SourceError::BadHeader {
                    name: "x-a".into(),
                    reason: "bad value".into(),
                },
                "bad_header",
                "x-a",
            ),
            (
                SourceError::InvalidOption {
                    field: "max_frame_bytes",
                    reason: "zero".into(),
                },
                "invalid_option",
                "max_frame_bytes",
            ),
            (
                SourceError::Io {
                    path: PathBuf::from("/nope"),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                },
                "io",
                "/nope",
            ),
            (
                SourceError::Credentials("environment variable `REDDIT_ID` is not set".into()),
                "credentials",
                "REDDIT_ID",
            ),
            (SourceError::ChannelClosed, "channel_closed", "workers"),
        ];
        let mut reasons = Vec::new();
        for (err, reason, needle) in cases {
            assert_eq!(err.reason(), reason);
            assert!(
                SourceError::REASONS.contains(&reason),
                "{reason} is registered"
            );
            assert!(
                err.to_string().contains(needle),
                "{err} should mention {needle}"
            );
            reasons.push(reason);
        }
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), 7);
    }
}
