//! Stage 4b: how far one tenant's base rate may move from the head it
//! starts from — the bias precision chosen by the tenant's own events
//! (empirical Bayes, as item_prior.rs does for item effects). Pure Rust,
//! no Postgres.
//!
//! Meta-training measures how far tenants' base rates differ across the
//! tenants it saw, and where they all behave alike it holds the bias close
//! or freezes it. A tenant served in production can still differ from all
//! of them: a head meta-trained on purchases or ratings that serves
//! clicks, where a liked item is clicked a tenth of the time, sees a tenth
//! of the positives it predicts. With the bias held, nothing but the
//! tenant's item effects can absorb that shift, every item then looks far
//! from the platform, and the loop learns noise (benches/LOOP_STORE.md,
//! "0.20.0": greedy and Thompson + learn fell below the frozen head). So
//! each fresh fit first asks whether the tenant's events agree with the
//! start's level. Per behaviour, a shift δ of every logit of the start
//! (its item effects included) has prior N(0, 1/λ); the marginal
//! likelihood of the events under λ is their Laplace approximation at the
//! MAP δ (exact at FROZEN, where δ = 0), summed over behaviours, and the
//! λ with the highest is the fit's when it beats the start's by
//! `item_prior::GUARD` nats. A Gaussian approximation of the events
//! around δ = 0 would not do: where few positives are expected (a rare
//! behaviour, one early purchase) it overstates their evidence tenfold.
//! Few events, or events at the rate the head predicts, leave the prior
//! as it was.

use crate::behaviour::NB;
use crate::head::{Example, Head};
use crate::item_prior::{guarded, Choice};
use crate::prior::{Prior, FROZEN};

/// The bias precisions tried: 0.01 … 10⁴, four to a decade (the guard's
/// 3 nats make a finer grid moot), and FROZEN.
fn candidates() -> impl Iterator<Item = f64> {
    (-8..=16)
        .map(|k| 10f64.powf(f64::from(k) / 4.0))
        .chain(std::iter::once(f64::from(FROZEN)))
}

/// Per behaviour with events: each event's logit under `start` (item
/// effects included) and its label.
pub fn level_events(
    start: &Head,
    support: &[Example],
    between: &mut dyn FnMut(),
) -> Vec<Vec<(f64, f64)>> {
    let mut by_b: Vec<Vec<(f64, f64)>> = vec![Vec::new(); NB];
    for (i, e) in support.iter().enumerate() {
        by_b[e.b].push((f64::from(start.example_logit(e)), f64::from(e.y)));
        if i % 4096 == 4095 {
            between();
        }
    }
    by_b.into_iter().filter(|v| !v.is_empty()).collect()
}

/// log σ(x), without overflow either way.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

/// The events' log-likelihood with every logit shifted by δ.
fn log_likelihood(events: &[(f64, f64)], delta: f64) -> f64 {
    events
        .iter()
        .map(|&(o, y)| y * log_sigmoid(o + delta) + (1.0 - y) * log_sigmoid(-(o + delta)))
        .sum()
}

/// log ∫ p(events | δ) N(δ; 0, 1/λ) dδ by Laplace at the MAP δ (Newton
/// from `from`, the previous candidate's), and that δ; at FROZEN, δ = 0.
fn log_marginal(events: &[(f64, f64)], lambda: f64, from: f64) -> (f64, f64) {
    if lambda >= f64::from(FROZEN) {
        return (log_likelihood(events, 0.0), 0.0);
    }
    let curvature = |d: f64| -> (f64, f64) {
        events.iter().fold((0.0, 0.0), |(g, h), &(o, y)| {
            let p = 1.0 / (1.0 + (-(o + d)).exp());
            (g + y - p, h + p * (1.0 - p))
        })
    };
    let mut delta = from;
    for _ in 0..60 {
        let (g, h) = curvature(delta);
        let step = ((g - lambda * delta) / (h + lambda)).clamp(-4.0, 4.0);
        delta += step;
        if step.abs() < 1e-9 {
            break;
        }
    }
    let (_, h) = curvature(delta);
    let value = log_likelihood(events, delta) - 0.5 * lambda * delta * delta
        + 0.5 * (lambda / (h + lambda)).ln();
    (value, delta)
}

