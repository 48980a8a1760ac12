//! The optional KL penalty pulls the policy towards its frozen reference: trained on the same batches,
//! a learner with `kl_coef` ends closer to the reference than one without.

use std::path::PathBuf;

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use swarm_learner::{Learner, LearnerOptions, LocalGroup};
use swarm_policy::{Policy, SampleOptions, TokenSequence};
use swarm_protocol::{Completion, PolicyInfo, SamplingParams};
use swarm_tasks::TaskRefExt;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/models/tiny")
}

/// Groups of 4 completions sampled from `policy`, rewarded 1, 0, 1, 0 so every group has variance.
fn groups(policy: &Policy) -> Vec<LocalGroup> {
    let family = swarm_tasks::family("sorting").unwrap();
    let questions: Vec<_> = (0..4).map(|i| family.generate(0, 3, i)).collect();
    let prompts: Vec<Vec<u32>> = questions
        .iter()
        .flat_map(|q| {
            let ids = policy
                .encode(&swarm_learner::render_prompt(&q.prompt))
                .unwrap();
            std::iter::repeat_n(ids, 4)
        })
        .collect();
    let options = SampleOptions {
        max_new_tokens: 6,
        ..SampleOptions::default()
    };
    let samples = policy
        .sample(&prompts, &options, &mut ChaCha8Rng::seed_from_u64(4))
        .unwrap();
    questions
        .into_iter()
        .zip(samples.chunks(4))
        .map(|(question, group)| LocalGroup {
            task: swarm_tasks::TaskRef::procedural(&question),
            completions: group
                .iter()
                .enumerate()
                .map(|(i, s)| Completion {
                    text: s.text.clone(),
                    token_ids: s.token_ids.clone(),
                    logprobs: s.logprobs.clone(),
                    reward: if i % 2 == 0 { 1.0 } else { 0.0 },
                    truncated: s.truncated,
                })
                .collect(),
            question,
            policy: PolicyInfo {
                model_name: "tiny".into(),
                architecture_hash: policy.architecture_hash(),
                tokenizer_hash: policy.tokenizer_hash(),
                policy_version: 0,
            },
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                top_k: 0,
                max_new_tokens: 6,
            },
        })
        .collect()
}

/// Mean over completion tokens of log pi(y) - log ref(y) on the batch's own completions.
fn gap_to_reference(policy: &Policy, reference: &Policy, groups: &[LocalGroup]) -> f64 {
    let sequences: Vec<TokenSequence> = groups
        .iter()
        .flat_map(|g| {
            let prompt = policy
                .encode(&swarm_learner::render_prompt(&g.question.prompt))
                .unwrap();
            g.completions.iter().map(move |c| TokenSequence {
                prompt: prompt.clone(),
                completion: c.token_ids.clone(),
            })
        })
        .collect();
    let total = |p: &Policy| -> f64 {
        let out = p.sequence_logprobs(&sequences).unwrap();
        f64::from(
            (out.logprobs * &out.mask)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    (total(policy) - total(reference)).abs()
}

#[test]
fn the_kl_penalty_keeps_the_policy_near_its_reference() {
    let device = Device::Cpu;
    let batch = groups(&Policy::init_random(&tiny(), 1, &device).unwrap());
    let mut gaps = Vec::new();
    for kl_coef in [0.0, 5.0] {
        let data = tempfile::tempdir().unwrap();
        let options = LearnerOptions {
            lr: 3e-3,
            kl_coef,
            ..LearnerOptions::default()
        };
        let mut learner = Learner::start(
            Policy::init_random(&tiny(), 1, &device).unwrap(),
            "tiny",
            data.path(),
            options,
            2,
            std::sync::Arc::new(swarm_tasks::TaskCatalog::new()),
        )
        .unwrap();
        learner.set_reference(Policy::init_random(&tiny(), 1, &device).unwrap());
        let mut reported = Vec::new();
        for _ in 0..15 {
            let report = learner.train(&batch, &[], &[]).unwrap();
            reported.push(report.update.kl_reference);
        }
        if kl_coef == 0.0 {
            assert!(
                reported.iter().all(|&kl| kl == 0.0),
                "no penalty, no KL computed"
            );
        } else {
            assert!(reported[1..].iter().any(|&kl| kl > 0.0), "{reported:?}");
        }
        let reference = Policy::init_random(&tiny(), 1, &device).unwrap();
        gaps.push(gap_to_reference(learner.policy(), &reference, &batch));
    }
    assert!(
        gaps[1] < gaps[0] * 0.8,
        "with the penalty the policy moved less from its reference: {gaps:?}"
    );
}
