//! Number families: integer and decimal arithmetic, fraction simplification, base conversion.

use super::{question, verify_number, verify_with};
use crate::answer::{Rational, parse_number};
use crate::rng::QuestionRng;
use crate::{Question, RewardConfig, TaskFamily, Verdict};

/// `a + b`, then mixed operations with precedence and parentheses.
pub struct BasicArithmetic;

impl TaskFamily for BasicArithmetic {
    fn name(&self) -> &'static str {
        "basic_arithmetic"
    }
    fn description(&self) -> &'static str {
        "integer arithmetic: sums at level 0, then +, -, * with precedence and parentheses"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let (expr, value) = match d {
            0 => {
                let (a, b) = (rng.range(0, 20), rng.range(0, 20));
                (format!("{a}+{b}"), a + b)
            }
            1 => {
                let (a, b) = (rng.range(0, 99), rng.range(0, 99));
                if rng.chance(1, 2) {
                    (format!("{a}+{b}"), a + b)
                } else {
                    (format!("{a}-{b}"), a - b)
                }
            }
            2 => {
                let (a, b, c) = (rng.range(0, 99), rng.range(0, 20), rng.range(0, 20));
                match rng.range(0, 2) {
                    0 => (format!("{a}+{b}*{c}"), a + b * c),
                    1 => (format!("{a}-{b}*{c}"), a - b * c),
                    _ => (format!("{b}*{c}-{a}"), b * c - a),
                }
            }
            _ => {
                let (a, b, c) = (rng.range(0, 999), rng.range(0, 999), rng.range(2, 30));
                if rng.chance(1, 2) {
                    (format!("({a}+{b})*{c}"), (a + b) * c)
                } else {
                    (format!("({a}-{b})*{c}"), (a - b) * c)
                }
            }
        };
        let prompt = format!("What is {expr}?");
        question(self, d, seed, index, prompt, value.to_string())
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        verify_number(question, completion, rewards)
    }
}

/// Arithmetic on decimals; answers compare exactly (`0.5` equals `.50` and `1/2`).
pub struct DecimalArithmetic;

/// Formats `value`, a terminating decimal (denominator of the form 2^i 5^j), with no trailing zeros.
pub(crate) fn format_decimal(value: Rational) -> String {
    let places = (0..=18u32)
        .find(|&p| 10i128.pow(p) % value.denom() == 0)
        .expect("generated values have at most 18 decimal places");
    let scaled = value.numer().abs() * (10i128.pow(places) / value.denom());
    let digits = format!("{scaled:0>width$}", width = places as usize + 1);
    let (whole, fraction) = digits.split_at(digits.len() - places as usize);
    let sign = if value.numer() < 0 { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

impl TaskFamily for DecimalArithmetic {
    fn name(&self) -> &'static str {
        "decimal_arithmetic"
    }
    fn description(&self) -> &'static str {
        "decimal sums, differences and products, answered exactly"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        // Operands are integers over a power of ten, so every result terminates.
        let (scale, max) = match d {
            0 => (10, 99),
            1 => (100, 9999),
            2 => (10, 999),
            _ => (100, 99_999),
        };
        let a = Rational::new(rng.range(1, max).into(), scale).expect("small");
        let b = Rational::new(rng.range(1, max).into(), scale).expect("small");
        let op = match d {
            0 => '+',
            1 => *rng.pick(&['+', '-']),
            _ => *rng.pick(&['+', '-', '*']),
        };
        let value = match op {
            '+' => a.checked_add(b),
            '-' => a.checked_sub(b),
            _ => a.checked_mul(b),
        }
        .expect("bounded operands");
        let prompt = format!("What is {}{op}{}?", format_decimal(a), format_decimal(b));
        question(self, d, seed, index, prompt, format_decimal(value))
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        verify_number(question, completion, rewards)
    }
}

/// Reduce a fraction to lowest terms; the answer must be the reduced fraction.
pub struct FractionSimplification;

