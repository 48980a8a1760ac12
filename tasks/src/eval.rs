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
    /// The k of pass@k.
    pub k: usize,
    /// Completions sampled per question, at least `k` (0 means `k`). Sampling more than `k` lowers the
    /// variance of the pass@k estimate.
    #[serde(default)]
    pub samples: usize,
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
            samples: 0,
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
    /// The k of pass@k.
    pub k: usize,
    /// Completions sampled per question.
    #[serde(default)]
    pub samples: usize,
    /// Expected share of single completions that are correct.
    pub pass_at_1: f64,
    /// Expected share of questions with at least one correct completion among k, estimated without
    /// bias from `samples` completions (see [`pass_at_k`]).
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

    /// The report as pretty-printed JSON, for `--json` output and scripts.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an evaluation report always serializes")
    }
}

/// Unbiased estimate of pass@k from `n` sampled completions of which `c` are correct:
/// `1 - C(n-c, k) / C(n, k)`, the chance that k completions drawn without replacement include a correct
/// one. Computed as a running product so that large `n` neither overflows nor loses precision.
///
/// # Panics
///
/// Unless `1 <= k <= n` and `c <= n`.
pub fn pass_at_k(n: usize, c: usize, k: usize) -> f64 {
    assert!(
        k >= 1 && k <= n && c <= n,
        "pass_at_k needs 1 <= k <= n and c <= n (n={n}, c={c}, k={k})"
    );
    if n - c < k {
        return 1.0;
    }
    let all_wrong: f64 = ((n - c + 1)..=n)
        .map(|i| 1.0 - k as f64 / i as f64)
        .product();
    1.0 - all_wrong
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
    let samples = if options.samples == 0 {
        options.k
    } else {
        options.samples
    };
    anyhow::ensure!(
        samples >= options.k,
        "samples ({samples}) must be at least k ({}): pass@k needs k completions to choose from",
        options.k
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
    // Named families must support the difficulty asked for; over all families, each runs at the
    // highest it supports (the report's difficulty column says which), unless none reaches it.
    let too_hard: Vec<&dyn TaskFamily> = selected
        .iter()
        .copied()
        .filter(|task| options.difficulty > task.max_difficulty())
        .collect();
    if let Some(task) = too_hard.first()
        && (!options.families.is_empty() || too_hard.len() == selected.len())
    {
        return Err(TaskError::Difficulty {
            family: task.name().into(),
            difficulty: options.difficulty,
            max: task.max_difficulty(),
        }
        .into());
    }
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
            let answers = solver.solve(&prompts, samples)?;
            anyhow::ensure!(
                answers.len() == chunk.len(),
                "the solver returned {} answer lists for {} prompts",
                answers.len(),
                chunk.len()
            );
            for (question, completions) in chunk.iter().zip(&answers) {
                anyhow::ensure!(
                    completions.len() == samples,
                    "the solver returned {} completions, expected {samples}",
                    completions.len(),
                );
                let verdicts: Vec<_> = completions
                    .iter()
                    .map(|c| task.verify(question, c, rewards))
                    .collect();
                let correct = verdicts.iter().filter(|v| v.correct).count();
                pass1 += correct as f64 / samples as f64;
                passk += pass_at_k(samples, correct, options.k);
                reward +=
                    verdicts.iter().map(|v| f64::from(v.reward)).sum::<f64>() / samples as f64;
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
            samples,
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
    fn pass_at_k_matches_the_closed_form() {
        assert_eq!(pass_at_k(4, 0, 2), 0.0);
        assert_eq!(pass_at_k(4, 3, 2), 1.0);
        assert!((pass_at_k(2, 1, 1) - 0.5).abs() < 1e-12);
        // 1 - C(3,2)/C(5,2) = 1 - 3/10.
        assert!((pass_at_k(5, 2, 2) - 0.7).abs() < 1e-12);
        // 1 - C(90,10)/C(100,10), from the exact integer ratio.
        let exact = 1.0
            - (81..=90).map(f64::from).product::<f64>()
                / (91..=100).map(f64::from).product::<f64>();
        assert!((pass_at_k(100, 10, 10) - exact).abs() < 1e-12);
    }

    /// Right on every other completion.
    struct HalfRight;
    impl Solver for HalfRight {
        fn solve(&mut self, prompts: &[String], k: usize) -> anyhow::Result<Vec<Vec<String>>> {
            let answers = Oracle.solve(prompts, 1)?;
            Ok(answers
                .into_iter()
                .map(|mut a| {
                    let right = a.pop().unwrap_or_default();
                    (0..k)
                        .map(|i| {
                            if i % 2 == 0 {
                                right.clone()
                            } else {
                                String::new()
                            }
                        })
                        .collect()
                })
                .collect())
        }
    }

    #[test]
    fn extra_samples_feed_the_unbiased_estimator() {
        let options = EvalOptions {
            families: vec!["basic_arithmetic".into(), "sorting".into()],
            n: 6,
            k: 2,
            samples: 4,
            ..EvalOptions::default()
        };
        let report = evaluate(
            &mut HalfRight,
            &options,
            &RewardConfig::default(),
            &mut |_, _| {},
        )
        .unwrap();
        for f in &report.families {
            assert_eq!(f.samples, 4);
            assert!((f.pass_at_1 - 0.5).abs() < 1e-12, "{f:?}");
            // 1 - C(2,2)/C(4,2) = 5/6.
            assert!((f.pass_at_k - 5.0 / 6.0).abs() < 1e-12, "{f:?}");
        }
        let json: EvalReport = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json, report);
        let too_few = EvalOptions {
            samples: 1,
            ..options
        };
        let err = evaluate(
            &mut HalfRight,
            &too_few,
            &RewardConfig::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least k"), "{err}");
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

    #[test]
    fn a_difficulty_past_the_family_range_is_an_error_not_clamped() {
        let family = families()[0];
        let too_hard = family.max_difficulty() + 1;
        let run = |families: Vec<String>, difficulty: u32| {
            let options = EvalOptions {
                families,
                difficulty,
                n: 2,
                ..EvalOptions::default()
            };
            evaluate(
                &mut Noise(1),
                &options,
                &RewardConfig::default(),
                &mut |_, _| {},
            )
        };
        let err = run(vec![family.name().into()], too_hard)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(family.name()) && err.contains("tasks list"),
            "{err}"
        );
        let above_all = families().iter().map(|f| f.max_difficulty()).max().unwrap() + 1;
        assert!(run(Vec::new(), above_all).is_err());
        let report = run(vec![family.name().into()], family.max_difficulty()).unwrap();
        assert_eq!(report.families[0].difficulty, family.max_difficulty());
    }
}
