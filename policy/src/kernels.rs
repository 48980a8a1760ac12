//! Fused CPU kernels for the decoder's element-wise stages, as candle custom ops with backward passes.
//!
//! Composed from elementary tensor ops, RMSNorm, the attention softmax, RoPE and the SwiGLU gate
//! build about half of a layer's autograd graph, and candle's backward pass allocates and adds a
//! gradient buffer for every node of it. One node per stage, computed in one pass over each row, cuts
//! both the forward's temporaries and that backward traffic. Every op here takes contiguous f32
//! tensors on the CPU; `crate::ops` chooses between these and the composed versions (which other
//! devices and dtypes use) and tests that both agree in values and gradients.

use candle_core::{
    CpuStorage, CustomOp2, CustomOp3, InplaceOp2, InplaceOp3, Layout, Result, Shape, Tensor, bail,
};
use rayon::prelude::*;

/// Below this many output elements a kernel runs on the calling thread: handing tiny rows to the
/// thread pool costs more than the arithmetic.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected an f32 tensor")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op}: expected a contiguous tensor")
    };
    Ok(&data[start..end])
}

fn contiguous_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected an f32 tensor")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op}: expected a contiguous tensor")
    };
    Ok(&mut data[start..end])
}

/// Fills `out` row by row (`width` elements each) with `body(row_index, row)`, spread over candle's
/// thread count when there is enough work. With one thread it never touches the pool, which
/// simulated nodes share.
fn each_row(out: &mut [f32], width: usize, body: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if candle_core::utils::get_num_threads() > 1 && out.len() >= PARALLEL_MIN_ELEMENTS {
        out.par_chunks_mut(width)
            .enumerate()
            .for_each(|(row, values)| body(row, values));
    } else {
        out.chunks_mut(width)
            .enumerate()
            .for_each(|(row, values)| body(row, values));
    }
}

fn last_dim(layout: &Layout, op: &str) -> Result<usize> {
    match layout.dims().last() {
        Some(&width) if width > 0 => Ok(width),
        _ => bail!("{op}: expected a non-empty last dimension"),
    }
}

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

/// `softmax(scale * scores + mask)` over the last dimension, for attention scores `(B, H, T, S)` and
/// an additive mask `(B, 1, T, S)` shared by every head. The mask receives no gradient.
pub(crate) struct MaskedSoftmax {
    pub(crate) scale: f32,
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(
        &self,
        ss: &CpuStorage,
        sl: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (scores, mask) = (
            contiguous(ss, sl, self.name())?,
            contiguous(ms, ml, self.name())?,
        );
        let (batch, heads, queries, keys) = sl.shape().dims4()?;
        if ml.shape().dims4()? != (batch, 1, queries, keys) {
            bail!(
                "masked-softmax: mask {:?} does not fit scores {:?}",
                ml.dims(),
                sl.dims()
            )
        }
        let mut out = vec![0f32; scores.len()];
        each_row(&mut out, keys, |row, out| {
            let mask_row = (row / (heads * queries)) * queries + row % queries;
            let input = &scores[row * keys..(row + 1) * keys];
            let mask = &mask[mask_row * keys..(mask_row + 1) * keys];
            let mut max = f32::NEG_INFINITY;
            for ((o, &s), &m) in out.iter_mut().zip(input).zip(mask) {
                *o = s * self.scale + m;
                max = max.max(*o);
            }
            let mut total = 0f32;
            for o in out.iter_mut() {
                *o = (*o - max).exp();
                total += *o;
            }
            let inverse = total.recip();
            out.iter_mut().for_each(|o| *o *= inverse);
        });
        Ok((CpuStorage::F32(out), sl.shape().clone()))
    }

    fn bwd(
        &self,
        _: &Tensor,
        _: &Tensor,
        probabilities: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_scores =
            probabilities.apply_op2_no_bwd(&grad, &SoftmaxGrad { scale: self.scale })?;
        Ok((Some(grad_scores), None))
    }
}

