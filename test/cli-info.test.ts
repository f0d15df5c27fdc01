// `zili info`: exact parameter counts per preset, and a clear error for an unknown preset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { countParams } from '../src/nn/param-count.js';
import { preset } from '../src/nn/presets.js';

const zili = new URL('../../bin/zili', import.meta.url).pathname;

test('info --preset prints exact total and active counts', () => {
  const out = execFileSync(zili, ['info', '--preset', 'moe-1t'], { encoding: 'utf8' });
  const p = countParams(preset('moe-1t'));
  assert.match(out, new RegExp(`exact: ${p.total.toLocaleString('en-US')} parameters, ${p.active.toLocaleString('en-US')} active per token`));
  assert.equal(p.total, 1_027_291_575_296);
  assert.equal(p.active, 33_744_843_776);
});

test('info lists every preset as JSON', () => {
  const rows = JSON.parse(execFileSync(zili, ['info', '--json'], { encoding: 'utf8' })) as { name: string; params: { total: number } }[];
  assert.deepEqual(rows.map((r) => r.name), ['tiny', 'tiny-moe', 'small', '125m', '1b', '7b', '70b', 'dense-1t', 'moe-1t']);
  assert.equal(rows.find((r) => r.name === 'dense-1t')!.params.total, countParams(preset('dense-1t')).total);
});

test('unknown preset names the known ones', () => {
  const r = spawnSync(zili, ['info', '--preset', 'gpt5'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown preset 'gpt5'\. Known presets: tiny, tiny-moe/);
});

test('info --hardware reports the measured peaks and a GEMM engine per dtype and shape class with its candidates', () => {
  const r = JSON.parse(execFileSync(zili, ['info', '--hardware', '--json'], { encoding: 'utf8' })) as {
    peaks: Record<string, number>;
    gemm: { f32: Record<string, { engine: string; gflops: number; candidates: Record<string, number> }>; bf16: Record<string, { engine: string; impl: string }> } | null;
  };
  assert.ok(r.peaks['f32-fma']! > 0);
  assert.ok(r.gemm, 'tuning ran');
  for (const cls of ['small', 'thin', 'large']) {
    const c = r.gemm.f32[cls]!;
    assert.ok(['openblas', 'onednn'].includes(c.engine));
    assert.ok(c.gflops > 0 && Object.values(c.candidates).includes(c.gflops), `${cls}: the winner is one of the candidates`);
    assert.ok(['onednn', 'widen'].includes(r.gemm.bf16[cls]!.engine));
  }
});
