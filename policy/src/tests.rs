use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/models/tiny")
}

/// A small model directory: the tiny tokenizer with a shrunken config.
pub(crate) fn small_model(tied: bool, model_type: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        tiny_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let config = serde_json::json!({
        "model_type": model_type, "vocab_size": 100, "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rope_theta": 5000.0, "rms_norm_eps": 1e-6,
        "tie_word_embeddings": tied, "eos_token_id": 2, "attention_bias": true
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

pub(crate) fn sequences(policy: &Policy) -> Vec<TokenSequence> {
    [
        ("What is 2+2?", "4"),
        ("Sort: 3 1 2", "1 2 3"),
        ("Hi", "there, friend"),
    ]
    .iter()
    .map(|(p, c)| TokenSequence {
        prompt: policy.encode(p).unwrap(),
        completion: policy.encode(c).unwrap(),
    })
    .collect()
}

#[test]
fn every_parameter_receives_a_finite_nonzero_gradient() {
    for (tied, kind) in [(true, "qwen2"), (false, "llama")] {
        let dir = small_model(tied, kind);
        let policy = Policy::init_random(dir.path(), 3, &Device::Cpu).unwrap();
        let out = policy.sequence_logprobs(&sequences(&policy)).unwrap();
        let loss = (out.logprobs * &out.mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap();
        let grads = loss.backward().unwrap();
        let data = policy.varmap().data().lock().unwrap();
        assert!(data.len() >= 2 * 11 + 2, "{kind}: {} variables", data.len());
        for (name, var) in data.iter() {
            let grad = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("{kind}: no gradient for {name}"));
            let norm: f32 = grad.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(
                norm.is_finite() && norm > 0.0,
                "{kind}: gradient of {name} has norm {norm}"
            );
        }
    }
}

#[test]
fn sampler_log_probs_match_the_training_forward() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 11, &Device::Cpu).unwrap();
    // Repeated prompts, as a learner's groups send them, share one prefill: their completions
    // must still be scored as if each had run its prompt itself.
    let prompts: Vec<Vec<u32>> = ["1+1=", "A much longer prompt here:", "xyz", "1+1=", "xyz"]
        .iter()
        .map(|p| policy.encode(p).unwrap())
        .collect();
    let plain = SampleOptions {
        max_new_tokens: 12,
        ..SampleOptions::default()
    };
    let filtered = SampleOptions {
        temperature: 0.7,
        top_k: 20,
        top_p: 0.9,
        ..plain.clone()
    };
    for options in [plain, filtered] {
        let samples = policy
            .sample(&prompts, &options, &mut ChaCha8Rng::seed_from_u64(5))
            .unwrap();
        let batch: Vec<TokenSequence> = prompts
            .iter()
            .zip(&samples)
            .map(|(p, s)| TokenSequence {
                prompt: p.clone(),
                completion: s.token_ids.clone(),
            })
            .collect();
        let out = policy.sequence_logprobs_under(&batch, &options).unwrap();
        let trained: Vec<Vec<f32>> = out.logprobs.to_vec2().unwrap();
        let mask: Vec<Vec<f32>> = out.mask.to_vec2().unwrap();
        let detached = policy
            .sequence_logprobs_detached(&batch, &options, 2)
            .unwrap();
        let mut compared = 0;
        for (b, sample) in samples.iter().enumerate() {
            assert!(!sample.token_ids.is_empty());
            assert_eq!(detached[b].len(), sample.token_ids.len());
            for (j, &behaviour) in sample.logprobs.iter().enumerate() {
                assert!(
                    (behaviour - trained[b][j]).abs() < 1e-5,
                    "{options:?} token {j}: sampler {behaviour} vs training {}",
                    trained[b][j]
                );
                assert!((detached[b][j] - trained[b][j]).abs() < 1e-6);
                assert_eq!(mask[b][j], 1.0);
                compared += 1;
            }
            assert!(mask[b][sample.token_ids.len()..].iter().all(|&m| m == 0.0));
        }
        assert!(compared >= 20);
    }
}

#[test]
fn entropy_is_that_of_the_sampling_distribution() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 12, &Device::Cpu).unwrap();
    let batch = sequences(&policy);
    let full: Vec<Vec<f32>> = policy
        .sequence_logprobs(&batch)
        .unwrap()
        .entropy
        .to_vec2()
        .unwrap();
    let greedy = SampleOptions {
        top_k: 1,
        ..SampleOptions::default()
    };
    let narrowed = policy.sequence_logprobs_under(&batch, &greedy).unwrap();
    let narrowed: Vec<Vec<f32>> = narrowed.entropy.to_vec2().unwrap();
    let vocab_entropy = (policy.config().vocab_size as f32).ln();
    for (wide, narrow) in full.iter().flatten().zip(narrowed.iter().flatten()) {
        assert!(*wide > 0.0 && *wide <= vocab_entropy + 1e-4, "{wide}");
        assert!(
            narrow.abs() < 1e-4,
            "one kept token has no entropy: {narrow}"
        );
    }
}

