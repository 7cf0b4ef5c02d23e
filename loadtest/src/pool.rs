//! Pre-rendered firehose frames: generate a pool of events once, then send them over and over
//! with only their stamps and post ids rewritten in place.
//!
//! # Why
//! Rendering an event through `serde_json` costs microseconds; at 100k events/s that is most
//! of a core, taken from the process under test on a two-core machine, so the load generator
//! rather than earshot set the ceiling of the `steps` case. A rendered frame only has to
//! change in three fixed-width places to be a new, distinct event with a fresh send time: the
//! `time_us` number (16 digits from 2001 to 2286), the record's `createdAt` (RFC 3339 with
//! microseconds, 27 bytes from year 1000 to 9999) and, for posts, the `rkey` (13 characters),
//! so that every post sent has its own URI and a repeat of the pool is not a duplicate.
//!
//! # Invariants
//! - [`Pool::render`] writes a frame that differs from its template only at those offsets,
//!   and the result is still valid JSON (the patched values have the template's width).
//! - The rkey of send number `n` encodes `n` (base-32, sortable like a TID), so no two posts
//!   of one run share a URI.

use earshot::timestamp::rfc3339_micros;
use earshot_sim::generator::{GenEvent, Generator};

/// The `time_us` templates are rendered with: 16 digits, like every send time until 2286.
const PLACEHOLDER_US: u64 = 1_000_000_000_000_000;

/// TID alphabet (base-32, sortable).
const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// One rendered event and where its variable parts lie.
#[derive(Debug, Clone)]
struct Template {
    frame: Vec<u8>,
    /// Offset of the 16 digits of `time_us`.
    time_us_at: usize,
    /// Offset of the 27 bytes of the stamped `createdAt`, for posts.
    created_at_at: Option<usize>,
    /// Offset of the 13 characters of the rkey, and the URI up to it, for posts that mention
    /// a brand (whose URIs the receiver must see).
    rkey_at: Option<usize>,
    uri_prefix: Option<String>,
    mentions: bool,
    /// The commit's collection, for the simulator's `wantedCollections` filter.
    collection: Option<String>,
}

/// A rendered event ready to send.
#[derive(Debug)]
pub struct Rendered<'p> {
    /// The frame bytes.
    pub frame: Vec<u8>,
    /// The post's `at://` URI when it mentions a brand.
    pub mention_uri: Option<String>,
    /// The commit's collection (`None` for identity and account events).
    pub collection: Option<&'p str>,
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A generated event did not carry a field where the pool expects it.
    #[error("generated event {index} has no {what} to rewrite: {frame}")]
    Shape {
        /// Index of the event in the pool.
        index: usize,
        /// The missing part.
        what: &'static str,
        /// The frame as generated.
        frame: String,
    },
}

/// A cycle of pre-rendered events.
#[derive(Debug)]
pub struct Pool {
    templates: Vec<Template>,
}

impl Pool {
    /// Renders `size` events from `generator` (which must stamp `createdAt`).
    pub fn new(generator: &mut Generator, size: usize) -> Result<Pool, PoolError> {
        let stamp = rfc3339_micros(PLACEHOLDER_US);
        let templates = (0..size.max(1))
            .map(|index| template(index, generator.next_event(PLACEHOLDER_US), &stamp))
            .collect::<Result<_, _>>()?;
        Ok(Pool { templates })
    }

    /// Number of distinct templates.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether the pool is empty (never, once built).
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Send number `n` (counting from 0 over the whole run), stamped `time_us`.
    pub fn render(&self, n: u64, time_us: u64) -> Rendered<'_> {
        let t = &self.templates[(n % self.templates.len() as u64) as usize];
        let mut frame = t.frame.clone();
        let digits = format!("{time_us:016}");
        frame[t.time_us_at..t.time_us_at + 16].copy_from_slice(&digits.as_bytes()[..16]);
        if let Some(at) = t.created_at_at {
            frame[at..at + 27].copy_from_slice(rfc3339_micros(time_us).as_bytes());
        }
        let mut mention_uri = None;
        if let Some(at) = t.rkey_at {
            let rkey = tid(n);
            frame[at..at + 13].copy_from_slice(&rkey);
            if t.mentions {
                let prefix = t.uri_prefix.as_deref().unwrap_or_default();
                mention_uri = Some(format!(
                    "{prefix}{}",
                    std::str::from_utf8(&rkey).unwrap_or_default()
                ));
            }
        }
        Rendered {
            frame,
            mention_uri,
            collection: t.collection.as_deref(),
        }
    }
}

