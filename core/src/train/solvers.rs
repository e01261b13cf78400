//! The optimisers: damped Newton with conjugate gradients for the adapted
//! part, a small dense solve, plain gradient descent and Adam.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::head::{Example, Head};

#[cfg(test)]
use super::centred::Centred;
use super::config::SLICE;

/// `log_loss` in f64.
pub(super) fn log_loss64(z: f64, y: f64) -> f64 {
    z.max(0.0) - z * y + (-z.abs()).exp().ln_1p()
}

/// Solves (Σ w_i z_i z_iᵀ + diag(prec)) x = g by conjugate gradients,
/// preconditioned by the diagonal. The matrix is symmetric positive
/// definite (prec > 0), so this converges; it stops at a relative residual
/// of 1e-6 or after `m` iterations. None if it produced a non-finite value.
/// (Adaptation builds its products itself, `newton.rs`; the tests check
/// the solver on this plain form.)
#[cfg(test)]
pub(super) fn conjugate_gradient(
    exs: &[&Centred],
    w: &[f64],
    prec: &[f64],
    g: &[f64],
    center: &[f64],
    tick: &mut dyn FnMut(),
) -> Option<Vec<f64>> {
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
    let mut z = vec![0f64; g.len()];
    for (e, &wi) in exs.iter().zip(w) {
        z.iter_mut().for_each(|v| *v = 0.0);
        e.axpy(1.0, &mut z, center);
        for (d, zi) in diag.iter_mut().zip(&z) {
            *d += wi * zi * zi;
        }
    }
    conjugate_gradient_op(hv, &diag, g, exs.len() > SLICE, tick)
}

/// Solves H·x = g for a symmetric positive definite H given as `hv`
/// (out = H·p), preconditioned by its diagonal `diag`. `tick` runs every
/// 8 iterations, or every iteration when `heavy` (a pass over a large
/// support set per product).
pub(super) fn conjugate_gradient_op(
    hv: impl Fn(&[f64], &mut [f64]),
    diag: &[f64],
    g: &[f64],
    heavy: bool,
    tick: &mut dyn FnMut(),
) -> Option<Vec<f64>> {
    let m = g.len();
    let mut x = vec![0f64; m];
    let mut r = g.to_vec();
    let mut zr: Vec<f64> = r.iter().zip(diag).map(|(a, d)| a / d).collect();
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
        if it % 8 == 7 || heavy {
            tick();
        }
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Solves A·x = b for a small dense system (Gaussian elimination, partial
/// pivoting); None when singular.
pub(super) fn solve(a: &mut [f64], b: &mut [f64], m: usize) -> Option<Vec<f64>> {
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
pub(super) fn full_descent(
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
pub(super) struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
    lr: f32,
}

impl Adam {
    pub(super) fn new(n: usize, lr: f32) -> Self {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
            lr,
        }
    }
    pub(super) fn step(&mut self, params: &mut [f32], grad: &[f32]) {
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
