//! Loading real files: every format, row skips with their exact `file:line:col`, file-level
//! errors, and reloading.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::post::Platform;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load(path: &Path) -> Loaded {
    CustomerTable::load(path, &CustomerLimits::default()).unwrap()
}

fn skips(loaded: &Loaded) -> Vec<String> {
    loaded.skips.iter().map(ToString::to_string).collect()
}

fn customer(id: &str, tier: Option<&str>, owner: Option<&str>, ltv: Option<f64>) -> Customer {
    Customer {
        customer_id: id.to_owned(),
        tier: tier.map(str::to_owned),
        account_owner: owner.map(str::to_owned),
        lifetime_value: ltv,
    }
}

/// The same three accounts in every format, with columns in a different order each time and
/// columns earshot does not read.
const CSV: &str = "\
crm_row,Customer_ID,Handle, Platform ,Tier,Account_Owner,Lifetime_Value,notes
1,C-100,did:plc:ewvi7nxzyoun6zhxrhs64oiz,bluesky,Enterprise,dana@acme.example,250000,\"key, account\"
2,C-200,@AcmeFan,x,gold,,1200.50,
3,C-300,@Fan@Mastodon.Social,mastodon,,,,
";

const JSON: &str = r#"[
  {"customer_id": "C-100", "platform": "bluesky", "handle": "did:plc:ewvi7nxzyoun6zhxrhs64oiz",
   "tier": "Enterprise", "account_owner": "dana@acme.example", "lifetime_value": 250000,
   "notes": {"anything": ["goes", 1]}},
  {"handle": "@AcmeFan", "platform": "x", "customer_id": "C-200", "tier": "gold",
   "account_owner": null, "lifetime_value": "1200.50"},
  {"platform": "mastodon", "handle": "@Fan@Mastodon.Social", "customer_id": "C-300"}
]"#;

const JSONL: &str = r#"{"customer_id": "C-100", "platform": "bluesky", "handle": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "tier": "Enterprise", "account_owner": "dana@acme.example", "lifetime_value": 250000}

{"Platform": "x", "Handle": "@AcmeFan", "Customer_ID": "C-200", "tier": "gold", "lifetime_value": 1200.50, "extra": true}
{"platform": "mastodon", "handle": "@Fan@Mastodon.Social", "customer_id": "C-300"}
"#;

fn check_three_accounts(name: &str, table: &CustomerTable) {
    assert_eq!(table.len(), 3, "{name}");
    assert_eq!(
        table.lookup(Platform::Bluesky, "did:plc:ewvi7nxzyoun6zhxrhs64oiz", None),
        Some(&customer(
            "C-100",
            Some("enterprise"),
            Some("dana@acme.example"),
            Some(250000.0)
        )),
        "{name}"
    );
    assert_eq!(
        table.lookup(Platform::X, "9999", Some("acmefan")),
        Some(&customer("C-200", Some("gold"), None, Some(1200.5))),
        "{name}"
    );
    assert_eq!(
        table.lookup(Platform::Mastodon, "1", Some("fan@mastodon.social")),
        Some(&customer("C-300", None, None, None)),
        "{name}"
    );
}

#[test]
fn every_format_loads_the_same_table() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("crm.csv", CSV),
        ("crm.json", JSON),
        ("crm.jsonl", JSONL),
        ("crm.ndjson", JSONL),
    ] {
        let loaded = load(&write(dir.path(), name, text));
        assert_eq!(loaded.skipped, 0, "{name}: {:?}", skips(&loaded));
        check_three_accounts(name, &loaded.table);
    }
}

#[test]
fn csv_with_a_byte_order_mark_and_crlf_loads() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("\u{feff}{}", CSV.replace('\n', "\r\n"));
    let loaded = load(&write(dir.path(), "excel.csv", &text));
    assert_eq!(loaded.skipped, 0, "{:?}", skips(&loaded));
    check_three_accounts("excel.csv", &loaded.table);
}

