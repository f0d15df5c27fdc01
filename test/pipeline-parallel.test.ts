// The pipeline executor in one process: pp ranks over loopback communicators, each holding only its
// chunks of the same Transformer, run gpipe, 1F1B and interleaved schedules (with the
// embedding-only and loss-only chunks when pp·vpp = layers + 2) and give the losses, gradient norms
// and weights of one process running the same micro-batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import type { Batch, TokenLoader } from '../src/data/loader.js';
import { preset } from '../src/nn/presets.js';
import type { ModelConfig } from '../src/nn/config.js';
import { Transformer } from '../src/nn/transformer.js';
import { AdamW, defaultAdamW } from '../src/optim/adamw.js';
import { trainStep } from '../src/train/step.js';
import { validationLoss } from '../src/train/evaluate.js';
import { tapeLength } from '../src/tensor/autograd.js';
import { PipelineParallel } from '../src/dist/pipeline-parallel.js';
import type { ScheduleKind } from '../src/dist/pipeline-schedule.js';
import { loopbackGroup } from './dist-loopback.js';

const be = new ReferenceBackend();
const cfg = { ...preset('tiny'), name: 'micro', layers: 2, dModel: 16, heads: 4, kvHeads: 2, ffnHidden: 24, vocab: 40, seqLen: 8 };
const B = 2, S = 8, ACCUM = 4, STEPS = 3;

function fakeLoader(): TokenLoader {
  let k = 0;
  const next = (): Batch => {
    k++;
    const input = Int32Array.from({ length: B * S }, (_, i) => (i * 7 + k * 13) % cfg.vocab);
    const target = Int32Array.from({ length: B * S }, (_, i) => (i * 5 + k * 3 + 1) % cfg.vocab);
    return { input, target } as Batch;
  };
  return { batch: B, seqLen: S, next } as unknown as TokenLoader;
}

const adamw = { ...defaultAdamW(), clipNorm: 0.5 };

async function reference(tied: boolean, config: ModelConfig = cfg) {
  const m = new Transformer({ ...config, tiedEmbeddings: tied }, be, { seed: 5 });
  const opt = new AdamW(m.params, adamw);
  const loader = fakeLoader();
  const out = [];
  for (let s = 0; s < STEPS; s++) out.push((await trainStep(m, opt, loader, ACCUM, 1e-2))!);
  const weights = new Map([...m.params.tensors].map(([n, p]) => [n, Array.from(p.dataSync() as Float32Array)]));
  const biases = [...m.routerBias.values()].map((b) => Array.from(b));
  m.dispose();
  return { out, weights, biases };
}

for (const [kind, pp, vpp, tied] of [['1f1b', 2, 1, true], ['gpipe', 2, 1, false], ['interleaved', 2, 2, true], ['1f1b', 4, 1, false]] as [ScheduleKind, number, number, boolean][])
  test(`pipeline ${kind} pp${pp} vpp${vpp}${tied ? ' (tied embeddings)' : ''} = one process`, async () => {
    const want = await reference(tied);
    const group = loopbackGroup(pp);
    const ranks = group.map((comm) => new PipelineParallel(new Transformer({ ...cfg, tiedEmbeddings: tied }, be, { seed: 5 }), comm, { vpp, schedule: kind, adamw }));
    const loaders = ranks.map(() => fakeLoader());
    for (let s = 0; s < STEPS; s++) {
      const got = await Promise.all(ranks.map((r, i) => r.runStep(loaders[i]!, ACCUM, 1e-2)));
      for (const g of got) {
        assert.ok(Math.abs(g.loss - want.out[s]!.loss) <= 1e-5 * want.out[s]!.loss, `step ${s}: loss ${g.loss} vs ${want.out[s]!.loss}`);
        assert.ok(Math.abs(g.gradNorm - want.out[s]!.gradNorm) <= 1e-4 * want.out[s]!.gradNorm, `step ${s}: grad norm ${g.gradNorm} vs ${want.out[s]!.gradNorm}`);
      }
    }
    assert.equal(tapeLength(), 0, 'every micro-batch graph was consumed');
    const seen = new Set<string>();
    for (const r of ranks)
      for (const [name, p] of r.model.params.tensors) {
        seen.add(name);
        const w = want.weights.get(name)!;
        (p.dataSync() as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - w[i]!) <= 1e-5 * (1 + Math.abs(w[i]!)), `${name}[${i}]: ${v} vs ${w[i]}`));
      }
    assert.deepEqual([...seen].sort(), [...want.weights.keys()].sort(), 'the stages together hold every parameter');
    if (pp * vpp === cfg.layers + 2) assert.deepEqual([ranks[0]!.parts[0], ranks[0]!.parts[3]].map((p) => p!.hi - p!.lo), [0, 0], 'embedding-only and loss-only chunks');
    for (const r of ranks) r.model.dispose(), r.dispose();
  });

