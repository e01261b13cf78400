//! Stage 5: learning the head — per-tenant adaptation and meta-training
//! across tenants. Pure Rust, deterministic given a seed.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

use crate::head::{log_loss, sigmoid, Example, Group, Head, Rng, NB};
use crate::posterior::Posterior;

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

/// Per-group prior precisions of the adapted part, meta-learned by
/// `meta_train`: adaptation is the MAP estimate under a Gaussian prior
/// centred on the starting head. Small = the tenant's events decide, large =
/// stay with the global head (`FROZEN` = that group does not move).
/// Precisions are per event-sum: the loss is a mean over n events, so each
/// enters divided by n (with 8 events the global head weighs four times
/// more than with 32).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prior {
    pub gain: f32,
    pub side: f32,
    pub bias: f32,
    /// the taste vector τ (isotropic). Heads trained before the taste
    /// existed have no such field: their tenants keep adapting as before.
    #[serde(default = "frozen")]
    pub taste: f32,
}

pub const FROZEN: f32 = 1e6;

fn frozen() -> f32 {
    FROZEN
}

impl Default for Prior {
    fn default() -> Self {
        Prior {
            gain: 1.6,
            side: 1.6,
            bias: 1.6,
            taste: 1.0,
        }
    }
}

impl Prior {
    pub fn frozen() -> Self {
        Prior {
            gain: FROZEN,
            side: FROZEN,
            bias: FROZEN,
            taste: FROZEN,
        }
    }

    fn get(&self, g: Group) -> f32 {
        match g {
            Group::Gain => self.gain,
            Group::Side => self.side,
            Group::Bias => self.bias,
            Group::Taste => self.taste,
            Group::W => FROZEN,
        }
    }

    fn set(&mut self, g: Group, v: f32) {
        match g {
            Group::Gain => self.gain = v,
            Group::Side => self.side = v,
            Group::Bias => self.bias = v,
            Group::Taste => self.taste = v,
            Group::W => {}
        }
    }

