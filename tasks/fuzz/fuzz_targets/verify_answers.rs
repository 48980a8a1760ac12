//! Every verifier and the answer parsers on arbitrary completion text: nothing may panic, rewards stay in
//! [0, 1], and a number that parses re-parses from its canonical form to the same value. The same bytes
//! also go to the JSONL dataset parser and the prompt check of task references, which read untrusted
//! files and gossip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_tasks::answer::{extract, parse_number};
use swarm_tasks::{Dataset, RewardConfig, TaskCatalog, TaskRef, TaskRefExt, families, majority};

fuzz_target!(|data: &[u8]| {
    if let Ok(dataset) = Dataset::from_bytes("fuzz.jsonl", data) {
        let mut catalog = TaskCatalog::new();
        let dataset_hash = catalog.add_dataset(dataset);
        let question = catalog
            .resolve(&TaskRef::Dataset { dataset_hash, row: 0 })
            .expect("a loaded dataset has a row 0");
        let verdict = swarm_tasks::verify(&question, &question.answer, &RewardConfig::default());
        assert!((0.0..=1.0).contains(&verdict.reward));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(value) = parse_number(text) {
        assert_eq!(parse_number(&value.to_string()), Some(value));
    }
    let _ = extract(text);
    let rewards = RewardConfig::default();
    let selector = data.first().copied().unwrap_or(0) as u64;
    for family in families() {
        let question = family.generate(u32::from(selector as u8 % 4), 1, selector);
        let verdict = family.verify(&question, text, &rewards);
        assert!((0.0..=1.0).contains(&verdict.reward));
    }
    let selector_family = &families()[selector as usize % families().len()];
    let reference = TaskRef::Procedural {
        family: selector_family.name().to_owned(),
        difficulty: u32::from(selector as u8 % 4),
        seed: 1,
        index: selector,
    };
    let _ = TaskCatalog::new().check(&reference, text);
    let _ = TaskCatalog::new().check(&TaskRef::unlabeled(text), text).expect("hash of itself");
    let parts: Vec<&str> = text.split('\n').collect();
    let _ = majority::majority_vote(&parts, 0.5);
});
