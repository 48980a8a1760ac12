//! `x W^T` for a decoding step's few rows of `x`, streaming the weight once.
//!
//! With one row per sequence a projection does two flops per weight element and row, so for a
//! decoding step's handful of rows it is bound by reading the weight from memory (the 25M model's
//! step reads 96 MB of weights). A general matrix multiply first packs the weight into panels, an
//! extra pass over it; here each weight row is read once, into registers, and multiplied with every
//! row of `x`, which stays in the first-level cache (split along the input axis where it would not
//! fit), while the weight rows a few ahead are prefetched into the second-level cache.
//!
//! A decoding step's attention uses the same kind of kernel for its weighted sums of value rows
//! ([`weighted_sum`]).
//!
//! The tile uses AVX2 and FMA, detected at run time; other CPUs keep the general multiply. Each
//! output's summation order depends only on the shapes, never on the thread count, so a seed
//! reproduces the same tokens on any number of threads.

use rayon::prelude::*;

/// Output features per parallel task.
const TASK_OUTPUTS: usize = 64;
/// Below this many weight elements the product runs on the calling thread.
const PARALLEL_MIN_WEIGHTS: usize = 1 << 16;

/// Fills a row-major `(rows, weights.len() / input)` block with the products of every row of `x`
/// with every weight row.
type Outputs = fn(x: &[f32], weights: &[f32], rows: usize, input: usize, out: &mut [f32]);

/// Whether [`product`] runs on this CPU.
pub(crate) fn available() -> bool {
    avx2::kernel().is_some()
}

/// `x W^T` for `x` `(rows, input)` and `W` `(output, input)`, both row-major; the result is
/// `(rows, output)`, row-major. `None` on a CPU without AVX2 and FMA, where callers keep the general
/// matrix multiply.
pub(crate) fn product(x: &[f32], weight: &[f32], rows: usize, input: usize) -> Option<Vec<f32>> {
    let outputs = avx2::kernel()?;
    if input == 0 {
        return None;
    }
    if rows == 0 {
        return Some(Vec::new());
    }
    let output = weight.len() / input;
    debug_assert_eq!(x.len(), rows * input);
    // Each task computes a block of outputs for every row into its own stretch, laid out
    // `(rows, block)`, and the blocks are then copied into place row by row.
    let mut blocks = vec![0f32; output * rows];
    let task = |(index, out): (usize, &mut [f32])| {
        let first = index * TASK_OUTPUTS;
        let weights = &weight[first * input..(first + out.len() / rows) * input];
        outputs(x, weights, rows, input, out);
    };
    let chunk = TASK_OUTPUTS * rows;
    if candle_core::utils::get_num_threads() > 1 && weight.len() >= PARALLEL_MIN_WEIGHTS {
        blocks.par_chunks_mut(chunk).enumerate().for_each(task);
    } else {
        blocks.chunks_mut(chunk).enumerate().for_each(task);
    }
    if output <= TASK_OUTPUTS {
        // One block, already in row order.
        return Some(blocks);
    }
    let mut by_row = Vec::with_capacity(rows * output);
    for r in 0..rows {
        for block in blocks.chunks(chunk) {
            let width = block.len() / rows;
            by_row.extend_from_slice(&block[r * width..(r + 1) * width]);
        }
    }
    Some(by_row)
}

/// `out += sum over j of weights[j] * values[j]`, for the rows `values[j]` (each `out.len()` wide)
/// of `values`: one row of attention weights times the values. `None` on a CPU without AVX2 and
/// FMA.
pub(crate) fn weighted_sum(weights: &[f32], values: &[f32], out: &mut [f32]) -> Option<()> {
    let accumulate = avx2::weighted_sum_kernel()?;
    debug_assert_eq!(values.len(), weights.len() * out.len());
    accumulate(weights, values, out);
    Some(())
}

/// See [`weighted_sum`].
type WeightedSum = fn(weights: &[f32], values: &[f32], out: &mut [f32]);

#[cfg(not(target_arch = "x86_64"))]
mod avx2 {
    /// No vectorised tile on this architecture.
    pub(super) fn kernel() -> Option<super::Outputs> {
        None
    }

