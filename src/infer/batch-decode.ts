// Batched decoding for continuous batching: one forward for one new token of every active sequence.
// Each sequence owns a slot of a shared KV store (per layer [slots, Hkv, maxLen, D], head-major so
// a slot's keys are contiguous per head); active sequences sit in slots 0..B-1. Every part of a
// decoding step runs once over all B rows, whatever their positions: the projections, FFN/MoE and
// output head as [B, d] GEMMs (the weights are read once for the whole batch), RoPE with a
// per-row position table, and attention as one batched matmul over the first Lmax positions of the
// B slots with a per-row length mask. Only writing each row's new key and value into its slot is
// per row (two strided copies). Prefill runs the new prompts together through Transformer.forward
// with a batch cache (the path `generate` uses, right-padded) and copies each into its slot.
import type { Backend } from '../backend/contract.js';
import { headDim, isMoeLayer } from '../nn/config.js';
import { linear } from '../nn/linear.js';
import { mlp } from '../nn/mlp.js';
import { moe } from '../nn/moe.js';
import type { Transformer } from '../nn/transformer.js';
import { noGrad } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { KvCache } from './kv-cache.js';

/** Bytes of K and V (every layer, f32) for one position of one sequence. */
export function bytesPerPosition(model: Transformer): number {
  const c = model.config;
  return 2 * c.layers * c.kvHeads * headDim(c) * 4;
}

/** Feeds ids (new positions: a prompt, or one token) through the model and the cache; returns the last position's logits. */
export async function feed(model: Transformer, cache: KvCache, ids: readonly number[]): Promise<Float32Array> {
  if (ids.length === 0) throw new RangeError('feed: needs at least one token');
  const V = model.config.vocab;
  const last = noGrad(() =>
    tidy(() => {
      const t = T.tensor(model.backend, Int32Array.from(ids), [1, ids.length], 'i32');
      return T.slice(model.forward(t, { cache }).logits, 0, ids.length - 1, ids.length);
    }),
  );
  cache.advance(ids.length);
  const out = (await last.data()) as Float32Array;
  last.dispose();
  return out.length === V ? out : out.slice(0, V);
}

/**
 * Prefills several prompts in one forward: right-padded to the longest (causal attention keeps the
 * padding out of every real position, so each prompt's positions are computed as if alone). Returns
 * each prompt's last-position logits and the cache whose batch row b holds prompt b's keys and values.
 */
export async function feedBatch(model: Transformer, prompts: readonly (readonly number[])[]): Promise<{ cache: KvCache; logits: Float32Array[] }> {
  const B = prompts.length, S = Math.max(...prompts.map((p) => p.length)), V = model.config.vocab;
  if (B === 0 || prompts.some((p) => p.length === 0)) throw new RangeError('feedBatch: needs prompts of at least one token');
  const ids = new Int32Array(B * S);
  prompts.forEach((p, b) => ids.set(p, b * S));
  const cache = new KvCache(model.backend, model.config, B, S);
  const last = noGrad(() =>
    tidy(() => {
      const { logits } = model.forward(T.tensor(model.backend, ids, [B, S], 'i32'), { cache });
      return T.embedding(logits, T.tensor(model.backend, Int32Array.from(prompts, (p, b) => b * S + p.length - 1), [B], 'i32'));
    }),
  );
  cache.advance(S);
  const host = (await last.data()) as Float32Array;
  last.dispose();
  return { cache, logits: prompts.map((_, b) => host.slice(b * V, (b + 1) * V)) };
}

/** The KV store of the decoding batch: `slots` sequences of up to `maxLen` positions each. */
export class DecodeSlots {
  readonly k: Tensor[] = [];
  readonly v: Tensor[] = [];
  /** positions held by each slot */
  readonly lengths: Int32Array;
  private readonly backend: Backend;
  private readonly hkv: number;
  private readonly hd: number;

