//! The policy every swarm node runs: a Llama/Qwen2-family decoder in candle that samples with behaviour
//! log-probs and trains through a forward pass in which every operation carries gradients.
//!
//! A typical training step of a learner:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use rand::SeedableRng;
//! use swarm_policy::{AdamW, AdamWConfig, Policy, SampleOptions, TokenSequence};
//!
//! let device = swarm_policy::default_device()?;
//! let policy = Policy::load(std::path::Path::new("configs/models/tiny"), &device)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let prompt = policy.encode(&policy.apply_chat_template("What is 2+3?")?)?;
//! let options = SampleOptions::default();
//! let samples = policy.sample(std::slice::from_ref(&prompt), &options, &mut rng)?;
//! let batch = vec![TokenSequence { prompt, completion: samples[0].token_ids.clone() }];
//! let scored = policy.sequence_logprobs_under(&batch, &options)?;
//! let loss = (scored.logprobs * &scored.mask)?.sum_all()?.neg()?;
//! let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default())?;
//! let mut grads = optimizer.zero_grads();
//! optimizer.accumulate(&mut grads, &loss.backward()?)?;
//! optimizer.clip(&mut grads, 1.0)?;
//! optimizer.step(&grads, 1e-4)?;
//! # Ok(())
//! # }
//! ```

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod durable;
mod kernels;
pub mod logprobs;
pub mod model;
pub mod ops;
pub mod optim;
pub mod prompt;
pub mod sampler;
mod weights;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};

pub use config::ModelConfig;
pub use logprobs::{SequenceLogprobs, TokenLogprobs, TokenSequence};
pub use model::{Decoder, KvCache};
pub use optim::{AdamW, AdamWConfig, Gradients, LrSchedule};
pub use prompt::ChatTemplate;
pub use sampler::{Sample, SampleOptions};

/// The device selected by the build: the first CUDA GPU with the `cuda` feature, else the CPU.
pub fn default_device() -> Result<Device> {
    #[cfg(feature = "cuda")]
    {
        match Device::new_cuda(0) {
            Ok(device) => return Ok(device),
            Err(err) => {
                tracing::warn!("built with CUDA but no GPU is usable ({err}); running on the CPU")
            }
        }
    }
    Ok(Device::Cpu)
}

/// Runs `work` on a worker of the tensor thread pool when tensor work is spread over several threads.
/// A parallel kernel called from outside the pool hands its tasks over and puts the caller to sleep
/// until they are done: two thread switches per operation, and a decoding step has over fifty
/// parallel products. Called from a worker, the kernel shares the tasks with the other workers,
/// which stay awake between operations that follow closely. With one thread, or already on a
/// worker, `work` runs where it is.
pub fn on_thread_pool<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    if candle_core::utils::get_num_threads() > 1 && rayon::current_thread_index().is_none() {
        rayon::scope(|_| work())
    } else {
        work()
    }
}

/// Files of a model directory besides config, tokenizer and weights that [`Policy::save`] copies
/// verbatim.
const TOKENIZER_SIDE_FILES: [&str; 3] = [
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
];

/// End-of-sequence ids from `generation_config.json` (instruct models list their end-of-turn token
/// there), or none when the file is absent.
fn generation_eos_ids(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    Ok(config::eos_token_ids(&value))
}

