//! Meta-training the global head across tenants: pooled fit, within-tenant
//! fit of the small part, and the search for the prior.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

use crate::head::{Example, Group, Head, NB};
use crate::metrics::log_loss;
use crate::prior::{Prior, FROZEN};
use crate::rng::Rng;

use super::config::{AdaptConfig, Method, Task, SLICE};
use super::episodes::{baseline_aucs, episodes, mean_query_loss, query_quality, split_task, Quality};
use super::adapt::adapt_with;
use super::centred::centred;
use super::newton::descent;
use super::solvers::{log_loss64, solve, Adam};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetaConfig {
    /// inner adaptation steps per task; 0 = pooled training only (no meta-learning)
    pub inner_steps: usize,
    /// outer (first-order MAML) updates
    pub meta_steps: usize,
    /// passes over the pooled meta-train events before the meta phase
    pub epochs: usize,
    /// Adam learning rate of the pooled and meta phases
    pub lr: f32,
    /// inner Newton step fraction (1 = full steps)
    pub inner_lr: f32,
    pub l2: f32,
    /// support size of the meta-training and meta-validation tasks
    pub shots: usize,
    /// fraction of tenants held out for meta-validation
    pub val_fraction: f32,
    /// as the caller gave it (stored in the head's hyper and passed back)
    pub seed: i64,
}

impl Default for MetaConfig {
    fn default() -> Self {
        MetaConfig {
            inner_steps: 5,
            meta_steps: 200,
            epochs: 3,
            lr: 0.01,
            inner_lr: 1.0,
            l2: 1e-3,
            shots: 16,
            val_fraction: 0.2,
            seed: 42,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MetaReport {
    /// names: returned to the caller of ecom_meta_train, never stored in a
    /// head (a row one tenant can read must not name other tenants)
    pub train_tenants: Vec<String>,
    pub val_tenants: Vec<String>,
    pub n_train: usize,
    pub train_loss: f32,
    /// meta-validation query loss without and with adaptation
    pub val_loss_before: Option<f32>,
    pub val_loss_after: Option<f32>,
    pub prior: Prior,
}

/// Meta-learns the global head across `tasks` (tenants).
///
/// `between` runs between minibatches, meta steps and prior candidates:
/// Postgres passes its interrupt check, so a cancelled or timed-out
/// `ecom_meta_train` stops within one step.
pub fn meta_train(
    tasks: &[Task],
    dims: usize,
    k: usize,
    cfg: &MetaConfig,
    mut between: impl FnMut(),
) -> (Head, MetaReport) {
    let mut rng = Rng::new(cfg.seed as u64);
    let mut order: Vec<usize> = (0..tasks.len()).collect();
    rng.shuffle(&mut order);
    let n_val = if tasks.len() >= 2 {
        ((tasks.len() as f32 * cfg.val_fraction).round() as usize).clamp(1, tasks.len() - 1)
    } else {
        0
    };
    let (val, train) = order.split_at(n_val);
    let pooled: Vec<&Example> = train
        .iter()
        .flat_map(|&t| tasks[t].examples.iter())
        .collect();

    // 1. pooled training: the best single head for all training tenants.
    //    Side weights and bias first, by Newton on the pooled events: with
    //    Adam alone they ended short of where logistic regression on the side
    //    features puts them (each weight moves at most lr per step), while
    //    769 text weights per behaviour took up the slack, and the global
    //    head ranked below the item-popularity feature it was given.
    let mut head = Head::new(dims, k);
    fit_small(&mut head, &pooled, &mut between);
    let mut adam = Adam::new(head.params.len(), cfg.lr);
    let mut grad = vec![0f32; head.params.len()];
    let mut idx: Vec<usize> = (0..pooled.len()).collect();
    let mut batch: Vec<Example> = Vec::with_capacity(64);
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut idx);
        for chunk in idx.chunks(64) {
            between();
            batch.clear();
            batch.extend(chunk.iter().map(|&i| pooled[i].clone()));
            head.loss_grad(&batch, None, cfg.l2, &mut grad);
            grad[head.taste_range()].iter_mut().for_each(|g| *g = 0.0);
            adam.step(&mut head.params, &grad);
        }
    }

    // 2. first-order MAML: move the start so that a few inner steps on a
    //    tenant's support set lower the loss on its query set
    let mut prior = Prior::default();
    let inner = |prior: Prior| AdaptConfig {
        steps: cfg.inner_steps,
        lr: cfg.inner_lr,
        method: Method::Meta,
        prior,
        seed: cfg.seed,
        posterior: None,
    };
    let usable: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&t| tasks[t].examples.len() > cfg.shots + 4)
        .collect();
    if cfg.inner_steps > 0 && !usable.is_empty() {
        let mut meta_adam = Adam::new(head.params.len(), cfg.lr * 0.5);
        for step in 0..cfg.meta_steps {
            between();
            let t = usable[rng.below(usable.len())];
            let (support, query) = split_task(&tasks[t].examples, cfg.shots, &mut rng);
            let (adapted, _) = adapt_with(
                &head,
                &support,
                &AdaptConfig {
                    seed: cfg.seed.wrapping_add(step as i64),
                    ..inner(prior)
                },
                &mut between,
            );
            adapted.loss_grad(&query, None, cfg.l2, &mut grad);
            // the global head has no taste: a taste is a tenant's own
            grad[head.taste_range()].iter_mut().for_each(|g| *g = 0.0);
            meta_adam.step(&mut head.params, &grad);
        }
    }
    // 3. how much to trust the text score against the side features, on
    //    tenants whose events W never saw: on its own training events the
    //    text score is overconfident (769 weights per behaviour from a few
    //    thousand events), so a gain fitted there drowns the side features.
    //    Side weights from every tenant (a score's text term held fixed):
    //    twenty held-out users gave the users' own positive rate a weight of
    //    +2.5 that a hundred showed to be −0.7 within a user.
    let group = |ts: &[usize]| -> Vec<Vec<&Example>> {
        ts.iter()
            .map(|&t| tasks[t].examples.iter().collect())
            .collect()
    };
    let held = group(val);
    if !val.is_empty() {
        fit_within(&mut head, &held, true, &mut between);
    }
    let everyone = group(&order);
    fit_within(&mut head, &everyone, val.is_empty(), &mut between);
    if cfg.inner_steps > 0 && !usable.is_empty() {
        // 4. how far each group may move: the prior precisions that lower the
        //    query loss after adaptation most on held-out tenants (FROZEN =
        //    do not adapt that group), so adaptation only moves what helps
        let judge: Vec<usize> = if val.is_empty() {
            usable.clone()
        } else {
            val.to_vec()
        };
        let episodes = episodes(tasks, &judge, cfg.shots, cfg.seed as u64 ^ 0xA5A5);
        let before = baseline_aucs(&head, &episodes);
        prior = search_prior(&head, |r| {
            query_quality(&head, &episodes, &before, &inner(r), &mut between)
        });
    } else {
        prior = Prior::frozen();
    }

