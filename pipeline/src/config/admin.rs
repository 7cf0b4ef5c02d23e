//! `[admin]`: where the admin server listens, who may call it, and the limits that keep a
//! misbehaving client from tying it up. Checked at load ([`AdminSettings::problems`]), so a
//! server that would expose metrics, dead letters or the dashboard unencrypted on a network,
//! or that names a host it cannot be, never starts.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[admin]`: the admin HTTP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Whether to serve it.
    pub enabled: bool,
    /// Listen address; loopback by default so nothing is exposed by accident.
    pub listen: SocketAddr,
    /// The environment variable holding the bearer token every endpoint but `/healthz`
    /// requires. Unset or empty: those endpoints are refused (the live page still opens
    /// through the login link printed at start).
    pub token_env: String,
    /// Host names and addresses (no port: any port is accepted) a request's `Host` header
    /// may name; the listen address is always added. A page on another site that re-points
    /// its own name at 127.0.0.1 (DNS rebinding) sends its own name, and is refused.
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this certificate and key (PEM files).
    pub tls: Option<AdminTls>,
    /// Accept a non-loopback `listen` without `tls`: the token, the dashboard session and
    /// every answer then cross the network in the clear. Off unless an operator says so
    /// (a TLS-terminating proxy or a private network).
    pub plaintext_ok: bool,
    /// Connections served at once; more are accepted and closed at once (counted). Each
    /// holds a task and buffers, so a flood of idle connections cannot exhaust memory or
    /// file descriptors of the process that also runs the pipeline.
    pub max_connections: usize,
    /// Dashboards (`/live/events` streams) open at once; more get 503 with Retry-After.
    /// Each stream holds a subscription to the live hub that every event is copied into.
    pub max_live_viewers: usize,
    /// The most time a request's headers may take to arrive, counted from when the
    /// connection is ready for it (opened, or the previous answer sent): a client that
    /// trickles headers (slowloris) is cut off, and so is a kept-alive connection that
    /// stays quiet this long. Also bounds a TLS handshake.
    #[serde(with = "crate::duration")]
    pub header_read_timeout: Duration,
    /// The most time no byte may move either way on a connection during a request: a
    /// request body that stops arriving, a client that stops reading an answer.
    #[serde(with = "crate::duration")]
    pub idle_timeout: Duration,
    /// How long a login link printed at start stays valid (it also works only once).
    #[serde(with = "crate::duration")]
    pub login_code_ttl: Duration,
    /// How long a dashboard session lasts after its login.
    #[serde(with = "crate::duration")]
    pub session_ttl: Duration,
    /// Sessions kept at once; a new login beyond this ends the oldest session.
    pub max_sessions: usize,
}

/// `[admin] tls = { cert = …, key = … }`: the server's certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    /// PEM file: the certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token_env: "EARSHOT_ADMIN_TOKEN".into(),
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            tls: None,
            plaintext_ok: false,
            max_connections: 64,
            max_live_viewers: 16,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            login_code_ttl: Duration::from_secs(10 * 60),
            session_ttl: Duration::from_secs(12 * 3600),
            max_sessions: 64,
        }
    }
}

/// One problem of `[admin]`: the key it concerns (for its place in the file) and what is
/// wrong.
pub type Problem = (&'static str, String);

impl AdminSettings {
    /// Everything wrong with these settings (paths already resolved), each with its key.
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        if !self.listen.ip().is_loopback() && self.tls.is_none() && !self.plaintext_ok {
            out.push((
                "listen",
                format!(
                    "admin.listen `{}` is not a loopback address: serve it over TLS \
                     (`tls = {{ cert = \"cert.pem\", key = \"key.pem\" }}`), or set \
                     `plaintext_ok = true` if a TLS proxy or a private network protects it \
                     (the token, dashboard sessions and dead letters would otherwise cross \
                     the network in the clear)",
                    self.listen
                ),
            ));
        }
        for host in &self.allowed_hosts {
            if let Err(e) = normalize_host(host) {
                out.push(("allowed_hosts", format!("admin.allowed_hosts: {e}")));
            }
        }
        if let Some(tls) = &self.tls {
            if let Err(e) = crate::tls::server_config(&tls.cert, &tls.key) {
                out.push(("tls", format!("admin.tls: {e}")));
            }
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_live_viewers", self.max_live_viewers),
            ("max_sessions", self.max_sessions),
        ] {
            if value == 0 {
                out.push((key, format!("admin.{key} must be at least 1")));
            }
        }
        if self.max_connections > u32::MAX as usize / 2 {
            out.push((
                "max_connections",
                "admin.max_connections is too large".to_string(),
            ));
        }
        for (key, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("login_code_ttl", self.login_code_ttl),
            ("session_ttl", self.session_ttl),
        ] {
            if value.is_zero() {
                out.push((key, format!("admin.{key} must be above 0")));
            }
        }
        // The event stream's keep-alive comments must come well within the idle timeout.
        if self.idle_timeout < Duration::from_secs(2) {
            out.push((
                "idle_timeout",
                "admin.idle_timeout must be at least 2s".to_string(),
            ));
        }
        out
    }

    /// The `Host` values served: the allowed hosts, normalized, and the listen address.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .allowed_hosts
            .iter()
            .filter_map(|h| normalize_host(h).ok())
            .collect();
        let own = match self.listen.ip() {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if !self.listen.ip().is_unspecified() && !hosts.contains(&own) {
            hosts.push(own);
        }
        hosts
    }
}

