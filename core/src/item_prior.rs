//! Stage 4c: how far one tenant's own item effects may move from the
//! platform's — λ_t chosen by the tenant's own events (empirical Bayes).
//! Pure Rust, no Postgres.
//!
//! Meta-training measures one λ_t for every tenant (items.rs), and where
//! no item recurs within its tenants it cannot measure any spread and
//! freezes λ_t. Tenants differ: a user shown the same items again and
//! again departs from the platform's effects far more than a store whose
//! visitors are many (benches/LOOP_STORE.md, 0.18.0: one weak λ_t for
//! every tenant gains the user loop 5.7 points and costs stores 0.5–2).
//! So each fit
//! weighs its own rows: events that point to a deviation z of precision d
//! make z ~ N(0, 1/d + 1/λ) under λ (the marginal likelihood of the
//! rows' Gaussian approximation), and the λ with the highest marginal
//! likelihood serves when it beats meta-training's by `GUARD` nats. Few
//! events, or events that agree with meta-training, leave the tenant
//! where meta-training put it.

use serde::Serialize;

use crate::items::{fit_tenant, ItemEffects, ItemEvent};
use crate::prior::{Prior, FROZEN};

/// The λ_t a tenant's rows are fitted under where meta-training froze
/// it: rows need a finite prior to keep what their events said (at
/// FROZEN an effect cannot move, and f32 keeps no trace of the events),
/// and a unit prior keeps a deviation fitted on events that all agree
/// (every impression clicked) within a few logits, where the Gaussian
/// approximation that `ItemEffects::served` rescales holds.
pub const REFERENCE: f32 = 1.0;

/// Nats by which another λ_t must raise the rows' marginal likelihood
/// over meta-training's to serve: a likelihood ratio of e³ ≈ 20, about
/// p = 0.015 for one parameter, as the choice is made again at every fit.
pub const GUARD: f64 = 3.0;

/// λ_t's candidates: 0.01 … 10⁴, eight to a decade, and FROZEN.
pub(crate) fn candidates() -> impl Iterator<Item = f64> {
    (-16..=32)
        .map(|k| 10f64.powf(f64::from(k) / 8.0))
        .chain(std::iter::once(f64::from(FROZEN)))
}

/// log p(rows | λ) up to a constant: each row's deviation z of events'
/// precision d is N(0, 1/d + 1/λ); at FROZEN, N(0, 1/d).
pub fn log_evidence(rows: &[(f64, f64)], lambda: f64) -> f64 {
    let spread = if lambda >= f64::from(FROZEN) {
        0.0
    } else {
        1.0 / lambda
    };
    rows.iter()
        .map(|&(z, d)| {
            let v = 1.0 / d + spread;
            -0.5 * (v.ln() + z * z / v)
        })
        .sum()
}

/// The precision among `grid` whose `evidence` is highest, where it beats
/// `meta`'s by `GUARD` nats, else `meta`; with the gain of the best over
/// `meta`. `between` runs after every candidate. Shared by the item and
/// the bias prior (bias_prior.rs).
pub(crate) fn guarded(
    meta: f32,
    grid: impl IntoIterator<Item = f64>,
    evidence: &mut dyn FnMut(f64) -> f64,
    between: &mut dyn FnMut(),
) -> (f32, f64) {
    let at_meta = evidence(f64::from(meta));
    let (mut best, mut best_ll) = (f64::from(meta), at_meta);
    for lambda in grid {
        let ll = evidence(lambda);
        if ll > best_ll {
            (best, best_ll) = (lambda, ll);
        }
        between();
    }
    let gain = best_ll - at_meta;
    (if gain >= GUARD { best as f32 } else { meta }, gain)
}

/// What a fit chose, for its report (a version's `hyper->'item_choice'`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Choice {
    /// meta-training's λ_t
    pub meta: f32,
    /// the λ_t that serves
    pub chosen: f32,
    /// log-likelihood ratio of the best candidate over meta-training's
    #[serde(rename = "gain_nats")]
    pub gain: f64,
    /// (item, behaviour) rows with events
    pub rows: usize,
}

/// The start of a tenant's fit: remembers meta-training's λ_t as the
/// one its events must beat, and where it is FROZEN and the tenant holds
/// no rows of its own yet, fits rows under `REFERENCE` instead. With
/// `from_events` off (`pg_ecom.item_prior = 'global'`), the start as
/// before 0.19.0.
fn start_for(items: &ItemEffects, from_events: bool) -> ItemEffects {
    if !from_events || items.meta_prior.is_some() {
        return items.clone();
    }
    // a version that learned none of its own (a frozen λ_t, before 0.19.0
    // or under 'global') holds a copy of the platform's effects: it starts
    // as the platform's, with no rows
    let mut s = if items.tenant_prior >= FROZEN {
        items.without_platform_copy()
    } else {
        items.clone()
    };
    s.meta_prior = Some(s.tenant_prior);
    if s.tenant_prior >= FROZEN && (s.is_platform() || s.is_empty()) {
        s.tenant_prior = REFERENCE;
    }
    s
}

