// The dry run of one rank (zili train --backend meta --dry-run-rank R): the shape-only communicator's
// byte counts against hand-computed ring volumes for each collective, its split into the mesh's
// groups, and a small dry run whose numbers are computed here independently from the model's shape
// (parameters of the rank's chunks, bytes of the activations and gradients it sends, GEMM FLOPs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteCounter, ShapeCommunicator } from '../src/dist/shape-communicator.js';
import { resolveMesh } from '../src/dist/mesh-layout.js';
import { ProcessMesh } from '../src/dist/mesh.js';
import { preset } from '../src/nn/presets.js';
import { makeTrainConfig } from '../src/train/train-config.js';
import { dryRunLayout, dryRunRank } from '../src/train/dry-run.js';
import { planForRank } from '../src/train/dry-run-plan.js';
import { dryRunJson } from '../src/cli/train-dry-run.js';
import { MetaBackend } from '../src/backend/meta/meta-backend.js';
import { Transformer } from '../src/nn/transformer.js';
import { AdamW, defaultAdamW } from '../src/optim/adamw.js';
import * as T from '../src/tensor/ops.js';
import { keep } from '../src/tensor/scope.js';
import { chunkParamNames } from '../src/dist/pipeline-parallel.js';
import { partitionChunks } from '../src/dist/pipeline-partition.js';

test('shape communicator: bytes sent per collective and per dimension, as the ring algorithms send them', async () => {
  // tp 2 x dp 4 (8 ranks); world rank 5 is tp rank 1 of dp rank 2
  const counter = new ByteCounter();
  const world = ShapeCommunicator.world(resolveMesh({ tp: 2, cp: 1, dp: 4, pp: 1, ep: 1 }, 8), 5, counter);
  const mesh = await ProcessMesh.create(world, { tp: 2, cp: 1, dp: 4, pp: 1, ep: 1 });
  assert.deepEqual([mesh.tp.rank, mesh.tp.size, mesh.dp.rank, mesh.dp.size], [1, 2, 2, 4]);
  await mesh.tp.allReduce(new Float32Array(1000)); // 2·(1/2)·4000
  await mesh.dp.reduceScatter(new Float32Array(400), new Float32Array(100)); // (3/4)·1600
  await mesh.dp.allGather(new Uint16Array(100), new Uint16Array(400)); // bf16: (3/4)·800
  await mesh.dp.broadcast(new Int32Array(10), 0); // dp rank 2 is not the root's ring predecessor (3): 40
  await mesh.dp.broadcast(new Int32Array(10), 3); // rank 2 precedes root 3 in the ring: 0
  await mesh.dp.send(new Float32Array(7), 0); // 28
  await mesh.dp.recv(new Float32Array(7), 1); // 0
  await mesh.dp.allToAllV(new Float32Array(10), [1, 2, 3, 4], new Float32Array(10), [4, 3, 2, 1]); // to others: 1+2+4 elements
  assert.equal(counter.sent('tp'), 4000);
  assert.equal(counter.sent('tp.allReduce'), 4000);
  assert.equal(counter.sent('dp.reduceScatter'), 1200);
  assert.equal(counter.sent('dp.allGather'), 600);
  assert.equal(counter.sent('dp.broadcast'), 40);
  assert.equal(counter.sent('dp.send'), 28);
  assert.equal(counter.sent('dp.allToAllV'), 28);
  assert.equal(counter.sent('dp'), 1200 + 600 + 40 + 28 + 28);
  assert.equal(counter.sent('pp'), 0);
  const calls = Object.fromEntries(counter.entries().map((e) => [`${e.dimension}.${e.op}`, e.calls]));
  assert.deepEqual(calls, { 'tp.allReduce': 1, 'dp.reduceScatter': 1, 'dp.allGather': 1, 'dp.broadcast': 2, 'dp.send': 1, 'dp.allToAllV': 1 });
  // a group of one sends nothing; the world of a one-dimension layout counts under that dimension
  const alone = new ShapeCommunicator('pp', 0, 1, 0, 'pp', counter);
  await alone.allReduce(new Float32Array(100));
  assert.equal(counter.sent('pp'), 0);
  const ppWorld = ShapeCommunicator.world(resolveMesh({ tp: 1, cp: 1, dp: 1, pp: 4, ep: 1 }, 4), 3);
  await ppWorld.send(new Float32Array(3), 0);
  assert.equal(ppWorld.counter.sent('pp'), 12);
});

