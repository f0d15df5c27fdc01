// The addon's thread pools wait passively: loadNative sets OMP_WAIT_POLICY and OpenBLAS's worker
// spin time (OPENBLAS_THREAD_TIMEOUT) before the libraries load, unless the user set them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const script = `import('${new URL('../src/backend/cpu/native.js', import.meta.url).href}').then((m) => { m.loadNative();
  console.log(JSON.stringify({ omp: process.env.OMP_WAIT_POLICY, blas: process.env.OPENBLAS_THREAD_TIMEOUT })); })`;

function load(extra: NodeJS.ProcessEnv): { omp?: string; blas?: string } {
  const { OMP_WAIT_POLICY: _o, OPENBLAS_THREAD_TIMEOUT: _b, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...env, ZILI_GEMM_TUNE: 'off', ...extra }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { omp?: string; blas?: string };
}

test('loadNative makes OpenMP wait passively and OpenBLAS stop spinning after ~2^20 ticks, unless the user chose', () => {
  assert.deepEqual(load({}), { omp: 'PASSIVE', blas: '20' });
  assert.deepEqual(load({ OMP_WAIT_POLICY: 'ACTIVE', OPENBLAS_THREAD_TIMEOUT: '28' }), { omp: 'ACTIVE', blas: '28' });
});