#[test]
fn stop_tokens_end_and_ignore_eos_continues() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 13, &Device::Cpu).unwrap();
    let prompts = vec![policy.encode("Count: 1 2 3").unwrap(); 4];
    let long = SampleOptions {
        max_new_tokens: 6,
        ignore_eos: true,
        ..SampleOptions::default()
    };
    let samples = policy
        .sample(&prompts, &long, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap();
    assert!(
        samples
            .iter()
            .all(|s| s.token_ids.len() == 6 && s.truncated)
    );
    // Stopping on the first token each sequence drew ends every sequence right there.
    let stops: Vec<u32> = samples.iter().map(|s| s.token_ids[0]).collect();
    let stopping = SampleOptions {
        stop_tokens: stops,
        ..long
    };
    let stopped = policy
        .sample(&prompts, &stopping, &mut ChaCha8Rng::seed_from_u64(3))
        .unwrap();
    for (s, full) in stopped.iter().zip(&samples) {
        assert_eq!(s.token_ids, full.token_ids[..1]);
        assert!(!s.truncated);
    }
}

#[test]
fn out_of_vocabulary_tokens_and_bad_options_are_refused() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 14, &Device::Cpu).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let err = policy
        .sample(&[vec![5, 1000]], &SampleOptions::default(), &mut rng)
        .unwrap_err();
    assert!(
        err.to_string().contains("outside the model's vocabulary"),
        "{err}"
    );
    let err = policy
        .sequence_logprobs(&[TokenSequence {
            prompt: vec![5],
            completion: vec![100],
        }])
        .err()
        .unwrap();
    assert!(err.to_string().contains("token id 100"), "{err}");
    let cold = SampleOptions {
        temperature: 0.0,
        ..SampleOptions::default()
    };
    let err = policy.sample(&[vec![5]], &cold, &mut rng).unwrap_err();
    assert!(err.to_string().contains("temperature"), "{err}");
}

#[test]
fn a_seed_reproduces_the_exact_tokens() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 1, &Device::Cpu).unwrap();
    let prompts = vec![policy.encode("Sort: 9 4").unwrap(); 2];
    let options = SampleOptions {
        max_new_tokens: 10,
        temperature: 0.9,
        top_p: 0.95,
        top_k: 40,
        ..SampleOptions::default()
    };
    let run = |seed| {
        policy
            .sample(&prompts, &options, &mut ChaCha8Rng::seed_from_u64(seed))
            .unwrap()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    assert_eq!(
        Policy::init_random(dir.path(), 1, &Device::Cpu)
            .unwrap()
            .sample(&prompts, &options, &mut ChaCha8Rng::seed_from_u64(42))
            .unwrap(),
        run(42)
    );
}

