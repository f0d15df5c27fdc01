// Numerical faults and asynchronous checkpoints in the training loop (one process, a micro model):
// an injected NaN skips exactly that step's update (the run equals one told to skip that step), a run
// without the guard stops; an injected loss spike rolls back to the last checkpoint and skips the
// spike's batches, reproducibly (the run equals a fresh one given the same skip list); background
// checkpoints hold the same bytes as synchronous ones; a process killed in the middle of a background
// write leaves the previous checkpoint as the latest and resumes from it; --save-every auto follows
// Young/Daly; the fault switch, the spike threshold and the launcher's failure report parse as meant.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDataset } from './data-helpers.js';
import type { ModelConfig } from '../src/nn/config.js';
import { preset } from '../src/nn/presets.js';
import { readMetricEvents, readMetrics } from '../src/train/metrics.js';
import { makeTrainConfig, type TrainConfig } from '../src/train/train-config.js';
import { trainRun, type TrainHooks } from '../src/train/trainer.js';
import { latestCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';
import { DEFAULT_FAULT_TOLERANCE, type FaultToleranceConfig } from '../src/train/fault/config.js';
import { parseFaults } from '../src/train/fault/inject.js';
import { SpikeGuard } from '../src/train/fault/spike-guard.js';
import { SKIP_FILE } from '../src/train/fault/skip-list.js';
import { parseFailure } from '../src/train/fault/failure.js';
import { autoSaveEvery } from '../src/train/fault/runtime.js';
import { daly } from '../src/plan/reliability.js';
import { repoRoot } from '../src/util/paths.js';

const root = mkdtempSync(join(tmpdir(), 'zili-ft-numeric-'));
process.on('exit', () => rmSync(root, { recursive: true, force: true }));
const dataDir = join(root, 'data');
mkdirSync(dataDir);
makeDataset(dataDir, [3000, 2000], [600], 64);
const manifest = join(dataDir, 'manifest.json');
const micro: ModelConfig = { ...preset('tiny'), name: 'micro', layers: 2, dModel: 32, heads: 4, kvHeads: 2, ffnHidden: 48, vocab: 64, seqLen: 16 };

let runs = 0;
function config(over: Partial<TrainConfig> = {}, fault: Partial<FaultToleranceConfig> = {}): TrainConfig {
  const out = join(root, `run-${runs++}`);
  return makeTrainConfig(micro, out, {
    steps: 14, globalBatch: 4, microBatch: 2, seqLen: 16, data: manifest, metrics: join(out, 'metrics.jsonl'),
    evalEvery: 0, saveEvery: 4, lr: 1e-2, warmup: 2, fault: { ...DEFAULT_FAULT_TOLERANCE, ...fault }, ...over,
  });
}
const quiet: TrainHooks = { log: () => {}, progressStream: { write: () => true }, handleSignals: false };
/** hooks that keep the lines printed above the progress bar */
const capture = (lines: string[]): TrainHooks => ({ ...quiet, progressStream: { write: (s: string) => (lines.push(s), true) } });

/** runs with ZILI_FAULT set for this process */
async function withFault<T>(spec: string, fn: () => Promise<T>): Promise<T> {
  process.env['ZILI_FAULT'] = spec;
  try {
    return await fn();
  } finally {
    delete process.env['ZILI_FAULT'];
  }
}

function presetSkips(c: TrainConfig, steps: number[]): TrainConfig {
  mkdirSync(c.out, { recursive: true });
  writeFileSync(join(c.out, SKIP_FILE), JSON.stringify({ steps }) + '\n');
  return c;
}

function assertSameLosses(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, what);
  got.forEach((x, i) => assert.ok(Object.is(x, want[i]) || x === want[i], `${what}, step ${i + 1}: ${x} vs ${want[i]}`));
}