    /// Larger = closer to the global head.
    fn strength(&self) -> f32 {
        self.gain.ln() + self.side.ln() + self.bias.ln() + self.taste.ln()
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
    /// Meta only: when set, the prior is this posterior of the start (its
    /// per-parameter precisions and centres) instead of `prior`'s group
    /// precisions: `ecom_learn` continuing from a version it learned, a
    /// Bayesian update with the new events only.
    pub posterior: Option<Posterior>,
}

#[derive(Clone, Debug)]
pub struct AdaptReport {
    pub n: usize,
    pub loss_before: f32,
    pub loss_after: f32,
    pub steps_used: usize,
    /// the Laplace posterior of the adapted part at the result
    pub posterior: Posterior,
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
    let (head, steps_used, posterior) = match cfg.method {
        Method::Full => {
            let head = full_descent(start, support, cfg.steps, cfg.lr, between);
            // W moved: the text scores are the new head's
            let posterior = posterior_at(&head, &scored(&head, support), cfg);
            (head, cfg.steps, posterior)
        }
        Method::Meta => {
            // W is fixed here: score every event's text once
            let all = scored(start, support);
            between();
            // With a taste, adaptation is a MAP estimate under the prior,
            // run to its optimum: on held-out users, stopping it early by
            // cross-validation over 2–16 held-out events cut the taste's
            // gain in meta-validation AUC (0.6854 → 0.6886 without it, users as
            // tenants, one seed, same prior).
            // Heads without a taste keep the 0.1 rule.
            let early_stop = cfg.prior.taste >= FROZEN;
            let steps = if early_stop && support.len() >= 8 && cfg.steps > 0 {
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
                    descent(start, &fit, cfg, |step| {
                        if let Some((t, h)) = step {
                            held_loss[t] += scored_loss(h, &held);
                        }
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
            descent(start, &all, &last, |step| {
                if let Some((t, h)) = step {
                    if t == steps {
                        out = h.clone();
                    }
                }
                between();
            });
            // W did not move: the text scores are still `all`'s
            let posterior = posterior_at(&out, &all, cfg);
            (out, steps, posterior)
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
            posterior,
        },
    )
}

/// The prior of an adaptation as a posterior: `cfg.posterior` when set,
/// else the group precisions of `cfg.prior`, centred at 0.
fn start_posterior(cfg: &AdaptConfig, k: usize, dims: usize) -> Posterior {
    match &cfg.posterior {
        Some(p) if p.k == k && p.dims == dims => p.clone(),
        _ => Posterior::from_prior(&cfg.prior, k, dims),
    }
}

/// The centre of behaviour b's taste coordinates: the start posterior's
/// when continuing from one (its precisions are in those coordinates),
/// else the mean item of b's events.
fn centre_of(cfg: &AdaptConfig, start: &Posterior, mine: &[&Scored], b: usize) -> Vec<f64> {
    if cfg.posterior.is_some() || mine.is_empty() {
        return start.center(b).iter().map(|&c| f64::from(c)).collect();
    }
    let mut center = vec![0f64; start.dims];
    for e in mine {
        for (c, v) in center.iter_mut().zip(e.v) {
            *c += f64::from(*v) / mine.len() as f64;
        }
    }
    center
}

/// Laplace approximation at `h`: the prior's precision plus, per event,
/// p(1 − p)·z² for z = [s, f.., 1, v − v̄] (the diagonal of the Hessian of
/// the summed log-loss in centred coordinates).
fn posterior_at(h: &Head, exs: &[Scored], cfg: &AdaptConfig) -> Posterior {
    let (k, dims) = (h.k, h.dims());
    let start = start_posterior(cfg, k, dims);
    let mut post = start.clone();
    let m = Posterior::width(k, dims);
    for b in 0..NB {
        let mine: Vec<&Scored> = exs.iter().filter(|e| e.b == b).collect();
        if mine.is_empty() {
            continue;
        }
        let center = centre_of(cfg, &start, &mine, b);
        let mut prec: Vec<f64> = start.precision(b).iter().map(|&p| f64::from(p)).collect();
        for e in &mine {
            let p = f64::from(sigmoid(scored_logit(h, e)));
            let w = p * (1.0 - p);
            prec[0] += w * f64::from(e.s).powi(2);
            for (j, f) in e.f.iter().enumerate() {
                prec[1 + j] += w * f64::from(*f).powi(2);
            }
            prec[k + 1] += w;
            for ((q, v), c) in prec[k + 2..].iter_mut().zip(e.v).zip(&center) {
                *q += w * (f64::from(*v) - c).powi(2);
            }
        }
        for (i, q) in prec.iter().enumerate() {
            post.precision[b * m + i] = *q as f32;
        }
        for (i, c) in center.iter().enumerate() {
            post.center[b * dims + i] = *c as f32;
        }
    }
    post
}

/// An event as adaptation sees it: W is fixed, so the text score W_b · x
/// is computed once instead of once per step and fold.
#[derive(Clone, Copy)]
struct Scored<'a> {
    s: f32,
    /// the item embedding, which the taste τ_b weighs
    v: &'a [f32],
    f: &'a [f32],
    b: usize,
    y: f32,
}

impl Scored<'_> {
    /// z · p for z = [s, f.., 1, v − center..]. `p` covers the taste (and
    /// `center` is then the embedding's length) or stops at the bias.
    fn dot(&self, p: &[f64], center: &[f64]) -> f64 {
        let k = self.f.len();
        debug_assert!(p.len() == k + 2 || center.len() == self.v.len());
        let mut acc = p[0] * f64::from(self.s) + p[k + 1];
        for (pj, fj) in p[1..=k].iter().zip(self.f) {
            acc += pj * f64::from(*fj);
        }
        for ((pi, vi), ci) in p[k + 2..].iter().zip(self.v).zip(center) {
            acc += pi * (f64::from(*vi) - ci);
        }
        acc
    }

    /// out += a · z
    fn axpy(&self, a: f64, out: &mut [f64], center: &[f64]) {
        let k = self.f.len();
        debug_assert!(out.len() == k + 2 || center.len() == self.v.len());
        out[0] += a * f64::from(self.s);
        for (o, fj) in out[1..=k].iter_mut().zip(self.f) {
            *o += a * f64::from(*fj);
        }
        out[k + 1] += a;
        for ((o, vi), ci) in out[k + 2..].iter_mut().zip(self.v).zip(center) {
            *o += a * (f64::from(*vi) - ci);
        }
    }
}

fn scored<'a>(h: &Head, exs: impl IntoIterator<Item = &'a Example>) -> Vec<Scored<'a>> {
    let d = h.dims();
    exs.into_iter()
        .map(|e| Scored {
            s: h.text_score(e.b, &e.x),
            v: &e.x[..d],
            f: &e.f,
            b: e.b,
            y: e.y,
        })
        .collect()
}

