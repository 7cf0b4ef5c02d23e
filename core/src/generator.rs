//! A deterministic generator of Jetstream events for the demo and the tests.
//!
//! Events have the exact shape of Jetstream v1 output (as in
//! `core/tests/fixtures/formats/jetstream-sample.ndjson`): post creates with `langs`, replies,
//! likes, deletes, identity and account events. A configurable share of posts mention the
//! brands of the example rule pack (`rules/`) in the ways people write them — as written,
//! lower or upper case, `#acmefail`, `@acmehq.bsky.social`, possessives — so the demo routes
//! real-looking mentions. The generator records which brand each post mentions, so tests know
//! exactly which mentions must arrive. Background text is drawn from words that never contain
//! a brand term.

use serde_json::json;

/// Send-time stamps are written in the same RFC 3339 form as mention timestamps.
use crate::timestamp::rfc3339_micros;

/// One generated event.
#[derive(Debug, Clone)]
pub struct GenEvent {
    /// The frame (one JSON document).
    pub json: String,
    /// `time_us` of the event.
    pub time_us: u64,
    /// The post's `at://` URI, for post creates.
    pub post_uri: Option<String>,
    /// The brand id the post mentions (`acme`, `globex`, `initech`), if any.
    pub mentions: Option<&'static str>,
}

/// Generator settings.
#[derive(Debug, Clone, Copy)]
pub struct GenSettings {
    /// Seed: the same seed gives the same events.
    pub seed: u64,
    /// Share of post creates that mention a brand.
    pub mention_rate: f64,
}

impl Default for GenSettings {
    fn default() -> Self {
        Self {
            seed: 1,
            mention_rate: 0.05,
        }
    }
}

/// The generator.
#[derive(Debug)]
pub struct Generator {
    rng: fastrand::Rng,
    settings: GenSettings,
    seq: u64,
    /// Stamp each record's `createdAt` with its `time_us` instead of a fixed date.
    stamp_created_at: bool,
}

const WORDS: &[&str] = &[
    "the", "a", "today", "really", "coffee", "weather", "morning", "train", "music", "game",
    "friends", "weekend", "city", "book", "movie", "garden", "cat", "dog", "lunch", "news",
    "think", "love", "busy", "finally", "again", "tired", "sunny", "rain", "walk", "project",
    "meeting", "tonight", "happy", "new", "old", "big", "small", "just", "very", "maybe",
];

const LANGS: &[(&str, u32)] = &[("en", 70), ("es", 10), ("pt", 10), ("ja", 10)];

/// (brand id, how people write it).
const BRAND_FORMS: &[(&str, &[&str])] = &[
    (
        "acme",
        &[
            "Acme",
            "acme",
            "ACME",
            "#acmefail",
            "@acmehq.bsky.social",
            "Acme's",
            "#Acme",
            "Acme Cloud",
            "Rocket Skates",
        ],
    ),
    (
        "globex",
        &[
            "Globex",
            "globex",
            "#globex",
            "@globexcorp.bsky.social",
            "GLOBEX",
        ],
    ),
    ("initech", &["Initech", "initech", "#initech", "Initech's"]),
];

const TEMPLATES_EN: &[&str] = &[
    "{b} support has not answered my ticket in three days. still waiting",
    "my {b} order arrived broken, I want a refund",
    "is {b} down for anyone else? the app keeps crashing",
    "absolutely love the new {b} update, great work!",
    "does {b} ship to Canada?",
    "{b} charged me twice this month. terrible service",
    "thanks {b}, the support team fixed it in minutes 🙌",
    "{b} data breach? just got a weird password reset email",
    "switching away from {b}, the prices keep going up",
    "how do I cancel my {b} subscription?",
];
const TEMPLATES_ES: &[&str] = &[
    "{b} no funciona otra vez, qué desastre",
    "me encanta {b}, muy buen servicio",
    "¿alguien sabe si {b} hace envíos?",
];
const TEMPLATES_PT: &[&str] = &[
    "o app da {b} não funciona desde ontem",
    "adorei o atendimento da {b}",
    "alguém já usou {b}?",
];
const TEMPLATES_JA: &[&str] = &[
    "{b}のアプリが動かない…障害？",
    "{b}の新しいサービス最高！",
    "{b}って日本でも使える？",
];

