//! The learner's question stream: its families and datasets in a weighted rotation.
//!
//! Position `index` of the stream is fixed by the options alone (task seed, families, datasets and
//! weights), so nodes with the same options draw the same questions, and a resumed node draws what
//! it would have drawn. With families only, the rotation visits them in order, one question each.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use swarm_tasks::{Dataset, Question, TaskCatalog, TaskRef, TaskRefExt};

use crate::LearnerOptions;

/// A question drawn for training and the reference that names it to other nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Drawn {
    /// How other nodes find the question: a family's stream position, a dataset row, or the
    /// prompt's hash for rows trained by majority vote.
    pub task: TaskRef,
    /// The question; unlabeled ones have family [`swarm_tasks::UNLABELED_FAMILY`] and no answer.
    pub question: Question,
}

enum Source {
    Family(String),
    Dataset {
        dataset: Arc<Dataset>,
        hide_labels: bool,
        /// The row order of the epoch last drawn from: (epoch, rows).
        order: Option<(u64, Vec<u64>)>,
    },
}

/// The rotation of sources and where each dataset is in its rows.
pub struct TaskMix {
    sources: Vec<Source>,
    /// Source of each slot of one cycle of the rotation.
    schedule: Vec<usize>,
    /// How many earlier slots of the cycle belong to the same source.
    rank: Vec<u64>,
    /// Slots per cycle that belong to each source (its weight).
    weights: Vec<u64>,
    task_seed: u64,
    difficulty: u32,
}

impl TaskMix {
    /// The stream `options` describe. Datasets must already be loaded in `catalog` under their
    /// path, and families known to it.
    pub fn new(options: &LearnerOptions, catalog: &TaskCatalog) -> Result<Self> {
        options
            .validate_families(&|name| catalog.family_info(name).map(|f| f.max_difficulty))
            .map_err(anyhow::Error::msg)?;
        let mut sources = Vec::new();
        let mut weights = Vec::new();
        for family in &options.families {
            sources.push(Source::Family(family.clone()));
            weights.push(1);
        }
        for source in &options.datasets {
            let loaded = catalog
                .dataset_named(&dataset_name(&source.path))
                .with_context(|| {
                    format!(
                        "dataset {} of `learner.datasets` was not loaded",
                        source.path.display()
                    )
                })?;
            sources.push(Source::Dataset {
                dataset: Arc::clone(&loaded.dataset),
                hide_labels: loaded.hide_labels,
                order: None,
            });
            weights.push(u64::from(source.weight));
        }
        let (schedule, rank) = smooth_rotation(&weights);
        Ok(Self {
            sources,
            schedule,
            rank,
            weights,
            task_seed: options.task_seed,
            difficulty: options.difficulty,
        })
    }

    /// The question at position `index` of the stream.
    pub fn draw(&mut self, catalog: &TaskCatalog, index: u64) -> Result<Drawn> {
        let cycle = index / self.schedule.len() as u64;
        let slot = (index % self.schedule.len() as u64) as usize;
        let source = self.schedule[slot];
        let visit = cycle * self.weights[source] + self.rank[slot];
        match &mut self.sources[source] {
            Source::Family(name) => {
                let question = catalog.generate(name, self.difficulty, self.task_seed, index)?;
                Ok(Drawn {
                    task: TaskRef::procedural(&question),
                    question,
                })
            }
            Source::Dataset {
                dataset,
                hide_labels,
                order,
            } => {
                let rows = dataset.len() as u64;
                let epoch = visit / rows;
                if order.as_ref().is_none_or(|(drawn, _)| *drawn != epoch) {
                    *order = Some((epoch, shuffled_rows(dataset, self.task_seed, epoch)));
                }
                let row = order.as_ref().expect("set above").1[(visit % rows) as usize];
                let labeled = if *hide_labels {
                    None
                } else {
                    dataset.question(row).ok()
                };
                Ok(match labeled {
                    Some(question) => Drawn {
                        task: TaskRef::Dataset {
                            dataset_hash: dataset.hash(),
                            row,
                        },
                        question,
                    },
                    None => {
                        let question = dataset.unlabeled_question(row)?;
                        Drawn {
                            task: TaskRef::unlabeled(&question.prompt),
                            question,
                        }
                    }
                })
            }
        }
    }
}

/// The name a dataset file is loaded under.
pub fn dataset_name(path: &Path) -> String {
    path.display().to_string()
}