#[test]
fn lookups_normalise_and_try_the_id_before_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "crm.csv",
        "platform,handle,customer_id\n\
         x,1234567890123456789,BY-ID\n\
         x,AcmeHQ,BY-HANDLE\n\
         bluesky,alice.bsky.social,ALICE\n\
         mastodon,fan@mastodon.social,FAN\n\
         reddit,u_acme,REDDIT\n",
    );
    let table = load(&path).table;
    let id = |c: Option<&Customer>| c.map(|c| c.customer_id.clone());
    // Name, platform, author id, handle, the customer id found.
    type Case<'a> = (&'a str, Platform, &'a str, Option<&'a str>, Option<&'a str>);
    let cases: &[Case<'_>] = &[
        (
            "by id",
            Platform::X,
            "1234567890123456789",
            None,
            Some("BY-ID"),
        ),
        (
            "id wins over handle",
            Platform::X,
            "1234567890123456789",
            Some("acmehq"),
            Some("BY-ID"),
        ),
        (
            "handle when the id is unknown",
            Platform::X,
            "42",
            Some("acmehq"),
            Some("BY-HANDLE"),
        ),
        (
            "@ and case",
            Platform::X,
            "42",
            Some(" @ACMEhq "),
            Some("BY-HANDLE"),
        ),
        (
            "other platform",
            Platform::Bluesky,
            "42",
            Some("acmehq"),
            None,
        ),
        ("no handle", Platform::X, "42", None, None),
        (
            "exact bluesky handles only",
            Platform::Bluesky,
            "did:plc:x",
            Some("alice"),
            None,
        ),
        (
            "bluesky handle",
            Platform::Bluesky,
            "did:plc:x",
            Some("Alice.bsky.social"),
            Some("ALICE"),
        ),
        (
            "mastodon user@server",
            Platform::Mastodon,
            "1",
            Some("@Fan@mastodon.social"),
            Some("FAN"),
        ),
        (
            "mastodon without the server",
            Platform::Mastodon,
            "1",
            Some("fan"),
            None,
        ),
        (
            "reddit",
            Platform::Reddit,
            "t2_abc",
            Some("U_Acme"),
            Some("REDDIT"),
        ),
        ("empty id", Platform::X, "", None, None),
    ];
    for (name, platform, author, handle, want) in cases {
        assert_eq!(
            id(table.lookup(*platform, author, *handle)),
            want.map(str::to_owned),
            "{name}"
        );
    }
}

#[test]
fn bad_csv_rows_are_skipped_and_described_at_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let text = "\
platform,handle,customer_id,tier,lifetime_value
x,@Good,C-1,Gold,100
facebook,someone,C-2,,
x,\"\",C-3,,
x,ok3,C-4,,-1
x,\"a, b\",,gold,
mastodon,josé@example.social,,,
x,GOOD,C-6,,
x,short,C-8

bluesky,did:plc:fine,C-9,,NaN
bluesky,did:plc:fine2,C-10,standard,7
";
    let path = write(dir.path(), "crm.csv", text);
    let loaded = load(&path);
    let f = path.display();
    assert_eq!(
        skips(&loaded),
        vec![
            format!(
                "{f}:3:1: unknown platform \"facebook\" (use bluesky, x, mastodon, reddit or generic)"
            ),
            format!("{f}:4:3: handle is empty"),
            format!("{f}:5:12: lifetime_value \"-1\" is not a finite non-negative number"),
            // A quoted field with a comma: the column is counted in the text, not in fields.
            format!("{f}:6:10: customer_id is empty"),
            // Columns count characters: `é` is one.
            format!("{f}:7:30: customer_id is empty"),
            format!("{f}:8:3: duplicate of line 2"),
            format!("{f}:9:1: the row has 3 fields, the header has 5"),
            format!("{f}:11:27: lifetime_value \"NaN\" is not a finite non-negative number"),
        ]
    );
    assert_eq!(loaded.skipped, 8);
    let table = loaded.table;
    assert_eq!(table.len(), 2);
    assert_eq!(
        table.lookup(Platform::X, "0", Some("good")),
        Some(&customer("C-1", Some("gold"), None, Some(100.0))),
        "the first of two duplicate rows wins"
    );
    assert!(table
        .lookup(Platform::Bluesky, "did:plc:fine2", None)
        .is_some());
}

