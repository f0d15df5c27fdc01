// `zili train` under mpirun (2 cores, oversubscribed), against one process: 10 steps of `tiny`
// (global batch 8, same seed) under dp2, dp2 ZeRO-1/2/3 and dp4 ZeRO-3 give per-step losses within
// 1e-5 relative; a checkpoint saved under dp2 ZeRO-3 resumes under dp4 ZeRO-1 with the same losses
// and consolidates into a one-process checkpoint that resumes too; kill -9 of one rank mid-run ends
// the whole job within 60 s with mpirun non-zero, and --resume finishes with exactly the
// uninterrupted losses; tiny-moe under dp4 x ep2 (expert parallelism) against one process, resumed
// under other layouts. Skips with a printed reason when mpirun or the MPI binding is missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mpiBindingPath } from '../src/dist/mpi-native.js';
import { repoRoot } from '../src/util/paths.js';
import { readMetrics } from '../src/train/metrics.js';
import { latestCheckpoint } from '../src/train/checkpoint.js';
import { assertPeakWithinPlanner } from './memory-check.js';

const hasMpirun = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).status === 0;
const skip = !hasMpirun ? 'mpirun is not installed (scripts/setup installs openmpi-bin)' : !fs.existsSync(mpiBindingPath()) ? `the MPI binding is not built (${mpiBindingPath()})` : false;
if (skip) console.log(`# skipping the mpirun training tests: ${skip}`);

const ZILI = path.join(repoRoot(), 'bin', 'zili');
const MPIRUN = ['--allow-run-as-root', '--oversubscribe', '--bind-to', 'none'];
const COMMON = ['train', '--preset', 'tiny', '--steps', '10', '--global-batch', '8', '--seed', '7', '--eval-every', '5', '--eval-batches', '2', '--threads', '1'];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-mpirun-'));
/** marks the processes of this test file, so the kill test finds its ranks and checks none survive */
const MARK = `ZILI_TEST_MARK_${process.pid}`;

interface Run {
  code: number | null;
  stderr: string;
}