  constructor(
    readonly model: Transformer,
    readonly slots: number,
    readonly maxLen: number,
  ) {
    const c = model.config;
    this.backend = model.backend;
    this.hkv = c.kvHeads;
    this.hd = headDim(c);
    this.lengths = new Int32Array(slots);
    for (let l = 0; l < c.layers; l++) {
      this.k.push(keep(T.zeros(this.backend, [slots, this.hkv, maxLen, this.hd])));
      this.v.push(keep(T.zeros(this.backend, [slots, this.hkv, maxLen, this.hd])));
    }
  }

  /** Element offset and strides of [positions, Hkv, D] inside a slot (head-major storage). */
  private view(slot: number, from: number): { offset: number; strides: number[] } {
    return { offset: (slot * this.hkv * this.maxLen + from) * this.hd, strides: [this.hd, this.maxLen * this.hd, 1] };
  }

  /** Copies the first n positions of batch row `row` of a prefilled cache into a slot. */
  load(slot: number, cache: KvCache, row = 0, n = cache.length): void {
    if (n > this.maxLen || n > cache.length) throw new RangeError(`DecodeSlots.load: ${n} positions exceed a slot's ${this.maxLen} or the cache's ${cache.length}`);
    const src = [this.hkv * this.hd, this.hd, 1], shape = [n, this.hkv, this.hd];
    const from = row * cache.maxLen * this.hkv * this.hd;
    const dst = this.view(slot, 0);
    for (let l = 0; l < this.k.length; l++) {
      const { k, v } = cache.layer(l);
      this.backend.copyStrided(k.buf, from, src, this.k[l]!.buf, dst.offset, dst.strides, shape);
      this.backend.copyStrided(v.buf, from, src, this.v[l]!.buf, dst.offset, dst.strides, shape);
    }
    this.lengths[slot] = n;
  }

  /** Moves the sequence in slot `from` to slot `to` (to keep the active slots contiguous). */
  move(from: number, to: number): void {
    const n = this.lengths[from]!;
    const shape = [n, this.hkv, this.hd];
    const a = this.view(from, 0), b = this.view(to, 0);
    for (const t of [...this.k, ...this.v]) this.backend.copyStrided(t.buf, a.offset, a.strides, t.buf, b.offset, b.strides, shape);
    this.lengths[to] = n;
    this.lengths[from] = 0;
  }

  /** Writes row b of k and v ([B, Hkv, D]) at the next position of slot b. */
  append(layer: number, k: Tensor, v: Tensor, rows: number): void {
    const src = [this.hkv * this.hd, this.hd, 1], shape = [1, this.hkv, this.hd];
    for (let b = 0; b < rows; b++) {
      const dst = this.view(b, this.lengths[b]!);
      this.backend.copyStrided(k.buf, b * this.hkv * this.hd, src, this.k[layer]!.buf, dst.offset, dst.strides, shape);
      this.backend.copyStrided(v.buf, b * this.hkv * this.hd, src, this.v[layer]!.buf, dst.offset, dst.strides, shape);
    }
  }

  /** Keys or values of slots 0..rows-1, positions 0..len-1: [rows, Hkv, len, D]. */
  window(t: Tensor, rows: number, len: number): Tensor {
    const out = T.empty(this.backend, [rows, this.hkv, len, this.hd]);
    const st = [this.hkv * this.maxLen * this.hd, this.maxLen * this.hd, this.hd, 1];
    this.backend.copyStrided(t.buf, 0, st, out.buf, 0, [this.hkv * len * this.hd, len * this.hd, this.hd, 1], [rows, this.hkv, len, this.hd]);
    return out;
  }

  dispose(): void {
    for (const t of [...this.k, ...this.v]) t.dispose();
  }
}

/** RoPE of x [B, 1, H, D] with row b at position pos[b] (half-split pairs (i, i + D/2), as T.rope). */
function ropeRows(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  const D = x.shape[3]!, half = D / 2;
  const x1 = T.slice(x, 3, 0, half), x2 = T.slice(x, 3, half, D);
  return T.concat([T.sub(T.mul(x1, cos), T.mul(x2, sin)), T.add(T.mul(x2, cos), T.mul(x1, sin))], 3);
}

