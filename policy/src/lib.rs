//! The policy every swarm node runs: a Llama/Qwen2-family decoder in candle that samples with behaviour
//! log-probs and trains through a forward pass in which every operation carries gradients.

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod model;
pub mod optim;
pub mod sampler;
mod weights;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use candle_core::{D, DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};

pub use config::ModelConfig;
pub use model::{Decoder, KvCache};
pub use optim::{AdamW, AdamWConfig, Gradients, LrSchedule};
pub use sampler::{Sample, SampleOptions};

/// The device selected by the build: the first CUDA GPU with the `cuda` feature, else the CPU.
pub fn default_device() -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        if let Ok(device) = Device::new_cuda(0) {
            return Ok(device);
        }
        tracing::warn!("built with CUDA but no GPU is usable; running on the CPU");
    }
    Ok(Device::Cpu)
}

/// A model with its tokenizer and trainable variables.
pub struct Policy {
    decoder: Decoder,
    varmap: VarMap,
    tokenizer: tokenizers::Tokenizer,
    config_json: serde_json::Value,
    tokenizer_bytes: Vec<u8>,
    pad_id: u32,
}

/// One training sequence: a prompt and the completion whose tokens are scored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSequence {
    /// Prompt token ids (at least one).
    pub prompt: Vec<u32>,
    /// Completion token ids.
    pub completion: Vec<u32>,
}

/// Per-token results of the training forward over completion tokens, right-padded to the longest
/// completion of the batch.
pub struct SequenceLogprobs {
    /// `(B, C)` log-probs of each completion token; carries gradients to every parameter.
    pub logprobs: Tensor,
    /// `(B, C)` 1.0 where a completion token exists, 0.0 on padding.
    pub mask: Tensor,
    /// `(B, C)` entropy of the predicted distribution at each completion token (no gradient).
    pub entropy: Tensor,
}

/// The per-token log-probs of a completion, as `swarm-node logprobs` prints them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenLogprobs {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Completion token ids.
    pub completion_ids: Vec<u32>,
    /// Text of each completion token.
    pub tokens: Vec<String>,
    /// Log-prob of each completion token given everything before it.
    pub logprobs: Vec<f32>,
    /// Sum of the log-probs.
    pub total: f64,
}

