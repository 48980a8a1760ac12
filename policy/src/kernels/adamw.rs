//! In-place AdamW updates and the squared norm of a gradient.

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor, bail};

use super::{CHUNK, contiguous, contiguous_mut, each_row};

/// In-place moment update `m = beta * m + (1 - beta) * f(scale * g)` with `f` the identity (first
/// moment) or the square (second moment).
pub(crate) struct MomentUpdate {
    pub(crate) beta: f32,
    pub(crate) grad_scale: f32,
    pub(crate) squared: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adamw-moment"
    }

    fn cpu_fwd(
        &self,
        ms: &mut CpuStorage,
        ml: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<()> {
        let moment = contiguous_mut(ms, ml, "adamw-moment")?;
        let grad = contiguous(gs, gl, "adamw-moment")?;
        if moment.len() != grad.len() {
            bail!(
                "adamw-moment: {} moments for {} gradients",
                moment.len(),
                grad.len()
            )
        }
        let keep = 1.0 - self.beta;
        each_row(moment, CHUNK, |chunk, moment| {
            let grad = &grad[chunk * CHUNK..];
            for (m, &g) in moment.iter_mut().zip(grad) {
                let g = g * self.grad_scale;
                let g = if self.squared { g * g } else { g };
                *m = self.beta * *m + keep * g;
            }
        });
        Ok(())
    }
}

/// In-place AdamW parameter update from its moments:
/// `p = p * (1 - lr * wd) - lr * (m / bias1) / (sqrt(v / bias2) + eps)`.
pub(crate) struct AdamWUpdate {
    pub(crate) lr: f32,
    pub(crate) decay: f32,
    pub(crate) bias1: f32,
    pub(crate) bias2: f32,
    pub(crate) eps: f32,
}

impl InplaceOp3 for AdamWUpdate {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        ps: &mut CpuStorage,
        pl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let param = contiguous_mut(ps, pl, "adamw-update")?;
        let (first, second) = (
            contiguous(ms, ml, "adamw-update")?,
            contiguous(vs, vl, "adamw-update")?,
        );
        if param.len() != first.len() || param.len() != second.len() {
            bail!("adamw-update: parameter and moment sizes differ")
        }
        let keep = 1.0 - self.lr * self.decay;
        each_row(param, CHUNK, |chunk, param| {
            let offset = chunk * CHUNK;
            let moments = first[offset..].iter().zip(&second[offset..]);
            for (p, (&m, &v)) in param.iter_mut().zip(moments) {
                let update = (m / self.bias1) / ((v / self.bias2).sqrt() + self.eps);
                *p = *p * keep - self.lr * update;
            }
        });
        Ok(())
    }
}

/// Sum of squares of a tensor's elements, accumulated in f64 (for the global gradient norm).
pub(crate) fn sum_of_squares(tensor: &Tensor) -> Result<f64> {
    let tensor = tensor.contiguous()?;
    let (storage, layout) = tensor.storage_and_layout();
    let candle_core::Storage::Cpu(storage) = &*storage else {
        bail!("sum-of-squares: expected a CPU tensor")
    };
    let values = contiguous(storage, layout, "sum-of-squares")?;
    let squares = |chunk: &[f32]| {
        chunk
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
    };
    if candle_core::utils::get_num_threads() > 1 && values.len() >= 2 * CHUNK {
        use rayon::prelude::*;
        return Ok(values.par_chunks(CHUNK).map(squares).sum());
    }
    Ok(values.chunks(CHUNK).map(squares).sum())
}
