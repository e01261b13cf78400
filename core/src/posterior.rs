//! Stage 5b: how sure a head is of a tenant's adapted part — the Laplace
//! posterior that Thompson sampling draws from. Pure Rust, no Postgres.
//!
//! Adaptation is a MAP estimate under a Gaussian prior (train/), so the
//! posterior is approximated by a Gaussian at that estimate whose precision
//! is the Hessian of the negative log posterior. We keep its diagonal only
//! (Chapelle & Li, "An empirical evaluation of Thompson sampling", 2011,
//! algorithm 3): k+2+dims numbers per behaviour instead of a dense
//! (k+2+dims)² matrix per stored version, and the same diagonal serves as
//! the next update's prior when `ecom_learn` continues from this version.
//!
//! Coordinates are the centred ones adaptation uses: the taste weighs
//! v − v̄ (v̄ = `center`, the mean item of the events it was fitted on) and
//! the bias absorbs τ·v̄, so the bias's uncertainty is the level's, not the
//! level's plus every taste weight's.

use crate::head::{Head, NB};
use crate::prior::Prior;
use crate::rng::{normal, Rng};
use crate::taste::{cholesky, coords, lift_rows, solve_upper_t, TasteBasis};

/// The most directions of β a posterior may keep the events' information
/// along, per behaviour: q·dims numbers per behaviour and stored version,
/// and a block of k + 2 + r + q rows that every Thompson draw factors.
pub const DATA_RANK: usize = 128;

/// How many it keeps unless told otherwise (`pg_ecom.posterior_directions`).
pub const DEFAULT_DIRECTIONS: usize = 32;

#[derive(Clone, Debug, PartialEq)]
pub struct Posterior {
    pub k: usize,
    pub dims: usize,
    /// per behaviour: precisions of [gain, side.., bias (centred), taste..]
    pub precision: Vec<f32>,
    /// per behaviour: the centre v̄ of the taste coordinates
    pub center: Vec<f32>,
    /// With a taste basis (taste.rs), per behaviour: the dense precision
    /// of [gain, side.., bias, α_1..α_r] ((k+2+r_b)², row-major). It
    /// replaces the diagonal's first k+2 entries (kept equal to its
    /// diagonal), and the diagonal's taste entries are then those of β,
    /// the isotropic part. Empty: the diagonal alone (heads before 0.6.0).
    /// Dense because the few directions of U carry most of what a tenant's
    /// events say, and a diagonal carried from one update to the next
    /// forgets how they trade off against the gain and the bias.
    pub block: Vec<Vec<f32>>,
    /// With a block (0.8.0 on), per behaviour: the directions of β that
    /// the tenant's events informed, q_b orthonormal rows of `dims`
    /// (train/directions.rs). The block then covers [gain, side.., bias,
    /// α.., γ..] for γ = Vᵀβ, and β's diagonal entries hold its isotropic
    /// prior precision alone, equal in every coordinate: along V the block
    /// has it, across V nothing was learned. None: the form before 0.8.0,
    /// where β's events were counted on the diagonal, which knows nothing
    /// of the few directions the items a tenant sees lie along, so after
    /// 1,500 impressions it was still almost as unsure as the prior.
    pub directions: Option<Vec<Vec<f32>>>,
}

impl Posterior {
    /// Parameters adapted per behaviour: gain, side weights, bias, taste.
    pub fn width(k: usize, dims: usize) -> usize {
        k + 2 + dims
    }

    /// What is known before any of the tenant's events: the prior itself
    /// (the meta-learned precisions of each group), centred at 0.
    pub fn from_prior(prior: &Prior, k: usize, dims: usize) -> Self {
        Self::from_prior_in(prior, k, dims, None)
    }

