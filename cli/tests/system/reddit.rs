//! `earshot run` with a live Reddit source against a loopback stand-in of Reddit's API: the
//! submissions become mentions, and after a kill -9 the restart resumes from the checkpoint in
//! the outbox store, not from its backfill.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::support;

const ID: &str = "p-jcoLKBynTLew";
const SECRET: &str = "gko_LXELoV07ZBNUXrvWZfzE3aI";
const AGENT: &str = "server:com.example.listening:1.0 (by /u/example)";
/// HTTP Basic of `ID:SECRET`, as Reddit's token endpoint takes the app's credentials.
const BASIC: &str = "Basic cC1qY29MS0J5blRMZXc6Z2tvX0xYRUxvVjA3WkJOVVhydldaZnpFM2FJ";

/// Submissions (oldest first), the token handed out, and what did not look like Reddit's API.
#[derive(Default)]
struct Reddit {
    submissions: Mutex<Vec<Value>>,
    token: Mutex<Option<String>>,
    violations: Mutex<Vec<String>>,
}

impl Reddit {
    /// Adds a submission titled `title`, created `ago` seconds before now.
    fn add(&self, title: &str, ago: f64) {
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../core/tests/fixtures/formats/reddit-submissions-listing.json");
        let listing: Value = serde_json::from_slice(&std::fs::read(fixture).unwrap()).unwrap();
        let mut thing = listing["data"]["children"][0].clone();
        let mut list = self.submissions.lock().unwrap();
        let id = format!("zz{:04}", list.len());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let data = &mut thing["data"];
        data["id"] = json!(id);
        data["name"] = json!(format!("t3_{id}"));
        data["title"] = json!(title);
        data["selftext"] = json!("");
        data["is_self"] = json!(true);
        data["permalink"] = json!(format!("/r/espresso/comments/{id}/post/"));
        data["url"] = json!(format!(
            "https://www.reddit.com/r/espresso/comments/{id}/post/"
        ));
        data["created_utc"] = json!((now - ago).floor());
        list.push(thing);
    }
}

async fn token(State(r): State<Arc<Reddit>>, headers: HeaderMap, body: String) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("authorization") != BASIC {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"message": "Unauthorized", "error": 401}).to_string(),
        )
            .into_response();
    }
    if body != "grant_type=client_credentials" || header("user-agent") != AGENT {
        r.violations.lock().unwrap().push(format!(
            "token request {body:?} from {:?}",
            header("user-agent")
        ));
    }
    let t = "5FqX3vYkM0sgXsT9eAW4aTzeGh8".to_string();
    *r.token.lock().unwrap() = Some(t.clone());
    json!({"access_token": t, "token_type": "bearer", "expires_in": 86400, "scope": "*"})
        .to_string()
        .into_response()
}

async fn listing(
    State(r): State<Arc<Reddit>>,
    Path((subs, which)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let good = r
        .token
        .lock()
        .unwrap()
        .as_ref()
        .map(|t| format!("bearer {t}"));
    if good.as_deref() != Some(header("authorization")) {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"message": "Unauthorized", "error": 401}).to_string(),
        )
            .into_response();
    }
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if subs != "espresso"
        || which != "new"
        || params.get("raw_json").map(String::as_str) != Some("1")
    {
        r.violations
            .lock()
            .unwrap()
            .push(format!("listing /r/{subs}/{which} {params:?}"));
    }
    let children: Vec<Value> = r
        .submissions
        .lock()
        .unwrap()
        .iter()
        .rev()
        .cloned()
        .collect();
    (
        [
            ("x-ratelimit-remaining", "995.0"),
            ("x-ratelimit-used", "5"),
            ("x-ratelimit-reset", "420"),
        ],
        json!({"kind": "Listing", "data": {"after": null, "before": null, "dist": children.len(),
            "modhash": "", "children": children}})
        .to_string(),
    )
        .into_response()
}

async fn stand_in(r: Arc<Reddit>) -> String {
    let app = axum::Router::new()
        .route("/api/v1/access_token", axum::routing::post(token))
        .route("/r/{subs}/{which}", axum::routing::get(listing))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn start(run: &support::FileRun) -> std::process::Child {
    support::earshot()
        .args(["run", "--config"])
        .arg(&run.config)
        .current_dir(&run.dir)
        .env("EARSHOT_ADMIN_TOKEN", "test-token")
        .env("EARSHOT_TEST_REDDIT_ID", ID)
        .env("EARSHOT_TEST_REDDIT_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The Reddit ids (`zz0000`) of the posts of the mentions written so far, once at least `n`
/// are there (30 s at most). A mention's post id is the post's permalink.
async fn mentions(path: &std::path::Path, n: usize) -> Vec<String> {
    let read = || -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|m| {
                let id = m["post"]["id"].as_str().unwrap_or_default();
                id.trim_end_matches("/post/")
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while read().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    read()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reddit_submissions_become_mentions_and_a_restart_resumes_from_the_checkpoint() {
    let reddit = Arc::new(Reddit::default());
    let api = stand_in(reddit.clone()).await;
    reddit.add(
        "Acme support has not answered my refund request for a week",
        40.0,
    );
    reddit.add(
        "Acme rocket skates broke on the first day, what a waste",
        20.0,
    );
    reddit.add("Nothing about any brand in this one", 10.0);
    let admin = format!("127.0.0.1:{}", support::free_port());
    let run = support::FileRun::new(
        &admin,
        &format!(
            r#"[[source]]
id = "reddit"
type = "reddit"
subreddits = ["espresso"]
listings = ["submissions"]
client_id_env = "EARSHOT_TEST_REDDIT_ID"
client_secret_env = "EARSHOT_TEST_REDDIT_SECRET"
user_agent = "{AGENT}"
api_url = "{api}"
token_url = "{api}/api/v1/access_token"
poll_interval = "100ms"
backfill = "5m"
resume_overlap = "0s"
{}"#,
            support::catch_all_queue("sink = \"file\"\npath = \"mentions.ndjson\"")
        ),
    );
    let out = run.dir.join("mentions.ndjson");
    let mut child = start(&run);
    let first = mentions(&out, 2).await;
    assert_eq!(
        first,
        ["zz0000", "zz0001"],
        "both brand posts, oldest first"
    );
    // Let the checkpoint follow the commit, then die without a word.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();

    reddit.add("Acme rocket skates: the replacement broke too", 0.0);
    let mut child = start(&run);
    let all = mentions(&out, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let all_now = mentions(&out, 0).await;
    assert!(all.contains(&"zz0003".to_string()), "{all:?}");
    assert_eq!(
        all_now.iter().filter(|id| *id == "zz0000").count(),
        1,
        "the restart read back to its checkpoint, not its 5-minute backfill: {all_now:?}"
    );
    assert_eq!(*reddit.violations.lock().unwrap(), Vec::<String>::new());
}