    let (val_before, val_after) = if val.is_empty() {
        (None, None)
    } else {
        let eps = episodes(tasks, val, cfg.shots, cfg.seed as u64 ^ 0x5A5A);
        (
            Some(mean_query_loss(&head, &eps, None, &mut between)),
            Some(mean_query_loss(
                &head,
                &eps,
                Some(&inner(prior)),
                &mut between,
            )),
        )
    };
    // the pooled training loss, slice by slice over references (no copy
    // of the training set)
    let mut train_loss = 0f64;
    for chunk in pooled.chunks(SLICE) {
        train_loss += chunk
            .iter()
            .map(|e| f64::from(log_loss(head.logit(e.b, &e.x, &e.f), e.y)))
            .sum::<f64>();
        between();
    }
    let report = MetaReport {
        train_tenants: train.iter().map(|&t| tasks[t].tenant.clone()).collect(),
        val_tenants: val.iter().map(|&t| tasks[t].tenant.clone()).collect(),
        n_train: pooled.len(),
        train_loss: (train_loss / pooled.len().max(1) as f64) as f32,
        val_loss_before: val_before,
        val_loss_after: val_after,
        prior,
    };
    (head, report)
}

/// Fits gain, side weights and bias of every behaviour to `exs` (W and the
/// taste fixed) by Newton's method under a weak prior: logistic regression
/// of the labels on [text score, side features, 1].
pub(super) fn fit_small(head: &mut Head, exs: &[&Example], between: &mut dyn FnMut()) {
    let all = centred(head, exs.iter().copied());
    let cfg = AdaptConfig {
        steps: 8,
        lr: 1.0,
        method: Method::Meta,
        prior: Prior {
            gain: 1.0,
            side: 1.0,
            bias: 1.0,
            taste: FROZEN,
        },
        seed: 0,
        posterior: None,
    };
    let start = head.clone();
    descent(&start, &all, &cfg, |step| {
        if let Some((t, h)) = step {
            if t == cfg.steps {
                *head = h.clone();
            }
        }
        between();
    });
}

