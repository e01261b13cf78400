//! Stage 7: off-policy evaluation — what a candidate head would have
//! earned on the impressions another policy logged. Pure Rust.
//!
//! The unit is one impression (an item shown at a place) and its reward
//! (the behaviour followed or not). The candidate is evaluated as it would
//! serve with `explore => 'none'`: greedily over the same candidates, the
//! same number of places. Per place (the item-position model of Li et al.,
//! "Offline evaluation of ranking policies with click models", 2018): an
//! impression of item i at place r counts with weight w = 1[the candidate
//! puts i at r] / p, p = the logged propensity of i at r. Unbiased when a
//! reward depends on the item and the context, not on what else was shown.
//!
//! - IPS = mean(w·y); SNIPS = Σ w·y / Σ w; DR = mean(q̂(target's item at
//!   r) + w·(y − q̂(shown item))), q̂ = the candidate head's own score.
//! - 95 % intervals are normal, with variances clustered by request:
//!   impressions of one request share a context and are not independent;
//!   with the small-sample factor G/(G − 1) for G requests, and none below
//!   two requests.
//! - ESS = (Σ w)² / Σ w²: how many impressions the estimate is worth.

use serde::Serialize;

/// One logged impression, as evaluation needs it.
#[derive(Clone, Debug)]
pub struct Logged {
    /// the request (one ecom_serve call) it belongs to
    pub request: i64,
    pub propensity: f64,
    pub reward: f64,
    /// the candidate puts this item at this place
    pub matches: bool,
    /// the candidate's score of the item shown
    pub q_shown: f64,
    /// the candidate's score of the item it puts at this place
    pub q_target: f64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Estimate {
    pub value: f64,
    /// 95 % interval; None (JSON null) with fewer than two requests, where
    /// a variance between requests cannot be estimated
    pub ci: Option<[f64; 2]>,
}

impl Estimate {
    fn new(value: f64, numerator: f64, denominator: f64, requests: usize) -> Self {
        // clustered variance with the small-sample factor G/(G − 1) (CR1)
        let ci = (requests >= 2).then(|| {
            let g = requests as f64;
            let se = (numerator * g / (g - 1.0)).sqrt() / denominator;
            [value - Z95 * se, value + Z95 * se]
        });
        Estimate { value, ci }
    }

