// Tests of the JSON-lines metrics writer: creation, appending across writers (resume), torn-line repair, dropping steps past a resume point.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MetricsWriter, readMetrics } from '../src/train/metrics.js';

const tmpDir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'zili-metrics-'));
const rec = (step: number) => ({ step, loss: 4 - step / 10, lr: 1e-3, tokensPerSec: 1000 + step });

test('creates the file (and folders), writes one line per step, appends across two writers', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'sub', 'metrics.jsonl');
  const a = new MetricsWriter(file);
  a.write(rec(1));
  // each line is in the file as soon as write returns, before close
  assert.equal(fs.readFileSync(file, 'utf8'), JSON.stringify(rec(1)) + '\n');
  a.write({ ...rec(2), gradNorm: 0.5, valLoss: 3.9 });
  a.close();
  const b = new MetricsWriter(file);
  b.write(rec(3));
  b.close();
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  assert.equal(lines.length, 4);
  assert.equal(lines[3], '');
  assert.deepEqual(readMetrics(file), [rec(1), { ...rec(2), gradNorm: 0.5, valLoss: 3.9 }, rec(3)]);
  assert.throws(() => b.write(rec(4)), /closed/);
  assert.throws(() => new MetricsWriter(path.join(dir, 'x.jsonl')).write({ step: 1, loss: 1, lr: 1 } as never), /tokensPerSec/);
  fs.rmSync(dir, { recursive: true });
});

test('a torn last line is cut; resuming drops steps after the checkpoint', () => {
  const dir = tmpDir();
  const file = path.join(dir, 'metrics.jsonl');
  const w = new MetricsWriter(file);
  for (let s = 1; s <= 5; s++) w.write(rec(s));
  w.close();
  fs.appendFileSync(file, '{"step":6,"lo'); // a crash mid-write
  const r = new MetricsWriter(file, { resumeStep: 3 });
  r.write(rec(4));
  r.close();
  assert.deepEqual(readMetrics(file).map((m) => m.step), [1, 2, 3, 4]);
  assert.ok(fs.readFileSync(file, 'utf8').endsWith('\n'));
  fs.rmSync(dir, { recursive: true });
});
