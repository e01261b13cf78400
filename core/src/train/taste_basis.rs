//! Phase 4b of meta-training: the directions along which tenants' tastes
//! differ (taste.rs), learned from the tastes of meta-train tenants and
//! judged on held-out ones.
//!
//! Empirical Bayes in its plainest form (the approach of the issue's
//! feasibility check, after Kveton et al.'s Meta-Thompson sampling and
//! Hong et al.'s hierarchical bandits, which learn a prior's covariance
//! across tasks): fit each training tenant's taste under a weak isotropic
//! prior, take the top eigen-directions of their second moment, and scale
//! them. The fitted tastes are noisy and shrunk, so neither the rank nor
//! the scale is trusted as estimated: both are chosen on the held-out
//! tenants' folds, by the same rule as the rest of the prior, and the
//! basis is kept only where it lifts their within-tenant AUC.

use std::sync::Arc;

use serde::Serialize;

use crate::head::{Head, NB};
use crate::prior::{Prior, FROZEN};
use crate::taste::{top_eigen, TasteBasis, MAX_RANK};

use super::adapt::adapt_with;
use super::config::{AdaptConfig, Method, Task};
use super::episodes::{query_quality, Fold, Quality};

/// What meta-training reports of the basis.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TasteReport {
    /// per behaviour: the directions kept (all 0: no basis)
    pub rank: Vec<usize>,
    /// the factor on the fitted tastes' eigenvalues
    pub scale: Option<f32>,
    /// tenants whose tastes the directions were learned from
    pub tenants: usize,
    /// on the held-out folds: mean query AUC (losses counted twice) after
    /// adaptation, without and with the basis
    pub val_auc_before: Option<f32>,
    pub val_auc_after: Option<f32>,
}

/// Events of one tenant a taste is fitted on: enough to find its
/// direction, few enough that fitting hundreds of tenants stays seconds.
const FIT_EVENTS: usize = 400;
/// Tastes needed per behaviour before its directions are believed.
const MIN_TASTES: usize = 8;
const RANKS: [usize; 5] = [2, 4, 8, 16, 32];
const SCALES: [f32; 3] = [0.25, 1.0, 4.0];
const TOLERANCE_AUC: f32 = 0.001;
const LOSS_SLACK: f32 = 0.01;

/// Learns the basis and, with it, the isotropic taste precision of
/// `prior`. `fit_on` are the tenants whose tastes give the directions for
/// the search, `refit_on` those that give the final ones; `folds` judge.
/// Returns the basis (None: the isotropic prior alone is kept).
#[allow(clippy::too_many_arguments)]
pub(super) fn learn_basis(
    head: &Head,
    tasks: &[Task],
    fit_on: &[usize],
    refit_on: &[usize],
    folds: &mut [Fold],
    prior: &mut Prior,
    inner: &dyn Fn(Prior) -> AdaptConfig,
    between: &mut dyn FnMut(),
) -> (Option<Arc<TasteBasis>>, TasteReport) {
    let mut report = TasteReport {
        rank: vec![0; NB],
        ..TasteReport::default()
    };
    if folds.is_empty() {
        return (None, report);
    }
    // each tenant's taste is fitted once: the search uses `fit_on`'s, the
    // final directions `refit_on`'s
    let mut everyone: Vec<usize> = fit_on.iter().chain(refit_on).copied().collect();
    everyone.sort_unstable();
    everyone.dedup();
    let fits = fit_tastes(head, tasks, &everyone, between);
    let eigen = directions(&gather(&fits, fit_on), between);
    if eigen.iter().all(|(vals, _)| vals.is_empty()) {
        return (None, report);
    }
    let mut judge = |basis: Option<Arc<TasteBasis>>, p: Prior| -> Quality {
        for f in folds.iter_mut() {
            f.head.basis = basis.clone();
        }
        query_quality(folds, &inner(p), between)
    };
    let base = judge(None, *prior);
    report.val_auc_before = Some(base.auc);
    let mut scored: Vec<(Quality, usize, f32)> = Vec::new();
    for r in RANKS {
        if eigen.iter().all(|(vals, _)| vals.len() < r) && r != RANKS[0] {
            continue;
        }
        for scale in SCALES {
            let basis = build(head.dims(), &eigen, r, scale);
            if basis.is_empty() {
                continue;
            }
            scored.push((judge(Some(Arc::new(basis)), *prior), r, scale));
        }
    }
    let eligible: Vec<&(Quality, usize, f32)> = scored
        .iter()
        .filter(|(q, _, _)| q.loss <= base.loss + LOSS_SLACK)
        .collect();
    let best = eligible
        .iter()
        .map(|(q, _, _)| q.auc)
        .fold(f32::NEG_INFINITY, f32::max);
    if best <= base.auc + TOLERANCE_AUC {
        for f in folds.iter_mut() {
            f.head.basis = None;
        }
        report.val_auc_after = Some(base.auc);
        return (None, report);
    }
    // the most conservative of those the folds cannot tell from the best:
    // the fewest directions, then the smallest scale
    let &&(mut quality, rank, scale) = eligible
        .iter()
        .filter(|(q, _, _)| q.auc >= best - TOLERANCE_AUC)
        .min_by(|a, b| (a.1, a.2).partial_cmp(&(b.1, b.2)).unwrap())
        .expect("best came from eligible");
    let basis = Arc::new(build(head.dims(), &eigen, rank, scale));
    // with the directions in place, the isotropic rest may need less room
    // (or none): the same rule, most conservative within tolerance
    let mut best_iso = (quality, *prior);
    for taste in [FROZEN, 30.0, 10.0, 3.0, 1.0] {
        if taste == prior.taste {
            continue;
        }
        let p = Prior { taste, ..*prior };
        let q = judge(Some(basis.clone()), p);
        let (bq, bp) = best_iso;
        let better = q.loss <= base.loss + LOSS_SLACK
            && (q.auc > bq.auc + TOLERANCE_AUC
                || (q.auc >= bq.auc - TOLERANCE_AUC && taste > bp.taste));
        if better {
            best_iso = (q, p);
        }
    }
    (quality, *prior) = best_iso;
    report.val_auc_after = Some(quality.auc);
    report.scale = Some(scale);
    // the final directions from every tenant with events enough
    let tastes = gather(&fits, refit_on);
    let eigen = directions(&tastes, between);
    let basis = build(head.dims(), &eigen, rank, scale);
    report.rank = basis.ranks().to_vec();
    report.tenants = tastes.iter().map(Vec::len).max().unwrap_or(0);
    for f in folds.iter_mut() {
        f.head.basis = None;
    }
    ((!basis.is_empty()).then(|| Arc::new(basis)), report)
}

