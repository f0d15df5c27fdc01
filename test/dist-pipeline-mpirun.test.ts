// `zili train --pp` under mpirun (2 cores, oversubscribed), against one process: 10 steps of `tiny`
// (global batch 8, micro-batch 2, same seed) under pp2 (1F1B) and pp2 x vpp2 (interleaved) give
// per-step losses (and validation losses through the pipeline) within 1e-5 relative; a checkpoint saved under pp2 resumes under dp2 with the same
// losses. Layouts that do not fit are refused in one line before anything is allocated. Skips with a
// printed reason when mpirun or the MPI binding is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../src/train/metrics.js';
import { assertPeakWithinPlanner } from './memory-check.js';
import { mpirunSkip, ZILI, zili } from './mpirun-zili.js';

const skip = mpirunSkip('pipeline tests');

const COMMON = ['train', '--preset', 'tiny', '--steps', '10', '--global-batch', '8', '--micro-batch', '2', '--seed', '7', '--eval-every', '5', '--eval-batches', '2', '--threads', '1'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-pp-'));

async function lossesOf(np: number, name: string, extra: string[]): Promise<number[]> {
  const out = path.join(tmp, name);
  const r = await zili(np, [...COMMON, '--out', out, ...extra]);
  assert.equal(r.code, 0, `${name} failed:\n${r.stderr.slice(-2000)}`);
  const ms = readMetrics(path.join(out, 'metrics.jsonl'));
  valLosses.set(name, ms.flatMap((m) => (typeof m.valLoss === 'number' ? [m.valLoss] : [])));
  return ms.map((m) => m.loss);
}

/** the validation losses (every 5 steps) of each run, by run name */
const valLosses = new Map<string, number[]>();

function assertClose(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} steps logged, expected ${want.length}`);
  got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-5 * Math.abs(want[i]!), `${what}, step ${i + 1}: loss ${x} vs one process ${want[i]}`));
}

let reference: number[] = [];

test('one process: the reference losses', { skip }, async () => {
  reference = await lossesOf(0, 'one', []);
  assert.equal(reference.length, 10);
});

test('pp2 (1F1B) and pp2 x vpp2 (interleaved) = one process', { skip }, async () => {
  assertClose(await lossesOf(2, 'pp2', ['--pp', '2']), reference, 'pp2 1f1b');
  assertClose(await lossesOf(2, 'pp2vpp2', ['--pp', '2', '--vpp', '2']), reference, 'pp2 x vpp2 interleaved');
  assert.equal(valLosses.get('one')!.length, 2);
  for (const run of ['pp2', 'pp2vpp2']) assertClose(valLosses.get(run)!, valLosses.get('one')!, `${run} validation`);
  assertPeakWithinPlanner(path.join(tmp, 'pp2', 'metrics.jsonl'), { globalBatch: 8, microBatch: 2, pipeline: { pp: 2, vpp: 1, schedule: '1f1b' } }, 'pp2 1f1b');
  assertPeakWithinPlanner(path.join(tmp, 'pp2vpp2', 'metrics.jsonl'), { globalBatch: 8, microBatch: 2, pipeline: { pp: 2, vpp: 2, schedule: 'interleaved' } }, 'pp2 x vpp2');
});

test('saved under pp2, resumed under dp2: the same losses', { skip }, async () => {
  const first = await lossesOf(2, 'resume', ['--pp', '2', '--exit-after', '5']);
  const manifest = JSON.parse(fs.readFileSync(path.join(tmp, 'resume', 'step-00000005', 'manifest.json'), 'utf8'));
  assert.equal(manifest.shards.world, 2, 'both stages wrote their parameters');
  const second = await lossesOf(2, 'resume', ['--resume', '--dp', '2']);
  assertClose([...first, ...second.slice(5)], reference, 'pp2 then dp2');
});

test('layouts that do not fit are refused in one line', () => {
  const refused = (args: string[], re: RegExp) => {
    const r = spawnSync(process.execPath, [ZILI, ...COMMON, '--out', path.join(tmp, 'refused'), ...args], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, re);
    assert.equal(fs.existsSync(path.join(tmp, 'refused')), false, 'nothing written');
  };
  refused(['--pp', '2'], /needs 2 ranks but the job has 1; launch it with mpirun -np 2/);
  refused(['--pp', '2', '--schedule', 'zigzag'], /--schedule must be one of gpipe, 1f1b, interleaved/);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
