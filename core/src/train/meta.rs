//! Meta-training the global head across tenants: pooled fit, within-tenant
//! fit of the small part (`within`), and the search for the prior.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::head::{Example, Group, Head};
use crate::items::DEFAULT_MAX_ITEMS;
use crate::metrics::log_loss;
use crate::prior::{Prior, FROZEN};
use crate::rng::Rng;
use crate::taste::TasteBasis;

use super::adapt::adapt_with;
use super::centred::centred;
use super::config::{AdaptConfig, Method, Task, SLICE};
use super::episodes::{
    baseline_aucs, episodes, mean_query_loss, query_quality, split_task, Fold, Quality,
};
use super::newton::descent;
use super::platform_items::{learn_items, ItemsReport};
use super::solvers::Adam;
use super::taste_basis::{learn_basis, TasteReport};
use super::within::fit_within;

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
    /// at most this many items keep a platform effect
    /// (`pg_ecom.max_item_effects`)
    #[serde(default = "default_max_items")]
    pub max_items: usize,
}

fn default_max_items() -> usize {
    DEFAULT_MAX_ITEMS
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
            max_items: DEFAULT_MAX_ITEMS,
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
    /// the platform's item effects (platform_items.rs)
    pub items: ItemsReport,
    /// the directions of the taste prior (taste_basis.rs)
    pub taste: TasteReport,
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

    // 1. pooled training: the best single head for all training tenants
    let mut head = Head::new(dims, k);
    pooled_training(&mut head, &pooled, cfg, &mut rng, &mut between);
    // 2. first-order MAML
    let usable: Vec<usize> = train
        .iter()
        .copied()
        .filter(|&t| tasks[t].examples.len() > cfg.shots + 4)
        .collect();
    let searched = cfg.inner_steps > 0 && !usable.is_empty();
    if searched {
        maml(&mut head, tasks, &usable, cfg, &mut rng, &mut between);
    }
    // 4. how far each group may move, judged on heads whose phase 3 did
    // not see the tenant judged; then 3. for the head itself
    let (mut prior, mut folds) = if searched {
        learn_prior(&head, tasks, val, &order, &usable, cfg, &mut between)
    } else {
        (Prior::frozen(), Vec::new())
    };
    // 4b. where tenants' tastes lie, judged on the same folds; the final
    // directions come from every tenant with events enough
    let refit_on: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&t| tasks[t].examples.len() > cfg.shots + 4)
        .collect();
    let (basis, taste) = learn_basis(
        &head,
        tasks,
        &usable,
        &refit_on,
        &mut folds,
        &mut prior,
        &|p| inner(cfg, p),
        &mut between,
    );
    drop(folds);
    // 3. the text score's weight against the side features, within tenants
    within_tenants(&mut head, tasks, val, &order, val.is_empty(), &mut between);
    // without directions learned, an empty basis all the same: the
    // posterior then keeps the directions its tenants' events inform
    // (posterior.rs), where the diagonal form spreads them over every
    // coordinate; scores are unchanged
    head.basis =
        basis.or_else(|| (prior.taste < FROZEN).then(|| Arc::new(TasteBasis::empty(head.dims()))));

    let (val_loss_before, val_loss_after) = if val.is_empty() {
        (None, None)
    } else {
        let eps = episodes(tasks, val, cfg.shots, cfg.seed as u64 ^ 0x5A5A);
        (
            Some(mean_query_loss(&head, &eps, None, &mut between)),
            Some(mean_query_loss(
                &head,
                &eps,
                Some(&inner(cfg, prior)),
                &mut between,
            )),
        )
    };
    // 5. what sells beyond the text: last, so that the validation losses
    // above stay those of the text alone (the items report its own)
    let train_loss = pooled_loss(&head, &pooled, &mut between);
    let (effects, items) = learn_items(&head, tasks, train, val, cfg.max_items, &mut between);
    prior.item = effects.tenant_prior;
    head.items = effects;
    let report = MetaReport {
        train_tenants: train.iter().map(|&t| tasks[t].tenant.clone()).collect(),
        val_tenants: val.iter().map(|&t| tasks[t].tenant.clone()).collect(),
        n_train: pooled.len(),
        train_loss,
        val_loss_before,
        val_loss_after,
        prior,
        items,
        taste,
    };
    (head, report)
}

/// The inner adaptation of meta-training, under `prior`.
fn inner(cfg: &MetaConfig, prior: Prior) -> AdaptConfig {
    AdaptConfig {
        steps: cfg.inner_steps,
        lr: cfg.inner_lr,
        method: Method::Meta,
        prior,
        seed: cfg.seed,
        posterior: None,
        max_items: cfg.max_items,
        directions: crate::posterior::DEFAULT_DIRECTIONS,
        item_prior_from_events: false,
        bias_prior_from_events: false,
    }
}

/// Phase 1, pooled training: the best single head for all training
/// tenants. Side weights and bias first, by Newton on the pooled events:
/// with Adam alone they ended short of where logistic regression on the
/// side features puts them (each weight moves at most lr per step), while
/// 769 text weights per behaviour took up the slack, and the global head
/// ranked below the item-popularity feature it was given.
fn pooled_training(
    head: &mut Head,
    pooled: &[&Example],
    cfg: &MetaConfig,
    rng: &mut Rng,
    between: &mut dyn FnMut(),
) {
    fit_small(head, pooled, between);
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
}

