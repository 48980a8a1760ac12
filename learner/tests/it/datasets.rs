//! Unlabeled dataset rows are trained on majority-vote rewards, and the vote pools other nodes'
//! completions of the same prompt: a question this node's own completions split evenly on gets a
//! label, and a training signal, once a peer's completions are pooled with them.

use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use swarm_learner::{
    DatasetSource, ExternalCompletion, ExternalGroup, Learner, LearnerOptions, LocalGroup,
    NullNetwork, load_tasks,
};
use swarm_policy::Policy;
use swarm_protocol::{Completion, PolicyInfo, SamplingParams};
use swarm_tasks::{TaskRef, TaskRefExt, UNLABELED_FAMILY, unlabeled_question};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/models/tiny")
}

fn policy_info(policy: &Policy) -> PolicyInfo {
    PolicyInfo {
        model_name: "tiny".into(),
        architecture_hash: policy.architecture_hash(),
        tokenizer_hash: policy.tokenizer_hash(),
        policy_version: 0,
    }
}

/// An own group of `prompt` answered with `texts` (token ids from the policy's tokenizer; the
/// behaviour log-probs are made up, which only the importance weights see).
fn own_group(policy: &Policy, prompt: &str, texts: &[&str]) -> LocalGroup {
    LocalGroup {
        task: TaskRef::unlabeled(prompt),
        question: unlabeled_question(prompt),
        policy: policy_info(policy),
        sampling: SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 8,
        },
        completions: texts
            .iter()
            .map(|text| {
                let mut token_ids = policy.encode(text).unwrap();
                token_ids.push(policy.eos_ids()[0]);
                Completion {
                    text: (*text).to_owned(),
                    logprobs: vec![-1.0; token_ids.len()],
                    token_ids,
                    reward: 0.0,
                    truncated: false,
                }
            })
            .collect(),
    }
}

/// Options that train only on the dataset at `path`, its answers hidden (rewards by vote).
fn hidden_labels(path: std::path::PathBuf) -> LearnerOptions {
    LearnerOptions {
        families: Vec::new(),
        datasets: vec![DatasetSource {
            path,
            weight: 1,
            hide_labels: true,
        }],
        checkpoint_every: 1000,
        ..LearnerOptions::default()
    }
}

#[test]
fn a_peers_completions_settle_a_vote_this_node_cannot() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("hidden.jsonl");
    std::fs::write(
        &path,
        "{\"question\": \"Is 7 prime?\", \"answer\": \"True\"}\n",
    )
    .unwrap();
    let options = LearnerOptions {
        format_reward: 0.0,
        ..hidden_labels(path)
    };
    let tasks = Arc::new(load_tasks(&options, &[]).unwrap());
    let device = Device::Cpu;
    let start = |data: &std::path::Path| {
        Learner::start(
            Policy::init_random(&tiny(), 1, &device).unwrap(),
            "tiny",
            data,
            options.clone(),
            2,
            Arc::clone(&tasks),
        )
        .unwrap()
    };
    let prompt = "Is 7 prime?";

    let data = tempfile::tempdir().unwrap();
    let mut alone = start(data.path());
    let fresh = [own_group(alone.policy(), prompt, &["True", "False"])];
    let report = alone.train(&fresh, &[], &[]).unwrap();
    assert_eq!(report.votes.questions, 1);
    assert_eq!(report.votes.labeled, 0, "a tie gives no label");
    assert_eq!(report.trained_local_external, (0, 0));

    let data = tempfile::tempdir().unwrap();
    let mut pooled = start(data.path());
    let peer = ExternalGroup {
        author: "ab".repeat(32),
        question: unlabeled_question(prompt),
        policy: policy_info(pooled.policy()),
        completions: ["True", "<answer>true</answer>", "False"]
            .map(|text| ExternalCompletion {
                text: text.into(),
                truncated: false,
            })
            .to_vec(),
    };
    let fresh = [own_group(pooled.policy(), prompt, &["True", "False"])];
    let report = pooled.train(&fresh, &[], &[peer]).unwrap();
    assert_eq!(report.votes.labeled, 1, "pooled, True wins 3 to 2");
    assert_eq!((report.votes.checked, report.votes.correct), (1, 1));
    assert_eq!(report.trained_local_external, (2, 3));
    assert_eq!(report.batch.external_rewards, vec![vec![1.0, 1.0, 0.0]]);
}

#[test]
fn a_solo_round_on_unlabeled_rows_reports_its_votes() {
    let files = tempfile::tempdir().unwrap();
    let path = files.path().join("arith.jsonl");
    let family = swarm_tasks::family("basic_arithmetic").unwrap();
    let rows: String = (0..40)
        .map(|i| {
            let q = family.generate(0, 1, i);
            // Half the rows have no answer at all; the other half hide theirs.
            if i % 2 == 0 {
                serde_json::json!({"question": q.prompt}).to_string() + "\n"
            } else {
                serde_json::json!({"question": q.prompt, "answer": q.answer}).to_string() + "\n"
            }
        })
        .collect();
    std::fs::write(&path, rows).unwrap();
    let options = LearnerOptions {
        prompts_per_round: 8,
        ..hidden_labels(path)
    };
    let tasks = Arc::new(load_tasks(&options, &[]).unwrap());
    let data = tempfile::tempdir().unwrap();
    let mut learner = Learner::start(
        Policy::init_random(&tiny(), 1, &Device::Cpu).unwrap(),
        "tiny",
        data.path(),
        options,
        2,
        Arc::clone(&tasks),
    )
    .unwrap();
    // Unlabeled questions are trained the round after they are sampled (`defer_unlabeled`), so
    // the first round votes on nothing and the second on the first round's questions.
    let first = learner.run_round(&mut NullNetwork).unwrap();
    assert_eq!(first.vote_labeled_fraction, None, "{first:?}");
    assert!(first.accuracy.contains_key(UNLABELED_FAMILY), "{first:?}");
    let second = learner.run_round(&mut NullNetwork).unwrap();
    assert!(second.vote_labeled_fraction.is_some(), "{second:?}");
    assert_eq!(
        second.stale_groups, 8,
        "the first round's questions, deferred"
    );
    // A random model's votes rarely agree with the hidden answers, but they are measured.
    let lines = std::fs::read_to_string(data.path().join("metrics.jsonl")).unwrap();
    assert!(lines.contains("\"vote_labeled_fraction\""), "{lines}");
}