for (const balance of ['aux-loss', 'bias'] as const)
  test(`MoE (${balance} balancing) under pp2: losses, balancing losses, weights and routing biases of one process`, async () => {
    // three layers over two stages: the first stage's MoE layers add their balancing loss to its backward
    const moe = { ...cfg, layers: 3, tiedEmbeddings: false, moe: { experts: 4, topK: 2, expertFfnHidden: 8, sharedExperts: 1, denseLayers: 0, balance, auxLossCoef: 0.01, biasUpdateRate: 1e-2 } };
    const want = await reference(false, moe);
    const ranks = loopbackGroup(2).map((comm) => new PipelineParallel(new Transformer(moe, be, { seed: 5 }), comm, { vpp: 1, schedule: '1f1b', adamw }));
    const loaders = ranks.map(() => fakeLoader());
    for (let s = 0; s < STEPS; s++) {
      const got = await Promise.all(ranks.map((r, i) => r.runStep(loaders[i]!, ACCUM, 1e-2)));
      const w = want.out[s]!;
      for (const g of got)
        for (const k of ['loss', 'aux', 'gradNorm'] as const) assert.ok(Math.abs(g[k] - w[k]) <= 1e-5 * Math.abs(w[k]) + 1e-9, `step ${s}: ${k} ${g[k]} vs one process ${w[k]}`);
      if (balance === 'aux-loss') assert.ok(w.aux > 0, 'the balancing loss takes part');
    }
    for (const r of ranks)
      for (const [name, p] of r.model.params.tensors) {
        const w = want.weights.get(name)!;
        (p.dataSync() as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - w[i]!) <= 1e-5 * (1 + Math.abs(w[i]!)), `${name}[${i}]: ${v} vs ${w[i]}`));
      }
    // each stage moves the routing biases of its own layers (layers 0, 1 on the first, 2 on the second)
    const biases = [0, 1, 2].map((i) => Array.from(ranks[i < 2 ? 0 : 1]!.model.routerBias.get(i) ?? []));
    if (balance === 'bias') {
      assert.ok(want.biases.some((b) => b.some((x) => x !== 0)), 'the biases moved');
      biases.forEach((b, i) => b.forEach((x, e) => assert.ok(Math.abs(x - want.biases[i]![e]!) <= 1e-9, `layer ${i} expert ${e}: bias ${x} vs ${want.biases[i]![e]}`)));
    }
    for (const r of ranks) r.model.dispose(), r.dispose();
  });

test('validation through the pipeline = one process (embedding-only and loss-only chunks)', async () => {
  const ref = new Transformer(cfg, be, { seed: 5 });
  const openVal = () => Object.assign(fakeLoader(), { close: () => {} });
  const want = await validationLoss(ref, openVal, 2);
  ref.dispose();
  const ranks = loopbackGroup(2).map((comm) => new PipelineParallel(new Transformer(cfg, be, { seed: 5 }), comm, { vpp: 2, schedule: 'interleaved', adamw }));
  const got = await Promise.all(ranks.map((r) => r.validationLoss(openVal, 2)));
  for (const g of got) assert.ok(Math.abs(g - want) <= 1e-6 * want, `validation ${g} vs one process ${want}`);
  for (const r of ranks) r.model.dispose(), r.dispose();
});
