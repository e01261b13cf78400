//! Stage 4: the prediction head — (context embedding, item embedding, side
//! features) → one probability per behaviour. Pure Rust, no Postgres.
//!
//! For behaviour b:
//!   logit_b = g_b · (W_b · x) + τ_b · v + A_b · f + c_b,   p_b = σ(logit_b)
//! where x = [v, u⊙v, cos(u, v)] are the text features of context u and item
//! v, and f the caller's numeric side features (popularity, price band, …).
//!
//! Why this shape: W (2·384+1 weights per behaviour) carries what text says
//! and is learned across all tenants; the *adapted* part is what a tenant
//! learns from a few dozen events: the text gain g, side weights A and bias c
//! (k+2 numbers) rescale what everyone likes, and the taste τ (one weight
//! per embedding dimension, 0 in the global head) says which items *this*
//! tenant prefers — a direction in embedding space that no rescaling of the
//! global text score can express. Adaptation is a MAP estimate under a
//! Gaussian prior centred on the starting head with meta-learned precisions
//! per group, so a group that did not help held-out tenants stays put.

// Index loops read like the formulas they implement.
#![allow(clippy::needless_range_loop)]

use serde::{Deserialize, Serialize};

pub use crate::behaviour::{behaviour_index, BEHAVIOURS, NB};
use crate::items::ItemEffects;
use crate::metrics::{log_loss, sigmoid};
pub use crate::prior::Group;
use crate::taste::TasteBasis;

/// Text features of a (context, item) pair: [v, u⊙v, cos(u, v)].
pub fn text_features(u: &[f32], v: &[f32]) -> Vec<f32> {
    let d = v.len();
    let mut x = Vec::with_capacity(2 * d + 1);
    x.extend_from_slice(v);
    let (mut dot, mut nu, mut nv) = (0f32, 0f32, 0f32);
    for (a, b) in u.iter().zip(v) {
        x.push(a * b);
        dot += a * b;
        nu += a * a;
        nv += b * b;
    }
    let denom = (nu * nv).sqrt();
    x.push(if denom > 0.0 { dot / denom } else { 0.0 });
    x
}

/// The largest side feature magnitude pg_ecom accepts. Training weighs a
/// feature by its square in f32, which overflows near 1.8e19 and leaves
/// every step useless long before; features are meant to be scaled (a
/// rate, a log count), and 1e9 leaves room for any such scale while
/// keeping a whole log's squares finite.
pub const FEATURE_LIMIT: f32 = 1e9;

/// Whether pg_ecom takes `v` as a side feature: finite, within
/// ±`FEATURE_LIMIT`. The one test of every entry (arguments, support and
/// source relations) and of the log reader.
pub fn usable_feature(v: f32) -> bool {
    v.is_finite() && v.abs() <= FEATURE_LIMIT
}

/// Why a finite feature beyond ±`FEATURE_LIMIT` is refused.
pub fn feature_out_of_range(v: f32) -> String {
    format!(
        "features must lie within ±{FEATURE_LIMIT:e}, got {v:e}; scale them (a rate, a log count)"
    )
}

/// One labelled event, featurised.
#[derive(Clone, Debug)]
pub struct Example {
    pub x: Vec<f32>,
    pub f: Vec<f32>,
    pub b: usize,
    pub y: f32,
    /// the item's key (`items::item_key` of its text), for item effects
    pub item: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Head {
    /// text feature width (2·dims + 1)
    pub t: usize,
    /// number of side features
    pub k: usize,
    /// [W: NB·t | g: NB | A: NB·k | c: NB | τ: NB·dims]
    pub params: Vec<f32>,
    /// what sells beyond the text (items.rs); stored in columns of their own
    #[serde(skip)]
    pub items: ItemEffects,
    /// where tenants' tastes tend to lie (taste.rs): set by meta-training
    /// on a global head, shared by the tenants adapted from it; None = the
    /// isotropic taste prior alone (heads before 0.6.0)
    #[serde(skip)]
    pub basis: Option<std::sync::Arc<TasteBasis>>,
}

impl Head {
    /// Weights of a head laid out before the taste (0.1.x): no τ block.
    pub fn legacy_len(dims: usize, k: usize) -> usize {
        NB * (2 * dims + 1) + NB + NB * k + NB
    }

    pub fn len_for(dims: usize, k: usize) -> usize {
        Self::legacy_len(dims, k) + NB * dims
    }

