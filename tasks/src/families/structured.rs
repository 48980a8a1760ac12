//! Families with structured answers: truth values, days and dates, digit rows, sorted lists.

use super::{question, verify_with};
use crate::answer::{list_items, parse_number};
use crate::rng::QuestionRng;
use crate::{Question, RewardConfig, TaskFamily, Verdict};

/// Evaluate a propositional formula over the constants T and F.
pub struct PropositionalLogic;

fn formula(rng: &mut QuestionRng, depth: u32) -> (String, bool) {
    if depth == 0 || rng.chance(1, 4) {
        let value = rng.chance(1, 2);
        return ((if value { "T" } else { "F" }).into(), value);
    }
    match rng.range(0, 2) {
        0 => {
            let (text, value) = formula(rng, depth - 1);
            (format!("not {text}"), !value)
        }
        op => {
            let (left, lv) = formula(rng, depth - 1);
            let (right, rv) = formula(rng, depth - 1);
            let wrap = |t: String| if t.contains(' ') { format!("({t})") } else { t };
            let (name, value) = if op == 1 {
                ("and", lv && rv)
            } else {
                ("or", lv || rv)
            };
            (format!("{} {name} {}", wrap(left), wrap(right)), value)
        }
    }
}

fn parse_truth(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" => Some(true),
        "false" | "f" | "0" => Some(false),
        _ => None,
    }
}

impl TaskFamily for PropositionalLogic {
    fn name(&self) -> &'static str {
        "propositional_logic"
    }
    fn description(&self) -> &'static str {
        "evaluate a formula of T, F, and, or, not; answer True or False"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        // Draw until the formula has at least one operator, so no question is a bare constant.
        let (text, value) = loop {
            let drawn = formula(&mut rng, d + 1);
            if drawn.0.contains(' ') {
                break drawn;
            }
        };
        let answer = if value { "True" } else { "False" };
        question(
            self,
            d,
            seed,
            index,
            format!("True or false: {text}"),
            answer.into(),
        )
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        let expected = parse_truth(&question.answer);
        verify_with(completion, rewards, |answer| match parse_truth(answer) {
            Some(value) => (true, Some(value) == expected),
            None => (false, false),
        })
    }
}

/// Weekday and date arithmetic on the proleptic Gregorian calendar.
pub struct CalendarArithmetic;

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

fn weekday_of(days: i64) -> usize {
    // 1970-01-01 was a Thursday (index 3).
    (days + 3).rem_euclid(7) as usize
}

fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn parse_weekday(text: &str) -> Option<usize> {
    let lower = text.trim().to_ascii_lowercase();
    if lower.len() < 3 {
        return None;
    }
    WEEKDAYS
        .iter()
        .position(|day| day.to_ascii_lowercase().starts_with(&lower))
}

fn parse_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.trim().split(['-', '/']).collect();
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates such as 2023-02-30 that normalise to another day.
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

impl TaskFamily for CalendarArithmetic {
    fn name(&self) -> &'static str {
        "calendar_arithmetic"
    }
    fn description(&self) -> &'static str {
        "weekdays after or before a number of days, weekdays of dates, dates after a number of days"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let (prompt, answer) = match d {
            0 | 1 => {
                let start = rng.index(7);
                let (offset, before) = if d == 0 {
                    (rng.range(1, 6), false)
                } else {
                    (rng.range(1, 100), rng.chance(1, 2))
                };
                let target = if before {
                    (start as i64 - offset).rem_euclid(7)
                } else {
                    (start as i64 + offset).rem_euclid(7)
                };
                let word = if before { "before" } else { "after" };
                let unit = if offset == 1 { "day" } else { "days" };
                (
                    format!("What day is {offset} {unit} {word} {}?", WEEKDAYS[start]),
                    WEEKDAYS[target as usize].to_owned(),
                )
            }
            2 => {
                let days = rng.range(days_from_civil(1950, 1, 1), days_from_civil(2049, 12, 31));
                (
                    format!("What weekday is {}?", format_date(days)),
                    WEEKDAYS[weekday_of(days)].to_owned(),
                )
            }
            _ => {
                let days = rng.range(days_from_civil(1990, 1, 1), days_from_civil(2039, 12, 31));
                let offset = rng.range(1, 400);
                (
                    format!("What date is {offset} days after {}?", format_date(days)),
                    format_date(days + offset),
                )
            }
        };
        question(self, d, seed, index, prompt, answer)
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        if let Some(expected) = parse_date(&question.answer) {
            return verify_with(completion, rewards, |answer| match parse_date(answer) {
                Some(days) => (true, days == expected),
                None => (false, false),
            });
        }
        let expected = parse_weekday(&question.answer);
        verify_with(completion, rewards, |answer| match parse_weekday(answer) {
            Some(day) => (true, Some(day) == expected),
            None => (false, false),
        })
    }
}

/// One-dimensional ARC-style grids: apply a transformation to a row of digits.
pub struct Arc1d;

const ARC_RULES: [&str; 4] = ["Shift right", "Shift left", "Reverse", "Recolor"];