/// Gradient through a softmax `p` (times the scale applied before it): `scale * p * (g - sum(g p))`.
struct SoftmaxGrad {
    scale: f32,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "softmax-grad"
    }

    fn cpu_fwd(
        &self,
        ps: &CpuStorage,
        pl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (probabilities, grad) = (
            contiguous(ps, pl, self.name())?,
            contiguous(gs, gl, self.name())?,
        );
        let width = last_dim(pl, self.name())?;
        let mut out = vec![0f32; probabilities.len()];
        each_row(&mut out, width, |row, out| {
            let span = row * width..(row + 1) * width;
            let (p, g) = (&probabilities[span.clone()], &grad[span]);
            let dot = p.iter().zip(g).map(|(p, g)| p * g).sum::<f32>();
            for ((o, &p), &g) in out.iter_mut().zip(p).zip(g) {
                *o = self.scale * p * (g - dot);
            }
        });
        Ok((CpuStorage::F32(out), pl.shape().clone()))
    }
}

/// Which way [`Rope`] moves data: the forward rotation takes projections laid out `(B, T, H, D)`
/// to heads `(B, H, T, D)`; its gradient rotates back by the opposite angle and returns to
/// `(B, T, H, D)`.
#[derive(Clone, Copy)]
enum RopeDirection {
    IntoHeads,
    FromHeads,
}

/// Rotary embedding fused with the split into heads: `x * cos + rotate_half(x) * sin` with
/// `rotate_half(x) = [-x2, x1]`, reading `(B, T, H, D)` and writing `(B, H, T, D)`. `cos` and `sin`
/// are `(B, T, D/2)`: the angle of each frequency at each sequence position.
pub(crate) struct Rope {
    direction: RopeDirection,
}

impl Rope {
    pub(crate) const INTO_HEADS: Rope = Rope {
        direction: RopeDirection::IntoHeads,
    };
}

impl CustomOp3 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        cs: &CpuStorage,
        cl: &Layout,
        ss: &CpuStorage,
        sl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let name = self.name();
        let (x, cos, sin) = (
            contiguous(xs, xl, name)?,
            contiguous(cs, cl, name)?,
            contiguous(ss, sl, name)?,
        );
        let (batch, heads, len, dim) = match self.direction {
            RopeDirection::IntoHeads => {
                let (b, t, h, d) = xl.shape().dims4()?;
                (b, h, t, d)
            }
            RopeDirection::FromHeads => xl.shape().dims4()?,
        };
        let half = dim / 2;
        if dim % 2 != 0 || cl.shape().dims3()? != (batch, len, half) || sl.dims() != cl.dims() {
            bail!(
                "rope: angles {:?} do not fit input {:?}",
                cl.dims(),
                xl.dims()
            )
        }
        // The gradient of a rotation is the rotation by the opposite angle.
        let sign = match self.direction {
            RopeDirection::IntoHeads => 1.0,
            RopeDirection::FromHeads => -1.0,
        };
        let mut out = vec![0f32; x.len()];
        each_row(&mut out, dim, |row, out| {
            let (b, t, source) = match self.direction {
                RopeDirection::IntoHeads => {
                    let (b, h, t) = (row / (heads * len), (row / len) % heads, row % len);
                    (b, t, (b * len + t) * heads + h)
                }
                RopeDirection::FromHeads => {
                    let (b, t, h) = (row / (len * heads), (row / heads) % len, row % heads);
                    (b, t, (b * heads + h) * len + t)
                }
            };
            let input = &x[source * dim..(source + 1) * dim];
            let angle = (b * len + t) * half;
            let (cos, sin) = (&cos[angle..angle + half], &sin[angle..angle + half]);
            let (first, second) = input.split_at(half);
            let (out_first, out_second) = out.split_at_mut(half);
            for i in 0..half {
                let (c, s) = (cos[i], sign * sin[i]);
                out_first[i] = first[i] * c - second[i] * s;
                out_second[i] = second[i] * c + first[i] * s;
            }
        });
        let shape = match self.direction {
            RopeDirection::IntoHeads => Shape::from((batch, heads, len, dim)),
            RopeDirection::FromHeads => Shape::from((batch, len, heads, dim)),
        };
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        _: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let back = Rope {
            direction: RopeDirection::FromHeads,
        };
        let grad_x = grad.contiguous()?.apply_op3_no_bwd(cos, sin, &back)?;
        Ok((Some(grad_x), None, None))
    }
}

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
        for (m, &g) in moment.iter_mut().zip(grad) {
            let g = g * self.grad_scale;
            let g = if self.squared { g * g } else { g };
            *m = self.beta * *m + keep * g;
        }
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
        for ((p, &m), &v) in param.iter_mut().zip(first).zip(second) {
            let update = (m / self.bias1) / ((v / self.bias2).sqrt() + self.eps);
            *p = *p * keep - self.lr * update;
        }
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
    Ok(values.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
}