impl TaskFamily for FractionSimplification {
    fn name(&self) -> &'static str {
        "fraction_simplification"
    }
    fn description(&self) -> &'static str {
        "reduce a fraction to lowest terms (an equal but unreduced fraction is wrong)"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let (max_part, max_factor) = match d {
            0 => (9, 5),
            1 => (20, 9),
            2 => (50, 12),
            _ => (99, 30),
        };
        let den = rng.range(2, max_part);
        let mut num = rng.range(1, max_part);
        if d >= 2 && rng.chance(1, 3) {
            num = -num;
        }
        let factor = rng.range(2, max_factor);
        let reduced = Rational::new(num.into(), den.into()).expect("small");
        let prompt = format!("Simplify {}/{}.", num * factor, den * factor);
        question(self, d, seed, index, prompt, reduced.to_string())
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        let expected = parse_number(&question.answer);
        verify_with(completion, rewards, |answer| {
            let Some(value) = parse_number(answer) else {
                return (false, false);
            };
            // Lowest terms means the written numerator and denominator share no factor.
            let compact: String = answer.chars().filter(|c| !c.is_whitespace()).collect();
            let written_in_lowest_terms = match compact.split_once('/') {
                Some((n, d)) => match (n.parse::<i64>(), d.parse::<i64>()) {
                    (Ok(n), Ok(d)) => Rational::new(n.into(), d.into())
                        .is_some_and(|r| r.numer().abs() == i128::from(n).abs()),
                    _ => false,
                },
                None => value.is_integer() && !compact.contains('.'),
            };
            (true, written_in_lowest_terms && Some(value) == expected)
        })
    }
}

/// Convert between bases 2 to 16; digits above 9 are letters, any case.
pub struct BaseConversion;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

fn to_base(mut value: u64, base: u64) -> String {
    if value == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while value > 0 {
        out.push(DIGITS[(value % base) as usize]);
        value /= base;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

fn from_base(text: &str, base: u64) -> Option<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let prefix = match base {
        2 => "0b",
        8 => "0o",
        16 => "0x",
        _ => "",
    };
    let digits = if prefix.is_empty() {
        lower.as_str()
    } else {
        lower.strip_prefix(prefix).unwrap_or(&lower)
    };
    // A subscript such as `1101_2` or `1101 (base 2)` names the base the question asked for.
    let digits = digits
        .strip_suffix(&format!("_{base}"))
        .or_else(|| digits.strip_suffix(&format!("(base {base})")))
        .unwrap_or(digits)
        .trim()
        .replace('_', "");
    if digits.is_empty() || digits.len() > 64 {
        return None;
    }
    digits.bytes().try_fold(0u64, |acc, b| {
        let digit = DIGITS.iter().position(|&d| d == b)? as u64;
        (digit < base).then_some(())?;
        acc.checked_mul(base)?.checked_add(digit)
    })
}

fn parse_base_prompt(prompt: &str) -> Option<u64> {
    let target = prompt.rsplit("to base ").next()?.trim_end_matches('.');
    target.parse().ok()
}

impl TaskFamily for BaseConversion {
    fn name(&self) -> &'static str {
        "base_conversion"
    }
    fn description(&self) -> &'static str {
        "convert a number between bases 2 to 16"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let (value, from, to) = match d {
            0 => (rng.range(0, 15), 10, 2),
            1 => (rng.range(0, 255), 10, *rng.pick(&[2, 8, 16])),
            2 => {
                let from = *rng.pick(&[2, 8, 16]);
                (rng.range(0, 1000), from, 10)
            }
            _ => {
                let from = rng.range(2, 16);
                let mut to = rng.range(2, 16);
                if to == from {
                    to = if from == 16 { 2 } else { from + 1 };
                }
                (rng.range(0, 65_535), from, to)
            }
        };
        let value = value as u64;
        let shown = to_base(value, from as u64);
        let prompt = if from == 10 {
            format!("Convert {shown} to base {to}.")
        } else {
            format!("Convert {shown} (base {from}) to base {to}.")
        };
        question(self, d, seed, index, prompt, to_base(value, to as u64))
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        let base = parse_base_prompt(&question.prompt).unwrap_or(10);
        let expected = from_base(&question.answer, base);
        verify_with(completion, rewards, |answer| {
            match from_base(answer, base) {
                Some(value) => (true, Some(value) == expected),
                None => (false, false),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_format_without_trailing_zeros() {
        let cases = [
            ((15, 10), "1.5"),
            ((2, 1), "2"),
            ((-1, 4), "-0.25"),
            ((1, 100), "0.01"),
        ];
        for ((n, d), text) in cases {
            assert_eq!(format_decimal(Rational::new(n, d).unwrap()), text);
        }
    }

    #[test]
    fn bases_round_trip() {
        for base in 2..=16 {
            for value in [0u64, 1, 7, 255, 65_535] {
                assert_eq!(from_base(&to_base(value, base), base), Some(value));
            }
        }
        assert_eq!(from_base("0xFF", 16), Some(255));
        assert_eq!(from_base("12", 2), None);
    }
}
