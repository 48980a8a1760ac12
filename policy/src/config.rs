//! The model configuration, read from a Hugging Face `config.json` of the Llama / Qwen2 family.
//!
//! Fields this decoder does not implement are refused by name rather than ignored: a silently ignored
//! sliding window or rope scaling would give a model that loads and produces wrong numbers.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// What the decoder needs to know about a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// `qwen2` or `llama`.
    pub model_type: String,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the SwiGLU hidden layer.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention when fewer than query heads).
    pub num_key_value_heads: usize,
    /// Per-head width; `hidden_size / num_attention_heads` unless given.
    pub head_dim: usize,
    /// Longest sequence the positions support.
    pub max_position_embeddings: usize,
    /// RoPE base.
    pub rope_theta: f64,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// Whether the output projection shares the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Whether q/k/v projections have biases (always for Qwen2, `attention_bias` for Llama).
    pub attention_bias: bool,
    /// End-of-sequence token ids (sampling stops at any of them).
    pub eos_token_ids: Vec<u32>,
    /// Beginning-of-sequence token id, if the model uses one.
    pub bos_token_id: Option<u32>,
}

/// The `eos_token_id` of a Hugging Face JSON file: `config.json` and `generation_config.json` both
/// carry one, as a single id or a list, and must be read alike.
pub(crate) fn eos_token_ids(file: &serde_json::Value) -> Vec<u32> {
    match file.get("eos_token_id") {
        Some(serde_json::Value::Array(ids)) => ids
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u32))
            .collect(),
        Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        None => Vec::new(),
    }
}

