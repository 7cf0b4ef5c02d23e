//! `earshot x-rules diff | apply` against a loopback stand-in of X's filtered-stream rules
//! endpoint that behaves as X documents it: bearer auth, `GET` pages of `{data, meta}`,
//! `POST {"add": […]}` / `{"delete": {"ids": […]}}` with `dry_run`, `meta.summary`, `errors`
//! for invalid and duplicate values, and a cap on the number of rules.

use std::collections::HashMap;
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::support;

const TOKEN: &str = "AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid%2BULvsea4JtiGRiSDSJSI";

/// X's rules for one stream, and what the stand-in saw.
struct X {
    /// (id, value, tag), in creation order.
    rules: Mutex<Vec<(String, String, Option<String>)>>,
    next_id: Mutex<u64>,
    max_rules: usize,
    max_length: usize,
    /// Requests that changed something (not dry runs).
    changes: Mutex<Vec<String>>,
    dry_runs: Mutex<usize>,
    /// After some change, no rule tagged `earshot` was left.
    uncovered: Mutex<bool>,
    violations: Mutex<Vec<String>>,
}

impl X {
    fn new(max_length: usize) -> Arc<X> {
        let x = X {
            rules: Mutex::new(vec![
                (
                    "1585998810213163008".into(),
                    "\"acme\" OR \"old product\"".into(),
                    Some("earshot".into()),
                ),
                (
                    "1585998810213163009".into(),
                    "from:acmehq -is:retweet".into(),
                    Some("marketing".into()),
                ),
            ]),
            next_id: Mutex::new(1_586_000_000_000_000_000),
            max_rules: 1000,
            max_length,
            changes: Mutex::new(Vec::new()),
            dry_runs: Mutex::new(0),
            uncovered: Mutex::new(false),
            violations: Mutex::new(Vec::new()),
        };
        Arc::new(x)
    }

