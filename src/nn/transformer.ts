// The decoder-only transformer of the LLaMA family: token embedding, `layers` pre-norm blocks of
// grouped-query attention with RoPE and a SwiGLU (or GELU) FFN — dense or Mixture-of-Experts —
// final RMSNorm and the output projection (tied to the embedding or not). Written once; backends
// and parallel layouts are applied to it, not written into it.
import type { Backend } from '../backend/contract.js';
import { type ModelConfig, isMoeLayer, validateModelConfig } from './config.js';
import { attentionBlock, createAttentionParams } from './attention.js';
import { type ComputeDtype, linear } from './linear.js';
import { createMlpParams, mlp } from './mlp.js';
import { createMoeParams, moe, updateBias } from './moe.js';
import { ParameterStore } from './parameters.js';
import * as T from '../tensor/ops.js';
import { recompute } from '../tensor/recompute.js';
import type { Tensor } from '../tensor/tensor.js';
import { ShapeError } from '../tensor/errors.js';
import type { KvCache } from '../infer/kv-cache.js';

export interface ModelOptions {
  seed?: number;
  /** GEMM precision: f32, or bf16 inputs with f32 accumulation and f32 master weights */
  dtype?: ComputeDtype;
  /** activation recomputation: 'none', or 'full' (each dense block re-run in backward; MoE FFNs are kept) */
  recompute?: 'none' | 'full';
}

export interface ForwardResult {
  /** [B·T, vocab], f32 */
  logits: Tensor;
  /** sum of the MoE auxiliary losses (null for dense models or bias balancing) */
  aux: Tensor | null;
}

/**
 * Called around each decoder block of a forward: 'before' with the block's input, 'after' with its
 * output; returns the tensor the forward goes on with (x itself, or a new handle on it, e.g. one
 * carrying a pre-backward hook). ZeRO-3 gathers a block's weights here just before it runs.
 */
export type BlockHook = (layer: number, phase: 'before' | 'after', x: Tensor) => Tensor;

