//! Masked grouped-query attention as one autograd node.
//!
//! Composed, attention is about ten nodes (reshapes, a transposed key view, two batched products,
//! the softmax, the transpose back to token-major order), each with a gradient buffer allocated and
//! added in candle's backward pass. Here the forward runs the two products and the softmax on
//! storage and writes the result token-major; the backward recomputes the attention weights (one
//! product, cheap next to the projections) instead of keeping them, and applies the textbook
//! gradients with detached tensor ops. A decoding step, a few query rows per key/value head, skips
//! the batched products and attends each head on its own with the few-row kernels.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail};
use rayon::prelude::*;

use super::attention::{MaskedSoftmax, SoftmaxGrad, masked_softmax_row, masked_softmax_rows};
use super::{contiguous, f32_values, few_rows};

/// Query rows per key/value head (query heads of a group times new tokens) up to which each group
/// is attended on its own by [`attend_few`]: a decoding step's.
const FEW_QUERY_ROWS: usize = 16;

/// `softmax(scale * q k^T + mask) v` for query heads `q` `(B, Hq, T, D)` over key/value heads `k`,
/// `v` `(B, Hkv, S, D)`, with the additive mask `(B, 1, T, S)`; returns `(B, T, Hq * D)`.
///
/// Query head `h` reads key head `h / (Hq / Hkv)`, as in the reference implementation, so the query
/// heads of a group are contiguous and multiply their shared keys as one `(group * T, D)` matrix.
pub(crate) struct GroupedAttention {
    pub(crate) mask: Tensor,
    pub(crate) scale: f32,
}

struct Dims {
    batch: usize,
    query_heads: usize,
    kv_heads: usize,
    queries: usize,
    keys: usize,
    head_dim: usize,
}

impl Dims {
    fn of(q: &Shape, k: &Shape, v: &Shape, mask: &Shape) -> Result<Self> {
        let (batch, query_heads, queries, head_dim) = q.dims4()?;
        let (k_batch, kv_heads, keys, k_dim) = k.dims4()?;
        if (k_batch, k_dim) != (batch, head_dim)
            || v.dims() != k.dims()
            || kv_heads == 0
            || query_heads % kv_heads != 0
            || mask.dims4()? != (batch, 1, queries, keys)
        {
            bail!(
                "grouped-attention: q {:?}, k {:?}, v {:?} and mask {:?} do not fit",
                q.dims(),
                k.dims(),
                v.dims(),
                mask.dims()
            )
        }
        Ok(Self {
            batch,
            query_heads,
            kv_heads,
            queries,
            keys,
            head_dim,
        })
    }

    fn group(&self) -> usize {
        self.query_heads / self.kv_heads
    }
}

impl GroupedAttention {
    /// `t` `(B, H, S, D)` itself where the kernel can read it in place (see [`head_stride`]),
    /// else a contiguous copy.
    pub(crate) fn readable(t: &Tensor) -> Result<Tensor> {
        if head_stride(t.layout()).is_some() {
            Ok(t.clone())
        } else {
            t.contiguous()
        }
    }
}

/// The distance between consecutive heads of keys or values `(B, H, S, D)` whose every head is a
/// contiguous `(S, D)` block and whose heads are evenly spaced across the batch: a contiguous tensor,
/// or the filled part of a key/value cache whose buffers hold more positions than `S`. `None` for
/// any other layout.
fn head_stride(layout: &Layout) -> Option<usize> {
    let (_, heads, _, dim) = layout.shape().dims4().ok()?;
    match *layout.stride() {
        [batch, head, row, 1] if row == dim && batch == head * heads => Some(head),
        _ => None,
    }
}

/// The attended heads `(B * Hkv, rows, D)` of a few query rows per group, one group at a time:
/// `q` holds each group's rows contiguously and group `g`'s keys and values start `g * stride`
/// floats into their slices. For a decoding step's few rows per group this is faster than the
/// batched `gemm` products (see docs/performance.md).
/// Callers check that the few-row kernels ([`few_rows::available`]) run on this CPU.
fn attend_few(
    q: &[f32],
    (keys, k_stride): (&[f32], usize),
    (values, v_stride): (&[f32], usize),
    mask: &[f32],
    d: &Dims,
    scale: f32,
) -> Vec<f32> {
    let rows = d.group() * d.queries;
    let (width, block) = (rows * d.head_dim, d.keys * d.head_dim);
    let mut heads = vec![0f32; d.batch * d.kv_heads * width];
    let attend = |(group, out): (usize, &mut [f32])| {
        let q = &q[group * width..(group + 1) * width];
        let keys = &keys[group * k_stride..group * k_stride + block];
        let values = &values[group * v_stride..group * v_stride + block];
        let scores = few_rows::product(q, keys, rows, d.head_dim)
            .expect("callers check that the streamed product runs here");
        let batch = group / d.kv_heads;
        let mut weights = vec![0f32; d.keys];
        // Row `r` is query head `r / queries` of the group at new token `r % queries`.
        for (r, out) in out.chunks_exact_mut(d.head_dim).enumerate() {
            let mask_row = batch * d.queries + r % d.queries;
            masked_softmax_row(
                &scores[r * d.keys..(r + 1) * d.keys],
                &mask[mask_row * d.keys..(mask_row + 1) * d.keys],
                scale,
                &mut weights,
            );
            few_rows::weighted_sum(&weights, values, out)
                .expect("callers check that the streamed product runs here");
        }
    };
    // Shared with the pool however small: a worker left idle for as long as this takes on one
    // thread falls asleep, and waking it then delays the output projection that follows (both
    // steps were measured faster this way; see docs/performance.md).
    if candle_core::utils::get_num_threads() > 1 {
        heads.par_chunks_mut(width).enumerate().for_each(attend);
    } else {
        heads.chunks_mut(width).enumerate().for_each(attend);
    }
    heads
}

