//! The objective and one optimisation step.
//!
//! What is optimised, per batch (data::mixed, or data::episode for one
//! tenant's events):
//!   * the head's own text score, logit_b = W_b · [v, u⊙v, cos(u, v)] + c_b
//!     (core/src/head.rs, the global head's text part), against the
//!     shoppers' labels: the encoder learns what the head will read;
//!   * an in-batch contrastive term on positive (context, item) pairs, the
//!     usual two-tower objective: a context's engaged item scores above the
//!     batch's other items. It keeps the space a similarity space, which
//!     similar-product retrieval relies on.
//!
//! W, c and a bias per tenant are an auxiliary head: discarded after
//! training, since ecom_meta_train fits the real heads on the new encoder.

use std::cell::RefCell;
use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarMap;

use crate::bert::{pad, Bert, Config};
use crate::data::Events;
use pg_ecom_core::behaviour::NB;

pub struct Model {
    pub varmap: VarMap,
    pub bert: Bert,
    /// auxiliary head [behaviours, 2·dims + 1] and biases [behaviours]
    pub w: Var,
    pub c: Var,
    /// a bias per tenant: a store's base rate is not the encoder's to
    /// learn (the real head's bias is adapted per tenant)
    pub tb: Var,
    pub frozen_below: usize,
    pub device: Device,
    hidden: usize,
    cache: RefCell<Cache>,
}

struct Pairs {
    u: Tensor,
    v: Tensor,
    v_all: Tensor,
}

/// The frozen layers' output per text: [tokens, hidden] each.
#[derive(Default)]
struct Cache {
    map: HashMap<usize, Tensor>,
    floats: usize,
}

/// At most 1.5 GB of cached hidden states (4 bytes a float).
const CACHE_FLOATS: usize = 375_000_000;

pub struct Losses {
    pub total: Tensor,
    pub bce: f32,
    pub nce: f32,
}

