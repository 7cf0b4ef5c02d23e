//! The template environment: strict undefined values, JSON output for single-expression
//! strings, and the few filters and functions CRM fields need beyond minijinja's built-ins.
//!
//! Each helper exists because a CRM field needs it and an expression could not say it
//! simply: `truncate` (every CRM caps its text fields, counted in characters), `oneline`
//! (subjects are one line), `slack_escape` (Slack reads `<…>` in text as links and mentions),
//! `required` (fail this message clearly instead of sending a record the CRM refuses),
//! `level` (one urgency → priority rule for every CRM), `odata_key` (Dynamics binds a case
//! to a customer by GUID or by alternate key) and `omit` (leave a field out).

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

/// The value of `omit`: a field or list item whose single expression yields it is left out.
/// A string no post or config can plausibly hold, so a real value is never dropped.
pub(super) const OMIT: &str = "\u{0}earshot:omit\u{0}";

/// Template names starting with this are single-expression leaves, rendered as JSON.
pub(super) const NATIVE_PREFIX: &str = "=";

/// The start of the message of a [`required`] failure: the load-time sample check ignores
/// these, because whether a value is there depends on the message.
pub(super) const REQUIRED_PREFIX: &str = "required: ";

/// An environment with earshot's settings and helpers and no templates yet.
pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // A typo must fail loudly: at load against the samples, never as an empty field.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Block tags on lines of their own leave no blank lines in multi-line descriptions.
    env.set_syntax(
        SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    // Single-expression leaves print their value as JSON, parsed back into the body with its
    // type; everything else is plain text (JSON escaping happens when the body serializes).
    env.set_auto_escape_callback(|name| {
        if name.starts_with(NATIVE_PREFIX) {
            AutoEscape::Json
        } else {
            AutoEscape::None
        }
    });
    env.add_global("omit", Value::from(OMIT));
    env.add_filter("truncate", truncate);
    env.add_filter("oneline", oneline);
    env.add_filter("slack_escape", slack_escape);
    env.add_function("required", required);
    env.add_function("level", level_fn);
    env.add_function("odata_key", odata_key);
    env
}

/// `s | truncate(length, end="…")`: at most `length` characters, the cut marked with `end`
/// (counted in the length), trailing spaces before the mark removed. Characters, not bytes,
/// because that is how Salesforce, Zendesk and the others count.
fn truncate(s: &str, length: usize, end: Option<&str>) -> String {
    let end = end.unwrap_or("…");
    if s.chars().count() <= length {
        return s.to_string();
    }
    let end_len = end.chars().count();
    if end_len >= length {
        // No room for the mark: a plain cut.
        return s.chars().take(length).collect();
    }
    let keep = length - end_len;
    let cut = s.char_indices().nth(keep).map_or(s.len(), |(i, _)| i);
    let mut out = s[..cut].trim_end().to_string();
    out.push_str(end);
    out
}

/// `s | oneline`: every run of whitespace (newlines included) becomes one space, ends
/// trimmed — for subjects and titles, which are one line.
pub(super) fn oneline(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `s | slack_escape`: `&`, `<`, `>` as Slack's entities, so a post saying `<!channel>`
/// does not ping a channel and stray brackets do not become links.
fn slack_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `required(value, message)`: `value`, unless it is undefined, none or an empty string —
/// then this message fails to render with `message`, instead of reaching the CRM without a
/// field it insists on.
fn required(value: Value, message: Option<&str>) -> Result<Value, Error> {
    if value.is_undefined() || value.is_none() || value.as_str() == Some("") {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "{REQUIRED_PREFIX}{}",
                message.unwrap_or("a required value is missing")
            ),
        ));
    }
    Ok(value)
}

/// The priority level of an urgency: `urgent` for a crisis or urgency ≥ 90, `high` when the
/// recommendation is to escalate or urgency ≥ 70 (the shipped `escalate_at`), `medium` from
/// 40, else `low`. One rule, which each template maps to its CRM's names.
pub(super) fn level(urgency: i64, category: &str, action: &str) -> &'static str {
    if category == "crisis" || urgency >= 90 {
        "urgent"
    } else if action == "escalate" || urgency >= 70 {
        "high"
    } else if urgency >= 40 {
        "medium"
    } else {
        "low"
    }
}

/// `level(urgency, category=none, action=none)`: [`level`] for templates (a digest's
/// examples, say).
fn level_fn(urgency: i64, category: Option<&str>, action: Option<&str>) -> &'static str {
    level(
        urgency,
        category.unwrap_or_default(),
        action.unwrap_or_default(),
    )
}

/// `odata_key(id, key_attribute)`: how Dynamics addresses a record in `@odata.bind` — the
/// id itself when it is a GUID, else the alternate key `key_attribute='id'` (quotes doubled),
/// so a CRM customer id such as `ACME-C-1001` binds through `accountnumber`.
fn odata_key(id: &str, key_attribute: &str) -> String {
    if is_guid(id) {
        id.to_string()
    } else {
        format!("{key_attribute}='{}'", id.replace('\'', "''"))
    }
}

/// `8-4-4-4-12` hexadecimal digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        let cases = [
            ("short", 10, "short"),
            ("exactly ten", 11, "exactly ten"),
            ("a longer sentence here", 10, "a longer…"),
            ("ééééééé", 4, "ééé…"),
            ("日本語のテキスト", 5, "日本語の…"),
            ("abc", 0, ""),
        ];
        for (s, n, want) in cases {
            let got = truncate(s, n, None);
            assert_eq!(got, want, "truncate({s:?}, {n})");
            assert!(got.chars().count() <= n);
        }
        assert_eq!(truncate("abcdefgh", 5, Some("...")), "ab...");
        assert_eq!(truncate("abcdefgh", 2, Some("...")), "ab");
    }

    #[test]
    fn oneline_and_slack_escape() {
        assert_eq!(oneline("  a\n\tb  \r\n c "), "a b c");
        assert_eq!(
            slack_escape("<!channel> & <b>"),
            "&lt;!channel&gt; &amp; &lt;b&gt;"
        );
    }

    #[test]
    fn odata_key_uses_guids_as_they_are_and_other_ids_as_alternate_keys() {
        let guid = "7eb682f1-ca75-e511-80d4-00155d2a68d1";
        assert_eq!(odata_key(guid, "accountnumber"), guid);
        assert_eq!(
            odata_key("ACME-C-1001", "accountnumber"),
            "accountnumber='ACME-C-1001'"
        );
        assert_eq!(odata_key("O'Brien", "name"), "name='O''Brien'");
    }

    #[test]
    fn levels() {
        assert_eq!(level(10, "crisis", "monitor"), "urgent");
        assert_eq!(level(95, "praise", "respond"), "urgent");
        assert_eq!(level(20, "complaint", "escalate"), "high");
        assert_eq!(level(73, "complaint", "respond"), "high");
        assert_eq!(level(40, "question", "respond"), "medium");
        assert_eq!(level(39, "question", "respond"), "low");
    }
}
