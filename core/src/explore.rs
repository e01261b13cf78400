//! Stage 6: choosing what to show — a ranking policy over scored items and
//! the probability that it put each shown item where it did (the
//! propensity that off-policy evaluation divides by). Pure Rust.
//!
//! Policies:
//! - `none`: by the head's score, ties by position in the list (p = 1).
//! - `thompson`: one draw of the tenant's adapted part from its posterior
//!   (posterior.rs, draws.rs: by default only the events' share of it,
//!   each logit floored at its mean), then by the drawn scores. Under
//!   `pg_ecom.thompson_draw = 'posterior'` a new tenant draws from the
//!   meta-learned prior: Thompson sampling whose prior is learned across
//!   tenants (Kveton et al., Meta-Thompson sampling, 2021).
//! - `softmax`: a Plackett–Luce ranking at a temperature on the logits
//!   (Gumbel top-k). The first place's propensity is exact (the softmax);
//!   later places' marginals have no closed form and are estimated.
//! - `epsilon`: with probability ε a uniformly random ranking, else `none`.
//!   The marginal is exact: (1 − ε)·[greedy put it there] + ε / n.
//!
//! Estimated propensities are Monte Carlo over up to `samples`
//! independent rankings, of which the one shown is the first: never 0 for
//! what was shown, with a standard error of at most 0.5/√samples (drawing
//! stops early only when every shown place's estimate is at least 1/2 with
//! its estimated standard error below that: a sure ranking). Each slate
//! says how exact each of its propensities is: 0 where exact, else the
//! estimate's standard error.

use crate::rng::uniform;
use crate::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Policy {
    Greedy,
    Thompson,
    Softmax { temperature: f64 },
    Epsilon { epsilon: f64 },
}

pub const POLICIES: &str = "none, thompson, softmax, epsilon";

impl Policy {
    pub fn parse(name: &str, temperature: f64, epsilon: f64) -> Result<Self, String> {
        match name {
            "none" => Ok(Policy::Greedy),
            "thompson" => Ok(Policy::Thompson),
            "softmax" => Ok(Policy::Softmax { temperature }),
            "epsilon" => Ok(Policy::Epsilon { epsilon }),
            _ => Err(format!(
                "unknown explore {}; valid values are: {POLICIES}",
                crate::quote::quoted(name)
            )),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Policy::Greedy => "none",
            Policy::Thompson => "thompson",
            Policy::Softmax { .. } => "softmax",
            Policy::Epsilon { .. } => "epsilon",
        }
    }
}

/// The shown ranking: indices into the scored items, best first, the
/// probability that the policy put each one at its place, and how exact
/// that probability is: 0 where it is exact, else the standard error of
/// its Monte Carlo estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct Slate {
    pub order: Vec<usize>,
    pub propensity: Vec<f64>,
    pub propensity_se: Vec<f64>,
}

/// The `k` best by `scores`, ties by index.
pub fn top_k(scores: &[f64], k: usize) -> Vec<usize> {
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    // the k best first (a strict total order: the same k as a full sort),
    // then only those sorted
    if k < idx.len() {
        if k > 0 {
            idx.select_nth_unstable_by(k - 1, better);
        }
        idx.truncate(k);
    }
    idx.sort_unstable_by(better);
    idx
}

