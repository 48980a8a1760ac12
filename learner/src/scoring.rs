//! Rewards as this node computes them: the catalog's verifiers for questions with a ground truth,
//! and a majority vote for unlabeled ones (test-time RL). The vote pools every completion of the
//! prompt the node holds when it scores (its own and other nodes'), so a swarm labels a prompt from
//! more samples than one node draws.

use std::collections::BTreeMap;

use anyhow::Result;
use swarm_protocol::Completion;
use swarm_tasks::majority::{majority_vote, same_answer};
use swarm_tasks::{Question, RewardConfig, TaskCatalog, UNLABELED_FAMILY, Verdict, answer};

/// Scores completions; built once per scoring pass with the completions the votes pool.
pub struct Scorer<'a> {
    tasks: &'a TaskCatalog,
    rewards: RewardConfig,
    /// Unlabeled prompt → the majority answer of its pooled completions; `None` when no answer
    /// reached the share asked for, or two tied.
    labels: BTreeMap<String, Option<String>>,
    /// Unlabeled prompt → how many completions its vote pooled.
    ballots: BTreeMap<String, usize>,
}

/// How the votes of a set of unlabeled questions went, measured against the answers of datasets
/// loaded with hidden labels where the node has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VoteTally {
    /// Unlabeled questions voted on.
    pub questions: usize,
    /// Questions whose vote produced a label.
    pub labeled: usize,
    /// Labeled questions whose hidden answer this node knows.
    pub checked: usize,
    /// Checked questions whose label is the hidden answer.
    pub correct: usize,
    /// Completions pooled by the votes, summed over the questions.
    pub ballots: usize,
}