function launch(np: number, args: string[], onSpawn?: (pid: number) => void, timeoutMs = 240_000): Promise<Run> {
  return new Promise((resolve) => {
    const cmd = np > 0 ? 'mpirun' : process.execPath;
    const argv = np > 0 ? [...MPIRUN, '-x', MARK, '-np', String(np), process.execPath, ZILI, ...args] : [ZILI, ...args];
    const p = spawn(cmd, argv, { env: { ...process.env, [MARK]: '1' } });
    let stderr = '';
    p.stdout.on('data', () => {});
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    onSpawn?.(p.pid!);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/** per-step training losses, then the validation losses (steps 5 and 10: each rank evaluates its rows of the same batches) */
function losses(out: string): number[] {
  const m = readMetrics(path.join(out, 'metrics.jsonl'));
  return [...m.map((x) => x.loss), ...m.flatMap((x) => (typeof x['valLoss'] === 'number' ? [x['valLoss']] : []))];
}

function assertClose(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, `${what}: ${got.length} losses logged, expected ${want.length}`);
  got.forEach((x, i) => assert.ok(Math.abs(x - want[i]!) <= 1e-5 * Math.abs(want[i]!), `${what}, ${i < 10 ? `step ${i + 1}` : `validation ${i - 9}`}: loss ${x} vs one process ${want[i]}`));
}

/** pids of live processes carrying this file's mark in their environment, with their MPI rank */
function markedProcesses(): { pid: number; rank: number }[] {
  const out: { pid: number; rank: number }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${d}/environ`, 'utf8').split('\0');
      if (!env.includes(`${MARK}=1`)) continue;
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // a zombie is gone, only not yet reaped
      const rank = env.find((e) => e.startsWith('OMPI_COMM_WORLD_RANK='));
      out.push({ pid: Number(d), rank: rank ? Number(rank.split('=')[1]) : -1 });
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
  return out;
}

let reference: number[] = [];

test('one process: the reference losses', { skip }, async () => {
  const out = path.join(tmp, 'single');
  const r = await launch(0, [...COMMON, '--out', out, '--save-every', '0']);
  assert.equal(r.code, 0, r.stderr);
  reference = losses(out);
  assert.equal(reference.length, 12);
});

for (const [np, zero] of [[2, 0], [2, 1], [2, 2], [4, 3]] as const)
  test(`dp${np} ZeRO-${zero}: the losses of one process`, { skip }, async () => {
    const out = path.join(tmp, `dp${np}-z${zero}`);
    // ZeRO-3 with recomputation: blocks gathered again before their backward (the dp2 ZeRO-3 run below has none)
    const recompute = zero === 3 ? ['--recompute', 'full'] : [];
    const r = await launch(np, [...COMMON, '--out', out, '--dp', String(np), '--zero', String(zero), '--save-every', '0', '--bucket-mb', '0.5', ...recompute]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`memory per rank \\(dp${np} ZeRO-${zero}\\): planner .* measured peak`));
    assertClose(losses(out), reference, `dp${np} ZeRO-${zero}`);
    const m = readMetrics(path.join(out, 'metrics.jsonl'));
    assert.ok(m.every((x) => Array.isArray(x['rankStepS']) && (x['rankStepS'] as number[]).length === np && x['stepS'] === Math.max(...(x['rankStepS'] as number[]))), 'rankStepS per rank, stepS the slowest');
    assertPeakWithinPlanner(path.join(out, 'metrics.jsonl'), { dp: np, zero, globalBatch: 8, microBatch: 8 / np, bucketMb: 0.5, ...(zero === 3 ? { recompute: 'full' as const } : {}) }, `dp${np} ZeRO-${zero}`);
  });

test('dp2 ZeRO-3 saved at step 5, resumed under dp4 ZeRO-1 and under one process (consolidated): the same losses', { skip }, async () => {
  const out = path.join(tmp, 'z3');
  const r = await launch(2, [...COMMON, '--out', out, '--dp', '2', '--zero', '3', '--save-every', '5', '--bucket-mb', '0.5']);
  assert.equal(r.code, 0, r.stderr);
  assertClose(losses(out), reference, 'dp2 ZeRO-3');
  const step5 = path.join(out, 'step-00000005');
  assert.deepEqual(fs.readdirSync(step5).sort(), ['manifest.json', 'rank-00000.safetensors', 'rank-00001.safetensors']);
  // resume a copy of the run at step 5 under dp4 ZeRO-1
  const again = path.join(tmp, 'z3-to-dp4');
  fs.mkdirSync(again);
  fs.cpSync(step5, path.join(again, 'step-00000005'), { recursive: true });
  fs.writeFileSync(path.join(again, 'metrics.jsonl'), fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'));
  const r2 = await launch(4, [...COMMON, '--out', again, '--dp', '4', '--zero', '1', '--resume', '--save-every', '0']);
  assert.equal(r2.code, 0, r2.stderr);
  assertClose(losses(again), reference, 'dp2 ZeRO-3 -> dp4 ZeRO-1');
  // consolidated into one process's checkpoint, which a plain one-process --resume continues
  const single = path.join(tmp, 'z3-consolidated');
  const c = await launch(0, ['checkpoint', 'consolidate', step5, '--out', single]);
  assert.equal(c.code, 0, c.stderr);
  assert.ok(fs.existsSync(path.join(single, 'step-00000005', 'model.safetensors')));
  fs.writeFileSync(path.join(single, 'metrics.jsonl'), fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'));
  const r3 = await launch(0, [...COMMON, '--out', single, '--resume', '--save-every', '0']);
  assert.equal(r3.code, 0, r3.stderr);
  assertClose(losses(single), reference, 'dp2 ZeRO-3 -> consolidated -> one process');
});

test('kill -9 of one rank: the job ends within 60 s, mpirun non-zero, --resume finishes with the uninterrupted losses', { skip }, async () => {
  const out = path.join(tmp, 'killed');
  const args = [...COMMON, '--out', out, '--dp', '2', '--zero', '2', '--save-every', '3'];
  let killedAt = 0;
  let poll: NodeJS.Timeout | undefined;
  const run = launch(2, args, () => {
    poll = setInterval(() => {
      let step = 0;
      try {
        step = readMetrics(path.join(out, 'metrics.jsonl')).length;
      } catch {
        return;
      }
      // after step 4, once the step-3 checkpoint is committed (it is written in the background)
      if (step < 4 || !latestCheckpoint(out, { warn: () => {} })) return;
      const victim = markedProcesses().find((p) => p.rank === 1);
      if (!victim) return;
      clearInterval(poll);
      process.kill(victim.pid, 'SIGKILL');
      killedAt = Date.now();
    }, 100);
  });
  const r = await run;
  clearInterval(poll);
  assert.ok(killedAt > 0, `rank 1 was never killed (mpirun exited ${r.code}): ${r.stderr.slice(-2000)}`);
  assert.notEqual(r.code, 0, 'mpirun reports the failure');
  assert.match(r.stderr, /rank 1\b/, 'the message names the rank that died');
  const deadline = killedAt + 60_000;
  while (markedProcesses().length && Date.now() < deadline) await new Promise((res) => setTimeout(res, 200));
  assert.deepEqual(markedProcesses(), [], 'no process of the job outlives it');
  assert.ok(Date.now() - killedAt < 60_000, 'within 60 s');
  const done = readMetrics(path.join(out, 'metrics.jsonl')).length; // (lines past the checkpoint are dropped on resume)
  assert.ok(done < 10, `the run was cut short (it logged ${done} steps)`);
  const resumed = await launch(2, [...args, '--resume']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assertClose(losses(out), reference, 'killed and resumed');
  assert.deepEqual(losses(out), losses(path.join(tmp, 'dp2-z2')), 'bit-exact: the losses of the uninterrupted dp2 ZeRO-2 run');
});

// Tensor parallel (src/dist/tensor-parallel.ts): tp2 with sequence parallel, micro-batch 2, against
// the one-process reference; its sharded checkpoint (row-parallel shards stored as boxes of the global
// tensor) resumed under dp2 and under tp2 x dp2 without sp (4 ranks).
test('tp2 + sp (micro-batch 2): the losses of one process; saved at step 5, resumed under dp2 and under tp2 x dp2: the same losses', { skip }, async () => {
  // Validation batches are micro-batch sized (--eval-batches of --micro-batch rows per replica), so the
  // validation losses of a micro-batch-2 run are checked against one process with --micro-batch 2;
  // the training losses against the reference run.
  const single2 = path.join(tmp, 'single-mb2');
  const s2 = await launch(0, [...COMMON, '--out', single2, '--micro-batch', '2', '--save-every', '0']);
  assert.equal(s2.code, 0, s2.stderr);
  const mb2 = losses(single2);
  const expect = (val: [number[], number[]]) => [...reference.slice(0, 10), val[0][10]!, val[1][11]!];
  const out = path.join(tmp, 'tp2-sp');
  const r = await launch(2, [...COMMON, '--out', out, '--tp', '2', '--sp', '--micro-batch', '2', '--save-every', '5']);
  assert.equal(r.code, 0, r.stderr);
  assertClose(losses(out), expect([mb2, mb2]), 'tp2 + sp');
  assertPeakWithinPlanner(path.join(out, 'metrics.jsonl'), { globalBatch: 8, microBatch: 2, tensorParallel: { tp: 2, sp: true } }, 'tp2 + sp');
  const step5 = path.join(out, 'step-00000005');
  const manifest = JSON.parse(fs.readFileSync(path.join(step5, 'manifest.json'), 'utf8'));
  assert.deepEqual(manifest.shards.tensors['layers.0.attention.wo.weight'].pieces.map((p: { box: unknown }) => p.box), [
    { offset: [0, 0], shape: [128, 64] },
    { offset: [0, 64], shape: [128, 64] },
  ]);
  // the copied lines up to step 5 carry the tp2 run's validation; after it, dp2 evaluates the reference's batches
  const valsAfter: Record<string, [number[], number[]]> = { 'tp2-sp-to-dp2': [mb2, reference], 'tp2-sp-to-tp2-dp2': [mb2, mb2] };
  for (const [name, np, args] of [['tp2-sp-to-dp2', 2, ['--dp', '2']], ['tp2-sp-to-tp2-dp2', 4, ['--tp', '2', '--dp', '2', '--micro-batch', '2']]] as const) {
    const again = path.join(tmp, name);
    fs.mkdirSync(again);
    fs.cpSync(step5, path.join(again, 'step-00000005'), { recursive: true });
    fs.writeFileSync(path.join(again, 'metrics.jsonl'), fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'));
    const r2 = await launch(np, [...COMMON, '--out', again, ...args, '--resume', '--save-every', '0']);
    assert.equal(r2.code, 0, r2.stderr);
    assertClose(losses(again), expect(valsAfter[name]!), name);
  }
});

test('tp refusals: a layout that does not divide the model or the job', { skip }, async () => {
  const heads = await launch(0, [...COMMON, '--out', path.join(tmp, 'tp-refused'), '--tp', '2']);
  assert.notEqual(heads.code, 0);
  assert.match(heads.stderr, /--tp 2 x --dp 1 needs 2 ranks but the job has 1; launch it with mpirun -np 2/);
  const kv = await launch(0, [...COMMON, '--out', path.join(tmp, 'tp-refused'), '--tp', '4', '--dp', '1']);
  assert.match(kv.stderr, /--tp 4 does not divide model 'tiny': 2 KV heads \(--kv-heads\) must be a multiple of 4/);
});

// Expert parallelism (src/dist/expert-parallel.ts): tiny-moe on 4 ranks with --ep 2 (dp 4 holding two
// ep groups of 2; expert gradients summed over the 2 expert-data-parallel replicas), micro-batch 2,
// against one process with micro-batch 2; its checkpoint (each expert written by the rank holding it)
// resumed under one process and under dp2. Validation: one process's 8 batches of 2 rows are the same
// 16 rows as 4 ranks' 2 batches of 2 (and dp2's 4 batches of 2).
const MOE = ['train', '--preset', 'tiny-moe', '--steps', '10', '--global-batch', '8', '--micro-batch', '2', '--seed', '7', '--eval-every', '5', '--threads', '1'];

test('tiny-moe under dp4 x ep2: the losses of one process; saved at step 5, resumed under one process and dp2: the same losses', { skip }, async () => {
  const single = path.join(tmp, 'moe-single');
  const s = await launch(0, [...MOE, '--eval-batches', '8', '--out', single, '--save-every', '0']);
  assert.equal(s.code, 0, s.stderr);
  const want = losses(single);
  const out = path.join(tmp, 'moe-ep2');
  const r = await launch(4, [...MOE, '--eval-batches', '2', '--ep', '2', '--out', out, '--save-every', '5']);
  assert.equal(r.code, 0, r.stderr);
  assertClose(losses(out), want, 'dp4 x ep2');
  const step5 = path.join(out, 'step-00000005');
  const index = JSON.parse(fs.readFileSync(path.join(step5, 'manifest.json'), 'utf8')).shards.tensors;
  const files = (key: string) => index[key].pieces.map((p: { file: string }) => p.file);
  assert.deepEqual(files('layers.1.feed_forward.experts.3.w1.weight.m'), ['rank-00000.safetensors'], 'experts 0-3 live on ep rank 0');
  assert.deepEqual(files('layers.1.feed_forward.experts.4.w1.weight'), ['rank-00001.safetensors'], 'experts 4-7 on ep rank 1');
  assert.deepEqual(files('layers.1.feed_forward.router.weight'), ['rank-00000.safetensors']);
  for (const [name, np, evalBatches] of [['moe-ep2-to-single', 0, '8'], ['moe-ep2-to-dp2', 2, '4']] as const) {
    const again = path.join(tmp, name);
    fs.mkdirSync(again);
    fs.cpSync(step5, path.join(again, 'step-00000005'), { recursive: true });
    fs.writeFileSync(path.join(again, 'metrics.jsonl'), fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'));
    const r2 = await launch(np, [...MOE, '--eval-batches', evalBatches, '--out', again, '--resume', '--save-every', '0', ...(np ? ['--dp', String(np)] : [])]);
    assert.equal(r2.code, 0, r2.stderr);
    assertClose(losses(again), want, name);
  }
});

test('ep refusals: a layout that does not divide the experts or the ranks, a dense model', { skip }, async () => {
  const at = path.join(tmp, 'ep-refused');
  const experts = await launch(0, [...MOE, '--out', at, '--ep', '3']);
  assert.notEqual(experts.code, 0);
  assert.match(experts.stderr, /--ep 3 does not divide the 8 experts of model 'tiny-moe'; use an --ep that divides 8/);
  const ranks = await launch(0, [...MOE, '--out', at, '--ep', '2']);
  assert.match(ranks.stderr, /--ep 2 must divide the data-parallel ranks \(--dp 1\): expert parallelism folds inside dp; use --dp 2 \(mpirun -np 2\)/);
  const dense = await launch(0, [...COMMON, '--out', at, '--ep', '2']);
  assert.match(dense.stderr, /--ep 2: model 'tiny' has no MoE layers; use --ep 1 or an MoE model/);
  assert.ok(!fs.existsSync(at), 'nothing written');
});
