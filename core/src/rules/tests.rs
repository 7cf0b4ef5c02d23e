//! Tests of the rule language: query tables, error tables, limits, terms files, loading from
//! disk, the shipped rule pack (`rules/`) and the file of deliberate mistakes
//! (`pipeline/tests/rules/broken.rules`, whose expectations are written in the file).

use std::path::{Path, PathBuf};

use super::*;

/// Parses `text` as a file named `t.rules` with terms files relative to `base`.
fn parse_in(text: &str, base: &Path) -> Result<RuleSet, RuleErrors> {
    RuleSet::parse_str("t.rules", text, base)
}

fn parse(text: &str) -> Result<RuleSet, RuleErrors> {
    parse_in(text, Path::new("."))
}

/// One rule's query as an s-expression over the terms as written.
fn render(rule: &Rule, q: &Query) -> String {
    let list = |op: &str, parts: &[Query]| {
        let inner: Vec<String> = parts.iter().map(|p| render(rule, p)).collect();
        format!("({op} {})", inner.join(" "))
    };
    match q {
        Query::Term(i) => rule.terms[*i as usize].text.clone(),
        Query::Near {
            left,
            right,
            within,
        } => {
            let side = |ids: &[u32]| -> String {
                let names: Vec<&str> = ids
                    .iter()
                    .map(|&i| rule.terms[i as usize].text.as_str())
                    .collect();
                names.join("|")
            };
            format!("(near/{within} {} {})", side(left), side(right))
        }
        Query::Field(Field::Lang(tags)) => format!("lang:{}", tags.join(",")),
        Query::Field(field) => format!("{field:?}"),
        Query::Not(inner) => format!("(not {})", render(rule, inner)),
        Query::And(parts) => list("and", parts),
        Query::Or(parts) => list("or", parts),
    }
}

/// The errors of a failed parse as `line:col: message` strings.
fn error_lines(result: Result<RuleSet, RuleErrors>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.col, e.message))
            .collect(),
    }
}

#[test]
fn queries_parse_with_precedence() {
    let cases: &[(&str, &str)] = &[
        ("acme", "acme"),
        ("acme OR globex", "(or acme globex)"),
        ("acme globex", "(and acme globex)"),
        ("acme AND globex", "(and acme globex)"),
        ("a b OR c", "(or (and a b) c)"),
        ("a OR b c", "(or a (and b c))"),
        ("a OR -b c", "(or a (and (not b) c))"),
        ("-a b", "(and (not a) b)"),
        ("(a OR b) (c OR d)", "(and (or a b) (or c d))"),
        ("a -(b OR c)", "(and a (not (or b c)))"),
        ("a OR (b OR c)", "(or a b c)"),
        ("a (b c)", "(and a b c)"),
        ("((a))", "a"),
        (
            "\"Acme  Corp\" #Acme @acmehq $ACME",
            "(and Acme  Corp #Acme @acmehq $ACME)",
        ),
        ("acme lang:en", "(and acme lang:en)"),
        ("acme lang:pt-BR", "(and acme lang:pt-BR)"),
        (
            "(acme OR @acmehq) (help OR support) lang:en",
            "(and (or acme @acmehq) (or help support) lang:en)",
        ),
        ("acme # trailing comment", "acme"),
        ("c# OR f#", "(or c# f#)"),
        ("acme OR ACME OR Acme", "(or acme acme acme)"),
        ("東京 OR イニテック", "(or 東京 イニテック)"),
        ("acme NEAR/3 refund", "(near/3 acme refund)"),
        (
            "(acme OR @acmehq) NEAR/0 (refund OR \"money back\") lang:en",
            "(and (near/0 acme|@acmehq refund|money back) lang:en)",
        ),
        ("-a NEAR/2 b c", "(and (not (near/2 a b)) c)"),
        ("x OR a NEAR/2 b", "(or x (near/2 a b))"),
        (
            "refund* #acme* \"rocket skat*\"",
            "(and refund* #acme* rocket skat*)",
        ),
        ("raw:ACME raw:\"Acme Corp\"", "(and ACME Acme Corp)"),
        ("acme lang:en,pt-BR", "(and acme lang:en,pt-BR)"),
        (
            "acme from:acmehq is:reply has:media",
            "(and acme From([\"acmehq\"]) Is(Reply) Has(Media))",
        ),
        (
            "acme url:acme.com/help domain:acme.com followers:>1k",
            "(and acme Url(\"acme.com/help\") Domain(\"acme.com\") Followers(Greater, 1000))",
        ),
    ];
    for (query, want) in cases {
        let set = parse(&format!("brand b \"B\"\nrule r: {query}\n"))
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let rule = &set.rules()[0];
        assert_eq!(render(rule, &rule.query), *want, "{query}");
    }
}

