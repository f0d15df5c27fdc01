// Expert parallelism composed in the pipeline executor (src/dist/expert-layers.ts), `zili train` under
// mpirun (2 cores, oversubscribed) against one process: 10 steps of tiny-moe (global batch 8,
// micro-batch 2, same seed) under tp2 x dp2 x ep2 (MoE under tensor parallelism, ep folded inside
// tp·dp: each tp rank's tokens go to the experts of the other) and pp2 x dp2 x ep2 with ZeRO-1 (4
// ranks each) give per-step training and validation losses within 1e-5 relative and gradient norms
// within 1e-4 (first 5 steps); each run's checkpoint (every expert written by the rank holding it)
// resumes under other layouts — one process, dp2 x ep2 with and without ZeRO-1 — with the same losses;
// dp4 x ep2 with ZeRO-1 shards the experts' moments over their 2 replicas and the rest over 4.
// Skips with a printed reason when mpirun or the MPI binding is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../src/train/metrics.js';
import { assertLossesClose, copyRunAt, mpirunSkip, trainLosses } from './mpirun-train.js';

const skip = mpirunSkip('expert-parallel composition tests');

const MOE = ['train', '--preset', 'tiny-moe', '--steps', '10', '--global-batch', '8', '--micro-batch', '2', '--seed', '7', '--eval-every', '5', '--threads', '1'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-ep-compose-'));

let want: number[] = [];
let wantNorms: number[] = [];
const norms = (out: string) => readMetrics(path.join(out, 'metrics.jsonl')).slice(0, 5).map((x) => x.gradNorm as number);

/** `zili` on np ranks (0: one process) with `extra` flags: its losses within 1e-5 of one process's, its first gradient norms within 1e-4 */
async function parity(np: number, name: string, extra: string[]): Promise<string> {
  const out = path.join(tmp, name);
  assertLossesClose(await trainLosses(np, [...MOE, ...extra], out), want, name);
  norms(out).forEach((g, i) => assert.ok(Math.abs(g - wantNorms[i]!) <= 1e-4 * wantNorms[i]!, `${name}, step ${i + 1}: gradient norm ${g} vs one process ${wantNorms[i]}`));
  return out;
}

/** The files holding a tensor's pieces in a run's step-5 checkpoint. */
function files(out: string, key: string): string[] {
  const index = JSON.parse(fs.readFileSync(path.join(out, 'step-00000005', 'manifest.json'), 'utf8')).shards.tensors;
  return index[key].pieces.map((p: { file: string }) => p.file);
}

/** Resumes a copy of run `from` at step 5 under np ranks with `extra` flags: the losses of one process. */
async function resumed(from: string, np: number, name: string, extra: string[]): Promise<void> {
  const again = path.join(tmp, name);
  copyRunAt(from, 5, again);
  assertLossesClose(await trainLosses(np, [...MOE, ...extra, '--resume', '--save-every', '0'], again), want, name);
}

test('one process: the reference losses of tiny-moe', { skip }, async () => {
  const out = path.join(tmp, 'one');
  want = await trainLosses(0, [...MOE, '--eval-batches', '2', '--save-every', '0'], out);
  wantNorms = norms(out);
  assert.equal(want.length, 12);
});

test('tiny-moe under tp2 x dp2 x ep2 = one process; saved under it, resumed on one process and under dp2 x ep2 with ZeRO-1', { skip }, async () => {
  const out = await parity(4, 'tp2-dp2-ep2', ['--eval-batches', '2', '--tp', '2', '--dp', '2', '--ep', '2', '--save-every', '5']);
  // mesh order tp-dp: ep rank 1 (experts 4-7) is tp rank 1 of the first replica; the router and the tp shards' first box from rank 0
  assert.deepEqual(files(out, 'layers.1.feed_forward.experts.5.w1.weight.m'), ['rank-00001.safetensors']);
  assert.deepEqual(files(out, 'layers.1.feed_forward.experts.2.w2.weight'), ['rank-00000.safetensors']);
  assert.deepEqual(files(out, 'layers.1.feed_forward.router.weight'), ['rank-00000.safetensors']);
  await resumed(out, 0, 'tp2-dp2-ep2-to-one', ['--eval-batches', '2']);
  // dp2 x ep2 without ZeRO (its own step loop) evaluates each rank's rows: 1 batch each is one process's 2
  await resumed(out, 2, 'tp2-dp2-ep2-to-dp2-ep2', ['--eval-batches', '1', '--dp', '2', '--ep', '2']);
});

test('tiny-moe under pp2 x dp2 x ep2 with ZeRO-1 = one process; saved under it, resumed under dp2 x ep2 with ZeRO-1', { skip }, async () => {
  const out = await parity(4, 'pp2-dp2-ep2-zero1', ['--eval-batches', '2', '--pp', '2', '--dp', '2', '--ep', '2', '--zero', '1', '--save-every', '5']);
  // the last stage's (world ranks 2, 3) ep rank 1 holds experts 4-7 of its layers
  assert.deepEqual(files(out, 'layers.3.feed_forward.experts.6.w3.weight.v'), ['rank-00003.safetensors']);
  assert.deepEqual(files(out, 'layers.1.feed_forward.experts.1.w1.weight'), ['rank-00000.safetensors']);
  await resumed(out, 2, 'pp2-dp2-ep2-to-dp2-ep2-zero1', ['--eval-batches', '2', '--dp', '2', '--ep', '2', '--zero', '1']);
});

test('tiny-moe under dp4 x ep2 with ZeRO-1 = one process: experts reduce-scattered over their 2 replicas, dense parameters over 4', { skip }, async () => {
  await parity(4, 'dp4-ep2-zero1', ['--eval-batches', '2', '--dp', '4', '--ep', '2', '--zero', '1', '--save-every', '0']);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
