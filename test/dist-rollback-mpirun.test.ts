// Numeric faults under model parallelism handled like one process handles them: under tp2 and pp2 (2
// ranks each, mpirun on 2 cores) an injected loss spike at step 10 rolls every rank back to the
// checkpoint of step 8 — each loading its own shards or stage of the whole tensors — and skips the
// spike's batch; under pp2 and pp2 x dp2 with ZeRO-1 (the pipeline executor) an injected NaN at step 5
// (on world rank 0) skips that step's update on every rank. The per-step losses equal one process given the same fault within
// 1e-5 relative. Skips with a printed reason when mpirun or the MPI binding is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../src/train/metrics.js';
import { mpirunSkip, zili } from './mpirun-zili.js';

const skip = mpirunSkip('spike rollback tests');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-rollback-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const COMMON = ['train', '--preset', 'tiny', '--steps', '12', '--global-batch', '4', '--micro-batch', '2', '--seed', '7', '--eval-every', '0', '--threads', '1',
  '--save-every', '4', '--spike-z', '8', '--spike-window', '6', '--spike-skip', '1'];

async function run(np: number, name: string, extra: string[], fault = 'spike@10'): Promise<{ losses: number[]; log: string }> {
  const out = path.join(tmp, name);
  process.env['ZILI_FAULT'] = fault;
  try {
    const r = await zili(np, [...COMMON, '--out', out, ...extra], 360_000);
    assert.equal(r.code, 0, `${name} failed:\n${r.stderr.slice(-2000)}`);
    if (fault.startsWith('spike')) assert.match(r.stderr, /step 10: loss .* is a spike .*rolled back to .*step-00000008, skipping step\(s\) 10/, `${name}: no rollback logged`);
    else assert.match(r.stderr, /step 5: loss NaN, gradient norm .*: update skipped/, `${name}: no skip logged`);
    return { losses: readMetrics(path.join(out, 'metrics.jsonl')).map((m) => m.loss), log: r.stderr };
  } finally {
    delete process.env['ZILI_FAULT'];
  }
}

test('a spike under tp2 and under pp2 rolls back to the sharded checkpoint like one process', { skip }, async () => {
  const one = await run(0, 'one', []);
  assert.equal(one.losses.length, 11, 'one process: 11 step lines (step 10 skipped)');
  for (const [name, args] of [['tp2', ['--tp', '2']], ['pp2', ['--pp', '2']]] as const) {
    const got = await run(2, name, [...args]);
    assert.equal(got.losses.length, one.losses.length, `${name}: ${got.losses.length} step lines`);
    got.losses.forEach((x, i) => assert.ok(Math.abs(x - one.losses[i]!) <= 1e-5 * Math.abs(one.losses[i]!), `${name}, line ${i + 1}: loss ${x} vs one process ${one.losses[i]}`));
  }
});

test('a NaN under pp2 and pp2 x dp2 with ZeRO-1 (the pipeline executor) skips that step\'s update on every rank like one process', { skip }, async () => {
  const one = await run(0, 'nan-one', [], 'nan@5');
  assert.equal(one.losses.length, 12);
  // a non-finite loss is written as null in the metrics
  assert.ok(one.losses[4] === null && one.losses.every((x, i) => i === 4 || Number.isFinite(x)), 'one process: NaN at step 5 only');
  for (const [name, np, args] of [['pp2', 2, ['--pp', '2']], ['pp2 x dp2 ZeRO-1', 4, ['--pp', '2', '--dp', '2', '--zero', '1']]] as const) {
    const got = await run(np, `nan-${name.replace(/ /g, '')}`, [...args], 'nan@5');
    assert.equal(got.losses.length, one.losses.length, `${name}: ${got.losses.length} step lines`);
    got.losses.forEach((x, i) =>
      assert.ok(i === 4 ? x === null : Math.abs(x - one.losses[i]!) <= 1e-5 * Math.abs(one.losses[i]!), `${name}, step ${i + 1}: loss ${x} vs one process ${one.losses[i]}`),
    );
  }
});
