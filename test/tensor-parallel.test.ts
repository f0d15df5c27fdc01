// Tensor parallel (with and without sequence parallel) on in-process loopback ranks against one
// process: the loss of a batch and every parameter's gradient (shards gathered back whole) agree with
// the unsharded model's; the plan splits each parameter by name; layouts that do not divide the
// model are refused with a message naming the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/registry.js';
import { type ModelConfig, validateModelConfig } from '../src/nn/config.js';
import { Transformer } from '../src/nn/transformer.js';
import { backward, backwardAsync } from '../src/tensor/autograd.js';
import * as T from '../src/tensor/ops.js';
import { TensorParallel } from '../src/dist/tensor-parallel.js';
import { assertTensorParallelFits, localShape, shardKindOf, validateTensorParallel } from '../src/dist/tensor-parallel-plan.js';
import { meshDataRank } from '../src/dist/pipeline-config.js';
import { loopbackGroup } from './dist-loopback.js';

const config = (over: Partial<ModelConfig> = {}): ModelConfig =>
  validateModelConfig({
    name: 'tp-test', layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnHidden: 48, vocab: 64, seqLen: 8,
    ffnKind: 'swiglu', normEps: 1e-5, ropeTheta: 10000, moe: null, tiedEmbeddings: false, ...over,
  });

function batch(c: ModelConfig, B: number): { ids: Int32Array; targets: Int32Array } {
  const n = B * c.seqLen;
  const ids = Int32Array.from({ length: n }, (_, i) => (i * 37 + 11) % c.vocab);
  const targets = Int32Array.from({ length: n }, (_, i) => (i % 13 === 5 ? -1 : (i * 23 + 3) % c.vocab));
  return { ids, targets };
}

async function compare(c: ModelConfig, tp: number, sp: boolean): Promise<void> {
  const be = await getBackend('cpu');
  const B = 2;
  const { ids, targets } = batch(c, B);
  const ref = new Transformer(c, be, { seed: 3 });
  const r = ref.loss(T.tensor(be, ids, [B, c.seqLen], 'i32'), T.tensor(be, targets, [targets.length], 'i32'));
  backward(r.loss);
  const refLoss = await r.loss.item();

  const comms = loopbackGroup(tp);
  const models = comms.map(() => new Transformer(c, be, { seed: 3 }));
  const tps = comms.map((comm, i) => new TensorParallel(models[i]!, comm, sp, B * c.seqLen));
  const losses = await Promise.all(
    tps.map(async (t) => {
      const l = await t.loss(ids, targets, B, c.seqLen);
      await backwardAsync(l);
      return l.item();
    }),
  );
  for (const l of losses) assert.ok(Math.abs(l - refLoss) <= 1e-5 * Math.abs(refLoss), `tp${tp}${sp ? '+sp' : ''}: loss ${l} vs one process ${refLoss}`);
  if (sp) await Promise.all(tps.map((t) => (t as unknown as { reduceReplicatedGrads(): Promise<void> }).reduceReplicatedGrads()));
  const grads = await Promise.all(tps.map((t) => t.gatherWhole(new Map([...t.model.params.tensors].map(([n, p]) => [n, p.grad!])))));
  for (const [name, p] of ref.params.tensors) {
    const want = (await p.grad!.data()) as Float32Array;
    for (const g of grads) {
      const got = g[name]! as { shape: number[]; data: Float32Array };
      assert.deepEqual(got.shape, [...p.shape], `${name}: gathered shape`);
      let maxErr = 0, maxRef = 0;
      for (let i = 0; i < want.length; i++) {
        maxErr = Math.max(maxErr, Math.abs(got.data[i]! - want[i]!));
        maxRef = Math.max(maxRef, Math.abs(want[i]!));
      }
      assert.ok(maxErr <= 1e-4 * maxRef + 1e-7, `tp${tp}${sp ? '+sp' : ''}: gradient of ${name} differs by ${maxErr} (largest ${maxRef})`);
    }
  }
  for (const m of [ref, ...models]) m.dispose();
}

