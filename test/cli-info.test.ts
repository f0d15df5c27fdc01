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