#[test]
fn terms_are_deduplicated_and_anchored() {
    // (query, [(term as written, kind, needle, anchor)], pure OR)
    type Case = (
        &'static str,
        &'static [(&'static str, TermKind, &'static str, bool)],
        bool,
    );
    let cases: &[Case] = &[
        (
            "Acme OR acme OR ACME",
            &[("Acme", TermKind::Word, "acme", true)],
            true,
        ),
        (
            "acme #acme \"acme\"",
            &[
                ("acme", TermKind::Word, "acme", true),
                ("#acme", TermKind::Hashtag, "#acme", true),
                ("acme", TermKind::Phrase, "acme", true),
            ],
            false,
        ),
        (
            "acme -\"Acme  Anvil\" -$ACME",
            &[
                ("acme", TermKind::Word, "acme", true),
                ("Acme  Anvil", TermKind::Phrase, "acme anvil", false),
                ("$ACME", TermKind::Cashtag, "$acme", false),
            ],
            false,
        ),
        (
            "acme -acme",
            &[("acme", TermKind::Word, "acme", true)],
            false,
        ),
        (
            "@AcmeHQ.bsky.social",
            &[(
                "@AcmeHQ.bsky.social",
                TermKind::Handle,
                "@acmehq.bsky.social",
                true,
            )],
            true,
        ),
        (
            "ＡＣＭＥ",
            &[("ＡＣＭＥ", TermKind::Word, "acme", true)],
            true,
        ),
    ];
    for (query, want, pure) in cases {
        let set = parse(&format!("brand b \"B\"\nrule r: {query}\n"))
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        let rule = &set.rules()[0];
        let got: Vec<(&str, TermKind, &str, bool)> = rule
            .terms
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    t.text.as_str(),
                    t.kind,
                    t.needle.as_str(),
                    rule.is_anchor(i),
                )
            })
            .collect();
        assert_eq!(got, *want, "{query}");
        assert_eq!(rule.is_pure_or(), *pure, "{query}");
    }
}

