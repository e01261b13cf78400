//! The structured taste prior: where tenants' tastes tend to lie.
//!
//! A tenant's taste τ_b (one weight per embedding dimension) is a priori
//! N(τ_start, Σ_b) with Σ_b = U_b·Λ_b·U_bᵀ + s²·I: a few directions U_b
//! (orthonormal, learned across meta-train tenants by `train/taste_basis`)
//! along which tenants differ a lot, plus an isotropic part s² = 1/`taste`
//! of `Prior`. Measured on held-out users, the information in a taste lies
//! along a few directions spread over every coordinate; an isotropic prior
//! either lets all 384 coordinates move (noise) or none.
//!
//! Adaptation writes τ = τ_start + U·α + β with α ~ N(0, Λ) and
//! β ~ N(0, s²·I) independent: the sum has exactly the prior N(0, Σ), and
//! for any likelihood of τ alone the MAP of (α, β) gives the MAP of τ
//! (minimising ½αᵀΛ⁻¹α + ½|β|²/s² over U·α + β = τ is ½τᵀΣ⁻¹τ, the
//! Woodbury identity). So the r × r part is solved densely and the rest
//! keeps a diagonal, and no dims × dims matrix is ever formed.

use serde::{Deserialize, Serialize};

use crate::behaviour::NB;

/// The most directions a behaviour's basis may have: r·dims numbers per
/// behaviour are stored with the global head and read by every tenant.
pub const MAX_RANK: usize = 32;

/// The directions U_b and their prior variances Λ_b, per behaviour (rank 0:
/// that behaviour's taste has only the isotropic part).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TasteBasis {
    pub dims: usize,
    /// per behaviour: r_b rows of `dims` (row i = u_i, orthonormal)
    pub u: Vec<Vec<f32>>,
    /// per behaviour: r_b prior variances (per event-sum, like `Prior`)
    pub var: Vec<Vec<f32>>,
}

impl TasteBasis {
    pub fn empty(dims: usize) -> Self {
        TasteBasis {
            dims,
            u: vec![Vec::new(); NB],
            var: vec![Vec::new(); NB],
        }
    }

    pub fn rank(&self, b: usize) -> usize {
        self.var[b].len()
    }

    pub fn ranks(&self) -> [usize; NB] {
        std::array::from_fn(|b| self.rank(b))
    }

    pub fn is_empty(&self) -> bool {
        self.var.iter().all(Vec::is_empty)
    }

    /// Row i of behaviour b's U.
    pub fn row(&self, b: usize, i: usize) -> &[f32] {
        &self.u[b][i * self.dims..(i + 1) * self.dims]
    }

    /// Uᵀ·(v − c): an item's coordinates along behaviour b's directions.
    pub fn project(&self, b: usize, v: &[f32], c: &[f64]) -> Vec<f64> {
        project_rows(&self.u[b], self.dims, v, c)
    }

    /// out += U·α for behaviour b.
    pub fn lift_into(&self, b: usize, alpha: &[f64], out: &mut [f64]) {
        lift_rows(&self.u[b], self.dims, alpha, out)
    }

    /// The stored form: [r_0 .. r_{NB−1} | per behaviour: Λ_b, then U_b row
    /// by row]. The ranks are small integers, exact in f32.
    pub fn to_weights(&self) -> Vec<f32> {
        let mut w: Vec<f32> = (0..NB).map(|b| self.rank(b) as f32).collect();
        for b in 0..NB {
            w.extend_from_slice(&self.var[b]);
            w.extend_from_slice(&self.u[b]);
        }
        w
    }

    pub fn from_weights(dims: usize, w: &[f32]) -> Result<Self, String> {
        if w.len() < NB {
            return Err(format!("{} taste basis values, fewer than {NB}", w.len()));
        }
        let mut ranks = [0usize; NB];
        for (b, r) in ranks.iter_mut().enumerate() {
            let x = w[b];
            if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x as usize <= MAX_RANK) {
                return Err(format!(
                    "taste basis rank {x} is not a whole number from 0 to {MAX_RANK}"
                ));
            }
            *r = x as usize;
        }
        let want = NB + ranks.iter().map(|r| r * (dims + 1)).sum::<usize>();
        if w.len() != want {
            return Err(format!(
                "{} taste basis values, expected {want} for ranks {ranks:?} and {dims} dimensions",
                w.len()
            ));
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err("a taste basis value is NaN or infinite".into());
        }
        let mut basis = TasteBasis::empty(dims);
        let mut at = NB;
        for (b, &r) in ranks.iter().enumerate() {
            basis.var[b] = w[at..at + r].to_vec();
            at += r;
            basis.u[b] = w[at..at + r * dims].to_vec();
            at += r * dims;
            if basis.var[b].iter().any(|v| *v <= 0.0) {
                return Err("a taste basis variance is not a positive number".into());
            }
        }
        Ok(basis)
    }
}

