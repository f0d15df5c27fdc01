// Several linear projections of the same input in ONE GEMM (Q/K/V, SwiGLU gate/up): the weights
// stay separate parameters (names, checkpoint format and tensor-parallel splitting unchanged) and
// are concatenated at compute time, already in the compute dtype — in bf16 the input is cast once
// instead of once per projection. The packed output is split into contiguous parts (splitColumns,
// whose backward writes the parts' gradients into one buffer). Backward: one GEMM for the input
// gradient, one for the stacked weight gradient, whose row blocks are the parameters' gradients.
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { type ComputeDtype, linear } from './linear.js';

/**
 * x [N, d], weights [n_i, d] (PyTorch layout) → [x W_1ᵀ, x W_2ᵀ, ...], each [N, n_i] in f32.
 * ZILI_UNFUSED_PROJECTIONS=1 runs one linear per weight instead (for bench/fusion-ab.sh).
 */
export function projectMany(x: Tensor, weights: readonly Tensor[], dtype: ComputeDtype): Tensor[] {
  if (process.env['ZILI_UNFUSED_PROJECTIONS'] === '1') return weights.map((w) => linear(x, w, dtype));
  const tmp: Tensor[] = [];
  const t = (y: Tensor) => (tmp.push(y), y);
  const xc = dtype === 'bf16' ? t(T.cast(x, 'bf16')) : x;
  const wc = dtype === 'bf16' ? weights.map((w) => t(T.cast(w, 'bf16'))) : weights;
  const w = t(T.concat(wc, 0));
  const y = t(T.matmul(xc, w, { transB: true }));
  const parts = T.splitColumns(y, weights.map((wi) => wi.shape[0]!));
  for (const z of tmp) z.dispose();
  return parts;
}
