//! Damped Newton steps on the adapted part, in centred coordinates.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::head::{Head, NB};
use crate::metrics::sigmoid;
use crate::posterior::Posterior;
use crate::prior::FROZEN;
use crate::taste::{TasteBasis, Transposed};

use super::centred::{centred_logit, Centred};
use super::config::AdaptConfig;
use super::config::SLICE;
use super::laplace::{centre_of, start_posterior};
use super::solvers::{conjugate_gradient_op, log_loss64, solve};

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
pub(super) fn descent(
    start: &Head,
    exs: &[Centred],
    cfg: &AdaptConfig,
    mut each: impl FnMut(Option<(usize, &Head)>),
) {
    let mut h = start.clone();
    each(Some((0, &h)));
    let with_taste = adapts_taste(start, cfg);
    let k = h.k;
    let m = k + 2 + if with_taste { h.dims() } else { 0 };
    let n = exs.len().max(1) as f64;
    let start_post = start_posterior(cfg, start);
    let shape = Shape {
        with_taste,
        k,
        m,
        n,
    };
    // what does not change between steps, per behaviour: its events, their
    // mean item (the centre), the scores of a frozen taste, and the start in
    // centred coordinates
    let parts: Vec<Part> = (0..NB)
        .filter_map(|b| Part::new(start, exs, cfg, &start_post, shape, b))
        .collect();
    // where each part is, in its own coordinates (deviations from the start)
    let mut xs: Vec<Vec<f64>> = parts.iter().map(|p| vec![0.0; p.width()]).collect();
    for t in 1..=cfg.steps {
        for (part, x) in parts.iter().zip(xs.iter_mut()) {
            part.step(&mut h, x, cfg, &mut || each(None));
        }
        each(Some((t, &h)));
    }
}

/// Whether adaptation moves the taste: its isotropic prior is not frozen,
/// or the start has a basis whose few directions may move.
pub(super) fn adapts_taste(start: &Head, cfg: &AdaptConfig) -> bool {
    cfg.prior.taste < FROZEN
        || start
            .basis
            .as_deref()
            .is_some_and(|basis| !basis.is_empty())
}

/// The sizes `descent` works with, the same for every behaviour.
#[derive(Clone, Copy)]
struct Shape {
    /// whether the taste is adapted (else it is frozen and only scores)
    with_taste: bool,
    k: usize,
    /// adapted parameters per behaviour
    m: usize,
    /// the number of events (at least 1): the objective is a mean
    n: f64,
}

/// One behaviour's share of `descent`, fixed across its steps.
pub(super) struct Part<'e, 'a> {
    pub(super) b: usize,
    pub(super) mine: Vec<&'e Centred<'a>>,
    pub(super) center: Vec<f64>,
    pub(super) offsets: Vec<f64>,
    /// the start, in centred coordinates
    theta0: Vec<f32>,
    /// the prior's precision of each adapted parameter, divided by n
    /// (with a basis: those of [small.., β..]; the block has the rest)
    pub(super) prec: Vec<f64>,
    /// with a taste: each event's logit under the start
    base: Vec<f64>,
    /// the directions, when the taste moves along them
    along: Option<Along<'e>>,
    shape: Shape,
}

/// What a part needs to move its taste along a basis's directions.
struct Along<'e> {
    basis: &'e TasteBasis,
    /// the prior's dense precision of [small.., α.., γ..] (γ = Vᵀβ along
    /// the directions the earlier events informed), divided by n, less
    /// β's isotropic precision along γ (the diagonal applies that to all
    /// of β)
    block: Vec<f64>,
    /// its width, k + 2 + r + q
    w: usize,
    /// the basis's rank r
    r: usize,
    /// the prior's directions V of β, q rows of dims
    dirs: Vec<f64>,
    /// V laid out for Vᵀβ: the conjugate gradients apply the prior
    /// hundreds of times per update
    dirs_t: Transposed,
    /// each event's coordinates Uᵀ(v − v̄) along the basis
    proj: Vec<Vec<f64>>,
}

