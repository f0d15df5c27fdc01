// Ring attention (src/dist/ring-attention.ts) on loopback communicators against the backend's full
// causal attention over the whole sequence: each rank's output and the gradients of its q, k, v
// (through the backward ring that carries dK/dV home) equal the matching rows of one process's, for
// cp 2 and 4, with grouped-query heads; the load-balanced layout (rank i: chunks i and 2cp-1-i); and
// the whole unchanged model under cp2 (global RoPE positions, token-weighted loss) against one process,
// and an MoE model under cp2 (the pipeline executor's chunk compute: balancing loss over the whole rows).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { backward, backwardAsync, noGrad } from '../src/tensor/autograd.js';
import * as T from '../src/tensor/ops.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { ringAttention } from '../src/dist/ring-attention.js';
import { chunkLength, loadBalancedChunks, rankTokens } from '../src/dist/context-parallel-layout.js';
import { ContextParallel } from '../src/dist/context-parallel.js';
import { contextParallelLayers } from '../src/dist/context-parallel-compute.js';
import type { ModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { loopbackGroup } from './dist-loopback.js';

const be = new CpuBackend();

/** Rank `rank`'s two chunks (dim 1) of x [B, S, h, D] (a new tensor, no graph). */
function chunksOf(x: Tensor, cp: number, rank: number): Tensor {
  const c = x.shape[1]! / (2 * cp);
  const [a, b] = loadBalancedChunks(cp, rank);
  return noGrad(() => T.concat([T.slice(x, 1, a * c, (a + 1) * c), T.slice(x, 1, b * c, (b + 1) * c)], 1));
}

function assertClose(got: Tensor, want: Tensor, what: string): void {
  const g = got.dataSync() as Float32Array, w = want.dataSync() as Float32Array;
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  // f32 sums in another order: differences of a few ulps of the tensor's scale
  let worst = 0, scale = 0;
  for (let i = 0; i < w.length; i++) {
    worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
    scale = Math.max(scale, Math.abs(w[i]!));
  }
  assert.ok(worst <= 1e-5 * scale, `${what}: worst difference ${worst} (largest value ${scale})`);
}

for (const [cp, H, Hkv] of [[2, 4, 2], [4, 2, 1], [2, 2, 2]] as const)
  test(`ring attention over cp${cp} (${H} heads, ${Hkv} KV heads): values and gradients of full causal attention`, async () => {
    const B = 2, S = 8 * cp, D = 8;
    const leaf = (seed: number, h: number) => {
      const t = T.random(be, [B, S, h, D], { seed, std: 1 });
      t.requiresGrad = true;
      return t;
    };
    const q = leaf(1, H), k = leaf(2, Hkv), v = leaf(3, Hkv);
    const w = T.random(be, [B, S, H, D], { seed: 4 }); // a loss Σ w·o gives every output its own gradient
    const o = T.attention(q, k, v, { causal: true });
    backward(T.sum(T.mul(o, w)));

    const comms = loopbackGroup(cp);
    const ranks = comms.map((comm) => {
      const mine = (t: Tensor) => {
        const x = chunksOf(t, cp, comm.rank);
        x.requiresGrad = true;
        return x;
      };
      return { comm, q: mine(q), k: mine(k), v: mine(v), w: chunksOf(w, cp, comm.rank) };
    });
    const outs = await Promise.all(ranks.map((r) => ringAttention(r.q, r.k, r.v, r.comm)));
    await Promise.all(ranks.map((r, i) => backwardAsync(T.sum(T.mul(outs[i]!, r.w)))));
    ranks.forEach((r, i) => {
      assertClose(outs[i]!, chunksOf(o, cp, r.comm.rank), `rank ${i} output`);
      assertClose(r.q.grad!, chunksOf(q.grad!, cp, r.comm.rank), `rank ${i} dq`);
      assertClose(r.k.grad!, chunksOf(k.grad!, cp, r.comm.rank), `rank ${i} dk`);
      assertClose(r.v.grad!, chunksOf(v.grad!, cp, r.comm.rank), `rank ${i} dv`);
    });
  });

test('causal load balancing: rank i holds chunks i and 2cp-1-i of every row; a sequence 2cp does not divide is refused', () => {
  assert.deepEqual([0, 1, 2, 3].map((r) => loadBalancedChunks(4, r)), [[0, 7], [1, 6], [2, 5], [3, 4]]);
  const rows = Int32Array.from({ length: 2 * 8 }, (_, i) => i); // 2 rows of 8 tokens
  assert.deepEqual(Array.from(rankTokens(rows, 2, 8, 2, 0)), [0, 1, 6, 7, 8, 9, 14, 15]);
  assert.deepEqual(Array.from(rankTokens(rows, 2, 8, 2, 1)), [2, 3, 4, 5, 10, 11, 12, 13]);
  assert.throws(() => chunkLength(12, 4), /--cp 4 cuts each sequence into 2 x 4 = 8 equal chunks .* --seq 12 is not a multiple of; use --seq 8/);
});

test('the unchanged model under cp2 (ContextParallel.loss, loopback): the mean over ranks is the one-process loss and the summed gradients its gradients, with ignored targets', async () => {
  const cfg: ModelConfig = { ...preset('tiny'), name: 'micro', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 64, seqLen: 16 };
  const B = 2, S = 16, cp = 2;
  const ids = Int32Array.from({ length: B * S }, (_, i) => (i * 7 + 3) % 64);
  // uneven ignored targets: rank 0's chunks hold 3 of them, rank 1's none
  const targets = Int32Array.from({ length: B * S }, (_, i) => ([0, 1, 14].includes(i) ? -1 : (i * 5 + 1) % 64));
  const one = new Transformer(cfg, be, { seed: 3 });
  const ref = one.loss(T.tensor(be, ids, [B, S], 'i32'), T.tensor(be, targets, [B * S], 'i32'));
  backward(ref.loss);
  const comms = loopbackGroup(cp);
  const ranks = comms.map((comm) => new ContextParallel(new Transformer(cfg, be, { seed: 3 }), comm, comm));
  const losses = await Promise.all(ranks.map((r) => r.loss(ids, targets, B, S)));
  await Promise.all(losses.map((l) => backwardAsync(l)));
  const mean = losses.reduce((s, l) => s + (l.dataSync() as Float32Array)[0]!, 0) / cp;
  const want = (ref.loss.dataSync() as Float32Array)[0]!;
  assert.ok(Math.abs(mean - want) <= 1e-6 * want, `loss ${mean} vs one process ${want}`);
  for (const [name, p] of one.params.tensors) {
    const sum = T.add(ranks[0]!.model.params.get(name).grad!, ranks[1]!.model.params.get(name).grad!);
    assertClose(T.mulScalar(sum, 1 / cp), p.grad!, `gradient of ${name}`);
  }
});

test('an MoE model under cp2 (contextParallelLayers, loopback): the mean over ranks of cross-entropy + balancing loss is that of one process, the summed gradients its gradients', async () => {
  const cfg: ModelConfig = { ...preset('tiny-moe'), name: 'micro-moe', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 64, seqLen: 16 };
  cfg.moe = { ...cfg.moe!, experts: 4, topK: 2, expertFfnHidden: 8, denseLayers: 0, auxLossCoef: 0.1 };
  const B = 2, S = 16, cp = 2;
  const ids = Int32Array.from({ length: B * S }, (_, i) => (i * 7 + 3) % 64);
  const targets = Int32Array.from({ length: B * S }, (_, i) => ([0, 1, 14].includes(i) ? -1 : (i * 5 + 1) % 64));
  const one = new Transformer(cfg, be, { seed: 3 });
  const ref = one.loss(T.tensor(be, ids, [B, S], 'i32'), T.tensor(be, targets, [B * S], 'i32'));
  assert.ok(ref.aux && (ref.aux.dataSync() as Float32Array)[0]! > 0, 'the balancing loss is on');
  backward(ref.loss);
  const models = [0, 1].map(() => new Transformer(cfg, be, { seed: 3 }));
  const losses = await Promise.all(
    loopbackGroup(cp).map(async (comm, r) => {
      const cc = contextParallelLayers(models[r]!, comm, null);
      const { x, aux } = await cc.layers(await cc.embed(ids, B, S), 0, cfg.layers, B, S);
      return T.add(await cc.headLoss(x, targets, B, S), aux!);
    }),
  );
  await Promise.all(losses.map((l) => backwardAsync(l)));
  const mean = losses.reduce((s, l) => s + (l.dataSync() as Float32Array)[0]!, 0) / cp;
  const want = (ref.loss.dataSync() as Float32Array)[0]!;
  assert.ok(Math.abs(mean - want) <= 1e-6 * want, `loss ${mean} vs one process ${want}`);
  for (const [name, p] of one.params.tensors) {
    if (!p.grad) continue; // an expert no token chose
    const sum = T.add(models[0]!.params.get(name).grad!, models[1]!.params.get(name).grad!);
    assertClose(T.mulScalar(sum, 1 / cp), p.grad, `gradient of ${name}`);
  }
});
