//! `earshot dlq list | replay | purge`: the dead letters of a queue, through the admin server of
//! a running earshot when one answers, else in the outbox file itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;

use crate::admin_client::AdminClient;
use crate::load_config;

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
    /// queue delivers again.
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

/// `earshot dlq …`: on the outbox file when it is free, else through the admin server of the
/// earshot holding it.
pub(crate) async fn run(action: DlqAction) -> anyhow::Result<ExitCode> {
    use earshot::dlq::{DeadLetter, Filter};
    use earshot::outbox::store::{Store, StoreError};
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
    let config = load_config(&select.config)?;
    let filter = Filter {
        queue: select.queue.clone(),
        ids: select.ids.clone(),
        all: matches!(action, DlqAction::Purge { all: true, .. }),
    };
    let print_page = |letters: &[DeadLetter], json: bool| -> anyhow::Result<()> {
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
    };
    let print = |letters: &[DeadLetter], json: bool| -> anyhow::Result<()> {
        print_page(letters, json)?;
        eprintln!("{} dead letters", letters.len());
        Ok(())
    };
    match Store::open(&config.outbox.path) {
        Ok(store) => {
            match &action {
                DlqAction::List { json, .. } => {
                    print(&earshot::dlq::list(&store, &filter)?, *json)?
                }
                DlqAction::Replay { .. } => {
                    let n = earshot::dlq::replay(&store, &filter, &[])?;
                    println!("replayed {n}: delivered at the next start");
                }
                DlqAction::Purge { .. } => {
                    println!("purged {}", earshot::dlq::purge(&store, &filter, &[])?);
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
            let admin = AdminClient::new(&config, Duration::from_secs(30))?;
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
                        .body(serde_json::to_vec(&filter)?)
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
