//! RMSNorm and its gradients.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::{contiguous, each_row, last_dim};

fn inverse_rms(row: &[f32], eps: f32) -> f32 {
    let mean_square = row.iter().map(|v| v * v).sum::<f32>() / row.len() as f32;
    (mean_square + eps).sqrt().recip()
}

/// `x / rms(x) * weight` over the last dimension.
pub(crate) struct RmsNorm {
    pub(crate) eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, weight) = (
            contiguous(xs, xl, self.name())?,
            contiguous(ws, wl, self.name())?,
        );
        let width = last_dim(xl, self.name())?;
        if weight.len() != width {
            bail!("rms-norm: weight of {} for rows of {width}", weight.len())
        }
        let mut out = vec![0f32; x.len()];
        each_row(&mut out, width, |row, out| {
            let input = &x[row * width..(row + 1) * width];
            let scale = inverse_rms(input, self.eps);
            for ((o, &v), &w) in out.iter_mut().zip(input).zip(weight) {
                *o = v * scale * w;
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = x.apply_op3_no_bwd(weight, &grad, &RmsNormGradInput { eps: self.eps })?;
        let grad_weight = x.apply_op2_no_bwd(&grad, &RmsNormGradWeight { eps: self.eps })?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// Gradient of [`RmsNorm`] with respect to its input: with `r = 1/rms(x)` and `u = g * w`,
/// `dx = r u - x r^3 mean(u x)`.
struct RmsNormGradInput {
    eps: f32,
}

impl CustomOp3 for RmsNormGradInput {
    fn name(&self) -> &'static str {
        "rms-norm-grad-input"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, weight, grad) = (
            contiguous(xs, xl, name)?,
            contiguous(ws, wl, name)?,
            contiguous(gs, gl, name)?,
        );
        let width = last_dim(xl, name)?;
        let mut out = vec![0f32; x.len()];
        each_row(&mut out, width, |row, out| {
            let span = row * width..(row + 1) * width;
            let (input, grad) = (&x[span.clone()], &grad[span]);
            let scale = inverse_rms(input, self.eps);
            let projected = input
                .iter()
                .zip(grad)
                .zip(weight)
                .map(|((v, g), w)| v * g * w)
                .sum::<f32>()
                / width as f32;
            let cubed = scale * scale * scale;
            for (((o, &v), &g), &w) in out.iter_mut().zip(input).zip(grad).zip(weight) {
                *o = scale * g * w - v * cubed * projected;
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

/// Gradient of [`RmsNorm`] with respect to its weight: `sum over rows of g * x / rms(x)`.
struct RmsNormGradWeight {
    eps: f32,
}

impl CustomOp2 for RmsNormGradWeight {
    fn name(&self) -> &'static str {
        "rms-norm-grad-weight"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, grad) = (
            contiguous(xs, xl, self.name())?,
            contiguous(gs, gl, self.name())?,
        );
        let width = last_dim(xl, self.name())?;
        let mut out = vec![0f32; width];
        for (input, grad) in x.chunks(width).zip(grad.chunks(width)) {
            let scale = inverse_rms(input, self.eps);
            for ((o, &v), &g) in out.iter_mut().zip(input).zip(grad) {
                *o += g * v * scale;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(width)))
    }
}
