// Context parallelism composed in the pipeline executor, `zili train` under mpirun (2 cores,
// oversubscribed), against one process (global batch 8, micro-batch 2, same seed): `tiny` under
// cp2 x tp2 with and without sequence parallel and cp2 x pp2 (4 ranks each, 10 steps) gives per-step
// training and validation losses within 1e-5 relative, and cp2 x pp2's checkpoint of step 5 resumes in
// one process with the same losses; `tiny-moe` under cp2 x dp2 with ZeRO-1, without and with expert
// parallelism inside cp·dp (--ep 2), and under cp2 x tp2 (without sp; with sp and --ep 2; 5 steps: MoE
// is slow on 2 cores) gives the losses and balancing losses of one process. Skips with a printed reason when
// mpirun or the MPI binding is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../src/train/metrics.js';
import { assertLossesClose, copyRunAt, mpirunSkip, trainLosses } from './mpirun-train.js';

const skip = mpirunSkip('context-parallel composition tests');

const COMMON = ['train', '--global-batch', '8', '--micro-batch', '2', '--seed', '7', '--eval-every', '5', '--eval-batches', '2', '--threads', '1'];
const TINY = [...COMMON, '--preset', 'tiny', '--steps', '10'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-cp-compose-'));

let reference: number[] = [];

test('one process: the reference losses of tiny', { skip }, async () => {
  reference = await trainLosses(0, [...TINY, '--save-every', '0'], path.join(tmp, 'one'));
  assert.equal(reference.length, 12);
});

test('cp2 x tp2, with and without sequence parallel (4 ranks): the losses of one process', { skip }, async () => {
  assertLossesClose(await trainLosses(4, [...TINY, '--cp', '2', '--tp', '2', '--sp', '--save-every', '0'], path.join(tmp, 'cp2-tp2-sp')), reference, 'cp2 x tp2 (sp)');
  assertLossesClose(await trainLosses(4, [...TINY, '--cp', '2', '--tp', '2', '--save-every', '0'], path.join(tmp, 'cp2-tp2')), reference, 'cp2 x tp2');
});

test('cp2 x pp2 (4 ranks): the losses of one process; saved at step 5, resumed in one process: the same losses', { skip }, async () => {
  const out = path.join(tmp, 'cp2-pp2');
  assertLossesClose(await trainLosses(4, [...TINY, '--cp', '2', '--pp', '2', '--save-every', '5'], out), reference, 'cp2 x pp2');
  // the last stage's weights come from cp rank 0 of it: world rank 2 (mesh order tp-cp-dp-pp)
  const manifest = JSON.parse(fs.readFileSync(path.join(out, 'step-00000005', 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.shards.tensors['layers.3.attention.wo.weight'].pieces.map((p: { file: string }) => p.file), ['rank-00002.safetensors']);
  const again = path.join(tmp, 'cp2-pp2-to-one');
  copyRunAt(out, 5, again);
  assertLossesClose(await trainLosses(0, [...TINY, '--resume', '--save-every', '0'], again), reference, 'cp2 x pp2 -> one process');
});

/** per-step training losses and balancing losses, then the validation losses */
function moeLosses(out: string): number[] {
  const m = readMetrics(path.join(out, 'metrics.jsonl'));
  return [...m.map((x) => x.loss), ...m.map((x) => x['aux'] as number), ...m.flatMap((x) => (typeof x['valLoss'] === 'number' ? [x['valLoss']] : []))];
}

test('tiny-moe under cp2 x dp2 with ZeRO-1 (without and with --ep 2 inside cp·dp) and cp2 x tp2 (without sp; with sp and --ep 2), 4 ranks each: the losses and balancing losses of one process', { skip }, async () => {
  const MOE = [...COMMON, '--preset', 'tiny-moe', '--steps', '5', '--save-every', '0'];
  await trainLosses(0, MOE, path.join(tmp, 'moe-one'));
  const want = moeLosses(path.join(tmp, 'moe-one'));
  assert.equal(want.length, 11);
  assert.ok(want.slice(5, 10).every((a) => a > 0), 'the balancing loss is on');
  // with --ep 2 the expert grid's ep group is the cp pair: each cp rank's routed rows go to the rank holding their experts
  // under tp each tp rank routes its share of the cp rank's tokens (with --sp those it holds)
  const layouts = [
    ['cp2 x dp2 ZeRO-1', ['--dp', '2', '--zero', '1']],
    ['cp2 x dp2 x ep2 ZeRO-1', ['--dp', '2', '--zero', '1', '--ep', '2']],
    ['cp2 x tp2', ['--tp', '2']],
    ['cp2 x tp2 (sp) x ep2', ['--tp', '2', '--sp', '--ep', '2']],
  ] as const;
  for (const [name, extra] of layouts) {
    const out = path.join(tmp, `moe-${name.replace(/[ ()]/g, '')}`);
    await trainLosses(4, [...MOE, '--cp', '2', ...extra], out);
    moeLosses(out).forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-5 * Math.abs(want[i]!), `tiny-moe ${name}, value ${i} (${i < 5 ? 'loss' : i < 10 ? 'aux' : 'validation'}): ${x} vs one process ${want[i]}`));
  }
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
