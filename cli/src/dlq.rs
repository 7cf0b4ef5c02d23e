//! `earshot dlq list | replay | purge`: the dead letters of a queue. On a single node, through
//! the admin server of a running earshot when one answers, else in the outbox file itself; with
//! `[cluster]` in the config, in the cluster's stream EARSHOT_DLQ
//! ([`earshot::cluster::dead`]). The options and the output are the same on both.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use earshot::config::Config;
use earshot::dlq::{DeadLetter, Filter};

use crate::admin_client::AdminClient;
use crate::load_config_unchecked;

#[derive(Subcommand)]
pub(crate) enum DlqAction {
    /// List dead letters (one line each; --json: the full entries).
    List {
        #[command(flatten)]
        select: DlqSelect,
        /// One JSON document per dead letter, with its payload data.
        #[arg(long)]
        json: bool,
    },
    /// Put dead letters back into the outbox (same webhook-id, attempts reset); a disabled
    /// queue delivers again. On a cluster: back on their queues' subjects.
    Replay {
        #[command(flatten)]
        select: DlqSelect,
    },
    /// Delete dead letters (all of them only with --all).
    Purge {
        #[command(flatten)]
        select: DlqSelect,
        /// Delete every dead letter the other options match, even without --queue or --id.
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Args)]
pub(crate) struct DlqSelect {
    /// Configuration file (without it: the embedded default).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Only this queue.
    #[arg(long)]
    queue: Option<String>,
    /// Only these ids (repeat).
    #[arg(long = "id")]
    ids: Vec<String>,
}

/// `earshot dlq …`: in the cluster's stream when the config has `[cluster]`; else on the
/// outbox file when it is free, else through the admin server of the earshot holding it.
pub(crate) async fn run(action: DlqAction) -> anyhow::Result<ExitCode> {
    let (select, verb) = match &action {
        DlqAction::List { select, .. } => (select, "list"),
        DlqAction::Replay { select } => (select, "replay"),
        DlqAction::Purge { select, all } => {
            if !all && select.queue.is_none() && select.ids.is_empty() {
                anyhow::bail!("purge deletes dead letters for good: name --queue, --id, or --all");
            }
            (select, "purge")
        }
    };
    let config = load_config_unchecked(&select.config)?;
    let filter = Filter {
        queue: select.queue.clone(),
        ids: select.ids.clone(),
        all: matches!(action, DlqAction::Purge { all: true, .. }),
    };
    match &config.cluster {
        Some(settings) => on_cluster(&action, &config, settings, &filter).await,
        None => on_node(&action, &config, &filter, verb).await,
    }
}

