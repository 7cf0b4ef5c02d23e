//! `earshot x-rules diff | apply`: X's filtered-stream rules kept in step with the loaded rules
//! ([`earshot::xrules`]). The stream is the config's `http_ndjson` source on
//! `…/2/tweets/search/stream`; its rules endpoint and bearer token are that source's.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use earshot::config::{Config, SourceKind};
use earshot::xrules::api::{self, RulesApi};
use earshot::xrules::{self, Limits, Plan, Translation, PRO_MAX_LENGTH, PRO_MAX_RULES};

use crate::load_config_unchecked;

#[derive(Subcommand)]
pub(crate) enum XRulesAction {
    /// Show what would change at X: earshot's X rules to keep, add and delete, and the rules X
    /// cannot select posts for. Changes nothing.
    Diff {
        #[command(flatten)]
        target: Target,
        /// One JSON document instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Make X's rules select what the loaded rules can match: X validates the new rules first
    /// (its dry run), then they are added and the old ones deleted, without a moment where
    /// neither is in force unless X's rule limit forces deleting first.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Only X's dry run: say whether X accepts the new rules; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply even though some rules cannot be expressed for X (their posts will not come).
        #[arg(long)]
        allow_gaps: bool,
    },
}

#[derive(clap::Args)]
pub(crate) struct Target {
    /// Configuration file (without it: the embedded default).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Use these rule files or folders instead of the config's.
    #[arg(long)]
    rules: Vec<PathBuf>,
    /// The X source's id, when the config has several on the filtered stream.
    #[arg(long)]
    source: Option<String>,
    /// Rules X allows on the stream (everyone's together): 1000 on Pro, 25000 on Enterprise.
    #[arg(long, default_value_t = PRO_MAX_RULES)]
    max_rules: usize,
    /// Characters X allows per rule: 1024 on Pro, 2048 on Enterprise.
    #[arg(long, default_value_t = PRO_MAX_LENGTH)]
    max_rule_length: usize,
    /// How long one exchange with X may take, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

/// The X source of `config`: its id, rules endpoint and token variable.
fn x_source(config: &Config, wanted: Option<&str>) -> anyhow::Result<(String, url::Url, String)> {
    let mut found = Vec::new();
    for s in &config.sources {
        if let SourceKind::HttpNdjson(o) = &s.kind {
            if let Some(url) = api::rules_url(&o.url) {
                found.push((s.id.clone(), url, o.bearer_token_env.clone()));
            }
        }
    }
    let names = || {
        found
            .iter()
            .map(|(id, _, _)| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match wanted {
        Some(w) => found.iter().find(|(id, _, _)| id == w).cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "no http_ndjson source `{w}` on X's filtered stream (…/2/tweets/search/stream); the config has: {}",
                if found.is_empty() { "none".to_string() } else { names() }
            )
        })?,
        None => match found.len() {
            0 => anyhow::bail!(
                "the config has no http_ndjson source on X's filtered stream (…/2/tweets/search/stream)"
            ),
            1 => found[0].clone(),
            _ => anyhow::bail!("the config has several X sources ({}): name one with --source", names()),
        },
    };
    let (id, url, env) = chosen;
    let env = env.ok_or_else(|| {
        anyhow::anyhow!(
            "source `{id}` has no bearer_token_env: X's rules endpoint needs the app's token"
        )
    })?;
    Ok((id, url, env))
}

/// Everything both actions need: the translation, X's current rules and the plan.
struct Prepared {
    source: String,
    endpoint: String,
    limits: Limits,
    translation: Translation,
    plan: Plan,
    api: RulesApi,
}

async fn prepare(t: &Target) -> anyhow::Result<Prepared> {
    let mut config = load_config_unchecked(&t.config)?;
    if !t.rules.is_empty() {
        config.rules.paths = t.rules.clone();
    }
    let (source, url, env) = x_source(&config, t.source.as_deref())?;
    let compiled = earshot::compile::compile(&config)?;
    let limits = Limits {
        max_rules: t.max_rules,
        max_length: t.max_rule_length,
    };
    let translation = xrules::translate(&compiled.rules, limits)?;
    let endpoint = earshot::redact::url(&url);
    let api = RulesApi::new(url, &env, Duration::from_secs(t.timeout.max(1)))?;
    let current = api.list().await.context("reading X's current rules")?;
    let plan = xrules::plan(&translation.values, &current);
    Ok(Prepared {
        source,
        endpoint,
        limits,
        translation,
        plan,
        api,
    })
}

