//! Thompson draws of one request's item logits, from the diagonal Laplace
//! posterior (posterior.rs), at a cost that does not grow with the
//! embedding width.
//!
//! A draw of the adapted part θ = [gain, side.., bias, taste..] moves item
//! i's logit by (g′ − g)·sᵢ + Σⱼ εⱼ·zᵢⱼ, where g′ = max(g + ε_g, 0) is the
//! drawn gain (kept ≥ 0, as adaptation keeps it), sᵢ the item's text score,
//! zᵢ = [fᵢ.., 1, vᵢ − v̄] its side features, the bias and its centred
//! embedding, and the εⱼ independent with variance 1/precisionⱼ. The second
//! term is a Gaussian vector over the items with covariance
//! C = Z·diag(1/precision)·Zᵀ: for n items and m = k + 1 + dims
//! coordinates, drawing it through C's Cholesky factor costs n + n²/2 per
//! draw after n²·m/2 + n³/6 once, against m normals and n·m per draw when
//! each coordinate is drawn. Both are exact; `ItemDraws` takes the cheaper (the
//! factor for the few dozen candidates of a request, coordinates for a long
//! list), so the Monte Carlo propensities of a Thompson ranking stop costing
//! milliseconds.

use crate::head::Head;
use crate::items::evidence_share;
use crate::posterior::Posterior;
use crate::prior::Prior;
use crate::rng::{normal, uniform, Rng};
use crate::taste::{solve_lower, solve_upper_t, Transposed};

/// The draws a request is costed at when choosing how to draw (the default
/// `pg_ecom.propensity_samples`).
const NOMINAL_DRAWS: f64 = 256.0;

/// How a Thompson draw treats β, the isotropic taste, outside (orthogonal
/// to) the directions the tenant's events informed (the posterior's V, or every
/// direction when it keeps none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taste {
    /// The posterior exactly: β outside V drawn from its prior.
    All,
    /// β outside V held at its mean when no event informed it (its
    /// precisions are all the prior's): the information a draw there
    /// could collect is the prior's own, spread over hundreds of
    /// directions, so exploring it costs clicks that no horizon of one
    /// tenant repays (Russo & Van Roy, "Satisficing in time-sensitive
    /// bandit learning", 2022, on Thompson sampling chasing information
    /// not worth its cost). What the events did inform (the block:
    /// gain, side weights, bias, the basis's directions and V) is drawn
    /// exactly.
    Informed,
}

/// How much of the posterior a Thompson draw perturbs
/// (`pg_ecom.thompson_draw`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Share<'a> {
    /// The posterior (where `Taste` and the caller's item variances say):
    /// the prior's spread included wherever an event informed a part.
    Posterior,
    /// Only what the tenant's events said: each draw is the posterior mean
    /// recomputed with the events' evidence redrawn and the prior (the
    /// head's, given here) held at its mean, as a bootstrap of the events
    /// would give (Eckles & Kaptein, "Thompson sampling with the online
    /// bootstrap", 2014; Osband & Van Roy, "Bootstrapped Thompson
    /// sampling", 2015). For precision P = Λ₀ + D (Λ₀ the prior's, D the
    /// events'), the draw has covariance P⁻¹·D·P⁻¹: none where no event
    /// informed (as `Taste::Informed` holds β), little where one or two
    /// did, and the posterior's own as the events come to outweigh the
    /// prior. Why: the prior's spread is what meta-training measured
    /// across tenants, and a draw of it moves a ranking by as much after
    /// one impression as before any; a single tenant's traffic repays
    /// exploring it only where its events already narrow it.
    Evidence(&'a Prior),
}

/// What one draw needs for a fixed request: the head's logits, the text
/// scores, the gain's mean and spread, and either C's Cholesky factor or
/// the items' coordinates with their standard deviations.
pub struct ItemDraws {
    mean: Vec<f64>,
    s: Vec<f64>,
    gain: f64,
    gain_sd: f64,
    how: How,
    /// per item: the standard deviation of its own effect (items.rs), and
    /// which of the request's distinct items it is (the same item twice
    /// draws one effect); empty when no item has one
    item_sd: Vec<f64>,
    item_slot: Vec<usize>,
    /// with a taste basis (taste.rs): [gain, side.., bias, α..] are drawn
    /// jointly from the posterior's dense block, and `how` draws β alone
    block: Option<Block>,
    /// with directions of β (posterior.rs): `how` draws β across them only
    across: Option<Across>,
}

/// β across the posterior's directions V: its noise ε (isotropic, variance
/// `var` per coordinate) less its part along V, so that an item's logit
/// moves by u·ε − (Vu)·(Vε). Kept as u and Vu (which the block needs
/// anyway) rather than u − VᵀVu per item: q·dims per item fewer.
struct Across {
    /// V, q rows of dims
    dirs: Vec<f64>,
    q: usize,
    var: f64,
    /// per item, Vu (u = v − v̄)
    along: Vec<Vec<f64>>,
}

/// The dense part of a draw: the block precision's Cholesky factor and,
/// per item, its coordinates [f.., 1, Uᵀ(v − v̄)..] (all but the gain's).
struct Block {
    l: Vec<f64>,
    /// under `Share::Evidence`: M (w × w, row-major) with M·Mᵀ = P⁻¹·D·P⁻¹,
    /// a draw's block part being M·ξ; None: L⁻ᵀ·ξ, the posterior's
    m: Option<Vec<f64>>,
    w: usize,
    z: Vec<Vec<f64>>,
}

enum How {
    /// row-major lower-triangular L with L·Lᵀ = C
    Factor(Vec<f64>),
    /// per item its coordinates zᵢ; `sd` per coordinate
    Coordinates { z: Vec<Vec<f64>>, sd: Vec<f64> },
}

/// One item as a draw sees it: its logit under the head, its text score
/// W·x, its embedding and its side features.
pub struct Item<'a> {
    pub logit: f64,
    pub s: f32,
    pub v: &'a [f32],
    pub f: &'a [f32],
    /// the variance of the item's own effect (0: none is learned)
    pub item_var: f64,
    /// the item's key (items.rs): which candidates are the same item
    pub key: Option<i64>,
}

impl ItemDraws {
    /// Draws for behaviour `b` of `head` whose uncertainty is `post`, over
    /// `items`. Which way draws is decided by the request's size alone
    /// (costed at `NOMINAL_DRAWS`): the two ways consume the seed's random
    /// numbers differently, and a seed must replay the same ranking
    /// whatever `pg_ecom.propensity_samples` is.
    pub fn new(
        post: &Posterior,
        head: &Head,
        b: usize,
        items: &[Item],
        taste: Taste,
        share: Share,
    ) -> Self {
        let held = match share {
            Share::Posterior => None,
            Share::Evidence(prior) => Some(prior),
        };
        // the prior's share of β is its whole spread where no event
        // informed it: drawn only where the events did
        let beta = draws_beta(
            post,
            b,
            if held.is_some() {
                Taste::Informed
            } else {
                taste
            },
        );
        let (n, m, s) = (
            items.len() as f64,
            (post.k + 1 + if beta { post.dims } else { 0 }) as f64,
            NOMINAL_DRAWS,
        );
        let per_coordinate = s * (n * m + m * 8.0);
        let by_factor = n * n * m / 2.0 + n * n * n / 6.0 + s * (n * n / 2.0 + n * 8.0);
        Self::build(post, head, b, items, by_factor < per_coordinate, beta, held)
    }