test('shape communicator: buffers are checked as a real transport checks them; splits only into the mesh groups', async () => {
  const world = ShapeCommunicator.world(resolveMesh({ tp: 2, cp: 1, dp: 2, pp: 1, ep: 1 }, 4), 1);
  assert.throws(() => world.reduceScatter(new Float32Array(7), new Float32Array(2)), /input has 7 elements, expected size·output = 4·2/);
  assert.throws(() => world.allGather(new Float32Array(2), new Uint16Array(8)), /input is f32 but output is bf16/);
  assert.throws(() => world.send(new Float32Array(2), 4), /destination rank 4 is outside 0..3/);
  assert.throws(() => world.allToAllV(new Float32Array(2), [1, 1, 1], new Float32Array(2), [1, 1, 1, 1]), /sendCounts has 3 entries, expected one per rank \(4\)/);
  await assert.rejects(world.split(0, 0, 'experts'), /cannot tell the other ranks' colors for a group named 'experts'/);
  await assert.rejects(world.split(1, 0, 'tp'), /'tp' split with color 1, key 0, but the mesh puts rank 1 at color 0, key 1/);
  const tp = (await world.split(0, 1, 'tp'))!;
  await assert.rejects(tp.split(0, 0, 'tp'), /a dry run splits only the world/);
});

/** Parameters of decoder layer of the tiny preset, from its shape (not from the model). */
function tinyLayerParams(c: ReturnType<typeof preset>): { all: number; matmul: number } {
  const hd = c.dModel / c.heads;
  const matmul = c.dModel * c.heads * hd * 2 + 2 * c.dModel * c.kvHeads * hd + 3 * c.dModel * c.ffnHidden;
  return { all: matmul + 2 * c.dModel, matmul };
}

test('dry run of tiny pp2, rank 1 (last stage): held state, bytes sent and GEMM FLOPs computed independently', async () => {
  const model = preset('tiny');
  const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } });
  const r = await dryRunRank(c, 1, dryRunLayout(c));
  const { dModel: d, vocab: V, seqLen: S } = model;
  const N = 2 * S, accum = 4;
  const layer = tinyLayerParams(model);
  // layers 2 and 3, the final norm, and the tied embedding (the last stage's copy of it)
  const params = 2 * layer.all + d + V * d;
  assert.equal(r.heldBytes, 12 * params, 'f32 weights + two AdamW moments of the last stage only');
  assert.ok(r.peakBytes >= r.heldBytes + 4 * params, 'the peak holds the gradients at the update');
  assert.equal(r.afterStepBytes, r.heldBytes, 'the step frees all it allocated');
  // a gradient [N, d] back to stage 0 per micro-batch and the tied embedding's gradient over pp; the
  // norm/loss/aux all-reduce of 3 floats over the model-parallel group (tp x pp = 2 ranks: 2·(1/2)·12 B)
  assert.deepEqual(r.bytesSent, { tp: 0, dp: 0, pp: accum * N * d * 4 + V * d * 4, ep: 0, cp: 0, mp: 12 });
  // forward 2·N·(layer GEMMs + head), backward twice that (input and weight gradients)
  assert.equal(r.flops.matmul, accum * 3 * 2 * N * (2 * layer.matmul + V * d));
  assert.equal(r.flops.attention, accum * 2 * 3 * 4 * 2 * model.heads * S * S * (d / model.heads));
  const json = dryRunJson(r);
  assert.equal(json.peakMemoryGiB, r.peakBytes / 2 ** 30);
  assert.equal(json.flopsPerStep, r.flops.matmul + r.flops.attention + r.flops.other);
});

test('dry run: the peak is what the stage holds, not the whole model it was cut from', async () => {
  const model = { ...preset('tiny'), layers: 16 };
  const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 1, seqLen: 32, pipeline: { pp: 8, vpp: 1, schedule: '1f1b' } });
  const r = await dryRunRank(c, 3, dryRunLayout(c));
  const whole = 4 * (16 * tinyLayerParams(model).all + model.dModel + model.vocab * model.dModel);
  assert.equal(r.heldBytes, 12 * 2 * tinyLayerParams(model).all, 'a middle stage holds its two layers');
  assert.ok(r.peakBytes < whole, `peak ${r.peakBytes} B is below the whole model's weights (${whole} B)`);
  // 8 micro-batches: an activation forward and a gradient backward each, [32, 128] f32
  assert.equal(r.bytesSent['pp'], 8 * 2 * 32 * 128 * 4);
  assert.equal(r.bytesSent['mp'], 2 * (7 / 8) * 12); // the 3-float norm/loss all-reduce over the 8 ranks
});