/// Rᵀ·(v − c) for the rows of R (each `dims` long, stored one after
/// another): a vector's coordinates along a set of directions.
pub fn project_rows(rows: &[f32], dims: usize, v: &[f32], c: &[f64]) -> Vec<f64> {
    rows.chunks_exact(dims)
        .map(|row| {
            row.iter()
                .zip(v)
                .zip(c)
                .map(|((u, x), ci)| f64::from(*u) * (f64::from(*x) - ci))
                .sum()
        })
        .collect()
}

/// R·x for the rows of R (as `project_rows`), x in f64 and uncentred.
pub fn coords(rows: &[f32], dims: usize, x: &[f64]) -> Vec<f64> {
    rows.chunks_exact(dims)
        .map(|row| row.iter().zip(x).map(|(u, a)| f64::from(*u) * a).sum())
        .collect()
}

/// Rows of `dims` (q of them, R) laid out as Rᵀ: dims rows of q. R·x is
/// then an axpy per coordinate of x over Rᵀ's rows, which vectorises
/// where a dot product per row of R (a reduction) does not; what runs it
/// per event, per candidate or per conjugate-gradient step needs that.
pub struct Transposed {
    t: Vec<f64>,
    q: usize,
}

impl Transposed {
    pub fn new(rows: &[f32], dims: usize) -> Self {
        let q = rows.len() / dims.max(1);
        let t = (0..dims)
            .flat_map(|j| (0..q).map(move |a| f64::from(rows[a * dims + j])))
            .collect();
        Transposed { t, q }
    }

    /// out += R·x, x given coordinate by coordinate (out has q entries).
    pub fn add_coords(&self, x: impl IntoIterator<Item = f64>, out: &mut [f64]) {
        let q = self.q;
        for (j, xj) in x.into_iter().enumerate() {
            if xj != 0.0 {
                out.iter_mut()
                    .zip(&self.t[j * q..(j + 1) * q])
                    .for_each(|(o, v)| *o += xj * v);
            }
        }
    }
}

/// out += R·α for the rows of R (as `project_rows`).
pub fn lift_rows(rows: &[f32], dims: usize, alpha: &[f64], out: &mut [f64]) {
    for (row, a) in rows.chunks_exact(dims).zip(alpha) {
        for (o, u) in out.iter_mut().zip(row) {
            *o += a * f64::from(*u);
        }
    }
}

/// Lower-triangular L (row-major, n × n) with L·Lᵀ = A for a symmetric
/// positive definite A; None when A is not.
pub fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if !(d > 0.0 && d.is_finite()) {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// x with Lᵀ·x = z: for z standard normal, x ~ N(0, (L·Lᵀ)⁻¹), a draw
/// from the Gaussian whose precision A = L·Lᵀ factors.
pub fn solve_upper_t(l: &[f64], n: usize, z: &[f64]) -> Vec<f64> {
    let mut x = vec![0f64; n];
    for i in (0..n).rev() {
        let s: f64 = (i + 1..n).map(|k| l[k * n + i] * x[k]).sum();
        x[i] = (z[i] - s) / l[i * n + i];
    }
    x
}

/// y with L·y = a: aᵀ·(L·Lᵀ)⁻¹·a = ‖y‖², the variance along a of the
/// Gaussian whose precision L·Lᵀ factors.
pub fn solve_lower(l: &[f64], n: usize, a: &[f64]) -> Vec<f64> {
    let mut y = vec![0f64; n];
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[i * n + k] * y[k]).sum();
        y[i] = (a[i] - s) / l[i * n + i];
    }
    y
}

/// Eigenvalues and eigenvectors of a small symmetric matrix (cyclic
/// Jacobi), largest first; vectors are the returned rows.
pub fn symmetric_eigen(a: &[f64], n: usize) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut a = a.to_vec();
    let mut v = vec![0f64; n * n];
    for i in 0..n {
        v[i * n + i] = 1.0;
    }
    for _sweep in 0..60 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let scale: f64 = (0..n)
            .map(|i| a[i * n + i].powi(2))
            .sum::<f64>()
            .max(1e-300);
        if off <= 1e-24 * scale {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let sign = if theta >= 0.0 { 1.0 } else { -1.0 };
                let t = sign / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let vectors = order
        .iter()
        .map(|&i| (0..n).map(|k| v[k * n + i]).collect())
        .collect();
    (values, vectors)
}