    /// As `new`, drawing through the factor when `by_factor` (and it
    /// exists), β's coordinates only when `beta`, and only the events'
    /// share of the posterior when `held` gives the prior.
    fn build(
        post: &Posterior,
        head: &Head,
        b: usize,
        items: &[Item],
        by_factor: bool,
        beta: bool,
        held: Option<&Prior>,
    ) -> Self {
        let k = post.k;
        let prec = post.precision(b);
        let center = post.center(b);
        let c64: Vec<f64> = center.iter().map(|&c| f64::from(c)).collect();
        let (dims, q) = (post.dims, post.data_rank(b));
        let along = along_directions(post.dirs(b), dims, items, &c64);
        let block = match (post.block_factor(b), head.basis.as_deref()) {
            (Some((l, w)), Some(basis)) if basis.rank(b) + q + k + 2 == w => Some(Block {
                m: held.map(|prior| {
                    let mut lambda = prior_diagonal(prior, k);
                    lambda.truncate(k + 2);
                    // as the prior stores them (posterior.rs), rounding included
                    lambda.extend(basis.var[b].iter().map(|v| f64::from(1.0 / *v)));
                    lambda.extend(std::iter::repeat_n(f64::from(prior.taste.max(0.0)), q));
                    // should the factor fail, hold the block at its mean:
                    // never wider than what was asked for
                    post.block(b)
                        .and_then(|(p, _)| evidence_factor(p, &l, w, &lambda))
                        .unwrap_or_else(|| vec![0.0; w * w])
                }),
                l,
                w,
                z: items
                    .iter()
                    .zip(&along)
                    .map(|(it, a)| {
                        let mut zi: Vec<f64> = it.f[..k].iter().map(|x| f64::from(*x)).collect();
                        zi.push(1.0);
                        zi.extend(basis.project(b, it.v, &c64));
                        zi.extend(a);
                        zi
                    })
                    .collect(),
            }),
            _ => None,
        };
        // with a block, the coordinates drawn one by one are β's alone
        let skip = if block.is_some() { k + 2 } else { 1 };
        let upto = if beta { prec.len() } else { k + 2 };
        let lambda = held.map(|prior| prior_diagonal(prior, k));
        let coordinate_sd = |i: usize| -> f64 {
            let p = f64::from(prec[i]);
            match &lambda {
                None => 1.0 / p.sqrt(),
                Some(l) => evidence_share(p, l[i.min(k + 2)]).sqrt(),
            }
        };
        let sd: Vec<f64> = (skip.min(upto)..upto).map(coordinate_sd).collect();
        let z: Vec<Vec<f64>> = items
            .iter()
            .map(|it| {
                let mut zi = Vec::with_capacity(sd.len());
                if block.is_none() {
                    zi.extend(it.f[..k].iter().map(|x| f64::from(*x)));
                    zi.push(1.0);
                }
                if beta {
                    zi.extend(it.v.iter().zip(&c64).map(|(x, c)| f64::from(*x) - c));
                }
                zi
            })
            .collect();
        // β across V alone (the block drew its part along V); directions
        // come only with a block, and β's precision is then isotropic
        let across = (beta && block.is_some() && q > 0).then(|| Across {
            dirs: post.dirs(b).iter().map(|&x| f64::from(x)).collect(),
            q,
            var: sd.first().map_or(0.0, |s| s * s),
            along,
        });
        // no copy of the coordinates on the way: the fallback moves them
        let how = match (by_factor && !sd.is_empty())
            .then(|| factor(&z, &sd, across.as_ref()))
            .flatten()
        {
            Some(l) => How::Factor(l),
            None => How::Coordinates { z, sd },
        };
        ItemDraws {
            mean: items.iter().map(|it| it.logit).collect(),
            s: items.iter().map(|it| f64::from(it.s)).collect(),
            gain: f64::from(head.adapted(b)[0]),
            gain_sd: coordinate_sd(0),
            how,
            item_sd: if items.iter().any(|it| it.item_var > 0.0) {
                items.iter().map(|it| it.item_var.max(0.0).sqrt()).collect()
            } else {
                Vec::new()
            },
            item_slot: slots(items),
            block,
            across,
        }
    }

    /// One draw of every item's logit, each no lower than its mean
    /// (`pg_ecom.thompson_optimistic`): optimistic Bayesian sampling (May,
    /// Korda, Lee & Leslie, JMLR 2012). A draw may lift an uncertain item
    /// into the shown places but never push the head's favourite out by
    /// the favourite's own noise. The same random numbers as `draw`, so
    /// a seed picks the same underlying draw either way.
    pub fn draw_optimistic(&self, rng: &mut Rng) -> Vec<f64> {
        let mut out = self.draw(rng);
        out.iter_mut()
            .zip(&self.mean)
            .for_each(|(o, m)| *o = o.max(*m));
        out
    }

    /// One draw of every item's logit.
    pub fn draw(&self, rng: &mut Rng) -> Vec<f64> {
        let n = self.mean.len();
        let mut out: Vec<f64>;
        if let Some(block) = &self.block {
            let mut xi = vec![0.0; block.w];
            normals(rng, &mut xi);
            let x = match &block.m {
                Some(m) => m
                    .chunks_exact(block.w)
                    .map(|row| row.iter().zip(&xi).map(|(a, b)| a * b).sum())
                    .collect(),
                None => solve_upper_t(&block.l, block.w, &xi),
            };
            let g = (self.gain + x[0]).max(0.0) - self.gain;
            out = (0..n)
                .map(|i| {
                    let rest: f64 = block.z[i].iter().zip(&x[1..]).map(|(a, b)| a * b).sum();
                    self.mean[i] + g * self.s[i] + rest
                })
                .collect();
        } else {
            let g = (self.gain + normal(rng) * self.gain_sd).max(0.0) - self.gain;
            out = (0..n).map(|i| self.mean[i] + g * self.s[i]).collect();
        }
        match &self.how {
            How::Factor(l) => {
                let mut xi = vec![0.0; n];
                normals(rng, &mut xi);
                for (i, o) in out.iter_mut().enumerate() {
                    let row = &l[i * n..i * n + i + 1];
                    *o += row.iter().zip(&xi).map(|(a, x)| a * x).sum::<f64>();
                }
            }
            How::Coordinates { z, sd } => {
                let mut eps = vec![0.0; sd.len()];
                normals(rng, &mut eps);
                eps.iter_mut().zip(sd).for_each(|(e, s)| *e *= s);
                if let Some(a) = &self.across {
                    // ε less its part along V: once per draw, not per item
                    let dims = eps.len();
                    let c: Vec<f64> = a
                        .dirs
                        .chunks_exact(dims)
                        .map(|row| row.iter().zip(&eps).map(|(v, e)| v * e).sum())
                        .collect();
                    for (row, ca) in a.dirs.chunks_exact(dims).zip(&c).take(a.q) {
                        eps.iter_mut().zip(row).for_each(|(e, v)| *e -= ca * v);
                    }
                }
                for (o, zi) in out.iter_mut().zip(z) {
                    *o += zi.iter().zip(&eps).map(|(a, e)| a * e).sum::<f64>();
                }
            }
        }
        // after the rest: heads without item effects replay as before
        if !self.item_sd.is_empty() {
            let distinct = self.item_slot.iter().max().map_or(0, |m| m + 1);
            let mut xi = vec![0.0; distinct];
            normals(rng, &mut xi);
            for ((o, slot), sd) in out.iter_mut().zip(&self.item_slot).zip(&self.item_sd) {
                *o += xi[*slot] * sd;
            }
        }
        out
    }
}

