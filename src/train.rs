//! Stage 5: learning the head — per-tenant adaptation and meta-training
//! across tenants. Pure Rust, deterministic given a seed.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

use crate::head::{log_loss, Example, Head, Rng};

/// How `adapt` changes a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Only the small part (gain, side weights, bias), with the meta-learned
    /// per-group step sizes, a pull back to the start, and early stopping on
    /// a held-out quarter of the support set.
    Meta,
    /// Plain gradient descent on every weight: the naive baseline.
    Full,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "meta" => Ok(Method::Meta),
            "full" => Ok(Method::Full),
            _ => Err(format!(
                "unknown method \"{s}\"; valid methods are: meta, full"
            )),
        }
    }
}

/// Per-group prior precisions of the small part, meta-learned by
/// `meta_train`: adaptation is the MAP estimate under a Gaussian prior
/// centred on the starting head. Small = the tenant's events decide, large =
/// stay with the global head (`FROZEN` = that group does not move).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub gain: f32,
    pub side: f32,
    pub bias: f32,
}

pub const FROZEN: f32 = 1e6;

impl Default for Prior {
    fn default() -> Self {
        Prior {
            gain: 1.6,
            side: 1.6,
            bias: 1.6,
        }
    }
}

impl Prior {
    pub fn frozen() -> Self {
        Prior {
            gain: FROZEN,
            side: FROZEN,
            bias: FROZEN,
        }
    }
}

#[derive(Clone, Debug)]
pub struct AdaptConfig {
    pub steps: usize,
    pub lr: f32,
    pub method: Method,
    /// Meta only: prior precisions (the pull back toward the start)
    pub prior: Prior,
    /// as the caller gave it (stored in the head's hyper and passed back)
    pub seed: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AdaptReport {
    pub n: usize,
    pub loss_before: f32,
    pub loss_after: f32,
    pub steps_used: usize,
}

/// Adapts `start` to `support`. Never fails; an empty support set returns
/// the start unchanged.
pub fn adapt(start: &Head, support: &[Example], cfg: &AdaptConfig) -> (Head, AdaptReport) {
    adapt_with(start, support, cfg, &mut || {})
}

/// Events per slice of a pass over a support or training set: `between` runs
/// after each, so a pass over a large relation can be cancelled midway.
const SLICE: usize = 4096;

/// Mean log-loss over `exs`, calling `between` after every slice.
fn mean_loss_sliced(h: &Head, exs: &[Example], between: &mut dyn FnMut()) -> f32 {
    if exs.is_empty() {
        return 0.0;
    }
    let mut total = 0f64;
    for chunk in exs.chunks(SLICE) {
        total += f64::from(h.mean_loss(chunk)) * chunk.len() as f64;
        between();
    }
    (total / exs.len() as f64) as f32
}

/// `adapt`, calling `between` after every slice of events, every descent
/// step and every cross-validation fold: Postgres passes its interrupt
/// check, so cancelling `ecom_adapt` stops it within one step.
pub fn adapt_with(
    start: &Head,
    support: &[Example],
    cfg: &AdaptConfig,
    between: &mut dyn FnMut(),
) -> (Head, AdaptReport) {
    let loss_before = mean_loss_sliced(start, support, between);
    let (head, steps_used) = match cfg.method {
        Method::Full => (
            full_descent(start, support, cfg.steps, cfg.lr, between),
            cfg.steps,
        ),
        Method::Meta => {
            // W is fixed here: score every event's text once
            let all = scored(start, support);
            between();
            let steps = if support.len() >= 8 && cfg.steps > 0 {
                // early stopping by 4-fold cross-validation on the support
                // set: the step count with the lowest held-out loss (a single
                // held-out quarter of 8 events is too noisy to trust)
                let mut idx: Vec<usize> = (0..all.len()).collect();
                Rng::new(cfg.seed as u64).shuffle(&mut idx);
                let mut held_loss = vec![0f32; cfg.steps + 1];
                for fold in 0..4 {
                    let (mut fit, mut held) = (Vec::new(), Vec::new());
                    for (j, &i) in idx.iter().enumerate() {
                        if j % 4 == fold {
                            held.push(all[i])
                        } else {
                            fit.push(all[i])
                        }
                    }
                    small_descent(start, &fit, cfg, |t, h| {
                        held_loss[t] += scored_loss(h, &held);
                        between();
                    });
                }
                let mut best = 0;
                for t in 1..held_loss.len() {
                    if held_loss[t] < held_loss[best] - 1e-6 {
                        best = t;
                    }
                }
                best
            } else {
                cfg.steps
            };
            let mut out = start.clone();
            let last = AdaptConfig {
                steps,
                ..cfg.clone()
            };
            small_descent(start, &all, &last, |t, h| {
                if t == steps {
                    out = h.clone();
                }
                between();
            });
            (out, steps)
        }
    };
    let loss_after = mean_loss_sliced(&head, support, between);
    let n = support.len();
    (
        head,
        AdaptReport {
            n,
            loss_before,
            loss_after,
            steps_used,
        },
    )
}

/// An event as adapting the small part sees it: W is fixed, so the text
/// score W_b · x is computed once instead of once per step and fold.
#[derive(Clone, Copy)]
struct Scored<'a> {
    s: f32,
    f: &'a [f32],
    b: usize,
    y: f32,
}