fn scored_logit(h: &Head, e: &Scored) -> f32 {
    h.logit_with(e.b, e.s, h.taste_score(e.b, e.v), e.f)
}

/// Mean log-loss, as `Head::mean_loss`, from precomputed text scores.
fn scored_loss(h: &Head, exs: &[Scored]) -> f32 {
    if exs.is_empty() {
        return 0.0;
    }
    exs.iter()
        .map(|e| log_loss(scored_logit(h, e), e.y))
        .sum::<f32>()
        / exs.len() as f32
}

/// Damped Newton steps on the adapted part only, per behaviour, minimising
/// mean log-loss plus ½·Σ precision·(θ − θ_start)²/n. The problem is convex,
/// so a few steps converge without a tuned step size. Without the taste
/// the k+2 parameters (gain, side weights, bias) get an exact dense solve;
/// with it (k+2+dims parameters) the Newton system is solved by conjugate
/// gradients on Hessian-vector products, O(events · parameters) each, which
/// stays in milliseconds for a few dozen events where a dense 390×390
/// solve per step would not. `each(Some((t, head)))` sees the head after
/// t = 0..=steps steps; `each(None)` is an interruption point inside a step.
///
/// The taste is fitted on item embeddings centred on the support set's mean
/// item (the bias absorbing the difference: c = c̃ − τ·v̄, the same logits).
/// Uncentred, every embedding shares a large common direction, and a tenant
/// that is simply more generous than the global head — with its bias held
/// by the prior — pushed τ along that direction, which ranks items by how
/// typical they are: noise, not taste. Centred, the bias prior governs the
/// level and the taste only which items.
fn descent(
    start: &Head,
    exs: &[Scored],
    cfg: &AdaptConfig,
    mut each: impl FnMut(Option<(usize, &Head)>),
) {
    let mut h = start.clone();
    each(Some((0, &h)));
    let with_taste = cfg.prior.taste < FROZEN;
    let k = h.k;
    let m = k + 2 + if with_taste { h.dims() } else { 0 };
    let n = exs.len().max(1) as f64;
    let start_post = start_posterior(cfg, k, h.dims());
    // what does not change between steps, per behaviour: its events, their
    // mean item (the centre), the scores of a frozen taste, and the start in
    // centred coordinates
    let parts: Vec<Part> = (0..NB)
        .filter_map(|b| {
            let mine: Vec<&Scored> = exs.iter().filter(|e| e.b == b).collect();
            if mine.is_empty() {
                return None;
            }
            let mut center = Vec::new();
            let mut theta0 = if with_taste {
                center = centre_of(cfg, &start_post, &mine, b);
                start.adapted(b)
            } else {
                start.small(b)
            };
            let prec: Vec<f64> = start_post.precision(b)[..m]
                .iter()
                .map(|&p| f64::from(p) / n)
                .collect();
            recentre(&mut theta0, k, &center, 1.0);
            let offsets = mine
                .iter()
                .map(|e| {
                    if with_taste {
                        0.0
                    } else {
                        f64::from(start.taste_score(b, e.v)) // a frozen taste still scores
                    }
                })
                .collect();
            Some(Part {
                b,
                mine,
                center,
                offsets,
                theta0,
                prec,
            })
        })
        .collect();
    for t in 1..=cfg.steps {
        for part in &parts {
            let Part {
                b,
                mine,
                center,
                offsets,
                theta0,
                prec,
            } = part;
            let b = *b;
            let mut theta = if with_taste { h.adapted(b) } else { h.small(b) };
            recentre(&mut theta, k, center, 1.0);
            let mut grad = vec![0f64; m];
            let mut w = Vec::with_capacity(mine.len());
            for e in mine {
                let p = f64::from(sigmoid(scored_logit(&h, e)));
                e.axpy((p - f64::from(e.y)) / n, &mut grad, center);
                w.push((p * (1.0 - p)).max(1e-6) / n);
            }
            for i in 0..m {
                grad[i] += prec[i] * f64::from(theta[i] - theta0[i]);
            }
            let delta = if with_taste {
                conjugate_gradient(mine, &w, prec, &grad, center, &mut || each(None))
            } else {
                let mut hess = vec![0f64; m * m];
                let mut z = vec![0f64; m];
                for (e, &wi) in mine.iter().zip(&w) {
                    z.iter_mut().for_each(|v| *v = 0.0);
                    e.axpy(1.0, &mut z, &[]);
                    for i in 0..m {
                        for j in 0..m {
                            hess[i * m + j] += wi * z[i] * z[j];
                        }
                    }
                }
                for i in 0..m {
                    hess[i * m + i] += prec[i];
                }
                solve(&mut hess, &mut grad, m)
            };
            // the objective at θ (centred coordinates), for the line search
            let objective = |th: &[f32]| -> f64 {
                let th: Vec<f64> = th.iter().map(|&v| f64::from(v)).collect();
                let mut o = 0.0;
                for (e, off) in mine.iter().zip(offsets) {
                    o += log_loss64(e.dot(&th, center) + off, f64::from(e.y)) / n;
                }
                for i in 0..m {
                    o += 0.5 * prec[i] * (th[i] - f64::from(theta0[i])).powi(2);
                }
                o
            };
            if let Some(delta) = delta {
                // A full Newton step can overshoot where the events are
                // (nearly) separable and the prior is weak; halve it until
                // the objective does not rise. A tenant may trust text more
                // or less than the global head does, but never invert it: a
                // gain below zero would rank what the text says fits the
                // user last. Sixteen events can ask for that by chance; the
                // projection refuses it.
                let base = objective(&theta);
                let mut step = f64::from(cfg.lr);
                let mut accepted = None;
                for _ in 0..12 {
                    let mut next: Vec<f32> = theta
                        .iter()
                        .zip(&delta)
                        .map(|(p, d)| p - (step * d) as f32)
                        .collect();
                    next[0] = next[0].max(0.0);
                    if objective(&next) <= base + 1e-12 {
                        accepted = Some(next);
                        break;
                    }
                    step /= 2.0;
                }
                let Some(mut next) = accepted else {
                    continue;
                };
                recentre(&mut next, k, center, -1.0);
                if with_taste {
                    h.set_adapted(b, &next);
                } else {
                    h.set_small(b, &next);
                }
            }
        }
        each(Some((t, &h)));
    }
}

