// Sampling (greedy, temperature, top-k, top-p, seeded), greedy KV-cache generation against an arg max
// over a full forward of the whole sequence, the sliding window past the context, and streaming
// UTF-8 decoding of characters split across tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/registry.js';
import { generate, Utf8Stream } from '../src/infer/generate.js';
import { argmax, candidates, sampleToken } from '../src/infer/sample.js';
import type { ModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { noGrad } from '../src/tensor/autograd.js';
import * as T from '../src/tensor/ops.js';
import { tidy } from '../src/tensor/scope.js';
import { Rng } from '../src/train/rng-state.js';

test('greedy is the arg max (ties to the lowest id); top-k 1 and tiny top-p are greedy too', () => {
  const logits = [0.5, 2, -1, 2, 1.5];
  assert.equal(argmax(logits), 1);
  const rng = new Rng(7);
  assert.equal(sampleToken(logits, { temperature: 0 }, rng), 1);
  for (let i = 0; i < 20; i++) {
    assert.equal(sampleToken(logits, { temperature: 1, topK: 1 }, rng), 1);
    assert.equal(sampleToken(logits, { temperature: 1, topP: 0.01 }, rng), 1);
  }
});

test('candidates: temperature softmax, top-k and top-p renormalised', () => {
  const logits = [Math.log(0.1), Math.log(0.2), Math.log(0.3), Math.log(0.4)];
  const all = candidates(logits, { temperature: 1 });
  assert.deepEqual(all.ids, [3, 2, 1, 0]);
  all.probs.forEach((p, i) => assert.ok(Math.abs(p - [0.4, 0.3, 0.2, 0.1][i]!) < 1e-12));
  const k2 = candidates(logits, { temperature: 1, topK: 2 });
  assert.deepEqual(k2.ids, [3, 2]);
  assert.ok(Math.abs(k2.probs[0]! - 4 / 7) < 1e-12);
  const p = candidates(logits, { temperature: 1, topP: 0.65 });
  assert.deepEqual(p.ids, [3, 2], 'the smallest set reaching 0.65');
  const hot = candidates(logits, { temperature: 2 });
  assert.ok(hot.probs[0]! < 0.4 && hot.probs[3]! > 0.1, 'higher temperature flattens');
});

test('sampling follows the distribution and is reproducible for a seed', () => {
  const logits = [Math.log(0.1), Math.log(0.2), Math.log(0.3), Math.log(0.4)];
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 4000 }, () => sampleToken(logits, { temperature: 1 }, rng));
  };
  const a = draw(3);
  assert.deepEqual(draw(3), a);
  assert.notDeepEqual(draw(4), a);
  const freq = [0, 1, 2, 3].map((t) => a.filter((x) => x === t).length / a.length);
  freq.forEach((f, i) => assert.ok(Math.abs(f - [0.1, 0.2, 0.3, 0.4][i]!) < 0.03, `token ${i}: ${f}`));
});

const micro: ModelConfig = { ...preset('tiny'), name: 'micro', layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnHidden: 48, vocab: 50, seqLen: 12 };

function fullArgmax(m: Transformer, ids: number[]): number {
  return noGrad(() =>
    tidy(() => {
      const logits = m.forward(T.tensor(m.backend, Int32Array.from(ids), [1, ids.length], 'i32')).logits.dataSync() as Float32Array;
      const V = m.config.vocab;
      return argmax(logits.subarray((ids.length - 1) * V));
    }),
  );
}

test('greedy generation with the KV cache picks the arg max of a full forward at every step', async () => {
  const be = await getBackend('cpu');
  const m = new Transformer(micro, be, { seed: 11 });
  for (const p of m.params.tensors.values()) be.write(p.buf, Float32Array.from(p.dataSync() as Float32Array, (x) => x * 20)); // sharper logits
  const prompt = [3, 17, 42];
  const streamed: number[] = [];
  const out = await generate(m, prompt, { temperature: 0, maxTokens: 8, onToken: (id) => streamed.push(id) });
  assert.equal(out.length, 8);
  assert.deepEqual(streamed, out);
  const seq = [...prompt];
  for (const id of out) {
    assert.equal(id, fullArgmax(m, seq), `after ${seq.length} tokens`);
    seq.push(id);
  }
  // past the context (12): the cache is rebuilt from the last half of the sequence
  const long = await generate(m, prompt, { temperature: 0, maxTokens: 20 });
  assert.equal(long.length, 20);
  assert.deepEqual(long.slice(0, 8), out);
  assert.deepEqual(await generate(m, prompt, { temperature: 0.9, topK: 5, maxTokens: 6, seed: 1 }), await generate(m, prompt, { temperature: 0.9, topK: 5, maxTokens: 6, seed: 1 }));
  const stop = await generate(m, prompt, { temperature: 0, maxTokens: 8, stopId: out[2] });
  assert.deepEqual(stop, out.slice(0, 2), 'stops before the stop token');
  m.dispose();
});

test('Utf8Stream holds back a character split across tokens', () => {
  const bytes = new TextEncoder().encode('a中é');
  const s = new Utf8Stream();
  const parts = [s.push(bytes.subarray(0, 2)), s.push(bytes.subarray(2, 3)), s.push(bytes.subarray(3, 5)), s.push(bytes.subarray(5)), s.end()];
  assert.deepEqual(parts, ['a', '', '中', 'é', '']);
});