fn scored<'a>(h: &Head, exs: &'a [Example]) -> Vec<Scored<'a>> {
    exs.iter()
        .map(|e| Scored {
            s: h.text_score(e.b, &e.x),
            f: &e.f,
            b: e.b,
            y: e.y,
        })
        .collect()
}

/// Mean log-loss, as `Head::mean_loss`, from precomputed text scores.
fn scored_loss(h: &Head, exs: &[Scored]) -> f32 {
    if exs.is_empty() {
        return 0.0;
    }
    exs.iter()
        .map(|e| log_loss(h.logit_with(e.b, e.s, e.f), e.y))
        .sum::<f32>()
        / exs.len() as f32
}

/// Damped Newton steps on the small part only, per behaviour (each has its
/// own k+2 parameters: gain, side weights, bias), minimising mean log-loss
/// plus ½·Σ precision·(θ − θ_start)². The problem is convex and tiny, so a
/// few steps converge without a tuned step size. `each(t, head)` sees the
/// head after t = 0..=steps steps.
fn small_descent(
    start: &Head,
    exs: &[Scored],
    cfg: &AdaptConfig,
    mut each: impl FnMut(usize, &Head),
) {
    let mut h = start.clone();
    each(0, &h);
    let m = h.k + 2;
    let n = exs.len().max(1) as f64;
    // Prior precision of each small parameter: [gain, side.., bias]. The
    // loss is a mean over n events, so the prior enters divided by n: with
    // 8 events the global head weighs four times more than with 32.
    let mut prec = vec![f64::from(cfg.prior.side) / n; m];
    prec[0] = f64::from(cfg.prior.gain) / n;
    prec[m - 1] = f64::from(cfg.prior.bias) / n;
    for t in 1..=cfg.steps {
        for b in 0..crate::head::NB {
            let mut grad = vec![0f64; m];
            let mut hess = vec![0f64; m * m];
            let mut any = false;
            for e in exs.iter().filter(|e| e.b == b) {
                any = true;
                let mut z = Vec::with_capacity(m);
                z.push(f64::from(e.s));
                z.extend(e.f.iter().map(|&v| f64::from(v)));
                z.push(1.0);
                let p = f64::from(crate::head::sigmoid(h.logit_with(b, e.s, e.f)));
                let (r, w) = (p - f64::from(e.y), (p * (1.0 - p)).max(1e-6));
                for i in 0..m {
                    grad[i] += r * z[i] / n;
                    for j in 0..m {
                        hess[i * m + j] += w * z[i] * z[j] / n;
                    }
                }
            }
            if !any {
                continue;
            }
            let (theta, theta0) = (h.small(b), start.small(b));
            for i in 0..m {
                grad[i] += prec[i] * f64::from(theta[i] - theta0[i]);
                hess[i * m + i] += prec[i];
            }
            if let Some(delta) = solve(&mut hess, &mut grad, m) {
                let mut next: Vec<f32> = theta
                    .iter()
                    .zip(&delta)
                    .map(|(p, d)| p - (f64::from(cfg.lr) * d) as f32)
                    .collect();
                // A tenant may trust text more or less than the global head
                // does, but never invert it: a gain below zero would rank
                // what the text says fits the user last. Sixteen events can
                // ask for that by chance; the projection refuses it.
                next[0] = next[0].max(0.0);
                h.set_small(b, &next);
            }
        }
        each(t, &h);
    }
}