test('an injected NaN skips that step’s update: the run equals one told to skip the step; without the guard the run stops', async () => {
  const c = config();
  const r = await withFault('nan@5', () => trainRun(c, quiet));
  assert.equal(r.status, 'completed');
  assert.ok(Number.isNaN(r.losses[4]!), 'step 5 reports the NaN');
  const lines = readMetrics(c.metrics!);
  assert.equal(lines[4]!['skipped'], 'non-finite');
  assert.deepEqual(readMetricEvents(c.metrics!).filter((e) => e.event === 'skip').map((e) => [e.step, e['reason']]), [[5, 'non-finite']]);
  const ref = presetSkips(config(), [5]);
  const rr = await trainRun(ref, quiet);
  for (let i = 0; i < 14; i++) if (i !== 4) assert.equal(r.losses[i], rr.losses[i], `step ${i + 1}`);
  assert.ok(r.losses.every((x, i) => i === 4 || Number.isFinite(x)));

  await assert.rejects(withFault('nan@5', () => trainRun(config({}, { skipNonFinite: false }), quiet)), /the loss became NaN at step 5; lower --lr/);
});

test('an injected loss spike rolls back to the last checkpoint and skips its batches; a fresh run given the skip list computes the same', async () => {
  const spike = { z: 8, window: 6, skip: 1 };
  const c = config({}, { spike });
  const logs: string[] = [];
  const r = await withFault('spike@10', () => trainRun(c, capture(logs)));
  assert.equal(r.status, 'completed');
  assert.ok(logs.some((l) => /step 10: loss .* is a spike .*rolled back to .*step-00000008, skipping step\(s\) 10/.test(l)), logs.join('\n'));
  assert.deepEqual(JSON.parse(readFileSync(join(c.out, SKIP_FILE), 'utf8')), { steps: [10] });
  const lines = readMetrics(c.metrics!);
  // each step once after the rollback; the skipped step has its skip event, not a step line
  assert.deepEqual(lines.map((m) => m.step), Array.from({ length: 14 }, (_, i) => i + 1).filter((s) => s !== 10));
  const events = readMetricEvents(c.metrics!);
  assert.ok(events.some((e) => e.event === 'rollback' && e.step === 8 && e['spikeStep'] === 10));
  assert.ok(events.some((e) => e.event === 'skip' && e.step === 10 && e['reason'] === 'spike'));
  assert.equal(r.step, 14);

  const ref = presetSkips(config({}, { spike }), [10]);
  const rr = await trainRun(ref, quiet);
  assertSameLosses(lines.map((m) => m.loss), readMetrics(ref.metrics!).map((m) => m.loss), 'rolled-back run vs a run skipping step 10');
});

test('background checkpoints hold the bytes a synchronous save writes', async () => {
  const a = config({ steps: 8 }, { saveMode: 'async' });
  const b = config({ steps: 8 }, { saveMode: 'sync' });
  await trainRun(a, quiet);
  await trainRun(b, quiet);
  for (const step of ['step-00000004', 'step-00000008']) {
    const fa = loadCheckpoint(join(a.out, step)).manifest.files;
    const fb = loadCheckpoint(join(b.out, step)).manifest.files;
    assert.deepEqual(fa, fb, step);
  }
  const ev = readMetricEvents(a.metrics!).filter((e) => e.event === 'checkpoint');
  assert.deepEqual(ev.map((e) => [e.step, e['mode']]), [[4, 'async'], [8, 'async']]);
  for (const e of ev) assert.ok((e['stallS'] as number) <= (e['writeS'] as number));
});

