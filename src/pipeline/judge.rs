//! Whether a learned version may serve: the paired off-policy comparison
//! behind `activate => 'if_better'`.

use serde_json::json;

use crate::pipeline::evaluate::{evaluation_json, ope_rows};
use crate::store::heads::StoredHead;
use crate::store::impressions::LoggedRequest;
use pg_ecom_core::ope;

/// What a candidate must show (`ope::Evidence`), and why the interval is
/// asked where a successor to the tenant's own version would need only
/// the estimate (None: the version serving is the global head, or the
/// estimate is asked).
pub(crate) struct Asked(pub ope::Evidence, pub Option<&'static str>);

/// What `'if_better'` asks of a candidate against `serving`: the interval
/// to leave the global head; against a version of the tenant's own, what
/// pg_ecom.own_version_evidence says, but the interval for a refit
/// (`since`: fitted on a window from the global head, not the version
/// serving plus what came since) and after a rollback (a later version
/// that served was set aside by hand: a coin's chance to undo that is
/// too much).
pub(crate) fn asked(
    serving: &StoredHead,
    refit: bool,
    rolled_back: impl FnOnce() -> bool,
) -> Asked {
    use ope::Evidence::Interval;
    if serving.tenant.is_none() {
        return Asked(Interval, None);
    }
    match crate::pg::settings::own_version_evidence() {
        Interval => Asked(Interval, Some("pg_ecom.own_version_evidence = 'interval'")),
        _ if refit => Asked(
            Interval,
            Some("a refit over a window, judged against the tenant's own version"),
        ),
        _ if rolled_back() => Asked(
            Interval,
            Some("a later version that served was rolled back from"),
        ),
        estimate => Asked(estimate, None),
    }
}

/// Requests held out together, and the probe fitted without them.
pub(crate) struct Fold<'a> {
    pub held: Vec<&'a LoggedRequest>,
    pub probe: StoredHead,
}

/// `'if_better'`: whether probes fitted without held-out requests (folds
/// of a fifth, at least `MIN_HOLDOUT_REQUESTS`, the latest first) beat the
/// head serving now on them, each estimated by DR with its own
/// probabilities as the direct model (as ecom_evaluate estimates a head),
/// paired on the same impressions. What it guarantees (docs/loop.md,
/// activation): where the logged propensities cover what both would show
/// and the item-position model holds, a probe no better than the global
/// head on one fold's requests is activated with probability about 2.5 %
/// (the lower end of a 95 % interval of the paired difference above 0);
/// with several folds that is measured, not derived (1.7 % under
/// benches/loop/null_activation.sh's null); where they do not (greedy
/// logging), the
/// comparison rests on each head's own model of what was never shown. It
/// never activates without a positive label among the held-out
/// impressions, nor on estimates that cannot be rates
/// (`ope::could_be_rate`). That is what leaving the global head takes; a
/// successor to a version of the tenant's own needs only what `asked`
/// says (by default its estimate above the serving version's).
pub(crate) fn judge(
    folds: &[Fold],
    serving: &StoredHead,
    evidence: Asked,
) -> (bool, String, serde_json::Value) {
    let Asked(evidence, why) = evidence;
    // each request judged by its own behaviour, as it was learned
    let (mut cand_rows, mut cur_rows) = (Vec::new(), Vec::new());
    for f in folds {
        cand_rows.extend(ope_rows(&f.probe, &f.probe, &f.held, None));
        cur_rows.extend(ope_rows(serving, serving, &f.held, None));
    }
    let held_out = folds.iter().map(|f| f.held.len()).sum::<usize>();
    let cand = ope::evaluate(cand_rows.clone());
    let cur = ope::evaluate(cur_rows.clone());
    let diff = ope::paired_difference(&cand_rows, &cur_rows);
    let positives = cand_rows.iter().filter(|r| r.reward > 0.0).count();
    let in_unit = |e: &Option<ope::Estimate>| e.as_ref().is_some_and(ope::could_be_rate);
    let (better, reason) = match (&cand.dr, &cur.dr, &diff) {
        _ if cand.n == 0 => (false, "no held-out impressions to judge it on; kept inactive".to_string()),
        _ if positives == 0 => (
            false,
            format!("no positive label among the {} held-out impression(s): no evidence that it is better; kept inactive", cand.n),
        ),
        (Some(c), Some(a), _) if !in_unit(&cand.dr) || !in_unit(&cur.dr) => (
            false,
            format!(
                "the DR estimates on {} held-out impression(s) cannot both be rates: a 95% interval misses [0, 1] or is wider than it (candidate {:.4}, active {:.4}): too few impressions, or too far from the logging policy, to judge; kept inactive",
                cand.n, c.value, a.value
            ),
        ),
        (_, _, Some(d)) if d.ci.is_some() => {
            let [lo, hi] = d.ci.unwrap_or_default();
            let better = ope::shows_better(d, evidence);
            let verdict = if better { "above 0" } else { "not above 0; kept inactive" };
            let rule = match (evidence, why) {
                (ope::Evidence::Interval, None) => format!("(95% interval {lo:.4} to {hi:.4}), {verdict}"),
                (ope::Evidence::Interval, Some(why)) => format!(
                    "(95% interval {lo:.4} to {hi:.4}); the interval decides ({why}): {verdict}"
                ),
                (ope::Evidence::Estimate, _) => format!(
                    "(95% interval {lo:.4} to {hi:.4}); against the tenant's own version {} the estimate decides (pg_ecom.own_version_evidence = 'estimate'): {verdict}",
                    serving.version
                ),
            };
            (
                better,
                format!(
                    "its DR estimate minus the active head's on the same {} held-out impression(s) ({} request(s) in {} fold(s), each judged by a probe fitted without it) is {:.4} {rule}",
                    cand.n,
                    held_out,
                    folds.len(),
                    d.value,
                ),
            )
        }
        _ => (false, "too few held-out requests for an interval; kept inactive".to_string()),
    };
    let evaluation = json!({
        "held_out_requests": held_out,
        "folds": folds.len(),
        "positives": positives,
        "candidate": evaluation_json(&cand),
        "active": evaluation_json(&cur),
        "difference": diff,
        "evidence": match evidence {
            ope::Evidence::Interval => "interval",
            ope::Evidence::Estimate => "estimate",
        },
        "active_version": {"tenant": serving.tenant, "version": serving.version},
    });
    (better, reason, evaluation)
}