/// Solves A·x = b for a small dense system (Gaussian elimination, partial
/// pivoting); None when singular.
fn solve(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
    for col in 0..m {
        let piv =
            (col..m).max_by(|&i, &j| a[i * m + col].abs().total_cmp(&a[j * m + col].abs()))?;
        if a[piv * m + col].abs() < 1e-12 {
            return None;
        }
        if piv != col {
            for j in 0..m {
                a.swap(col * m + j, piv * m + j);
            }
            b.swap(col, piv);
        }
        for row in col + 1..m {
            let f = a[row * m + col] / a[col * m + col];
            for j in col..m {
                a[row * m + j] -= f * a[col * m + j];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0f64; m];
    for row in (0..m).rev() {
        let s: f64 = (row + 1..m).map(|j| a[row * m + j] * x[j]).sum();
        x[row] = (b[row] - s) / a[row * m + row];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Plain gradient descent on every weight. Each step's gradient is summed
/// slice by slice (weighted by slice size, so it is the mean over all
/// events), with `between` after each slice: one step over a large support
/// relation can take seconds.
fn full_descent(
    start: &Head,
    exs: &[Example],
    steps: usize,
    lr: f32,
    between: &mut dyn FnMut(),
) -> Head {
    let mut h = start.clone();
    let mut grad = vec![0f32; h.params.len()];
    let mut part = vec![0f32; h.params.len()];
    let n = exs.len() as f32;
    for _ in 0..steps {
        if exs.is_empty() {
            break;
        }
        grad.iter_mut().for_each(|g| *g = 0.0);
        for chunk in exs.chunks(SLICE) {
            h.loss_grad(chunk, None, 0.0, &mut part);
            let w = chunk.len() as f32 / n;
            grad.iter_mut().zip(&part).for_each(|(g, p)| *g += w * p);
            between();
        }
        h.params
            .iter_mut()
            .zip(&grad)
            .for_each(|(p, g)| *p -= lr * g);
    }
    h
}

/// Adam, for the pooled and the meta phase of `meta_train`.
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    lr: f32,
}

impl Adam {
    fn new(n: usize, lr: f32) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            lr,
        }
    }
    fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * grad[i];
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * grad[i] * grad[i];
            params[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}

pub struct Task {
    pub tenant: String,
    pub examples: Vec<Example>,
    /// examples are in time order: validation adapts on the earliest ones
    pub ordered: bool,
}

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

    // 1. pooled training: the best single head for all training tenants
    let mut head = Head::new(dims, k);
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
            meta_adam.step(&mut head.params, &grad);
        }
        // 3. how far each group may move: the prior precisions that lower the
        //    query loss after adaptation most on held-out tenants (FROZEN =
        //    do not adapt that group), so adaptation only moves what helps
        let judge: Vec<usize> = if val.is_empty() {
            usable.clone()
        } else {
            val.to_vec()
        };
        let episodes = episodes(tasks, &judge, cfg.shots, cfg.seed as u64 ^ 0xA5A5);
        // precisions per event-sum: 0.16 / 16 events = 0.01 of the mean loss
        let grid = [0.016f32, 0.16, 1.6, 16.0, FROZEN];
        let mut scored = Vec::new();
        for &gain in &grid {
            for &side in &grid {
                for &bias in &grid {
                    between();
                    let r = Prior { gain, side, bias };
                    scored.push((
                        mean_query_loss(&head, &episodes, Some(&inner(r)), &mut between),
                        r,
                    ));
                }
            }
        }
        // The most conservative prior among those within TOLERANCE of the
        // best: a handful of validation tenants cannot tell apart priors
        // closer than that, and when in doubt the global head should win.
        const TOLERANCE: f32 = 0.002;
        let best = scored.iter().map(|(l, _)| *l).fold(f32::INFINITY, f32::min);
        let strength = |p: &Prior| p.gain.ln() + p.side.ln() + p.bias.ln();
        prior = scored
            .iter()
            .filter(|(l, _)| *l <= best + TOLERANCE)
            .map(|(_, p)| *p)
            .max_by(|a, b| strength(a).total_cmp(&strength(b)))
            .unwrap_or_else(Prior::frozen);
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

fn split_task(exs: &[Example], shots: usize, rng: &mut Rng) -> (Vec<Example>, Vec<Example>) {
    let mut idx: Vec<usize> = (0..exs.len()).collect();
    rng.shuffle(&mut idx);
    let shots = shots.min(exs.len() / 2);
    let support = idx[..shots].iter().map(|&i| exs[i].clone()).collect();
    let query = idx[shots..]
        .iter()
        .take(128)
        .map(|&i| exs[i].clone())
        .collect();
    (support, query)
}

type Episode = (Vec<Example>, Vec<Example>);

/// Validation episodes. Time-ordered tenants are adapted on their earliest
/// `shots`/2, `shots` and 2·`shots` events and judged on the events after
/// them, as a new tenant would be; others on random splits.
fn episodes(tasks: &[Task], which: &[usize], shots: usize, seed: u64) -> Vec<Episode> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for &t in which {
        let exs = &tasks[t].examples;
        if exs.len() < 4 {
            continue;
        }
        if tasks[t].ordered {
            for s in [shots / 2, shots, 2 * shots] {
                let s = s.clamp(1, exs.len() / 2);
                let query = exs[s..].iter().take(256).cloned().collect();
                out.push((exs[..s].to_vec(), query));
            }
        } else {
            for _ in 0..4 {
                out.push(split_task(exs, shots, &mut rng));
            }
        }
    }
    out
}

