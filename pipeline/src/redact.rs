//! What may be shown of a URL: scheme, host and port. A webhook URL is often a credential
//! itself (`https://hooks.slack.com/services/T…/B…/secret`), a stream URL may carry a key in
//! its query, and user information is a password: none of that belongs in a log line, an error
//! or an API answer, so every place that names an endpoint goes through [`url()`].

/// `scheme://host:port/…` (the port only when the URL names one).
pub fn url(u: &url::Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}/…", u.scheme()),
        (Some(host), None) => format!("{}://{host}/…", u.scheme()),
        _ => format!("{}:…", u.scheme()),
    }
}

/// [`url()`] of text that may or may not parse as a URL: one that does not parse is not
/// quoted at all, since where its secret part starts cannot be told.
pub fn text(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => self::url(&u),
        Err(_) => "(a URL that does not parse)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacted_urls_keep_only_scheme_host_and_port() {
        let cases = [
            (
                "https://hooks.slack.com/services/T000/B000/XXXXSECRET",
                "https://hooks.slack.com/…",
            ),
            (
                "http://127.0.0.1:9000/hook?token=abc",
                "http://127.0.0.1:9000/…",
            ),
            ("https://user:pw@crm.example/api", "https://crm.example/…"),
        ];
        for (url, want) in cases {
            assert_eq!(super::url(&url::Url::parse(url).unwrap()), want);
            assert_eq!(super::text(url), want);
        }
        assert_eq!(
            super::text("wss//key=SECRET@host"),
            "(a URL that does not parse)"
        );
    }
}
