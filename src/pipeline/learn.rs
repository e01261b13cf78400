//! ecom_learn: a tenant's head learned from what ecom_serve showed and what
//! followed, read in commit order from the active version's cursor, judged
//! (`judge`) and stored as a new version. The maths lives in pg_ecom_core.

use pgrx::datum::TimestampWithTimeZone;
use serde_json::json;

use crate::encoder::identity::SessionEncoder;
use crate::pipeline::evaluate::{fits, read_logged, usable};
use crate::pipeline::featurise::{elapsed_ms, encoder_identity, featurise};
use crate::pipeline::judge::{asked, judge, Fold};
use crate::store::heads::{self, StoredHead};
use std::sync::Arc;

use crate::store::impressions::{self, Cursor, LoggedRequest, Read};
use crate::store::relation::Event;
use crate::store::versions;
use pg_ecom_core::head::{Example, Head};
use pg_ecom_core::item_prior;
use pg_ecom_core::ope;
use pg_ecom_core::posterior::Posterior;
use pg_ecom_core::train::{self, AdaptConfig, AdaptReport, Method};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Activate {
    IfBetter,
    Always,
    Never,
}

impl Activate {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "if_better" => Ok(Activate::IfBetter),
            "always" => Ok(Activate::Always),
            "never" => Ok(Activate::Never),
            _ => Err(format!(
                "unknown activate {}; valid values are: if_better, always, never",
                pg_ecom_core::quote::quoted(s)
            )),
        }
    }
}

/// Requests held out to judge a candidate before activating it: a fifth
/// of those read (a fold), and at least this many.
const MIN_HOLDOUT_REQUESTS: usize = 5;
/// Held-out impressions a judgement aims for. The latest fold is judged
/// first; while the folds judged hold fewer impressions than this, the one
/// before it is judged too (by a probe fitted without it), up to every
/// fold (`ope::judge_folds`). A young tenant's few requests then all count
/// as evidence, not only the latest fifth; a learn whose latest fifth
/// holds this many scorable impressions pays for one probe, as before.
const JUDGE_IMPRESSIONS: usize = 1000;

/// The examples of logged impressions: each impression is one event of
/// its request's behaviour, labelled by that behaviour's feedback (none
/// recorded = false). `ends[i]`: how many examples requests 0..=i gave, so
/// that the examples of the first requests are a prefix (featurised once
/// for both the held-out probe and the version itself).
fn examples(logged: &[&LoggedRequest], k: usize) -> (Vec<Example>, Vec<usize>) {
    let mut events = Vec::new();
    let mut ends = Vec::with_capacity(logged.len());
    for r in logged {
        for s in &r.shown {
            let i = (s.item_index - 1) as usize;
            let Some(Some(item)) = r.items.get(i) else {
                continue;
            };
            let features = if k > 0 && r.features.len() >= (i + 1) * k {
                r.features[i * k..(i + 1) * k].to_vec()
            } else {
                Vec::new()
            };
            events.push(Event {
                tenant: None,
                context: r.context.clone(),
                item: item.clone(),
                behaviour: r.behaviour,
                label: s.label,
                features,
            });
        }
        ends.push(events.len());
    }
    (featurise(&events), ends)
}

/// The later of two times as cursors keep them (ISO 8601 in UTC, one
/// format: text order is time order).
fn later(a: String, b: Option<&String>) -> String {
    match b {
        Some(b) if *b > a => b.clone(),
        _ => a,
    }
}

/// Where learning starts: with `since`, a refit from the global head over
/// the window; without, a Bayesian update of the active version with what
/// came after it (its posterior is the prior when it was stored with it;
/// heads made before 0.2.0 have only their group prior, and the events are
/// then centred as in ecom_adapt).
struct Start {
    head: Arc<StoredHead>,
    posterior: Option<Posterior>,
    after: Option<Cursor>,
    kind: &'static str,
}