/// Coordinate search over the prior precisions, starting from all groups
/// frozen: each round tries every value of one group's grid with the others
/// fixed and keeps the most conservative value within a tolerance of that
/// round's best. A handful of validation tenants cannot tell apart priors
/// closer than that, and when in doubt the global head should win. Two
/// passes over the four groups: 44 candidates (the full grid would be 875).
///
/// What "best" means: the bias changes no ranking within a tenant, only
/// calibration, so it is judged by query log-loss; gain, side weights and
/// taste are judged by the within-tenant ranking (mean query AUC, losses
/// against the unadapted head counted twice), which is what a
/// recommendation is, among candidates that do not worsen log-loss by more
/// than LOSS_SLACK. Log-loss alone scores the taste poorly: it moved the
/// held-out query loss by 0.001 while moving within-tenant AUC by 0.01.
pub(super) fn search_prior(head: &Head, mut quality: impl FnMut(Prior) -> Quality) -> Prior {
    const TOLERANCE_LOSS: f32 = 0.002;
    const TOLERANCE_AUC: f32 = 0.001;
    const LOSS_SLACK: f32 = 0.01;
    // precisions per event-sum: 0.16 / 16 events = 0.01 of the mean loss
    let grid = [0.016f32, 0.16, 1.6, 16.0, FROZEN];
    // unit-norm embeddings: a taste of length 1 moves a logit by at most 1
    let taste_grid = [0.1f32, 0.3, 1.0, 3.0, 10.0, 30.0, FROZEN];
    let mut prior = Prior::frozen();
    let mut current = quality(prior);
    let groups = if head.k > 0 {
        vec![Group::Bias, Group::Gain, Group::Side, Group::Taste]
    } else {
        vec![Group::Bias, Group::Gain, Group::Taste]
    };
    for _round in 0..2 {
        for &g in &groups {
            let values: &[f32] = if g == Group::Taste {
                &taste_grid
            } else {
                &grid
            };
            let mut scored: Vec<(Quality, Prior)> = values
                .iter()
                .filter(|&&v| v != prior.get(g))
                .map(|&v| {
                    let mut p = prior;
                    p.set(g, v);
                    (quality(p), p)
                })
                .collect();
            scored.push((current, prior));
            // a cost to minimise: log-loss for the bias, −AUC otherwise
            let by_loss = g == Group::Bias;
            let cost = |q: &Quality| if by_loss { q.loss } else { -q.auc };
            let eligible: Vec<&(Quality, Prior)> = scored
                .iter()
                .filter(|(q, _)| by_loss || q.loss <= current.loss + LOSS_SLACK)
                .collect();
            let best = eligible
                .iter()
                .map(|(q, _)| cost(q))
                .fold(f32::INFINITY, f32::min);
            let tol = if by_loss {
                TOLERANCE_LOSS
            } else {
                TOLERANCE_AUC
            };
            if let Some((q, p)) = eligible
                .iter()
                .filter(|(q, _)| cost(q) <= best + tol)
                .max_by(|a, b| a.1.strength().total_cmp(&b.1.strength()))
            {
                (current, prior) = (*q, *p);
            }
        }
    }
    prior
}

