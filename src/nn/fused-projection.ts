// Several linear projections of the same input in ONE GEMM (Q/K/V, SwiGLU gate/up): the weights
// stay separate parameters (names, checkpoint format and tensor-parallel splitting unchanged) and
// are stacked at compute time, already in the compute dtype (T.linearPacked) — in bf16 the input
// is cast once instead of once per projection, and nothing beyond it is kept for backward. The
// packed output is split into contiguous parts (T.splitColumns, whose backward writes the parts'
// gradients into one buffer). Backward: one GEMM for the input gradient, one for the stacked weight
// gradient, whose row blocks are the parameters' gradients.
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import { type ComputeDtype, linear } from './linear.js';

/**
 * x [N, d], weights [n_i, d] (PyTorch layout) → [x W_1ᵀ, x W_2ᵀ, ...], each [N, n_i] in f32.
 * ZILI_UNFUSED_PROJECTIONS=1 runs one linear per weight instead (for bench/fusion-ab.sh).
 */
export function projectMany(x: Tensor, weights: readonly Tensor[], dtype: ComputeDtype): Tensor[] {
  if (!fusedProjections()) return weights.map((w) => linear(x, w, dtype));
  const packed = T.linearPacked(x, weights, dtype);
  const parts = T.splitColumns(packed, weights.map((w) => w.shape[0]!));
  packed.dispose();
  return parts;
}

/** False when ZILI_UNFUSED_PROJECTIONS=1 asks for one GEMM per weight (bench/fusion-ab.sh). */
export function fusedProjections(): boolean {
  return process.env['ZILI_UNFUSED_PROJECTIONS'] !== '1';
}
