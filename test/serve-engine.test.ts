// Continuous batching: one batched decoding step over sequences at different positions gives each
// the logits a lone forward through its own cache gives (dense and MoE with routing bias), also
// after slots are moved; the engine's greedy outputs for concurrent requests equal `generate` run
// alone; requests join a running batch; a cancelled sequence frees its slot; the queue bound and
// the KV budget hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/registry.js';
import { bytesPerPosition, DecodeSlots, decodeStep, feed, feedBatch } from '../src/infer/batch-decode.js';
import { KvCache } from '../src/infer/kv-cache.js';
import { generate } from '../src/infer/generate.js';
import type { ModelConfig } from '../src/nn/config.js';
import { Transformer } from '../src/nn/transformer.js';
import { Engine, type FinishReason, QueueFullError } from '../src/serve/engine.js';
import { DENSE, MOE } from './serve-helpers.js';

async function sharpModel(cfg: ModelConfig, seed = 5): Promise<Transformer> {
  const be = await getBackend('cpu');
  const m = new Transformer(cfg, be, { seed });
  for (const p of m.params.tensors.values()) if (p.rank === 2) be.write(p.buf, Float32Array.from(p.dataSync() as Float32Array, (x) => x * 8));
  for (const [layer, bias] of m.routerBias) bias.forEach((_, e) => (bias[e] = ((e * 3 + layer) % 4) / 50));
  return m;
}

for (const cfg of [DENSE, MOE]) {
  test(`decodeStep over ${cfg.name}: each row equals a lone forward through that sequence's cache`, async () => {
    const m = await sharpModel(cfg);
    const prompts = [[5, 9, 200], [77], [1, 2, 3, 4, 5, 6, 7], [1500, 3]];
    const next = [11, 12, 13, 14];
    const cache = (n: number) => new KvCache(m.backend, m.config, 1, n);
    const lone: Float32Array[][] = [];
    for (let b = 0; b < prompts.length; b++) {
      const c = cache(16);
      await feed(m, c, prompts[b]!);
      lone.push([await feed(m, c, [next[b]!]), await feed(m, c, [next[b]! + 100])]);
      c.dispose();
    }
    // prompt 1 is prefilled into slot 4 and moved to slot 1 (as when the sequence in slot 1 finishes)
    const slots = new DecodeSlots(m, 5, 16);
    for (let b = 0; b < prompts.length; b++) {
      const c = cache(prompts[b]!.length);
      await feed(m, c, prompts[b]!);
      slots.load(b === 1 ? 4 : b, c);
      c.dispose();
    }
    slots.move(4, 1);
    const V = cfg.vocab;
    const check = (got: Float32Array, step: number) => {
      let worst = 0;
      for (let b = 0; b < prompts.length; b++) for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(got[b * V + v]! - lone[b]![step]![v]!));
      assert.ok(worst < 1e-4, `step ${step}: max |batched - lone| = ${worst}`);
    };
    check(await decodeStep(m, slots, next), 0);
    check(await decodeStep(m, slots, next.map((x) => x + 100)), 1);
    assert.deepEqual([...slots.lengths], [...prompts.map((p) => p.length + 2), 0]);
    slots.dispose();
    m.dispose();
  });
}

test('feedBatch: prompts of different lengths prefilled together give each its lone logits and cache', async () => {
  const m = await sharpModel(MOE, 7);
  const prompts = [[5, 9, 200], [77], [1, 2, 3, 4, 5, 6, 7]];
  const { cache, logits } = await feedBatch(m, prompts);
  const slots = new DecodeSlots(m, 3, 16);
  const lone: Float32Array[] = [];
  for (let b = 0; b < prompts.length; b++) {
    const c = new KvCache(m.backend, m.config, 1, 16);
    const first = await feed(m, c, prompts[b]!);
    let worst = 0;
    first.forEach((x, v) => (worst = Math.max(worst, Math.abs(x - logits[b]![v]!))));
    assert.ok(worst < 1e-4, `prompt ${b}: max |batched - lone| = ${worst}`);
    lone.push(await feed(m, c, [42]));
    c.dispose();
    slots.load(b, cache, b, prompts[b]!.length);
  }
  cache.dispose();
  const next = await decodeStep(m, slots, [42, 42, 42]);
  const V = MOE.vocab;
  for (let b = 0; b < prompts.length; b++) {
    let worst = 0;
    lone[b]!.forEach((x, v) => (worst = Math.max(worst, Math.abs(x - next[b * V + v]!))));
    assert.ok(worst < 1e-4, `decoding after the batched prefill, prompt ${b}: ${worst}`);
  }
  slots.dispose();
  m.dispose();
});

