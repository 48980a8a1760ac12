//! Reward goes up: a solo node that starts from a short warm start raises its held-out pass@1 on an
//! easy family by a clear margin, whether it draws the family's questions from the procedural
//! stream or from a JSONL dataset of them. The margin is far above the evaluation noise (800 sampled answers
//! each side, standard error about 0.018) and the run fails when the policy gradient is broken —
//! with the advantage sign flipped, pass@1 falls instead (checked by hand, figures in docs/performance.md).
//!
//! The learner runs from the same warm start under three seeds and the median end point is judged:
//! one trajectory can collapse late toward a single answer (seen once, after a two-ulp change in an
//! activation, figures in docs/performance.md), and a learning check should not hinge on one trajectory.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Device;
use swarm_learner::{
    DatasetSource, Learner, LearnerOptions, NullNetwork, WarmupOptions, evaluate_policy,
    load_tasks, warmup,
};
use swarm_policy::Policy;
use swarm_tasks::eval::EvalOptions;
use swarm_tasks::{EVAL_SEED_BASE, TaskCatalog, family};

/// Seeds: model initialisation and warm-start demonstrations, learner sampling (one run each),
/// evaluation sampling.
const INIT_SEED: u64 = 3;
const LEARNER_SEEDS: [u64; 3] = [5, 6, 7];
const EVAL_SEED: u64 = 9;
const FAMILY: &str = "propositional_logic";
/// Rise of held-out pass@1 that the test requires.
const MARGIN: f64 = 0.10;

/// Where training questions come from.
enum Stream {
    /// The family's procedural stream.
    Family,
    /// A dataset file of the family's questions; held out: a dataset file of its evaluation
    /// questions.
    Dataset { train: PathBuf, held_out: PathBuf },
}

fn pass_at_1(policy: &Policy, tasks: &TaskCatalog, stream: &Stream) -> f64 {
    let (families, datasets) = match stream {
        Stream::Family => (vec![FAMILY.to_owned()], Vec::new()),
        Stream::Dataset { held_out, .. } => {
            (Vec::new(), vec![swarm_learner::dataset_name(held_out)])
        }
    };
    let options = EvalOptions {
        families,
        datasets,
        n: 200,
        samples: 4,
        ..EvalOptions::default()
    };
    evaluate_policy(policy, tasks, &options, EVAL_SEED, &mut |_, _| {})
        .unwrap()
        .families[0]
        .pass_at_1
}

/// A dataset file of `n` questions of [`FAMILY`] from stream `seed`, verified by the family.
fn write_dataset(path: &Path, seed: u64, n: u64) {
    let generator = family(FAMILY).unwrap();
    let rows: String = (0..n)
        .map(|index| {
            let q = generator.generate(0, seed, index);
            serde_json::json!({"question": q.prompt, "answer": q.answer, "answer_type": FAMILY})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(path, rows).unwrap();
}

#[test]
fn a_solo_node_raises_held_out_pass_at_1() {
    raises_held_out_pass_at_1(Stream::Family);
}

#[test]
fn a_solo_node_learns_from_a_dataset() {
    let files = tempfile::tempdir().unwrap();
    let stream = Stream::Dataset {
        train: files.path().join("train.jsonl"),
        held_out: files.path().join("held-out.jsonl"),
    };
    if let Stream::Dataset { train, held_out } = &stream {
        write_dataset(train, 1, 2000);
        write_dataset(held_out, EVAL_SEED_BASE, 200);
    }
    raises_held_out_pass_at_1(stream);
}

fn raises_held_out_pass_at_1(stream: Stream) {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../configs/models/tiny");
    let policy = Policy::init_random(&model, INIT_SEED, &Device::Cpu).unwrap();
    // A short warm start: the answer format and some skill, far from mastery, so that groups of
    // completions disagree and reinforcement learning has something to learn from. Answering
    // "True" to everything scores about one half on this family; the required end point is above it.
    warmup(
        &policy,
        &WarmupOptions {
            families: vec![FAMILY.to_owned()],
            steps: 30,
            ..WarmupOptions::default()
        },
        &mut |_, _, _| {},
    )
    .unwrap();
    let (families, datasets) = match &stream {
        Stream::Family => (vec![FAMILY.to_owned()], Vec::new()),
        Stream::Dataset { train, held_out } => (
            Vec::new(),
            [train, held_out]
                .map(|path| DatasetSource {
                    path: path.clone(),
                    weight: 1,
                    hide_labels: false,
                })
                .to_vec(),
        ),
    };
    // Both files are loaded (the held-out one to evaluate on); only the first is trained on.
    let tasks = Arc::new(
        load_tasks(
            &LearnerOptions {
                datasets: datasets.clone(),
                ..LearnerOptions::default()
            },
            &[],
        )
        .unwrap(),
    );
    let before = pass_at_1(&policy, &tasks, &stream);
    let warm = tempfile::tempdir().unwrap();
    policy.save(warm.path()).unwrap();

    let mut ends = Vec::new();
    for seed in LEARNER_SEEDS {
        let policy = Policy::load(warm.path(), &Device::Cpu).unwrap();
        let data = tempfile::tempdir().unwrap();
        // On a dataset, each run also draws its own order of the rows: on this family's few
        // distinct questions one order alone can steer every run to the same answer, and the
        // check is of learning from rows, not of one order.
        let task_seed = match stream {
            Stream::Family => LearnerOptions::default().task_seed,
            Stream::Dataset { .. } => seed,
        };
        let options = LearnerOptions {
            families: families.clone(),
            datasets: datasets.iter().take(1).cloned().collect(),
            task_seed,
            prompts_per_round: 8,
            lr: 5e-4,
            checkpoint_every: 1000,
            ..LearnerOptions::default()
        };
        let mut learner = Learner::start(
            policy,
            "tiny",
            data.path(),
            options,
            seed,
            Arc::clone(&tasks),
        )
        .unwrap();
        let mut rewards = Vec::new();
        for _ in 0..30 {
            rewards.push(learner.run_round(&mut NullNetwork).unwrap().reward_local);
        }
        let after = pass_at_1(learner.policy(), &tasks, &stream);
        eprintln!(
            "learner seed {seed}: held-out pass@1 {before:.3} -> {after:.3}; reward per round {rewards:.2?}"
        );
        ends.push(after);
    }
    ends.sort_by(f64::total_cmp);
    let median = ends[ends.len() / 2];
    assert!(
        median >= before + MARGIN,
        "median held-out pass@1 rose from {before:.3} to {median:.3} (ends {ends:.3?}), less than the required {MARGIN}"
    );
}
