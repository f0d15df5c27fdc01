// The README's main job (scripts/main): trains `tiny` on the built-in corpus, prints the first and
// last loss from the run's metrics (step lines, not the event lines beside them) and generates text;
// a second call on the finished run only generates. A short run (3 steps) in a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../src/util/paths.js';

test('scripts/main trains, summarises the run and generates; run again, it only generates', () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'zili-main-'));
  const env = { ...process.env, ZILI_MAIN_SKIP_SETUP: '1', ZILI_MAIN_OUT: path.join(out, 'run'), ZILI_MAIN_STEPS: '3' };
  const run = () => spawnSync(path.join(repoRoot(), 'scripts', 'main'), ['--eval-every', '3', '--eval-batches', '1'], { env, encoding: 'utf8', timeout: 300_000 });
  try {
    const first = run();
    assert.equal(first.status, 0, first.stderr.slice(-3000));
    assert.match(first.stderr, /main: loss \d+\.\d{3} at step 1 -> \d+\.\d{3} at step 3 \(\d+\.\d\dx\), validation loss \d+\.\d{3} at step 3/);
    assert.ok(first.stdout.trim().length > 0, 'generated text on stdout');
    assert.doesNotMatch(first.stderr, /\n\s+at /, 'no stack trace');
    const again = run();
    assert.equal(again.status, 0, again.stderr.slice(-3000));
    assert.match(again.stderr, /holds a run; continuing it up to step 3/);
    assert.match(again.stderr, /main: loss .* at step 3/);
  } finally {
    fs.rmSync(out, { recursive: true, force: true });
  }
});
