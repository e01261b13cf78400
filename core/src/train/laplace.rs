//! The Laplace posterior of the adapted part: where adaptation starts
//! from and how sure it is where it ends.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::head::{Head, NB};
use crate::metrics::sigmoid;
use crate::posterior::Posterior;

use super::centred::{centred_logit, Centred};
use super::config::AdaptConfig;

/// The prior of an adaptation as a posterior: `cfg.posterior` when set,
/// else the group precisions of `cfg.prior`, centred at 0.
pub(super) fn start_posterior(cfg: &AdaptConfig, k: usize, dims: usize) -> Posterior {
    match &cfg.posterior {
        Some(p) if p.k == k && p.dims == dims => p.clone(),
        _ => Posterior::from_prior(&cfg.prior, k, dims),
    }
}

/// The centre of behaviour b's taste coordinates: the start posterior's
/// when continuing from one (its precisions are in those coordinates),
/// else the mean item of b's events.
pub(super) fn centre_of(
    cfg: &AdaptConfig,
    start: &Posterior,
    mine: &[&Centred],
    b: usize,
) -> Vec<f64> {
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
pub(super) fn posterior_at(h: &Head, exs: &[Centred], cfg: &AdaptConfig) -> Posterior {
    let (k, dims) = (h.k, h.dims());
    let start = start_posterior(cfg, k, dims);
    let mut post = start.clone();
    let m = Posterior::width(k, dims);
    for b in 0..NB {
        let mine: Vec<&Centred> = exs.iter().filter(|e| e.b == b).collect();
        if mine.is_empty() {
            continue;
        }
        let center = centre_of(cfg, &start, &mine, b);
        let mut prec: Vec<f64> = start.precision(b).iter().map(|&p| f64::from(p)).collect();
        for e in &mine {
            let p = f64::from(sigmoid(centred_logit(h, e)));
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
