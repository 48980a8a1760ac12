//! Supervised warm start: teach a fresh policy the answer format (and some skill) from task
//! demonstrations, so that reinforcement learning starts with reward variance to learn from.

use anyhow::{Context, Result, ensure};
use serde::{Deserialize, Serialize};
use swarm_policy::{AdamW, AdamWConfig, LrSchedule, Policy, TokenSequence};

use crate::render_prompt;

/// Warm-start settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WarmupOptions {
    /// Families whose demonstrations are trained on.
    pub families: Vec<String>,
    /// Difficulty of the demonstrations.
    pub difficulty: u32,
    /// Optimizer steps.
    pub steps: u64,
    /// Demonstrations per step.
    pub batch: usize,
    /// Peak learning rate (cosine decay to a tenth of it).
    pub lr: f64,
    /// Seed of the demonstration stream (distinct from the RL stream and below the evaluation seeds).
    pub seed: u64,
}

impl Default for WarmupOptions {
    fn default() -> Self {
        Self {
            families: vec!["sorting".to_owned()],
            difficulty: 0,
            steps: 60,
            batch: 32,
            lr: 3e-3,
            seed: 1 << 40,
        }
    }
}

/// What a warm start did.
#[derive(Debug, Clone, Serialize)]
pub struct WarmupReport {
    /// Steps taken.
    pub steps: u64,
    /// Mean per-token loss of the first step.
    pub first_loss: f64,
    /// Mean per-token loss of the last step.
    pub final_loss: f64,
}

/// Trains `policy` on demonstrations; `progress(step, steps, loss)` is called after every step.
pub fn warmup(
    policy: &Policy,
    options: &WarmupOptions,
    progress: &mut dyn FnMut(u64, u64, f64),
) -> Result<WarmupReport> {
    ensure!(
        options.steps > 0 && options.batch > 0,
        "warm-up steps and batch must be at least 1"
    );
    let families = options
        .families
        .iter()
        .map(|name| {
            swarm_tasks::family(name).with_context(|| format!("unknown task family {name:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    ensure!(
        !families.is_empty(),
        "warm-up needs at least one task family"
    );
    let eos = *policy
        .eos_ids()
        .first()
        .context("the model has no end-of-sequence token")?;
    let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default())?;
    let schedule = LrSchedule::Cosine {
        lr: options.lr,
        warmup: options.steps / 10,
        total: options.steps,
        min_lr: options.lr / 10.0,
    };
    let (mut first_loss, mut final_loss) = (f64::NAN, f64::NAN);
    for step in 0..options.steps {
        let mut batch = Vec::with_capacity(options.batch);
        for j in 0..options.batch {
            let index = step * options.batch as u64 + j as u64;
            let family = families[index as usize % families.len()];
            let question = family.generate(
                options.difficulty.min(family.max_difficulty()),
                options.seed,
                index,
            );
            let mut completion = policy.encode(&family.demonstration(&question))?;
            completion.push(eos);
            batch.push(TokenSequence {
                prompt: policy.encode(&render_prompt(&question.prompt))?,
                completion,
            });
        }
        let value = policy.supervised_step(&mut optimizer, &batch, schedule.at(step))?;
        if step == 0 {
            first_loss = value;
        }
        final_loss = value;
        progress(step + 1, options.steps, value);
    }
    Ok(WarmupReport {
        steps: options.steps,
        first_loss,
        final_loss,
    })
}