/// Chooses a ranking of `k` of the items whose head logits are `logits`.
/// `draw` returns the logits under one posterior draw (Thompson only);
/// `between` runs between Monte Carlo rankings (an interrupt check).
pub fn choose(
    logits: &[f64],
    k: usize,
    policy: Policy,
    samples: usize,
    rng: &mut Rng,
    draw: &mut dyn FnMut(&mut Rng) -> Vec<f64>,
    between: &mut dyn FnMut(),
) -> Slate {
    let n = logits.len();
    let k = k.min(n);
    match policy {
        Policy::Greedy => Slate {
            order: top_k(logits, k),
            propensity: vec![1.0; k],
            propensity_se: vec![0.0; k],
        },
        Policy::Epsilon { epsilon } => {
            let greedy = top_k(logits, k);
            let order = if uniform(rng) < epsilon {
                let mut idx: Vec<usize> = (0..n).collect();
                // a uniformly random ordering of k of the n items
                for i in 0..k {
                    let j = i + rng.below(n - i);
                    idx.swap(i, j);
                }
                idx.truncate(k);
                idx
            } else {
                greedy.clone()
            };
            let propensity = order
                .iter()
                .zip(&greedy)
                .map(|(o, g)| (1.0 - epsilon) * f64::from(u8::from(o == g)) + epsilon / n as f64)
                .collect();
            Slate {
                propensity_se: vec![0.0; order.len()],
                order,
                propensity,
            }
        }
        Policy::Softmax { temperature } => {
            let mut one = |rng: &mut Rng| -> Vec<usize> {
                let keys: Vec<f64> = logits
                    .iter()
                    .map(|z| z / temperature - (-uniform(rng).ln()).ln())
                    .collect();
                top_k(&keys, k)
            };
            let order = one(rng);
            let (mut propensity, mut propensity_se) =
                estimated(&order, samples, rng, &mut one, between);
            if let Some(&first) = order.first() {
                propensity[0] = softmax_at(logits, temperature, first);
                propensity_se[0] = 0.0;
            }
            Slate {
                order,
                propensity,
                propensity_se,
            }
        }
        Policy::Thompson => {
            let mut one = |rng: &mut Rng| -> Vec<usize> { top_k(&draw(rng), k) };
            let order = one(rng);
            let (propensity, propensity_se) = estimated(&order, samples, rng, &mut one, between);
            Slate {
                order,
                propensity,
                propensity_se,
            }
        }
    }
}

/// P(item i first) under Plackett–Luce at `temperature`.
pub fn softmax_at(logits: &[f64], temperature: f64, i: usize) -> f64 {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let total: f64 = logits.iter().map(|z| ((z - max) / temperature).exp()).sum();
    ((logits[i] - max) / temperature).exp() / total
}

/// For each place r of `shown`: the share of the rankings drawn (`shown`
/// itself and more from `one`) that put shown[r] at r, and its standard
/// error √(p̃(1 − p̃)/n), p̃ kept at least 1/n from 0 and 1 (n draws that
/// all agree do not make an estimate exact). Draws stop at
/// `samples`, or earlier once every place's estimate is at least 1/2 and
/// has a standard error of at most 0.5/√samples, the most `samples` draws
/// can have: a ranking the posterior is sure of settles in `MIN_DRAWS`.
/// A place shown with a small propensity always gets every draw: off-policy
/// evaluation divides by it, and stopping on a small estimate would cut
/// the largest weights (1/p̂ with p̂ ≥ 1/n) short.
fn estimated(
    shown: &[usize],
    samples: usize,
    rng: &mut Rng,
    one: &mut dyn FnMut(&mut Rng) -> Vec<usize>,
    between: &mut dyn FnMut(),
) -> (Vec<f64>, Vec<f64>) {
    let samples = samples.max(1);
    let target = 0.25 / samples as f64; // the variance 0.5/√samples allows
    let mut hits = vec![1usize; shown.len()];
    let mut drawn = 1;
    while drawn < samples {
        let other = one(rng);
        for (r, (a, b)) in shown.iter().zip(&other).enumerate() {
            if a == b {
                hits[r] += 1;
            }
        }
        drawn += 1;
        if drawn % 64 == 0 {
            between();
        }
        if drawn >= MIN_DRAWS && drawn % 16 == 0 && settled(&hits, drawn, target) {
            break;
        }
    }
    let n = drawn as f64;
    hits.iter()
        .map(|&h| {
            let p = h as f64 / n;
            let q = if drawn > 1 {
                p.clamp(1.0 / n, 1.0 - 1.0 / n)
            } else {
                0.5 // one draw says nothing: the widest error
            };
            (p, (q * (1.0 - q) / n).sqrt())
        })
        .unzip()
}

/// Draws before a propensity estimate may stop early.
const MIN_DRAWS: usize = 64;