#[test]
fn bad_json_rows_are_skipped_and_described_at_their_value() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"[
  {"platform": "x", "handle": "a", "customer_id": "C-1"},
  "not an object",
  {"platform": "x", "handle": "b", "customer_id": true},
  {"platform": "x", "handle": "c"},
  {"platform": "x",
   "handle": "A", "customer_id": "C-5"},
  {"platform": "x", "handle": "d", "customer_id": "C-6", "lifetime_value": 1e999},
  {"platform": "myspace", "handle": "e", "customer_id": "C-7"}
]"#;
    let path = write(dir.path(), "crm.json", text);
    let loaded = load(&path);
    let f = path.display();
    assert_eq!(
        skips(&loaded),
        vec![
            format!("{f}:3:3: not a JSON object"),
            format!("{f}:4:51: customer_id must be a string or a number"),
            format!("{f}:5:3: customer_id is missing"),
            format!("{f}:7:14: duplicate of line 2"),
            format!("{f}:8:76: lifetime_value \"1e999\" is not a finite non-negative number"),
            format!(
                "{f}:9:16: unknown platform \"myspace\" (use bluesky, x, mastodon, reddit or generic)"
            ),
        ]
    );
    assert_eq!(loaded.table.len(), 1);

    let lines = "{\"platform\": \"x\", \"handle\": \"a\", \"customer_id\": \"C-1\"}\n[1, 2]\n{\"platform\": \"x\", \"handle\": \"\", \"customer_id\": \"C-2\"}\n";
    let path = write(dir.path(), "crm.jsonl", lines);
    let loaded = load(&path);
    let f = path.display();
    assert_eq!(
        skips(&loaded),
        vec![
            format!("{f}:2:1: not a JSON object"),
            format!("{f}:3:29: handle is empty"),
        ]
    );
}

#[test]
fn long_fields_are_skipped_escaped_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let limits = CustomerLimits {
        max_field_bytes: 8,
        ..CustomerLimits::default()
    };
    let escaped = "\\u0041".repeat(20);
    let text = format!(
        "{{\"platform\": \"x\", \"handle\": \"abcdefghi\", \"customer_id\": \"C-1\"}}\n\
         {{\"platform\": \"x\", \"handle\": \"{escaped}\", \"customer_id\": \"C-2\"}}\n\
         {{\"platform\": \"x\", \"handle\": \"\\u0041bc\", \"customer_id\": \"C-3\"}}\n"
    );
    let path = write(dir.path(), "crm.jsonl", &text);
    let loaded = CustomerTable::load(&path, &limits).unwrap();
    let f = path.display();
    assert_eq!(
        skips(&loaded),
        vec![
            format!("{f}:1:29: handle is 9 bytes long, more than the limit of 8"),
            format!("{f}:2:29: handle is 122 bytes long, more than the limit of 8"),
        ]
    );
    assert!(loaded.table.lookup(Platform::X, "abc", None).is_some());
}

#[test]
fn descriptions_stop_at_a_hundred_but_every_skip_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("platform,handle,customer_id\n");
    for i in 0..250 {
        text.push_str(&format!("myspace,user{i},C-{i}\n"));
    }
    text.push_str("x,kept,C-x\n");
    let loaded = load(&write(dir.path(), "crm.csv", &text));
    assert_eq!(loaded.skipped, 250);
    assert_eq!(loaded.skips.len(), MAX_SKIPS_KEPT);
    assert_eq!(loaded.skips[99].line, 101);
    assert_eq!(loaded.table.len(), 1);
}

#[test]
fn header_problems_refuse_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "crm.csv",
        "Platform,Twitter Handle,tier\nx,acme,gold\n",
    );
    let e = CustomerTable::load(&path, &CustomerLimits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:1:1: the header has no handle and customer_id columns (it has: \"Platform\", \"Twitter Handle\", \"tier\")",
            path.display()
        )
    );
    assert_eq!(e.reason(), "missing_column");

    let path = write(
        dir.path(),
        "twice.csv",
        "\n\nplatform,handle,customer_id,HANDLE\nx,a,C\n",
    );
    let e = CustomerTable::load(&path, &CustomerLimits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:29: the header names the handle column twice",
            path.display()
        )
    );

    let path = write(dir.path(), "empty.csv", "");
    let e = CustomerTable::load(&path, &CustomerLimits::default()).unwrap_err();
    assert!(matches!(e, CustomerError::NoHeader { .. }), "{e}");

    // A header alone is an empty table, not an error.
    let path = write(dir.path(), "header.csv", "platform,handle,customer_id\n");
    assert!(load(&path).table.is_empty());
}