fn apply_rule(rule: usize, row: &[u8], color: u8) -> Vec<u8> {
    let n = row.len();
    match rule {
        0 => (0..n)
            .map(|i| if i == 0 { 0 } else { row[i - 1] })
            .collect(),
        1 => (0..n)
            .map(|i| if i + 1 == n { 0 } else { row[i + 1] })
            .collect(),
        2 => row.iter().rev().copied().collect(),
        _ => row
            .iter()
            .map(|&c| if c == 0 { 0 } else { color })
            .collect(),
    }
}

fn random_row(rng: &mut QuestionRng, len: usize) -> Vec<u8> {
    let mut row = vec![0u8; len];
    let block = rng.range(1, (len / 2) as i64) as usize;
    let start = rng.range(1, (len - block - 1) as i64) as usize;
    let color = rng.range(1, 9) as u8;
    for cell in &mut row[start..start + block] {
        *cell = color;
    }
    if len >= 10 && rng.chance(1, 2) {
        row[len - 1] = rng.range(1, 9) as u8;
    }
    row
}

fn show(row: &[u8]) -> String {
    row.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_row(text: &str) -> Option<Vec<u8>> {
    let items = list_items(text);
    // Accept an unseparated row of digits (`005500`) too.
    let cells: Vec<String> = if items.len() == 1 && items[0].len() > 1 {
        items[0].chars().map(String::from).collect()
    } else {
        items
    };
    cells
        .iter()
        .map(|c| c.parse::<u8>().ok().filter(|&d| d <= 9))
        .collect()
}

impl TaskFamily for Arc1d {
    fn name(&self) -> &'static str {
        "arc_1d"
    }
    fn description(&self) -> &'static str {
        "transform a row of digits: named rules at first, then rules shown only by examples"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let len = if d == 3 { 10 } else { 6 };
        let rule = if d == 0 {
            0
        } else {
            rng.index(ARC_RULES.len())
        };
        let color = rng.range(1, 9) as u8;
        let row = random_row(&mut rng, len);
        let answer = show(&apply_rule(rule, &row, color));
        let prompt = if d <= 1 {
            let name = if rule == 3 {
                format!("Recolor to {color}")
            } else {
                ARC_RULES[rule].to_owned()
            };
            format!("{name}: {}", show(&row))
        } else {
            let examples = if d == 2 { 1 } else { 2 };
            let mut text = String::new();
            for _ in 0..examples {
                let example = random_row(&mut rng, len);
                text.push_str(&format!(
                    "{} -> {}\n",
                    show(&example),
                    show(&apply_rule(rule, &example, color))
                ));
            }
            format!("{text}{} ->", show(&row))
        };
        question(self, d, seed, index, prompt, answer)
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        let expected = parse_row(&question.answer);
        verify_with(completion, rewards, |answer| match parse_row(answer) {
            Some(row) => (true, Some(row) == expected),
            None => (false, false),
        })
    }
}

/// Sort a list of integers.
pub struct Sorting;

fn parse_int_list(text: &str) -> Option<Vec<i64>> {
    list_items(text)
        .iter()
        .map(|item| {
            let value = parse_number(item)?;
            value
                .is_integer()
                .then(|| i64::try_from(value.numer()).ok())
                .flatten()
        })
        .collect()
}

impl TaskFamily for Sorting {
    fn name(&self) -> &'static str {
        "sorting"
    }
    fn description(&self) -> &'static str {
        "sort a list of integers ascending or descending"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let (count, lo, hi) = match d {
            0 => (3, 0, 9),
            1 => (5, 0, 99),
            2 => (6, -50, 50),
            _ => (8, -999, 999),
        };
        let values: Vec<i64> = (0..count).map(|_| rng.range(lo, hi)).collect();
        let descending = d >= 2 && rng.chance(1, 2);
        let mut sorted = values.clone();
        sorted.sort_unstable();
        if descending {
            sorted.reverse();
        }
        let join = |v: &[i64]| v.iter().map(i64::to_string).collect::<Vec<_>>().join(" ");
        let order = if descending {
            "descending"
        } else {
            "ascending"
        };
        let prompt = if d == 0 {
            format!("Sort: {}", join(&values))
        } else {
            format!("Sort {order}: {}", join(&values))
        };
        question(self, d, seed, index, prompt, join(&sorted))
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        let expected = parse_int_list(&question.answer);
        verify_with(completion, rewards, |answer| match parse_int_list(answer) {
            Some(list) => (true, Some(list) == expected),
            None => (false, false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_conversions_agree_with_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(format_date(days_from_civil(2000, 2, 29)), "2000-02-29");
        assert_eq!(WEEKDAYS[weekday_of(days_from_civil(2024, 3, 15))], "Friday");
        assert_eq!(WEEKDAYS[weekday_of(days_from_civil(1969, 7, 20))], "Sunday");
        assert_eq!(parse_date("2023-02-30"), None);
        assert_eq!(parse_date("2024-3-5"), parse_date("2024-03-05"));
        for days in [-800_000, -1, 0, 59, 10_957, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn arc_rules_transform_rows() {
        let row = [0, 3, 3, 0, 0, 0];
        assert_eq!(apply_rule(0, &row, 0), [0, 0, 3, 3, 0, 0]);
        assert_eq!(apply_rule(1, &row, 0), [3, 3, 0, 0, 0, 0]);
        assert_eq!(apply_rule(2, &row, 0), [0, 0, 0, 3, 3, 0]);
        assert_eq!(apply_rule(3, &row, 7), [0, 7, 7, 0, 0, 0]);
    }
}
