// Composed layouts of `zili train` under mpirun (2 cores, oversubscribed), against one process: 10
// steps of `tiny` (global batch 8, micro-batch 2, same seed) under pp2 x dp2, tp2 x dp2 with ZeRO-1,
// tp2 (with sequence parallel) x pp2 (4 ranks each) and tp2 x pp2 x dp2 with ZeRO-1 (8 ranks) give
// per-step training and validation losses within 1e-5 relative (gradient norms within 1e-4); a
// checkpoint saved under tp2 x pp2 resumes under dp2 x pp2 and on one process with the same losses.
// Layouts that do not fit are refused in one line before anything is written. Skips with a printed
// reason when mpirun or the MPI binding is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../src/train/metrics.js';
import { mpirunSkip, ZILI, zili } from './mpirun-zili.js';

const skip = mpirunSkip('composition tests');

const COMMON = ['train', '--preset', 'tiny', '--steps', '10', '--global-batch', '8', '--micro-batch', '2', '--seed', '7', '--eval-every', '5', '--eval-batches', '2', '--threads', '1'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-compose-'));

/** per-step training losses, the validation losses (steps 5 and 10), then the gradient norms of steps 1-5 */
function losses(out: string): number[] {
  const m = readMetrics(path.join(out, 'metrics.jsonl'));
  return [...m.map((x) => x.loss), ...m.flatMap((x) => (typeof x['valLoss'] === 'number' ? [x['valLoss']] : [])), ...m.slice(0, 5).map((x) => x.gradNorm as number)];
}

async function run(np: number, name: string, extra: string[]): Promise<number[]> {
  const out = path.join(tmp, name);
  const r = await zili(np, [...COMMON, '--out', out, ...extra], 360_000);
  assert.equal(r.code, 0, `${name} failed:\n${r.stderr.slice(-2000)}`);
  return losses(out);
}

/**
 * losses within 1e-5 relative; gradient norms (squares summed in another order over tp, pp and dp)
 * within 1e-4 over the first steps (later, a spike of the norm amplifies the rounding differences)
 */
function assertClose(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} values logged, expected ${want.length}`);
  got.forEach((x, i) => {
    const [tol, name] = i < 10 ? [1e-5, `step ${i + 1}: loss`] : i < 12 ? [1e-5, `validation ${i - 9}: loss`] : [1e-4, `step ${i - 11}: gradient norm`];
    assert.ok(Math.abs(x - want[i]!) <= tol * Math.abs(want[i]!), `${what}, ${name} ${x} vs one process ${want[i]}`);
  });
}

let reference: number[] = [];

test('one process: the reference losses', { skip }, async () => {
  reference = await run(0, 'one', ['--save-every', '0']);
  assert.equal(reference.length, 17);
});

test('pp2 x dp2 and tp2 x dp2 with ZeRO-1 (4 ranks each) = one process', { skip }, async () => {
  assertClose(await run(4, 'pp2-dp2', ['--pp', '2', '--dp', '2', '--save-every', '0']), reference, 'pp2 x dp2');
  // one pipeline stage: tp shards whose AdamW moments are sharded over the replicas
  assertClose(await run(4, 'tp2-dp2-zero1', ['--tp', '2', '--dp', '2', '--zero', '1', '--save-every', '0']), reference, 'tp2 x dp2 ZeRO-1');
});

test('tp2 (sp) x pp2 = one process; saved under it, resumed under dp2 x pp2 and on one process: the same losses', { skip }, async () => {
  const out = path.join(tmp, 'tp2-pp2');
  assertClose(await run(4, 'tp2-pp2', ['--tp', '2', '--sp', '--pp', '2', '--save-every', '5']), reference, 'tp2 (sp) x pp2');
  const step5 = path.join(out, 'step-00000005');
  const manifest = JSON.parse(fs.readFileSync(path.join(step5, 'manifest.json'), 'utf8'));
  // the last stage's row-parallel weight: one box per tp rank, in the files of world ranks 2 and 3 (mesh order tp-dp-pp)
  assert.deepEqual(
    manifest.shards.tensors['layers.3.attention.wo.weight.m'].pieces.map((p: { file: string; box: unknown }) => [p.file, p.box]),
    [
      ['rank-00002.safetensors', { offset: [0, 0], shape: [128, 64] }],
      ['rank-00003.safetensors', { offset: [0, 64], shape: [128, 64] }],
    ],
  );
  for (const [name, np, args] of [['tp2-pp2-to-dp2-pp2', 4, ['--pp', '2', '--dp', '2']], ['tp2-pp2-to-one', 0, []]] as const) {
    const again = path.join(tmp, name);
    fs.mkdirSync(again);
    fs.cpSync(step5, path.join(again, 'step-00000005'), { recursive: true });
    fs.writeFileSync(path.join(again, 'metrics.jsonl'), fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'));
    assertClose(await run(np, name, [...args, '--resume', '--save-every', '0']), reference, name);
  }
});

test('tp2 x pp2 x dp2 with ZeRO-1 (8 ranks) = one process', { skip }, async () => {
  assertClose(await run(8, 'tp2-pp2-dp2', ['--tp', '2', '--pp', '2', '--dp', '2', '--zero', '1', '--save-every', '0']), reference, 'tp2 x pp2 x dp2 ZeRO-1');
});

test('composed layouts that do not fit are refused in one line, naming what would', () => {
  const refused = (args: string[], re: RegExp) => {
    const r = spawnSync(process.execPath, [ZILI, ...COMMON, '--out', path.join(tmp, 'refused'), ...args], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.equal(fs.existsSync(path.join(tmp, 'refused')), false, 'nothing written');
  };
  refused(['--tp', '2', '--pp', '2', '--dp', '2'], /--tp 2 x --pp 2 x --dp 2 needs 8 ranks but the job has 1; launch it with mpirun -np 8/);
  refused(['--tp', '4', '--pp', '2'], /--tp 4 does not divide model 'tiny': 2 KV heads \(--kv-heads\) must be a multiple of 4; --tp 1\|2 would fit/);
  refused(['--pp', '4', '--vpp', '2'], /--pp 4 --vpp 2: pp·vpp = 8 chunks exceeds the model's 4 layers \+ 2 .*; use at most 6/);
  refused(['--pp', '2', '--dp', '2', '--zero', '2'], /--pp 2 with --zero 2: ZeRO-2\/3 under pipeline parallelism are not implemented .*; use --zero 1 or 0/);
  refused(['--preset', 'tiny-moe', '--tp', '2', '--pp', '2', '--ep', '2'], /--tp 2 x --pp 2 x --dp 1 needs 4 ranks but the job has 1; launch it with mpirun -np 4/);
  refused(['--preset', 'tiny-moe', '--ep', '2', '--dp', '2', '--zero', '2'], /--ep 2 with --zero 2: ZeRO-2\/3 under expert parallelism are not implemented .*; use --zero 1 or 0/);
  refused(['--preset', 'tiny-moe', '--tp', '2', '--ep', '4'], /--ep 4 must divide --tp 2 x --dp 1 = 2 .*; use an --ep that divides 2/);
});

test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