/// A model with its tokenizer and trainable variables.
pub struct Policy {
    decoder: Decoder,
    varmap: VarMap,
    tokenizer: tokenizers::Tokenizer,
    config_json: serde_json::Value,
    tokenizer_bytes: Vec<u8>,
    side_files: Vec<(&'static str, Vec<u8>)>,
    chat_template: Option<ChatTemplate>,
    pad_id: u32,
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
        let mut config = ModelConfig::from_json(&config_json)
            .with_context(|| format!("model config {}", config_path.display()))?;
        config.eos_token_ids.extend(generation_eos_ids(dir)?);
        config.eos_token_ids.sort_unstable();
        config.eos_token_ids.dedup();
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
        let mut side_files = Vec::new();
        for name in TOKENIZER_SIDE_FILES {
            let path = dir.join(name);
            if path.exists() {
                let bytes = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                side_files.push((name, bytes));
            }
        }
        let chat_template = ChatTemplate::from_model_dir(dir)?;
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
            side_files,
            chat_template,
            pad_id,
        })
    }

    /// Writes the model in Hugging Face layout (`config.json`, `tokenizer.json`, `model.safetensors`),
    /// each file fsynced. Write into a directory that is then published whole
    /// ([`durable::publish_dir`]) when a crash must not leave a partial model behind.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        durable::write_synced(
            &dir.join("config.json"),
            serde_json::to_string_pretty(&self.config_json)?.as_bytes(),
        )?;
        durable::write_synced(&dir.join("tokenizer.json"), &self.tokenizer_bytes)?;
        for (name, bytes) in &self.side_files {
            durable::write_synced(&dir.join(name), bytes)?;
        }
        let path: PathBuf = dir.join("model.safetensors");
        durable::boundary("create", &path);
        // Formatted rather than chained: candle's I/O error also reports its source, which would
        // print the OS error twice.
        self.varmap
            .save(&path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        durable::sync_file(&path)
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

    /// blake3 of the architecture as this decoder reads it (the parsed [`ModelConfig`] serialized in
    /// its fixed field order), so cosmetic differences in `config.json` (key order, `torch_dtype`,
    /// library versions) do not change it.
    pub fn architecture_hash(&self) -> [u8; 32] {
        self.config().canonical_hash()
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

    /// The id the tokenizer gives text it has no token for, if its model has one.
    fn unknown_token_id(&self) -> Option<u32> {
        use tokenizers::models::ModelWrapper;
        let name = match self.tokenizer.get_model() {
            ModelWrapper::WordLevel(model) => Some(model.unk_token.clone()),
            ModelWrapper::WordPiece(model) => Some(model.unk_token.clone()),
            ModelWrapper::BPE(model) => model.unk_token.clone(),
            ModelWrapper::Unigram(_) => None,
        }?;
        self.tokenizer.token_to_id(&name)
    }

    /// Tokenizes `text`, refusing characters the vocabulary lacks instead of scoring them as the
    /// unknown token; `what` names the text in the error.
    pub fn encode_exactly(&self, text: &str, what: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|err| anyhow::anyhow!("cannot tokenize the {what}: {err}"))?;
        if let Some(unknown) = self.unknown_token_id() {
            let missing: Vec<&str> = encoding
                .get_ids()
                .iter()
                .zip(encoding.get_offsets())
                .filter(|(id, _)| **id == unknown)
                .filter_map(|(_, &(start, end))| text.get(start..end))
                .collect();
            if !missing.is_empty() {
                bail!(
                    "the {what} holds text this model's tokenizer has no token for ({}); \
                     it would be scored as the unknown token: remove or replace it",
                    missing
                        .iter()
                        .map(|piece| format!("{piece:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
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

    /// The text to tokenize for a question: the model's chat template around it when the model
    /// directory has one, else `prompt` unchanged. Named apart from the learner's
    /// `swarm_learner::render_prompt`, which adds the answer cue every model is trained with.
    pub fn apply_chat_template(&self, prompt: &str) -> Result<String> {
        match &self.chat_template {
            Some(template) => template.render(prompt),
            None => Ok(prompt.to_owned()),
        }
    }

    /// Whether prompts are wrapped in a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.chat_template.is_some()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &tokenizers::Tokenizer {
        &self.tokenizer
    }

    /// The beginning-of-sequence token id, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.config().bos_token_id
    }

    /// Token id used for padding (never attended to).
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids that end a completion.
    pub fn eos_ids(&self) -> &[u32] {
        &self.config().eos_token_ids
    }
}

#[cfg(test)]
mod tests;