    /// A head from stored weights: the current layout, or the 0.1.x layout
    /// (no taste block), which scores exactly as it did with τ = 0.
    pub fn from_weights(t: usize, k: usize, mut params: Vec<f32>) -> Result<Self, String> {
        if t == 0 || t.is_multiple_of(2) {
            return Err(format!("text feature width {t} is not 2·dims+1"));
        }
        let dims = (t - 1) / 2;
        if params.len() == Self::legacy_len(dims, k) {
            params.resize(Self::len_for(dims, k), 0.0);
        }
        if params.len() != Self::len_for(dims, k) {
            return Err(format!(
                "{} weights, expected {} for {dims} dimensions and {k} side feature(s)",
                params.len(),
                Self::len_for(dims, k)
            ));
        }
        Ok(Self {
            t,
            k,
            params,
            items: ItemEffects::none(),
            basis: None,
        })
    }

    pub fn new(dims: usize, k: usize) -> Self {
        let t = 2 * dims + 1;
        let mut params = vec![0f32; Self::len_for(dims, k)];
        let h = Self {
            t,
            k,
            params: Vec::new(),
            items: ItemEffects::none(),
            basis: None,
        };
        for b in 0..NB {
            params[h.gain_at(b)] = 1.0;
        }
        Self { params, ..h }
    }

    pub fn dims(&self) -> usize {
        (self.t - 1) / 2
    }

    fn w_at(&self, b: usize) -> usize {
        b * self.t
    }
    fn gain_at(&self, b: usize) -> usize {
        NB * self.t + b
    }
    fn side_at(&self, b: usize) -> usize {
        NB * self.t + NB + b * self.k
    }
    pub(crate) fn bias_at(&self, b: usize) -> usize {
        NB * self.t + NB + NB * self.k + b
    }
    fn taste_at(&self, b: usize) -> usize {
        NB * self.t + NB + NB * self.k + NB + b * self.dims()
    }

    /// Where the taste block starts: global training keeps it at zero.
    pub fn taste_range(&self) -> std::ops::Range<usize> {
        self.taste_at(0)..self.params.len()
    }

    pub fn taste(&self, b: usize) -> &[f32] {
        &self.params[self.taste_at(b)..self.taste_at(b) + self.dims()]
    }

    /// Which group parameter `i` belongs to.
    pub fn group_of(&self, i: usize) -> Group {
        let w_end = NB * self.t;
        if i < w_end {
            Group::W
        } else if i < w_end + NB {
            Group::Gain
        } else if i < w_end + NB + NB * self.k {
            Group::Side
        } else if i < w_end + NB + NB * self.k + NB {
            Group::Bias
        } else {
            Group::Taste
        }
    }

    /// The small part of behaviour b: [gain, side weights.., bias].
    pub fn small(&self, b: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(self.k + 2);
        v.push(self.params[self.gain_at(b)]);
        v.extend_from_slice(&self.params[self.side_at(b)..self.side_at(b) + self.k]);
        v.push(self.params[self.bias_at(b)]);
        v
    }

    pub fn set_small(&mut self, b: usize, v: &[f32]) {
        let (g, s, c) = (self.gain_at(b), self.side_at(b), self.bias_at(b));
        self.params[g] = v[0];
        self.params[s..s + self.k].copy_from_slice(&v[1..=self.k]);
        self.params[c] = v[self.k + 1];
    }

    /// What a tenant adapts for behaviour b: [gain, side.., bias, taste..].
    pub fn adapted(&self, b: usize) -> Vec<f32> {
        let mut v = self.small(b);
        v.extend_from_slice(self.taste(b));
        v
    }

    pub fn set_adapted(&mut self, b: usize, v: &[f32]) {
        self.set_small(b, &v[..self.k + 2]);
        let at = self.taste_at(b);
        let d = self.dims();
        self.params[at..at + d].copy_from_slice(&v[self.k + 2..]);
    }

    /// W_b · x: the text score learned across tenants, which adaptation
    /// never changes.
    pub fn text_score(&self, b: usize, x: &[f32]) -> f32 {
        let w = &self.params[self.w_at(b)..self.w_at(b) + self.t];
        w.iter().zip(x).map(|(a, c)| a * c).sum()
    }

