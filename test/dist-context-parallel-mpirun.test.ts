// `zili train --cp` under mpirun (2 cores, oversubscribed), against one process: 10 steps of `tiny`
// (global batch 8, micro-batch 2, same seed) under cp2 give per-step training and validation losses
// within 1e-5 relative; its checkpoint of step 5 resumes in one process with the same losses; cp2 x dp2
// with ZeRO-1 (4 ranks) gives the same losses; layouts that do not fit are refused with
// messages naming the fix. Skips with a printed reason when mpirun or the MPI binding is missing.
// (Its compositions with tp, pp and MoE: dist-context-compose-mpirun.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertLossesClose as assertClose, copyRunAt, launchZili as launch, mpirunSkip, trainLosses } from './mpirun-train.js';

const skip = mpirunSkip('context-parallel tests');

if (skip) console.log(`# skipping the context-parallel mpirun tests: ${skip}`);
const COMMON = ['train', '--preset', 'tiny', '--steps', '10', '--global-batch', '8', '--micro-batch', '2', '--seed', '7', '--eval-every', '5', '--eval-batches', '2', '--threads', '1'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-cp-'));

let reference: number[] = [];

test('one process: the reference losses', { skip }, async () => {
  reference = await trainLosses(0, [...COMMON, '--save-every', '0'], path.join(tmp, 'single'));
  assert.equal(reference.length, 12);
});

test('cp2: the losses of one process; saved at step 5, resumed in one process: the same losses', { skip }, async () => {
  const out = path.join(tmp, 'cp2');
  assertClose(await trainLosses(2, [...COMMON, '--cp', '2', '--save-every', '5'], out), reference, 'cp2');
  const again = path.join(tmp, 'cp2-to-single');
  copyRunAt(out, 5, again);
  assertClose(await trainLosses(0, [...COMMON, '--resume', '--save-every', '0'], again), reference, 'cp2 -> one process');
});

test('cp2 x dp2 with ZeRO-1 (4 ranks, in the pipeline executor): the losses of one process', { skip }, async () => {
  // (the executor evaluates the same validation batches on every replica, so those compare too)
  const got = await trainLosses(4, [...COMMON, '--cp', '2', '--dp', '2', '--zero', '1', '--save-every', '0'], path.join(tmp, 'cp2-dp2'));
  assertClose(got, reference, 'cp2 x dp2 ZeRO-1');
});

test('cp refusals: a sequence 2cp does not divide, a job that does not fit, recomputation, an --ep that does not divide the experts, ZeRO-2 under tp', { skip }, async () => {
  const refused = path.join(tmp, 'cp-refused');
  const seq = await launch(0, [...COMMON, '--out', refused, '--cp', '2', '--seq', '126']);
  assert.notEqual(seq.code, 0);
  assert.match(seq.stderr, /--cp 2 cuts each sequence into 2 x 2 = 4 equal chunks \(causal load balancing\), which --seq 126 is not a multiple of; use --seq 124/);
  const world = await launch(0, [...COMMON, '--out', refused, '--cp', '2']);
  assert.notEqual(world.code, 0);
  assert.match(world.stderr, /--cp 2 x --dp 1 needs 2 ranks but the job has 1; launch it with mpirun -np 2/);
  const world4 = await launch(0, [...COMMON, '--out', refused, '--cp', '2', '--pp', '2']);
  assert.match(world4.stderr, /--cp 2 x --pp 2 x --dp 1 needs 4 ranks but the job has 1; launch it with mpirun -np 4/);
  const recompute = await launch(0, [...COMMON, '--out', refused, '--cp', '2', '--recompute', 'full']);
  assert.match(recompute.stderr, /--cp 2: activation recomputation under context parallelism is not implemented yet; use --recompute none/);
  const ep = await launch(0, [...COMMON, '--out', refused, '--preset', 'tiny-moe', '--cp', '2', '--tp', '2', '--ep', '3']);
  assert.match(ep.stderr, /--ep 3 does not divide the 8 experts of model 'tiny-moe'/);
  const zero = await launch(0, [...COMMON, '--out', refused, '--cp', '2', '--tp', '2', '--dp', '2', '--zero', '2']);
  assert.match(zero.stderr, /--cp 2 with --zero 2: under --tp, --pp or an MoE model context parallelism runs in the pipeline executor, which has ZeRO-1 only; use --zero 1 or 0/);
  assert.ok(!fs.existsSync(refused), 'nothing written');
});
