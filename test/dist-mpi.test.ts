// The Open MPI communicator for real, under mpirun: every call on 2 and 3 ranks (3 with 256-byte
// chunks, so every chunked path runs), the process mesh on 4 ranks, the watchdog, and kill -9 of a
// rank. Skips with a printed reason when mpirun or the MPI binding is missing (scripts/setup installs
// and builds both).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mpiBindingPath } from '../src/dist/mpi-native.js';
import { repoRoot } from '../src/util/paths.js';

const fixtures = join(repoRoot(), 'dist', 'test', 'fixtures');
const hasMpirun = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).status === 0;
const skip = !hasMpirun
  ? 'mpirun is not installed (scripts/setup installs openmpi-bin)'
  : !existsSync(mpiBindingPath())
    ? `the MPI binding is not built (${mpiBindingPath()}; run scripts/setup)`
    : false;
if (skip) console.log(`# skipping the MPI tests: ${skip}`);

const MPIRUN = ['--allow-run-as-root', '--oversubscribe', '--bind-to', 'none'];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function mpirun(np: number, script: string, env: Record<string, string>, timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const p = spawn('mpirun', [...MPIRUN, '-np', String(np), process.execPath, join(fixtures, script)], { env: { ...process.env, ...env } });
    let stdout = '', stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

function okLines(out: string, prefix: string): string[] {
  return out.split('\n').filter((l) => l.startsWith(prefix)).sort();
}

test('every communicator call on 2 ranks', { skip }, async () => {
  const r = await mpirun(2, 'dist-comm-check.js', { ZILI_COMM_CHECK: '1' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(okLines(r.stdout, 'ok '), ['ok 0 2', 'ok 1 2']);
});

test('a nonblocking collective progresses while JavaScript is busy: it completes inside a synchronous loop; waitSync', { skip }, async () => {
  const r = await mpirun(2, 'dist-overlap-check.js', { ZILI_OVERLAP_CHECK: '1' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(okLines(r.stdout, 'overlap '), ['overlap 0 2', 'overlap 1 2']);
});

test('every communicator call on 3 ranks with 256-byte chunks', { skip }, async () => {
  const r = await mpirun(3, 'dist-comm-check.js', { ZILI_COMM_CHECK: '1', ZILI_TEST_CHUNK_BYTES: '256' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(okLines(r.stdout, 'ok '), ['ok 0 3', 'ok 1 3', 'ok 2 3']);
});

test('process mesh cp 2 × dp 2 with ep 2 on 4 ranks: every sub-communicator holds its table row', { skip }, async () => {
  const r = await mpirun(4, 'dist-mesh-check.js', { ZILI_MESH: JSON.stringify({ tp: 1, cp: 2, dp: 2, pp: 1, ep: 2 }) });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(okLines(r.stdout, 'mesh ok').length, 4);
});

test('watchdog: a collective one rank never joins aborts the job, naming rank, call and step', { skip }, async () => {
  const r = await mpirun(2, 'dist-fail-check.js', { ZILI_FAIL_MODE: 'hang', ZILI_COMM_TIMEOUT_S: '2' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /zili: rank 0: allReduce of 4 f32 on communicator 'world' \(rank 0 of 2\) did not complete within 2 s at step 7/);
  assert.doesNotMatch(r.stdout, /not aborted/);
  assert.ok(r.ms < 60_000, `job ended after ${r.ms} ms`);
});

test('a rank that fails with an error aborts the job on its way out', { skip }, async () => {
  const r = await mpirun(2, 'dist-fail-check.js', { ZILI_FAIL_MODE: 'throw' });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /rank 1 fails on purpose/);
  assert.match(r.stderr, /zili: rank 1 exited with code 1; aborting the job/);
  assert.doesNotMatch(r.stdout, /not aborted/);
});

test('kill -9 of one rank: mpirun exits non-zero and no rank survives, within 60 s', { skip }, async () => {
  const t0 = Date.now();
  const p = spawn('mpirun', [...MPIRUN, '-np', '2', process.execPath, join(fixtures, 'dist-fail-check.js')], { env: { ...process.env, ZILI_FAIL_MODE: 'loop' } });
  let stdout = '';
  const pids = new Map<number, number>();
  const ready = new Promise<void>((resolve) => {
    p.stdout.on('data', (d) => {
      stdout += d;
      for (const m of stdout.matchAll(/^pid (\d+) (\d+)$/gm)) pids.set(Number(m[1]), Number(m[2]));
      if (pids.size === 2) resolve();
    });
  });
  p.stderr.resume();
  const exited = new Promise<number | null>((resolve) => p.on('close', resolve));
  const guard = setTimeout(() => p.kill('SIGKILL'), 90_000);
  await ready;
  await new Promise((r) => setTimeout(r, 500)); // mid-run: both ranks inside the all-reduce loop
  const killedAt = Date.now();
  process.kill(pids.get(1)!, 'SIGKILL');
  const code = await exited;
  clearTimeout(guard);
  // a process is alive while it exists and is not a zombie (an exited child nobody reaped yet)
  const alive = (pid: number) => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  assert.notEqual(code, 0, 'mpirun exit status');
  while (alive(pids.get(0)!) && Date.now() - killedAt < 60_000) await new Promise((r) => setTimeout(r, 200));
  assert.ok(!alive(pids.get(0)!), `rank 0 (pid ${pids.get(0)}) still runs 60 s after rank 1 was killed`);
  assert.ok(Date.now() - killedAt < 60_000, `job ended ${Date.now() - killedAt} ms after the kill`);
  assert.ok(Date.now() - t0 < 90_000);
});
