use proptest::prelude::*;

use super::*;

fn stream_hash(family: &dyn TaskFamily) -> String {
    let mut hasher = blake3::Hasher::new();
    for difficulty in 0..=family.max_difficulty() {
        for index in 0..50 {
            let q = family.generate(difficulty, 12_345, index);
            hasher.update(q.prompt.as_bytes());
            hasher.update(b"\0");
            hasher.update(q.answer.as_bytes());
            hasher.update(b"\0");
        }
    }
    hex::encode(&hasher.finalize().as_bytes()[..8])
}

/// Pinned question streams: a change here changes every task reference on the wire, so it must be a
/// deliberate protocol change, never an accident of refactoring or of a dependency update.
#[test]
fn question_streams_are_pinned() {
    let golden = [
        ("basic_arithmetic", "7bb0c477a070df64"),
        ("decimal_arithmetic", "776a83b3ae2fd350"),
        ("fraction_simplification", "5924f5d4aa40d082"),
        ("base_conversion", "8a77f956ae8e7ef6"),
        ("propositional_logic", "c502b7a6af22fb80"),
        ("calendar_arithmetic", "d3167925effeb288"),
        ("arc_1d", "74052f90c1c2cc62"),
        ("sorting", "28aee9a6c6cf78cd"),
        ("countdown", "3bacc4e5572f231c"),
    ];
    let actual: Vec<(&str, String)> = families()
        .iter()
        .map(|f| (f.name(), stream_hash(*f)))
        .collect();
    for ((name, expected), (actual_name, hash)) in golden.iter().zip(&actual) {
        assert_eq!(name, actual_name);
        assert_eq!(expected, hash, "question stream of {name} changed");
    }
    assert_eq!(golden.len(), families().len());
}

#[test]
fn ground_truth_and_demonstrations_score_one_everywhere() {
    let rewards = RewardConfig::default();
    for family in families() {
        for difficulty in 0..=family.max_difficulty() {
            for index in 0..200 {
                let q = family.generate(difficulty, 7, index);
                for completion in [
                    q.answer.clone(),
                    family.demonstration(&q),
                    format!("<answer>{}</answer>", q.answer),
                ] {
                    let verdict = family.verify(&q, &completion, &rewards);
                    assert!(
                        verdict.correct && verdict.reward == 1.0,
                        "{} d{difficulty}: {:?} -> {completion:?}: {verdict:?}",
                        family.name(),
                        q.prompt
                    );
                }
            }
        }
    }
}

#[test]
fn prompts_suit_the_character_model() {
    for family in families() {
        for difficulty in 0..=family.max_difficulty() {
            for index in 0..100 {
                let q = family.generate(difficulty, 3, index);
                let text = format!("{}{}", q.prompt, q.answer);
                assert!(
                    text.chars().all(|c| c == '\n' || (' '..='~').contains(&c)),
                    "{}: {text:?}",
                    family.name()
                );
                // The character-level default policy has a short context: keep the easy levels short.
                let limit = match difficulty {
                    0 => 60,
                    1 => 80,
                    _ => usize::MAX,
                };
                assert!(
                    q.prompt.len() <= limit,
                    "{} d{difficulty}: {:?}",
                    family.name(),
                    q.prompt
                );
            }
        }
    }
}

#[test]
fn registry_names_are_unique_and_found() {
    for f in families() {
        assert!(std::ptr::eq(family(f.name()).unwrap(), *f));
    }
    assert!(family("nope").is_none());
}

/// (family, prompt, answer, equivalent answers that must score correct, near misses that must not).
type Table = [(
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
)];