    /// The lower end of the interval (−∞ without one).
    pub fn lower(&self) -> f64 {
        self.ci.map_or(f64::NEG_INFINITY, |c| c[0])
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Evaluation {
    pub n: usize,
    pub requests: usize,
    /// the reward per impression of what was logged
    pub logged: Option<Estimate>,
    pub ips: Option<Estimate>,
    /// None when no logged impression is one the candidate would show
    pub snips: Option<Estimate>,
    pub dr: Option<Estimate>,
    /// effective sample size of the importance weights
    pub ess: f64,
    /// impressions the candidate would show at the same place
    pub matched: usize,
    pub max_weight: f64,
}

const Z95: f64 = 1.959_963_984_540_054;

/// Σ over requests of (Σ of the request's residuals)²: the clustered
/// variance numerator. `logged` is sorted by request.
fn clustered(logged: &[Logged], residual: impl Fn(usize) -> f64) -> f64 {
    let mut total = 0.0;
    let mut i = 0;
    while i < logged.len() {
        let mut s = 0.0;
        let r = logged[i].request;
        while i < logged.len() && logged[i].request == r {
            s += residual(i);
            i += 1;
        }
        total += s * s;
    }
    total
}

/// Mean of per-impression terms with its clustered 95 % interval.
fn mean_of(
    logged: &[Logged],
    requests: usize,
    term: impl Fn(usize, &Logged) -> f64,
) -> Option<Estimate> {
    let n = logged.len();
    if n == 0 {
        return None;
    }
    let t: Vec<f64> = logged.iter().enumerate().map(|(i, l)| term(i, l)).collect();
    let mean = t.iter().sum::<f64>() / n as f64;
    Some(Estimate::new(
        mean,
        clustered(logged, |i| t[i] - mean),
        n as f64,
        requests,
    ))
}

/// Evaluates the candidate described in each impression's `matches`,
/// `q_shown` and `q_target`.
pub fn evaluate(mut logged: Vec<Logged>) -> Evaluation {
    logged.sort_by_key(|l| l.request);
    let n = logged.len();
    let w: Vec<f64> = logged
        .iter()
        .map(|l| if l.matches { 1.0 / l.propensity } else { 0.0 })
        .collect();
    let sw: f64 = w.iter().sum();
    let sw2: f64 = w.iter().map(|x| x * x).sum();
    let mut requests = 0;
    for (i, l) in logged.iter().enumerate() {
        if i == 0 || logged[i - 1].request != l.request {
            requests += 1;
        }
    }
    let snips = (sw > 0.0).then(|| {
        let v = logged
            .iter()
            .zip(&w)
            .map(|(l, wi)| wi * l.reward)
            .sum::<f64>()
            / sw;
        Estimate::new(
            v,
            clustered(&logged, |i| w[i] * (logged[i].reward - v)),
            sw,
            requests,
        )
    });
    Evaluation {
        n,
        requests,
        logged: mean_of(&logged, requests, |_, l| l.reward),
        ips: mean_of(&logged, requests, |i, l| w[i] * l.reward),
        snips,
        dr: mean_of(&logged, requests, |i, l| {
            l.q_target + w[i] * (l.reward - l.q_shown)
        }),
        ess: if sw2 > 0.0 { sw * sw / sw2 } else { 0.0 },
        matched: logged.iter().filter(|l| l.matches).count(),
        max_weight: w.iter().cloned().fold(0.0, f64::max),
    }
}

/// A candidate against the head serving now, judged on the same logged
/// impressions: the mean per-impression difference of their DR terms,
/// candidate minus serving, with its 95 % interval clustered by request.
/// Pairing removes what both share (the same rewards, the same requests),
/// so the interval is that of the difference itself, not of either value.
/// `candidate` and `serving` are the rows of the same impressions in the
/// same order (`None` otherwise, or when there are none).
pub fn paired_difference(candidate: &[Logged], serving: &[Logged]) -> Option<Estimate> {
    if candidate.is_empty()
        || candidate.len() != serving.len()
        || candidate
            .iter()
            .zip(serving)
            .any(|(a, b)| a.request != b.request || a.reward != b.reward)
    {
        return None;
    }
    let dr = |l: &Logged| {
        let w = if l.matches { 1.0 / l.propensity } else { 0.0 };
        l.q_target + w * (l.reward - l.q_shown)
    };
    let mut rows: Vec<(usize, &Logged)> = candidate.iter().enumerate().collect();
    rows.sort_by_key(|(_, l)| l.request);
    let sorted: Vec<Logged> = rows.iter().map(|(_, l)| (*l).clone()).collect();
    let diff: Vec<f64> = rows.iter().map(|&(i, l)| dr(l) - dr(&serving[i])).collect();
    let requests = 1 + sorted
        .windows(2)
        .filter(|w| w[0].request != w[1].request)
        .count();
    let mut e = mean_of(&sorted, requests, |i, _| diff[i])?;
    // what decides an activation is judged on a few requests (5 at least):
    // Student's t with G − 1 degrees of freedom, not the normal quantile
    if let Some([lo, hi]) = e.ci.as_mut() {
        let widen = t975(requests - 1) / Z95;
        *lo = e.value - (e.value - *lo) * widen;
        *hi = e.value + (*hi - e.value) * widen;
    }
    Some(e)
}

/// Whether an estimate could be a rate: its 95 % interval meets [0, 1]
/// and is no wider than [0, 1] itself. A head whose true value is 0 (it
/// never shows what is clicked) has DR estimates below 0 half the time,
/// within noise of a rate; an interval wider than the unit (too few
/// impressions, or weights too large) says nothing about a rate, nor does
/// one that no rate is in. Without an interval, the value itself.
pub fn could_be_rate(e: &Estimate) -> bool {
    match e.ci {
        Some([lo, hi]) => e.value.is_finite() && hi >= 0.0 && lo <= 1.0 && hi - lo <= 1.0,
        None => (0.0..=1.0).contains(&e.value),
    }
}

/// What a paired difference must show before a candidate replaces the
/// head serving now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// the lower end of its 95 % interval above 0: a candidate no better
    /// passes about 2.5 % of the time (one-sided). What a tenant's first
    /// departure from the global head needs.
    Interval,
    /// its value above 0: the candidate scored higher on impressions it
    /// never saw, as a validation set picks between two fits. One no
    /// better passes about half the time, one worse by d with
    /// probability Φ(−d / se). For replacing one of the tenant's own
    /// versions by a successor learned on more of its events, where what
    /// a lag costs (the serving version stays behind everything learned
    /// since) is sure and a swap between two equally good versions costs
    /// nothing.
    Estimate,
}

/// Whether `difference` (candidate minus serving, `paired_difference`)
/// shows the candidate better under `evidence`. Never without an
/// interval (fewer than two requests judged) or a finite value.
pub fn shows_better(difference: &Estimate, evidence: Evidence) -> bool {
    match (difference.ci, evidence) {
        (Some([lo, _]), Evidence::Interval) => difference.value.is_finite() && lo > 0.0,
        (Some(_), Evidence::Estimate) => difference.value.is_finite() && difference.value > 0.0,
        (None, _) => false,
    }
}

/// The folds a candidate is judged on, latest first: ranges of `hold`
/// requests taken back from the end of `impressions` (the held-out
/// impressions each request would give: 0 for one the serving head cannot
/// score), at most `max_folds`, until those judged reach `target`. A fold
/// with nothing to judge is skipped (no probe is fitted for it), and the
/// earliest `len % hold` requests are never held out.
pub fn judge_folds(
    impressions: &[usize],
    hold: usize,
    target: usize,
    max_folds: usize,
) -> Vec<std::ops::Range<usize>> {
    let mut folds = Vec::new();
    let (mut end, mut judged, mut tried) = (impressions.len(), 0usize, 0usize);
    while hold > 0 && end >= hold && tried < max_folds && (folds.is_empty() || judged < target) {
        let start = end - hold;
        let here: usize = impressions[start..end].iter().sum();
        if here > 0 {
            folds.push(start..end);
            judged += here;
        }
        tried += 1;
        end = start;
    }
    folds
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (the
/// normal one above 30, where they differ by under 3 %).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => T[df - 1],
        // Cornish–Fisher: z + (z³ + z) / (4 df)
        _ => Z95 + (Z95.powi(3) + Z95) / (4.0 * df as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::uniform;
    use crate::rng::Rng;

    /// A world of requests with 6 candidates, 2 places, a reward
    /// probability per candidate; the logging policy is uniformly random,
    /// the candidate ranks by a fixed score. Returns (logged, true value).
    fn world(requests: usize, seed: u64, good_model: bool) -> (Vec<Logged>, f64) {
        let mut rng = Rng::new(seed);
        let (n, k) = (6usize, 2usize);
        let mut logged = Vec::new();
        let mut truth = 0.0;
        for r in 0..requests {
            let p: Vec<f64> = (0..n).map(|_| uniform(&mut rng) * 0.6).collect();
            // the candidate ranks by the true probability plus noise
            let s: Vec<f64> = p.iter().map(|x| x + 0.1 * uniform(&mut rng)).collect();
            let target = crate::explore::top_k(&s, k);
            truth += target.iter().map(|&i| p[i]).sum::<f64>();
            let q = |i: usize| if good_model { p[i] } else { 0.3 };
            let mut idx: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut idx);
            for place in 0..k {
                let i = idx[place];
                logged.push(Logged {
                    request: r as i64,
                    propensity: 1.0 / n as f64,
                    reward: f64::from(u8::from(uniform(&mut rng) < p[i])),
                    matches: target[place] == i,
                    q_shown: q(i),
                    q_target: q(target[place]),
                });
            }
        }
        (logged, truth / (requests * k) as f64)
    }

    #[test]
    fn estimators_cover_the_true_value() {
        let mut covered = [0; 3];
        let runs = 40;
        for seed in 0..runs {
            let (logged, truth) = world(2000, seed, true);
            let e = evaluate(logged);
            for (c, est) in covered.iter_mut().zip([&e.ips, &e.snips, &e.dr]) {
                let est = est.as_ref().unwrap();
                let ci = est.ci.unwrap();
                if ci[0] <= truth && truth <= ci[1] {
                    *c += 1;
                }
            }
        }
        // nominal 95 %: at least 33 of 40 runs
        for c in covered {
            assert!(c >= 33, "{covered:?} of {runs}");
        }
    }

    #[test]
    fn a_good_direct_model_narrows_the_interval() {
        let (logged, _) = world(3000, 5, true);
        let good = evaluate(logged).dr.unwrap();
        let (logged, _) = world(3000, 5, false);
        let poor = evaluate(logged).dr.unwrap();
        let (g, p) = (good.ci.unwrap(), poor.ci.unwrap());
        assert!(g[1] - g[0] < p[1] - p[0]);
    }

    #[test]
    fn no_overlap_gives_no_snips_and_zero_ess() {
        let l = Logged {
            request: 1,
            propensity: 1.0,
            reward: 1.0,
            matches: false,
            q_shown: 0.5,
            q_target: 0.2,
        };
        let e = evaluate(vec![l.clone(), Logged { request: 2, ..l }]);
        assert_eq!(e.snips, None);
        assert_eq!(e.ess, 0.0);
        assert_eq!(e.ips.unwrap().value, 0.0);
        assert!((e.dr.unwrap().value - 0.2).abs() < 1e-12);
        assert_eq!((e.n, e.requests, e.matched), (2, 2, 0));
        assert_eq!(evaluate(Vec::new()).logged, None);
    }

    #[test]
    fn a_paired_difference_detects_a_better_head_and_not_an_equal_one() {
        // the same world logged once; a good candidate against a constant one
        let (good, _) = world(3000, 11, true);
        let (flat, _) = world(3000, 11, false);
        let d = paired_difference(&good, &flat).unwrap();
        // the same head against itself: exactly no difference
        let same = paired_difference(&good, &good).unwrap();
        assert_eq!(same.value, 0.0);
        assert_eq!(same.ci, Some([0.0, 0.0]));
        assert!(same.lower() <= 0.0);
        // different impressions cannot be paired
        assert_eq!(
            paired_difference(&good[1..], &flat[1..flat.len() - 1]),
            None
        );
        assert!(d.ci.is_some());
        // rewards all zero: no evidence either way is needed for the rule,
        // but the difference is still defined
        let zero: Vec<Logged> = good
            .iter()
            .map(|l| Logged {
                reward: 0.0,
                ..l.clone()
            })
            .collect();
        assert!(paired_difference(&zero, &zero).is_some());
    }

    #[test]
    fn paired_intervals_cover_a_known_difference() {
        // two candidates ranking by noisy truths of different quality: the
        // true difference of their values is known in each world
        let mut covered = 0;
        for seed in 0..40u64 {
            let mut rng = Rng::new(seed);
            let (n, k, requests) = (6usize, 2usize, 2000usize);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let mut truth = 0.0;
            for r in 0..requests {
                let p: Vec<f64> = (0..n).map(|_| uniform(&mut rng) * 0.6).collect();
                let sa: Vec<f64> = p.iter().map(|x| x + 0.05 * uniform(&mut rng)).collect();
                let sb: Vec<f64> = p.iter().map(|x| x + 0.5 * uniform(&mut rng)).collect();
                let (ta, tb) = (crate::explore::top_k(&sa, k), crate::explore::top_k(&sb, k));
                truth +=
                    ta.iter().map(|&i| p[i]).sum::<f64>() - tb.iter().map(|&i| p[i]).sum::<f64>();
                let mut idx: Vec<usize> = (0..n).collect();
                rng.shuffle(&mut idx);
                for place in 0..k {
                    let i = idx[place];
                    let y = f64::from(u8::from(uniform(&mut rng) < p[i]));
                    let row = |t: &[usize]| Logged {
                        request: r as i64,
                        propensity: 1.0 / n as f64,
                        reward: y,
                        matches: t[place] == i,
                        q_shown: p[i],
                        q_target: p[t[place]],
                    };
                    a.push(row(&ta));
                    b.push(row(&tb));
                }
            }
            let truth = truth / (requests * k) as f64;
            let ci = paired_difference(&a, &b).unwrap().ci.unwrap();
            if ci[0] <= truth && truth <= ci[1] {
                covered += 1;
            }
        }
        assert!(covered >= 33, "{covered} of 40");
    }

    #[test]
    fn small_samples_widen_the_paired_interval() {
        assert!((t975(4) - 2.776).abs() < 1e-9);
        assert!(t975(31) > Z95 && t975(31) < t975(30));
        assert!((t975(100_000) - Z95).abs() < 1e-4);
        // 6 requests, a difference that varies: the interval is the normal
        // one widened by t(5) / z
        let rows: Vec<Logged> = (0..6)
            .map(|r| Logged {
                request: r,
                propensity: 0.5,
                reward: f64::from(u8::from(r == 0)),
                matches: true,
                q_shown: 0.5,
                q_target: 0.5,
            })
            .collect();
        let other: Vec<Logged> = rows
            .iter()
            .map(|l| Logged {
                matches: false,
                ..l.clone()
            })
            .collect();
        let d = paired_difference(&rows, &other).unwrap();
        let plain = mean_of(&rows, 6, |i, l| {
            let w = 1.0 / l.propensity;
            (l.q_target + w * (l.reward - l.q_shown)) - other[i].q_target
        })
        .unwrap();
        let (c, p) = (d.ci.unwrap(), plain.ci.unwrap());
        assert!(((c[1] - c[0]) / (p[1] - p[0]) - t975(5) / Z95).abs() < 1e-9);
    }

    #[test]
    fn one_request_gives_no_interval() {
        let l = Logged {
            request: 7,
            propensity: 0.5,
            reward: 1.0,
            matches: true,
            q_shown: 0.5,
            q_target: 0.5,
        };
        let e = evaluate(vec![l.clone(), Logged { reward: 0.0, ..l }]);
        assert_eq!(e.dr.as_ref().unwrap().ci, None);
        assert_eq!(e.dr.unwrap().lower(), f64::NEG_INFINITY);
    }

    #[test]
    fn evaluating_the_logging_policy_itself_gives_the_logged_value() {
        // a deterministic logger (p = 1) and the same policy as candidate
        let logged: Vec<Logged> = (0..10)
            .map(|i| Logged {
                request: i / 2,
                propensity: 1.0,
                reward: f64::from(u8::from(i % 3 == 0)),
                matches: true,
                q_shown: 0.4,
                q_target: 0.4,
            })
            .collect();
        let e = evaluate(logged);
        let v = e.logged.unwrap().value;
        assert!((e.ips.unwrap().value - v).abs() < 1e-12);
        assert!((e.snips.unwrap().value - v).abs() < 1e-12);
        assert!((e.dr.unwrap().value - v).abs() < 1e-12);
        assert!((e.ess - 10.0).abs() < 1e-9);
    }

    #[test]
    fn folds_reach_back_only_while_evidence_is_short() {
        // 12 requests of 2: two folds of 5, the first 2 never held out
        assert_eq!(judge_folds(&[2; 12], 5, 1000, 5), vec![7..12, 2..7]);
        // plenty in the latest fifth: one fold, one probe
        assert_eq!(judge_folds(&[5; 2000], 400, 1000, 5), vec![1600..2000]);
        // the latest fold short of the target: the one before it too
        assert_eq!(
            judge_folds(&[1; 3000], 600, 1000, 5),
            vec![2400..3000, 1800..2400]
        );
        // at most max_folds (a refit judges on the latest only)
        assert_eq!(judge_folds(&[2; 100], 20, 1000, 1), vec![80..100]);
        assert_eq!(judge_folds(&[2; 100], 20, 1000, 5).len(), 5);
        // requests the serving head cannot score give nothing: a fold of
        // them gets no probe, and none at all when none fits
        let mut some = vec![3; 20];
        some[15..].iter_mut().for_each(|n| *n = 0);
        assert_eq!(judge_folds(&some, 5, 1000, 5), vec![10..15, 5..10, 0..5]);
        assert!(judge_folds(&[0; 50], 10, 1000, 5).is_empty());
        assert!(judge_folds(&[], 5, 1000, 5).is_empty());
    }

    #[test]
    fn a_rate_is_judged_by_its_interval() {
        let e = |value: f64, ci: Option<[f64; 2]>| Estimate { value, ci };
        // the global head that never shows what is clicked: true value 0
        assert!(could_be_rate(&e(-0.057, Some([-0.207, 0.093]))));
        assert!(could_be_rate(&e(0.53, Some([0.44, 0.63]))));
        // no rate in it
        assert!(!could_be_rate(&e(-0.4, Some([-0.6, -0.2]))));
        assert!(!could_be_rate(&e(1.6, Some([1.55, 1.65]))));
        // wider than the unit: says nothing
        assert!(!could_be_rate(&e(1.6, Some([0.8, 2.4]))));
        assert!(!could_be_rate(&e(0.5, Some([-0.3, 1.3]))));
        assert!(!could_be_rate(&e(f64::NAN, Some([0.1, 0.2]))));
        assert!(could_be_rate(&e(0.5, None)));
        assert!(!could_be_rate(&e(-0.01, None)));
    }

    #[test]
    fn evidence_of_a_better_candidate() {
        let e = |value: f64, ci: Option<[f64; 2]>| Estimate { value, ci };
        // above 0 but its interval reaches below: only the estimate shows it
        let close = e(0.02, Some([-0.03, 0.07]));
        assert!(!shows_better(&close, Evidence::Interval));
        assert!(shows_better(&close, Evidence::Estimate));
        let clear = e(0.11, Some([0.04, 0.19]));
        assert!(shows_better(&clear, Evidence::Interval));
        assert!(shows_better(&clear, Evidence::Estimate));
        // a tie or a loss passes neither: a copy of the serving head never
        // replaces it
        for d in [e(0.0, Some([-0.05, 0.05])), e(-0.02, Some([-0.07, 0.03]))] {
            assert!(!shows_better(&d, Evidence::Interval));
            assert!(!shows_better(&d, Evidence::Estimate));
        }
        // no interval (one request judged) or no number: nothing shown
        assert!(!shows_better(&e(0.3, None), Evidence::Estimate));
        assert!(!shows_better(
            &e(f64::NAN, Some([0.1, 0.2])),
            Evidence::Interval
        ));
        assert!(!shows_better(
            &e(f64::NAN, Some([0.1, 0.2])),
            Evidence::Estimate
        ));
    }
}