/// Σ over behaviours of `log_marginal`, warm-starting each behaviour's δ.
fn log_evidence(events: &[Vec<(f64, f64)>], lambda: f64, deltas: &mut [f64]) -> f64 {
    events
        .iter()
        .zip(deltas.iter_mut())
        .map(|(ev, d)| {
            let (v, at) = log_marginal(ev, lambda, *d);
            *d = at;
            v
        })
        .sum()
}

/// The prior a fresh fit runs under, and what chose its bias: the
/// start's (`prior.bias_meta` where the start's own was chosen so, else
/// `prior.bias`) unless another candidate explains `events` better by
/// `GUARD` nats. The returned prior remembers the start's in `bias_meta`.
/// `between` runs after every candidate.
pub fn choose(
    prior: Prior,
    events: &[Vec<(f64, f64)>],
    between: &mut dyn FnMut(),
) -> (Prior, Choice) {
    let meta = prior.bias_meta.unwrap_or(prior.bias);
    // from the strongest down, each MAP δ starting from the last one's
    let mut grid: Vec<f64> = candidates().collect();
    grid.sort_by(|a, b| b.total_cmp(a));
    if events.is_empty() {
        grid.clear();
    }
    let mut deltas = vec![0.0; events.len()];
    let (chosen, gain) = guarded(
        meta,
        grid,
        &mut |l| log_evidence(events, l, &mut deltas),
        between,
    );
    (
        Prior {
            bias: chosen,
            bias_meta: Some(meta),
            ..prior
        },
        Choice {
            meta,
            chosen,
            gain,
            rows: events.len(),
        },
    )
}