test('a process killed during a background checkpoint write leaves the previous checkpoint as the latest, and resumes from it', () => {
  const out = join(root, 'killed');
  const zili = join(repoRoot(), 'bin', 'zili');
  const args = ['train', '--preset', 'tiny', '--layers', '1', '--d-model', '32', '--heads', '2', '--kv-heads', '1', '--ffn-hidden', '64', '--steps', '10', '--global-batch', '2', '--seq', '16', '--eval-every', '0', '--save-every', '4', '--threads', '1', '--out', out];
  const r = spawnSync(process.execPath, [zili, ...args], { env: { ...process.env, ZILI_FAULT: 'kill-in-save@8' }, encoding: 'utf8' });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  assert.match(r.stderr, /kill-in-save: pid \d+ kills itself with SIGKILL while writing/);
  const tmp = readdirSync(out).filter((f) => f.startsWith('.tmp-step-00000008-'));
  assert.equal(tmp.length, 1, 'the half-written folder is there');
  assert.ok(!existsSync(join(out, tmp[0]!, 'manifest.json')));
  assert.equal(latestCheckpoint(out, { warn: () => {} }), join(out, 'step-00000004'));
  const again = spawnSync(process.execPath, [zili, ...args, '--resume'], { env: { ...process.env, ZILI_FAULT: 'kill-in-save@8' }, encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /resumed from .*step-00000004 at step 4/);
  assert.equal(loadCheckpoint(out).step, 10);
});

test('--save-every auto: the interval after the first checkpoint is Young/Daly over the measured write and step times', async () => {
  const logs: string[] = [];
  const c = config({ steps: 16, saveEvery: 2 }, { autoSaveMtbfHours: 0.0002, saveMode: 'sync' });
  await trainRun(c, capture(logs));
  assert.ok(logs.some((l) => /--save-every auto: checkpoint write [\d.]+ s, MTBF [\d.e-]+ h, [\d.]+ s per step -> every \d+ steps \(Young\/Daly interval/.test(l)), logs.join(''));
  const chosen = readMetricEvents(c.metrics!).find((e) => e.event === 'save-interval')!;
  const every = chosen['every'] as number;
  assert.equal(every, autoSaveEvery(chosen['writeS'] as number, 0.0002, chosen['stepS'] as number));
  const saved = readMetricEvents(c.metrics!).filter((e) => e.event === 'checkpoint').map((e) => e.step);
  assert.equal(saved[0], 2);
  for (const s of saved.slice(1)) assert.ok(s % every === 0 || s === 16, `checkpoint at ${s} with interval ${every}`);
  assert.equal(autoSaveEvery(10, 1, 2), Math.round(daly(10, 3600) / 2));
});

test('ZILI_FAULT, the spike threshold and the launcher’s failure report', () => {
  assert.deepEqual(parseFaults('nan@3, kill@7:rank=1:always'), [
    { kind: 'nan', step: 3, rank: 0, always: false },
    { kind: 'kill', step: 7, rank: 1, always: true },
  ]);
  assert.throws(() => parseFaults('boom@3'), /ZILI_FAULT: 'boom@3' is not KIND@STEP/);
  assert.throws(() => parseFaults('kill@3:rnk=1'), /unknown option 'rnk=1'/);
  const g = new SpikeGuard({ z: 4, window: 8, skip: 1 });
  for (const x of [5, 5.1, 4.9, 5.05]) assert.equal(g.check(x), false);
  assert.ok(Math.abs(g.threshold() - (5.025 + 4 * 1.4826 * 0.05)) < 1e-9, `threshold ${g.threshold()}: median 5.025 + 4 x 1.4826 x MAD 0.05`);
  assert.equal(g.check(6), true, 'a loss far above the window');
  assert.equal(g.check(5.2), false);
  assert.deepEqual(new SpikeGuard(g.config, g.state()).state(), g.state(), 'the window survives a checkpoint');
  const mpi = 'mpirun noticed that process rank 1 with PID 4242 on node vm exited on signal 9 (Killed).\n';
  assert.deepEqual(parseFailure(mpi, 137, null, 12), { rank: 1, how: 'signal 9 (Killed)', step: 13, message: null });
  assert.deepEqual(parseFailure('zili train: no space left on the disk\n', 1, null, 3), { rank: null, how: 'exit status 1', step: 4, message: 'no space left on the disk' });
});
