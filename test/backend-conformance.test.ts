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
    const report = runConformance(await getBackend(name));
    const failures = report.results.filter((r) => r.status === 'failed').map((r) => `${r.name}: ${r.detail}`);
    assert.deepEqual(failures, []);
    assert.ok(report.passed >= 60, `only ${report.passed} cases ran`);
  });
}

test('the kit catches a wrong kernel', () => {
  class Broken extends ReferenceBackend {
    override unary(op: Parameters<ReferenceBackend['unary']>[0], x: Parameters<ReferenceBackend['unary']>[1], out: Parameters<ReferenceBackend['unary']>[2]): void {
      super.unary(op === 'exp' ? 'sin' : op, x, out);
    }
  }
  const report = runConformance(new Broken(), { filter: 'exp' });
  assert.equal(report.failed, 1);
  assert.match(report.results[0]!.detail!, /tolerance/);
});

test('unknown backend names the available ones', async () => {
  await assert.rejects(getBackend('tpu9000'), (e: Error) => e instanceof BackendError && /unknown backend 'tpu9000'. Available backends: reference, reference-unfused, cpu, meta/.test(e.message));
});