fn mean_query_loss(
    head: &Head,
    episodes: &[Episode],
    cfg: Option<&AdaptConfig>,
    between: &mut dyn FnMut(),
) -> f32 {
    if episodes.is_empty() {
        return 0.0;
    }
    let mut total = 0f32;
    for (s, q) in episodes {
        total += match cfg {
            Some(c) => adapt_with(head, s, c, between).0.mean_loss(q),
            None => head.mean_loss(q),
        };
        between();
    }
    total / episodes.len() as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{auc, text_features, Group, NB};

    /// Synthetic tenants: a shared text signal (item direction 0) and a
    /// tenant-specific weight on side feature 0, so tenants differ in a way
    /// only adaptation can learn.
    fn synthetic(tenants: usize, per: usize, seed: u64) -> Vec<Task> {
        let dims = 8;
        let mut r = Rng::new(seed);
        let mut unit = move || (r.next_u64() % 20001) as f32 / 10000.0 - 1.0;
        (0..tenants)
            .map(|t| {
                let side_w = if t % 2 == 0 { 2.5 } else { -2.5 };
                let examples = (0..per)
                    .map(|_| {
                        let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                        let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                        let f = vec![unit()];
                        let z = 3.0 * v[0] + side_w * f[0] + 0.5 * unit();
                        Example {
                            x: text_features(&u, &v),
                            f,
                            b: NB - 1,
                            y: if z > 0.0 { 1.0 } else { 0.0 },
                        }
                    })
                    .collect();
                Task {
                    tenant: format!("t{t}"),
                    examples,
                    ordered: false,
                }
            })
            .collect()
    }

    fn task_auc(h: &Head, exs: &[Example]) -> f64 {
        let s: Vec<f64> = exs.iter().map(|e| h.predict(e.b, &e.x, &e.f)).collect();
        let y: Vec<bool> = exs.iter().map(|e| e.y > 0.5).collect();
        auc(&s, &y).unwrap()
    }

    #[test]
    fn meta_training_is_deterministic() {
        let tasks = synthetic(6, 60, 3);
        let cfg = MetaConfig {
            meta_steps: 30,
            ..MetaConfig::default()
        };
        let (a, _) = meta_train(&tasks, 8, 1, &cfg, || {});
        let (b, _) = meta_train(&tasks, 8, 1, &cfg, || {});
        assert_eq!(a, b);
        let (c, _) = meta_train(&tasks, 8, 1, &MetaConfig { seed: 7, ..cfg }, || {});
        assert_ne!(a, c);
    }

    #[test]
    fn meta_training_offers_regular_interruption_points() {
        let tasks = synthetic(4, 80, 6);
        let cfg = MetaConfig {
            meta_steps: 50,
            epochs: 2,
            ..MetaConfig::default()
        };
        let mut calls = 0;
        meta_train(&tasks, 8, 1, &cfg, || calls += 1);
        // every minibatch, every meta step, every prior candidate
        assert!(calls >= 50 + 125, "{calls}");
    }

    #[test]
    fn adaptation_offers_regular_interruption_points() {
        // ecom_adapt over a 20,000-row support relation ran minutes without
        // one interrupt check: both methods must call back every step, every
        // fold and every slice of events
        let tasks = synthetic(1, 10_000, 4);
        let head = Head::new(8, 1);
        for (method, steps, at_least) in [
            // 4 folds + the final fit, each step; plus the loss passes
            (Method::Meta, 40, 5 * 40),
            // every slice of every step (10,000 events = 3 slices)
            (Method::Full, 40, 3 * 40),
        ] {
            let cfg = AdaptConfig {
                steps,
                lr: 0.1,
                method,
                prior: Prior::default(),
                seed: 1,
            };
            let mut calls = 0;
            adapt_with(&head, &tasks[0].examples, &cfg, &mut || calls += 1);
            assert!(calls >= at_least, "{method:?}: {calls} calls");
        }
    }

    #[test]
    fn a_cancel_stops_adaptation_at_the_next_check() {
        // Postgres' interrupt check unwinds out of the callback; nothing
        // after it runs
        let tasks = synthetic(1, 2_000, 4);
        let cfg = AdaptConfig {
            steps: 10_000,
            lr: 0.1,
            method: Method::Full,
            prior: Prior::default(),
            seed: 1,
        };
        let mut calls = 0;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            adapt_with(&Head::new(8, 1), &tasks[0].examples, &cfg, &mut || {
                calls += 1;
                if calls == 3 {
                    panic!("cancel");
                }
            })
        }));
        assert!(r.is_err());
        assert_eq!(calls, 3);
    }

    #[test]
    fn any_seed_is_accepted_and_reproducible() {
        // seeds are stored as given and passed back; the extremes must not
        // overflow (meta steps add the step number to the seed)
        let tasks = synthetic(4, 60, 2);
        for seed in [i64::MIN, -1, 0, i64::MAX] {
            let cfg = MetaConfig {
                meta_steps: 5,
                epochs: 1,
                seed,
                ..MetaConfig::default()
            };
            let (a, _) = meta_train(&tasks, 8, 1, &cfg, || {});
            let (b, _) = meta_train(&tasks, 8, 1, &cfg, || {});
            assert_eq!(a, b, "seed {seed}");
            let acfg = AdaptConfig {
                steps: 3,
                lr: 1.0,
                method: Method::Meta,
                prior: Prior::default(),
                seed,
            };
            assert_eq!(
                adapt(&a, &tasks[0].examples, &acfg).0,
                adapt(&a, &tasks[0].examples, &acfg).0
            );
        }
    }

    #[test]
    fn adaptation_learns_what_differs_between_tenants() {
        let train = synthetic(10, 200, 11);
        let (head, report) = meta_train(&train, 8, 1, &MetaConfig::default(), || {});
        assert!(
            report.prior.side < FROZEN,
            "side weights should be adaptable: {:?}",
            report.prior
        );
        let test = synthetic(4, 300, 99);
        let cfg = AdaptConfig {
            steps: 5,
            lr: 1.0,
            method: Method::Meta,
            prior: report.prior,
            seed: 1,
        };
        for t in &test {
            let (support, query) = t.examples.split_at(32);
            let before = task_auc(&head, query);
            let (adapted, rep) = adapt(&head, support, &cfg);
            let after = task_auc(&adapted, query);
            eprintln!(
                "{}: AUC {before:.3} -> {after:.3} ({rep:?}) {:?}",
                t.tenant, report.prior
            );
            assert!(
                after > before + 0.05,
                "{}: AUC {before:.3} -> {after:.3} ({rep:?})",
                t.tenant
            );
        }
    }

    #[test]
    fn adaptation_with_nothing_to_learn_does_not_hurt() {
        // every tenant identical: the held-out slice stops useless steps
        let mut tasks = synthetic(6, 300, 5);
        for t in tasks.iter_mut() {
            for e in t.examples.iter_mut() {
                e.y = if e.x[0] > 0.0 { 1.0 } else { 0.0 };
            }
        }
        let (head, report) = meta_train(&tasks, 8, 1, &MetaConfig::default(), || {});
        let cfg = AdaptConfig {
            steps: 5,
            lr: 1.0,
            method: Method::Meta,
            prior: report.prior,
            seed: 2,
        };
        for t in &tasks {
            let (support, query) = t.examples.split_at(16);
            let (adapted, _) = adapt(&head, support, &cfg);
            assert!(task_auc(&adapted, query) >= task_auc(&head, query) - 0.01);
        }
    }

    #[test]
    fn meta_adaptation_changes_only_the_small_part() {
        let tasks = synthetic(3, 40, 8);
        let head = Head::new(8, 1);
        let cfg = AdaptConfig {
            steps: 5,
            lr: 1.0,
            method: Method::Meta,
            prior: Prior::default(),
            seed: 3,
        };
        let (adapted, rep) = adapt(&head, &tasks[0].examples, &cfg);
        assert_eq!(rep.n, 40);
        for i in 0..head.params.len() {
            if head.group_of(i) == Group::W {
                assert_eq!(head.params[i], adapted.params[i]);
            }
        }
        let (full, _) = adapt(
            &head,
            &tasks[0].examples,
            &AdaptConfig {
                method: Method::Full,
                lr: 0.5,
                ..cfg
            },
        );
        assert!((0..head.params.len())
            .any(|i| head.group_of(i) == Group::W && full.params[i] != head.params[i]));
    }

    #[test]
    fn adaptation_never_inverts_the_text_score() {
        // labels that contradict the text: the gain may shrink to zero, not below
        let mut tasks = synthetic(1, 64, 4);
        for e in tasks[0].examples.iter_mut() {
            e.f[0] = 0.0;
            e.y = if e.x[0] > 0.0 { 0.0 } else { 1.0 };
        }
        let mut head = Head::new(8, 1);
        head.params[0] = 3.0; // W_browse[0]: text says x[0] > 0 is good
        for e in tasks[0].examples.iter_mut() {
            e.b = 0;
        }
        let cfg = AdaptConfig {
            steps: 10,
            lr: 1.0,
            method: Method::Meta,
            prior: Prior {
                gain: 0.016,
                side: 0.016,
                bias: 0.016,
            },
            seed: 0,
        };
        let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
        assert!(adapted.small(0)[0] >= 0.0, "gain {}", adapted.small(0)[0]);
    }

    #[test]
    fn empty_support_returns_the_start() {
        let head = Head::new(4, 0);
        let cfg = AdaptConfig {
            steps: 5,
            lr: 1.0,
            method: Method::Meta,
            prior: Prior::default(),
            seed: 0,
        };
        let (same, rep) = adapt(&head, &[], &cfg);
        assert_eq!(same, head);
        assert_eq!(rep.n, 0);
    }
}
