//! Orchestration of learning: events → examples, and the loop — learning a
//! tenant's head from what ecom_serve showed and what followed
//! (`learn`), and estimating off-policy what a head would earn
//! (`evaluate`). The maths lives in train.rs, explore.rs and ope.rs.

use pgrx::datum::TimestampWithTimeZone;
use pgrx::PgSqlErrorCode;
use serde_json::json;

use crate::encoder::embed::embed_cached;
use crate::encoder::local::with_model;
use crate::pipeline::serve;
use crate::store::heads::{self, StoredHead};
use crate::store::impressions::{self, Cursor, LoggedRequest as Logged, Read, Window};
use crate::store::relation::{self, Event};
use crate::store::versions;
use pg_ecom_core::explore::top_k;
use pg_ecom_core::head::{text_features, Example, BEHAVIOURS};
use pg_ecom_core::ope::{self, Evaluation};
use pg_ecom_core::train::{self, AdaptConfig, Method};

pub fn featurise(events: &[Event]) -> Vec<Example> {
    let mut texts: Vec<&str> = Vec::with_capacity(events.len() * 2);
    for e in events {
        texts.push(&e.context);
        texts.push(&e.item);
    }
    let emb = embed_cached(&texts);
    events
        .iter()
        .zip(emb.chunks_exact(2))
        .enumerate()
        .map(|(i, (e, uv))| {
            // a large relation takes a while even with every text cached
            if i % 4096 == 0 {
                pgrx::check_for_interrupts!();
            }
            Example {
                x: text_features(&uv[0], &uv[1]),
                f: e.features.clone(),
                b: e.behaviour,
                y: if e.label { 1.0 } else { 0.0 },
            }
        })
        .collect()
}

/// What reproduces a head: encoder identity and settings.
pub fn encoder_identity() -> serde_json::Value {
    let (model, sha256) = match crate::encoder::route::route() {
        crate::encoder::route::Route::Worker(w) => (w.info["model"].clone(), json!(w.sha256)),
        crate::encoder::route::Route::Local => with_model(|m| {
            (
                json!(m.manifest.model),
                json!(m.manifest.sha256_of(&m.model_file)),
            )
        }),
    };
    json!({
        "model": model,
        "sha256": sha256,
        "variant": crate::pg::settings::variant(),
        "max_seq_len": crate::pg::settings::max_seq_len(),
    })
}

/// What reading a support or source relation may hold: each event, once
/// featurised, is 2·dims+1 floats, and while it is featurised its two
/// embeddings (when the cache cannot keep them) besides its texts.
pub fn training_budget() -> relation::Budget {
    let dims = crate::encoder::embed::dims();
    relation::Budget {
        bytes: crate::pg::settings::max_training_bytes(),
        per_event: (4 * dims + 1) * std::mem::size_of::<f32>() + 160,
    }
}

/// Whether a logged request can be scored by `head`: its side features
/// are `head.k` per candidate. Requests served by a head with another
/// number (before `ecom_adapt(start => 'scratch')` without features, say)
/// are left out of learning and evaluation, and counted.
fn fits(r: &Logged, head: &StoredHead) -> bool {
    r.features.len() == r.items.len() * head.head.k
}

/// The requests of `logged` that `head` can score, and how many it cannot.
fn usable<'a>(logged: &'a [Logged], head: &StoredHead) -> (Vec<&'a Logged>, usize) {
    let kept: Vec<&Logged> = logged.iter().filter(|r| fits(r, head)).collect();
    let left_out = logged.len() - kept.len();
    (kept, left_out)
}

/// What `candidate`, ranking greedily over each logged request's
/// candidates (as ecom_serve with explore => 'none' would), would have
/// earned on the logged impressions, rewarded by behaviour `reward`
/// (None: each request's own behaviour, whose labels `logged` then holds):
/// one row per impression, in the order of `logged`, with `model`'s
/// probabilities as the direct model of DR. Every request must fit both
/// heads (`usable`).
fn ope_rows(
    candidate: &StoredHead,
    model: &StoredHead,
    logged: &[&Logged],
    reward: Option<usize>,
) -> Vec<ope::Logged> {
    let mut rows = Vec::new();
    for r in logged {
        pgrx::check_for_interrupts!();
        let reward = reward.unwrap_or(r.behaviour);
        let items: Vec<Option<&str>> = r.items.iter().map(|t| t.as_deref()).collect();
        let f = &r.features;
        let ranked = serve::score(candidate, r.behaviour, &r.context, &items, f);
        // the same non-NULL items in the same order whatever the head: the
        // direct model's positions are the ranking's
        let q = (reward != r.behaviour || !std::ptr::eq(candidate, model))
            .then(|| serve::score(model, reward, &r.context, &items, f));
        let q = q.as_ref().unwrap_or(&ranked);
        let target = top_k(&ranked.logits, r.k);
        let at = |item_index: i32| ranked.present.iter().position(|(i, _)| *i == item_index);
        for s in &r.shown {
            let place = (s.rank - 1) as usize;
            let Some(shown) = at(s.item_index) else {
                continue;
            };
            let Some(&tgt) = target.get(place) else {
                continue;
            };
            rows.push(ope::Logged {
                request: r.id,
                propensity: s.propensity,
                reward: f64::from(u8::from(s.label)),
                matches: tgt == shown,
                q_shown: q.probability(shown),
                q_target: q.probability(tgt),
            });
        }
    }
    rows
}

