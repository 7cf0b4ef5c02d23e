//! The configuration file (TOML), validated completely at load.
//!
//! Every section is deserialized on its own, so one mistake does not hide the next: a load
//! reports every syntax error, unknown key, wrong type and inconsistency at once, each with
//! `file:line:col` and the field it concerns. Secrets are never written in the file: a webhook
//! names the environment variable that holds its secret (`secret_env`), and the variable must
//! be set when the config loads. Relative paths are relative to the config file's folder.
//! `earshot check` runs exactly this validation (plus the rules).

pub mod admin;
pub mod cluster;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use crate::customers::CustomersConfig;
use crate::outbox::OutboxSettings;
use crate::sink::{QueueConfig, SinkKind};
use crate::source::file::FileOptions;
use crate::source::http_stream::HttpStreamOptions;
use crate::source::jetstream::JetstreamOptions;
use crate::source::reddit::RedditOptions;
use crate::source::sse::SseOptions;
use crate::spike::SpikeSettings;
use crate::stage::decode::{DecodeLimits, Format, GenericFields};
use crate::stage::route::RouteConfig;
use crate::stage::score::ScoringConfig;

/// The embedded default configuration: the example rules, the public Bluesky Jetstream and
/// routed mentions on stdout. `earshot run` without `--config` uses it.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The routing file the embedded default names (`rules/routing.toml`), built into the binary
/// so that a command run without `--config` reads nothing from its working directory but the
/// rules: the embedded default takes this copy where a config file would read the file.
pub const DEFAULT_ROUTING_TOML: &str = include_str!("../../rules/routing.toml");

/// The name errors give the built-in routing file.
const DEFAULT_ROUTING_NAME: &str = "<embedded rules/routing.toml>";

/// Where a config's scoring and routing files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Companions {
    /// The files its `[scoring]` and `[routing]` paths name.
    Files,
    /// The copies built into the binary (the embedded default): the paths are dropped, so
    /// neither is read from disk, now or on reload.
    BuiltIn,
}

/// `[pipeline]`: workers and the channel between sources and workers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// Batches the frame channel holds before sources wait. 64 batches of 256 frames is
    /// about 12 MB of Jetstream: enough to ride out a burst, small enough to bound memory.
    pub channel_batches: usize,
    /// Most frames in a batch.
    pub batch_max_frames: usize,
    /// Most bytes in a batch.
    pub batch_max_bytes: usize,
    /// How long a partial batch waits for more frames, in microseconds.
    pub batch_linger_us: u64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        Self {
            workers: 0,
            channel_batches: 64,
            batch_max_frames: 256,
            batch_max_bytes: 1 << 20,
            batch_linger_us: 1000,
        }
    }
}

impl PipelineSettings {
    /// Worker count with 0 resolved to the number of available cores.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            self.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        }
    }

    /// Batch limits for sources.
    pub fn batch_limits(&self) -> crate::source::batch::BatchLimits {
        crate::source::batch::BatchLimits {
            max_frames: self.batch_max_frames.max(1),
            max_bytes: self.batch_max_bytes.max(1),
            linger: std::time::Duration::from_micros(self.batch_linger_us),
        }
    }
}

/// The largest `limits.max_frame_bytes` accepted: far above any real post (a Jetstream event
/// is ~1 KB, an X v2 response with expansions rarely 100 KB), low enough that one frame per
/// worker cannot exhaust memory.
pub const MAX_FRAME_BYTES: usize = 64 << 20;
/// The deepest `limits.max_json_depth` accepted.
pub const MAX_JSON_DEPTH: usize = 1024;

/// `[limits]`: hard limits on hostile input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSettings {
    /// Largest frame accepted (bytes); larger frames are skipped as `oversize`.
    pub max_frame_bytes: usize,
    /// Deepest JSON nesting accepted; deeper frames are skipped as `too_deep`.
    pub max_json_depth: usize,
}

impl Default for LimitsSettings {
    fn default() -> Self {
        let d = DecodeLimits::default();
        Self {
            max_frame_bytes: d.max_frame_bytes,
            max_json_depth: d.max_depth,
        }
    }
}

impl LimitsSettings {
    /// As decoder limits.
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits {
            max_frame_bytes: self.max_frame_bytes,
            max_depth: self.max_json_depth,
        }
    }
}

/// `[rules]`: where the rule files are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSettings {
    /// Rule files or folders of `*.rules` files.
    pub paths: Vec<PathBuf>,
    /// How often the rule paths are checked for changes, which are then reloaded; `"0"`
    /// turns watching off (`SIGHUP` and `POST /rules/reload` still reload).
    #[serde(with = "crate::duration")]
    pub watch: std::time::Duration,
}

impl Default for RulesSettings {
    fn default() -> Self {
        Self {
            paths: vec![PathBuf::from("rules")],
            watch: std::time::Duration::from_secs(2),
        }
    }
}