/// One behaviour's share of `descent`, fixed across its steps.
struct Part<'e, 'a> {
    b: usize,
    mine: Vec<&'e Scored<'a>>,
    center: Vec<f64>,
    offsets: Vec<f64>,
    /// the start, in centred coordinates
    theta0: Vec<f32>,
    /// the prior's precision of each adapted parameter, divided by n
    prec: Vec<f64>,
}

/// To centred coordinates (`sign` = 1: c̃ = c + τ·v̄) and back (−1). A
/// no-op without a taste (`center` empty).
fn recentre(th: &mut [f32], k: usize, center: &[f64], sign: f64) {
    let tv: f64 = th[k + 2..]
        .iter()
        .zip(center)
        .map(|(t, c)| f64::from(*t) * c)
        .sum();
    th[k + 1] = (f64::from(th[k + 1]) + sign * tv) as f32;
}

/// `log_loss` in f64.
fn log_loss64(z: f64, y: f64) -> f64 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}

/// Solves (Σ w_i z_i z_iᵀ + diag(prec)) x = g by conjugate gradients,
/// preconditioned by the diagonal. The matrix is symmetric positive
/// definite (prec > 0), so this converges; it stops at a relative residual
/// of 1e-6 or after `m` iterations. None if it produced a non-finite value.
fn conjugate_gradient(
    exs: &[&Scored],
    w: &[f64],
    prec: &[f64],
    g: &[f64],
    center: &[f64],
    tick: &mut dyn FnMut(),
) -> Option<Vec<f64>> {
    let m = g.len();
    let hv = |p: &[f64], out: &mut [f64]| {
        for (o, (pi, di)) in out.iter_mut().zip(p.iter().zip(prec)) {
            *o = pi * di;
        }
        for (e, &wi) in exs.iter().zip(w) {
            let zp = e.dot(p, center);
            e.axpy(wi * zp, out, center);
        }
    };
    let mut diag = prec.to_vec();
    let mut z = vec![0f64; m];
    for (e, &wi) in exs.iter().zip(w) {
        z.iter_mut().for_each(|v| *v = 0.0);
        e.axpy(1.0, &mut z, center);
        for i in 0..m {
            diag[i] += wi * z[i] * z[i];
        }
    }
    let mut x = vec![0f64; m];
    let mut r = g.to_vec();
    let mut zr: Vec<f64> = r.iter().zip(&diag).map(|(a, d)| a / d).collect();
    let mut p = zr.clone();
    let mut rz: f64 = r.iter().zip(&zr).map(|(a, b)| a * b).sum();
    let norm0 = r.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut hp = vec![0f64; m];
    for it in 0..m {
        if norm0 == 0.0 || r.iter().map(|v| v * v).sum::<f64>().sqrt() <= 1e-6 * norm0 {
            break;
        }
        hv(&p, &mut hp);
        let php: f64 = p.iter().zip(&hp).map(|(a, b)| a * b).sum();
        if php <= 0.0 || !php.is_finite() {
            break;
        }
        let alpha = rz / php;
        for i in 0..m {
            x[i] += alpha * p[i];
            r[i] -= alpha * hp[i];
        }
        for i in 0..m {
            zr[i] = r[i] / diag[i];
        }
        let rz_next: f64 = r.iter().zip(&zr).map(|(a, b)| a * b).sum();
        let beta = rz_next / rz;
        rz = rz_next;
        for i in 0..m {
            p[i] = zr[i] + beta * p[i];
        }
        // a pass over a large support set per iteration
        if it % 8 == 7 || exs.len() > SLICE {
            tick();
        }
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
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
fn fit_small(head: &mut Head, exs: &[&Example], between: &mut dyn FnMut()) {
    let all = scored(head, exs.iter().copied());
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
fn search_prior(head: &Head, mut quality: impl FnMut(Prior) -> Quality) -> Prior {
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
fn fit_within(head: &mut Head, tasks: &[Vec<&Example>], fit_gain: bool, between: &mut dyn FnMut()) {
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

/// Query AUC of each episode with the unadapted head: what
/// `query_quality` compares adapted heads with, the same for every prior.
fn baseline_aucs(head: &Head, episodes: &[Episode]) -> Vec<Option<f64>> {
    episodes.iter().map(|(_, q)| query_auc(head, q)).collect()
}

fn query_auc(h: &Head, q: &[Example]) -> Option<f64> {
    let scores: Vec<f64> = q
        .iter()
        .map(|e| f64::from(h.logit(e.b, &e.x, &e.f)))
        .collect();
    let labels: Vec<bool> = q.iter().map(|e| e.y > 0.5).collect();
    crate::head::auc(&scores, &labels)
}

/// How a head ranks after adaptation, episode by episode: (mean query
/// log-loss, mean query AUC over the episodes whose query has both labels,
/// with each episode's loss of AUC against the unadapted head (`before`,
/// from `baseline_aucs`) counted twice).
fn query_quality(
    head: &Head,
    episodes: &[Episode],
    before: &[Option<f64>],
    cfg: &AdaptConfig,
    between: &mut dyn FnMut(),
) -> Quality {
    let (mut loss, mut auc_sum, mut auc_n) = (0f64, 0f64, 0usize);
    for ((s, q), before) in episodes.iter().zip(before) {
        let h = adapt_with(head, s, cfg, between).0;
        loss += f64::from(h.mean_loss(q));
        if let (Some(a), Some(before)) = (query_auc(&h, q), before) {
            // a tenant that adaptation makes worse counts twice: the
            // average gain must not be bought with a few tenants' losses
            auc_sum += a - (before - a).max(0.0);
            auc_n += 1;
        }
        between();
    }
    Quality {
        loss: (loss / episodes.len().max(1) as f64) as f32,
        auc: (auc_sum / auc_n.max(1) as f64) as f32,
    }
}

#[derive(Clone, Copy, Debug)]
struct Quality {
    loss: f32,
    auc: f32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{auc, text_features, Group, NB};

    /// `adapt`'s defaults as ecom_adapt uses them (method meta, full steps).
    fn meta(steps: usize, prior: Prior, seed: i64) -> AdaptConfig {
        AdaptConfig {
            steps,
            lr: 1.0,
            method: Method::Meta,
            prior,
            seed,
            posterior: None,
        }
    }

    /// A `purchase` event of context u and item v, positive when z > 0.
    fn event(u: &[f32], v: &[f32], f: Vec<f32>, z: f32) -> Example {
        Example {
            x: text_features(u, v),
            f,
            b: NB - 1,
            y: if z > 0.0 { 1.0 } else { 0.0 },
        }
    }

    fn task(t: usize, examples: Vec<Example>) -> Task {
        Task {
            tenant: format!("t{t}"),
            examples,
            ordered: false,
        }
    }

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
                        event(&u, &v, f, z)
                    })
                    .collect();
                task(t, examples)
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
                posterior: None,
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
            posterior: None,
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
            let acfg = meta(3, Prior::default(), seed);
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
        let cfg = meta(5, report.prior, 1);
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
        let cfg = meta(5, report.prior, 2);
        for t in &tasks {
            let (support, query) = t.examples.split_at(16);
            let (adapted, _) = adapt(&head, support, &cfg);
            assert!(task_auc(&adapted, query) >= task_auc(&head, query) - 0.01);
        }
    }

    #[test]
    fn meta_adaptation_never_changes_the_text_weights() {
        let tasks = synthetic(3, 40, 8);
        let head = Head::new(8, 1);
        let cfg = meta(5, Prior::default(), 3);
        let (adapted, rep) = adapt(&head, &tasks[0].examples, &cfg);
        assert_eq!(rep.n, 40);
        for i in 0..head.params.len() {
            if head.group_of(i) == Group::W {
                assert_eq!(head.params[i], adapted.params[i]);
            }
        }
        // the adapted part did move, the taste included
        let m = head.moved(&adapted);
        assert!(m.taste > 0.0 && m.bias > 0.0, "{m:?}");
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
        let cfg = meta(
            10,
            Prior {
                gain: 0.016,
                side: 0.016,
                bias: 0.016,
                taste: 0.016,
            },
            0,
        );
        let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
        assert!(adapted.small(0)[0] >= 0.0, "gain {}", adapted.small(0)[0]);
    }

    #[test]
    fn empty_support_returns_the_start() {
        let head = Head::new(4, 0);
        let cfg = meta(5, Prior::default(), 0);
        let (same, rep) = adapt(&head, &[], &cfg);
        assert_eq!(same, head);
        assert_eq!(rep.n, 0);
    }

    /// Tenants that differ only in *which* items they like: tenant t likes
    /// items along its own direction of the embedding space. No gain, side
    /// weight or bias can express that; a taste can.
    fn tastes(tenants: usize, per: usize, seed: u64) -> Vec<Task> {
        let dims = 8;
        let mut r = Rng::new(seed);
        let mut unit = move || (r.next_u64() % 20001) as f32 / 10000.0 - 1.0;
        (0..tenants)
            .map(|t| {
                let dir = t % dims;
                let sign = if (t / dims) % 2 == 0 { 1.0 } else { -1.0 };
                let examples = (0..per)
                    .map(|_| {
                        let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                        let mut v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                        v.iter_mut().for_each(|a| *a /= norm);
                        let f = vec![unit()];
                        let z = 6.0 * sign * v[dir] + 1.0 * f[0] + 0.5 * unit();
                        event(&u, &v, f, z)
                    })
                    .collect();
                task(t, examples)
            })
            .collect()
    }

    #[test]
    fn a_taste_learns_which_items_a_tenant_prefers() {
        let train = tastes(24, 120, 21);
        let (head, report) = meta_train(&train, 8, 1, &MetaConfig::default(), || {});
        assert!(report.prior.taste < FROZEN, "{:?}", report.prior);
        // the global head itself has no taste
        assert!(head.params[head.taste_range()].iter().all(|&v| v == 0.0));
        let cfg = meta(5, report.prior, 1);
        // new tenants (other directions and signs), 32 events each
        let test = tastes(6, 400, 77);
        let mut gains = Vec::new();
        for t in &test {
            let (support, query) = t.examples.split_at(32);
            let before = task_auc(&head, query);
            let (adapted, _) = adapt(&head, support, &cfg);
            let after = task_auc(&adapted, query);
            assert!(head.moved(&adapted).taste > 0.0);
            gains.push(after - before);
        }
        let mean = gains.iter().sum::<f64>() / gains.len() as f64;
        assert!(mean > 0.1, "mean AUC gain {mean:.3}: {gains:?}");
        assert!(gains.iter().all(|&g| g > 0.0), "{gains:?}");
    }

    #[test]
    fn the_taste_stays_frozen_where_tenants_share_one_taste() {
        // every tenant likes the same direction: the global text weights
        // learn it; a per-tenant taste would only fit noise
        let mut tasks = tastes(12, 150, 3);
        for t in tasks.iter_mut() {
            for e in t.examples.iter_mut() {
                e.y = if e.x[0] + 0.3 * e.f[0] > 0.0 {
                    1.0
                } else {
                    0.0
                };
            }
        }
        let (head, report) = meta_train(&tasks, 8, 1, &MetaConfig::default(), || {});
        let cfg = meta(5, report.prior, 2);
        for t in &tasks {
            let (support, query) = t.examples.split_at(16);
            let (adapted, _) = adapt(&head, support, &cfg);
            let (before, after) = (task_auc(&head, query), task_auc(&adapted, query));
            assert!(
                after >= before - 0.01,
                "{}: {before:.3} -> {after:.3}",
                t.tenant
            );
        }
    }

    #[test]
    fn a_prior_stored_before_the_taste_keeps_the_taste_frozen() {
        // 0.1.x heads store {"gain", "side", "bias"}: their tenants adapt
        // exactly as before (no taste, early stopping by cross-validation)
        let p: Prior = serde_json::from_value(
            serde_json::json!({"gain": 0.016, "side": 0.016, "bias": 0.016}),
        )
        .unwrap();
        assert_eq!(p.taste, FROZEN);
        let tasks = synthetic(1, 40, 5);
        let head = Head::new(8, 1);
        let cfg = meta(5, p, 1);
        let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
        let m = head.moved(&adapted);
        assert_eq!(m.taste, 0.0);
        assert!(m.side + m.bias + m.gain > 0.0, "{m:?}");
    }

    #[test]
    fn the_posterior_tightens_with_events_and_keeps_the_prior_elsewhere() {
        let tasks = synthetic(1, 80, 21);
        let head = Head::new(8, 1);
        let cfg = meta(5, Prior::default(), 1);
        let (_, few) = adapt(&head, &tasks[0].examples[..10], &cfg);
        let (_, many) = adapt(&head, &tasks[0].examples, &cfg);
        let b = NB - 1; // the synthetic events' behaviour
        let prior = Posterior::from_prior(&cfg.prior, 1, 8);
        for i in 0..Posterior::width(1, 8) {
            assert!(few.posterior.precision(b)[i] >= prior.precision(b)[i]);
            assert!(many.posterior.precision(b)[i] >= few.posterior.precision(b)[i] - 1e-6);
        }
        // the bias (k + 1) learns from every event: 8 times the events,
        // several times the information (p(1 − p) falls as the fit sharpens)
        let data = |p: &Posterior| p.precision(b)[2] - prior.precision(b)[2];
        assert!(
            data(&many.posterior) > 3.0 * data(&few.posterior),
            "{} vs {}",
            data(&many.posterior),
            data(&few.posterior)
        );
        // behaviours without events keep the prior, centred at 0
        assert_eq!(many.posterior.precision(0), prior.precision(0));
        assert!(many.posterior.center(0).iter().all(|&c| c == 0.0));
        // the centre of b is its events' mean item
        let mean0: f32 = tasks[0].examples.iter().map(|e| e.x[0]).sum::<f32>() / 80.0;
        assert!((many.posterior.center(b)[0] - mean0).abs() < 1e-5);
    }

    #[test]
    fn continuing_from_a_posterior_approximates_learning_from_everything() {
        // Bayesian updating: half the events, then the other half with the
        // first fit's posterior as the prior, lands near one fit on all of
        // them, and far nearer than forgetting the first half's precision
        // (the group prior again) or ignoring the first half
        let tasks = synthetic(1, 120, 4);
        let exs = &tasks[0].examples;
        let head = Head::new(8, 1);
        let cfg = meta(8, Prior::default(), 1);
        let (all, _) = adapt(&head, exs, &cfg);
        let (first, r1) = adapt(&head, &exs[..60], &cfg);
        let carried = AdaptConfig {
            posterior: Some(r1.posterior.clone()),
            ..cfg.clone()
        };
        let (seq, _) = adapt(&first, &exs[60..], &carried);
        let (reset, _) = adapt(&first, &exs[60..], &cfg);
        let b = NB - 1;
        let dist = |h: &Head| -> f64 {
            h.adapted(b)
                .iter()
                .zip(all.adapted(b))
                .map(|(a, c)| f64::from(a - c).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let norm = all
            .adapted(b)
            .iter()
            .map(|a| f64::from(*a).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!(
            dist(&seq) < 0.25 * norm,
            "sequential {} vs |all| {norm}",
            dist(&seq)
        );
        assert!(
            dist(&seq) < dist(&reset),
            "{} vs {}",
            dist(&seq),
            dist(&reset)
        );
    }

    #[test]
    fn conjugate_gradients_solve_the_newton_system() {
        // against the dense solve of the same (Σ w z zᵀ + diag(prec)) x = g
        let tasks = synthetic(1, 30, 9);
        let head = Head::new(8, 1);
        let all = scored(&head, &tasks[0].examples);
        let refs: Vec<&Scored> = all.iter().collect();
        let m = 1 + 2 + 8;
        let mut r = Rng::new(3);
        let w: Vec<f64> = refs
            .iter()
            .map(|_| 0.05 + (r.next_u64() % 100) as f64 / 500.0)
            .collect();
        let prec: Vec<f64> = (0..m).map(|i| 0.01 + i as f64 * 0.003).collect();
        let g: Vec<f64> = (0..m).map(|i| (i as f64 - 4.0) * 0.1).collect();
        let center: Vec<f64> = (0..8).map(|i| 0.05 * i as f64).collect();
        let x = conjugate_gradient(&refs, &w, &prec, &g, &center, &mut || {}).unwrap();
        let mut a = vec![0f64; m * m];
        let mut z = vec![0f64; m];
        for (e, &wi) in refs.iter().zip(&w) {
            z.iter_mut().for_each(|v| *v = 0.0);
            e.axpy(1.0, &mut z, &center);
            for i in 0..m {
                for j in 0..m {
                    a[i * m + j] += wi * z[i] * z[j];
                }
            }
        }
        for i in 0..m {
            a[i * m + i] += prec[i];
        }
        let want = solve(&mut a, &mut g.clone(), m).unwrap();
        for i in 0..m {
            assert!(
                (x[i] - want[i]).abs() < 1e-6 * (1.0 + want[i].abs()),
                "{i}: {} vs {}",
                x[i],
                want[i]
            );
        }
    }

    #[test]
    fn the_global_head_ranks_within_a_tenant_at_least_as_well_as_popularity() {
        // f0 = the item's popularity (ranks within a tenant); f1 = the
        // tenant's own generosity (constant within a tenant, so it says
        // nothing about which of a tenant's items it likes); the text is
        // noise the text weights can fit on training events
        let dims = 8;
        let mut r = Rng::new(17);
        let mut unit = move || (r.next_u64() % 20001) as f32 / 10000.0 - 1.0;
        let mut tasks: Vec<Task> = (0..30)
            .map(|t| {
                let generosity = unit() * 2.0;
                let examples = (0..80)
                    .map(|_| {
                        let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                        let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                        let pop = unit();
                        let z = 1.5 * pop + generosity + 1.5 * unit();
                        Example {
                            x: text_features(&u, &v),
                            f: vec![pop, generosity / 2.0],
                            b: NB - 1,
                            y: if z > 0.0 { 1.0 } else { 0.0 },
                        }
                    })
                    .collect();
                task(t, examples)
            })
            .collect();
        let test = tasks.split_off(20);
        let (head, _) = meta_train(&tasks, dims, 2, &MetaConfig::default(), || {});
        let (mut by_head, mut by_pop) = (0.0, 0.0);
        for t in &test {
            by_head += task_auc(&head, &t.examples);
            let s: Vec<f64> = t.examples.iter().map(|e| f64::from(e.f[0])).collect();
            let y: Vec<bool> = t.examples.iter().map(|e| e.y > 0.5).collect();
            by_pop += auc(&s, &y).unwrap();
        }
        let (by_head, by_pop) = (by_head / test.len() as f64, by_pop / test.len() as f64);
        assert!(
            by_head >= by_pop - 0.005,
            "head {by_head:.4} vs popularity {by_pop:.4}"
        );
    }

    #[test]
    fn separable_events_give_bounded_weights() {
        // one side feature splits every tenant's labels exactly: Newton
        // without a line search overshot to logits past exp's range
        let mut tasks = synthetic(6, 60, 13);
        for t in tasks.iter_mut() {
            for e in t.examples.iter_mut() {
                e.y = if e.f[0] > 0.0 { 1.0 } else { 0.0 };
            }
        }
        let (head, _) = meta_train(&tasks, 8, 1, &MetaConfig::default(), || {});
        let cfg = meta(
            5,
            Prior {
                gain: 0.016,
                side: 0.016,
                bias: 0.016,
                taste: 0.03,
            },
            1,
        );
        let (adapted, _) = adapt(&head, &tasks[0].examples, &cfg);
        for h in [&head, &adapted] {
            assert!(h.params.iter().all(|p| p.is_finite()));
            for e in &tasks[1].examples {
                let z = h.logit(e.b, &e.x, &e.f);
                assert!(z.abs() < 100.0, "logit {z}");
            }
        }
    }
}