/// Prints letters as `list` does: one line each, or one JSON document each.
fn print_page(letters: &[DeadLetter], json: bool) -> anyhow::Result<()> {
    for l in letters {
        if json {
            println!("{}", serde_json::to_string(l)?);
        } else {
            println!(
                "{}\t{}\t{}\tattempts={}\tdead_at={}\t{}",
                l.queue,
                l.id,
                l.event,
                l.attempts,
                l.dead_at.as_deref().unwrap_or("-"),
                l.last_error.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(())
}

/// Prints every letter, then their count on stderr.
fn print(letters: &[DeadLetter], json: bool) -> anyhow::Result<()> {
    print_page(letters, json)?;
    eprintln!("{} dead letters", letters.len());
    Ok(())
}

/// The cluster's dead letters, in its stream EARSHOT_DLQ: each command reads at most
/// [`earshot::cluster::dead::MAX_READ`] of them and says when it left some unread.
async fn on_cluster(
    action: &DlqAction,
    config: &Config,
    settings: &earshot::config::cluster::ClusterSettings,
    filter: &Filter,
) -> anyhow::Result<ExitCode> {
    use earshot::cluster::dead::{self, DeadLetters, Found, MAX_READ};
    use earshot::cluster::{queue_subject, DLQ_STREAM};
    let js = dead::connect(settings).await?;
    let stream = DeadLetters::open(&js, settings.timeout).await?;
    let unread = |unread: u64, then: &str| {
        if unread > 0 {
            eprintln!(
                "{unread} more dead letters in {DLQ_STREAM} were not read (one command reads \
                 at most {MAX_READ}): {then}"
            );
        }
    };
    match action {
        DlqAction::List { json, .. } => {
            let read = stream.read(filter, MAX_READ).await?;
            let letters: Vec<DeadLetter> = read.letters.iter().map(Found::letter).collect();
            print(&letters, *json)?;
            unread(
                read.unread,
                "narrow with --queue, or replay or purge these first",
            );
        }
        DlqAction::Replay { .. } => {
            let done = stream.replay(filter, MAX_READ).await;
            for f in &done.unreadable {
                let why = f.letter().last_error.unwrap_or_default();
                eprintln!(
                    "left in {DLQ_STREAM}: {}\t{}\t{why}: not an outbox entry, it cannot be \
                     replayed (`earshot dlq purge --queue {} --id {}` deletes it)",
                    f.queue,
                    f.id(),
                    f.queue,
                    f.id()
                );
            }
            for q in done
                .queues
                .iter()
                .filter(|q| !config.queues.iter().any(|c| &c.id == *q))
            {
                eprintln!(
                    "queue `{q}` is not in this config: what was replayed to it waits on {} \
                     until a node that has the queue delivers it",
                    queue_subject(q)
                );
            }
            println!(
                "replayed {}: back on their queues, delivered by each queue's deliverer",
                done.replayed
            );
            if let Some(e) = done.stopped {
                return Err(anyhow::Error::new(e).context("the replay stopped"));
            }
            unread(done.unread, "run the replay again for them");
        }
        DlqAction::Purge { .. } => {
            let purged = stream.purge(filter, MAX_READ).await?;
            println!("purged {}", purged.purged);
            unread(purged.unread, "run the purge again for them");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A single node's dead letters: in the outbox file when it is free, else through the admin
/// server of the earshot holding it.
async fn on_node(
    action: &DlqAction,
    config: &Config,
    filter: &Filter,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    use earshot::outbox::store::{Store, StoreError};
    match Store::open(&config.outbox.path) {
        Ok(store) => {
            match &action {
                DlqAction::List { json, .. } => print(&earshot::dlq::list(&store, filter)?, *json)?,
                DlqAction::Replay { .. } => {
                    let n = earshot::dlq::replay(&store, filter, &[])?;
                    println!("replayed {n}: delivered at the next start");
                }
                DlqAction::Purge { .. } => {
                    println!("purged {}", earshot::dlq::purge(&store, filter, &[])?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(StoreError::InUse { path }) => {
            let base = earshot::admin::base_url(&config.admin, config.admin.listen);
            eprintln!(
                "{} is in use by a running earshot; asking its admin server at {base}",
                path.display()
            );
            let admin = AdminClient::new(config, Duration::from_secs(30))?;
            let (client, token) = (admin.http, admin.token);
            let answer = |resp: reqwest::Response| async move {
                let status = resp.status();
                let body = resp.text().await?;
                if !status.is_success() {
                    anyhow::bail!("the admin server answered {status}: {}", body.trim());
                }
                Ok(body)
            };
            match &action {
                DlqAction::List { json, .. } => {
                    // Page by page: the server answers at most a thousand at once.
                    let mut after: Option<String> = None;
                    let mut total = 0usize;
                    loop {
                        let mut url = url::Url::parse(&format!("{base}/dlq"))?;
                        url.query_pairs_mut().append_pair("limit", "1000");
                        if let Some(q) = &filter.queue {
                            url.query_pairs_mut().append_pair("queue", q);
                        }
                        if filter.ids.len() == 1 {
                            url.query_pairs_mut().append_pair("id", &filter.ids[0]);
                        }
                        if let Some(a) = &after {
                            url.query_pairs_mut().append_pair("after", a);
                        }
                        let resp = client
                            .get(url)
                            .bearer_auth(&token)
                            .send()
                            .await
                            .with_context(|| format!("cannot reach the admin server at {base}"))?;
                        let page: earshot::dlq::Page = serde_json::from_str(&answer(resp).await?)?;
                        let mut letters = page.letters;
                        if filter.ids.len() > 1 {
                            letters.retain(|l| filter.ids.contains(&l.id));
                        }
                        total += letters.len();
                        print_page(&letters, *json)?;
                        match page.next {
                            Some(next) => after = Some(next),
                            None => break,
                        }
                    }
                    eprintln!("{total} dead letters");
                }
                _ => {
                    let resp = client
                        .post(format!("{base}/dlq/{verb}"))
                        .bearer_auth(&token)
                        .body(serde_json::to_vec(filter)?)
                        .send()
                        .await
                        .with_context(|| format!("cannot reach the admin server at {base}"))?;
                    println!("{}", answer(resp).await?.trim());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}