pub use admin::{AdminSettings, AdminTls};

/// How a source's frames are decoded.
#[derive(Debug, Clone)]
pub enum FormatChoice {
    /// A fixed format.
    Fixed(Format),
    /// Detected from the first frame that names its format.
    Auto,
}

/// The transport of a source.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// Jetstream-compatible websocket.
    Jetstream(JetstreamOptions),
    /// NDJSON over chunked HTTP (X filtered stream style).
    HttpNdjson(HttpStreamOptions),
    /// Server-sent events (Mastodon streaming style).
    Sse(SseOptions),
    /// Reddit's API, polled.
    Reddit(RedditOptions),
    /// NDJSON file or stdin.
    File(FileOptions),
}

impl SourceKind {
    /// Runs the source until it ends (end of file), fails, or `shutdown` stops it.
    pub async fn run(
        self,
        emitter: crate::source::emit::Emitter,
        shutdown: crate::shutdown::Shutdown,
    ) -> Result<(), crate::source::error::SourceError> {
        match self {
            SourceKind::Jetstream(o) => o.run(emitter, shutdown).await,
            SourceKind::HttpNdjson(o) => o.run(emitter, shutdown).await,
            SourceKind::Sse(o) => o.run(emitter, shutdown).await,
            SourceKind::Reddit(o) => o.run(emitter, shutdown).await,
            SourceKind::File(o) => o.run(emitter, shutdown).await,
        }
    }

    /// The `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            SourceKind::Jetstream(_) => "jetstream",
            SourceKind::HttpNdjson(_) => "http_ndjson",
            SourceKind::Sse(_) => "sse",
            SourceKind::Reddit(_) => "reddit",
            SourceKind::File(_) => "file",
        }
    }
}

/// One `[[source]]` table.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Id (metric label).
    pub id: String,
    /// Decoding.
    pub format: FormatChoice,
    /// Transport.
    pub kind: SourceKind,
}

impl SourceConfig {
    /// Starts the source at `p`, a position it checkpointed before, when its transport can
    /// resume there: a Jetstream source at the cursor less its `resume_overlap` (the
    /// overlap's repeats are dropped by the source), a file at the offset (from the start if
    /// the file is now shorter: it was replaced).
    pub fn resume_at(&mut self, p: crate::source::batch::Position) {
        use crate::source::batch::Position;
        match (&mut self.kind, p) {
            (SourceKind::Jetstream(o), Position::Cursor(c)) => {
                let cursor = c.saturating_sub(o.resume_overlap.as_micros() as u64);
                tracing::info!(source = %self.id, cursor, "resuming from the checkpoint");
                o.cursor = Some(cursor);
            }
            (SourceKind::Reddit(o), Position::Cursor(c)) => {
                let since = c.saturating_sub(o.resume_overlap.as_micros() as u64);
                tracing::info!(source = %self.id, since_us = since, "resuming from the checkpoint");
                o.since_us = Some(since);
            }
            (SourceKind::File(o), Position::Offset(off)) if o.path.as_os_str() != "-" => {
                let len = std::fs::metadata(&o.path).map(|m| m.len()).unwrap_or(0);
                if off <= len {
                    tracing::info!(source = %self.id, offset = off, "resuming from the checkpoint");
                    o.start_offset = off;
                } else {
                    tracing::warn!(source = %self.id, offset = off, len,
                        "the file is shorter than its checkpoint (replaced?); reading it from the start");
                }
            }
            _ => {}
        }
    }
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was loaded from (`<embedded>` for the default).
    pub origin: String,
    /// `[pipeline]`.
    pub pipeline: PipelineSettings,
    /// `[limits]`.
    pub limits: LimitsSettings,
    /// `[rules]`, paths resolved.
    pub rules: RulesSettings,
    /// `[admin]`.
    pub admin: AdminSettings,
    /// `[scoring]`.
    pub scoring: ScoringConfig,
    /// `[customers]`: the CRM customer table.
    pub customers: CustomersConfig,
    /// `[outbox]`: the durable outbox and source checkpoints.
    pub outbox: OutboxSettings,
    /// `[routing]`: the file of queues and routes, when they are not (only) in this file.
    pub routing: RoutingSettings,
    /// `[spikes]`: the spike detector and the queues its events go to.
    pub spikes: SpikeSettings,
    /// `[[source]]`.
    pub sources: Vec<SourceConfig>,
    /// `[[queue]]`.
    pub queues: Vec<QueueConfig>,
    /// `[[route]]`.
    pub routes: Vec<RouteConfig>,
    /// `[cluster]`: present when this node is one of a cluster on NATS JetStream.
    pub cluster: Option<cluster::ClusterSettings>,
    /// `[enrichment]`: profile lookups for authors the posts do not describe (Bluesky).
    pub enrichment: crate::enrich::EnrichSettings,
}