test('tp2: loss and gradients equal one process (GQA, untied output)', () => compare(config(), 2, false));
test('tp2 + sp: loss and gradients equal one process (tied embeddings, ignored targets)', () => compare(config({ tiedEmbeddings: true }), 2, true));
test('tp4 + sp: one KV head per rank', () => compare(config({ heads: 8, kvHeads: 4, dModel: 32 }), 4, true));

test('the plan splits each parameter by name', () => {
  assert.equal(shardKindOf('layers.3.attention.wk.weight'), 'column');
  assert.equal(shardKindOf('layers.0.attention.wo.weight'), 'row');
  assert.equal(shardKindOf('layers.1.feed_forward.w3.weight'), 'column');
  assert.equal(shardKindOf('layers.1.feed_forward.w2.weight'), 'row');
  assert.equal(shardKindOf('tok_embeddings.weight'), 'vocab');
  assert.equal(shardKindOf('layers.2.ffn_norm.weight'), 'replicate');
  assert.deepEqual(localShape([128, 384], 'row', 2), [128, 192]);
  assert.throws(() => shardKindOf('layers.0.feed_forward.gate.weight'), /no plan for parameter 'layers.0.feed_forward.gate.weight'/);
});

test('layouts that do not divide the model are refused, naming the flag', () => {
  assert.throws(() => validateTensorParallel(config({ heads: 6, kvHeads: 6, dModel: 36 }), 4, false, 16), /--tp 4 does not divide model 'tp-test': 6 attention heads \(--heads\)/);
  assert.throws(() => validateTensorParallel(config({ kvHeads: 1 }), 2, false, 16), /1 KV heads \(--kv-heads\)/);
  assert.throws(() => validateTensorParallel(config({ kvHeads: 4, vocab: 66 }), 4, false, 16), /66 vocabulary \(--vocab\)/);
  assert.throws(() => validateTensorParallel(config(), 2, true, 15), /--sp splits each micro-batch's 15 tokens over --tp 2/);
  assert.throws(() => validateTensorParallel(config(), 1, true, 16), /--sp .* needs --tp 2 or more/);
  validateTensorParallel(config(), 2, true, 16);
});

test('a tensor-parallel run that does not fit the job is refused, naming the fix', () => {
  const run = (over: { dp?: number; zero?: number }) => ({ model: config(), dp: over.dp ?? 1, zero: over.zero ?? 0, microBatch: 2, seqLen: 8 });
  assert.throws(() => assertTensorParallelFits(run({ dp: 2 }), { tp: 2, sp: false }, 2), /--tp 2 x --dp 2 = 4 ranks, but the job has 2; use --dp 1 or launch 4 ranks/);
  assert.throws(() => assertTensorParallelFits(run({ dp: 2, zero: 2 }), { tp: 2, sp: false }, 4), /--zero 2: ZeRO-2\/3 over the replicas .* use --zero 1 or 0/);
  assertTensorParallelFits(run({ dp: 2, zero: 1 }), { tp: 2, sp: false }, 4);
  assertTensorParallelFits(run({ dp: 2 }), { tp: 2, sp: true }, 4);
  assert.equal(meshDataRank({ dp: 2, tensorParallel: { tp: 2, sp: false } }, 3), 1);
  assert.equal(meshDataRank({ dp: 2, tensorParallel: { tp: 2, sp: false } }, 6), 1, 'tp2 x dp2 x pp2: rank 6 is tp 0, dp 1, pp 1');
  assert.equal(meshDataRank({ dp: 2, contextParallel: { cp: 2 } }, 1), 0, 'cp2 x dp2: ranks 0 and 1 read replica 0');
  assert.equal(meshDataRank({ dp: 2, tensorParallel: { tp: 2, sp: false }, contextParallel: { cp: 2 } }, 5), 1, 'tp2 x cp2 x dp2: rank 5 is tp 1, cp 0, dp 1');
  assert.equal(meshDataRank({ dp: 4 }, 3), 3, 'plain data parallelism: the rank itself');
});
