//! Fused CPU kernels for the decoder's projections and element-wise stages, as candle custom ops
//! with backward passes.
//!
//! Composed from elementary tensor ops, each stage of a decoder layer (projection, RMSNorm,
//! attention, RoPE, SwiGLU) is several autograd nodes, and candle's backward pass allocates and adds
//! a gradient buffer for every node. One node per stage cuts both the forward's temporaries and that
//! backward traffic. Every op here takes contiguous f32 tensors on the CPU; `crate::ops` chooses between these and the composed versions (which other
//! devices and dtypes use) and tests that both agree in values and gradients.

use candle_core::{CpuStorage, Layout, Result, Shape, bail};
use rayon::prelude::*;

mod adamw;
mod attention;
mod few_rows;
mod grouped_attention;
mod linear;
mod mlp;
mod norm;

pub(crate) use adamw::{AdamWUpdate, MomentUpdate, sum_of_squares};
pub(crate) use attention::Rope;
pub(crate) use grouped_attention::GroupedAttention;
pub(crate) use linear::Linear;
pub(crate) use mlp::SwiGlu;
pub(crate) use norm::RmsNorm;

/// Below this many output elements a kernel runs on the calling thread: handing tiny rows to the
/// thread pool costs more than the arithmetic.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 15;

/// Every value of `storage`: for the fresh result of a product, which owns exactly its values.
fn f32_values<'a>(storage: &'a CpuStorage, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected an f32 tensor")
    };
    Ok(data)
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = f32_values(storage, op)?;
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

/// Elements per task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

/// Fills `out` row by row (`width` elements each; the last may be shorter) with
/// `body(row_index, row)`, spread over candle's thread count when there is enough work. With one
/// thread it never touches the pool, which simulated nodes share.
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

/// A new tensor of the inputs' common shape whose every element is `f` of the inputs' elements at
/// the same place.
fn map_elementwise<const N: usize>(
    op: &str,
    inputs: [(&CpuStorage, &Layout); N],
    f: impl Fn([f32; N]) -> f32 + Sync + Send,
) -> Result<(CpuStorage, Shape)> {
    let shape = inputs[0].1.shape().clone();
    let mut values: [&[f32]; N] = [&[]; N];
    for (slot, (storage, layout)) in values.iter_mut().zip(inputs) {
        if layout.shape() != &shape {
            bail!("{op}: inputs of shapes {shape:?} and {:?}", layout.dims())
        }
        *slot = contiguous(storage, layout, op)?;
    }
    let mut out = vec![0f32; shape.elem_count()];
    each_row(&mut out, CHUNK, |chunk, out| {
        let start = chunk * CHUNK;
        let parts: [&[f32]; N] = std::array::from_fn(|n| &values[n][start..start + out.len()]);
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(std::array::from_fn(|n| parts[n][i]));
        }
    });
    Ok((CpuStorage::F32(out), shape))
}

fn last_dim(layout: &Layout, op: &str) -> Result<usize> {
    match layout.dims().last() {
        Some(&width) if width > 0 => Ok(width),
        _ => bail!("{op}: expected a non-empty last dimension"),
    }
}