/// `[routing]`: where the queues and routes live. A brand team keeps them in `rules/`
/// beside the rules they route (`rules/routing.toml`), so a route change is reviewed and
/// reloaded like a rule change; queues and routes written in the config file itself are
/// added to those.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSettings {
    /// The routing file: `[[queue]]` and `[[route]]` tables only.
    pub path: Option<PathBuf>,
    /// How many of [`Config::routes`] come from the config file itself (they come first);
    /// the rest come from the routing file and are read again on reload.
    #[serde(skip)]
    pub inline_routes: usize,
}

/// One problem in a config file, and every problem found in one: the located diagnostics
/// every loader reports.
pub use crate::diagnostic::{line_col, Diagnostic as ConfigError, Diagnostics as ConfigErrors};

/// Collects errors with locations while a document is validated.
struct Report<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
    /// Whether the secrets the file names must be in the environment ([`Secrets`]).
    secrets: Secrets,
}

/// Whether loading a config checks the secrets it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// Every variable a queue or the cluster names must be set and usable: what a process
    /// that delivers needs.
    Required,
    /// Queues' secrets are not looked at: for tools that only read the stores (`earshot dlq`),
    /// which an operator runs where the CRM credentials are not.
    Unchecked,
}

impl Report<'_> {
    fn at(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, col) = match span {
            Some(span) => line_col(self.text, span.start),
            None => (0, 0),
        };
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            col,
            message: message.into(),
        });
    }

    fn toml(&mut self, e: &toml::de::Error, field: &str) {
        let message = e.message().trim().to_string();
        let message = if field.is_empty() {
            message
        } else {
            format!("{field}: {message}")
        };
        self.at(e.span(), message);
    }
}

