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

use crate::support;

/// The environment variables the example names (signing secret, API credentials), with
/// dummy values.
const ENV: &[(&str, &str)] = &[
    ("EARSHOT_WEBHOOK_SECRET", support::SECRET),
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
    let rules = RuleSet::load(&[support::rules_dir()]).unwrap_or_else(|e| panic!("{e}"));
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
    earshot::app::compile(&config).unwrap_or_else(|e| panic!("{e}"));
}