/// The top `r` eigenpairs of S = (1/T)·Σ_t x_t·x_tᵀ for T vectors x_t of
/// length d, without forming the d × d matrix: subspace iteration with a
/// Rayleigh–Ritz step, `between` after every iteration.
pub fn top_eigen(
    xs: &[Vec<f64>],
    r: usize,
    seed: u64,
    between: &mut dyn FnMut(),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let pairs: Vec<(&[f64], &[f64])> = xs.iter().map(|x| (&x[..], &x[..])).collect();
    top_cross_eigen(&pairs, r, seed, between)
}

/// `top_eigen` of the symmetrised cross-moment S = (1/2T)·Σ_t (a_t·b_tᵀ +
/// b_t·a_tᵀ). With a_t and b_t two estimates of the same vector whose
/// errors are independent (a tenant's taste fitted on two halves of its
/// events), the errors cancel in expectation: S estimates the spread of
/// the vectors themselves, where a_t·a_tᵀ would add each estimate's noise.
/// S may then be indefinite; eigenvalues below 0 are reported as 0.
pub fn top_cross_eigen(
    pairs: &[(&[f64], &[f64])],
    r: usize,
    seed: u64,
    between: &mut dyn FnMut(),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let Some(d) = pairs.first().map(|(a, _)| a.len()) else {
        return (Vec::new(), Vec::new());
    };
    let r = r.min(d).min(pairs.len());
    if r == 0 {
        return (Vec::new(), Vec::new());
    }
    let t = pairs.len() as f64;
    let apply = |q: &[f64]| -> Vec<f64> {
        let mut out = vec![0f64; d];
        for (a, b) in pairs {
            let da: f64 = a.iter().zip(q).map(|(x, y)| x * y).sum::<f64>() / (2.0 * t);
            let db: f64 = b.iter().zip(q).map(|(x, y)| x * y).sum::<f64>() / (2.0 * t);
            out.iter_mut()
                .zip(a.iter().zip(b.iter()))
                .for_each(|(o, (x, y))| *o += db * x + da * y);
        }
        out
    };
    subspace_eigen(&apply, d, r, 40, seed, &[], between)
}

/// The top `r` eigenpairs of a symmetric positive semi-definite n × n
/// matrix (row-major), largest first: Jacobi when n is small, else
/// subspace iteration with a few extra vectors and a Rayleigh–Ritz step,
/// `between` after every iteration. What a posterior keeps of its
/// events needs the directions that carry most of their information,
/// not eigenvectors to many digits.
///
/// `start`: vectors the top ones are likely near (the directions an
/// update carries from the last one), iterated from instead of random
/// ones, so that a few iterations suffice.
pub fn top_eigen_dense(
    a: &[f64],
    n: usize,
    r: usize,
    seed: u64,
    start: &[Vec<f64>],
    between: &mut dyn FnMut(),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let r = r.min(n);
    if n <= 48 {
        let (mut vals, mut vecs) = symmetric_eigen(a, n);
        vals.truncate(r);
        vecs.truncate(r);
        return (vals.into_iter().map(|v| v.max(0.0)).collect(), vecs);
    }
    let p = (r + 6).min(n);
    // A·q as Σ_k q_k·(column k of A), A symmetric: an axpy per column,
    // which vectorises where a dot product per row (a reduction) does not
    let apply = |q: &[f64]| -> Vec<f64> {
        let mut out = vec![0f64; n];
        for (k, &qk) in q.iter().enumerate() {
            if qk != 0.0 {
                let col = &a[k * n..(k + 1) * n];
                out.iter_mut().zip(col).for_each(|(o, c)| *o += qk * c);
            }
        }
        out
    };
    let iterations = if start.is_empty() { 8 } else { 4 };
    let (mut values, mut vectors) = subspace_eigen(&apply, n, p, iterations, seed, start, between);
    values.truncate(r);
    vectors.truncate(r);
    (values, vectors)
}