const SECTIONS: &[&str] = &[
    "pipeline",
    "limits",
    "rules",
    "admin",
    "scoring",
    "customers",
    "outbox",
    "routing",
    "spikes",
    "source",
    "queue",
    "route",
    "cluster",
    "enrichment",
];

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, Secrets::Required)
    }

    /// Loads and validates a config file, checking the secrets it names or not.
    pub fn load_with(path: &Path, secrets: Secrets) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.display().to_string(),
                line: 0,
                col: 0,
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::parse_with(
            &path.display().to_string(),
            &text,
            &base,
            Companions::Files,
            secrets,
        )
    }

    /// The embedded default, with relative paths resolved against `base` (the working
    /// directory for `earshot run` without `--config`).
    /// Its scoring and routing files are the copies built into the binary (the scorer's own
    /// and [`DEFAULT_ROUTING_TOML`]), so only the rules are read from `base`.
    pub fn embedded(base: &Path) -> Result<Config, ConfigErrors> {
        Config::parse_with(
            "<embedded default.toml>",
            DEFAULT_TOML,
            base,
            Companions::BuiltIn,
            Secrets::Required,
        )
    }

    /// Parses and validates config text; `base` resolves relative paths.
    pub fn parse(file: &str, text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        Config::parse_with(file, text, base, Companions::Files, Secrets::Required)
    }

    /// [`Config::parse`], with the scoring and routing files taken from `companions`.
    fn parse_with(
        file: &str,
        text: &str,
        base: &Path,
        companions: Companions,
        secrets: Secrets,
    ) -> Result<Config, ConfigErrors> {
        let mut report = Report {
            file,
            text,
            errors: Vec::new(),
            secrets,
        };
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            report.toml(e, "");
        }
        if !syntax.is_empty() {
            return Err(ConfigErrors(report.errors));
        }
        let mut config = Config {
            origin: file.to_string(),
            pipeline: PipelineSettings::default(),
            limits: LimitsSettings::default(),
            rules: RulesSettings::default(),
            admin: AdminSettings::default(),
            scoring: ScoringConfig::default(),
            customers: CustomersConfig::default(),
            outbox: OutboxSettings::default(),
            routing: RoutingSettings::default(),
            spikes: SpikeSettings::default(),
            sources: Vec::new(),
            queues: Vec::new(),
            routes: Vec::new(),
            cluster: None,
            enrichment: crate::enrich::EnrichSettings::default(),
        };
        let mut cluster_value = None;
        let mut enrichment_span = None;
        let mut source_spans = Vec::new();
        let mut queue_spans = Vec::new();
        let mut route_spans = Vec::new();
        let mut spikes_span = None;
        let mut limits_span = None;
        let mut admin_value = None;
        for (key, value) in root.get_ref().iter() {
            let name: &str = key.get_ref();
            match name {
                "pipeline" => section(&mut report, name, value, &mut config.pipeline),
                "limits" => {
                    limits_span = Some(key.span());
                    section(&mut report, name, value, &mut config.limits)
                }
                "rules" => section(&mut report, name, value, &mut config.rules),
                "admin" => {
                    admin_value = Some(value);
                    section(&mut report, name, value, &mut config.admin)
                }
                "scoring" => section(&mut report, name, value, &mut config.scoring),
                "customers" => section(&mut report, name, value, &mut config.customers),
                "outbox" => section(&mut report, name, value, &mut config.outbox),
                "enrichment" => {
                    enrichment_span = Some(key.span());
                    section(&mut report, name, value, &mut config.enrichment)
                }
                "routing" => section(&mut report, name, value, &mut config.routing),
                "spikes" => {
                    spikes_span = Some(key.span());
                    section(&mut report, name, value, &mut config.spikes)
                }
                "cluster" => {
                    cluster_value = Some(value);
                    let mut settings = None;
                    section(&mut report, name, value, &mut settings);
                    config.cluster = settings;
                }
                "source" => {
                    for (i, item) in array_items(&mut report, name, value) {
                        if let Some(s) = source(&mut report, i, item) {
                            config.sources.push(s);
                            source_spans.push(item.span());
                        }
                    }
                }
                "queue" | "route" => routing_items(
                    &mut report,
                    name,
                    value,
                    &mut config.queues,
                    &mut config.routes,
                    &mut queue_spans,
                    &mut route_spans,
                ),
                other => report.at(
                    Some(key.span()),
                    format!(
                        "unknown section `{other}`, expected one of: {}",
                        SECTIONS.join(", ")
                    ),
                ),
            }
        }
        config.validate(&mut report, &source_spans, limits_span);
        if let Some(problem) = config.enrichment.problem() {
            report.at(enrichment_span, problem);
        }
        validate_queues(&mut report, &config.queues, &queue_spans);
        let inline_routes = route_spans.len();
        config.routing.inline_routes = inline_routes;
        // Paths of this file resolve against its folder; the routing file's (below) against
        // the routing file's own folder.
        config.resolve_paths(base);
        for (key, problem) in config.admin.problems() {
            report.at(admin_value.map(|v| key_span(v, key)), problem);
        }
        if let Some(cluster) = &mut config.cluster {
            cluster.resolve_node();
            for (key, problem) in
                cluster.problems(|u| crate::tls::check_remote_url(u, &["tls"], &["nats"]))
            {
                report.at(cluster_value.map(|v| key_span(v, key)), problem);
            }
        }
        // The routing file's queues and routes join those of this file.
        let mut routing_errors = Vec::new();
        let mut file_queues = 0;
        if companions == Companions::BuiltIn {
            config.scoring.path = None;
        }
        let routing_path = match companions {
            Companions::Files => config.routing.path.clone(),
            Companions::BuiltIn => config.routing.path.take(),
        };
        if let Some(path) = routing_path {
            let inline: Vec<&str> = config.queues.iter().map(|q| q.id.as_str()).collect();
            let routing = match companions {
                Companions::Files => Routing::load_with(&path, &inline, secrets),
                Companions::BuiltIn => {
                    let folder = path.parent().unwrap_or(base);
                    Routing::parse_with(
                        DEFAULT_ROUTING_NAME,
                        DEFAULT_ROUTING_TOML,
                        folder,
                        &inline,
                        secrets,
                    )
                }
            };
            match routing {
                Ok(r) => {
                    file_queues = r.queues.len();
                    config.queues.extend(r.queues);
                    config.routes.extend(r.routes);
                }
                Err(e) => routing_errors = e.0,
            }
        }
        let ids: Vec<&str> = config.queues.iter().map(|q| q.id.as_str()).collect();
        for (i, id) in ids.iter().enumerate() {
            if ids[..i].contains(id) && i >= ids.len() - file_queues {
                report.at(
                    None,
                    format!("queue `{id}` is defined both here and in the routing file"),
                );
            }
        }
        validate_routes(
            &mut report,
            &config.routes[..inline_routes],
            &route_spans,
            &ids,
        );
        for problem in config.spikes.problems() {
            report.at(spikes_span.clone(), problem);
        }
        for q in &config.spikes.queues {
            if !ids.contains(&q.as_str()) {
                report.at(
                    spikes_span.clone(),
                    format!(
                        "spikes.queues names `{q}`, which is not a queue; {}",
                        if ids.is_empty() {
                            "no queue is defined".to_string()
                        } else {
                            format!("queues: {}", ids.join(", "))
                        }
                    ),
                );
            }
        }
        report.errors.extend(routing_errors);
        if report.errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(report.errors))
        }
    }

    /// Cross-field checks of the sources and settings; `source_spans` are the places of the
    /// sources.
    fn validate(
        &self,
        report: &mut Report<'_>,
        source_spans: &[Range<usize>],
        limits_span: Option<Range<usize>>,
    ) {
        let mut seen = Vec::new();
        for (s, span) in self.sources.iter().zip(source_spans) {
            let here = Some(span.clone());
            if seen.contains(&&s.id) {
                report.at(here.clone(), format!("source `{}` is defined twice", s.id));
            }
            seen.push(&s.id);
            // TLS for every remote connection; plain transports only to this machine.
            let (urls, secure, plain) = match &s.kind {
                SourceKind::Jetstream(o) => (vec![("url", o.url.as_str())], "wss", "ws"),
                SourceKind::HttpNdjson(o) => (vec![("url", o.url.as_str())], "https", "http"),
                SourceKind::Sse(o) => (vec![("url", o.url.as_str())], "https", "http"),
                SourceKind::Reddit(o) => {
                    for p in o.problems() {
                        report.at(here.clone(), format!("source `{}`: {p}", s.id));
                    }
                    (o.urls().to_vec(), "https", "http")
                }
                SourceKind::File(_) => continue,
            };
            for (field, url) in urls {
                match url::Url::parse(url) {
                    Err(e) => report.at(here.clone(), format!("source `{}`: {field}: {e}", s.id)),
                    Ok(u) => {
                        if let Err(m) = crate::tls::check_remote_url(&u, &[secure], &[plain]) {
                            report.at(here.clone(), format!("source `{}`: {field}: {m}", s.id));
                        }
                    }
                }
            }
        }
        if self.pipeline.channel_batches == 0 {
            report.at(None, "pipeline.channel_batches must be at least 1");
        }
        if self.limits.max_json_depth == 0 || self.limits.max_frame_bytes == 0 {
            report.at(
                limits_span.clone(),
                "limits.max_json_depth and limits.max_frame_bytes must be at least 1",
            );
        }
        if self.limits.max_frame_bytes > MAX_FRAME_BYTES {
            report.at(
                limits_span.clone(),
                format!(
                    "limits.max_frame_bytes must be at most {MAX_FRAME_BYTES} (64 MiB): a frame is held whole in memory, once per worker"
                ),
            );
        }
        if self.limits.max_json_depth > MAX_JSON_DEPTH {
            report.at(
                limits_span,
                format!(
                    "limits.max_json_depth must be at most {MAX_JSON_DEPTH}: no post format nests deeper, and deep nesting is how hostile input exhausts a parser"
                ),
            );
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() && p.as_os_str() != "-" {
                *p = base.join(&*p);
            }
        };
        self.rules.paths.iter_mut().for_each(resolve);
        for q in &mut self.queues {
            if let Some(p) = &mut q.path {
                resolve(p);
            }
            if let Some(p) = &mut q.template {
                resolve(p);
            }
        }
        resolve(&mut self.outbox.path);
        if let Some(tls) = &mut self.admin.tls {
            resolve(&mut tls.cert);
            resolve(&mut tls.key);
        }
        if let Some(p) = &mut self.routing.path {
            resolve(p);
        }
        for s in &mut self.sources {
            if let SourceKind::File(f) = &mut s.kind {
                resolve(&mut f.path);
            }
        }
        if let Some(p) = &mut self.scoring.path {
            resolve(p);
        }
        if let Some(p) = self.cluster.as_mut().and_then(|c| c.ca.as_mut()) {
            resolve(p);
        }
        if let Some(p) = &mut self.customers.path {
            resolve(p);
        }
    }
}