    fn values(&self) -> Vec<(String, Option<String>)> {
        self.rules
            .lock()
            .unwrap()
            .iter()
            .map(|(_, v, t)| (v.clone(), t.clone()))
            .collect()
    }
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [("content-type", "application/problem+json")],
        json!({"title": title, "detail": detail, "type": "about:blank", "status": status.as_u16()})
            .to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

const SENT: &str = "2026-12-07T20:00:00.000Z";

async fn list(State(x): State<Arc<X>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if !authorized(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let max: usize = params
        .get("max_results")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    if !(1..=1000).contains(&max) {
        x.violations
            .lock()
            .unwrap()
            .push(format!("max_results {max}"));
    }
    // Pages of one rule, so that paging is exercised.
    let rules = x.rules.lock().unwrap().clone();
    let start: usize = params
        .get("pagination_token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = rules
        .iter()
        .skip(start)
        .take(1)
        .map(|(id, value, tag)| match tag {
            Some(t) => json!({"id": id, "value": value, "tag": t}),
            None => json!({"id": id, "value": value}),
        })
        .collect();
    let mut meta = json!({"sent": SENT, "result_count": page.len()});
    if start + 1 < rules.len() {
        meta["next_token"] = json!((start + 1).to_string());
    }
    if page.is_empty() {
        return json!({ "meta": meta }).to_string().into_response();
    }
    json!({"data": page, "meta": meta})
        .to_string()
        .into_response()
}

async fn change(
    State(x): State<Arc<X>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: String,
) -> Response {
    if !authorized(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        x.violations
            .lock()
            .unwrap()
            .push("POST without application/json".into());
    }
    let dry_run = q.as_deref() == Some("dry_run=true");
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "One or more parameters to your request was invalid.",
        );
    };
    let mut rules = x.rules.lock().unwrap();
    let mut errors = Vec::new();
    let response = match (body.get("add"), body.get("delete")) {
        (Some(Value::Array(add)), None) => {
            let mut created = Vec::new();
            for item in add {
                let value = item["value"].as_str().unwrap_or_default().to_string();
                let tag = item["tag"].as_str().map(str::to_string);
                if value.is_empty() || value.encode_utf16().count() > x.max_length {
                    errors.push(json!({"value": value, "details": [format!("Rule must be at most {} characters", x.max_length)],
                        "title": "Invalid Rule", "type": "https://api.twitter.com/2/problems/invalid-rules"}));
                } else if let Some((id, _, _)) = rules.iter().find(|(_, v, _)| *v == value) {
                    errors.push(json!({"value": value, "id": id, "title": "DuplicateRule",
                        "type": "https://api.twitter.com/2/problems/duplicate-rules"}));
                } else {
                    created.push((value, tag));
                }
            }
            if rules.len() + created.len() > x.max_rules {
                return problem(
                    StatusCode::FORBIDDEN,
                    "RulesCapExceeded",
                    "Rule creation would exceed the maximum number of rules allowed.",
                );
            }
            let mut data = Vec::new();
            if !dry_run {
                for (value, tag) in &created {
                    let mut next = x.next_id.lock().unwrap();
                    *next += 1;
                    rules.push((next.to_string(), value.clone(), tag.clone()));
                    data.push(json!({"id": next.to_string(), "value": value, "tag": tag}));
                }
            }
            let n = created.len();
            let mut answer = json!({"meta": {"sent": SENT, "summary": {"created": n, "not_created": errors.len(),
                "valid": n, "invalid": errors.len()}}});
            if !data.is_empty() {
                answer["data"] = json!(data);
            }
            (StatusCode::CREATED, answer)
        }
        (None, Some(delete)) => {
            let ids: Vec<String> = delete["ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|i| i.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let mut deleted = 0;
            for id in &ids {
                match rules.iter().position(|(i, _, _)| i == id) {
                    Some(at) => {
                        if !dry_run {
                            rules.remove(at);
                        }
                        deleted += 1;
                    }
                    None => errors.push(json!({"id": id, "title": "Not Found Error", "detail": format!("Could not find rule with id {id}"),
                        "type": "https://api.twitter.com/2/problems/resource-not-found"})),
                }
            }
            (
                StatusCode::OK,
                json!({"meta": {"sent": SENT, "summary": {"deleted": deleted, "not_deleted": errors.len()}}}),
            )
        }
        _ => {
            return problem(
                StatusCode::BAD_REQUEST,
                "Invalid Request",
                "One of add or delete is required.",
            );
        }
    };
    if dry_run {
        *x.dry_runs.lock().unwrap() += 1;
    } else {
        x.changes.lock().unwrap().push(body.to_string());
        if !rules
            .iter()
            .any(|(_, _, t)| t.as_deref() == Some("earshot"))
        {
            *x.uncovered.lock().unwrap() = true;
        }
    }
    let (status, mut answer) = response;
    if !errors.is_empty() {
        answer["errors"] = json!(errors);
    }
    (status, answer.to_string()).into_response()
}

async fn stand_in(x: Arc<X>) -> String {
    let app = axum::Router::new()
        .route(
            "/2/tweets/search/stream/rules",
            axum::routing::get(list).post(change),
        )
        .with_state(x);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A folder with a config whose X source is the stand-in at `base`, and rules: a brand with
/// a 300-product terms file, a rule only a prefix term selects (a gap), and a rule with
/// exclusions and a language.
fn setup(base: &str) -> std::path::PathBuf {
    let dir = support::scratch_dir();
    let products: Vec<String> = (0..300).map(|i| format!("Rocket Model {i:03}")).collect();
    std::fs::write(dir.join("products.txt"), products.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("acme.rules"),
        "brand acme \"Acme Corp\"\n\
         \x20 terms products.txt\n\
         \x20 rule acme-mentions: (acme OR \"acme corp\" OR #acme OR @acmehq) -coyote lang:en\n\
         \x20 rule acme-refunds: refund*\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("earshot.toml"),
        format!(
            "[rules]\npaths = [\"acme.rules\"]\nwatch = \"0\"\n\
             [[source]]\nid = \"x\"\ntype = \"http_ndjson\"\n\
             url = \"{base}/2/tweets/search/stream?expansions=author_id\"\n\
             bearer_token_env = \"EARSHOT_TEST_X_TOKEN\"\n"
        ),
    )
    .unwrap();
    dir
}

fn x_rules(dir: &std::path::Path, args: &[&str]) -> Output {
    support::earshot()
        .arg("x-rules")
        .args(args)
        .arg("--config")
        .arg(dir.join("earshot.toml"))
        .env("EARSHOT_TEST_X_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_rules_diff_then_apply_keeps_x_in_step_with_the_rules() {
    let x = X::new(1024);
    let base = stand_in(x.clone()).await;
    let dir = setup(&base);
    let before = x.values();

    let diff = x_rules(&dir, &["diff", "--json"]);
    assert!(diff.status.success(), "{}", text(&diff));
    let plan: Value = serde_json::from_slice(&diff.stdout).expect("one JSON document");
    let adds = plan["add"].as_array().unwrap();
    assert!(
        adds.len() >= 5,
        "300 products of ~15 characters need several rules: {plan}"
    );
    assert_eq!(
        plan["delete"][0]["id"], "1585998810213163008",
        "the stale earshot rule"
    );
    assert_eq!(plan["others"], 1, "the marketing rule is not earshot's");
    assert_eq!(plan["gaps"][0]["rule"], "acme-refunds");
    assert!(
        plan["gaps"][0]["location"]
            .as_str()
            .unwrap()
            .ends_with("acme.rules:4:3"),
        "{plan}"
    );
    let wanted: Vec<String> = adds
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let joined = wanted.join(" OR ");
    for op in [
        "\"acme\"",
        "\"acme corp\"",
        "#acme",
        "@acmehq",
        "\"Rocket Model 042\"",
    ] {
        assert!(joined.contains(op), "{op} in {joined}");
    }
    assert!(
        !joined.contains("coyote") && !joined.contains("lang:"),
        "{joined}"
    );
    assert_eq!(x.values(), before, "diff changes nothing");

    let refused = x_rules(&dir, &["apply"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("--allow-gaps"),
        "{}",
        text(&refused)
    );
    assert_eq!(x.values(), before, "nothing applied with gaps");

    let dry = x_rules(&dir, &["apply", "--allow-gaps", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(*x.dry_runs.lock().unwrap() >= 1);
    assert_eq!(x.values(), before, "a dry run changes nothing");

    let applied = x_rules(&dir, &["apply", "--allow-gaps"]);
    assert!(applied.status.success(), "{}", text(&applied));
    let now = x.values();
    let mut earshot: Vec<String> = now
        .iter()
        .filter(|(_, t)| t.as_deref() == Some("earshot"))
        .map(|(v, _)| v.clone())
        .collect();
    earshot.sort();
    let mut wanted_sorted = wanted.clone();
    wanted_sorted.sort();
    assert_eq!(earshot, wanted_sorted);
    assert!(now.contains(&("from:acmehq -is:retweet".into(), Some("marketing".into()))));
    assert!(
        !*x.uncovered.lock().unwrap(),
        "added before deleting: never without a rule"
    );
    let changes = x.changes.lock().unwrap().clone();
    assert!(
        changes.first().unwrap().starts_with("{\"add\""),
        "{changes:?}"
    );

    let again = x_rules(&dir, &["diff"]);
    assert!(text(&again).contains("in step:"), "{}", text(&again));
    let noop = x_rules(&dir, &["apply", "--allow-gaps"]);
    assert!(text(&noop).contains("nothing to do"), "{}", text(&noop));
    assert_eq!(x.changes.lock().unwrap().len(), changes.len());
    assert_eq!(*x.violations.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_x_refuses_in_its_dry_run_change_nothing() {
    // The stand-in takes 512 characters (X's smaller tiers); told 2048, earshot packs longer.
    let x = X::new(512);
    let base = stand_in(x.clone()).await;
    let dir = setup(&base);
    let before = x.values();
    let out = x_rules(
        &dir,
        &["apply", "--allow-gaps", "--max-rule-length", "2048"],
    );
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("X refuses: Invalid Rule: Rule must be at most 512 characters"),
        "{said}"
    );
    assert!(said.contains("nothing was changed"), "{said}");
    assert_eq!(x.values(), before);
    assert!(x.changes.lock().unwrap().is_empty());

    // A wrong token: X's 401, named.
    let out = support::earshot()
        .args(["x-rules", "diff", "--config"])
        .arg(dir.join("earshot.toml"))
        .env("EARSHOT_TEST_X_TOKEN", "not-the-token")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("answered HTTP 401: Unauthorized"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("not-the-token"));

    // Two X sources: the command asks which, and names them.
    let config = dir.join("earshot.toml");
    let mut two = std::fs::read_to_string(&config).unwrap();
    two += &format!(
        "[[source]]\nid = \"x-eu\"\ntype = \"http_ndjson\"\n\
         url = \"{base}/2/tweets/search/stream\"\nbearer_token_env = \"EARSHOT_TEST_X_TOKEN\"\n"
    );
    std::fs::write(&config, two).unwrap();
    let out = x_rules(&dir, &["diff"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("several X sources (`x`, `x-eu`): name one with --source"),
        "{}",
        text(&out)
    );
    let out = x_rules(&dir, &["diff", "--source", "x-eu"]);
    assert!(out.status.success(), "{}", text(&out));
}