test('dry run of tiny tp2 x dp2, rank 3: tensor-parallel shards and their data-parallel gradient all-reduce', async () => {
  const model = preset('tiny');
  const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, dp: 2, tensorParallel: { tp: 2, sp: false } });
  const r = await dryRunRank(c, 3, dryRunLayout(c));
  assert.deepEqual([r.coords.tp, r.coords.dp], [1, 1]);
  const layer = tinyLayerParams(model);
  // every GEMM weight and the vocabulary split in two, norms whole
  const shard = model.layers * (layer.matmul / 2 + 2 * model.dModel) + model.dModel + (model.vocab * model.dModel) / 2;
  assert.equal(r.heldBytes, 12 * shard);
  // dp: each gradient all-reduced over 2 replicas (2·(1/2)·bytes), the has-a-gradient flags (an i32 per parameter) and the loss
  const whole = new Transformer(model, new MetaBackend());
  const paramCount = whole.params.tensors.size;
  whole.dispose();
  assert.equal(r.bytesSent['dp'], 4 * shard + 4 * paramCount + 4);
  assert.ok(r.bytesSent['tp']! > 0);
});

test("a pipeline stage's peak does not grow with the step's micro-batches: boundary tensors are freed once sent, not at the step's end", async () => {
  const peak = async (globalBatch: number, rank: number) => {
    const c = makeTrainConfig(preset('tiny'), 'unused', { backend: 'meta', globalBatch, microBatch: 1, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } });
    const r = await dryRunRank(c, rank, dryRunLayout(c));
    assert.equal(r.afterStepBytes, r.heldBytes, `pp2 rank ${rank}, ${globalBatch} micro-batches: the step frees all it allocated`);
    return r.peakBytes;
  };
  // 1F1B on 2 stages keeps at most 2 micro-batches in flight, whether the step has 4 or 16; what may
  // grow is the last stage's loss scalars (4 bytes each), far less than one boundary tensor [128, 128]
  const boundary = 128 * 128 * 4;
  for (const rank of [0, 1]) {
    const grown = (await peak(16, rank)) - (await peak(4, rank));
    assert.ok(grown >= 0 && grown < boundary, `pp2 rank ${rank}: the peak grew by ${grown} B from 4 to 16 micro-batches`);
  }
});

test("AdamW's gradient norm frees each square once summed: the update's peak holds no second copy of every gradient", async () => {
  const be = new MetaBackend();
  const model = new Transformer(preset('tiny'), be, { seed: 1 });
  for (const p of model.params.tensors.values()) p.grad = keep(T.zerosLike(p));
  const opt = new AdamW(model.params, defaultAdamW());
  const before = be.memory().allocatedBytes;
  be.resetPeak();
  await opt.gradNorm();
  const largest = Math.max(...[...model.params.tensors.values()].map((p) => 4 * p.numel));
  const extra = be.memory().peakBytes - before;
  assert.ok(extra <= largest + 64, `the norm's peak added ${extra} B; one square at a time is at most ${largest} B`);
  opt.dispose();
  model.dispose();
});

test('with sequence parallelism a micro-batch in flight keeps half its activations on each of tp2: no whole-sequence copy (the gathered input is gathered again in backward)', async () => {
  const model = { ...preset('tiny'), layers: 4 };
  // 1F1B on pp4 keeps min(4, micro-batches) in flight on stage 0 at its first backward: 2 more from 2 to 4
  const perMicroBatch = async (tp: number) => {
    const peak = async (globalBatch: number) => {
      const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch, microBatch: 1, pipeline: { pp: 4, vpp: 1, schedule: '1f1b' }, ...(tp > 1 ? { tensorParallel: { tp, sp: true } } : {}) });
      return (await dryRunRank(c, 0, dryRunLayout(c))).peakBytes;
    };
    return ((await peak(4)) - (await peak(2))) / 2;
  };
  const whole = await perMicroBatch(1), split = await perMicroBatch(2);
  const tokens = model.seqLen, hidden = tokens * model.dModel * 4;
  assert.ok(whole > 4 * hidden, `a micro-batch of stage 0 (embedding, one layer) keeps several hidden states: ${whole} B`);
  // every saved activation is split over the 2 tp ranks (Megatron's 34·s·b·h/t); what is not split is
  // the token ids each rank reads (i32, a few copies of [tokens]), far below one hidden state
  const slack = 4 * tokens * 4;
  assert.ok(Math.abs(split - whole / 2) <= slack, `tp2 --sp keeps ${split} B per micro-batch, half of tp1's is ${whole / 2} B (a whole-sequence copy would add ${hidden} B per column-parallel layer)`);
});

