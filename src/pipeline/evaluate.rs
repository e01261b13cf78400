//! Off-policy evaluation of a stored head on a tenant's logged
//! impressions (ecom_evaluate, and the held-out probe of ecom_learn).

use crate::pg::errors::PgError;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::PgSqlErrorCode;
use serde_json::json;

use crate::pipeline::featurise::training_budget;
use crate::pipeline::serve;
use crate::store::heads::{self, StoredHead};
use crate::store::impressions::{self, Cursor, LoggedRequest, Read, Window};
use pg_ecom_core::explore::top_k;
use pg_ecom_core::head::BEHAVIOURS;
use pg_ecom_core::ope::{self, Evaluation};

/// Whether a logged request can be scored by `head`: its side features
/// are `head.k` per candidate. Requests served by a head with another
/// number (before `ecom_adapt(start => 'scratch')` without features, say)
/// are left out of learning and evaluation, and counted.
pub(crate) fn fits(r: &LoggedRequest, head: &StoredHead) -> bool {
    r.features.len() == r.items.len() * head.head.k
}

/// The requests of `logged` that `head` can score, and how many it cannot.
pub(crate) fn usable<'a>(
    logged: &'a [LoggedRequest],
    head: &StoredHead,
) -> (Vec<&'a LoggedRequest>, usize) {
    let kept: Vec<&LoggedRequest> = logged.iter().filter(|r| fits(r, head)).collect();
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
pub(crate) fn ope_rows(
    candidate: &StoredHead,
    model: &StoredHead,
    logged: &[&LoggedRequest],
    reward: Option<usize>,
) -> Vec<ope::Logged> {
    let mut rows = Vec::new();
    for r in logged {
        pgrx::check_for_interrupts!();
        let reward = reward.unwrap_or(r.behaviour);
        let items: Vec<Option<&str>> = r.items.iter().map(|t| t.as_deref()).collect();
        let f = &r.features;
        let ranked = serve::score(candidate, r.behaviour, &r.context, &items, f, None);
        // the same non-NULL items in the same order whatever the head: the
        // direct model's positions are the ranking's
        let q = (reward != r.behaviour || !std::ptr::eq(candidate, model))
            .then(|| serve::score(model, reward, &r.context, &items, f, None));
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
pub(crate) fn evaluate(
    candidate: &StoredHead,
    logged: &[&LoggedRequest],
    reward: Option<usize>,
) -> Evaluation {
    ope::evaluate(ope_rows(candidate, candidate, logged, reward))
}

pub fn evaluation_json(e: &Evaluation) -> serde_json::Value {
    serde_json::to_value(e).unwrap_or_default()
}

/// Reads the impressions `evaluate` and `learn` see, up to `until`.
pub(crate) fn read_logged(
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
                PgError::new(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, format!("{} has no version {v}", crate::pg::errors::tenant_name(tenant))).hint(if own {
                        "The tenant has heads of its own, so versions are its own (ecom.heads WHERE tenant = …); NULL evaluates the head serving it now."
                    } else {
                        "A tenant without heads of its own is served by the global head: version names one of the global head's (ecom.heads WHERE tenant IS NULL)."
                    }).raise()
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
