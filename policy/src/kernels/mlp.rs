//! The SwiGLU gate of the feed-forward block and its gradients.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::{contiguous, each_row, last_dim};

fn sigmoid(x: f32) -> f32 {
    (1.0 + (-x).exp()).recip()
}

/// The SwiGLU gate `silu(gate) * up`.
pub(crate) struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (gate, up) = (
            contiguous(gs, gl, self.name())?,
            contiguous(us, ul, self.name())?,
        );
        if gl.dims() != ul.dims() {
            bail!("swiglu: gate {:?} and up {:?} differ", gl.dims(), ul.dims())
        }
        let width = last_dim(gl, self.name())?;
        let mut out = vec![0f32; gate.len()];
        each_row(&mut out, width, |row, out| {
            let span = row * width..(row + 1) * width;
            for ((o, &g), &u) in out.iter_mut().zip(&gate[span.clone()]).zip(&up[span]) {
                *o = g * sigmoid(g) * u;
            }
        });
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_gate = gate.apply_op3_no_bwd(up, &grad, &SwiGluGradGate)?;
        let grad_up = gate.apply_op2_no_bwd(&grad, &SwiGluGradUp)?;
        Ok((Some(grad_gate), Some(grad_up)))
    }
}

/// `d/dgate`: `g * up * s * (1 + gate * (1 - s))` with `s = sigmoid(gate)`.
struct SwiGluGradGate;

impl CustomOp3 for SwiGluGradGate {
    fn name(&self) -> &'static str {
        "swiglu-grad-gate"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        us: &CpuStorage,
        ul: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (gate, up, grad) = (
            contiguous(gs, gl, name)?,
            contiguous(us, ul, name)?,
            contiguous(ds, dl, name)?,
        );
        let width = last_dim(gl, name)?;
        let mut out = vec![0f32; gate.len()];
        each_row(&mut out, width, |row, out| {
            let span = row * width..(row + 1) * width;
            let values = gate[span.clone()]
                .iter()
                .zip(&up[span.clone()])
                .zip(&grad[span]);
            for (o, ((&g, &u), &d)) in out.iter_mut().zip(values) {
                let s = sigmoid(g);
                *o = d * u * s * (1.0 + g * (1.0 - s));
            }
        });
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }
}

/// `d/dup`: `g * silu(gate)`.
struct SwiGluGradUp;

impl CustomOp2 for SwiGluGradUp {
    fn name(&self) -> &'static str {
        "swiglu-grad-up"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (gate, grad) = (
            contiguous(gs, gl, self.name())?,
            contiguous(ds, dl, self.name())?,
        );
        let width = last_dim(gl, self.name())?;
        let mut out = vec![0f32; gate.len()];
        each_row(&mut out, width, |row, out| {
            let span = row * width..(row + 1) * width;
            for ((o, &g), &d) in out.iter_mut().zip(&gate[span.clone()]).zip(&grad[span]) {
                *o = d * g * sigmoid(g);
            }
        });
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }
}