/// The p leading eigenpairs of the symmetric operator `apply` on vectors
/// of length d: subspace iteration from a seeded random start, `between`
/// after every iteration, then a Rayleigh–Ritz step (the eigenpairs of
/// Qᵀ·S·Q rotate Q onto S's own). Largest first; values below 0 are
/// reported as 0. `start` replaces the first random vectors.
fn subspace_eigen(
    apply: &dyn Fn(&[f64]) -> Vec<f64>,
    d: usize,
    p: usize,
    iterations: usize,
    seed: u64,
    start: &[Vec<f64>],
    between: &mut dyn FnMut(),
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let mut rng = crate::rng::Rng::new(seed);
    let warm = start.len().min(p);
    let mut q: Vec<Vec<f64>> = start[..warm].to_vec();
    q.extend((warm..p).map(|_| (0..d).map(|_| crate::rng::normal(&mut rng)).collect()));
    orthonormalise(&mut q);
    for _ in 0..iterations {
        let mut y: Vec<Vec<f64>> = q.iter().map(|v| apply(v)).collect();
        orthonormalise(&mut y);
        q = y;
        between();
    }
    let sq: Vec<Vec<f64>> = q.iter().map(|v| apply(v)).collect();
    let mut small = vec![0f64; p * p];
    for i in 0..p {
        for j in 0..p {
            small[i * p + j] = q[i].iter().zip(&sq[j]).map(|(a, b)| a * b).sum();
        }
    }
    let (values, rot) = symmetric_eigen(&small, p);
    let vectors = rot
        .iter()
        .map(|c| {
            let mut v = vec![0f64; d];
            for (ci, qi) in c.iter().zip(&q) {
                v.iter_mut().zip(qi).for_each(|(o, a)| *o += ci * a);
            }
            v
        })
        .collect();
    (
        values.into_iter().map(|v: f64| v.max(0.0)).collect(),
        vectors,
    )
}

/// Modified Gram–Schmidt; a vector that collapses is replaced by zeros.
fn orthonormalise(vs: &mut [Vec<f64>]) {
    orthonormalise_above(vs, 1e-12);
}