/// The queues and routes of a routing file (`rules/routing.toml`).
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// `[[queue]]`, relative paths resolved against the file's folder.
    pub queues: Vec<QueueConfig>,
    /// `[[route]]`.
    pub routes: Vec<RouteConfig>,
}

impl Routing {
    /// Loads and validates a routing file: every problem with `file:line:col`. Routes may name
    /// the file's own queues and the `known` ones (those of the config file).
    pub fn load(path: &Path, known: &[&str]) -> Result<Routing, ConfigErrors> {
        Routing::load_with(path, known, Secrets::Required)
    }

    fn load_with(path: &Path, known: &[&str], secrets: Secrets) -> Result<Routing, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                line: 0,
                col: 0,
                message: format!("cannot read the routing file: {e}"),
            }])
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Routing::parse_with(&file, &text, base, known, secrets)
    }

    /// Validates routing-file text named `file` in errors; relative paths in it resolve
    /// against `base`.
    pub fn parse(
        file: &str,
        text: &str,
        base: &Path,
        known: &[&str],
    ) -> Result<Routing, ConfigErrors> {
        Routing::parse_with(file, text, base, known, Secrets::Required)
    }

    fn parse_with(
        file: &str,
        text: &str,
        base: &Path,
        known: &[&str],
        secrets: Secrets,
    ) -> Result<Routing, ConfigErrors> {
        let mut report = Report {
            file,
            text,
            errors: Vec::new(),
            secrets,
        };
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            report.toml(e, "");
        }
        if !syntax.is_empty() {
            return Err(ConfigErrors(report.errors));
        }
        let mut routing = Routing::default();
        let (mut queue_spans, mut route_spans) = (Vec::new(), Vec::new());
        for (key, value) in root.get_ref().iter() {
            let name: &str = key.get_ref();
            match name {
                "queue" | "route" => routing_items(
                    &mut report,
                    name,
                    value,
                    &mut routing.queues,
                    &mut routing.routes,
                    &mut queue_spans,
                    &mut route_spans,
                ),
                other => report.at(
                    Some(key.span()),
                    format!(
                        "unknown section `{other}` in a routing file, expected `queue` or `route`"
                    ),
                ),
            }
        }
        validate_queues(&mut report, &routing.queues, &queue_spans);
        for q in &mut routing.queues {
            for p in [&mut q.path, &mut q.template].into_iter().flatten() {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        }
        let mut ids: Vec<&str> = routing.queues.iter().map(|q| q.id.as_str()).collect();
        ids.extend_from_slice(known);
        validate_routes(&mut report, &routing.routes, &route_spans, &ids);
        if report.errors.is_empty() {
            Ok(routing)
        } else {
            Err(ConfigErrors(report.errors))
        }
    }
}

