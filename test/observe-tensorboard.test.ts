// TensorBoard event files from `zili train --tensorboard`, read back by TensorBoard's own reader
// (EventAccumulator, from the `tensorboard` wheel that scripts/setup-venv installs): every scalar
// of every step of a 50-step run, resumed runs counted once, per-rank times and event markers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32c, maskedCrc32c } from '../src/observe/crc32c.js';
import { stepScalars } from '../src/observe/run-record.js';
import { TensorBoardSink } from '../src/observe/tensorboard-sink.js';
import { readMetrics, type StepMetrics } from '../src/train/metrics.js';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const ZILI = join(ROOT, 'bin', 'zili');
const tmp = mkdtempSync(join(tmpdir(), 'zili-tb-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

type Points = Record<string, Array<[number, number]>>;

let python: string | null = null;
/** TensorBoard's reader on a log folder: {tag: [[step, value], ...]}. */
function readWithTensorBoard(dir: string): Points {
  if (!python) {
    const v = spawnSync(join(ROOT, 'scripts', 'setup-venv'), { encoding: 'utf8' });
    assert.equal(v.status, 0, `scripts/setup-venv failed (the tensorboard wheel is needed): ${v.stderr}`);
    python = v.stdout.trim().split('\n').pop()!;
  }
  const r = spawnSync(python, [join(ROOT, 'test', 'tensorboard_read.py'), dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Points;
}

test('crc32c: the standard check value, and the masked form TFRecord stores', () => {
  const bytes = new TextEncoder().encode('123456789');
  assert.equal(crc32c(bytes), 0xe3069283);
  assert.equal(maskedCrc32c(new Uint8Array(0)), 0xa282ead8);
});

test('zili train --tensorboard: TensorBoard reads back every scalar of all 50 steps', () => {
  const out = join(tmp, 'run');
  const tb = join(tmp, 'tb');
  const r = spawnSync(process.execPath, [ZILI, 'train', '--preset', 'tiny', '--seq', '16', '--global-batch', '2', '--steps', '50', '--eval-every', '10', '--eval-batches', '1', '--save-every', '0', '--out', out, '--tensorboard', tb], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const lines = readMetrics(join(out, 'metrics.jsonl'));
  assert.equal(lines.length, 50);
  const got = readWithTensorBoard(tb);

  const expected: Points = {};
  for (const m of lines) for (const [tag, v] of stepScalars(m)) (expected[tag] ??= []).push([m.step, Math.fround(v)]);
  assert.deepEqual(Object.keys(got).sort(), Object.keys(expected).sort());
  for (const tag of Object.keys(expected)) assert.deepEqual(got[tag], expected[tag], tag);
  // the fields a user looks for, spelled out
  assert.deepEqual(got['loss/train']!.map(([s]) => s), lines.map((m) => m.step));
  assert.deepEqual(got['loss/train']!.map(([, v]) => v), lines.map((m) => Math.fround(m.loss)));
  assert.deepEqual(got['loss/val']!.map(([s]) => s), [10, 20, 30, 40, 50]);
  for (const tag of ['optim/lr', 'optim/grad_norm', 'throughput/tokens_per_s', 'throughput/mfu', 'memory/rss_gib']) assert.equal(got[tag]?.length, 50, tag);
  assert.ok(got['memory/rss_gib']!.every(([, v]) => v > 0.01 && v < 64), 'resident memory in GiB');
});

test('TensorBoard sink: a resumed run replaces the steps after its checkpoint; per-rank times and events read back', () => {
  const tb = join(tmp, 'tb-resume');
  const line = (step: number, loss: number, extra: Record<string, unknown> = {}): StepMetrics => ({ step, loss, lr: 1e-3, tokensPerSec: 100, ...extra });
  let clock = 1_700_000_000;
  const first = new TensorBoardSink(tb, () => clock);
  for (let s = 1; s <= 30; s++) first.step(line(s, 10 + s));
  first.close(); // "crashed" after step 30; the checkpoint was at step 20
  clock += 60;
  const resumed = new TensorBoardSink(tb, () => clock);
  for (let s = 21; s <= 50; s++) resumed.step(line(s, 100 + s, s === 45 ? { rankStepS: [0.1, 0.1, 0.4, 0.1] } : {}));
  resumed.event({ event: 'skip', step: 40, count: 3 });
  resumed.close();
  assert.notEqual(first.file, resumed.file);

  const got = readWithTensorBoard(tb);
  const loss = got['loss/train']!;
  assert.deepEqual(loss.map(([s]) => s), Array.from({ length: 50 }, (_, i) => i + 1), 'each step once');
  assert.deepEqual(loss.slice(18, 22).map(([, v]) => v), [29, 30, 121, 122], 'the resumed run wins after the checkpoint');
  assert.deepEqual(got['time/rank_step_s/rank02'], [[45, Math.fround(0.4)]]);
  assert.deepEqual(got['time/rank_step_s_slowest_over_median'], [[45, 4]]);
  assert.deepEqual(got['events/skip'], [[40, 3]]);
  assert.deepEqual(got['events/restart'], [[21, 1]], 'the resumed process marks its restart');
});