#[test]
fn saved_models_load_back_identically() {
    let dir = small_model(false, "llama");
    let policy = Policy::init_random(dir.path(), 8, &Device::Cpu).unwrap();
    let saved = tempfile::tempdir().unwrap();
    policy.save(saved.path()).unwrap();
    let loaded = Policy::load(saved.path(), &Device::Cpu).unwrap();
    let batch = sequences(&policy);
    let a: Vec<Vec<f32>> = policy
        .sequence_logprobs(&batch)
        .unwrap()
        .logprobs
        .to_vec2()
        .unwrap();
    let b: Vec<Vec<f32>> = loaded
        .sequence_logprobs(&batch)
        .unwrap()
        .logprobs
        .to_vec2()
        .unwrap();
    assert_eq!(a, b);
    assert_eq!(policy.architecture_hash(), loaded.architecture_hash());
    assert_eq!(policy.tokenizer_hash(), loaded.tokenizer_hash());
}

#[test]
fn bad_model_directories_give_clear_errors() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 2, &Device::Cpu).unwrap();
    let saved = tempfile::tempdir().unwrap();
    policy.save(saved.path()).unwrap();
    let weights = saved.path().join("model.safetensors");

    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = format!(
        "{:#}",
        Policy::load(saved.path(), &Device::Cpu).err().unwrap()
    );
    assert!(
        err.contains("damaged or not in safetensors format"),
        "{err}"
    );

    let mut missing = std::collections::HashMap::new();
    missing.insert(
        "model.norm.weight".to_owned(),
        Tensor::ones(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&missing, &weights).unwrap();
    let err = format!(
        "{:#}",
        Policy::load(saved.path(), &Device::Cpu).err().unwrap()
    );
    assert!(err.contains("is missing from the weights"), "{err}");

    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved.path().join("config.json")).unwrap())
            .unwrap();
    config["vocab_size"] = serde_json::json!(50);
    std::fs::write(saved.path().join("config.json"), config.to_string()).unwrap();
    let err = format!(
        "{:#}",
        Policy::load(saved.path(), &Device::Cpu).err().unwrap()
    );
    assert!(err.contains("does not belong to this model"), "{err}");

    std::fs::remove_file(saved.path().join("tokenizer.json")).unwrap();
    let err = format!(
        "{:#}",
        Policy::load(saved.path(), &Device::Cpu).err().unwrap()
    );
    assert!(err.contains("tokenizer.json"), "{err}");
}

#[test]
fn tiny_tokenizer_round_trips_printable_ascii() {
    let policy = Policy::init_random(&tiny_dir(), 0, &Device::Cpu).unwrap();
    let text: String = (0x20u8..0x7f)
        .map(char::from)
        .chain("\nWhat is 12+34?\n".chars())
        .collect();
    let ids = policy.encode(&text).unwrap();
    assert_eq!(ids.len(), text.len(), "one token per character");
    assert_eq!(policy.decode(&ids).unwrap(), text);
    assert!(ids.iter().all(|&id| id >= 4), "no specials or unknowns");
    let params = policy.config().parameter_count();
    let counted: usize = policy
        .varmap()
        .all_vars()
        .iter()
        .map(|v| v.elem_count())
        .sum();
    assert_eq!(params, counted);
    assert!((1_000_000..3_000_000).contains(&params), "{params}");
}

#[test]
fn supervised_steps_lower_the_completion_loss() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 4, &Device::Cpu).unwrap();
    let batch = sequences(&policy);
    let nll = |policy: &Policy| -> Tensor {
        let out = policy.sequence_logprobs(&batch).unwrap();
        ((out.logprobs * &out.mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap()
            / out.mask.sum_all().unwrap().to_scalar::<f32>().unwrap() as f64)
            .unwrap()
    };
    let mut optimizer = AdamW::new(policy.varmap(), AdamWConfig::default()).unwrap();
    let schedule = LrSchedule::Constant {
        lr: 3e-3,
        warmup: 2,
    };
    let before: f32 = nll(&policy).to_scalar().unwrap();
    for step in 0..30 {
        let loss = policy
            .supervised_step(&mut optimizer, &batch, schedule.at(step))
            .unwrap();
        // The step reports the loss it started from.
        if step == 0 {
            assert!(
                (loss - f64::from(before)).abs() < 1e-6,
                "{loss} vs {before}"
            );
        }
    }
    let after: f32 = nll(&policy).to_scalar().unwrap();
    assert!(after < before * 0.5, "loss went from {before} to {after}");
}

