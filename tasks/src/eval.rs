//! Held-out evaluation: pass@1 and pass@k per family on questions whose seeds training never uses.

use serde::{Deserialize, Serialize};

use crate::{RewardConfig, TaskError, TaskFamily, eval_question, families, family};

/// Anything that answers prompts: the policy, or a test double.
pub trait Solver {
    /// `k` completions for each prompt, in prompt order.
    fn solve(&mut self, prompts: &[String], k: usize) -> anyhow::Result<Vec<Vec<String>>>;
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Families to evaluate; empty means all.
    pub families: Vec<String>,
    /// Difficulty level.
    pub difficulty: u32,
    /// Questions per family.
    pub n: usize,
    /// Completions per question.
    pub k: usize,
    /// Prompts per solver call.
    pub batch: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            families: Vec::new(),
            difficulty: 0,
            n: 50,
            k: 1,
            batch: 16,
        }
    }
}

/// Results for one family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyScore {
    /// Family name.
    pub family: String,
    /// Difficulty evaluated.
    pub difficulty: u32,
    /// Questions.
    pub n: usize,
    /// Completions per question.
    pub k: usize,
    /// Expected share of single completions that are correct.
    pub pass_at_1: f64,
    /// Share of questions with at least one correct completion among k.
    pub pass_at_k: f64,
    /// Mean reward including the format reward.
    pub mean_reward: f64,
}

/// A full evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// One row per family.
    pub families: Vec<FamilyScore>,
}

impl EvalReport {
    /// A plain-text table for terminals.
    pub fn to_table(&self) -> String {
        let k = self.families.first().map_or(1, |f| f.k);
        let mut out = format!(
            "{:<26} {:>4} {:>5} {:>8} {:>8} {:>8}\n",
            "family",
            "diff",
            "n",
            "pass@1",
            format!("pass@{k}"),
            "reward"
        );
        for f in &self.families {
            out.push_str(&format!(
                "{:<26} {:>4} {:>5} {:>8.3} {:>8.3} {:>8.3}\n",
                f.family, f.difficulty, f.n, f.pass_at_1, f.pass_at_k, f.mean_reward
            ));
        }
        out
    }
}

/// Evaluates `solver`; `progress(done, total)` is called after each batch of questions.
pub fn evaluate(
    solver: &mut dyn Solver,
    options: &EvalOptions,
    rewards: &RewardConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> anyhow::Result<EvalReport> {
    anyhow::ensure!(
        options.n > 0 && options.k > 0 && options.batch > 0,
        "n, k and batch must be at least 1"
    );
    let selected: Vec<&dyn TaskFamily> = if options.families.is_empty() {
        families().to_vec()
    } else {
        options
            .families
            .iter()
            .map(|name| family(name).ok_or_else(|| TaskError::UnknownFamily(name.clone())))
            .collect::<Result<_, _>>()?
    };
    let total = selected.len() * options.n;
    let mut done = 0;
    let mut scores = Vec::new();
    for task in selected {
        let difficulty = options.difficulty.min(task.max_difficulty());
        let questions: Vec<_> = (0..options.n as u64)
            .map(|i| eval_question(task, difficulty, i))
            .collect();
        let (mut pass1, mut passk, mut reward) = (0.0, 0.0, 0.0);
        for chunk in questions.chunks(options.batch) {
            let prompts: Vec<String> = chunk.iter().map(|q| q.prompt.clone()).collect();
            let answers = solver.solve(&prompts, options.k)?;
            anyhow::ensure!(
                answers.len() == chunk.len(),
                "the solver returned {} answer lists for {} prompts",
                answers.len(),
                chunk.len()
            );
            for (question, completions) in chunk.iter().zip(&answers) {
                anyhow::ensure!(
                    completions.len() == options.k,
                    "the solver returned {} completions, expected {}",
                    completions.len(),
                    options.k
                );
                let verdicts: Vec<_> = completions
                    .iter()
                    .map(|c| task.verify(question, c, rewards))
                    .collect();
                let correct = verdicts.iter().filter(|v| v.correct).count();
                pass1 += correct as f64 / options.k as f64;
                passk += f64::from(u8::from(correct > 0));
                reward +=
                    verdicts.iter().map(|v| f64::from(v.reward)).sum::<f64>() / options.k as f64;
            }
            done += chunk.len();
            progress(done, total);
        }
        let n = options.n as f64;
        scores.push(FamilyScore {
            family: task.name().to_owned(),
            difficulty,
            n: options.n,
            k: options.k,
            pass_at_1: pass1 / n,
            pass_at_k: passk / n,
            mean_reward: reward / n,
        });
    }
    Ok(EvalReport { families: scores })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EVAL_SEED_BASE;

    /// Answers with the ground truth it regenerates from the prompt's question stream.
    struct Oracle;
    impl Solver for Oracle {
        fn solve(&mut self, prompts: &[String], k: usize) -> anyhow::Result<Vec<Vec<String>>> {
            Ok(prompts
                .iter()
                .map(|prompt| {
                    let answer = families()
                        .iter()
                        .flat_map(|f| {
                            (0..=f.max_difficulty()).flat_map(move |d| {
                                (0..64).map(move |i| f.generate(d, EVAL_SEED_BASE, i))
                            })
                        })
                        .find(|q| &q.prompt == prompt)
                        .map(|q| q.answer)
                        .unwrap_or_default();
                    vec![answer; k]
                })
                .collect())
        }
    }

    /// Printable noise from a fixed xorshift stream.
    struct Noise(u64);
    impl Solver for Noise {
        fn solve(&mut self, prompts: &[String], k: usize) -> anyhow::Result<Vec<Vec<String>>> {
            let mut next = || {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0
            };
            Ok(prompts
                .iter()
                .map(|_| {
                    (0..k)
                        .map(|_| {
                            (0..12)
                                .map(|_| char::from(b' ' + (next() % 95) as u8))
                                .collect()
                        })
                        .collect()
                })
                .collect())
        }
    }

    #[test]
    fn ground_truth_scores_one_and_noise_scores_nearly_zero() {
        let options = EvalOptions {
            n: 20,
            k: 2,
            batch: 7,
            ..EvalOptions::default()
        };
        let rewards = RewardConfig::default();
        let mut calls = 0;
        let report = evaluate(&mut Oracle, &options, &rewards, &mut |_, _| calls += 1).unwrap();
        assert_eq!(report.families.len(), families().len());
        for f in &report.families {
            assert_eq!((f.pass_at_1, f.pass_at_k), (1.0, 1.0), "{}", f.family);
        }
        assert_eq!(calls, families().len() * 3);
        let noise = evaluate(&mut Noise(7), &options, &rewards, &mut |_, _| {}).unwrap();
        let mean: f64 =
            noise.families.iter().map(|f| f.pass_at_1).sum::<f64>() / noise.families.len() as f64;
        assert!(mean < 0.05, "noise scored {mean}");
        assert!(noise.to_table().contains("pass@2"));
    }

    #[test]
    fn unknown_family_is_an_error() {
        let options = EvalOptions {
            families: vec!["poetry".into()],
            ..EvalOptions::default()
        };
        let err = evaluate(
            &mut Noise(1),
            &options,
            &RewardConfig::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("poetry"));
    }
}
