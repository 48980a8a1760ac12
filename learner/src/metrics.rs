//! Per-round measurements, appended as one JSON line each to `metrics.jsonl`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    /// Round number (1-based).
    pub round: u64,
    /// Optimizer steps taken after this round.
    pub policy_version: u64,
    /// Mean reward of this node's own completions.
    pub reward_local: f64,
    /// Mean reward, rescored here, of the external completions taken this round.
    pub reward_external: Option<f64>,
    /// Share of own completions that were correct, per family.
    pub accuracy: BTreeMap<String, f64>,
    /// Share of the external completions taken that were correct, per family.
    pub external_accuracy: BTreeMap<String, f64>,
    /// External groups taken from the buffer this round.
    pub external_groups: usize,
    /// External groups that arrived since the previous round.
    #[serde(default)]
    pub external_arrived: usize,
    /// Of those, groups whose completions all scored alike under this node's rewards (pooled with
    /// its own completions of the same question): zero advantage, no learning signal.
    #[serde(default)]
    pub external_uninformative: usize,
    /// External groups waiting to be chosen from when this round's were taken.
    #[serde(default)]
    pub external_available: usize,
    /// External groups taken that held the only correct answer to their question in the batch.
    #[serde(default)]
    pub external_aha: usize,
    /// Share of this round's own unlabeled questions whose pooled majority vote gave a label
    /// (`None` without unlabeled questions).
    #[serde(default)]
    pub vote_labeled_fraction: Option<f64>,
    /// Share of those labels that equal the answer of a dataset loaded with hidden labels (`None`
    /// when no label could be checked).
    #[serde(default)]
    pub vote_accuracy: Option<f64>,
    /// Completions each of those votes pooled, on average (own and other nodes').
    #[serde(default)]
    pub vote_ballots: Option<f64>,
    /// Share of this round's own groups whose completions all scored alike.
    #[serde(default)]
    pub local_zero_variance_fraction: f64,
    /// Own groups from earlier rounds replayed this round.
    pub stale_groups: usize,
    /// Own completions trained on (after zero-variance filtering).
    pub trained_local: usize,
    /// External completions trained on (after filtering and gating).
    pub trained_external: usize,
    /// Share of groups whose rewards were all equal (no learning signal).
    pub zero_variance_fraction: f64,
    /// External completions dropped by the per-byte likelihood gate.
    pub gated_external: usize,
    /// External completions dropped as too long or empty after re-tokenization.
    pub unusable_external: usize,
    /// Share of tokens clipped at the lower PPO bound.
    pub clip_low_fraction: f64,
    /// Share of tokens clipped at the upper PPO bound.
    pub clip_high_fraction: f64,
    /// Mean entropy of the policy on the trained tokens.
    pub entropy: f64,
    /// KL(proximal || current) before each step, k3 estimator, mean over the round's steps.
    pub kl_proximal: f64,
    /// KL(current || reference) by the k3 estimator, when `kl_coef` > 0.
    #[serde(default)]
    pub kl_reference: f64,
    /// Mean off-policy weight on trained tokens.
    pub mean_importance_weight: f64,
    /// Effective sample size of the token weights as a share of the tokens.
    pub effective_sample_size: f64,
    /// Mean per-byte NLL of own completions under the proximal policy.
    pub nll_per_byte_local: Option<f64>,
    /// Mean per-byte NLL of external completions under the proximal policy.
    pub nll_per_byte_external: Option<f64>,
    /// Optimizer steps this round.
    pub optimizer_steps: usize,
    /// External groups waiting in the buffer after the round.
    pub pool_waiting: usize,
    /// External groups dropped unused so far (too old or buffer full).
    pub pool_dropped: u64,
    /// Mean own completion length in tokens.
    pub completion_tokens: f64,
    /// Sampling throughput, tokens per second.
    pub tokens_per_second: f64,
    /// Time spent in the update (forward, backward, optimizer), seconds.
    pub step_seconds: f64,
    /// Wall time of the whole round, seconds.
    pub round_seconds: f64,
}

/// Appends JSON lines to a file, one flushed line per record so a crash loses at most the current one.
pub struct JsonlWriter {
    file: File,
    path: PathBuf,
}

impl JsonlWriter {
    /// Opens (creating or appending to) `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Writes one record.
    pub fn write<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        swarm_policy::durable::boundary("append", &self.path);
        self.file
            .write_all(&line)
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

/// Keeps only the lines of a JSONL file whose `round` is at most `last_round` (and drops a torn
/// last line), so a resumed run does not record a round twice. The file is replaced atomically, and
/// only when something is dropped.
pub fn truncate_after_round(path: &Path, last_round: u64) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let lines: Vec<&str> = text.lines().collect();
    let kept: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("round").and_then(serde_json::Value::as_u64))
                .is_some_and(|round| round <= last_round)
        })
        .collect();
    if kept.len() == lines.len() && (text.is_empty() || text.ends_with('\n')) {
        return Ok(());
    }
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    swarm_policy::durable::write_file(path, out.as_bytes())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn truncation_keeps_rounds_up_to_the_checkpoint_and_drops_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"round\":1}\n{\"round\":2}\n{\"round\":3}\n{\"rou").unwrap();
        truncate_after_round(&path, 2).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"round\":1}\n{\"round\":2}\n"
        );
    }

    #[test]
    fn truncation_leaves_a_file_with_nothing_to_drop_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(&path, "{\"round\":1}\n{\"round\":2}\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        truncate_after_round(&path, 2).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "not rewritten"
        );
        truncate_after_round(&path, 1).unwrap();
        assert_ne!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "replaced by a rename, never truncated in place"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"round\":1}\n");
        truncate_after_round(&dir.path().join("absent.jsonl"), 1).unwrap();
    }
}