fn start_of(own: &Option<Arc<StoredHead>>, since: Option<TimestampWithTimeZone>) -> Start {
    match (own, since) {
        (Some(h), None) => Start {
            head: h.clone(),
            posterior: h.posterior_stored.then(|| (*h.posterior).clone()),
            after: Cursor::from_hyper(&h.hyper),
            kind: "active",
        },
        _ => Start {
            head: heads::serving_head(None),
            posterior: None,
            after: None,
            kind: "global",
        },
    }
}

/// A version kept inactive leaves the cursor where the active one ends,
/// so that the next call learns from all of it again with what came
/// since; but a call with nothing new since the latest version (pg_cron
/// every minute on a quiet tenant) must not store another one. Checked
/// before anything is read.
fn nothing_new(tenant: &str, until: &str) -> Option<String> {
    let (version, through) = impressions::latest_learned(tenant)?;
    if impressions::any_served_after(
        tenant,
        &through,
        &later(until.to_owned(), Some(&through.at)),
    ) {
        return None;
    }
    Some(format!(
        "nothing served since version {version} learned (through {})",
        through.at
    ))
}

/// Why nothing was learned from what was read.
fn nothing_usable(
    read: &Read,
    left_out: usize,
    start: &Start,
    since: Option<TimestampWithTimeZone>,
    until: &str,
) -> String {
    let skipped = read.skipped + left_out;
    if skipped > 0 {
        format!(
            "{skipped} request(s) read, none usable: {} with side features other than the {} per candidate that version {} of {} takes, {} with an unknown behaviour or features not finite or beyond ±1e9{}",
            left_out,
            start.head.head.k,
            start.head.version,
            crate::pg::errors::owner_name(start.head.tenant.as_deref()),
            read.skipped,
            if left_out > 0 {
                "; to learn from them, make a version with their number of side features active (ecom_rollback to one, or ecom_adapt with a support relation whose features column has them)"
            } else {
                ""
            }
        )
    } else {
        format!(
            "no impressions served {}{}and before {until} (pg_ecom.feedback_window ago)",
            since.map_or(String::new(), |s| format!("since {s} ")),
            start
                .after
                .as_ref()
                .map_or(String::new(), |a| format!("after {} ", a.at)),
        )
    }
}

/// Where this read ended: the next call continues from there (the read
/// cuts only beyond the previous position, so this is never before it).
fn through_of(
    read: &Read,
    refit: bool,
    after: Option<&Cursor>,
    until: &str,
) -> (String, Option<i64>) {
    match (read.truncated && !refit, &read.last_beyond) {
        (true, Some((at, id))) => (at.clone(), Some(*id)),
        (true, None) => after.map_or((until.to_owned(), None), |a| (a.at.clone(), a.request)),
        _ => (until.to_owned(), None),
    }
}

/// Whether the new version serves: (activated, reason, evaluation). For
/// 'if_better', judged on held-out folds of the requests, the latest
/// first, each by a probe fitted without it (`JUDGE_IMPRESSIONS`).
fn decide(
    activate: Activate,
    refit: bool,
    tenant: &str,
    logged: &[&LoggedRequest],
    fitted_without: impl Fn(std::ops::Range<usize>) -> (Head, AdaptReport),
    serving: impl FnOnce() -> Arc<StoredHead>,
) -> (bool, String, serde_json::Value) {
    match activate {
        Activate::Always => (true, "activate => 'always'".into(), serde_json::Value::Null),
        Activate::Never => (false, "activate => 'never'".into(), serde_json::Value::Null),
        Activate::IfBetter => {
            let hold = (logged.len() / 5).max(MIN_HOLDOUT_REQUESTS);
            if logged.len() < 2 * hold {
                let reason = format!(
                    "{} request(s) are too few to judge a new version on held-out ones (needs {}); kept inactive",
                    logged.len(),
                    2 * MIN_HOLDOUT_REQUESTS
                );
                return (false, reason, serde_json::Value::Null);
            }
            let serving = serving();
            // a refit (`since`) starts from the global head: the serving
            // head may take another number of side features, and what it
            // cannot score is not held out
            let scorable: Vec<usize> = logged
                .iter()
                .map(|r| if fits(r, &serving) { r.shown.len() } else { 0 })
                .collect();
            // a refit's serving head was trained on the window's earlier
            // requests: it is judged on the latest fold only, as before
            let max_folds = if refit { 1 } else { 5 };
            let folds: Vec<Fold> = ope::judge_folds(&scorable, hold, JUDGE_IMPRESSIONS, max_folds)
                .into_iter()
                .map(|held| {
                    let (probe, report) = fitted_without(held.clone());
                    Fold {
                        held: held
                            .filter(|&i| scorable[i] > 0)
                            .map(|i| logged[i])
                            .collect(),
                        probe: StoredHead::unsaved(Some(tenant), probe, report.posterior),
                    }
                })
                .collect();
            let evidence = asked(&serving, refit, || {
                heads::later_version_served(tenant, serving.version)
            });
            judge(&folds, &serving, evidence)
        }
    }
}