#[test]
fn token_logprobs_and_benchmarks_report_consistent_figures() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::load_or_init(dir.path(), 1, &Device::Cpu).unwrap();
    let err = policy
        .token_logprobs("What is 2+2?", "4\u{20ac}")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("completion") && err.contains('\u{20ac}'),
        "a character outside the vocabulary is named, not scored as <unk>: {err}"
    );
    let report = policy.token_logprobs("What is 2+2?", "4").unwrap();
    assert_eq!(report.completion_ids.len(), 1);
    assert_eq!(report.tokens, ["4"]);
    assert!(
        report.logprobs[0] < 0.0 && (report.total - f64::from(report.logprobs[0])).abs() < 1e-9
    );
    let shape = bench::BenchShape {
        batch: 2,
        prompt_tokens: 5,
        new_tokens: 4,
        distinct_prompts: 2,
        iterations: 1,
    };
    let sample = bench::bench_sample(&policy, shape).unwrap();
    assert!(
        sample.tokens_per_second > 0.0 && sample.parameters == policy.config().parameter_count()
    );
    assert_eq!(sample.distinct_prompts, 2);
    let too_many = bench::BenchShape {
        distinct_prompts: 3,
        ..shape
    };
    let refused = bench::bench_sample(&policy, too_many).unwrap_err();
    assert!(
        refused.to_string().contains("between 1 and the batch size"),
        "{refused}"
    );
    let train = bench::bench_train(&policy, shape).unwrap();
    assert!(train.tokens_per_second > 0.0);
    let matmul = bench::bench_matmul(&Device::Cpu, 32, 2).unwrap();
    assert!(matmul.size == 32 && matmul.gflop_per_second > 0.0);
    let empty = bench::bench_matmul(&Device::Cpu, 0, 2).unwrap_err();
    assert!(empty.to_string().contains("positive size"), "{empty}");
}

#[test]
fn chat_templates_are_applied_and_saved_with_the_model() {
    let dir = small_model(true, "qwen2");
    let plain = Policy::init_random(dir.path(), 1, &Device::Cpu).unwrap();
    assert!(!plain.has_chat_template());
    assert_eq!(
        plain.apply_chat_template("What is 2+2?").unwrap(),
        "What is 2+2?"
    );
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        serde_json::json!({
            "bos_token": "<bos>",
            "chat_template": "{{ bos_token }}{% for m in messages %}Q: {{ m.content.strip() }}\n{% endfor %}\
                {% if add_generation_prompt %}A:{% endif %}"
        })
        .to_string(),
    )
    .unwrap();
    let templated = Policy::init_random(dir.path(), 1, &Device::Cpu).unwrap();
    let rendered = templated.apply_chat_template(" What is 2+2? ").unwrap();
    assert_eq!(rendered, "<bos>Q: What is 2+2?\nA:");
    // The template's special token text becomes the special token id, not five characters.
    let ids = templated.encode(&rendered).unwrap();
    assert_eq!(Some(ids[0]), templated.tokenizer().token_to_id("<bos>"));
    assert_eq!(templated.decode(&ids).unwrap(), "Q: What is 2+2?\nA:");
    let saved = tempfile::tempdir().unwrap();
    templated.save(saved.path()).unwrap();
    let loaded = Policy::load(saved.path(), &Device::Cpu).unwrap();
    assert_eq!(
        loaded.apply_chat_template(" What is 2+2? ").unwrap(),
        rendered
    );
}