impl ModelConfig {
    /// Reads `config.json` from a model directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read model config {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("model config {} is not valid JSON", path.display()))?;
        Self::from_json(&value).with_context(|| format!("model config {}", path.display()))
    }

    /// Interprets a parsed `config.json`.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let get = |key: &str| value.get(key).filter(|v| !v.is_null());
        let usize_of = |key: &str| -> Result<usize> {
            get(key)
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as usize)
                .with_context(|| format!("`{key}` is missing or not a non-negative integer"))
        };
        let model_type = get("model_type")
            .and_then(serde_json::Value::as_str)
            .context("`model_type` is missing")?
            .to_owned();
        let attention_bias = match model_type.as_str() {
            "qwen2" => true,
            "llama" | "mistral" => get("attention_bias")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            other => bail!(
                "model_type `{other}` is not supported; this decoder implements `qwen2` and `llama`"
            ),
        };
        // Older configs keep RoPE settings in `rope_theta` + `rope_scaling`; newer ones in
        // `rope_parameters`. Only the unscaled ("default") rotation is implemented.
        let mut rope_theta = get("rope_theta").and_then(serde_json::Value::as_f64);
        for key in ["rope_scaling", "rope_parameters"] {
            let Some(rope) = get(key) else { continue };
            let kind = rope
                .get("rope_type")
                .or_else(|| rope.get("type"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("default");
            if kind != "default" {
                bail!(
                    "`{key}` asks for rope type `{kind}`, which is not supported (only plain RoPE is \
                     implemented); use a checkpoint without rope scaling"
                );
            }
            if let Some(theta) = rope.get("rope_theta").and_then(serde_json::Value::as_f64) {
                rope_theta = Some(theta);
            }
        }
        let sliding = get("use_sliding_window").and_then(serde_json::Value::as_bool) == Some(true);
        let sliding_layers = get("layer_types")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|types| types.iter().any(|t| t.as_str() != Some("full_attention")));
        if sliding || sliding_layers || (model_type == "mistral" && get("sliding_window").is_some())
        {
            bail!(
                "sliding-window attention is not supported (`use_sliding_window` or `layer_types` \
                 asks for it); every layer must use full attention"
            );
        }
        if get("mlp_bias").and_then(serde_json::Value::as_bool) == Some(true) {
            bail!("`mlp_bias` = true is not supported; the MLP projections have no bias");
        }
        for key in ["num_local_experts", "num_experts", "moe_intermediate_size"] {
            if get(key).is_some() {
                bail!("`{key}`: mixture-of-experts models are not supported");
            }
        }
        if let Some(act) = get("hidden_act").and_then(serde_json::Value::as_str) {
            if act != "silu" {
                bail!("`hidden_act` = {act:?} is not supported; the MLP is SwiGLU (silu)");
            }
        }
        let hidden_size = usize_of("hidden_size")?;
        let num_attention_heads = usize_of("num_attention_heads")?;
        let num_key_value_heads = get("num_key_value_heads")
            .and_then(serde_json::Value::as_u64)
            .map_or(num_attention_heads, |v| v as usize);
        let head_dim = match get("head_dim").and_then(serde_json::Value::as_u64) {
            Some(v) => v as usize,
            None if num_attention_heads > 0 => hidden_size / num_attention_heads,
            None => 0,
        };
        let eos_token_ids = eos_token_ids(value);
        let config = Self {
            vocab_size: usize_of("vocab_size")?,
            hidden_size,
            intermediate_size: usize_of("intermediate_size")?,
            num_hidden_layers: usize_of("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            max_position_embeddings: usize_of("max_position_embeddings")?,
            rope_theta: rope_theta.unwrap_or(10_000.0),
            rms_norm_eps: get("rms_norm_eps")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(1e-6),
            tie_word_embeddings: get("tie_word_embeddings")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            attention_bias,
            eos_token_ids,
            bos_token_id: get("bos_token_id")
                .and_then(serde_json::Value::as_u64)
                .map(|v| v as u32),
            model_type,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (key, value) in positive {
            if value == 0 {
                bail!("`{key}` must be positive");
            }
        }
        if self.num_attention_heads % self.num_key_value_heads != 0 {
            bail!(
                "`num_attention_heads` ({}) must be a multiple of `num_key_value_heads` ({})",
                self.num_attention_heads,
                self.num_key_value_heads
            );
        }
        if self.head_dim == 0 || self.head_dim % 2 != 0 {
            bail!(
                "head dimension {} must be even and positive (RoPE rotates pairs)",
                self.head_dim
            );
        }
        let positive_float = |v: f64| v.is_finite() && v > 0.0;
        if !positive_float(self.rope_theta) || !positive_float(self.rms_norm_eps) {
            bail!("`rope_theta` and `rms_norm_eps` must be positive");
        }
        Ok(())
    }

    /// blake3 of this configuration serialized as JSON in field order: equal for equal
    /// architectures whatever the layout of the `config.json` they came from.
    pub fn canonical_hash(&self) -> [u8; 32] {
        let bytes = serde_json::to_vec(self).expect("a config always serializes");
        *blake3::hash(&bytes).as_bytes()
    }

    /// Trainable parameters of a model with this configuration.
    pub fn parameter_count(&self) -> usize {
        let (h, i, hd) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let q = self.num_attention_heads * hd;
        let kv = self.num_key_value_heads * hd;
        let bias = if self.attention_bias { q + 2 * kv } else { 0 };
        let layer = h * q + 2 * h * kv + q * h + bias + 3 * h * i + 2 * h;
        let embeddings = self.vocab_size * h * if self.tie_word_embeddings { 1 } else { 2 };
        embeddings + self.num_hidden_layers * layer + h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "model_type": "qwen2", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "max_position_embeddings": 128, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
            "tie_word_embeddings": true, "eos_token_id": 2
        })
    }

    #[test]
    fn reads_qwen2_and_llama_configs() {
        let qwen = ModelConfig::from_json(&base()).unwrap();
        assert!(qwen.attention_bias && qwen.tie_word_embeddings);
        assert_eq!((qwen.head_dim, qwen.eos_token_ids.clone()), (16, vec![2]));
        let mut llama = base();
        llama["model_type"] = json!("llama");
        llama["eos_token_id"] = json!([2, 3]);
        let llama = ModelConfig::from_json(&llama).unwrap();
        assert!(!llama.attention_bias);
        assert_eq!(llama.eos_token_ids, [2, 3]);
        let mut newer = base();
        newer["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 123.0});
        newer["layer_types"] = json!(["full_attention", "full_attention"]);
        newer["rope_scaling"] = serde_json::Value::Null;
        assert_eq!(ModelConfig::from_json(&newer).unwrap().rope_theta, 123.0);
    }

    #[test]
    fn unsupported_fields_are_named() {
        let cases = [
            (
                "rope_scaling",
                json!({"rope_type": "yarn", "factor": 4.0}),
                "rope_scaling",
            ),
            (
                "rope_parameters",
                json!({"rope_type": "llama3", "rope_theta": 5e5}),
                "llama3",
            ),
            ("use_sliding_window", json!(true), "sliding-window"),
            (
                "layer_types",
                json!(["full_attention", "sliding_attention"]),
                "sliding-window",
            ),
            ("mlp_bias", json!(true), "mlp_bias"),
            ("num_experts", json!(8), "mixture-of-experts"),
            ("model_type", json!("gpt2"), "gpt2"),
            ("num_key_value_heads", json!(3), "multiple"),
            ("hidden_act", json!("gelu"), "hidden_act"),
            ("vocab_size", json!(-1), "vocab_size"),
        ];
        for (key, value, expected) in cases {
            let mut config = base();
            config[key] = value;
            let err = ModelConfig::from_json(&config).unwrap_err().to_string();
            assert!(err.contains(expected), "{key}: {err}");
        }
    }
}
