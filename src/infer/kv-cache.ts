// Key/value cache for generation: per layer, keys and values of every position seen so far
// ([B, maxLen, Hkv, D]), so each new token attends to the past without recomputing it.
import type { Backend } from '../backend/contract.js';
import type { ModelConfig } from '../nn/config.js';
import { headDim } from '../nn/config.js';
import * as T from '../tensor/ops.js';
import { keep } from '../tensor/scope.js';
import { contiguousStrides } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';

export class KvCache {
  /** positions already in the cache (the next token's position) */
  length = 0;
  private readonly k: Tensor[] = [];
  private readonly v: Tensor[] = [];

  constructor(
    readonly backend: Backend,
    readonly config: ModelConfig,
    readonly batch: number,
    readonly maxLen: number,
  ) {
    const shape = [batch, maxLen, config.kvHeads, headDim(config)];
    for (let l = 0; l < config.layers; l++) {
      this.k.push(keep(T.zeros(backend, shape)));
      this.v.push(keep(T.zeros(backend, shape)));
    }
  }

  /** Writes k, v [B, S, Hkv, D] at positions length .. length+S-1 of a layer. */
  append(layer: number, k: Tensor, v: Tensor): void {
    const S = k.shape[1]!;
    if (this.length + S > this.maxLen) throw new RangeError(`KV cache full: ${this.length} + ${S} positions exceed the context of ${this.maxLen}`);
    const dst = this.k[layer]!;
    const st = contiguousStrides(dst.shape);
    const shape = [this.batch, S, k.shape[2]!, k.shape[3]!];
    for (const [src, d] of [[k, dst], [v, this.v[layer]!]] as const)
      this.backend.copyStrided(src.buf, 0, contiguousStrides(shape), d.buf, this.length * st[1]!, st, shape);
  }

  /** Attention of q [B, S, Hq, D] (positions length .. length+S-1) over the cache. */
  attend(layer: number, q: Tensor): Tensor {
    const [B, S, Hq, D] = q.shape as [number, number, number, number];
    const Hkv = this.config.kvHeads, g = Hq / Hkv, L = this.length + S;
    const grab = (t: Tensor) => {
      const s = T.slice(t, 1, 0, L);
      const e = g === 1 ? s : T.reshape(T.expand(T.reshape(s, [B, L, Hkv, 1, D]), [B, L, Hkv, g, D]), [B, L, Hq, D]);
      return T.permute(e, [0, 2, 1, 3]);
    };
    const kh = grab(this.k[layer]!), vh = grab(this.v[layer]!);
    const qh = T.permute(q, [0, 2, 1, 3]);
    let scores = T.mulScalar(T.matmul(qh, kh, { transB: true }), 1 / Math.sqrt(D));
    if (S > 1) {
      const mask = new Float32Array(S * L);
      for (let i = 0; i < S; i++) for (let j = this.length + i + 1; j < L; j++) mask[i * L + j] = -Infinity;
      scores = T.add(scores, T.tensor(this.backend, mask, [S, L]));
    }
    return T.permute(T.matmul(T.softmax(scores, -1), vh), [0, 2, 1, 3]);
  }

  /** The key and value tensors of a layer ([B, maxLen, Hkv, D]; positions 0..length-1 are filled). */
  layer(l: number): { k: Tensor; v: Tensor } {
    return { k: this.k[l]!, v: this.v[l]! };
  }

  advance(n: number): void {
    this.length += n;
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}
