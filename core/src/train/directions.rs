//! What a posterior keeps of its events' information about β, the
//! isotropic part of the taste: the few directions V of the embedding
//! space that the events informed most, and the precision along them in
//! the dense block (posterior.rs).
//!
//! The Hessian of a tenant's log-loss in β is Σ p(1 − p)·u·uᵀ over its
//! events (u = v − v̄): the items a tenant is shown lie along a few
//! directions, so this matrix has a few large eigenvalues and many tiny
//! ones. Its diagonal, which the form before 0.8.0 kept, spreads those few
//! large ones over all 384 coordinates: after 1,500 MovieLens impressions
//! the precision per coordinate had grown from 3 to 3.6, while along the
//! directions the items lie it had grown a hundredfold. So the credible
//! intervals were far too wide (98.5–99.8% coverage at 90%), Thompson
//! kept exploring what was known, and a second update forgot how the
//! first's directions traded off against the gain and the bias.
//!
//! Each update keeps the top q ≤ `pg_ecom.posterior_directions` (default
//! 32, at most `DATA_RANK`) eigen-directions of the
//! previous posterior's data part plus the new events', and carries the
//! previous block onto them (the part of its information across the new
//! directions, which the smallest eigenvalues carry, is dropped).

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use crate::posterior::{Posterior, DATA_RANK};
use crate::prior::FROZEN;
use crate::taste::{coords, orthonormalise_above, top_eigen_dense, TasteBasis, Transposed};

use super::centred::Centred;
use super::config::SLICE;

/// A direction is kept when the events' precision along it is at least
/// this share of β's prior precision: below, the posterior along it is
/// within 1% of the prior, and keeping it costs a row of the block.
const KEEP: f64 = 0.01;

/// At most this many events choose the directions (`choose`).
const CHOOSE_EVENTS: usize = 512;

/// G = X·Xᵀ for the rows x_i of X (all of one length), with the inner loop
/// an axpy over X's columns so that it vectorises: row i of G is
/// Σ_k x_ik·(column k of X), for the columns up to i.
fn gram(rows: &[Vec<f64>], between: &mut dyn FnMut()) -> Vec<f64> {
    let t = rows.len();
    let d = rows.first().map_or(0, Vec::len);
    let cols: Vec<f64> = (0..d)
        .flat_map(|k| rows.iter().map(move |x| x[k]))
        .collect();
    let mut g = vec![0f64; t * t];
    for i in 0..t {
        let gi = &mut g[i * t..i * t + i + 1];
        for (k, &a) in rows[i].iter().enumerate() {
            if a != 0.0 {
                let col = &cols[k * t..k * t + i + 1];
                gi.iter_mut().zip(col).for_each(|(o, c)| *o += a * c);
            }
        }
        if i % 64 == 63 {
            between();
        }
    }
    for i in 0..t {
        for j in 0..i {
            g[j * t + i] = g[i * t + j];
        }
    }
    g
}

/// One behaviour's events as the posterior counts them.
pub(super) struct Counted<'a, 'e> {
    pub(super) mine: &'a [&'a Centred<'e>],
    /// each event's p(1 − p) at the estimate
    pub(super) weights: &'a [f64],
    /// the centre v̄ of the taste coordinates
    pub(super) center: &'a [f64],
}

