//! Held-out evaluation: pass@1 and pass@k per family on questions whose seeds training never uses.

use serde::{Deserialize, Serialize};

use crate::{EVAL_SEED_BASE, Question, RewardConfig, TaskCatalog, TaskError};

/// Anything that answers prompts: the policy, or a test double.
pub trait Solver {
    /// `k` completions for each prompt, in prompt order.
    fn solve(&mut self, prompts: &[String], k: usize) -> anyhow::Result<Vec<Vec<String>>>;
}

/// What to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Families to evaluate; empty (with no datasets) means every family of the catalog.
    pub families: Vec<String>,
    /// Datasets to evaluate on, by the name they were loaded under: their first `n` labeled rows.
    #[serde(default)]
    pub datasets: Vec<String>,
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
            datasets: Vec::new(),
            difficulty: 0,
            n: 50,
            k: 1,
            samples: 0,
            batch: 16,
        }
    }
}

/// Results for one family or dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyScore {
    /// Family name, or the dataset's name.
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

/// One evaluated set: a family at a difficulty, or a dataset's rows.
struct EvalSet {
    name: String,
    difficulty: u32,
    questions: Vec<Question>,
}

/// The sets `options` asks for: named families (each must support the difficulty) or, with none
/// named, every family of the catalog at the highest difficulty it supports up to the one asked
/// (unless none reaches it); then the named datasets.
fn eval_sets(catalog: &TaskCatalog, options: &EvalOptions) -> Result<Vec<EvalSet>, anyhow::Error> {
    let named = !options.families.is_empty();
    let selected = if named {
        options
            .families
            .iter()
            .map(|name| {
                catalog
                    .family_info(name)
                    .ok_or_else(|| TaskError::UnknownFamily(name.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?
    } else if options.datasets.is_empty() {
        catalog.families()
    } else {
        Vec::new()
    };
    let too_hard: Vec<_> = selected
        .iter()
        .filter(|info| options.difficulty > info.max_difficulty)
        .collect();
    if let Some(info) = too_hard.first()
        && (named || too_hard.len() == selected.len())
    {
        return Err(TaskError::Difficulty {
            family: info.name.clone(),
            difficulty: options.difficulty,
            max: info.max_difficulty,
        }
        .into());
    }
    let mut sets = Vec::new();
    for info in selected {
        let difficulty = options.difficulty.min(info.max_difficulty);
        let questions = (0..options.n as u64)
            .map(|i| catalog.generate(&info.name, difficulty, EVAL_SEED_BASE, i))
            .collect::<Result<_, _>>()?;
        sets.push(EvalSet {
            name: info.name,
            difficulty,
            questions,
        });
    }
    for name in &options.datasets {
        let loaded = catalog.dataset_named(name).ok_or_else(|| {
            anyhow::anyhow!("dataset {name} is not loaded; evaluation reads datasets it loaded")
        })?;
        let questions: Vec<Question> = (0..loaded.dataset.len() as u64)
            .filter_map(|row| loaded.dataset.question(row).ok())
            .take(options.n)
            .collect();
        anyhow::ensure!(
            !questions.is_empty(),
            "dataset {name} has no labeled rows to evaluate on (every row lacks an answer)"
        );
        sets.push(EvalSet {
            name: name.clone(),
            difficulty: 0,
            questions,
        });
    }
    Ok(sets)
}

/// Evaluates `solver` on held-out questions of `catalog`'s families and datasets;
/// `progress(done, total)` is called after each batch of questions.
pub fn evaluate(
    solver: &mut dyn Solver,
    catalog: &TaskCatalog,
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
    let sets = eval_sets(catalog, options)?;
    let total = sets.iter().map(|set| set.questions.len()).sum();
    let mut done = 0;
    let mut scores = Vec::new();
    for set in sets {
        let (mut pass1, mut passk, mut reward) = (0.0, 0.0, 0.0);
        for chunk in set.questions.chunks(options.batch) {
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
                let verdicts = completions
                    .iter()
                    .map(|c| catalog.verify(question, c, rewards))
                    .collect::<Result<Vec<_>, _>>()?;
                let correct = verdicts.iter().filter(|v| v.correct).count();
                pass1 += correct as f64 / samples as f64;
                passk += pass_at_k(samples, correct, options.k);
                reward +=
                    verdicts.iter().map(|v| f64::from(v.reward)).sum::<f64>() / samples as f64;
            }
            done += chunk.len();
            progress(done, total);
        }
        let n = set.questions.len() as f64;
        scores.push(FamilyScore {
            family: set.name,
            difficulty: set.difficulty,
            n: set.questions.len(),
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
    use crate::{Dataset, families};

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
        let report = evaluate(
            &mut Oracle,
            &TaskCatalog::new(),
            &options,
            &rewards,
            &mut |_, _| calls += 1,
        )
        .unwrap();
        assert_eq!(report.families.len(), families().len());
        for f in &report.families {
            assert_eq!((f.pass_at_1, f.pass_at_k), (1.0, 1.0), "{}", f.family);
        }
        assert_eq!(calls, families().len() * 3);
        let noise = evaluate(
            &mut Noise(7),
            &TaskCatalog::new(),
            &options,
            &rewards,
            &mut |_, _| {},
        )
        .unwrap();
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
            &TaskCatalog::new(),
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
            &TaskCatalog::new(),
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
            &TaskCatalog::new(),
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
                &TaskCatalog::new(),
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

    /// Answers every prompt with the dataset's own answer, looked up by prompt.
    struct Lookup(Vec<(String, String)>);
    impl Solver for Lookup {
        fn solve(&mut self, prompts: &[String], k: usize) -> anyhow::Result<Vec<Vec<String>>> {
            Ok(prompts
                .iter()
                .map(|prompt| {
                    let answer = self.0.iter().find(|(q, _)| q == prompt).map(|(_, a)| a);
                    vec![answer.cloned().unwrap_or_default(); k]
                })
                .collect())
        }
    }

    #[test]
    fn datasets_evaluate_on_their_labeled_rows() {
        let text = concat!(
            "{\"question\": \"2+2?\", \"answer\": 4}\n",
            "{\"question\": \"Unlabeled?\"}\n",
            "{\"question\": \"Capital of Italy?\", \"answer\": \"Rome\"}\n",
            "{\"question\": \"3*3?\", \"answer\": \"9\"}\n",
        );
        let mut catalog = TaskCatalog::new();
        catalog.add_dataset(Dataset::from_bytes("qa.jsonl", text.as_bytes()).unwrap());
        let options = EvalOptions {
            datasets: vec!["qa.jsonl".into()],
            n: 2,
            ..EvalOptions::default()
        };
        // Right on the first labeled row, wrong on the second: the unlabeled row is skipped.
        let solver = &mut Lookup(vec![
            ("2+2?".into(), "4.0".into()),
            ("Capital of Italy?".into(), "Milan".into()),
        ]);
        let report = evaluate(
            solver,
            &catalog,
            &options,
            &RewardConfig::default(),
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(report.families.len(), 1);
        let row = &report.families[0];
        assert_eq!((row.family.as_str(), row.n), ("qa.jsonl", 2));
        assert!((row.pass_at_1 - 0.5).abs() < 1e-12, "{row:?}");
        let missing = EvalOptions {
            datasets: vec!["other.jsonl".into()],
            ..options
        };
        let err = evaluate(
            solver,
            &catalog,
            &missing,
            &RewardConfig::default(),
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(err.to_string().contains("other.jsonl"), "{err}");
    }
}
