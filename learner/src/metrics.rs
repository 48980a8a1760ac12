//! Per-round measurements, appended as one JSON line each to `metrics.jsonl`.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What one round did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    /// Round number (1-based).
    pub round: u64,
    /// Optimizer steps taken after this round.
    pub policy_version: u64,
    /// Mean reward of this node's own completions.
    pub reward_local: f64,
    /// Share of own completions that were correct, per family.
    pub accuracy: BTreeMap<String, f64>,
    /// Share of prompt groups whose rewards were all equal (no learning signal).
    pub zero_variance_fraction: f64,
    /// Share of tokens clipped at the lower PPO bound.
    pub clip_low_fraction: f64,
    /// Share of tokens clipped at the upper PPO bound.
    pub clip_high_fraction: f64,
    /// Mean entropy of the policy on the trained tokens.
    pub entropy: f64,
    /// Mean truncated importance weight between the current and behaviour policy.
    pub mean_importance_weight: f64,
    /// Mean completion length in tokens.
    pub completion_tokens: f64,
    /// Sampling throughput, tokens per second.
    pub tokens_per_second: f64,
    /// Time spent in the optimizer step (forward, backward, update), seconds.
    pub step_seconds: f64,
    /// Wall time of the whole round, seconds.
    pub round_seconds: f64,
}

/// Appends rounds to a JSONL file, one flushed line per round so a crash loses at most the current one.
pub struct MetricsWriter {
    file: File,
}

impl MetricsWriter {
    /// Opens (creating or appending to) `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open metrics file {}", path.display()))?;
        Ok(Self { file })
    }

    /// Writes one round.
    pub fn write(&mut self, metrics: &RoundMetrics) -> Result<()> {
        let mut line = serde_json::to_vec(metrics)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.flush()?;
        Ok(())
    }
}