/// An allowed host as it is compared: lowercase, IPv6 in brackets, no port. Refuses what
/// cannot be a host (ports, schemes, paths, wildcards, spaces).
fn normalize_host(host: &str) -> Result<String, String> {
    let lower = host.trim().to_ascii_lowercase();
    if let Some(inner) = lower.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return match inner.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => Ok(format!("[{ip}]")),
            Err(_) => Err(format!("`{host}` is not an IPv6 address in brackets")),
        };
    }
    if let Ok(ip) = lower.parse::<std::net::Ipv6Addr>() {
        return Ok(format!("[{ip}]"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if lower.len() <= 253 && lower.split('.').all(label_ok) {
        return Ok(lower);
    }
    Err(format!(
        "`{host}` is not a host name or address (write it without scheme, port or path, \
         IPv6 in brackets)"
    ))
}

/// The host part of a `Host` header value (`name`, `name:port`, `[v6]:port`), normalized as
/// `normalize_host` does; `None` when it is malformed.
pub fn host_of_header(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if value.starts_with('[') {
        let end = value.find(']')?;
        let rest = &value[end + 1..];
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        &value[..=end]
    } else {
        match value.rsplit_once(':') {
            Some((h, port)) if is_port(port) => h,
            Some(_) => return None,
            None => value,
        }
    };
    // A trailing dot names the same host (`localhost.`).
    let host = host.strip_suffix('.').unwrap_or(host);
    normalize_host(host).ok()
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_headers_are_reduced_to_their_host() {
        for (header, host) in [
            ("localhost", Some("localhost")),
            ("LocalHost:9464", Some("localhost")),
            ("localhost.:80", Some("localhost")),
            ("127.0.0.1:9464", Some("127.0.0.1")),
            ("[::1]:9464", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("[0:0::1]", Some("[::1]")),
            ("evil.example:9464", Some("evil.example")),
            ("a:b:c", None),
            ("localhost:", None),
            ("localhost:99999x", None),
            ("[::1", None),
            ("[::1]x", None),
            ("local host", None),
            ("", None),
        ] {
            assert_eq!(host_of_header(header).as_deref(), host, "{header:?}");
        }
    }

    #[test]
    fn allowed_hosts_must_be_hosts() {
        for good in ["localhost", "admin.example.com", "10.0.0.5", "[::1]", "::1"] {
            assert!(normalize_host(good).is_ok(), "{good}");
        }
        for bad in [
            "http://localhost",
            "localhost:9464",
            "*.example.com",
            "a/b",
            "",
            "-x.example",
        ] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_listen_address_is_always_allowed() {
        let settings = AdminSettings {
            listen: "10.1.2.3:9464".parse().unwrap(),
            ..AdminSettings::default()
        };
        assert_eq!(
            settings.hosts(),
            ["localhost", "127.0.0.1", "[::1]", "10.1.2.3"]
        );
        let any = AdminSettings {
            listen: "0.0.0.0:9464".parse().unwrap(),
            ..AdminSettings::default()
        };
        assert_eq!(any.hosts(), ["localhost", "127.0.0.1", "[::1]"]);
    }

    fn load(admin: &str, base: &std::path::Path) -> Result<AdminSettings, Vec<String>> {
        let text = format!("[rules]\npaths = []\n\n{admin}");
        crate::config::Config::parse("earshot.toml", &text, base)
            .map(|c| c.admin)
            .map_err(|e| e.0.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn the_shipped_default_toml_is_the_built_in_default() {
        let file: toml::Table = toml::from_str(crate::config::DEFAULT_TOML).unwrap();
        let admin: AdminSettings = file["admin"].clone().try_into().unwrap();
        assert_eq!(admin, AdminSettings::default());
    }

    #[test]
    fn a_network_listen_address_needs_tls_or_an_explicit_opt_out() {
        let here = std::path::Path::new(".");
        let errors = load("[admin]\nlisten = \"0.0.0.0:9464\"\n", here).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("earshot.toml:5:10: admin.listen `0.0.0.0:9464` is not a loopback"),
            "{errors:?}"
        );
        assert!(errors[0].contains("plaintext_ok"), "{errors:?}");
        let ok = load(
            "[admin]\nlisten = \"0.0.0.0:9464\"\nplaintext_ok = true\n",
            here,
        )
        .unwrap();
        assert!(ok.plaintext_ok);
        assert!(load("[admin]\nlisten = \"[::1]:9464\"\n", here).is_ok());
    }

    #[test]
    fn bad_hosts_limits_and_tls_files_are_reported_where_they_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let errors = load(
            "[admin]\nallowed_hosts = [\"localhost\", \"http://x\"]\nmax_connections = 0\n\
             tls = { cert = \"missing.pem\", key = \"key.pem\" }\n",
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(
            errors[0].starts_with("earshot.toml:5:17: admin.allowed_hosts: `http://x`"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("earshot.toml:7:7: admin.tls: cert ")
                && errors[1].contains("missing.pem"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("earshot.toml:6:19: admin.max_connections must be at least 1"),
            "{errors:?}"
        );
        // A certificate and key that load, relative to the config's folder.
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join("key.pem"),
            generated.signing_key.serialize_pem(),
        )
        .unwrap();
        let ok = load(
            "[admin]\nlisten = \"0.0.0.0:9464\"\ntls = { cert = \"cert.pem\", key = \"key.pem\" }\n",
            dir.path(),
        )
        .unwrap();
        assert_eq!(ok.tls.unwrap().cert, dir.path().join("cert.pem"));
        // A key file that holds a certificate instead.
        let errors = load(
            "[admin]\ntls = { cert = \"cert.pem\", key = \"cert.pem\" }\n",
            dir.path(),
        )
        .unwrap_err();
        assert!(errors[0].contains("admin.tls: key"), "{errors:?}");
    }
}
