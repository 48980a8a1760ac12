//! What the binary carries so that it works from any directory: the small models' definitions
//! (config and tokenizer; they have no weights to ship), the simulation plans of `configs/`, and the
//! platform's place for a node's data.
//!
//! `configs/` stays the editable source; a test checks that the embedded copies equal the files.
//! A name (`tiny`, `sim-quick`) means the built-in one unless a file or directory of that name
//! exists; a path always means the file.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use swarm_policy::durable;

/// A model definition compiled into the binary.
pub struct BuiltinModel {
    /// The name that selects it (`--model tiny`).
    pub name: &'static str,
    /// What it is, for listings.
    pub about: &'static str,
    config_json: &'static str,
    tokenizer_json: &'static str,
}

/// A built-in model from its directory under `configs/models/`.
macro_rules! model {
    ($name:literal, $about:literal) => {
        BuiltinModel {
            name: $name,
            about: $about,
            config_json: include_str!(concat!("../../configs/models/", $name, "/config.json")),
            tokenizer_json: include_str!(concat!(
                "../../configs/models/",
                $name,
                "/tokenizer.json"
            )),
        }
    };
}

/// The built-in models.
pub const MODELS: &[BuiltinModel] = &[
    model!(
        "tiny",
        "1.6M-parameter Qwen2-style decoder, character vocabulary (the default)"
    ),
    model!(
        "tiny-pairs",
        "the tiny decoder with a vocabulary of character pairs"
    ),
    model!("bench-25m", "25M-parameter decoder for speed measurements"),
];

/// A simulation plan compiled into the binary.
pub struct BuiltinPlan {
    /// The name that selects it (`--config sim-quick`).
    pub name: &'static str,
    /// The plan's TOML.
    pub text: &'static str,
}

/// A built-in plan from `configs/<name>.toml`.
macro_rules! plan {
    ($name:literal) => {
        BuiltinPlan {
            name: $name,
            text: include_str!(concat!("../../configs/", $name, ".toml")),
        }
    };
}

/// The built-in simulation plans.
pub const PLANS: &[BuiltinPlan] = &[
    plan!("sim-quick"),
    plan!("sim-sapo-sweep"),
    plan!("sim-mix-sweep"),
    plan!("sim-skills-sweep"),
    plan!("sim-specialists"),
    plan!("sim-adversarial"),
];

/// The model a name selects, when `spec` is a bare name (one path component) and no directory of
/// that name exists here.
pub fn model(spec: &Path) -> Option<&'static BuiltinModel> {
    if spec.is_dir() || spec.components().count() != 1 {
        return None;
    }
    let name = spec.to_str()?;
    MODELS.iter().find(|m| m.name == name)
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &'static str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// The model directory `spec` names: the directory itself, or for a built-in model's name its
/// definition written under `<data_dir>/models/<name>/` (once; the files are small).
pub fn resolve_model(spec: &Path, data_dir: &Path) -> Result<PathBuf> {
    let Some(builtin) = model(spec) else {
        if spec.is_dir() {
            return Ok(spec.to_owned());
        }
        bail!(
            "model {}: no such directory, and not a built-in model ({}); pass a model directory \
             in Hugging Face layout",
            spec.display(),
            names(MODELS, |m| m.name)
        );
    };
    let dir = data_dir.join("models").join(builtin.name);
    let files = [
        ("config.json", builtin.config_json),
        ("tokenizer.json", builtin.tokenizer_json),
    ];
    let current = files
        .iter()
        .all(|(file, text)| std::fs::read(dir.join(file)).is_ok_and(|b| b == text.as_bytes()));
    if !current {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        for (file, text) in files {
            durable::write_file(&dir.join(file), text.as_bytes())?;
        }
    }
    Ok(dir)
}

/// The text of the model configuration `spec` names (a directory's `config.json` or a built-in
/// model's), without writing anything.
pub fn model_config_text(spec: &Path) -> Option<String> {
    match model(spec) {
        Some(builtin) => Some(builtin.config_json.to_owned()),
        None => std::fs::read_to_string(spec.join("config.json")).ok(),
    }
}

