//! The SwiGLU gate of the feed-forward block and its gradients.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

use super::map_elementwise;

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
        map_elementwise(self.name(), [(gs, gl), (us, ul)], |[g, u]| {
            g * sigmoid(g) * u
        })
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
        map_elementwise(self.name(), [(gs, gl), (us, ul), (ds, dl)], |[g, u, d]| {
            let s = sigmoid(g);
            d * u * s * (1.0 + g * (1.0 - s))
        })
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
        map_elementwise(self.name(), [(gs, gl), (ds, dl)], |[g, d]| {
            d * g * sigmoid(g)
        })
    }
}
