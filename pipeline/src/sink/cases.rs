//! Cases: one CRM ticket per conversation, not per post.
//!
//! A customer who posts three times about the same problem (a thread of replies, or three
//! posts in an afternoon) is one case for the team that answers. When a queue delivers a
//! mention that opens a ticket, it keeps the case: the mention's id and the ticket id the
//! CRM answered with, under the mention's thread key (what replies call the post) and its
//! author. A later mention that replies to a post of the case, belongs to the same
//! conversation, or comes from the same author within `author_window`, is sent as a
//! follow-up of that ticket (a comment, a note) instead of a ticket of its own; the generic
//! envelope says `mention.followup` and names the first mention.
//!
//! This module is the pure part: the settings, what a mention says about its thread
//! ([`Keys`]), and which stored case a mention continues ([`choose`]). The store keeps the
//! cases (the outbox file on a single node, a key-value bucket in a cluster); the dispatcher
//! looks them up before an attempt and records them after a delivery.
//!
//! Bounds: a case is kept `keep` after its last mention (then pruned), and only routed
//! mentions of one queue make cases, so the table holds at most a queue's mentions of `keep`.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// `[queue.cases]`: how a webhook queue joins mentions into cases.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CasesConfig {
    /// Whether mentions that continue a case go as follow-ups. Default: on for the CRM
    /// formats (their templates have a `[followup]` section); off for `slack` (a message per
    /// mention is what a channel wants) and for `generic`, whose receivers opt in to
    /// `mention.followup` with `true`.
    #[serde(default)]
    pub follow_ups: Option<bool>,
    /// An author's next mention within this long of the case's last one joins the case;
    /// `"0"`: only replies join.
    #[serde(default = "default_author_window", with = "crate::duration")]
    pub author_window: Duration,
    /// How long after its last mention a case still takes replies.
    #[serde(default = "default_keep", with = "crate::duration")]
    pub keep: Duration,
}

/// The longest a case can be kept: the cluster's case bucket forgets keys this old.
pub const MAX_KEEP: Duration = Duration::from_secs(30 * 24 * 3600);

fn default_author_window() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn default_keep() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

impl Default for CasesConfig {
    fn default() -> Self {
        Self {
            follow_ups: None,
            author_window: default_author_window(),
            keep: default_keep(),
        }
    }
}

impl CasesConfig {
    /// What is wrong with the settings, if anything (for the config's `file:line:col`).
    pub fn problem(&self) -> Option<String> {
        if self.keep.is_zero() || self.keep > MAX_KEEP {
            return Some(format!(
                "cases.keep: more than 0 and at most {} days",
                MAX_KEEP.as_secs() / 86_400
            ));
        }
        if self.author_window > self.keep {
            return Some("cases.author_window: at most cases.keep".into());
        }
        None
    }
}

/// The settings a dispatcher works with, once the queue is known to send follow-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseSettings {
    /// See [`CasesConfig::author_window`].
    pub author_window: Duration,
    /// See [`CasesConfig::keep`].
    pub keep: Duration,
}

/// A case as stored: the mention that opened it, the CRM's ticket id, and when its last
/// mention was delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The message id of the mention that opened the case.
    pub mention_id: String,
    /// The CRM's id of the ticket (absent for the generic envelope, whose receiver is named by
    /// the first mention's id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    /// When the case's last mention was delivered (µs since the epoch).
    pub at_us: u64,
}

impl Case {
    /// The stored form.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a case always serializes")
    }

    /// Reads the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Option<Case> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The longest key kept: thread keys are URIs and ids, well under it; a longer one names no
/// case rather than swelling the table.
const MAX_KEY: usize = 512;

/// What a mention says about its conversation, as case keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `post:<thread key>`: where replies to this mention find its case.
    pub own: String,
    /// `author:<platform>:<id>`.
    pub author: String,
    /// `post:<parent>` of a reply.
    pub parent: Option<String>,
    /// `post:<root>` of a reply deeper in a conversation.
    pub root: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    post: DataPost,
}