    /// `from_prior` for a head with a taste basis: the block's α entries
    /// are the inverse prior variances of its directions.
    pub fn from_prior_in(prior: &Prior, k: usize, dims: usize, basis: Option<&TasteBasis>) -> Self {
        let m = Self::width(k, dims);
        let mut one = vec![prior.side; m];
        one[0] = prior.gain;
        one[k + 1] = prior.bias;
        one[k + 2..].iter_mut().for_each(|p| *p = prior.taste);
        let block: Vec<Vec<f32>> = basis
            .map(|basis| {
                (0..NB)
                    .map(|b| {
                        let w = k + 2 + basis.rank(b);
                        let mut a = vec![0f32; w * w];
                        for i in 0..k + 2 {
                            a[i * w + i] = one[i];
                        }
                        for (i, v) in basis.var[b].iter().enumerate() {
                            a[(k + 2 + i) * w + k + 2 + i] = 1.0 / v;
                        }
                        a
                    })
                    .collect()
            })
            .unwrap_or_default();
        Posterior {
            k,
            dims,
            precision: one.repeat(NB),
            center: vec![0.0; NB * dims],
            directions: (!block.is_empty()).then(|| vec![Vec::new(); NB]),
            block,
        }
    }

    /// What it holds in memory, about: its numbers.
    pub fn bytes(&self) -> usize {
        let blocks: usize = self.block.iter().map(Vec::len).sum();
        let dirs: usize = self.directions.iter().flatten().map(Vec::len).sum();
        4 * (self.precision.len() + self.center.len() + blocks + dirs)
    }

    /// Behaviour b's directions of β, rows of `dims` (empty: none).
    pub fn dirs(&self, b: usize) -> &[f32] {
        self.directions.as_ref().map_or(&[], |d| &d[b])
    }

    /// How many directions of β behaviour b's block covers.
    pub fn data_rank(&self, b: usize) -> usize {
        self.dirs(b).len() / self.dims.max(1)
    }

    /// This posterior in the form with directions: a posterior of the
    /// form before 0.8.0 keeps its block, and its β diagonal becomes its
    /// smallest entry in every coordinate (what the prior gave every
    /// coordinate, plus what the events gave the least informed one). A
    /// posterior without a block, or already in this form, is unchanged.
    pub fn with_directions(mut self) -> Self {
        if self.block.is_empty() || self.directions.is_some() {
            return self;
        }
        let (k, m) = (self.k, Self::width(self.k, self.dims));
        for b in 0..NB {
            let taste = &mut self.precision[b * m + k + 2..(b + 1) * m];
            let least = taste.iter().copied().fold(f32::INFINITY, f32::min);
            taste.iter_mut().for_each(|p| *p = least);
        }
        self.directions = Some(vec![Vec::new(); NB]);
        self
    }

    /// The stored form: [precision of every behaviour | centre of every
    /// behaviour | (with directions) q_0 .. q_{NB−1} | (with a basis)
    /// block of every behaviour | (with directions) V of every behaviour].
    /// The form before 0.8.0 has no q's and no V's; its length tells it
    /// apart, since the q's alone add NB numbers.
    pub fn to_weights(&self) -> Vec<f32> {
        let mut w = self.precision.clone();
        w.extend_from_slice(&self.center);
        if self.directions.is_some() {
            w.extend((0..NB).map(|b| self.data_rank(b) as f32));
        }
        for b in &self.block {
            w.extend_from_slice(b);
        }
        for d in self.directions.iter().flatten() {
            w.extend_from_slice(d);
        }
        w
    }