#[test]
fn blocks_handles_and_locations() {
    let text = "\u{feff}# pack\r\nbrand acme \"Acme Corp\" # ours\r\n  handle @acmehq.bsky.social acmehq\r\n\
                rule acme-x: acme\r\n\ncompetitor globex \"Globex\"\n\trule globex: globex\n";
    let set = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let brands: Vec<(&str, &str, BrandKind, Vec<&str>)> = set
        .brands()
        .iter()
        .map(|b| {
            (
                b.id.0.as_str(),
                b.name.as_str(),
                b.kind,
                b.handles.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        brands,
        vec![
            (
                "acme",
                "Acme Corp",
                BrandKind::Brand,
                vec!["acmehq.bsky.social", "acmehq"]
            ),
            ("globex", "Globex", BrandKind::Competitor, vec![]),
        ]
    );
    let rules: Vec<(String, usize, String)> = set
        .rules()
        .iter()
        .map(|r| (r.id.to_string(), r.brand, r.location.to_string()))
        .collect();
    assert_eq!(
        rules,
        vec![
            ("acme-x".to_string(), 0, "t.rules:4:1".to_string()),
            ("globex".to_string(), 1, "t.rules:7:2".to_string()),
        ]
    );
    assert_eq!(set.rule("globex").map(|r| r.brand), Some(1));
    assert_eq!(
        serde_json::to_string(&BrandKind::Competitor)
            .ok()
            .as_deref(),
        Some("\"competitor\"")
    );
}

#[test]
fn errors_name_what_was_expected() {
    let cases: &[(&str, &str)] = &[
        (
            "rule r: acme OR )",
            "2:17: expected a term or '(' after OR, found ')'",
        ),
        (
            "rule r: acme OR",
            "2:16: expected a term or '(' after OR, found end of query",
        ),
        ("rule r: OR acme", "2:9: expected a term or '(', found OR"),
        (
            "rule r: acme ()",
            "2:15: expected a term or '(' after '(', found ')'",
        ),
        (
            "rule r: --acme",
            "2:10: expected a term or '(' after '-', found '-'",
        ),
        (
            "rule r: (acme",
            "2:9: unclosed '(': expected ')' before the end of the query",
        ),
        (
            "rule r: acme)",
            "2:13: unexpected ')' without a matching '('",
        ),
        (
            "rule r: lang:en",
            "2:6: rule 'r' can match a post that contains none of its terms",
        ),
        (
            "rule r: -a -b",
            "2:6: rule 'r' can match a post that contains none of its terms",
        ),
        (
            "rule r: a OR -b",
            "2:6: rule 'r' can match a post that contains none of its terms",
        ),
        (
            "rule r: -(-a)",
            "2:6: rule 'r' can match a post that contains none of its terms",
        ),
        (
            "rule r: a OR lang:en",
            "2:6: rule 'r' can match a post that contains none of its terms",
        ),
        (
            "rule r: acme\nrule r: globex",
            "3:6: duplicate rule id 'r' (first defined at t.rules:2:6)",
        ),
        ("rule 9-ok: a\nrule -x: a", "3:6: invalid rule id '-x'"),
        ("handle", "2:7: expected a handle after 'handle'"),
        ("handle \"@x\"", "2:8: a handle is written without quotes"),
        ("terms", "2:6: expected a terms file path after 'terms'"),
        ("terms a b", "2:9: unexpected 'b' after the terms file path"),
        ("rule", "2:5: expected a rule id after 'rule'"),
        ("frobnicate x", "2:1: unknown directive 'frobnicate'"),
        ("brand", "2:6: expected a brand id after 'brand'"),
        (
            "rule r: acme \"a",
            "2:14: unterminated phrase: expected a closing '\"'",
        ),
        (
            "rule r: from:acmehq is:reply",
            "2:6: rule 'r' can match a post that contains none of its terms",
        ),
        (
            "rule r: a NEAR/2 (b c)",
            "2:18: NEAR/2 joins two terms, or two ( … OR … ) groups of terms",
        ),
        (
            "rule r: a NEAR/2 lang:en",
            "2:18: NEAR/2 joins two terms, or two ( … OR … ) groups",
        ),
        (
            "rule r: a NEAR/2 b NEAR/2 c",
            "2:20: NEAR/n joins exactly two operands",
        ),
        (
            "rule r: a NEAR/2",
            "2:17: expected a term or '(' after NEAR, found end of query",
        ),
        (
            "rule r: acme list:jobs",
            "2:14: unknown list 'jobs'; no lists are defined",
        ),
        ("rule r tags=a,B: acme", "2:8: invalid tag 'B'"),
        (
            "rule r accents=drop: acme",
            "2:8: expected accents=ignore or accents=keep",
        ),
        (
            "rule r colour=red: acme",
            "2:8: unknown rule option 'colour'",
        ),
        ("expect hit \"acme\"", "2:1: expect belongs under a rule"),
        (
            "rule r: acme\nexpect maybe \"acme\"",
            "3:8: expected 'hit' or 'miss' after 'expect'",
        ),
        (
            "rule r: acme\nexpect hit acme",
            "3:12: expected the post's text in double quotes",
        ),
        (
            "rule r: acme\nexpect hit \"a\\q\"",
            "3:12: expected the post's text in double quotes",
        ),
        (
            "rule r: acme\nexpect hit \"acme\" lang:",
            "3:19: unexpected 'lang:' in an example",
        ),
        (
            "rule r: acme\nexpect miss \"x\" color:red",
            "3:17: unexpected 'color:red'",
        ),
        ("list", "2:5: expected a list id after 'list'"),
        (
            "list jobs",
            "2:10: expected ':' and terms, or 'file PATH', after the list id 'jobs'",
        ),
        ("list Jobs: a", "2:6: invalid list id 'Jobs'"),
        (
            "list jobs: a b",
            "2:14: a list is terms joined by OR: expected OR, found 'b'",
        ),
        (
            "list jobs: a OR (b)",
            "2:17: a list is terms joined by OR: expected a term, found '('",
        ),
        (
            "list jobs: a OR lang:en",
            "2:17: a list is terms joined by OR: expected a term",
        ),
        (
            "list jobs: a OR",
            "2:14: expected a term after OR, found end of list",
        ),
        ("list jobs:", "2:11: expected terms after ':'"),
        (
            "list jobs: a\nlist jobs: b",
            "3:6: duplicate list id 'jobs' (first defined at t.rules:2:6)",
        ),
        (
            "list jobs file",
            "2:15: expected a terms file path after 'file'",
        ),
    ];
    for (body, want) in cases {
        let errors = error_lines(parse(&format!("brand b \"B\"\n{body}\n")));
        assert!(
            errors.first().is_some_and(|e| e.starts_with(want)),
            "{body:?}: want {want:?}, got {errors:?}"
        );
        assert_eq!(errors.len(), 1, "{body:?}: {errors:?}");
    }
}

#[test]
fn lists_tags_and_examples() {
    // A list may be used before it is defined, and by several rules; its terms join each
    // rule's own table (deduplicated with the rule's other terms).
    let text = r#"
brand acme "Acme"
  rule jobs tags=hr,low-priority: acme list:jobs
    expect hit "Acme is hiring!" lang:en
    expect miss "acme \"anvil\"\nsale" from:@someone followers:1.5k is:reply has:media link:https://acme.com/x
  rule not-jobs accents=ignore: acme -list:jobs
list jobs: hiring OR "we're hiring" OR #hiring OR acme
"#;
    let set = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let jobs = set.rule("jobs").expect("rule jobs");
    assert_eq!(
        render(jobs, &jobs.query),
        "(and acme (or acme hiring we're hiring #hiring))"
    );
    assert_eq!(jobs.tags, vec!["hr", "low-priority"]);
    assert_eq!(jobs.examples.len(), 2);
    let miss = &jobs.examples[1];
    assert_eq!(miss.expect, Expect::Miss);
    assert_eq!(miss.text, "acme \"anvil\"\nsale");
    assert_eq!(miss.from.as_deref(), Some("someone"));
    assert_eq!(miss.followers, Some(1500));
    assert!(miss.flags.reply && miss.flags.media && miss.flags.link);
    assert_eq!(miss.links, vec!["https://acme.com/x"]);
    assert_eq!(miss.location.line, 5);
    assert_eq!(jobs.examples[0].lang.as_deref(), Some("en"));
    assert_eq!(set.example_count(), 2);
    let not_jobs = set.rule("not-jobs").expect("rule not-jobs");
    assert!(not_jobs.tags.is_empty());
    assert!(not_jobs
        .terms
        .iter()
        .all(|t| t.fold == Fold::CaseAndAccents));
    assert!(jobs.terms.iter().all(|t| t.fold == Fold::Case));
    // `acme` in the list is the rule's `acme`: an anchor, written once.
    assert_eq!(jobs.terms.iter().filter(|t| t.text == "acme").count(), 1);
    assert!(
        !not_jobs.is_anchor(1),
        "excluded list terms are not anchors"
    );
}

#[test]
fn lists_from_files_and_other_rule_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("a.rules"),
        "brand b \"B\"\n rule r: acme -list:spam\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("z-lists.rules"),
        "list spam file spam.txt\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("spam.txt"),
        "free money\n#giveaway\nclick*\n",
    )
    .expect("write");
    let set = RuleSet::load(&[dir.path().to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    let r = set.rule("r").expect("rule r");
    assert_eq!(
        render(r, &r.query),
        "(and acme (not (or free money #giveaway click*)))"
    );
    assert!(r.terms[3].prefix);
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "rule early: x\nbrand b \"B\"\nrule a: x OR\nrule c: (y\nrule a: z\nbrand B \"C\"\n";
    let errors = error_lines(parse(text));
    let locations: Vec<&str> = errors
        .iter()
        .map(|e| e.split(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(
        locations,
        vec!["1:1", "3:13", "4:9", "5:6", "6:7"],
        "{errors:?}"
    );
    let err = parse(text).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        err.starts_with("t.rules:1:1: rule outside a brand block"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 5);
}

#[test]
fn limits() {
    let at_depth = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    // Atoms are counted as written (before duplicates merge), so one short term repeated
    // reaches the atom limit well inside the byte limit.
    let atoms = |n: usize| "a ".repeat(n);
    let long_term = |n: usize| "x".repeat(n);
    type Case = (&'static str, String, Option<&'static str>);
    let cases: Vec<Case> = vec![
        ("depth at limit", at_depth(MAX_DEPTH), None),
        (
            "depth over limit",
            at_depth(MAX_DEPTH + 1),
            Some("2:41: parentheses nested deeper than 32 levels"),
        ),
        ("atoms at limit", atoms(MAX_QUERY_ATOMS), None),
        (
            "atoms over limit",
            atoms(MAX_QUERY_ATOMS + 1),
            Some("2:2009: query has more than 1000 terms"),
        ),
        ("term at limit", long_term(MAX_TERM_BYTES), None),
        (
            "term over limit",
            long_term(MAX_TERM_BYTES + 1),
            Some("2:9: term is 257 bytes; the limit is 256"),
        ),
        (
            "query over limit",
            format!("a {}", "b ".repeat(MAX_QUERY_BYTES / 2)),
            Some("2:9: query is 4097 bytes; the limit is 4096"),
        ),
    ];
    for (name, query, want) in cases {
        let result = parse(&format!("brand b \"B\"\nrule r: {query}\n"));
        match want {
            None => assert!(
                result.is_ok(),
                "{name}: {:?}",
                result.err().map(|e| e.to_string())
            ),
            Some(want) => {
                let errors = error_lines(result);
                assert_eq!(errors.len(), 1, "{name}: {errors:?}");
                assert!(
                    errors[0].contains(want),
                    "{name}: want {want:?}, got {errors:?}"
                );
            }
        }
    }
    let huge = " ".repeat(MAX_RULE_FILE_BYTES as usize + 1);
    let err = parse(&huge)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        err,
        "t.rules: rule file is 16777217 bytes; the limit is 16 MiB"
    );
}

#[test]
fn terms_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write terms file");
    };
    write(
        "products.txt",
        "# products\n\nAcme Anvil\n  Rocket   Skates  \n#RocketSkates\n@acmehq\n$ACME\nacme\n\
         ACME\n\"Acme\"\nAcme Cloud # the cloud one\n#\n",
    );
    let set = parse_in("brand acme \"Acme\"\n  terms products.txt\n", dir.path())
        .unwrap_or_else(|e| panic!("{e}"));
    let rule = &set.rules()[0];
    assert_eq!(rule.id.0, "acme-terms");
    assert!(rule.is_pure_or());
    let got: Vec<(&str, TermKind)> = rule
        .terms
        .iter()
        .map(|t| (t.text.as_str(), t.kind))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Acme Anvil", TermKind::Phrase),
            ("Rocket   Skates", TermKind::Phrase),
            ("#RocketSkates", TermKind::Hashtag),
            ("@acmehq", TermKind::Handle),
            ("$ACME", TermKind::Cashtag),
            ("acme", TermKind::Word),
            ("Acme", TermKind::Phrase),
            ("Acme Cloud", TermKind::Phrase),
        ]
    );
    assert_eq!(rule.terms[1].needle, "rocket skates");

    // An absolute path works from anywhere.
    let abs = dir.path().join("products.txt");
    let text = format!("brand acme \"Acme\"\n  terms \"{}\"\n", abs.display());
    assert!(parse_in(&text, Path::new("/nonexistent")).is_ok());

    // Mistakes inside a terms file are located in the terms file.
    write("bad.txt", "ok\n  #bad!\n@\n\u{1}x\n");
    let errors = parse_in("brand acme \"Acme\"\n  terms bad.txt\n", dir.path())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let shown = dir.path().join("bad.txt").display().to_string();
    let want = [
        format!("{shown}:2:3: a hashtag is '#' followed by letters, digits or '_'; found '#bad!'"),
        format!("{shown}:3:1: expected a handle after '@'"),
        format!("{shown}:4:1: control character '\\u{{1}}' in term"),
    ];
    assert_eq!(errors.lines().collect::<Vec<_>>(), want);

    // Empty, unreadable and non-UTF-8 terms files.
    write("empty.txt", "# nothing here\n\n");
    std::fs::write(dir.path().join("latin1.txt"), b"ok\nAcm\xe9\n").expect("write");
    let text = "brand a \"A\"\n terms empty.txt\nbrand b \"B\"\n terms missing.txt\nbrand c \"C\"\n terms latin1.txt\n";
    let errors = error_lines(parse_in(text, dir.path()));
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].starts_with("2:8: terms file '")
            && errors[0].ends_with("empty.txt' has no terms")
    );
    assert!(
        errors[1].starts_with("4:8: cannot read terms file '")
            && errors[1].contains("(os error 2)")
    );
    assert_eq!(errors[2], "2:4: invalid UTF-8");
}