/// The standard deviation of each item's logit under `post`: the marginals
/// of the Gaussian that `ItemDraws::draw` samples, with the gain free of
/// its ≥ 0 bound (which moves nothing while the gain's mean stands a few
/// standard deviations above 0, as adapted gains do). Costs n·m, no draw:
/// what a credible interval (interval.rs) needs.
pub fn logit_sd(post: &Posterior, head: &Head, b: usize, items: &[Item]) -> Vec<f64> {
    let d = ItemDraws::build(post, head, b, items, false, true, None);
    let n = d.mean.len();
    let mut var: Vec<f64> = match &d.block {
        Some(block) => (0..n)
            .map(|i| {
                let mut a = Vec::with_capacity(block.w);
                a.push(d.s[i]);
                a.extend_from_slice(&block.z[i]);
                solve_lower(&block.l, block.w, &a)
                    .iter()
                    .map(|y| y * y)
                    .sum()
            })
            .collect(),
        None => d.s.iter().map(|s| (s * d.gain_sd).powi(2)).collect(),
    };
    match &d.how {
        How::Factor(l) => {
            for (i, v) in var.iter_mut().enumerate() {
                *v += l[i * n..=i * n + i].iter().map(|x| x * x).sum::<f64>();
            }
        }
        How::Coordinates { z, sd } => {
            for (v, zi) in var.iter_mut().zip(z) {
                *v += zi.iter().zip(sd).map(|(a, s)| (a * s).powi(2)).sum::<f64>();
            }
            if let Some(a) = &d.across {
                for (v, ai) in var.iter_mut().zip(&a.along) {
                    *v -= a.var * ai.iter().map(|x| x * x).sum::<f64>();
                }
            }
        }
    }
    for (v, sd) in var.iter_mut().zip(&d.item_sd) {
        *v += sd * sd;
    }
    var.iter().map(|v| v.sqrt()).collect()
}

/// The prior's precision of [gain, side.., bias] and, last, of one taste
/// coordinate (the index a coordinate past the bias reads).
/// A precision below 0 (a hand-edited `hyper->'prior'`) counts as 0:
/// D is then at most P, never wider than the posterior.
fn prior_diagonal(prior: &Prior, k: usize) -> Vec<f64> {
    let at_least_0 = |x: f32| f64::from(x.max(0.0));
    let mut l = vec![at_least_0(prior.gain)];
    l.extend(std::iter::repeat_n(at_least_0(prior.side), k));
    l.push(at_least_0(prior.bias));
    l.push(at_least_0(prior.taste));
    l
}

