//! Majority-vote rewards for unlabeled prompts (test-time RL): the group's most common answer stands in
//! for the ground truth, but only when enough of the group agrees, since a weak majority is noise.

use std::collections::BTreeMap;

use crate::answer::{extract, parse_number};

/// The vote of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct MajorityVote {
    /// The winning answer, in canonical form.
    pub answer: String,
    /// Share of the group (completions without an answer included) that gave it.
    pub ratio: f32,
    /// 1 for completions that gave the winning answer, else 0.
    pub rewards: Vec<f32>,
}

/// Whether two answers are the same for voting (and for checking a vote against a known answer).
pub fn same_answer(a: &str, b: &str) -> bool {
    canonical(a) == canonical(b)
}

/// Canonical form for voting: numbers by value, yes/no as true/false, other text case- and
/// space-insensitively.
pub fn canonical(answer: &str) -> String {
    match parse_number(answer) {
        Some(value) => value.to_string(),
        None if answer.trim().eq_ignore_ascii_case("yes") => "true".to_owned(),
        None if answer.trim().eq_ignore_ascii_case("no") => "false".to_owned(),
        None => answer
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    }
}

/// Votes over `completions`. Returns `None` (skip the group) when no answer reaches `threshold` of the
/// group, or when two answers tie for the top.
pub fn majority_vote(completions: &[&str], threshold: f32) -> Option<MajorityVote> {
    let answers: Vec<Option<String>> = completions
        .iter()
        .map(|c| extract(c).map(|a| canonical(&a)))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for answer in answers.iter().flatten() {
        *counts.entry(answer).or_default() += 1;
    }
    let top = *counts.values().max()?;
    let mut leaders = counts.iter().filter(|(_, n)| **n == top);
    let (winner, _) = leaders.next()?;
    if leaders.next().is_some() {
        return None;
    }
    let ratio = top as f32 / completions.len() as f32;
    if ratio < threshold {
        return None;
    }
    let winner = winner.to_string();
    let rewards = answers
        .iter()
        .map(|a| f32::from(a.as_deref() == Some(winner.as_str())))
        .collect();
    Some(MajorityVote {
        answer: winner,
        ratio,
        rewards,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_answers_vote_together() {
        let vote = majority_vote(
            &["0.5", "1/2", "<answer>.50</answer>", "3", "no idea\n"],
            0.5,
        )
        .unwrap();
        assert_eq!(vote.answer, "1/2");
        assert_eq!(vote.ratio, 0.6);
        assert_eq!(vote.rewards, [1.0, 1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn weak_majorities_and_ties_skip_the_group() {
        assert_eq!(majority_vote(&["1", "1", "2", "3", "4"], 0.5), None);
        assert_eq!(majority_vote(&["1", "1", "2", "2"], 0.0), None);
        assert_eq!(majority_vote(&["", " "], 0.0), None);
        assert!(majority_vote(&["Paris", "paris", "Rome"], 0.6).is_some());
    }
}