/// The prior a fresh fit runs under where nothing chooses (`'global'`):
/// the precision the start's own was chosen over, as before 0.20.0.
pub fn unchosen(prior: Prior) -> Prior {
    Prior {
        bias: prior.bias_meta.unwrap_or(prior.bias),
        bias_meta: None,
        ..prior
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item_prior::GUARD;
    use crate::rng::{uniform, Rng};

    /// A head whose every logit is `level` (W, gain and taste are zero),
    /// and `n` events of behaviour 0 clicked with probability `rate`.
    fn world(level: f32, n: usize, rate: f64, seed: u64) -> (Head, Vec<Example>) {
        let dims = 4;
        let mut h = Head::new(dims, 0);
        h.params.iter_mut().for_each(|p| *p = 0.0);
        for b in 0..NB {
            let at = h.bias_at(b);
            h.params[at] = level;
        }
        let mut rng = Rng::new(seed);
        let exs = (0..n)
            .map(|_| Example {
                x: vec![0.1; 2 * dims + 1],
                f: Vec::new(),
                b: 0,
                y: if uniform(&mut rng) < rate { 1.0 } else { 0.0 },
                item: None,
            })
            .collect();
        (h, exs)
    }

    fn frozen_bias() -> Prior {
        Prior {
            bias: FROZEN,
            ..Prior::default()
        }
    }

    fn choose_for(prior: Prior, level: f32, n: usize, rate: f64, seed: u64) -> (Prior, Choice) {
        let (h, exs) = world(level, n, rate, seed);
        choose(prior, &level_events(&h, &exs, &mut || {}), &mut || {})
    }

    /// Clicks at a tenth of the predicted rate free a frozen bias.
    #[test]
    fn a_shifted_base_rate_frees_a_frozen_bias() {
        let (prior, choice) = choose_for(frozen_bias(), 0.0, 200, 0.05, 1);
        assert_eq!((choice.meta, choice.rows), (FROZEN, 1));
        assert!(choice.gain > GUARD, "{choice:?}");
        assert!(prior.bias < 10.0 && prior.bias >= 0.01, "{prior:?}");
        assert_eq!(prior.bias_meta, Some(FROZEN));
        // so do fifty misses where half were expected
        let (prior, choice) = choose_for(frozen_bias(), 0.0, 50, 0.0, 1);
        assert!(choice.gain > 20.0 && prior.bias < 10.0, "{choice:?}");
    }

    /// Events at the predicted rate, or too few to tell, keep the start's
    /// precision, frozen or not. So do rare behaviours' few positives,
    /// where a Gaussian approximation at δ = 0 found tens of nats (one
    /// click in ten events at p = 0.001: 24; two in thirty at p = 0.01:
    /// 3.2). Six misses in a row at a predicted half would not: that is
    /// 1.6% likely, and the exact marginal gains 3.1 nats by freeing it.
    #[test]
    fn agreeing_few_or_rare_events_keep_the_start() {
        for (level, n, rate) in [(0.0, 2000, 0.5), (-2.0, 3000, 0.1192)] {
            for start in [frozen_bias(), Prior::default()] {
                let want = start.bias;
                let (prior, choice) = choose_for(start, level, n, rate, 2);
                assert_eq!(prior.bias, want, "level {level}, n {n}: {choice:?}");
                assert!(choice.gain < GUARD);
            }
        }
        let logit = |p: f64| (p / (1.0 - p)).ln() as f32;
        for (p, n, clicks) in [(0.5, 6, 2), (0.001, 10, 1), (0.01, 30, 2)] {
            let (h, mut exs) = world(logit(p), n, 0.0, 3);
            exs.iter_mut().take(clicks).for_each(|e| e.y = 1.0);
            let ev = level_events(&h, &exs, &mut || {});
            let (prior, choice) = choose(frozen_bias(), &ev, &mut || {});
            assert_eq!(prior.bias, FROZEN, "p {p}, {clicks} of {n}: {choice:?}");
        }
        let (prior, choice) = choose(frozen_bias(), &[], &mut || {});
        assert_eq!((prior.bias, choice.rows, choice.gain), (FROZEN, 0, 0.0));
    }

    /// A start whose bias was chosen so is judged against the precision
    /// it was chosen over: a tenant whose later events agree with its
    /// shifted level goes back to it. `unchosen` ('global') fits under
    /// that precision too.
    #[test]
    fn the_start_chosen_before_is_judged_by_its_meta() {
        let loosened = Prior {
            bias: 0.3,
            bias_meta: Some(FROZEN),
            ..Prior::default()
        };
        let (prior, choice) = choose_for(loosened, -3.0, 2000, 0.0474, 3);
        assert_eq!(choice.meta, FROZEN);
        assert_eq!(prior.bias, FROZEN, "{choice:?}");
        let back = unchosen(loosened);
        assert_eq!((back.bias, back.bias_meta), (FROZEN, None));
        assert_eq!(unchosen(Prior::default()), Prior::default());
    }

    /// The Laplace marginal against quadrature of the exact integral, on
    /// few events with few positives expected (where approximations fail
    /// first): within 0.3 nats, and so the choice with them.
    #[test]
    fn laplace_marginal_matches_quadrature() {
        let logit = |p: f64| (p / (1.0 - p)).ln();
        for (p, n, clicks) in [(0.01, 30, 2), (0.001, 10, 1), (0.5, 20, 1), (0.2, 40, 8)] {
            let ev: Vec<(f64, f64)> = (0..n)
                .map(|i| (logit(p), if i < clicks { 1.0 } else { 0.0 }))
                .collect();
            for lambda in [0.01, 0.1, 1.0, 10.0] {
                let (laplace, _) = log_marginal(&ev, lambda, 0.0);
                // ∫ p(ev | δ) N(δ; 0, 1/λ) dδ on a fine grid over ±12 sd
                let sd = lambda.powf(-0.5);
                let steps = 40_000;
                let (lo, hi) = (-12.0 * sd - 30.0, 12.0 * sd + 30.0);
                let w = (hi - lo) / steps as f64;
                let mut terms: Vec<f64> = (0..=steps)
                    .map(|k| {
                        let d = lo + k as f64 * w;
                        log_likelihood(&ev, d) - 0.5 * lambda * d * d
                            + 0.5 * (lambda / (2.0 * std::f64::consts::PI)).ln()
                    })
                    .collect();
                let m = terms.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                terms.iter_mut().for_each(|t| *t = (*t - m).exp());
                let exact = m + (terms.iter().sum::<f64>() * w).ln();
                assert!(
                    (laplace - exact).abs() < 0.3,
                    "p {p}, {clicks} of {n}, λ {lambda}: Laplace {laplace}, exact {exact}"
                );
            }
        }
    }
}