#[test]
fn the_architecture_hash_ignores_the_layout_of_config_json() {
    let dir = small_model(true, "qwen2");
    let base = Policy::init_random(dir.path(), 1, &Device::Cpu).unwrap();
    let path = dir.path().join("config.json");
    let config: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Keys reversed, plus fields that do not change the computation.
    let mut reordered: Vec<String> = config
        .iter()
        .rev()
        .map(|(k, v)| format!("{k:?}: {v}"))
        .collect();
    reordered.push("\"torch_dtype\": \"bfloat16\"".into());
    reordered.push("\"transformers_version\": \"9.9.9\"".into());
    std::fs::write(&path, format!("{{{}}}", reordered.join(",\n"))).unwrap();
    let same = Policy::init_random(dir.path(), 1, &Device::Cpu).unwrap();
    assert_eq!(base.architecture_hash(), same.architecture_hash());
    let mut wider = config.clone();
    wider.insert("rope_theta".into(), serde_json::json!(1e6));
    std::fs::write(&path, serde_json::Value::Object(wider).to_string()).unwrap();
    let other = Policy::init_random(dir.path(), 1, &Device::Cpu).unwrap();
    assert_ne!(base.architecture_hash(), other.architecture_hash());
}

#[test]
fn tensor_work_runs_on_a_pool_worker_when_it_has_several_threads() {
    let several = candle_core::utils::get_num_threads() > 1;
    let on_worker = crate::on_thread_pool(|| {
        // Nested calls run in place rather than waiting on the pool they occupy.
        crate::on_thread_pool(|| rayon::current_thread_index().is_some())
    });
    assert_eq!(on_worker, several);
}

#[test]
fn a_key_value_cache_that_grows_gives_the_logits_of_a_full_forward() {
    let dir = small_model(true, "qwen2");
    let policy = Policy::init_random(dir.path(), 13, &Device::Cpu).unwrap();
    let decoder = policy.decoder();
    let device = Device::Cpu;
    let ids: Vec<Vec<u32>> = vec![vec![5, 17, 42, 8, 33, 71, 9], vec![61, 4, 4, 90, 12, 3, 27]];
    let (batch, len) = (ids.len(), ids[0].len());
    let tensor = |rows: Vec<Vec<u32>>| {
        let width = rows[0].len();
        Tensor::from_vec(rows.concat(), (rows.len(), width), &device).unwrap()
    };
    let positions =
        |from: usize, to: usize| tensor(vec![(from as u32..to as u32).collect(); batch]);
    let valid = |to: usize| vec![vec![true; to]; batch];
    let full: Vec<Vec<Vec<f32>>> = decoder
        .forward(
            &tensor(ids.clone()),
            &positions(0, len),
            &model::causal_mask(&valid(len), len, &device).unwrap(),
            None,
        )
        .unwrap()
        .to_vec3()
        .unwrap();
    // Capacity 1 makes the buffers grow (and copy what they hold) on several steps; capacity
    // `len` never grows.
    for capacity in [1, len] {
        let mut cache = KvCache::with_capacity(capacity);
        let prefill = 3;
        let mut steps = vec![(0, prefill)];
        steps.extend((prefill..len).map(|t| (t, t + 1)));
        for (from, to) in steps {
            let chunk = ids.iter().map(|row| row[from..to].to_vec()).collect();
            let logits: Vec<Vec<Vec<f32>>> = decoder
                .forward(
                    &tensor(chunk),
                    &positions(from, to),
                    &model::causal_mask(&valid(to), to - from, &device).unwrap(),
                    Some(&mut cache),
                )
                .unwrap()
                .to_vec3()
                .unwrap();
            assert_eq!(cache.len(), to);
            for b in 0..batch {
                for (t, row) in logits[b].iter().enumerate() {
                    for (cached, whole) in row.iter().zip(&full[b][from + t]) {
                        assert!(
                            (cached - whole).abs() < 1e-5,
                            "capacity {capacity}, position {}: {cached} vs {whole}",
                            from + t
                        );
                    }
                }
            }
        }
    }
}