/// What people post when a brand is having a bad day (the demo's injected spike): negative,
/// and built around a few words that rarely appear otherwise, which are the spike's driving
/// terms.
const CRISIS_TEMPLATES: &[&str] = &[
    "{b} outage again?? checkout is broken and my payment failed",
    "is {b} down? outage for an hour now, nothing loads",
    "{b} checkout broken, charged twice and no order. terrible",
    "the {b} outage is ridiculous, payment failed three times",
    "{b} please fix checkout, this outage is costing us money",
];

impl Generator {
    /// A post about the brand `acme` from the crisis wave (see `--spike-after` of
    /// `earshot demo`).
    pub fn crisis_event(&mut self, time_us: u64) -> GenEvent {
        self.seq += 1;
        let did = self.did();
        let rev = self.tid();
        let rkey = self.tid();
        let form = self.pick(&["Acme", "acme", "@acmehq.bsky.social", "ACME"]);
        let text = self.pick(CRISIS_TEMPLATES).replace("{b}", form);
        let json = json!({
            "did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": rev, "operation": "create", "collection": "app.bsky.feed.post",
                "rkey": rkey, "cid": "bafyreihdemopostcid", "record": {
                    "$type": "app.bsky.feed.post", "createdAt": self.created_at(time_us),
                    "langs": ["en"], "text": text}},
        })
        .to_string();
        GenEvent {
            json,
            time_us,
            post_uri: Some(format!("at://{did}/app.bsky.feed.post/{rkey}")),
            mentions: Some("acme"),
        }
    }

    /// A generator.
    pub fn new(settings: GenSettings) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(settings.seed),
            settings,
            seq: 0,
            stamp_created_at: false,
        }
    }

    /// Stamps each record's `createdAt` with the event's `time_us` (RFC 3339, microseconds)
    /// instead of a fixed date, so a load test that passes the send time as `time_us` can
    /// measure send-to-delivery latency from the delivered mention's `post.created_at`. The
    /// random sequence, and so every other byte of the events, stays the same.
    pub fn stamp_created_at(mut self, on: bool) -> Self {
        self.stamp_created_at = on;
        self
    }

    fn created_at(&self, time_us: u64) -> String {
        if self.stamp_created_at {
            rfc3339_micros(time_us)
        } else {
            "2026-11-23T12:00:00.000Z".to_string()
        }
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.usize(..items.len())]
    }

    fn tid(&mut self) -> String {
        const ALPHABET: &[u8] = b"234567abcdefghijklmnopqrstuvwxyz";
        (0..13)
            .map(|_| ALPHABET[self.rng.usize(..32)] as char)
            .collect()
    }

    fn did(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
        // A pool of 50k authors, so repeat authors occur as they do on the real firehose.
        let mut r = fastrand::Rng::with_seed(self.rng.u64(..50_000));
        let id: String = (0..24).map(|_| ALPHABET[r.usize(..32)] as char).collect();
        format!("did:plc:{id}")
    }

    fn lang(&mut self) -> &'static str {
        let total: u32 = LANGS.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.u32(..total);
        for (lang, w) in LANGS {
            if x < *w {
                return lang;
            }
            x -= w;
        }
        "en"
    }

    fn chatter(&mut self) -> String {
        let n = self.rng.usize(4..16);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(self.pick(WORDS));
        }
        s
    }

    /// The next event, stamped `time_us`.
    pub fn next_event(&mut self, time_us: u64) -> GenEvent {
        self.seq += 1;
        let did = self.did();
        let rev = self.tid();
        let roll = self.rng.u32(..100);
        if roll >= 85 {
            let (json, _) = match roll {
                85..=94 => (self.like(&did, &rev, time_us), ()),
                95..=97 => (self.delete(&did, &rev, time_us), ()),
                98 => (
                    json!({"did": did, "time_us": time_us, "kind": "identity",
                    "identity": {"did": did, "handle": format!("user{}.bsky.social", self.seq),
                    "seq": self.seq, "time": "2026-11-23T12:00:00.000Z"}})
                    .to_string(),
                    (),
                ),
                _ => (
                    json!({"did": did, "time_us": time_us, "kind": "account",
                    "account": {"active": true, "did": did, "seq": self.seq,
                    "time": "2026-11-23T12:00:00.000Z"}})
                    .to_string(),
                    (),
                ),
            };
            return GenEvent {
                json,
                time_us,
                post_uri: None,
                mentions: None,
            };
        }
        let rkey = self.tid();
        let lang = self.lang();
        let (text, mentions) = if self.rng.f64() < self.settings.mention_rate {
            let (brand, forms) = BRAND_FORMS[self.rng.usize(..BRAND_FORMS.len())];
            let form = self.pick(forms);
            let templates = match lang {
                "es" => TEMPLATES_ES,
                "pt" => TEMPLATES_PT,
                "ja" => TEMPLATES_JA,
                _ => TEMPLATES_EN,
            };
            // Japanese is written without spaces; a Latin brand name stays a separate token.
            let form = if lang == "ja" { forms[0] } else { form };
            (self.pick(templates).replace("{b}", form), Some(brand))
        } else {
            (self.chatter(), None)
        };
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "createdAt": self.created_at(time_us),
            "langs": [lang],
            "text": text,
        });
        if self.rng.u32(..100) < 30 {
            let parent = format!("at://{}/app.bsky.feed.post/{}", self.did(), self.tid());
            record["reply"] = json!({
                "parent": {"cid": "bafyreihdemoparentcid", "uri": parent},
                "root": {"cid": "bafyreihdemoparentcid", "uri": parent},
            });
        }
        let json = json!({
            "did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": rev, "operation": "create", "collection": "app.bsky.feed.post",
                "rkey": rkey, "record": record, "cid": "bafyreihdemopostcid"},
        })
        .to_string();
        GenEvent {
            json,
            time_us,
            post_uri: Some(format!("at://{did}/app.bsky.feed.post/{rkey}")),
            mentions,
        }
    }

    fn like(&mut self, did: &str, rev: &str, time_us: u64) -> String {
        let subject = format!("at://{}/app.bsky.feed.post/{}", self.did(), self.tid());
        json!({"did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": rev, "operation": "create", "collection": "app.bsky.feed.like",
            "rkey": self.tid(), "record": {"$type": "app.bsky.feed.like",
            "createdAt": "2026-11-23T12:00:00.000Z",
            "subject": {"cid": "bafyreihdemosubjectcid", "uri": subject}},
            "cid": "bafyreihdemolikecid"}})
        .to_string()
    }

    fn delete(&mut self, did: &str, rev: &str, time_us: u64) -> String {
        json!({"did": did, "time_us": time_us, "kind": "commit",
            "commit": {"rev": rev, "operation": "delete", "collection": "app.bsky.feed.post",
            "rkey": self.tid()}})
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamped_created_at_is_the_send_time_and_changes_nothing_else() {
        let settings = GenSettings {
            seed: 3,
            mention_rate: 0.5,
        };
        let mut plain = Generator::new(settings);
        let mut stamped = Generator::new(settings).stamp_created_at(true);
        let t = 1_795_000_000_123_456;
        assert_eq!(rfc3339_micros(t), "2026-11-18T11:06:40.123456Z");
        for i in 0..200 {
            let (a, b) = (plain.next_event(t + i), stamped.next_event(t + i));
            assert_eq!(a.post_uri, b.post_uri);
            let (va, vb): (serde_json::Value, serde_json::Value) = (
                serde_json::from_str(&a.json).unwrap(),
                serde_json::from_str(&b.json).unwrap(),
            );
            if b.post_uri.is_some() {
                let created = vb["commit"]["record"]["createdAt"].as_str().unwrap();
                assert_eq!(created, rfc3339_micros(t + i));
                let mut vb = vb.clone();
                vb["commit"]["record"]["createdAt"] = va["commit"]["record"]["createdAt"].clone();
                assert_eq!(va, vb);
            } else {
                assert_eq!(a.json, b.json);
            }
        }
    }

    #[test]
    fn same_seed_same_events_and_mentions_at_the_configured_rate() {
        let settings = GenSettings {
            seed: 9,
            mention_rate: 0.2,
        };
        let a: Vec<_> = {
            let mut g = Generator::new(settings);
            (0..2000).map(|i| g.next_event(1_000 + i)).collect()
        };
        let mut g = Generator::new(settings);
        for (i, e) in a.iter().enumerate() {
            assert_eq!(e.json, g.next_event(1_000 + i as u64).json);
        }
        let posts = a.iter().filter(|e| e.post_uri.is_some()).count();
        let mentions = a.iter().filter(|e| e.mentions.is_some()).count();
        assert!(posts > 1500 && posts < 1900, "{posts}");
        let rate = mentions as f64 / posts as f64;
        assert!((0.15..0.25).contains(&rate), "{rate}");
        for e in &a {
            let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
            assert_eq!(v["time_us"].as_u64(), Some(e.time_us));
        }
    }
}
