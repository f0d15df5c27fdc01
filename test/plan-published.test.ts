// Validation on published runs (docs/planner.md): the table in the docs is regenerated from the data
// of src/plan/published-runs.ts and must match (so the doc cannot drift), and the errors must stay
// within the bounds the docs state.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRun } from '../src/plan/calibrate.js';
import { PUBLISHED_RUNS, SOURCES } from '../src/plan/published-runs.js';
import { validate, validationMarkdown } from '../src/plan/validation.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const doc = readFileSync(join(root, 'docs', 'planner.md'), 'utf8');

test('the validation set: >= 25 runs from >= 8 sources, each cited', () => {
  assert.ok(PUBLISHED_RUNS.length >= 25, `${PUBLISHED_RUNS.length} runs`);
  const used = new Set(PUBLISHED_RUNS.map((r) => r.source));
  assert.ok(used.size >= 8, `${used.size} sources`);
  for (const s of used) assert.ok(SOURCES.find((x) => x.id === s)?.cite, `${s} has no citation`);
  for (const r of PUBLISHED_RUNS) assert.ok(r.mfu > 0.05 && r.mfu < 0.8 && r.reports.length > 10, r.id);
});

test('docs/planner.md carries exactly the table the data gives (errors recomputed)', () => {
  const v = validate();
  const m = /<!-- validation-table -->\n([\s\S]*?)\n<!-- \/validation-table -->/.exec(doc);
  assert.ok(m, 'docs/planner.md has no <!-- validation-table --> block');
  assert.equal(m[1]!.trim(), validationMarkdown(v).trim(), 'regenerate with: node dist/bench/plan-search.js --validation-only');
});

test('step time of the planner-io example (Narayanan 1T) is within 10% of the published 102.6 s', () => {
  const c = checkRun(PUBLISHED_RUNS.find((r) => r.id === 'narayanan-1008B')!);
  assert.ok(Math.abs(c.predictedStepS - 102.6) / 102.6 < 0.1, `${c.predictedStepS}`);
});
