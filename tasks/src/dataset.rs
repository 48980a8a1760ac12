//! JSONL datasets: one `{"question": ..., "answer": ...}` object per line, addressed on the wire by the
//! blake3 hash of the file's bytes and a row index, so peers agree on a row without trusting each other.
//! A row without an answer (the key left out, or `null`) is unlabeled: it is trained on with
//! majority-vote rewards and named on the wire by its prompt's hash.
//!
//! An optional `"answer_type"` picks the verifier: the name of a task family (its verifier then reads the
//! row), `"number"` (exact numeric equality in any notation: `1.5`, `3/2`, `1,500`), `"boolean"`
//! (`true`/`false`, `yes`/`no`, `t`/`f` in any case) or `"text"` (case- and space-insensitive
//! equality). Without it, answers that read as numbers compare as numbers, `true`/`false`/`yes`/`no`
//! as booleans, and others as text.

use std::path::Path;

use serde::Deserialize;

use crate::answer::parse_number;
use crate::families::family;
use crate::{Question, RewardConfig, TaskError, Verdict};

/// Longest accepted dataset file; datasets are prompts, not corpora.
pub const MAX_DATASET_BYTES: usize = 256 * 1024 * 1024;

const NUMBER_FAMILY: &str = "dataset/number";
const BOOLEAN_FAMILY: &str = "dataset/boolean";
const TEXT_FAMILY: &str = "dataset/text";

/// A truth value in the spellings people and models use.
fn parse_boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "t" => Some(true),
        "false" | "no" | "f" => Some(false),
        _ => None,
    }
}

/// Whether an answer, left untyped, reads as a truth value: only the unambiguous words, since a
/// one-letter answer may be text.
fn looks_boolean(answer: &str) -> bool {
    matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "true" | "false" | "yes" | "no"
    )
}

/// Errors reading a dataset, naming the line at fault.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be read.
    #[error("cannot read dataset {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a valid row.
    #[error(
        "dataset {name}, line {line}: {problem}; each line must be a JSON object like {{\"question\": \"...\", \"answer\": \"...\"}}"
    )]
    Line {
        /// File name.
        name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        problem: String,
    },
    /// The file has no rows or is too large.
    #[error("dataset {name}: {problem}")]
    File {
        /// File name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    question: String,
    #[serde(default)]
    answer: serde_json::Value,
    #[serde(default)]
    answer_type: Option<String>,
}

/// One row with the verifier it uses; `answer` is `None` for an unlabeled row.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    question: String,
    answer: Option<String>,
    verifier: String,
}

/// A loaded dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    name: String,
    hash: [u8; 32],
    rows: Vec<Row>,
}

