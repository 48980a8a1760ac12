//! AdamW with f32 moments and savable state, gradient accumulation across micro-batches, global-norm
//! clipping, and learning-rate schedules.

use std::collections::HashMap;

use anyhow::{Context, Result, ensure};
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::{kernels, ops};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator floor.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// Learning rate as a function of the optimizer step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum LrSchedule {
    /// Linear warmup, then constant.
    Constant {
        /// Peak learning rate.
        lr: f64,
        /// Warmup steps.
        warmup: u64,
    },
    /// Linear warmup, then cosine decay to `min_lr` at `total` steps.
    Cosine {
        /// Peak learning rate.
        lr: f64,
        /// Warmup steps.
        warmup: u64,
        /// Step at which the decay ends.
        total: u64,
        /// Final learning rate.
        min_lr: f64,
    },
}

impl LrSchedule {
    /// The learning rate for (0-based) `step`.
    pub fn at(&self, step: u64) -> f64 {
        let warm = |lr: f64, warmup: u64| {
            if step < warmup {
                lr * (step + 1) as f64 / warmup as f64
            } else {
                lr
            }
        };
        match *self {
            LrSchedule::Constant { lr, warmup } => warm(lr, warmup),
            LrSchedule::Cosine {
                lr,
                warmup,
                total,
                min_lr,
            } => {
                if step < warmup {
                    return warm(lr, warmup);
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// Gradients summed over micro-batches, one slot per optimizer variable, and the factor clipping
/// scales them by (applied inside the update rather than by rewriting every gradient).
pub struct Gradients {
    slots: Vec<Option<Tensor>>,
    scale: f64,
}

/// The optimizer and its state.
pub struct AdamW {
    names: Vec<String>,
    vars: Vec<Var>,
    first: Vec<Tensor>,
    second: Vec<Tensor>,
    step: u64,
    config: AdamWConfig,
    /// Whether f32 CPU parameters are updated in place by the fused kernels (the composed update
    /// serves other devices, and tests compare the two).
    fused: bool,
}

impl AdamW {
    /// An optimizer over every variable of `varmap` (in name order, so state files are stable).
    pub fn new(varmap: &VarMap, config: AdamWConfig) -> Result<Self> {
        let data = varmap.data().lock().expect("variable map lock");
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros = |v: &Var| {
            v.zeros_like()
                .map(|t| t.to_dtype(DType::F32))
                .and_then(|t| t)
        };
        let first = named
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        let second = named
            .iter()
            .map(|(_, v)| zeros(v))
            .collect::<candle_core::Result<_>>()?;
        let (names, vars) = named.into_iter().unzip();
        Ok(Self {
            names,
            vars,
            first,
            second,
            step: 0,
            config,
            fused: true,
        })
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// An empty accumulator.
    pub fn zero_grads(&self) -> Gradients {
        Gradients {
            slots: vec![None; self.vars.len()],
            scale: 1.0,
        }
    }

    /// Adds the gradients of one backward pass to `into`.
    pub fn accumulate(&self, into: &mut Gradients, store: &GradStore) -> Result<()> {
        for (slot, var) in into.slots.iter_mut().zip(&self.vars) {
            if let Some(grad) = store.get(var.as_tensor()) {
                let grad = grad.detach();
                *slot = Some(match slot.take() {
                    Some(sum) => (sum + grad)?,
                    None => grad,
                });
            }
        }
        Ok(())
    }

    /// Scales gradients so their global L2 norm is at most `max_norm`; returns the norm before clipping.
    pub fn clip(&self, grads: &mut Gradients, max_norm: f64) -> Result<f64> {
        let mut total = 0f64;
        for grad in grads.slots.iter().flatten() {
            total += if ops::fusable(grad) {
                kernels::sum_of_squares(grad)?
            } else {
                f64::from(grad.sqr()?.sum_all()?.to_scalar::<f32>()?)
            };
        }
        let norm = total.sqrt() * grads.scale;
        ensure!(
            norm.is_finite(),
            "gradient norm is not finite ({norm}); the step is skipped"
        );
        if norm > max_norm {
            grads.scale *= max_norm / norm;
        }
        Ok(norm)
    }

    /// One AdamW update with learning rate `lr`.
    pub fn step(&mut self, grads: &Gradients, lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let (bias1, bias2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (i, grad) in grads.slots.iter().enumerate() {
            let Some(grad) = grad else { continue };
            let param = self.vars[i].as_tensor();
            if self.fused && ops::fusable(param) {
                // Three passes over the parameter's memory and no allocation, where the composed
                // update below makes a dozen temporaries the size of the parameter.
                let grad = grad.contiguous()?;
                for (moment, beta, squared) in [
                    (&self.first[i], c.beta1, false),
                    (&self.second[i], c.beta2, true),
                ] {
                    let update = kernels::MomentUpdate {
                        beta: beta as f32,
                        grad_scale: grads.scale as f32,
                        squared,
                    };
                    moment.inplace_op2(&grad, &update)?;
                }
                let update = kernels::AdamWUpdate {
                    lr: lr as f32,
                    decay: c.weight_decay as f32,
                    bias1: bias1 as f32,
                    bias2: bias2 as f32,
                    eps: c.eps as f32,
                };
                param.inplace_op3(&self.first[i], &self.second[i], &update)?;
                continue;
            }
            let grad = (grad * grads.scale)?;
            self.first[i] = ((&self.first[i] * c.beta1)? + (&grad * (1.0 - c.beta1))?)?;
            self.second[i] = ((&self.second[i] * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?;
            let update =
                ((&self.first[i] / bias1)? / ((&self.second[i] / bias2)?.sqrt()? + c.eps)?)?;
            let decayed = (param.detach() * (1.0 - lr * c.weight_decay))?;
            self.vars[i].set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`m.<var>`, `v.<var>`) and the step count, for checkpoints.
    /// They are copies, since later steps update the optimizer's own moments in place.
    pub fn state(&self) -> Result<(u64, HashMap<String, Tensor>)> {
        let mut tensors = HashMap::new();
        for (i, name) in self.names.iter().enumerate() {
            tensors.insert(format!("m.{name}"), self.first[i].copy()?);
            tensors.insert(format!("v.{name}"), self.second[i].copy()?);
        }
        Ok((self.step, tensors))
    }

    /// Restores what [`AdamW::state`] returned.
    pub fn load_state(&mut self, step: u64, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (i, name) in self.names.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.first[i]), ("v", &mut self.second[i])] {
                let key = format!("{prefix}.{name}");
                let tensor = tensors
                    .get(&key)
                    .with_context(|| format!("optimizer state has no `{key}`"))?;
                ensure!(
                    tensor.dims() == slot.dims(),
                    "optimizer state `{key}` has shape {:?}, expected {:?}",
                    tensor.dims(),
                    slot.dims()
                );
                // A copy: the fused update writes the moments in place, and `tensors` belongs to
                // the caller (it may be another optimizer's state).
                *slot = tensor.to_dtype(DType::F32)?.copy()?;
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_warm_up_then_hold_or_decay() {
        let constant = LrSchedule::Constant { lr: 1.0, warmup: 4 };
        assert_eq!(
            (constant.at(0), constant.at(3), constant.at(100)),
            (0.25, 1.0, 1.0)
        );
        let cosine = LrSchedule::Cosine {
            lr: 1.0,
            warmup: 0,
            total: 10,
            min_lr: 0.1,
        };
        assert_eq!(cosine.at(0), 1.0);
        assert!((cosine.at(5) - 0.55).abs() < 1e-12);
        assert!((cosine.at(10) - 0.1).abs() < 1e-12);
        assert!((cosine.at(50) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_a_hand_computed_step_and_clips() {
        let varmap = VarMap::new();
        let var = Var::from_vec(vec![1.0f32, -2.0], 2, &candle_core::Device::Cpu).unwrap();
        varmap
            .data()
            .lock()
            .unwrap()
            .insert("w".into(), var.clone());
        let mut opt = AdamW::new(
            &varmap,
            AdamWConfig {
                weight_decay: 0.1,
                ..AdamWConfig::default()
            },
        )
        .unwrap();
        // loss = 3*w0 + 4*w1: gradient (3, 4), norm 5.
        let loss = (var.as_tensor()
            * &Tensor::new(&[3f32, 4.0], &candle_core::Device::Cpu).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let mut grads = opt.zero_grads();
        let store = loss.backward().unwrap();
        opt.accumulate(&mut grads, &store).unwrap();
        opt.accumulate(&mut grads, &store).unwrap();
        let norm = opt.clip(&mut grads, 1.0).unwrap();
        assert!(
            (norm - 10.0).abs() < 1e-6,
            "two accumulated passes double the gradient"
        );
        opt.step(&grads, 0.01).unwrap();
        // First step: the bias-corrected update is g/|g| per coordinate, i.e. (1, 1), plus decay.
        let w: Vec<f32> = var.as_tensor().to_vec1().unwrap();
        let expected = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) - 0.01];
        for (a, b) in w.iter().zip(expected) {
            assert!((f64::from(*a) - b).abs() < 1e-5, "{w:?}");
        }
        let (steps, state) = opt.state().unwrap();
        let mut fresh = AdamW::new(&varmap, AdamWConfig::default()).unwrap();
        fresh.load_state(steps, &state).unwrap();
        assert_eq!(fresh.steps(), 1);
        assert_eq!(
            fresh.state().unwrap().1["m.w"].to_vec1::<f32>().unwrap(),
            state["m.w"].to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn fused_and_composed_updates_agree_over_clipped_steps() {
        let device = candle_core::Device::Cpu;
        let build = |fused: bool| {
            let varmap = VarMap::new();
            // "c" is large enough for the fused kernels to split it across threads.
            for (name, shape) in [("a", (3, 4)), ("b", (5, 2)), ("c", (200, 200))] {
                let count = shape.0 * shape.1;
                let values: Vec<f32> = (0..count).map(|i| (i as f32 * 0.37).sin()).collect();
                let var = Var::from_vec(values, shape, &device).unwrap();
                varmap.data().lock().unwrap().insert(name.into(), var);
            }
            let config = AdamWConfig {
                weight_decay: 0.05,
                ..AdamWConfig::default()
            };
            let mut optimizer = AdamW::new(&varmap, config).unwrap();
            optimizer.fused = fused;
            (varmap, optimizer)
        };
        let (fused_vars, mut fused) = build(true);
        let (composed_vars, mut composed) = build(false);
        for step in 0..5 {
            let mut norms = Vec::new();
            for (varmap, optimizer) in [(&fused_vars, &mut fused), (&composed_vars, &mut composed)]
            {
                let data = varmap.data().lock().unwrap();
                // A loss whose gradient changes with the weights and the step.
                let loss = (data["a"].as_tensor().sqr().unwrap().sum_all().unwrap()
                    * (step + 1) as f64
                    + data["b"].as_tensor().exp().unwrap().sum_all().unwrap()
                    + data["c"].as_tensor().sin().unwrap().sum_all().unwrap())
                .unwrap();
                let mut grads = optimizer.zero_grads();
                optimizer
                    .accumulate(&mut grads, &loss.backward().unwrap())
                    .unwrap();
                norms.push(optimizer.clip(&mut grads, 2.0).unwrap());
                optimizer.step(&grads, 0.05).unwrap();
            }
            assert!(norms[0] > 2.0, "the test must clip: norm {}", norms[0]);
            assert!((norms[0] - norms[1]).abs() < 1e-4 * norms[1], "{norms:?}");
        }
        let (fused_state, composed_state) = (fused.state().unwrap().1, composed.state().unwrap().1);
        let mut compared = 0;
        for (name, value) in fused_vars.data().lock().unwrap().iter() {
            let expected = &composed_vars.data().lock().unwrap()[name];
            for (a, b) in [
                (value.as_tensor(), expected.as_tensor()),
                (
                    &fused_state[&format!("m.{name}")],
                    &composed_state[&format!("m.{name}")],
                ),
                (
                    &fused_state[&format!("v.{name}")],
                    &composed_state[&format!("v.{name}")],
                ),
            ] {
                let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
                assert!(diff.to_scalar::<f32>().unwrap() < 1e-5, "{name}: {diff}");
                compared += 1;
            }
        }
        assert_eq!(compared, 9);
    }
}
