//! A batch made only of other nodes' rollouts, produced under a different tokenizer, trains: the text is
//! re-tokenized, rescored and weighted locally, and the correct completions become more likely.

use std::path::PathBuf;

use candle_core::Device;
use swarm_learner::{ExternalCompletion, ExternalGroup, Learner, LearnerOptions};
use swarm_policy::{Policy, TokenSequence};
use swarm_protocol::PolicyInfo;
use swarm_tasks::Question;

fn model_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../configs/models")
        .join(name)
}

/// Sum of the completion's log-probs (with the end token) under `policy`, per completion.
fn completion_logprobs(policy: &Policy, pairs: &[(&Question, String)]) -> Vec<f32> {
    let eos = policy.eos_ids()[0];
    let sequences: Vec<TokenSequence> = pairs
        .iter()
        .map(|(q, text)| TokenSequence {
            prompt: policy
                .encode(&swarm_learner::render_prompt(&q.prompt))
                .unwrap(),
            completion: policy
                .encode(text)
                .unwrap()
                .into_iter()
                .chain([eos])
                .collect(),
        })
        .collect();
    let out = policy.sequence_logprobs(&sequences).unwrap();
    (out.logprobs * out.mask)
        .unwrap()
        .sum(1)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn external_rollouts_from_another_tokenizer_raise_the_positive_completions() {
    let device = Device::Cpu;
    let receiver = Policy::init_random(&model_dir("tiny"), 11, &device).unwrap();
    let sender = Policy::init_random(&model_dir("tiny-pairs"), 12, &device).unwrap();
    assert_ne!(receiver.tokenizer_hash(), sender.tokenizer_hash());

    let family = swarm_tasks::family("basic_arithmetic").unwrap();
    let questions: Vec<Question> = (0..4).map(|i| family.generate(1, 5, i)).collect();
    let wrong = |q: &Question| format!("{}", q.answer.parse::<i64>().unwrap() + 17);
    // The sender's text, as its own tokenizer saw it: the ids differ from the receiver's.
    let answer_ids = sender.encode(&questions[0].answer).unwrap();
    assert_ne!(answer_ids, receiver.encode(&questions[0].answer).unwrap());

    let groups: Vec<ExternalGroup> = questions
        .iter()
        .map(|q| ExternalGroup {
            author: "a1".repeat(32),
            question: q.clone(),
            policy: PolicyInfo {
                model_name: "tiny-pairs".into(),
                architecture_hash: sender.architecture_hash(),
                tokenizer_hash: sender.tokenizer_hash(),
                policy_version: 99,
            },
            completions: [q.answer.clone(), wrong(q), q.answer.clone(), wrong(q)]
                .into_iter()
                .map(|text| ExternalCompletion {
                    text: sender.decode(&sender.encode(&text).unwrap()).unwrap(),
                    truncated: false,
                })
                .collect(),
        })
        .collect();

    let positives: Vec<(&Question, String)> =
        questions.iter().map(|q| (q, q.answer.clone())).collect();
    let negatives: Vec<(&Question, String)> = questions.iter().map(|q| (q, wrong(q))).collect();
    let positive_before = completion_logprobs(&receiver, &positives);
    let negative_before = completion_logprobs(&receiver, &negatives);

    let data = tempfile::tempdir().unwrap();
    let options = LearnerOptions {
        lr: 1e-3,
        format_reward: 0.0,
        ..LearnerOptions::default()
    };
    let mut learner = Learner::start(
        receiver,
        "tiny",
        data.path(),
        options,
        3,
        std::sync::Arc::new(swarm_tasks::TaskCatalog::new()),
    )
    .unwrap();
    let report = learner.train(&[], &[], &groups).unwrap();
    assert_eq!(report.trained_local_external, (0, 16));
    assert_eq!(
        report.batch.reward_external(),
        Some(0.5),
        "rescored locally"
    );
    assert_eq!(report.update.steps, 1);
    assert_eq!(
        report.update.gated, 0,
        "no own completions: no reference for the gate"
    );
    assert!(
        report.update.mean_weight > 0.99,
        "fresh step: weights are 1"
    );

    let positive_after = completion_logprobs(learner.policy(), &positives);
    let negative_after = completion_logprobs(learner.policy(), &negatives);
    for (before, after) in positive_before.iter().zip(&positive_after) {
        assert!(after > before, "positive completion: {before} -> {after}");
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        mean(&negative_after) < mean(&negative_before),
        "negative completions: {negative_before:?} -> {negative_after:?}"
    );
}