    /// W_b split as it multiplies x = [v, u⊙v, cos(u, v)]: (the item's
    /// weights, the pair's weights, the cosine's weight).
    pub fn text_weights(&self, b: usize) -> (&[f32], &[f32], f32) {
        let d = self.dims();
        let w = &self.params[self.w_at(b)..self.w_at(b) + self.t];
        (&w[..d], &w[d..2 * d], w[2 * d])
    }

    /// τ_b · v, v = the item embedding (the first `dims` text features).
    pub fn taste_score(&self, b: usize, v: &[f32]) -> f32 {
        self.taste(b).iter().zip(v).map(|(a, c)| a * c).sum()
    }

    /// The logit from a precomputed text score `s` = W_b · x and taste
    /// score `q` = τ_b · v.
    pub fn logit_with(&self, b: usize, s: f32, q: f32, f: &[f32]) -> f32 {
        let a = &self.params[self.side_at(b)..self.side_at(b) + self.k];
        let side: f32 = a.iter().zip(f).map(|(p, q)| p * q).sum();
        self.params[self.gain_at(b)] * s + q + side + self.params[self.bias_at(b)]
    }

    pub fn logit(&self, b: usize, x: &[f32], f: &[f32]) -> f32 {
        let d = self.dims();
        self.logit_with(b, self.text_score(b, x), self.taste_score(b, &x[..d]), f)
    }

    /// The logit of a featurised event, its item's effect included.
    pub fn example_logit(&self, e: &Example) -> f32 {
        self.logit(e.b, &e.x, &e.f) + self.items.effect(e.item, e.b)
    }

    pub fn predict(&self, b: usize, x: &[f32], f: &[f32]) -> f64 {
        f64::from(sigmoid(self.logit(b, x, f)))
    }

    /// (text score, taste score) of a pair: the per-row path of scoring,
    /// where building x (769 floats) for each row cost more than the dot
    /// products themselves.
    pub fn scores_pair(&self, b: usize, u: &[f32], v: &[f32]) -> (f32, f32) {
        let d = v.len();
        let w = &self.params[self.w_at(b)..self.w_at(b) + self.t];
        let (wv, wuv) = (&w[..d], &w[d..2 * d]);
        let tau = self.taste(b);
        let (mut s, mut q, mut dot, mut nu, mut nv) = (0f32, 0f32, 0f32, 0f32, 0f32);
        for i in 0..d {
            let (a, c) = (u[i], v[i]);
            let p = a * c;
            s += wv[i] * c + wuv[i] * p;
            q += tau[i] * c;
            dot += p;
            nu += a * a;
            nv += c * c;
        }
        let denom = (nu * nv).sqrt();
        (
            s + w[2 * d] * if denom > 0.0 { dot / denom } else { 0.0 },
            q,
        )
    }

    /// `predict(b, &text_features(u, v), f)` plus the effect of the item
    /// whose key is `item` (None: an item known only by its embedding),
    /// without allocating.
    pub fn predict_pair(
        &self,
        b: usize,
        u: &[f32],
        v: &[f32],
        f: &[f32],
        item: Option<i64>,
    ) -> f64 {
        f64::from(sigmoid(self.logit_pair(b, u, v, f, item).1))
    }

    /// (text score W·x, logit) of `predict_pair`: what a credible interval
    /// needs beside the probability, with the same arithmetic.
    pub fn logit_pair(
        &self,
        b: usize,
        u: &[f32],
        v: &[f32],
        f: &[f32],
        item: Option<i64>,
    ) -> (f32, f32) {
        let (s, q) = self.scores_pair(b, u, v);
        (s, self.logit_with(b, s, q, f) + self.items.effect(item, b))
    }

    /// The logit of `predict_pair`, split into its terms with the same
    /// arithmetic, so that the terms add up to exactly that logit.
    pub fn explain_pair(
        &self,
        b: usize,
        u: &[f32],
        v: &[f32],
        f: &[f32],
        item: Option<i64>,
    ) -> Explanation {
        let (s, q) = self.scores_pair(b, u, v);
        let gain = self.params[self.gain_at(b)];
        let a = &self.params[self.side_at(b)..self.side_at(b) + self.k];
        let side: Vec<f32> = a.iter().zip(f).map(|(p, q)| p * q).collect();
        let bias = self.params[self.bias_at(b)];
        Explanation {
            text_score: s,
            gain,
            text: gain * s,
            taste: q,
            side_total: side.iter().sum(),
            side,
            bias,
            item: self.items.effect(item, b),
            logit: self.logit_with(b, s, q, f) + self.items.effect(item, b),
        }
    }