/// One cycle of a smooth weighted rotation: each source appears `weight` times, spread out rather
/// than in runs, and equal weights visit the sources in order. Also the rank of each slot among
/// its source's slots.
fn smooth_rotation(weights: &[u64]) -> (Vec<usize>, Vec<u64>) {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut seen = vec![0u64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    let mut rank = Vec::with_capacity(total as usize);
    for _ in 0..total {
        for (c, &w) in current.iter_mut().zip(weights) {
            *c += w as i64;
        }
        let pick = (0..current.len())
            .max_by_key(|&i| (current[i], std::cmp::Reverse(i)))
            .expect("at least one source");
        current[pick] -= total;
        schedule.push(pick);
        rank.push(seen[pick]);
        seen[pick] += 1;
    }
    (schedule, rank)
}

/// The rows of `dataset` in the order epoch `epoch` of stream `task_seed` visits them: every row
/// once per epoch, in an order no two epochs or seeds share.
fn shuffled_rows(dataset: &Dataset, task_seed: u64, epoch: u64) -> Vec<u64> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&dataset.hash());
    hasher.update(&task_seed.to_le_bytes());
    hasher.update(&epoch.to_le_bytes());
    let mut rng = ChaCha8Rng::from_seed(*hasher.finalize().as_bytes());
    let mut rows: Vec<u64> = (0..dataset.len() as u64).collect();
    rows.shuffle(&mut rng);
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DatasetSource;

    fn catalog_with(text: &str, name: &str, hide_labels: bool) -> TaskCatalog {
        let dataset = Dataset::from_bytes(name, text.as_bytes()).unwrap();
        let mut catalog = TaskCatalog::new();
        if hide_labels {
            catalog.add_dataset_hiding_labels(dataset);
        } else {
            catalog.add_dataset(dataset);
        }
        catalog
    }

    #[test]
    fn the_rotation_spreads_weights_and_keeps_family_order() {
        assert_eq!(smooth_rotation(&[1, 1, 1]).0, [0, 1, 2]);
        let (schedule, rank) = smooth_rotation(&[1, 3]);
        assert_eq!(schedule, [1, 0, 1, 1]);
        assert_eq!(rank, [0, 0, 1, 2]);
        let catalog = TaskCatalog::new();
        let options = LearnerOptions {
            families: vec!["sorting".into(), "countdown".into()],
            ..LearnerOptions::default()
        };
        let mut mix = TaskMix::new(&options, &catalog).unwrap();
        for index in 0..6 {
            let drawn = mix.draw(&catalog, index).unwrap();
            let family = &options.families[index as usize % 2];
            let expected = catalog
                .generate(family, 0, options.task_seed, index)
                .unwrap();
            assert_eq!(drawn.question, expected);
            assert_eq!(drawn.task, TaskRef::procedural(&expected));
        }
    }

    #[test]
    fn dataset_rows_come_once_per_epoch_with_references_receivers_resolve() {
        let text: String = (0..5)
            .map(|i| format!("{{\"question\": \"{i}+1?\", \"answer\": {}}}\n", i + 1))
            .chain(["{\"question\": \"Any prime?\"}\n".to_owned()])
            .collect();
        let catalog = catalog_with(&text, "rows.jsonl", false);
        let options = LearnerOptions {
            families: vec!["sorting".into()],
            datasets: vec![DatasetSource {
                path: "rows.jsonl".into(),
                weight: 2,
                hide_labels: false,
            }],
            ..LearnerOptions::default()
        };
        let mut mix = TaskMix::new(&options, &catalog).unwrap();
        let drawn: Vec<Drawn> = (0..18).map(|i| mix.draw(&catalog, i).unwrap()).collect();
        let from_dataset: Vec<&Drawn> = drawn
            .iter()
            .filter(|d| d.question.family != "sorting")
            .collect();
        assert_eq!(from_dataset.len(), 12, "weight 2 against one family");
        for epoch in from_dataset.chunks(6) {
            let mut prompts: Vec<&str> = epoch.iter().map(|d| d.question.prompt.as_str()).collect();
            prompts.sort_unstable();
            prompts.dedup();
            assert_eq!(prompts.len(), 6, "each row once per epoch");
        }
        assert_ne!(
            from_dataset[..6]
                .iter()
                .map(|d| &d.question.prompt)
                .collect::<Vec<_>>(),
            from_dataset[6..]
                .iter()
                .map(|d| &d.question.prompt)
                .collect::<Vec<_>>(),
            "epochs are shuffled apart"
        );
        for d in &drawn {
            assert_eq!(
                catalog.check(&d.task, &d.question.prompt).unwrap(),
                d.question
            );
        }
        let unlabeled = from_dataset
            .iter()
            .find(|d| d.question.prompt == "Any prime?")
            .unwrap();
        assert!(matches!(unlabeled.task, TaskRef::Unlabeled { .. }));
        let mut again = TaskMix::new(&options, &catalog).unwrap();
        assert_eq!(again.draw(&catalog, 13).unwrap(), drawn[13]);
    }

    #[test]
    fn hidden_labels_train_rows_as_unlabeled() {
        let catalog = catalog_with(
            "{\"question\": \"1+1?\", \"answer\": 2}\n",
            "hidden.jsonl",
            true,
        );
        let options = LearnerOptions {
            families: Vec::new(),
            datasets: vec![DatasetSource {
                path: "hidden.jsonl".into(),
                weight: 1,
                hide_labels: true,
            }],
            ..LearnerOptions::default()
        };
        let drawn = TaskMix::new(&options, &catalog)
            .unwrap()
            .draw(&catalog, 0)
            .unwrap();
        assert_eq!(drawn.question.answer, "");
        assert_eq!(drawn.task, TaskRef::unlabeled("1+1?"));
        assert_eq!(catalog.hidden_answer("1+1?").unwrap().answer, "2");
        let missing = LearnerOptions {
            datasets: vec![DatasetSource {
                path: "other.jsonl".into(),
                weight: 1,
                hide_labels: true,
            }],
            ..options
        };
        let err = TaskMix::new(&missing, &catalog).err().unwrap().to_string();
        assert!(err.contains("other.jsonl"), "{err}");
    }
}