/// `orthonormalise`, a vector collapsing when its norm is at most
/// `min_norm` once the earlier ones are taken out.
pub fn orthonormalise_above(vs: &mut [Vec<f64>], min_norm: f64) {
    for i in 0..vs.len() {
        for j in 0..i {
            let dot: f64 = vs[i].iter().zip(&vs[j]).map(|(a, b)| a * b).sum();
            let (head, tail) = vs.split_at_mut(i);
            tail[0]
                .iter_mut()
                .zip(&head[j])
                .for_each(|(a, b)| *a -= dot * b);
        }
        let norm = vs[i].iter().map(|a| a * a).sum::<f64>().sqrt();
        if norm > min_norm {
            vs[i].iter_mut().for_each(|a| *a /= norm);
        } else {
            vs[i].iter_mut().for_each(|a| *a = 0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basis_round_trips_and_refuses_bad_weights() {
        let mut b = TasteBasis::empty(3);
        b.var[1] = vec![2.0, 0.5];
        b.u[1] = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        let w = b.to_weights();
        assert_eq!(TasteBasis::from_weights(3, &w).unwrap(), b);
        assert!(TasteBasis::from_weights(3, &w[1..]).is_err());
        assert!(TasteBasis::from_weights(4, &w).is_err());
        let mut bad = w.clone();
        bad[1] = 1.5;
        assert!(TasteBasis::from_weights(3, &bad).is_err());
        let mut bad = w.clone();
        bad[NB] = -1.0; // a variance
        assert!(TasteBasis::from_weights(3, &bad).is_err());
        let mut bad = w;
        bad[NB + 3] = f32::NAN;
        assert!(TasteBasis::from_weights(3, &bad).is_err());
    }

    #[test]
    fn cholesky_draws_have_the_inverse_covariance() {
        let a = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let l = cholesky(&a, 3).unwrap();
        // L·Lᵀ = A
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| l[i * 3 + k] * l[j * 3 + k]).sum();
                assert!((s - a[i * 3 + j]).abs() < 1e-12);
            }
        }
        // A·x = L·(Lᵀx) = L·z for x from solve_upper_t
        let z = [0.3, -1.2, 0.7];
        let x = solve_upper_t(&l, 3, &z);
        for i in 0..3 {
            let lz: f64 = (0..3).map(|k| l[i * 3 + k] * z[k]).sum();
            let ax: f64 = (0..3).map(|k| a[i * 3 + k] * x[k]).sum();
            assert!((lz - ax).abs() < 1e-12);
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn top_eigen_finds_the_planted_directions() {
        // vectors = 3·a·e1 + 1·b·e2 + small noise in 6 dimensions
        let mut rng = crate::rng::Rng::new(5);
        let xs: Vec<Vec<f64>> = (0..400)
            .map(|_| {
                let (a, b) = (crate::rng::normal(&mut rng), crate::rng::normal(&mut rng));
                let mut x: Vec<f64> = (0..6)
                    .map(|_| 0.05 * crate::rng::normal(&mut rng))
                    .collect();
                x[1] += 3.0 * a;
                x[4] += b;
                x
            })
            .collect();
        let (vals, vecs) = top_eigen(&xs, 2, 1, &mut || {});
        assert!((vals[0] - 9.0).abs() < 1.5, "{vals:?}");
        assert!((vals[1] - 1.0).abs() < 0.3, "{vals:?}");
        assert!(vecs[0][1].abs() > 0.99 && vecs[1][4].abs() > 0.99);
        let dot: f64 = vecs[0].iter().zip(&vecs[1]).map(|(a, b)| a * b).sum();
        assert!(dot.abs() < 1e-9);
    }

    #[test]
    fn the_cross_moment_of_two_halves_cancels_their_noise() {
        // a_t, b_t: the same signal 2·s_t·e0, each with its own noise of
        // variance 1 in every coordinate; a_t·a_tᵀ would show the noise
        // as variance 1 everywhere, the cross-moment shows the signal only
        let mut rng = crate::rng::Rng::new(4);
        let mut n = || crate::rng::normal(&mut rng);
        let pairs: Vec<(Vec<f64>, Vec<f64>)> = (0..4000)
            .map(|_| {
                let s = 2.0 * n();
                let mut a: Vec<f64> = (0..5).map(|_| n()).collect();
                let mut b: Vec<f64> = (0..5).map(|_| n()).collect();
                a[0] += s;
                b[0] += s;
                (a, b)
            })
            .collect();
        let refs: Vec<(&[f64], &[f64])> = pairs.iter().map(|(a, b)| (&a[..], &b[..])).collect();
        let (vals, vecs) = top_cross_eigen(&refs, 2, 3, &mut || {});
        assert!((vals[0] - 4.0).abs() < 0.4, "{vals:?}");
        assert!(vals[1] < 0.2, "{vals:?}");
        assert!(vecs[0][0].abs() > 0.99);
        let own: Vec<Vec<f64>> = pairs.iter().map(|(a, _)| a.clone()).collect();
        let (vals, _) = top_eigen(&own, 2, 3, &mut || {});
        assert!(vals[1] > 0.8, "one fit's noise shows: {vals:?}");
    }

    #[test]
    fn subspace_iteration_finds_the_top_of_a_large_spectrum() {
        // A = Σ_i x_i·x_iᵀ over 300 random vectors of 100 dimensions with
        // decaying scales: its top 20 eigenvalues, and the energy their
        // vectors capture, against the full Jacobi decomposition
        let (n, t) = (100, 300);
        let mut rng = crate::rng::Rng::new(9);
        let mut a = vec![0f64; n * n];
        for _ in 0..t {
            let x: Vec<f64> = (0..n)
                .map(|j| crate::rng::normal(&mut rng) / (1.0 + j as f64 / 8.0))
                .collect();
            for i in 0..n {
                for j in 0..n {
                    a[i * n + j] += x[i] * x[j];
                }
            }
        }
        let (full, _) = symmetric_eigen(&a, n);
        let (top, vecs) = top_eigen_dense(&a, n, 20, 3, &[], &mut || {});
        assert_eq!(top.len(), 20);
        for (i, (x, y)) in top.iter().zip(&full).enumerate() {
            assert!((x / y - 1.0).abs() < 0.01, "{i}: {x} vs {y}");
        }
        // each vector is unit and its Rayleigh quotient is its value
        for (v, l) in vecs.iter().zip(&top) {
            let norm: f64 = v.iter().map(|x| x * x).sum();
            let av: f64 = (0..n)
                .map(|i| v[i] * (0..n).map(|j| a[i * n + j] * v[j]).sum::<f64>())
                .sum();
            assert!((norm - 1.0).abs() < 1e-9 && (av / l - 1.0).abs() < 0.01);
        }
    }

    #[test]
    fn jacobi_diagonalises() {
        let a = [2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0];
        let (vals, vecs) = symmetric_eigen(&a, 3);
        assert!((vals[0] - 5.0).abs() < 1e-12 && (vals[1] - 3.0).abs() < 1e-12);
        assert!((vals[2] - 1.0).abs() < 1e-12);
        for (l, v) in vals.iter().zip(&vecs) {
            for i in 0..3 {
                let av: f64 = (0..3).map(|k| a[i * 3 + k] * v[k]).sum();
                assert!((av - l * v[i]).abs() < 1e-10);
            }
        }
    }
}