impl<'a> Scorer<'a> {
    /// Scores with `tasks`' verifiers; unlabeled questions are voted on over `pooled`, every
    /// (question, completion text) the node holds for this pass (labeled ones are passed over).
    pub fn new<'t>(
        tasks: &'a TaskCatalog,
        rewards: RewardConfig,
        min_share: f32,
        pooled: impl IntoIterator<Item = (&'t Question, &'t str)>,
    ) -> Self {
        Self::with_ballots(
            tasks,
            rewards,
            min_share,
            pooled
                .into_iter()
                .filter(|(question, _)| question.family == UNLABELED_FAMILY)
                .map(|(question, text)| (question.prompt.as_str(), text)),
        )
    }

    /// [`Scorer::new`] from ballots given as (unlabeled prompt, completion text).
    pub fn with_ballots<'t>(
        tasks: &'a TaskCatalog,
        rewards: RewardConfig,
        min_share: f32,
        pooled: impl IntoIterator<Item = (&'t str, &'t str)>,
    ) -> Self {
        let mut ballots: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (prompt, text) in pooled {
            ballots.entry(prompt).or_default().push(text);
        }
        let counts = ballots
            .iter()
            .map(|(prompt, texts)| ((*prompt).to_owned(), texts.len()))
            .collect();
        let labels = ballots
            .into_iter()
            .map(|(prompt, texts)| {
                let label = majority_vote(&texts, min_share).map(|vote| vote.answer);
                (prompt.to_owned(), label)
            })
            .collect();
        Self {
            tasks,
            rewards,
            labels,
            ballots: counts,
        }
    }

    /// The reward of an own completion: the one it was sampled with, except for an unlabeled
    /// question, whose reward is its agreement with the vote as pooled now.
    pub fn own_reward(&self, question: &Question, completion: &Completion) -> Result<f32> {
        if question.family == UNLABELED_FAMILY {
            Ok(self.verify(question, &completion.text)?.reward)
        } else {
            Ok(completion.reward)
        }
    }

    /// The verdict on `completion`. An unlabeled question scores by agreement with its pooled
    /// vote; one without a label scores 0 for every completion, so it carries no signal.
    pub fn verify(&self, question: &Question, completion: &str) -> Result<Verdict> {
        if question.family != UNLABELED_FAMILY {
            return Ok(self.tasks.verify(question, completion, &self.rewards)?);
        }
        let extracted = answer::extract(completion);
        let Some(Some(label)) = self.labels.get(&question.prompt) else {
            return Ok(Verdict {
                reward: 0.0,
                correct: false,
                well_formed: extracted.is_some(),
                extracted,
            });
        };
        let agrees = extracted.as_deref().is_some_and(|a| same_answer(a, label));
        let well_formed = extracted.is_some();
        Ok(self.rewards.verdict(extracted, well_formed, agrees))
    }

    /// How the votes on `prompts` went.
    pub fn tally<'p>(&self, prompts: impl IntoIterator<Item = &'p str>) -> VoteTally {
        let mut tally = VoteTally::default();
        for prompt in prompts {
            let Some(label) = self.labels.get(prompt) else {
                continue;
            };
            tally.questions += 1;
            tally.ballots += self.ballots.get(prompt).copied().unwrap_or(0);
            let Some(label) = label else { continue };
            tally.labeled += 1;
            if let Some(truth) = self.tasks.hidden_answer(prompt) {
                tally.checked += 1;
                tally.correct += usize::from(same_answer(label, &truth.answer));
            }
        }
        tally
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_tasks::{Dataset, unlabeled_question};

    #[test]
    fn unlabeled_questions_score_by_the_pooled_vote() {
        let mut tasks = TaskCatalog::new();
        tasks.add_dataset_hiding_labels(
            Dataset::from_bytes(
                "h.jsonl",
                b"{\"question\": \"6*7?\", \"answer\": 42}\n{\"question\": \"1+1?\", \"answer\": 2}\n",
            )
            .unwrap(),
        );
        let q = unlabeled_question("6*7?");
        let other = unlabeled_question("1+1?");
        let labeled = swarm_tasks::procedural("basic_arithmetic", 0, 1, 0).unwrap();
        // Alone, this node's two completions tie; pooled with a peer's, 42 wins.
        let own = ["<answer>42</answer>", "<answer>41</answer>"];
        let peer = ["42.0", "<answer>40</answer>"];
        let rewards = RewardConfig::default();
        let alone = Scorer::new(&tasks, rewards, 0.0, own.iter().map(|t| (&q, *t)));
        assert_eq!(alone.verify(&q, own[0]).unwrap().reward, 0.0);
        assert_eq!(alone.verify(&q, own[1]).unwrap().reward, 0.0);
        let pooled = own.iter().chain(&peer).map(|t| (&q, *t));
        let both = ["<answer>2</answer>", "<answer>3</answer>", "3"];
        let scorer = Scorer::new(
            &tasks,
            rewards,
            0.0,
            pooled.chain(both.iter().map(|t| (&other, *t))),
        );
        assert_eq!(scorer.verify(&q, own[0]).unwrap().reward, 1.0);
        assert_eq!(
            scorer.verify(&q, own[1]).unwrap().reward,
            rewards.format_reward
        );
        assert_eq!(
            scorer.verify(&q, "no idea").unwrap().reward,
            rewards.format_reward
        );
        assert_eq!(
            scorer.verify(&labeled, &labeled.answer).unwrap().reward,
            1.0,
            "labeled questions keep their verifier"
        );
        // 42 is the hidden answer; the vote on 1+1 chose 3, which is wrong.
        assert_eq!(
            scorer.tally(["6*7?", "1+1?", "never voted"]),
            VoteTally {
                questions: 2,
                labeled: 2,
                checked: 2,
                correct: 1,
                ballots: 7,
            }
        );
        let strict = Scorer::new(
            &tasks,
            rewards,
            0.9,
            own.iter().chain(&peer).map(|t| (&q, *t)),
        );
        assert_eq!(
            strict.verify(&q, own[0]).unwrap().reward,
            0.0,
            "below the share"
        );
    }
}