impl<'e, 'a> Part<'e, 'a> {
    /// Behaviour b's part, or None if it has no events.
    fn new(
        start: &'e Head,
        exs: &'e [Centred<'a>],
        cfg: &AdaptConfig,
        start_post: &'e Posterior,
        shape: Shape,
        b: usize,
    ) -> Option<Self> {
        let Shape {
            with_taste,
            k,
            m,
            n,
        } = shape;
        let mine: Vec<&Centred> = exs.iter().filter(|e| e.b == b).collect();
        if mine.is_empty() {
            return None;
        }
        let mut center = Vec::new();
        let mut theta0 = if with_taste {
            center = centre_of(cfg, start_post, &mine, b);
            start.adapted(b)
        } else {
            start.small(b)
        };
        let prec: Vec<f64> = start_post.precision(b)[..m]
            .iter()
            .map(|&p| f64::from(p) / n)
            .collect();
        recentre(&mut theta0, k, &center, 1.0);
        let along = start
            .basis
            .as_deref()
            .filter(|basis| with_taste && basis.dims == start.dims())
            .zip(start_post.block(b))
            .map(|(basis, (a, w))| {
                let r = basis.rank(b);
                let mut block: Vec<f64> = a.iter().map(|&p| f64::from(p) / n).collect();
                for i in k + 2 + r..w {
                    block[i * w + i] -= prec[k + 2];
                }
                let dirs = start_post.dirs(b);
                let dims = start.dims();
                Along {
                    basis,
                    block,
                    w,
                    r,
                    dirs: dirs.iter().map(|&x| f64::from(x)).collect(),
                    dirs_t: Transposed::new(dirs, dims),
                    proj: mine
                        .iter()
                        .map(|e| basis.project(b, e.v, &center))
                        .collect(),
                }
            });
        // with a taste, logits are the start's plus z·x; without, a frozen
        // taste still scores
        let (base, offsets) = if with_taste {
            let base = mine.iter().map(|e| f64::from(centred_logit(start, e)));
            (base.collect(), Vec::new())
        } else {
            let frozen = mine.iter().map(|e| f64::from(start.taste_score(b, e.v)));
            (Vec::new(), frozen.collect())
        };
        Some(Part {
            b,
            mine,
            center,
            offsets,
            theta0,
            prec,
            base,
            along,
            shape,
        })
    }

    /// The length of this part's coordinates: [small.., taste..] or, with
    /// a basis, [small.., β.., α..].
    fn width(&self) -> usize {
        self.shape.m + self.rank()
    }

    fn rank(&self) -> usize {
        self.along.as_ref().map_or(0, |a| a.r)
    }

    /// One damped Newton step of this behaviour's adapted part of `h`,
    /// at `x` in this part's coordinates; `tick` is an interruption point
    /// inside the conjugate gradients.
    fn step(&self, h: &mut Head, x: &mut Vec<f64>, cfg: &AdaptConfig, tick: &mut dyn FnMut()) {
        let Shape { with_taste, k, .. } = self.shape;
        if with_taste {
            return self.taste_step(h, x, cfg, tick);
        }
        let b = self.b;
        let mut theta = h.small(b);
        recentre(&mut theta, k, &self.center, 1.0);
        let (mut grad, w) = self.gradient(h, &theta);
        if let Some(delta) = self.dense_solve(&w, &mut grad) {
            let Some(next) = self.line_search(&theta, &delta, cfg.lr) else {
                return;
            };
            h.set_small(b, &next);
        }
    }

    /// `step` with a taste, in deviations from the start x = [small.., τ..]
    /// or, with a basis, [small.., β.., α..] (taste.rs): the Newton system
    /// is solved by conjugate gradients on Hessian-vector products.
    fn taste_step(
        &self,
        h: &mut Head,
        x: &mut Vec<f64>,
        cfg: &AdaptConfig,
        tick: &mut dyn FnMut(),
    ) {
        let n = self.shape.n;
        let mut grad = self.prior_times(x);
        let mut w = Vec::with_capacity(self.mine.len());
        for i in 0..self.mine.len() {
            let p = f64::from(sigmoid(self.logit_at(i, x) as f32));
            self.add_z(i, (p - f64::from(self.mine[i].y)) / n, &mut grad);
            w.push((p * (1.0 - p)).max(1e-6) / n);
        }
        let mut diag = self.prior_diagonal();
        let mut z = vec![0f64; x.len()];
        for (i, wi) in w.iter().enumerate() {
            z.iter_mut().for_each(|v| *v = 0.0);
            self.add_z(i, 1.0, &mut z);
            diag.iter_mut()
                .zip(&z)
                .for_each(|(d, zi)| *d += wi * zi * zi);
        }
        let hv = |p: &[f64], out: &mut [f64]| {
            self.prior_times_into(p, out);
            for (i, wi) in w.iter().enumerate() {
                let zp = self.dot_z(i, p);
                self.add_z(i, wi * zp, out);
            }
        };
        let heavy = self.mine.len() > SLICE;
        let Some(delta) = conjugate_gradient_op(hv, &diag, &grad, heavy, tick) else {
            return;
        };
        let base = self.objective_x(x);
        let mut step = f64::from(cfg.lr);
        for _ in 0..12 {
            let mut next: Vec<f64> = x.iter().zip(&delta).map(|(a, d)| a - step * d).collect();
            // the gain stays ≥ 0 (see `line_search`)
            next[0] = next[0].max(-f64::from(self.theta0[0]));
            if self.objective_x(&next) <= base + 1e-12 {
                *x = next;
                h.set_adapted(self.b, &self.theta_of(x));
                return;
            }
            step /= 2.0;
        }
    }

    /// The head's adapted part at x: the start plus x, with U·α added to
    /// the taste, back in the head's (uncentred) coordinates.
    fn theta_of(&self, x: &[f64]) -> Vec<f32> {
        let m = self.shape.m;
        let mut th: Vec<f64> = self
            .theta0
            .iter()
            .zip(&x[..m])
            .map(|(t, d)| f64::from(*t) + d)
            .collect();
        if let Some(a) = &self.along {
            a.basis
                .lift_into(self.b, &x[m..], &mut th[self.shape.k + 2..]);
        }
        let mut th: Vec<f32> = th.iter().map(|&v| v as f32).collect();
        recentre(&mut th, self.shape.k, &self.center, -1.0);
        th
    }

    /// z_i · p for event i: [s, f.., 1, v − v̄..] and, with a basis, its
    /// coordinates Uᵀ(v − v̄) for α.
    fn dot_z(&self, i: usize, p: &[f64]) -> f64 {
        let m = self.shape.m;
        let mut acc = self.mine[i].dot(&p[..m], &self.center);
        if let Some(a) = &self.along {
            acc += a.proj[i]
                .iter()
                .zip(&p[m..])
                .map(|(a, b)| a * b)
                .sum::<f64>();
        }
        acc
    }

    /// out += a · z_i
    fn add_z(&self, i: usize, a: f64, out: &mut [f64]) {
        let m = self.shape.m;
        self.mine[i].axpy(a, &mut out[..m], &self.center);
        if let Some(along) = &self.along {
            out[m..]
                .iter_mut()
                .zip(&along.proj[i])
                .for_each(|(o, c)| *o += a * c);
        }
    }

    fn logit_at(&self, i: usize, x: &[f64]) -> f64 {
        self.base[i] + self.dot_z(i, x)
    }

    /// The indices of the block's rows among the coordinates: the small
    /// part, then α (after β); γ, which is no coordinate, maps nowhere.
    fn block_index(&self, j: usize) -> Option<usize> {
        let k2 = self.shape.k + 2;
        if j < k2 {
            Some(j)
        } else if j < k2 + self.rank() {
            Some(self.shape.m + (j - k2))
        } else {
            None
        }
    }

    /// P·x for the prior's precision P (divided by n).
    fn prior_times(&self, x: &[f64]) -> Vec<f64> {
        let mut out = vec![0f64; x.len()];
        self.prior_times_into(x, &mut out);
        out
    }

    /// `prior_times` into `out` (inside the conjugate gradients, once per
    /// product: no allocation).
    fn prior_times_into(&self, x: &[f64], out: &mut [f64]) {
        let k2 = self.shape.k + 2;
        for ((o, a), p) in out.iter_mut().zip(x).zip(&self.prec) {
            *o = a * p;
        }
        let Some(along) = &self.along else {
            return;
        };
        let (a, w, m) = (&along.block, along.w, self.shape.m);
        out[..k2].iter_mut().for_each(|o| *o = 0.0);
        out[m..].iter_mut().for_each(|o| *o = 0.0);
        // y = [small.., α.., Vᵀβ..], the block's coordinates
        let mut y: Vec<f64> = (0..k2 + along.r)
            .map(|j| x[self.block_index(j).unwrap_or(j)])
            .collect();
        y.resize(w, 0.0);
        along
            .dirs_t
            .add_coords(x[k2..m].iter().copied(), &mut y[k2 + along.r..]);
        let mut t = vec![0f64; w];
        for i in 0..w {
            t[i] = (0..w).map(|j| a[i * w + j] * y[j]).sum();
        }
        for (i, ti) in t.iter().enumerate() {
            if let Some(at) = self.block_index(i) {
                out[at] += ti;
            }
        }
        for (row, ta) in along.dirs.chunks_exact(m - k2).zip(&t[k2 + along.r..]) {
            out[k2..m]
                .iter_mut()
                .zip(row)
                .for_each(|(o, v)| *o += ta * v);
        }
    }

    fn prior_diagonal(&self) -> Vec<f64> {
        let mut d = self.prec.clone();
        d.resize(self.width(), 0.0);
        if let Some(along) = &self.along {
            let (w, k2, dims) = (along.w, self.shape.k + 2, self.shape.m - self.shape.k - 2);
            for i in 0..w {
                if let Some(at) = self.block_index(i) {
                    d[at] = along.block[i * w + i];
                }
            }
            // β's share of V·Dγγ·Vᵀ's diagonal, for the preconditioner
            let c = k2 + along.r;
            let q = w - c;
            for (a, ra) in along.dirs.chunks_exact(dims).enumerate() {
                for (bb, rb) in along.dirs.chunks_exact(dims).enumerate().take(q) {
                    let g = along.block[(c + a) * w + c + bb];
                    for (j, (ua, ub)) in ra.iter().zip(rb).enumerate() {
                        d[k2 + j] += g * ua * ub;
                    }
                }
            }
        }
        d
    }

    /// The objective at x, for the line search.
    fn objective_x(&self, x: &[f64]) -> f64 {
        let n = self.shape.n;
        let mut o = 0.0;
        for (i, e) in self.mine.iter().enumerate() {
            o += log_loss64(self.logit_at(i, x), f64::from(e.y)) / n;
        }
        let px = self.prior_times(x);
        o + 0.5 * x.iter().zip(&px).map(|(a, b)| a * b).sum::<f64>()
    }

    /// The objective's gradient at θ (centred coordinates) and each
    /// event's Hessian weight p(1 − p)/n.
    fn gradient(&self, h: &Head, theta: &[f32]) -> (Vec<f64>, Vec<f64>) {
        let Shape { m, n, .. } = self.shape;
        let (mine, center, prec, theta0) = (&self.mine, &self.center, &self.prec, &self.theta0);
        let mut grad = vec![0f64; m];
        let mut w = Vec::with_capacity(mine.len());
        for e in mine {
            let p = f64::from(sigmoid(centred_logit(h, e)));
            e.axpy((p - f64::from(e.y)) / n, &mut grad, center);
            w.push((p * (1.0 - p)).max(1e-6) / n);
        }
        for i in 0..m {
            grad[i] += prec[i] * f64::from(theta[i] - theta0[i]);
        }
        (grad, w)
    }

    /// The Newton step without a taste: the dense (k+2)² system.
    fn dense_solve(&self, w: &[f64], grad: &mut [f64]) -> Option<Vec<f64>> {
        let m = self.shape.m;
        let mut hess = vec![0f64; m * m];
        let mut z = vec![0f64; m];
        for (e, &wi) in self.mine.iter().zip(w) {
            z.iter_mut().for_each(|v| *v = 0.0);
            e.axpy(1.0, &mut z, &[]);
            for i in 0..m {
                for j in 0..m {
                    hess[i * m + j] += wi * z[i] * z[j];
                }
            }
        }
        for i in 0..m {
            hess[i * m + i] += self.prec[i];
        }
        solve(&mut hess, grad, m)
    }

    /// The objective at θ (centred coordinates), for the line search.
    fn objective(&self, th: &[f32]) -> f64 {
        let Shape { m, n, .. } = self.shape;
        let th: Vec<f64> = th.iter().map(|&v| f64::from(v)).collect();
        let mut o = 0.0;
        for (e, off) in self.mine.iter().zip(&self.offsets) {
            let z = e.dot(&th, &self.center) + off + f64::from(e.o);
            o += log_loss64(z, f64::from(e.y)) / n;
        }
        for i in 0..m {
            o += 0.5 * self.prec[i] * (th[i] - f64::from(self.theta0[i])).powi(2);
        }
        o
    }

    /// θ − step·δ for the longest step (lr, lr/2, ..) that does not raise
    /// the objective, or None after 12 halvings.
    ///
    /// A full Newton step can overshoot where the events are (nearly)
    /// separable and the prior is weak; halve it until the objective does
    /// not rise. A tenant may trust text more or less than the global head
    /// does, but never invert it: a gain below zero would rank what the
    /// text says fits the user last. Sixteen events can ask for that by
    /// chance; the projection refuses it.
    fn line_search(&self, theta: &[f32], delta: &[f64], lr: f32) -> Option<Vec<f32>> {
        let base = self.objective(theta);
        let mut step = f64::from(lr);
        for _ in 0..12 {
            let mut next: Vec<f32> = theta
                .iter()
                .zip(delta)
                .map(|(p, d)| p - (step * d) as f32)
                .collect();
            next[0] = next[0].max(0.0);
            if self.objective(&next) <= base + 1e-12 {
                return Some(next);
            }
            step /= 2.0;
        }
        None
    }
}

/// To centred coordinates (`sign` = 1: c̃ = c + τ·v̄) and back (−1). A
/// no-op without a taste (`center` empty).
pub(super) fn recentre(th: &mut [f32], k: usize, center: &[f64], sign: f64) {
    let tv: f64 = th[k + 2..]
        .iter()
        .zip(center)
        .map(|(t, c)| f64::from(*t) * c)
        .sum();
    th[k + 1] = (f64::from(th[k + 1]) + sign * tv) as f32;
}
