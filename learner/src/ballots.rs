//! The ballots of unlabeled questions: every other node's completions of an unlabeled prompt that
//! arrived in the last few rounds, whether or not this node trains on them, so that a majority vote
//! counts all the samples the swarm drew of the prompt rather than only those in this round's batch.

use std::collections::BTreeMap;

use swarm_tasks::UNLABELED_FAMILY;

use crate::rollout::ExternalGroup;

/// Most completions kept per prompt; a vote over more adds little and costs memory.
const MAX_BALLOTS_PER_PROMPT: usize = 512;

struct Ballot {
    round: u64,
    author: String,
    texts: Vec<String>,
}

/// Arrived completions of unlabeled prompts, by prompt.
#[derive(Default)]
pub struct BallotBox {
    by_prompt: BTreeMap<String, Vec<Ballot>>,
}

impl BallotBox {
    /// Keeps the completions of the unlabeled groups among `arrivals`, received in `round`.
    pub fn add_arrivals<'a>(
        &mut self,
        round: u64,
        arrivals: impl IntoIterator<Item = &'a ExternalGroup>,
    ) {
        for group in arrivals {
            if group.question.family != UNLABELED_FAMILY {
                continue;
            }
            let ballots = self
                .by_prompt
                .entry(group.question.prompt.clone())
                .or_default();
            let held: usize = ballots.iter().map(|b| b.texts.len()).sum();
            if held + group.completions.len() > MAX_BALLOTS_PER_PROMPT {
                continue;
            }
            ballots.push(Ballot {
                round,
                author: group.author.clone(),
                texts: group.completions.iter().map(|c| c.text.clone()).collect(),
            });
        }
    }

    /// Forgets what arrived more than `max_age` rounds before `round`.
    pub fn expire(&mut self, round: u64, max_age: u64) {
        self.by_prompt.retain(|_, ballots| {
            ballots.retain(|b| round.saturating_sub(b.round) <= max_age);
            !ballots.is_empty()
        });
    }

    /// The (prompt, completion) pairs held, leaving out the groups in `counted` (those the batch
    /// holds, which the vote counts already).
    pub fn pooled<'a>(
        &'a self,
        counted: &'a [ExternalGroup],
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.by_prompt.iter().flat_map(move |(prompt, ballots)| {
            ballots
                .iter()
                .filter(move |ballot| {
                    !counted.iter().any(|group| {
                        group.author == ballot.author
                            && group.question.prompt == *prompt
                            && group
                                .completions
                                .iter()
                                .map(|c| &c.text)
                                .eq(ballot.texts.iter())
                    })
                })
                .flat_map(move |ballot| {
                    ballot
                        .texts
                        .iter()
                        .map(move |t| (prompt.as_str(), t.as_str()))
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::ExternalCompletion;
    use swarm_protocol::PolicyInfo;
    use swarm_tasks::unlabeled_question;

    fn group(author: &str, prompt: &str, texts: &[&str]) -> ExternalGroup {
        ExternalGroup {
            author: author.into(),
            question: unlabeled_question(prompt),
            policy: PolicyInfo {
                model_name: "m".into(),
                architecture_hash: [0; 32],
                tokenizer_hash: [0; 32],
                policy_version: 0,
            },
            completions: texts
                .iter()
                .map(|t| ExternalCompletion {
                    text: (*t).into(),
                    truncated: false,
                })
                .collect(),
        }
    }

    #[test]
    fn arrivals_are_pooled_once_and_expire() {
        let mut labeled = group("c", "2+2?", &["4"]);
        labeled.question.family = "basic_arithmetic".into();
        let a = group("a", "p", &["1", "2"]);
        let b = group("b", "p", &["1"]);
        let mut ballots = BallotBox::default();
        ballots.add_arrivals(3, [&a, &b, &labeled]);
        let all: Vec<_> = ballots.pooled(&[]).collect();
        assert_eq!(
            all,
            [("p", "1"), ("p", "2"), ("p", "1")],
            "labeled groups are not ballots"
        );
        let without_a: Vec<_> = ballots.pooled(std::slice::from_ref(&a)).collect();
        assert_eq!(
            without_a,
            [("p", "1")],
            "a group in the batch is counted there"
        );
        ballots.expire(7, 4);
        assert_eq!(ballots.pooled(&[]).count(), 3);
        ballots.expire(8, 4);
        assert_eq!(ballots.pooled(&[]).count(), 0);
    }
}