const TABLE: &Table = &[
    (
        "basic_arithmetic",
        "What is 12+34?",
        "46",
        &[
            "46",
            " 46. ",
            "046",
            "+46",
            "46.0",
            "Answer: 46",
            "<answer>46</answer>",
            "The answer is 46.",
            "**46**",
            "92/2",
        ],
        &["47", "-46", "4 6 7", "46 or 47", "", "forty-six", "4.6"],
    ),
    (
        "basic_arithmetic",
        "What is 3-10?",
        "-7",
        &["-7", "- 7", "-07", "<answer> -7 </answer>"],
        &["7", "--7", "-8"],
    ),
    (
        "decimal_arithmetic",
        "What is 1.5+2.25?",
        "3.75",
        &["3.75", "3.750", "15/4", "+3.75", "<answer>3.75</answer>"],
        &["3.7", "3.76", "375", "3,75"],
    ),
    (
        "fraction_simplification",
        "Simplify 6/8.",
        "3/4",
        &["3/4", " 3 / 4 ", "<answer>3/4</answer>", "Answer: 3/4."],
        &["6/8", "0.75", "4/3", "3/5", "3"],
    ),
    (
        "fraction_simplification",
        "Simplify -10/5.",
        "-2",
        &["-2", "-2/1", "2/-1"],
        &["-4/2", "2", "-2.0"],
    ),
    (
        "base_conversion",
        "Convert 13 to base 2.",
        "1101",
        &["1101", "01101", "0b1101", "1101_2", "1101 (base 2)"],
        &["1100", "13", "1102", "0x1101"],
    ),
    (
        "base_conversion",
        "Convert 255 to base 16.",
        "ff",
        &["ff", "FF", "0xff", "0XFF"],
        &["fe", "255", "f f f"],
    ),
    (
        "propositional_logic",
        "True or false: T and F",
        "False",
        &[
            "False",
            "false",
            "F",
            "FALSE.",
            "<answer>false</answer>",
            "0",
        ],
        &["True", "T", "maybe", "Fals"],
    ),
    (
        "calendar_arithmetic",
        "What day is 3 days after Monday?",
        "Thursday",
        &["Thursday", "thursday", "Thu", "THURS", "Thursday."],
        &["Wednesday", "Th", "Tuesday", "Thursdays"],
    ),
    (
        "calendar_arithmetic",
        "What date is 10 days after 2024-02-25?",
        "2024-03-06",
        &["2024-03-06", "2024-3-6", "2024/03/06"],
        &["2024-03-05", "2024-02-35", "03-06-2024"],
    ),
    (
        "arc_1d",
        "Shift right: 0 5 5 0 0 0",
        "0 0 5 5 0 0",
        &["0 0 5 5 0 0", "0,0,5,5,0,0", "[0, 0, 5, 5, 0, 0]", "005500"],
        &["0 5 5 0 0 0", "0 0 5 5 0", "0 0 5 5 0 0 0", "00550"],
    ),
    (
        "sorting",
        "Sort: 5 2 9",
        "2 5 9",
        &["2 5 9", "2, 5, 9", "[2,5,9]", "2 5 9."],
        &["9 5 2", "2 9 5", "2 5", "2 5 9 9"],
    ),
    (
        "countdown",
        "Use 3 5 7 to make 22.",
        "3*5+7",
        &[
            "3*5+7",
            "7+3*5",
            "5*3+7",
            "(3*5)+7",
            "3 x 5 + 7",
            "3*5+7=22",
            "<answer>7 + 5*3</answer>",
        ],
        &["3*5+8", "3*5*7", "3*5+7=21", "3*3+7+6", "22", "3*5+7+0"],
    ),
];

#[test]
fn verifier_tables() {
    let rewards = RewardConfig::default();
    for (name, prompt, answer, equivalent, near_misses) in TABLE {
        let family = family(name).unwrap();
        let question = Question {
            family: (*name).into(),
            difficulty: 0,
            seed: 0,
            index: 0,
            prompt: (*prompt).into(),
            answer: (*answer).into(),
        };
        for completion in *equivalent {
            let verdict = family.verify(&question, completion, &rewards);
            assert!(
                verdict.correct,
                "{name}: {completion:?} should be correct for {prompt:?}: {verdict:?}"
            );
        }
        for completion in *near_misses {
            let verdict = family.verify(&question, completion, &rewards);
            assert!(
                !verdict.correct,
                "{name}: {completion:?} must not be correct for {prompt:?}"
            );
            assert!(verdict.reward < 0.5);
        }
    }
}

#[test]
fn format_reward_goes_to_well_formed_wrong_answers_only() {
    let rewards = RewardConfig { format_reward: 0.1 };
    let q = family("basic_arithmetic").unwrap().generate(0, 0, 0);
    let f = family("basic_arithmetic").unwrap();
    assert_eq!(f.verify(&q, "100000", &rewards).reward, 0.1);
    assert_eq!(f.verify(&q, "banana", &rewards).reward, 0.0);
    assert_eq!(f.verify(&q, "", &rewards).reward, 0.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn verifiers_never_panic_and_random_text_is_rarely_right(text in "\\PC{0,80}", index in 0u64..1000, difficulty in 0u32..4) {
        let rewards = RewardConfig::default();
        for family in families() {
            let q = family.generate(difficulty, 1, index);
            let verdict = family.verify(&q, &text, &rewards);
            prop_assert!((0.0..=1.0).contains(&verdict.reward));
            if verdict.correct {
                // Only a text that contains the answer's own content can be right.
                let extracted = verdict.extracted.unwrap_or_default();
                prop_assert!(!extracted.is_empty());
            }
        }
    }

    #[test]
    fn printable_noise_almost_never_scores(seed in 0u64..u64::MAX) {
        let rewards = RewardConfig::default();
        let mut state = seed | 1;
        let mut correct = 0;
        for family in families() {
            for index in 0..20 {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                let noise: String = (0..(state % 12 + 1)).map(|i| char::from(b' ' + ((state >> (i * 5)) % 95) as u8)).collect();
                let q = family.generate(1, 9, index);
                correct += usize::from(family.verify(&q, &noise, &rewards).correct);
            }
        }
        prop_assert!(correct <= 4, "{correct} of 180 noise strings scored correct");
    }
}
