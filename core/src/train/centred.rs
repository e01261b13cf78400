//! Events as adaptation sees them, with the fixed text score precomputed
//! and the item centred on the tenant's mean item.

use crate::head::{Example, Head};
use crate::metrics::log_loss;

/// An event as adaptation sees it: W is fixed, so the text score W_b · x
/// is computed once instead of once per step and fold.
#[derive(Clone, Copy)]
pub(super) struct Centred<'a> {
    pub(super) s: f32,
    /// the item embedding, which the taste τ_b weighs
    pub(super) v: &'a [f32],
    pub(super) f: &'a [f32],
    pub(super) b: usize,
    pub(super) y: f32,
    /// the item's effect under the head adaptation starts from: fixed
    /// while the adapted part moves (items.rs learns it afterwards)
    pub(super) o: f32,
}

impl Centred<'_> {
    /// z · p for z = [s, f.., 1, v − center..]. `p` covers the taste (and
    /// `center` is then the embedding's length) or stops at the bias.
    pub(super) fn dot(&self, p: &[f64], center: &[f64]) -> f64 {
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
    pub(super) fn axpy(&self, a: f64, out: &mut [f64], center: &[f64]) {
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

pub(super) fn centred<'a>(
    h: &Head,
    exs: impl IntoIterator<Item = &'a Example>,
) -> Vec<Centred<'a>> {
    let d = h.dims();
    exs.into_iter()
        .map(|e| Centred {
            s: h.text_score(e.b, &e.x),
            v: &e.x[..d],
            f: &e.f,
            b: e.b,
            y: e.y,
            o: h.items.effect(e.item, e.b),
        })
        .collect()
}

pub(super) fn centred_logit(h: &Head, e: &Centred) -> f32 {
    h.logit_with(e.b, e.s, h.taste_score(e.b, e.v), e.f) + e.o
}

/// Mean log-loss, as `Head::mean_loss`, from precomputed text scores.
pub(super) fn centred_loss(h: &Head, exs: &[Centred]) -> f32 {
    if exs.is_empty() {
        return 0.0;
    }
    exs.iter()
        .map(|e| log_loss(centred_logit(h, e), e.y))
        .sum::<f32>()
        / exs.len() as f32
}
