//! Filling the model's variables: from Hugging Face safetensors files, or from a seeded initialisation
//! (candle's CPU generator cannot be seeded, so initial weights come from our own ChaCha stream).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The safetensors files of a model directory: those named by `model.safetensors.index.json`, or else
/// every `*.safetensors` file in it.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index)
            .with_context(|| format!("cannot read {}", index.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = value
            .get("weight_map")
            .and_then(serde_json::Value::as_object)
            .with_context(|| format!("{} has no `weight_map` object", index.display()))?;
        let files: BTreeSet<&str> = map.values().filter_map(serde_json::Value::as_str).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list model directory {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        // Checkpoint directories hold optimizer moments beside the weights.
        .filter(|p| p.file_name().is_some_and(|n| n != "optimizer.safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "no *.safetensors weights in {}; a model directory needs config.json, tokenizer.json and weights",
            dir.display()
        );
    }
    Ok(files)
}

/// Loads every variable of `varmap` from the model directory, converting any float dtype to f32.
/// A missing tensor or a shape mismatch is an error naming the tensor.
pub fn load_into(varmap: &VarMap, dir: &Path, device: &Device) -> Result<()> {
    load_files_into(varmap, &weight_files(dir)?, device)
}

/// Loads every variable of `varmap` from the given safetensors files, as [`load_into`] does.
pub fn load_files_into(varmap: &VarMap, files: &[PathBuf], device: &Device) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for file in files {
        let loaded = candle_core::safetensors::load(file, device).with_context(|| {
            format!(
                "cannot read weights {}: the file is damaged or not in safetensors format",
                file.display()
            )
        })?;
        tensors.extend(loaded);
    }
    let data = varmap.data().lock().expect("variable map lock");
    for (name, var) in data.iter() {
        let tensor = tensors.get(name).with_context(|| {
            let origin = files
                .first()
                .and_then(|f| f.parent())
                .unwrap_or(Path::new("."));
            format!(
                "tensor `{name}` is missing from the weights in {}",
                origin.display()
            )
        })?;
        if tensor.dims() != var.dims() {
            bail!(
                "tensor `{name}` has shape {:?} in the weights but the config implies {:?}",
                tensor.dims(),
                var.dims()
            );
        }
        if !tensor.dtype().is_float() {
            bail!(
                "tensor `{name}` has dtype {:?}; expected a float type",
                tensor.dtype()
            );
        }
        var.set(&tensor.to_dtype(DType::F32)?)
            .with_context(|| format!("cannot set tensor `{name}`"))?;
    }
    Ok(())
}

/// Re-initialises every variable from a ChaCha stream seeded by `seed`, in name order: norms to one,
/// biases to zero, embeddings N(0, 0.02), projections uniform in ±1/sqrt(fan-in).
pub fn randomize(varmap: &VarMap, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = varmap.data().lock().expect("variable map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let count = var.elem_count();
        let values: Vec<f32> = if name.ends_with("norm.weight") {
            vec![1.0; count]
        } else if name.ends_with(".bias") {
            vec![0.0; count]
        } else if name.contains("embed_tokens") || name.starts_with("lm_head") {
            (0..count)
                .map(|_| {
                    // Box-Muller: two uniforms to one standard normal.
                    let (u1, u2): (f32, f32) = (rng.random::<f32>().max(1e-12), rng.random());
                    0.02 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
                })
                .collect()
        } else {
            let fan_in = var.dims().last().copied().unwrap_or(1) as f32;
            let bound = fan_in.sqrt().recip();
            (0..count)
                .map(|_| rng.random_range(-bound..bound))
                .collect()
        };
        var.set(&Tensor::from_vec(values, var.dims(), var.device())?)?;
    }
    Ok(())
}