    /// The stored form back; `ranks` are the basis's (None: the head has
    /// no basis, and the stored form no blocks).
    pub fn from_weights(
        k: usize,
        dims: usize,
        w: &[f32],
        ranks: Option<[usize; NB]>,
    ) -> Result<Self, String> {
        let m = Self::width(k, dims);
        let base = NB * (m + dims);
        let blocks = |q: [usize; NB]| -> Vec<usize> {
            ranks
                .map(|r| (0..NB).map(|b| k + 2 + r[b] + q[b]).collect())
                .unwrap_or_default()
        };
        let old = base + blocks([0; NB]).iter().map(|w| w * w).sum::<usize>();
        // the form with directions: NB ranks after the centres
        let q = match ranks.is_some() && w.len() != old && w.len() >= base + NB {
            true => Some(data_ranks(&w[base..base + NB])?),
            false => None,
        };
        let widths = blocks(q.unwrap_or([0; NB]));
        let head = base + if q.is_some() { NB } else { 0 };
        let dirs_len = q.map_or(0, |q| q.iter().sum::<usize>() * dims);
        let want = head + widths.iter().map(|w| w * w).sum::<usize>() + dirs_len;
        if w.len() != want {
            return Err(format!(
                "{} posterior values, expected {old} (or, with directions of the taste, {}) for {dims} dimensions, {k} side feature(s) and taste ranks {ranks:?}",
                w.len(),
                old + NB,
            ));
        }
        if w[..NB * m].iter().any(|p| !p.is_finite() || *p <= 0.0) {
            return Err("a posterior precision is not a positive number".into());
        }
        if w[NB * m..].iter().any(|c| !c.is_finite()) {
            return Err("a posterior centre or block value is NaN or infinite".into());
        }
        let mut at = head;
        let mut block = Vec::new();
        for width in widths {
            let a = w[at..at + width * width].to_vec();
            at += width * width;
            let a64: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
            if cholesky(&a64, width).is_none() {
                return Err("a posterior block is not positive definite".into());
            }
            block.push(a);
        }
        let directions = q.map(|q| {
            q.iter()
                .map(|&qb| {
                    let d = w[at..at + qb * dims].to_vec();
                    at += qb * dims;
                    d
                })
                .collect::<Vec<_>>()
        });
        if let Some(d) = &directions {
            if d.iter().any(|rows| !orthonormal(rows, dims)) {
                return Err("posterior directions are not orthonormal".into());
            }
            for b in 0..NB {
                let taste = &w[b * m + k + 2..(b + 1) * m];
                if taste.iter().any(|p| *p != taste[0]) {
                    return Err("a posterior with directions has unequal taste precisions".into());
                }
            }
        }
        Ok(Posterior {
            k,
            dims,
            precision: w[..NB * m].to_vec(),
            center: w[NB * m..base].to_vec(),
            block,
            directions,
        })
    }

    /// Behaviour b's dense block and its width, if the head has a basis.
    pub fn block(&self, b: usize) -> Option<(&[f32], usize)> {
        let a = self.block.get(b)?;
        let w = (a.len() as f64).sqrt().round() as usize;
        Some((a, w))
    }

    /// The Cholesky factor of behaviour b's block (f64), for exact draws.
    pub fn block_factor(&self, b: usize) -> Option<(Vec<f64>, usize)> {
        let (a, w) = self.block(b)?;
        let a: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
        Some((cholesky(&a, w)?, w))
    }

    pub fn precision(&self, b: usize) -> &[f32] {
        let m = Self::width(self.k, self.dims);
        &self.precision[b * m..(b + 1) * m]
    }

    pub fn center(&self, b: usize) -> &[f32] {
        &self.center[b * self.dims..(b + 1) * self.dims]
    }