interface Run {
  tokens: number[];
  reason: Promise<FinishReason>;
}

function submit(e: Engine, prompt: number[], maxTokens: number, stopIds: number[] = []): Run & { cancel: () => void } {
  const tokens: number[] = [];
  let done!: (r: FinishReason) => void;
  const reason = new Promise<FinishReason>((r) => (done = r));
  const h = e.submit({ prompt, maxTokens, sampling: { temperature: 0 }, seed: 0, stopIds: new Set(stopIds), onToken: (id) => tokens.push(id), onFinish: (r) => done(r) });
  return { tokens, reason, cancel: () => h.cancel() };
}

test('engine: concurrent greedy requests give what generate gives alone, sharing decoding steps', async () => {
  const m = await sharpModel(MOE, 9);
  const prompts = [[4, 8, 15], [16, 23, 42, 99, 7], [300], [12, 12, 12, 12]];
  const want = [];
  for (const p of prompts) want.push(await generate(m, p, { temperature: 0, maxTokens: 10 }));
  const e = new Engine(m, { maxBatch: 8, kvBudgetBytes: 64 * 96 * bytesPerPosition(m), maxQueue: 8 });
  const runs = prompts.map((p) => submit(e, p, 10));
  for (const r of runs) assert.equal(await r.reason, 'length');
  assert.deepEqual(runs.map((r) => r.tokens), want);
  const s = e.stats();
  assert.equal(s.tokensGenerated, 40);
  // 4 sequences x 10 tokens: the first token of each comes from its prefill, the other 9 from shared steps
  assert.equal(s.steps, 9, 'the four sequences decoded together');
  assert.equal(s.kvBytesUsed, 0);
  m.dispose();
});

test('engine: a request joins a running batch at the next step; a stop token ends it without being emitted', async () => {
  const m = await sharpModel(DENSE, 4);
  const alone = await generate(m, [9, 9], { temperature: 0, maxTokens: 12 });
  const e = new Engine(m, { maxBatch: 4, kvBudgetBytes: 8 * 96 * bytesPerPosition(m), maxQueue: 4 });
  const first = submit(e, [3, 1, 4], 30);
  while (first.tokens.length < 3) await new Promise((r) => setImmediate(r));
  const second = submit(e, [9, 9], 12);
  assert.equal(await second.reason, 'length');
  assert.ok(first.tokens.length < 30, 'the second request finished while the first was still running');
  assert.deepEqual(second.tokens, alone);
  await first.reason;
  const stopAt = alone[4]!;
  const stopped = submit(e, [9, 9], 12, [stopAt]);
  assert.equal(await stopped.reason, 'stop');
  assert.deepEqual(stopped.tokens, alone.slice(0, alone.indexOf(stopAt)));
  m.dispose();
});

test('engine: cancelling frees the slot and the cache; the queue bound answers QueueFullError; oversized requests are refused', async () => {
  const m = await sharpModel(DENSE, 4);
  const slot = 96 * bytesPerPosition(m);
  const e = new Engine(m, { maxBatch: 4, kvBudgetBytes: slot * 1.5, maxQueue: 1 });
  assert.equal(e.stats().slots, 1, 'the budget holds one full-context slot');
  const a = submit(e, [1, 2, 3], 80);
  const b = submit(e, [1, 2, 3], 80);
  assert.throws(() => submit(e, [1, 2, 3], 80), (err: unknown) => err instanceof QueueFullError && err.retryAfterSeconds >= 1);
  while (a.tokens.length < 2) await new Promise((r) => setImmediate(r));
  assert.equal(e.stats().active, 1);
  assert.equal(e.stats().kvBytesUsed, (3 + a.tokens.length - 1) * bytesPerPosition(m));
  a.cancel();
  assert.equal(await a.reason, 'cancelled');
  while (b.tokens.length < 1) await new Promise((r) => setImmediate(r));
  assert.equal(e.stats().active, 1, 'the queued request took the freed slot');
  b.cancel();
  await b.reason;
  await e.drain();
  assert.deepEqual([e.stats().active, e.stats().kvBytesUsed], [0, 0]);
  assert.throws(() => submit(e, [1], 2), /shutting down/);
  assert.throws(() => new Engine(m, { maxBatch: 1, kvBudgetBytes: slot - 1, maxQueue: 1 }), /cannot hold one sequence/);
  assert.throws(() => submit(new Engine(m, { maxBatch: 1, kvBudgetBytes: slot, maxQueue: 1 }), [1, 2, 3], 94), /do not fit the model's context/);
  m.dispose();
});