#[test]
fn malformed_json_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "crm.json",
            "[\n  {\"platform\": \"x\", \"handle\": \"a\", \"customer_id\": \"C-1\"},\n  {\"platform\": \"é\" \"handle\": \"b\"}\n]",
            "3:20: invalid JSON: expected `,` or `}`",
        ),
        (
            "object.json",
            "{\"platform\": \"x\"}",
            "1:1: invalid JSON: invalid type: map, expected a JSON array of customer objects",
        ),
        (
            "truncated.json",
            "[\n  {\"platform\": \"x\", \"handle\": \"a\", \"customer_id\": \"C-1\"},\n",
            "3:1: invalid JSON: EOF while parsing a value",
        ),
        (
            "trailing.json",
            "[]\n[]",
            "2:1: invalid JSON: trailing characters",
        ),
        (
            "crm.jsonl",
            "{\"platform\": \"x\", \"handle\": \"a\", \"customer_id\": \"C-1\"}\n{\"platform\": \"x\",\n",
            "2:17: invalid JSON: EOF while parsing an object",
        ),
    ];
    for (name, text, want) in cases {
        let path = write(dir.path(), name, text);
        let e = CustomerTable::load(&path, &CustomerLimits::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}:{want}", path.display()),
            "{name}"
        );
    }
}

#[test]
fn size_and_row_limits_refuse_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let limits = CustomerLimits {
        max_bytes: 64,
        max_rows: 2,
        ..CustomerLimits::default()
    };
    let path = write(dir.path(), "big.csv", &"x".repeat(65));
    let e = CustomerTable::load(&path, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the customer table is 65 bytes, more than the limit of 64 bytes",
            path.display()
        )
    );

    let limits = CustomerLimits {
        max_rows: 2,
        ..CustomerLimits::default()
    };
    let rows = [
        (
            "rows.csv",
            "platform,handle,customer_id\nx,a,1\nx,b,2\nmyspace,c,3\n",
            4,
        ),
        (
            "rows.json",
            "[{\"platform\":\"x\",\"handle\":\"a\",\"customer_id\":1},\n1,\n2]",
            3,
        ),
        ("rows.jsonl", "1\n\n2\n3\n", 4),
    ];
    for (name, text, line) in rows {
        let path = write(dir.path(), name, text);
        let e = CustomerTable::load(&path, &limits).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}:{line}:1: more than 2 rows, the limit", path.display()),
            "{name}"
        );
    }
}

#[test]
fn other_file_problems_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let limits = CustomerLimits::default();

    let path = write(dir.path(), "crm.xlsx", "");
    let e = CustomerTable::load(&path, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: unknown customer table format: the name must end in .csv, .json, .jsonl or .ndjson",
            path.display()
        )
    );

    let path = dir.path().join("missing.csv");
    let e = CustomerTable::load(&path, &limits).unwrap_err();
    assert_eq!(e.reason(), "read");
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", path.display())),
        "{e}"
    );

    let path = dir.path().join("latin1.csv");
    std::fs::write(&path, b"platform,handle,customer_id\nx,jos\xe9,C-1\n").unwrap();
    let e = CustomerTable::load(&path, &limits).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:2:6: not UTF-8; export the table as UTF-8",
            path.display()
        )
    );
}

#[test]
fn config_reads_with_defaults_and_refuses_unknown_keys() {
    let config: CustomersConfig = toml::from_str("path = \"crm.csv\"\n").unwrap();
    assert_eq!(config.path, Some(PathBuf::from("crm.csv")));
    assert_eq!(config.reload, Duration::from_secs(60));
    let config: CustomersConfig = toml::from_str("reload = \"5m\"\n").unwrap();
    assert_eq!(
        (config.path, config.reload),
        (None, Duration::from_secs(300))
    );
    assert!(toml::from_str::<CustomersConfig>("paths = \"crm.csv\"\n").is_err());
    let back = toml::to_string(&CustomersConfig::default()).unwrap();
    assert_eq!(
        toml::from_str::<CustomersConfig>(&back).unwrap(),
        CustomersConfig::default()
    );
}

#[test]
fn the_example_table_loads_cleanly() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/customers.example.csv");
    let loaded = load(&path);
    assert_eq!(loaded.skipped, 0, "{:?}", skips(&loaded));
    assert!((10..=15).contains(&loaded.table.len()));
    let table = loaded.table;
    for platform in [Platform::Bluesky, Platform::X, Platform::Mastodon] {
        assert!(
            table.keys_on(platform) > 0,
            "{} has rows",
            platform.as_str()
        );
    }
}