#[test]
fn terms_file_term_limit() {
    // The limit is reached through the same code with a small bound; a million-line file
    // would take seconds in a debug build.
    assert_eq!(MAX_TERMS_FILE_TERMS, 1_000_000);
    let text = "a\nb\n# comment\nc\nA\nd\n";
    let cases: &[(usize, usize, &[&str])] = &[
        (4, 4, &[]),
        (10, 4, &[]),
        (3, 4, &["t.txt:6:1: more than 3 terms in one terms file"]),
        (2, 3, &["t.txt:4:1: more than 2 terms in one terms file"]),
    ];
    for (limit, terms, want) in cases {
        let mut errors = Vec::new();
        let table = super::parse::parse_terms_limited("t.txt", text, &mut errors, *limit);
        let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(got, *want, "limit {limit}");
        if want.is_empty() {
            assert_eq!(table.len(), *terms, "limit {limit}");
        }
    }
}

#[test]
fn loads_files_and_directories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path();
    std::fs::write(
        p.join("b.rules"),
        "competitor globex \"Globex\"\nrule globex: globex\n",
    )
    .expect("write");
    std::fs::write(p.join("a.rules"), "brand acme \"Acme\"\nrule acme: acme\n").expect("write");
    std::fs::write(p.join("notes.txt"), "not a rule file").expect("write");
    let set = RuleSet::load(&[p.to_path_buf()]).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = set.rules().iter().map(|r| r.id.0.as_str()).collect();
    assert_eq!(ids, vec!["acme", "globex"], "files load in name order");

    // Ids are unique across files.
    let again = p.join("a.rules");
    let errors = RuleSet::load(&[p.to_path_buf(), again.clone()])
        .err()
        .map(|e| e.to_string());
    let errors = errors.unwrap_or_default();
    assert!(
        errors.contains("a.rules:1:7: duplicate brand id 'acme'"),
        "{errors}"
    );
    assert!(
        errors.contains("a.rules:2:6: duplicate rule id 'acme'"),
        "{errors}"
    );

    // Whole-file problems.
    let empty = tempfile::tempdir().expect("tempdir");
    std::fs::write(p.join("bad-utf8.rules"), b"brand x \"X\"\nrule x: caf\xc3").expect("write");
    let big = std::fs::File::create(p.join("big.rules")).expect("create");
    big.set_len(MAX_RULE_FILE_BYTES + 1).expect("set_len");
    let cases: Vec<(PathBuf, String)> = vec![
        (
            empty.path().to_path_buf(),
            "no *.rules files in this directory".into(),
        ),
        (
            p.join("missing.rules"),
            "cannot read: No such file or directory".into(),
        ),
        (
            p.join("bad-utf8.rules"),
            "bad-utf8.rules:2:12: invalid UTF-8".into(),
        ),
        (
            p.join("big.rules"),
            "big.rules: rule file is 16777217 bytes; the limit is 16 MiB".into(),
        ),
    ];
    for (path, want) in cases {
        let err = RuleSet::load(std::slice::from_ref(&path))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(&want),
            "{}: want {want:?}, got {err:?}",
            path.display()
        );
    }
}