#[derive(Deserialize)]
struct DataPost {
    platform: String,
    author: DataAuthor,
    thread: Option<DataThread>,
}

#[derive(Deserialize)]
struct DataAuthor {
    id: String,
}

#[derive(Deserialize)]
struct DataThread {
    key: String,
    parent: Option<String>,
    root: Option<String>,
}

impl Keys {
    /// The keys of a mention's data; `None` when it is not a mention carrying `post.thread`
    /// (an entry written before mentions had it: it opens a ticket of its own).
    pub fn of(data: &RawValue) -> Option<Keys> {
        let d: Data = serde_json::from_str(data.get()).ok()?;
        let t = d.post.thread?;
        let key = |k: &str| (k.len() <= MAX_KEY).then(|| format!("post:{k}"));
        Some(Keys {
            own: key(&t.key)?,
            author: Some(format!("author:{}:{}", d.post.platform, d.post.author.id))
                .filter(|a| a.len() <= MAX_KEY)?,
            parent: t.parent.as_deref().and_then(key),
            root: t.root.as_deref().and_then(key),
        })
    }

    /// The keys a case is looked up by, in order of preference: the conversation (parent,
    /// root), then the author.
    pub fn lookups(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(3);
        out.extend(self.parent.as_deref());
        out.extend(self.root.as_deref());
        out.push(&self.author);
        out
    }

    /// The keys a delivered mention keeps its case under.
    pub fn records(&self) -> [&str; 2] {
        [&self.own, &self.author]
    }

    /// Whether a mention with these keys could continue the case of a mention whose
    /// [`Keys::records`] are in `opening`: it waits for that delivery to end, so a burst of
    /// posts by one author makes one ticket and follow-ups, not several tickets.
    pub fn waits_for(&self, opening: &HashSet<String>) -> bool {
        self.lookups().iter().any(|k| opening.contains(*k))
    }
}

/// The case a mention continues, of those stored under its [`Keys::lookups`] (`found`, in
/// the same order): the first that is not the mention's own (kept by an attempt whose ack a
/// crash lost) and is recent enough (`keep` for the conversation, `author_window` for the
/// author).
pub fn choose(
    keys: &Keys,
    found: &[Option<Case>],
    mention_id: &str,
    now_us: u64,
    s: &CaseSettings,
) -> Option<Case> {
    keys.lookups().iter().zip(found).find_map(|(key, case)| {
        let case = case.as_ref()?;
        let within = if *key == keys.author {
            s.author_window
        } else {
            s.keep
        };
        let age = Duration::from_micros(now_us.saturating_sub(case.at_us));
        (case.mention_id != mention_id && !within.is_zero() && age <= within).then(|| case.clone())
    })
}

/// Whether a stored case is past `keep` at `now_us` (or unreadable): pruned.
pub fn stale(value: &[u8], now_us: u64, keep: Duration) -> bool {
    Case::from_bytes(value)
        .is_none_or(|c| Duration::from_micros(now_us.saturating_sub(c.at_us)) > keep)
}

/// The longest ticket id kept. CRM ids are short (Salesforce 18 characters, a Dataverse GUID
/// 36, Zendesk, HubSpot and Zoho numbers).
const MAX_TICKET_ID: usize = 128;