/// A head judged by its own probabilities as the direct model.
fn evaluate(candidate: &StoredHead, logged: &[&Logged], reward: Option<usize>) -> Evaluation {
    ope::evaluate(ope_rows(candidate, candidate, logged, reward))
}

pub fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

/// Reads the impressions `evaluate` and `learn` see, up to `until`.
fn read_logged(
    tenant: &str,
    until: &str,
    since: Option<TimestampWithTimeZone>,
    after: Option<Cursor>,
    reward: Option<usize>,
    oldest_first: bool,
) -> Read {
    let w = Window {
        since,
        oldest_first,
        after,
        reward,
        limit: crate::pg::settings::learn_max_impressions(),
    };
    impressions::read(tenant, until, &w, &training_budget())
}

/// ecom_evaluate: `version` of the tenant's heads (None: the head serving
/// the tenant now). A tenant without any head of its own is served by the
/// global head: its `version` then names one of the global head's.
pub fn evaluate_version(
    tenant: &str,
    version: Option<i32>,
    reward: usize,
    since: Option<TimestampWithTimeZone>,
) -> serde_json::Value {
    let head = match version {
        Some(v) => {
            let own = heads::has_versions(tenant);
            heads::head_version(own.then_some(tenant), v).unwrap_or_else(|| {
                crate::pg::errors::raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("pg_ecom: {} has no version {v}", crate::pg::errors::tenant_name(tenant)),
                    Some(if own {
                        "The tenant has heads of its own, so versions are its own (ecom.heads WHERE tenant = …); NULL evaluates the head serving it now."
                    } else {
                        "A tenant without heads of its own is served by the global head: version names one of the global head's (ecom.heads WHERE tenant IS NULL)."
                    }),
                )
            })
        }
        None => heads::serving_head(Some(tenant)),
    };
    let until = impressions::settled_until();
    let read = read_logged(tenant, &until, since, None, Some(reward), false);
    let (logged, left_out) = usable(&read.requests, &head);
    let e = evaluate(&head, &logged, Some(reward));
    json!({
        "tenant": tenant,
        "version": head.version,
        "served_by": {"tenant": head.tenant, "version": head.version},
        "behaviour": BEHAVIOURS[reward],
        "until": until,
        "n": e.n, "requests": e.requests, "matched": e.matched,
        "logged": e.logged, "ips": e.ips, "snips": e.snips, "dr": e.dr,
        "ess": e.ess, "max_weight": e.max_weight,
        "skipped_requests": read.skipped + left_out,
    })
}

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
                "unknown activate \"{s}\"; valid values are: if_better, always, never"
            )),
        }
    }
}

/// Requests held out to judge a candidate before activating it: the
/// latest fifth, and at least this many.
const MIN_HOLDOUT_REQUESTS: usize = 5;

/// The examples of logged impressions: each impression is one event of
/// its request's behaviour, labelled by that behaviour's feedback (none
/// recorded = false). `ends[i]`: how many examples requests 0..=i gave, so
/// that the examples of the first requests are a prefix (featurised once
/// for both the held-out probe and the version itself).
fn examples(logged: &[&Logged], k: usize) -> (Vec<Example>, Vec<usize>) {
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

/// Milliseconds since `started`, to one decimal, for results.
pub fn elapsed_ms(started: std::time::Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1e4).round() / 10.0
}