/// Fits gain and side weights of every behaviour to the tenants in `tasks`
/// (W and the taste fixed) with one free bias per tenant, then the global
/// bias to all their events pooled. The per-tenant biases absorb what
/// differs *between* tenants (one user rates more generously than another),
/// so gain and side weights are set by what ranks items *within* a tenant,
/// which is what a recommendation is. Fitted on pooled log-loss instead, the
/// text score earned its weight by telling generous users from strict ones,
/// and the global head ranked a user's items below the item-popularity
/// feature it was given.
pub(super) fn fit_within(head: &mut Head, tasks: &[Vec<&Example>], fit_gain: bool, between: &mut dyn FnMut()) {
    let k = head.k;
    let m = k + 1;
    let n: usize = tasks.iter().map(|t| t.len()).sum();
    if n == 0 {
        return;
    }
    // weak priors per event-sum: on the tenant biases (toward the global
    // bias, so a tenant with one label does not run off to infinity) and
    // on gain and side weights
    const PREC: f64 = 1.0;
    let nt = tasks.len();
    for b in 0..NB {
        // per tenant, its events of behaviour b as (z = [text score, side
        // features..], label), built once: W does not change here
        let rows: Vec<Vec<(Vec<f64>, f64)>> = tasks
            .iter()
            .map(|t| {
                t.iter()
                    .filter(|e| e.b == b)
                    .map(|e| {
                        let mut z = Vec::with_capacity(m);
                        z.push(f64::from(head.text_score(b, &e.x)));
                        z.extend(e.f.iter().map(|&v| f64::from(v)));
                        (z, f64::from(e.y))
                    })
                    .collect()
            })
            .collect();
        if rows.iter().all(|r| r.is_empty()) {
            continue;
        }
        let logit = |z: &[f64], th: &[f64], bias: f64| -> f64 {
            z.iter().zip(th).map(|(a, c)| a * c).sum::<f64>() + bias
        };
        let mut theta: Vec<f64> = head.small(b)[..m].iter().map(|&v| f64::from(v)).collect();
        let c0 = f64::from(head.small(b)[m]);
        let mut biases = vec![c0; nt];
        // Joint Newton on (θ, tenant biases). A feature nearly constant
        // within a tenant (a user's own positive rate) is almost collinear
        // with that tenant's bias, and alternating between the two crawls
        // toward the joint optimum; the bias block of the Hessian is
        // diagonal, so eliminating it (Schur complement) costs O(T·m²).
        for _ in 0..12 {
            let mut g_th = vec![0f64; m];
            let mut h_th = vec![0f64; m * m];
            for i in 0..m {
                g_th[i] += PREC * theta[i];
                h_th[i * m + i] += PREC;
            }
            let mut g_b = vec![0f64; nt];
            let mut h_b = vec![PREC; nt];
            let mut h_cross = vec![0f64; nt * m];
            for (ti, t) in rows.iter().enumerate() {
                g_b[ti] += PREC * (biases[ti] - c0);
                for (zz, y) in t {
                    let p = 1.0 / (1.0 + (-logit(zz, &theta, biases[ti])).exp());
                    let (r, w) = (p - y, (p * (1.0 - p)).max(1e-6));
                    g_b[ti] += r;
                    h_b[ti] += w;
                    for i in 0..m {
                        g_th[i] += r * zz[i];
                        h_cross[ti * m + i] += w * zz[i];
                        for j in 0..m {
                            h_th[i * m + j] += w * zz[i] * zz[j];
                        }
                    }
                }
            }
            // eliminate the biases: S = H_θθ − Σ_t h_t h_tᵀ / h_bb,t
            let mut rhs = g_th.clone();
            for ti in 0..nt {
                let hc = &h_cross[ti * m..(ti + 1) * m];
                for i in 0..m {
                    rhs[i] -= hc[i] * g_b[ti] / h_b[ti];
                    for j in 0..m {
                        h_th[i * m + j] -= hc[i] * hc[j] / h_b[ti];
                    }
                }
            }
            if !fit_gain {
                // the gain stays: its row and column say δgain = 0
                for j in 0..m {
                    h_th[j] = 0.0;
                    h_th[j * m] = 0.0;
                }
                h_th[0] = 1.0;
                rhs[0] = 0.0;
            }
            let Some(dth) = solve(&mut h_th, &mut rhs, m) else {
                break;
            };
            let db: Vec<f64> = (0..nt)
                .map(|ti| {
                    let hc = &h_cross[ti * m..(ti + 1) * m];
                    let cross: f64 = hc.iter().zip(&dth).map(|(a, c)| a * c).sum();
                    (g_b[ti] - cross) / h_b[ti]
                })
                .collect();
            // halve the step until the objective does not rise: separable
            // events (a tenant whose labels one feature splits) make a full
            // Newton step overshoot
            let objective = |th: &[f64], bs: &[f64]| -> f64 {
                let mut o = 0.5 * PREC * th.iter().map(|v| v * v).sum::<f64>();
                for (ti, t) in rows.iter().enumerate() {
                    o += 0.5 * PREC * (bs[ti] - c0).powi(2);
                    for (zz, y) in t {
                        o += log_loss64(logit(zz, th, bs[ti]), *y);
                    }
                }
                o
            };
            let base = objective(&theta, &biases);
            let mut step = 1.0;
            let mut moved = false;
            for _ in 0..12 {
                let mut th: Vec<f64> = theta.iter().zip(&dth).map(|(a, d)| a - step * d).collect();
                if !fit_gain {
                    th[0] = theta[0];
                }
                th[0] = th[0].max(0.0);
                let bs: Vec<f64> = biases.iter().zip(&db).map(|(a, d)| a - step * d).collect();
                if objective(&th, &bs) <= base + 1e-9 {
                    (theta, biases) = (th, bs);
                    moved = true;
                    break;
                }
                step /= 2.0;
            }
            between();
            if !moved {
                break;
            }
        }
        // 3. the global bias: what a tenant with no events of its own gets
        let mut c = c0;
        for _ in 0..8 {
            let (mut g, mut hss) = (PREC * (c - c0), PREC);
            for (zz, y) in rows.iter().flatten() {
                let p = 1.0 / (1.0 + (-logit(zz, &theta, c)).exp());
                g += p - y;
                hss += (p * (1.0 - p)).max(1e-6);
            }
            c -= g / hss;
        }
        let mut small: Vec<f32> = theta.iter().map(|&v| v as f32).collect();
        small.push(c as f32);
        if small.iter().all(|v| v.is_finite()) {
            head.set_small(b, &small);
        }
    }
}
