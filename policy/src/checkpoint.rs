//! Checkpoints that survive a crash at any instant: each is written into a temporary directory,
//! fsynced, then renamed into place, so a checkpoint directory either exists whole or not at all.
//!
//! Layout under the checkpoint root: `step-<step, 10 digits>/` holding `model.safetensors`,
//! `optimizer.safetensors` and `state.json` (step, sampler RNG position, config hash, and the caller's
//! own state). Leftover `tmp-*` directories from an interrupted write are ignored and removed.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{AdamW, Policy};

/// Position of a ChaCha8 stream, enough to resume it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// Seed (hex).
    pub seed: String,
    /// Stream id.
    pub stream: u64,
    /// Word position, as a decimal string (it is a u128).
    pub word_pos: String,
}

impl RngState {
    /// Captures `rng`.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: hex::encode(rng.get_seed()),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the generator at the captured position.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let seed: [u8; 32] = hex::decode(&self.seed)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("checkpoint RNG seed is not 32 hex-encoded bytes")?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(
            self.word_pos
                .parse()
                .context("checkpoint RNG position is not a number")?,
        );
        Ok(rng)
    }
}

/// The JSON part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Sampler RNG position.
    pub rng: RngState,
    /// blake3 (hex) of the model config: a checkpoint only loads into the same architecture.
    pub config_hash: String,
    /// The caller's own state (for example the learner's round counter and buffers).
    pub extra: serde_json::Value,
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

/// Writes a checkpoint of `policy`, `optimizer` and `rng` under `root`, keeping the newest `keep`.
pub fn save(
    root: &Path,
    policy: &Policy,
    optimizer: &AdamW,
    rng: &ChaCha8Rng,
    extra: serde_json::Value,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let (step, moments) = optimizer.state()?;
    let name = format!("step-{step:010}");
    let tmp = root.join(format!("tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp)?;
    }
    fs::create_dir(&tmp)?;
    // A checkpoint is also a complete model directory (config, tokenizer, weights) that `eval`,
    // `logprobs` and `--model` accept.
    policy.save(&tmp)?;
    let optimizer_path = tmp.join("optimizer.safetensors");
    candle_core::safetensors::save(&moments, &optimizer_path)?;
    let state = CheckpointState {
        step,
        rng: RngState::capture(rng),
        config_hash: hex::encode(policy.architecture_hash()),
        extra,
    };
    let state_path = tmp.join("state.json");
    fs::write(&state_path, serde_json::to_vec_pretty(&state)?)?;
    for entry in fs::read_dir(&tmp)? {
        sync_file(&entry?.path())?;
    }
    sync_dir(&tmp)?;
    let target = root.join(&name);
    if target.exists() {
        fs::remove_dir_all(&target)?;
    }
    fs::rename(&tmp, &target)
        .with_context(|| format!("cannot move checkpoint into {}", target.display()))?;
    sync_dir(root)?;
    prune(root, keep.max(1))?;
    Ok(target)
}

fn checkpoints(root: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return Ok(found);
    };
    for entry in entries {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(step) = name.strip_prefix("step-").and_then(|s| s.parse().ok()) {
            found.push((step, path));
        }
    }
    found.sort();
    Ok(found)
}

fn prune(root: &Path, keep: usize) -> Result<()> {
    let all = checkpoints(root)?;
    for (_, path) in &all[..all.len().saturating_sub(keep)] {
        fs::remove_dir_all(path)?;
    }
    for entry in fs::read_dir(root)? {
        let path = entry?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tmp-"))
        {
            fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// The newest complete checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(checkpoints(root)?.pop().map(|(_, path)| path))
}

/// Restores weights and optimizer state from `dir`; returns the JSON state and the sampler RNG.
pub fn load(
    dir: &Path,
    policy: &Policy,
    optimizer: &mut AdamW,
) -> Result<(CheckpointState, ChaCha8Rng)> {
    let state_path = dir.join("state.json");
    let state: CheckpointState = serde_json::from_slice(
        &fs::read(&state_path).with_context(|| format!("cannot read {}", state_path.display()))?,
    )
    .with_context(|| format!("{} is not a checkpoint state", state_path.display()))?;
    if state.config_hash != hex::encode(policy.architecture_hash()) {
        bail!(
            "checkpoint {} was written for another model configuration; point --data-dir elsewhere \
             or use the model it was trained with",
            dir.display()
        );
    }
    crate::weights::load_files_into(
        policy.varmap(),
        &[dir.join("model.safetensors")],
        policy.device(),
    )?;
    let optimizer_path = dir.join("optimizer.safetensors");
    let moments = candle_core::safetensors::load(&optimizer_path, policy.device())
        .with_context(|| format!("cannot read optimizer state {}", optimizer_path.display()))?;
    optimizer.load_state(state.step, &moments)?;
    let rng = state.rng.restore()?;
    Ok((state, rng))
}