/// How ecom_learn adapts: the meta method's defaults from `start`, with
/// its prior and (continuing a version) its posterior.
fn config(start: &Start) -> AdaptConfig {
    AdaptConfig {
        steps: 5,
        lr: 1.0,
        method: Method::Meta,
        prior: heads::prior_of(&start.head.hyper),
        seed: 42,
        posterior: start.posterior.clone(),
        max_items: crate::pg::settings::max_item_effects(),
        directions: crate::pg::settings::posterior_directions(),
        item_prior_from_events: crate::pg::settings::item_prior_from_events(),
        bias_prior_from_events: crate::pg::settings::bias_prior_from_events(),
    }
}

/// ecom_learn.
pub fn learn(
    tenant: &str,
    since: Option<TimestampWithTimeZone>,
    activate: Activate,
    started: std::time::Instant,
) -> serde_json::Value {
    // before anything is read: feedback holds this lock's share while it
    // checks whether a label was learned already (feedback::record)
    versions::lock_tenant_to_read(tenant);
    let own = heads::active_head(Some(tenant), true);
    let start = start_of(&own, since);
    heads::check_encoder(&start.head, SessionEncoder::current().dims);
    // a cursor never moves back: after pg_ecom.feedback_window was raised,
    // the read still reaches the position it left (what it finds at or
    // before it was not seen then)
    let until = later(
        impressions::settled_until(),
        start.after.as_ref().map(|a| &a.at),
    );
    let done = |reason: String| {
        json!({
            "tenant": tenant, "version": null, "activated": false, "n": 0, "reason": reason,
            "ms": elapsed_ms(started),
        })
    };
    if since.is_none() {
        if let Some(reason) = nothing_new(tenant, &until) {
            return done(reason);
        }
    }
    // learning a tenant's impressions in turn works a backlog off oldest
    // first (`through` below says where it stopped); a refit over `since`
    // takes the most recent
    let read = read_logged(
        tenant,
        &until,
        since,
        start.after.clone(),
        None,
        since.is_none(),
    );
    let (logged, left_out) = usable(&read.requests, &start.head);
    let skipped = read.skipped + left_out;
    if logged.iter().map(|r| r.shown.len()).sum::<usize>() == 0 {
        return done(nothing_usable(&read, left_out, &start, since, &until));
    }
    let (through, through_request) =
        through_of(&read, since.is_some(), start.after.as_ref(), &until);
    let cfg = config(&start);
    let (exs, ends) = examples(&logged, start.head.head.k);
    let adapt = |exs: &[Example]| {
        train::adapt_with(&start.head.head, exs, &cfg, &mut || {
            pgrx::check_for_interrupts!();
        })
    };
    let decision = decide(
        activate,
        since.is_some(),
        tenant,
        &logged,
        |held| {
            // every request's examples but the held-out ones': for the
            // latest fold (every learn judges it) the prefix, uncopied
            let from = held.start.checked_sub(1).map_or(0, |i| ends[i]);
            let to = ends[held.end - 1];
            if to == exs.len() {
                return adapt(&exs[..from]);
            }
            let rest: Vec<Example> = exs[..from].iter().chain(&exs[to..]).cloned().collect();
            adapt(&rest)
        },
        || own.clone().unwrap_or_else(|| heads::serving_head(None)),
    );
    let (head, report) = adapt(&exs);
    record(Learned {
        tenant,
        since,
        activate,
        start: &start,
        parent: own.as_ref().map(|h| h.version),
        read: &read,
        through,
        through_request,
        requests: logged.len(),
        skipped,
        cfg: &cfg,
        positives: exs.iter().filter(|e| e.y > 0.0).count(),
        head,
        report,
        decision,
        started,
    })
}