    pub(super) fn weighted_sum_kernel() -> Option<super::WeightedSum> {
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::ops::Range;

    const LANES: usize = 8;
    /// Rows of `x` per tile: eight accumulators, the weight operand and a spare in the sixteen
    /// AVX2 registers; fewer rows take the smaller tiles.
    const TILE_ROWS: usize = 8;
    /// The stretch of `x` a tile reads stays under this many floats (16 KB), half the first-level
    /// data cache of current x86 cores.
    const BLOCK_FLOATS: usize = 4096;
    /// How far ahead the weight is prefetched, and to which cache: into the second level, eight
    /// rows ahead. Prefetching into the first level one row ahead left the product taking the sum
    /// of the times to read and to multiply; this way they overlap, eight or sixteen rows ahead
    /// alike (figures in docs/performance.md).
    const PREFETCH_ROWS: usize = 8;
    const CACHE_LINE_FLOATS: usize = 16;

    fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// The tile, where this CPU runs it.
    pub(super) fn kernel() -> Option<super::Outputs> {
        available().then_some(outputs as super::Outputs)
    }

    /// The weighted sum, where this CPU runs it.
    pub(super) fn weighted_sum_kernel() -> Option<super::WeightedSum> {
        available().then_some(weighted_sum as super::WeightedSum)
    }

    /// See [`super::WeightedSum`].
    fn weighted_sum(weights: &[f32], values: &[f32], out: &mut [f32]) {
        assert!(available(), "the caller checked the CPU's features");
        assert_eq!(
            values.len(),
            weights.len() * out.len(),
            "one value row per weight"
        );
        // Safety: the CPU supports every feature `weighted_sum_avx2` enables (asserted above).
        #[allow(unsafe_code)]
        unsafe {
            weighted_sum_avx2(weights, values, out)
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn weighted_sum_avx2(weights: &[f32], values: &[f32], out: &mut [f32]) {
        let width = out.len();
        let mut start = 0;
        // Eight vectors of the output at a time stay in registers across all the rows.
        while width - start >= 8 * LANES {
            weighted_span::<8>(weights, values, out, start);
            start += 8 * LANES;
        }
        while width - start >= LANES {
            weighted_span::<1>(weights, values, out, start);
            start += LANES;
        }
        for (j, &weight) in weights.iter().enumerate() {
            for (o, &v) in out[start..]
                .iter_mut()
                .zip(&values[j * width + start..(j + 1) * width])
            {
                *o += weight * v;
            }
        }
    }

    /// [`weighted_sum_avx2`] over the `N * LANES` outputs from `start`.
    #[target_feature(enable = "avx2,fma")]
    fn weighted_span<const N: usize>(
        weights: &[f32],
        values: &[f32],
        out: &mut [f32],
        start: usize,
    ) {
        let width = out.len();
        assert!(start + N * LANES <= width && values.len() == weights.len() * width);
        let (out_span, value_rows) = (out[start..].as_mut_ptr(), values.as_ptr());
        // Safety: the span lies inside `out` and inside every value row (asserted above); the
        // loads and stores have no alignment requirement.
        #[allow(unsafe_code)]
        unsafe {
            let mut acc: [__m256; N] =
                std::array::from_fn(|i| _mm256_loadu_ps(out_span.add(i * LANES)));
            for (j, &weight) in weights.iter().enumerate() {
                let weight = _mm256_set1_ps(weight);
                let row = value_rows.add(j * width + start);
                for (i, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(weight, _mm256_loadu_ps(row.add(i * LANES)), *acc);
                }
            }
            for (i, acc) in acc.into_iter().enumerate() {
                _mm256_storeu_ps(out_span.add(i * LANES), acc);
            }
        }
    }

    /// See [`super::Outputs`].
    fn outputs(x: &[f32], weights: &[f32], rows: usize, input: usize, out: &mut [f32]) {
        assert!(available(), "the caller checked the CPU's features");
        // Safety: the CPU supports every feature `outputs_avx2` enables (asserted above).
        #[allow(unsafe_code)]
        unsafe {
            outputs_avx2(x, weights, rows, input, out)
        }
    }

    /// One output column of a row-major block: `values[r * stride + column]` for each row `r`.
    struct Column<'a> {
        values: &'a mut [f32],
        stride: usize,
        column: usize,
    }

    #[target_feature(enable = "avx2,fma")]
    fn outputs_avx2(x: &[f32], weights: &[f32], rows: usize, input: usize, out: &mut [f32]) {
        let block = (BLOCK_FLOATS / rows / LANES).max(1) * LANES;
        let stride = weights.len() / input;
        let mut start = 0;
        while start < input {
            let span = start..(start + block).min(input);
            for (column, w) in weights.chunks_exact(input).enumerate() {
                let w = &w[span.clone()];
                let mut out = Column {
                    values: out,
                    stride,
                    column,
                };
                let mut done = rows_in_tiles::<TILE_ROWS>(w, x, input, &span, &mut out, 0);
                done = rows_in_tiles::<4>(w, x, input, &span, &mut out, done);
                done = rows_in_tiles::<2>(w, x, input, &span, &mut out, done);
                rows_in_tiles::<1>(w, x, input, &span, &mut out, done);
            }
            start = span.end;
        }
    }

    /// Adds the products of the weight stretch `w` with the same stretch (`span`) of rows
    /// `from..` of `x` to `out`, `X` rows at a time while `X` remain; returns the first row not
    /// done.
    #[target_feature(enable = "avx2,fma")]
    fn rows_in_tiles<const X: usize>(
        w: &[f32],
        x: &[f32],
        input: usize,
        span: &Range<usize>,
        out: &mut Column<'_>,
        from: usize,
    ) -> usize {
        let rows = x.len() / input;
        let mut r = from;
        while r + X <= rows {
            let mut xs = [&x[..0]; X];
            for (b, row) in xs.iter_mut().enumerate() {
                let at = (r + b) * input;
                *row = &x[at + span.start..at + span.end];
            }
            // Weight row `column + PREFETCH_ROWS`'s same stretch starts that many rows further on.
            let sums = tile(w, xs, PREFETCH_ROWS * input);
            for (b, sum) in sums.into_iter().enumerate() {
                out.values[(r + b) * out.stride + out.column] += sum;
            }
            r += X;
        }
        r
    }

    /// Dot products of `w` with each of `x` (all of one length): eight-lane partial sums over the
    /// vector-wide part, added across lanes, then the remaining elements in order. Prefetches the
    /// floats `ahead` of `w`.
    #[target_feature(enable = "avx2,fma")]
    fn tile<const X: usize>(w: &[f32], x: [&[f32]; X], ahead: usize) -> [f32; X] {
        let len = w.len();
        let body = len - len % LANES;
        assert!(x.iter().all(|row| row.len() == len), "rows of one length");
        let mut acc = [_mm256_setzero_ps(); X];
        let (w_row, x_rows) = (w.as_ptr(), x.map(<[f32]>::as_ptr));
        let step = |acc: &mut [__m256; X], k: usize| {
            // Safety: every row holds `len >= k + LANES` floats (asserted above, and callers
            // pass `k < body`); the loads have no alignment requirement.
            #[allow(unsafe_code)]
            unsafe {
                let ws = _mm256_loadu_ps(w_row.add(k));
                for b in 0..X {
                    acc[b] = _mm256_fmadd_ps(ws, _mm256_loadu_ps(x_rows[b].add(k)), acc[b]);
                }
            }
        };
        // One prefetch per cache line, with no branch in the loop to decide when.
        let lines = len - len % CACHE_LINE_FLOATS;
        let mut k = 0;
        while k < lines {
            // A prefetch never faults, so its address may lie past the weight's end.
            _mm_prefetch::<_MM_HINT_T1>(w_row.wrapping_add(k + ahead).cast());
            for lane_block in (k..k + CACHE_LINE_FLOATS).step_by(LANES) {
                step(&mut acc, lane_block);
            }
            k += CACHE_LINE_FLOATS;
        }
        while k < body {
            step(&mut acc, k);
            k += LANES;
        }
        let mut sums = [0f32; X];
        for b in 0..X {
            let mut sum = across_lanes(acc[b]);
            for k in body..len {
                sum = w[k].mul_add(x[b][k], sum);
            }
            sums[b] = sum;
        }
        sums
    }

    #[target_feature(enable = "avx2,fma")]
    fn across_lanes(v: __m256) -> f32 {
        let halves = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], weight: &[f32], rows: usize, input: usize) -> Vec<f32> {
        let output = weight.len() / input;
        let mut out = vec![0f32; rows * output];
        for r in 0..rows {
            for o in 0..output {
                out[r * output + o] = (0..input)
                    .map(|k| x[r * input + k] as f64 * weight[o * input + k] as f64)
                    .sum::<f64>() as f32;
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    }

    #[test]
    fn weighted_sum_matches_the_reference() {
        // Widths off the eight-vector span and off the lane width; no rows at all.
        for (rows, width) in [(0, 8), (1, 1), (5, 7), (48, 64), (3, 75), (9, 130)] {
            let weights = values(rows, 3);
            let rows_of_values = values(rows * width, 4);
            let start = values(width, 5);
            let mut got = start.clone();
            if weighted_sum(&weights, &rows_of_values, &mut got).is_none() {
                return;
            }
            for (c, (g, s)) in got.iter().zip(&start).enumerate() {
                let want = *s as f64
                    + (0..rows)
                        .map(|j| weights[j] as f64 * rows_of_values[j * width + c] as f64)
                        .sum::<f64>();
                assert!(
                    (*g as f64 - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "{rows}x{width}, output {c}: {g} vs {want}"
                );
            }
        }
    }

    #[test]
    fn matches_the_reference_on_ragged_shapes() {
        // No rows, odd rows, outputs off the task size, inputs off the lane width and the block.
        for (rows, output, input) in [
            (0, 4, 8),
            (1, 1, 1),
            (3, 5, 7),
            (8, 130, 67),
            (16, 67, 512),
            (7, 260, 1536),
            (16, 9, 700),
        ] {
            let x = values(rows * input, 1);
            let weight = values(output * input, 2);
            let Some(got) = product(&x, &weight, rows, input) else {
                // The general matrix multiply serves CPUs without AVX2 and FMA.
                return;
            };
            let want = reference(&x, &weight, rows, input);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                    "{rows}x{output}x{input}: {g} vs {w}"
                );
            }
        }
    }
}
