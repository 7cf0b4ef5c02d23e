//! `earshot replay --baseline-rules`: a rule change backtested on a real recorded stream.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::{self, earshot};

/// The rules in force: four rules in two files of one folder.
const BASELINE: &[(&str, &str)] = &[
    (
        "civic.rules",
        "brand civic \"Civic\"\n\
         \x20 rule civic-government: government\n\
         \x20 rule civic-election: election lang:en\n\
         \x20 rule civic-band: band\n",
    ),
    (
        "tictac.rules",
        "competitor tictac \"Tic Tac\"\n\
         \x20 rule tictac: \"tic tac\"\n",
    ),
];

/// The change: `civic-election` drops `lang:en`, `civic-band` excludes `rebellion`,
/// `civic-show` is new, `tictac` is gone, `civic-government` is untouched.
const NEW: &[(&str, &str)] = &[(
    "civic.rules",
    "brand civic \"Civic\"\n\
     \x20 rule civic-government: government\n\
     \x20 rule civic-election: election OR elections\n\
     \x20 rule civic-band: band -rebellion\n\
     \x20 rule civic-show: show\n",
)];

fn folder(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

/// The Bluesky post `rkey` by `did`, as the report names it.
fn at(did: &str, rkey: &str) -> String {
    format!("at://did:plc:{did}/app.bsky.feed.post/{rkey}")
}

fn sample_ids(rule: &Value, bucket: &str) -> Vec<String> {
    rule["samples"][bucket]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn backtest_reports_each_rules_hits_gains_and_losses_on_the_jetstream_sample() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = folder(dir.path(), "baseline", BASELINE);
    let new = folder(dir.path(), "new", NEW);
    let out = earshot()
        .args(["replay", "--json", "--baseline-rules"])
        .arg(&baseline)
        .arg("--rules")
        .arg(&new)
        .arg(support::fixtures().join("jetstream-sample.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let election_tr = at("u4lmvw4wwzaql3z5kcf3r7h4", "3mptbyoumc22i");
    let band_de = at("tn3hni2jpphsgl6amfbb7ja6", "3mptbypfywk2v");
    let show = at("t2yw5frug3pu4nmygjiq7vln", "3mptbypky4c27");
    let tic_tac = at("ybqkf2mtfbwx3qhga63mttja", "3mptbyoigog2b");
    let government = [
        at("d3blkgynnwi3rp7vak25pfe3", "3mptbyo7dms2m"),
        at("u4lmvw4wwzaql3z5kcf3r7h4", "3mptbyou7ls2i"),
        election_tr.clone(),
    ];
    // In report order: rules matching different posts first, then the rest.
    // (rule, brand, status, hits baseline, hits new, gained, lost, gained ids, lost ids)
    type Case<'a> = (
        &'a str,
        &'a str,
        &'a str,
        u64,
        u64,
        u64,
        u64,
        Vec<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        // The Turkish-tagged post about election results.
        (
            "civic-election",
            "civic",
            "changed",
            1,
            2,
            1,
            0,
            vec![&election_tr],
            vec![],
        ),
        // The post that says "rebellion".
        (
            "civic-band",
            "civic",
            "changed",
            2,
            1,
            0,
            1,
            vec![],
            vec![&band_de],
        ),
        (
            "civic-show",
            "civic",
            "added",
            0,
            1,
            1,
            0,
            vec![&show],
            vec![],
        ),
        (
            "tictac",
            "tictac",
            "removed",
            1,
            0,
            0,
            1,
            vec![],
            vec![&tic_tac],
        ),
        (
            "civic-government",
            "civic",
            "same",
            3,
            3,
            0,
            0,
            vec![],
            vec![],
        ),
    ];
    let rules = report["rules"].as_array().unwrap();
    let order: Vec<&str> = rules.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    let want: Vec<&str> = cases.iter().map(|c| c.0).collect();
    assert_eq!(order, want, "{report:#}");
    for (rule, (id, brand, status, hb, hn, gained, lost, gained_ids, lost_ids)) in
        rules.iter().zip(&cases)
    {
        assert_eq!(rule["brand"], *brand, "{id}");
        assert_eq!(rule["status"], *status, "{id}");
        assert_eq!(rule["hits_baseline"], *hb, "{id}");
        assert_eq!(rule["hits_new"], *hn, "{id}");
        assert_eq!(rule["gained"], *gained, "{id}");
        assert_eq!(rule["lost"], *lost, "{id}");
        assert_eq!(sample_ids(rule, "gained"), *gained_ids, "{id}");
        assert_eq!(sample_ids(rule, "lost"), *lost_ids, "{id}");
    }
    // The unchanged rule shows its first three hits, in input order, with the term found.
    let same = &rules[4];
    assert_eq!(sample_ids(same, "hits"), government);
    assert_eq!(
        same["samples"]["hits"][0]["terms"],
        serde_json::json!(["government"])
    );
    assert!(same["samples"]["hits"][0]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://bsky.app/profile/did:plc:d3blkgynnwi3rp7vak25pfe3/post/"));

    let s = &report["summary"];
    assert_eq!(s["frames"], 152);
    assert_eq!(s["posts"], 17);
    // Baseline: three government posts (one also `election`), two band posts, Tic Tac.
    // New: the government posts, one band post, the show post. The election post gained a
    // rule but was matched before, so it is not a post gained.
    assert_eq!(s["matched_baseline"], 6);
    assert_eq!(s["matched_new"], 5);
    assert_eq!(s["gained"], 1);
    assert_eq!(s["lost"], 2);
    assert_eq!(s["rules_baseline"], 4);
    assert_eq!(s["rules_new"], 4);
    assert_eq!(s["interrupted"], false);
    // Every frame is a post or a skip under its reason (SOURCES.md: 105 likes, 15 reposts…).
    let skipped = s["skipped"].as_object().unwrap();
    assert_eq!(skipped["like"], 105);
    assert_eq!(skipped["repost"], 15);
    let total: u64 = skipped.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, 152 - 17, "{s:#}");
}

#[test]
fn backtest_text_report_puts_changed_rules_first_and_ends_with_totals() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = folder(dir.path(), "baseline", BASELINE);
    let new = folder(dir.path(), "new", NEW);
    let out = earshot()
        .args(["replay", "--samples", "1", "--baseline-rules"])
        .arg(&baseline)
        .arg("--rules")
        .arg(&new)
        .arg(support::fixtures().join("jetstream-sample.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    let words = |line: &str| line.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        words(lines[0]),
        "rule brand status baseline new gained lost"
    );
    assert_eq!(words(lines[1]), "civic-election civic changed 1 2 +1 0");
    assert_eq!(words(lines[5]), "civic-government civic same 3 3 0 0");
    assert!(
        stdout.contains(
            "civic-government (civic, same): 3 posts, unchanged\n  hits (first 1 of 3):\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\nposts: 17 read; matched by any rule: 6 baseline, 5 new; 1 gained, 2 lost\n"
        ),
        "{stdout}"
    );
}

#[test]
fn backtest_with_a_broken_baseline_rule_file_names_the_side_and_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let baseline = folder(
        dir.path(),
        "baseline",
        &[(
            "civic.rules",
            "brand civic \"Civic\"\n  rule civic-government: government OR\n  rule civic-band: (band\n",
        )],
    );
    let new = folder(dir.path(), "new", NEW);
    let out = earshot()
        .args(["replay", "--json", "--baseline-rules"])
        .arg(&baseline)
        .arg("--rules")
        .arg(&new)
        .arg(support::fixtures().join("jetstream-sample.ndjson"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "no report without both rule sets");
    let file = baseline.join("civic.rules").display().to_string();
    for want in [
        "baseline rules do not load:".to_string(),
        format!("{file}:2:39: expected a term or '(' after OR, found end of query"),
        format!("{file}:3:20: unclosed '(': expected ')' before the end of the query"),
    ] {
        assert!(stderr.contains(&want), "missing {want:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("new rules"), "{stderr}");
}
