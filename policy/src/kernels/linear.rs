//! A projection `x W^T` as one autograd node.
//!
//! Written as `x.reshape(2-D).matmul(W.t()).reshape(..)`, a projection is four nodes, and candle's
//! backward allocates and adds a gradient buffer for each; the weight's gradient also arrives
//! transposed, so accumulating it walks memory with a stride. Here the backward computes
//! `dW = g^T x` directly in the weight's own layout and `dx = g W`, with one node in the graph.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor, bail};

use super::{contiguous, f32_values, few_rows, last_dim};

/// Up to this many rows (a decoding step: one per sequence) a product is bound by reading the
/// weight. On AVX2 CPUs `few_rows` streams it once, which samples faster than the path below (see
/// docs/performance.md). Elsewhere the forward computes `W x^T` with candle's matrix multiply and
/// transposes the small result back: `gemm` is much faster on a product with few right-hand columns
/// than on one with few left-hand rows. Larger batches, training and prefill keep `x W^T`.
const FEW_ROWS: usize = 16;

/// `x W^T` for `x` `(..., in)` and `W` `(out, in)`.
pub(crate) struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let input = last_dim(xl, self.name())?;
        let (output, weight_input) = wl.shape().dims2()?;
        if weight_input != input {
            bail!("linear: weight {:?} for inputs of width {input}", wl.dims())
        }
        if !xl.is_contiguous() {
            bail!("linear: expected a contiguous input")
        }
        let rows = xl.shape().elem_count() / input;
        let rows_layout = Layout::contiguous_with_offset((rows, input), xl.start_offset());
        let product = if rows <= FEW_ROWS {
            let x = contiguous(xs, xl, self.name())?;
            let values = match few_rows::product(x, contiguous(ws, wl, self.name())?, rows, input) {
                Some(values) => values,
                None => {
                    let transposed = ws.matmul(
                        xs,
                        (1, output, rows, input),
                        wl,
                        &rows_layout.transpose(0, 1)?,
                    )?;
                    output_major_to_rows(f32_values(&transposed, self.name())?, rows)
                }
            };
            CpuStorage::F32(values)
        } else {
            xs.matmul(
                ws,
                (1, rows, output, input),
                &rows_layout,
                &wl.transpose(0, 1)?,
            )?
        };
        let mut dims = xl.dims().to_vec();
        *dims.last_mut().expect("inputs have a feature axis") = output;
        Ok((product, Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (output, input) = weight.dims2()?;
        let rows = x.elem_count() / input;
        let grad = grad.contiguous()?.reshape((rows, output))?;
        // Detached: the gradient computation itself needs no graph.
        let (x, weight) = (x.detach(), weight.detach());
        let grad_x = grad.matmul(&weight)?.reshape(x.dims())?;
        let grad_weight = grad.t()?.matmul(&x.reshape((rows, input))?)?;
        Ok((Some(grad_x), Some(grad_weight)))
    }
}

/// A product laid out `(output, rows)` as `(rows, output)`.
fn output_major_to_rows(by_output: &[f32], rows: usize) -> Vec<f32> {
    if rows == 0 {
        return Vec::new();
    }
    let output = by_output.len() / rows;
    let mut by_row = vec![0f32; rows * output];
    for (o, column) in by_output.chunks_exact(rows).enumerate() {
        for (r, &value) in column.iter().enumerate() {
            by_row[r * output + o] = value;
        }
    }
    by_row
}
