//! Countdown: reach a target with + - * / over given numbers, each used at most once. Many answers are
//! right, so the verifier evaluates the expression exactly instead of comparing text.

use super::{question, verify_with};
use crate::answer::Rational;
use crate::rng::QuestionRng;
use crate::{Question, RewardConfig, TaskFamily, Verdict};

/// The countdown family.
pub struct Countdown;

/// Longest expression the evaluator reads and deepest nesting it follows; bounds work on hostile input.
const MAX_EXPRESSION_BYTES: usize = 256;
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Number(i64),
    Op(char),
    Open,
    Close,
}

fn tokenize(text: &str) -> Option<Vec<Token>> {
    if text.len() > MAX_EXPRESSION_BYTES {
        return None;
    }
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '0'..='9' => {
                let mut value: i64 = 0;
                while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
                    value = value.checked_mul(10)?.checked_add(digit.into())?;
                    chars.next();
                }
                tokens.push(Token::Number(value));
            }
            '+' | '-' | '*' | '/' => {
                tokens.push(Token::Op(c));
                chars.next();
            }
            'x' | 'X' | '×' => {
                tokens.push(Token::Op('*'));
                chars.next();
            }
            '÷' => {
                tokens.push(Token::Op('/'));
                chars.next();
            }
            '(' => {
                tokens.push(Token::Open);
                chars.next();
            }
            ')' => {
                tokens.push(Token::Close);
                chars.next();
            }
            _ => return None,
        }
    }
    Some(tokens)
}

/// Recursive-descent evaluation with precedence; records the numbers used.
struct Parser {
    tokens: Vec<Token>,
    position: usize,
    used: Vec<i64>,
}

impl Parser {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.position).copied()
    }

    fn expression(&mut self, depth: usize) -> Option<Rational> {
        let mut value = self.term(depth)?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek() {
            self.position += 1;
            let right = self.term(depth)?;
            value = if op == '+' {
                value.checked_add(right)?
            } else {
                value.checked_sub(right)?
            };
        }
        Some(value)
    }

    fn term(&mut self, depth: usize) -> Option<Rational> {
        let mut value = self.factor(depth)?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek() {
            self.position += 1;
            let right = self.factor(depth)?;
            value = if op == '*' {
                value.checked_mul(right)?
            } else {
                value.checked_div(right)?
            };
        }
        Some(value)
    }

    fn factor(&mut self, depth: usize) -> Option<Rational> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            Token::Number(n) => {
                self.position += 1;
                self.used.push(n);
                Some(Rational::integer(n))
            }
            Token::Open => {
                self.position += 1;
                let value = self.expression(depth + 1)?;
                (self.peek()? == Token::Close).then_some(())?;
                self.position += 1;
                Some(value)
            }
            _ => None,
        }
    }
}

/// Evaluates `text` exactly, returning its value and the numbers it used.
fn evaluate(text: &str) -> Option<(Rational, Vec<i64>)> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        position: 0,
        used: Vec::new(),
    };
    let value = parser.expression(0)?;
    (parser.position == parser.tokens.len()).then_some((value, parser.used))
}

/// Whether `used` takes each number no more often than `available` offers it.
fn uses_available(used: &[i64], available: &[i64]) -> bool {
    let mut pool = available.to_vec();
    used.iter().all(|n| match pool.iter().position(|p| p == n) {
        Some(i) => {
            pool.swap_remove(i);
            true
        }
        None => false,
    })
}

fn parse_prompt(prompt: &str) -> Option<(Vec<i64>, i64)> {
    let rest = prompt.strip_prefix("Use ")?;
    let (numbers, target) = rest.split_once(" to make ")?;
    let numbers = numbers
        .split_whitespace()
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    Some((numbers, target.trim_end_matches('.').parse().ok()?))
}

impl TaskFamily for Countdown {
    fn name(&self) -> &'static str {
        "countdown"
    }
    fn description(&self) -> &'static str {
        "write an expression over the given numbers (each at most once) that equals the target"
    }
    fn max_difficulty(&self) -> u32 {
        3
    }
    fn generate(&self, difficulty: u32, seed: u64, index: u64) -> Question {
        let d = difficulty.min(self.max_difficulty());
        let mut rng = QuestionRng::new(self.name(), d, seed, index);
        let (count, max) = match d {
            0 => (2, 9),
            1 => (3, 10),
            2 => (4, 25),
            _ => (5, 50),
        };
        // Build the answer first, left to right, keeping every intermediate a positive integer, so a
        // solution is guaranteed and the canonical answer is short.
        loop {
            let numbers: Vec<i64> = (0..count).map(|_| rng.range(1, max)).collect();
            let mut expression = numbers[0].to_string();
            let mut value = numbers[0];
            for &n in &numbers[1..] {
                let op = *rng.pick(&['+', '-', '*']);
                let next = match op {
                    '+' => value + n,
                    '-' => value - n,
                    _ => value * n,
                };
                if next <= 0 {
                    continue;
                }
                expression = if op == '*' && expression.contains(['+', '-']) {
                    format!("({expression})*{n}")
                } else {
                    format!("{expression}{op}{n}")
                };
                value = next;
            }
            if expression.contains(['+', '-', '*']) && value <= 999 {
                let shown: Vec<String> = numbers.iter().map(i64::to_string).collect();
                let prompt = format!("Use {} to make {value}.", shown.join(" "));
                return question(self, d, seed, index, prompt, expression);
            }
        }
    }
    fn verify(&self, question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
        let Some((numbers, target)) = parse_prompt(&question.prompt) else {
            return rewards.verdict(None, false, false);
        };
        verify_with(completion, rewards, |answer| {
            // Accept a restated result: `3*5+7=22`.
            let expression = match answer.split_once('=') {
                Some((left, right)) if right.trim() == target.to_string() => left,
                Some(_) => return (false, false),
                None => answer,
            };
            match evaluate(expression) {
                Some((value, used)) => (
                    true,
                    value == Rational::integer(target) && uses_available(&used, &numbers),
                ),
                None => (false, false),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluator_respects_precedence_and_refuses_garbage() {
        let value = |t: &str| evaluate(t).map(|(v, _)| v.to_string());
        assert_eq!(value("3+5*7").as_deref(), Some("38"));
        assert_eq!(value("(3+5)*7").as_deref(), Some("56"));
        assert_eq!(value("7/2").as_deref(), Some("7/2"));
        assert_eq!(value("8 x 3").as_deref(), Some("24"));
        for bad in [
            "",
            "3+",
            "(3+5",
            "3 5",
            "-3+5",
            "3/0",
            "2^3",
            "((((((((((((((((((1))))))))))))))))))",
        ] {
            assert_eq!(evaluate(bad), None, "{bad}");
        }
        assert!(uses_available(&[3, 5], &[5, 3, 7]));
        assert!(!uses_available(&[3, 3], &[3, 5]));
    }
}
