//! The example routing file (`config/routing.example.toml`) loads as it is: its queues and
//! routes parse and validate, every webhook queue's payload template compiles with the vars
//! the queue sets, every noise setting is in range, and the routes name brands of the example
//! rules. A config naming it compiles as `earshot check` compiles one.

use std::path::{Path, PathBuf};
use std::sync::Once;

use earshot::config::{Config, Routing};
use earshot::rules::RuleSet;
use earshot::sink::payload::Payload;
use earshot::sink::SinkKind;
use earshot::stage::route::Router;

/// The environment variables the example names (signing secret, API credentials), with
/// dummy values.
const ENV: &[(&str, &str)] = &[
    (
        "EARSHOT_WEBHOOK_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    ("ZENDESK_API_AUTH", "agent@acme.example/token:dummy"),
    ("HUBSPOT_TOKEN", "pat-na1-dummy"),
];

/// Sets [`ENV`], once, before any test reads it.
fn set_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for (name, value) in ENV {
            std::env::set_var(name, value);
        }
    });
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example() -> PathBuf {
    repo().join("config/routing.example.toml")
}

#[test]
fn routing_example_loads_with_its_payloads_and_noise_settings() {
    set_env();
    let routing = Routing::load(&example(), &[]).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = routing.queues.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["support", "crisis", "sales", "archive"]);
    assert_eq!(routing.routes.len(), 6);
    let sinks: Vec<SinkKind> = routing.queues.iter().map(|q| q.sink).collect();
    assert_eq!(
        sinks,
        [
            SinkKind::Webhook,
            SinkKind::Webhook,
            SinkKind::Webhook,
            SinkKind::File
        ]
    );
    for q in &routing.queues {
        if q.sink == SinkKind::Webhook {
            Payload::load(q.format, q.template.as_deref(), &q.vars)
                .unwrap_or_else(|e| panic!("queue `{}`: {e}", q.id));
        }
        q.noise
            .validate()
            .unwrap_or_else(|e| panic!("queue `{}`: noise: {e:?}", q.id));
    }
    // Every route names a queue of the file and a brand kind, category, author class or
    // action that exists; brand ids are checked against the example rules.
    let rules = RuleSet::load(&[repo().join("rules")]).unwrap_or_else(|e| panic!("{e}"));
    let queues: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    if let Err(errors) = Router::build(&routing.routes, &queues, &rules) {
        panic!("{errors:?}");
    }
}

#[test]
fn a_config_naming_the_example_compiles() {
    set_env();
    let text = format!(
        "[rules]\npaths = [\"rules\"]\n[routing]\npath = \"{}\"\n",
        Path::new("config/routing.example.toml").display()
    );
    let config = Config::parse("example.toml", &text, &repo()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.queues.len(), 4);
    assert_eq!(config.routes.len(), 6);
    earshot::compile::compile(&config).unwrap_or_else(|e| panic!("{e}"));
}

/// A routing file in a folder below the config's: its paths resolve against its own folder,
/// its routes may name the config's queues, and its mistakes carry its own file:line:col.
#[test]
fn a_routing_file_resolves_its_paths_once_and_reports_its_own_places() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir_all(sub.join("rules")).unwrap();
    std::fs::write(
        sub.join("rules/routing.toml"),
        "[[queue]]\nid = \"archive\"\nsink = \"file\"\npath = \"archive.ndjson\"\n\n\
         [[route]]\nqueue = \"archive\"\n[[route]]\nqueue = \"inline\"\n",
    )
    .unwrap();
    let config = "[routing]\npath = \"rules/routing.toml\"\n\n\
                  [[queue]]\nid = \"inline\"\nsink = \"stdout\"\n";
    let parsed = Config::parse("sub/earshot.toml", config, &sub).unwrap_or_else(|e| panic!("{e}"));
    let archive = parsed.queues.iter().find(|q| q.id == "archive").unwrap();
    assert_eq!(
        archive.path.as_deref(),
        Some(sub.join("rules/archive.ndjson").as_path()),
        "resolved against the routing file's folder"
    );
    assert_eq!(parsed.routes.len(), 2);

    std::fs::write(
        sub.join("rules/routing.toml"),
        "[[queue]]\nid = \"archive\"\nsink = \"fax\"\n",
    )
    .unwrap();
    let errors = Config::parse("sub/earshot.toml", config, &sub)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("routing.toml:3:8: queue[0]: unknown variant `fax`"),
        "{errors}"
    );
}

