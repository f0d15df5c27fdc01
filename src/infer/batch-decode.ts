// Batched decoding over sequences that each own a KV cache (continuous batching): one forward for
// one new token of every active sequence. The row-wise parts of a layer (norms, the Q/K/V/O
// projections, the FFN or MoE, the output head) run once over all B rows, so the weights are read
// once per step for the whole batch; RoPE at each sequence's own position and attention over each
// sequence's own cache run per row. Prefill (the prompt) goes through Transformer.forward with the
// sequence's cache (feed), the path `generate` uses too.
import { headDim, isMoeLayer } from '../nn/config.js';
import { linear } from '../nn/linear.js';
import { mlp } from '../nn/mlp.js';
import { moe } from '../nn/moe.js';
import type { Transformer } from '../nn/transformer.js';
import { noGrad } from '../tensor/autograd.js';
import * as T from '../tensor/ops.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { KvCache } from './kv-cache.js';

/** A KV cache for one sequence of at most maxLen positions. */
export function sequenceCache(model: Transformer, maxLen: number): KvCache {
  return new KvCache(model.backend, model.config, 1, maxLen);
}

/** Bytes one sequence's cache of maxLen positions holds (K and V, every layer, f32). */
export function cacheBytes(model: Transformer, maxLen: number): number {
  const c = model.config;
  return 2 * c.layers * maxLen * c.kvHeads * headDim(c) * 4;
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
 * One decoding step: token ids[b] is appended to sequence b (whose cache is caches[b]). Returns the
 * logits [B · vocab] of the new positions, row b for sequence b. Each cache advances by one.
 */
export async function decodeStep(model: Transformer, caches: readonly KvCache[], ids: readonly number[]): Promise<Float32Array> {
  const B = ids.length;
  if (B === 0 || caches.length !== B) throw new RangeError(`decodeStep: ${B} tokens for ${caches.length} caches`);
  for (const c of caches) if (c.length >= c.maxLen) throw new RangeError(`decodeStep: a sequence's cache is full (${c.maxLen} positions)`);
  const logits = noGrad(() => tidy(() => forwardRows(model, caches, ids)));
  for (const c of caches) c.advance(1);
  const out = (await logits.data()) as Float32Array;
  logits.dispose();
  return out;
}

function forwardRows(model: Transformer, caches: readonly KvCache[], ids: readonly number[]): Tensor {
  const c = model.config, ps = model.params, dt = model.dtype, B = ids.length, hd = headDim(c);
  const norm = (h: Tensor, w: string) => T.rmsnorm(h, ps.get(w), c.normEps);
  let x = T.embedding(ps.get('tok_embeddings.weight'), T.tensor(model.backend, Int32Array.from(ids), [B], 'i32'));
  for (let i = 0; i < c.layers; i++) {
    const p = `layers.${i}`;
    const n = norm(x, `${p}.attention_norm.weight`);
    const q = linear(n, ps.get(`${p}.attention.wq.weight`), dt);
    const k = linear(n, ps.get(`${p}.attention.wk.weight`), dt);
    const v = linear(n, ps.get(`${p}.attention.wv.weight`), dt);
    const rows: Tensor[] = [];
    for (let b = 0; b < B; b++) {
      const cache = caches[b]!, pos = cache.length;
      const qb = T.rope(T.reshape(T.slice(q, 0, b, b + 1), [1, 1, c.heads, hd]), c.ropeTheta, pos);
      const kb = T.rope(T.reshape(T.slice(k, 0, b, b + 1), [1, 1, c.kvHeads, hd]), c.ropeTheta, pos);
      const vb = T.reshape(T.slice(v, 0, b, b + 1), [1, 1, c.kvHeads, hd]);
      cache.append(i, kb, vb);
      rows.push(T.reshape(cache.attend(i, qb), [1, c.heads * hd]));
    }
    const o = B === 1 ? rows[0]! : T.concat(rows, 0);
    const h = T.add(x, linear(o, ps.get(`${p}.attention.wo.weight`), dt));
    const hn = norm(h, `${p}.ffn_norm.weight`);
    const f = isMoeLayer(c, i)
      ? moe(ps, c, `${p}.feed_forward`, hn, dt, model.routerBias.get(i) ?? null).y
      : mlp(ps, c, `${p}.feed_forward`, hn, dt);
    x = T.add(h, f);
  }
  const out = c.tiedEmbeddings ? ps.get('tok_embeddings.weight') : ps.get('output.weight');
  return linear(norm(x, 'norm.weight'), out, dt);
}
