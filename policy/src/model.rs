//! A compact Llama/Qwen2 decoder whose every operation carries gradients.
//!
//! candle-nn's fused `softmax_last_dim`, `rms_norm` and rotary kernels record no backward pass, so
//! RMSNorm, the attention softmax, RoPE and the SwiGLU gate come from `crate::ops`: CPU kernels of
//! our own with backward passes, or elementary ops on other devices. Sampling and training run the
//! same code, which is what makes their log-probs agree to float precision.

use anyhow::{Result, ensure};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::config::ModelConfig;
use crate::ops;

/// Additive mask value for positions a query may not see: large and finite, because `-inf` turns a
/// fully masked row (a left-padding query) into NaN.
pub const MASKED: f32 = -1e9;

struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn new(
        vb: &VarBuilder<'_>,
        name: &str,
        input: usize,
        output: usize,
        bias: bool,
    ) -> Result<Self> {
        let vb = vb.pp(name);
        let bound = 1.0 / (input as f64).sqrt();
        let weight = vb.get_with_hints(
            (output, input),
            "weight",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        let bias = if bias {
            Some(vb.get_with_hints(output, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::linear(x, &self.weight)?;
        Ok(match &self.bias {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        })
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
    input_norm: Tensor,
    post_attention_norm: Tensor,
}

/// Per-layer keys and values of the tokens seen so far, for incremental decoding.
///
/// Each layer's keys and values live in a buffer `(B, Hkv, capacity, D)` that new tokens are
/// written into, and attention reads the filled part in place: concatenating onto the past every
/// step would copy the whole cache per token (a visible share of sampling time; see
/// docs/performance.md). Inference only: the written values carry no gradient.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// A cache whose buffers hold `tokens` positions before they have to grow.
    pub fn with_capacity(tokens: usize) -> Self {
        Self {
            capacity: tokens,
            ..Self::default()
        }
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rebuilds the batch so that its sequence `b` holds what sequence `sources[b]` held: a prompt
    /// shared by several sequences is run once and its keys and values copied to each of them.
    pub fn gather(&mut self, sources: &[u32]) -> Result<()> {
        let Some(device) = self.layers.iter().flatten().map(|(k, _)| k.device()).next() else {
            return Ok(());
        };
        let sources = Tensor::from_slice(sources, sources.len(), device)?;
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(&sources, 0)?;
            *v = v.index_select(&sources, 0)?;
        }
        Ok(())
    }

    /// Writes the keys and values `(B, Hkv, T, D)` of `new` tokens of `layer` after the `len`
    /// cached ones and returns views of all `len + T` of them. Grows the buffers (doubling) when
    /// they are full.
    fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (batch, heads, new, dim) = k.dims4()?;
        let filled = self.len + new;
        let buffers = match self.layers[layer].take() {
            Some((keys, values)) if keys.dim(2)? >= filled => (keys, values),
            old => {
                let capacity = filled.max(self.capacity).max(2 * self.len);
                let grown = |past: Option<&Tensor>| -> Result<Tensor> {
                    let buffer =
                        Tensor::zeros((batch, heads, capacity, dim), k.dtype(), k.device())?;
                    if let Some(past) = past.filter(|_| self.len > 0) {
                        buffer.slice_set(&past.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    }
                    Ok(buffer)
                };
                (
                    grown(old.as_ref().map(|(keys, _)| keys))?,
                    grown(old.as_ref().map(|(_, values)| values))?,
                )
            }
        };
        buffers.0.slice_set(&k.contiguous()?, 2, self.len)?;
        buffers.1.slice_set(&v.contiguous()?, 2, self.len)?;
        let views = (
            buffers.0.narrow(2, 0, filled)?,
            buffers.1.narrow(2, 0, filled)?,
        );
        self.layers[layer] = Some(buffers);
        Ok(views)
    }
}

/// The decoder. Its tensors are the variables of the `VarMap` it was built from.
pub struct Decoder {
    config: ModelConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Option<Tensor>,
    inv_freq: Tensor,
}

impl Decoder {
    /// Creates (or binds to existing) variables with Hugging Face parameter names under `vb`.
    pub fn new(config: &ModelConfig, vb: &VarBuilder<'_>) -> Result<Self> {
        let (h, hd) = (config.hidden_size, config.head_dim);
        let model = vb.pp("model");
        let embed = model.pp("embed_tokens").get_with_hints(
            (config.vocab_size, h),
            "weight",
            Init::Randn {
                mean: 0.0,
                stdev: 0.02,
            },
        )?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let lv = model.pp(format!("layers.{i}"));
            let attn = lv.pp("self_attn");
            let mlp = lv.pp("mlp");
            let bias = config.attention_bias;
            let (q_out, kv_out) = (
                config.num_attention_heads * hd,
                config.num_key_value_heads * hd,
            );
            layers.push(Layer {
                q: Linear::new(&attn, "q_proj", h, q_out, bias)?,
                k: Linear::new(&attn, "k_proj", h, kv_out, bias)?,
                v: Linear::new(&attn, "v_proj", h, kv_out, bias)?,
                o: Linear::new(&attn, "o_proj", q_out, h, false)?,
                gate: Linear::new(&mlp, "gate_proj", h, config.intermediate_size, false)?,
                up: Linear::new(&mlp, "up_proj", h, config.intermediate_size, false)?,
                down: Linear::new(&mlp, "down_proj", config.intermediate_size, h, false)?,
                input_norm: lv.pp("input_layernorm").get_with_hints(
                    h,
                    "weight",
                    Init::Const(1.0),
                )?,
                post_attention_norm: lv.pp("post_attention_layernorm").get_with_hints(
                    h,
                    "weight",
                    Init::Const(1.0),
                )?,
            });
        }
        let norm = model
            .pp("norm")
            .get_with_hints(h, "weight", Init::Const(1.0))?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(vb.pp("lm_head").get_with_hints(
                (config.vocab_size, h),
                "weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?)
        };
        let inv_freq: Vec<f32> = (0..hd / 2)
            .map(|i| (1.0 / config.rope_theta.powf(2.0 * i as f64 / hd as f64)) as f32)
            .collect();
        let inv_freq = Tensor::from_vec(inv_freq, (1, 1, hd / 2), vb.device())?;
        Ok(Self {
            config: config.clone(),
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.embed.device()
    }

    /// Logits `(B, T, V)` for token ids `(B, T)` at `positions` `(B, T)` (u32), with an additive mask
    /// `(B, 1, T, S)` where `S` counts cached plus new tokens. With a cache, keys and values of the new
    /// tokens are appended to it.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        self.logits(&self.hidden_states(ids, positions, mask, cache)?)
    }

    /// Logits `(..., V)` of final hidden states `(..., H)`. Callers that need the next-token
    /// distribution at a few positions only select those rows first: the output head is the largest
    /// matrix of a model with a real vocabulary.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        ops::linear(hidden, self.lm_head.as_ref().unwrap_or(&self.embed))
    }

    /// The final (normed) hidden states `(B, T, H)`, as [`Decoder::forward`] takes them to logits.
    pub fn hidden_states(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (batch, len) = ids.dims2()?;
        let cfg = &self.config;
        let (hd, hq, hkv) = (
            cfg.head_dim,
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
        );
        let angles = positions
            .to_dtype(DType::F32)?
            .unsqueeze(2)?
            .broadcast_mul(&self.inv_freq)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        let scale = 1.0 / (hd as f64).sqrt();
        if let Some(cache) = cache.as_deref_mut() {
            cache.layers.resize_with(self.layers.len(), || None);
        }
        let mut x = self.embed.index_select(&ids.flatten_all()?, 0)?.reshape((
            batch,
            len,
            cfg.hidden_size,
        ))?;
        for (index, layer) in self.layers.iter().enumerate() {
            let normed = ops::rms_norm(&x, &layer.input_norm, cfg.rms_norm_eps)?;
            let split = |t: Tensor, n: usize| t.reshape((batch, len, n, hd));
            let q = ops::rope_into_heads(&split(layer.q.forward(&normed)?, hq)?, &cos, &sin)?;
            let mut k = ops::rope_into_heads(&split(layer.k.forward(&normed)?, hkv)?, &cos, &sin)?;
            let mut v = split(layer.v.forward(&normed)?, hkv)?
                .transpose(1, 2)?
                .contiguous()?;
            if let Some(cache) = cache.as_deref_mut() {
                (k, v) = cache.append(index, &k, &v)?;
            }
            let attended = ops::attention(&q, &k, &v, mask, scale)?;
            x = (x + layer.o.forward(&attended)?)?;
            let normed = ops::rms_norm(&x, &layer.post_attention_norm, cfg.rms_norm_eps)?;
            let hidden = ops::swiglu(&layer.gate.forward(&normed)?, &layer.up.forward(&normed)?)?;
            x = (x + layer.down.forward(&hidden)?)?;
        }
        if let Some(cache) = cache {
            cache.len += len;
        }
        ops::rms_norm(&x, &self.norm, cfg.rms_norm_eps)
    }
}

/// Causal additive mask `(B, 1, T, S)` for `T` new tokens after `past` cached ones, where
/// `valid[b][j]` says whether key position `j` of sequence `b` holds a real token (not padding).
pub fn causal_mask(valid: &[Vec<bool>], new_tokens: usize, device: &Device) -> Result<Tensor> {
    let batch = valid.len();
    let total = valid.first().map_or(0, Vec::len);
    ensure!(
        valid.iter().all(|v| v.len() == total),
        "ragged validity mask"
    );
    let past = total - new_tokens;
    let mut data = Vec::with_capacity(batch * new_tokens * total);
    for row in valid {
        for query in 0..new_tokens {
            for (key, &ok) in row.iter().enumerate() {
                data.push(if ok && key <= past + query {
                    0.0
                } else {
                    MASKED
                });
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (batch, 1, new_tokens, total),
        device,
    )?)
}