impl Policy {
    /// Loads a model directory in Hugging Face layout: `config.json`, `tokenizer.json` and one or
    /// more `*.safetensors` files (sharded with or without `model.safetensors.index.json`).
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let policy = Self::build(dir, device)?;
        weights::load_into(&policy.varmap, dir, device)?;
        Ok(policy)
    }

    /// A randomly initialised model from the `config.json` and `tokenizer.json` in `dir` (weights,
    /// if any, are ignored); the same `seed` gives the same weights.
    pub fn init_random(dir: &Path, seed: u64, device: &Device) -> Result<Self> {
        let policy = Self::build(dir, device)?;
        weights::randomize(&policy.varmap, seed)?;
        Ok(policy)
    }

    fn build(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config_text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("cannot read {}", config_path.display()))?;
        let config_json: serde_json::Value = serde_json::from_str(&config_text)
            .with_context(|| format!("{} is not valid JSON", config_path.display()))?;
        let config = ModelConfig::from_json(&config_json)
            .with_context(|| format!("model config {}", config_path.display()))?;
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer_bytes = std::fs::read(&tokenizer_path)
            .with_context(|| format!("cannot read {}", tokenizer_path.display()))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&tokenizer_bytes).map_err(|err| {
            anyhow::anyhow!(
                "{} is not a valid tokenizer: {err}",
                tokenizer_path.display()
            )
        })?;
        let tokenizer_vocab = tokenizer.get_vocab_size(true);
        if tokenizer_vocab > config.vocab_size {
            bail!(
                "tokenizer {} has {tokenizer_vocab} tokens but the model's vocab_size is {}: \
                 the tokenizer does not belong to this model",
                tokenizer_path.display(),
                config.vocab_size
            );
        }
        let pad_id = ["<pad>", "<|endoftext|>", "</s>"]
            .iter()
            .find_map(|t| tokenizer.token_to_id(t))
            .or(config.eos_token_ids.first().copied())
            .unwrap_or(0);
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let decoder = Decoder::new(&config, &vb)?;
        Ok(Self {
            decoder,
            varmap,
            tokenizer,
            config_json,
            tokenizer_bytes,
            pad_id,
        })
    }

    /// Writes the model in Hugging Face layout (`config.json`, `tokenizer.json`, `model.safetensors`).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(&self.config_json)?,
        )?;
        std::fs::write(dir.join("tokenizer.json"), &self.tokenizer_bytes)?;
        let path: PathBuf = dir.join("model.safetensors");
        self.varmap
            .save(&path)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// The model configuration.
    pub fn config(&self) -> &ModelConfig {
        self.decoder.config()
    }

    /// The device holding the weights.
    pub fn device(&self) -> &Device {
        self.decoder.device()
    }

    /// The trainable variables, for optimizers and checkpoints.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The decoder.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// blake3 of the canonical `config.json`: which architecture produced a rollout.
    pub fn architecture_hash(&self) -> [u8; 32] {
        *blake3::hash(self.config_json.to_string().as_bytes()).as_bytes()
    }

    /// blake3 of `tokenizer.json`: whether token ids from another node mean the same text.
    pub fn tokenizer_hash(&self) -> [u8; 32] {
        *blake3::hash(&self.tokenizer_bytes).as_bytes()
    }

    /// Token ids of `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|err| anyhow::anyhow!("cannot tokenize: {err}"))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, without special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|err| anyhow::anyhow!("cannot detokenize: {err}"))
    }

    /// Loads `dir` with its weights when it has any, else initialises it randomly from `seed` (for
    /// benchmarks, whose figures do not depend on the weights).
    pub fn load_or_init(dir: &Path, seed: u64, device: &Device) -> Result<Self> {
        let has_weights = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .any(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
            })
            .unwrap_or(false);
        if has_weights {
            Self::load(dir, device)
        } else {
            Self::init_random(dir, seed, device)
        }
    }

    /// Per-token log-probs of `completion` after `prompt` (both as text), as `swarm-node logprobs`
    /// prints them.
    pub fn token_logprobs(&self, prompt: &str, completion: &str) -> Result<TokenLogprobs> {
        let sequence = TokenSequence {
            prompt: self.encode(prompt)?,
            completion: self.encode(completion)?,
        };
        ensure!(!sequence.prompt.is_empty(), "the prompt has no tokens");
        ensure!(
            !sequence.completion.is_empty(),
            "the completion has no tokens"
        );
        let out = self.sequence_logprobs(std::slice::from_ref(&sequence))?;
        let logprobs: Vec<f32> = out.logprobs.squeeze(0)?.to_vec1()?;
        let tokens = sequence
            .completion
            .iter()
            .map(|&id| self.decode(&[id]))
            .collect::<Result<Vec<_>>>()?;
        Ok(TokenLogprobs {
            prompt_ids: sequence.prompt,
            total: logprobs.iter().map(|&l| f64::from(l)).sum(),
            completion_ids: sequence.completion,
            tokens,
            logprobs,
        })
    }

    /// Token id used for padding (never attended to).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids that end a completion.
    pub fn eos_ids(&self) -> &[u32] {
        &self.config().eos_token_ids
    }

    /// Training forward: per-token log-probs (with gradients), mask and entropy of the completion
    /// tokens of each sequence, over right-padded full sequences.
    pub fn sequence_logprobs(&self, batch: &[TokenSequence]) -> Result<SequenceLogprobs> {
        ensure!(!batch.is_empty(), "empty training batch");
        ensure!(
            batch.iter().all(|s| !s.prompt.is_empty()),
            "every sequence needs at least one prompt token"
        );
        let device = self.device();
        let total = batch
            .iter()
            .map(|s| s.prompt.len() + s.completion.len())
            .max()
            .unwrap_or(0);
        ensure!(
            total <= self.config().max_position_embeddings,
            "sequence of {total} tokens exceeds the model's {} positions",
            self.config().max_position_embeddings
        );
        let longest_completion = batch
            .iter()
            .map(|s| s.completion.len())
            .max()
            .unwrap_or(0)
            .max(1);
        let (mut ids, mut valid, mut targets, mut gather, mut mask) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for sequence in batch {
            let mut row: Vec<u32> = sequence
                .prompt
                .iter()
                .chain(&sequence.completion)
                .copied()
                .collect();
            let real = row.len();
            row.resize(total, self.pad_id);
            valid.push((0..total).map(|j| j < real).collect::<Vec<_>>());
            for j in 0..longest_completion {
                let present = j < sequence.completion.len();
                // The logits at position p predict token p + 1.
                let position = (sequence.prompt.len() + j).min(total) - 1;
                gather.push(position as u32);
                targets.push(if present {
                    sequence.completion[j]
                } else {
                    self.pad_id
                });
                mask.push(if present { 1f32 } else { 0.0 });
            }
            ids.extend(row);
        }
        let b = batch.len();
        let ids = Tensor::from_vec(ids, (b, total), device)?;
        let positions = Tensor::arange(0u32, total as u32, device)?
            .unsqueeze(0)?
            .repeat((b, 1))?;
        let attention = model::causal_mask(&valid, total, device)?;
        let logits = self.decoder.forward(&ids, &positions, &attention, None)?;
        let gather = Tensor::from_vec(gather, (b, longest_completion), device)?;
        let vocab = logits.dim(D::Minus1)?;
        let index = gather.unsqueeze(2)?.repeat((1, 1, vocab))?;
        let completion_logits = logits.contiguous()?.gather(&index.contiguous()?, 1)?;
        let log_probs = model::log_softmax_last(&completion_logits)?;
        let targets = Tensor::from_vec(targets, (b, longest_completion, 1), device)?;
        let logprobs = log_probs.gather(&targets, 2)?.squeeze(2)?;
        let detached = log_probs.detach();
        let entropy = (detached.exp()? * &detached)?.sum(D::Minus1)?.neg()?;
        Ok(SequenceLogprobs {
            logprobs,
            mask: Tensor::from_vec(mask, (b, longest_completion), device)?,
            entropy,
        })
    }
}

#[cfg(test)]
mod tests;