/// Deserializes the `[[queue]]` or `[[route]]` array `value`, keeping each item's place.
#[allow(clippy::too_many_arguments)]
fn routing_items(
    report: &mut Report<'_>,
    name: &str,
    value: &Spanned<DeValue<'_>>,
    queues: &mut Vec<QueueConfig>,
    routes: &mut Vec<RouteConfig>,
    queue_spans: &mut Vec<Range<usize>>,
    route_spans: &mut Vec<Range<usize>>,
) {
    for (i, item) in array_items(report, name, value) {
        if name == "queue" {
            if let Some(q) = de::<QueueConfig>(report, &format!("queue[{i}]"), item) {
                queues.push(q);
                queue_spans.push(item.span());
            }
        } else if let Some(r) = de::<RouteConfig>(report, &format!("route[{i}]"), item) {
            routes.push(r);
            route_spans.push(item.span());
        }
    }
}

/// Checks each queue on its own: ids, endpoints (TLS), secrets and credentials present in the
/// environment, settings in range.
fn validate_queues(report: &mut Report<'_>, queues: &[QueueConfig], spans: &[Range<usize>]) {
    let mut seen = Vec::new();
    for (q, span) in queues.iter().zip(spans) {
        let here = Some(span.clone());
        let field = format!("queue `{}`", q.id);
        if !is_id(&q.id) {
            report.at(
                here.clone(),
                format!("{field}: an id is lowercase letters, digits, `-` and `_`"),
            );
        }
        if seen.contains(&&q.id) {
            report.at(here.clone(), format!("{field} is defined twice"));
        }
        seen.push(&q.id);
        match q.sink {
            SinkKind::Webhook => {
                match q.url.as_deref().map(url::Url::parse) {
                    None => report.at(
                        here.clone(),
                        format!("{field}: a webhook queue needs `url`"),
                    ),
                    Some(Err(e)) => report.at(here.clone(), format!("{field}: url: {e}")),
                    Some(Ok(u)) => {
                        if let Err(m) = crate::tls::check_remote_url(&u, &["https"], &["http"]) {
                            report.at(here.clone(), format!("{field}: url: {m}"));
                        }
                    }
                }
                match &q.secret_env {
                    None if q.format.needs_signature() => report.at(
                        here.clone(),
                        format!("{field}: a {} webhook queue needs `secret_env`, the name of the environment variable holding its signing secret", q.format),
                    ),
                    None => {}
                    Some(_) if report.secrets == Secrets::Unchecked => {}
                    Some(var) => match std::env::var(var) {
                        Err(_) => report.at(
                            here.clone(),
                            format!("{field}: environment variable `{var}` (secret_env) is not set"),
                        ),
                        Ok(v) => {
                            if let Err(e) = crate::sink::signature::SigningKey::from_secret(&v) {
                                report.at(here.clone(), format!("{field}: `{var}`: {e}"));
                            }
                        }
                    },
                }
            }
            SinkKind::File => {
                if q.path.is_none() {
                    report.at(here.clone(), format!("{field}: a file queue needs `path`"));
                }
            }
            SinkKind::Stdout => {}
            SinkKind::Nats => validate_nats_queue(report, q, &here, &field),
        }
        if q.sink != SinkKind::Nats
            && (q.subject.is_some() || q.nats_auth.is_some() || q.ca.is_some())
        {
            report.at(
                here.clone(),
                format!("{field}: subject, nats_auth and ca apply to nats queues only"),
            );
        }
        if q.max_attempts == 0 || q.concurrency == 0 {
            report.at(
                here.clone(),
                format!("{field}: max_attempts and concurrency must be at least 1"),
            );
        }
        if q.retry_schedule.is_empty() || q.retry_schedule.iter().any(|d| d.is_zero()) {
            report.at(
                here.clone(),
                format!("{field}: retry_schedule needs at least one duration, none of them 0"),
            );
        }
        if q.timeout.is_zero() || q.breaker_failures == 0 || q.breaker_cooldown.is_zero() {
            report.at(
                here.clone(),
                format!("{field}: timeout, breaker_failures and breaker_cooldown must be above 0"),
            );
        }
        if q.sink != SinkKind::Webhook
            && (q.format != crate::sink::payload::PayloadFormat::Generic
                || q.template.is_some()
                || q.auth.is_some())
        {
            report.at(
                here.clone(),
                format!("{field}: format, template and auth apply to webhook queues only"),
            );
        }
        if let Err(errors) = q.noise.validate() {
            for e in errors {
                report.at(here.clone(), format!("{field}: noise: {e}"));
            }
        }
        if let Some(m) = q.cases.problem() {
            report.at(here.clone(), format!("{field}: {m}"));
        }
        if q.sink != SinkKind::Webhook && q.cases.follow_ups == Some(true) {
            report.at(
                here.clone(),
                format!("{field}: cases.follow_ups applies to webhook queues only"),
            );
        }
        if let Some(auth) = &q.auth {
            let mut problems = auth.problems();
            if problems.is_empty() && report.secrets == Secrets::Required {
                problems = auth.secret_problems();
            }
            for m in problems {
                report.at(here.clone(), format!("{field}: {m}"));
            }
        }
    }
}