    /// How far each group of `other` lies from this head: for gain and bias
    /// the mean absolute difference over behaviours, for side weights and
    /// text weights (W) the mean Euclidean distance per behaviour.
    pub fn moved(&self, other: &Head) -> Moved {
        let dist = |r: std::ops::Range<usize>| -> f64 {
            r.map(|i| f64::from(other.params[i] - self.params[i]).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut m = Moved::default();
        for b in 0..NB {
            m.text += dist(self.w_at(b)..self.w_at(b) + self.t) / NB as f64;
            m.gain += dist(self.gain_at(b)..self.gain_at(b) + 1) / NB as f64;
            m.side += dist(self.side_at(b)..self.side_at(b) + self.k) / NB as f64;
            m.bias += dist(self.bias_at(b)..self.bias_at(b) + 1) / NB as f64;
            m.taste += dist(self.taste_at(b)..self.taste_at(b) + self.dims()) / NB as f64;
        }
        m
    }

    /// Mean log-loss of `exs` (+ ½·l2·‖W‖²) and its gradient. `scores`, when
    /// given, are precomputed text scores (valid while W is not trained).
    pub fn loss_grad(
        &self,
        exs: &[Example],
        scores: Option<&[f32]>,
        l2: f32,
        grad: &mut [f32],
    ) -> f32 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        if exs.is_empty() {
            return 0.0;
        }
        let n = exs.len() as f32;
        let dims = self.dims();
        let mut loss = 0f32;
        for (i, e) in exs.iter().enumerate() {
            let s = scores.map_or_else(|| self.text_score(e.b, &e.x), |s| s[i]);
            let z = self.logit_with(e.b, s, self.taste_score(e.b, &e.x[..dims]), &e.f)
                + self.items.effect(e.item, e.b);
            loss += log_loss(z, e.y);
            let d = (sigmoid(z) - e.y) / n;
            let gain = self.params[self.gain_at(e.b)];
            if scores.is_none() {
                let w0 = self.w_at(e.b);
                for (j, xj) in e.x.iter().enumerate() {
                    grad[w0 + j] += d * gain * xj;
                }
            }
            grad[self.gain_at(e.b)] += d * s;
            let a0 = self.side_at(e.b);
            for (j, fj) in e.f.iter().enumerate() {
                grad[a0 + j] += d * fj;
            }
            grad[self.bias_at(e.b)] += d;
            let t0 = self.taste_at(e.b);
            for (j, vj) in e.x[..dims].iter().enumerate() {
                grad[t0 + j] += d * vj;
            }
        }
        loss /= n;
        if l2 > 0.0 {
            for i in 0..NB * self.t {
                loss += 0.5 * l2 * self.params[i] * self.params[i];
                grad[i] += l2 * self.params[i];
            }
        }
        loss
    }

    pub fn mean_loss(&self, exs: &[Example]) -> f32 {
        if exs.is_empty() {
            return 0.0;
        }
        exs.iter()
            .map(|e| log_loss(self.example_logit(e), e.y))
            .sum::<f32>()
            / exs.len() as f32
    }
}

/// One score, term by term: `logit = text + taste + side_total + bias + item`,
/// where `text = gain · text_score` (text_score = W_b · x, learned across all
/// tenants) and `taste = τ_b · v` (the tenant's own preference; 0 for the
/// global head). Gain, taste, side weights and bias are what a tenant adapts;
/// `item` is the item's own effect (items.rs).
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    pub text_score: f32,
    pub gain: f32,
    pub text: f32,
    pub taste: f32,
    pub side: Vec<f32>,
    pub side_total: f32,
    pub bias: f32,
    /// the item's own effect (items.rs): what sells beyond the text
    pub item: f32,
    pub logit: f32,
}

/// Distance moved per parameter group (see `Head::moved`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Moved {
    pub text: f64,
    pub gain: f64,
    pub side: f64,
    pub bias: f64,
    pub taste: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn toy(n: usize, dims: usize, k: usize, seed: u64) -> Vec<Example> {
        let mut r = Rng::new(seed);
        let mut unit = || (r.next_u64() % 2000) as f32 / 1000.0 - 1.0;
        (0..n)
            .map(|i| {
                let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
                let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
                let f: Vec<f32> = (0..k).map(|_| unit()).collect();
                let y = if u[0] * v[0] + f.first().copied().unwrap_or(0.0) > 0.0 {
                    1.0
                } else {
                    0.0
                };
                Example {
                    x: text_features(&u, &v),
                    f,
                    b: i % NB,
                    y,
                    item: None,
                }
            })
            .collect()
    }