/// One tenant's fitted taste per behaviour (None: too few events of it).
type Fitted = (usize, Vec<Option<Vec<f64>>>);

/// Per tenant of `tenants`, its taste (τ − τ_start) per behaviour, fitted
/// on up to `FIT_EVENTS` of its events under a weak isotropic prior, for
/// behaviours with at least `MIN_TASTES` of its events.
fn fit_tastes(
    head: &Head,
    tasks: &[Task],
    tenants: &[usize],
    between: &mut dyn FnMut(),
) -> Vec<Fitted> {
    let cfg = AdaptConfig {
        steps: 5,
        lr: 1.0,
        method: Method::Meta,
        prior: Prior {
            taste: 1.0,
            item: FROZEN,
            ..Prior::default()
        },
        seed: 0,
        posterior: None,
        max_items: 0,
    };
    let mut start = head.clone();
    start.basis = None;
    let mut out = Vec::with_capacity(tenants.len());
    for &t in tenants {
        let exs = &tasks[t].examples;
        let exs = &exs[..exs.len().min(FIT_EVENTS)];
        let (adapted, _) = adapt_with(&start, exs, &cfg, between);
        let per_behaviour = (0..NB)
            .map(|b| {
                (exs.iter().filter(|e| e.b == b).count() >= MIN_TASTES).then(|| {
                    adapted
                        .taste(b)
                        .iter()
                        .zip(start.taste(b))
                        .map(|(a, s)| f64::from(a - s))
                        .collect()
                })
            })
            .collect();
        out.push((t, per_behaviour));
        between();
    }
    out
}

/// Per behaviour, the fitted tastes of the tenants in `which`.
fn gather(fits: &[Fitted], which: &[usize]) -> Vec<Vec<Vec<f64>>> {
    let mut out = vec![Vec::new(); NB];
    for (t, per_behaviour) in fits {
        if !which.contains(t) {
            continue;
        }
        for (tastes, taste) in out.iter_mut().zip(per_behaviour) {
            tastes.extend(taste.iter().cloned());
        }
    }
    out
}

/// Per behaviour, the top eigenpairs of the tastes' second moment (none
/// for a behaviour with fewer than `MIN_TASTES` tastes).
fn directions(
    tastes: &[Vec<Vec<f64>>],
    between: &mut dyn FnMut(),
) -> Vec<(Vec<f64>, Vec<Vec<f64>>)> {
    tastes
        .iter()
        .enumerate()
        .map(|(b, xs)| {
            if xs.len() < MIN_TASTES {
                return (Vec::new(), Vec::new());
            }
            top_eigen(xs, MAX_RANK.min(xs.len() - 1), 0x7a57e ^ b as u64, between)
        })
        .collect()
}

/// The basis of the top `r` directions (those with a positive eigenvalue)
/// with variances `scale` × eigenvalue.
fn build(dims: usize, eigen: &[(Vec<f64>, Vec<Vec<f64>>)], r: usize, scale: f32) -> TasteBasis {
    let mut basis = TasteBasis::empty(dims);
    for (b, (vals, vecs)) in eigen.iter().enumerate() {
        for (v, u) in vals.iter().zip(vecs).take(r) {
            let var = (f64::from(scale) * v) as f32;
            if !(var.is_finite() && var > 1e-6) {
                break;
            }
            basis.var[b].push(var);
            basis.u[b].extend(u.iter().map(|&x| x as f32));
        }
    }
    basis
}