/// Whether a fit under `pg_ecom.item_prior = 'global'` leaves the rows
/// alone: meta-training froze λ_t, so none are learned, as before 0.19.0
/// (rows learned under 'tenant' are kept for when it is chosen again).
fn frozen_by_meta(items: &ItemEffects, from_events: bool) -> bool {
    !from_events && items.meta_prior.is_some_and(|m| m >= FROZEN)
}

/// A tenant's item effects after `events` (built only where rows are
/// learned), and how their prior was chosen: the start as `start_for`
/// has it; no fit where none is learned (`learns`, `frozen_by_meta`);
/// rows continued where the start carries a posterior, and under
/// `from_events` wherever it has rows of its own, since what `served`
/// rescales must stay the posterior of the tenant's events around the
/// platform's effects (an `ecom_adapt` from 'active' continues them
/// rather than taking them as a new mean); then `settle`.
pub fn fit(
    start: &ItemEffects,
    events: impl FnOnce() -> Vec<ItemEvent>,
    carried: bool,
    from_events: bool,
    cap: usize,
    between: &mut dyn FnMut(),
) -> (ItemEffects, Option<Choice>) {
    let items = start_for(start, from_events);
    if !items.learns() || frozen_by_meta(&items, from_events) {
        return settle(items, false, between);
    }
    let events = events();
    between();
    let continuing = carried || (from_events && items.has_own_rows());
    let fitted = fit_tenant(&items, &events, continuing, cap, between);
    settle(fitted, from_events, between)
}

/// Settles which λ_t a fitted tenant's rows serve with: the marginal
/// likelihood's best where it beats meta-training's by `GUARD`, else
/// meta-training's; with `from_events` off, meta-training's. `between`
/// runs after every candidate.
fn settle(
    mut items: ItemEffects,
    from_events: bool,
    between: &mut dyn FnMut(),
) -> (ItemEffects, Option<Choice>) {
    let Some(meta) = items.meta_prior else {
        return (items, None);
    };
    let rows = if from_events {
        items.evidence_rows()
    } else {
        Vec::new()
    };
    let grid = (!rows.is_empty()).then(candidates).into_iter().flatten();
    let (chosen, gain) = guarded(meta, grid, &mut |l| log_evidence(&rows, l), between);
    items.chosen_prior = Some(chosen);
    let choice = Choice {
        meta,
        chosen,
        gain,
        rows: rows.len(),
    };
    (items, Some(choice))
}

/// `prior` as a version learned into `items` stores it: the λ_t its
/// rows were fitted under, meta-training's and the one that serves.
pub fn recorded(prior: Prior, items: &ItemEffects) -> Prior {
    Prior {
        item: items.tenant_prior,
        item_meta: items.meta_prior,
        item_served: items.chosen_prior,
        ..prior
    }
}

