//! Checkpoints that survive a crash at any instant.
//!
//! Layout under the checkpoint root: `round-<round, 10 digits>/` holding `config.json`,
//! `tokenizer.json`, `model.safetensors`, `optimizer.safetensors`, `state.json` (step, sampler RNG
//! position, config hash, and the caller's own state) and, written last, `manifest.json` (every other
//! file's size and blake3 hash). A checkpoint is built in a `tmp-*` directory and renamed into place
//! whole ([`crate::durable`]); old ones are renamed to `trash-*` before they are deleted. Resuming
//! takes the newest checkpoint whose manifest matches its files and reports any it skipped.
//!
//! Directories named `step-<10 digits>` (written before checkpoints were named by round, without a
//! manifest) still load; any `round-*` checkpoint counts as newer than all of them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::durable;
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

/// The file written last into a checkpoint: the size and hash of every other file.
pub const MANIFEST_FILE: &str = "manifest.json";
const STATE_FILE: &str = "state.json";
const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    files: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ManifestEntry {
    bytes: u64,
    blake3: String,
}

fn hash_file(path: &Path) -> Result<String> {
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(
            fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hasher.finalize().to_hex().to_string())
}

fn manifest_of(dir: &Path) -> Result<Manifest> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{} is not a UTF-8 name", path.display()))?
            .to_owned();
        let bytes = fs::metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        files.insert(
            name,
            ManifestEntry {
                bytes,
                blake3: hash_file(&path)?,
            },
        );
    }
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        files,
    })
}

/// How closely [`verify`] looks at a checkpoint's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Names and sizes: cheap, catches an interrupted write or deletion.
    Sizes,
    /// Sizes and blake3 hashes: also catches damaged content.
    Contents,
}

/// Whether `dir` holds a whole checkpoint; the error says what is missing or wrong.
pub fn verify(dir: &Path, check: Check) -> std::result::Result<(), String> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = match fs::read(&manifest_path) {
        Ok(text) => text,
        Err(_) if is_legacy(dir) => {
            return ["model.safetensors", "optimizer.safetensors", STATE_FILE]
                .iter()
                .find(|name| !dir.join(name).is_file())
                .map_or(Ok(()), |name| Err(format!("{name} is missing")));
        }
        Err(e) => {
            return Err(format!(
                "{MANIFEST_FILE} cannot be read ({e}): an unfinished write"
            ));
        }
    };
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| format!("{MANIFEST_FILE} is damaged ({e})"))?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(format!(
            "{MANIFEST_FILE} has format {}, this build reads {MANIFEST_FORMAT}",
            manifest.format
        ));
    }
    for name in ["model.safetensors", "optimizer.safetensors", STATE_FILE] {
        if !manifest.files.contains_key(name) {
            return Err(format!("{MANIFEST_FILE} does not list {name}"));
        }
    }
    for (name, expected) in &manifest.files {
        let path = dir.join(name);
        let bytes = fs::metadata(&path)
            .map_err(|e| format!("{name} cannot be read ({e})"))?
            .len();
        if bytes != expected.bytes {
            return Err(format!(
                "{name} holds {bytes} bytes, the manifest says {}",
                expected.bytes
            ));
        }
        if check == Check::Contents {
            let hash = hash_file(&path).map_err(|e| format!("{e:#}"))?;
            if hash != expected.blake3 {
                return Err(format!("{name} does not match its hash in {MANIFEST_FILE}"));
            }
        }
    }
    Ok(())
}

fn is_legacy(dir: &Path) -> bool {
    dir.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("step-"))
}

fn checkpoint_name(round: u64) -> String {
    format!("round-{round:010}")
}

/// Writes a checkpoint of `policy`, `optimizer` and `rng` at the caller's `round` under `root`,
/// keeping the newest `keep`. A whole checkpoint of the same round already there is kept as it is
/// (saving a round twice saves the same state), so an existing checkpoint is never replaced.
pub fn save(
    root: &Path,
    round: u64,
    policy: &Policy,
    optimizer: &AdamW,
    rng: &ChaCha8Rng,
    extra: serde_json::Value,
    keep: usize,
) -> Result<PathBuf> {
    fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    remove_leftovers(root)?;
    let name = checkpoint_name(round);
    let target = root.join(&name);
    if target.exists() {
        match verify(&target, Check::Sizes) {
            Ok(()) => {
                prune(root, keep.max(1))?;
                return Ok(target);
            }
            Err(reason) => {
                tracing::warn!(checkpoint = %target.display(), %reason, "replacing an incomplete checkpoint");
                durable::remove_dir(&target)?;
            }
        }
    }
    let tmp = root.join(format!("tmp-{name}-{}", std::process::id()));
    let written = write_checkpoint(&tmp, policy, optimizer, rng, extra)
        .and_then(|()| durable::publish_dir(&tmp, &target));
    if let Err(error) = written {
        // Best effort: a full disk may refuse even this, and the next save removes it anyway.
        let _ = fs::remove_dir_all(&tmp);
        return Err(error.context(format!("cannot write checkpoint {}", target.display())));
    }
    prune(root, keep.max(1))?;
    Ok(target)
}

