//! The decoder's stages (projections, RMSNorm, attention, RoPE, SwiGLU): one fused kernel each
//! (`crate::kernels`) for f32 tensors on the CPU, and the same arithmetic composed from elementary
//! candle ops, which carry gradients on every device, elsewhere. Every function here records its
//! backward pass. Public so the two can be compared (`cargo bench -p swarm-policy`) and reused by
//! other decoders built on candle.

use anyhow::Result;
use candle_core::{D, DType, Tensor};

use crate::kernels::{GroupedAttention, Linear, RmsNorm, Rope, SwiGlu};

/// Whether the fused CPU kernels can run on `tensor`.
pub(crate) fn fusable(tensor: &Tensor) -> bool {
    tensor.device().is_cpu() && tensor.dtype() == DType::F32
}

/// The projection `x W^T` of `x` `(..., in)` by a weight `(out, in)`.
pub fn linear(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if fusable(x) {
        return Ok(x.contiguous()?.apply_op2(weight, Linear)?);
    }
    composed::linear(x, weight)
}

/// RMSNorm over the last dimension.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if fusable(x) {
        let eps = eps as f32;
        return Ok(x.contiguous()?.apply_op2(weight, RmsNorm { eps })?);
    }
    composed::rms_norm(x, weight, eps)
}

/// Masked grouped-query attention of query heads `q` `(B, Hq, T, D)` over key/value heads `k`, `v`
/// `(B, Hkv, S, D)` with an additive `mask` `(B, 1, T, S)`; returns `(B, T, Hq * D)`, token-major
/// for the output projection.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, scale: f64) -> Result<Tensor> {
    if fusable(q) {
        let op = GroupedAttention {
            mask: mask.contiguous()?,
            scale: scale as f32,
        };
        return Ok(q.contiguous()?.apply_op3(
            &GroupedAttention::readable(k)?,
            &GroupedAttention::readable(v)?,
            op,
        )?);
    }
    composed::attention(q, k, v, mask, scale)
}

/// Rotary embedding of projections laid out `(B, T, H, D)`, returned as heads `(B, H, T, D)`; `cos`
/// and `sin` are `(B, T, D/2)`.
pub fn rope_into_heads(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if fusable(x) {
        return Ok(x.contiguous()?.apply_op3(cos, sin, Rope::INTO_HEADS)?);
    }
    composed::rope_into_heads(x, cos, sin)
}

/// The SwiGLU gate `silu(gate) * up`.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fusable(gate) {
        return Ok(gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)?);
    }
    composed::swiglu(gate, up)
}

/// Log-softmax over the last dimension. The max is subtracted for stability and detached: the result
/// does not depend on the shift, so no gradient is lost.
pub(crate) fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    Ok(shifted.broadcast_sub(&log_sum)?)
}

/// The stages from elementary ops (candle-nn's fused versions record no backward pass), with the
/// signatures and results of the dispatching functions above; on the CPU they are the reference the
/// fused kernels are tested against.
pub mod composed {
    use super::*;

    pub fn linear(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
        // One 2-D product over all rows: `broadcast_matmul` would materialise a copy of the weight
        // for every batch row.
        let mut dims = x.dims().to_vec();
        let input = dims.pop().expect("inputs have a feature axis");
        let rows: usize = dims.iter().product();
        let y = x.reshape((rows, input))?.matmul(&weight.t()?)?;
        dims.push(y.dim(1)?);
        Ok(y.reshape(dims)?)
    }

    pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
        let inv_rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?.recip()?;
        Ok(x.broadcast_mul(&inv_rms)?.broadcast_mul(weight)?)
    }

    /// Query head `h` reads key head `h / (Hq / Hkv)` (as in the reference implementation), so the
    /// `Hq / Hkv` query heads of a group are contiguous and can be stacked along the query axis,
    /// `(B, Hkv, group * T, D)`, and multiplied with their shared keys in one matrix product,
    /// without copying keys and values per query head.
    pub fn attention(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: &Tensor,
        scale: f64,
    ) -> Result<Tensor> {
        let (batch, hq, len, hd) = q.dims4()?;
        let (_, hkv, keys, _) = k.dims4()?;
        let group = hq / hkv;
        let q = q.reshape((batch, hkv, group * len, hd))?;
        let scores = (q.matmul(&k.t()?)? * scale)?
            .reshape((batch, hkv, group, len, keys))?
            .broadcast_add(&mask.unsqueeze(2)?)?;
        let weights = softmax_last(&scores)?.reshape((batch, hkv, group * len, keys))?;
        let attended = weights.matmul(v)?.reshape((batch, hq, len, hd))?;
        Ok(attended.transpose(1, 2)?.reshape((batch, len, hq * hd))?)
    }

    /// Softmax over the last dimension, with the same detached shift as [`log_softmax_last`].
    fn softmax_last(x: &Tensor) -> Result<Tensor> {
        let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
        let exp = shifted.exp()?;
        Ok(exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?)
    }

    fn rotate_half(x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let first = x.narrow(D::Minus1, 0, half)?;
        let second = x.narrow(D::Minus1, half, half)?;
        Ok(Tensor::cat(&[&second.neg()?, &first], D::Minus1)?)
    }

    pub fn rope_into_heads(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let heads = x.transpose(1, 2)?.contiguous()?;
        let full = |half: &Tensor| -> Result<Tensor> {
            Ok(Tensor::cat(&[half, half], D::Minus1)?.unsqueeze(1)?)
        };
        let (cos, sin) = (full(cos)?, full(sin)?);
        Ok((heads.broadcast_mul(&cos)? + rotate_half(&heads)?.broadcast_mul(&sin)?)?)
    }

    pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        Ok((gate.silu()? * up)?)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::model::MASKED;

    fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> Var {
        let count = shape.iter().product();
        let values: Vec<f32> = (0..count).map(|_| rng.random_range(-2.0..2.0)).collect();
        Var::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    fn close(name: &str, fused: &Tensor, composed: &Tensor, tolerance: f32) {
        assert_eq!(fused.dims(), composed.dims(), "{name}: shapes");
        let a: Vec<f32> = fused.flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = composed.flatten_all().unwrap().to_vec1().unwrap();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
            .fold(0f32, f32::max);
        assert!(worst <= tolerance, "{name}: differs by {worst}");
        assert!(a.iter().any(|v| *v != 0.0), "{name}: all zero");
    }

    /// Runs the `fused` and `composed` versions of a stage on `inputs`, and compares outputs and the
    /// gradients of a random projection of the output (so every output element weighs differently)
    /// to every input.
    fn agree(
        name: &str,
        inputs: &[Var],
        fused: impl Fn(&[&Tensor]) -> Result<Tensor>,
        composed: impl Fn(&[&Tensor]) -> Result<Tensor>,
        rng: &mut ChaCha8Rng,
    ) {
        let tensors: Vec<&Tensor> = inputs.iter().map(|v| v.as_tensor()).collect();
        let (fused, composed) = (fused(&tensors).unwrap(), composed(&tensors).unwrap());
        close(name, &fused, &composed, 1e-5);
        let projection = random(fused.dims(), rng);
        let loss = |out: &Tensor| (out * projection.as_tensor()).unwrap().sum_all().unwrap();
        let (fused_grads, composed_grads) = (
            loss(&fused).backward().unwrap(),
            loss(&composed).backward().unwrap(),
        );
        for (index, input) in inputs.iter().enumerate() {
            close(
                &format!("{name}: gradient of input {index}"),
                fused_grads.get(input.as_tensor()).expect("fused gradient"),
                composed_grads
                    .get(input.as_tensor())
                    .expect("composed gradient"),
                1e-4,
            );
        }
    }

    #[test]
    fn fused_stages_match_composed_values_and_gradients() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // A decoding step's few rows and a training batch's many take different paths.
        for (rows, name) in [(3, "linear, few rows"), (12, "linear, many rows")] {
            let (x, weight) = (random(&[rows, 5, 16], &mut rng), random(&[9, 16], &mut rng));
            agree(
                name,
                &[x, weight],
                |t| linear(t[0], t[1]),
                |t| composed::linear(t[0], t[1]),
                &mut rng,
            );
        }

        let (x, weight) = (random(&[3, 5, 16], &mut rng), random(&[16], &mut rng));
        agree(
            "rms-norm",
            &[x, weight],
            |t| rms_norm(t[0], t[1], 1e-6),
            |t| composed::rms_norm(t[0], t[1], 1e-6),
            &mut rng,
        );

        // Two sequences, the second left-padded by two positions, under a causal mask. Six tokens
        // give each key/value head 12 query rows, which it attends on its own; ten give 20, which
        // go through the batched products.
        for tokens in [6, 10] {
            let valid = vec![
                vec![true; tokens],
                [vec![false; 2], vec![true; tokens - 2]].concat(),
            ];
            let mask = crate::model::causal_mask(&valid, tokens, &Device::Cpu).unwrap();
            assert!(
                mask.flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
                    .contains(&MASKED)
            );
            // Four query heads over two key/value heads.
            let (q, k, v) = (
                random(&[2, 4, tokens, 8], &mut rng),
                random(&[2, 2, tokens, 8], &mut rng),
                random(&[2, 2, tokens, 8], &mut rng),
            );
            agree(
                &format!("grouped attention, {tokens} tokens"),
                &[q, k, v],
                |t| attention(t[0], t[1], t[2], &mask, 0.35),
                |t| composed::attention(t[0], t[1], t[2], &mask, 0.35),
                &mut rng,
            );
        }

        let projections = random(&[2, 5, 3, 8], &mut rng);
        let angles = random(&[2, 5, 4], &mut rng);
        let angles = angles.as_tensor().detach();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        agree(
            "rope",
            &[projections],
            |t| rope_into_heads(t[0], &cos, &sin),
            |t| composed::rope_into_heads(t[0], &cos, &sin),
            &mut rng,
        );

        let (gate, up) = (random(&[4, 7, 12], &mut rng), random(&[4, 7, 12], &mut rng));
        agree(
            "swiglu",
            &[gate, up],
            |t| swiglu(t[0], t[1]),
            |t| composed::swiglu(t[0], t[1]),
            &mut rng,
        );
    }

    #[test]
    fn attention_reads_keys_and_values_in_place_from_a_larger_cache_buffer() {
        // The filled part of a key/value cache: 5 of 9 positions, heads 9 rows apart.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let q = random(&[2, 4, 1, 8], &mut rng);
        let (k_buffer, v_buffer) = (
            random(&[2, 2, 9, 8], &mut rng),
            random(&[2, 2, 9, 8], &mut rng),
        );
        let filled = |buffer: &Var| buffer.as_tensor().narrow(2, 0, 5).unwrap();
        let (k, v) = (filled(&k_buffer), filled(&v_buffer));
        assert!(!k.is_contiguous());
        let valid = vec![vec![true; 5], [vec![false; 1], vec![true; 4]].concat()];
        let mask = crate::model::causal_mask(&valid, 1, &Device::Cpu).unwrap();
        let copied = |t: &Tensor| t.contiguous().unwrap();
        let expected =
            composed::attention(q.as_tensor(), &copied(&k), &copied(&v), &mask, 0.35).unwrap();
        let in_place = attention(q.as_tensor(), &k, &v, &mask, 0.35).unwrap();
        close("fused, in place", &in_place, &expected, 1e-5);
        let composed_in_place = composed::attention(q.as_tensor(), &k, &v, &mask, 0.35).unwrap();
        close("composed, in place", &composed_in_place, &expected, 1e-5);
    }

    #[test]
    fn fused_rms_norm_over_many_rows_matches_composed() {
        // Large enough for the kernels to hand rows to the thread pool on a machine with more than
        // one core; results must not depend on how rows are split.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = random(&[64, 32, 64], &mut rng);
        let weight = random(&[64], &mut rng);
        let fused = rms_norm(x.as_tensor(), weight.as_tensor(), 1e-5).unwrap();
        let composed = composed::rms_norm(x.as_tensor(), weight.as_tensor(), 1e-5).unwrap();
        close("rms-norm, large", &fused, &composed, 1e-5);
    }
}
