//! Text for `swarm-node tasks list|show`: the command prints these strings as they are.

use crate::{Question, TaskCatalog};

/// One line per family of `catalog`: name, difficulty range and what it asks (a plug-in's family
/// says which plug-in serves it).
pub fn families_table(catalog: &TaskCatalog) -> String {
    let mut out = format!("{:<26} {:<10} description\n", "family", "difficulty");
    for family in catalog.families() {
        let source = family
            .plugin
            .map(|command| format!(" [plug-in: {command}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<26} {:<10} {}{source}\n",
            family.name,
            format!("0-{}", family.max_difficulty),
            family.description
        ));
    }
    out
}

/// Sample questions for people: the prompt (continuation lines indented) and its answer.
pub fn questions_text(questions: &[Question]) -> String {
    let mut out = String::new();
    for question in questions {
        out.push_str(&format!(
            "#{} {}\n   answer: {}\n\n",
            question.index,
            question.prompt.replace('\n', "\n   "),
            question.answer
        ));
    }
    out
}

/// Sample questions for scripts: one JSON object per line.
pub fn questions_jsonl(questions: &[Question]) -> String {
    questions
        .iter()
        .map(|q| serde_json::to_string(q).expect("a question always serializes") + "\n")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{families, sample_questions};

    #[test]
    fn listings_name_every_family_and_round_trip_as_json() {
        let table = families_table(&TaskCatalog::new());
        for family in families() {
            assert!(table.contains(family.name()));
        }
        let questions = sample_questions("arc_1d", 1, 5, 3).unwrap();
        let text = questions_text(&questions);
        assert_eq!(text.matches("answer:").count(), 3);
        let parsed: Vec<Question> = questions_jsonl(&questions)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(parsed, questions);
    }
}