/// M with M·Mᵀ = P⁻¹·D·P⁻¹ for the block precision `p` (w × w, its
/// Cholesky factor `l`) and D = P − diag(`lambda`), the events' part:
/// M = P⁻¹·R for R·Rᵀ = D, R from a Cholesky factorisation that pivots on
/// the largest remaining diagonal and stops where what remains is
/// rounding (Higham, "Accuracy and stability of numerical algorithms",
/// §10.3): D is positive semi-definite in exact arithmetic, and singular
/// wherever no event informed a coordinate. About 2·w³ operations per
/// request (the factorisation, then two triangular solves per column), for
/// w = k + 2 + r + q: 40 at the default 32 directions (about 0.1 ms), 135
/// at the most `pg_ecom.posterior_directions` allows.
fn evidence_factor(p: &[f32], l: &[f64], w: usize, lambda: &[f64]) -> Option<Vec<f64>> {
    if lambda.len() < w {
        return None;
    }
    let mut a: Vec<f64> = p.iter().map(|&x| f64::from(x)).collect();
    for (i, li) in lambda.iter().take(w).enumerate() {
        a[i * w + i] -= li;
    }
    // what a coordinate's stored (f32) precision can tell apart from 0:
    // a frozen group's 10⁶ hides less than one event's worth
    let tol: Vec<f64> = (0..w).map(|i| 1e-6 * f64::from(p[i * w + i])).collect();
    let mut left: Vec<usize> = (0..w).collect();
    let mut open = vec![true; w];
    let mut m = vec![0.0; w * w];
    for col in 0..w {
        let Some((at, &j)) = left
            .iter()
            .enumerate()
            .filter(|(_, &i)| a[i * w + i] > tol[i] && a[i * w + i].is_finite())
            .max_by(|x, y| a[x.1 * w + x.1].total_cmp(&a[y.1 * w + y.1]))
        else {
            break;
        };
        let pivot = a[j * w + j];
        left.swap_remove(at);
        open[j] = false;
        let r: Vec<f64> = (0..w)
            .map(|i| {
                if i == j {
                    pivot.sqrt()
                } else if open[i] {
                    a[i * w + j] / pivot.sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        for &i in &left {
            for &k in &left {
                a[i * w + k] -= r[i] * r[k];
            }
        }
        let c = solve_upper_t(l, w, &solve_lower(l, w, &r));
        for (i, x) in c.iter().enumerate() {
            m[i * w + col] = *x;
        }
    }
    m.iter().all(|x| x.is_finite()).then_some(m)
}

/// Whether a draw under `taste` moves β's coordinates one by one: always
/// for `All`; for `Informed` only where some event informed them, that is
/// where β's precisions differ (a diagonal posterior: stored before 0.8.0,
/// or of a tenant whose global head has no basis). With
/// directions, or before any event (the prior), they are all equal.
fn draws_beta(post: &Posterior, b: usize, taste: Taste) -> bool {
    let beta = &post.precision(b)[post.k + 2..];
    taste == Taste::All || beta.iter().any(|p| Some(p) != beta.first())
}

/// Per item, V·(v − v̄) for the rows of V (empty without directions).
fn along_directions(dirs: &[f32], dims: usize, items: &[Item], c: &[f64]) -> Vec<Vec<f64>> {
    let q = dirs.len() / dims.max(1);
    let vt = Transposed::new(dirs, dims);
    items
        .iter()
        .map(|it| {
            let mut out = vec![0f64; q];
            vt.add_coords(
                it.v.iter().zip(c).map(|(x, cj)| f64::from(*x) - cj),
                &mut out,
            );
            out
        })
        .collect()
}

/// Per item, which distinct item of the request it is: the first position
/// of its key (an item without a key is its own).
fn slots(items: &[Item]) -> Vec<usize> {
    let mut first: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    let mut next = 0;
    items
        .iter()
        .map(|it| {
            let mut fresh = || {
                next += 1;
                next - 1
            };
            match it.key {
                Some(k) => *first.entry(k).or_insert_with(fresh),
                None => fresh(),
            }
        })
        .collect()
}

/// Standard normals, both of each Box–Muller pair used: half the
/// logarithms and square roots of drawing them one by one.
fn normals(rng: &mut Rng, out: &mut [f64]) {
    for pair in out.chunks_mut(2) {
        let (u1, u2) = (uniform(rng), uniform(rng));
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        pair[0] = r * c;
        if let Some(x) = pair.get_mut(1) {
            *x = r * s;
        }
    }
}

/// The Cholesky factor of C = Z·diag(sd²)·Zᵀ (with a tiny ridge for the
/// rank-deficient case of more items than coordinates), less, with
/// directions of β, var·(Vu_i)·(Vu_j), their part along V; None when it
/// does not exist numerically.
fn factor(z: &[Vec<f64>], sd: &[f64], across: Option<&Across>) -> Option<Vec<f64>> {
    let n = z.len();
    let var: Vec<f64> = sd.iter().map(|s| s * s).collect();
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let mut v: f64 = z[i]
                .iter()
                .zip(&z[j])
                .zip(&var)
                .map(|((a, b), w)| a * b * w)
                .sum();
            if let Some(a) = across {
                let ab: f64 = a.along[i].iter().zip(&a.along[j]).map(|(x, y)| x * y).sum();
                v -= a.var * ab;
            }
            c[i * n + j] = v;
        }
    }
    let ridge = 1e-12 * (0..n).map(|i| c[i * n + i]).fold(0.0, f64::max).max(1e-300);
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let dot: f64 = (0..j).map(|t| l[i * n + t] * l[j * n + t]).sum();
            if i == j {
                let d = c[i * n + i] + ridge - dot;
                if d.is_nan() || d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (c[i * n + j] - dot) / l[j * n + j];
            }
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::{text_features, NB};
    use crate::prior::Prior;

    /// (head, posterior, item embeddings, their side features, the context)
    type Setup = (Head, Posterior, Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>);

    /// A head with every adapted part non-zero, and a posterior with
    /// unequal precisions and a centre.
    fn setup(k: usize, dims: usize) -> Setup {
        let mut rng = Rng::new(7);
        let mut h = Head::new(dims, k);
        for b in 0..NB {
            let mut a = h.adapted(b);
            for x in a.iter_mut() {
                *x = (normal(&mut rng) * 0.3) as f32;
            }
            a[0] = 0.4;
            h.set_adapted(b, &a);
        }
        let mut p = Posterior::from_prior(&Prior::default(), k, dims);
        for x in p.precision.iter_mut() {
            *x = (2.0 + 30.0 * crate::rng::uniform(&mut rng)) as f32;
        }
        for x in p.center.iter_mut() {
            *x = (normal(&mut rng) * 0.1) as f32;
        }
        let unit = |rng: &mut Rng| -> Vec<f32> {
            let v: Vec<f32> = (0..dims).map(|_| normal(rng) as f32).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / n).collect()
        };
        let u = unit(&mut rng);
        let items: Vec<Vec<f32>> = (0..12).map(|_| unit(&mut rng)).collect();
        let feats: Vec<Vec<f32>> = (0..12)
            .map(|_| (0..k).map(|_| normal(&mut rng) as f32).collect())
            .collect();
        (h, p, items, feats, u)
    }

    /// Mean and covariance of the logits of the old way (a full draw of θ,
    /// then each item's logit) and of `ItemDraws` agree: the same
    /// distribution, whichever way it draws.
    #[test]
    fn item_draws_have_the_posterior_s_mean_and_covariance() {
        let (k, dims, b) = (2, 16, 1);
        let (h, p, items, feats, u) = setup(k, dims);
        same_moments(k, dims, b, &h, &p, &items, &feats, &u);
    }

    /// `setup` with a taste basis of one direction for behaviour b, two
    /// orthonormal directions of β away from it, a dense block over
    /// [gain, side.., bias, α, γ1, γ2] and β's precision 4 across them.
    fn directions_setup(k: usize, dims: usize, b: usize) -> Setup {
        let (mut h, p0, items, feats, u) = setup(k, dims);
        let mut rng = Rng::new(21);
        let mut basis = crate::taste::TasteBasis::empty(dims);
        basis.var[b] = vec![0.7];
        let mut e0 = vec![0f32; dims];
        e0[3] = 1.0;
        basis.u[b] = e0;
        h.basis = Some(std::sync::Arc::new(basis.clone()));
        let mut p = Posterior::from_prior_in(&Prior::default(), k, dims, Some(&basis));
        p.center = p0.center.clone();
        // two orthonormal directions of β, away from the basis's
        let mut d1: Vec<f32> = (0..dims).map(|_| normal(&mut rng) as f32).collect();
        d1[3] = 0.0;
        let n1 = d1.iter().map(|x| x * x).sum::<f32>().sqrt();
        d1.iter_mut().for_each(|x| *x /= n1);
        let mut d2: Vec<f32> = (0..dims).map(|_| normal(&mut rng) as f32).collect();
        d2[3] = 0.0;
        let dot: f32 = d1.iter().zip(&d2).map(|(a, c)| a * c).sum();
        d2.iter_mut().zip(&d1).for_each(|(a, c)| *a -= dot * c);
        let n2 = d2.iter().map(|x| x * x).sum::<f32>().sqrt();
        d2.iter_mut().for_each(|x| *x /= n2);
        p.directions.as_mut().unwrap()[b] = d1.iter().chain(&d2).copied().collect();
        // a dense block over [gain, side, bias, α, γ1, γ2]: A·Aᵀ + 2·I
        let w = k + 2 + 1 + 2;
        let a: Vec<f64> = (0..w * w).map(|_| normal(&mut rng) * 0.5).collect();
        let mut block = vec![0f32; w * w];
        for i in 0..w {
            for j in 0..w {
                let x: f64 = (0..w).map(|t| a[i * w + t] * a[j * w + t]).sum();
                block[i * w + j] = (x + if i == j { 2.0 } else { 0.0 }) as f32;
            }
        }
        p.block[b] = block;
        let m = Posterior::width(k, dims);
        p.precision[b * m + k + 2..(b + 1) * m]
            .iter_mut()
            .for_each(|x| *x = 4.0);
        (h, p, items, feats, u)
    }

    /// The same with a taste basis and directions of β: the block draws
    /// [gain, side, bias, α, γ], `how` β across V only.
    #[test]
    fn item_draws_with_directions_have_the_posterior_s_moments() {
        let (k, dims, b) = (1, 16, 1);
        let (h, p, items, feats, u) = directions_setup(k, dims, b);
        same_moments(k, dims, b, &h, &p, &items, &feats, &u);
    }

    /// `Taste::Informed` holds β across V at its mean: its draws are those
    /// of the same posterior with β certain there, the block's drawn as
    /// before; `Taste::All` still draws it.
    #[test]
    fn informed_draws_hold_the_uninformed_taste() {
        let (k, dims, b) = (1, 16, 1);
        let (h, p, items, feats, u) = directions_setup(k, dims, b);
        let its = plain_items(&h, b, &items, &feats, &u);
        assert!(
            ItemDraws::new(&p, &h, b, &its, Taste::Informed, Share::Posterior)
                .across
                .is_none()
        );
        held_is_certain(&p, &h, b, &its);
    }

    /// A diagonal posterior whose β some events informed (unequal
    /// precisions) draws exactly as `All`, the same numbers from a seed;
    /// before any event (the prior, with or without a basis) `Informed`
    /// draws no β.
    #[test]
    fn informed_draws_keep_an_informed_diagonal() {
        let (k, dims, b) = (2, 16, 1);
        let (h, p, items, feats, u) = setup(k, dims);
        let its = plain_items(&h, b, &items, &feats, &u);
        let a = ItemDraws::new(&p, &h, b, &its, Taste::All, Share::Posterior);
        let i = ItemDraws::new(&p, &h, b, &its, Taste::Informed, Share::Posterior);
        let (mut r1, mut r2) = (Rng::new(9), Rng::new(9));
        for _ in 0..20 {
            assert_eq!(a.draw(&mut r1), i.draw(&mut r2));
        }
        // the prior, without a basis (a diagonal) and with one (a block
        // over [gain, side.., bias, α] and no directions yet)
        let prior = Posterior::from_prior(&Prior::default(), k, dims);
        held_is_certain(&prior, &h, b, &its);
        let mut hb = h.clone();
        let mut basis = crate::taste::TasteBasis::empty(dims);
        basis.var[b] = vec![0.7];
        basis.u[b] = (0..dims).map(|j| if j == 5 { 1.0 } else { 0.0 }).collect();
        hb.basis = Some(std::sync::Arc::new(basis.clone()));
        let prior = Posterior::from_prior_in(&Prior::default(), k, dims, Some(&basis));
        held_is_certain(&prior, &hb, b, &its);
    }

    /// `Informed` draws of `post` (whose β is its prior), through the
    /// factor and by coordinates, have the moments of `post` with β
    /// certain; and β held leaves less spread than β drawn.
    fn held_is_certain(post: &Posterior, h: &Head, b: usize, its: &[Item]) {
        let (k, dims) = (post.k, post.dims);
        let mut certain = post.clone();
        let m = Posterior::width(k, dims);
        certain.precision[b * m + k + 2..(b + 1) * m]
            .iter_mut()
            .for_each(|x| *x = 1e30);
        let n = its.len();
        let (_, want) = moments_of(n, &mut |rng| {
            ItemDraws::build(&certain, h, b, its, false, true, None).draw(rng)
        });
        for by_factor in [false, true] {
            let held = ItemDraws::build(post, h, b, its, by_factor, false, None);
            let (_, got) = moments_of(n, &mut |rng| held.draw(rng));
            same_covariance(&got, &want, &format!("factor {by_factor}"));
        }
        let (_, all) = moments_of(n, &mut |rng| {
            ItemDraws::new(post, h, b, its, Taste::All, Share::Posterior).draw(rng)
        });
        let trace = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
        assert!(trace(&all) > 1.2 * trace(&want));
    }

    /// An optimistic draw is the plain draw from the same random numbers,
    /// raised to the mean wherever it fell below: never lower than the
    /// mean, and above it about half the time for an item that is drawn.
    #[test]
    fn optimistic_draws_never_fall_below_the_mean() {
        let (k, dims, b) = (2, 16, 1);
        let (h, p, items, feats, u) = setup(k, dims);
        let its = plain_items(&h, b, &items, &feats, &u);
        let d = ItemDraws::new(&p, &h, b, &its, Taste::All, Share::Posterior);
        let (mut r1, mut r2) = (Rng::new(5), Rng::new(5));
        let mut above = vec![0usize; its.len()];
        let rounds = 2000;
        for _ in 0..rounds {
            let plain = d.draw(&mut r1);
            let high = d.draw_optimistic(&mut r2);
            for (i, ((o, x), it)) in high.iter().zip(&plain).zip(&its).enumerate() {
                assert_eq!(*o, x.max(it.logit));
                above[i] += usize::from(*o > it.logit);
            }
        }
        for a in above {
            let share = a as f64 / rounds as f64;
            assert!((0.4..0.6).contains(&share), "{share}");
        }
    }

    /// What `explore::choose` logs for rankings of optimistic draws (the
    /// shown one and the Monte Carlo estimate drawn alike, as serve.rs
    /// does) is how often each item lands at each place over many seeds.
    #[test]
    fn optimistic_propensities_match_frequencies() {
        use crate::explore::{choose, Policy};
        let (k, dims, b) = (2, 16, 1);
        let (h, p, items, feats, u) = setup(k, dims);
        let its = plain_items(&h, b, &items[..6], &feats[..6], &u);
        let d = ItemDraws::new(&p, &h, b, &its, Taste::All, Share::Posterior);
        let logits: Vec<f64> = its.iter().map(|it| it.logit).collect();
        let slate = |seed: u64| {
            let mut rng = Rng::new(seed);
            choose(
                &logits,
                3,
                Policy::Thompson,
                256,
                &mut rng,
                &mut |r: &mut Rng| d.draw_optimistic(r),
                &mut || {},
            )
        };
        let n = 4000;
        let mut f = vec![vec![0f64; 3]; logits.len()];
        for s in 0..n {
            for (r, &i) in slate(5000 + s).order.iter().enumerate() {
                f[i][r] += 1.0 / n as f64;
            }
        }
        let mut moved = 0;
        for s in 0..30 {
            let sl = slate(s);
            for (r, (&i, &q)) in sl.order.iter().zip(&sl.propensity).enumerate() {
                assert!(
                    (f[i][r] - q).abs() < 0.1,
                    "item {i} place {r}: {} vs {q}",
                    f[i][r]
                );
                moved += usize::from(q < 0.9);
            }
        }
        // the draws do explore: not every place is certain
        assert!(moved > 0);
    }

    /// `Share::Evidence` under a prior of precision 0 everywhere is the
    /// posterior itself (D = P, so P⁻¹·D·P⁻¹ = P⁻¹): the same moments as
    /// `Share::Posterior`, with a diagonal and with a block and directions.
    #[test]
    fn evidence_under_no_prior_is_the_posterior() {
        let none = Prior {
            gain: 0.0,
            side: 0.0,
            bias: 0.0,
            taste: 0.0,
            item: FROZEN_ITEMS,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        };
        let (k, dims, b) = (2, 16, 1);
        let (h, p, items, feats, u) = setup(k, dims);
        let its = plain_items(&h, b, &items, &feats, &u);
        let (mut h2, p2, items2, feats2, u2) = directions_setup(1, dims, b);
        let mut basis = (**h2.basis.as_ref().unwrap()).clone();
        basis.var[b] = vec![1e30];
        h2.basis = Some(std::sync::Arc::new(basis));
        let its2 = plain_items(&h2, b, &items2, &feats2, &u2);
        for (h, p, its) in [(&h, &p, &its), (&h2, &p2, &its2)] {
            let n = its.len();
            let (m0, c0) = moments_of(n, &mut |rng| {
                ItemDraws::new(p, h, b, its, Taste::Informed, Share::Posterior).draw(rng)
            });
            let (m1, c1) = moments_of(n, &mut |rng| {
                ItemDraws::new(p, h, b, its, Taste::Informed, Share::Evidence(&none)).draw(rng)
            });
            let scale = c0.iter().fold(0.0f64, |a, c| a.max(c.abs()));
            assert!(scale > 1e-3);
            for i in 0..n {
                assert!((m0[i] - m1[i]).abs() < 0.02 * scale.sqrt() + 1e-3);
            }
            same_covariance(&c1, &c0, "no prior");
        }
    }

    const FROZEN_ITEMS: f32 = crate::prior::FROZEN;

    /// Before any event (the posterior is the prior) an evidence draw
    /// moves nothing: every draw is the head's logits, with a diagonal and
    /// with a basis; items without evidence of their own draw no effect.
    #[test]
    fn evidence_draws_nothing_before_any_event() {
        let (k, dims, b) = (2, 16, 1);
        let (h, _, items, feats, u) = setup(k, dims);
        let its = plain_items(&h, b, &items, &feats, &u);
        let prior = Prior::default();
        let mut hb = h.clone();
        let mut basis = crate::taste::TasteBasis::empty(dims);
        basis.var[b] = vec![0.7];
        basis.u[b] = (0..dims).map(|j| if j == 5 { 1.0 } else { 0.0 }).collect();
        hb.basis = Some(std::sync::Arc::new(basis.clone()));
        let diagonal = Posterior::from_prior(&prior, k, dims);
        let with_basis = Posterior::from_prior_in(&prior, k, dims, Some(&basis));
        for (h, p) in [(&h, &diagonal), (&hb, &with_basis)] {
            let d = ItemDraws::new(p, h, b, &its, Taste::All, Share::Evidence(&prior));
            let mut rng = Rng::new(3);
            for _ in 0..20 {
                let x = d.draw(&mut rng);
                for (xi, it) in x.iter().zip(&its) {
                    assert!((xi - it.logit).abs() < 1e-9, "{xi} vs {}", it.logit);
                }
            }
        }
    }

    /// With a block of precision P = Λ₀ + A·Aᵀ (Λ₀ the prior's), the
    /// evidence draws' logits have covariance aᵢᵀ·P⁻¹·D·P⁻¹·aⱼ, D = A·Aᵀ,
    /// computed here by an explicit inverse, not the eigenvectors the draw
    /// uses; and less spread than the posterior's.
    #[test]
    fn evidence_draws_have_the_events_covariance() {
        let (k, dims, b) = (1, 16, 1);
        let (mut h, mut p, items, feats, u) = directions_setup(k, dims, b);
        far_gain(&mut h, b);
        let prior = Prior {
            gain: 3.0,
            side: 2.0,
            bias: 1.5,
            taste: 0.3,
            item: FROZEN_ITEMS,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        };
        let basis = h.basis.clone().unwrap();
        let w = k + 2 + 1 + 2;
        let lambda = [3.0, 2.0, 1.5, 1.0 / 0.7, 0.3, 0.3];
        let mut rng = Rng::new(33);
        let am: Vec<f64> = (0..w * w).map(|_| normal(&mut rng) * 0.6).collect();
        let mut dmat = vec![0.0; w * w];
        for i in 0..w {
            for j in 0..w {
                dmat[i * w + j] = (0..w).map(|t| am[i * w + t] * am[j * w + t]).sum();
            }
        }
        let pm: Vec<f64> = (0..w * w)
            .map(|ij| {
                dmat[ij]
                    + if ij / w == ij % w {
                        lambda[ij / w]
                    } else {
                        0.0
                    }
            })
            .collect();
        p.block[b] = pm.iter().map(|&x| x as f32).collect();
        assert_eq!(basis.rank(b) + 2 + k + 2, w);
        let mut its = plain_items(&h, b, &items, &feats, &u);
        for (i, it) in its.iter_mut().enumerate() {
            it.s = 0.5 + 0.2 * i as f32;
        }
        let d = ItemDraws::new(&p, &h, b, &its, Taste::Informed, Share::Evidence(&prior));
        let block = d.block.as_ref().unwrap();
        // P⁻¹ by Gauss–Jordan, then C = P⁻¹·D·P⁻¹ (from the f32 P stored)
        let p64: Vec<f64> = p.block[b].iter().map(|&x| f64::from(x)).collect();
        let dm: Vec<f64> = (0..w * w)
            .map(|ij| {
                p64[ij]
                    - if ij / w == ij % w {
                        lambda[ij / w]
                    } else {
                        0.0
                    }
            })
            .collect();
        let inv = invert(&p64, w);
        let mul = |x: &[f64], y: &[f64]| -> Vec<f64> {
            (0..w * w)
                .map(|ij| {
                    (0..w)
                        .map(|t| x[(ij / w) * w + t] * y[t * w + ij % w])
                        .sum()
                })
                .collect()
        };
        let c = mul(&mul(&inv, &dm), &inv);
        let coords: Vec<Vec<f64>> = (0..its.len())
            .map(|i| {
                std::iter::once(f64::from(its[i].s))
                    .chain(block.z[i].iter().copied())
                    .collect()
            })
            .collect();
        let n = its.len();
        let want: Vec<f64> = (0..n * n)
            .map(|ij| {
                let (x, y) = (&coords[ij / n], &coords[ij % n]);
                (0..w)
                    .map(|s| (0..w).map(|t| x[s] * c[s * w + t] * y[t]).sum::<f64>())
                    .sum()
            })
            .collect();
        let (_, got) = moments_of(n, &mut |rng| d.draw(rng));
        same_covariance(&got, &want, "block");
        let (_, post) = moments_of(n, &mut |rng| {
            ItemDraws::new(&p, &h, b, &its, Taste::Informed, Share::Posterior).draw(rng)
        });
        let trace = |c: &[f64]| (0..n).map(|i| c[i * n + i]).sum::<f64>();
        assert!(trace(&got) < trace(&post));
    }

    /// A diagonal posterior with a prior whose groups differ (gain, side,
    /// bias, taste) and events everywhere: the evidence draws' logits have
    /// covariance Σⱼ aᵢⱼ·aₖⱼ·(pⱼ − λⱼ)/pⱼ², each coordinate with its own
    /// group's prior precision λⱼ.
    #[test]
    fn evidence_draws_of_a_diagonal_take_each_group_s_prior() {
        let (k, dims, b) = (2, 16, 1);
        let (mut h, mut p, items, feats, u) = setup(k, dims);
        far_gain(&mut h, b);
        let prior = Prior {
            gain: 4.0,
            side: 1.0,
            bias: 0.2,
            taste: 2.0,
            item: FROZEN_ITEMS,
            item_meta: None,
            item_served: None,
            bias_meta: None,
        };
        let lambda = |j: usize| -> f64 {
            match j {
                0 => 4.0,
                j if j <= k => 1.0,
                j if j == k + 1 => 0.2,
                _ => 2.0,
            }
        };
        // events' precisions comparable to the prior's, so that which
        // group's prior a coordinate takes shows in its spread
        let m = Posterior::width(k, dims);
        let mut rng = Rng::new(5);
        for j in 0..m {
            let d = 0.3 + 0.5 * crate::rng::uniform(&mut rng);
            p.precision[b * m + j] = (lambda(j) + d) as f32;
        }
        let mut its = plain_items(&h, b, &items, &feats, &u);
        // text scores that vary, so that the gain's spread shows
        for (i, it) in its.iter_mut().enumerate() {
            it.s = 0.5 + 0.2 * i as f32;
        }
        let prec = p.precision(b);
        let c = p.center(b);
        let coords: Vec<Vec<f64>> = its
            .iter()
            .map(|it| {
                let mut x = vec![f64::from(it.s)];
                x.extend(it.f.iter().map(|&f| f64::from(f)));
                x.push(1.0);
                x.extend(it.v.iter().zip(c).map(|(v, c)| f64::from(v - c)));
                x
            })
            .collect();
        let var: Vec<f64> = (0..prec.len())
            .map(|j| {
                let pj = f64::from(prec[j]);
                (pj - lambda(j)) / (pj * pj)
            })
            .collect();
        let n = its.len();
        let want: Vec<f64> = (0..n * n)
            .map(|ij| {
                let (x, y) = (&coords[ij / n], &coords[ij % n]);
                x.iter().zip(y).zip(&var).map(|((a, b), v)| a * b * v).sum()
            })
            .collect();
        for by_factor in [false, true] {
            let d = ItemDraws::build(&p, &h, b, &its, by_factor, true, Some(&prior));
            let (mean, got) = moments_of(n, &mut |rng| d.draw(rng));
            let scale = want.iter().fold(0.0f64, |a, c| a.max(c.abs()));
            for i in 0..n {
                assert!((mean[i] - its[i].logit).abs() < 0.02 * scale.sqrt());
            }
            same_covariance(&got, &want, &format!("factor {by_factor}"));
        }
    }

    /// A⁻¹ of a small invertible matrix (Gauss–Jordan with partial pivots).
    fn invert(a: &[f64], n: usize) -> Vec<f64> {
        let mut m = a.to_vec();
        let mut inv: Vec<f64> = (0..n * n)
            .map(|ij| if ij / n == ij % n { 1.0 } else { 0.0 })
            .collect();
        for col in 0..n {
            let piv = (col..n)
                .max_by(|&x, &y| m[x * n + col].abs().total_cmp(&m[y * n + col].abs()))
                .unwrap();
            for t in 0..n {
                m.swap(col * n + t, piv * n + t);
                inv.swap(col * n + t, piv * n + t);
            }
            let d = m[col * n + col];
            for t in 0..n {
                m[col * n + t] /= d;
                inv[col * n + t] /= d;
            }
            for r in (0..n).filter(|&r| r != col) {
                let f = m[r * n + col];
                for t in 0..n {
                    m[r * n + t] -= f * m[col * n + t];
                    inv[r * n + t] -= f * inv[col * n + t];
                }
            }
        }
        inv
    }

    /// The items of `setup` as a draw sees them, logits under `h`.
    fn plain_items<'a>(
        h: &Head,
        b: usize,
        items: &'a [Vec<f32>],
        feats: &'a [Vec<f32>],
        u: &[f32],
    ) -> Vec<Item<'a>> {
        items
            .iter()
            .zip(feats)
            .map(|(v, f)| {
                let x = text_features(u, v);
                Item {
                    logit: f64::from(h.logit(b, &x, f)),
                    s: h.text_score(b, &x),
                    v,
                    f,
                    item_var: 0.0,
                    key: None,
                }
            })
            .collect()
    }

    /// `ItemDraws` both ways and `logit_sd` against draws of θ from
    /// `Posterior::sample`.
    #[allow(clippy::too_many_arguments)]
    fn same_moments(
        _k: usize,
        _dims: usize,
        b: usize,
        h: &Head,
        p: &Posterior,
        items: &[Vec<f32>],
        feats: &[Vec<f32>],
        u: &[f32],
    ) {
        let scored: Vec<(f32, f64)> = items
            .iter()
            .zip(feats)
            .map(|(v, f)| {
                let x = text_features(u, v);
                let s = h.text_score(b, &x);
                (s, f64::from(h.logit(b, &x, f)))
            })
            .collect();
        let its: Vec<Item> = items
            .iter()
            .zip(feats)
            .zip(&scored)
            .map(|((v, f), (s, l))| Item {
                logit: *l,
                s: *s,
                v,
                f,
                item_var: 0.0,
                key: None,
            })
            .collect();
        let n = its.len();
        let moments = |draw: &mut dyn FnMut(&mut Rng) -> Vec<f64>| moments_of(n, draw);
        let (m_old, c_old) = moments(&mut |rng| {
            let th = p.sample(h, b, rng);
            its.iter()
                .map(|it| crate::posterior::logit_of(&th, it.s, it.v, it.f))
                .collect()
        });
        // the marginals credible intervals use, without a draw
        let sd = logit_sd(p, h, b, &its);
        for (i, s) in sd.iter().enumerate() {
            let v = c_old[i * n + i];
            assert!((s * s / v - 1.0).abs() < 0.05, "sd {i}: {} vs {v}", s * s);
        }
        for by_factor in [false, true] {
            let d = ItemDraws::build(p, h, b, &its, by_factor, true, None);
            let (m_new, c_new) = moments(&mut |rng| d.draw(rng));
            let scale = c_old.iter().fold(0.0f64, |a, c| a.max(c.abs()));
            for i in 0..n {
                assert!(
                    (m_old[i] - m_new[i]).abs() < 0.02 * scale.sqrt() + 1e-3,
                    "mean {i}: {} vs {}",
                    m_old[i],
                    m_new[i]
                );
            }
            for ij in 0..n * n {
                assert!(
                    (c_old[ij] - c_new[ij]).abs() < 0.05 * scale,
                    "cov {ij}: {} vs {}",
                    c_old[ij],
                    c_new[ij]
                );
            }
        }
    }

    /// Mean and covariance of 40,000 draws of n logits.
    fn moments_of(n: usize, draw: &mut dyn FnMut(&mut Rng) -> Vec<f64>) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(11);
        let t = 40_000;
        let (mut m1, mut m2) = (vec![0.0; n], vec![0.0; n * n]);
        for _ in 0..t {
            let x = draw(&mut rng);
            for i in 0..n {
                m1[i] += x[i] / t as f64;
                for j in 0..n {
                    m2[i * n + j] += x[i] * x[j] / t as f64;
                }
            }
        }
        let cov: Vec<f64> = (0..n * n)
            .map(|ij| m2[ij] - m1[ij / n] * m1[ij % n])
            .collect();
        (m1, cov)
    }

    /// A gain far from its bound at 0, so that no draw is clipped there
    /// and the drawn logits stay Gaussian.
    fn far_gain(h: &mut Head, b: usize) {
        let mut a = h.adapted(b);
        a[0] = 6.0;
        h.set_adapted(b, &a);
    }

    /// Every entry of covariance `got` within 5 % of `want`'s largest of it.
    fn same_covariance(got: &[f64], want: &[f64], what: &str) {
        let scale = want.iter().fold(0.0f64, |a, c| a.max(c.abs()));
        for (ij, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() < 0.05 * scale, "{what}, cov {ij}: {g} vs {w}");
        }
    }

    /// Items of `setup` with the given logits and own-effect variances
    /// (each its own item).
    fn certain_items<'a>(
        items: &'a [Vec<f32>],
        feats: &'a [Vec<f32>],
        logit: impl Fn(usize) -> f64,
        item_var: impl Fn(usize) -> f64,
    ) -> Vec<Item<'a>> {
        items
            .iter()
            .zip(feats)
            .enumerate()
            .map(|(i, (v, f))| Item {
                logit: logit(i),
                s: 0.5,
                v,
                f,
                item_var: item_var(i),
                key: Some(i as i64),
            })
            .collect()
    }

    /// Without uncertainty a draw is the head's own logits.
    #[test]
    fn a_certain_posterior_draws_the_head_s_logits() {
        let (k, dims, b) = (1, 8, 0);
        let (h, mut p, items, feats, _) = setup(k, dims);
        p.precision.iter_mut().for_each(|x| *x = 1e30);
        let its = certain_items(&items, &feats, |i| i as f64, |_| 0.0);
        for by_factor in [false, true] {
            let d = ItemDraws::build(&p, &h, b, &its, by_factor, true, None);
            let x = d.draw(&mut Rng::new(3));
            for (i, xi) in x.iter().enumerate() {
                assert!((xi - i as f64).abs() < 1e-6, "{xi} vs {i}");
            }
        }
    }

    /// An item's own effect adds its variance to that item's logit alone,
    /// whichever way the rest is drawn.
    #[test]
    fn an_item_s_own_effect_varies_only_its_logit() {
        let (k, dims, b) = (1, 8, 0);
        let (h, mut p, items, feats, _) = setup(k, dims);
        p.precision.iter_mut().for_each(|x| *x = 1e30);
        let its = certain_items(&items, &feats, |_| 1.0, |i| if i == 3 { 0.25 } else { 0.0 });
        for by_factor in [false, true] {
            let d = ItemDraws::build(&p, &h, b, &its, by_factor, true, None);
            let mut rng = Rng::new(13);
            let (mut m, mut sq) = (0.0, 0.0);
            let t = 20_000;
            for _ in 0..t {
                let x = d.draw(&mut rng);
                for (i, xi) in x.iter().enumerate() {
                    if i != 3 {
                        assert!((xi - 1.0).abs() < 1e-6);
                    }
                }
                m += (x[3] - 1.0) / t as f64;
                sq += (x[3] - 1.0).powi(2) / t as f64;
            }
            assert!(m.abs() < 0.02 && (sq - 0.25).abs() < 0.02, "{m} {sq}");
        }
        let sd = logit_sd(&p, &h, b, &its);
        for (i, s) in sd.iter().enumerate() {
            let want = if i == 3 { 0.5 } else { 0.0 };
            assert!((s - want).abs() < 1e-6, "{i}: {s}");
        }
    }

    /// More items than coordinates, and the same item twice: the factor
    /// still exists (the ridge) and draws the duplicates alike, their own
    /// effects included.
    #[test]
    fn duplicate_items_draw_alike_through_the_factor() {
        let (k, dims, b) = (0, 3, 2);
        let (h, p, items, feats, _) = setup(k, dims);
        let its: Vec<Item> = (0..8)
            .map(|i| Item {
                logit: 0.0,
                s: 0.5,
                v: &items[i % 2],
                f: &feats[0],
                item_var: 0.3,
                key: Some((i % 2) as i64),
            })
            .collect();
        let d = ItemDraws::build(&p, &h, b, &its, true, true, None);
        assert!(matches!(d.how, How::Factor(_)));
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let x = d.draw(&mut rng);
            assert!(x.iter().all(|v| v.is_finite()));
            assert!(
                (x[0] - x[2]).abs() < 1e-4 && (x[1] - x[3]).abs() < 1e-4,
                "{x:?}"
            );
        }
    }

    #[test]
    fn the_factor_reproduces_its_matrix() {
        let z = vec![
            vec![1.0, 2.0, 0.5],
            vec![0.0, 1.0, -1.0],
            vec![2.0, 0.0, 1.0],
        ];
        let sd = vec![0.5, 1.0, 2.0];
        let l = factor(&z, &sd, None).unwrap();
        let n = 3;
        for i in 0..n {
            for j in 0..n {
                let c: f64 = (0..3).map(|t| z[i][t] * z[j][t] * sd[t] * sd[t]).sum();
                let ll: f64 = (0..n).map(|t| l[i * n + t] * l[j * n + t]).sum();
                assert!((c - ll).abs() < 1e-9, "{i},{j}: {c} vs {ll}");
            }
        }
    }
}
