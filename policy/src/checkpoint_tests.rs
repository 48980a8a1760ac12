//! Checkpoints: a save restores exactly, and damaged or interrupted ones are never resumed from.

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::tests::{sequences, small_model};
use crate::{AdamWConfig, SampleOptions};

#[test]
fn checkpoints_restore_weights_moments_and_the_sampler_position() {
    let dir = small_model(true, "qwen2");
    let root = tempfile::tempdir().unwrap();
    let policy = Policy::init_random(dir.path(), 6, &Device::Cpu).unwrap();
    let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default()).unwrap();
    let batch = sequences(&policy);
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    let prompts = vec![policy.encode("What is 1+2?").unwrap()];
    let options = SampleOptions {
        max_new_tokens: 8,
        ..SampleOptions::default()
    };
    for step in 0..3u64 {
        policy.sample(&prompts, &options, &mut rng).unwrap();
        likelihood_step(&policy, &mut optimizer, &batch);
        save(
            root.path(),
            step,
            &policy,
            &optimizer,
            &rng,
            serde_json::json!({ "round": step }),
            2,
        )
        .unwrap();
    }
    // An interrupted write leaves a temporary directory that must never be taken for a checkpoint.
    std::fs::create_dir(root.path().join("tmp-round-0000000099-1")).unwrap();
    let newest = latest(root.path()).unwrap().unwrap();
    assert!(newest.ends_with("round-0000000002"));
    let kept = std::fs::read_dir(root.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("round-")
        })
        .count();
    assert_eq!(kept, 2, "only the newest two are kept");

    let expected_next = policy.sample(&prompts, &options, &mut rng.clone()).unwrap();
    let restored = Policy::init_random(dir.path(), 999, &Device::Cpu).unwrap();
    let mut restored_optimizer = AdamW::new(restored.varmap(), AdamWConfig::default()).unwrap();
    let (state, mut restored_rng) = load(&newest, &restored, &mut restored_optimizer).unwrap();
    assert_eq!((state.step, state.extra["round"].as_u64()), (3, Some(2)));
    for (name, var) in policy.varmap().data().lock().unwrap().iter() {
        let other = restored.varmap().data().lock().unwrap()[name]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(
            var.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            other,
            "{name}"
        );
    }
    let (_, a) = optimizer.state().unwrap();
    let (_, b) = restored_optimizer.state().unwrap();
    for (key, tensor) in &a {
        assert_eq!(
            tensor.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b[key].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{key}"
        );
    }
    assert_eq!(
        restored
            .sample(&prompts, &options, &mut restored_rng)
            .unwrap(),
        expected_next
    );
}

/// One optimizer step that raises the likelihood of `batch`.
fn likelihood_step(policy: &Policy, optimizer: &mut AdamW, batch: &[crate::TokenSequence]) {
    let out = policy.sequence_logprobs(batch).unwrap();
    let loss = (out.logprobs * &out.mask)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap();
    let mut grads = optimizer.zero_grads();
    optimizer
        .accumulate(&mut grads, &loss.backward().unwrap())
        .unwrap();
    optimizer.step(&grads, 1e-3).unwrap();
}

/// Saves rounds `rounds` of a small model under `root`, one optimizer step each, keeping `keep`.
fn save_rounds(root: &Path, rounds: std::ops::Range<u64>, keep: usize) -> Vec<PathBuf> {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 6, &Device::Cpu).unwrap();
    let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default()).unwrap();
    let rng = ChaCha8Rng::seed_from_u64(1);
    let batch = sequences(&policy);
    rounds
        .map(|round| {
            likelihood_step(&policy, &mut optimizer, &batch);
            let extra = serde_json::json!({ "round": round });
            save(root, round, &policy, &optimizer, &rng, extra, keep).unwrap()
        })
        .collect()
}

fn names(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn resume_skips_damaged_checkpoints_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let saved = save_rounds(root.path(), 1..4, 3);
    // Round 3 lost its state (a deletion interrupted under the old scheme), round 2 has a flipped
    // byte in its weights: both are passed over for round 1.
    fs::remove_file(saved[2].join("state.json")).unwrap();
    let weights = saved[1].join("model.safetensors");
    let mut bytes = fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    fs::write(&weights, bytes).unwrap();

    let (newest, skipped) = newest_complete(root.path()).unwrap();
    assert_eq!(newest.as_deref(), Some(saved[0].as_path()));
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(skipped[0].dir, saved[2]);
    assert!(skipped[0].reason.contains("state.json"), "{skipped:?}");
    assert_eq!(skipped[1].dir, saved[1]);
    assert!(
        skipped[1].reason.contains("model.safetensors"),
        "{skipped:?}"
    );
}