impl Model {
    pub fn new(
        cfg: &Config,
        weights: &str,
        train_layers: usize,
        tenants: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut varmap = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, DType::F32, device);
        let bert = Bert::new(cfg, vb)?;
        varmap.load(weights)?;
        let d = cfg.hidden_size;
        Ok(Self {
            varmap,
            bert,
            w: Var::zeros((NB, 2 * d + 1), DType::F32, device)?,
            c: Var::zeros(NB, DType::F32, device)?,
            tb: Var::zeros(tenants.max(1), DType::F32, device)?,
            frozen_below: cfg.num_hidden_layers.saturating_sub(train_layers),
            device: device.clone(),
            hidden: d,
            cache: RefCell::new(Cache::default()),
        })
    }

    /// The encoder's variables that are trained: those of the top layers.
    pub fn trained_vars(&self) -> Vec<(String, Var)> {
        let mut out: Vec<(String, Var)> = self
            .varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| layer_of(n).is_some_and(|l| l >= self.frozen_below))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Embeddings of texts (by index into `ev.texts`), in chunks; with
    /// `grad` false nothing is kept for a backward pass. The frozen lower
    /// layers' output is computed once per text and kept while it fits
    /// the cache's bound.
    pub fn embed(&self, ev: &Events, texts: &[usize], grad: bool) -> Result<Tensor> {
        self.fill_cache(ev, texts)?;
        let mut parts = Vec::new();
        for chunk in texts.chunks(64) {
            let cache = self.cache.borrow();
            let t = chunk.iter().map(|&i| ev.texts[i].len()).max().unwrap_or(1);
            let h = self.hidden;
            let mut rows = Vec::with_capacity(chunk.len());
            let mut mask = Vec::with_capacity(chunk.len() * t);
            for &i in chunk {
                let n = ev.texts[i].len();
                let x = match cache.map.get(&i) {
                    Some(x) => x.clone(),
                    None => {
                        let b = pad(&[ev.texts[i].clone()], &self.device)?;
                        self.bert.lower(&b, self.frozen_below)?.squeeze(0)?
                    }
                };
                rows.push(if n < t {
                    Tensor::cat(
                        &[&x, &Tensor::zeros((t - n, h), DType::F32, &self.device)?],
                        0,
                    )?
                } else {
                    x
                });
                mask.extend(std::iter::repeat_n(1u32, n));
                mask.extend(std::iter::repeat_n(0u32, t - n));
            }
            drop(cache);
            let lower = Tensor::stack(&rows, 0)?;
            let mask = Tensor::from_vec(mask, (chunk.len(), t), &self.device)?;
            let e = self.bert.upper(&lower, &mask, self.frozen_below)?;
            parts.push(if grad { e } else { e.detach() });
        }
        Tensor::cat(&parts, 0)
    }

    /// Runs the frozen layers for the texts not cached yet, in batches of
    /// similar length.
    fn fill_cache(&self, ev: &Events, texts: &[usize]) -> Result<()> {
        let mut todo: Vec<usize> = {
            let cache = self.cache.borrow();
            if cache.floats >= CACHE_FLOATS {
                return Ok(());
            }
            texts
                .iter()
                .copied()
                .filter(|i| !cache.map.contains_key(i))
                .collect()
        };
        todo.sort_by_key(|&i| ev.texts[i].len());
        todo.dedup();
        for chunk in todo.chunks(64) {
            let seqs: Vec<Vec<u32>> = chunk.iter().map(|&i| ev.texts[i].clone()).collect();
            let lower = self
                .bert
                .lower(&pad(&seqs, &self.device)?, self.frozen_below)?;
            let mut cache = self.cache.borrow_mut();
            for (j, &i) in chunk.iter().enumerate() {
                let n = ev.texts[i].len();
                let x = lower.get(j)?.narrow(0, 0, n)?.contiguous()?;
                cache.floats += n * self.hidden;
                cache.map.insert(i, x);
            }
            if cache.floats >= CACHE_FLOATS {
                break;
            }
        }
        Ok(())
    }

    /// The auxiliary head's logits for pairs of unit embeddings.
    pub fn logits(
        &self,
        u: &Tensor,
        v: &Tensor,
        behaviour: &Tensor,
        tenant: &Tensor,
    ) -> Result<Tensor> {
        let uv = (u * v)?;
        let cos = uv.sum_keepdim(1)?;
        let x = Tensor::cat(&[v, &uv, &cos], 1)?;
        let w = self.w.as_tensor().index_select(behaviour, 0)?;
        let c = self.c.as_tensor().index_select(behaviour, 0)?;
        let tb = self.tb.as_tensor().index_select(tenant, 0)?;
        ((x * w)?.sum(1)? + c)? + tb
    }

    /// Behaviour and tenant indices of events, as tensors.
    fn keys(&self, ev: &Events, events: &[usize]) -> Result<(Tensor, Tensor)> {
        let beh: Vec<u32> = events
            .iter()
            .map(|&i| ev.events[i].behaviour as u32)
            .collect();
        let ten: Vec<u32> = events.iter().map(|&i| ev.events[i].tenant as u32).collect();
        Ok((
            Tensor::from_vec(beh, events.len(), &self.device)?,
            Tensor::from_vec(ten, events.len(), &self.device)?,
        ))
    }

    /// The embeddings of events' contexts (u) and items (v), one row per
    /// event, and of the distinct items (the contrastive term's candidates).
    fn pairs(&self, ev: &Events, events: &[usize], grad: bool) -> Result<Pairs> {
        let (ctx_texts, ctx_pos) = distinct(events.iter().map(|&i| ev.events[i].context));
        let (item_texts, item_pos) = distinct(events.iter().map(|&i| ev.events[i].item));
        let u_all = self.embed(ev, &ctx_texts, grad)?;
        let v_all = self.embed(ev, &item_texts, grad)?;
        let idx = |p: &[u32]| Tensor::from_vec(p.to_vec(), p.len(), &self.device);
        Ok(Pairs {
            u: u_all.index_select(&idx(&ctx_pos)?, 0)?,
            v: v_all.index_select(&idx(&item_pos)?, 0)?,
            v_all,
        })
    }

    /// The loss of one batch of events (indices into `ev.events`).
    pub fn loss(
        &self,
        ev: &Events,
        batch: &[usize],
        nce_weight: f64,
        temperature: f64,
    ) -> Result<Losses> {
        let Pairs { u, v, v_all } = self.pairs(ev, batch, true)?;
        let (beh, ten) = self.keys(ev, batch)?;
        let y: Vec<f32> = batch
            .iter()
            .map(|&i| ev.events[i].label as u8 as f32)
            .collect();
        let logit = self.logits(&u, &v, &beh, &ten)?;
        let y = Tensor::from_vec(y, batch.len(), &self.device)?;
        let bce = (softplus(&logit)? - (&logit * &y)?)?.mean_all()?;
        let mut total = bce.clone();
        let mut nce_value = 0.0;
        let pos: Vec<u32> = (0..batch.len() as u32)
            .filter(|&i| ev.events[batch[i as usize]].label)
            .collect();
        if nce_weight > 0.0 && pos.len() >= 2 && v_all.dim(0)? >= 2 {
            let p = Tensor::from_vec(pos.clone(), pos.len(), &self.device)?;
            let up = u.index_select(&p, 0)?;
            let vp = v.index_select(&p, 0)?;
            let sims = (up.matmul(&v_all.t()?)? / temperature)?;
            let own = ((&up * &vp)?.sum(1)? / temperature)?;
            let nce = (sims.log_sum_exp(1)? - own)?.mean_all()?;
            nce_value = nce.to_scalar::<f32>()?;
            total = (total + (nce * nce_weight)?)?;
        }
        Ok(Losses {
            bce: bce.to_scalar::<f32>()?,
            nce: nce_value,
            total,
        })
    }

    /// Mean within-tenant AUC of the auxiliary head on `events`, scored
    /// with the encoder as it is now.
    pub fn auc(&self, ev: &Events, events: &[usize]) -> Result<Option<f64>> {
        let (scores, tenants, labels) = self.score(ev, events)?;
        Ok(crate::data::mean_auc(&tenants, &labels, &scores))
    }

    fn score(&self, ev: &Events, events: &[usize]) -> Result<(Vec<f32>, Vec<usize>, Vec<bool>)> {
        let Pairs { u, v, .. } = self.pairs(ev, events, false)?;
        let (beh, ten) = self.keys(ev, events)?;
        let s = self.logits(&u, &v, &beh, &ten)?.detach().to_vec1::<f32>()?;
        Ok((
            s,
            events.iter().map(|&i| ev.events[i].tenant).collect(),
            events.iter().map(|&i| ev.events[i].label).collect(),
        ))
    }

    /// Fits the auxiliary head alone on fixed embeddings of `events` (the
    /// encoder as loaded), so that fine-tuning starts from the head a
    /// stock encoder gets and its first gradients mean something.
    pub fn warm_start(&self, ev: &Events, events: &[usize], iters: usize) -> Result<()> {
        let Pairs { u, v, .. } = self.pairs(ev, events, false)?;
        let (beh, ten) = self.keys(ev, events)?;
        let y: Vec<f32> = events
            .iter()
            .map(|&i| ev.events[i].label as u8 as f32)
            .collect();
        let y = Tensor::from_vec(y, events.len(), &self.device)?;
        let mut opt = crate::adam::Adam::new(vec![
            ("w".into(), self.w.clone(), 0.01),
            ("c".into(), self.c.clone(), 0.01),
            ("tb".into(), self.tb.clone(), 0.01),
        ])?;
        for _ in 0..iters {
            let logit = self.logits(&u, &v, &beh, &ten)?;
            let loss = (softplus(&logit)? - (&logit * &y)?)?.mean_all()?;
            // a light ridge: 769 weights on a few thousand events
            let ridge = (self.w.as_tensor().sqr()?.sum_all()? * 1e-4)?;
            let grads = (loss + ridge)?.backward()?;
            opt.step(&grads, 1.0)?;
        }
        Ok(())
    }
}

