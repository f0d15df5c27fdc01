// Data parallel and ZeRO 0-3 in one process (loopback communicators): N ranks, each with its own rows
// of every global batch, compute the losses, gradient norms, weights and MoE routing biases of one
// process training on the whole batch (within float rounding), with and without accumulation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CpuBackend } from '../src/backend/cpu/cpu-backend.js';
import { TokenLoader } from '../src/data/loader.js';
import type { ModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { Transformer } from '../src/nn/transformer.js';
import { AdamW, defaultAdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/train/step.js';
import { DataParallel, type ZeroStage } from '../src/dist/data-parallel.js';
import { planShards } from '../src/dist/shard-layout.js';
import { makeDataset } from './data-helpers.js';
import { assertFitsInMemory, estimateTrainMemory } from '../src/train/memory-check.js';
import { makeTrainConfig } from '../src/train/train-config.js';
import { loopbackGroup } from './dist-loopback.js';

const be = new CpuBackend();
// a biasUpdateRate large enough that the biases move visibly, small enough that the slightly different
// rounding of 4-row and 8-row matmuls does not flip a near-tied expert choice within three steps
const micro = (moe: boolean): ModelConfig => ({
  ...preset(moe ? 'tiny-moe' : 'tiny'), name: 'micro', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 64, seqLen: 8,
  ...(moe ? { moe: { ...preset('tiny-moe').moe!, experts: 4, topK: 2, expertFfnHidden: 8, denseLayers: 1, balance: 'bias' as const, biasUpdateRate: 0.01 } } : {}),
});
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-dp-'));
const data = makeDataset(dir, [6000], [], 64);
const adamw = { ...defaultAdamW(), clipNorm: 0.5 };
const STEPS = 3, GLOBAL = 8, LR = 1e-2;

async function single(cfg: ModelConfig, micro: number) {
  const model = new Transformer(cfg, be, { seed: 5 });
  const opt = new AdamW(model.params, adamw);
  const loader = TokenLoader.open(data, { split: 'train', batch: micro, seqLen: cfg.seqLen, seed: 3 });
  const out: { loss: number; gradNorm: number }[] = [];
  for (let s = 0; s < STEPS; s++) out.push((await trainStep(model, opt, loader, GLOBAL / micro, LR))!);
  const weights = new Map([...model.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync() as Float32Array)]));
  const bias = [...model.routerBias.values()].map((b) => Array.from(b));
  loader.close();
  opt.dispose();
  model.dispose();
  return { out, weights, bias };
}

async function parallel(cfg: ModelConfig, world: number, zero: ZeroStage, micro: number) {
  const comms = loopbackGroup(world);
  const ranks = comms.map((comm) => {
    const model = new Transformer(cfg, be, { seed: 5 });
    const dp = new DataParallel(model, comm, { zero, bucketBytes: 2048, adamw });
    const loader = TokenLoader.open(data, { split: 'train', batch: micro, seqLen: cfg.seqLen, seed: 3, rank: comm.rank, worldSize: world });
    return { model, dp, loader };
  });
  const out: { loss: number; gradNorm: number }[][] = ranks.map(() => []);
  for (let s = 0; s < STEPS; s++) {
    const rs = await Promise.all(ranks.map((r) => r.dp.runStep(r.loader, GLOBAL / (micro * world), LR)));
    rs.forEach((x, i) => out[i]!.push(x));
  }
  // ZeRO 3 gathers collectively: every rank takes part
  const all = await Promise.all(ranks.map((r) => r.dp.withFullParams(async () => new Map([...r.model.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync() as Float32Array)])))));
  const weights = all[0]!;
  const r0 = ranks[0]!;
  const bias = [...r0.model.routerBias.values()].map((b) => Array.from(b));
  return { out, weights, bias, ranks };
}

const close = (a: number, b: number, rel: number, what: string) => assert.ok(Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-6), `${what}: ${a} vs ${b}`);

test('shard layout: buckets in backward order, chunks cover every element once', () => {
  const params = [{ name: 'a', numel: 10 }, { name: 'b', numel: 7 }, { name: 'c', numel: 3 }, { name: 'd', numel: 100 }];
  const l = planShards(params, 3, 1, 64);
  assert.deepEqual(l.buckets.map((b) => b.slots.map((s) => s.name)), [['d'], ['c', 'b'], ['a']]);
  const l2 = planShards(params, 3, 0, 1 << 20);
  assert.deepEqual(l2.buckets[0]!.slots.map((s) => [s.name, s.chunk, s.offset]), [['d', 34, 0], ['c', 1, 34], ['b', 3, 35], ['a', 4, 38]]);
});