/// The ticket id at `pointer` in a CRM's JSON answer: a string or a number of letters,
/// digits, `-`, `_` and `.` (it goes into follow-up URLs), else `None`.
pub fn ticket_id(body: &[u8], pointer: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = match v.pointer(pointer)? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let fits = !id.is_empty()
        && id.len() <= MAX_TICKET_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    fits.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(parent: Option<&str>) -> Keys {
        let parent = parent.map_or("null".to_string(), |p| format!("\"{p}\""));
        let data = RawValue::from_string(format!(
            r#"{{"mention_id":"m_2","post":{{"id":"x:2","platform":"x","author":{{"id":"42"}},"thread":{{"key":"x:2","parent":{parent}}}}}}}"#
        ))
        .unwrap();
        Keys::of(&data).unwrap()
    }

    const S: CaseSettings = CaseSettings {
        author_window: Duration::from_secs(3600),
        keep: Duration::from_secs(86_400),
    };

    fn case(id: &str, age_s: u64) -> Option<Case> {
        Some(Case {
            mention_id: id.into(),
            ticket_id: Some("7".into()),
            at_us: (100_000 - age_s) * 1_000_000,
        })
    }

    const NOW: u64 = 100_000 * 1_000_000;

    #[test]
    fn keys_come_from_the_mention_thread() {
        let k = keys(Some("x:1"));
        assert_eq!(k.own, "post:x:2");
        assert_eq!(k.author, "author:x:42");
        assert_eq!(k.lookups(), ["post:x:1", "author:x:42"]);
        assert_eq!(k.records(), ["post:x:2", "author:x:42"]);
        let old =
            RawValue::from_string(r#"{"post":{"platform":"x","author":{"id":"42"}}}"#.to_string())
                .unwrap();
        assert_eq!(Keys::of(&old), None, "a mention without post.thread");
    }

    /// A reply joins the case of its parent for `keep`; the author's case only within
    /// `author_window`; a mention never continues its own case.
    #[test]
    fn which_case_a_mention_continues() {
        let reply = keys(Some("x:1"));
        let pick = |found: &[Option<Case>], k: &Keys| {
            choose(k, found, "m_2", NOW, &S).map(|c| c.mention_id)
        };
        assert_eq!(
            pick(&[case("m_1", 80_000), None], &reply).as_deref(),
            Some("m_1")
        );
        assert_eq!(
            pick(&[case("m_1", 90_000), None], &reply),
            None,
            "past keep"
        );
        assert_eq!(
            pick(&[None, case("m_0", 600)], &reply).as_deref(),
            Some("m_0"),
            "the author's, within the window"
        );
        assert_eq!(
            pick(&[None, case("m_0", 4000)], &reply),
            None,
            "past the window"
        );
        assert_eq!(pick(&[None, case("m_2", 10)], &reply), None, "its own");
        let no_window = CaseSettings {
            author_window: Duration::ZERO,
            ..S
        };
        assert_eq!(
            choose(&reply, &[None, case("m_0", 1)], "m_2", NOW, &no_window),
            None
        );
    }

    #[test]
    fn a_burst_waits_for_the_mention_opening_the_case() {
        let first = keys(None);
        let opening: HashSet<String> = first.records().iter().map(|s| s.to_string()).collect();
        assert!(keys(Some("x:9")).waits_for(&opening), "same author");
        assert!(!keys(Some("x:9")).waits_for(&HashSet::new()));
    }

    #[test]
    fn ticket_ids_are_read_and_checked() {
        assert_eq!(
            ticket_id(br#"{"ticket":{"id":35436}}"#, "/ticket/id").as_deref(),
            Some("35436")
        );
        assert_eq!(
            ticket_id(br#"{"id":"5003000000D8cuI"}"#, "/id").as_deref(),
            Some("5003000000D8cuI")
        );
        assert_eq!(ticket_id(br#"{"id":"../admin"}"#, "/id"), None);
        assert_eq!(ticket_id(br#"{"id":null}"#, "/id"), None);
        assert_eq!(ticket_id(b"not json", "/id"), None);
    }

    #[test]
    fn stale_cases_are_pruned() {
        let keep = Duration::from_secs(100);
        let fresh = case("m_1", 50).unwrap().to_bytes();
        let old = case("m_1", 150).unwrap().to_bytes();
        assert!(!stale(&fresh, NOW, keep));
        assert!(stale(&old, NOW, keep));
        assert!(stale(b"{", NOW, keep));
    }
}