/// A `nats` queue: server URLs (TLS unless on loopback), a subject to publish to, its
/// credentials in the environment, its CA file readable.
fn validate_nats_queue(
    report: &mut Report<'_>,
    q: &QueueConfig,
    here: &Option<Range<usize>>,
    field: &str,
) {
    match q.url.as_deref() {
        None => report.at(
            here.clone(),
            format!("{field}: a nats queue needs `url` (`tls://host:4222`, comma-separated for several servers)"),
        ),
        Some(urls) => {
            // The URLs are never repeated in a message: one may hold credentials.
            for (n, u) in urls.split(',').map(str::trim).enumerate() {
                let which = format!("{field}: url {}", n + 1);
                match url::Url::parse(u) {
                    Err(e) => report.at(here.clone(), format!("{which}: {e}")),
                    Ok(parsed) => {
                        if let Err(m) = crate::tls::check_remote_url(&parsed, &["tls"], &["nats"]) {
                            report.at(here.clone(), format!("{which}: {m}"));
                        }
                        if !parsed.username().is_empty() || parsed.password().is_some() {
                            report.at(
                                here.clone(),
                                format!("{which}: credentials in a URL end up in files and logs; put them in an environment variable named by nats_auth"),
                            );
                        }
                    }
                }
            }
        }
    }
    match q.subject.as_deref() {
        None => report.at(
            here.clone(),
            format!("{field}: a nats queue needs `subject`, the subject its stream takes"),
        ),
        Some(subject) => {
            if let Err(m) = crate::sink::nats::check_subject(subject) {
                report.at(here.clone(), format!("{field}: subject: {m}"));
            }
        }
    }
    if let Some(auth) = &q.nats_auth {
        if report.secrets == Secrets::Required && std::env::var(&auth.env).is_err() {
            report.at(
                here.clone(),
                format!(
                    "{field}: environment variable `{}` (nats_auth.env) is not set",
                    auth.env
                ),
            );
        }
    }
    if let Some(ca) = &q.ca {
        if !ca.is_file() {
            report.at(
                here.clone(),
                format!("{field}: ca `{}` is not a readable file", ca.display()),
            );
        }
    }
    if q.secret_env.is_some() {
        report.at(
            here.clone(),
            format!("{field}: secret_env signs webhooks; a nats queue's stream is reached with nats_auth"),
        );
    }
}

/// Checks that every route names a known queue (`ids`).
fn validate_routes(
    report: &mut Report<'_>,
    routes: &[RouteConfig],
    spans: &[Range<usize>],
    ids: &[&str],
) {
    for (r, span) in routes.iter().zip(spans) {
        if !ids.contains(&r.queue.as_str()) {
            report.at(
                Some(span.clone()),
                format!("route: unknown queue `{}`", r.queue),
            );
        }
    }
}

fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The place of `key`'s value in the table `value`, or of the table itself when the key
/// is not written there (its default is what is wrong).
fn key_span(value: &Spanned<DeValue<'_>>, key: &str) -> Range<usize> {
    value
        .get_ref()
        .as_table()
        .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == key))
        .map(|(_, v)| v.span())
        .unwrap_or_else(|| value.span())
}

fn de<T: DeserializeOwned>(
    report: &mut Report<'_>,
    field: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<T> {
    let mut value = value.clone();
    value.get_mut().make_owned();
    match T::deserialize(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            report.toml(&e, field);
            None
        }
    }
}

