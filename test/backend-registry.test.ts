// A backend from outside the repository: a module named in $ZILI_BACKEND_MODULES is registered and
// passes `zili selftest` like a built-in one; a bad module gets a clear error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const zili = fileURLToPath(new URL('../../bin/zili', import.meta.url));
const plugin = fileURLToPath(new URL('./fixtures/vendor-backend.js', import.meta.url));

test('selftest runs on a backend module named in ZILI_BACKEND_MODULES', () => {
  const r = spawnSync(zili, ['selftest', '--backend', 'vendor-npu', '--json'], { encoding: 'utf8', env: { ...process.env, ZILI_BACKEND_MODULES: plugin } });
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { backend: string; passed: number; failed: number };
  assert.equal(last.backend, 'vendor-npu');
  assert.equal(last.failed, 0);
  assert.ok(last.passed >= 60);
});

test('a module without the expected export is named in the error', () => {
  const bad = fileURLToPath(new URL('./fixtures/interrupt-child.js', import.meta.url));
  const r = spawnSync(zili, ['selftest', '--backend', 'vendor-npu'], { encoding: 'utf8', env: { ...process.env, ZILI_BACKEND_MODULES: bad } });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /backend module '.*interrupt-child\.js' must export default \{ name: string, create\(\): Backend \}/);
});
