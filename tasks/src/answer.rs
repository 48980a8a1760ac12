//! Reading an answer out of a completion, and exact numbers to compare it with.
//!
//! Parsing is generous on purpose: a correct answer written differently (tags, a trailing period, a
//! leading "Answer:", leading zeros, `0.50` for `1/2`) must not be scored wrong, since a false negative
//! teaches the policy to avoid right answers.

use std::cmp::Ordering;

/// Longest completion text the verifiers look at; longer inputs are cut (answers are short).
pub const MAX_ANSWER_SCAN_BYTES: usize = 4096;

/// The answer a completion gives: the content of its last `<answer>` tag, or else its last non-empty
/// line with common lead-ins ("Answer:", "The answer is") and decorations removed.
pub fn extract(completion: &str) -> Option<String> {
    let text = tail(completion, MAX_ANSWER_SCAN_BYTES);
    let lower = text.to_ascii_lowercase();
    let raw = if let Some(start) = lower.rfind("<answer>") {
        let inner = &text[start + "<answer>".len()..];
        let end = inner
            .to_ascii_lowercase()
            .find("</answer>")
            .unwrap_or(inner.len());
        &inner[..end]
    } else {
        text.lines().rev().find(|line| !line.trim().is_empty())?
    };
    let cleaned = clean(raw);
    (!cleaned.is_empty()).then_some(cleaned)
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn clean(raw: &str) -> String {
    let mut s = raw.trim();
    const LEAD_INS: [&str; 6] = [
        "final answer:",
        "the answer is",
        "answer:",
        "answer is",
        "a:",
        "=",
    ];
    loop {
        let lower = s.to_ascii_lowercase();
        let Some(lead) = LEAD_INS.iter().find(|lead| lower.starts_with(*lead)) else {
            break;
        };
        s = s[lead.len()..].trim_start();
    }
    let decoration = |c: char| c == '*' || c == '$' || c == '`' || c.is_whitespace();
    s = s.trim_matches(decoration);
    if let Some(inner) = s.strip_prefix("\\boxed{").and_then(|r| r.strip_suffix('}')) {
        s = inner;
    }
    let s = s.trim_matches(decoration);
    let s = s.strip_suffix('.').unwrap_or(s);
    s.trim().to_owned()
}

/// An exact rational number with a positive denominator, in lowest terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rational {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Magnitude beyond which arithmetic is refused, so no operation can overflow `i128`.
const MAX_MAGNITUDE: i128 = 1 << 60;

impl Rational {
    /// `num / den`, reduced; `None` for a zero denominator or magnitudes past 2^60.
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 || num.abs() > MAX_MAGNITUDE || den.abs() > MAX_MAGNITUDE {
            return None;
        }
        let g = gcd(num, den).max(1);
        let sign = if den < 0 { -1 } else { 1 };
        Some(Self {
            num: sign * num / g,
            den: sign * den / g,
        })
    }

    /// An integer.
    pub fn integer(value: i64) -> Self {
        Self {
            num: value.into(),
            den: 1,
        }
    }

    /// Numerator (sign carrier).
    pub fn numer(&self) -> i128 {
        self.num
    }

    /// Denominator, always positive.
    pub fn denom(&self) -> i128 {
        self.den
    }

    /// Whether the value is a whole number.
    pub fn is_integer(&self) -> bool {
        self.den == 1
    }

    /// Sum.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        Self::new(
            self.num.checked_mul(other.den)? + other.num.checked_mul(self.den)?,
            self.den.checked_mul(other.den)?,
        )
    }

    /// Difference.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.checked_add(Self {
            num: -other.num,
            den: other.den,
        })
    }

    /// Product.
    pub fn checked_mul(self, other: Self) -> Option<Self> {
        Self::new(
            self.num.checked_mul(other.num)?,
            self.den.checked_mul(other.den)?,
        )
    }

    /// Quotient; `None` when dividing by zero.
    pub fn checked_div(self, other: Self) -> Option<Self> {
        Self::new(
            self.num.checked_mul(other.den)?,
            self.den.checked_mul(other.num)?,
        )
    }
}

