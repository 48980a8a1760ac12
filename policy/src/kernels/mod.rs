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

/// `e^x` within two ulps wherever the result is a normal float, as straight-line arithmetic the
/// compiler can vectorize inside element-wise loops (libm's `expf` is a call per element). Inputs are
/// clamped to `[-87.3, 88]`: below, the result is about 1.2e-38 instead of a subnormal or zero; above,
/// `e^88` instead of infinity, which leaves every sigmoid built on it correct to f32 precision.
/// Range reduction `x = n ln2 + r` with `|r| <= ln2 / 2` and a degree-7 Taylor-type polynomial with
/// minimax coefficients (the Cephes `expf` ones).
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that `n * LN2_HIGH` is exact for the `n` that occur.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 * 2^23 rounds to the nearest integer without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HIGH - n * LN2_LOW;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    // 2^n from the exponent bits; `n` is in [-126, 127] after the clamp.
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

fn last_dim(layout: &Layout, op: &str) -> Result<usize> {
    match layout.dims().last() {
        Some(&width) if width > 0 => Ok(width),
        _ => bail!("{op}: expected a non-empty last dimension"),
    }
}

#[cfg(test)]
mod tests {
    use super::exp;

    #[test]
    fn exp_is_within_two_ulps_over_the_normal_range_and_saturates_outside() {
        let mut worst = 0f64;
        let steps = 2_000_000;
        for step in 0..=steps {
            let x = -87.0 + 175.0 * step as f32 / steps as f32;
            let exact = f64::from(x).exp();
            worst = worst.max((f64::from(exp(x)) - exact).abs() / exact);
        }
        // Two ulps of an f32 near 1 (relative spacing 2^-23).
        assert!(
            worst <= 2.0 * f64::from(f32::EPSILON),
            "relative error {worst:e}"
        );
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1e9) > 0.0 && exp(-1e9) < 1.3e-38, "{}", exp(-1e9));
        assert!(exp(1e9).is_finite() && exp(1e9) > 1e38);
        assert!(exp(f32::NAN).is_nan());
    }
}