fn print_plan(p: &Prepared) {
    let Prepared {
        translation: t,
        plan,
        limits,
        ..
    } = p;
    println!(
        "X rules of source `{}` at {}: {} operators in {} rules (limit {} rules of {} characters)",
        p.source,
        p.endpoint,
        t.operators,
        t.values.len(),
        limits.max_rules,
        limits.max_length
    );
    for r in &plan.keep {
        println!("keep    id {}  {}", r.id, r.value);
    }
    for v in &plan.add {
        println!("add     {v}");
    }
    for r in &plan.delete {
        println!("delete  id {}  {}", r.id, r.value);
    }
    if !plan.others.is_empty() {
        println!(
            "others  {} rules not tagged `{}`: left alone",
            plan.others.len(),
            xrules::TAG
        );
    }
    for g in &t.gaps {
        println!(
            "gap     rule `{}` ({}): {}; X will not send its posts",
            g.rule, g.location, g.why
        );
    }
    println!(
        "{}: {} to keep, {} to add, {} to delete; {} rules at X after, {} rules X cannot select for",
        if plan.in_sync() { "in step" } else { "changes" },
        plan.keep.len(),
        plan.add.len(),
        plan.delete.len(),
        plan.total_after(),
        t.gaps.len()
    );
}

fn plan_json(p: &Prepared) -> serde_json::Value {
    serde_json::json!({
        "source": p.source,
        "endpoint": p.endpoint,
        "limits": {"max_rules": p.limits.max_rules, "max_length": p.limits.max_length},
        "operators": p.translation.operators,
        "in_step": p.plan.in_sync(),
        "keep": p.plan.keep,
        "add": p.plan.add,
        "delete": p.plan.delete,
        "others": p.plan.others.len(),
        "total_after": p.plan.total_after(),
        "gaps": p.translation.gaps.iter().map(|g| serde_json::json!({
            "rule": g.rule, "location": g.location, "why": g.why
        })).collect::<Vec<_>>(),
    })
}

pub(crate) async fn run(action: XRulesAction) -> anyhow::Result<ExitCode> {
    match action {
        XRulesAction::Diff { target, json } => {
            let p = prepare(&target).await?;
            if json {
                println!("{}", plan_json(&p));
            } else {
                print_plan(&p);
            }
            Ok(ExitCode::SUCCESS)
        }
        XRulesAction::Apply {
            target,
            dry_run,
            allow_gaps,
        } => apply(prepare(&target).await?, dry_run, allow_gaps).await,
    }
}

async fn apply(p: Prepared, dry_run: bool, allow_gaps: bool) -> anyhow::Result<ExitCode> {
    print_plan(&p);
    if !p.translation.gaps.is_empty() && !allow_gaps {
        eprintln!(
            "earshot: {} rules cannot be expressed for X (listed above as `gap`): change them, or \
             pass --allow-gaps to apply without their posts",
            p.translation.gaps.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    if p.plan.total_after() > p.limits.max_rules {
        eprintln!(
            "earshot: X would hold {} rules, over the limit of {} ({} of them not earshot's)",
            p.plan.total_after(),
            p.limits.max_rules,
            p.plan.others.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    if p.plan.in_sync() {
        println!("nothing to do");
        return Ok(ExitCode::SUCCESS);
    }
    // X's dry run: the new values must all be valid before anything changes.
    let check = p.api.add(&p.plan.add, true).await?;
    if !check.refused.is_empty() {
        for r in &check.refused {
            eprintln!("earshot: X refuses: {r}");
        }
        eprintln!("earshot: nothing was changed");
        return Ok(ExitCode::FAILURE);
    }
    println!("dry run: X accepts the {} new rules", p.plan.add.len());
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<String> = p.plan.delete.iter().map(|r| r.id.clone()).collect();
    // Add before deleting, so some rule selects every post throughout; when the limit has no
    // room for both at once, delete first.
    let room = p.plan.total_after() + p.plan.delete.len() <= p.limits.max_rules;
    let (added, deleted) = if room {
        let a = p.api.add(&p.plan.add, false).await?;
        (a, p.api.delete(&ids, false).await?)
    } else {
        let d = p.api.delete(&ids, false).await?;
        (p.api.add(&p.plan.add, false).await?, d)
    };
    for r in added.refused.iter().chain(&deleted.refused) {
        eprintln!("earshot: X refuses: {r}");
    }
    let after = xrules::plan(
        &p.translation.values,
        &p.api.list().await.context("reading X's rules back")?,
    );
    println!(
        "applied: {} added, {} deleted; X holds {} rules of earshot's",
        added.done,
        deleted.done,
        after.keep.len()
    );
    if !after.in_sync() {
        eprintln!(
            "earshot: X's rules are still not in step ({} to add, {} to delete): run `earshot x-rules diff`",
            after.add.len(),
            after.delete.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
