//! Every verifier and the answer parsers on arbitrary completion text: nothing may panic, rewards stay in
//! [0, 1], and a number that parses re-parses from its canonical form to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use swarm_tasks::answer::{extract, parse_number};
use swarm_tasks::{RewardConfig, families, majority};

fuzz_target!(|data: &[u8]| {
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
    let parts: Vec<&str> = text.split('\n').collect();
    let _ = majority::majority_vote(&parts, 0.5);
});
