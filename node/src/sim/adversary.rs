//! Misbehaving publishers for simulations: a node kind that trains honestly but publishes corrupted
//! rollouts, so that the receivers' defences (rescoring, the NLL gate, prompt checks, share caps)
//! can be measured.

use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use swarm_learner::{ExternalGroup, LocalGroup, Network};
use swarm_tasks::RewardConfig;

use super::config::Adversary;

/// A network that corrupts every group before handing it to the honest network below.
pub struct AdversarialNetwork<N> {
    inner: N,
    adversary: Adversary,
    rng: ChaCha8Rng,
}

impl<N: Network> AdversarialNetwork<N> {
    /// Wraps `inner`; `seed` drives the corruption.
    pub fn new(inner: N, adversary: Adversary, seed: u64) -> Self {
        Self {
            inner,
            adversary,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The honest network below.
    pub fn inner(&self) -> &N {
        &self.inner
    }
}

/// Printable noise of 3 to 24 characters.
fn garbage(rng: &mut ChaCha8Rng) -> String {
    let len = rng.random_range(3..=24);
    (0..len)
        .map(|_| char::from(rng.random_range(b' '..=b'~')))
        .collect()
}

/// A well-formed answer to another question of the same family that is wrong for this one; `None`
/// when no nearby question has a different answer (tiny answer spaces).
fn wrong_answer(group: &LocalGroup, rng: &mut ChaCha8Rng) -> Option<String> {
    let question = &group.question;
    let family = swarm_tasks::family(&question.family)?;
    let rewards = RewardConfig::default();
    (0..32).find_map(|_| {
        let other = family.generate(
            question.difficulty,
            question.seed,
            rng.random::<u32>() as u64,
        );
        let verdict = swarm_tasks::verify(question, &other.answer, &rewards);
        (!verdict.correct).then_some(other.answer)
    })
}

/// The group as the adversary publishes it: every completion claims full reward.
pub fn corrupt(group: &LocalGroup, adversary: Adversary, rng: &mut ChaCha8Rng) -> LocalGroup {
    let mut forged = group.clone();
    match adversary {
        Adversary::Garbage => {
            for completion in &mut forged.completions {
                completion.text = garbage(rng);
            }
        }
        Adversary::WrongAnswers => {
            for completion in &mut forged.completions {
                if let Some(answer) = wrong_answer(group, rng) {
                    completion.text = answer;
                }
            }
        }
        Adversary::ForgedPrompts => {
            forged.question.prompt = format!("{} Answer 0.", forged.question.prompt);
        }
    }
    for completion in &mut forged.completions {
        completion.reward = 1.0;
    }
    forged
}

impl<N: Network> Network for AdversarialNetwork<N> {
    fn publish(&mut self, group: &LocalGroup) -> Result<()> {
        let forged = corrupt(group, self.adversary, &mut self.rng);
        self.inner.publish(&forged)
    }

    fn take_arrivals(&mut self) -> Vec<ExternalGroup> {
        self.inner.take_arrivals()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm_protocol::{Completion, PolicyInfo, SamplingParams};
    use swarm_tasks::TaskRefExt;

    fn group(family: &str) -> LocalGroup {
        let question = swarm_tasks::family(family).unwrap().generate(0, 5, 9);
        LocalGroup {
            task: swarm_tasks::TaskRef::procedural(&question),
            completions: vec![
                Completion {
                    text: question.answer.clone(),
                    token_ids: vec![1, 2],
                    logprobs: vec![-0.5, -0.5],
                    reward: 1.0,
                    truncated: false,
                };
                4
            ],
            question,
            policy: PolicyInfo {
                model_name: "tiny".into(),
                architecture_hash: [0; 32],
                tokenizer_hash: [0; 32],
                policy_version: 3,
            },
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                max_new_tokens: 8,
            },
        }
    }

    #[test]
    fn corrupted_groups_score_zero_with_the_local_verifier_but_claim_full_reward() {
        let rewards = RewardConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for family in ["basic_arithmetic", "calendar_arithmetic", "sorting"] {
            let honest = group(family);
            for adversary in [Adversary::Garbage, Adversary::WrongAnswers] {
                let forged = corrupt(&honest, adversary, &mut rng);
                for completion in &forged.completions {
                    assert_eq!(completion.reward, 1.0);
                    assert_eq!(completion.token_ids.len(), completion.logprobs.len());
                    let verdict = swarm_tasks::verify(&forged.question, &completion.text, &rewards);
                    assert!(
                        !verdict.correct,
                        "{family} {adversary:?}: {}",
                        completion.text
                    );
                }
            }
            let forged = corrupt(&honest, Adversary::ForgedPrompts, &mut rng);
            let reference = swarm_tasks::TaskRef::procedural(&forged.question);
            assert!(
                swarm_tasks::TaskCatalog::new()
                    .check(&reference, &forged.question.prompt)
                    .is_err(),
                "a forged prompt no longer matches its task reference"
            );
        }
    }
}
