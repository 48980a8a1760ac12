//! The registry of task families and the verification shapes they share.

mod arithmetic;
mod countdown;
mod structured;

use crate::answer::{extract, parse_number};
use crate::{Question, RewardConfig, TaskFamily, Verdict};

static FAMILIES: [&dyn TaskFamily; 9] = [
    &arithmetic::BasicArithmetic,
    &arithmetic::DecimalArithmetic,
    &arithmetic::FractionSimplification,
    &arithmetic::BaseConversion,
    &structured::PropositionalLogic,
    &structured::CalendarArithmetic,
    &structured::Arc1d,
    &structured::Sorting,
    &countdown::Countdown,
];

/// Every family this build knows, in a fixed order.
pub fn families() -> &'static [&'static dyn TaskFamily] {
    &FAMILIES
}

/// The family called `name`.
pub fn family(name: &str) -> Option<&'static dyn TaskFamily> {
    FAMILIES.iter().copied().find(|f| f.name() == name)
}

fn question(
    family: &dyn TaskFamily,
    difficulty: u32,
    seed: u64,
    index: u64,
    prompt: String,
    answer: String,
) -> Question {
    Question {
        family: family.name().to_owned(),
        difficulty,
        seed,
        index,
        prompt,
        answer,
    }
}

/// Runs `judge` on the extracted answer; `judge` returns (well formed, correct).
fn verify_with(
    completion: &str,
    rewards: &RewardConfig,
    judge: impl FnOnce(&str) -> (bool, bool),
) -> Verdict {
    match extract(completion) {
        Some(answer) => {
            let (well_formed, correct) = judge(&answer);
            rewards.verdict(Some(answer), well_formed, correct)
        }
        None => rewards.verdict(None, false, false),
    }
}

/// Exact numeric equality, in any notation [`parse_number`] reads.
fn verify_number(question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
    let expected = parse_number(&question.answer);
    verify_with(completion, rewards, |answer| match parse_number(answer) {
        Some(value) => (true, Some(value) == expected),
        None => (false, false),
    })
}

#[cfg(test)]
mod tests;