    /// One draw of behaviour b's adapted part [gain, side.., bias, taste..]
    /// around `head`'s (the posterior mean), in the head's own (uncentred)
    /// coordinates. The gain is kept ≥ 0, as adaptation keeps it: a draw
    /// that inverts the text score would rank what the text says fits last.
    pub fn sample(&self, head: &Head, b: usize, rng: &mut Rng) -> Vec<f32> {
        let k = self.k;
        let c = self.center(b);
        let mut th = head.adapted(b);
        // to centred coordinates: c̃ = c + τ·v̄
        let tv: f64 = th[k + 2..]
            .iter()
            .zip(c)
            .map(|(t, x)| f64::from(*t) * f64::from(*x))
            .sum();
        th[k + 1] += tv as f32;
        match (self.block_factor(b), head.basis.as_deref()) {
            (Some((l, w)), Some(basis)) => {
                // [gain, side.., bias, α, γ] jointly from the block; β, the
                // isotropic part, coordinate by coordinate, then (with
                // directions) without its part along V, which γ drew
                let z: Vec<f64> = (0..w).map(|_| normal(rng)).collect();
                let x = solve_upper_t(&l, w, &z);
                let r = basis.rank(b);
                let prec = &self.precision(b)[k + 2..];
                let mut beta: Vec<f64> = prec
                    .iter()
                    .map(|p| normal(rng) / f64::from(*p).sqrt())
                    .collect();
                let dirs = self.dirs(b);
                if !dirs.is_empty() {
                    let minus: Vec<f64> =
                        coords(dirs, self.dims, &beta).iter().map(|c| -c).collect();
                    lift_rows(dirs, self.dims, &minus, &mut beta);
                    lift_rows(dirs, self.dims, &x[k + 2 + r..], &mut beta);
                }
                basis.lift_into(b, &x[k + 2..k + 2 + r], &mut beta);
                for (t, d) in th[..k + 2].iter_mut().zip(&x) {
                    *t += *d as f32;
                }
                for (t, d) in th[k + 2..].iter_mut().zip(&beta) {
                    *t += *d as f32;
                }
            }
            _ => {
                for (t, p) in th.iter_mut().zip(self.precision(b)) {
                    *t += (normal(rng) / f64::from(*p).sqrt()) as f32;
                }
            }
        }
        let tv: f64 = th[k + 2..]
            .iter()
            .zip(c)
            .map(|(t, x)| f64::from(*t) * f64::from(*x))
            .sum();
        th[k + 1] -= tv as f32;
        th[0] = th[0].max(0.0);
        th
    }
}