fn write_checkpoint(
    dir: &Path,
    policy: &Policy,
    optimizer: &AdamW,
    rng: &ChaCha8Rng,
    extra: serde_json::Value,
) -> Result<()> {
    durable::boundary("create", dir);
    fs::create_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // A checkpoint is also a complete model directory (config, tokenizer, weights) that `eval`,
    // `logprobs` and `--model` accept.
    policy.save(dir)?;
    let (step, moments) = optimizer.state()?;
    let optimizer_path = dir.join("optimizer.safetensors");
    durable::boundary("create", &optimizer_path);
    candle_core::safetensors::save(&moments, &optimizer_path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", optimizer_path.display()))?;
    durable::sync_file(&optimizer_path)?;
    let state = CheckpointState {
        step,
        rng: RngState::capture(rng),
        config_hash: hex::encode(policy.architecture_hash()),
        extra,
    };
    durable::write_synced(&dir.join(STATE_FILE), &serde_json::to_vec_pretty(&state)?)?;
    let manifest = manifest_of(dir)?;
    durable::write_synced(
        &dir.join(MANIFEST_FILE),
        &serde_json::to_vec_pretty(&manifest)?,
    )
}

/// Order of a checkpoint directory name: any `round-*` after every legacy `step-*`.
fn order_of(name: &str) -> Option<(u8, u64)> {
    if let Some(round) = name.strip_prefix("round-") {
        return round.parse().ok().map(|n| (1, n));
    }
    name.strip_prefix("step-")?.parse().ok().map(|n| (0, n))
}

/// Every directory under `root` named like a checkpoint, oldest first, whole or not.
fn checkpoints(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", root.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", root.display()))?
            .path();
        let order = path.file_name().and_then(|n| n.to_str()).and_then(order_of);
        if let Some(order) = order {
            found.push((order, path));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Removes what interrupted saves and deletions left: `tmp-*` and `trash-*` directories, which only
/// this module creates and nothing loads.
fn remove_leftovers(root: &Path) -> Result<()> {
    for entry in fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", root.display()))?
            .path();
        let leftover = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("tmp-") || n.starts_with("trash-"));
        if leftover && path.is_dir() {
            durable::remove_tree(&path)?;
        }
    }
    Ok(())
}

/// Deletes all but the newest `keep` whole checkpoints, and incomplete ones older than the newest
/// whole one (an interrupted write that a later save superseded).
fn prune(root: &Path, keep: usize) -> Result<()> {
    let all = checkpoints(root)?;
    let whole: Vec<bool> = all
        .iter()
        .map(|dir| verify(dir, Check::Sizes).is_ok())
        .collect();
    let mut kept = 0;
    let mut newer_whole = false;
    for (dir, is_whole) in all.iter().zip(whole).rev() {
        let remove = if is_whole {
            kept += 1;
            kept > keep
        } else {
            newer_whole
        };
        newer_whole |= is_whole;
        if remove {
            durable::remove_dir(dir)?;
        }
    }
    Ok(())
}

/// A checkpoint that [`newest_complete`] passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The directory.
    pub dir: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// The newest whole checkpoint under `root` (files checked against the manifest's hashes), with the
/// newer ones it passed over.
pub fn newest_complete(root: &Path) -> Result<(Option<PathBuf>, Vec<Skipped>)> {
    let mut skipped = Vec::new();
    for dir in checkpoints(root)?.into_iter().rev() {
        match verify(&dir, Check::Contents) {
            Ok(()) => return Ok((Some(dir), skipped)),
            Err(reason) => skipped.push(Skipped { dir, reason }),
        }
    }
    Ok((None, skipped))
}

/// The newest whole checkpoint under `root`, if any.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(newest_complete(root)?.0)
}

/// Restores weights and optimizer state from `dir`; returns the JSON state and the sampler RNG.
pub fn load(
    dir: &Path,
    policy: &Policy,
    optimizer: &mut AdamW,
) -> Result<(CheckpointState, ChaCha8Rng)> {
    let state_path = dir.join(STATE_FILE);
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

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