/// Whether every estimate h/n is at least 1/2 and has a variance
/// p(1 − p)/n of at most `target`, with p kept at least 1/n from 1 (an
/// estimate of 1 from n draws is not certain).
fn settled(hits: &[usize], n: usize, target: f64) -> bool {
    let n = n as f64;
    hits.iter().all(|&h| {
        let p = (h as f64 / n).min(1.0 - 1.0 / n);
        p >= 0.5 && p * (1.0 - p) / n <= target
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ranking every draw repeats settles after MIN_DRAWS draws at
    /// propensity 1; one that draws cannot agree on uses all `samples`.
    #[test]
    fn propensity_draws_stop_once_the_estimates_settle() {
        let count = |flip: bool| {
            let mut n = 0;
            let mut one = |rng: &mut Rng| -> Vec<usize> {
                n += 1;
                if flip && uniform(rng) < 0.5 {
                    vec![1, 0]
                } else {
                    vec![0, 1]
                }
            };
            let (p, se) = estimated(&[0, 1], 256, &mut Rng::new(4), &mut one, &mut || {});
            (n, p, se)
        };
        let (n, p, se) = count(false);
        assert_eq!((n, p), (MIN_DRAWS - 1, vec![1.0, 1.0]));
        // 64 draws that all agree: not exact, and said so
        let d = MIN_DRAWS as f64;
        assert!((se[0] - ((1.0 / d) * (1.0 - 1.0 / d) / d).sqrt()).abs() < 1e-12);
        let (n, p, se) = count(true);
        assert_eq!(n, 255);
        assert!((p[0] - 0.5).abs() < 0.1, "{p:?}");
        assert!((se[0] - 0.5 / 16.0).abs() < 0.002, "{se:?}");
        // a place shown with a small propensity keeps every draw, however
        // settled the others are
        let mut calls = 0;
        let mut one = |rng: &mut Rng| -> Vec<usize> {
            calls += 1;
            if uniform(rng) < 0.05 {
                vec![0, 1]
            } else {
                vec![0, 2]
            }
        };
        let (p, _) = estimated(&[0, 1], 256, &mut Rng::new(8), &mut one, &mut || {});
        assert_eq!(calls, 255);
        assert!(p[1] < 0.15, "{p:?}");
    }

    /// The standard error a slate reports is the spread its estimate has
    /// over seeds: "how exact" is measured, not assumed.
    #[test]
    fn a_propensity_s_standard_error_is_its_spread() {
        let (mut ps, mut ses) = (Vec::new(), Vec::new());
        for seed in 0..400 {
            let mut one = |rng: &mut Rng| -> Vec<usize> {
                if uniform(rng) < 0.3 {
                    vec![0, 1]
                } else {
                    vec![0, 2]
                }
            };
            let (p, se) = estimated(&[0, 1], 256, &mut Rng::new(seed), &mut one, &mut || {});
            ps.push(p[1]);
            ses.push(se[1]);
        }
        let n = ps.len() as f64;
        let mean = ps.iter().sum::<f64>() / n;
        let sd = (ps.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let se = ses.iter().sum::<f64>() / n;
        assert!((se / sd - 1.0).abs() < 0.15, "reported {se}, spread {sd}");
    }

    /// The k best, selected then sorted, are the first k of a full sort
    /// (ties by position), for every k, with ties and all.
    #[test]
    fn top_k_is_the_head_of_a_full_sort() {
        let mut rng = Rng::new(9);
        for n in [0, 1, 2, 7, 20, 33] {
            let scores: Vec<f64> = (0..n).map(|_| (uniform(&mut rng) * 5.0).floor()).collect();
            let mut full: Vec<usize> = (0..n).collect();
            full.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            for k in 0..=n + 1 {
                assert_eq!(top_k(&scores, k), full[..k.min(n)].to_vec(), "n {n} k {k}");
            }
        }
    }
    use crate::rng::normal;

    fn run(policy: Policy, logits: &[f64], k: usize, seed: u64) -> Slate {
        let mut rng = Rng::new(seed);
        let l = logits.to_vec();
        let mut draw = move |r: &mut Rng| l.iter().map(|z| z + normal(r)).collect::<Vec<f64>>();
        choose(logits, k, policy, 256, &mut rng, &mut draw, &mut || {})
    }

    /// How often each item lands at each place over many seeds.
    fn frequencies(policy: Policy, logits: &[f64], k: usize, n: usize) -> Vec<Vec<f64>> {
        let mut f = vec![vec![0f64; k]; logits.len()];
        for s in 0..n {
            let sl = run(policy, logits, k, 1000 + s as u64);
            for (r, &i) in sl.order.iter().enumerate() {
                f[i][r] += 1.0 / n as f64;
            }
        }
        f
    }

    #[test]
    fn parse_names_the_valid_values() {
        assert_eq!(Policy::parse("none", 1.0, 0.1), Ok(Policy::Greedy));
        let e = Policy::parse("greedy", 1.0, 0.1).unwrap_err();
        assert!(e.contains("none, thompson, softmax, epsilon"), "{e}");
    }

    #[test]
    fn greedy_ranks_by_score_with_ties_by_position() {
        let s = run(Policy::Greedy, &[0.1, 0.5, 0.5, -1.0], 3, 1);
        assert_eq!(s.order, vec![1, 2, 0]);
        assert_eq!(s.propensity, vec![1.0; 3]);
        assert_eq!(s.propensity_se, vec![0.0; 3]);
        assert_eq!(run(Policy::Greedy, &[0.3], 5, 1).order, vec![0]);
    }

    #[test]
    fn epsilon_propensities_are_the_true_marginals() {
        let logits = [2.0, 1.0, 0.0, -1.0];
        let p = Policy::Epsilon { epsilon: 0.3 };
        let f = frequencies(p, &logits, 2, 20_000);
        for s in 0..50 {
            let sl = run(p, &logits, 2, s);
            assert_eq!(sl.propensity_se, vec![0.0; 2]);
            for (r, (&i, &q)) in sl.order.iter().zip(&sl.propensity).enumerate() {
                assert!(
                    (f[i][r] - q).abs() < 0.015,
                    "item {i} place {r}: {} vs {q}",
                    f[i][r]
                );
            }
        }
    }

    #[test]
    fn softmax_first_place_is_exact_and_later_places_are_close() {
        let logits = [1.0, 0.5, 0.0, -0.5, -1.0];
        let p = Policy::Softmax { temperature: 0.7 };
        let f = frequencies(p, &logits, 3, 20_000);
        for s in 0..40 {
            let sl = run(p, &logits, 3, s);
            let first = sl.order[0];
            assert!((sl.propensity[0] - softmax_at(&logits, 0.7, first)).abs() < 1e-12);
            assert_eq!(sl.propensity_se[0], 0.0);
            assert!(sl.propensity_se[1..].iter().all(|&e| e > 0.0 && e <= 0.032));
            for (r, (&i, &q)) in sl.order.iter().zip(&sl.propensity).enumerate() {
                // Monte Carlo: 256 rankings, standard error ≤ 0.032
                assert!(
                    (f[i][r] - q).abs() < 0.1,
                    "item {i} place {r}: {} vs {q}",
                    f[i][r]
                );
            }
        }
        // the empirical first-place frequency matches the softmax
        for (i, places) in f.iter().enumerate() {
            assert!((places[0] - softmax_at(&logits, 0.7, i)).abs() < 0.015);
        }
    }

    #[test]
    fn thompson_propensities_match_frequencies() {
        let logits = [1.0, 0.8, 0.0, -2.0];
        let f = frequencies(Policy::Thompson, &logits, 2, 10_000);
        for s in 0..40 {
            let sl = run(Policy::Thompson, &logits, 2, s);
            for (r, (&i, &q)) in sl.order.iter().zip(&sl.propensity).enumerate() {
                assert!(q > 0.0 && q <= 1.0);
                assert!(
                    (f[i][r] - q).abs() < 0.1,
                    "item {i} place {r}: {} vs {q}",
                    f[i][r]
                );
            }
        }
        // an item far below the others is almost never first
        assert!(f[3][0] < 0.02);
    }

    #[test]
    fn the_same_seed_gives_the_same_slate() {
        let logits = [0.3, 0.2, 0.1, 0.0, -0.1];
        for p in [
            Policy::Thompson,
            Policy::Softmax { temperature: 1.0 },
            Policy::Epsilon { epsilon: 0.5 },
        ] {
            assert_eq!(run(p, &logits, 3, 9), run(p, &logits, 3, 9));
            let differs =
                (0..20).any(|s| run(p, &logits, 3, s).order != run(p, &logits, 3, 9).order);
            assert!(differs, "{p:?} never explores");
        }
    }
}
