//! The Laplace posterior of the adapted part: where adaptation starts
//! from and how sure it is where it ends.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::head::{Head, NB};
use crate::metrics::sigmoid;
use crate::posterior::Posterior;

use super::centred::{centred_logit, Centred};
use super::config::AdaptConfig;
use super::directions::{informed_block, Counted};

/// The prior of an adaptation as a posterior: `cfg.posterior` when set
/// (and stored for `start`'s shape and basis), else the group precisions
/// of `cfg.prior` with the start's taste basis, centred at 0.
pub(super) fn start_posterior(cfg: &AdaptConfig, start: &Head) -> Posterior {
    let (k, dims) = (start.k, start.dims());
    let basis = start.basis.as_deref().filter(|b| b.dims == dims);
    let ranks_fit = |p: &Posterior| match basis {
        None => p.block.is_empty(),
        Some(basis) => (0..NB)
            .all(|b| p.block(b).map(|(_, w)| w) == Some(k + 2 + basis.rank(b) + p.data_rank(b))),
    };
    // an old-form posterior is carried into the new form before Newton
    // starts, so the estimate and its stored posterior share one prior
    match &cfg.posterior {
        Some(p) if p.k == k && p.dims == dims && ranks_fit(p) => p.clone().with_directions(),
        _ => Posterior::from_prior_in(&cfg.prior, k, dims, basis),
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
///
/// With a basis the block gets, per event, p(1 − p)·z_B·z_Bᵀ for
/// z_B = [s, f.., 1, Uᵀ(v − v̄), Vᵀ(v − v̄)], where V are the directions of
/// β the events informed most (directions.rs), and β's diagonal keeps its
/// isotropic prior. What is left out: the events' information about β
/// across V (the smallest eigenvalues of its Hessian), and the cross terms
/// of β across V with the block.
pub(super) fn posterior_at(
    h: &Head,
    exs: &[Centred],
    cfg: &AdaptConfig,
    between: &mut dyn FnMut(),
) -> Posterior {
    let (k, dims) = (h.k, h.dims());
    let start = start_posterior(cfg, h);
    let mut post = start.clone();
    let m = Posterior::width(k, dims);
    for b in 0..NB {
        let mine: Vec<&Centred> = exs.iter().filter(|e| e.b == b).collect();
        if mine.is_empty() {
            continue;
        }
        let center = centre_of(cfg, &start, &mine, b);
        let mut prec: Vec<f64> = start.precision(b).iter().map(|&p| f64::from(p)).collect();
        // each event's p(1 − p), for the diagonal and the block alike
        let weights: Vec<f64> = mine
            .iter()
            .map(|e| {
                let p = f64::from(sigmoid(centred_logit(h, e)));
                p * (1.0 - p)
            })
            .collect();
        let basis = h.basis.as_deref().filter(|_| start.block(b).is_some());
        for (e, &w) in mine.iter().zip(&weights) {
            prec[0] += w * f64::from(e.s).powi(2);
            for (j, f) in e.f.iter().enumerate() {
                prec[1 + j] += w * f64::from(*f).powi(2);
            }
            prec[k + 1] += w;
            if basis.is_none() {
                for ((q, v), c) in prec[k + 2..].iter_mut().zip(e.v).zip(&center) {
                    *q += w * (f64::from(*v) - c).powi(2);
                }
            }
        }
        if let Some(basis) = basis {
            let events = Counted {
                mine: &mine,
                weights: &weights,
                center: &center,
            };
            let (block, dirs) = informed_block(&start, b, basis, &events, cfg.directions, between);
            let w = k + 2 + basis.rank(b) + dirs.len() / dims.max(1);
            for i in 0..k + 2 {
                prec[i] = block[i * w + i];
            }
            post.block[b] = block.iter().map(|&x| x as f32).collect();
            if let Some(d) = post.directions.as_mut() {
                d[b] = dirs;
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