#[test]
fn a_checkpoint_without_its_manifest_is_unfinished() {
    let root = tempfile::tempdir().unwrap();
    let saved = save_rounds(root.path(), 1..3, 3);
    fs::remove_file(saved[1].join(MANIFEST_FILE)).unwrap();
    let (newest, skipped) = newest_complete(root.path()).unwrap();
    assert_eq!(newest.as_deref(), Some(saved[0].as_path()));
    assert!(skipped[0].reason.contains("unfinished"), "{skipped:?}");
}

#[test]
fn saving_a_round_again_keeps_the_whole_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let first = save_rounds(root.path(), 5..6, 2);
    let manifest = fs::read(first[0].join(MANIFEST_FILE)).unwrap();
    // Another save of round 5 (another optimizer step, as when no round ran between two saves of
    // the old step-named scheme) leaves the first one untouched.
    let again = save_rounds(root.path(), 5..6, 2);
    assert_eq!(first, again);
    assert_eq!(fs::read(first[0].join(MANIFEST_FILE)).unwrap(), manifest);
    assert_eq!(names(root.path()), ["round-0000000005"]);
}

#[test]
fn pruning_and_saving_clear_leftovers_and_superseded_unfinished_writes() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("tmp-round-0000000009-77")).unwrap();
    fs::create_dir_all(root.path().join("trash-round-0000000001-77/inner")).unwrap();
    // An unfinished round 2 older than the rounds saved next, and an unrelated file of the user's.
    fs::create_dir_all(root.path().join("round-0000000002")).unwrap();
    fs::write(root.path().join("notes.txt"), "mine").unwrap();
    save_rounds(root.path(), 3..6, 2);
    assert_eq!(
        names(root.path()),
        ["notes.txt", "round-0000000004", "round-0000000005"]
    );
}

#[test]
fn an_unfinished_newest_checkpoint_is_kept_out_of_the_count() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("round-0000000009")).unwrap();
    save_rounds(root.path(), 1..3, 1);
    // Round 9 is not whole, so it neither counts towards `keep` nor is deleted (it is newer than
    // every whole one), and round 2 stays as the one whole checkpoint.
    assert_eq!(names(root.path()), ["round-0000000002", "round-0000000009"]);
    assert!(
        latest(root.path())
            .unwrap()
            .unwrap()
            .ends_with("round-0000000002")
    );
}

#[test]
fn legacy_step_checkpoints_load_and_round_checkpoints_rank_above_them() {
    let root = tempfile::tempdir().unwrap();
    let saved = save_rounds(root.path(), 1..2, 3);
    // What an earlier version wrote: `step-N`, no manifest.
    let legacy = root.path().join("step-0000000040");
    fs::rename(&saved[0], &legacy).unwrap();
    fs::remove_file(legacy.join(MANIFEST_FILE)).unwrap();
    assert_eq!(
        latest(root.path()).unwrap().as_deref(),
        Some(legacy.as_path())
    );
    let newer = save_rounds(root.path(), 1..2, 3);
    assert_eq!(latest(root.path()).unwrap(), Some(newer[0].clone()));
}

#[test]
fn damaged_checkpoint_files_are_refused_without_panicking() {
    use rand::Rng;
    let root = tempfile::tempdir().unwrap();
    let saved = save_rounds(root.path(), 1..2, 1).remove(0);
    let pristine: Vec<(String, Vec<u8>)> = names(&saved)
        .into_iter()
        .map(|name| {
            let bytes = fs::read(saved.join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 6, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..120 {
        let (name, bytes) = &pristine[case % pristine.len()];
        let mut damaged = bytes.clone();
        match rng.random_range(0..3) {
            0 => damaged.truncate(rng.random_range(0..bytes.len())),
            1 => {
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..damaged.len());
                    damaged[at] ^= rng.random_range(1..=255u8);
                }
            }
            _ => {
                let at = rng.random_range(0..=damaged.len());
                let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                damaged.splice(at..at, junk);
            }
        }
        if damaged == *bytes {
            continue;
        }
        fs::write(saved.join(name), &damaged).unwrap();
        assert!(
            verify(&saved, Check::Contents).is_err(),
            "case {case}: damaged {name} passed verification"
        );
        // The loaders themselves must answer with an error or a model, never a panic: `eval
        // --model` reads a checkpoint directory without its manifest.
        let _ = Policy::load(&saved, &Device::Cpu);
        let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default()).unwrap();
        let _ = load(&saved, &policy, &mut optimizer);
        fs::write(saved.join(name), bytes).unwrap();
    }
    verify(&saved, Check::Contents).unwrap();
}