/// The λ_t's a stored version's `prior` holds, onto its decoded items.
pub fn restore(prior: &Prior, items: &mut ItemEffects) {
    items.tenant_prior = prior.item;
    items.meta_prior = prior.item_meta;
    items.chosen_prior = prior.item_served;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{fit_tenant, ItemEvent};
    use crate::metrics::sigmoid;
    use crate::rng::{normal, uniform, Rng};

    /// Platform effects 0 for items 1..=n (behaviour 0), fitted nowhere:
    /// what a tenant deviates from.
    fn platform(n: i64, lambda: f32) -> ItemEffects {
        let keys: Vec<i64> = (1..=n).collect();
        let effects = vec![0f32; keys.len() * crate::behaviour::NB];
        let mut p = ItemEffects::from_stored(keys, effects, None, lambda).unwrap();
        p.tenant_prior = lambda;
        p
    }

    /// Events of `n` items, `per` each, whose true deviations are
    /// N(0, spread²), at a base logit of 0.
    fn events(n: i64, per: usize, spread: f64, seed: u64) -> (Vec<ItemEvent>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let truth: Vec<f64> = (0..n).map(|_| spread * normal(&mut rng)).collect();
        let mut out = Vec::new();
        for (i, t) in truth.iter().enumerate() {
            for _ in 0..per {
                let y = uniform(&mut rng) < f64::from(sigmoid(*t as f32));
                out.push(ItemEvent {
                    key: i as i64 + 1,
                    b: 0,
                    offset: 0.0,
                    y: if y { 1.0 } else { 0.0 },
                });
            }
        }
        (out, truth)
    }

    /// The rows `start` fits to `ev` (continuing its own or not), with no
    /// choice made.
    fn rows(start: &ItemEffects, ev: &[ItemEvent], continuing: bool) -> ItemEffects {
        fit_tenant(start, ev, continuing, 10_000, &mut || {})
    }

    fn fitted(meta: f32, ev: &[ItemEvent], n: i64) -> (ItemEffects, Choice) {
        let start = start_for(&platform(n, meta), true);
        let (items, choice) = settle(rows(&start, ev, false), true, &mut || {});
        (items, choice.unwrap())
    }

    /// Deviations of spread 2 (precision 0.25) under a frozen meta prior:
    /// the events choose a precision near 0.25 and items move.
    #[test]
    fn recurring_deviations_unfreeze_the_prior() {
        let (ev, truth) = events(60, 12, 2.0, 7);
        let (items, c) = fitted(FROZEN, &ev, 60);
        assert_eq!(c.meta, FROZEN);
        assert!(c.chosen > 0.08 && c.chosen < 0.8, "{c:?}");
        // the served effects follow the truth
        let served: Vec<f64> = (1..=60)
            .map(|k| f64::from(items.effect(Some(k), 0)))
            .collect();
        let corr = correlation(&served, &truth);
        assert!(corr > 0.8, "{corr}");
        assert!(items.variance(Some(1), 0) > 0.0);
    }

    /// No deviation at all: the frozen prior stays, and every effect
    /// serves as the platform's, exactly.
    #[test]
    fn events_that_agree_with_the_platform_keep_it() {
        let (ev, _) = events(60, 12, 0.0, 8);
        let (items, c) = fitted(FROZEN, &ev, 60);
        assert_eq!(c.chosen, FROZEN, "{c:?}");
        for k in 1..=60 {
            assert_eq!(items.effect(Some(k), 0), 0.0);
        }
        assert_eq!(items.variance(Some(1), 0), 0.0);
        assert_eq!(items.evidence_variance(Some(1), 0), 0.0);
    }

    /// A meta-learned λ_t that fits: the choice stays with it, and the
    /// rows serve exactly as fitted.
    #[test]
    fn a_fitting_meta_prior_stays() {
        let (ev, _) = events(40, 6, 0.5, 9);
        let (items, c) = fitted(4.0, &ev, 40);
        assert_eq!(c.chosen, 4.0, "{c:?}");
        let start = start_for(&platform(40, 4.0), true);
        let plain = rows(&start, &ev, false);
        for k in 1..=40 {
            assert_eq!(items.effect(Some(k), 0), plain.effect(Some(k), 0));
        }
    }

    /// A few events cannot move a frozen prior: one item, clicked twice.
    #[test]
    fn few_events_keep_meta_training_s_choice() {
        let ev: Vec<ItemEvent> = (0..2)
            .map(|_| ItemEvent {
                key: 1,
                b: 0,
                offset: 0.0,
                y: 1.0,
            })
            .collect();
        let (_, c) = fitted(FROZEN, &ev, 3);
        assert_eq!(c.chosen, FROZEN, "{c:?}");
        assert_eq!(c.rows, 1);
    }

    /// Rescaling rows fitted under `REFERENCE` to another λ_t matches
    /// fitting them under that λ_t as far as the rows' Gaussian
    /// approximation holds: for rows whose events do not nearly all agree
    /// (10–90% clicked), within 10% of the effect (0.02 absolute near 0)
    /// and 30% of the precision (the Laplace precision is taken at another
    /// mode); rows whose events nearly all agree are rescaled
    /// conservatively: a smaller effect than a direct fit's (by at most
    /// 30%) and a precision at least 0.8 of its (toward a weaker prior, up
    /// to 4 times more). Ten times weaker and ten times stronger, with an
    /// item clicked every time among them.
    #[test]
    fn rescaled_rows_match_a_fit_under_the_chosen_prior() {
        let (mut ev, _) = events(30, 20, 1.0, 10);
        for e in ev.iter_mut().filter(|e| e.key == 1) {
            e.y = 1.0;
        }
        let share = |k: i64| {
            let of: Vec<f32> = ev.iter().filter(|e| e.key == k).map(|e| e.y).collect();
            f64::from(of.iter().sum::<f32>()) / of.len() as f64
        };
        let under_reference = rows(&start_for(&platform(30, FROZEN), true), &ev, false);
        assert_eq!(under_reference.tenant_prior, REFERENCE);
        let mut extreme = 0;
        for c in [0.1f32, 10.0] {
            let mut rescaled = under_reference.clone();
            rescaled.chosen_prior = Some(c);
            let direct = rows(&start_for(&platform(30, c), false), &ev, false);
            for k in 1..=30 {
                let (a, b) = (rescaled.effect(Some(k), 0), direct.effect(Some(k), 0));
                let (pa, pb) = (rescaled.precision(Some(k), 0), direct.precision(Some(k), 0));
                if (0.1..=0.9).contains(&share(k)) {
                    assert!(
                        (a - b).abs() <= 0.1 * b.abs().max(0.2),
                        "{c} {k}: {a} vs {b}"
                    );
                    assert!((pa / pb - 1.0).abs() < 0.3, "{c} {k}: {pa} vs {pb}");
                } else {
                    extreme += 1;
                    assert!(
                        a.abs() <= b.abs() && a.abs() >= 0.7 * b.abs(),
                        "{c} {k}: {a} vs {b}"
                    );
                    assert!(pa >= 0.8 * pb, "{c} {k}: {pa} vs {pb}");
                }
            }
        }
        assert!(extreme >= 2, "the all-clicked item is among them");
    }

    /// Sequential fits (two halves, the second continuing the first)
    /// choose as a batch fit of both does, within two candidate steps
    /// (a factor 10^(2/8) ≈ 1.8).
    #[test]
    fn sequential_fits_choose_as_a_batch_fit() {
        let (ev, _) = events(50, 10, 1.5, 11);
        let (_, batch) = fitted(FROZEN, &ev, 50);
        let half = ev.len() / 2;
        let (first, _) = fitted(FROZEN, &ev[..half], 50);
        let second = rows(&first, &ev[half..], true);
        let (_, seq) = settle(second, true, &mut || {});
        let seq = seq.unwrap();
        let ratio = f64::from(seq.chosen / batch.chosen);
        assert!((0.56..1.78).contains(&ratio), "{seq:?} vs {batch:?}");
    }

    /// 'global': meta-training's λ_t serves whatever the events say, and
    /// a head before 0.19.0 (no meta_prior) is left as it was.
    #[test]
    fn global_keeps_meta_training_s_and_old_heads_are_untouched() {
        let (ev, _) = events(60, 12, 2.0, 12);
        let start = start_for(&platform(60, 4.0), false);
        assert_eq!(start.meta_prior, None);
        let fit = rows(&start, &ev, false);
        let (same, choice) = settle(fit.clone(), false, &mut || {});
        assert_eq!(choice, None);
        assert_eq!(same, fit);
        let evd = start_for(&platform(60, 4.0), true);
        let fit = rows(&evd, &ev, false);
        let (kept, choice) = settle(fit.clone(), false, &mut || {});
        assert_eq!(choice.unwrap().chosen, 4.0);
        for k in 1..=60 {
            assert_eq!(kept.effect(Some(k), 0), fit.effect(Some(k), 0));
        }
    }

    /// A version that learned none of its own before 0.19.0 (a frozen
    /// λ_t stored the platform's effects as a copy, no precisions) starts
    /// choosing at its next fit: the copy goes, rows are fitted.
    #[test]
    fn a_frozen_version_from_before_starts_choosing() {
        let copy = ItemEffects::from_stored(
            (1..=60).collect(),
            vec![0.0; 60 * crate::behaviour::NB],
            None,
            FROZEN,
        )
        .unwrap()
        .over(&platform(60, FROZEN));
        assert!(!copy.learns() && !copy.is_platform() && !copy.is_empty());
        let start = start_for(&copy, true);
        assert!(start.learns() && start.is_empty());
        let (ev, _) = events(60, 12, 2.0, 13);
        let fit = rows(&start, &ev, true);
        let (items, c) = settle(fit, true, &mut || {});
        assert!(items.has_own_rows());
        assert!(c.unwrap().chosen < 1.0, "{c:?}");
    }

    /// 'global' after 'tenant': meta-training froze λ_t, so the rows are
    /// neither learned nor served (they are kept); every effect is the
    /// platform's again.
    #[test]
    fn global_after_tenant_serves_the_platform_s() {
        let (ev, _) = events(60, 12, 2.0, 14);
        let (items, _) = fitted(FROZEN, &ev, 60);
        assert!(items.chosen_prior.unwrap() < 1.0);
        let start = start_for(&items, false);
        assert!(frozen_by_meta(&start, false));
        let (kept, choice) = settle(start, false, &mut || {});
        assert_eq!(choice.unwrap().chosen, FROZEN);
        assert!(kept.has_own_rows());
        for k in 1..=60 {
            assert_eq!(kept.effect(Some(k), 0), 0.0);
        }
    }

    fn correlation(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }
}