/// Behaviour b's block and at most `cap` directions after `events`,
/// continuing from `start` (in the form with directions). Returns the
/// block (row-major, (k + 2 + r + q)²) and V (q rows of dims).
pub(super) fn informed_block(
    start: &Posterior,
    b: usize,
    basis: &TasteBasis,
    events: &Counted,
    cap: usize,
    between: &mut dyn FnMut(),
) -> (Vec<f64>, Vec<f32>) {
    let Counted {
        mine,
        weights,
        center,
    } = *events;
    let (k, dims) = (start.k, start.dims);
    let r = basis.rank(b);
    let c = k + 2 + r;
    let iso = f64::from(start.precision(b)[k + 2]);
    let old_dirs = start.dirs(b);
    let q_old = start.data_rank(b);
    let (a, w_old) = start
        .block(b)
        .expect("a posterior with a basis has a block");
    let old: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
    // the old block's data part along its directions: γγ less the prior
    let mut data_old = vec![0f64; q_old * q_old];
    for i in 0..q_old {
        for j in 0..q_old {
            data_old[i * q_old + j] = old[(c + i) * w_old + c + j];
        }
        data_old[i * q_old + i] -= iso;
    }
    let dirs = if iso < f64::from(FROZEN) && cap > 0 {
        choose(old_dirs, &data_old, q_old, events, dims, iso, cap, between)
    } else {
        Vec::new()
    };
    let q = dirs.len() / dims.max(1);
    // R = V_new·V_oldᵀ carries the old block onto the new directions
    let mut rot = vec![0f64; q * q_old];
    for i in 0..q {
        let vi: Vec<f64> = dirs[i * dims..(i + 1) * dims]
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        let along = coords(old_dirs, dims, &vi);
        rot[i * q_old..(i + 1) * q_old].copy_from_slice(&along);
    }
    let w = c + q;
    let mut block = vec![0f64; w * w];
    for i in 0..c {
        for j in 0..c {
            block[i * w + j] = old[i * w_old + j];
        }
        for a in 0..q {
            let x: f64 = (0..q_old)
                .map(|l| old[i * w_old + c + l] * rot[a * q_old + l])
                .sum();
            block[i * w + c + a] = x;
            block[(c + a) * w + i] = x;
        }
    }
    // R·D·Rᵀ in two products: (R·D) first
    let mut rd = vec![0f64; q * q_old];
    for a in 0..q {
        for l in 0..q_old {
            let x = rot[a * q_old + l];
            if x != 0.0 {
                let row = &data_old[l * q_old..(l + 1) * q_old];
                rd[a * q_old..(a + 1) * q_old]
                    .iter_mut()
                    .zip(row)
                    .for_each(|(o, d)| *o += x * d);
            }
        }
    }
    for a in 0..q {
        for bb in 0..q {
            let x: f64 = rd[a * q_old..(a + 1) * q_old]
                .iter()
                .zip(&rot[bb * q_old..(bb + 1) * q_old])
                .map(|(x, y)| x * y)
                .sum();
            block[(c + a) * w + c + bb] = x;
        }
        block[(c + a) * w + c + a] += iso;
    }
    // the events, along every coordinate the block covers
    let vt = Transposed::new(&dirs, dims);
    let mut z = Vec::with_capacity(w);
    for (n, (e, &wt)) in mine.iter().zip(weights).enumerate() {
        z.clear();
        z.push(f64::from(e.s));
        z.extend(e.f.iter().map(|f| f64::from(*f)));
        z.push(1.0);
        z.extend(basis.project(b, e.v, center));
        z.resize(w, 0.0);
        let u = e.v.iter().zip(center).map(|(x, cj)| f64::from(*x) - cj);
        vt.add_coords(u, &mut z[c..]);
        for i in 0..w {
            let a = wt * z[i];
            for j in 0..w {
                block[i * w + j] += a * z[j];
            }
        }
        if n % SLICE == SLICE - 1 {
            between();
        }
    }
    (block, dirs)
}

