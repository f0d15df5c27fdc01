// Grouped-query self-attention block: Q/K/V projections in one GEMM (fused-projection.ts), RoPE, causal attention (fused or composed by the
// backend), output projection. Optional KV cache for generation.
import type { ModelConfig } from './config.js';
import { headDim } from './config.js';
import { type ComputeDtype, linear } from './linear.js';
import { projectMany } from './fused-projection.js';
import type { ParameterStore } from './parameters.js';
import * as T from '../tensor/ops.js';
import type { Tensor } from '../tensor/tensor.js';
import type { KvCache } from '../infer/kv-cache.js';

export function createAttentionParams(ps: ParameterStore, c: ModelConfig, prefix: string): void {
  const hd = headDim(c);
  const std = 0.02;
  ps.create(`${prefix}.wq.weight`, [c.heads * hd, c.dModel], { kind: 'normal', std });
  ps.create(`${prefix}.wk.weight`, [c.kvHeads * hd, c.dModel], { kind: 'normal', std });
  ps.create(`${prefix}.wv.weight`, [c.kvHeads * hd, c.dModel], { kind: 'normal', std });
  ps.create(`${prefix}.wo.weight`, [c.dModel, c.heads * hd], { kind: 'normal', std: std / Math.sqrt(2 * c.layers) });
}

/** x [B·T, d] → [B·T, d]. With a cache, x holds the new positions only. */
export function attentionBlock(
  ps: ParameterStore, c: ModelConfig, prefix: string, x: Tensor, batch: number, seq: number, dtype: ComputeDtype,
  cache?: { kv: KvCache; layer: number },
): Tensor {
  const hd = headDim(c);
  const pos = cache ? cache.kv.length : 0;
  // temporaries are disposed as soon as they are consumed: what backward needs, the tape keeps
  const free = (...ts: Tensor[]) => ts.forEach((t) => t.dispose());
  const [q0, k0, v0] = projectMany(x, [ps.get(`${prefix}.wq.weight`), ps.get(`${prefix}.wk.weight`), ps.get(`${prefix}.wv.weight`)], dtype) as [Tensor, Tensor, Tensor];
  const q1 = T.reshape(q0, [batch, seq, c.heads, hd]), k1 = T.reshape(k0, [batch, seq, c.kvHeads, hd]);
  const q = T.rope(q1, c.ropeTheta, pos);
  const k = T.rope(k1, c.ropeTheta, pos);
  const v = T.reshape(v0, [batch, seq, c.kvHeads, hd]);
  free(q0, k0, v0, q1, k1);
  let o: Tensor;
  if (cache && pos > 0) {
    cache.kv.append(cache.layer, k, v);
    o = cache.kv.attend(cache.layer, q);
  } else {
    if (cache) cache.kv.append(cache.layer, k, v);
    o = T.attention(q, k, v, { causal: true });
  }
  free(q, k, v);
  const o2 = T.reshape(o, [batch * seq, c.heads * hd]);
  const y = linear(o2, ps.get(`${prefix}.wo.weight`), dtype);
  free(o, o2);
  return y;
}