fn section<T: DeserializeOwned>(
    report: &mut Report<'_>,
    name: &str,
    value: &Spanned<DeValue<'_>>,
    out: &mut T,
) {
    if !value.get_ref().is_table() {
        report.at(
            Some(value.span()),
            format!("`{name}` must be a table (`[{name}]`)"),
        );
        return;
    }
    if let Some(v) = de(report, name, value) {
        *out = v;
    }
}

fn array_items<'v, 'i>(
    report: &mut Report<'_>,
    name: &str,
    value: &'v Spanned<DeValue<'i>>,
) -> Vec<(usize, &'v Spanned<DeValue<'i>>)> {
    match value.get_ref().as_array() {
        Some(items) => items.iter().enumerate().collect(),
        None => {
            report.at(
                Some(value.span()),
                format!("`{name}` must be an array of tables (`[[{name}]]`)"),
            );
            Vec::new()
        }
    }
}

/// The keys every `[[source]]` has besides its transport's own options.
const SOURCE_COMMON: &[&str] = &["id", "type", "format", "fields"];

fn source(
    report: &mut Report<'_>,
    index: usize,
    item: &Spanned<DeValue<'_>>,
) -> Option<SourceConfig> {
    let Some(table) = item.get_ref().as_table() else {
        report.at(
            Some(item.span()),
            format!("source[{index}] must be a table"),
        );
        return None;
    };
    let get = |k: &str| {
        table
            .iter()
            .find(|(key, _)| key.get_ref() == k)
            .map(|(_, v)| v)
    };
    let str_of = |report: &mut Report<'_>, k: &str| -> Option<String> {
        let v = get(k)?;
        match v.get_ref().as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                report.at(
                    Some(v.span()),
                    format!("source[{index}].{k} must be a string"),
                );
                None
            }
        }
    };
    let id = str_of(report, "id");
    let field = match &id {
        Some(id) => format!("source `{id}`"),
        None => {
            report.at(Some(item.span()), format!("source[{index}] needs an `id`"));
            format!("source[{index}]")
        }
    };
    let Some(kind_name) = str_of(report, "type") else {
        report.at(
            Some(item.span()),
            format!("{field} needs a `type`: jetstream, http_ndjson, sse, reddit or file"),
        );
        return None;
    };
    // The transport's options are everything but the common keys.
    let mut rest: DeTable<'_> = DeTable::new();
    for (k, v) in table.iter() {
        if !SOURCE_COMMON.contains(&k.get_ref().as_ref()) {
            rest.insert(k.clone(), v.clone());
        }
    }
    let rest = Spanned::new(item.span(), DeValue::Table(rest));
    let kind = match kind_name.as_str() {
        "jetstream" => de(report, &field, &rest).map(SourceKind::Jetstream),
        "http_ndjson" => de(report, &field, &rest).map(SourceKind::HttpNdjson),
        "sse" => de(report, &field, &rest).map(SourceKind::Sse),
        "reddit" => de(report, &field, &rest).map(SourceKind::Reddit),
        "file" => de(report, &field, &rest).map(SourceKind::File),
        other => {
            let span = get("type").map(|v| v.span());
            report.at(
                span,
                format!(
                    "{field}: unknown type `{other}`, expected jetstream, http_ndjson, sse, reddit or file"
                ),
            );
            None
        }
    }?;
    let format = match str_of(report, "format").as_deref() {
        None => match &kind {
            SourceKind::Jetstream(_) => FormatChoice::Fixed(Format::Jetstream),
            SourceKind::Sse(_) => FormatChoice::Fixed(Format::Mastodon),
            SourceKind::Reddit(_) => FormatChoice::Fixed(Format::Reddit),
            SourceKind::HttpNdjson(_) => FormatChoice::Fixed(Format::XV2),
            SourceKind::File(_) => FormatChoice::Auto,
        },
        Some("auto") => FormatChoice::Auto,
        Some("generic") => match get("fields") {
            Some(v) => FormatChoice::Fixed(Format::Generic(de::<GenericFields>(
                report,
                &format!("{field}.fields"),
                v,
            )?)),
            None => {
                report.at(
                    Some(item.span()),
                    format!("{field}: format `generic` needs a `[source.fields]` table"),
                );
                return None;
            }
        },
        Some(name) => match Format::from_name(name) {
            Some(f) => FormatChoice::Fixed(f),
            None => {
                report.at(
                    get("format").map(|v| v.span()),
                    format!("{field}: unknown format `{name}`, expected auto, jetstream, x_v2, x_v1, x_activity, mastodon, reddit or generic"),
                );
                return None;
            }
        },
    };
    if let (Some(id), true) = (&id, id.as_deref().is_some_and(|i| !is_id(i))) {
        report.at(
            get("id").map(|v| v.span()),
            format!("source id `{id}`: use lowercase letters, digits, `-` and `_`"),
        );
    }
    let id = id?;
    let mut kind = kind;
    if let SourceKind::Reddit(o) = &mut kind {
        o.id = id.clone();
    }
    Some(SourceConfig { id, format, kind })
}