/// A simulation plan: the file `spec` when it exists, else the built-in plan of that name (with or
/// without `.toml`). Returns where it came from (for messages) and its text.
pub fn plan(spec: &Path) -> Result<(String, String)> {
    if spec.is_file() {
        let text = std::fs::read_to_string(spec)
            .with_context(|| format!("cannot read simulation plan {}", spec.display()))?;
        return Ok((spec.display().to_string(), text));
    }
    let name = spec
        .to_str()
        .filter(|_| spec.components().count() == 1)
        .map(|s| s.trim_end_matches(".toml"));
    match name.and_then(|name| PLANS.iter().find(|p| p.name == name)) {
        Some(builtin) => Ok((
            format!("built-in plan {}", builtin.name),
            builtin.text.to_owned(),
        )),
        None => bail!(
            "simulation plan {}: no such file, and not a built-in plan ({}); `simulate \
             --list-plans` lists them",
            spec.display(),
            names(PLANS, |p| p.name)
        ),
    }
}

/// Where a node keeps its data unless told otherwise: `$XDG_DATA_HOME/swarm-node`, else
/// `~/.local/share/swarm-node` (`~/Library/Application Support/swarm-node` on macOS), so identity
/// and checkpoints follow the user rather than the working directory. Without a home directory,
/// `data` under the current directory.
pub fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty());
    if cfg!(target_os = "macos") {
        if let Some(home) = home {
            return PathBuf::from(home).join("Library/Application Support/swarm-node");
        }
    } else if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(xdg).join("swarm-node");
    } else if let Some(home) = home {
        return PathBuf::from(home).join(".local/share/swarm-node");
    }
    PathBuf::from("data")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs")
    }

    #[test]
    fn embedded_copies_equal_the_files_in_configs() {
        for builtin in MODELS {
            let dir = configs().join("models").join(builtin.name);
            for (file, text) in [
                ("config.json", builtin.config_json),
                ("tokenizer.json", builtin.tokenizer_json),
            ] {
                assert_eq!(
                    std::fs::read_to_string(dir.join(file)).unwrap(),
                    text,
                    "{}/{file}: rebuild after editing configs/",
                    builtin.name
                );
            }
        }
        for builtin in PLANS {
            let path = configs().join(format!("{}.toml", builtin.name));
            assert_eq!(std::fs::read_to_string(path).unwrap(), builtin.text);
        }
        let plans_on_disk = std::fs::read_dir(configs())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.starts_with("sim-") && name.ends_with(".toml")
            })
            .count();
        assert_eq!(
            plans_on_disk,
            PLANS.len(),
            "every plan in configs/ is built in"
        );
    }

    #[test]
    fn names_resolve_to_built_ins_and_paths_to_files() {
        let data = tempfile::tempdir().unwrap();
        let dir = resolve_model(Path::new("tiny"), data.path()).unwrap();
        assert_eq!(dir, data.path().join("models/tiny"));
        swarm_policy::ModelConfig::load(&dir).unwrap();
        // A second resolution reuses the files.
        assert_eq!(resolve_model(Path::new("tiny"), data.path()).unwrap(), dir);
        // A directory is itself, whatever its name.
        assert_eq!(resolve_model(&dir, data.path()).unwrap(), dir);
        let err = resolve_model(Path::new("no/such/model"), data.path()).unwrap_err();
        assert!(format!("{err:#}").contains("tiny, tiny-pairs"), "{err:#}");

        assert_eq!(plan(Path::new("sim-quick")).unwrap().1, PLANS[0].text);
        assert_eq!(plan(Path::new("sim-quick.toml")).unwrap().1, PLANS[0].text);
        let file = configs().join("sim-quick.toml");
        assert!(plan(&file).unwrap().0.ends_with("sim-quick.toml"));
        let err = plan(Path::new("sim-nothing")).unwrap_err();
        assert!(format!("{err:#}").contains("--list-plans"), "{err:#}");
    }
}
