// y = x Wᵀ with W stored [out, in] (PyTorch's layout). In bf16 mixed precision both operands are
// rounded to bf16 for the GEMM (the CPU's bf16 instructions) and the product accumulates in f32;
// the gradient flows back through the casts to the f32 master weights.
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';

export type ComputeDtype = 'f32' | 'bf16';

export function linear(x: Tensor, w: Tensor, dtype: ComputeDtype): Tensor {
  if (dtype === 'f32') return T.matmul(x, w, { transB: true });
  const xb = T.cast(x, 'bf16');
  const wb = T.cast(w, 'bf16');
  const y = T.matmul(xb, wb, { transB: true });
  xb.dispose();
  wb.dispose();
  return y;
}