export class Transformer {
  readonly params: ParameterStore;
  readonly dtype: ComputeDtype;
  readonly recomputeMode: 'none' | 'full';
  /** DeepSeek-style routing bias per MoE layer (not a trained parameter; saved in checkpoints) */
  readonly routerBias = new Map<number, Float64Array>();
  /** tokens per expert of each MoE layer in the last forward */
  readonly lastLoads = new Map<number, number[]>();
  /** see BlockHook; null: none */
  blockHook: BlockHook | null = null;

  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
    opts: ModelOptions = {},
  ) {
    validateModelConfig(config);
    this.dtype = opts.dtype ?? 'f32';
    this.recomputeMode = opts.recompute ?? 'none';
    const ps = (this.params = new ParameterStore(backend, opts.seed ?? 0));
    const c = config;
    ps.create('tok_embeddings.weight', [c.vocab, c.dModel], { kind: 'normal', std: 0.02 });
    for (let i = 0; i < c.layers; i++) {
      ps.create(`layers.${i}.attention_norm.weight`, [c.dModel], { kind: 'ones' }, { decay: false });
      createAttentionParams(ps, c, `layers.${i}.attention`);
      ps.create(`layers.${i}.ffn_norm.weight`, [c.dModel], { kind: 'ones' }, { decay: false });
      if (isMoeLayer(c, i)) {
        createMoeParams(ps, c, `layers.${i}.feed_forward`);
        if (c.moe!.balance === 'bias') this.routerBias.set(i, new Float64Array(c.moe!.experts));
      } else createMlpParams(ps, c, `layers.${i}.feed_forward`, c.ffnHidden);
    }
    ps.create('norm.weight', [c.dModel], { kind: 'ones' }, { decay: false });
    if (!c.tiedEmbeddings) ps.create('output.weight', [c.vocab, c.dModel], { kind: 'normal', std: 0.02 });
  }

  /** ids: i32 [B, T] → logits [B·T, V]. With a KV cache, ids are the new positions only. */
  forward(ids: Tensor, opts: { cache?: KvCache } = {}): ForwardResult {
    const [B, S] = ids.shape as [number, number];
    const { x, aux } = this.forwardLayers(this.embed(ids, opts), 0, this.config.layers, B, S, opts);
    return { logits: this.head(x), aux };
  }

  /** The token embedding (a pipeline's first chunk): ids i32 [B, T] → hidden [B·T, dModel]. */
  embed(ids: Tensor, opts: { cache?: KvCache } = {}): Tensor {
    const c = this.config;
    if (ids.rank !== 2 || ids.dtype !== 'i32') throw new ShapeError(`model.forward: ids must be i32 [batch, seq], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    const [B, S] = ids.shape as [number, number];
    if (!opts.cache && S > c.seqLen) throw new ShapeError(`model.forward: sequence of ${S} tokens exceeds the model's context of ${c.seqLen}`);
    const emb = T.embedding(this.params.get('tok_embeddings.weight'), ids);
    const x = T.reshape(emb, [B * S, c.dModel]);
    emb.dispose();
    return x;
  }

  /**
   * Decoder layers [lo, hi) over hidden states x [B·S, dModel] (a pipeline chunk's layers); takes
   * ownership of x (disposed once consumed, or returned when the range is empty).
   */
  forwardLayers(x: Tensor, lo: number, hi: number, B: number, S: number, opts: { cache?: KvCache } = {}): { x: Tensor; aux: Tensor | null } {
    const c = this.config, ps = this.params;
    let aux: Tensor | null = null;
    const norm = (h: Tensor, w: string) => T.rmsnorm(h, ps.get(w), c.normEps);
    const hooked = (i: number, phase: 'before' | 'after', t: Tensor) => {
      const y = this.blockHook!(i, phase, t);
      if (y !== t) t.dispose();
      return y;
    };
    for (let i = lo; i < hi; i++) {
      if (this.blockHook) x = hooked(i, 'before', x);
      const p = `layers.${i}`;
      const cache = opts.cache ? { kv: opts.cache, layer: i } : undefined;
      const attnPart = (h: Tensor) => this.attentionResidual(h, i, B, S, cache);
      const useRecompute = this.recomputeMode === 'full' && !cache;
      let next: Tensor;
      if (isMoeLayer(c, i)) {
        const h = useRecompute ? recompute(attnPart, x) : attnPart(x);
        const n = norm(h, `${p}.ffn_norm.weight`);
        const r = moe(ps, c, `${p}.feed_forward`, n, this.dtype, this.routerBias.get(i) ?? null);
        this.lastLoads.set(i, r.loads);
        if (r.aux) aux = aux ? T.add(aux, r.aux) : r.aux;
        next = T.add(h, r.y);
        for (const t of [h, n, r.y]) t.dispose();
      } else {
        const block = (h0: Tensor) => {
          const h = attnPart(h0);
          const n = norm(h, `${p}.ffn_norm.weight`);
          const f = mlp(ps, c, `${p}.feed_forward`, n, this.dtype);
          const out = T.add(h, f);
          for (const t of [h, n, f]) t.dispose();
          return out;
        };
        next = useRecompute ? recompute(block, x) : block(x);
      }
      x.dispose();
      x = next;
      if (this.blockHook) x = hooked(i, 'after', x);
    }
    return { x, aux };
  }

  /** Layer i's attention sub-block with its residual: h + attention(norm(h)) (h is not disposed). */
  attentionResidual(h: Tensor, i: number, B: number, S: number, cache?: { kv: KvCache; layer: number }): Tensor {
    const p = `layers.${i}`;
    // each temporary is disposed once consumed; what backward needs, the tape keeps
    const n = T.rmsnorm(h, this.params.get(`${p}.attention_norm.weight`), this.config.normEps);
    const a = attentionBlock(this.params, this.config, `${p}.attention`, n, B, S, this.dtype, cache);
    const out = T.add(h, a);
    n.dispose();
    a.dispose();
    return out;
  }

  /** The final norm and output layer (a pipeline's last chunk): hidden [B·T, dModel] → logits [B·T, V]; takes ownership of x. */
  head(x: Tensor): Tensor {
    const c = this.config, ps = this.params;
    const out = c.tiedEmbeddings ? ps.get('tok_embeddings.weight') : ps.get('output.weight');
    const xn = T.rmsnorm(x, ps.get('norm.weight'), c.normEps);
    const logits = linear(xn, out, this.dtype);
    x.dispose();
    xn.dispose();
    return logits;
  }

  /** Mean next-token cross-entropy (targets i32 [B·T], < 0 ignored) plus the balancing loss. */
  loss(ids: Tensor, targets: Tensor): { loss: Tensor; ce: Tensor; aux: Tensor | null } {
    const { logits, aux } = this.forward(ids);
    const flat = T.reshape(targets, [targets.numel]);
    const ce = T.crossEntropy(logits, flat);
    logits.dispose();
    flat.dispose();
    return { loss: aux ? T.add(ce, aux) : ce, ce, aux };
  }

  /** After an optimizer step: move the routing biases toward equal expert loads (bias balancing). */
  updateRouterBias(): void {
    const m = this.config.moe;
    if (!m || m.balance !== 'bias') return;
    for (const [layer, bias] of this.routerBias) {
      const loads = this.lastLoads.get(layer);
      if (loads) updateBias(bias, loads, m.biasUpdateRate);
    }
  }

  dispose(): void {
    this.params.dispose();
  }
}