/**
 * One decoding step of the sequences in slots 0..B-1: token ids[b] is appended to slot b. Returns
 * the logits [B · vocab] of the new positions; each slot's length grows by one.
 */
export async function decodeStep(model: Transformer, slots: DecodeSlots, ids: readonly number[]): Promise<Float32Array> {
  const B = ids.length;
  if (B === 0 || B > slots.slots) throw new RangeError(`decodeStep: ${B} tokens for ${slots.slots} slots`);
  for (let b = 0; b < B; b++) if (slots.lengths[b]! >= slots.maxLen) throw new RangeError(`decodeStep: slot ${b} is full (${slots.maxLen} positions)`);
  const logits = noGrad(() => tidy(() => forwardRows(model, slots, ids)));
  for (let b = 0; b < B; b++) slots.lengths[b]!++;
  const out = (await logits.data()) as Float32Array;
  logits.dispose();
  return out;
}

function forwardRows(model: Transformer, slots: DecodeSlots, ids: readonly number[]): Tensor {
  const c = model.config, ps = model.params, dt = model.dtype, be = model.backend, B = ids.length, hd = headDim(c), half = hd / 2;
  const g = c.heads / c.kvHeads;
  // per-row RoPE tables and attention mask (a row sees its slot's positions up to the new one)
  const cosT = new Float32Array(B * half), sinT = new Float32Array(B * half);
  let L = 0;
  for (let b = 0; b < B; b++) {
    const pos = slots.lengths[b]!;
    L = Math.max(L, pos + 1);
    for (let i = 0; i < half; i++) {
      const a = pos * Math.pow(c.ropeTheta, (-2 * i) / hd);
      cosT[b * half + i] = Math.cos(a);
      sinT[b * half + i] = Math.sin(a);
    }
  }
  const mask = new Float32Array(B * L);
  for (let b = 0; b < B; b++) mask.fill(-Infinity, b * L + slots.lengths[b]! + 1, (b + 1) * L);
  const cos = T.tensor(be, cosT, [B, 1, 1, half]), sin = T.tensor(be, sinT, [B, 1, 1, half]);
  const maskT = T.tensor(be, mask, [B, 1, 1, L]);
  const norm = (h: Tensor, w: string) => T.rmsnorm(h, ps.get(w), c.normEps);
  let x = T.embedding(ps.get('tok_embeddings.weight'), T.tensor(be, Int32Array.from(ids), [B], 'i32'));
  for (let i = 0; i < c.layers; i++) {
    const p = `layers.${i}`;
    const n = norm(x, `${p}.attention_norm.weight`);
    const q = ropeRows(T.reshape(linear(n, ps.get(`${p}.attention.wq.weight`), dt), [B, 1, c.heads, hd]), cos, sin);
    const k = ropeRows(T.reshape(linear(n, ps.get(`${p}.attention.wk.weight`), dt), [B, 1, c.kvHeads, hd]), cos, sin);
    const v = linear(n, ps.get(`${p}.attention.wv.weight`), dt);
    slots.append(i, k, v, B);
    // query head h reads kv head floor(h / g): [B, 1, Hq, D] is [B, Hkv, g, D]
    const scores = T.add(T.mulScalar(T.matmul(T.reshape(q, [B, c.kvHeads, g, hd]), slots.window(slots.k[i]!, B, L), { transB: true }), 1 / Math.sqrt(hd)), maskT);
    const o = T.matmul(T.softmax(scores, -1), slots.window(slots.v[i]!, B, L));
    const h = T.add(x, linear(T.reshape(o, [B, c.heads * hd]), ps.get(`${p}.attention.wo.weight`), dt));
    const hn = norm(h, `${p}.ffn_norm.weight`);
    const f = isMoeLayer(c, i)
      ? moe(ps, c, `${p}.feed_forward`, hn, dt, model.routerBias.get(i) ?? null).y
      : mlp(ps, c, `${p}.feed_forward`, hn, dt);
    x = T.add(h, f);
  }
  const out = c.tiedEmbeddings ? ps.get('tok_embeddings.weight') : ps.get('output.weight');
  return linear(norm(x, 'norm.weight'), out, dt);
}