/// The layer a variable belongs to ("encoder.layer.3.…" → 3); None for the
/// embeddings.
pub fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("encoder.layer.")?;
    rest.split('.').next()?.parse().ok()
}

fn softplus(x: &Tensor) -> Result<Tensor> {
    // log(1 + e^x) = max(x, 0) + log(1 + e^-|x|), finite for every x
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

/// The distinct values in order of first sight, and each input's position
/// among them.
pub fn distinct(it: impl Iterator<Item = usize>) -> (Vec<usize>, Vec<u32>) {
    let mut seen = HashMap::new();
    let mut values = Vec::new();
    let mut pos = Vec::new();
    for x in it {
        let p = *seen.entry(x).or_insert_with(|| {
            values.push(x);
            values.len() - 1
        });
        pos.push(p as u32);
    }
    (values, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_keeps_first_sight_order() {
        let (v, p) = distinct([5, 3, 5, 7, 3].into_iter());
        assert_eq!(v, vec![5, 3, 7]);
        assert_eq!(p, vec![0, 1, 0, 2, 1]);
    }

    #[test]
    fn layers_of_names() {
        assert_eq!(layer_of("encoder.layer.4.output.dense.weight"), Some(4));
        assert_eq!(
            layer_of("encoder.layer.11.attention.self.query.bias"),
            Some(11)
        );
        assert_eq!(layer_of("embeddings.word_embeddings.weight"), None);
    }

    #[test]
    fn softplus_is_finite_and_exact() {
        let x = Tensor::new(&[-100f32, -1.0, 0.0, 1.0, 100.0], &Device::Cpu).unwrap();
        let y: Vec<f32> = softplus(&x).unwrap().to_vec1().unwrap();
        let want = [
            0.0f32,
            0.313_261_7,
            std::f32::consts::LN_2,
            1.313_261_7,
            100.0,
        ];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{y:?}");
        }
    }
}