impl PartialOrd for Rational {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Rational {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.num * other.den).cmp(&(other.num * self.den))
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// Parses a number written as an integer (`-007`, `+12`, `1,000`), a decimal (`0.50`, `.5`, `-2.`) or a
/// fraction (`3/4`, `-3 / 4`, `3/-4`). Spaces inside are ignored.
pub fn parse_number(text: &str) -> Option<Rational> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.is_empty() || compact.len() > 64 {
        return None;
    }
    if let Some((num, den)) = compact.split_once('/') {
        return parse_decimal(num)?.checked_div(parse_decimal(den)?);
    }
    parse_decimal(&compact)
}

fn parse_decimal(text: &str) -> Option<Rational> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let whole = strip_thousands(whole)?;
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole
        .bytes()
        .chain(fraction.bytes())
        .all(|b| b.is_ascii_digit())
        || fraction.len() > 18
    {
        return None;
    }
    let all_digits = format!("{whole}{fraction}");
    let trimmed = all_digits.trim_start_matches('0');
    if trimmed.len() > 18 {
        return None;
    }
    let magnitude: i128 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    let value = Rational::new(magnitude, 10i128.pow(fraction.len() as u32))?;
    Some(if negative {
        Rational::new(-value.num, value.den)?
    } else {
        value
    })
}

/// Removes thousands separators when they are placed correctly (`1,234,567`); refuses misplaced ones.
fn strip_thousands(whole: &str) -> Option<String> {
    if !whole.contains(',') {
        return Some(whole.to_owned());
    }
    let groups: Vec<&str> = whole.split(',').collect();
    let first_ok = (1..=3).contains(&groups[0].len());
    let rest_ok = groups[1..].iter().all(|g| g.len() == 3);
    (first_ok && rest_ok).then(|| groups.concat())
}

/// Splits a list answer (`1 2 3`, `1, 2, 3`, `[1,2,3]`) into its items.
pub fn list_items(text: &str) -> Vec<String> {
    text.trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')')
        .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_handles_tags_lead_ins_and_decorations() {
        let cases = [
            ("42", Some("42")),
            ("  42.  ", Some("42")),
            ("Let me think.\nAnswer: 42", Some("42")),
            ("The answer is 42.", Some("42")),
            ("<answer>1</answer> then <answer> 7 </answer>", Some("7")),
            ("<ANSWER>x</ANSWER>", Some("x")),
            ("reasoning <answer>5", Some("5")),
            ("**17**", Some("17")),
            ("$\\boxed{3/4}$", Some("3/4")),
            ("= 12", Some("12")),
            ("", None),
            ("\n\n  \n", None),
            ("<answer></answer>", None),
        ];
        for (completion, expected) in cases {
            assert_eq!(extract(completion).as_deref(), expected, "{completion:?}");
        }
    }

    #[test]
    fn numbers_compare_exactly_across_notations() {
        let same = [
            ("0.5", "1/2"),
            (".5", "0.50"),
            ("-3/4", "3/-4"),
            ("-0.75", "- 3 / 4"),
            ("007", "7"),
            ("+12", "12"),
            ("1,000", "1000"),
            ("4.0", "4"),
            ("-0", "0"),
        ];
        for (a, b) in same {
            assert_eq!(parse_number(a), parse_number(b), "{a} vs {b}");
            assert!(parse_number(a).is_some(), "{a}");
        }
        for bad in ["", "1/0", "1,00", "abc", "1.2.3", "--1", "1e5", ".", "-"] {
            assert_eq!(parse_number(bad), None, "{bad:?}");
        }
        assert_ne!(parse_number("0.33"), parse_number("1/3"));
    }

    #[test]
    fn rational_arithmetic_is_exact_and_refuses_overflow() {
        let third = Rational::new(1, 3).unwrap();
        assert_eq!(
            third.checked_add(third).unwrap().checked_add(third),
            Some(Rational::integer(1))
        );
        assert_eq!(third.checked_div(Rational::integer(0)), None);
        let huge = Rational::new(1 << 59, 1).unwrap();
        assert_eq!(huge.checked_mul(huge), None);
        assert_eq!(Rational::new(6, -8).unwrap().to_string(), "-3/4");
    }
}