test('ZeRO-1 under the pipeline reduce-scatters the gradients: the dp bytes of tiny pp2 x dp2, rank 0, from its parameters', async () => {
  const model = preset('tiny');
  const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 1, dp: 2, zero: 1, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } });
  const r = await dryRunRank(c, 0, dryRunLayout(c));
  const whole = new Transformer(model, new MetaBackend());
  const numels = [...chunkParamNames(whole, partitionChunks(model.layers, 2).slice(0, 1))].map((n) => whole.params.get(n).numel);
  whole.dispose();
  const chunks = numels.reduce((a, n) => a + Math.ceil(n / 2), 0);
  // the gradients reduce-scattered and the updated chunks all-gathered ((1/2)·2·chunk·4 B each, the
  // planner's 2·(n−1)/n of the gradients in all); the has-a-gradient flags (an i32 per parameter) and
  // the norm and loss sums (3 floats) all-reduced. An all-reduce of the gradients would send 4·numel each.
  assert.equal(r.bytesSent['dp'], 2 * 4 * chunks + 4 * numels.length + 12);
});

test('plain dp2: ZeRO-1 reduce-scatters and all-gathers (2 rings of gradient bytes), ZeRO-2 reduce-scatters every micro-batch (M+1 rings): the planner\'s volumes', async () => {
  const model = preset('tiny');
  for (const [zero, rings] of [[1, 2], [2, 4 + 1]] as const) {
    // 4 micro-batches per rank per step
    const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 16, microBatch: 2, dp: 2, zero });
    const r = await dryRunRank(c, 1, dryRunLayout(c));
    const plan = planForRank(c, dryRunLayout(c), 0).volume.dp;
    // rings of the whole model's f32 gradients over 2 ranks, each sending half
    const whole = new Transformer(model, new MetaBackend());
    const paramBytes = 4 * [...whole.params.tensors.values()].reduce((n, t) => n + t.numel, 0);
    whole.dispose();
    assert.equal(plan, rings * 0.5 * paramBytes);
    // the buckets' padding and the step's scalars (loss, flags, loads) are the only extras: within 1%
    assert.ok(Math.abs(r.bytesSent['dp']! / plan - 1) < 0.01, `ZeRO-${zero}: dry run ${r.bytesSent['dp']} bytes vs planner ${plan}`);
  }
});

test('dry run of tiny cp2 x tp2 (sp) x pp2, rank 7 (last stage): the ring sends cp-1 hops of K/V forward, of K/V and dK/dV backward; stages pass the rank\'s tokens / cp / tp', async () => {
  const model = preset('tiny');
  const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, contextParallel: { cp: 2 }, tensorParallel: { tp: 2, sp: true }, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } });
  const r = await dryRunRank(c, 7, dryRunLayout(c));
  assert.deepEqual([r.coords.tp, r.coords.cp, r.coords.pp], [1, 1, 1]);
  const cp = 2, tp = 2, accum = 4, layers = 2;
  const tokens = (2 * model.seqLen) / cp; // the rank's two chunks of both rows
  const kv = 2 * tokens * (model.kvHeads / tp) * (model.dModel / model.heads) * 4; // K and V of its tp-local KV heads, f32
  assert.equal(r.bytesSent['cp'], accum * layers * 3 * (cp - 1) * kv);
  // a gradient of [tokens / tp, d] back to stage 0 per micro-batch, and the tied embedding's vocabulary shard
  assert.equal(r.bytesSent['pp'], accum * (tokens / tp) * model.dModel * 4 + (model.vocab / tp) * model.dModel * 4);
  assert.equal(r.afterStepBytes, r.heldBytes, 'the step frees all it allocated');
});

test('dry run of tiny-moe dp2 x ep2: each rank runs the rows balanced routing sends its experts (the counts exchange answers as the peers would)', async () => {
  const model = preset('tiny-moe');
  const run = async (ep: number) => {
    const c = makeTrainConfig(model, 'unused', { backend: 'meta', globalBatch: 8, microBatch: 2, dp: 2, ...(ep > 1 ? { expertParallel: { ep } } : {}) });
    return dryRunRank(c, 0, dryRunLayout(c));
  };
  const [one, two] = [await run(1), await run(2)];
  // balanced routing gives every expert the same rows: half of ep2's experts, twice the rows each (their own and the peer's)
  assert.equal(two.flops.matmul, one.flops.matmul);
  // per MoE layer and micro-batch: the counts (4 i32 to the peer), then dispatch and combine forward and
  // backward, each sending the half of the N·k routed rows whose experts the peer holds
  const m = model.moe!, N = 2 * model.seqLen, moeLayers = model.layers - m.denseLayers, accum = 2;
  assert.equal(two.bytesSent['ep'], accum * moeLayers * (4 * 4 + 4 * ((N * m.topK) / 2) * model.dModel * 4) + 2 * 0.5 * 4);
});
