// The conformance kit (`zili selftest`) on every built-in backend: reference, cpu and meta.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend } from '../src/backend/registry.js';
import { runConformance } from '../src/backend/conformance/kit.js';
import { nativeAvailable } from '../src/backend/cpu/native.js';
import { ReferenceBackend } from '../src/backend/reference/reference-backend.js';
import { BackendError } from '../src/tensor/errors.js';

for (const name of ['reference', 'cpu', 'meta']) {
  test(`selftest passes on ${name}`, { skip: name === 'cpu' && !nativeAvailable() ? 'native addon not built' : false }, async () => {
    const report = await runConformance(await getBackend(name));
    const failures = report.results.filter((r) => r.status === 'failed').map((r) => `${r.name}: ${r.detail}`);
    assert.deepEqual(failures, []);
    assert.ok(report.passed >= 60, `only ${report.passed} cases ran`);
  });
}

test('the kit catches a wrong kernel', async () => {
  class Broken extends ReferenceBackend {
    override unary(op: Parameters<ReferenceBackend['unary']>[0], x: Parameters<ReferenceBackend['unary']>[1], out: Parameters<ReferenceBackend['unary']>[2]): void {
      super.unary(op === 'exp' ? 'sin' : op, x, out);
    }
  }
  const report = await runConformance(new Broken(), { filter: 'exp' });
  assert.equal(report.failed, 1);
  assert.match(report.results[0]!.detail!, /tolerance/);
});

test('unknown backend names the available ones', async () => {
  await assert.rejects(getBackend('tpu9000'), (e: Error) => e instanceof BackendError && /unknown backend 'tpu9000'. Available backends: reference, reference-unfused, cpu, meta/.test(e.message));
});

test('out of memory names the size, the usage and the fix, and loses nothing', async () => {
  const { CpuBackend } = await import('../src/backend/cpu/cpu-backend.js');
  const { zeros } = await import('../src/tensor/ops.js');
  for (const be of [new ReferenceBackend({ memoryLimitBytes: 1 << 20 }), ...(nativeAvailable() ? [new CpuBackend({ memoryLimitBytes: 1 << 20 })] : [])]) {
    const a = zeros(be, [128, 1024]); // 512 KiB
    assert.throws(
      () => zeros(be, [256, 1024]),
      (e: Error) => /out of memory allocating 1\.0 MiB \(262144 × f32\); 512\.0 KiB of 1\.0 MiB in use\. Reduce the batch size/.test(e.message),
    );
    assert.equal(be.memory().liveBuffers, 1, 'the failed allocation left nothing behind');
    assert.equal(a.dataSync().length, 128 * 1024);
    a.dispose();
  }
});

test('selftest CLI: unknown backend is a clear error', async () => {
  const { main } = await import('../src/cli/main.js');
  const errors: string[] = [];
  const orig = console.error;
  console.error = (m: string) => errors.push(String(m));
  try {
    assert.equal(await main(['selftest', '--backend', 'nope']), 1);
  } finally {
    console.error = orig;
  }
  assert.match(errors.join('\n'), /unknown backend 'nope'\. Available backends:/);
});
