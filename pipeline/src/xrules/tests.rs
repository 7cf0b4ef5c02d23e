//! Translation of rules into X filtered-stream rules, and the plan against X's current ones.

use std::path::Path;

use super::*;

fn rules(text: &str) -> RuleSet {
    RuleSet::parse_str("t.rules", text, Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn operators(t: &Translation) -> BTreeSet<String> {
    t.values
        .iter()
        .flat_map(|v| v.split(OR).map(str::to_string))
        .collect()
}

#[test]
fn each_rule_gives_the_terms_every_match_must_contain() {
    let set = rules(
        "brand acme \"Acme\"\n\
         rule any: (acme OR \"acme corp\" OR #acme OR @acmehq) -coyote -\"road runner\"\n\
         rule support: (acme OR @acmehq) (help OR support OR refund*) lang:en\n\
         rule outage: \"acme cloud\" NEAR/4 (down OR outage OR 障害)\n\
         rule stock: $ACME OR (raw:ACME NEAR/3 (stock OR shares))\n\
         rule bsky: @acmehq.bsky.social\n",
    );
    let t = translate(&set, Limits::default()).expect("fits");
    assert!(t.gaps.is_empty(), "{:?}", t.gaps);
    let want: BTreeSet<String> = [
        "\"acme\"",
        "\"acme corp\"",
        "#acme",
        "@acmehq",
        // `outage`: the phrase side of the NEAR (one operator, not three)
        "\"acme cloud\"",
        // `stock`: the ticker, and the cheaper side of the NEAR
        "$ACME",
        "\"ACME\"",
        // a Bluesky handle is no X username: its words as a phrase
        "\"acmehq.bsky.social\"",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(
        operators(&t),
        want,
        "exclusions, fields and the looser side of an AND are left out"
    );
    assert_eq!(t.operators, want.len());
    assert!(t.values.iter().all(|v| x_length(v) <= PRO_MAX_LENGTH));
}

#[test]
fn a_rule_only_a_prefix_term_can_select_is_a_gap_with_its_place() {
    let set = rules(
        "brand acme \"Acme\"\n\
         rule wild: refund* OR acme\n\
         rule wild-and: refund* (acme OR help*)\n\
         rule fine: refund* acme\n",
    );
    let t = translate(&set, Limits::default()).expect("fits");
    let gaps: Vec<(&str, &str)> = t
        .gaps
        .iter()
        .map(|g| (g.rule.as_str(), g.location.as_str()))
        .collect();
    assert_eq!(gaps, [("wild", "t.rules:2:1"), ("wild-and", "t.rules:3:1")]);
    assert!(
        t.gaps[0].why.contains("`refund*` is a prefix term"),
        "{}",
        t.gaps[0].why
    );
    assert_eq!(
        operators(&t),
        BTreeSet::from(["\"acme\"".to_string()]),
        "`fine` is covered by its other conjunct"
    );
}

#[test]
fn quotes_and_backslashes_are_escaped_and_unicode_tags_and_dotted_tickers_kept() {
    let set = rules("brand acme \"Acme\"\nrule q: #café OR $BRK.B OR \"acme news\"\n");
    let t = translate(&set, Limits::default()).expect("fits");
    let ops = operators(&t);
    assert!(ops.contains("#café") && ops.contains("$BRK.B"), "{ops:?}");
    // A terms-file line may hold a quote or a backslash.
    assert_eq!(quoted(r#"say "acme" \ now"#), r#""say \"acme\" \\ now""#);
    assert_eq!(quoted("two\nlines"), "\"two lines\"");
}

#[test]
fn many_terms_pack_into_rules_within_the_limits_and_stably() {
    let words: Vec<String> = (0..3000).map(|i| format!("product{i:05}")).collect();
    let mut text = "brand acme \"Acme\"\n".to_string();
    for (n, chunk) in words.chunks(100).enumerate() {
        text += &format!("rule many{n}: {}\n", chunk.join(" OR "));
    }
    let limits = Limits {
        max_rules: 1000,
        max_length: 512,
    };
    let t = translate(&rules(&text), limits).expect("fits");
    assert_eq!(t.operators, 3000);
    assert!(t.values.iter().all(|v| x_length(v) <= 512));
    assert_eq!(operators(&t).len(), 3000, "every operator once");
    // One more term changes few values, not all of them.
    let text2 = text.replace("product00000 OR", "product00000 OR newthing OR");
    let t2 = translate(&rules(&text2), limits).expect("fits");
    let before: BTreeSet<&String> = t.values.iter().collect();
    let changed = t2.values.iter().filter(|v| !before.contains(v)).count();
    assert!(
        changed <= 2,
        "{changed} of {} values changed",
        t2.values.len()
    );

    let tight = Limits {
        max_rules: 5,
        max_length: 512,
    };
    let e = translate(&rules(&text), tight).expect_err("too many");
    assert!(
        e.to_string()
            .contains("more than the 5 this access level allows"),
        "{e}"
    );
    assert!(matches!(
        translate(
            &rules(&text),
            Limits {
                max_rules: 5,
                max_length: 100
            }
        ),
        Err(TranslateError::Limits(_))
    ));
}

fn x(id: &str, value: &str, tag: Option<&str>) -> XRule {
    XRule {
        id: id.into(),
        value: value.into(),
        tag: tag.map(str::to_string),
    }
}

#[test]
fn the_plan_touches_only_earshots_rules() {
    let wanted = vec![
        "\"a\" OR #b".to_string(),
        "\"c\"".to_string(),
        "\"d\"".to_string(),
    ];
    let current = vec![
        x("1", "\"a\" OR #b", Some(TAG)),
        x("2", "\"old\"", Some(TAG)),
        x("3", "from:someone", Some("marketing")),
        x("4", "\"d\"", None),
    ];
    let p = plan(&wanted, &current);
    assert_eq!(p.keep, [current[0].clone()]);
    assert_eq!(p.delete, [current[1].clone()]);
    assert_eq!(p.add, ["\"c\""], "\"d\" is held by someone else's rule");
    assert_eq!(p.others.len(), 2);
    assert_eq!(p.total_after(), 4);
    assert!(!p.in_sync());
    let synced = plan(
        &wanted,
        &[
            x("9", "\"c\"", Some(TAG)),
            current[0].clone(),
            current[3].clone(),
        ],
    );
    assert!(synced.in_sync(), "{synced:?}");
}

#[test]
fn the_rules_endpoint_is_the_streams_with_rules() {
    assert_eq!(
        api::rules_url("https://api.x.com/2/tweets/search/stream?expansions=author_id")
            .map(|u| u.to_string()),
        Some("https://api.x.com/2/tweets/search/stream/rules".into())
    );
    assert_eq!(
        api::rules_url("http://127.0.0.1:8080/2/tweets/search/stream/").map(|u| u.to_string()),
        Some("http://127.0.0.1:8080/2/tweets/search/stream/rules".into())
    );
    assert_eq!(
        api::rules_url("https://mastodon.social/api/v1/streaming/public"),
        None
    );
}

#[test]
fn the_example_rules_translate_within_pro_limits() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let set = RuleSet::load(&[dir]).unwrap_or_else(|e| panic!("{e}"));
    let t = translate(&set, Limits::default()).expect("fits");
    assert!(t.gaps.is_empty(), "{:?}", t.gaps);
    assert_eq!(t.values.len(), 1, "{} operators in one X rule", t.operators);
}