impl Dataset {
    /// Reads and checks a JSONL file.
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let bytes = std::fs::read(path).map_err(|source| DatasetError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&path.display().to_string(), &bytes)
    }

    /// Parses JSONL bytes; `name` appears in errors.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, DatasetError> {
        let file_error = |problem: String| DatasetError::File {
            name: name.to_owned(),
            problem,
        };
        if bytes.len() > MAX_DATASET_BYTES {
            return Err(file_error(format!(
                "{} bytes is over the {MAX_DATASET_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let text =
            std::str::from_utf8(bytes).map_err(|err| file_error(format!("not UTF-8 ({err})")))?;
        let mut rows = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line_error = |problem: String| DatasetError::Line {
                name: name.to_owned(),
                line: number + 1,
                problem,
            };
            let raw: RawRow =
                serde_json::from_str(line).map_err(|err| line_error(err.to_string()))?;
            let answer = match raw.answer {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Null => {
                    if raw.question.trim().is_empty() {
                        return Err(line_error("the question must not be empty".into()));
                    }
                    rows.push(Row {
                        question: raw.question,
                        answer: None,
                        verifier: crate::UNLABELED_FAMILY.to_owned(),
                    });
                    continue;
                }
                other => {
                    return Err(line_error(format!(
                        "answer must be a string, a number or null (unlabeled), found {other}"
                    )));
                }
            };
            if raw.question.trim().is_empty() || answer.trim().is_empty() {
                return Err(line_error(
                    "question and answer must not be empty (leave the answer out for an unlabeled row)"
                        .into(),
                ));
            }
            let verifier = match raw.answer_type.as_deref() {
                None if parse_number(&answer).is_some() => NUMBER_FAMILY.to_owned(),
                None if looks_boolean(&answer) => BOOLEAN_FAMILY.to_owned(),
                None | Some("text") => TEXT_FAMILY.to_owned(),
                Some("boolean") => {
                    if parse_boolean(&answer).is_none() {
                        return Err(line_error(format!(
                            "answer_type is boolean but {answer:?} is not true/false/yes/no"
                        )));
                    }
                    BOOLEAN_FAMILY.to_owned()
                }
                Some("number") => {
                    if parse_number(&answer).is_none() {
                        return Err(line_error(format!(
                            "answer_type is number but {answer:?} is not a number"
                        )));
                    }
                    NUMBER_FAMILY.to_owned()
                }
                Some(name) if family(name).is_some() => name.to_owned(),
                Some(other) => {
                    return Err(line_error(format!(
                        "unknown answer_type {other:?}; use number, boolean, text or a task family name"
                    )));
                }
            };
            rows.push(Row {
                question: raw.question,
                answer: Some(answer),
                verifier,
            });
        }
        if rows.is_empty() {
            return Err(file_error("no rows".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            hash: *blake3::hash(bytes).as_bytes(),
            rows,
        })
    }

    /// blake3 of the file's bytes: the dataset's name on the wire.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the dataset has no rows (never true for a loaded dataset).
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The file name given at load time.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn row(&self, row: u64) -> Result<&Row, TaskError> {
        usize::try_from(row)
            .ok()
            .and_then(|r| self.rows.get(r))
            .ok_or_else(|| TaskError::Row {
                hash: hex::encode(self.hash),
                row,
                rows: self.rows.len(),
            })
    }

    /// Rows that carry an answer.
    pub fn labeled_rows(&self) -> usize {
        self.rows.iter().filter(|r| r.answer.is_some()).count()
    }

    /// Row `row` as a question (seed 0, index = row) with its ground truth. An unlabeled row has
    /// none: [`TaskError::Unlabeled`].
    pub fn question(&self, row: u64) -> Result<Question, TaskError> {
        let found = self.row(row)?;
        let answer = found.answer.clone().ok_or(TaskError::Unlabeled)?;
        Ok(Question {
            family: found.verifier.clone(),
            difficulty: 0,
            seed: 0,
            index: row,
            prompt: found.question.clone(),
            answer,
        })
    }

    /// Row `row` as a question to be scored by majority vote, whether or not the file labels it:
    /// family [`crate::UNLABELED_FAMILY`], no answer, and seed and index 0, so that it is the very
    /// question a receiver makes of the prompt alone.
    pub fn unlabeled_question(&self, row: u64) -> Result<Question, TaskError> {
        Ok(crate::unlabeled_question(&self.row(row)?.question))
    }
}

fn normalize_text(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The verifier for dataset rows whose family is not a task family.
pub(crate) fn verify_row(question: &Question, completion: &str, rewards: &RewardConfig) -> Verdict {
    let Some(answer) = crate::answer::extract(completion) else {
        return rewards.verdict(None, false, false);
    };
    if question.family == NUMBER_FAMILY {
        let value = parse_number(&answer);
        let correct = value.is_some() && value == parse_number(&question.answer);
        return rewards.verdict(Some(answer), value.is_some(), correct);
    }
    if question.family == BOOLEAN_FAMILY {
        let value = parse_boolean(&answer);
        let correct = value.is_some() && value == parse_boolean(&question.answer);
        return rewards.verdict(Some(answer), value.is_some(), correct);
    }
    let correct = normalize_text(&answer) == normalize_text(&question.answer);
    rewards.verdict(Some(answer), true, correct)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify;

    #[test]
    fn rows_load_hash_and_verify() {
        let text = concat!(
            "{\"question\": \"Capital of France?\", \"answer\": \"Paris\"}\n",
            "\n",
            "{\"question\": \"Half of 3?\", \"answer\": 1.5}\n",
            "{\"question\": \"Simplify 2/4.\", \"answer\": \"1/2\", \"answer_type\": \"fraction_simplification\"}\n",
        );
        let dataset = Dataset::from_bytes("tiny.jsonl", text.as_bytes()).unwrap();
        assert_eq!(dataset.len(), 3);
        assert_eq!(dataset.hash(), *blake3::hash(text.as_bytes()).as_bytes());
        let rewards = RewardConfig::default();
        let capital = dataset.question(0).unwrap();
        assert!(verify(&capital, "  paris ", &rewards).correct);
        assert!(!verify(&capital, "Lyon", &rewards).correct);
        let half = dataset.question(1).unwrap();
        assert!(verify(&half, "3/2", &rewards).correct);
        assert!(!verify(&half, "1.4", &rewards).correct);
        let fraction = dataset.question(2).unwrap();
        assert!(verify(&fraction, "1/2", &rewards).correct);
        assert!(!verify(&fraction, "2/4", &rewards).correct);
        assert!(matches!(
            dataset.question(3),
            Err(TaskError::Row { rows: 3, .. })
        ));
    }

    #[test]
    fn bad_lines_are_named() {
        let cases = [
            ("{\"answer\": \"a\"}\n", "line 1"),
            ("{\"question\": \" \"}\n", "question must not be empty"),
            (
                "{\"question\": \"q\", \"answer\": \"a\"}\nnot json\n",
                "line 2",
            ),
            (
                "{\"question\": \"q\", \"answer\": \"a\", \"answer_type\": \"poem\"}\n",
                "unknown answer_type",
            ),
            (
                "{\"question\": \"q\", \"answer\": \"a\", \"answer_type\": \"number\"}\n",
                "not a number",
            ),
            (
                "{\"question\": \"q\", \"answer\": [1]}\n",
                "a string, a number or null",
            ),
            ("\n\n", "no rows"),
        ];
        for (text, expected) in cases {
            let err = Dataset::from_bytes("d.jsonl", text.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }

    /// Equivalent spellings of an answer earn the reward, as they do in the built-in families;
    /// other answers do not.
    #[test]
    fn equivalent_answers_are_accepted_by_type() {
        // (answer, answer_type, completion, correct)
        let table: &[(&str, Option<&str>, &str, bool)] = &[
            ("1.5", None, "3/2", true),
            ("1.5", None, "<answer>1.50</answer>", true),
            ("1.5", None, "The answer is 1.5.", true),
            ("1.5", None, "1.49", false),
            ("1500", None, "1,500", true),
            ("-0.5", None, "-1/2", true),
            ("2", None, "2.0", true),
            ("2", None, "two", false),
            ("1/2", None, "0.5", true),
            ("1/2", Some("fraction_simplification"), "2/4", false),
            ("1/2", Some("fraction_simplification"), "1/2", true),
            ("True", None, "true", true),
            ("True", None, "yes", true),
            ("True", None, "<answer>TRUE</answer>", true),
            ("True", None, "False", false),
            ("no", None, "false", true),
            ("yes", Some("boolean"), "T", true),
            ("False", Some("boolean"), "maybe", false),
            ("Paris", None, "  paris ", true),
            ("Paris", None, "**Paris**", true),
            ("Paris", None, "Lyon", false),
            ("New York", None, "new   york", true),
            ("7", Some("text"), "7.0", false),
        ];
        let rewards = RewardConfig::default();
        for (answer, answer_type, completion, correct) in table {
            let mut row = serde_json::json!({"question": "q", "answer": answer});
            if let Some(kind) = answer_type {
                row["answer_type"] = serde_json::json!(kind);
            }
            let dataset = Dataset::from_bytes("t.jsonl", format!("{row}\n").as_bytes()).unwrap();
            let question = dataset.question(0).unwrap();
            let verdict = verify(&question, completion, &rewards);
            assert_eq!(
                verdict.correct, *correct,
                "{answer:?} ({answer_type:?}) against {completion:?}: {verdict:?}"
            );
        }
    }
}