/// 13 base-32 characters encoding `n`, most significant first.
fn tid(n: u64) -> [u8; 13] {
    let mut out = [b'2'; 13];
    let mut v = n;
    for c in out.iter_mut().rev() {
        *c = TID_ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out
}

fn template(index: usize, event: GenEvent, stamp: &str) -> Result<Template, PoolError> {
    let shape = |what| PoolError::Shape {
        index,
        what,
        frame: event.json.clone(),
    };
    let json = event.json.as_str();
    let time_us_at = find_after(
        json,
        &format!("\"time_us\":{PLACEHOLDER_US}"),
        "\"time_us\":",
    )
    .ok_or_else(|| shape("time_us"))?;
    let (created_at_at, rkey_at, uri_prefix) = match &event.post_uri {
        Some(uri) => {
            let created = find_after(
                json,
                &format!("\"createdAt\":\"{stamp}\""),
                "\"createdAt\":\"",
            )
            .ok_or_else(|| shape("createdAt"))?;
            let (prefix, rkey) = uri.rsplit_once('/').ok_or_else(|| shape("post URI"))?;
            if rkey.len() != 13 {
                return Err(shape("13-character rkey"));
            }
            let rkey_at = find_after(json, &format!("\"rkey\":\"{rkey}\""), "\"rkey\":\"")
                .ok_or_else(|| shape("rkey"))?;
            (Some(created), Some(rkey_at), Some(format!("{prefix}/")))
        }
        None => (None, None, None),
    };
    Ok(Template {
        collection: collection(json).map(str::to_owned),
        time_us_at,
        created_at_at,
        rkey_at,
        uri_prefix,
        mentions: event.mentions.is_some(),
        frame: event.json.into_bytes(),
    })
}

/// The value of the first `"collection"` key.
fn collection(json: &str) -> Option<&str> {
    let key = "\"collection\":\"";
    let at = json.find(key)? + key.len();
    let len = json[at..].find('"')?;
    Some(&json[at..at + len])
}

/// Offset just past `key` in the one occurrence of `whole` (key plus value) in `json`.
fn find_after(json: &str, whole: &str, key: &str) -> Option<usize> {
    let at = json.find(whole)?;
    (json[at + whole.len()..].find(whole).is_none()).then_some(at + key.len())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use earshot_sim::generator::GenSettings;

    use super::*;

    fn pool(size: usize) -> Pool {
        let mut g = Generator::new(GenSettings {
            seed: 5,
            mention_rate: 0.3,
        })
        .stamp_created_at(true);
        Pool::new(&mut g, size).expect("pool")
    }

    #[test]
    fn rendered_frames_are_the_generators_events_restamped() {
        let p = pool(200);
        let t = 1_795_000_123_456_789u64;
        let mut posts = 0;
        for n in 0..200u64 {
            let r = p.render(n, t + n);
            let v: serde_json::Value = serde_json::from_slice(&r.frame).expect("valid JSON");
            assert_eq!(v["time_us"], t + n, "{v}");
            assert_eq!(
                r.collection,
                v["commit"]["collection"].as_str(),
                "collection of {v}"
            );
            if v["commit"]["collection"] == "app.bsky.feed.post"
                && v["commit"]["operation"] == "create"
            {
                posts += 1;
                assert_eq!(v["commit"]["record"]["createdAt"], rfc3339_micros(t + n));
                let rkey = v["commit"]["rkey"].as_str().expect("rkey");
                assert_eq!(rkey.as_bytes(), tid(n));
                if let Some(uri) = &r.mention_uri {
                    assert_eq!(
                        *uri,
                        format!(
                            "at://{}/app.bsky.feed.post/{rkey}",
                            v["did"].as_str().unwrap()
                        )
                    );
                }
            } else {
                assert!(r.mention_uri.is_none());
            }
        }
        assert!(posts > 100, "{posts} posts of 200");
    }

    #[test]
    fn repeats_of_the_pool_are_distinct_posts() {
        let p = pool(50);
        let mut uris = HashSet::new();
        let mut mentions = 0;
        for n in 0..500u64 {
            if let Some(uri) = p.render(n, PLACEHOLDER_US + n).mention_uri {
                mentions += 1;
                assert!(uris.insert(uri), "send {n} repeats a URI");
            }
        }
        assert!(mentions >= 10 * 5, "{mentions} mentions in 10 cycles");
    }

    #[test]
    fn tids_are_fixed_width_and_sort_like_their_numbers() {
        let a = tid(31);
        let b = tid(32);
        assert_eq!(&a, b"222222222222z");
        assert_eq!(&b, b"2222222222232");
        assert!(a < b);
        assert!(tid(u64::MAX) > tid(u64::MAX - 1));
    }
}