    #[test]
    fn explanation_terms_add_up_to_the_predicted_logit() {
        let exs = toy(20, 6, 3, 9);
        let mut h = Head::new(6, 3);
        let mut r = Rng::new(4);
        for p in h.params.iter_mut() {
            *p = (r.next_u64() % 2001) as f32 / 1000.0 - 1.0;
        }
        // one item with an effect, one without
        h.items = crate::items::ItemEffects::from_stored(
            vec![42],
            vec![0.25, -0.5, 0.75, 1.0],
            None,
            crate::prior::FROZEN,
        )
        .unwrap();
        let mut r = Rng::new(5);
        for (i, e) in exs.iter().enumerate() {
            let key = Some(if i % 2 == 0 { 42 } else { 7 });
            let u: Vec<f32> = (0..6)
                .map(|_| (r.next_u64() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let v: Vec<f32> = (0..6)
                .map(|_| (r.next_u64() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            let x = h.explain_pair(e.b, &u, &v, &e.f, key);
            // the same f32 arithmetic: exact, not approximate
            assert_eq!(x.text + x.taste + x.side_total + x.bias + x.item, x.logit);
            assert_eq!(
                f64::from(sigmoid(x.logit)),
                h.predict_pair(e.b, &u, &v, &e.f, key)
            );
            let want = if i % 2 == 0 {
                [0.25, -0.5, 0.75, 1.0][e.b]
            } else {
                0.0
            };
            assert_eq!(x.item, want);
            assert_eq!(x.side.len(), 3);
            assert_eq!(x.text, x.gain * x.text_score);
        }
    }

    #[test]
    fn moved_measures_each_group() {
        let a = Head::new(4, 2);
        let mut b = a.clone();
        assert_eq!(a.moved(&b), Moved::default());
        for beh in 0..NB {
            let mut s = b.small(beh);
            s[0] += 0.5; // gain
            s[1] += 3.0; // side 0
            s[2] += 4.0; // side 1: |(3, 4)| = 5
            b.set_small(beh, &s);
        }
        let m = a.moved(&b);
        assert!((m.gain - 0.5).abs() < 1e-9 && (m.side - 5.0).abs() < 1e-6);
        assert_eq!((m.text, m.bias), (0.0, 0.0));
    }

    #[test]
    fn predict_pair_equals_predict_on_text_features() {
        let mut r = Rng::new(9);
        let mut unit = || (r.next_u64() % 2000) as f32 / 1000.0 - 1.0;
        let mut h = Head::new(16, 3);
        for p in h.params.iter_mut() {
            *p = unit();
        }
        for _ in 0..20 {
            let u: Vec<f32> = (0..16).map(|_| unit()).collect();
            let v: Vec<f32> = (0..16).map(|_| unit()).collect();
            let f: Vec<f32> = (0..3).map(|_| unit()).collect();
            for b in 0..NB {
                let want = h.predict(b, &text_features(&u, &v), &f);
                let got = h.predict_pair(b, &u, &v, &f, None);
                assert!((want - got).abs() < 1e-5, "{want} vs {got}");
            }
        }
        // a zero vector has no direction: cos counts as 0, as in text_features
        let z = vec![0f32; 16];
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let f = [0.5f32, 0.0, -1.0];
        let want = h.predict(0, &text_features(&z, &v), &f);
        assert!((want - h.predict_pair(0, &z, &v, &f, None)).abs() < 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let exs = toy(12, 3, 2, 1);
        let mut h = Head::new(3, 2);
        let mut r = Rng::new(5);
        for p in h.params.iter_mut() {
            *p += (r.next_u64() % 1000) as f32 / 1000.0 - 0.5;
        }
        let mut grad = vec![0f32; h.params.len()];
        h.loss_grad(&exs, None, 0.1, &mut grad);
        let eps = 1e-3f32;
        let mut scratch = vec![0f32; h.params.len()];
        for i in 0..h.params.len() {
            let keep = h.params[i];
            h.params[i] = keep + eps;
            let up = h.loss_grad(&exs, None, 0.1, &mut scratch);
            h.params[i] = keep - eps;
            let down = h.loss_grad(&exs, None, 0.1, &mut scratch);
            h.params[i] = keep;
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (numeric - grad[i]).abs() < 2e-3,
                "param {i} ({:?}): analytic {} numeric {numeric}",
                h.group_of(i),
                grad[i]
            );
        }
    }

    #[test]
    fn precomputed_scores_give_the_small_part_the_same_gradient() {
        let exs = toy(10, 4, 1, 2);
        let mut h = Head::new(4, 1);
        h.params
            .iter_mut()
            .enumerate()
            .for_each(|(i, p)| *p += (i % 7) as f32 * 0.01);
        let scores: Vec<f32> = exs.iter().map(|e| h.text_score(e.b, &e.x)).collect();
        let (mut g1, mut g2) = (vec![0f32; h.params.len()], vec![0f32; h.params.len()]);
        let l1 = h.loss_grad(&exs, None, 0.0, &mut g1);
        let l2 = h.loss_grad(&exs, Some(&scores), 0.0, &mut g2);
        assert!((l1 - l2).abs() < 1e-6);
        for i in 0..h.params.len() {
            if h.group_of(i) != Group::W {
                assert!((g1[i] - g2[i]).abs() < 1e-6);
            } else {
                assert_eq!(g2[i], 0.0);
            }
        }
    }

    #[test]
    fn behaviours_and_text_features() {
        assert_eq!(behaviour_index("cart"), Ok(2));
        let e = behaviour_index("wishlist").unwrap_err();
        assert!(e.contains("browse, click, cart, purchase"), "{e}");
        let x = text_features(&[1.0, 0.0], &[0.5, 0.5]);
        assert_eq!(x.len(), 5);
        assert_eq!(&x[..4], &[0.5, 0.5, 0.5, 0.0]);
        assert!((x[4] - 0.70710677).abs() < 1e-6);
    }

    #[test]
    fn weights_stored_before_the_taste_decode_and_score_the_same() {
        let mut r = Rng::new(12);
        let mut unit = || (r.next_u64() % 2000) as f32 / 1000.0 - 1.0;
        let (dims, k) = (6, 2);
        let legacy: Vec<f32> = (0..Head::legacy_len(dims, k)).map(|_| unit()).collect();
        let h = Head::from_weights(2 * dims + 1, k, legacy.clone()).unwrap();
        assert_eq!(h.params.len(), Head::len_for(dims, k));
        assert_eq!(&h.params[..legacy.len()], &legacy[..]);
        assert!(h.taste(NB - 1).iter().all(|&t| t == 0.0));
        // the 0.1.x formula, by hand: g·(W·x) + A·f + c
        let u: Vec<f32> = (0..dims).map(|_| unit()).collect();
        let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
        let f = [0.3f32, -0.7];
        let x = text_features(&u, &v);
        let t = 2 * dims + 1;
        for b in 0..NB {
            let s: f32 = legacy[b * t..(b + 1) * t]
                .iter()
                .zip(&x)
                .map(|(a, c)| a * c)
                .sum();
            let g = legacy[NB * t + b];
            let a = &legacy[NB * t + NB + b * k..NB * t + NB + (b + 1) * k];
            let c = legacy[NB * t + NB + NB * k + b];
            let want = g * s + a[0] * f[0] + a[1] * f[1] + c;
            assert!((h.logit(b, &x, &f) - want).abs() < 1e-5);
        }
        // other lengths are refused, with what was expected
        let e = Head::from_weights(2 * dims + 1, k, vec![0.0; 10]).unwrap_err();
        assert!(e.contains("expected"), "{e}");
        assert!(Head::from_weights(0, k, vec![]).is_err());
    }

    #[test]
    fn the_taste_adds_its_own_term() {
        let mut h = Head::new(4, 0);
        let v = [0.5f32, -0.5, 0.5, -0.5];
        let u = [1.0f32, 0.0, 0.0, 0.0];
        let before = h.explain_pair(1, &u, &v, &[], None);
        let mut a = h.adapted(1);
        a[2..].copy_from_slice(&[2.0, 0.0, 0.0, -2.0]); // gain, bias, then τ
        h.set_adapted(1, &a);
        let after = h.explain_pair(1, &u, &v, &[], None);
        assert_eq!(before.taste, 0.0);
        assert_eq!(after.taste, 2.0);
        assert_eq!(after.logit, before.logit + 2.0);
        // other behaviours keep their own (zero) taste
        assert_eq!(h.explain_pair(0, &u, &v, &[], None).taste, 0.0);
    }
}
