//! The encoder being trained: BERT with mean pooling and L2 normalisation,
//! the same computation as the ONNX graph `models/export.py` writes (every
//! scripts/finetune run checks the two against each other with
//! models/check_finetuned.py before installing). Variable names are the
//! safetensors names, so what is trained goes back through the existing
//! export unchanged.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{Linear, VarBuilder};

#[derive(Clone, Debug, serde::Deserialize)]
pub struct Config {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
}

/// LayerNorm written from tensor ops: candle-nn's fused kernel has no
/// backward pass.
struct Norm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl Norm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            w: vb.get(size, "weight")?,
            b: vb.get(size, "bias")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let xn = xc.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        xn.broadcast_mul(&self.w)?.broadcast_add(&self.b)
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    inter: Linear,
    out: Linear,
    out_norm: Norm,
}

pub struct Bert {
    words: Tensor,
    positions: Tensor,
    token_type0: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
}

/// Token ids and attention mask of a padded batch, [batch, seq] each.
pub struct Batch {
    pub ids: Tensor,
    pub mask: Tensor,
}

impl Bert {
    pub fn new(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let h = cfg.hidden_size;
        let emb = vb.pp("embeddings");
        let lin = |i: usize, o: usize, p: &str, vb: &VarBuilder| candle_nn::linear(i, o, vb.pp(p));
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            layers.push(Layer {
                q: lin(h, h, "attention.self.query", &l)?,
                k: lin(h, h, "attention.self.key", &l)?,
                v: lin(h, h, "attention.self.value", &l)?,
                attn_out: lin(h, h, "attention.output.dense", &l)?,
                attn_norm: Norm::new(h, cfg.layer_norm_eps, l.pp("attention.output.LayerNorm"))?,
                inter: lin(h, cfg.intermediate_size, "intermediate.dense", &l)?,
                out: lin(cfg.intermediate_size, h, "output.dense", &l)?,
                out_norm: Norm::new(h, cfg.layer_norm_eps, l.pp("output.LayerNorm"))?,
            });
        }
        let types = emb.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?;
        Ok(Self {
            words: emb.get((cfg.vocab_size, h), "word_embeddings.weight")?,
            positions: emb.get(
                (cfg.max_position_embeddings, h),
                "position_embeddings.weight",
            )?,
            token_type0: types.get(0)?,
            emb_norm: Norm::new(h, cfg.layer_norm_eps, emb.pp("LayerNorm"))?,
            layers,
            heads: cfg.num_attention_heads,
            head_dim: h / cfg.num_attention_heads,
        })
    }

    /// Unit-length sentence embeddings [batch, hidden], all layers run.
    pub fn embed(&self, batch: &Batch, frozen_below: usize) -> Result<Tensor> {
        let x = self.lower(batch, frozen_below)?;
        self.upper(&x, &batch.mask, frozen_below)
    }

    /// The hidden states after the embeddings and the layers below
    /// `frozen_below` [batch, seq, hidden], without a gradient: they do not
    /// change while the top layers train, so the trainer computes them
    /// once per text (train::Model's cache).
    pub fn lower(&self, batch: &Batch, frozen_below: usize) -> Result<Tensor> {
        let (b, t) = batch.ids.dims2()?;
        let words = self.words.index_select(&batch.ids.flatten_all()?, 0)?;
        let words = words.reshape((b, t, ()))?;
        let pos = self.positions.narrow(0, 0, t)?;
        let x = words
            .broadcast_add(&pos)?
            .broadcast_add(&self.token_type0)?;
        let mut x = self.emb_norm.forward(&x)?;
        let ext = extended_mask(&batch.mask)?;
        for l in &self.layers[..frozen_below] {
            x = self.layer(l, &x, &ext)?;
        }
        Ok(x.detach())
    }

    /// The layers from `frozen_below` up, then mean pooling over the real
    /// tokens and L2 normalisation. Fine-tuning only the top of the network
    /// is cheaper on 2 cores and moves the geometry that retrieval relies
    /// on less.
    pub fn upper(&self, lower: &Tensor, mask: &Tensor, frozen_below: usize) -> Result<Tensor> {
        let ext = extended_mask(mask)?;
        let mut x = lower.clone();
        for l in &self.layers[frozen_below..] {
            x = self.layer(l, &x, &ext)?;
        }
        let maskf = mask.to_dtype(DType::F32)?;
        let m3 = maskf.unsqueeze(2)?;
        let summed = x.broadcast_mul(&m3)?.sum(1)?;
        let count = maskf.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&count)?;
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        mean.broadcast_div(&norm)
    }

    fn layer(&self, l: &Layer, x: &Tensor, ext: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        let split = |y: Tensor| -> Result<Tensor> {
            y.reshape((b, t, self.heads, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = split(l.q.forward(x)?)?;
        let k = split(l.k.forward(x)?)?;
        let v = split(l.v.forward(x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(ext)?;
        let probs = softmax_last(&scores)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, ()))?;
        let x = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + x)?)?;
        let hidden = l.inter.forward(&x)?.gelu_erf()?;
        l.out_norm.forward(&(l.out.forward(&hidden)? + &x)?)
    }
}

/// The additive attention mask [B,1,1,T]: 0 where attended, -1e4 on
/// padding, as in the ONNX graph.
fn extended_mask(mask: &Tensor) -> Result<Tensor> {
    let (b, t) = mask.dims2()?;
    (mask.to_dtype(DType::F32)?.reshape((b, 1, 1, t))? - 1.0)? * 10000.0
}

/// Softmax over the last axis, from differentiable ops.
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Pads token id lists into a batch.
pub fn pad(seqs: &[Vec<u32>], device: &Device) -> Result<Batch> {
    let t = seqs.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * t);
    let mut mask = Vec::with_capacity(seqs.len() * t);
    for s in seqs {
        ids.extend(s.iter().copied());
        mask.extend(std::iter::repeat_n(1u32, s.len()));
        ids.extend(std::iter::repeat_n(0u32, t - s.len()));
        mask.extend(std::iter::repeat_n(0u32, t - s.len()));
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (seqs.len(), t), device)?,
        mask: Tensor::from_vec(mask, (seqs.len(), t), device)?,
    })
}