/// What one ecom_learn call learned, to be stored.
struct Learned<'a> {
    tenant: &'a str,
    since: Option<TimestampWithTimeZone>,
    activate: Activate,
    start: &'a Start,
    parent: Option<i32>,
    read: &'a Read,
    through: String,
    through_request: Option<i64>,
    requests: usize,
    skipped: usize,
    cfg: &'a AdaptConfig,
    positives: usize,
    head: Head,
    report: AdaptReport,
    /// (activated, reason, evaluation)
    decision: (bool, String, serde_json::Value),
    started: std::time::Instant,
}

/// Stores the learned version (replacing a waiting candidate that never
/// served when it is not activated); returns ecom_learn's result.
fn record(l: Learned) -> serde_json::Value {
    let (tenant, parent, report) = (l.tenant, l.parent, &l.report);
    let (activated, reason, evaluation) = l.decision;
    // a waiting candidate of the same active version that never served is
    // replaced; the new version's number comes after it
    let replaces = if activated {
        Vec::new()
    } else {
        versions::drop_inactive_candidates(tenant, parent)
    };
    let (start, read, seen) = (l.start, l.read, l.read.seen.as_ref());
    let after = start.after.as_ref();
    let hyper = json!({
        "kind": "learn", "start": start.kind,
        "parent_tenant": start.head.tenant, "parent_version_of_start": start.head.version,
        "learned_through": l.through, "learned_through_request": l.through_request,
        "learned_snapshot": seen.map(|s| &s.snapshot), "learned_xid": seen.and_then(|s| s.own_xid.as_ref()),
        "learned_own_through": seen.and_then(|s| s.own_through), "learned_relation": seen.map(|s| s.relation),
        "after": after.map(|a| &a.at), "since": l.since.map(|s| s.to_string()), "backlog": read.truncated,
        "method": "meta", "steps": l.cfg.steps, "prior": item_prior::recorded(report.prior, &l.head.items), "seed": l.cfg.seed,
        "source": "ecom.impressions", "rows": report.n, "requests": l.requests, "skipped_requests": l.skipped,
        "encoder": encoder_identity(), "activate": format!("{:?}", l.activate), "replaces": replaces,
        "items_base": start.head.items_base(), "taste_base": start.head.taste_base(),
        "item_choice": report.item_choice, "bias_choice": report.bias_choice,
    });
    let metrics = json!({
        "n": report.n, "positives": l.positives, "loss_before": report.loss_before, "loss_after": report.loss_after,
        "activated": activated, "reason": reason, "evaluation": evaluation,
    });
    let version = versions::insert_version_with(
        Some(tenant),
        parent,
        &l.head,
        Some(&report.posterior),
        hyper,
        metrics,
        activated,
    );
    json!({
        "tenant": tenant, "version": version, "activated": activated, "reason": reason,
        "start": start.kind, "parent_version": parent,
        "n": report.n, "positives": l.positives, "requests": l.requests, "skipped_requests": l.skipped,
        "loss_before": report.loss_before, "loss_after": report.loss_after,
        "learned_through": l.through, "backlog": read.truncated, "evaluation": evaluation,
        "replaced_versions": replaces,
        "ms": elapsed_ms(l.started),
    })
}