impl CustomOp3 for GroupedAttention {
    fn name(&self) -> &'static str {
        "grouped-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (mask_storage, ml) = self.mask.storage_and_layout();
        let Storage::Cpu(mask_storage) = &*mask_storage else {
            bail!("grouped-attention: expected the mask on the CPU")
        };
        let mask = contiguous(mask_storage, ml, self.name())?;
        let d = Dims::of(ql.shape(), kl.shape(), vl.shape(), ml.shape())?;
        let (Some(k_stride), Some(v_stride)) = (head_stride(kl), head_stride(vl)) else {
            bail!("grouped-attention: expected k and v with contiguous, evenly spaced heads")
        };
        if !ql.is_contiguous() {
            bail!("grouped-attention: expected a contiguous q")
        }
        let groups = d.batch * d.kv_heads;
        let rows = d.group() * d.queries;
        let batched = if rows <= FEW_QUERY_ROWS && d.head_dim > 0 && few_rows::available() {
            let (keys, values) = (
                &f32_values(ks, self.name())?[kl.start_offset()..],
                &f32_values(vs, self.name())?[vl.start_offset()..],
            );
            let q = contiguous(qs, ql, self.name())?;
            let heads = attend_few(
                q,
                (keys, k_stride),
                (values, v_stride),
                mask,
                &d,
                self.scale,
            );
            CpuStorage::F32(heads)
        } else {
            // Every (key/value head, batch) pair is one matrix of the batched products; a cache's
            // heads sit `stride` floats apart however many of their rows are filled.
            let heads = |layout: &Layout, stride: usize| {
                Layout::new(
                    Shape::from((groups, d.keys, d.head_dim)),
                    vec![stride, d.head_dim, 1],
                    layout.start_offset(),
                )
            };
            let scores = qs.matmul(
                ks,
                (groups, rows, d.keys, d.head_dim),
                &Layout::contiguous_with_offset((groups, rows, d.head_dim), ql.start_offset()),
                &heads(kl, k_stride).transpose(1, 2)?,
            )?;
            let scores = f32_values(&scores, self.name())?;
            let weights =
                masked_softmax_rows(scores, mask, d.query_heads, d.queries, d.keys, self.scale);
            CpuStorage::F32(weights).matmul(
                vs,
                (groups, rows, d.head_dim, d.keys),
                &Layout::contiguous((groups, rows, d.keys)),
                &heads(vl, v_stride),
            )?
        };
        // (B, Hq, T, D) -> (B, T, Hq, D): the layout the output projection reads.
        let heads_major = f32_values(&batched, self.name())?;
        let mut out = vec![0f32; heads_major.len()];
        let span = d.head_dim;
        for (index, values) in heads_major.chunks(span).enumerate() {
            let (b, h, t) = (
                index / (d.query_heads * d.queries),
                (index / d.queries) % d.query_heads,
                index % d.queries,
            );
            let target = ((b * d.queries + t) * d.query_heads + h) * span;
            out[target..target + span].copy_from_slice(values);
        }
        let shape = Shape::from((d.batch, d.queries, d.query_heads * d.head_dim));
        Ok((CpuStorage::F32(out), shape))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = Dims::of(q.shape(), k.shape(), v.shape(), self.mask.shape())?;
        let (q, k, v) = (q.detach(), k.detach(), v.detach());
        let rows = d.group() * d.queries;
        let grouped_q = q.reshape((d.batch, d.kv_heads, rows, d.head_dim))?;
        let weights = grouped_q
            .matmul(&k.t()?)?
            .reshape((d.batch, d.query_heads, d.queries, d.keys))?
            .apply_op2_no_bwd(&self.mask, &MaskedSoftmax { scale: self.scale })?
            .reshape((d.batch, d.kv_heads, rows, d.keys))?;
        let grad = grad
            .reshape((d.batch, d.queries, d.query_heads, d.head_dim))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((d.batch, d.kv_heads, rows, d.head_dim))?;
        let grad_v = weights.t()?.matmul(&grad)?;
        let grad_weights = grad.matmul(&v.t()?)?;
        let grad_scores =
            weights.apply_op2_no_bwd(&grad_weights, &SoftmaxGrad { scale: self.scale })?;
        let grad_q =
            grad_scores
                .matmul(&k)?
                .reshape((d.batch, d.query_heads, d.queries, d.head_dim))?;
        let grad_k = grad_scores.t()?.matmul(&grouped_q)?;
        Ok((Some(grad_q), Some(grad_k), Some(grad_v)))
    }
}