/// The repository root: the first ancestor of the manifest dir holding `rules/` and
/// `pipeline/tests/rules/` (the real crate, a CI clone, or a scratch crate linking both).
fn repo_root() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    loop {
        if dir.join("rules").is_dir() && dir.join("pipeline/tests/rules").is_dir() {
            return dir.to_path_buf();
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => panic!("no ancestor of {} holds rules/", env!("CARGO_MANIFEST_DIR")),
        }
    }
}

#[test]
fn shipped_rule_pack_loads() {
    let set = RuleSet::load(&[repo_root().join("rules")]).unwrap_or_else(|e| panic!("{e}"));
    let brands: Vec<(&str, BrandKind)> = set
        .brands()
        .iter()
        .map(|b| (b.id.0.as_str(), b.kind))
        .collect();
    assert_eq!(
        brands,
        vec![
            ("acme", BrandKind::Brand),
            ("globex", BrandKind::Competitor),
            ("initech", BrandKind::Competitor)
        ]
    );
    for id in [
        "acme-mentions",
        "acme-terms",
        "acme-support",
        "globex-mentions",
        "initech-mentions",
    ] {
        assert!(set.rule(id).is_some(), "{id}");
    }
    let has_exclusion = set
        .rules()
        .iter()
        .any(|r| (0..r.terms.len()).any(|i| !r.is_anchor(i)));
    let has_lang = set
        .rules()
        .iter()
        .any(|r| format!("{:?}", r.query).contains("Lang("));
    assert!(
        has_exclusion && has_lang,
        "the pack shows an exclusion and a lang: rule"
    );
}