/// The directions V: the top eigenvectors of the data part of β's
/// precision, old (V_oldᵀ·D·V_old) and new (Σ p(1 − p)·u·uᵀ), as rows of
/// `dims`. Works on the smaller of the two Gram matrices: X·Xᵀ for fewer
/// rows than dimensions (a first adaptation on a few dozen events), else
/// Xᵀ·X. Beyond `CHOOSE_EVENTS` events a seeded random share of them
/// (weights scaled up to stand for the rest) chooses: which directions
/// carry the most is clear long before 10,000 events, and the block then
/// counts every event along them exactly.
#[allow(clippy::too_many_arguments)]
fn choose(
    old_dirs: &[f32],
    data_old: &[f64],
    q_old: usize,
    events: &Counted,
    dims: usize,
    iso: f64,
    cap: usize,
    between: &mut dyn FnMut(),
) -> Vec<f32> {
    let Counted {
        mine,
        weights,
        center,
    } = *events;
    // rows x with Σ x·xᵀ the data part
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(CHOOSE_EVENTS + q_old);
    if q_old > 0 {
        let (vals, vecs) = crate::taste::symmetric_eigen(data_old, q_old);
        for (l, e) in vals.iter().zip(&vecs) {
            if *l <= 0.0 {
                continue;
            }
            let mut x = vec![0f64; dims];
            let scaled: Vec<f64> = e.iter().map(|a| a * l.sqrt()).collect();
            crate::taste::lift_rows(old_dirs, dims, &scaled, &mut x);
            rows.push(x);
        }
    }
    let carried = rows.len();
    // a seeded random share, not every n-th: logs come in slates and
    // rounds, whose periods a stride can alias with
    let mut idx: Vec<usize> = (0..mine.len()).collect();
    if idx.len() > CHOOSE_EVENTS {
        crate::rng::Rng::new(idx.len() as u64).shuffle(&mut idx);
        idx.truncate(CHOOSE_EVENTS);
        idx.sort_unstable();
    }
    let scale = mine.len() as f64 / idx.len().max(1) as f64;
    for &i in &idx {
        let (e, wt) = (mine[i], weights[i]);
        let s = (wt * scale).sqrt();
        rows.push(
            e.v.iter()
                .zip(center)
                .map(|(x, c)| s * (f64::from(*x) - c))
                .collect(),
        );
    }
    let t = rows.len();
    if t == 0 {
        return Vec::new();
    }
    let want = cap.min(DATA_RANK).min(t).min(dims);
    let mut picked: Vec<Vec<f64>> = Vec::new();
    if t <= dims {
        let g = gram(&rows, between);
        // the carried rows are the last update's directions: in row space,
        // the first unit vectors
        let start: Vec<Vec<f64>> = (0..carried.min(want))
            .map(|j| (0..t).map(|i| if i == j { 1.0 } else { 0.0 }).collect())
            .collect();
        let (vals, vecs) = top_eigen_dense(&g, t, want, 17, &start, between);
        for (l, e) in vals.iter().zip(&vecs) {
            if *l < KEEP * iso {
                break;
            }
            // X·Xᵀe = λe, so Xᵀe/√λ is the unit eigenvector of Xᵀ·X
            let mut v = vec![0f64; dims];
            for (a, x) in e.iter().zip(&rows) {
                v.iter_mut().zip(x).for_each(|(o, xi)| *o += a * xi);
            }
            v.iter_mut().for_each(|o| *o /= l.sqrt());
            picked.push(v);
        }
    } else {
        let columns: Vec<Vec<f64>> = (0..dims)
            .map(|j| rows.iter().map(|x| x[j]).collect())
            .collect();
        let cm = gram(&columns, between);
        let start: Vec<Vec<f64>> = rows[..carried.min(want)]
            .iter()
            .map(|x| {
                let n = x.iter().map(|a| a * a).sum::<f64>().sqrt().max(1e-300);
                x.iter().map(|a| a / n).collect()
            })
            .collect();
        let (vals, vecs) = top_eigen_dense(&cm, dims, want, 17, &start, between);
        for (l, v) in vals.iter().zip(vecs) {
            if *l < KEEP * iso {
                break;
            }
            picked.push(v);
        }
    }
    // orthonormal to f32's precision, whatever the iterations left; a
    // direction that collapses (zeros) is dropped
    orthonormalise_above(&mut picked, 1e-6);
    picked
        .iter()
        .filter(|v| v.iter().any(|a| *a != 0.0))
        .flat_map(|v| v.iter().map(|&a| a as f32))
        .collect()
}
