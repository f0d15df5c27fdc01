// The training loop on a micro model and a synthetic dataset: --resume continues bit-exactly
// (dense with gradient accumulation, and MoE with bias balancing), --exit-after saves and stops,
// Ctrl-C saves at the end of the step, metrics lines carry the required fields, and bad input
// (vocabulary mismatch, another model's checkpoint, no checkpoint, a model too large for memory,
// unknown preset, distributed flags) is refused with a clear error before anything is allocated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDataset } from './data-helpers.js';
import { getBackend } from '../src/backend/registry.js';
import type { ModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { lrAt } from '../src/optim/schedule.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { readMetrics } from '../src/train/metrics.js';
import { makeTrainConfig, type TrainConfig } from '../src/train/train-config.js';
import { trainRun, type TrainHooks } from '../src/train/trainer.js';
import { estimateTrainMemory } from '../src/train/memory-check.js';
import { run as trainCli } from '../src/cli/train.js';

const root = mkdtempSync(join(tmpdir(), 'zili-trainer-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const dataDir = join(root, 'data');
mkdirSync(dataDir);
makeDataset(dataDir, [3000, 2000], [600], 64);
const manifest = join(dataDir, 'manifest.json');

const micro = (moe = false): ModelConfig => ({
  ...preset(moe ? 'tiny-moe' : 'tiny'), name: moe ? 'micro-moe' : 'micro', layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnHidden: 48, vocab: 64, seqLen: 16,
  ...(moe ? { moe: { ...preset('tiny-moe').moe!, experts: 4, topK: 2, expertFfnHidden: 16, denseLayers: 1, balance: 'bias' as const, biasUpdateRate: 0.01 } } : {}),
});

let runs = 0;
function config(over: Partial<TrainConfig> = {}, model = micro()): TrainConfig {
  const out = join(root, `run-${runs++}`);
  return makeTrainConfig(model, out, {
    steps: 12, globalBatch: 4, microBatch: 2, seqLen: 16, data: manifest, metrics: join(out, 'metrics.jsonl'),
    evalEvery: 5, evalBatches: 2, saveEvery: 0, lr: 1e-2, warmup: 2, ...over,
  });
}
const quiet: TrainHooks = { log: () => {}, progressStream: { write: () => true }, handleSignals: false };
const losses = (c: TrainConfig) => readMetrics(c.metrics!).map((r) => r.loss);

for (const moe of [false, true]) {
  test(`--exit-after then --resume gives bit-identical losses and weights (${moe ? 'MoE, bias balancing' : 'dense, 2 micro-batches'})`, async () => {
    const straight = config({}, micro(moe));
    const a = await trainRun(straight, quiet);
    assert.equal(a.status, 'completed');
    const split = config({ exitAfter: 5 }, micro(moe));
    const b1 = await trainRun(split, quiet);
    assert.equal(b1.status, 'exited');
    assert.equal(b1.step, 5);
    const b2 = await trainRun({ ...split, exitAfter: null, resume: true }, quiet);
    assert.equal(b2.status, 'completed');
    assert.equal(b2.step, 12);
    assert.deepEqual(losses(split), losses(straight));
    assert.equal(losses(straight).length, 12);
    assert.ok(losses(straight)[11]! < losses(straight)[0]!, 'the loss falls');
    const ca = loadCheckpoint(straight.out), cb = loadCheckpoint(split.out);
    for (const [name, t] of Object.entries(ca.tensors)) assert.deepEqual(cb.tensors[name]!.data, t.data, name);
    assert.deepEqual(cb.optimizer!.tensors, ca.optimizer!.tensors, 'router biases');
    assert.deepEqual(cb.data, ca.data, 'data position');
    if (moe) assert.ok(Object.keys(ca.optimizer!.tensors!).length > 0, 'MoE routing biases are saved');
  });
}

test('--exit-after writes a checkpoint and stops; metrics have one line per step with the required fields', async () => {
  const c = config({ exitAfter: 6, steps: 20, evalEvery: 3 });
  const r = await trainRun(c, quiet);
  assert.equal(r.status, 'exited');
  assert.equal(r.step, 6);
  assert.ok(existsSync(join(c.out, 'step-00000006', 'manifest.json')));
  assert.ok(!existsSync(join(c.out, 'step-00000007')));
  const m = readMetrics(c.metrics!);
  assert.deepEqual(m.map((x) => x.step), [1, 2, 3, 4, 5, 6]);
  for (const x of m) {
    for (const k of ['loss', 'lr', 'tokensPerSec', 'gradNorm', 'mfu', 'elapsedS', 'tokens', 'stepS']) assert.equal(typeof x[k], 'number', `${k} of step ${x.step}`);
    assert.deepEqual(x['rankStepS'], [x['stepS']], 'one process: its own step time is the slowest rank\'s');
    assert.equal(x.lr, lrAt(x.step, { maxLr: c.lr, minLr: c.minLr, warmupSteps: c.warmup, totalSteps: c.steps }), 'the schedule spans --steps');
    assert.equal(typeof x['valLoss'], x.step % 3 === 0 ? 'number' : 'undefined');
  }
  const ck = loadCheckpoint(c.out);
  assert.equal(ck.step, 6);
  assert.equal((ck.optimizer!.state as { step: number }).step, 6);
});

test('Ctrl-C: the step finishes, a checkpoint is saved, the run reports interrupted', async () => {
  const c = config({ steps: 50 });
  const r = await trainRun(c, { ...quiet, handleSignals: true, onStep: (m) => { if (m.step === 3) process.emit('SIGINT', 'SIGINT'); } });
  assert.equal(r.status, 'interrupted');
  assert.equal(r.step, 3);
  assert.equal(loadCheckpoint(c.out).step, 3);
  assert.equal(process.listenerCount('SIGINT'), 0, 'handlers removed');
  const more = await trainRun({ ...c, resume: true, exitAfter: 4 }, quiet);
  assert.equal(more.step, 4);
});

test('bad input is refused before any tensor is allocated', async () => {
  const be = await getBackend('cpu');
  const live = be.memory().liveBuffers;
  await assert.rejects(trainRun(config({}, { ...micro(), vocab: 40 }), quiet), /vocabulary mismatch.*64-token.*vocab 40/);
  await assert.rejects(trainRun(config({ resume: true }), quiet), /--resume: no complete checkpoint/);
  const tooBig = config();
  await assert.rejects(trainRun(tooBig, { ...quiet, memoryAvailable: estimateTrainMemory(tooBig).total - 1 }), /needs about .* available; nothing was allocated\. Use a smaller --micro-batch/);
  await assert.rejects(trainRun(config({}, { ...preset('7b'), vocab: 64 }), quiet), /model '7b' needs about .*a smaller model/);
  assert.equal(be.memory().liveBuffers, live);
  assert.ok(!existsSync(tooBig.out), 'nothing written');

  const first = config({ steps: 2 });
  await trainRun(first, quiet);
  await assert.rejects(trainRun({ ...first }, quiet), /already holds a run .* pass --resume/);
  await assert.rejects(trainRun({ ...first, model: { ...micro(), dModel: 16 }, resume: true }, quiet), /from another model .*dModel 32 vs 16/);
  assert.equal(be.memory().liveBuffers, live);
});

test('a missing or truncated shard is reported before the model is allocated, and a damaged block mid-run loses no checkpoint', async () => {
  const be = await getBackend('cpu');
  const live = be.memory().liveBuffers;
  const dir = join(root, 'bad-data');
  mkdirSync(dir);
  makeDataset(dir, [3000, 2000], [600], 64);
  const m = join(dir, 'manifest.json');
  truncateSync(join(dir, 'train-1.bin'), 1000);
  await assert.rejects(trainRun(config({ data: m }), quiet), /shard '.*train-1\.bin' is truncated.*re-run `zili prepare`/);
  makeDataset(dir, [3000, 2000], [600], 64);
  rmSync(join(dir, 'val-0.bin'));
  await assert.rejects(trainRun(config({ data: m }), quiet), /shard '.*val-0\.bin' cannot be opened/);
  assert.equal(be.memory().liveBuffers, live);

  makeDataset(dir, [3000, 2000], [600], 64);
  const c = config({ data: m, steps: 40 });
  await trainRun({ ...c, exitAfter: 2 }, quiet);
  const bytes = new Uint8Array(readFileSync(join(dir, 'train-0.bin')));
  for (let i = 200; i < bytes.length; i += 97) bytes[i]! ^= 0x5a; // damage token blocks, keep the header
  writeFileSync(join(dir, 'train-0.bin'), bytes);
  await assert.rejects(trainRun({ ...c, resume: true }, quiet), /checksum mismatch/);
  assert.equal(loadCheckpoint(c.out).step, 2, 'the checkpoint is intact');
  assert.equal(be.memory().liveBuffers, live, 'the failed run freed its tensors');
});

test('zili train: unknown preset, distributed layouts, bad batch geometry', async () => {
  await assert.rejects(trainCli(['--preset', 'nope']), /unknown preset 'nope'. Known presets: tiny/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--ep', '2']), /--ep 2: model 'tiny' has no MoE layers; use --ep 1 or an MoE model/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--pp', '2']), /--pp 2 x --dp 1 needs 2 ranks but the job has 1; launch it with mpirun -np 2/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--pp', '7']), /--pp 7 --vpp 1: pp·vpp = 7 chunks exceeds the model's 4 layers \+ 2/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--dp', '2']), /--dp 2 needs 2 ranks but this process runs alone; launch it with mpirun -np 2/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--zero', '1']), /with --dp 1 use --zero 0/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--dp', '4', '--global-batch', '6']), /not a multiple of --micro-batch 1 x --dp 4 = 4 .*use --global-batch 8/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--global-batch', '6', '--micro-batch', '4']), /not a multiple of --micro-batch/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--seq', '4096']), /exceeds the model's context/);
  await assert.rejects(trainCli(['--preset', 'tiny', '--step', '3']), /unknown option --step/);
});