for (const moe of [false, true])
  for (const [world, zero, mb] of [[2, 0, 4], [2, 1, 2], [2, 2, 4], [2, 3, 2], [4, 3, 2]] as const)
    test(`dp${world} ZeRO-${zero} micro-batch ${mb} (${GLOBAL / (mb * world)} accumulated) = one process (${moe ? 'MoE, bias balancing' : 'dense'})`, async () => {
      const cfg = micro(moe);
      const ref = await single(cfg, 8);
      const got = await parallel(cfg, world, zero, mb);
      for (let s = 0; s < STEPS; s++) {
        for (let r = 0; r < world; r++) assert.equal(got.out[r]![s]!.loss, got.out[0]![s]!.loss, `rank ${r} reports the same loss`);
        close(got.out[0]![s]!.loss, ref.out[s]!.loss, 1e-5, `step ${s + 1} loss`);
        close(got.out[0]![s]!.gradNorm, ref.out[s]!.gradNorm, 1e-4, `step ${s + 1} grad norm`);
      }
      for (const [n, w] of ref.weights) {
        const g = got.weights.get(n)!;
        let worst = 0;
        for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
        assert.ok(worst < 1e-4, `${n}: max |difference| ${worst}`);
      }
      assert.deepEqual(got.bias.length, ref.bias.length);
      got.bias.forEach((b, l) => b.forEach((x, e) => close(x, ref.bias[l]![e]!, 1e-9, `routing bias ${l}.${e}`)));
      if (moe) assert.ok(got.bias.some((b) => b.some((x) => x !== 0)), 'the routing biases moved');
      for (const r of got.ranks) {
        r.dp.dispose();
        r.model.dispose();
        r.loader.close();
      }
    });

test('memory check per rank: ZeRO-1 counts 1/dp of the AdamW state; a dp run that does not fit is told about --zero 1', () => {
  const one = makeTrainConfig(preset('tiny'), path.join(dir, 'm'), { globalBatch: 16, microBatch: 4 });
  const z0 = makeTrainConfig(preset('tiny'), path.join(dir, 'm'), { globalBatch: 16, microBatch: 4, dp: 4 });
  const z1 = { ...z0, zero: 1 as const };
  assert.equal(estimateTrainMemory(z0).optimizer, estimateTrainMemory(one).optimizer);
  assert.equal(estimateTrainMemory(z1).optimizer, Math.ceil(estimateTrainMemory(one).optimizer / 4));
  assert.throws(() => assertFitsInMemory(z0, estimateTrainMemory(z0).total - 1), /nothing was allocated\. Use --zero 1 \(each of the 4 ranks then keeps 1\/4 of the AdamW state\)/);
});

test('an expert no token chose on any rank keeps its weights and moments, as in one process (dp2 ZeRO-0 and ZeRO-2)', async () => {
  const base = micro(true);
  const cfg: ModelConfig = { ...base, moe: { ...base.moe!, experts: 64, topK: 1, sharedExperts: 0 } };
  const init = new Transformer(cfg, be, { seed: 5 });
  const initial = new Map([...init.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync() as Float32Array)]));
  init.dispose();
  const ref = await single(cfg, 8);
  const untouched = [...ref.weights].filter(([n, w]) => w.every((x, i) => x === initial.get(n)![i])).map(([n]) => n);
  assert.ok(untouched.length > 0, 'some expert was chosen by no token in any step (otherwise this test checks nothing)');
  for (const zero of [0, 2] as const) {
    const got = await parallel(cfg, 2, zero, 4);
    for (const n of untouched) assert.deepEqual(got.weights.get(n), ref.weights.get(n), `ZeRO-${zero}: ${n} was updated (weight decay on a parameter without gradient)`);
    for (const r of got.ranks) {
      r.dp.dispose();
      r.model.dispose();
      r.loader.close();
    }
  }
});

test('ZeRO-2 with accumulation: an expert one rank\'s micro-batch chose and the other\'s did not gets both ranks\' gradient; one no rank chose stays untouched (dp2, 2 micro-batches)', async () => {
  const base = micro(true);
  const cfg: ModelConfig = { ...base, moe: { ...base.moe!, experts: 64, topK: 1, sharedExperts: 0 } };
  const init = new Transformer(cfg, be, { seed: 5 });
  const initial = new Map([...init.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync() as Float32Array)]));
  init.dispose();
  const ref = await single(cfg, 8);
  const got = await parallel(cfg, 2, 2, 2);
  for (let s = 0; s < STEPS; s++) close(got.out[0]![s]!.gradNorm, ref.out[s]!.gradNorm, 1e-4, `step ${s + 1} grad norm`);
  let untouched = 0;
  for (const [n, w] of ref.weights) {
    const g = got.weights.get(n)!;
    if (w.every((x, i) => x === initial.get(n)![i])) {
      untouched++;
      assert.deepEqual(g, w, `${n}: no token chose it, yet it was updated`);
      continue;
    }
    let worst = 0;
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
    assert.ok(worst < 1e-4, `${n}: max |difference| ${worst}`);
  }
  assert.ok(untouched > 0, 'some expert was chosen by no token (otherwise the untouched case is not checked)');
  for (const r of got.ranks) {
    r.dp.dispose();
    r.model.dispose();
    r.loader.close();
  }
});