#[test]
fn broken_rules_report_each_mistake() {
    let path = repo_root().join("pipeline/tests/rules/broken.rules");
    let text = std::fs::read_to_string(&path).expect("read broken.rules");
    let mut expected: Vec<(u32, u32, String)> = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("# expect-error: ") else {
            continue;
        };
        let (loc, message) = rest.split_once(' ').expect("expect-error: LINE:COL TEXT");
        let (l, c) = loc.split_once(':').expect("LINE:COL");
        expected.push((
            l.parse().expect("line"),
            c.parse().expect("col"),
            message.to_string(),
        ));
    }
    assert!(expected.len() >= 20, "the file states its expectations");
    let errors =
        RuleSet::load(std::slice::from_ref(&path)).expect_err("broken.rules must fail to load");
    let shown = path.display().to_string();
    let mut unmatched: Vec<String> = Vec::new();
    for e in errors.iter() {
        assert_eq!(e.file, shown);
        let pos = expected
            .iter()
            .position(|(l, c, m)| *l == e.line && *c == e.col && e.message.starts_with(m.as_str()));
        match pos {
            Some(i) => {
                expected.remove(i);
            }
            None => unmatched.push(e.to_string()),
        }
    }
    assert!(
        unmatched.is_empty(),
        "errors nobody expected:\n{}",
        unmatched.join("\n")
    );
    assert!(
        expected.is_empty(),
        "expected errors not reported: {expected:?}"
    );
}

#[test]
#[ignore = "needs the generated benchmark rule lists (bench-data/, see benches/README.md)"]
fn bench_rule_lists_load() {
    // The benchmark lists are generated outside the repository (benches/README.md): in
    // `$EARSHOT_BENCH_DATA`, else in a `bench-data/` folder above the crate, as the
    // benchmarks find them. Run with `--ignored` where they exist.
    let data = std::env::var_os("EARSHOT_BENCH_DATA")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .map(|d| d.join("bench-data"))
                .find(|d| d.join("rules-10k.txt").is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "no bench-data/ above {} and EARSHOT_BENCH_DATA is not set: generate the lists \
                 (benches/README.md)",
                env!("CARGO_MANIFEST_DIR")
            )
        });
    for (file, terms) in [
        ("rules-1k.txt", 1_000),
        ("rules-10k.txt", 10_000),
        ("rules-100k.txt", 100_000),
    ] {
        let text = format!(
            "brand bench \"Bench\"\n  terms {}\n",
            data.join(file).display()
        );
        let set = parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            set.term_count(),
            terms,
            "{file}: the lists are unique case-insensitively"
        );
    }
}