/// `'if_better'`: whether a probe fitted without the held-out requests
/// (the latest fifth, at least `MIN_HOLDOUT_REQUESTS`) beats the head
/// serving now on them, each estimated by DR with its own probabilities
/// as the direct model (as ecom_evaluate estimates a head), paired on the
/// same impressions. What it guarantees (README, activation): where the
/// logged propensities cover what both would show and the item-position
/// model holds, a probe no better than the serving head on those requests
/// is activated with probability about 2.5 % (the lower end of a 95 %
/// interval of the paired difference above 0, at the normal
/// approximation); where they do not (greedy logging), the comparison
/// rests on each head's own model of what was never shown. It never
/// activates without a positive label among the held-out impressions, nor
/// on estimates of a rate outside [0, 1].
fn judge(
    held: &[&Logged],
    probe: &StoredHead,
    serving: &StoredHead,
) -> (bool, String, serde_json::Value) {
    // each request judged by its own behaviour, as it was learned
    let cand_rows = ope_rows(probe, probe, held, None);
    let cur_rows = ope_rows(serving, serving, held, None);
    let cand = ope::evaluate(cand_rows.clone());
    let cur = ope::evaluate(cur_rows.clone());
    let diff = ope::paired_difference(&cand_rows, &cur_rows);
    let positives = cand_rows.iter().filter(|r| r.reward > 0.0).count();
    let in_unit =
        |e: &Option<ope::Estimate>| e.as_ref().is_some_and(|e| (0.0..=1.0).contains(&e.value));
    let (better, reason) = match (&cand.dr, &cur.dr, &diff) {
        _ if cand.n == 0 => (false, "no held-out impressions to judge it on; kept inactive".to_string()),
        _ if positives == 0 => (
            false,
            format!("no positive label among the {} held-out impression(s): no evidence that it is better; kept inactive", cand.n),
        ),
        (Some(c), Some(a), _) if !in_unit(&cand.dr) || !in_unit(&cur.dr) => (
            false,
            format!(
                "the DR estimates on {} held-out impression(s) leave [0, 1] (candidate {:.4}, active {:.4}): too few impressions, or too far from the logging policy, to judge; kept inactive",
                cand.n, c.value, a.value
            ),
        ),
        (_, _, Some(d)) if d.ci.is_some() => {
            let [lo, hi] = d.ci.unwrap_or_default();
            let better = lo > 0.0;
            (
                better,
                format!(
                    "its DR estimate minus the active head's on the same {} held-out impression(s) is {:.4} (95% interval {:.4} to {:.4}){}",
                    cand.n,
                    d.value,
                    lo,
                    hi,
                    if better { ", above 0" } else { ", not above 0; kept inactive" }
                ),
            )
        }
        _ => (false, "too few held-out requests for an interval; kept inactive".to_string()),
    };
    let evaluation = json!({
        "held_out_requests": held.len(),
        "positives": positives,
        "candidate": evaluation_json(&cand),
        "active": evaluation_json(&cur),
        "difference": diff,
        "active_version": {"tenant": serving.tenant, "version": serving.version},
    });
    (better, reason, evaluation)
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
    let global = || heads::serving_head(None);
    // With `since`, a refit from the global head over the window; without,
    // a Bayesian update of the active version with what came after it
    // (its posterior is the prior when it was stored with it; heads made
    // before 0.2.0 have only their group prior, and the events are then
    // centred as in ecom_adapt).
    let (start, posterior, after, start_kind) = match (&own, since) {
        (Some(h), None) => (
            h.clone(),
            h.posterior_stored.then(|| (*h.posterior).clone()),
            Cursor::from_hyper(&h.hyper),
            "active",
        ),
        _ => (global(), None, None, "global"),
    };
    // a cursor never moves back: after pg_ecom.feedback_window was raised,
    // the read still reaches the position it left (what it finds at or
    // before it was not seen then)
    let until = later(impressions::settled_until(), after.as_ref().map(|a| &a.at));
    let done = |reason: String| {
        json!({
            "tenant": tenant, "version": null, "activated": false, "n": 0, "reason": reason,
            "ms": elapsed_ms(started),
        })
    };
    // A version kept inactive leaves the cursor where the active one ends,
    // so that the next call learns from all of it again with what came
    // since; but a call with nothing new since the latest version (pg_cron
    // every minute on a quiet tenant) must not store another one. Checked
    // before anything is read.
    if since.is_none() {
        if let Some((version, through)) = impressions::latest_learned(tenant) {
            if !impressions::any_served_after(
                tenant,
                &through,
                &later(until.clone(), Some(&through.at)),
            ) {
                return done(format!(
                    "nothing served since version {version} learned (through {})",
                    through.at
                ));
            }
        }
    }
    // learning a tenant's impressions in turn works a backlog off oldest
    // first (`through` below says where it stopped); a refit over `since`
    // takes the most recent
    let read = read_logged(tenant, &until, since, after.clone(), None, since.is_none());
    let (logged, left_out) = usable(&read.requests, &start);
    let skipped = read.skipped + left_out;
    let n_impressions: usize = logged.iter().map(|r| r.shown.len()).sum();
    if n_impressions == 0 {
        let what = if skipped > 0 {
            format!(
                "{skipped} request(s) read, none usable: {} with side features other than the {} per candidate that version {} of {} takes, {} with an unknown behaviour or non-finite features{}",
                left_out,
                start.head.k,
                start.version,
                start.tenant.as_deref().map_or("the global head".to_string(), crate::pg::errors::tenant_name),
                read.skipped,
                if left_out > 0 {
                    "; to learn from them, make a version with their number of side features active (ecom_rollback to one, or ecom_adapt with a support relation whose features column has them)"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "no impressions served {}and before {until} (pg_ecom.feedback_window ago)",
                after
                    .as_ref()
                    .map_or(String::new(), |a| format!("after {} ", a.at)),
            )
        };
        return done(what);
    }
    // where this read ended: the next call continues from there (the
    // read cuts only beyond the previous position, so this is never
    // before it)
    let (through, through_request) = match (read.truncated && since.is_none(), &read.last_beyond) {
        (true, Some((at, id))) => (at.clone(), Some(*id)),
        (true, None) => after
            .as_ref()
            .map_or((until.clone(), None), |a| (a.at.clone(), a.request)),
        _ => (until.clone(), None),
    };
    let seen = read.seen.as_ref();
    let k = start.head.k;
    let prior = heads::prior_of(&start.hyper);
    let cfg = AdaptConfig {
        steps: 5,
        lr: 1.0,
        method: Method::Meta,
        prior,
        seed: 42,
        posterior,
    };
    let (exs, ends) = examples(&logged, k);
    let adapt = |exs: &[Example]| {
        train::adapt_with(&start.head, exs, &cfg, &mut || {
            pgrx::check_for_interrupts!();
        })
    };
    // judged on the latest requests by a candidate fitted without them
    let mut evaluation = serde_json::Value::Null;
    let reason: String;
    let activated = match activate {
        Activate::Always => {
            reason = "activate => 'always'".into();
            true
        }
        Activate::Never => {
            reason = "activate => 'never'".into();
            false
        }
        Activate::IfBetter => {
            let hold = (logged.len() / 5).max(MIN_HOLDOUT_REQUESTS);
            if logged.len() < 2 * hold {
                reason = format!(
                    "{} request(s) are too few to judge a new version on held-out ones (needs {}); kept inactive",
                    logged.len(),
                    2 * MIN_HOLDOUT_REQUESTS
                );
                false
            } else {
                let (fit, held) = logged.split_at(logged.len() - hold);
                let (probe, probe_report) = adapt(&exs[..ends[fit.len() - 1]]);
                let probe = StoredHead::unsaved(Some(tenant), probe, probe_report.posterior);
                let serving = own.clone().unwrap_or_else(global);
                // a refit (`since`) starts from the global head: the
                // serving head may take another number of side features
                let held: Vec<&Logged> =
                    held.iter().copied().filter(|r| fits(r, &serving)).collect();
                let (better, why, judged) = judge(&held, &probe, &serving);
                reason = why;
                evaluation = judged;
                better
            }
        }
    };
    let (head, report) = adapt(&exs);
    let positives = exs.iter().filter(|e| e.y > 0.0).count();
    let parent = own.as_ref().map(|h| h.version);
    // a waiting candidate of the same active version that never served is
    // replaced; the new version's number comes after it
    let replaces = if activated {
        Vec::new()
    } else {
        versions::drop_inactive_candidates(tenant, parent)
    };
    let hyper = json!({
        "kind": "learn", "start": start_kind,
        "parent_tenant": start.tenant, "parent_version_of_start": start.version,
        "learned_through": through, "learned_through_request": through_request,
        "learned_snapshot": seen.map(|s| &s.snapshot), "learned_xid": seen.and_then(|s| s.own_xid.as_ref()),
        "learned_own_through": seen.and_then(|s| s.own_through), "learned_relation": seen.map(|s| s.relation),
        "after": after.as_ref().map(|a| &a.at), "since": since.map(|s| s.to_string()), "backlog": read.truncated,
        "method": "meta", "steps": cfg.steps, "prior": prior, "seed": cfg.seed,
        "source": "ecom.impressions", "rows": report.n, "requests": logged.len(), "skipped_requests": skipped,
        "encoder": encoder_identity(), "activate": format!("{activate:?}"), "replaces": replaces,
    });
    let metrics = json!({
        "n": report.n, "positives": positives, "loss_before": report.loss_before, "loss_after": report.loss_after,
        "activated": activated, "reason": reason, "evaluation": evaluation,
    });
    let version = versions::insert_version_with(
        Some(tenant),
        parent,
        &head,
        Some(&report.posterior),
        hyper,
        metrics,
        activated,
    );
    json!({
        "tenant": tenant, "version": version, "activated": activated, "reason": reason,
        "start": start_kind, "parent_version": parent,
        "n": report.n, "positives": positives, "requests": logged.len(), "skipped_requests": skipped,
        "loss_before": report.loss_before, "loss_after": report.loss_after,
        "learned_through": through, "backlog": read.truncated, "evaluation": evaluation,
        "replaced_versions": replaces,
        "ms": elapsed_ms(started),
    })
}