/// Phase 2, first-order MAML: move the start so that a few inner steps on
/// a tenant's support set lower the loss on its query set.
fn maml(
    head: &mut Head,
    tasks: &[Task],
    usable: &[usize],
    cfg: &MetaConfig,
    rng: &mut Rng,
    between: &mut dyn FnMut(),
) {
    let prior = Prior::default();
    let mut grad = vec![0f32; head.params.len()];
    let mut meta_adam = Adam::new(head.params.len(), cfg.lr * 0.5);
    for step in 0..cfg.meta_steps {
        between();
        let t = usable[rng.below(usable.len())];
        let (support, query) = split_task(&tasks[t].examples, cfg.shots, rng);
        let (adapted, _) = adapt_with(
            head,
            &support,
            &AdaptConfig {
                seed: cfg.seed.wrapping_add(step as i64),
                ..inner(cfg, prior)
            },
            between,
        );
        adapted.loss_grad(&query, None, cfg.l2, &mut grad);
        // the global head has no taste: a taste is a tenant's own
        grad[head.taste_range()].iter_mut().for_each(|g| *g = 0.0);
        meta_adam.step(&mut head.params, &grad);
    }
}

/// Phase 3: how much to trust the text score against the side features,
/// on tenants whose events W never saw: on its own training events the
/// text score is overconfident (769 weights per behaviour from a few
/// thousand events), so a gain fitted there drowns the side features.
/// Side weights from every tenant (a score's text term held fixed): twenty
/// held-out users gave the users' own positive rate a weight of +2.5 that
/// a hundred showed to be −0.7 within a user.
///
/// The gain is fitted on `val` when there are any; `gain_on_everyone`
/// (meta-training without held-out tenants) fits it on `everyone`
/// instead, with the side weights.
fn within_tenants(
    head: &mut Head,
    tasks: &[Task],
    val: &[usize],
    everyone: &[usize],
    gain_on_everyone: bool,
    between: &mut dyn FnMut(),
) {
    let group = |ts: &[usize]| -> Vec<Vec<&Example>> {
        ts.iter()
            .map(|&t| tasks[t].examples.iter().collect())
            .collect()
    };
    let held = group(val);
    if !val.is_empty() {
        fit_within(head, &held, true, between);
    }
    let everyone = group(everyone);
    fit_within(head, &everyone, gain_on_everyone, between);
}

/// The folds of `judge` (up to `n`): disjoint, covering it, in its order.
pub(super) fn folds(judge: &[usize], n: usize) -> Vec<Vec<usize>> {
    let n = n.min(judge.len()).max(1);
    (0..n)
        .map(|f| judge.iter().copied().skip(f).step_by(n).collect())
        .collect()
}

/// Phase 4, how far each group may move: the prior precisions that lower
/// the query loss after adaptation most on held-out tenants (FROZEN = do
/// not adapt that group), so adaptation only moves what helps.
///
/// `head` comes before phase 3, which each fold then fits on every tenant
/// outside the fold: the judged tenants' events never calibrated the head
/// they are judged with. (Before 0.5.0 phase 3 was fitted on them, so the
/// unadapted head scored their queries in sample and looked better than
/// adaptation.)
fn learn_prior(
    head: &Head,
    tasks: &[Task],
    val: &[usize],
    everyone: &[usize],
    usable: &[usize],
    cfg: &MetaConfig,
    between: &mut dyn FnMut(),
) -> (Prior, Vec<Fold>) {
    const FOLDS: usize = 4;
    let judge: Vec<usize> = if val.is_empty() {
        usable.to_vec()
    } else {
        val.to_vec()
    };
    let mut judged_with = Vec::new();
    for (f, judged) in folds(&judge, FOLDS).into_iter().enumerate() {
        let judged_set: std::collections::HashSet<usize> = judged.iter().copied().collect();
        let outside = |ts: &[usize]| -> Vec<usize> {
            ts.iter()
                .copied()
                .filter(|t| !judged_set.contains(t))
                .collect()
        };
        // the gain on the other held-out tenants; with none left (a single
        // one held out) it stays where meta-training put it, never fitted
        // on the tenants W was trained on
        let mut fitted = head.clone();
        within_tenants(
            &mut fitted,
            tasks,
            &outside(val),
            &outside(everyone),
            val.is_empty(),
            between,
        );
        let episodes = episodes(
            tasks,
            &judged,
            cfg.shots,
            cfg.seed as u64 ^ 0xA5A5 ^ f as u64,
        );
        let before = baseline_aucs(&fitted, &episodes);
        judged_with.push(Fold {
            head: fitted,
            episodes,
            before,
            tenants: judged.len(),
        });
    }
    let prior = search_prior(head, |r| {
        query_quality(&judged_with, &inner(cfg, r), between)
    });
    (prior, judged_with)
}

/// The pooled training loss, slice by slice over references (no copy of
/// the training set).
fn pooled_loss(head: &Head, pooled: &[&Example], between: &mut dyn FnMut()) -> f32 {
    let mut train_loss = 0f64;
    for chunk in pooled.chunks(SLICE) {
        train_loss += chunk
            .iter()
            .map(|e| f64::from(log_loss(head.example_logit(e), e.y)))
            .sum::<f64>();
        between();
    }
    (train_loss / pooled.len().max(1) as f64) as f32
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
            item: FROZEN,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        },
        seed: 0,
        posterior: None,
        max_items: DEFAULT_MAX_ITEMS,
        directions: 0,
        item_prior_from_events: false,
        bias_prior_from_events: false,
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
