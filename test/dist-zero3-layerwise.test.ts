// ZeRO-3 layer by layer (src/dist/zero3-gather.ts) on the local communicator (a world of one, whose
// collectives complete at their call, so the blocking waits of layer-by-layer gathering work in one
// process): at most two blocks' gathered weights are alive whenever a block computes, in forward and
// in the recomputing backward; the gather of the next block is issued before a block computes; the
// losses and weights are those of one process without ZeRO (gradients accumulated over re-gathered
// leaves); and the step's peak memory is below gathering every weight at the start of the step.
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
import { DataParallel } from '../src/dist/data-parallel.js';
import { LocalCommunicator } from '../src/dist/local.js';
import type { GatherEvent } from '../src/dist/zero3-gather.js';
import type { Storage } from '../src/tensor/tensor.js';
import { makeDataset } from './data-helpers.js';

// weights outweigh activations, so gathering them all at once shows in the peak
const cfg: ModelConfig = { ...preset('tiny'), name: 'z3', layers: 6, dModel: 64, heads: 4, kvHeads: 2, ffnHidden: 192, vocab: 64, seqLen: 8 };
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-z3-'));
const data = makeDataset(dir, [4000], [], 64);
const adamw = { ...defaultAdamW(), clipNorm: 0.5 };
const STEPS = 2, BATCH = 2, ACCUM = 2, LR = 1e-2;
const blockBytes = (m: Transformer) => 4 * [...m.params.tensors].filter(([n]) => n.startsWith('layers.0.')).reduce((s, [, t]) => s + t.numel, 0);

async function single(recompute: 'none' | 'full') {
  const model = new Transformer(cfg, new CpuBackend(), { seed: 5, recompute });
  const opt = new AdamW(model.params, adamw);
  const loader = TokenLoader.open(data, { split: 'train', batch: BATCH, seqLen: cfg.seqLen, seed: 3 });
  const losses: number[] = [];
  for (let s = 0; s < STEPS; s++) losses.push((await trainStep(model, opt, loader, ACCUM, LR))!.loss);
  const weights = new Map([...model.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync() as Float32Array)]));
  loader.close();
  opt.dispose();
  model.dispose();
  return { losses, weights };
}

async function zero3(recompute: 'none' | 'full', gatherAllAtStart = false) {
  const be = new CpuBackend();
  const model = new Transformer(cfg, be, { seed: 5, recompute });
  const events: GatherEvent[] = [];
  // every gathered weight and gather buffer; live = its storage still holds a reference (ours or the graph's)
  const seen = new Set<Storage>();
  let maxLive = 0;
  const dp = new DataParallel(model, new LocalCommunicator(), {
    zero: 3, bucketBytes: 4096, adamw, gatherAllAtStart,
    onGather: (e) => {
      events.push(e);
      for (const t of e.tensors) seen.add(t.storage);
      if (e.phase === 'compute') maxLive = Math.max(maxLive, [...seen].reduce((s, st) => s + (st.refs > 0 ? st.buf.numel * 4 : 0), 0));
    },
  });
  const loader = TokenLoader.open(data, { split: 'train', batch: BATCH, seqLen: cfg.seqLen, seed: 3 });
  const losses: number[] = [];
  be.resetPeak();
  for (let s = 0; s < STEPS; s++) losses.push((await dp.runStep(loader, ACCUM, LR)).loss);
  const peak = be.memory().peakBytes;
  const weights = await dp.withFullParams(async () => new Map([...model.params.tensors].map(([n, t]) => [n, Array.from(t.dataSync() as Float32Array)])));
  const block = blockBytes(model);
  loader.close();
  dp.dispose();
  model.dispose();
  return { losses, weights, events, maxLive, peak, block };
}

function assertSameTraining(got: { losses: number[]; weights: Map<string, number[]> }, ref: { losses: number[]; weights: Map<string, number[]> }) {
  got.losses.forEach((l, s) => assert.ok(Math.abs(l - ref.losses[s]!) <= 1e-5 * Math.abs(ref.losses[s]!), `step ${s + 1}: loss ${l} vs one process ${ref.losses[s]}`));
  for (const [n, w] of ref.weights) {
    const g = got.weights.get(n)!;
    let worst = 0;
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(g[i]! - w[i]!));
    assert.ok(worst < 1e-5, `${n}: max |difference| ${worst}`);
  }
}

/** Index of the first event matching. */
const at = (events: GatherEvent[], phase: GatherEvent['phase'], pass: GatherEvent['pass'], block: number, from = 0) =>
  events.findIndex((e, k) => k >= from && e.phase === phase && e.pass === pass && e.block === block);

test('ZeRO-3 layer by layer with recomputation: at most two blocks gathered at once, the next gather issued before a block computes, the training of one process', async () => {
  const ref = await single('full');
  const got = await zero3('full');
  assertSameTraining(got, ref);
  assert.ok(got.maxLive > 0 && got.maxLive <= 2 * got.block, `live gathered weights peaked at ${got.maxLive} bytes; two blocks are ${2 * got.block}`);
  // every micro-batch: forward 0..L-1, then backward L-1..0
  let from = 0;
  for (let m = 0; m < STEPS * ACCUM; m++) {
    for (let i = 0; i < cfg.layers; i++) {
      const compute = at(got.events, 'compute', 'forward', i, from);
      assert.ok(compute >= 0, `micro-batch ${m}: block ${i} computed forward`);
      if (i + 1 < cfg.layers) {
        const issue = at(got.events, 'issue', 'forward', i + 1, from);
        assert.ok(issue >= 0 && issue < compute, `micro-batch ${m}: block ${i + 1}'s gather issued before block ${i} computes forward`);
      }
      from = compute;
    }
    for (let i = cfg.layers - 1; i >= 0; i--) {
      const compute = at(got.events, 'compute', 'backward', i, from);
      assert.ok(compute >= 0, `micro-batch ${m}: block ${i} gathered for its backward`);
      if (i > 0) {
        const issue = at(got.events, 'issue', 'backward', i - 1, from);
        assert.ok(issue >= 0 && issue < compute, `micro-batch ${m}: block ${i - 1}'s gather issued before block ${i}'s backward`);
      }
      from = compute;
    }
  }
  const all = await zero3('full', true);
  assert.equal(all.events.length, 0, 'gathering everything at the start reports no layer-by-layer events');
  assertSameTraining(all, ref);
  assert.ok(got.peak < all.peak - got.block, `peak ${got.peak} bytes layer by layer vs ${all.peak} gathering all at the start`);
});

test('ZeRO-3 layer by layer without recomputation: the graph keeps the weights it saved until backward (no gathers in backward), the training of one process', async () => {
  const ref = await single('none');
  const got = await zero3('none');
  assertSameTraining(got, ref);
  assert.equal(got.events.filter((e) => e.pass === 'backward').length, 0);
  // the forward still gathers block by block, prefetching the next
  for (let i = 0; i + 1 < cfg.layers; i++) assert.ok(at(got.events, 'issue', 'forward', i + 1) < at(got.events, 'compute', 'forward', i), `block ${i + 1} prefetched`);
  // measured, not wished: by the last block's forward the graph holds every block's weights
  assert.ok(got.maxLive >= cfg.layers * got.block, `live gathered weights ${got.maxLive} bytes; ${cfg.layers} blocks are ${cfg.layers * got.block}`);
});
