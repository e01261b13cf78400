//! Whether a learned version may serve: the paired off-policy comparison
//! behind `activate => 'if_better'`.

use serde_json::json;

use crate::pipeline::evaluate::{evaluation_json, ope_rows};
use crate::store::heads::StoredHead;
use crate::store::impressions::LoggedRequest;
use pg_ecom_core::ope;

/// `'if_better'`: whether a probe fitted without the held-out requests
/// (the latest fifth, at least `MIN_HOLDOUT_REQUESTS`) beats the head
/// serving now on them, each estimated by DR with its own probabilities
/// as the direct model (as ecom_evaluate estimates a head), paired on the
/// same impressions. What it guarantees (docs/loop.md, activation): where the
/// logged propensities cover what both would show and the item-position
/// model holds, a probe no better than the serving head on those requests
/// is activated with probability about 2.5 % (the lower end of a 95 %
/// interval of the paired difference above 0, at the normal
/// approximation); where they do not (greedy logging), the comparison
/// rests on each head's own model of what was never shown. It never
/// activates without a positive label among the held-out impressions, nor
/// on estimates of a rate outside [0, 1].
pub(crate) fn judge(
    held: &[&LoggedRequest],
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
