//! Task references: how a receiver turns the protocol's [`TaskRef`] back into the prompt and ground
//! truth without trusting the sender.
//!
//! The reference type is the wire protocol's own, so that a reference read off the network is
//! resolved as it is, with no second definition to keep field for field (and hash for hash) in
//! step. A procedural reference is regenerated from its family, a dataset reference is looked up in
//! the datasets this node has loaded, and an unlabeled reference only carries a hash: its prompt is
//! whatever the sender sent, accepted when the hash matches, and its rewards come from majority
//! vote.

use swarm_protocol::{TaskRef, prompt_hash};

use crate::{Question, TaskCatalog, TaskError};

/// Family name given to questions resolved from an unlabeled reference; their answer is empty.
pub const UNLABELED_FAMILY: &str = "unlabeled";

/// The question an unlabeled prompt stands for: no answer, and seed and index 0, so that every node
/// makes the same question of the same prompt and their completions pool.
pub fn unlabeled_question(prompt: &str) -> Question {
    Question {
        family: UNLABELED_FAMILY.to_owned(),
        difficulty: 0,
        seed: 0,
        index: 0,
        prompt: prompt.to_owned(),
        answer: String::new(),
    }
}

/// Builds the references that name this crate's questions. A trait because [`TaskRef`] belongs to
/// the protocol crate, which knows nothing of questions; it keeps `TaskRef::procedural(&question)`
/// reading as a constructor.
pub trait TaskRefExt {
    /// The reference of a procedurally generated question.
    fn procedural(question: &Question) -> Self;

    /// The reference of an unlabeled prompt.
    fn unlabeled(prompt: &str) -> Self;
}

impl TaskRefExt for TaskRef {
    fn procedural(question: &Question) -> Self {
        TaskRef::Procedural {
            family: question.family.clone(),
            difficulty: question.difficulty,
            seed: question.seed,
            index: question.index,
        }
    }

    fn unlabeled(prompt: &str) -> Self {
        TaskRef::Unlabeled {
            prompt_hash: prompt_hash(prompt),
        }
    }
}

/// Regenerates the question a procedural reference names (no datasets loaded). Nodes that load datasets
/// use [`TaskCatalog::resolve`].
pub fn resolve(task: &TaskRef) -> Result<Question, TaskError> {
    TaskCatalog::new().resolve(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Dataset, family};

    #[test]
    fn procedural_references_round_trip() {
        let question = family("countdown").unwrap().generate(2, 41, 9);
        let task = TaskRef::procedural(&question);
        assert_eq!(resolve(&task).unwrap(), question);
        let catalog = TaskCatalog::new();
        assert_eq!(catalog.check(&task, &question.prompt).unwrap(), question);
        assert_eq!(
            catalog.check(&task, &format!("{} ", question.prompt)),
            Err(TaskError::PromptMismatch)
        );
    }

    #[test]
    fn references_a_node_cannot_honour_are_errors() {
        let unknown = TaskRef::Procedural {
            family: "poetry".into(),
            difficulty: 0,
            seed: 0,
            index: 0,
        };
        assert_eq!(
            resolve(&unknown),
            Err(TaskError::UnknownFamily("poetry".into()))
        );
        let too_hard = TaskRef::Procedural {
            family: "basic_arithmetic".into(),
            difficulty: 1000,
            seed: 0,
            index: 0,
        };
        assert!(matches!(
            resolve(&too_hard),
            Err(TaskError::Difficulty { .. })
        ));
        let dataset = TaskRef::Dataset {
            dataset_hash: [7; 32],
            row: 0,
        };
        assert!(matches!(
            resolve(&dataset),
            Err(TaskError::UnknownDataset(_))
        ));
        assert_eq!(
            resolve(&TaskRef::unlabeled("hi")),
            Err(TaskError::Unlabeled)
        );
    }

    #[test]
    fn dataset_and_unlabeled_references_resolve_through_the_catalog() {
        let bytes = b"{\"question\": \"What is 2+2?\", \"answer\": 4}\n\n{\"question\": \"Capital of France?\", \"answer\": \"Paris\"}\n";
        let mut catalog = TaskCatalog::new();
        let hash = catalog.add_dataset(Dataset::from_bytes("mini.jsonl", bytes).unwrap());
        let row = TaskRef::Dataset {
            dataset_hash: hash,
            row: 1,
        };
        let question = catalog.check(&row, "Capital of France?").unwrap();
        assert_eq!(question.answer, "Paris");
        assert!(matches!(
            catalog.resolve(&TaskRef::Dataset {
                dataset_hash: hash,
                row: 2
            }),
            Err(TaskError::Row { rows: 2, .. })
        ));
        let unlabeled = TaskRef::unlabeled("Name a prime.");
        let question = catalog.check(&unlabeled, "Name a prime.").unwrap();
        assert_eq!(
            (question.family.as_str(), question.answer.as_str()),
            (UNLABELED_FAMILY, "")
        );
        assert_eq!(
            catalog.check(&unlabeled, "Name a prime!"),
            Err(TaskError::PromptMismatch)
        );
    }
}
