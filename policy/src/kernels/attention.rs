//! The attention softmax under an additive mask, and rotary embeddings fused with the split into
//! heads.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, bail};

use super::{contiguous, each_row, last_dim};

/// `softmax(scale * scores + mask)` over the last dimension, for attention scores `(B, H, T, S)` and
/// an additive mask `(B, 1, T, S)` shared by every head. Forward only: [`super::GroupedAttention`]
/// recomputes the attention weights with it in its backward pass.
pub(super) struct MaskedSoftmax {
    pub(super) scale: f32,
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
        let out = masked_softmax_rows(scores, mask, heads, queries, keys, self.scale);
        Ok((CpuStorage::F32(out), sl.shape().clone()))
    }
}

/// `softmax(scale * scores + mask)` of scores `(B, heads, queries, keys)` under a mask
/// `(B, 1, queries, keys)`, both contiguous.
pub(super) fn masked_softmax_rows(
    scores: &[f32],
    mask: &[f32],
    heads: usize,
    queries: usize,
    keys: usize,
    scale: f32,
) -> Vec<f32> {
    let mut out = vec![0f32; scores.len()];
    each_row(&mut out, keys, |row, out| {
        let mask_row = (row / (heads * queries)) * queries + row % queries;
        let input = &scores[row * keys..(row + 1) * keys];
        masked_softmax_row(
            input,
            &mask[mask_row * keys..(mask_row + 1) * keys],
            scale,
            out,
        );
    });
    out
}

/// `softmax(scale * scores + mask)` of one row into `out`, all three of one length.
pub(super) fn masked_softmax_row(scores: &[f32], mask: &[f32], scale: f32, out: &mut [f32]) {
    let mut max = f32::NEG_INFINITY;
    for ((o, &s), &m) in out.iter_mut().zip(scores).zip(mask) {
        *o = s * scale + m;
        max = max.max(*o);
    }
    let mut total = 0f32;
    for o in out.iter_mut() {
        *o = (*o - max).exp();
        total += *o;
    }
    let inverse = total.recip();
    out.iter_mut().for_each(|o| *o *= inverse);
}

/// Gradient through a softmax `p` (times the scale applied before it): `scale * p * (g - sum(g p))`.
pub(super) struct SoftmaxGrad {
    pub(super) scale: f32,
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