/// Whether rows of `dims` are orthonormal, to what f32 storage keeps.
fn orthonormal(rows: &[f32], dims: usize) -> bool {
    let rows: Vec<&[f32]> = rows.chunks_exact(dims).collect();
    rows.iter().enumerate().all(|(i, a)| {
        rows[..=i].iter().enumerate().all(|(j, c)| {
            let dot: f64 = a
                .iter()
                .zip(*c)
                .map(|(x, y)| f64::from(*x) * f64::from(*y))
                .sum();
            (dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-3
        })
    })
}

/// The q's of the stored form with directions, checked.
fn data_ranks(w: &[f32]) -> Result<[usize; NB], String> {
    let mut q = [0usize; NB];
    for (qb, &x) in q.iter_mut().zip(w) {
        if !(x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x as usize <= DATA_RANK) {
            return Err(format!(
                "posterior direction count {x} is not a whole number from 0 to {DATA_RANK}"
            ));
        }
        *qb = x as usize;
    }
    Ok(q)
}

/// The logit of an adapted part θ = [gain, side.., bias, taste..] for an
/// item with text score `s` (W·x), embedding `v` and side features `f`.
pub fn logit_of(theta: &[f32], s: f32, v: &[f32], f: &[f32]) -> f64 {
    let k = f.len();
    let mut z = f64::from(theta[0]) * f64::from(s) + f64::from(theta[k + 1]);
    for (a, x) in theta[1..=k].iter().zip(f) {
        z += f64::from(*a) * f64::from(*x);
    }
    let tv: f32 = theta[k + 2..].iter().zip(v).map(|(t, x)| t * x).sum();
    z + f64::from(tv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_round_trip_and_bad_lengths_are_refused() {
        let p = Posterior::from_prior(&Prior::default(), 2, 3);
        let back = Posterior::from_weights(2, 3, &p.to_weights(), None).unwrap();
        assert_eq!(p, back);
        assert!(Posterior::from_weights(2, 3, &p.to_weights()[1..], None).is_err());
        let mut w = p.to_weights();
        w[0] = 0.0;
        assert!(Posterior::from_weights(2, 3, &w, None).is_err());
        // with a basis: the blocks follow, sized by the ranks
        let mut basis = TasteBasis::empty(3);
        basis.var[2] = vec![0.5];
        basis.u[2] = vec![0.0, 1.0, 0.0];
        let p = Posterior::from_prior_in(&Prior::default(), 2, 3, Some(&basis));
        let ranks = Some(basis.ranks());
        let back = Posterior::from_weights(2, 3, &p.to_weights(), ranks).unwrap();
        assert_eq!(p, back);
        assert_eq!(back.block(2).unwrap().1, 5);
        assert!(Posterior::from_weights(2, 3, &p.to_weights(), None).is_err());
        let mut w = p.to_weights();
        let n = w.len();
        w[n - 1] = -1.0; // the last block's α precision
        assert!(Posterior::from_weights(2, 3, &w, ranks).is_err());
    }

    /// A posterior with directions of β for behaviour 2: its block is one
    /// row wider, and V follows the blocks.
    fn with_one_direction(basis: &TasteBasis) -> Posterior {
        let mut p = Posterior::from_prior_in(&Prior::default(), 2, 3, Some(basis));
        let w = 2 + 2 + basis.rank(2) + 1;
        let mut a = vec![0f32; w * w];
        for i in 0..w {
            a[i * w + i] = 2.0 + i as f32;
        }
        a[w - 1] = 0.5; // a cross term of the gain with γ
        a[(w - 1) * w] = 0.5;
        p.block[2] = a;
        p.directions.as_mut().unwrap()[2] = vec![0.6, 0.0, 0.8];
        p
    }

    #[test]
    fn the_form_with_directions_round_trips_and_the_old_form_still_reads() {
        let mut basis = TasteBasis::empty(3);
        basis.var[2] = vec![0.5];
        basis.u[2] = vec![0.0, 1.0, 0.0];
        let ranks = Some(basis.ranks());
        let p = with_one_direction(&basis);
        let w = p.to_weights();
        assert_eq!(Posterior::from_weights(2, 3, &w, ranks).unwrap(), p);
        // the form before 0.8.0: no q's, no V's, β's events on the diagonal
        let mut old = Posterior::from_prior_in(&Prior::default(), 2, 3, Some(&basis));
        old.directions = None;
        let m = Posterior::width(2, 3);
        old.precision[2 * m + 4..3 * m].copy_from_slice(&[3.0, 5.0, 4.0]);
        let back = Posterior::from_weights(2, 3, &old.to_weights(), ranks).unwrap();
        assert_eq!(back, old);
        // read, it is carried into the new form at its least informed β
        let new = back.with_directions();
        assert_eq!(&new.precision(2)[4..], &[3.0, 3.0, 3.0]);
        assert_eq!(new.data_rank(2), 0);
        let again = Posterior::from_weights(2, 3, &new.to_weights(), ranks).unwrap();
        assert_eq!(again, new);
        // a q that is no whole number in range, or unequal β precisions
        let at = Posterior::width(2, 3) * NB + 3 * NB;
        for bad in [1.5, -1.0, (DATA_RANK + 1) as f32] {
            let mut x = w.clone();
            x[at + 2] = bad;
            assert!(Posterior::from_weights(2, 3, &x, ranks).is_err(), "{bad}");
        }
        let mut x = w.clone();
        x[2 * m + 4] = 7.0;
        assert!(Posterior::from_weights(2, 3, &x, ranks).is_err());
        // a direction that is not a unit vector
        let mut x = w.clone();
        let n = x.len();
        x[n - 1] = 0.9;
        assert!(Posterior::from_weights(2, 3, &x, ranks).is_err());
        assert!(Posterior::from_weights(2, 3, &w[..w.len() - 1], ranks).is_err());
    }

    #[test]
    fn draws_along_the_directions_come_from_the_block() {
        // the taste's variance along V is the block's γ entry; across V it
        // is β's isotropic prior
        let mut basis = TasteBasis::empty(3);
        basis.var[2] = vec![0.5];
        basis.u[2] = vec![0.0, 1.0, 0.0];
        let p = with_one_direction(&basis);
        let mut head = Head::new(3, 2);
        head.basis = Some(std::sync::Arc::new(basis));
        let mut a = head.adapted(2);
        a[0] = 50.0; // far from the gain's bound
        head.set_adapted(2, &a);
        let w = 6;
        let l = p.block_factor(2).unwrap().0;
        let mut e = vec![0f64; w];
        e[w - 1] = 1.0;
        let want_along: f64 = crate::taste::solve_lower(&l, w, &e)
            .iter()
            .map(|y| y * y)
            .sum();
        let want_across = 1.0 / f64::from(p.precision(2)[4]);
        let mut rng = Rng::new(2);
        let (mut along, mut across) = (0.0, 0.0);
        let t = 40_000;
        for _ in 0..t {
            let th = p.sample(&head, 2, &mut rng);
            let d: Vec<f64> = (0..3).map(|j| f64::from(th[4 + j] - a[4 + j])).collect();
            along += (0.6 * d[0] + 0.8 * d[2]).powi(2) / f64::from(t);
            across += (0.8 * d[0] - 0.6 * d[2]).powi(2) / f64::from(t);
        }
        assert!(
            (along / want_along - 1.0).abs() < 0.05,
            "{along} vs {want_along}"
        );
        assert!(
            (across / want_across - 1.0).abs() < 0.05,
            "{across} vs {want_across}"
        );
    }

    #[test]
    fn draws_have_the_posterior_mean_and_variance() {
        let (k, dims) = (1, 4);
        let mut head = Head::new(dims, k);
        let mut a = head.adapted(1);
        a[0] = 0.8; // gain
        a[1] = -0.5; // side
        a[2] = 0.3; // bias
        a[3] = 1.0; // taste[0]
        head.set_adapted(1, &a);
        let mut post = Posterior::from_prior(&Prior::default(), k, dims);
        let m = Posterior::width(k, dims);
        // behaviour 1: variance 1/4 on every parameter, centre 0
        post.precision[m..2 * m].iter_mut().for_each(|p| *p = 4.0);
        let mut rng = Rng::new(7);
        let n = 20_000;
        let (mut mean, mut sq) = (vec![0f64; m], vec![0f64; m]);
        for _ in 0..n {
            let d = post.sample(&head, 1, &mut rng);
            for i in 0..m {
                mean[i] += f64::from(d[i]) / n as f64;
                sq[i] += f64::from(d[i]).powi(2) / n as f64;
            }
        }
        for i in 1..m {
            let var = sq[i] - mean[i].powi(2);
            assert!((mean[i] - f64::from(a[i])).abs() < 0.02, "{i}: {mean:?}");
            assert!((var - 0.25).abs() < 0.02, "{i}: var {var}");
        }
        // the gain is projected at 0: its mean moves up, never below 0
        assert!(mean[0] >= f64::from(a[0]) - 0.02);
    }

    #[test]
    fn a_centred_draw_moves_the_bias_with_the_taste() {
        // with centre v̄, the logit of the mean item v̄ varies only by the
        // bias's own variance, whatever the taste's
        let (k, dims) = (0, 3);
        let head = Head::new(dims, k);
        let mut post = Posterior::from_prior(&Prior::default(), k, dims);
        let m = Posterior::width(k, dims);
        post.precision[..m].copy_from_slice(&[1e6, 1e6, 0.01, 0.01, 0.01]);
        post.center[..dims].copy_from_slice(&[1.0, 2.0, -1.0]);
        let mut rng = Rng::new(3);
        let vbar = [1.0f32, 2.0, -1.0];
        let mut sq = 0.0;
        for _ in 0..2000 {
            let d = post.sample(&head, 0, &mut rng);
            sq += logit_of(&d, 0.0, &vbar, &[]).powi(2) / 2000.0;
        }
        // 1/precision = 1e-6 for the bias: the mean item's logit stays put
        assert!(sq < 1e-4, "{sq}");
    }

    #[test]
    fn normals_are_standard() {
        let mut rng = Rng::new(11);
        let n = 50_000;
        let xs: Vec<f64> = (0..n).map(|_| normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }
}