#[test]
fn the_embedded_default_takes_its_scoring_and_routing_from_the_binary() {
    // Loaded in a folder that has neither file: only the rules path points into it.
    let dir = tempfile::tempdir().unwrap();
    let config = Config::embedded(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.rules.paths, [dir.path().join("rules")]);
    assert_eq!(config.scoring.path, None, "the scorer's built-in copy");
    assert_eq!(config.routing.path, None, "nothing to read again on reload");
    let ids: Vec<&str> = config.queues.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(ids, ["stdout"]);
    assert_eq!(config.queues[0].sink, SinkKind::Stdout);
    assert_eq!(config.routes.len(), 1);
    // The built-in copy is the repository's routing file.
    let file = Routing::load(&repo().join("rules/routing.toml"), &[]).unwrap();
    assert_eq!(config.queues, file.queues);
    assert_eq!(config.routes, file.routes);
}

/// `config/default.toml` says "every key below shows its default value": each settings
/// section it writes parses to exactly what earshot assumes when the section is left out.
/// `[scoring]` and `[routing]` are the exception the file states: they name the shipped
/// files, whose built-in copies the embedded default uses; `[enrichment]` is written to turn
/// it on (off when left out), every other key at its default.
#[test]
fn default_toml_states_exactly_the_built_in_defaults() {
    set_env();
    let text = std::fs::read_to_string(repo().join("config/default.toml")).expect("read");
    assert_eq!(
        text,
        earshot::config::DEFAULT_TOML,
        "the embedded copy is the file"
    );
    let shipped = Config::parse("default.toml", &text, &repo()).unwrap_or_else(|e| panic!("{e}"));
    let mut doc: toml::Table = toml::from_str(&text).expect("toml");
    let written: Vec<String> = doc.keys().cloned().collect();
    for section in ["pipeline", "limits", "rules", "admin", "outbox"] {
        assert!(
            written.iter().any(|k| k == section),
            "[{section}] is written"
        );
        doc.remove(section);
    }
    let bare = toml::to_string(&doc).expect("toml");
    let assumed = Config::parse("bare.toml", &bare, &repo()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(shipped.pipeline, assumed.pipeline, "[pipeline]");
    assert_eq!(shipped.limits, assumed.limits, "[limits]");
    assert_eq!(shipped.rules, assumed.rules, "[rules]");
    assert_eq!(shipped.admin, assumed.admin, "[admin]");
    assert_eq!(shipped.outbox, assumed.outbox, "[outbox]");
    assert_eq!(
        shipped.scoring.path.as_deref(),
        Some(repo().join("rules/scoring.toml").as_path())
    );
    assert_eq!(
        shipped.routing.path.as_deref(),
        Some(repo().join("rules/routing.toml").as_path())
    );
    assert_eq!(
        shipped.enrichment,
        earshot::enrich::EnrichSettings {
            enabled: true,
            ..Default::default()
        },
        "[enrichment]"
    );
    // Nothing else is written but the sources.
    let mut rest: Vec<&str> = written.iter().map(String::as_str).collect();
    rest.retain(|k| {
        ![
            "pipeline",
            "limits",
            "rules",
            "admin",
            "outbox",
            "scoring",
            "routing",
            "enrichment",
        ]
        .contains(k)
    });
    assert_eq!(rest, ["source"]);
}

#[test]
fn a_reddit_source_loads_with_its_defaults_and_its_mistakes_are_placed() {
    use earshot::config::{FormatChoice, SourceKind};
    let text = "[[source]]\nid = \"reddit\"\ntype = \"reddit\"\nsubreddits = [\"espresso\"]\n\
                client_id_env = \"REDDIT_CLIENT_ID\"\nclient_secret_env = \"REDDIT_CLIENT_SECRET\"\n";
    let parsed = Config::parse("r.toml", text, &repo()).unwrap_or_else(|e| panic!("{e}"));
    let source = &parsed.sources[0];
    assert!(matches!(
        source.format,
        FormatChoice::Fixed(earshot::stage::decode::Format::Reddit)
    ));
    let SourceKind::Reddit(o) = &source.kind else {
        panic!("a reddit source: {:?}", source.kind);
    };
    assert_eq!(o.id, "reddit");
    assert_eq!(o.api_url, "https://oauth.reddit.com");
    assert_eq!(o.poll_interval, std::time::Duration::from_secs(5));
    assert_eq!(o.listings.len(), 2);

    let bad = "\n[[source]]\nid = \"reddit\"\ntype = \"reddit\"\nsubreddits = [\"r/espresso\"]\n\
               client_id_env = \"A\"\nclient_secret_env = \"B\"\napi_url = \"http://reddit.example\"\n\
               max_pages = 40\n";
    let errors = Config::parse("r.toml", bad, &repo())
        .unwrap_err()
        .to_string();
    for want in [
        "r.toml:2:1: source `reddit`: subreddits: `r/espresso` is not a subreddit name",
        "r.toml:2:1: source `reddit`: max_pages must be 1 to 10",
        "r.toml:2:1: source `reddit`: api_url:",
    ] {
        assert!(errors.contains(want), "{want} in {errors}");
    }
}
