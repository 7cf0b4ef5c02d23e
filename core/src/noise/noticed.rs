//! What noise control reads of a mention: the same fields whether the mention is in hand (a
//! single node's outbox writer) or arrives as the mention contract's JSON (a cluster's queue
//! owner, which gets mentions from a stream).

use serde::Deserialize;

use super::digest::{truncate_chars, Summary, SummaryAuthor, SUMMARY_TEXT_CHARS};
use crate::mention::Mention;
use crate::stage::score::recommend::Action;

/// The part of a mention the gate decides on, and the summary a hold keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Noticed {
    /// The post's id.
    pub post_id: String,
    /// The post it reposts or quotes.
    pub original: Option<String>,
    /// The post's text (fingerprinted for storms).
    pub text: String,
    /// `<platform>:<author id>`: whose cool-down it is.
    pub author_key: String,
    /// The recommended action (exempt actions skip the cool-down and the rate limit).
    pub action: Action,
    /// What a digest shows of it when it is held.
    pub summary: Summary,
}

impl Noticed {
    /// The view of a mention in hand.
    pub fn of(m: &Mention) -> Noticed {
        Noticed {
            post_id: m.post.id.clone(),
            original: m.post.original.clone(),
            text: m.post.text.clone(),
            author_key: format!("{}:{}", m.post.platform.as_str(), m.post.author.id),
            action: m.recommendation.action,
            summary: Summary::of(m),
        }
    }

    /// The view of a mention from its contract JSON (what [`Mention`] serializes to).
    pub fn from_contract(json: &str) -> Result<Noticed, serde_json::Error> {
        let c: Contract = serde_json::from_str(json)?;
        Ok(Noticed {
            author_key: format!("{}:{}", c.post.platform, c.post.author.id),
            summary: Summary {
                mention_id: c.mention_id,
                url: c.post.url,
                author: SummaryAuthor {
                    id: c.post.author.id,
                    handle: c.post.author.handle,
                },
                text: truncate_chars(&c.post.text, SUMMARY_TEXT_CHARS),
                urgency: c.urgency.score,
                category: c.category,
                sentiment: c.sentiment.label,
                brand: c.matches.into_iter().next().map(|m| m.brand),
            },
            post_id: c.post.id,
            original: c.post.original,
            text: c.post.text,
            action: c.recommendation.action,
        })
    }
}

/// The fields of the mention contract [`Noticed`] needs; the rest is ignored.
#[derive(Deserialize)]
struct Contract {
    mention_id: String,
    post: ContractPost,
    #[serde(default)]
    matches: Vec<ContractMatch>,
    sentiment: ContractSentiment,
    category: String,
    urgency: ContractUrgency,
    recommendation: ContractRecommendation,
}

#[derive(Deserialize)]
struct ContractPost {
    id: String,
    platform: String,
    url: Option<String>,
    author: ContractAuthor,
    text: String,
    #[serde(default)]
    original: Option<String>,
}

#[derive(Deserialize)]
struct ContractAuthor {
    id: String,
    handle: Option<String>,
}

#[derive(Deserialize)]
struct ContractMatch {
    brand: String,
}

#[derive(Deserialize)]
struct ContractSentiment {
    label: String,
}

#[derive(Deserialize)]
struct ContractUrgency {
    score: u8,
}

#[derive(Deserialize)]
struct ContractRecommendation {
    action: Action,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mention::testing::spec;
    use crate::stage::score::recommend::Action;

    #[test]
    fn the_contract_gives_the_same_view_as_the_mention() {
        let long = "word ".repeat(200);
        for m in [
            spec("1", "ann", "acme lost my parcel again").build(),
            spec("2", "bob", &long)
                .of("1")
                .action(Action::Escalate)
                .build(),
        ] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(Noticed::from_contract(&json).unwrap(), Noticed::of(&m));
        }
    }

    #[test]
    fn what_is_not_a_mention_is_an_error() {
        assert!(Noticed::from_contract("{}").is_err());
        assert!(Noticed::from_contract("not json").is_err());
    }
}
